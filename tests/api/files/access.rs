//! Who may read a file: the uploader until it is sent, then the chat's members; deleting the
//! message takes it away; the janitor removes what was never sent.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{
    fetch, fetch_with_query_token, file_path, file_rows, jpeg, on_disk, png, send_file, thumb_path,
    uploaded,
};
use crate::helpers::{spawn_app, spawn_with};

#[tokio::test]
async fn an_unsent_upload_is_the_uploaders_alone_and_unknown_ids_look_the_same() {
    // Arrange
    let app = spawn_app().await;
    let file = uploaded(&app, "alice", "photo.png", png(800, 400)).await;

    // Act
    let owner = fetch(&app, "alice", &file_path(&file["id"])).await;
    let owner_thumb = fetch(&app, "alice", &thumb_path(&file["id"])).await;
    let stranger = fetch(&app, "carol", &file_path(&file["id"])).await;
    let stranger_thumb = fetch(&app, "carol", &thumb_path(&file["id"])).await;
    let random = fetch(&app, "carol", "/v1/files/0123456789abcdef0123456789abcdef").await;
    let malformed = fetch(&app, "carol", "/v1/files/..%2F..%2Fetc").await;
    let upper_case = fetch(
        &app,
        "alice",
        &format!("/v1/files/{}", file["id"].as_str().unwrap().to_uppercase()),
    )
    .await;

    // Assert
    assert_eq!(owner.status, StatusCode::OK);
    assert_eq!(owner_thumb.status, StatusCode::OK);
    for (who, got) in [
        ("stranger", &stranger),
        ("stranger's thumbnail", &stranger_thumb),
        ("random id", &random),
        ("malformed id", &malformed),
        ("upper-case id", &upper_case),
    ] {
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{who}");
        assert_eq!(got.reason(), "file_not_found", "{who}");
    }
}

