//! Routing: `POST /v1` by the body's type, unknown types and paths, wrong methods, and one shape
//! for every error body.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{assert_error, assert_shape, get, padded_chats_request};
use crate::helpers::{member_ids, spawn_app, spawn_with, token};

#[tokio::test]
async fn post_v1_dispatches_on_the_body_type() {
    // Arrange
    let app = spawn_app().await;
    let t = token("alice");
    let request = json!({"type": "createChat", "data": {"userIds": ["bob"]}}).to_string();

    // Act
    let (status, body) = app.post_raw("/v1", Some(&t), request).await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["type"], "createChat");
    assert_eq!(member_ids(&body["data"]["chat"]), ["alice", "bob"]);
}

#[tokio::test]
async fn post_v1_without_a_type_is_a_bad_request() {
    // Arrange
    let app = spawn_app().await;
    let t = token("alice");
    let cases: Vec<(&str, String)> = vec![
        ("no type", json!({"data": {"userIds": ["bob"]}}).to_string()),
        ("null type", json!({"type": null, "data": {}}).to_string()),
        ("empty body", String::new()),
    ];

    for (name, request) in cases {
        // Act
        let (status, body) = app.post_raw("/v1", Some(&t), request).await;

        // Assert
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_error(status, &body, 400, "bad_request", &["type"]);
    }
}

#[tokio::test]
async fn an_unknown_request_type_is_type_not_found() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let (status, body) = app.post("alice", "bogus", json!({})).await;

    // Assert
    assert_error(status, &body, 404, "type_not_found", &["bogus"]);
}

#[tokio::test]
async fn an_unknown_path_is_type_not_found() {
    // Arrange
    let app = spawn_app().await;

    for path in ["/nope", "/v1/a/b", "/v2/message"] {
        // Act
        let (status, _, body) = get(&app, path).await;

        // Assert
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_error(status, &body, 404, "type_not_found", &[path]);
    }
}

#[tokio::test]
async fn a_known_path_with_the_wrong_method_is_method_not_allowed() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let (status, headers, body) = get(&app, "/v1/message").await;

    // Assert
    assert_error(status, &body, 405, "method_not_allowed", &["GET", "POST"]);
    assert_eq!(headers.get(reqwest::header::ALLOW).unwrap(), "POST");
}

#[tokio::test]
async fn every_error_body_has_the_same_shape() {
    // Arrange
    let app = spawn_with(|config| config.max_body = 1024).await;
    let t = token("alice");

    // Act
    let mut responses: Vec<(&str, StatusCode, Value)> = Vec::new();
    let (s, b) = app.post_raw("/v1/chats", None, "{}").await;
    responses.push(("no token", s, b));
    let (s, b) = app.post_raw("/v1/chats", Some(&t), "{").await;
    responses.push(("bad JSON", s, b));
    let (s, b) = app
        .post_raw("/v1/chats", Some(&t), padded_chats_request(2048))
        .await;
    responses.push(("too large", s, b));
    let (s, b) = app.post("alice", "chat", json!({"chatId": 424242})).await;
    responses.push(("no chat", s, b));
    let (s, b) = app.post("alice", "bogus", json!({})).await;
    responses.push(("no type", s, b));
    let (s, _, b) = get(&app, "/v1/chats").await;
    responses.push(("wrong method", s, b));
    let (s, b) = app.poll("alice", "timeout=99").await;
    responses.push(("bad poll", s, b));

    // Assert
    let statuses: Vec<u16> = responses.iter().map(|(_, s, _)| s.as_u16()).collect();
    assert_eq!(statuses, [401, 400, 413, 404, 404, 405, 400]);
    for (name, status, body) in &responses {
        assert!(body.is_object(), "{name}: {body}");
        assert_shape(*status, body);
    }
}
