//! Presence: online while a stream is open or a poll came recently, pushed to chat partners on
//! the first open and the last close; connection errors on drops.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn partners_see_a_user_come_online_and_drop_off() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let mut alice = app.events("alice", "snapshot=0", None).await;

    let bob = app.events("bob", "snapshot=0", None).await;

    let online = alice.next_of("opponentStatus").await;
    assert_eq!(online.id, None);
    assert_eq!(online.data()["chatId"], chat);
    assert_eq!(online.data()["users"][0]["userId"], "bob");
    assert_eq!(online.data()["users"][0]["status"], "online");

    // A second stream of bob's changes nothing; closing one of two is no "offline".
    let second = app.events("bob", "snapshot=0", None).await;
    second.close();
    let dropped = alice.next_of("clientConnectionError").await;
    assert_eq!(dropped.data()["userId"], "bob");
    let answer = app
        .ok("alice", "opponentStatus", json!({"chatId": chat}))
        .await;
    assert_eq!(answer["users"][0]["status"], "online");

    // The last stream dropping without a clean close: error, then offline.
    bob.close();
    assert_eq!(
        alice.next_of("clientConnectionError").await.data()["userId"],
        "bob"
    );
    let offline = alice.next_of("opponentStatus").await;
    assert_eq!(offline.data()["users"][0]["status"], "offline");
    assert!(offline.data()["users"][0]["lastSeen"].is_string());
}

#[tokio::test]
async fn opponent_status_answers_for_the_other_members() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;

    let never = app
        .ok("alice", "opponentStatus", json!({"chatId": chat}))
        .await;
    assert_eq!(never["chatId"], chat);
    assert_eq!(
        never["users"],
        json!([{"userId": "bob", "status": "offline", "lastSeen": null}])
    );

    let _bob = app.events("bob", "snapshot=0", None).await;
    crate::helpers::wait_for("bob online", 5.0, || async {
        let answer = app
            .ok("alice", "opponentStatus", json!({"chatId": chat}))
            .await;
        (answer["users"][0]["status"] == "online").then_some(())
    })
    .await;
    let now = app
        .ok("alice", "opponentStatus", json!({"chatId": chat}))
        .await;
    assert_eq!(now["users"][0]["status"], "online");
    assert!(now["users"][0]["lastSeen"].is_string());
}

#[tokio::test]
async fn a_poller_is_online_for_a_while_after_each_poll() {
    let app = spawn_app().await;
    app.direct_chat("alice", "bob").await;
    let mut alice = app.events("alice", "snapshot=0", None).await;

    app.poll("bob", "timeout=0").await;

    let online = alice.next_of("opponentStatus").await;
    assert_eq!(online.data()["users"][0]["status"], "online");
    // The test server's poll presence is 0.8 s, swept every second: offline follows, with no
    // connection error (a poll that answered closed cleanly).
    let next = alice.next_within(5.0).await.expect("offline within 5 s");
    assert_eq!(next.event, "opponentStatus");
    assert_eq!(next.data()["users"][0]["status"], "offline");
}

#[tokio::test]
async fn a_partner_in_many_chats_gets_one_status_naming_them_all() {
    let app = spawn_app().await;
    let direct = app.direct_chat("alice", "bob").await;
    let mut groups = Vec::new();
    for i in 0..20 {
        let g = app
            .ok(
                "alice",
                "createChat",
                json!({"userIds": ["bob", "carol"], "name": format!("g{i}")}),
            )
            .await;
        groups.push(g["chat"]["id"].as_i64().unwrap());
    }
    let mut alice = app.events("alice", "snapshot=0", None).await;

    let _bob = app.events("bob", "snapshot=0", None).await;

    let status = alice.next_of("opponentStatus").await;
    let chats: Vec<i64> = status.data()["chatIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_i64().unwrap())
        .collect();
    let mut expected = vec![direct];
    expected.extend(&groups);
    assert_eq!(chats, expected);
    assert_eq!(status.data()["chatId"], direct);
    assert_eq!(status.data()["users"][0]["status"], "online");
    assert!(
        alice.next_within(0.3).await.is_none(),
        "more than one status arrived"
    );
}
