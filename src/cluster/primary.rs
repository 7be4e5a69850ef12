//! The primary's side of a cluster: it relays every publish of its hub to the edges (numbered,
//! so an edge that misses one re-reads the store), answers their questions (a stream's opening,
//! pages of events, delivered marks), answers the client requests they forward through its own
//! HTTP handling, and counts their open streams and polls in its presence registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio_stream::StreamExt;

use crate::app::App;
use crate::config::Cluster;
use crate::error::{Error, Result};
use crate::feed::{MAX_BYTES, MAX_EVENTS};
use crate::link::{self, Ask, Presence};
use crate::model::UserId;
use crate::pieces::{self, Pieces};
use crate::presence::{Connection, Kind};
use crate::store::{chats, events};

/// An edge unheard of for this long is gone, and its streams with it.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the cluster until the server stops.
pub async fn run(app: Arc<App>, cluster: Cluster) {
    let relay = app.hub.relay();
    let options = link::nats_options(
        &format!("chinwag-primary-{}", cluster.node),
        cluster.timeout,
        Duration::from_secs(1),
        cluster.token.as_deref(),
    );
    let client = match options.connect(cluster.url.as_str()).await {
        Ok(client) => client,
        Err(e) => return tracing::error!(url = %cluster.url, "the cluster cannot be used: {e}"),
    };
    let subscribed = async {
        let asks = client
            .queue_subscribe(link::ASK, link::PRIMARY_GROUP.into())
            .await?;
        let http = client
            .queue_subscribe(link::HTTP, link::PRIMARY_GROUP.into())
            .await?;
        let presence = client.subscribe(link::PRESENCE).await?;
        Ok::<_, async_nats::SubscribeError>((asks, http, presence))
    };
    let (mut asks, mut http, mut presence) = match subscribed.await {
        Ok(subs) => subs,
        Err(e) => return tracing::error!("cannot listen on the cluster's subjects: {e}"),
    };
    tracing::info!(url = %cluster.url, "the primary of the cluster");
    let relaying = tokio::spawn(relay_batches(client.clone(), relay));
    let nodes = Arc::new(Nodes::default());
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    let mut stop = app.stopping();
    loop {
        tokio::select! {
            Some(m) = asks.next() => {
                let (app, client) = (app.clone(), client.clone());
                tokio::spawn(async move {
                    let Some(to) = m.reply else { return };
                    let working = pieces::working(&client, to.clone());
                    let answer = link::answer(ask(&app, &m.payload).await);
                    working.abort();
                    let mut body = Pieces::new(pieces::body(answer), Duration::from_secs(30), u64::MAX);
                    if let Err(e) = pieces::send(&client, to, async_nats::HeaderMap::new(), &mut body).await {
                        tracing::warn!("an answer to an edge was not sent: {e}");
                    }
                });
            }
            Some(m) = http.next() => {
                let (app, client) = (app.clone(), client.clone());
                tokio::spawn(async move { super::forward::answer(&app, &client, m).await });
            }
            Some(m) = presence.next() => match serde_json::from_slice::<Presence>(&m.payload) {
                Ok(p) => nodes.apply(&app, p),
                Err(e) => tracing::warn!("a presence message from an edge did not decode: {e}"),
            },
            _ = sweep.tick() => nodes.sweep(),
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    relaying.abort();
    let _ = tokio::time::timeout(cluster.timeout, client.flush()).await;
}

/// Most bytes of changes in one batch message (well under NATS's default 1 MB).
const BATCH_BYTES: usize = 512 * 1024;

/// Publishes the hub's changes to the edges, in order, as they come, numbered; a publish larger
/// than [`BATCH_BYTES`] goes as several batches. Every second a beat repeats the last number, so
/// that an edge which missed the last batches hears of it without waiting for the next one.
/// What cannot go (a publish the hub dropped, one change too large for a message) leaves a gap
/// in the numbering: the edges re-read the store.
async fn relay_batches(
    client: async_nats::Client,
    mut relay: tokio::sync::mpsc::Receiver<crate::hub::Relayed>,
) {
    // A new number each start (the start's millisecond: one primary never starts twice in
    // one): the edges see the numbering start over and re-read the store.
    let epoch = crate::time::now_ms() as u64;
    let (mut seq, mut hub_seq, mut head) = (0u64, 0u64, crate::model::EventId::ZERO);
    let mut beat = tokio::time::interval(Duration::from_secs(1));
    loop {
        let r = tokio::select! {
            r = relay.recv() => match r {
                Some(r) => r,
                None => return,
            },
            _ = beat.tick() => {
                publish_batch(&client, &batch_head(epoch, seq, head, true), &[]).await;
                continue;
            }
        };
        if r.seq != hub_seq + 1 {
            seq += 1;
        }
        (hub_seq, head) = (r.seq, r.head);
        let mut part: Vec<Vec<u8>> = Vec::new();
        let mut bytes = 0;
        for change in &r.changes {
            let Ok(encoded) = serde_json::to_vec(change) else {
                seq += 1;
                continue;
            };
            if encoded.len() > BATCH_BYTES {
                tracing::warn!(
                    "a change of {} bytes is too large to relay; edges re-read it",
                    encoded.len()
                );
                seq += 1;
                continue;
            }
            if bytes + encoded.len() > BATCH_BYTES {
                seq += 1;
                publish_batch(&client, &batch_head(epoch, seq, head, false), &part).await;
                (part, bytes) = (Vec::new(), 0);
            }
            bytes += encoded.len() + 1;
            part.push(encoded);
        }
        if !part.is_empty() {
            seq += 1;
            publish_batch(&client, &batch_head(epoch, seq, head, false), &part).await;
        }
    }
}

/// A batch's fields before its changes, as JSON without the closing brace.
fn batch_head(epoch: u64, seq: u64, head: crate::model::EventId, beat: bool) -> String {
    format!("{{\"epoch\":{epoch},\"seq\":{seq},\"head\":{head},\"beat\":{beat},\"changes\":[")
}

/// Publishes a [`Batch`] whose changes are already encoded.
async fn publish_batch(client: &async_nats::Client, head: &str, changes: &[Vec<u8>]) {
    let mut payload =
        Vec::with_capacity(head.len() + 2 + changes.iter().map(|c| c.len() + 1).sum::<usize>());
    payload.extend_from_slice(head.as_bytes());
    for (i, change) in changes.iter().enumerate() {
        if i > 0 {
            payload.push(b',');
        }
        payload.extend_from_slice(change);
    }
    payload.extend_from_slice(b"]}");
    if let Err(e) = client.publish(link::EVENTS, Bytes::from(payload)).await {
        tracing::warn!("a batch for the edges was not sent: {e}");
    }
}

/// Answers an edge's question.
async fn ask(app: &Arc<App>, payload: &[u8]) -> Result<Value> {
    let ask: Ask = serde_json::from_slice(payload)
        .map_err(|e| Error::BadRequest(format!("an edge's question did not decode: {e}")))?;
    let value = match ask {
        Ask::Open { token, snapshot } => {
            let Some(_admitted) = app.drain.admit() else {
                return Err(Error::Unavailable {
                    retry_after: crate::drain::RETRY_AFTER,
                });
            };
            let user = crate::api::caller::authenticate(app, &token).await?;
            app.limits.check_user(&user)?;
            let opening = crate::feed::opening(&app.store, &app.hub, &user, snapshot).await?;
            serde_json::to_value(opening)
        }
        Ask::Spans { user } => {
            let spans = app.store.read(move |c| events::spans(c, &user)).await?;
            serde_json::to_value(spans)
        }
        Ask::Page { user, after } => {
            let page = app
                .store
                .read(move |c| events::resume_page(c, &user, after, MAX_EVENTS, MAX_BYTES))
                .await?;
            serde_json::to_value(page)
        }
        Ask::Personalize { user, data } => {
            let data = app
                .store
                .read(move |c| chats::personalize(c, &user, &data))
                .await?;
            serde_json::to_value(data)
        }
        Ask::Delivered { marks } => {
            crate::deliveries::write(&app.store, marks).await?;
            Ok(Value::Null)
        }
    };
    value.map_err(|e| Error::Internal(anyhow::Error::new(e).context("encoding an answer")))
}

/// The streams and polls open on each edge, each held here as a presence connection of the
/// primary's registry: a user is online while any node has one open.
#[derive(Default)]
struct Nodes {
    nodes: Mutex<HashMap<String, Node>>,
}

struct Node {
    heard: Instant,
    conns: HashMap<u64, Connection>,
}

/// The node named `name`, heard from just now.
fn heard(nodes: &mut HashMap<String, Node>, name: String) -> &mut Node {
    let node = nodes.entry(name).or_insert_with(|| Node {
        heard: Instant::now(),
        conns: HashMap::new(),
    });
    node.heard = Instant::now();
    node
}

impl Node {
    /// Counts connection `id` of `user` (a poll or a stream) as open, unless it already is.
    fn open(&mut self, app: &App, id: u64, user: &UserId, poll: bool) {
        self.conns
            .entry(id)
            .or_insert_with(|| app.presence.connect(user, kind(poll)));
    }
}

fn kind(poll: bool) -> Kind {
    if poll {
        Kind::Poll
    } else {
        Kind::Stream
    }
}

impl Nodes {
    fn apply(&self, app: &Arc<App>, message: Presence) {
        // Connections dropped (closed) after the lock is released.
        let mut closed = Vec::new();
        let mut nodes = self.nodes.lock().unwrap();
        match message {
            Presence::Open {
                node,
                id,
                user,
                poll,
            } => {
                heard(&mut nodes, node).open(app, id, &user, poll);
            }
            Presence::Close { node, id, clean } => {
                if let Some(mut conn) = heard(&mut nodes, node).conns.remove(&id) {
                    if clean {
                        conn.close_cleanly();
                    }
                    closed.push(conn);
                }
            }
            Presence::Beat { node, open } => {
                let n = heard(&mut nodes, node);
                let listed: HashMap<u64, (UserId, bool)> =
                    open.into_iter().map(|(id, u, p)| (id, (u, p))).collect();
                // Closed there while the close was lost: closed here, cleanly (it was told).
                let gone: Vec<u64> = (n.conns.keys())
                    .filter(|id| !listed.contains_key(id))
                    .copied()
                    .collect();
                for id in gone {
                    if let Some(mut conn) = n.conns.remove(&id) {
                        conn.close_cleanly();
                        closed.push(conn);
                    }
                }
                for (id, (user, poll)) in listed {
                    n.open(app, id, &user, poll);
                }
            }
        }
        drop(nodes);
        drop(closed);
    }

    /// Forgets the nodes unheard of for [`NODE_TIMEOUT`]: their connections drop as broken
    /// ones do (partners are told `clientConnectionError`, and offline where it was the last).
    fn sweep(&self) {
        let gone: Vec<(String, Node)> = {
            let mut nodes = self.nodes.lock().unwrap();
            let names: Vec<String> = (nodes.iter())
                .filter(|(_, n)| n.heard.elapsed() >= NODE_TIMEOUT)
                .map(|(name, _)| name.clone())
                .collect();
            names
                .into_iter()
                .filter_map(|name| nodes.remove(&name).map(|n| (name, n)))
                .collect()
        };
        for (name, node) in gone {
            tracing::warn!(node = %name, open = node.conns.len(), "an edge went silent; its streams are closed");
        }
    }
}
