//! Three real nodes on a real nats-server: a primary with the data directory and two edges with
//! none. A message sent through one edge reaches a stream on the other; typing and presence
//! cross edges (a user with a stream on each is online until both close), and so do calls and
//! host pushes; a client whose edge
//! is killed resumes on the other with `Last-Event-ID` and gets everything exactly once; the
//! primary restarts while clients send and every acknowledged message survives.

use std::collections::HashMap;
use std::process::Child;
use std::time::Duration;

use serde_json::{json, Value};

use crate::binary::{self, post, terminate};
use crate::helpers::nats::{Nats, Partition};
use crate::helpers::Sse;
use crate::helpers::{http_client, wait_for};

/// A primary and two edges, A and B, on one nats-server.
struct Cluster {
    nats: Nats,
    dir: tempfile::TempDir,
    primary: Child,
    pub primary_addr: String,
    edges: HashMap<&'static str, (Child, String)>,
}

impl Cluster {
    /// Starts the nodes and waits until both edges reach the primary.
    async fn start() -> Option<Cluster> {
        let nats = Nats::start(None)?;
        let dir = tempfile::tempdir().unwrap();
        let (primary, primary_addr) = start_primary(&dir, &nats);
        let mut cluster = Cluster {
            nats,
            dir,
            primary,
            primary_addr,
            edges: HashMap::new(),
        };
        let url = cluster.nats.url();
        for name in ["a", "b"] {
            cluster.start_edge(name, &url).await;
        }
        Some(cluster)
    }

    /// Starts edge `name` on the NATS server at `url`.
    async fn start_edge(&mut self, name: &'static str, url: &str) {
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--cluster",
            url,
            "--role",
            "edge",
            "--node",
            name,
            "--cluster-timeout",
            "2s",
        ];
        let (child, addr) = binary::serve(self.dir.path(), &args, &[]);
        self.edges.insert(name, (child, addr));
        // Ready once a request through it reaches the primary.
        let token = self.token("probe");
        let edge = self.edge(name).to_string();
        wait_for("the edge to reach the primary", 10.0, || async {
            (binary::chats_status(&edge, &token).await == 200).then_some(())
        })
        .await;
    }

    fn edge(&self, name: &str) -> &str {
        &self.edges[name].1
    }

    /// A client token for `user`, minted from the primary's data directory.
    fn token(&self, user: &str) -> String {
        let data = self.dir.path().join("primary");
        let data = data.to_str().unwrap();
        binary::token(self.dir.path(), &["--user", user, "--data-dir", data])
    }

    /// Ends edge `name` with SIGKILL.
    fn kill_edge(&mut self, name: &str) {
        let (mut child, _) = self.edges.remove(name).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (child, _) in self.edges.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.primary.kill();
        let _ = self.primary.wait();
    }
}

/// A started cluster with what every test here begins with: the edges' addresses, Alice's and
/// Bob's tokens, and their direct chat (made through edge A).
struct Scene {
    a: String,
    b: String,
    alice: String,
    bob: String,
    chat: i64,
}

async fn scene() -> Option<(Cluster, Scene)> {
    let cluster = Cluster::start().await?;
    let (a, b) = (cluster.edge("a").to_string(), cluster.edge("b").to_string());
    let (alice, bob) = (cluster.token("alice"), cluster.token("bob"));
    let chat = direct(&a, &alice, "bob").await;
    let scene = Scene {
        a,
        b,
        alice,
        bob,
        chat,
    };
    Some((cluster, scene))
}

/// Sends `text N` (client id `mN`) for each N of `range` from Alice through edge A.
async fn send_texts(s: &Scene, range: std::ops::Range<usize>) {
    for i in range {
        send(
            &s.a,
            &s.alice,
            s.chat,
            &format!("m{i}"),
            &format!("text {i}"),
        )
        .await;
    }
}

/// Reads messages from `sse` into `seen` (id and text) until it holds `n`.
async fn read_until(sse: &mut Sse, seen: &mut Vec<(i64, String)>, n: usize) {
    while seen.len() < n {
        let e = sse.next_of("message").await;
        seen.push((e.id.unwrap(), e.data()["text"].as_str().unwrap().into()));
    }
}

fn start_primary(dir: &tempfile::TempDir, nats: &Nats) -> (Child, String) {
    let url = nats.url();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        "primary",
        "--cluster",
        &url,
        "--role",
        "primary",
    ];
    binary::serve(dir.path(), &args, &[])
}

