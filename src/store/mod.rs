//! The only place with SQL. Reads run on a pool of connections on the blocking thread pool; all
//! writes go through one writer thread that commits concurrent requests together (group commit)
//! and publishes their events after the commit. Each function answers one question and takes and
//! returns model types.

mod checkpoint;
mod migrate;
mod writer;

pub mod backup;
pub mod chats;
pub mod events;
pub mod files;
pub mod host_chats;
pub mod members;
pub mod messages;
pub mod outbox;
pub mod telegram;
mod tx;
mod types;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use crate::config::{Config, Sync};
use crate::error::{Error, Result};
use crate::hub::Hub;

pub use writer::{Lane, Tx};

/// Handle to the database: cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<SqliteConnectionManager>,
    writer: writer::Writer,
    checkpointer: checkpoint::Checkpointer,
    /// When the last change failed for want of space (Unix ms); `None` once one commits again.
    /// `/healthz` answers 503 while it is set.
    full_since: Arc<std::sync::Mutex<Option<i64>>>,
}

/// Pragmas every connection gets.
fn configure(conn: &Connection, sync: Sync) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match sync {
            Sync::Full => "FULL",
            Sync::Normal => "NORMAL",
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

impl Store {
    /// Opens (creating and migrating) the database in the config's data directory and starts the
    /// writer thread, which publishes committed events to `hub`.
    pub fn open(
        config: &Config,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<(Store, Arc<Hub>)> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let path = config.db_path();
        let sync = config.sync;
        let mut conn =
            Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        configure(&conn, sync)?;
        migrate::run(&mut conn).context("applying migrations")?;
        // Checkpoints run on their own thread, off the writer's path (see `checkpoint`); a WAL
        // that once grew large is cut back when it restarts.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        if let Some(bytes) = config.max_db_size {
            // SQLite's own cap: past it a change fails with SQLITE_FULL, as on a full disk.
            let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
            let pages = (bytes as i64 / page.max(1)).max(1);
            conn.pragma_update(None, "max_page_count", pages)?;
        }
        let hub = Hub::new(events::head(&conn)?);

        let manager = SqliteConnectionManager::file(&path).with_init(move |c| {
            configure(c, sync)?;
            // Readers lean on the OS's page cache: 1 MiB each of their own keeps the server's
            // memory flat as the pool warms up.
            c.pragma_update(None, "cache_size", -1024)?;
            c.pragma_update(None, "query_only", true)
        });
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .build(manager)
            .context("opening the reader pool")?;
        let checkpoint_conn = Connection::open(&path)?;
        configure(&checkpoint_conn, sync)?;
        checkpoint_conn.busy_timeout(Duration::from_secs(1))?;
        let writer = writer::Writer::start(conn, hub.clone(), metrics)?;
        let checkpointer = checkpoint::Checkpointer::start(checkpoint_conn, writer.clone())?;
        Ok((
            Store {
                pool,
                writer,
                checkpointer,
                full_since: Arc::default(),
            },
            hub,
        ))
    }

    /// Runs a read on a pooled connection off the async runtime.
    pub async fn read<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool
                .get()
                .map_err(|e| Error::Internal(anyhow::Error::new(e).context("reader pool")))?;
            f(&conn)
        })
        .await
        .map_err(|e| Error::Internal(anyhow::Error::new(e).context("reader task")))?
    }

    /// How an outbox's worker waits: until the outbox's head falls due (`next_due`, in Unix ms;
    /// at most `idle` from now), or until `wake` is poked from inside a transaction that queued
    /// something, and then until that transaction has committed, so that what it queued is
    /// visible. Returns at once when the head is due; a failed read of the outbox waits a second.
    pub async fn idle(
        &self,
        next_due: fn(&Connection) -> Result<Option<i64>>,
        wake: &tokio::sync::Notify,
        idle: std::time::Duration,
    ) -> Result<()> {
        let wait = match self.read(next_due).await {
            Ok(Some(at)) => {
                let ms = (at - crate::time::now_ms()).max(0) as u64;
                std::time::Duration::from_millis(ms).min(idle)
            }
            Ok(None) => idle,
            Err(e) => {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                return Err(e);
            }
        };
        if wait.is_zero() {
            return Ok(());
        }
        tokio::select! {
            // An empty change runs in the writer's next transaction: once it is answered, the
            // poking one has committed.
            _ = wake.notified() => self.write(|_| Ok(())).await,
            _ = tokio::time::sleep(wait) => Ok(()),
        }
    }

    /// Runs a change in the writer's next transaction. Its events are published once it commits;
    /// an `Err` rolls back this change alone.
    pub async fn write<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Tx) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.submit(Lane::Small, f).await
    }

    /// Like [`Store::write`], for a change of about `rows` rows (a group created or grown by
    /// hundreds of members). Past [`writer::BULK_ROWS`] it is a bulk change: it gets a
    /// transaction with no other bulk change, so small changes queued behind it wait for one.
    pub async fn write_rows<R, F>(&self, rows: usize, f: F) -> Result<R>
    where
        F: FnOnce(&mut Tx) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let lane = if rows > writer::BULK_ROWS {
            Lane::Bulk
        } else {
            Lane::Small
        };
        self.submit(lane, f).await
    }

    /// Queues a change in `lane`, and keeps track of whether the disk is full: a change refused
    /// for its input says nothing of the disk; one that commits does.
    async fn submit<R, F>(&self, lane: Lane, f: F) -> Result<R>
    where
        F: FnOnce(&mut Tx) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let result = self.writer.submit(lane, f).await;
        match &result {
            Ok(_) => *self.full_since.lock().unwrap() = None,
            Err(Error::InsufficientStorage) => {
                let mut since = self.full_since.lock().unwrap();
                since.get_or_insert_with(crate::time::now_ms);
            }
            Err(_) => {}
        }
        result
    }

    /// Whether the database answers a read and a write, and the last change did not fail for
    /// want of space (its own small write may still fit where a message does not).
    pub async fn healthy(&self) -> Result<()> {
        if let Some(since) = *self.full_since.lock().unwrap() {
            return Err(Error::Unhealthy(format!(
                "writes are failing: storage full since {}",
                crate::time::rfc3339(since)
            )));
        }
        self.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await?;
        let probe = self.writer.submit(Lane::Small, |tx: &mut Tx| {
            tx.execute(
                "INSERT INTO meta(key, value) VALUES('health', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [crate::time::now_ms().to_string()],
            )?;
            Ok(())
        });
        match probe.await {
            Err(Error::InsufficientStorage) => {
                Err(Error::Unhealthy("writes are failing: storage full".into()))
            }
            Err(e) => {
                tracing::error!("the health check's write failed: {e:?}");
                Err(Error::Unhealthy(
                    "writes are failing; see the server log".into(),
                ))
            }
            Ok(()) => Ok(()),
        }
    }

    /// Stops the writer after the changes already queued; waits for it.
    pub fn close(&self) {
        self.checkpointer.stop();
        self.writer.stop();
    }
}

/// A migrated database in memory, for the store's unit tests.
#[cfg(test)]
pub(crate) fn memory_db() -> rusqlite::Connection {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    migrate::run(&mut conn).unwrap();
    conn
}
