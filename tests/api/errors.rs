//! Error responses through the real server: body limits, decoding, routing, membership and validation.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{member_ids, spawn_app, spawn_with, token, TestApp};

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

#[tokio::test]
async fn a_missing_field_next_to_an_unknown_one_names_both() {
    // Arrange
    let app = spawn_app().await;

    // Act: a typo in the field's name, in a client request and in a host request
    let (status, body) = app.post("alice", "history", json!({"chatID": 1})).await;
    let host = app
        .client
        .post(format!("{}/v1/server/chats/message", app.base))
        .bearer_auth("test-service-key")
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
