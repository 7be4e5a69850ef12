//! Every error in the envelope and health that tells the truth: ranges, HEAD and If-Range on
//! downloads, short quotes of long values, a full database, NULs and keys given twice.

use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{read, spawn_app, spawn_with, token, TestApp, SERVICE_KEY};

/// Uploads `bytes` as alice; the file's download path.
async fn uploaded(app: &TestApp, bytes: &[u8]) -> String {
    let file = crate::files::uploaded(app, "alice", "f.bin", bytes.to_vec()).await;
    format!("/v1/files/{}", file["id"].as_str().unwrap())
}

/// A request of `path` as alice with `headers`: status, headers and body bytes.
async fn fetch(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let got = crate::files::request(app, method, "alice", path, headers).await;
    (got.status, got.headers, got.body.to_vec())
}

#[tokio::test]
async fn unsatisfiable_ranges_answer_416_in_the_envelope() {
    // Arrange
    let app = spawn_app().await;
    let file = uploaded(&app, &[7u8; 100]).await;

    for range in ["bytes=-0", "bytes=100-", "bytes=500-600"] {
        // Act
        let (status, headers, body) = fetch(&app, Method::GET, &file, &[("range", range)]).await;

        // Assert
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(headers[CONTENT_RANGE], "bytes */100", "{range}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], 416);
        assert_eq!(body["error"]["reason"], "range_not_satisfiable");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("100 bytes"));
    }
}

#[tokio::test]
async fn head_answers_the_headers_of_get_without_a_body() {
    // Arrange
    let app = spawn_app().await;
    let mut png = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(64, 48, image::Rgb([200, 10, 10]))
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let file = uploaded(&app, png.get_ref()).await;

    for path in [file.clone(), format!("{file}/thumbnail")] {
        // Act
        let (get, get_headers, get_body) = fetch(&app, Method::GET, &path, &[]).await;
        let (head, head_headers, head_body) = fetch(&app, Method::HEAD, &path, &[]).await;

        // Assert
        assert_eq!((get, head), (StatusCode::OK, StatusCode::OK), "{path}");
        assert!(head_body.is_empty(), "{path}");
        assert_eq!(get_headers[CONTENT_LENGTH], get_body.len().to_string());
        for h in [CONTENT_LENGTH, CONTENT_TYPE, ETAG, LAST_MODIFIED] {
            assert_eq!(head_headers.get(&h), get_headers.get(&h), "{path}: {h}");
        }
    }
}

#[tokio::test]
async fn if_range_serves_the_range_only_for_the_same_version() {
    // Arrange
    let app = spawn_app().await;
    let bytes: Vec<u8> = (0..=255).collect();
    let file = uploaded(&app, &bytes).await;
    let (_, headers, _) = fetch(&app, Method::GET, &file, &[]).await;
    let etag = headers[ETAG].to_str().unwrap().to_string();
    let modified = headers[LAST_MODIFIED].to_str().unwrap().to_string();
    #[rustfmt::skip]
    let cases: &[(&str, &str, StatusCode, usize)] = &[
        ("its ETag", &etag, StatusCode::PARTIAL_CONTENT, 10),
        ("its Last-Modified", &modified, StatusCode::PARTIAL_CONTENT, 10),
        ("another ETag", "\"0123456789abcdef0123456789abcdef\"", StatusCode::OK, 256),
        ("an older date", "Mon, 01 Jan 2001 00:00:00 GMT", StatusCode::OK, 256),
    ];

    for (case, if_range, want, len) in cases {
        // Act
        let (status, _, body) = fetch(
            &app,
            Method::GET,
            &file,
            &[("range", "bytes=0-9"), ("if-range", if_range)],
        )
        .await;

        // Assert
        assert_eq!(status, *want, "{case}");
        assert_eq!(body.len(), *len, "{case}");
        assert_eq!(body[..], bytes[..*len], "{case}");
    }
}

