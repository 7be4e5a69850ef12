//! Events, presence and resume across edges: a message, typing, receipts, calls and host pushes
//! from one edge to the other; a user with a stream on each edge; a client whose edge dies
//! resuming on the other.

use std::time::Duration;

use serde_json::json;

use super::*;

#[tokio::test]
async fn messages_typing_and_presence_cross_edges() {
    let Some((cluster, scene)) = scene().await else {
        return;
    };
    let Scene {
        a,
        b,
        alice,
        bob,
        chat,
    } = scene;

    let mut bob_on_b = stream(&b, &bob, None).await;
    let mut alice_on_a = stream(&a, &alice, None).await;
    // Alice's stream on A makes her online for Bob's stream on B.
    let online = bob_on_b.next_of("opponentStatus").await;
    assert_eq!(online.data()["users"][0]["userId"], "alice");
    assert_eq!(online.data()["users"][0]["status"], "online");

    let sent = send(&a, &alice, chat, "m1", "through edge A").await;
    let got = bob_on_b.next_of("message").await;
    assert_eq!(got.data()["id"], sent["id"]);
    assert_eq!(got.data()["text"], "through edge A");

    let typing = json!({"chatId": chat, "status": "typing", "message": "hel"});
    let (status, _) = post(&b, &bob, "typing", typing).await;
    assert_eq!(status, 202);
    let typed = alice_on_a.next_of("typing").await;
    assert_eq!(typed.data()["userId"], "bob");
    assert_eq!(typed.data()["message"], "hel");

    // Delivered on B, so the author's stream on A hears of it.
    let delivered = alice_on_a.next_of("messageStatus").await;
    assert_eq!(delivered.data()["status"], "delivered");
    assert_eq!(delivered.data()["messageId"], sent["id"]);

    // A call signal from B reaches A; a host push made through A reaches Bob on B.
    let offer =
        json!({"chatId": chat, "callId": "c1", "action": "offer", "sdp": {"type": "offer"}});
    let (status, _) = post(&b, &bob, "call", offer).await;
    assert_eq!(status, 202);
    let call = alice_on_a.next_of("call").await;
    assert_eq!(call.data()["callId"], "c1");
    let key = std::fs::read_to_string(cluster.dir.path().join("primary/service-key")).unwrap();
    let push = json!({"user_id": "bob", "type": "bonus", "data": {"points": "5"}});
    let res = http_client()
        .post(format!("{a}/v1/server/ws/client/message"))
        .bearer_auth(key.trim())
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let bonus = bob_on_b.next_of("bonus").await;
    assert_eq!(bonus.data()["points"], "5");

    // Alice has a stream on each edge: online until both close. The open on B and the close on
    // A reach the primary from two nodes, in either order: the close waits for one of B's
    // beats (every second), which tells the primary of B's stream whatever came first.
    let alice_on_b = stream(&b, &alice, None).await;
    // One of B's beats (every second) must pass before the close: there is no event to wait on.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    alice_on_a.close();
    // Not offline: the stream on B still counts (a negative, so it is given time to go wrong).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(partner_status(&a, &bob, chat).await, "online");
    let early = bob_on_b.next_of_within("opponentStatus", 0.1).await;
    assert!(
        early.is_none(),
        "no status change while one stream is open: {early:?}"
    );
    alice_on_b.close();
    let offline = bob_on_b.next_of_within("opponentStatus", 10.0).await;
    let offline = offline.expect("Bob is told Alice went offline");
    assert_eq!(offline.data()["users"][0]["status"], "offline");
    partner_becomes(&b, &bob, chat, "offline").await;
}

#[tokio::test]
async fn a_client_whose_edge_is_killed_resumes_on_the_other_exactly_once() {
    let Some((mut cluster, s)) = scene().await else {
        return;
    };
    let mut on_b = stream(&s.b, &s.bob, None).await;
    let mut seen: Vec<(i64, String)> = Vec::new();
    send_texts(&s, 0..10).await;
    read_until(&mut on_b, &mut seen, 10).await;
    let last = seen.last().unwrap().0;
    // Edge B dies; what is sent meanwhile waits in the store.
    cluster.kill_edge("b");
    on_b.close();
    send_texts(&s, 10..20).await;
    // Bob's partner (Alice) sees him offline once the primary stops hearing from B.
    partner_becomes(&s.a, &s.alice, s.chat, "offline").await;

    let mut on_a = stream(&s.a, &s.bob, Some(last)).await;
    send_texts(&s, 20..25).await;
    read_until(&mut on_a, &mut seen, 25).await;
    let texts: Vec<String> = seen.iter().map(|(_, t)| t.clone()).collect();
    let want: Vec<String> = (0..25).map(|i| format!("text {i}")).collect();
    assert_eq!(texts, want, "every message once, in order");
    assert!(
        on_a.next_of_within("message", 1.0).await.is_none(),
        "nothing more"
    );
    let ids: Vec<i64> = seen.iter().map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
}

#[tokio::test]
async fn an_edge_restarted_under_the_same_name_is_a_new_node_to_presence() {
    let Some((mut cluster, s)) = scene().await else {
        return;
    };
    let mut on_a = stream(&s.a, &s.alice, None).await;
    let bob_on_b = stream(&s.b, &s.bob, None).await;
    let online = on_a.next_of("opponentStatus").await;
    assert_eq!(online.data()["users"][0]["status"], "online");
    // B dies and comes back at once under the same name; Bob's old stream died with it.
    cluster.kill_edge("b");
    bob_on_b.close();
    let url = cluster.nats.url();
    cluster.start_edge("b", &url).await;
    // Alice opens the new B's first stream: it counts as hers, not as Bob's old one.
    let b = cluster.edge("b").to_string();
    let _alice_on_b = stream(&b, &s.alice, None).await;
    on_a.close();
    // Bob goes offline once the old B is given up for gone; Alice stays online through the new B.
    partner_becomes(&s.a, &s.alice, s.chat, "offline").await;
    // A negative: Alice must stay online, so a wrong "offline" is given time to show.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(partner_status(&b, &s.bob, s.chat).await, "online");
}
