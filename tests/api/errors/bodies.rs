//! Body size limits: an honest Content-Length or a chunked body over the limit is refused, one
//! exactly at it is not.

use reqwest::StatusCode;

use super::{assert_error, chunked, padded_chats_request};
use crate::helpers::{spawn_app, spawn_with, token};

#[tokio::test]
async fn honest_content_length_over_a_small_limit_is_refused() {
    // Arrange
    let app = spawn_with(|config| config.max_body = 1024).await;
    let t = token("alice");

    // Act
    let (status, body) = app
        .post_raw("/v1/chats", Some(&t), padded_chats_request(1025))
        .await;

    // Assert
    assert_error(status, &body, 413, "payload_too_large", &["1024"]);
}

#[tokio::test]
async fn honest_content_length_over_the_default_limit_is_refused() {
    // Arrange
    let app = spawn_app().await;
    let t = token("alice");
    let limit = 1024 * 1024;

    // Act
    let (status, body) = app
        .post_raw("/v1/chats", Some(&t), padded_chats_request(limit + 1))
        .await;

    // Assert
    assert_error(
        status,
        &body,
        413,
        "payload_too_large",
        &[&limit.to_string()],
    );
}

#[tokio::test]
async fn a_body_exactly_at_the_default_limit_is_accepted() {
    // Arrange
    let app = spawn_app().await;
    let t = token("alice");

    // Act
    let (status, body) = app
        .post_raw("/v1/chats", Some(&t), padded_chats_request(1024 * 1024))
        .await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["type"], "chats");
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused() {
    // Arrange
    let app = spawn_with(|config| config.max_body = 1024).await;
    let t = token("alice");
    let body = chunked(padded_chats_request(4 * 1024), 300);

    // Act
    let (status, body) = app.post_raw("/v1/chats", Some(&t), body).await;

    // Assert
    assert_error(status, &body, 413, "payload_too_large", &["1024"]);
}

#[tokio::test]
async fn a_body_exactly_at_the_limit_is_not_refused_for_size() {
    // Arrange
    let app = spawn_with(|config| config.max_body = 1024).await;
    let t = token("alice");
    let cases: Vec<(&str, reqwest::Body)> = vec![
        ("with Content-Length", padded_chats_request(1024).into()),
        ("chunked", chunked(padded_chats_request(1024), 300)),
    ];

    for (name, request) in cases {
        // Act
        let (status, body) = app.post_raw("/v1/chats", Some(&t), request).await;

        // Assert
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        assert_eq!(body["type"], "chats", "{name}");
    }
}
