//! Sending and receiving messages: live delivery, idempotency, batches, receipts, typing, history.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn two_users_chat_over_sse() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let mut bob = app.events("bob", "", None).await;
    let mut alice = app.events("alice", "snapshot=0", None).await;
    let snapshot = bob.next().await;
    assert_eq!(snapshot.event, "chats");
    assert_eq!(snapshot.id, None);
    assert_eq!(snapshot.data()["chats"][0]["id"], chat);

    // Act
    let sent = app.send_text("alice", chat, "c1", "hello bob").await;

    // Assert: the recipient and the sender's own stream both get it, with an event id
    let got = bob.next_of("message").await;
    assert!(got.id.is_some());
    assert_eq!(got.envelope["type"], "message");
    assert_eq!(got.data()["text"], "hello bob");
    assert_eq!(got.data()["id"], sent["id"]);
    assert_eq!(got.data()["userId"], "alice");
    assert_eq!(got.data()["sender"], "member");
    assert_eq!(got.data()["status"], "sent");
    assert_eq!(alice.next_of("message").await.data()["id"], sent["id"]);

    // And the reply travels back
    app.send_text("bob", chat, "c2", "hi alice").await;
    assert_eq!(alice.next_of("message").await.data()["text"], "hi alice");
}

#[tokio::test]
async fn resending_a_client_message_id_returns_the_stored_message_and_pushes_nothing() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let mut bob = app.events("bob", "snapshot=0", None).await;
    let first = app.send_text("alice", chat, "same", "once").await;
    assert_eq!(bob.next_of("message").await.data()["id"], first["id"]);

    let again = app.send_text("alice", chat, "same", "once").await;

    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["insertDate"], first["insertDate"]);
    let next = app.send_text("alice", chat, "other", "twice").await;
    let got = bob.next().await;
    assert_eq!(got.data()["id"], next["id"], "the resend pushed something");
    let (_, page) = app.post("alice", "history", json!({"chatId": chat})).await;
    assert_eq!(page["data"]["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_batch_is_stored_in_order_and_each_message_pushed() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let mut bob = app.events("bob", "snapshot=0", None).await;
    let batch: Vec<_> = (0..3)
        .map(|i| json!({"clientMessageId": format!("b{i}"), "chatId": chat, "text": format!("m{i}"), "params": {"k": "v"}}))
        .collect();

    let data = app.ok("alice", "message", json!({"messages": batch})).await;

    let ids: Vec<i64> = data["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(data["users"][0]["id"], "alice");
    assert_eq!(data["messages"][0]["params"]["k"], "v");
    let got = bob.collect_of("message", 3, 5.0).await;
    let texts: Vec<_> = got
        .iter()
        .map(|e| e.data()["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts, ["m0", "m1", "m2"]);
}

#[tokio::test]
async fn receipts_move_status_and_unread_and_never_go_backwards() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let mut alice = app.events("alice", "snapshot=0", None).await;
    app.send_text("alice", chat, "1", "one").await;
    let second = app.send_text("alice", chat, "2", "two").await;
    let unread = app.ok("bob", "chat", json!({"chatId": chat})).await["chat"]["unread"].clone();
    assert_eq!(unread, 2);
    assert_eq!(
        app.ok("alice", "chat", json!({"chatId": chat})).await["chat"]["unread"],
        0
    );

    // bob reads up to the second message
    let ack = app
        .ok(
            "bob",
            "messageStatus",
            json!({"status": "read", "chatId": chat, "messageId": second["id"]}),
        )
        .await;
    assert_eq!(ack["status"], "read");

    let pushed = alice.next_of("messageStatus").await;
    assert_eq!(pushed.data()["status"], "read");
    assert_eq!(pushed.data()["userId"], "bob");
    assert_eq!(pushed.data()["messageId"], second["id"]);
    let page = app.ok("alice", "history", json!({"chatId": chat})).await;
    assert!(page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["status"] == "read"));
    assert_eq!(
        app.ok("bob", "chat", json!({"chatId": chat})).await["chat"]["unread"],
        0
    );

    // "delivered" after "read" changes nothing and pushes nothing
    app.ok(
        "bob",
        "messageStatus",
        json!({"status": "delivered", "chatId": chat, "messageId": second["id"]}),
    )
    .await;
    let page = app.ok("alice", "history", json!({"chatId": chat})).await;
    assert_eq!(page["messages"][1]["status"], "read");
    let third = app.send_text("alice", chat, "3", "three").await;
    assert_eq!(alice.next().await.data()["id"], third["id"]);
}

#[tokio::test]
async fn delivered_receipts_show_as_delivered() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let m = app.send_text("alice", chat, "1", "one").await;
    app.ok(
        "bob",
        "messageStatus",
        json!({"status": "delivered", "chatId": chat, "messageId": m["id"]}),
    )
    .await;
    let page = app.ok("alice", "history", json!({"chatId": chat})).await;
    assert_eq!(page["messages"][0]["status"], "delivered");
    assert_eq!(
        app.ok("bob", "chat", json!({"chatId": chat})).await["chat"]["unread"],
        1
    );
}

#[tokio::test]
async fn typing_is_relayed_live_to_the_others_and_never_stored() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let mut bob = app.events("bob", "snapshot=0", None).await;
    let head = app.poll("bob", "timeout=0").await.1["next"]
        .as_i64()
        .unwrap();

    let (status, body) = app
        .post(
            "alice",
            "typing",
            json!({"chatId": chat, "status": "typing", "message": "hel"}),
        )
        .await;

    assert_eq!(status, 202);
    assert_eq!(body["data"]["userId"], "alice");
    let got = bob.next_of("typing").await;
    assert_eq!(got.id, None);
    assert_eq!(got.data()["status"], "typing");
    assert_eq!(got.data()["message"], "hel");
    assert_eq!(got.data()["chatId"], chat);
    let (_, polled) = app.poll("bob", &format!("since={head}&timeout=0")).await;
    assert_eq!(polled["events"], json!([]));
}

