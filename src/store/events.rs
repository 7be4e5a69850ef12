//! The per-user event log: append (see `Tx::emit`), read after a cursor, and prune past retention.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;
use crate::hub::Frame;
use crate::model::UserId;

/// The newest event id ever assigned (0 for a new database).
pub fn head(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
        [],
        |r| r.get(0),
    )
}

/// Up to `limit` of `user`'s events with an id above `after`, oldest first.
pub fn events_after(
    conn: &Connection,
    user: &UserId,
    after: i64,
    limit: usize,
) -> Result<Vec<Frame>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, type, data FROM events WHERE user_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![user.as_str(), after, limit as i64], |r| {
        Ok(Frame {
            id: Some(r.get(0)?),
            kind: Arc::from(r.get::<_, String>(1)?),
            data: Arc::from(r.get::<_, String>(2)?),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Up to `limit` of `user`'s events after `after`, or `None` when events after it were pruned
/// (the cursor cannot be resumed). Both questions are answered from one snapshot, so a prune
/// running meanwhile cannot silently remove events from the page.
pub fn resume_page(
    conn: &Connection,
    user: &UserId,
    after: i64,
    limit: usize,
) -> Result<Option<Vec<Frame>>> {
    let tx = conn.unchecked_transaction()?;
    if after < pruned_through(&tx)? {
        return Ok(None);
    }
    let page = events_after(&tx, user, after, limit)?;
    tx.commit()?;
    Ok(Some(page))
}

/// The highest event id the janitor has pruned: a cursor below it cannot be resumed.
pub fn pruned_through(conn: &Connection) -> Result<i64> {
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'pruned_through'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Deletes up to `batch` events created before `cutoff_ms`; returns how many it deleted.
pub fn prune_before(conn: &Connection, cutoff_ms: i64, batch: usize) -> Result<usize> {
    // Ids grow with time, so the old rows are a prefix of the table: find where it ends.
    let last_old: Option<i64> = conn
        .query_row(
            "SELECT MAX(id) FROM (SELECT id, created_at FROM events ORDER BY id LIMIT ?1)
             WHERE created_at < ?2",
            params![batch as i64, cutoff_ms],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let Some(last_old) = last_old else {
        return Ok(0);
    };
    let n = conn.execute("DELETE FROM events WHERE id <= ?1", [last_old])?;
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('pruned_through', ?1)
         ON CONFLICT(key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
        [last_old.to_string()],
    )?;
    Ok(n)
}
