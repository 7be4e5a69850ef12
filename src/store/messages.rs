//! Messages: insert (idempotent on sender and client id), history pages, receipts and the status
//! each message shows (the least advanced of the other members).

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::{Error, Result};
use crate::model::{ChatId, File, Message, MessageId, MessageStatus, Params, Receipt, UserId};
use crate::store::members::{self, Marks};

/// A message to store, already validated.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub client_message_id: String,
    pub chat_id: ChatId,
    pub kind: String,
    pub text: String,
    pub params: Params,
    /// An attachment (already checked to exist).
    pub file_id: Option<String>,
}

/// Columns of `message_rows` (messages with their file's metadata) that make a Message.
const COLUMNS: &str = "id, chat_id, user_id, sender, client_message_id, type, text, params, \
                       deleted, insert_date, edit_date, file_id, file_title, file_mime, file_size, \
                       file_thumb_mime, file_created_at";

/// A message as stored, before its status is known.
fn from_row(r: &Row) -> rusqlite::Result<Message> {
    let params: String = r.get(7)?;
    let params = serde_json::from_str(&params).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(7, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Message {
        id: r.get(0)?,
        chat_id: r.get(1)?,
        user_id: r.get(2)?,
        sender: r.get(3)?,
        client_message_id: r.get(4)?,
        kind: r.get(5)?,
        text: r.get(6)?,
        params,
        file: file_from_row(r)?,
        deleted: r.get(8)?,
        insert_date: crate::time::rfc3339(r.get(9)?),
        edit_date: r.get::<_, Option<i64>>(10)?.map(crate::time::rfc3339),
        // Until its receipts are read: see `status_for`.
        status: MessageStatus::Sent,
    })
}

/// The attachment of a `message_rows` row, if it has one whose metadata still exists.
fn file_from_row(r: &Row) -> rusqlite::Result<Option<File>> {
    let (Some(id), Some(title)) = (
        r.get::<_, Option<String>>(11)?,
        r.get::<_, Option<String>>(12)?,
    ) else {
        return Ok(None);
    };
    Ok(Some(File::new(
        id,
        title,
        r.get(13)?,
        r.get(14)?,
        r.get::<_, Option<String>>(15)?.is_some(),
        r.get(16)?,
    )))
}

/// `sent`, `delivered` or `read`: the least advanced of the members other than the author.
pub fn status_for(m: &Message, receipts: &[Marks]) -> MessageStatus {
    let mut others = receipts
        .iter()
        .filter(|r| Some(&r.user) != m.user_id.as_ref())
        .peekable();
    if others.peek().is_none() {
        return MessageStatus::Sent;
    }
    let (mut all_read, mut all_delivered) = (true, true);
    for r in others {
        all_read &= r.read >= m.id;
        all_delivered &= r.delivered >= m.id;
    }
    if all_read {
        MessageStatus::Read
    } else if all_delivered {
        MessageStatus::Delivered
    } else {
        MessageStatus::Sent
    }
}

fn with_status(mut msgs: Vec<Message>, receipts: &[Marks]) -> Vec<Message> {
    for m in &mut msgs {
        m.status = status_for(m, receipts);
    }
    msgs
}

/// The one message `sql` (selecting `COLUMNS` from `message_rows`) finds, with its status.
fn one(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<Option<Message>> {
    let Some(m) = conn
        .prepare_cached(sql)?
        .query_row(args, from_row)
        .optional()?
    else {
        return Ok(None);
    };
    let receipts = members::receipts(conn, m.chat_id)?;
    Ok(with_status(vec![m], &receipts).pop())
}

/// The message `user` already sent with `client_message_id`, if any.
pub fn by_client_id(
    conn: &Connection,
    user: &UserId,
    client_message_id: &str,
) -> Result<Option<Message>> {
    let sql =
        format!("SELECT {COLUMNS} FROM message_rows WHERE user_id = ?1 AND client_message_id = ?2");
    one(conn, &sql, params![user.as_str(), client_message_id])
}

/// The system message already posted to a chat with `client_message_id`, if any.
pub fn system_by_client_id(
    conn: &Connection,
    chat_id: ChatId,
    client_message_id: &str,
) -> Result<Option<Message>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM message_rows
         WHERE user_id IS NULL AND client_message_id = ?2 AND chat_id = ?1"
    );
    one(conn, &sql, params![chat_id, client_message_id])
}

