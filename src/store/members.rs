//! A chat's members with their roles and receipt marks (delivered, read, cleared), as both the
//! chat views and the message statuses read them, and the whole list a page at a time.

use rusqlite::{params, Connection};

use crate::error::Result;
use crate::model::{ChatId, Member, MessageId, Role, UserId};

/// One member's role and receipt marks.
#[derive(Debug, Clone)]
pub struct Marks {
    pub user: UserId,
    pub role: Role,
    pub delivered: MessageId,
    pub read: MessageId,
    /// Messages up to this id are cleared (hidden) for this member.
    pub cleared: MessageId,
}

/// Members of a chat with their roles and receipt marks, in joining order.
pub fn receipts(conn: &Connection, chat_id: ChatId) -> Result<Vec<Marks>> {
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
pub fn member_ids(conn: &Connection, chat_id: ChatId) -> Result<Vec<UserId>> {
    Ok(receipts(conn, chat_id)?
        .into_iter()
        .map(|r| r.user)
        .collect())
}

/// Up to `count` members of a chat in id order, after the member `after`; and whether more follow.
pub fn page(
    conn: &Connection,
    chat_id: ChatId,
    after: Option<&str>,
    count: usize,
) -> Result<(Vec<Member>, bool)> {
    let mut rows = conn
        .prepare_cached(
            "SELECT user_id, role FROM members WHERE chat_id = ?1 AND user_id > ?2
             ORDER BY user_id LIMIT ?3",
        )?
        .query_map(
            params![chat_id, after.unwrap_or(""), count as i64 + 1],
            |r| {
                Ok(Member {
                    id: r.get(0)?,
                    role: r.get(1)?,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let more = rows.len() > count;
    rows.truncate(count);
    Ok((rows, more))
}
