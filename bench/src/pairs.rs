//! Sender/listener pairs: a chat each, messages stamped with their send time, timed arrivals.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::Result;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{message_client_id, Api, SseStream};
use crate::server::Server;

/// How long a sent message may take to reach its listener before the part gives up on it.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Nanoseconds since the bench started: the clock every send and receive time is on.
pub fn now_ns() -> u64 {
    static EPOCH: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);
    EPOCH.elapsed().as_nanos() as u64
}

/// A client message id that carries its send time: `TAG-N-SENTNS`.
fn client_id(tag: &str, n: usize, sent_ns: u64) -> String {
    format!("{tag}-{n}-{sent_ns}")
}

/// The send time a [`client_id`] carries.
fn sent_ns_of(client_id: &str) -> Option<u64> {
    client_id.rsplit('-').next()?.parse().ok()
}

/// One message frame seen on a listener's stream.
pub struct Delivery {
    pub client_id: String,
    pub sent_ns: u64,
    pub received_ns: u64,
}

impl Delivery {
    pub fn latency_ns(&self) -> u64 {
        self.received_ns.saturating_sub(self.sent_ns)
    }
}

/// Listener tasks; dropping this stops them and closes their streams.
#[derive(Default)]
pub struct Listeners(Vec<JoinHandle<()>>);

impl Drop for Listeners {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// Reads `stream` until it ends, fails or `deadline` passes, reporting every message frame.
fn spawn_listener(
    mut stream: SseStream,
    out: mpsc::UnboundedSender<Delivery>,
    deadline: Instant,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(Ok(true)) = tokio::time::timeout_at(deadline, stream.read()).await {
            let received_ns = now_ns();
            while let Some(frame) = stream.next_frame() {
                let Some(client_id) = message_client_id(&frame) else {
                    continue;
                };
                let Some(sent_ns) = sent_ns_of(&client_id) else {
                    continue;
                };
                let delivery = Delivery {
                    client_id,
                    sent_ns,
                    received_ns,
                };
                if out.send(delivery).is_err() {
                    return;
                }
            }
        }
    })
}

/// A sender with a direct chat to a listener.
#[derive(Clone)]
pub struct Pair {
    token: Arc<str>,
    chat_id: i64,
}

impl Pair {
    /// Sends message `n` of the run `tag` to the listener, stamped with the time just before its
    /// POST; its client id once the server has answered.
    pub async fn send(&self, api: &Api, tag: &str, n: usize) -> Result<String> {
        let id = client_id(tag, n, now_ns());
        api.send(&self.token, self.chat_id, &id).await?;
        Ok(id)
    }
}

/// Makes `n` pairs of users `TAG-sI`/`TAG-lI` with a direct chat each; every listener's stream
/// is open (and subscribed) before its chat exists, and reports into `out` until `deadline`.
/// Streams are opened through `listen` and chats made through `send` (the same server, or two
/// nodes of a cluster); tokens come from `server`.
pub async fn setup_pairs(
    server: &Server,
    listen: &Api,
    send: &Api,
    tag: &str,
    n: usize,
    out: &mpsc::UnboundedSender<Delivery>,
    deadline: Instant,
) -> Result<(Vec<Pair>, Listeners)> {
    let mut pairs = Vec::with_capacity(n);
    let mut listeners = Listeners::default();
    for i in 0..n {
        let (sender, listener) = (format!("{tag}-s{i}"), format!("{tag}-l{i}"));
        let stream = listen.open_stream(&server.token(&listener)?).await?;
        listeners
            .0
            .push(spawn_listener(stream, out.clone(), deadline));
        let token = server.token(&sender)?;
        let chat_id = send.create_chat(&token, &listener).await?;
        pairs.push(Pair {
            token: token.into(),
            chat_id,
        });
    }
    Ok((pairs, listeners))
}
