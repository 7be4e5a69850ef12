//! The event log: each event stored once, for a chat or for one user (append: see `Tx`);
//! membership spans that decide which chat events a user sees; a user's page of events after a
//! cursor, rendered for them; and pruning past retention.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use anyhow::Context;

use crate::error::Result;
use crate::hub::Frame;
use crate::model::{ChatId, EventId, EventKind, MessageId, UserId};
use crate::store::{chats, messages};

/// The newest event id ever assigned (0 for a new database).
pub fn head(conn: &Connection) -> rusqlite::Result<EventId> {
    conn.prepare_cached(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
    )?
    .query_row([], |r| r.get(0))
}

/// Takes the next event id for an event stored elsewhere (a new message is its own event).
pub fn reserve(conn: &Connection) -> rusqlite::Result<EventId> {
    conn.prepare_cached(
        "UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'events' RETURNING seq",
    )?
    .query_row([], |r| r.get(0))
}

/// A stretch of one user's membership of one chat, in event ids: they see the chat's events
/// with `from <= id < until` (no end while they are a member).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Span {
    pub chat: ChatId,
    pub from: EventId,
    pub until: Option<EventId>,
}

impl Span {
    /// Whether the event `id` of this span's chat is visible in it.
    pub fn covers(&self, id: EventId) -> bool {
        self.from <= id && self.until.is_none_or(|u| id < u)
    }
}

/// Every membership span of `user` that the log still holds events for.
pub fn spans(conn: &Connection, user: &UserId) -> Result<Vec<Span>> {
    let mut stmt = conn.prepare_cached(
        "SELECT chat_id, from_id, until_id FROM spans WHERE user_id = ?1 ORDER BY chat_id, from_id",
    )?;
    let rows = stmt.query_map([user.as_str()], |r| {
        Ok(Span {
            chat: r.get(0)?,
            from: r.get(1)?,
            until: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One page of a user's events after a cursor.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Page {
    /// The events, rendered for the user, oldest first.
    pub frames: Vec<Frame>,
    /// The newest id the page looked at (events it skipped, such as a message since deleted
    /// with its chat, count as looked at): the next page starts after it.
    pub through: EventId,
    /// Whether more events may follow.
    pub more: bool,
    /// The user's membership spans, read in the same snapshot.
    pub spans: Vec<Span>,
}

/// A stored row before it is rendered.
struct Row {
    id: EventId,
    chat: Option<ChatId>,
    kind: String,
    message: Option<MessageId>,
    data: Option<String>,
    /// For a chat event seen through a span that has ended: when the user left (Unix ms).
    left_at: Option<i64>,
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        chat: r.get(1)?,
        kind: r.get(2)?,
        message: r.get(3)?,
        data: r.get(4)?,
        left_at: None,
    })
}

/// When the membership that ended before event `until` ended: the time of the first event from
/// there on (the removal's own), stored as an event or as a message that is its own event (from
/// `own_events_from` on). With none left, the earliest time, so nothing counts as older.
fn ended_at(conn: &Connection, until: EventId, own_events_from: EventId) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT MIN(at) FROM (
                 SELECT (SELECT created_at FROM events WHERE id >= ?1 ORDER BY id LIMIT 1) AS at
                 UNION ALL
                 SELECT (SELECT insert_date FROM messages WHERE id >= MAX(?1, ?2)
                         ORDER BY id LIMIT 1))",
        )?
        .query_row(params![until, own_events_from], |r| {
            r.get::<_, Option<i64>>(0)
        })?
        .unwrap_or(i64::MIN))
}

/// The event id kept in `meta` under `key`, if there is one.
fn meta_event_id(conn: &Connection, key: &str) -> Result<Option<EventId>> {
    let v: Option<String> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    let Some(v) = v else {
        return Ok(None);
    };
    let id = v
        .parse()
        .with_context(|| format!("the stored {key} {v:?} is not an event id"))?;
    Ok(Some(EventId::new(id)))
}

/// The first id at which a new message is its own event (schema 7, which stores it): messages
/// stored before it were announced by an `events` row of their own.
fn message_events_from(conn: &Connection) -> Result<EventId> {
    meta_event_id(conn, "message_events_from")?
        .context("the database has no message_events_from")
        .map_err(Into::into)
}

