//! Clients that stop reading their stream: the server closes the connection after the stall
//! timeout and the client resumes by `Last-Event-ID` without loss; a slow reader keeps its stream.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::helpers::{page, value};
use crate::helpers::{spawn_with, token, wait_for, TestApp};

/// The stall timeout of these tests' servers.
const STALL: Duration = Duration::from_secs(2);
/// Messages per POST, each of about 4 KiB: a batch is 64 KiB of text.
const BATCH: usize = 16;
/// Alice gives up sending after this many messages (64 MiB), far more than any socket buffers.
const MOST_MESSAGES: usize = 16_384;
const OPEN_SSE: &str = "chinwag_open_connections{transport=\"sse\"}";

/// Open SSE streams, as /metrics counts them (the sample appears with the server's first stream).
async fn open_streams(app: &TestApp) -> f64 {
    value(&page(app).await, OPEN_SSE).unwrap_or(0.0)
}

/// Waits until `open_streams` reads `want`, or fails after `secs`.
async fn streams_become(app: &TestApp, want: f64, secs: u64) {
    let what = format!("{want} open streams");
    wait_for(&what, secs as f64, || async {
        (open_streams(app).await == want).then_some(())
    })
    .await;
}

/// `GET /v1/events?snapshot=0` as `user` on a raw socket with a small receive buffer; nothing is
/// read from it until the test does. Returns once the server counts the stream open.
async fn open_raw(app: &TestApp, user: &str) -> TcpStream {
    let addr = app.base.strip_prefix("http://").unwrap().parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET /v1/events?snapshot=0&token={} HTTP/1.1\r\nHost: chinwag\r\n\r\n",
        token(user)
    );
    s.write_all(request.as_bytes()).await.unwrap();
    streams_become(app, 1.0, 10).await;
    s
}

/// Sends the next batch of about 4 KiB messages into `chat`, recording their client ids.
async fn send_batch(app: &TestApp, chat: i64, sent: &mut Vec<String>) {
    let padding = "x".repeat(4000);
    let messages: Vec<Value> = (sent.len()..sent.len() + BATCH)
        .map(|n| json!({"clientMessageId": format!("m{n}"), "chatId": chat, "text": padding}))
        .collect();
    app.ok("alice", "message", json!({ "messages": messages }))
        .await;
    sent.extend((sent.len()..sent.len() + BATCH).map(|n| format!("m{n}")));
}

/// Everything the socket yields until the server's end (EOF or reset); fails after 30 s.
async fn read_to_the_end(s: &mut TcpStream) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) => return raw,
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => return raw,
            Ok(Err(e)) => panic!("reading the stream failed: {e}"),
            Err(_) => panic!("the stream did not end within 30 s"),
        }
    }
}

/// The body of a chunked HTTP response, as far as it arrived.
fn dechunk(raw: &[u8]) -> Vec<u8> {
    let start = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers")
        + 4;
    assert!(raw.starts_with(b"HTTP/1.1 200"), "not a stream");
    let mut rest = &raw[start..];
    let mut body = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..eol]).unwrap();
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        let data = &rest[eol + 2..];
        body.extend_from_slice(&data[..size.min(data.len())]);
        if size == 0 || data.len() < size + 2 {
            break;
        }
        rest = &data[size + 2..];
    }
    body
}

/// The event id and client message id of every whole `message` frame of an SSE body.
fn messages(body: &[u8]) -> Vec<(i64, String)> {
    let text = String::from_utf8_lossy(body);
    let whole = &text[..text.rfind("\n\n").map_or(0, |end| end + 2)];
    whole
        .split("\n\n")
        .filter_map(|frame| {
            let mut id = None;
            let mut data = None;
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str::<Value>(v).ok();
                }
            }
            let data = data?;
            (data["type"] == "message").then(|| {
                let client_id = data["data"]["clientMessageId"].as_str().unwrap();
                (id.expect("stored events have ids"), client_id.to_string())
            })
        })
        .collect()
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_resumes_without_loss() {
    // Arrange
    let app = spawn_with(|c| c.stall_timeout = STALL).await;
    let chat = app.direct_chat("alice", "bob").await;
    let mut bob = open_raw(&app, "bob").await;

    // Act: alice keeps sending, a batch every 50 ms, until bob's stream is closed.
    let mut sent = Vec::new();
    while open_streams(&app).await == 1.0 && sent.len() < MOST_MESSAGES {
        send_batch(&app, chat, &mut sent).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    streams_become(&app, 0.0, 4 * STALL.as_secs()).await;

    // Assert: bob reads what the sockets held, then the end of the connection.
    let body = dechunk(&read_to_the_end(&mut bob).await);
    let seen = messages(&body);
    assert!(!seen.is_empty(), "bob got nothing before the close");
    assert!(seen.len() < sent.len(), "bob's buffers held everything");
    // Reconnecting with the last id he has, he gets the rest, each message once.
    let (last_id, _) = seen.last().unwrap().clone();
    let mut again = app.events("bob", "snapshot=0", Some(last_id)).await;
    let rest = again
        .collect_of("message", sent.len() - seen.len(), 60.0)
        .await;
    let mut all: Vec<String> = seen.into_iter().map(|(_, c)| c).collect();
    all.extend(rest.iter().map(|e| {
        let c = e.data()["clientMessageId"].as_str();
        c.unwrap().to_string()
    }));
    assert_eq!(all, sent);
}

#[tokio::test]
async fn a_client_that_reads_slowly_keeps_its_stream() {
    // Arrange: far more waiting for bob than his socket and the server's hold.
    let app = spawn_with(|c| c.stall_timeout = STALL).await;
    let chat = app.direct_chat("alice", "bob").await;
    let mut bob = open_raw(&app, "bob").await;
    let mut sent = Vec::new();
    while sent.len() < 2048 {
        send_batch(&app, chat, &mut sent).await;
    }

    // Act: bob reads at most 16 KiB every 200 ms for three stall timeouts.
    let mut read = 0;
    let mut buf = vec![0u8; 16 * 1024];
    let until = Instant::now() + 3 * STALL;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        match tokio::time::timeout(Duration::from_millis(100), bob.read(&mut buf)).await {
            Ok(Ok(0)) => panic!("the server closed the stream after {read} bytes"),
            Ok(Ok(n)) => read += n,
            Ok(Err(e)) => panic!("the stream failed after {read} bytes: {e}"),
            Err(_) => {}
        }
    }

    // Assert: still open, with more to come than bob has read.
    assert_eq!(open_streams(&app).await, 1.0);
    assert!(read > 0);
    assert!(read < sent.len() * 4000, "bob read everything: no backlog");
}
