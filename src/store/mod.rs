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
pub mod messages;
pub mod outbox;
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

    /// Runs a change in the writer's next transaction. Its events are published once it commits;
    /// an `Err` rolls back this change alone.
    pub async fn write<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Tx) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        self.writer.submit(Lane::Small, f).await
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
        self.writer.submit(lane, f).await
    }

    /// Whether the database answers a read and a write.
    pub async fn healthy(&self) -> Result<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO meta(key, value) VALUES('health', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [crate::time::now_ms().to_string()],
            )?;
            Ok(())
        })
        .await
    }

    /// Stops the writer after the changes already queued; waits for it.
    pub fn close(&self) {
        self.checkpointer.stop();
        self.writer.stop();
    }
}
