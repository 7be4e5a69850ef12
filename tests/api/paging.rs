//! History paging: walks both ways never skip while messages keep arriving; deleted messages
//! stay in place, cleared ones are gone for whom they were cleared.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

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
                // One by one, so that the sends keep arriving during the walks.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    crate::helpers::wait_for("the sender's first 5 messages", 10.0, || async {
        (sent.load(Ordering::SeqCst) >= 5).then_some(())
    })
    .await;

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