#[tokio::test]
async fn error_messages_quote_only_a_short_prefix_of_long_values() {
    // Arrange
    let app = spawn_app().await;
    let big = "x".repeat(1_000_000);
    let chat = app.direct_chat("alice", "bob").await;
    let message = json!({"messages": [{"clientMessageId": "c", "chatId": big, "text": "hi"}]});
    let cases: Vec<(&str, String, Value)> = vec![
        (
            "a mistyped field",
            "/v1/message".into(),
            json!({"type": "message", "data": message}),
        ),
        (
            "an unknown type",
            "/v1".into(),
            json!({"type": big, "data": {}}),
        ),
        (
            "a type mismatch",
            "/v1/chats".into(),
            json!({"type": big, "data": {}}),
        ),
        (
            "an unknown field",
            "/v1/typing".into(),
            json!({"data": {&big: 1}}),
        ),
        (
            "a bad time",
            "/v1/chats".into(),
            json!({"data": {"before": big}}),
        ),
        (
            "a bad user id",
            "/v1/createChat".into(),
            json!({"data": {"userIds": [big]}}),
        ),
        (
            "an unknown path",
            format!("/v1/{}", "y".repeat(8_000)),
            json!({}),
        ),
        (
            "a long status",
            "/v1/messageStatus".into(),
            json!({"data": {"status": big, "chatId": chat, "messageId": 1}}),
        ),
    ];

    for (case, path, body) in cases {
        // Act
        let res = app
            .client
            .post(format!("{}{path}", app.base))
            .bearer_auth(token("alice"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, body) = read(res).await;

        // Assert
        assert!(status.is_client_error(), "{case}: {status}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.chars().count() < 300,
            "{case}: {} chars",
            message.len()
        );
        assert!(message.contains('…'), "{case}: {message}");
    }
}

#[tokio::test]
async fn a_full_database_answers_507_and_health_503_until_writes_work_again() {
    // Arrange: the database may not grow past 1 MiB (the operator's --max-db-size).
    let app = spawn_with(|c| c.max_db_size = Some(1024 * 1024)).await;
    let chat = app.direct_chat("alice", "bob").await;
    let text = "z".repeat(60_000);
    let health = |app: &TestApp| {
        let url = format!("{}/healthz", app.base);
        let client = app.client.clone();
        async move { read(client.get(url).send().await.unwrap()).await }
    };
    assert_eq!(health(&app).await.0, StatusCode::OK);

    // Act
    let mut refused = None;
    for i in 0..100 {
        let data = json!({"messages": [{"clientMessageId": format!("m{i}"), "chatId": chat, "text": text}]});
        let (status, body) = app.post("alice", "message", data).await;
        if status != StatusCode::OK {
            refused = Some((status, body));
            break;
        }
    }
    let (sick, sick_body) = health(&app).await;

    // Assert
    let (status, body) = refused.expect("the database filled up");
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert_eq!(body["error"]["reason"], "insufficient_storage");
    assert_eq!(body["error"]["code"], 507);
    assert_eq!(sick, StatusCode::SERVICE_UNAVAILABLE, "{sick_body}");
    assert_eq!(sick_body["error"]["reason"], "unavailable");

    // With room again (the limit lifted), writes work and health recovers.
    let app = app.restart_with(|c| c.max_db_size = None).await;
    app.send_text("alice", chat, "after", "room again").await;
    assert_eq!(health(&app).await.0, StatusCode::OK);
}

#[tokio::test]
async fn nul_characters_and_keys_given_twice_are_refused_naming_the_place() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let text = format!(
        r#"{{"data":{{"messages":[{{"clientMessageId":"c","chatId":{chat},"text":"a\u0000b"}}]}}}}"#
    );
    let twice = format!(r#"{{"data":{{"chatId":{chat},"chatId":99,"status":"typing"}}}}"#);
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        ("NUL in a text", "/v1/message", &text, "data.messages[0].text must not contain a NUL"),
        ("NUL in a user id", "/v1/createChat", r#"{"data":{"userIds":["bo\u0000b"]}}"#, "data.userIds[0] must not contain a NUL"),
        ("a key twice", "/v1/typing", &twice, "data.chatId is given twice"),
        ("the envelope's type twice", "/v1", r#"{"type":"chats","type":"typing","data":{}}"#, "type is given twice"),
    ];

    for (case, path, body, want) in cases {
        // Act
        let res = app
            .client
            .post(format!("{}{path}", app.base))
            .bearer_auth(token("alice"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let (status, body) = read(res).await;

        // Assert
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {body}");
        assert_eq!(body["error"]["reason"], "bad_request", "{case}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(want), "{case}: {message}");
    }

    // The host's bodies are read the same way, named from `body`.
    let res = app
        .client
        .post(format!("{}/v1/server/users", app.base))
        .bearer_auth(SERVICE_KEY)
        .body(r#"{"user_id":"a","user_id":"b"}"#)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("body.user_id is given twice"));
}

#[tokio::test]
async fn more_than_200_headers_get_hyper_s_bare_431() {
    // Arrange: hyper answers this itself, before a request reaches Chinwag (docs/api.md).
    let app = spawn_app().await;

    // Act
    let mut req = app.client.get(format!("{}/healthz", app.base));
    for i in 0..250 {
        req = req.header(format!("x-filler-{i}"), "f");
    }
    let res = req.send().await.unwrap();

    // Assert
    assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(res.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_oversized_head_is_answered_414_or_431_in_the_envelope() {
    // Arrange
    let app = spawn_app().await;
    let poll = "/v1/poll?timeout=0";
    let long_target = format!("{poll}&x={}", "a".repeat(9000));
    let names: Vec<String> = (0..150).map(|i| format!("x-h{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let value = "v".repeat(40 * 1024);
    let envelope = |body: Vec<u8>| serde_json::from_slice::<Value>(&body).unwrap();

    // Act
    let (target_status, _, target_body) = fetch(&app, Method::GET, &long_target, &[]).await;
    let (many_status, _, many_body) = fetch(&app, Method::GET, poll, &many).await;
    let (big_status, _, big_body) = fetch(&app, Method::GET, poll, &[("x-big", &value)]).await;
    let (ok_status, _, _) = fetch(&app, Method::GET, poll, &many[..90]).await;

    // Assert
    assert_eq!(target_status, StatusCode::URI_TOO_LONG);
    let target_body = envelope(target_body);
    assert_eq!(target_body["error"]["reason"], "uri_too_long");
    assert_eq!(target_body["error"]["code"], 414);
    assert_eq!(many_status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let many_body = envelope(many_body);
    assert_eq!(many_body["error"]["reason"], "headers_too_large");
    assert!(many_body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("header fields, over the limit of 100"));
    assert_eq!(big_status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(envelope(big_body)["error"]["reason"], "headers_too_large");
    assert_eq!(ok_status, StatusCode::OK);
}
