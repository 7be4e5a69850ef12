//! What one caller may take: request rates per user and per address (429 with Retry-After,
//! streams and polls counted, the host API exempt), the cap on a user's open streams (the oldest
//! closes), the body timeout (408), and the connection cap (the server stops accepting). Every
//! limit is set small by the test's config; nothing waits on the clock to pass.

use std::time::Duration;

use chinwag::config::Rate;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::binary::serve_with_file_limit;
use crate::helpers::{page, value};
use crate::helpers::{read, spawn_with, token, wait_for, TestApp, SERVICE_KEY};

/// A bucket of `burst` requests that refills too slowly to matter within a test.
fn tiny(burst: u32) -> Option<Rate> {
    Some(Rate {
        per_second: 0.01,
        burst,
    })
}

/// `POST /v1/chats` as `user`: the status, the `Retry-After` header and the body.
async fn chats(app: &TestApp, user: &str) -> (StatusCode, Option<u64>, Value) {
    let res = app
        .client
        .post(format!("{}/v1/chats", app.base))
        .bearer_auth(token(user))
        .send()
        .await
        .unwrap();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let (status, body) = read(res).await;
    (status, retry, body)
}

/// Asserts a `429 rate_limited` answer naming `limit`, with a Retry-After of whole seconds.
fn assert_limited((status, retry, body): (StatusCode, Option<u64>, Value), limit: &str) {
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["reason"], "rate_limited", "{body}");
    assert_eq!(body["error"]["code"], 429);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(limit), "{message}");
    // 1 request per 100 s: the next token is about 100 s away.
    let retry = retry.expect("a Retry-After header");
    assert!((90..=100).contains(&retry), "Retry-After {retry}");
}

/// `limit`'s sample of `chinwag_limited_total`.
async fn hits(app: &TestApp, limit: &str) -> f64 {
    let sample = format!("chinwag_limited_total{{limit=\"{limit}\"}}");
    value(&page(app).await, &sample).unwrap_or_else(|| panic!("no {sample}"))
}

#[tokio::test]
async fn a_user_past_their_rate_gets_429_and_streams_and_polls_count() {
    let app = spawn_with(|c| c.user_rate = tiny(3)).await;

    // Three requests of any kind empty alice's bucket: a poll and a stream count like a send.
    assert_eq!(chats(&app, "alice").await.0, 200);
    assert_eq!(app.poll("alice", "timeout=0").await.0, 200);
    let stream = app.events("alice", "", None).await;
    assert_eq!(stream.status, 200);
    assert_limited(chats(&app, "alice").await, "user_rate");
    let again = app.events("alice", "", None).await;
    assert_eq!(again.status, 429, "a reconnect counts too");
    assert_eq!(again.headers["retry-after"], "100");

    // Bob has a bucket of his own.
    assert_eq!(chats(&app, "bob").await.0, 200);
    assert_eq!(hits(&app, "user_rate").await, 2.0);
}

#[tokio::test]
async fn an_address_past_its_rate_gets_429_but_the_host_api_does_not() {
    let app = spawn_with(|c| c.ip_rate = tiny(3)).await;

    // One address, three users: the address's bucket is shared.
    for user in ["alice", "bob", "carol"] {
        assert_eq!(chats(&app, user).await.0, 200);
    }
    assert_limited(chats(&app, "dave").await, "ip_rate");
    let (status, body) = app.post_raw("/v1/chats", None, "").await;
    assert_eq!(
        (status.as_u16(), &body["error"]["reason"]),
        (429, &json!("rate_limited"))
    );

    // The host backend, with its service key, is not limited; a wrong key counts as usual.
    let host = |key: &'static str| {
        app.client
            .get(format!("{}/v1/server/chats/chats?user_id=alice", app.base))
            .bearer_auth(key)
            .send()
    };
    for _ in 0..5 {
        assert_eq!(host(SERVICE_KEY).await.unwrap().status(), 200);
    }
    assert_eq!(host("a guess").await.unwrap().status(), 429);
    assert_eq!(hits(&app, "ip_rate").await, 3.0);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_address_has_its_own_bucket() {
    let app = spawn_with(|c| {
        c.ip_rate = tiny(1);
        c.client_ip_header = Some("X-Real-IP".into());
    })
    .await;
    let from = |ip: &'static str| {
        app.client
            .post(format!("{}/v1/chats", app.base))
            .bearer_auth(token("alice"))
            .header("X-Real-IP", ip)
            .send()
    };
    assert_eq!(from("10.0.0.1").await.unwrap().status(), 200);
    assert_eq!(from("10.0.0.2").await.unwrap().status(), 200);
    assert_eq!(from("10.0.0.1").await.unwrap().status(), 429);
    // IPv6 clients count by their /64.
    assert_eq!(from("2001:db8::1").await.unwrap().status(), 200);
    assert_eq!(from("2001:db8::2").await.unwrap().status(), 429);
}