/// Stores message `id` (see `Tx::new_message`) from `user` (None: a system message) with the
/// author's `sender` role, moves the chat's activity time and the author's own read mark. A new
/// message is the newest of its chat, so nobody else can have received it yet: its status is
/// `sent`.
pub fn insert(
    conn: &Connection,
    id: MessageId,
    user: Option<&UserId>,
    sender: &str,
    m: &NewMessage,
) -> Result<Message> {
    let now = crate::time::now_ms();
    let params_json = serde_json::to_string(&m.params).map_err(anyhow::Error::from)?;
    conn.prepare_cached(
        "INSERT INTO messages(id, chat_id, user_id, sender, client_message_id, type, text, params,
                              insert_date, file_id)
         VALUES (?10, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        m.chat_id,
        user.map(UserId::as_str),
        sender,
        m.client_message_id,
        m.kind,
        m.text,
        params_json,
        now,
        m.file_id,
        id
    ])?;
    conn.prepare_cached("UPDATE chats SET last_message_id = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![m.chat_id, id, now])?;
    if let Some(user) = user {
        conn.prepare_cached(
            "UPDATE members SET read_up_to = ?3, delivered_up_to = MAX(delivered_up_to, ?3)
             WHERE chat_id = ?1 AND user_id = ?2",
        )?
        .execute(params![m.chat_id, user.as_str(), id])?;
    }
    Ok(Message {
        id,
        client_message_id: m.client_message_id.clone(),
        insert_date: crate::time::rfc3339(now),
        edit_date: None,
        chat_id: m.chat_id,
        user_id: user.cloned(),
        sender: sender.to_string(),
        status: MessageStatus::Sent,
        kind: m.kind.clone(),
        text: m.text.clone(),
        params: m.params.clone(),
        file: match &m.file_id {
            Some(f) => crate::store::files::get(conn, f)?.map(|f| f.to_file()),
            None => None,
        },
        deleted: false,
    })
}

/// The newest message of a chat above a member's clear mark.
pub fn last(
    conn: &Connection,
    chat_id: ChatId,
    cleared: MessageId,
    receipts: &[Marks],
) -> Result<Option<Message>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM message_rows WHERE chat_id = ?1 AND id > ?2 ORDER BY id DESC LIMIT 1"
    );
    let m = conn
        .prepare_cached(&sql)?
        .query_row(params![chat_id, cleared], from_row)
        .optional()?;
    Ok(m.map(|m| with_status(vec![m], receipts).remove(0)))
}

/// How many messages from others, above `read_up_to`, `user` has not read in a chat (deleted
/// messages do not count).
pub fn unread(
    conn: &Connection,
    chat_id: ChatId,
    user: &UserId,
    read_up_to: MessageId,
) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM messages WHERE chat_id = ?1 AND id > ?3 AND deleted = 0
             AND (user_id IS NULL OR user_id != ?2)",
        )?
        .query_row(params![chat_id, user.as_str(), read_up_to], |r| r.get(0))?)
}

/// Which page of history to read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Page {
    /// Only messages with a smaller id.
    pub before: Option<MessageId>,
    /// Only messages with a larger id (the page starts right after it).
    pub after: Option<MessageId>,
    /// Page size.
    pub limit: usize,
}

/// A page of a chat's messages above a member's clear mark, in ascending id order, and whether
/// more lie beyond it: newer ones when paging forward with `after`, older ones otherwise.
pub fn history(
    conn: &Connection,
    chat_id: ChatId,
    cleared: MessageId,
    page: Page,
) -> Result<(Vec<Message>, bool)> {
    let before = page.before.map_or(i64::MAX, MessageId::get);
    let fetch = page.limit as i64 + 1;
    let (sql, from) = match page.after {
        Some(after) => ("id > ?2 AND id < ?3 ORDER BY id ASC", after.max(cleared)),
        None => ("id > ?2 AND id < ?3 ORDER BY id DESC", cleared),
    };
    let sql = format!("SELECT {COLUMNS} FROM message_rows WHERE chat_id = ?1 AND {sql} LIMIT ?4");
    let mut rows = conn
        .prepare_cached(&sql)?
        .query_map(params![chat_id, from, before, fetch], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let more = rows.len() > page.limit;
    rows.truncate(page.limit);
    if page.after.is_none() {
        rows.reverse();
    }
    let receipts = members::receipts(conn, chat_id)?;
    Ok((with_status(rows, &receipts), more))
}

/// What [`mark`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    /// The mark moved forward from this message id.
    Moved { before: MessageId },
    /// The mark was already at or past the message; this is the message's stored status for the
    /// user (a `delivered` after `read` leaves it read).
    Unchanged { stored: Receipt },
}

