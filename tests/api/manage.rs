//! Chat management: who may change a chat, who is told, and membership as the access boundary.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    assert_outcome, concerns, member_ids, message_field, polled_of, spawn_app, until_message,
    Event, Outcome, Sse, TestApp, BAD_REQUEST, FORBIDDEN, NO_CHAT, NO_CONTENT, OK,
};

/// Some user ids.
type Users = &'static [&'static str];

/// Users watching for pushes both ways: a live SSE stream each, and a poll cursor taken before
/// the action.
struct Watchers {
    watching: Vec<(String, Sse, i64)>,
}

impl Watchers {
    async fn open(app: &TestApp, users: &[&str]) -> Watchers {
        let mut watching = Vec::new();
        for &user in users {
            let since = app.cursor(user).await;
            let sse = app.events(user, "snapshot=0", None).await;
            watching.push((user.to_string(), sse, since));
        }
        Watchers { watching }
    }

    fn stream(&mut self, user: &str) -> (&mut Sse, i64) {
        let (_, sse, since) = self
            .watching
            .iter_mut()
            .find(|(u, ..)| u == user)
            .expect("a watched user");
        (sse, *since)
    }

    /// The `kind` event `user` got on the stream; asserts it is stored and that a poll from the
    /// cursor returns exactly it.
    async fn got(&mut self, app: &TestApp, user: &str, kind: &str) -> Value {
        let (sse, since) = self.stream(user);
        let live = sse.next_of(kind).await;
        assert!(live.id.is_some(), "{kind} to {user} is a stored event");
        let polled = polled_of(app, user, since, kind).await;
        assert_eq!(polled, [live.data().clone()], "{kind} polled by {user}");
        live.data().clone()
    }

    /// Asserts `user` got no `kind` event: none on the stream before the `message` with id
    /// `sentinel` (sent after the action), none on a poll from the cursor.
    async fn got_no(&mut self, app: &TestApp, user: &str, kind: &str, sentinel: &Value) {
        let (sse, since) = self.stream(user);
        let before = until_message(sse, sentinel).await;
        let pushed: Vec<&Event> = before.iter().filter(|e| e.event == kind).collect();
        assert!(
            pushed.is_empty(),
            "{user} got {kind} on the stream: {pushed:?}"
        );
        let polled = polled_of(app, user, since, kind).await;
        assert!(polled.is_empty(), "{user} got {kind} on a poll: {polled:?}");
    }
}

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
