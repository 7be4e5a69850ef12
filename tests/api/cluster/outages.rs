//! The primary or NATS away: every acknowledged message survives a primary killed while clients
//! send; an edge without its primary refuses with Retry-After and keeps its streams; what is sent
//! while NATS restarts, or while one edge is cut off from it, reaches the open streams.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::*;

#[tokio::test]
async fn the_primary_restarts_while_clients_send_and_every_acknowledged_message_survives() {
    let Some((mut cluster, scene)) = scene().await else {
        return;
    };
    let Scene {
        a,
        b,
        alice,
        bob,
        chat,
    } = scene;
    let mut on_b = stream(&b, &bob, None).await;

    // Alice sends 60 messages through A, retrying a refused or unanswered one with the same id.
    // The counts let the test kill the primary mid-stream and bring it back once it was missed.
    let (sent, refusals) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let sender = {
        let (a, alice) = (a.clone(), alice.clone());
        let (sent, refusals) = (sent.clone(), refusals.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..60 {
                let id = format!("r{i}");
                let data =
                    json!({"messages": [{"chatId": chat, "clientMessageId": id, "text": id}]});
                let (a, alice, data, refusals) = (&a, &alice, &data, &refusals);
                // Ten tries a second, within Alice's request rate, as a client would retry.
                let what = format!("message {i} to go through");
                wait_every(&what, 20.0, Duration::from_millis(100), || async move {
                    let res = http_client()
                        .post(format!("{a}/v1/message"))
                        .bearer_auth(alice)
                        .json(&json!({ "data": data }))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == 200 => return Some(()),
                        Ok(r) => {
                            assert_eq!(r.status(), 503, "only 503 while the primary is away");
                            assert!(r.headers().contains_key("retry-after"));
                        }
                        Err(_) => {}
                    }
                    refusals.fetch_add(1, Ordering::SeqCst);
                    None
                })
                .await;
                acknowledged.push(id);
                sent.store(acknowledged.len(), Ordering::SeqCst);
                // Paces the sends (no condition: time passing) so they span the primary's outage.
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            (acknowledged, refusals.load(Ordering::SeqCst))
        })
    };
    wait_for("Alice's first 10 messages to be acknowledged", 10.0, || {
        std::future::ready((sent.load(Ordering::SeqCst) >= 10).then_some(()))
    })
    .await;
    // The primary dies mid-stream and comes back on the same data directory once a send met
    // it away.
    cluster.primary.kill().unwrap();
    cluster.primary.wait().unwrap();
    wait_for("a send to meet the primary away", 10.0, || {
        std::future::ready((refusals.load(Ordering::SeqCst) > 0).then_some(()))
    })
    .await;
    let (primary, addr) = start_primary(&cluster.dir, &cluster.nats);
    cluster.primary = primary;
    cluster.primary_addr = addr;
    let (acknowledged, refused) = sender.await.unwrap();
    assert!(refused > 0, "some sends met the primary away");

    // Bob's stream on B stayed open throughout and has every message exactly once.
    let mut texts = Vec::new();
    while texts.len() < 60 {
        let Some(e) = on_b.next_of_within("message", 15.0).await else {
            break;
        };
        texts.push(e.data()["text"].as_str().unwrap().to_string());
    }
    assert_eq!(
        texts, acknowledged,
        "every acknowledged message, once, in order"
    );
    // And the primary's history has them all.
    let (status, body) = post(&b, &bob, "history", json!({"chatId": chat, "limit": 100})).await;
    assert_eq!(status, 200);
    let stored: Vec<&str> = (body["data"]["messages"].as_array().unwrap())
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(stored.len(), 60, "{stored:?}");
    terminate(&mut cluster.primary);
}

