//! Presence in groups larger and smaller than the presence limit.

use serde_json::{json, Value};

use super::events_within;
use crate::helpers::{spawn_with, wait_for, Event};

/// Whether an event is an `opponentStatus` that names chat `chat`.
fn is_status_about(e: &Event, chat: i64) -> bool {
    e.event == "opponentStatus"
        && (e.data()["chatId"] == chat
            || e.data()["chatIds"]
                .as_array()
                .is_some_and(|ids| ids.contains(&json!(chat))))
}

#[tokio::test]
async fn coming_online_in_a_group_larger_than_the_presence_limit_pushes_no_status() {
    // Arrange: four members, a limit of three, no direct chats
    let app = spawn_with(|c| c.presence_group_limit = 3).await;
    let team = app.group("alice", &["bob", "carol", "dave"]).await;
    let mut alice = app.events("alice", "snapshot=0", None).await;
    let mut carol = app.events("carol", "snapshot=0", None).await;

    // Act
    let _bob = app.events("bob", "snapshot=0", None).await;

    // Assert
    for (user, sse) in [("alice", &mut alice), ("carol", &mut carol)] {
        let got = events_within(sse, 1.0).await;
        let statuses: Vec<&Event> = got.iter().filter(|e| is_status_about(e, team)).collect();
        assert!(statuses.is_empty(), "{user} got {statuses:?}");
    }
}

#[tokio::test]
async fn dropping_off_in_a_group_larger_than_the_presence_limit_pushes_nothing() {
    // Arrange: four members, a limit of three, no direct chats
    let app = spawn_with(|c| c.presence_group_limit = 3).await;
    app.group("alice", &["bob", "carol", "dave"]).await;
    let bob = app.events("bob", "snapshot=0", None).await;
    let mut alice = app.events("alice", "snapshot=0", None).await;
    wait_for("both streams open", 5.0, || async {
        (app.app.metrics.open("sse").get() == 2).then_some(())
    })
    .await;

    // Act
    bob.close();

    // Assert
    let got = events_within(&mut alice, 1.0).await;
    let presence: Vec<&Event> = got
        .iter()
        .filter(|e| e.event == "opponentStatus" || e.event == "clientConnectionError")
        .collect();
    assert!(presence.is_empty(), "alice got {presence:?}");
}

#[tokio::test]
async fn coming_online_in_a_group_within_the_presence_limit_pushes_a_status() {
    // Arrange: three members, a limit of three, no direct chats
    let app = spawn_with(|c| c.presence_group_limit = 3).await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let mut alice = app.events("alice", "snapshot=0", None).await;
    let mut carol = app.events("carol", "snapshot=0", None).await;

    // Act
    let _bob = app.events("bob", "snapshot=0", None).await;

    // Assert
    for (user, sse) in [("alice", &mut alice), ("carol", &mut carol)] {
        let status = loop {
            let e = sse.next_of("opponentStatus").await;
            if e.data()["users"][0]["userId"] == "bob" {
                break e;
            }
        };
        assert_eq!(status.data()["chatId"], team, "{user}");
        assert_eq!(status.data()["chatIds"], json!([team]), "{user}");
        assert_eq!(status.data()["users"][0]["status"], "online", "{user}");
    }
}

#[tokio::test]
async fn opponent_status_answers_for_a_group_larger_than_the_presence_limit() {
    // Arrange: four members, a limit of three; bob is online
    let app = spawn_with(|c| c.presence_group_limit = 3).await;
    let team = app.group("alice", &["bob", "carol", "dave"]).await;
    let _bob = app.events("bob", "snapshot=0", None).await;
    wait_for("bob online", 5.0, || async {
        let answer = app
            .ok("alice", "opponentStatus", json!({"chatId": team}))
            .await;
        let users = answer["users"].as_array().unwrap().clone();
        let bob = users.iter().find(|u| u["userId"] == "bob").cloned();
        bob.filter(|u| u["status"] == "online").map(|_| ())
    })
    .await;

    // Act
    let answer = app
        .ok("alice", "opponentStatus", json!({"chatId": team}))
        .await;

    // Assert
    assert_eq!(answer["chatId"], team);
    let mut users: Vec<(String, Value, bool)> = answer["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["userId"].as_str().unwrap().to_string(),
                u["status"].clone(),
                u["lastSeen"].is_string(),
            )
        })
        .collect();
    users.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        users,
        [
            ("bob".to_string(), json!("online"), true),
            ("carol".to_string(), json!("offline"), false),
            ("dave".to_string(), json!("offline"), false),
        ]
    );
}
