//! The running server: the shared [`App`] state, the accept loop with graceful shutdown, and the
//! background tasks (maintenance, delivered receipts, webhooks). The caller binds the listener and
//! decides when to stop.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::Config;
use crate::deliveries::Deliveries;
use crate::error::{Error, Result};
use crate::http::accept::{Accepted, Acceptor};
use crate::http::drain::Drain;
use crate::http::limits::Limits;
use crate::http::stall::Stall;
use crate::hub::Hub;
use crate::model::{Profile, User, UserId};
use crate::presence::Presence;
use crate::store::{self, Store};
use crate::webhooks::Webhooks;

/// Most bytes hyper buffers for one connection, each way: a response waiting for a client that
/// reads slowly or not at all holds at most this (past the kernel's socket buffer) until the
/// stall timeout closes it; it also caps a request's headers.
const CONNECTION_BUFFER: usize = 64 * 1024;

/// Everything a request handler may use.
pub struct App {
    /// The settings the server runs with.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// Per-user fan-out of events.
    pub hub: Arc<Hub>,
    /// Who is online.
    pub presence: Arc<Presence>,
    /// Delivered receipts for what reached recipients' streams and polls.
    pub deliveries: Arc<Deliveries>,
    secret: String,
    service_key: String,
    stop_tx: watch::Sender<bool>,
    /// Ticks every `ping_interval`: one clock for every stream's keep-alive, not a timer each.
    ping_tx: watch::Sender<()>,
    /// Users seen by this process, with a hash of the profile last stored for them.
    seen: Mutex<HashMap<UserId, u64>>,
    /// Webhook settings and the outbox worker's wake-up.
    pub webhooks: Arc<Webhooks>,
    /// What `/metrics` exports.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The bound on thumbnail decodes.
    pub thumbnails: Arc<crate::thumbnails::Thumbnails>,
    /// What one caller may take: request rates and open streams.
    pub limits: Arc<Limits>,
    /// Shutdown as requests see it: refused once it begins, counted until answered.
    pub drain: Drain,
}

impl App {
    /// Opens the data directory (database, migrations, secrets) and builds the state.
    pub fn open(config: Config) -> anyhow::Result<Arc<App>> {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let (store, hub) = Store::open(&config, metrics.clone())?;
        let secret = config.token_secret()?;
        let service_key = config.host_key()?;
        let presence = Presence::new(
            store.clone(),
            hub.clone(),
            config.poll_presence,
            config.presence_group_limit,
        );
        let deliveries = Deliveries::new(store.clone());
        let webhooks = Webhooks::new(&config)?;
        let thumbnails = crate::thumbnails::Thumbnails::new(
            config.thumbnail_decodes,
            config.thumbnail_memory,
            metrics.thumbnails.clone(),
        );
        let limits = Limits::new(&config, metrics.clone());
        Ok(Arc::new(App {
            config,
            store,
            hub,
            presence,
            deliveries,
            secret,
            service_key,
            stop_tx: watch::channel(false).0,
            ping_tx: watch::channel(()).0,
            seen: Mutex::default(),
            webhooks,
            metrics,
            thumbnails,
            limits,
            drain: Drain::default(),
        }))
    }

    /// Verifies a client token and stores the user (and their profile, if the token has one) the
    /// first time this process sees them or their profile changes.
    pub async fn authenticate(&self, token: &str) -> Result<UserId> {
        let leeway = self.config.token_leeway.as_secs();
        let claims =
            crate::auth::verify(&self.secret, token, leeway).map_err(Error::TokenInvalid)?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        claims.profile.hash(&mut h);
        let hash = h.finish();
        let known = self.seen.lock().unwrap().get(&claims.user) == Some(&hash);
        if !known {
            self.see_user(&claims.user, claims.profile.clone()).await?;
            self.seen.lock().unwrap().insert(claims.user.clone(), hash);
        }
        Ok(claims.user)
    }

    /// Records that `user` exists, with the profile fields given (absent ones keep their value),
    /// and gives them their support chat when there is a support user; returns their public
    /// profile. Runs in the writer, so concurrent first requests still make one support chat.
    pub async fn see_user(&self, user: &UserId, profile: Option<Profile>) -> Result<User> {
        let user = user.clone();
        let support = self.config.support_user.clone();
        self.store
            .write(move |tx| {
                match &profile {
                    Some(p) => store::users::upsert_profile(tx, &user, p)?,
                    None => store::users::ensure(tx, &user)?,
                }
                if let Some(support) = support.filter(|s| s != &user) {
                    crate::api::chats::ensure_support_chat(tx, &user, &support)?;
                }
                Ok(store::users::profiles(tx, [user.as_str()])?.remove(0))
            })
            .await
    }

    /// A client token for `user` valid for `ttl` seconds, and its expiry (Unix seconds).
    pub fn mint_token(&self, user: &UserId, ttl: u64) -> (String, i64) {
        let token = crate::auth::mint(&self.secret, user, ttl);
        (token, crate::time::now_ms() / 1000 + ttl as i64)
    }

    /// Whether `presented` is the host backend's service key (compared in constant time).
    pub fn is_service_key(&self, presented: &str) -> bool {
        crate::auth::service_key_matches(&self.service_key, presented)
    }