#[tokio::test]
async fn a_stream_past_the_cap_closes_the_users_oldest() {
    let app = spawn_with(|c| c.max_streams = 2).await;
    let chat = app.direct_chat("alice", "bob").await;
    let mut first = app.events("alice", "", None).await;
    first.next_of("chats").await;
    let mut second = app.events("alice", "", None).await;
    second.next_of("chats").await;
    // Bob's streams are his own.
    let mut bobs = app.events("bob", "", None).await;
    bobs.next_of("chats").await;

    let mut third = app.events("alice", "", None).await;
    third.next_of("chats").await;
    assert!(first.ended_within(5.0).await, "the oldest stream ends");
    assert!(first
        .control
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("more streams than the server allows")));
    let sent = app.send_text("bob", chat, "c1", "hi").await;
    for stream in [&mut second, &mut third, &mut bobs] {
        crate::helpers::until_message(stream, &sent["id"]).await;
    }

    // A held poll takes a place as well, and answers at once when newer ones push it out.
    let poll = {
        let (client, base, t) = (app.client.clone(), app.base.clone(), token("alice"));
        tokio::spawn(async move {
            let res = client
                .get(format!("{base}/v1/poll?timeout=60"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap();
            read(res).await
        })
    };
    let polls = app.app.metrics.open("poll");
    wait_for("the poll to be held", 5.0, || async {
        (polls.get() != 0).then_some(())
    })
    .await;
    let mut fourth = app.events("alice", "", None).await;
    fourth.next_of("chats").await;
    let mut fifth = app.events("alice", "", None).await;
    fifth.next_of("chats").await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the poll answers before its 60 s")
        .unwrap();
    assert_eq!(status, 200, "{body}");
    // Pushed out: first, second (by the poll), third, the poll.
    assert_eq!(hits(&app, "streams").await, 4.0);
}

/// Sends `head` (request line and headers, without the blank line) and `sent` bytes of body
/// on a new connection, then reads the whole answer (the server closes the connection).
async fn send_partly(app: &TestApp, head: &str, sent: &[u8]) -> String {
    let addr = app.base.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(format!("{head}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    conn.write_all(sent).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer))
        .await
        .expect("an answer, and the connection closed, within 10 s")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closes() {
    let app = spawn_with(|c| c.body_timeout = Duration::from_millis(200)).await;
    let t = token("alice");
    let cases = [
        ("POST /v1/chats", "application/json", &b"{\"data\":"[..]),
        (
            "POST /v1/files?name=a.txt",
            "text/plain",
            &b"some bytes"[..],
        ),
        (
            "POST /v1/files",
            "multipart/form-data; boundary=XyZ",
            &b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nab"[..],
        ),
    ];
    for (line, ctype, sent) in cases {
        let head = format!(
            "{line} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {t}\r\n\
             Content-Type: {ctype}\r\nContent-Length: 1000"
        );
        let answer = send_partly(&app, &head, sent).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{line}: {answer}");
        assert!(
            answer.to_lowercase().contains("connection: close"),
            "{answer}"
        );
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["reason"], "request_timeout", "{line}");
    }
    assert_eq!(hits(&app, "body_timeout").await, 3.0);
    // A body that does arrive is served as before.
    assert_eq!(chats(&app, "alice").await.0, 200);
}

/// Sends `GET /healthz` on `conn` (keep-alive) and waits for its answer's status line.
async fn healthz(conn: &mut TcpStream) -> String {
    status_line(conn, "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n").await
}

#[tokio::test]
async fn at_the_connection_cap_the_server_stops_accepting_until_one_closes() {
    let app = spawn_with(|c| c.max_connections = Some(2)).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut one = TcpStream::connect(&addr).await.unwrap();
    let mut two = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(healthz(&mut one).await, "HTTP/1.1 200 OK");
    assert_eq!(healthz(&mut two).await, "HTTP/1.1 200 OK");
    assert_eq!(app.app.metrics.tcp_connections.get(), 2);

    // The kernel completes the third connection, but the server does not take it yet.
    let mut three = TcpStream::connect(&addr).await.unwrap();
    three
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let early = tokio::time::timeout(Duration::from_millis(300), three.read(&mut buf)).await;
    assert!(early.is_err(), "answered past the cap: {early:?}");
    let text = app.app.metrics.encode();
    assert!(
        text.contains("chinwag_limited_total{limit=\"connections\"} 1"),
        "{text}"
    );

    // One closes: the third is taken and answered.
    drop(one);
    let n = tokio::time::timeout(Duration::from_secs(10), three.read(&mut buf))
        .await
        .expect("answered once a place is free")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert_eq!(healthz(&mut two).await, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn past_the_per_address_cap_a_connection_gets_429_and_closes_while_others_are_served() {
    // Arrange: two connections of one address open, the cap
    let app = spawn_with(|c| c.max_connections_per_ip = 2).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut one = TcpStream::connect(&addr).await.unwrap();
    let mut two = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(healthz(&mut one).await, "HTTP/1.1 200 OK");
    assert_eq!(healthz(&mut two).await, "HTTP/1.1 200 OK");

    // Act: a third from the same address
    let mut three = TcpStream::connect(&addr).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), three.read_to_end(&mut answer))
        .await
        .expect("the refused connection is closed")
        .unwrap();

    // Assert: a 429 in the envelope, then the end of the connection; the two still served
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{answer}"
    );
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], 429, "{body}");
    assert_eq!(body["error"]["reason"], "rate_limited", "{body}");
    // (Read in process: a /metrics request would be a third connection of the address.)
    let text = app.app.metrics.encode();
    assert!(
        text.contains("chinwag_limited_total{limit=\"connections_per_ip\"} 1"),
        "{text}"
    );
    assert_eq!(healthz(&mut two).await, "HTTP/1.1 200 OK");

    // One of the two closes: once the server has seen it go, the address is served again.
    drop(one);
    wait_for("the server to see the connection go", 5.0, || async {
        (app.app.metrics.tcp_connections.get() == 1).then_some(())
    })
    .await;
    assert_eq!(app.app.metrics.tcp_connections.get(), 1);
    let mut four = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(healthz(&mut four).await, "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn behind_a_trusted_proxy_connections_are_not_capped_by_address() {
    // Arrange: every connection comes from the proxy's address
    let app = spawn_with(|c| {
        c.max_connections_per_ip = 1;
        c.client_ip_header = Some("X-Real-IP".into());
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();

    // Act
    let mut one = TcpStream::connect(&addr).await.unwrap();
    let mut two = TcpStream::connect(&addr).await.unwrap();

    // Assert
    assert_eq!(healthz(&mut one).await, "HTTP/1.1 200 OK");
    assert_eq!(healthz(&mut two).await, "HTTP/1.1 200 OK");
}

/// Sends `request` (raw HTTP/1.1) on `conn` and waits for its answer's status line.
async fn status_line(conn: &mut TcpStream, request: &str) -> String {
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 8192];
    let n = conn.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn under_a_small_open_file_limit_the_default_cap_keeps_files_for_the_database() {
    // Arrange: 256 files, so the default cap is 128 connections
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--rate-per-ip",
        "0",
        "--rate-per-user",
        "0",
    ];
    let (mut child, base, log) = serve_with_file_limit(dir.path(), &args, 256);
    let bob = crate::helpers::binary::token(dir.path(), &["--user", "bob"]);
    let addr = base.trim_start_matches("http://").to_string();
    let mut open = Vec::new();
    for _ in 0..128 {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        assert_eq!(healthz(&mut c).await, "HTTP/1.1 200 OK");
        open.push(c);
    }
    assert!(
        log.lock()
            .unwrap()
            .contains("accepting at most 128 connections at once"),
        "{}",
        log.lock().unwrap()
    );

    // Act: one more connection than the cap, while the database opens what it needs
    let mut waiting = TcpStream::connect(&addr).await.unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let body = r#"{"data": {"userIds": ["ann", "cy", "dee"], "name": "Team"}}"#;
    let create = format!(
        "POST /v1/createChat HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {bob}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut reads = Vec::new();
    for c in open.iter_mut().take(8) {
        reads.push(status_line(c, &create).await);
    }

    // Assert: every write is served at the cap; the extra connection waits until one closes
    assert!(reads.iter().all(|s| s == "HTTP/1.1 200 OK"), "{reads:?}");
    let mut buf = vec![0u8; 4096];
    let early = tokio::time::timeout(Duration::from_millis(300), waiting.read(&mut buf)).await;
    assert!(early.is_err(), "answered past the cap: {early:?}");
    drop(open.pop());
    let n = tokio::time::timeout(Duration::from_secs(10), waiting.read(&mut buf))
        .await
        .expect("answered once a place is free")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    drop(open);
    crate::helpers::binary::terminate(&mut child);
}

#[tokio::test]
async fn out_of_open_files_the_server_pauses_accepting_and_serves_again_once_they_are_free() {
    // Arrange: 128 files, and a connection cap set above what they allow
    let dir = tempfile::tempdir().unwrap();
    let args = ["--listen", "127.0.0.1:0", "--max-connections", "1000"];
    let (mut child, base, log) = serve_with_file_limit(dir.path(), &args, 128);
    let addr = base.trim_start_matches("http://").to_string();

    // Act: more connections than the server has descriptors
    let mut open = Vec::new();
    for _ in 0..160 {
        open.push(TcpStream::connect(&addr).await.unwrap());
    }
    wait_for("a failed accept in the log", 10.0, || async {
        let log = log.lock().unwrap();
        let failed =
            log.contains("accept failed: Too many open files (os error 24); trying again in");
        failed.then_some(())
    })
    .await;
    drop(open);

    // Assert: it is still running, and serves again once the descriptors are free
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(10), healthz(&mut conn)).await;
    assert_eq!(answered.expect("served again").as_str(), "HTTP/1.1 200 OK");
    assert!(child.try_wait().unwrap().is_none(), "the server exited");
    wait_for("accepting again in the log", 10.0, || async {
        let log = log.lock().unwrap();
        log.contains("accepting connections again").then_some(())
    })
    .await;
    crate::helpers::binary::terminate(&mut child);
}
