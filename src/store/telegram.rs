//! The Telegram bridge's rows: support messages waiting to be posted to the staff's group, the
//! support chat each posted message belongs to, and the offset of the next update to read.
//! Nothing here talks to Telegram.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;
use crate::model::{ChatId, Message, MessageId, User};
use crate::store::files::{self, FileRow};
use crate::store::{messages, users};

/// One support message waiting in the outbox, with what posting it needs.
#[derive(Clone, Debug)]
pub struct Pending {
    /// The outbox row.
    pub id: i64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The message as it is now (`None`: gone with its chat).
    pub message: Option<Message>,
    /// Its author's public profile.
    pub author: Option<User>,
    /// Its attachment's row, if it has one that still exists.
    pub file: Option<FileRow>,
}

/// Queues `message` for the staff's group, due at once (a message queued already stays as it
/// is).
pub fn enqueue(conn: &Connection, message: MessageId, now_ms: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO telegram_outbox(message_id, next_attempt_at, created_at) VALUES (?1, ?2, ?2)
         ON CONFLICT(message_id) DO NOTHING",
    )?
    .execute(params![message, now_ms])?;
    Ok(())
}

/// The oldest queued message, if it is due at `now_ms`: the outbox is sent in order, so a
/// message that waits holds back those after it.
pub fn next(conn: &Connection, now_ms: i64) -> Result<Option<Pending>> {
    let row: Option<(i64, MessageId, u32, i64)> = conn
        .prepare_cached(
            "SELECT id, message_id, attempts, next_attempt_at FROM telegram_outbox
             ORDER BY id LIMIT 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((id, message_id, attempts, _)) = row.filter(|r| r.3 <= now_ms) else {
        return Ok(None);
    };
    let message = messages::get(conn, message_id)?;
    let author = match message.as_ref().and_then(|m| m.user_id.as_ref()) {
        Some(user) => users::profiles(conn, [user.as_str()])?.pop(),
        None => None,
    };
    let file = match message.as_ref().and_then(|m| m.file.as_ref()) {
        Some(f) => files::get(conn, &f.id)?,
        None => None,
    };
    Ok(Some(Pending {
        id,
        attempts,
        message,
        author,
        file,
    }))
}

/// When the oldest queued message falls due (Unix ms), or `None` when the outbox is empty.
pub fn next_due(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT next_attempt_at FROM telegram_outbox ORDER BY id LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?)
}

/// Telegram took outbox row `id` as message `posted` of group `group`: the row goes, and the
/// post remembers its support chat, in one transaction.
pub fn posted(
    conn: &Connection,
    id: i64,
    group: i64,
    posted: i64,
    chat: ChatId,
    message: MessageId,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO telegram_posts(telegram_chat_id, telegram_message_id, chat_id,
                                               message_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![group, posted, chat, message, crate::time::now_ms()])?;
    drop_row(conn, id)
}

/// Outbox row `id` leaves without a post (its message is gone, or Telegram will never take it).
pub fn drop_row(conn: &Connection, id: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM telegram_outbox WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Records a failed attempt at row `id`: `attempts` so far, next try at `next_at_ms`.
pub fn reschedule(conn: &Connection, id: i64, attempts: u32, next_at_ms: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE telegram_outbox SET attempts = ?2, next_attempt_at = ?3 WHERE id = ?1",
    )?
    .execute(params![id, attempts, next_at_ms])?;
    Ok(())
}

/// The support chat of the bot's message `posted` in group `group`, if the bot posted it.
pub fn chat_of(conn: &Connection, group: i64, posted: i64) -> Result<Option<ChatId>> {
    Ok(conn
        .prepare_cached(
            "SELECT chat_id FROM telegram_posts
             WHERE telegram_chat_id = ?1 AND telegram_message_id = ?2",
        )?
        .query_row(params![group, posted], |r| r.get(0))
        .optional()?)
}

/// The id of bot `bot`'s next update to read (0 before the first): each bot numbers its own.
pub fn offset(conn: &Connection, bot: &str) -> Result<i64> {
    let v: Option<String> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'telegram_offset:' || ?1")?
        .query_row([bot], |r| r.get(0))
        .optional()?;
    match v {
        None => Ok(0),
        Some(v) => Ok(v.parse().map_err(|_| {
            anyhow::anyhow!("the stored telegram_offset {v:?} is not an update id")
        })?),
    }
}

/// Moves bot `bot`'s offset past update `update_id` (never back).
pub fn read_past(conn: &Connection, bot: &str, update_id: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta(key, value) VALUES ('telegram_offset:' || ?1, ?2)
         ON CONFLICT(key) DO UPDATE
         SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
    )?
    .execute(params![bot, (update_id + 1).to_string()])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::memory_db as db;

    fn queued(conn: &Connection) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM telegram_outbox", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn the_outbox_goes_in_order_and_a_waiting_head_holds_the_rest() {
        let conn = db();
        enqueue(&conn, MessageId::new(7), 100).unwrap();
        enqueue(&conn, MessageId::new(7), 100).unwrap();
        enqueue(&conn, MessageId::new(8), 100).unwrap();
        assert_eq!(queued(&conn), 2, "one row per message");
        let first = next(&conn, 100).unwrap().expect("due");
        assert!(first.message.is_none(), "no such message in this database");
        reschedule(&conn, first.id, 1, 500).unwrap();
        assert!(next(&conn, 400).unwrap().is_none(), "the head waits");
        assert_eq!(next_due(&conn).unwrap(), Some(500));
        let again = next(&conn, 500).unwrap().expect("due again");
        assert_eq!((again.id, again.attempts), (first.id, 1));
        posted(&conn, again.id, -100, 55, ChatId::new(3), MessageId::new(7)).unwrap();
        assert_eq!(chat_of(&conn, -100, 55).unwrap(), Some(ChatId::new(3)));
        assert_eq!(chat_of(&conn, -100, 56).unwrap(), None);
        assert_eq!(chat_of(&conn, -101, 55).unwrap(), None);
        let second = next(&conn, 500).unwrap().expect("the next one");
        drop_row(&conn, second.id).unwrap();
        assert_eq!(queued(&conn), 0);
        assert_eq!(next_due(&conn).unwrap(), None);
    }

    #[test]
    fn the_offset_only_moves_forward() {
        let conn = db();
        assert_eq!(offset(&conn, "1").unwrap(), 0);
        read_past(&conn, "1", 41).unwrap();
        assert_eq!(offset(&conn, "1").unwrap(), 42);
        read_past(&conn, "1", 10).unwrap();
        assert_eq!(offset(&conn, "1").unwrap(), 42);
        assert_eq!(offset(&conn, "2").unwrap(), 0, "another bot has its own");
    }
}
