//! An edge of a cluster: it keeps no data. It serves clients' streams and polls from its own
//! hub, fed with the primary's relayed changes (a gap or a new primary makes every feed re-read
//! the primary's store, so nothing is lost or doubled), forwards every other request to the
//! primary, and reports its open streams and polls for cluster-wide presence.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::http::{Method, Response, StatusCode};
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;

use crate::api::stream::{self, PollAsk, SseAsk, Start, Streams};
use crate::config::Config;
use crate::deliveries::{Deliveries, Sink};
use crate::drain::Drain;
use crate::error::{Error, Result};
use crate::feed::{Reader, Sources};
use crate::http::{self, credentials, reply, Body, In, NodeLocal, Serves};
use crate::hub::Hub;
use crate::limits::Limits;
use crate::link::{self, Ask, Batch, Link, Opening, Presence};
use crate::metrics::Metrics;
use crate::model::{EventId, UserId};
use crate::presence::{Connection, Kind};

/// How often an edge tells the primary everything it has open.
const BEAT: Duration = Duration::from_secs(1);

/// The handles an edge serves from.
pub struct Edge {
    pub config: Config,
    pub link: Link,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub deliveries: Arc<Deliveries>,
    pub limits: Arc<Limits>,
    pub drain: Drain,
    pub stop_tx: watch::Sender<bool>,
    pub ping_tx: watch::Sender<()>,
    reporter: Arc<Reporter>,
}

impl Serves for Edge {
    fn config(&self) -> &Config {
        &self.config
    }
    fn drain(&self) -> &Drain {
        &self.drain
    }
    fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
    async fn route(self: &Arc<Self>, req: In, peer: IpAddr) -> Result<Response<Body>> {
        if req.method() == Method::OPTIONS {
            return Ok(reply::preflight());
        }
        if let Some(answer) = http::web_file(&req) {
            return answer;
        }
        let local = http::node_local(&req);
        if matches!(local, Some(NodeLocal::Events | NodeLocal::Poll)) {
            // What the primary checks of requests it serves itself (forwarded ones it checks).
            crate::http::head::check(&req)?;
            self.limits.check_ip(http::client_ip(&**self, &req, peer))?;
        }
        match local {
            Some(NodeLocal::Health) => self.health(),
            Some(NodeLocal::Events) => self.events(req).await,
            Some(NodeLocal::Poll) => self.poll(req).await,
            None => {
                let peer = http::client_ip(&**self, &req, peer);
                let timeout = self.config.body_timeout;
                // What the primary takes at most (an upload with its form's framing), checked
                // here too so that a larger body is not carried through the cluster.
                let limit = (self.config.max_upload + 64 * 1024).max(self.config.max_body as u64);
                super::forward::forward(&self.link, req, peer, timeout, limit).await
            }
        }
    }
    async fn scrape(&self) -> Result<String> {
        let online = {
            let open = self.reporter.open.lock().unwrap();
            let users: std::collections::HashSet<&UserId> = open.values().map(|(u, _)| u).collect();
            users.len()
        };
        // The users with a connection on this edge (the primary's page counts the cluster).
        self.metrics.online_users.set(online as i64);
        Ok(self.metrics.encode())
    }
}

impl Edge {
    fn streams(&self) -> Streams {
        let reporter = self.reporter.clone();
        Streams {
            sources: Sources {
                reader: Reader::Remote(self.link.clone()),
                hub: self.hub.clone(),
                metrics: self.metrics.clone(),
                deliveries: self.deliveries.clone(),
            },
            connect: Arc::new(move |user, kind| reporter.connect(user, kind)),
            limits: self.limits.clone(),
            stop: self.stop_tx.subscribe(),
            draining: self.drain.watch(),
            pings: self.ping_tx.subscribe(),
        }
    }

    /// `200` while the edge is connected to the cluster's NATS server.
    fn health(&self) -> Result<Response<Body>> {
        use async_nats::connection::State;
        match self.link.client.connection_state() {
            State::Connected => Ok(reply::json(
                StatusCode::OK,
                &serde_json::json!({"status": "ok", "role": "edge"}),
            )),
            _ => Err(Error::Unhealthy(
                "the edge is not connected to the cluster's NATS server".into(),
            )),
        }
    }

