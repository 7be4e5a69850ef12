//! Bugs the seed audit found, each through the real server: permission messages that read
//! forwards, answers that show what was stored, host field paths and JSON types kept as sent.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{host, member_ids, spawn_app};

#[tokio::test]
async fn admin_refusals_read_forwards() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let pair = app.direct_chat("alice", "bob").await;
    #[rustfmt::skip]
    let cases: &[(&str, Value, i64, &str)] = &[
        ("renameChat", json!({"chatId": team, "name": "X"}), team, "can rename it"),
        ("addMembers", json!({"chatId": team, "userIds": ["dan"]}), team, "can add members to it"),
        ("removeMember", json!({"chatId": team, "userId": "carol"}), team, "can remove other members from it"),
        ("deleteChat", json!({"chatId": team}), team, "can delete it"),
        ("clearChat", json!({"chatId": team, "forAll": true}), team, "can clear it for all"),
        ("renameChat", json!({"chatId": pair, "name": "X"}), pair, "not a group: only a group's admin can rename it"),
    ];

    for (kind, data, chat, wording) in cases {
        // Act
        let (status, body) = app.post("bob", kind, data.clone()).await;

        // Assert
        assert_eq!(status, StatusCode::FORBIDDEN, "{kind}: {body}");
        assert_eq!(body["error"]["reason"], "forbidden");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(wording), "{kind}: {message}");
        assert!(
            message.contains(&format!("chat {chat}")),
            "{kind}: {message}"
        );
        assert!(!message.contains("can be"), "{kind}: {message}");
    }
}

#[tokio::test]
async fn leaving_a_chat_answers_the_chat_after_leaving() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;

    // Act: the admin leaves, so the admin changes too.
    let left = app
        .ok(
            "alice",
            "removeMember",
            json!({"chatId": team, "userId": "alice"}),
        )
        .await;

    // Assert
    assert_eq!(member_ids(&left["chat"]), ["bob", "carol"]);
    assert_eq!(left["chat"]["memberCount"], 2);
    assert_eq!(left["chat"]["admin"], "bob");
    let seen = app.ok("bob", "chat", json!({"chatId": team})).await;
    assert_eq!(left["chat"]["users"], seen["chat"]["users"]);
}

#[tokio::test]
async fn host_errors_name_the_fields_the_host_sent() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let (status, body) = host(
        &app,
        Method::GET,
        "/chats/chats",
        json!({"user_id": "alice", "count": 5000}),
    )
    .await;
    let (client_status, client_body) = app.post("alice", "chats", json!({"count": 5000})).await;

    // Assert
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error"]["message"],
        "body.count must be 1 to 200, not 5000"
    );
    assert_eq!(client_status, StatusCode::BAD_REQUEST, "{client_body}");
    assert_eq!(
        client_body["error"]["message"],
        "data.count must be 1 to 200, not 5000"
    );
}

#[tokio::test]
async fn a_consultation_id_keeps_the_json_type_the_host_sent() {
    // Arrange
    let app = spawn_app().await;
    let since = app.cursor("client-1").await;

    for id in [json!(501), json!("502")] {
        // Act
        let (status, body) = host(
            &app,
            Method::POST,
            "/ws/client/consultation/update",
            json!({"user_id": "client-1", "data": {"active": true, "consultationId": id}}),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }

    // Assert
    let (_, page) = app
        .poll("client-1", &format!("since={since}&timeout=0"))
        .await;
    let ids: Vec<Value> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "consultationUpdate")
        .map(|e| e["data"]["consultationId"].clone())
        .collect();
    assert_eq!(ids, [json!(501), json!("502")]);
}

#[tokio::test]
async fn binary_uploads_are_octet_streams_and_only_text_is_text() {
    // Arrange
    let app = spawn_app().await;
    let token = crate::helpers::token("alice");
    #[rustfmt::skip]
    let cases: &[(&str, &[u8], &str)] = &[
        ("NULs and control bytes", b"\x00\x01\x02\x03binary\x00\x10", "application/octet-stream"),
        ("invalid UTF-8", b"\xff\xfe\xfd\x80", "application/octet-stream"),
        ("text", "caf\u{e9} au lait\r\n\ttab".as_bytes(), "text/plain; charset=utf-8"),
    ];

    for (case, bytes, mime) in cases {
        // Act
        let (status, body) = app
            .post_raw("/v1/files?name=x.bin", Some(&token), bytes.to_vec())
            .await;

        // Assert
        assert_eq!(status, StatusCode::CREATED, "{case}: {body}");
        assert_eq!(body["data"]["mimeType"], *mime, "{case}: {body}");
    }
}

#[tokio::test]
async fn a_name_on_a_direct_chat_is_refused() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let (status, body) = app
        .post(
            "alice",
            "createChat",
            json!({"userIds": ["bob"], "name": "Us"}),
        )
        .await;
    let (blank, _) = app
        .post(
            "alice",
            "createChat",
            json!({"userIds": ["bob"], "name": " "}),
        )
        .await;

    // Assert
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["reason"], "bad_request");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("data.name"));
    assert_eq!(blank, StatusCode::OK, "a blank name is no name");
    let (_, chats) = app.post("alice", "chats", json!({})).await;
    assert_eq!(chats["data"]["chats"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_status_that_does_not_move_the_mark_answers_the_stored_one() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let first = app.send_text("alice", chat, "m1", "one").await;
    let second = app.send_text("alice", chat, "m2", "two").await;
    app.ok(
        "bob",
        "messageStatus",
        json!({"status": "read", "chatId": chat, "messageId": second["id"]}),
    )
    .await;

    // Act
    let again = app
        .ok(
            "bob",
            "messageStatus",
            json!({"status": "delivered", "chatId": chat, "messageId": first["id"]}),
        )
        .await;

    // Assert
    assert_eq!(again["status"], "read");
    assert_eq!(again["messageId"], first["id"]);
}
