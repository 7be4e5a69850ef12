//! Error responses through the real server: body limits, decoding, routing, membership and validation.

mod bodies;
mod decoding;
mod membership;
mod routing;
mod validation;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

/// Asserts an error response: its status, the exact body shape
/// `{"error":{"code","reason","message"}}` with `code` equal to the status, the reason, and that
/// the message mentions each of `mentions`.
fn assert_error(status: StatusCode, body: &Value, want: u16, reason: &str, mentions: &[&str]) {
    assert_eq!(status.as_u16(), want, "status of {body}");
    assert_shape(status, body);
    assert_eq!(body["error"]["reason"], reason, "reason of {body}");
    let message = body["error"]["message"].as_str().unwrap();
    for m in mentions {
        assert!(
            message.contains(m),
            "message {message:?} should mention {m:?}"
        );
    }
}

/// Asserts the error body has exactly `{"error":{"code","reason","message"}}` and `code == status`.
fn assert_shape(status: StatusCode, body: &Value) {
    let outer = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"));
    assert_eq!(
        outer.keys().collect::<Vec<_>>(),
        ["error"],
        "top-level keys of {body}"
    );
    let inner = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("error is not an object: {body}"));
    let mut keys: Vec<&str> = inner.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message", "reason"], "error keys of {body}");
    assert_eq!(
        inner["code"].as_u64(),
        Some(u64::from(status.as_u16())),
        "code of {body}"
    );
    assert!(
        inner["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "reason of {body}"
    );
    assert!(
        inner["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message of {body}"
    );
}

/// A `chats` request padded with trailing whitespace to exactly `len` bytes.
fn padded_chats_request(len: usize) -> Vec<u8> {
    let mut body = br#"{"type":"chats","data":{}}"#.to_vec();
    assert!(body.len() <= len);
    body.resize(len, b' ');
    body
}

/// A body of `total` bytes sent in chunks with no Content-Length (chunked transfer encoding).
fn chunked(body: Vec<u8>, chunk: usize) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(chunk).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(tokio_stream::iter(chunks))
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let res = app
        .client
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = res.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, headers, body)
}