    /// Asks the primary where the caller's feed starts (checking their token).
    async fn open(
        &self,
        req: &In,
        snapshot: bool,
    ) -> Result<std::result::Result<Opening, Response<Body>>> {
        let token = credentials::token(req, true)?;
        match self
            .link
            .ask::<Opening>(&Ask::Open { token, snapshot })
            .await
        {
            Ok(opening) => {
                tracing::Span::current().record("user", opening.user.as_str());
                Ok(Ok(opening))
            }
            Err(refused) => Ok(Err(super::forward::refused_response(&refused))),
        }
    }

    async fn events(&self, req: In) -> Result<Response<Body>> {
        let ask = SseAsk::parse(&http::query(&req), http::last_event_id(&req))?;
        let opening = match self.open(&req, ask.snapshot).await? {
            Ok(opening) => opening,
            // An EventSource gives up for good on an error status: told to come back instead.
            Err(refused) if refused.status() == StatusCode::SERVICE_UNAVAILABLE => {
                let once = stream::restarting(link::RETRY_AFTER);
                return Ok(reply::event_stream(tokio_stream::once(once)));
            }
            Err(refused) => return Ok(refused),
        };
        let user = opening.user.clone();
        let chunks = stream::sse(&self.streams(), user, ask, Start::Opened(opening)).await?;
        Ok(reply::event_stream(chunks))
    }

    async fn poll(&self, req: In) -> Result<Response<Body>> {
        let ask = PollAsk::parse(&http::query(&req))?;
        let opening = match self.open(&req, false).await? {
            Ok(opening) => opening,
            Err(refused) => return Ok(refused),
        };
        let user = opening.user.clone();
        let body = stream::poll(&self.streams(), user, ask, Start::Opened(opening)).await?;
        Ok(reply::json(StatusCode::OK, &body))
    }
}

/// Serves `listener` as an edge of the cluster until `shutdown` resolves, then drains as a
/// single server does (streams end, clients reconnect to another node or to this one later).
pub async fn serve(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let cluster =
        (config.cluster.clone()).ok_or_else(|| anyhow::anyhow!("an edge needs --cluster"))?;
    let options = link::nats_options(
        &format!("chinwag-edge-{}", cluster.node),
        cluster.timeout,
        Duration::from_secs(1),
        cluster.token.as_deref(),
    );
    let client = options
        .connect(cluster.url.as_str())
        .await
        .map_err(|e| anyhow::anyhow!("cannot use the cluster at {}: {e}", cluster.url))?;
    // Listening before the first client is served: nothing the primary relays from now is missed.
    let batches = client.subscribe(link::EVENTS).await?;
    let _ = client.flush().await;
    let metrics_registry = Arc::new(Metrics::new());
    let link = Link {
        client: client.clone(),
        timeout: cluster.timeout,
    };
    let (report_tx, report_rx) = mpsc::unbounded_channel();
    let reporter = Arc::new(Reporter {
        // A restarted edge of the same name is another node to the primary's registry: its
        // connection ids start over, and the old process's connections expire on their own.
        node: format!("{}.{}", cluster.node, crate::random::random_hex(4)?),
        next: AtomicU64::new(0),
        open: Mutex::default(),
        tx: report_tx,
    });
    let edge = Arc::new(Edge {
        limits: Limits::new(&config, metrics_registry.clone()),
        config,
        hub: Hub::new(EventId::ZERO),
        metrics: metrics_registry,
        deliveries: Deliveries::new(Sink::Remote(link.clone())),
        link,
        drain: Drain::default(),
        stop_tx: watch::channel(false).0,
        ping_tx: watch::channel(()).0,
        reporter: reporter.clone(),
    });
    tracing::info!(url = %cluster.url, node = %cluster.node, "an edge of the cluster");
    let following = tokio::spawn(follow(batches, edge.hub.clone()));
    let reporting = tokio::spawn(report(client.clone(), report_rx, reporter));
    let deliveries = tokio::spawn(edge.deliveries.clone().run());
    let pinger = {
        let edge = edge.clone();
        tokio::spawn(async move {
            crate::sse::ping_clock(edge.config.ping_interval, &edge.ping_tx).await
        })
    };
    crate::http::listen::run_http(listener, metrics, edge.clone(), shutdown, &edge.stop_tx).await;
    pinger.abort();
    deliveries.abort();
    following.abort();
    if let Err(e) = edge.deliveries.flush().await {
        tracing::warn!("sending the last delivered receipts failed: {e:?}");
    }
    // The closes of the streams just ended go out before the connection does.
    tokio::time::sleep(Duration::from_millis(50)).await;
    reporting.abort();
    let _ = tokio::time::timeout(cluster.timeout, client.flush()).await;
    tracing::info!("stopped");
    Ok(())
}

