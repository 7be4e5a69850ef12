//! The webhook outbox: deliveries waiting to be POSTed. Rows are added in the transaction of the
//! change they announce and deleted once acknowledged or given up; nothing here talks HTTP.

use rusqlite::{params, Connection};

use crate::error::Result;
use crate::model::UserId;

/// One pending delivery as the worker sends it.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// The row id: what `mark_done`, `reschedule` and `give_up` take.
    pub id: i64,
    /// The id inside the body, sent as `X-Chinwag-Delivery`; the receiver deduplicates on it.
    pub delivery_id: String,
    /// The recipient the event is about.
    pub user_id: String,
    /// The exact JSON to POST (and sign).
    pub body: String,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// Queues a delivery, due at once. A delivery id already queued is left as it is; returns
/// whether a row was added.
pub fn enqueue(
    conn: &Connection,
    delivery_id: &str,
    user: &UserId,
    body: &str,
    now_ms: i64,
) -> Result<bool> {
    let added = conn
        .prepare_cached(
            "INSERT INTO webhook_outbox(delivery_id, user_id, body, next_attempt_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT(delivery_id) DO NOTHING",
        )?
        .execute(params![delivery_id, user.as_str(), body, now_ms])?;
    Ok(added > 0)
}

/// Up to `limit` deliveries due at `now_ms`, the longest-waiting first.
pub fn due(conn: &Connection, limit: usize, now_ms: i64) -> Result<Vec<Delivery>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, delivery_id, user_id, body, attempts FROM webhook_outbox
         WHERE next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now_ms, limit as i64], |r| {
        Ok(Delivery {
            id: r.get(0)?,
            delivery_id: r.get(1)?,
            user_id: r.get(2)?,
            body: r.get(3)?,
            attempts: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// When the next delivery falls due (Unix ms), or `None` when the outbox is empty.
pub fn next_due(conn: &Connection) -> Result<Option<i64>> {
    // MIN over no rows is one row holding NULL.
    Ok(conn
        .prepare_cached("SELECT MIN(next_attempt_at) FROM webhook_outbox")?
        .query_row([], |r| r.get(0))?)
}

/// How many deliveries are waiting (due or not).
pub fn pending(conn: &Connection) -> Result<usize> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM webhook_outbox")?
        .query_row([], |r| r.get(0))?;
    Ok(n as usize)
}

/// The receiver acknowledged delivery `id`: it is gone from the outbox.
pub fn mark_done(conn: &Connection, id: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM webhook_outbox WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Records a failed attempt: `attempts` failures so far, next try at `next_at_ms`.
pub fn reschedule(conn: &Connection, id: i64, attempts: u32, next_at_ms: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE webhook_outbox SET attempts = ?2, next_attempt_at = ?3 WHERE id = ?1",
    )?
    .execute(params![id, attempts, next_at_ms])?;
    Ok(())
}

/// Drops delivery `id` after its last allowed attempt failed.
pub fn give_up(conn: &Connection, id: i64) -> Result<()> {
    mark_done(conn, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::memory_db as db;

    #[test]
    fn due_rows_come_oldest_first_and_leave_when_done() {
        let conn = db();
        let bob = UserId::parse("bob").unwrap();
        assert!(enqueue(&conn, "msg-1-bob", &bob, "{}", 100).unwrap());
        assert!(
            !enqueue(&conn, "msg-1-bob", &bob, "{}", 100).unwrap(),
            "one row per id"
        );
        assert!(enqueue(&conn, "msg-2-bob", &bob, "{}", 200).unwrap());
        assert_eq!(pending(&conn).unwrap(), 2);
        assert_eq!(next_due(&conn).unwrap(), Some(100));

        let due_now = due(&conn, 10, 150).unwrap();
        assert_eq!(due_now.len(), 1);
        assert_eq!(due_now[0].delivery_id, "msg-1-bob");
        reschedule(&conn, due_now[0].id, 1, 500).unwrap();
        let ids: Vec<_> = due(&conn, 10, 500)
            .unwrap()
            .into_iter()
            .map(|d| (d.delivery_id, d.attempts))
            .collect();
        assert_eq!(ids, [("msg-2-bob".into(), 0), ("msg-1-bob".into(), 1)]);

        mark_done(&conn, due_now[0].id).unwrap();
        let second = due(&conn, 10, 500).unwrap()[0].id;
        give_up(&conn, second).unwrap();
        assert_eq!(pending(&conn).unwrap(), 0);
        assert_eq!(next_due(&conn).unwrap(), None);
    }
}