#[tokio::test]
async fn history_pages_both_ways_with_has_more() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let batch: Vec<_> = (0..100)
        .map(
            |i| json!({"clientMessageId": format!("h{i}"), "chatId": chat, "text": format!("{i}")}),
        )
        .collect();
    app.ok("alice", "message", json!({"messages": batch})).await;
    let texts = |page: &serde_json::Value| -> Vec<String> {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect()
    };

    // Newest page first, ascending inside
    let newest = app
        .ok("bob", "history", json!({"chatId": chat, "limit": 40}))
        .await;
    assert_eq!(texts(&newest).first().unwrap(), "60");
    assert_eq!(texts(&newest).last().unwrap(), "99");
    assert_eq!(newest["hasMore"], true);
    assert_eq!(newest["users"][0]["id"], "alice");

    // Walk backwards to the start
    let mut seen = texts(&newest);
    let mut before = newest["messages"][0]["id"].clone();
    loop {
        let page = app
            .ok(
                "bob",
                "history",
                json!({"chatId": chat, "limit": 40, "before": before}),
            )
            .await;
        let mut t = texts(&page);
        t.extend(seen);
        seen = t;
        if page["hasMore"] == false {
            break;
        }
        before = page["messages"][0]["id"].clone();
    }
    let all: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    assert_eq!(seen, all);

    // Walk forwards from the start
    let mut forward = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .ok(
                "bob",
                "history",
                json!({"chatId": chat, "limit": 30, "after": after}),
            )
            .await;
        forward.extend(texts(&page));
        if page["hasMore"] == false {
            break;
        }
        after = page["messages"].as_array().unwrap().last().unwrap()["id"]
            .as_i64()
            .unwrap();
    }
    assert_eq!(forward, all);
}

#[tokio::test]
async fn data_survives_a_restart() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let sent = app.send_text("alice", chat, "keep", "still here").await;
    let (_, polled) = app.poll("bob", "since=0&timeout=0").await;
    let cursor = polled["next"].as_i64().unwrap();

    let app = app.restart().await;

    let page = app.ok("bob", "history", json!({"chatId": chat})).await;
    assert_eq!(page["messages"][0]["id"], sent["id"]);
    assert_eq!(page["messages"][0]["text"], "still here");
    // Resend after restart is still idempotent
    let again = app.send_text("alice", chat, "keep", "still here").await;
    assert_eq!(again["id"], sent["id"]);
    // Cursors stay valid: new events continue after the old ones
    let next = app.send_text("alice", chat, "new", "after restart").await;
    let (_, polled) = app.poll("bob", &format!("since={cursor}&timeout=0")).await;
    assert_eq!(polled["events"][0]["data"]["id"], next["id"]);
    assert_eq!(polled["events"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_message_that_reaches_an_open_stream_is_marked_delivered_for_the_sender() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let mut alice = app.events("alice", "snapshot=0", None).await;
    let mut bob = app.events("bob", "snapshot=0", None).await;

    let sent = app
        .send_text("alice", chat, "d1", "did you get this?")
        .await;

    assert_eq!(bob.next_of("message").await.data()["id"], sent["id"]);
    let receipt = alice.next_of("messageStatus").await;
    assert_eq!(
        receipt.data(),
        &json!({"status": "delivered", "chatId": chat, "messageId": sent["id"], "userId": "bob"})
    );
    let page = app.ok("alice", "history", json!({"chatId": chat})).await;
    assert_eq!(page["messages"][0]["status"], "delivered");
    // Delivered is not read: bob's unread count stays until he says so.
    assert_eq!(
        app.ok("bob", "chat", json!({"chatId": chat})).await["chat"]["unread"],
        1
    );
}

#[tokio::test]
async fn a_message_collected_by_a_poll_is_marked_delivered_for_the_sender() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let mut alice = app.events("alice", "snapshot=0", None).await;
    let sent = app.send_text("alice", chat, "d2", "polled").await;

    let (_, polled) = app.poll("bob", "since=0&timeout=0").await;
    assert!(polled["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["data"]["id"] == sent["id"]));

    let receipt = alice.next_of("messageStatus").await;
    assert_eq!(receipt.data()["status"], "delivered");
    assert_eq!(receipt.data()["userId"], "bob");
}

#[tokio::test]
async fn the_authors_own_stream_does_not_mark_delivery() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let mut alice = app.events("alice", "snapshot=0", None).await;

    let sent = app.send_text("alice", chat, "d3", "nobody home").await;

    assert_eq!(alice.next_of("message").await.data()["id"], sent["id"]);
    assert!(alice.next_within(0.4).await.is_none(), "a receipt arrived");
    let page = app.ok("alice", "history", json!({"chatId": chat})).await;
    assert_eq!(page["messages"][0]["status"], "sent");
}
