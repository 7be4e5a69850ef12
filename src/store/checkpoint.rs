//! The checkpointer thread: copies WAL pages into the database off the writer's path, often and in
//! small steps (passive checkpoints never block the writer). Once the WAL has grown past a bound
//! it asks the writer to restart it between two transactions, so the file is reused instead of
//! growing without limit under steady load; by then nearly every page has been copied, so the
//! restart costs the writer little. (Restarting from this thread would starve: the writer takes
//! the write lock again the moment it lets go.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::writer::Writer;

/// How often the WAL is copied into the database.
const INTERVAL: Duration = Duration::from_millis(100);
/// WAL pages (4 KiB each) after which the WAL is restarted from its beginning.
const RESTART_PAGES: i64 = 4096;

/// Handle to the checkpointer thread.
#[derive(Clone)]
pub struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Checkpointer {
    /// Starts checkpointing the database `conn` is open on.
    pub fn start(conn: Connection, writer: Writer) -> anyhow::Result<Checkpointer> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("chinwag-checkpoint".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    std::thread::park_timeout(INTERVAL);
                    match step(&conn) {
                        Ok(true) => writer.restart_wal(),
                        Ok(false) => {}
                        Err(e) => tracing::warn!("checkpoint failed: {e}"),
                    }
                }
            })?;
        Ok(Checkpointer {
            stop,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.thread.lock().unwrap().take() {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

/// One passive checkpoint; true when the WAL has grown past the bound and should restart.
fn step(conn: &Connection) -> rusqlite::Result<bool> {
    let (_busy, log_pages): (i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(log_pages > RESTART_PAGES)
}