#[tokio::test]
async fn a_sent_file_is_readable_by_the_chats_members_and_no_one_else() {
    // Arrange
    let app = spawn_app().await;
    let direct = app.direct_chat("alice", "bob").await;
    let group = app.group("alice", &["dave"]).await;
    let in_direct = uploaded(&app, "alice", "direct.png", png(800, 400)).await;
    let in_group = uploaded(&app, "alice", "group.png", png(400, 800)).await;

    // Act
    let (s1, b1) = send_file(&app, "alice", direct, "d1", &in_direct["id"]).await;
    let (s2, b2) = send_file(&app, "alice", group, "g1", &in_group["id"]).await;

    // Assert
    assert_eq!(s1, StatusCode::OK, "{b1}");
    assert_eq!(s2, StatusCode::OK, "{b2}");
    let bob = fetch(&app, "bob", &file_path(&in_direct["id"])).await;
    assert_eq!(bob.status, StatusCode::OK);
    assert!(bob.body == png(800, 400));
    assert_eq!(
        fetch(&app, "bob", &thumb_path(&in_direct["id"]))
            .await
            .status,
        StatusCode::OK
    );
    let by_query = fetch_with_query_token(&app, "bob", &file_path(&in_direct["id"])).await;
    assert_eq!(by_query.status, StatusCode::OK);
    assert!(by_query.body == png(800, 400));
    let thumb_by_query = fetch_with_query_token(&app, "bob", &thumb_path(&in_direct["id"])).await;
    assert_eq!(thumb_by_query.status, StatusCode::OK);
    assert!(image::load_from_memory(&thumb_by_query.body).is_ok());
    let dave = fetch(&app, "dave", &file_path(&in_group["id"])).await;
    assert_eq!(dave.status, StatusCode::OK);
    assert_eq!(
        fetch(&app, "dave", &thumb_path(&in_group["id"]))
            .await
            .status,
        StatusCode::OK
    );
    for (who, path) in [
        ("carol", file_path(&in_direct["id"])),
        ("carol", thumb_path(&in_direct["id"])),
        ("carol", file_path(&in_group["id"])),
        ("dave", file_path(&in_direct["id"])),
        ("bob", file_path(&in_group["id"])),
    ] {
        let got = fetch(&app, who, &path).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{who} {path}");
        assert_eq!(got.reason(), "file_not_found", "{who} {path}");
    }
    let query_stranger = fetch_with_query_token(&app, "carol", &file_path(&in_direct["id"])).await;
    assert_eq!(query_stranger.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn only_the_uploader_can_send_a_file_and_file_messages_need_one() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let alices = uploaded(&app, "alice", "photo.png", png(100, 50)).await;

    // Act
    let (stolen, stolen_body) = send_file(&app, "bob", chat, "steal", &alices["id"]).await;
    let (unknown, unknown_body) = send_file(
        &app,
        "alice",
        chat,
        "unknown",
        &json!("0123456789abcdef0123456789abcdef"),
    )
    .await;
    let (bare, bare_body) = app
        .post(
            "alice",
            "message",
            json!({"messages": [{"clientMessageId": "bare", "chatId": chat, "type": "image", "text": ""}]}),
        )
        .await;

    // Assert
    assert_eq!(stolen, StatusCode::NOT_FOUND, "{stolen_body}");
    assert_eq!(stolen_body["error"]["reason"], "file_not_found");
    assert_eq!(unknown, StatusCode::NOT_FOUND, "{unknown_body}");
    assert_eq!(unknown_body["error"]["reason"], "file_not_found");
    assert_eq!(bare, StatusCode::BAD_REQUEST, "{bare_body}");
    assert_eq!(bare_body["error"]["reason"], "bad_request");
    assert!(
        bare_body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fileId"),
        "{bare_body}"
    );
    let history = app.ok("bob", "history", json!({"chatId": chat})).await;
    assert_eq!(history["messages"], json!([]), "nothing was sent");
    let bob = fetch(&app, "bob", &file_path(&alices["id"])).await;
    assert_eq!(bob.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deleting_the_message_takes_the_file_away_from_the_other_member() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let file = uploaded(&app, "alice", "photo.png", png(800, 400)).await;
    let (status, body) = send_file(&app, "alice", chat, "m1", &file["id"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        fetch(&app, "bob", &file_path(&file["id"])).await.status,
        StatusCode::OK
    );

    // Act
    app.ok(
        "alice",
        "deleteMessage",
        json!({"messageId": body["data"]["messages"][0]["id"]}),
    )
    .await;

    // Assert
    for path in [file_path(&file["id"]), thumb_path(&file["id"])] {
        let bob = fetch(&app, "bob", &path).await;
        assert_eq!(bob.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(bob.reason(), "file_not_found", "{path}");
        assert_eq!(
            fetch(&app, "alice", &path).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    let history = app.ok("bob", "history", json!({"chatId": chat})).await;
    assert_eq!(history["messages"][0]["deleted"], true);
    assert_eq!(history["messages"][0]["file"], Value::Null);
}

#[tokio::test]
async fn a_message_carries_its_file_everywhere_it_is_shown() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let file = uploaded(&app, "alice", "photo.jpg", jpeg(300, 900)).await;
    let mut bob = app.events("bob", "", None).await;
    assert_eq!(bob.next().await.event, "chats");

    // Act
    let (status, body) = send_file(&app, "alice", chat, "m1", &file["id"]).await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = &body["data"]["messages"][0];
    assert_eq!(sent["type"], "image");
    assert_eq!(sent["file"], file, "in the message response");
    let pushed = bob.next_of("message").await;
    assert_eq!(pushed.data()["id"], sent["id"]);
    assert_eq!(pushed.data()["file"], file, "in the SSE message event");
    let history = app.ok("bob", "history", json!({"chatId": chat})).await;
    assert_eq!(history["messages"][0]["id"], sent["id"]);
    assert_eq!(history["messages"][0]["file"], file, "in history");
    for user in ["alice", "bob"] {
        let chats = app.ok(user, "chats", json!({})).await;
        let last = &chats["chats"][0]["lastMessage"];
        assert_eq!(last["id"], sent["id"], "{user}'s chats");
        assert_eq!(last["file"], file, "in {user}'s chats lastMessage");
    }
}

#[tokio::test]
async fn the_janitor_removes_uploads_never_sent_and_keeps_sent_ones() {
    // Arrange
    let app = spawn_with(|c| c.orphan_ttl = Duration::ZERO).await;
    let chat = app.direct_chat("alice", "bob").await;
    let never_sent = uploaded(&app, "alice", "a.png", png(800, 400)).await;
    let sent_bytes = png(400, 800);
    let sent = uploaded(&app, "alice", "b.png", sent_bytes.clone()).await;
    let (status, body) = send_file(&app, "alice", chat, "m1", &sent["id"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (a, b) = (
        never_sent["id"].as_str().unwrap().to_string(),
        sent["id"].as_str().unwrap().to_string(),
    );
    assert!(on_disk(&app).contains(&format!("{a}.thumb")));
    // Past the orphan TTL of zero on purpose.
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Act
    let removed = chinwag::janitor::prune_files_once(&app.app.janitor())
        .await
        .unwrap();

    // Assert
    assert_eq!(removed, 1);
    let gone = fetch(&app, "alice", &file_path(&never_sent["id"])).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.reason(), "file_not_found");
    let mut want = vec![b.clone(), format!("{b}.thumb")];
    want.sort_unstable();
    assert_eq!(
        on_disk(&app),
        want,
        "only the sent file and its thumbnail stay"
    );
    assert_eq!(file_rows(&app).await, 1);
    for user in ["alice", "bob"] {
        let kept = fetch(&app, user, &file_path(&sent["id"])).await;
        assert_eq!(kept.status, StatusCode::OK, "{user}");
        assert!(kept.body == sent_bytes, "{user}");
        assert_eq!(
            fetch(&app, user, &thumb_path(&sent["id"])).await.status,
            StatusCode::OK,
            "{user}"
        );
    }
}
