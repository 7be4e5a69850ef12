//! A chat's members with their roles and receipt marks (delivered, read, cleared), as both the
//! chat views and the message statuses read them.

use rusqlite::Connection;

use crate::error::Result;
use crate::model::UserId;

/// One member's role and receipt marks.
#[derive(Debug, Clone)]
pub struct Marks {
    pub user: UserId,
    pub role: String,
    pub delivered: i64,
    pub read: i64,
    /// Messages up to this id are cleared (hidden) for this member.
    pub cleared: i64,
}

/// Members of a chat with their roles and receipt marks, in joining order.
pub fn receipts(conn: &Connection, chat_id: i64) -> Result<Vec<Marks>> {
    let mut stmt = conn.prepare_cached(
        "SELECT user_id, role, delivered_up_to, read_up_to, cleared_up_to FROM members
         WHERE chat_id = ?1 ORDER BY joined_at, user_id",
    )?;
    let rows = stmt.query_map([chat_id], |r| {
        Ok(Marks {
            user: r.get(0)?,
            role: r.get(1)?,
            delivered: r.get(2)?,
            read: r.get(3)?,
            cleared: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Member ids of a chat.
pub fn member_ids(conn: &Connection, chat_id: i64) -> Result<Vec<UserId>> {
    Ok(receipts(conn, chat_id)?
        .into_iter()
        .map(|r| r.user)
        .collect())
}
