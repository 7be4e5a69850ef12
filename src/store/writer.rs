//! The one writer thread. It takes every change queued while the previous commit was in flight,
//! runs each in its own savepoint of one transaction, commits once (one fsync for the lot: group
//! commit), then publishes the committed events to the hub in commit order, then answers each
//! caller. A change that fails rolls back alone; the others still commit. Bulk changes (hundreds
//! of members at once) wait in a lane of their own, one per transaction, so a small change never
//! queues behind more than one of them.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::oneshot;

pub use super::tx::Tx;
use crate::error::{Error, Result};
use crate::hub::{Hub, Published};
use crate::metrics::Metrics;

/// Most changes committed together.
const MAX_BATCH: usize = 512;
/// A change of more rows than this is a bulk change (see [`Lane`]).
pub const BULK_ROWS: usize = 32;

/// Runs a change and hands back what to do once the fate of the transaction is known.
type Job = Box<dyn FnOnce(&mut Tx) -> (Ran, Done) + Send>;

/// How a change's own run ended, before the transaction's fate is known.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ran {
    /// It succeeded: keep it.
    Kept,
    /// It failed: roll it back alone.
    Failed,
    /// It failed for want of space: roll it back; if SQLite dropped the transaction with it,
    /// the others in it were lost to a full disk too.
    Full,
}

/// How much work a change may be: the writer runs at most one bulk change per transaction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lane {
    /// A change of a few rows: a message, a receipt, a rename.
    Small,
    /// A change of up to hundreds of rows: a group created or grown by hundreds of members.
    Bulk,
}

enum Msg {
    Job(Job, Lane),
    /// Checkpoint the whole WAL so the next transaction writes it from its start again.
    RestartWal,
    Stop,
}

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Msg>,
    metrics: Arc<Metrics>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

fn internal(what: &str) -> Error {
    Error::Internal(anyhow::anyhow!("{what}"))
}

impl Writer {
    /// Starts the thread that owns `conn`.
    pub fn start(conn: Connection, hub: Arc<Hub>, metrics: Arc<Metrics>) -> anyhow::Result<Writer> {
        let (tx, rx) = mpsc::channel();
        let m = metrics.clone();
        let thread = std::thread::Builder::new()
            .name("chinwag-writer".into())
            .spawn(move || run(conn, rx, hub, m))?;
        Ok(Writer {
            tx,
            metrics,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// Queues a change in `lane` and waits for its commit.
    pub async fn submit<R, F>(&self, lane: Lane, f: F) -> Result<R>
    where
        F: FnOnce(&mut Tx) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |tx: &mut Tx| {
            let result = f(tx);
            let ran = match &result {
                Ok(_) => Ran::Kept,
                Err(Error::InsufficientStorage) => Ran::Full,
                Err(_) => Ran::Failed,
            };
            let done = move |commit: Commit| {
                let result = match (result, commit) {
                    (Ok(_), Commit::Full) => Err(Error::InsufficientStorage),
                    (Ok(_), Commit::Lost) => Err(internal("the transaction did not commit")),
                    (other, _) => other,
                };
                let _ = reply.send(result);
            };
            (ran, Box::new(done) as Done)
        });
        // Counted before it is queued, so the writer never takes it off a count it is not in.
        self.metrics.writer_queue.inc();
        if self.tx.send(Msg::Job(job, lane)).is_err() {
            self.metrics.writer_queue.dec();
            return Err(internal("the writer has stopped"));
        }
        answer
            .await
            .map_err(|_| internal("the change panicked or the writer stopped"))?
    }

    /// Asks the writer to restart the WAL between two transactions.
    pub fn restart_wal(&self) {
        let _ = self.tx.send(Msg::RestartWal);
    }

    /// Lets the queued changes finish, then stops the thread and waits for it.
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(handle) = self.thread.lock().unwrap().take() {
            let _ = handle.join();
        }
    }
}

/// Changes taken off the channel and not yet run, by lane.
#[derive(Default)]
struct Queued {
    small: VecDeque<Job>,
    bulk: VecDeque<Job>,
    restart_wal: bool,
    stopping: bool,
}

impl Queued {
    fn take(&mut self, msg: Msg, metrics: &Metrics) {
        match msg {
            Msg::Job(job, lane) => {
                metrics.writer_queue.dec();
                match lane {
                    Lane::Small => self.small.push_back(job),
                    Lane::Bulk => self.bulk.push_back(job),
                }
            }
            Msg::RestartWal => self.restart_wal = true,
            Msg::Stop => self.stopping = true,
        }
    }

