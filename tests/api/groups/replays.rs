//! Message events replayed by poll and SSE show the message as it now is: edited or deleted.

use serde_json::{json, Value};

use crate::helpers::{polled, spawn_app, TestApp};

/// The `message` events for message `id` that `user` gets replayed from the start, by poll and
/// by SSE (`n` expected).
async fn replayed(app: &TestApp, user: &str, id: &Value, n: usize) -> (Vec<Value>, Vec<Value>) {
    let by_poll: Vec<Value> = polled(app, user, 0)
        .await
        .into_iter()
        .filter(|e| e["type"] == "message" && e["data"]["id"] == *id)
        .map(|e| e["data"].clone())
        .collect();
    let mut sse = app.events(user, "snapshot=0&since=0", None).await;
    let by_sse: Vec<Value> = sse
        .collect_of("message", n, 5.0)
        .await
        .into_iter()
        .map(|e| e.data().clone())
        .filter(|m| m["id"] == *id)
        .collect();
    (by_poll, by_sse)
}

#[tokio::test]
async fn a_message_event_replayed_after_an_edit_shows_the_edited_text() {
    // Arrange: a message sent, then edited twice
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let sent = app.send_text("alice", chat, "m1", "first draft").await;
    app.ok(
        "alice",
        "editMessage",
        json!({"messageId": sent["id"], "text": "second draft"}),
    )
    .await;
    app.ok(
        "alice",
        "editMessage",
        json!({"messageId": sent["id"], "text": "final", "params": {"v": "3"}}),
    )
    .await;

    // Act
    let (by_poll, by_sse) = replayed(&app, "bob", &sent["id"], 3).await;

    // Assert: one event per change, each with the current content
    for (how, events) in [("poll", by_poll), ("SSE", by_sse)] {
        assert_eq!(events.len(), 3, "{how}: {events:?}");
        for m in &events {
            assert_eq!(m["text"], "final", "{how}: {m}");
            assert_eq!(m["params"], json!({"v": "3"}), "{how}: {m}");
            assert!(m["editDate"].is_string(), "{how}: {m}");
            assert_eq!(m["deleted"], false, "{how}: {m}");
        }
    }
}

#[tokio::test]
async fn a_message_event_replayed_after_a_deletion_shows_the_message_deleted() {
    // Arrange: a message sent, edited, then deleted
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let sent = app
        .ok(
            "alice",
            "message",
            json!({"messages": [{"clientMessageId": "m1", "chatId": team, "text": "secret",
                                 "params": {"k": "v"}}]}),
        )
        .await["messages"][0]
        .clone();
    app.ok(
        "alice",
        "editMessage",
        json!({"messageId": sent["id"], "text": "still secret"}),
    )
    .await;
    let (status, body) = app
        .post("alice", "deleteMessage", json!({"messageId": sent["id"]}))
        .await;
    assert_eq!(status, 204, "{body}");

    // Act
    let (by_poll, by_sse) = replayed(&app, "bob", &sent["id"], 3).await;

    // Assert: no event still carries the content
    for (how, events) in [("poll", by_poll), ("SSE", by_sse)] {
        assert_eq!(events.len(), 3, "{how}: {events:?}");
        for m in &events {
            assert_eq!(m["deleted"], true, "{how}: {m}");
            assert_eq!(m["text"], "", "{how}: {m}");
            assert_eq!(m["params"], json!({}), "{how}: {m}");
            assert_eq!(m["file"], Value::Null, "{how}: {m}");
        }
    }
}
