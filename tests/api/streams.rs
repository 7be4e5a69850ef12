//! The receiving side: SSE framing and headers, resume without gap or duplicate, long-poll,
//! retention resets, and streams ending at shutdown.

use std::time::Duration;

use serde_json::json;
use tokio_stream::StreamExt;

use crate::helpers::{spawn_app, spawn_with, Sse, TestApp};

#[tokio::test]
async fn sse_sends_the_protocol_headers_retry_and_pings() {
    let app = spawn_app().await;
    let mut s = app.events("bob", "", None).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.headers["content-type"], "text/event-stream");
    assert_eq!(s.headers["cache-control"], "no-cache");
    assert_eq!(s.headers["x-accel-buffering"], "no");
    assert_eq!(s.next().await.event, "chats");

    // The test server pings every 200 ms.
    crate::helpers::wait_for("two pings", 5.0, || async {
        let control = s.control.lock().unwrap();
        (control.iter().filter(|l| *l == ": ping").count() >= 2).then_some(())
    })
    .await;
    let control = s.control.lock().unwrap().clone();
    assert_eq!(control.first().map(String::as_str), Some("retry: 3000"));
    assert!(
        control.iter().filter(|l| *l == ": ping").count() >= 2,
        "{control:?}"
    );
}

#[tokio::test]
async fn a_stream_from_now_names_its_start_so_an_early_reconnect_resumes() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    app.send_text("alice", chat, "1", "before").await;
    let start = app.cursor("bob").await;
    // The first block: the reconnect delay and the cursor the stream starts at, no data.
    let res = app
        .client
        .get(format!("{}/v1/events?snapshot=0", app.base))
        .bearer_auth(crate::helpers::token("bob"))
        .send()
        .await
        .unwrap();
    let first = res.bytes_stream().next().await.unwrap().unwrap();
    let first = String::from_utf8_lossy(&first).to_string();
    assert_eq!(first, format!("retry: 3000\nid: {start}\n\n"));
    // Gone before any event; what came meanwhile is replayed from that id, nothing earlier.
    app.send_text("alice", chat, "2", "meanwhile").await;
    let mut again = app.events("bob", "snapshot=0", Some(start)).await;
    let got = again.next().await;
    assert_eq!(
        (got.event.as_str(), &got.data()["text"]),
        ("message", &json!("meanwhile"))
    );
    // A stream that resumes has its cursor already: its first block is the delay alone.
    let control = again.control.lock().unwrap().clone();
    assert_eq!(control.first().map(String::as_str), Some("retry: 3000"));
}

#[tokio::test]
async fn snapshot_can_be_left_out() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let mut s = app.events("bob", "snapshot=0", None).await;
    app.send_text("alice", chat, "1", "x").await;
    assert_eq!(s.next().await.event, "message");
}