    fn is_empty(&self) -> bool {
        self.small.is_empty() && self.bulk.is_empty()
    }

    /// The next transaction's changes: the small ones first (up to the batch limit), then at
    /// most one bulk change.
    fn batch(&mut self) -> Vec<Job> {
        let n = self.small.len().min(MAX_BATCH);
        let mut batch: Vec<Job> = self.small.drain(..n).collect();
        batch.extend(self.bulk.pop_front());
        batch
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Msg>, hub: Arc<Hub>, metrics: Arc<Metrics>) {
    let mut queued = Queued::default();
    loop {
        if queued.is_empty() && !queued.stopping {
            let Ok(first) = rx.recv() else { break };
            queued.take(first, &metrics);
        }
        // Everything queued until now; nothing after a stop (its callers are told it failed).
        while !queued.stopping {
            let Ok(msg) = rx.try_recv() else { break };
            queued.take(msg, &metrics);
        }
        if queued.is_empty() && queued.stopping {
            break;
        }
        let batch = queued.batch();
        if !batch.is_empty() {
            let started = std::time::Instant::now();
            metrics.writer_batch.observe(batch.len() as f64);
            commit_batch(&conn, batch, &hub, &metrics);
            metrics
                .writer_commit
                .observe(started.elapsed().as_secs_f64());
        }
        if std::mem::take(&mut queued.restart_wal) {
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
                tracing::warn!("restarting the WAL failed: {e}");
            }
        }
    }
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::warn!("final checkpoint failed: {e}");
    }
}

/// Runs a statement without parameters, prepared once per connection.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Commits `batch` in as few transactions as it takes: normally one. If SQLite abandons the
/// transaction under a change (an I/O error or a full disk rolls the whole transaction back),
/// every change run in it so far is answered as not committed and the rest start a new one:
/// a change is never committed outside the transaction its caller was answered for.
fn commit_batch(conn: &Connection, batch: Vec<Job>, hub: &Hub, metrics: &Metrics) {
    let mut queue: VecDeque<Job> = batch.into();
    while !queue.is_empty() {
        if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
            tracing::error!("cannot begin a transaction: {e}");
            // Dropping the jobs drops their reply senders: each caller gets an internal error.
            return;
        }
        let (finish, published, lost) = run_jobs(conn, &mut queue);
        let commit = match lost {
            Some(lost) => lost,
            None => match exec(conn, "COMMIT") {
                Ok(()) => Commit::Done,
                Err(e) => {
                    tracing::error!("commit failed: {e}");
                    match crate::error::is_full(&e) {
                        true => Commit::Full,
                        false => Commit::Lost,
                    }
                }
            },
        };
        let committed = commit == Commit::Done;
        if !committed && !conn.is_autocommit() {
            let _ = exec(conn, "ROLLBACK");
        }
        if committed {
            let ids = published.iter().filter_map(|p| match p {
                Published::User(_, f) | Published::Chat(_, f) => f.id,
                _ => None,
            });
            let (stored, last) = ids.fold((0, None), |(n, max), id| (n + 1, max.max(Some(id))));
            metrics.events_appended.inc_by(stored);
            if let Some(last) = last {
                hub.advance(last);
            }
            hub.publish_committed(&published);
        }
        for done in finish {
            done(commit);
        }
    }
}

/// How a transaction ended, for the callers whose changes were in it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// Committed: the changes are stored.
    Done,
    /// Rolled back by SQLite or a failed commit: nothing was stored.
    Lost,
    /// The commit found the disk (or the database's size limit) full: nothing was stored.
    Full,
}

type Done = Box<dyn FnOnce(Commit) + Send>;

/// Committed events and membership changes, in commit order.
type Changes = Vec<Published>;