/// Feeds the edge's hub with the primary's batches, in order; when one is missing (lost on
/// the way, or a restarted primary numbering anew) every feed re-reads the store first.
async fn follow(mut batches: async_nats::Subscriber, hub: Arc<Hub>) {
    let mut last: Option<(u64, u64)> = None;
    while let Some(message) = batches.next().await {
        let batch: Batch = match serde_json::from_slice(&message.payload) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("a batch from the primary did not decode: {e}");
                hub.resync();
                continue;
            }
        };
        // A batch follows the last one; a beat repeats its number.
        let expected = match batch.beat {
            true => batch.seq,
            false => batch.seq.wrapping_sub(1),
        };
        if last != Some((batch.epoch, expected)) {
            if last.is_some() {
                tracing::info!("batches from the primary were missed; streams re-read the store");
            }
            hub.resync();
        }
        last = Some((batch.epoch, batch.seq));
        hub.apply(batch.head, &batch.changes);
    }
}

/// What the edge has open, told to the primary as it changes and every [`BEAT`] in full.
struct Reporter {
    node: String,
    next: AtomicU64,
    open: Mutex<HashMap<u64, (UserId, bool)>>,
    tx: mpsc::UnboundedSender<Presence>,
}

impl Reporter {
    // Each change of `open` is queued with its message under the lock, and so is each beat's
    // snapshot: the primary hears them in the order they happened (a beat never overtakes the
    // close of a stream it no longer lists, which would make that close look clean).

    fn connect(self: &Arc<Self>, user: &UserId, kind: Kind) -> Connection {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let poll = kind == Kind::Poll;
        let node = self.node.clone();
        {
            let mut open = self.open.lock().unwrap();
            open.insert(id, (user.clone(), poll));
            let _ = self.tx.send(Presence::Open {
                node: node.clone(),
                id,
                user: user.clone(),
                poll,
            });
        }
        let me = self.clone();
        Connection::new(kind, move |clean| {
            let mut open = me.open.lock().unwrap();
            open.remove(&id);
            let _ = me.tx.send(Presence::Close { node, id, clean });
        })
    }

    /// Queues a beat: everything open now.
    fn beat(&self) {
        let open = self.open.lock().unwrap();
        let list = open
            .iter()
            .map(|(id, (u, p))| (*id, u.clone(), *p))
            .collect();
        let _ = self.tx.send(Presence::Beat {
            node: self.node.clone(),
            open: list,
        });
    }
}

/// Sends the reporter's messages in order, and a beat every second.
async fn report(
    client: async_nats::Client,
    mut rx: mpsc::UnboundedReceiver<Presence>,
    reporter: Arc<Reporter>,
) {
    let mut beat = tokio::time::interval(BEAT);
    loop {
        let message = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => return,
            },
            _ = beat.tick() => {
                reporter.beat();
                continue;
            }
        };
        let payload = match serde_json::to_vec(&message) {
            Ok(p) => Bytes::from(p),
            Err(_) => continue,
        };
        if let Err(e) = client.publish(link::PRESENCE, payload).await {
            tracing::debug!("a presence message was not sent: {e}");
        }
    }
}
