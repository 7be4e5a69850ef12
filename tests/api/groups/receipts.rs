//! Read receipts in groups larger and smaller than the presence limit: who is told.

use serde_json::{json, Value};

use crate::helpers::{polled, spawn_with, until_message, watch, Event, Sse};

/// The next `read` receipt on `sse`, skipping everything else (delivered receipts included).
async fn next_read(sse: &mut Sse) -> Event {
    loop {
        let e = sse.next_of("messageStatus").await;
        if e.data()["status"] == "read" {
            return e;
        }
    }
}

#[tokio::test]
async fn a_read_receipt_in_a_group_larger_than_the_presence_limit_reaches_only_the_author() {
    // Arrange: four members, a limit of three; alice wrote
    let app = spawn_with(|c| c.presence_group_limit = 3).await;
    let team = app.group("alice", &["bob", "carol", "dave"]).await;
    let sent = app.send_text("alice", team, "m1", "hello all").await;
    let mut watching = watch(&app, &["alice", "carol"]).await;

    // Act
    app.ok(
        "bob",
        "messageStatus",
        json!({"status": "read", "chatId": team, "messageId": sent["id"]}),
    )
    .await;

    // Assert: alice, the author, is told
    let receipt =
        json!({"status": "read", "chatId": team, "messageId": sent["id"], "userId": "bob"});
    let (_, alice, alice_since) = &mut watching[0];
    assert_eq!(next_read(alice).await.data(), &receipt, "alice's stream");
    let polled_reads: Vec<Value> = polled(&app, "alice", *alice_since)
        .await
        .into_iter()
        .filter(|e| e["type"] == "messageStatus" && e["data"]["status"] == "read")
        .map(|e| e["data"].clone())
        .collect();
    assert_eq!(polled_reads, [receipt], "alice's poll");

    // And carol is not: nothing before a later message, nothing on a poll
    let sentinel = app.send_text("alice", team, "m2", "after the read").await;
    let (_, carol, carol_since) = &mut watching[1];
    let before = until_message(carol, &sentinel["id"]).await;
    let reads: Vec<&Event> = before
        .iter()
        .filter(|e| e.event == "messageStatus" && e.data()["status"] == "read")
        .collect();
    assert!(reads.is_empty(), "carol's stream got {reads:?}");
    let polled_reads: Vec<Value> = polled(&app, "carol", *carol_since)
        .await
        .into_iter()
        .filter(|e| e["type"] == "messageStatus" && e["data"]["status"] == "read")
        .collect();
    assert!(polled_reads.is_empty(), "carol's poll got {polled_reads:?}");
}

#[tokio::test]
async fn a_read_receipt_in_a_group_within_the_presence_limit_reaches_every_member() {
    // Arrange: three members, a limit of three; alice wrote
    let app = spawn_with(|c| c.presence_group_limit = 3).await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let sent = app.send_text("alice", team, "m1", "hello all").await;
    let mut watching = watch(&app, &["alice", "bob", "carol"]).await;

    // Act
    app.ok(
        "bob",
        "messageStatus",
        json!({"status": "read", "chatId": team, "messageId": sent["id"]}),
    )
    .await;

    // Assert
    let receipt =
        json!({"status": "read", "chatId": team, "messageId": sent["id"], "userId": "bob"});
    for (user, sse, since) in &mut watching {
        assert_eq!(next_read(sse).await.data(), &receipt, "{user}'s stream");
        let polled_reads: Vec<Value> = polled(&app, user, *since)
            .await
            .into_iter()
            .filter(|e| e["type"] == "messageStatus" && e["data"]["status"] == "read")
            .map(|e| e["data"].clone())
            .collect();
        assert_eq!(
            polled_reads,
            std::slice::from_ref(&receipt),
            "{user}'s poll"
        );
    }
}

#[tokio::test]
async fn a_read_receipt_in_a_large_group_reaches_the_authors_of_the_messages_it_newly_covers() {
    // Arrange: four members, a limit of three; bob has read alice's message, carol wrote since
    let app = spawn_with(|c| c.presence_group_limit = 3).await;
    let team = app.group("alice", &["bob", "carol", "dave"]).await;
    let first = app.send_text("alice", team, "m1", "from alice").await;
    app.ok(
        "bob",
        "messageStatus",
        json!({"status": "read", "chatId": team, "messageId": first["id"]}),
    )
    .await;
    let second = app.send_text("carol", team, "m2", "from carol").await;
    let mut watching = watch(&app, &["alice", "carol"]).await;

    // Act
    app.ok(
        "bob",
        "messageStatus",
        json!({"status": "read", "chatId": team, "messageId": second["id"]}),
    )
    .await;

    // Assert: carol is told; alice, whose message was already read, is not
    let receipt =
        json!({"status": "read", "chatId": team, "messageId": second["id"], "userId": "bob"});
    let (_, carol, _) = &mut watching[1];
    assert_eq!(next_read(carol).await.data(), &receipt, "carol's stream");
    let since = watching[0].2;
    let polled_reads: Vec<Value> = polled(&app, "alice", since)
        .await
        .into_iter()
        .filter(|e| e["type"] == "messageStatus" && e["data"]["status"] == "read")
        .collect();
    assert!(polled_reads.is_empty(), "alice's poll got {polled_reads:?}");
}
