//! Membership: a chat of others looks like a missing one, and a batch with one foreign chat
//! stores nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::assert_error;
use crate::helpers::spawn_app;

/// One request about `chat` (and message `message`) for each endpoint that checks membership.
fn chat_requests(chat: i64, message: i64, client_id: &str) -> Vec<(&'static str, Value)> {
    vec![
        (
            "message",
            json!({"messages": [{"clientMessageId": client_id, "chatId": chat, "text": "hi"}]}),
        ),
        ("history", json!({"chatId": chat})),
        ("chat", json!({"chatId": chat})),
        ("typing", json!({"chatId": chat, "status": "typing"})),
        ("opponentStatus", json!({"chatId": chat})),
        (
            "messageStatus",
            json!({"status": "read", "chatId": chat, "messageId": message}),
        ),
    ]
}

#[tokio::test]
async fn a_chat_of_others_is_indistinguishable_from_a_missing_one() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let message = app.send_text("alice", chat, "a1", "hello").await["id"]
        .as_i64()
        .unwrap();
    let missing = chat + 1_000_000;
    let others = chat_requests(chat, message, "m-others");
    let absent = chat_requests(missing, message, "m-absent");

    for ((kind, data_others), (_, data_absent)) in others.into_iter().zip(absent) {
        // Act
        let (status_others, body_others) = app.post("mallory", kind, data_others).await;
        let (status_absent, body_absent) = app.post("mallory", kind, data_absent).await;

        // Assert
        assert_error(
            status_others,
            &body_others,
            404,
            "chat_not_found",
            &[&chat.to_string()],
        );
        assert_error(
            status_absent,
            &body_absent,
            404,
            "chat_not_found",
            &[&missing.to_string()],
        );
        let others_text = body_others.to_string().replace(&chat.to_string(), "<id>");
        let absent_text = body_absent
            .to_string()
            .replace(&missing.to_string(), "<id>");
        assert_eq!(others_text, absent_text, "{kind}");
    }
}

#[tokio::test]
async fn message_status_for_a_message_of_another_chat_is_message_not_found() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    app.send_text("bob", chat, "b1", "in this chat").await;
    let elsewhere = app.direct_chat("alice", "carol").await;
    let foreign = app
        .send_text("carol", elsewhere, "c1", "in another chat")
        .await["id"]
        .as_i64()
        .unwrap();
    let cases = [
        ("a message of another chat", foreign),
        ("no message at all", foreign + 1_000_000),
    ];

    for (name, message) in cases {
        // Act
        let (status, body) = app
            .post(
                "alice",
                "messageStatus",
                json!({"status": "read", "chatId": chat, "messageId": message}),
            )
            .await;

        // Assert
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}: {body}");
        assert_error(
            status,
            &body,
            404,
            "message_not_found",
            &[&message.to_string()],
        );
    }
}

#[tokio::test]
async fn a_batch_with_one_foreign_chat_stores_and_pushes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let foreign = app.direct_chat("bob", "carol").await;
    let before = app.cursor("alice").await;
    let batch = json!({"messages": [
        {"clientMessageId": "ok-1", "chatId": chat, "text": "first"},
        {"clientMessageId": "bad-1", "chatId": foreign, "text": "not my chat"},
        {"clientMessageId": "ok-2", "chatId": chat, "text": "third"},
    ]});

    // Act
    let (status, body) = app.post("alice", "message", batch).await;

    // Assert
    assert_error(
        status,
        &body,
        404,
        "chat_not_found",
        &[&foreign.to_string()],
    );
    let history = app.ok("bob", "history", json!({"chatId": chat})).await;
    assert_eq!(
        history["messages"],
        json!([]),
        "nothing from the batch is stored"
    );
    for user in ["alice", "bob", "carol"] {
        let (status, polled) = app.poll(user, &format!("since={before}&timeout=0")).await;
        assert_eq!(status, StatusCode::OK, "{polled}");
        let events = polled["events"].as_array().unwrap();
        assert!(
            events.iter().all(|e| e["type"] != "message"),
            "{user} was pushed a message: {polled}"
        );
    }
}
