//! addMembers and removeMember: who may add or remove whom, who is told, and who becomes admin
//! when the admin leaves.

use std::time::Duration;

use serde_json::json;

use super::Watchers;
use crate::helpers::{
    assert_outcome, member_ids, polled_of, spawn_app, Outcome, BAD_REQUEST, FORBIDDEN, NO_CHAT, OK,
};

#[tokio::test]
async fn add_members_is_for_the_group_admin_only() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let direct = app.direct_chat("alice", "bob").await;
    // (case, caller, chat, users to add, outcome)
    #[rustfmt::skip]
    let cases: &[(&str, &str, i64, &[&str], Outcome)] = &[
        ("the admin", "alice", team, &["dave"], OK),
        ("a member", "bob", team, &["erin"], FORBIDDEN),
        ("a non-member", "eve", team, &["erin"], NO_CHAT),
        ("a direct chat", "alice", direct, &["erin"], FORBIDDEN),
        ("no users", "alice", team, &[], BAD_REQUEST),
    ];

    for &(case, caller, chat, add, want) in cases {
        // Act
        let (status, body) = app
            .post(
                caller,
                "addMembers",
                json!({"chatId": chat, "userIds": add}),
            )
            .await;

        // Assert
        assert_outcome(case, status, &body, want);
    }
    let seen = app.ok("alice", "chat", json!({"chatId": team})).await;
    assert_eq!(member_ids(&seen["chat"]), ["alice", "bob", "carol", "dave"]);
    let pair = app.ok("alice", "chat", json!({"chatId": direct})).await;
    assert_eq!(member_ids(&pair["chat"]), ["alice", "bob"]);
    let (status, body) = app.post("erin", "chat", json!({"chatId": team})).await;
    assert_outcome("erin was never added", status, &body, NO_CHAT);
}

#[tokio::test]
async fn add_members_pushes_the_chat_to_old_and_new_members() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let mut watchers = Watchers::open(&app, &["alice", "bob", "carol", "dave"]).await;

    // Act
    let added = app
        .ok(
            "alice",
            "addMembers",
            json!({"chatId": team, "userIds": ["dave"]}),
        )
        .await;

    // Assert
    let all = ["alice", "bob", "carol", "dave"];
    assert_eq!(member_ids(&added["chat"]), all);
    let profiles: Vec<&str> = added["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert!(profiles.contains(&"dave"), "{profiles:?}");
    for user in all {
        let chat = watchers.got(&app, user, "chat").await;
        assert_eq!(chat["id"], team, "{user}");
        assert_eq!(member_ids(&chat), all, "{user}");
    }
}

#[tokio::test]
async fn remove_member_lets_the_admin_remove_anyone_and_members_only_leave() {
    // (case, direct chat?, caller, removed, outcome)
    #[rustfmt::skip]
    let cases: &[(&str, bool, &str, &str, Outcome)] = &[
        ("the admin removes a member", false, "alice", "bob", OK),
        ("a member leaves", false, "bob", "bob", OK),
        ("a member removes another", false, "bob", "carol", FORBIDDEN),
        ("a member removes the admin", false, "bob", "alice", FORBIDDEN),
        ("a non-member removes a member", false, "eve", "bob", NO_CHAT),
        ("the admin removes a non-member", false, "alice", "eve", BAD_REQUEST),
        ("a member leaves a direct chat", true, "bob", "bob", FORBIDDEN),
        ("a member removes the other, direct", true, "alice", "bob", FORBIDDEN),
    ];
    let app = spawn_app().await;
    for &(case, direct, caller, removed, want) in cases {
        // Arrange
        let (chat, members) = if direct {
            (app.direct_chat("alice", "bob").await, vec!["alice", "bob"])
        } else {
            (
                app.group("alice", &["bob", "carol"]).await,
                vec!["alice", "bob", "carol"],
            )
        };

        // Act
        let (status, body) = app
            .post(
                caller,
                "removeMember",
                json!({"chatId": chat, "userId": removed}),
            )
            .await;

        // Assert
        assert_outcome(case, status, &body, want);
        let remaining: Vec<&str> = members
            .iter()
            .copied()
            .filter(|m| want != OK || *m != removed)
            .collect();
        let seen = app.ok("alice", "chat", json!({"chatId": chat})).await;
        assert_eq!(member_ids(&seen["chat"]), remaining, "{case}");
        if want == OK {
            let (status, body) = app.post(removed, "chat", json!({"chatId": chat})).await;
            assert_outcome(case, status, &body, NO_CHAT);
        }
    }
}

#[tokio::test]
async fn when_the_admin_leaves_the_longest_standing_member_becomes_admin() {
    // Arrange: zed joined with the group; abe, first by name, joined later
    let app = spawn_app().await;
    let team = app.group("alice", &["zed", "yan"]).await;
    app.ok(
        "alice",
        "removeMember",
        json!({"chatId": team, "userId": "yan"}),
    )
    .await;
    // abe joins at a later millisecond than zed did.
    tokio::time::sleep(Duration::from_millis(20)).await;
    app.ok(
        "alice",
        "addMembers",
        json!({"chatId": team, "userIds": ["abe"]}),
    )
    .await;

    // Act
    let (status, body) = app
        .post(
            "alice",
            "removeMember",
            json!({"chatId": team, "userId": "alice"}),
        )
        .await;

    // Assert
    assert_outcome("the admin leaves", status, &body, OK);
    let seen = app.ok("abe", "chat", json!({"chatId": team})).await;
    assert_eq!(seen["chat"]["admin"], "zed");
    assert_eq!(member_ids(&seen["chat"]), ["abe", "zed"]);
    let (status, body) = app
        .post(
            "zed",
            "renameChat",
            json!({"chatId": team, "name": "Zed's"}),
        )
        .await;
    assert_outcome("the new admin renames", status, &body, OK);
    let (status, body) = app
        .post(
            "abe",
            "renameChat",
            json!({"chatId": team, "name": "Abe's"}),
        )
        .await;
    assert_outcome("a member renames", status, &body, FORBIDDEN);
}

#[tokio::test]
async fn remove_member_pushes_the_chat_to_the_remaining_and_chat_deleted_to_the_removed() {
    // (case, caller, removed, remaining)
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, &[&str])] = &[
        ("the admin removes carol", "alice", "carol", &["alice", "bob"]),
        ("bob leaves", "bob", "bob", &["alice", "carol"]),
    ];
    for &(case, caller, removed, remaining) in cases {
        // Arrange
        let app = spawn_app().await;
        let team = app.group("alice", &["bob", "carol"]).await;
        let mut watchers = Watchers::open(&app, &["alice", "bob", "carol"]).await;

        // Act
        app.ok(
            caller,
            "removeMember",
            json!({"chatId": team, "userId": removed}),
        )
        .await;

        // Assert
        for &user in remaining {
            let chat = watchers.got(&app, user, "chat").await;
            assert_eq!(chat["id"], team, "{case}: {user}");
            assert_eq!(member_ids(&chat), remaining, "{case}: {user}");
        }
        let gone = watchers.got(&app, removed, "chatDeleted").await;
        assert_eq!(gone, json!({"chatId": team}), "{case}");
        let since = watchers.stream(removed).1;
        let chats = polled_of(&app, removed, since, "chat").await;
        assert!(chats.is_empty(), "{case}: the removed got {chats:?}");
    }
}
