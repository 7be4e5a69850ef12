//! What one request may make the server hold or do: the message size limit on every way a
//! message is posted, bounded thumbnail decodes, and member changes that never hold the writer.

use serde_json::json;

use crate::files::{png, upload};
use crate::helpers::{message_field, spawn_with, TestApp};
use crate::metrics::{page, value};

/// The message limit of these tests, in bytes.
const LIMIT: usize = 100;

async fn small_messages() -> TestApp {
    spawn_with(|c| c.max_message_bytes = LIMIT).await
}

#[tokio::test]
async fn a_message_past_the_limit_is_413_and_nothing_of_its_batch_is_stored() {
    // Arrange
    let app = small_messages().await;
    let chat = app.direct_chat("ann", "bob").await;
    let fits = "a".repeat(LIMIT);
    let over = "b".repeat(LIMIT + 1);
    let cases = [
        ("text past the limit", over.clone(), json!({})),
        (
            "text and params past it",
            "c".repeat(LIMIT - 10),
            json!({"key": "12345678"}),
        ),
    ];

    for (case, text, params) in cases {
        // Act: a batch whose second message is too large
        let (status, body) = app
            .post(
                "ann",
                "message",
                json!({"messages": [
                    {"clientMessageId": format!("{case}-1"), "chatId": chat, "text": "small"},
                    {"clientMessageId": format!("{case}-2"), "chatId": chat, "text": text, "params": params},
                ]}),
            )
            .await;

        // Assert
        assert_eq!(status, 413, "{case}: {body}");
        assert_eq!(body["error"]["reason"], "payload_too_large", "{case}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("data.messages[1].text"),
            "{case}: {message}"
        );
        assert!(message.contains(&LIMIT.to_string()), "{case}: {message}");
    }
    let history = app.ok("bob", "history", json!({"chatId": chat})).await;
    assert!(message_field(&history, "text").is_empty(), "{history}");

    // The limit itself is allowed.
    let sent = app.send_text("ann", chat, "fits", &fits).await;
    assert_eq!(sent["text"], fits.as_str());
}

#[tokio::test]
async fn an_edit_past_the_limit_is_413_and_keeps_the_message() {
    // Arrange: a message whose params leave 50 bytes for its text
    let app = small_messages().await;
    let chat = app.direct_chat("ann", "bob").await;
    let data = app
        .ok(
            "ann",
            "message",
            json!({"messages": [{"clientMessageId": "p", "chatId": chat, "text": "hi",
                                  "params": {"k": "v".repeat(49)}}]}),
        )
        .await;
    let id = data["messages"][0]["id"].clone();

    for (case, text) in [
        ("over alone", "x".repeat(LIMIT + 1)),
        ("over with the kept params", "y".repeat(51)),
    ] {
        // Act
        let (status, body) = app
            .post("ann", "editMessage", json!({"messageId": id, "text": text}))
            .await;

        // Assert
        assert_eq!(status, 413, "{case}: {body}");
        assert_eq!(body["error"]["reason"], "payload_too_large", "{case}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("data.text"),
            "{case}"
        );
    }
    let history = app.ok("bob", "history", json!({"chatId": chat})).await;
    assert_eq!(message_field(&history, "text"), [json!("hi")]);
}

#[tokio::test]
async fn the_host_posting_past_the_limit_gets_413_naming_its_field() {
    // Arrange
    let app = small_messages().await;
    let chat = app.direct_chat("ann", "bob").await;

    // Act
    let (status, body) = app
        .host(
            "/chats/message",
            json!({"chat_id": chat, "message": "z".repeat(LIMIT + 1), "client_message_id": "h"}),
        )
        .await;

    // Assert
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["reason"], "payload_too_large");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("body.message"),
        "{body}"
    );
    let history = app.ok("bob", "history", json!({"chatId": chat})).await;
    assert!(message_field(&history, "text").is_empty(), "{history}");
}

#[tokio::test]
async fn an_image_whose_decode_alone_passes_the_budget_is_stored_without_a_thumbnail() {
    // Arrange: 512 KiB for decodes; a decode reserves twice its pixels (3 bytes each here)
    let app = spawn_with(|c| c.thumbnail_memory = 512 * 1024).await;
    let (small, big) = (png(200, 200), png(400, 400));

    // Act
    let (small_status, small_file) = upload(&app, "ann", Some("small.png"), None, small).await;
    let (big_status, big_file) = upload(&app, "ann", Some("big.png"), None, big).await;

    // Assert: both stored; only the one within the budget has a thumbnail
    assert_eq!(
        (small_status.as_u16(), big_status.as_u16()),
        (201, 201),
        "{small_file} {big_file}"
    );
    assert!(small_file["data"]["thumbnail"].is_string(), "{small_file}");
    assert_eq!(
        big_file["data"]["thumbnail"],
        serde_json::Value::Null,
        "{big_file}"
    );
    assert_eq!(big_file["data"]["mimeType"], "image/png", "{big_file}");
    let metrics = page(&app).await;
    assert_eq!(
        value(&metrics, "chinwag_thumbnails_over_budget_total"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        value(&metrics, "chinwag_thumbnail_decodes_running"),
        Some(0.0)
    );
}
