//! The feed under both transports at its edges: a poll that ends while the feed is still judging
//! what it received, a stream reset in the middle while memberships changed, what a removed
//! member is shown when resuming, and the host posting as any member of a large chat.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_with, wait_for, TestApp};

/// How many connections the server's reader pool holds.
const READERS: usize = 8;

/// Holds every connection of the server's reader pool for `hold`, so any read the server starts
/// meanwhile waits that long. Returns once the connections are taken; await the handles to know
/// they are given back.
async fn hold_readers(app: &TestApp, hold: Duration) -> Vec<tokio::task::JoinHandle<()>> {
    let taken = Arc::new(AtomicUsize::new(0));
    let handles = (0..READERS)
        .map(|_| {
            let (store, taken) = (app.app.store.clone(), taken.clone());
            tokio::spawn(async move {
                store
                    .read(move |_| {
                        taken.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(hold);
                        Ok(())
                    })
                    .await
                    .unwrap();
            })
        })
        .collect();
    wait_for("every reader taken", 5.0, || async {
        (taken.load(Ordering::SeqCst) == READERS).then_some(())
    })
    .await;
    handles
}

/// Polls `user` from `since` (not waiting) until an answer is empty; returns every event in order.
async fn drain(app: &TestApp, user: &str, mut since: i64) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let (status, body) = app.poll(user, &format!("since={since}&timeout=0")).await;
        assert_eq!(status, 200, "{body}");
        let events = body["events"].as_array().unwrap().clone();
        since = body["next"].as_i64().unwrap();
        if events.is_empty() {
            return out;
        }
        out.extend(events);
    }
}

/// One held poll of bob's from his cursor, during which `dave` is added to `team`: the group
/// gets a chatMembers and a chat in one commit, and the poll's timeout passes while the chat is
/// being rendered for bob (reads are slow meanwhile). Returns the events the poll and the polls
/// chained from its `next` delivered, and the events the store holds after the cursor.
async fn poll_through_a_slow_render(
    app: &TestApp,
    team: i64,
    dave: &str,
) -> (Vec<Value>, Vec<Value>) {
    let since = app.cursor("bob").await;
    let query = format!("since={since}&timeout=1");
    let held = app.poll("bob", &query);
    let change = async {
        // Lets the poll reach its wait: nothing outside the server shows that it has (the
        // open-poll gauge counts it before it reads what is stored).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let readers = hold_readers(app, Duration::from_millis(2500)).await;
        app.ok(
            "alice",
            "addMembers",
            json!({"chatId": team, "userIds": [dave]}),
        )
        .await;
        readers
    };
    let ((status, first), readers) = tokio::join!(held, change);
    for r in readers {
        r.await.unwrap();
    }
    assert_eq!(status, 200, "{first}");
    let mut got = first["events"].as_array().unwrap().clone();
    got.extend(drain(app, "bob", first["next"].as_i64().unwrap()).await);
    (got, drain(app, "bob", since).await)
}

