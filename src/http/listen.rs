//! Serving a listener over HTTP/1.1 for any node: the connection cap, each connection on its own
//! task, and the drain at shutdown (answers first, then `503`s, then the streams end).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::time::Instant;

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

/// Serves `listener` (and the metrics address) with `node` until `shutdown` resolves, then
/// drains as `server::serve` describes, up to the point where connections are closed. Returns when
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
