//! The running server: one node's [`App`] served over HTTP (`http::listen`) with the background
//! tasks (maintenance, delivered receipts, webhooks, the ping clock, the bus) until shutdown;
//! the caller binds the listener and decides when to stop.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::app::App;
use crate::http::listen::run_http;
use crate::sse::ping_clock;

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
    // The Telegram bridge, unless Telegram refused its token at start.
    let bridge = app.telegram.clone().filter(|b| b.running());
    let telegram = bridge.zip(app.telegram_worker()).map(|(bridge, worker)| {
        [
            tokio::spawn(crate::telegram::outbound::run(worker)),
            tokio::spawn(crate::api::telegram::run(app.clone(), bridge)),
        ]
    });
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
    // A post cut off here is still in the outbox; an update not yet handled is read again.
    for task in telegram.into_iter().flatten() {
        task.abort();
    }
    if let Err(e) = app.deliveries.flush().await {
        tracing::warn!("writing the last delivered receipts failed: {e:?}");
    }
    let store = app.store.clone();
    crate::blocking::run("closing the database", move || store.close()).await?;
    tracing::info!("stopped");
    Ok(())
}