/// Reads `n` message events, returning their ids and texts.
async fn read_messages(s: &mut Sse, n: usize) -> Vec<(i64, String)> {
    s.collect_of("message", n, 10.0)
        .await
        .into_iter()
        .map(|e| {
            (
                e.id.unwrap(),
                e.data()["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn resume_by_last_event_id_replays_what_was_missed() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let mut bob = app.events("bob", "snapshot=0", None).await;
    app.send_text("alice", chat, "0", "seen").await;
    let (last, _) = read_messages(&mut bob, 1).await[0].clone();
    bob.close();

    for i in 1..=5 {
        app.send_text("alice", chat, &i.to_string(), &format!("missed {i}"))
            .await;
    }
    let mut bob = app.events("bob", "snapshot=0", Some(last)).await;

    let got = read_messages(&mut bob, 5).await;
    let texts: Vec<_> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        ["missed 1", "missed 2", "missed 3", "missed 4", "missed 5"]
    );
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    app.send_text("alice", chat, "6", "live").await;
    assert_eq!(read_messages(&mut bob, 1).await[0].1, "live");
    assert!(bob.next_within(0.3).await.is_none(), "a duplicate arrived");
}

#[tokio::test]
async fn since_query_resumes_like_last_event_id() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let first = app.poll("bob", "since=0&timeout=0").await.1["next"]
        .as_i64()
        .unwrap();
    app.send_text("alice", chat, "a", "after cursor").await;
    let mut bob = app
        .events("bob", &format!("snapshot=0&since={first}"), None)
        .await;
    assert_eq!(read_messages(&mut bob, 1).await[0].1, "after cursor");
}

/// A sender keeps sending while the listener disconnects and resumes several times: every
/// message arrives exactly once, in order.
#[tokio::test]
async fn resume_during_concurrent_sends_has_no_gap_and_no_duplicate() {
    let app = std::sync::Arc::new(spawn_app().await);
    let chat = app.direct_chat("alice", "bob").await;
    const TOTAL: usize = 300;
    let sender = {
        let app = app.clone();
        tokio::spawn(async move {
            for i in 0..TOTAL {
                app.send_text("alice", chat, &format!("k{i}"), &i.to_string())
                    .await;
                if i % 20 == 0 {
                    // Paces the sends, so that they overlap the reconnects.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };

    let mut received: Vec<(i64, String)> = Vec::new();
    let mut cursor: Option<i64> = None;
    let mut rounds = 0;
    while received.len() < TOTAL && rounds < 50 {
        rounds += 1;
        let query = match cursor {
            None => "snapshot=0&since=0".to_string(),
            Some(_) => "snapshot=0".to_string(),
        };
        let mut s = app.events("bob", &query, cursor).await;
        // Read a few, then drop the connection mid-stream.
        let want = (TOTAL - received.len()).min(37);
        let got = read_messages(&mut s, want).await;
        s.close();
        if let Some((id, _)) = got.last() {
            cursor = Some(*id);
        }
        received.extend(got);
    }
    sender.await.unwrap();

    let texts: Vec<String> = received.iter().map(|(_, t)| t.clone()).collect();
    let expected: Vec<String> = (0..TOTAL).map(|i| i.to_string()).collect();
    assert_eq!(texts, expected);
}

#[tokio::test]
async fn a_stream_that_falls_behind_catches_up_from_the_store() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let mut bob = app.events("bob", "snapshot=0", None).await;
    // Three batches of 100 arrive faster than the per-user channel holds.
    for b in 0..3 {
        let batch: Vec<_> = (0..100)
            .map(|i| json!({"clientMessageId": format!("{b}-{i}"), "chatId": chat, "text": format!("{}", b * 100 + i)}))
            .collect();
        app.ok("alice", "message", json!({"messages": batch})).await;
    }
    let got = read_messages(&mut bob, 300).await;
    let texts: Vec<String> = got.iter().map(|(_, t)| t.clone()).collect();
    let expected: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    assert_eq!(texts, expected);
    assert!(bob.next_within(0.3).await.is_none());
}

#[tokio::test]
async fn a_held_poll_is_woken_by_a_message() {
    let app = std::sync::Arc::new(spawn_app().await);
    let chat = app.direct_chat("alice", "bob").await;
    let head = app.poll("bob", "since=0&timeout=0").await.1["next"]
        .as_i64()
        .unwrap();
    let poller = {
        let app = app.clone();
        tokio::spawn(async move { app.poll("bob", &format!("since={head}&timeout=30")).await })
    };
    // Lets the poll reach its wait: nothing outside the server shows that it has (the open-poll
    // gauge counts it before it reads what is stored), and the message must wake it, not be read.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let sent = app.send_text("alice", chat, "w", "wake up").await;

    let (status, body) = tokio::time::timeout(Duration::from_secs(20), poller)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "message");
    assert_eq!(events[0]["data"]["id"], sent["id"]);
    assert_eq!(body["next"], events[0]["id"]);
}

#[tokio::test]
async fn poll_answers_at_once_when_events_are_stored_and_chains_by_next() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    app.send_text("alice", chat, "1", "one").await;

    let (_, first) = app.poll("bob", "since=0&timeout=30").await;
    let types: Vec<_> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(types, [json!("chat"), json!("message")]);
    let next = first["next"].as_i64().unwrap();

    let (_, empty) = app.poll("bob", &format!("since={next}&timeout=0")).await;
    assert_eq!(empty["events"], json!([]));
    assert_eq!(empty["next"], next);
    app.send_text("alice", chat, "2", "two").await;
    let (_, second) = app.poll("bob", &format!("since={next}&timeout=0")).await;
    assert_eq!(second["events"][0]["data"]["text"], "two");
}

#[tokio::test]
async fn poll_without_since_starts_from_now() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    app.send_text("alice", chat, "1", "old").await;
    let (status, body) = app.poll("bob", "timeout=1").await;
    assert_eq!(status, 200);
    assert_eq!(body["events"], json!([]));
    assert!(body["next"].as_i64().unwrap() >= 2);
}

async fn pruned_app() -> (TestApp, i64) {
    let app = spawn_with(|c| c.retention = Duration::from_millis(1)).await;
    let chat = app.direct_chat("alice", "bob").await;
    app.send_text("alice", chat, "1", "old").await;
    let first = app.poll("bob", "since=0&timeout=0").await.1["events"][0]["id"]
        .as_i64()
        .unwrap();
    // Past the retention of 1 ms on purpose.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let pruned = chinwag::janitor::prune_once(&app.app.janitor())
        .await
        .unwrap();
    // The new chat's event and the message's, each stored once for the chat.
    assert!(pruned >= 2, "pruned {pruned}");
    (app, first)
}

#[tokio::test]
async fn a_cursor_older_than_retention_gets_reset() {
    let (app, old_cursor) = pruned_app().await;

    let mut s = app.events("bob", "snapshot=0", Some(old_cursor)).await;
    let reset = s.next().await;
    assert_eq!(reset.event, "reset");
    let head = reset.id.expect("reset moves the cursor");

    let (_, polled) = app
        .poll("bob", &format!("since={old_cursor}&timeout=0"))
        .await;
    assert_eq!(polled["events"][0]["type"], "reset");
    assert_eq!(polled["next"], head);

    // From the reset's id on, the stream is live.
    let chat = app.ok("bob", "chats", json!({})).await["chats"][0]["id"]
        .as_i64()
        .unwrap();
    app.send_text("alice", chat, "2", "new").await;
    assert_eq!(s.next_of("message").await.data()["text"], "new");
    let (_, polled) = app.poll("bob", &format!("since={head}&timeout=0")).await;
    assert_eq!(polled["events"][0]["data"]["text"], "new");
}

#[tokio::test]
async fn a_cursor_from_the_future_gets_reset() {
    let app = spawn_app().await;
    let mut s = app.events("bob", "snapshot=0", Some(1_000_000)).await;
    assert_eq!(s.next().await.event, "reset");
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_polls() {
    let mut app = spawn_app().await;
    let mut s = app.events("bob", "snapshot=0", None).await;
    let client = app.client.clone();
    let url = format!(
        "{}/v1/poll?timeout=60&token={}",
        app.base,
        crate::helpers::token("bob")
    );
    let poll = tokio::spawn(async move { client.get(url).send().await.unwrap().status() });
    crate::helpers::wait_for("the poll to be open", 5.0, || async {
        (app.app.metrics.open("poll").get() == 1).then_some(())
    })
    .await;

    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("stopped in time");

    assert!(s.ended_within(2.0).await);
    assert_eq!(poll.await.unwrap(), 200);
}
