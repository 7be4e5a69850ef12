//! `chinwag backup`: a consistent copy of a running server's data directory. The database is
//! copied with SQLite's online backup (one read snapshot; the server keeps writing meanwhile),
//! then the uploaded files (and thumbnails) that the copy's `files` table names, then the kept
//! secrets, so tokens and the service key stay valid after a restore.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rusqlite::{Connection, OpenFlags};

use crate::config::Config;
use crate::files::Disk;

/// What a backup copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Size of the copied database file.
    pub db_bytes: u64,
    /// Uploaded files copied (thumbnails not counted).
    pub files: usize,
}

/// Copies the data directory of `config` into `dest`, which must not exist or be empty. The
/// result is a data directory: `chinwag serve --data-dir DEST` restores it.
pub fn run(config: &Config, dest: &Path) -> anyhow::Result<Report> {
    let source = config.db_path();
    if !source.exists() {
        bail!(
            "no database at {}: is --data-dir the server's?",
            source.display()
        );
    }
    if dest.exists() && !dest.is_dir() {
        bail!("{} exists and is not a directory", dest.display());
    }
    if dest.exists() && std::fs::read_dir(dest)?.next().is_some() {
        bail!(
            "{} is not empty: back up into a new directory",
            dest.display()
        );
    }
    let target = Config::new(dest);
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;

    let src = Connection::open_with_flags(&source, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", source.display()))?;
    src.busy_timeout(std::time::Duration::from_secs(5))?;
    let mut dst = Connection::open(target.db_path())?;
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
        // All pages in one step: one read snapshot, so the copy is consistent whatever the
        // server commits meanwhile (WAL readers never block the writer).
        loop {
            match backup.step(-1).context("copying the database")? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                // Busy or locked: try again shortly.
                _ => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    }
    // The copy is a plain database: no WAL to carry along.
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    let ids: Vec<(String, bool)> = {
        let mut stmt = dst.prepare("SELECT id, thumb_mime IS NOT NULL FROM files ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    drop(dst);

    let (from, to) = (Disk::new(config.files_dir()), Disk::new(target.files_dir()));
    to.ensure()?;
    let mut files = 0;
    for (id, has_thumb) in &ids {
        if copy(from.path(id), to.path(id))? {
            files += 1;
        }
        if *has_thumb {
            copy(from.thumbnail(id), to.thumbnail(id))?;
        }
    }
    for secret in ["secret", "service-key"] {
        let path = config.data_dir.join(secret);
        if path.exists() {
            std::fs::copy(&path, dest.join(secret))
                .with_context(|| format!("copying {}", path.display()))?;
        }
    }
    let db_bytes = std::fs::metadata(target.db_path())?.len();
    Ok(Report { db_bytes, files })
}

/// Copies `a` to `b`; false when `a` is gone (removed by the janitor since the snapshot: the
/// restored server treats the row as it would any file whose bytes are missing).
fn copy(a: PathBuf, b: PathBuf) -> anyhow::Result<bool> {
    match std::fs::copy(&a, &b) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("warning: {} is gone; not copied", a.display());
            Ok(false)
        }
        Err(e) => Err(e).with_context(|| format!("copying {}", a.display())),
    }
}
