//! Counters and paging: unread, lastMessage and status through every change; walks never skip.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// One history page's messages; asserts they are in ascending id order.
async fn page(app: &TestApp, user: &str, query: Value) -> (Vec<Value>, bool) {
    let data = app.ok(user, "history", query).await;
    let messages = data["messages"].as_array().unwrap().clone();
    let ids: Vec<i64> = messages.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "a page out of order: {ids:?}"
    );
    (messages, data["hasMore"] == true)
}

/// Every message of `chat` for `user`, walking backwards from the newest page, `limit` at a time.
async fn walk_back(app: &TestApp, user: &str, chat: i64, limit: u64) -> Vec<Value> {
    let (mut all, mut more) = page(app, user, json!({"chatId": chat, "limit": limit})).await;
    for _ in 0..1000 {
        if !more {
            return all;
        }
        let before = all[0]["id"].clone();
        let (mut older, has_more) = page(
            app,
            user,
            json!({"chatId": chat, "limit": limit, "before": before}),
        )
        .await;
        assert!(
            !older.is_empty(),
            "hasMore promised older messages than {before}"
        );
        older.append(&mut all);
        (all, more) = (older, has_more);
    }
    panic!("the backward walk did not end");
}

/// Every message of `chat` for `user`, walking forwards from the start, `limit` at a time.
async fn walk_forward(app: &TestApp, user: &str, chat: i64, limit: u64) -> Vec<Value> {
    let mut all: Vec<Value> = Vec::new();
    for _ in 0..1000 {
        let after = all.last().map_or(json!(0), |m| m["id"].clone());
        let (newer, more) = page(
            app,
            user,
            json!({"chatId": chat, "limit": limit, "after": after}),
        )
        .await;
        all.extend(newer);
        if !more {
            return all;
        }
    }
    panic!("the forward walk did not end");
}

/// The ids of `messages`, in order.
fn ids(messages: &[Value]) -> Vec<i64> {
    messages.iter().map(|m| m["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn history_walks_never_skip_while_messages_keep_arriving() {
    // Arrange: 100 messages, and a sender that keeps adding 150 more one by one
    const MORE: usize = 150;
    let app = Arc::new(spawn_app().await);
    let chat = app.direct_chat("alice", "bob").await;
    let batch: Vec<_> = (0..100)
        .map(|i| json!({"clientMessageId": format!("old{i}"), "chatId": chat, "text": "old"}))
        .collect();
    app.ok("alice", "message", json!({"messages": batch})).await;
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (app, sent) = (app.clone(), sent.clone());
        tokio::spawn(async move {
            for i in 0..MORE {
                app.send_text("bob", chat, &format!("new{i}"), &format!("new {i}"))
                    .await;
                sent.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    while sent.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    // Act: walk backwards, then forwards, 7 at a time, while the sender goes on
    let sent_at_start = sent.load(Ordering::SeqCst);
    let backward = walk_back(&app, "alice", chat, 7).await;
    let newest_before_forward = page(&app, "alice", json!({"chatId": chat, "limit": 1}))
        .await
        .0;
    let forward = walk_forward(&app, "alice", chat, 7).await;
    let sent_at_end = sent.load(Ordering::SeqCst);
    sender.await.unwrap();

    // Assert
    assert!(
        sent_at_end > sent_at_start && sent_at_start < MORE,
        "the walks did not overlap the sends ({sent_at_start} then {sent_at_end} of {MORE})"
    );
    let everything = ids(&walk_forward(&app, "alice", chat, 200).await);
    assert_eq!(everything.len(), 100 + MORE);
    let (backward, forward) = (ids(&backward), ids(&forward));
    let start_forward = newest_before_forward[0]["id"].as_i64().unwrap();

    // Backwards: everything that existed when it started (up to its first page), once, in order
    assert!(
        backward.windows(2).all(|w| w[0] < w[1]),
        "backward: {backward:?}"
    );
    let start_back = *backward.last().unwrap();
    let existed: Vec<i64> = everything
        .iter()
        .copied()
        .filter(|id| *id <= start_back)
        .collect();
    assert!(existed.len() >= 100 + sent_at_start, "{start_back}");
    assert_eq!(
        backward, existed,
        "the backward walk skipped or repeated messages"
    );

    // Forwards: strictly increasing, no gap, and at least everything that existed at its start
    assert!(
        forward.windows(2).all(|w| w[0] < w[1]),
        "forward: {forward:?}"
    );
    assert_eq!(
        forward,
        everything[..forward.len()],
        "the forward walk skipped messages"
    );
    assert!(
        forward.last().is_some_and(|id| *id >= start_forward),
        "the forward walk stopped before {start_forward}: {forward:?}"
    );
}

#[tokio::test]
async fn history_shows_deleted_messages_and_hides_cleared_ones_from_whom_they_were_cleared() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let batch: Vec<_> = (0..10)
        .map(
            |i| json!({"clientMessageId": format!("m{i}"), "chatId": chat, "text": format!("{i}")}),
        )
        .collect();
    let sent = app.ok("alice", "message", json!({"messages": batch})).await;
    let sent = ids(sent["messages"].as_array().unwrap());

    // Act
    app.ok("alice", "deleteMessage", json!({"messageId": sent[3]}))
        .await;

    // Assert: the deleted message stays in place, wiped, for both and both ways
    for user in ["alice", "bob"] {
        for (way, walked) in [
            ("backwards", walk_back(&app, user, chat, 3).await),
            ("forwards", walk_forward(&app, user, chat, 3).await),
        ] {
            assert_eq!(ids(&walked), sent, "{user} {way}");
            for m in &walked {
                let deleted = m["id"] == sent[3];
                assert_eq!(m["deleted"], deleted, "{user} {way}: {m}");
                if deleted {
                    assert_eq!(m["text"], "", "{user} {way}");
                }
            }
        }
    }

    // Act
    app.ok("bob", "clearChat", json!({"chatId": chat})).await;

    // Assert: gone for bob, whatever the cursor; still there for alice
    assert_eq!(walk_back(&app, "bob", chat, 3).await, Vec::<Value>::new());
    assert_eq!(
        walk_forward(&app, "bob", chat, 3).await,
        Vec::<Value>::new()
    );
    let (older, more) = page(
        &app,
        "bob",
        json!({"chatId": chat, "before": sent[9] + 1, "limit": 3}),
    )
    .await;
    assert_eq!((older, more), (vec![], false));
    assert_eq!(ids(&walk_back(&app, "alice", chat, 3).await), sent);
    assert_eq!(ids(&walk_forward(&app, "alice", chat, 3).await), sent);

    // Act + Assert: what comes after the clear shows for both
    let after = app
        .send_text("alice", chat, "after", "after the clear")
        .await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(ids(&walk_back(&app, "bob", chat, 3).await), [after]);
    assert_eq!(ids(&walk_forward(&app, "bob", chat, 3).await), [after]);
    let mut all = sent.clone();
    all.push(after);
    assert_eq!(ids(&walk_back(&app, "alice", chat, 3).await), all);
}
