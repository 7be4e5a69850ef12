//! Background maintenance: prunes events past the retention window and takes lapsed pollers
//! offline. Each piece can also be run once on demand.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::server::App;
use crate::store;

/// Events deleted per write transaction, so pruning never holds the writer for long.
const PRUNE_BATCH: usize = 5_000;

/// Deletes every event older than the retention window; returns how many.
pub async fn prune_once(app: &App) -> Result<usize> {
    let cutoff = crate::time::now_ms() - app.config.retention.as_millis() as i64;
    let mut total = 0;
    loop {
        let n = app
            .store
            .write(move |tx| store::events::prune_before(tx, cutoff, PRUNE_BATCH))
            .await?;
        total += n;
        if n < PRUNE_BATCH {
            return Ok(total);
        }
    }
}

/// Runs until aborted: presence sweeps every second, pruning every
/// `janitor_interval`.
pub async fn run(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_prune = tokio::time::Instant::now();
    if let Err(e) = prune_once(&app).await {
        tracing::warn!("janitor: pruning failed: {e:?}");
    }
    loop {
        tick.tick().await;
        app.presence.sweep();
        if last_prune.elapsed() >= app.config.janitor_interval {
            last_prune = tokio::time::Instant::now();
            match prune_once(&app).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("janitor: pruned {n} events past retention"),
                Err(e) => tracing::warn!("janitor: pruning failed: {e:?}"),
            }
        }
    }
}
