//! Bodies that do not decode: bad JSON, missing, mistyped or unknown fields, fields outside
//! `data`, each named by its path.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::assert_error;
use crate::helpers::{spawn_app, token, SERVICE_KEY};

#[tokio::test]
async fn undecodable_bodies_are_bad_requests_that_name_the_problem() {
    // Arrange
    let app = spawn_app().await;
    let t = token("alice");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated JSON",
            br#"{"type":"chats","data":"#.to_vec(),
            "JSON",
        ),
        ("not JSON at all", b"hello".to_vec(), "JSON"),
        (
            "invalid UTF-8",
            b"{\"type\":\"chats\",\"data\":{\"x\":\"\xff\xfe\"}}".to_vec(),
            "UTF-8",
        ),
        ("an array", b"[1,2]".to_vec(), "object"),
        ("a string", br#""chats""#.to_vec(), "object"),
        (
            "type is a number",
            br#"{"type":5,"data":{}}"#.to_vec(),
            "type",
        ),
        (
            "type is an object",
            br#"{"type":{"name":"chats"},"data":{}}"#.to_vec(),
            "type",
        ),
    ];

    for (name, request, mention) in cases {
        // Act
        let (status, body) = app.post_raw("/v1/chats", Some(&t), request).await;

        // Assert
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_error(status, &body, 400, "bad_request", &[mention]);
    }
}

#[tokio::test]
async fn missing_or_mistyped_fields_name_the_field_path() {
    // Arrange
    let app = spawn_app().await;
    let cases: Vec<(&str, Value, &[&str])> = vec![
        ("message", json!({}), &["data.messages is required"]),
        ("message", json!({"messages": "hi"}), &["data.messages"]),
        (
            "message",
            json!({"messages": [{"clientMessageId": "c1", "chatId": "one", "text": "hi"}]}),
            &["data.messages[0].chatId"],
        ),
        (
            "message",
            json!({"messages": [
                {"clientMessageId": "c1", "chatId": 1, "text": "hi"},
                {"clientMessageId": 2, "chatId": 1, "text": "hi"}
            ]}),
            &["data.messages[1].clientMessageId"],
        ),
        (
            "message",
            json!({"messages": [{"clientMessageId": "c1", "text": "hi"}]}),
            &["data.messages[0].chatId is required"],
        ),
        (
            "messageStatus",
            json!({"status": "seen", "chatId": 1, "messageId": 1}),
            &["data.status"],
        ),
        (
            "messageStatus",
            json!({"status": "read", "chatId": -1, "messageId": 1}),
            &["data.chatId"],
        ),
        (
            "messageStatus",
            json!({"status": "read", "chatId": 1}),
            &["data.messageId is required"],
        ),
        (
            "typing",
            json!({"status": "typing"}),
            &["data.chatId is required"],
        ),
        (
            "typing",
            json!({"chatId": "1", "status": "typing"}),
            &["data.chatId"],
        ),
        (
            "typing",
            json!({"chatId": 1, "status": "dancing"}),
            &["data.status"],
        ),
        ("history", json!({}), &["data.chatId is required"]),
        ("history", json!({"chatId": true}), &["data.chatId"]),
        (
            "history",
            json!({"chatId": 1, "limit": "ten"}),
            &["data.limit"],
        ),
        ("createChat", json!({}), &["data.userIds is required"]),
        ("createChat", json!({"userIds": "bob"}), &["data.userIds"]),
        (
            "createChat",
            json!({"userIds": ["bob", "not valid"]}),
            &["data.userIds[1]"],
        ),
        (
            "createChat",
            json!({"userIds": ["bob"], "name": 5}),
            &["data.name"],
        ),
    ];

    for (kind, data, mentions) in cases {
        // Act
        let (status, body) = app.post("alice", kind, data.clone()).await;

        // Assert
        assert_eq!(status, StatusCode::BAD_REQUEST, "{kind} {data}: {body}");
        assert_error(status, &body, 400, "bad_request", mentions);
    }
}

#[tokio::test]
async fn a_body_type_that_differs_from_the_path_is_a_type_mismatch() {
    // Arrange
    let app = spawn_app().await;
    let t = token("alice");
    let request = json!({"type": "typing", "data": {"chatId": 1, "status": "typing"}}).to_string();

    // Act
    let (status, body) = app.post_raw("/v1/message", Some(&t), request).await;

    // Assert
    assert_error(status, &body, 400, "type_mismatch", &["typing", "message"]);
}

#[tokio::test]
async fn a_missing_field_next_to_an_unknown_one_names_both() {
    // Arrange
    let app = spawn_app().await;

    // Act: a typo in the field's name, in a client request and in a host request
    let (status, body) = app.post("alice", "history", json!({"chatID": 1})).await;
    let host = app
        .client
        .post(format!("{}/v1/server/chats/message", app.base))
        .bearer_auth(SERVICE_KEY)
        .json(&json!({"chatId": 1, "message": "hi"}))
        .send()
        .await
        .unwrap();
    let (host_status, host_body) = crate::helpers::read(host).await;

    // Assert
    assert_error(
        status,
        &body,
        400,
        "bad_request",
        &[
            "data.chatId is required",
            "data.chatID is not a known field",
        ],
    );
    assert_error(
        host_status,
        &host_body,
        400,
        "bad_request",
        &[
            "body.chat_id is required",
            "body.chatId is not a known field",
        ],
    );
}

#[tokio::test]
async fn fields_outside_data_and_data_that_is_no_object_are_named() {
    // Arrange
    let app = spawn_app().await;
    let post_raw = |body: &'static str| {
        let app = &app;
        async move {
            app.post_raw("/v1/history", Some(&token("alice")), body)
                .await
        }
    };

    // Act
    let (outside, outside_body) = post_raw(r#"{"type": "history", "chatId": 1}"#).await;
    let (array, array_body) = post_raw(r#"{"data": []}"#).await;
    let (number, number_body) = post_raw(r#"{"data": {"chatId": "1"}}"#).await;

    // Assert
    assert_error(
        outside,
        &outside_body,
        400,
        "bad_request",
        &["data.chatId is required", "chatId outside \"data\""],
    );
    assert_error(
        array,
        &array_body,
        400,
        "bad_request",
        &["data must be a JSON object"],
    );
    assert_error(
        number,
        &number_body,
        400,
        "bad_request",
        &["data.chatId", "expected a whole number"],
    );
}
