//! deleteChat and clearChat: who may delete or clear a chat, and who is told.

use serde_json::{json, Value};

use super::{Users, Watchers};
use crate::helpers::{assert_outcome, spawn_app, Outcome, FORBIDDEN, NO_CHAT, NO_CONTENT, OK};

#[tokio::test]
async fn delete_chat_is_for_either_direct_member_and_the_group_admin() {
    // (case, direct chat?, caller, outcome)
    #[rustfmt::skip]
    let cases: &[(&str, bool, &str, Outcome)] = &[
        ("a non-member, direct", true, "eve", NO_CHAT),
        ("one member, direct", true, "alice", NO_CONTENT),
        ("the other member, direct", true, "bob", NO_CONTENT),
        ("a member of a group", false, "bob", FORBIDDEN),
        ("a non-member of a group", false, "eve", NO_CHAT),
        ("the group's admin", false, "alice", NO_CONTENT),
    ];
    let app = spawn_app().await;
    for &(case, direct, caller, want) in cases {
        // Arrange
        let (chat, members) = if direct {
            (app.direct_chat("alice", "bob").await, vec!["alice", "bob"])
        } else {
            (
                app.group("alice", &["bob", "carol"]).await,
                vec!["alice", "bob", "carol"],
            )
        };
        app.send_text("alice", chat, &format!("{case} 1"), "before")
            .await;

        // Act
        let (status, body) = app
            .post(caller, "deleteChat", json!({"chatId": chat}))
            .await;

        // Assert
        assert_outcome(case, status, &body, want);
        for user in members {
            let (status, body) = app.post(user, "chat", json!({"chatId": chat})).await;
            if want == NO_CONTENT {
                assert_outcome(case, status, &body, NO_CHAT);
                let (status, body) = app.post(user, "history", json!({"chatId": chat})).await;
                assert_outcome(case, status, &body, NO_CHAT);
                let id = format!("{case} {user}");
                let message = json!({"clientMessageId": id, "chatId": chat, "text": "after"});
                let (status, body) = app
                    .post(user, "message", json!({"messages": [message]}))
                    .await;
                assert_outcome(case, status, &body, NO_CHAT);
            } else {
                assert_outcome(case, status, &body, OK);
            }
        }
    }
}

#[tokio::test]
async fn delete_chat_pushes_chat_deleted_to_every_member() {
    // (case, members with the creator first, caller)
    #[rustfmt::skip]
    let cases: &[(&str, &[&str], &str)] = &[
        ("a direct chat", &["alice", "bob"], "bob"),
        ("a group", &["alice", "bob", "carol"], "alice"),
    ];
    for &(case, members, caller) in cases {
        // Arrange
        let app = spawn_app().await;
        let chat = app
            .ok(members[0], "createChat", json!({"userIds": &members[1..]}))
            .await["chat"]["id"]
            .as_i64()
            .unwrap();
        let mut watchers = Watchers::open(&app, members).await;

        // Act
        let (status, body) = app
            .post(caller, "deleteChat", json!({"chatId": chat}))
            .await;

        // Assert
        assert_outcome(case, status, &body, NO_CONTENT);
        for &user in members {
            let gone = watchers.got(&app, user, "chatDeleted").await;
            assert_eq!(gone, json!({"chatId": chat}), "{case}: {user}");
            let list = app.ok(user, "chats", json!({})).await;
            assert_eq!(list["chats"], json!([]), "{case}: {user}");
        }
    }
}

#[tokio::test]
async fn clear_chat_is_for_any_member_and_for_all_by_direct_members_and_the_group_admin() {
    // (case, direct chat?, caller, forAll, outcome)
    #[rustfmt::skip]
    let cases: &[(&str, bool, &str, bool, Outcome)] = &[
        ("a direct member for themselves", true, "alice", false, NO_CONTENT),
        ("a direct member for all", true, "bob", true, NO_CONTENT),
        ("a group member for themselves", false, "bob", false, NO_CONTENT),
        ("a group member for all", false, "bob", true, FORBIDDEN),
        ("the group's admin for all", false, "alice", true, NO_CONTENT),
        ("a non-member for themselves", false, "eve", false, NO_CHAT),
        ("a non-member for all", true, "eve", true, NO_CHAT),
    ];
    let app = spawn_app().await;
    for &(case, direct, caller, for_all, want) in cases {
        // Arrange: a chat with a message nobody has cleared yet
        let (chat, members) = if direct {
            (app.direct_chat("alice", "bob").await, vec!["alice", "bob"])
        } else {
            (
                app.group("alice", &["bob", "carol"]).await,
                vec!["alice", "bob", "carol"],
            )
        };
        let sent = app.send_text("alice", chat, case, "to be cleared").await;

        // Act
        let (status, body) = app
            .post(
                caller,
                "clearChat",
                json!({"chatId": chat, "forAll": for_all}),
            )
            .await;

        // Assert
        assert_outcome(case, status, &body, want);
        for user in members {
            let cleared = want == NO_CONTENT && (for_all || user == caller);
            let page = app.ok(user, "history", json!({"chatId": chat})).await;
            let last = page["messages"].as_array().unwrap().last().cloned();
            if cleared {
                assert_eq!(last, None, "{case}: cleared for {user}");
            } else {
                assert_eq!(last.unwrap()["id"], sent["id"], "{case}: kept for {user}");
            }
        }
    }
}

#[tokio::test]
async fn clear_chat_pushes_chat_cleared_only_to_whom_it_was_cleared_for() {
    const PAIR: Users = &["alice", "bob"];
    const TEAM: Users = &["alice", "bob", "carol"];
    // (case, members with the creator first, caller, forAll, cleared for)
    #[rustfmt::skip]
    let cases: &[(&str, Users, &str, bool, Users)] = &[
        ("a direct member for themselves", PAIR, "bob", false, &["bob"]),
        ("a direct member for all", PAIR, "alice", true, PAIR),
        ("a group member for themselves", TEAM, "carol", false, &["carol"]),
        ("the group's admin for all", TEAM, "alice", true, TEAM),
    ];
    for &(case, members, caller, for_all, cleared_for) in cases {
        // Arrange
        let app = spawn_app().await;
        let chat = app
            .ok(members[0], "createChat", json!({"userIds": &members[1..]}))
            .await["chat"]["id"]
            .as_i64()
            .unwrap();
        let mut last = Value::Null;
        for i in 0..3 {
            last = app
                .send_text(members[i % 2], chat, &format!("m{i}"), "hello")
                .await["id"]
                .clone();
        }
        let mut watchers = Watchers::open(&app, members).await;

        // Act
        let (status, body) = app
            .post(
                caller,
                "clearChat",
                json!({"chatId": chat, "forAll": for_all}),
            )
            .await;

        // Assert
        assert_outcome(case, status, &body, NO_CONTENT);
        for &user in cleared_for {
            let cleared = watchers.got(&app, user, "chatCleared").await;
            assert_eq!(
                cleared,
                json!({"chatId": chat, "upTo": last}),
                "{case}: {user}"
            );
        }
        let sentinel = app.send_text(caller, chat, "sentinel", "after").await;
        for &user in members.iter().filter(|u| !cleared_for.contains(u)) {
            watchers
                .got_no(&app, user, "chatCleared", &sentinel["id"])
                .await;
        }
    }
}
