//! Three real nodes on a real nats-server, as a client and the host see them: a primary with the
//! data directory and two edges with none (`Cluster`), and what every test here starts from
//! (`Scene`: Alice and Bob with a direct chat). The tests, by concept: events, presence and resume
//! across edges (`crossing`); the primary or NATS away (`outages`); bodies larger than one NATS
//! message (`bodies`).

mod bodies;
mod crossing;
mod outages;

use std::collections::HashMap;
use std::process::Child;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::binary::{self, post, terminate};
use crate::helpers::nats::{Nats, Partition};
use crate::helpers::Sse;
use crate::helpers::{http_client, wait_every, wait_for};

/// A primary and two edges, A and B, on one nats-server.
pub struct Cluster {
    pub nats: Nats,
    pub dir: tempfile::TempDir,
    pub primary: Child,
    pub primary_addr: String,
    pub edges: HashMap<&'static str, (Child, String)>,
}

impl Cluster {
    /// Starts the nodes and waits until both edges reach the primary.
    pub async fn start() -> Option<Cluster> {
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
    pub async fn start_edge(&mut self, name: &'static str, url: &str) {
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

    pub fn edge(&self, name: &str) -> &str {
        &self.edges[name].1
    }

    /// A client token for `user`, minted from the primary's data directory.
    pub fn token(&self, user: &str) -> String {
        let data = self.dir.path().join("primary");
        let data = data.to_str().unwrap();
        binary::token(self.dir.path(), &["--user", user, "--data-dir", data])
    }

    /// Ends edge `name` with SIGKILL.
    pub fn kill_edge(&mut self, name: &str) {
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
pub struct Scene {
    pub a: String,
    pub b: String,
    pub alice: String,
    pub bob: String,
    pub chat: i64,
}

pub async fn scene() -> Option<(Cluster, Scene)> {
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
pub async fn send_texts(s: &Scene, range: std::ops::Range<usize>) {
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
pub async fn read_until(sse: &mut Sse, seen: &mut Vec<(i64, String)>, n: usize) {
    while seen.len() < n {
        let e = sse.next_of("message").await;
        seen.push((e.id.unwrap(), e.data()["text"].as_str().unwrap().into()));
    }
}

pub fn start_primary(dir: &tempfile::TempDir, nats: &Nats) -> (Child, String) {
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
pub async fn stream(addr: &str, token: &str, last: Option<i64>) -> Sse {
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
pub async fn send(addr: &str, token: &str, chat: i64, id: &str, text: &str) -> Value {
    let data = json!({"messages": [{"chatId": chat, "clientMessageId": id, "text": text}]});
    let (status, body) = post(addr, token, "message", data).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["messages"][0].clone()
}

/// A direct chat of `a` and `b` made through `addr`.
pub async fn direct(addr: &str, a: &str, b: &str) -> i64 {
    let (status, body) = post(addr, a, "createChat", json!({"userIds": [b]})).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["chat"]["id"].as_i64().unwrap()
}

/// The `opponentStatus` of `chat`'s other member, as `token`'s user asks it at `addr`.
pub async fn partner_status(addr: &str, token: &str, chat: i64) -> String {
    let (status, body) = post(addr, token, "opponentStatus", json!({"chatId": chat})).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["users"][0]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits (at most 15 s, asking four times a second, within the user's request rate) until
/// `token`'s partner in `chat` shows `want`.
pub async fn partner_becomes(addr: &str, token: &str, chat: i64, want: &str) {
    let what = format!("the partner to become {want}");
    wait_every(&what, 15.0, Duration::from_millis(250), || async {
        (partner_status(addr, token, chat).await == want).then_some(())
    })
    .await;
}