#[tokio::test]
async fn an_edge_without_its_primary_refuses_writes_with_retry_after_and_keeps_streams() {
    let Some((mut cluster, scene)) = scene().await else {
        return;
    };
    let Scene {
        a,
        b: _,
        alice,
        bob,
        chat,
    } = scene;
    let mut on_a = stream(&a, &bob, None).await;
    terminate(&mut cluster.primary);

    let res = http_client()
        .post(format!("{a}/v1/chats"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "2");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "unavailable");
    // A new stream is told to come back, as EventSource needs (not an error status).
    let res = http_client()
        .get(format!("{a}/v1/events?token={bob}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().starts_with("retry: 2000"));

    // The open stream lives on and carries what is sent once the primary is back.
    let (primary, addr) = start_primary(&cluster.dir, &cluster.nats);
    cluster.primary = primary;
    cluster.primary_addr = addr;
    wait_for("the primary to answer through the edge", 10.0, || async {
        (binary::chats_status(&a, &alice).await == 200).then_some(())
    })
    .await;
    let sent = send(&a, &alice, chat, "after", "back again").await;
    let got = on_a.next_of("message").await;
    assert_eq!(got.data()["id"], sent["id"]);
}

#[tokio::test]
async fn what_is_sent_while_nats_is_away_reaches_the_edges_once_it_is_back() {
    let Some((mut cluster, s)) = scene().await else {
        return;
    };
    let mut on_b = stream(&s.b, &s.bob, None).await;
    let mut seen = Vec::new();
    send_texts(&s, 0..3).await;
    read_until(&mut on_b, &mut seen, 3).await;
    // NATS goes away; the primary (which serves clients too) keeps taking messages; then NATS
    // is back on the same port, and the edges reconnect, notice what they missed and re-read it.
    let primary = cluster.primary_addr.clone();
    cluster
        .nats
        .restart_after(async {
            for i in 3..8 {
                let (id, text) = (format!("m{i}"), format!("text {i}"));
                send(&primary, &s.alice, s.chat, &id, &text).await;
            }
        })
        .await;
    wait_for("edge A to reach the primary again", 20.0, || async {
        (binary::chats_status(&s.a, &s.alice).await == 200).then_some(())
    })
    .await;
    send_texts(&s, 8..10).await;
    let mut seen_after = seen.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen_after.len() < 10 && tokio::time::Instant::now() < deadline {
        if let Some(e) = on_b.next_of_within("message", 1.0).await {
            seen_after.push((
                e.id.unwrap(),
                e.data()["text"].as_str().unwrap().to_string(),
            ));
        }
    }
    let texts: Vec<String> = seen_after.iter().map(|(_, t)| t.clone()).collect();
    let want: Vec<String> = (0..10).map(|i| format!("text {i}")).collect();
    assert_eq!(
        texts, want,
        "every message once, in order, on the stream that stayed open"
    );
}

#[tokio::test]
async fn an_edge_cut_off_from_nats_gets_what_it_missed_once_it_is_back() {
    let Some((mut cluster, s)) = scene().await else {
        return;
    };
    // Edge C reaches NATS through a link the test can cut; the primary and edge A do not.
    let link = Partition::to(cluster.nats.port).await;
    cluster.start_edge("c", &link.url()).await;
    let c = cluster.edge("c").to_string();
    let mut on_c = stream(&c, &s.bob, None).await;
    let mut seen = Vec::new();
    send_texts(&s, 0..3).await;
    read_until(&mut on_c, &mut seen, 3).await;

    link.cut();
    // Relayed while C is away: C never receives these batches.
    send_texts(&s, 3..8).await;
    link.heal();
    // Nothing more is sent: the primary's next beat (every second) shows C the gap, and its
    // stream re-reads the primary's store.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < 8 && tokio::time::Instant::now() < deadline {
        if let Some(e) = on_c.next_of_within("message", 1.0).await {
            let text = e.data()["text"].as_str().unwrap().to_string();
            seen.push((e.id.unwrap(), text));
        }
    }
    // And it goes on live.
    send_texts(&s, 8..10).await;
    read_until(&mut on_c, &mut seen, 10).await;
    let texts: Vec<String> = seen.iter().map(|(_, t)| t.clone()).collect();
    let want: Vec<String> = (0..10).map(|i| format!("text {i}")).collect();
    assert_eq!(
        texts, want,
        "every message once, in order, on the stream that stayed open"
    );
}
