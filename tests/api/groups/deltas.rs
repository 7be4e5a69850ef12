//! Membership deltas: who joined or left is pushed before the chat, and a removed member gets
//! only chatDeleted.

use serde_json::{json, Value};

use super::{events_within, ids_of};
use crate::helpers::{concerns, polled, spawn_app, watch, Event, Sse, TestApp};

/// The type and data of every stored event about `chat` a poll from `since` returns to `user`.
async fn polled_of_chat(app: &TestApp, user: &str, since: i64, chat: i64) -> Vec<(String, Value)> {
    polled(app, user, since)
        .await
        .into_iter()
        .filter(|e| e["id"].is_i64())
        .map(|e| (e["type"].as_str().unwrap().to_string(), e["data"].clone()))
        .filter(|(kind, data)| concerns(kind, data, chat))
        .collect()
}

/// The stored events about `chat` that arrive on `sse`, up to and including the first of type
/// `last` (waiting up to 5 s for each).
async fn stored_of_chat_until(sse: &mut Sse, chat: i64, last: &str) -> Vec<Event> {
    let mut seen = Vec::new();
    loop {
        let e = sse.next().await;
        if e.id.is_none() || !concerns(&e.event, e.data(), chat) {
            continue;
        }
        let done = e.event == last;
        seen.push(e);
        if done {
            return seen;
        }
    }
}

#[tokio::test]
async fn add_members_pushes_who_joined_then_the_chat_to_old_and_new_members() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let mut watching = watch(&app, &["alice", "bob", "carol", "dave"]).await;

    // Act
    app.ok(
        "alice",
        "addMembers",
        json!({"chatId": team, "userIds": ["dave"]}),
    )
    .await;

    // Assert
    let delta = json!({
        "chatId": team,
        "added": [{"id": "dave", "role": "member"}],
        "removed": [],
        "memberCount": 4,
    });
    for (user, sse, since) in &mut watching {
        let live = stored_of_chat_until(sse, team, "chat").await;
        let kinds: Vec<&str> = live.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(kinds, ["chatMembers", "chat"], "{user}: live");
        assert_eq!(live[0].data(), &delta, "{user}: the delta");
        let chat = live[1].data();
        assert_eq!(chat["memberCount"], 4, "{user}");
        assert_eq!(
            ids_of(&chat["users"]),
            ["alice", "bob", "carol", "dave"],
            "{user}"
        );

        let stored = polled_of_chat(&app, user, *since, team).await;
        let kinds: Vec<&str> = stored.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["chatMembers", "chat"], "{user}: polled");
        assert_eq!(stored[0].1, delta, "{user}: the polled delta");
    }
}

#[tokio::test]
async fn remove_member_pushes_who_left_then_the_chat_to_the_remaining_members() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let mut watching = watch(&app, &["alice", "bob"]).await;

    // Act
    app.ok(
        "alice",
        "removeMember",
        json!({"chatId": team, "userId": "carol"}),
    )
    .await;

    // Assert
    let delta = json!({"chatId": team, "added": [], "removed": ["carol"], "memberCount": 2});
    for (user, sse, since) in &mut watching {
        let live = stored_of_chat_until(sse, team, "chat").await;
        let kinds: Vec<&str> = live.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(kinds, ["chatMembers", "chat"], "{user}: live");
        assert_eq!(live[0].data(), &delta, "{user}: the delta");
        assert_eq!(live[1].data()["memberCount"], 2, "{user}");
        assert_eq!(ids_of(&live[1].data()["users"]), ["alice", "bob"], "{user}");

        let stored = polled_of_chat(&app, user, *since, team).await;
        let kinds: Vec<&str> = stored.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["chatMembers", "chat"], "{user}: polled");
        assert_eq!(stored[0].1, delta, "{user}: the polled delta");
    }
}

#[tokio::test]
async fn a_removed_member_gets_chat_deleted_and_neither_the_delta_nor_the_chat() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let since = app.cursor("carol").await;
    let mut carol = app.events("carol", "snapshot=0", None).await;

    // Act
    app.ok(
        "alice",
        "removeMember",
        json!({"chatId": team, "userId": "carol"}),
    )
    .await;

    // Assert: on the stream, chatDeleted is the first stored event and nothing follows it
    let live = stored_of_chat_until(&mut carol, team, "chatDeleted").await;
    let kinds: Vec<&str> = live.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["chatDeleted"], "carol's stream");
    assert_eq!(live[0].data(), &json!({"chatId": team}));
    let after: Vec<Event> = events_within(&mut carol, 1.0)
        .await
        .into_iter()
        .filter(|e| e.id.is_some())
        .collect();
    assert!(after.is_empty(), "after chatDeleted carol got {after:?}");

    // And a poll from her old cursor ends at the chatDeleted
    let stored: Vec<(String, Value)> = polled(&app, "carol", since)
        .await
        .into_iter()
        .filter(|e| e["id"].is_i64())
        .map(|e| (e["type"].as_str().unwrap().to_string(), e["data"].clone()))
        .collect();
    assert_eq!(
        stored,
        [("chatDeleted".to_string(), json!({"chatId": team}))],
        "carol's poll"
    );
}