/// Runs queued changes inside the open transaction, each in its own savepoint, until the queue is
/// empty or the transaction is lost. Returns the answers to give, the events to publish, and how
/// the transaction was lost (`None`: it is still open): to a full disk when the change that ended
/// it failed for want of space.
fn run_jobs(conn: &Connection, queue: &mut VecDeque<Job>) -> (Vec<Done>, Changes, Option<Commit>) {
    let mut finish = Vec::new();
    let mut published = Vec::new();
    while let Some(job) = queue.pop_front() {
        if let Err(e) = exec(conn, "SAVEPOINT change") {
            tracing::error!("cannot open a savepoint: {e}");
            queue.push_front(job);
            return (finish, published, Some(Commit::Lost));
        }
        let mut tx = Tx {
            conn,
            events: Vec::new(),
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| job(&mut tx)));
        let ran = outcome.as_ref().map_or(Ran::Failed, |(ran, _)| *ran);
        let keep = ran == Ran::Kept;
        let closed = if keep {
            exec(conn, "RELEASE change")
        } else {
            exec(conn, "ROLLBACK TO change").and_then(|_| exec(conn, "RELEASE change"))
        };
        if let Err(e) = closed {
            tracing::error!("cannot close a savepoint: {e}");
        }
        match outcome {
            Ok((_, done)) => finish.push(done),
            Err(_) => tracing::error!("a change panicked; it was rolled back"),
        }
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (or a failed savepoint ended it).
            tracing::error!("the transaction was lost; its changes are answered as failed");
            let lost = if ran == Ran::Full {
                Commit::Full
            } else {
                Commit::Lost
            };
            return (finish, published, Some(lost));
        }
        if keep {
            published.append(&mut tx.events);
        }
    }
    (finish, published, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(path: &std::path::Path, x: i64) -> i64 {
        let c = Connection::open(path).unwrap();
        c.query_row("SELECT COUNT(*) FROM t WHERE x = ?1", [x], |r| r.get(0))
            .unwrap()
    }

    /// A change that fills the disk makes SQLite drop the whole transaction: the writer must not
    /// let the changes around it commit behind their callers' backs. Every caller told "ok" finds
    /// its row; every caller told "failed" does not.
    #[tokio::test]
    async fn a_lost_transaction_never_commits_what_was_reported_failed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x INTEGER, pad BLOB);")
            .unwrap();
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        conn.pragma_update(None, "max_page_count", pages + 8)
            .unwrap();
        let writer =
            Writer::start(conn, Hub::new(crate::model::EventId::ZERO), Arc::default()).unwrap();

        // Queued together, the four changes are committed as one batch.
        let hold = writer.submit(Lane::Small, |_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            Ok(())
        });
        let insert = |x: i64, size: usize| {
            writer.submit(Lane::Small, move |tx| {
                tx.execute(
                    "INSERT INTO t VALUES (?1, zeroblob(?2))",
                    rusqlite::params![x, size as i64],
                )?;
                Ok(())
            })
        };
        let (_, a, b, c) = tokio::join!(hold, insert(1, 10), insert(2, 1 << 20), insert(3, 10));

        assert!(
            matches!(b, Err(Error::InsufficientStorage)),
            "the oversized change cannot commit: {b:?}"
        );
        // SQLite dropped the whole transaction: the change before it was lost to the full disk
        // too, and says so (507), not as an internal error (500).
        assert!(matches!(a, Err(Error::InsufficientStorage)), "{a:?}");
        // Changes queued after the loss run in a new transaction.
        assert!(c.is_ok(), "{c:?}");
        for (x, result) in [(1, a), (3, c)] {
            assert_eq!(
                result.is_ok(),
                count(&path, x) == 1,
                "change {x}: {result:?}"
            );
        }
        assert_eq!(count(&path, 2), 0);
        writer.stop();
    }

    /// A small change queued behind several bulk ones waits for one of them at most, not all.
    #[tokio::test]
    async fn a_small_change_never_queues_behind_more_than_one_bulk_change() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        let writer =
            Writer::start(conn, Hub::new(crate::model::EventId::ZERO), Arc::default()).unwrap();
        let ran = Arc::new(Mutex::new(Vec::new()));
        let change = |lane: Lane, name: &'static str| {
            let ran = ran.clone();
            writer.submit(lane, move |_| {
                ran.lock().unwrap().push(name);
                if lane == Lane::Bulk {
                    // Long enough for everything else to be queued meanwhile.
                    std::thread::sleep(std::time::Duration::from_millis(30));
                }
                Ok(())
            })
        };

        let (a, b, c, small) = tokio::join!(
            change(Lane::Bulk, "bulk a"),
            change(Lane::Bulk, "bulk b"),
            change(Lane::Bulk, "bulk c"),
            change(Lane::Small, "small"),
        );

        assert!(a.is_ok() && b.is_ok() && c.is_ok() && small.is_ok());
        let ran = ran.lock().unwrap().clone();
        let at = |name| ran.iter().position(|n| *n == name).unwrap();
        assert!(at("small") < at("bulk b"), "ran in the order {ran:?}");
        writer.stop();
    }
}
