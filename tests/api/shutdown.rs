//! SIGTERM under load, through the real binary: every request the server took gets a
//! well-formed answer (2xx, or `503 unavailable` with Retry-After, its connection closed), none
//! is reset, and every message answered 2xx is in the history after a restart.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::helpers::binary::{post, serve, terminate, token};

/// How one request ended.
#[derive(Debug)]
enum Outcome {
    /// 2xx: the message's id.
    Sent(i64),
    /// 503 with the envelope and Retry-After.
    Refused,
    /// The server was gone before the connection was made (not a request it took).
    NotConnected,
}

/// One client sending messages until the server refuses or is gone; a reset or a malformed
/// answer fails the test.
async fn sender(
    client: reqwest::Client,
    addr: String,
    token: String,
    chat: i64,
    worker: usize,
    sent: Arc<AtomicUsize>,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    for i in 0.. {
        let body = json!({"data": {"messages": [
            {"clientMessageId": format!("w{worker}-{i}"), "chatId": chat, "text": "hi"}
        ]}});
        let res = client
            .post(format!("{addr}/v1/message"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await;
        let res = match res {
            Ok(res) => res,
            Err(e) if e.is_connect() => {
                out.push(Outcome::NotConnected);
                return out;
            }
            Err(e) => panic!("request {worker}-{i} got no answer: {e:?}"),
        };
        let status = res.status().as_u16();
        let closes = res
            .headers()
            .get("connection")
            .is_some_and(|v| v == "close");
        let retry = res.headers().get("retry-after").cloned();
        let body: Value = res
            .json()
            .await
            .unwrap_or_else(|e| panic!("request {worker}-{i}: an incomplete answer: {e:?}"));
        match status {
            200 => {
                out.push(Outcome::Sent(
                    body["data"]["messages"][0]["id"].as_i64().unwrap(),
                ));
                sent.fetch_add(1, Ordering::Relaxed);
            }
            503 => {
                assert_eq!(body["error"]["reason"], "unavailable", "{body}");
                assert_eq!(body["error"]["code"], 503);
                assert!(retry.is_some(), "503 without Retry-After");
                assert!(closes, "503 without Connection: close");
                out.push(Outcome::Refused);
                return out;
            }
            other => panic!("request {worker}-{i}: {other} {body}"),
        }
    }
    unreachable!()
}

/// Every message id in `chat`, read page by page as `token`'s user.
async fn history_ids(addr: &str, token: &str, chat: i64) -> BTreeSet<i64> {
    let mut ids = BTreeSet::new();
    let mut after = 0;
    loop {
        let query = json!({"chatId": chat, "after": after, "limit": 200});
        let (status, page) = post(addr, token, "history", query).await;
        assert_eq!(status, 200, "{page}");
        let messages = page["data"]["messages"].as_array().expect("a page").clone();
        for m in &messages {
            after = m["id"].as_i64().unwrap();
            ids.insert(after);
        }
        if page["data"]["hasMore"] != true || messages.is_empty() {
            return ids;
        }
    }
}

#[tokio::test]
async fn sigterm_under_load_answers_every_request_it_took_and_keeps_every_2xx() {
    let cwd = tempfile::tempdir().unwrap();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--rate-per-user",
        "0",
        "--rate-per-ip",
        "0",
    ];
    let (mut child, addr) = serve(cwd.path(), &args, &[]);
    let alice = token(cwd.path(), &["--user", "alice"]);
    let (status, created) = post(&addr, &alice, "createChat", json!({"userIds": ["bob"]})).await;
    assert_eq!(status, 200, "{created}");
    let chat = created["data"]["chat"]["id"].as_i64().unwrap();

    // Half the senders keep their connection alive between requests, half open one each time.
    let sent = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..24)
        .map(|w| {
            let client = if w % 2 == 0 {
                reqwest::Client::new()
            } else {
                crate::helpers::http_client()
            };
            let run = sender(client, addr.clone(), alice.clone(), chat, w, sent.clone());
            tokio::spawn(run)
        })
        .collect();
    crate::helpers::wait_for("300 messages sent", 30.0, || async {
        (sent.load(Ordering::Relaxed) >= 300).then_some(())
    })
    .await;
    let status = tokio::task::spawn_blocking(move || terminate(&mut child))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");

    let mut answered = BTreeSet::new();
    let mut refused = 0;
    for w in workers {
        for outcome in w.await.expect("every request answered") {
            match outcome {
                Outcome::Sent(id) => assert!(answered.insert(id)),
                Outcome::Refused => refused += 1,
                Outcome::NotConnected => {}
            }
        }
    }
    assert!(answered.len() >= 300);
    assert!(
        refused > 0,
        "no sender was still sending when the server drained"
    );

    // Every 2xx survived the restart.
    let (mut child, addr) = serve(cwd.path(), &args, &[]);
    let stored = history_ids(&addr, &alice, chat).await;
    let lost: Vec<_> = answered.difference(&stored).collect();
    assert!(lost.is_empty(), "answered 2xx but not stored: {lost:?}");
    assert!(terminate(&mut child).success());
}
