//! Validation: invalid messages and batches, history limits, chats with only yourself, poll
//! parameters.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::assert_error;
use crate::helpers::spawn_app;

#[tokio::test]
async fn invalid_message_requests_are_refused() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let one = |i: usize| json!({"clientMessageId": format!("c{i}"), "chatId": chat, "text": "hi"});
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "an empty batch",
            json!({"messages": []}),
            &["data.messages", "0"],
        ),
        (
            "a batch of 101",
            json!({"messages": (0..101).map(one).collect::<Vec<_>>()}),
            &["data.messages", "101"],
        ),
        (
            "empty text",
            json!({"messages": [{"clientMessageId": "t1", "chatId": chat, "text": ""}]}),
            &["data.messages[0].text"],
        ),
        (
            "no text",
            json!({"messages": [{"clientMessageId": "t2", "chatId": chat}]}),
            &["data.messages[0].text"],
        ),
        (
            "empty clientMessageId",
            json!({"messages": [{"clientMessageId": "", "chatId": chat, "text": "hi"}]}),
            &["data.messages[0].clientMessageId"],
        ),
        (
            "a bad second message",
            json!({"messages": [one(1), {"clientMessageId": "", "chatId": chat, "text": "hi"}]}),
            &["data.messages[1].clientMessageId"],
        ),
    ];

    for (name, data, mentions) in cases {
        // Act
        let (status, body) = app.post("alice", "message", data).await;

        // Assert
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_error(status, &body, 400, "bad_request", mentions);
    }
    let history = app.ok("alice", "history", json!({"chatId": chat})).await;
    assert_eq!(
        history["messages"],
        json!([]),
        "nothing from a refused batch is stored"
    );
}

#[tokio::test]
async fn history_limits_out_of_range_are_refused() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;

    for limit in [0, 201] {
        // Act
        let (status, body) = app
            .post("alice", "history", json!({"chatId": chat, "limit": limit}))
            .await;

        // Assert
        assert_eq!(status, StatusCode::BAD_REQUEST, "limit {limit}: {body}");
        assert_error(
            status,
            &body,
            400,
            "bad_request",
            &["data.limit", &limit.to_string()],
        );
    }
}

#[tokio::test]
async fn a_chat_with_only_yourself_is_refused() {
    // Arrange
    let app = spawn_app().await;
    let cases = [
        ("nobody", json!({"userIds": []})),
        ("only yourself", json!({"userIds": ["alice", "alice"]})),
    ];

    for (name, data) in cases {
        // Act
        let (status, body) = app.post("alice", "createChat", data).await;

        // Assert
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_error(status, &body, 400, "bad_request", &["data.userIds"]);
    }
}

#[tokio::test]
async fn invalid_poll_parameters_are_refused() {
    // Arrange
    let app = spawn_app().await;
    let cases: Vec<(&str, &[&str])> = vec![
        ("timeout=61", &["timeout", "61"]),
        ("timeout=-1", &["timeout"]),
        ("timeout=soon", &["timeout", "soon"]),
        ("since=abc", &["since", "abc"]),
        ("since=-5", &["-5"]),
    ];

    for (query, mentions) in cases {
        // Act
        let (status, body) = app.poll("alice", query).await;

        // Assert
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_error(status, &body, 400, "bad_request", mentions);
    }
}

#[tokio::test]
async fn a_batch_that_repeats_a_client_message_id_is_refused_whole() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;

    // Act
    let (status, body) = app
        .post(
            "alice",
            "message",
            json!({"messages": [
                {"clientMessageId": "z9", "chatId": chat, "text": "a"},
                {"clientMessageId": "z9", "chatId": chat, "text": "b"}
            ]}),
        )
        .await;

    // Assert
    assert_error(
        status,
        &body,
        400,
        "bad_request",
        &["data.messages[1].clientMessageId", "data.messages[0]"],
    );
    let history = app.ok("alice", "history", json!({"chatId": chat})).await;
    assert_eq!(history["messages"], json!([]), "nothing was stored");
}
