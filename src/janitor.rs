//! Background maintenance: prunes events past the retention window, removes uploads never sent,
//! and takes lapsed pollers offline. Each piece can also be run once on demand.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::files::Disk;
use crate::limits::Limits;
use crate::presence::Presence;
use crate::store::{self, Store};

/// Events deleted per write transaction, so pruning never holds the writer for long.
const PRUNE_BATCH: usize = 5_000;

/// What maintenance uses: the database and the files directory, presence, the caller limits,
/// and its settings.
#[derive(Clone)]
pub struct Janitor {
    pub store: Store,
    pub files: Disk,
    pub presence: Arc<Presence>,
    pub limits: Arc<Limits>,
    /// How long events are kept (`--retention`).
    pub retention: Duration,
    /// How long an upload may wait to be sent (`--orphan-ttl`).
    pub orphan_ttl: Duration,
    /// How often pruning runs (`--janitor-interval`).
    pub interval: Duration,
}

/// Puts every event older than the retention window out of a cursor's reach (see
/// `events::prune_before`); returns how many.
pub async fn prune_once(janitor: &Janitor) -> Result<usize> {
    let cutoff = crate::time::now_ms() - janitor.retention.as_millis() as i64;
    let mut total = 0;
    loop {
        let n = janitor
            .store
            .write(move |tx| store::events::prune_before(tx, cutoff, PRUNE_BATCH))
            .await?;
        total += n;
        if n < PRUNE_BATCH {
            return Ok(total);
        }
    }
}

/// Deletes uploads older than the orphan window that no message refers to (rows first, then the
/// bytes), and upload temporaries left by a crash; returns how many files it deleted.
pub async fn prune_files_once(janitor: &Janitor) -> Result<usize> {
    let cutoff = crate::time::now_ms() - janitor.orphan_ttl.as_millis() as i64;
    let disk = janitor.files.clone();
    let mut total = 0;
    loop {
        let ids = janitor
            .store
            .read(move |c| store::files::orphans(c, cutoff, PRUNE_BATCH))
            .await?;
        let n = ids.len();
        let gone = janitor
            .store
            .write(move |tx| {
                // Checked again in the writer: a message may have attached one meanwhile.
                let mut gone = Vec::new();
                for id in ids {
                    if store::files::delete_if_orphan(tx, &id)? {
                        gone.push(id);
                    }
                }
                Ok(gone)
            })
            .await?;
        total += gone.len();
        let files = disk.clone();
        let removed = crate::blocking::run("removing files", move || {
            gone.iter().for_each(|id| files.remove(id))
        });
        if let Err(e) = removed.await {
            tracing::warn!("janitor: {e:#}");
        }
        if n < PRUNE_BATCH {
            break;
        }
    }
    let (dir, age) = (disk.dir().to_path_buf(), janitor.orphan_ttl);
    let stale = move || remove_stale_temporaries(&dir, age);
    if let Err(e) = crate::blocking::run("removing upload temporaries", stale).await {
        tracing::warn!("janitor: {e:#}");
    }
    Ok(total)
}

/// Removes `tmp-*` uploads older than `age` (an upload cut off by a crash).
fn remove_stale_temporaries(dir: &std::path::Path, age: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let is_temp = entry.file_name().to_string_lossy().starts_with("tmp-");
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|e| e >= age));
        if is_temp && old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Runs until aborted: presence sweeps every second, pruning (events, files, the rate limits'
/// full buckets) every `janitor_interval`.
pub async fn run(janitor: Janitor) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_prune = tokio::time::Instant::now();
    if let Err(e) = prune_once(&janitor).await {
        tracing::warn!("janitor: pruning failed: {e:?}");
    }
    loop {
        tick.tick().await;
        janitor.presence.sweep();
        if last_prune.elapsed() >= janitor.interval {
            last_prune = tokio::time::Instant::now();
            janitor.limits.prune();
            match prune_once(&janitor).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("janitor: pruned {n} events past retention"),
                Err(e) => tracing::warn!("janitor: pruning failed: {e:?}"),
            }
            match prune_files_once(&janitor).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("janitor: removed {n} files never sent"),
                Err(e) => tracing::warn!("janitor: removing unsent files failed: {e:?}"),
            }
        }
    }
}
