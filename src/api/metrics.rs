//! `GET /metrics`: sets the gauges that describe state (who is online, the webhook outbox, the
//! database's size) from their owners, then encodes every metric in the Prometheus text format.

use crate::app::App;
use crate::error::Result;
use crate::store::outbox;

/// The metrics page, current as of this call.
pub async fn scrape(app: &App) -> Result<String> {
    let m = &app.metrics;
    m.online_users.set(app.presence.online_count() as i64);
    m.webhook_outbox
        .set(app.store.read(outbox::pending).await? as i64);
    let db = app.config.db_path();
    let size = |path: std::path::PathBuf| std::fs::metadata(path).map_or(0, |m| m.len() as i64);
    let wal = db.with_extension("db-wal");
    let (db_size, wal_size) =
        crate::blocking::run("sizing the database", move || (size(db), size(wal)))
            .await
            .map_err(crate::error::Error::Internal)?;
    m.db_bytes.set(db_size);
    m.wal_bytes.set(wal_size);
    Ok(m.encode())
}
