//! Counters: unread, lastMessage and status through every change, in every view of a chat.

use serde_json::{json, Value};

use crate::helpers::{message_field, spawn_app, TestApp};

/// Chat `chat` as `user` sees it in the `chats` list, the `chat` request and the snapshot that
/// opens a stream (None where it is absent).
async fn views(app: &TestApp, user: &str, chat: i64) -> [(&'static str, Option<Value>); 3] {
    let find = |list: &Value| {
        list["chats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == chat)
            .cloned()
    };
    let listed = find(&app.ok(user, "chats", json!({})).await);
    let (status, body) = app.post(user, "chat", json!({"chatId": chat})).await;
    let single = match status.as_u16() {
        200 => Some(body["data"]["chat"].clone()),
        404 => {
            assert_eq!(body["error"]["reason"], "chat_not_found", "{body}");
            None
        }
        other => panic!("chat answered {other}: {body}"),
    };
    let mut stream = app.events(user, "", None).await;
    let snapshot = stream.next().await;
    stream.close();
    assert_eq!(snapshot.event, "chats");
    [
        ("chats", listed),
        ("chat", single),
        ("snapshot", find(snapshot.data())),
    ]
}

/// Asserts `user`'s `unread` for `chat` and that its `lastMessage` has the fields of `last` (or
/// is null), in every view.
async fn assert_counters(
    app: &TestApp,
    step: &str,
    user: &str,
    chat: i64,
    unread: i64,
    last: Value,
) {
    for (view, seen) in views(app, user, chat).await {
        let seen = seen.unwrap_or_else(|| panic!("{step}: {user} has no chat {chat} in {view}"));
        assert_eq!(seen["unread"], unread, "{step}: {user}'s unread in {view}");
        let got = &seen["lastMessage"];
        match last.as_object() {
            None => assert_eq!(got, &Value::Null, "{step}: {user}'s lastMessage in {view}"),
            Some(fields) => {
                for (k, v) in fields {
                    assert_eq!(
                        &got[k], v,
                        "{step}: {user}'s lastMessage.{k} in {view}: {got}"
                    );
                }
            }
        }
    }
}

/// Asserts `chat` is gone for `user` in every view.
async fn assert_absent(app: &TestApp, step: &str, user: &str, chat: i64) {
    for (view, seen) in views(app, user, chat).await {
        assert_eq!(
            seen, None,
            "{step}: {user} still sees chat {chat} in {view}"
        );
    }
}

async fn read(app: &TestApp, user: &str, chat: i64, message: &Value) {
    app.ok(
        user,
        "messageStatus",
        json!({"status": "read", "chatId": chat, "messageId": message}),
    )
    .await;
}

#[tokio::test]
async fn unread_and_last_message_follow_sends_reads_edits_and_deletions() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    assert_counters(&app, "a new chat", "alice", chat, 0, Value::Null).await;
    assert_counters(&app, "a new chat", "bob", chat, 0, Value::Null).await;

    // Act + Assert: two sends
    let one = app.send_text("alice", chat, "1", "one").await["id"].clone();
    let two = app.send_text("alice", chat, "2", "two").await["id"].clone();
    let last = json!({"id": two, "text": "two", "deleted": false, "editDate": null});
    assert_counters(&app, "after two sends", "bob", chat, 2, last.clone()).await;
    assert_counters(&app, "after two sends", "alice", chat, 0, last).await;

    // Act + Assert: bob reads the first
    read(&app, "bob", chat, &one).await;
    let last = json!({"id": two, "text": "two"});
    assert_counters(&app, "after reading one", "bob", chat, 1, last.clone()).await;
    assert_counters(&app, "after reading one", "alice", chat, 0, last).await;

    // Act + Assert: the last message is edited
    let edited = app
        .ok(
            "alice",
            "editMessage",
            json!({"messageId": two, "text": "two, edited"}),
        )
        .await["message"]
        .clone();
    assert!(edited["editDate"].is_string(), "{edited}");
    let last = json!({"id": two, "text": "two, edited", "editDate": edited["editDate"]});
    assert_counters(&app, "after the edit", "bob", chat, 1, last.clone()).await;
    assert_counters(&app, "after the edit", "alice", chat, 0, last).await;

    // Act + Assert: the unread last message is deleted
    app.ok("alice", "deleteMessage", json!({"messageId": two}))
        .await;
    let last = json!({"id": two, "deleted": true, "text": ""});
    assert_counters(&app, "after the deletion", "bob", chat, 0, last.clone()).await;
    assert_counters(&app, "after the deletion", "alice", chat, 0, last).await;

    // Act + Assert: an older unread message is deleted
    let three = app.send_text("alice", chat, "3", "three").await["id"].clone();
    let four = app.send_text("alice", chat, "4", "four").await["id"].clone();
    assert_counters(&app, "two more", "bob", chat, 2, json!({"id": four})).await;
    app.ok("alice", "deleteMessage", json!({"messageId": three}))
        .await;
    let last = json!({"id": four, "text": "four", "deleted": false});
    assert_counters(&app, "an older one deleted", "bob", chat, 1, last.clone()).await;

    // Act + Assert: bob reads everything
    read(&app, "bob", chat, &four).await;
    assert_counters(&app, "all read", "bob", chat, 0, last.clone()).await;
    assert_counters(&app, "all read", "alice", chat, 0, last).await;
}

#[tokio::test]
async fn clear_chat_zeroes_counters_only_for_whom_it_was_cleared() {
    // Arrange: a direct chat where bob has two unread messages (sending reads what came before)
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    app.send_text("bob", chat, "b1", "from bob").await;
    app.send_text("alice", chat, "a1", "one").await;
    let a2 = app.send_text("alice", chat, "a2", "two").await["id"].clone();
    assert_counters(&app, "before", "bob", chat, 2, json!({"id": a2})).await;
    assert_counters(&app, "before", "alice", chat, 0, json!({"id": a2})).await;

    // Act + Assert: alice clears for herself; bob's counters stay
    app.ok("alice", "clearChat", json!({"chatId": chat})).await;
    assert_counters(&app, "alice cleared", "alice", chat, 0, Value::Null).await;
    assert_counters(&app, "alice cleared", "bob", chat, 2, json!({"id": a2})).await;

    // Act + Assert: bob clears for himself
    app.ok("bob", "clearChat", json!({"chatId": chat})).await;
    assert_counters(&app, "bob cleared", "bob", chat, 0, Value::Null).await;
    assert_counters(&app, "bob cleared", "alice", chat, 0, Value::Null).await;

    // Act + Assert: a new message counts again
    let a3 = app.send_text("alice", chat, "a3", "three").await["id"].clone();
    let last = json!({"id": a3, "text": "three"});
    assert_counters(&app, "after clearing", "bob", chat, 1, last.clone()).await;
    assert_counters(&app, "after clearing", "alice", chat, 0, last).await;

    // Act + Assert: alice clears for both
    app.ok(
        "alice",
        "clearChat",
        json!({"chatId": chat, "forAll": true}),
    )
    .await;
    assert_counters(&app, "cleared for all", "bob", chat, 0, Value::Null).await;
    assert_counters(&app, "cleared for all", "alice", chat, 0, Value::Null).await;

    // Arrange: a group with one unread message for bob and carol
    let team = app.group("alice", &["bob", "carol"]).await;
    let g1 = app.send_text("alice", team, "g1", "hi all").await["id"].clone();

    // Act + Assert: carol clears for herself
    app.ok(
        "carol",
        "clearChat",
        json!({"chatId": team, "forAll": false}),
    )
    .await;
    assert_counters(&app, "carol cleared", "carol", team, 0, Value::Null).await;
    assert_counters(&app, "carol cleared", "bob", team, 1, json!({"id": g1})).await;
    assert_counters(&app, "carol cleared", "alice", team, 0, json!({"id": g1})).await;

    // Act + Assert: the admin clears for all
    app.ok(
        "alice",
        "clearChat",
        json!({"chatId": team, "forAll": true}),
    )
    .await;
    for user in ["alice", "bob", "carol"] {
        assert_counters(
            &app,
            "the admin cleared for all",
            user,
            team,
            0,
            Value::Null,
        )
        .await;
    }
}

#[tokio::test]
async fn adding_and_removing_members_keeps_counters_right() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    app.send_text("alice", team, "g1", "one").await;
    let g2 = app.send_text("alice", team, "g2", "two").await["id"].clone();
    assert_counters(&app, "before", "carol", team, 2, json!({"id": g2})).await;

    // Act + Assert: dave joins
    app.ok(
        "alice",
        "addMembers",
        json!({"chatId": team, "userIds": ["dave"]}),
    )
    .await;
    let last = json!({"id": g2, "text": "two"});
    assert_counters(&app, "dave added", "dave", team, 0, last.clone()).await;
    assert_counters(&app, "dave added", "carol", team, 2, last.clone()).await;
    assert_counters(&app, "dave added", "bob", team, 2, last.clone()).await;
    assert_counters(&app, "dave added", "alice", team, 0, last).await;

    // Act + Assert: a message after he joined
    let g3 = app.send_text("bob", team, "g3", "three").await["id"].clone();
    let last = json!({"id": g3, "text": "three"});
    assert_counters(&app, "after g3", "dave", team, 1, last.clone()).await;
    assert_counters(&app, "after g3", "carol", team, 3, last.clone()).await;

    // Act + Assert: carol is removed
    app.ok(
        "alice",
        "removeMember",
        json!({"chatId": team, "userId": "carol"}),
    )
    .await;
    assert_absent(&app, "carol removed", "carol", team).await;
    assert_counters(&app, "carol removed", "dave", team, 1, last.clone()).await;
    assert_counters(&app, "carol removed", "bob", team, 0, last.clone()).await;
    assert_counters(&app, "carol removed", "alice", team, 1, last.clone()).await;

    // Act + Assert: dave leaves
    app.ok(
        "dave",
        "removeMember",
        json!({"chatId": team, "userId": "dave"}),
    )
    .await;
    assert_absent(&app, "dave left", "dave", team).await;
    assert_counters(&app, "dave left", "alice", team, 1, last.clone()).await;
    assert_counters(&app, "dave left", "bob", team, 0, last).await;
}

