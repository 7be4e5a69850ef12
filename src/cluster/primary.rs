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
use crate::link::{self, Ask, Batch, Presence};
use crate::model::UserId;
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
                    let answer = link::answer(ask(&app, &m.payload).await);
                    reply(&client, m.reply, answer).await;
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

async fn reply(client: &async_nats::Client, to: Option<async_nats::Subject>, body: Bytes) {
    let Some(to) = to else { return };
    if let Err(e) = client.publish(to, body).await {
        tracing::warn!("an answer to an edge was not sent: {e}");
    }
}

/// Publishes the hub's changes to the edges, in order, as they come.
async fn relay_batches(
    client: async_nats::Client,
    mut relay: tokio::sync::mpsc::Receiver<crate::hub::Relayed>,
) {
    // A new number each start: the edges see the numbering start over and re-read the store.
    let epoch = crate::random::random_hex(8)
        .ok()
        .and_then(|h| u64::from_str_radix(&h, 16).ok())
        .unwrap_or_else(|| crate::time::now_ms() as u64);
    while let Some(r) = relay.recv().await {
        let batch = Batch {
            epoch,
            seq: r.seq,
            head: r.head,
            changes: r.changes,
        };
        let payload = match serde_json::to_vec(&batch) {
            Ok(p) => Bytes::from(p),
            Err(e) => {
                tracing::error!("a batch for the edges did not encode: {e}");
                continue;
            }
        };
        if let Err(e) = client.publish(link::EVENTS, payload).await {
            tracing::warn!("a batch for the edges was not sent: {e}");
        }
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
                heard(&mut nodes, node)
                    .conns
                    .entry(id)
                    .or_insert_with(|| app.presence.connect(&user, kind(poll)));
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
                    n.conns
                        .entry(id)
                        .or_insert_with(|| app.presence.connect(&user, kind(poll)));
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