#[tokio::test]
async fn a_poll_that_times_out_while_the_feed_is_judging_loses_nothing_it_had_judged() {
    // Arrange: bob is in a group
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;

    // Act and assert, a few times over (the commit's two events must reach the feed together)
    for round in 0..3 {
        let (got, stored) = poll_through_a_slow_render(&app, team, &format!("dave{round}")).await;
        let kinds = |events: &[Value]| -> Vec<String> {
            events
                .iter()
                .map(|e| e["type"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            kinds(&stored),
            ["chatMembers", "chat"],
            "what the store holds"
        );
        assert_eq!(
            kinds(&got),
            kinds(&stored),
            "round {round}: the chained polls skipped events"
        );
    }
}

#[tokio::test]
async fn a_stream_reset_while_behind_still_delivers_the_chats_joined_meanwhile() {
    // Arrange: bob's stream is open and idle; he is in one group
    let app = spawn_with(|c| c.retention = Duration::from_secs(1)).await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let mut bob = app.events("bob", "snapshot=0", None).await;
    wait_for("bob's stream idle (a ping)", 5.0, || async {
        let control = bob.control.lock().unwrap();
        control.iter().any(|l| l == ": ping").then_some(())
    })
    .await;

    // Act: while bob's feed waits on a slow read, he is added to a new group whose messages
    // overflow his channel, and everything so far passes retention and is pruned
    let readers = hold_readers(&app, Duration::from_millis(3000)).await;
    app.ok(
        "alice",
        "renameChat",
        json!({"chatId": team, "name": "Renamed"}),
    )
    .await;
    let created = app
        .ok(
            "alice",
            "createChat",
            json!({"userIds": ["bob", "carol"], "name": "New"}),
        )
        .await;
    let fresh = created["chat"]["id"].as_i64().unwrap();
    let flood: Vec<Value> = (0..30)
        .map(|i| json!({"clientMessageId": format!("f{i}"), "chatId": fresh, "text": format!("{i}")}))
        .collect();
    app.ok("alice", "message", json!({ "messages": flood }))
        .await;
    // Past the retention of 1 s on purpose.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let pruned = chinwag::janitor::prune_once(&app.app.janitor())
        .await
        .unwrap();
    assert!(pruned >= 30, "pruned {pruned}");
    for r in readers {
        r.await.unwrap();
    }
    let reset = bob.next_of("reset").await;
    assert!(reset.id.is_some());

    // Assert: after the reset (the feed's membership is as of before the new group), the new
    // group's messages reach bob live
    let after = app
        .send_text("alice", fresh, "after", "after the reset")
        .await;
    let got = bob.next_of("message").await;
    assert_eq!(
        got.data()["id"],
        after["id"],
        "bob got {got:?} instead of the new group's message"
    );
    assert_eq!(got.data()["chatId"], fresh);
}

#[tokio::test]
async fn a_removed_member_resuming_is_not_shown_an_edit_made_after_the_removal() {
    // Arrange: carol saw a message, then was removed; after that its author rewrote it
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let since = app.cursor("carol").await;
    let sent = app
        .send_text("alice", team, "m1", "said while carol was here")
        .await;
    app.ok(
        "alice",
        "removeMember",
        json!({"chatId": team, "userId": "carol"}),
    )
    .await;
    app.ok(
        "alice",
        "editMessage",
        json!({"messageId": sent["id"], "text": "written after carol left"}),
    )
    .await;

    // Act: carol resumes from before the message, by poll and by SSE (up to her chatDeleted)
    let polled: Vec<Value> = drain(&app, "carol", since)
        .await
        .into_iter()
        .filter(|e| e["type"] == "message")
        .map(|e| e["data"].clone())
        .collect();
    let mut sse = app.events("carol", "snapshot=0", Some(since)).await;
    let mut streamed = Vec::new();
    loop {
        let e = sse.next().await;
        match e.event.as_str() {
            "chatDeleted" => break,
            "message" => streamed.push(e.data().clone()),
            _ => {}
        }
    }

    // Assert: whatever she is shown of the message is what it was while she was a member
    for (how, got) in [("poll", &polled), ("SSE", &streamed)] {
        for m in got {
            assert_eq!(m["id"], sent["id"], "{how}");
            assert_ne!(
                m["text"], "written after carol left",
                "{how}: carol was shown content written after her removal: {m}"
            );
            assert!(m["editDate"].is_null(), "{how}: {m}");
        }
    }
}

#[tokio::test]
async fn the_host_posts_as_a_member_who_joined_after_the_first_100() {
    // Arrange: a group of 121, its Chat object lists the first 100 who joined
    let app = spawn_app().await;
    let others: Vec<String> = (1..=120).map(|i| format!("m{i:03}")).collect();
    let created = app
        .ok(
            "alice",
            "createChat",
            json!({"userIds": others, "name": "Large"}),
        )
        .await;
    let chat = created["chat"]["id"].as_i64().unwrap();
    assert_eq!(created["chat"]["memberCount"], 121);

    // Act: the host posts as the member who joined last
    let (status, body) = app
        .host(
        "/chats/message",
        json!({"chat_id": chat, "user_id": "m120", "message": "from the host", "client_message_id": "h1"}),
    )
    .await;

    // Assert
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"]["userId"], "m120");
    assert_eq!(body["message"]["sender"], "member");
}