    /// Changes every ping interval: streams send a keep-alive comment when it does.
    pub fn pings(&self) -> watch::Receiver<()> {
        let mut rx = self.ping_tx.subscribe();
        rx.mark_unchanged();
        rx
    }

    /// Becomes true when the server starts shutting down: streams end, polls answer. Wait on it
    /// with `wait_for(|s| *s)`, which also sees a shutdown that began before the call.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop_tx.subscribe()
    }
}

/// How long the server keeps taking connections once draining has begun and its requests are
/// answered, while new ones still come: each is answered `503` (clients that had a request on
/// the way hear so instead of being refused or reset), until none has come for this long.
const DRAIN_QUIET: Duration = Duration::from_millis(250);

/// The connection cap: the configured one, or the open-file limit less the files the database,
/// uploads and webhooks need.
fn connection_cap(config: &Config) -> usize {
    config.max_connections.unwrap_or_else(|| {
        let files = crate::health::open_files_limit().unwrap_or(1024);
        files.saturating_sub(crate::config::RESERVED_FILES).max(16) as usize
    })
}

/// Serves `listener` with `app` until `shutdown` resolves, then drains: requests already taken
/// get their answers (every answer from then on says `Connection: close`), later ones and new
/// connections are answered `503`; once the last request taken is answered, streams end, the
/// listeners close (connections the kernel had already queued are taken and answered first),
/// idle connections are closed, and the database closes after the last queued write. It all
/// takes at most `shutdown_grace`. `metrics`, when given, is a second address served the same
/// way that answers only `GET /metrics`, without the service key.
pub async fn serve(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let maintenance = tokio::spawn(crate::janitor::run(app.clone()));
    let deliveries = tokio::spawn(app.deliveries.clone().run());
    let webhooks = tokio::spawn(crate::webhooks::run(app.clone()));
    let pinger = {
        let app = app.clone();
        tokio::spawn(async move {
            let period = app.config.ping_interval;
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tick.tick().await;
                app.ping_tx.send_replace(());
            }
        })
    };
    let cap = connection_cap(&app.config);
    tracing::info!("accepting at most {cap} connections at once");
    // Behind a proxy every connection comes from the proxy: addresses are capped only without one.
    let per_address = (app.config.max_connections_per_ip > 0
        && app.config.client_ip_header.is_none())
    .then_some(app.config.max_connections_per_ip);
    let mut acceptor = Acceptor::new(listener, metrics, cap, per_address, app.metrics.clone());
    let conns = Connections::new(app.clone());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = acceptor.next() => conns.serve(accepted),
            _ = &mut shutdown => break,
        }
    }
    let grace = app.config.shutdown_grace;
    let deadline = Instant::now() + grace;
    app.drain.begin();
    // Requests taken before now are answered; connections that keep coming are told 503.
    let mut quiet = Instant::now() + DRAIN_QUIET;
    let mut settled = false;
    loop {
        tokio::select! {
            accepted = acceptor.next() => {
                conns.serve(accepted);
                quiet = Instant::now() + DRAIN_QUIET;
            }
            _ = app.drain.settled(), if !settled => settled = true,
            _ = tokio::time::sleep_until(quiet), if settled => break,
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    // send_replace sets the flag even when nobody listens yet: later waiters see it at once.
    app.stop_tx.send_replace(true);
    for accepted in acceptor.queued() {
        conns.serve(accepted);
    }
    drop(acceptor);
    if tokio::time::timeout_at(deadline, conns.graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after {grace:?}; closing anyway");
    }
    maintenance.abort();
    pinger.abort();
    deliveries.abort();
    // A delivery cut off here is still in the outbox and is sent again after the restart.
    webhooks.abort();
    if let Err(e) = app.deliveries.flush().await {
        tracing::warn!("writing the last delivered receipts failed: {e:?}");
    }
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || store.close()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Serves accepted connections, each on its own task, all watched for a graceful end.
struct Connections {
    app: Arc<App>,
    builder: hyper::server::conn::http1::Builder,
    graceful: GracefulShutdown,
}

impl Connections {
    fn new(app: Arc<App>) -> Connections {
        // HTTP/1.1 only: it is what browsers, proxies and curl speak to a plain-HTTP origin,
        // and it keeps each idle stream's connection small.
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .max_buf_size(CONNECTION_BUFFER)
            // Above Chinwag's own bounds, so that those answer in the error envelope.
            .max_headers(crate::http::head::HARD_MAX_HEADER_FIELDS);
        Connections {
            app,
            builder,
            graceful: GracefulShutdown::new(),
        }
    }

    fn serve(&self, accepted: Accepted) {
        let Accepted {
            stream,
            peer,
            metrics_only,
            place,
        } = accepted;
        let _ = stream.set_nodelay(true);
        let app = self.app.clone();
        let service = hyper::service::service_fn(move |req| {
            let app = app.clone();
            async move {
                Ok::<_, Infallible>(if metrics_only {
                    crate::http::handle_metrics(app, req).await
                } else {
                    crate::http::handle(app, req, peer.ip()).await
                })
            }
        });
        let io = TokioIo::new(Stall::new(stream, self.app.config.stall_timeout));
        let conn = self.builder.serve_connection(io, service);
        let conn = self.graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(place);
        });
    }
}