/// Marks every message up to `message_id` in a chat as delivered or read for `user` (read implies
/// delivered; never backwards). Fails if the message is not in that chat.
pub fn mark(
    conn: &Connection,
    chat_id: ChatId,
    user: &UserId,
    message_id: MessageId,
    mark: Receipt,
) -> Result<Marked> {
    let exists: bool = conn
        .prepare_cached("SELECT EXISTS(SELECT 1 FROM messages WHERE id = ?1 AND chat_id = ?2)")?
        .query_row(params![message_id, chat_id], |r| r.get(0))?;
    if !exists {
        return Err(Error::MessageNotFound(message_id));
    }
    let (delivered, read): (MessageId, MessageId) = conn
        .prepare_cached(
            "SELECT delivered_up_to, read_up_to FROM members WHERE chat_id = ?1 AND user_id = ?2",
        )?
        .query_row(params![chat_id, user.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?
        .ok_or(Error::ChatNotFound(chat_id))?;
    let before = match mark {
        Receipt::Delivered => delivered,
        Receipt::Read => read,
    };
    if message_id <= before {
        let stored = if message_id <= read {
            Receipt::Read
        } else {
            Receipt::Delivered
        };
        return Ok(Marked::Unchanged { stored });
    }
    conn.prepare_cached(
        "UPDATE members SET delivered_up_to = MAX(delivered_up_to, ?3),
                            read_up_to = CASE WHEN ?4 THEN MAX(read_up_to, ?3) ELSE read_up_to END
         WHERE chat_id = ?1 AND user_id = ?2",
    )?
    .execute(params![
        chat_id,
        user.as_str(),
        message_id,
        mark == Receipt::Read
    ])?;
    Ok(Marked::Moved { before })
}

/// Renders messages by id for replay, reading each chat's receipt marks once.
pub struct Renderer<'c> {
    conn: &'c Connection,
    receipts: std::collections::HashMap<ChatId, Vec<Marks>>,
}

impl<'c> Renderer<'c> {
    /// A renderer reading through `conn`.
    pub fn new(conn: &'c Connection) -> Renderer<'c> {
        Renderer {
            conn,
            receipts: Default::default(),
        }
    }

    /// The message as it now is, with its status; `None` if it no longer exists.
    pub fn message(&mut self, id: MessageId) -> Result<Option<Message>> {
        let sql = format!("SELECT {COLUMNS} FROM message_rows WHERE id = ?1");
        let Some(mut m) = self
            .conn
            .prepare_cached(&sql)?
            .query_row([id], from_row)
            .optional()?
        else {
            return Ok(None);
        };
        let receipts = match self.receipts.entry(m.chat_id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(members::receipts(self.conn, m.chat_id)?)
            }
        };
        m.status = status_for(&m, receipts);
        Ok(Some(m))
    }
}

/// A message with its status, wherever it is.
pub fn get(conn: &Connection, id: MessageId) -> Result<Option<Message>> {
    let sql = format!("SELECT {COLUMNS} FROM message_rows WHERE id = ?1");
    one(conn, &sql, [id])
}

/// Replaces a message's text and params and sets its edit time; returns it as it now is.
pub fn edit(conn: &Connection, id: MessageId, text: &str, params: &Params) -> Result<Message> {
    let params_json = serde_json::to_string(params).map_err(anyhow::Error::from)?;
    conn.prepare_cached(
        "UPDATE messages SET text = ?2, params = ?3, edit_date = ?4 WHERE id = ?1",
    )?
    .execute(params![id, text, params_json, crate::time::now_ms()])?;
    get(conn, id)?.ok_or(Error::MessageNotFound(id))
}

/// Marks a message deleted and wipes its content (text, params, file); returns it as it now is.
pub fn delete(conn: &Connection, id: MessageId) -> Result<Message> {
    conn.prepare_cached(
        "UPDATE messages SET deleted = 1, text = '', params = '{}', file_id = NULL, edit_date = ?2
         WHERE id = ?1",
    )?
    .execute(params![id, crate::time::now_ms()])?;
    get(conn, id)?.ok_or(Error::MessageNotFound(id))
}

/// The distinct authors, other than `except`, of a chat's messages with ids in `(after, up_to]`.
pub fn authors_between(
    conn: &Connection,
    chat_id: ChatId,
    after: MessageId,
    up_to: MessageId,
    except: &UserId,
) -> Result<Vec<UserId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT user_id FROM messages
         WHERE chat_id = ?1 AND id > ?2 AND id <= ?3 AND user_id IS NOT NULL AND user_id != ?4",
    )?;
    let rows = stmt.query_map(params![chat_id, after, up_to, except], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_whose_stored_params_do_not_parse_is_an_error() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrate::run(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO chats(kind, created_at, updated_at) VALUES ('group', 0, 0);
             INSERT INTO messages(chat_id, user_id, sender, client_message_id, type, text,
                                  params, insert_date)
             VALUES (1, 'ann', 'member', 'c1', 'text', 'hi', '{}', 0),
                    (1, 'ann', 'member', 'c2', 'text', 'hi', 'not json', 0);",
        )
        .unwrap();
        let fine = get(&conn, MessageId::new(1)).unwrap().unwrap();
        assert!(fine.params.is_empty());
        let bad = get(&conn, MessageId::new(2));
        assert!(bad.is_err(), "{bad:?}");
    }
}