#[tokio::test]
async fn status_is_the_least_advanced_receipt_of_the_other_members() {
    // Arrange: bob and carol never open a stream or poll, so only explicit receipts count
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let m1 = app.send_text("alice", team, "m1", "one").await["id"].clone();
    let m2 = app.send_text("alice", team, "m2", "two").await["id"].clone();
    // (receipt: who, which status, up to which message; then the status of m1 and of m2)
    #[rustfmt::skip]
    let steps: &[(&str, &str, &Value, &str, &str)] = &[
        ("bob", "delivered", &m2, "sent", "sent"),
        ("carol", "delivered", &m1, "delivered", "sent"),
        ("carol", "delivered", &m2, "delivered", "delivered"),
        ("bob", "read", &m1, "delivered", "delivered"),
        ("carol", "read", &m2, "read", "delivered"),
        ("bob", "delivered", &m2, "read", "delivered"),
        ("bob", "read", &m2, "read", "read"),
    ];
    let page = app.ok("alice", "history", json!({"chatId": team})).await;
    assert_eq!(
        message_field(&page, "status"),
        ["sent", "sent"],
        "before any receipt"
    );

    for &(who, status, upto, want1, want2) in steps {
        // Act
        app.ok(
            who,
            "messageStatus",
            json!({"status": status, "chatId": team, "messageId": upto}),
        )
        .await;

        // Assert
        let step = format!("after {who} {status} up to {upto}");
        for viewer in ["alice", "bob"] {
            let page = app.ok(viewer, "history", json!({"chatId": team})).await;
            assert_eq!(
                message_field(&page, "status"),
                [want1, want2],
                "{step}, seen by {viewer}"
            );
        }
        let chat = app.ok("alice", "chat", json!({"chatId": team})).await;
        assert_eq!(
            chat["chat"]["lastMessage"]["status"], want2,
            "{step}: lastMessage"
        );
        let list = app.ok("alice", "chats", json!({})).await;
        assert_eq!(
            list["chats"][0]["lastMessage"]["status"], want2,
            "{step}: chats"
        );
    }
}