/// Up to `limit` of the events `user` may see after `after`, oldest first, and at most about
/// `max_bytes` of them; or `None` when events after `after` were pruned (the cursor cannot be
/// resumed). Everything is read from one snapshot, so a prune or a membership change running
/// meanwhile cannot remove events from the page or let one through that should not be.
pub fn resume_page(
    conn: &Connection,
    user: &UserId,
    after: EventId,
    limit: usize,
    max_bytes: usize,
) -> Result<Option<Page>> {
    let tx = conn.unchecked_transaction()?;
    if after < pruned_through(&tx)? {
        return Ok(None);
    }
    let spans = spans(&tx, user)?;
    let mut rows: Vec<Row> = tx
        .prepare_cached(
            "SELECT id, chat_id, type, message_id, data FROM events
             WHERE user_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        )?
        .query_map(params![user.as_str(), after, limit as i64], row)?
        .collect::<rusqlite::Result<_>>()?;
    // Each span is one range of one chat's events and one of its messages (a new message is
    // its own event); merge them all, keeping the `limit` oldest.
    let own_events_from = message_events_from(&tx)?;
    let mut chat_events = tx.prepare_cached(
        "SELECT id, chat_id, type, message_id, data FROM events
         WHERE chat_id = ?1 AND id > ?2 AND id < ?3 ORDER BY id LIMIT ?4",
    )?;
    let mut chat_messages = tx.prepare_cached(
        "SELECT id, chat_id, 'message', id, NULL FROM messages
         WHERE chat_id = ?1 AND id > ?2 AND id < ?3 ORDER BY id LIMIT ?4",
    )?;
    for span in &spans {
        let left_at = span
            .until
            .map(|u| ended_at(&tx, u, own_events_from))
            .transpose()?;
        let low = after.get().max(span.from.get() - 1);
        let sources = [
            (&mut chat_events, low),
            (&mut chat_messages, low.max(own_events_from.get() - 1)),
        ];
        for (stmt, low) in sources {
            let mut high = span.until.map_or(i64::MAX, EventId::get);
            if rows.len() >= limit {
                rows.sort_unstable_by_key(|r| r.id);
                rows.truncate(limit);
                high = high.min(rows[limit - 1].id.get());
            }
            if low + 1 >= high {
                continue;
            }
            for r in stmt.query_map(params![span.chat, low, high, limit as i64], row)? {
                rows.push(Row { left_at, ..r? });
            }
        }
    }
    rows.sort_unstable_by_key(|r| r.id);
    let mut more = rows.len() >= limit;
    rows.truncate(limit);
    let mut page = Page {
        through: rows.last().map_or(after, |r| r.id),
        ..Page::default()
    };
    let mut render = messages::Renderer::new(&tx);
    let mut bytes = 0;
    for r in rows {
        if bytes >= max_bytes {
            more = true;
            break;
        }
        page.through = r.id;
        let data = match (r.message, r.data) {
            (Some(id), _) => match render.message(id)? {
                // Changed after the user left the chat: its content now is not theirs to see,
                // and the server no longer holds what it was.
                Some(m) if r.left_at.is_some_and(|left| changed_since(&m, left)) => continue,
                Some(m) => serde_json::to_string(&m).map_err(anyhow::Error::from)?,
                // Gone with its chat: nothing to show.
                None => continue,
            },
            (None, Some(data)) if r.chat.is_some() && r.kind == EventKind::Chat.as_str() => {
                chats::personalize(&tx, user, &data)?
            }
            (None, Some(data)) => data,
            (None, None) => continue,
        };
        bytes += data.len();
        page.frames.push(Frame {
            id: Some(r.id),
            chat: r.chat,
            kind: Arc::from(r.kind),
            data: Arc::from(data),
        });
    }
    drop(chat_events);
    drop(chat_messages);
    drop(render);
    page.more = more;
    page.spans = spans;
    tx.commit()?;
    Ok(Some(page))
}

/// Whether a message was edited or deleted at or after `at` (Unix ms).
fn changed_since(m: &crate::model::Message, at: i64) -> bool {
    m.edit_date
        .as_deref()
        .and_then(crate::time::parse_rfc3339)
        .is_some_and(|edited| edited >= at)
}

/// The highest event id the janitor has pruned: a cursor below it cannot be resumed.
pub fn pruned_through(conn: &Connection) -> Result<EventId> {
    Ok(meta_event_id(conn, "pruned_through")?.unwrap_or(EventId::ZERO))
}

/// Puts up to `batch` events and `batch` messages created before `cutoff_ms` out of a cursor's
/// reach: deletes those events, and the membership spans that ended before them, and moves
/// `pruned_through` past them. Messages that are their own events stay as history; only their
/// replay ends, as their events' would. Returns how many it put out of reach.
pub fn prune_before(conn: &Connection, cutoff_ms: i64, batch: usize) -> Result<usize> {
    // Ids grow with time, so the old rows are a prefix of each table: find where it ends.
    let (last_event, events): (Option<EventId>, i64) = conn.query_row(
        "SELECT MAX(id), COUNT(*) FROM (SELECT id, created_at FROM events ORDER BY id LIMIT ?1)
         WHERE created_at < ?2",
        params![batch as i64, cutoff_ms],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let from = pruned_through(conn)?.max(EventId::new(message_events_from(conn)?.get() - 1));
    let (last_message, messages): (Option<EventId>, i64) = conn.query_row(
        "SELECT MAX(id), COUNT(*) FROM (
             SELECT id, insert_date FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2)
         WHERE insert_date < ?3",
        params![from, batch as i64, cutoff_ms],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let Some(through) = last_event.max(last_message) else {
        return Ok(0);
    };
    if let Some(last) = last_event {
        conn.execute("DELETE FROM events WHERE id <= ?1", [last])?;
    }
    conn.execute(
        "DELETE FROM spans WHERE until_id IS NOT NULL AND until_id <= ?1",
        [through],
    )?;
    conn.execute(
        "INSERT INTO meta(key, value) VALUES ('pruned_through', ?1)
         ON CONFLICT(key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
        [through.to_string()],
    )?;
    Ok((events + messages) as usize)
}
