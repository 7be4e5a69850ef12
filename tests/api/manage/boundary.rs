//! Membership as the access boundary: a removed member gets nothing more of the chat, an added
//! one sees its whole history.

use serde_json::{json, Value};

use crate::helpers::{assert_outcome, concerns, message_field, spawn_app, until_message, NO_CHAT};

/// Asserts that of `events`, those of chat `team` are exactly the message `between` and then
/// the removal.
fn assert_team_ends_at_removal(how: &str, events: &[(String, Value)], team: i64, between: &Value) {
    let of_team: Vec<(&str, Value)> = events
        .iter()
        .filter(|(kind, data)| concerns(kind, data, team))
        .map(|(kind, data)| {
            let key = if kind == "message" {
                data["id"].clone()
            } else {
                data.clone()
            };
            (kind.as_str(), key)
        })
        .collect();
    assert_eq!(
        of_team,
        [
            ("message", between.clone()),
            ("chatDeleted", json!({"chatId": team}))
        ],
        "{how}: events of the chat the user was removed from"
    );
}

#[tokio::test]
async fn a_removed_member_gets_nothing_more_of_the_chat_live_or_on_resume() {
    // Arrange: carol is in a group and in a direct chat with dave; her cursor predates one message
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let other = app.direct_chat("carol", "dave").await;
    app.send_text("alice", team, "old", "before the cursor")
        .await;
    let since = app.cursor("carol").await;
    let between = app
        .send_text("bob", team, "between", "after the cursor")
        .await;
    let mut carol = app.events("carol", "snapshot=0", None).await;

    // Act: remove her, then keep the group busy
    app.ok(
        "alice",
        "removeMember",
        json!({"chatId": team, "userId": "carol"}),
    )
    .await;
    let removal = carol.next().await;
    for (i, user) in ["alice", "bob", "alice"].into_iter().enumerate() {
        app.send_text(user, team, &format!("after{i}"), "not for carol")
            .await;
    }
    app.ok(
        "alice",
        "renameChat",
        json!({"chatId": team, "name": "Without carol"}),
    )
    .await;
    app.ok(
        "alice",
        "addMembers",
        json!({"chatId": team, "userIds": ["erin"]}),
    )
    .await;

    // Assert: live, chatDeleted and then silence about that chat
    assert_eq!(removal.event, "chatDeleted");
    assert!(removal.id.is_some());
    assert_eq!(removal.data(), &json!({"chatId": team}));
    let leaked = carol.next_within(0.5).await;
    assert!(leaked.is_none(), "after the removal carol got {leaked:?}");
    let elsewhere = app
        .send_text("dave", other, "elsewhere", "still here")
        .await;
    let got = carol.next_of("message").await;
    assert_eq!(got.data()["id"], elsewhere["id"]);
    assert_eq!(got.data()["chatId"], other);
    carol.close();

    // Resuming from the old cursor replays up to the removal and nothing of the chat after it
    let mut resumed = app.events("carol", "snapshot=0", Some(since)).await;
    let replay: Vec<(String, Value)> = until_message(&mut resumed, &elsewhere["id"])
        .await
        .into_iter()
        .map(|e| (e.event.clone(), e.data().clone()))
        .collect();
    assert_team_ends_at_removal("SSE resume", &replay, team, &between["id"]);
    assert_eq!(replay.last().unwrap().1["id"], elsewhere["id"]);

    // And so does a poll from the old cursor
    let (status, body) = app.poll("carol", &format!("since={since}&timeout=0")).await;
    assert_eq!(status, 200, "{body}");
    let polled: Vec<(String, Value)> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap().to_string(), e["data"].clone()))
        .collect();
    assert_team_ends_at_removal("poll", &polled, team, &between["id"]);
    assert!(
        polled
            .iter()
            .any(|(kind, data)| kind == "message" && data["id"] == elsewhere["id"]),
        "the poll lost the message of the other chat: {polled:?}"
    );
    let (status, body) = app.post("carol", "history", json!({"chatId": team})).await;
    assert_outcome("history after removal", status, &body, NO_CHAT);
}

#[tokio::test]
async fn an_added_member_sees_the_whole_history_as_read_and_new_messages_live() {
    // Arrange: three messages both members have read
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let mut old = Vec::new();
    for i in 0..3 {
        let sent = app
            .send_text("alice", team, &format!("old{i}"), &format!("old {i}"))
            .await;
        old.push(sent["id"].clone());
    }
    for reader in ["bob", "carol"] {
        app.ok(
            reader,
            "messageStatus",
            json!({"status": "read", "chatId": team, "messageId": old[2]}),
        )
        .await;
    }
    let before = app.ok("alice", "history", json!({"chatId": team})).await;
    assert_eq!(message_field(&before, "status"), ["read", "read", "read"]);
    let mut dave = app.events("dave", "snapshot=0", None).await;

    // Act
    app.ok(
        "alice",
        "addMembers",
        json!({"chatId": team, "userIds": ["dave"]}),
    )
    .await;

    // Assert: the whole history, counted as read, and the authors' statuses unchanged
    let page = app.ok("dave", "history", json!({"chatId": team})).await;
    let ids: Vec<Value> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, old);
    assert_eq!(page["hasMore"], false);
    let seen = app.ok("dave", "chat", json!({"chatId": team})).await;
    assert_eq!(seen["chat"]["unread"], 0);
    let after = app.ok("alice", "history", json!({"chatId": team})).await;
    assert_eq!(message_field(&after, "status"), ["read", "read", "read"]);
    assert_eq!(dave.next_of("chat").await.data()["id"], team);

    // And new messages arrive live
    let new = app.send_text("bob", team, "new", "welcome dave").await;
    let got = dave.next_of("message").await;
    assert_eq!(got.data()["id"], new["id"]);
    assert_eq!(got.data()["text"], "welcome dave");
    let seen = app.ok("dave", "chat", json!({"chatId": team})).await;
    assert_eq!(seen["chat"]["unread"], 1);
}
