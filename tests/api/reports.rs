//! Error reports: the real binary, given `--sentry-dsn` for a Sentry stand-in run by the test,
//! reports a genuine 500 with its whole cause chain and the release, and sends no request data.

use std::time::Duration;

use sentry::protocol::{EnvelopeItem, Event};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::helpers::binary::{serve_capturing, terminate};
use crate::helpers::{http_client, token, SECRET};

/// One POST the stand-in received.
struct Received {
    path: String,
    auth: String,
    body: Vec<u8>,
    events: Vec<Event<'static>>,
}

/// A Sentry stand-in on 127.0.0.1:0 that records each envelope POSTed to it and answers 200.
/// Returns a DSN for it and what it receives.
async fn sentry_stand_in() -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut stream = tokio::io::BufReader::new(stream);
                let mut line = String::new();
                stream.read_line(&mut line).await.unwrap();
                let path = line.split(' ').nth(1).unwrap_or_default().to_string();
                let (mut auth, mut length) = (String::new(), None);
                loop {
                    let mut header = String::new();
                    stream.read_line(&mut header).await.unwrap();
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    let (name, value) = header.split_once(':').unwrap();
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse::<usize>().ok();
                    } else if name.eq_ignore_ascii_case("x-sentry-auth") {
                        auth = value.trim().to_string();
                    }
                }
                let mut body = vec![0; length.expect("a Content-Length")];
                stream.read_exact(&mut body).await.unwrap();
                stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                    )
                    .await
                    .unwrap();
                let events = sentry::Envelope::from_slice(&body)
                    .expect("a Sentry envelope")
                    .into_items()
                    .filter_map(|item| match item {
                        EnvelopeItem::Event(event) => Some(*event),
                        _ => None,
                    })
                    .collect();
                let _ = tx.send(Received {
                    path,
                    auth,
                    body,
                    events,
                });
            });
        }
    });
    (format!("http://public-key@127.0.0.1:{port}/1"), rx)
}

#[tokio::test]
async fn a_500_is_reported_with_its_cause_chain_and_release() {
    let (dsn, mut received) = sentry_stand_in().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--secret",
        SECRET,
        "--sentry-dsn",
        &dsn,
        "--data-dir",
        data.to_str().unwrap(),
    ];
    // The default log filter, whatever RUST_LOG the tests run with.
    let (mut child, addr, log) =
        serve_capturing(dir.path(), &args, &[("RUST_LOG", "chinwag=info")]);

    // The files directory is a regular file: no upload can be stored, a genuine I/O failure.
    let files = data.join("files");
    if files.is_dir() {
        std::fs::remove_dir_all(&files).unwrap();
    }
    std::fs::write(&files, "not a directory").unwrap();
    let alice = token("alice");
    let res = http_client()
        .post(format!("{addr}/v1/files?name=a.txt"))
        .bearer_auth(&alice)
        .body("upload body 6f1d2c")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "server_error", "{body}");

    let got = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .unwrap_or_else(|_| panic!("no report within 10 s; stderr: {}", log.lock().unwrap()))
        .unwrap();
    assert_eq!(got.path, "/api/1/envelope/");
    assert!(got.auth.contains("sentry_key=public-key"), "{}", got.auth);
    let [event] = &got.events[..] else {
        panic!("expected one event, got {}", got.events.len());
    };
    assert_eq!(
        event.release.as_deref(),
        Some(concat!("chinwag@", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(event.level, sentry::Level::Error);
    // One exception per link, root cause first: the OS error, then the context it happened in.
    let chain: Vec<&str> = event
        .exception
        .iter()
        .map(|e| e.value.as_deref().unwrap_or_default())
        .collect();
    let expected = std::io::Error::from_raw_os_error(libc::EEXIST).to_string();
    assert_eq!(chain, [expected.as_str(), "creating the files directory"]);

    // Nothing of the request went along: not its body, not the caller's token.
    let raw = String::from_utf8_lossy(&got.body);
    assert!(!raw.contains("upload body 6f1d2c"), "{raw}");
    assert!(!raw.contains(&alice), "{raw}");

    // The 500 is still logged, and the server stops cleanly with reports on.
    assert!(terminate(&mut child).success());
    crate::helpers::wait_for("the 500 in the log", 5.0, || async {
        let log = log.lock().unwrap();
        log.contains("creating the files directory").then_some(())
    })
    .await;
}