/// `token`'s stream on the node at `addr`, resuming after `last` when given.
async fn stream(addr: &str, token: &str, last: Option<i64>) -> Sse {
    let mut req = http_client()
        .get(format!("{addr}/v1/events?snapshot=0"))
        .bearer_auth(token);
    if let Some(id) = last {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let sse = Sse::new(req.send().await.unwrap());
    assert_eq!(sse.status, 200);
    sse
}

/// Sends a text through the node at `addr`; the message as stored.
async fn send(addr: &str, token: &str, chat: i64, id: &str, text: &str) -> Value {
    let data = json!({"messages": [{"chatId": chat, "clientMessageId": id, "text": text}]});
    let (status, body) = post(addr, token, "message", data).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["messages"][0].clone()
}

/// A direct chat of `a` and `b` made through `addr`.
async fn direct(addr: &str, a: &str, b: &str) -> i64 {
    let (status, body) = post(addr, a, "createChat", json!({"userIds": [b]})).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["chat"]["id"].as_i64().unwrap()
}

/// The `opponentStatus` of `chat`'s other member, as `token`'s user asks it at `addr`.
async fn partner_status(addr: &str, token: &str, chat: i64) -> String {
    let (status, body) = post(addr, token, "opponentStatus", json!({"chatId": chat})).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["users"][0]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits (asking four times a second, within the user's request rate) until `token`'s
/// partner in `chat` shows `want`.
async fn partner_becomes(addr: &str, token: &str, chat: i64, want: &str) {
    for _ in 0..60 {
        if partner_status(addr, token, chat).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the partner never became {want}");
}

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
    let sender = {
        let (a, alice) = (a.clone(), alice.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut refused = 0;
            for i in 0..60 {
                let id = format!("r{i}");
                let data =
                    json!({"messages": [{"chatId": chat, "clientMessageId": id, "text": id}]});
                let mut tries = 0;
                loop {
                    tries += 1;
                    assert!(tries < 200, "message {i} never went through");
                    let res = http_client()
                        .post(format!("{a}/v1/message"))
                        .bearer_auth(&alice)
                        .json(&json!({ "data": data }))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == 200 => break,
                        Ok(r) => {
                            assert_eq!(r.status(), 503, "only 503 while the primary is away");
                            assert!(r.headers().contains_key("retry-after"));
                            refused += 1;
                        }
                        Err(_) => refused += 1,
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                acknowledged.push(id);
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            (acknowledged, refused)
        })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    // The primary dies mid-stream and comes back on the same data directory.
    cluster.primary.kill().unwrap();
    cluster.primary.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
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
async fn files_larger_than_a_nats_message_go_up_and_down_through_edges() {
    let Some((_cluster, s)) = scene().await else {
        return;
    };
    // 3 MB: three times what one NATS message carries by default.
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let res = http_client()
        .post(format!("{}/v1/files?name=big.bin", s.a))
        .bearer_auth(&s.alice)
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let file: Value = res.json().await.unwrap();
    let id = file["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(file["data"]["size"], 3_000_000);
    let data = json!({"messages": [{"chatId": s.chat, "clientMessageId": "f", "type": "file", "fileId": id}]});
    let (status, body) = post(&s.a, &s.alice, "message", data).await;
    assert_eq!(status, 200, "{body}");

    let res = http_client()
        .get(format!("{}/v1/files/{id}?token={}", s.b, s.bob))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-length"], "3000000");
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        &bytes[..],
        "the same bytes"
    );
    // A range of it, as a player asks.
    let res = http_client()
        .get(format!("{}/v1/files/{id}?token={}", s.b, s.bob))
        .header("Range", "bytes=1000000-1000009")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        &bytes[1_000_000..1_000_010]
    );
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

#[tokio::test]
async fn an_answer_larger_than_a_nats_message_comes_through_an_edge_whole() {
    let Some((_cluster, s)) = scene().await else {
        return;
    };
    // 20 messages of 60,000 characters: their history is about 1.2 MB of JSON, in one frame.
    let long = "x".repeat(60_000);
    for i in 0..20 {
        send(
            &s.a,
            &s.alice,
            s.chat,
            &format!("l{i}"),
            &format!("{i} {long}"),
        )
        .await;
    }
    let (status, body) = post(
        &s.b,
        &s.bob,
        "history",
        json!({"chatId": s.chat, "limit": 20}),
    )
    .await;
    assert_eq!(status, 200);
    let texts: Vec<&str> = (body["data"]["messages"].as_array().unwrap())
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 20);
    assert!(texts
        .iter()
        .enumerate()
        .all(|(i, t)| *t == format!("{i} {long}")));
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
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(partner_status(&b, &s.bob, s.chat).await, "online");
}
