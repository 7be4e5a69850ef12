//! renameChat: for the group admin only, and pushed to every member.

use serde_json::{json, Value};

use super::Watchers;
use crate::helpers::{
    assert_outcome, member_ids, spawn_app, Outcome, BAD_REQUEST, FORBIDDEN, NO_CHAT, OK,
};

#[tokio::test]
async fn rename_chat_is_for_the_group_admin_only() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let direct = app.direct_chat("alice", "bob").await;
    // (case, caller, chat, name, outcome)
    #[rustfmt::skip]
    let cases: &[(&str, &str, i64, &str, Outcome)] = &[
        ("the admin", "alice", team, "Renamed", OK),
        ("a member", "bob", team, "By bob", FORBIDDEN),
        ("a non-member", "eve", team, "By eve", NO_CHAT),
        ("a direct chat", "alice", direct, "Pair", FORBIDDEN),
        ("an unknown chat", "alice", 999_999, "X", NO_CHAT),
        ("a blank name", "alice", team, "  ", BAD_REQUEST),
    ];

    for &(case, caller, chat, name, want) in cases {
        // Act
        let (status, body) = app
            .post(caller, "renameChat", json!({"chatId": chat, "name": name}))
            .await;

        // Assert
        assert_outcome(case, status, &body, want);
        if want == OK {
            assert_eq!(body["data"]["chat"]["name"], name, "{case}");
        }
    }
    let seen = app.ok("carol", "chat", json!({"chatId": team})).await;
    assert_eq!(seen["chat"]["name"], "Renamed");
    let pair = app.ok("bob", "chat", json!({"chatId": direct})).await;
    assert_eq!(pair["chat"]["name"], Value::Null);
}

#[tokio::test]
async fn rename_chat_pushes_the_new_name_to_every_member() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let mut watchers = Watchers::open(&app, &["alice", "bob", "carol"]).await;

    // Act
    app.ok(
        "alice",
        "renameChat",
        json!({"chatId": team, "name": "New name"}),
    )
    .await;

    // Assert
    for user in ["alice", "bob", "carol"] {
        let chat = watchers.got(&app, user, "chat").await;
        assert_eq!(chat["id"], team, "{user}");
        assert_eq!(chat["name"], "New name", "{user}");
        assert_eq!(member_ids(&chat), ["alice", "bob", "carol"], "{user}");
    }
}
