//! The running server: the accept loop with graceful shutdown, and the background tasks
//! (maintenance, delivered receipts, webhooks, the ping clock, the bus) over a shared [`App`]. The caller
//! binds the listener and decides when to stop.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::app::App;
use crate::config::Config;
use crate::http::accept::{Accepted, Acceptor};
use crate::http::stall::Stall;
use crate::http::Serves;

/// Most bytes hyper buffers for one connection, each way: a response waiting for a client that
/// reads slowly or not at all holds at most this (past the kernel's socket buffer) until the
/// stall timeout closes it; it also caps a request's headers.
const CONNECTION_BUFFER: usize = 64 * 1024;

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
    let maintenance = tokio::spawn(crate::janitor::run(app.janitor()));
    let deliveries = tokio::spawn(app.deliveries.clone().run());
    let webhooks = tokio::spawn(crate::webhooks::run(app.webhook_worker()));
    // The host API on the bus stops taking requests when draining begins; the ones it took
    // count as requests in flight, so the drain waits for their answers.
    let bus = (app.config.bus.clone()).map(|bus| tokio::spawn(crate::bus::run(app.clone(), bus)));
    let pinger = {
        let app = app.clone();
        tokio::spawn(async move { ping_clock(app.config.ping_interval, &app.ping_tx).await })
    };
    run_http(listener, metrics, app.clone(), shutdown, &app.stop_tx).await;
    let deadline = Instant::now() + app.config.shutdown_grace;
    if let Some(bus) = bus {
        let _ = tokio::time::timeout_at(deadline, bus).await;
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
    crate::blocking::run("closing the database", move || store.close()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Serves `listener` (and the metrics address) with `node` until `shutdown` resolves, then
/// drains as [`serve`] describes, up to the point where connections are closed. Returns when
/// the last connection is closed or `shutdown_grace` has passed.
pub async fn run_http<S: Serves>(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    node: Arc<S>,
    shutdown: impl Future<Output = ()>,
    stop_tx: &tokio::sync::watch::Sender<bool>,
) {
    let config = node.config();
    let cap = connection_cap(config);
    tracing::info!("accepting at most {cap} connections at once");
    // Behind a proxy every connection comes from the proxy: addresses are capped only without one.
    let per_address = (config.max_connections_per_ip > 0 && config.client_ip_header.is_none())
        .then_some(config.max_connections_per_ip);
    let node_metrics = node.metrics().clone();
    let mut acceptor = Acceptor::new(listener, metrics, cap, per_address, node_metrics);
    let conns = Connections::new(node.clone());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = acceptor.next() => conns.serve(accepted),
            _ = &mut shutdown => break,
        }
    }
    let grace = node.config().shutdown_grace;
    let deadline = Instant::now() + grace;
    let drain = node.drain();
    drain.begin();
    // Requests taken before now are answered; connections that keep coming are told 503.
    let mut quiet = Instant::now() + DRAIN_QUIET;
    let mut settled = false;
    loop {
        tokio::select! {
            accepted = acceptor.next() => {
                conns.serve(accepted);
                quiet = Instant::now() + DRAIN_QUIET;
            }
            _ = drain.settled(), if !settled => settled = true,
            _ = tokio::time::sleep_until(quiet), if settled => break,
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    // send_replace sets the flag even when nobody listens yet: later waiters see it at once.
    stop_tx.send_replace(true);
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
}

/// Changes `pings` every `period`, for ever: every stream's keep-alive runs off this one clock.
pub async fn ping_clock(period: Duration, pings: &tokio::sync::watch::Sender<()>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tick.tick().await;
        pings.send_replace(());
    }
}

/// Serves accepted connections, each on its own task, all watched for a graceful end.
struct Connections<S> {
    app: Arc<S>,
    builder: hyper::server::conn::http1::Builder,
    graceful: GracefulShutdown,
}

impl<S: Serves> Connections<S> {
    fn new(app: Arc<S>) -> Connections<S> {
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
        let service =
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let app = app.clone();
                let req = req.map(|body| {
                    use http_body_util::BodyExt;
                    body.map_err(crate::http::BodyError::from).boxed()
                });
                async move {
                    Ok::<_, Infallible>(if metrics_only {
                        crate::http::handle_metrics(app, req).await
                    } else {
                        crate::http::handle(app, req, peer.ip()).await
                    })
                }
            });
        let io = TokioIo::new(Stall::new(stream, self.app.config().stall_timeout));
        let conn = self.builder.serve_connection(io, service);
        let conn = self.graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(place);
        });
    }
}
