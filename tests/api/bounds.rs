//! What one request may make the server hold or do: the message size limit on every way a
//! message is posted, bounded thumbnail decodes, and member changes that never hold the writer.

use serde_json::json;

use crate::files::{png, upload};
use crate::helpers::{message_field, spawn_app, spawn_with, TestApp};
use crate::helpers::{page, value};

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

#[tokio::test]
async fn a_poll_from_the_start_answers_a_page_of_about_32_kib_at_a_time_and_loses_nothing() {
    // Arrange: 20 messages of 10,000 bytes, 200 KB in all
    let app = spawn_app().await;
    let chat = app.direct_chat("ann", "bob").await;
    let since = app.cursor("bob").await;
    for i in 0..20 {
        let text = format!("{i:02}{}", "x".repeat(9_998));
        app.send_text("ann", chat, &format!("m{i}"), &text).await;
    }

    // Act: poll from the start until nothing is left
    let (mut answers, mut texts, mut cursor) = (Vec::new(), Vec::new(), since);
    loop {
        let (status, body) = app.poll("bob", &format!("since={cursor}&timeout=0")).await;
        assert_eq!(status, 200, "{body}");
        let events = body["events"].as_array().unwrap().clone();
        if events.is_empty() {
            break;
        }
        answers.push(body.to_string().len());
        for e in events.iter().filter(|e| e["type"] == "message") {
            texts.push(e["data"]["text"].as_str().unwrap()[..2].to_string());
        }
        cursor = body["next"].as_i64().unwrap();
        assert!(answers.len() <= 20, "the polls never end");
    }

    // Assert: several answers, none much past 64 KiB, every message once and in order
    assert!(answers.len() >= 3, "answers of {answers:?} bytes");
    assert!(
        answers.iter().all(|&n| n <= 64 * 1024 + 11_000),
        "answers of {answers:?} bytes"
    );
    let want: Vec<String> = (0..20).map(|i| format!("{i:02}")).collect();
    assert_eq!(texts, want);
}
