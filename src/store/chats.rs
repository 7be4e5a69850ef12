//! Chats and their members: create, look up as a member (membership is the access check), build
//! the `Chat` object a given user sees, and list a user's chats by activity.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::{Error, Result};
use crate::model::{Chat, ChatId, ChatKind, ChatStatus, Member, MessageId, Role, UserId};
use crate::store::members::{member_ids, receipts};
use crate::store::{messages, Tx};

/// Profiles of every member of `list`.
pub fn member_profiles(conn: &Connection, list: &[Chat]) -> Result<Vec<crate::model::User>> {
    crate::store::users::profiles(
        conn,
        list.iter()
            .flat_map(|c| c.users.iter().map(|m| m.id.as_str())),
    )
}

/// `{chats, users}` for `user`: their `count` most recently active chats (before `before`, an
/// `updatedAt` and a chat id), with their members' profiles.
pub fn snapshot(
    conn: &Connection,
    user: &UserId,
    count: usize,
    before: Option<(i64, ChatId)>,
) -> Result<serde_json::Value> {
    let list = list(conn, user, count, before)?;
    let profiles = member_profiles(conn, &list)?;
    Ok(serde_json::json!({"chats": list, "users": profiles}))
}

/// How many members a Chat object lists; `memberCount` has the total and `members` pages
/// through all of them.
pub const LISTED_MEMBERS: usize = 100;

/// A chat's own columns.
#[derive(Debug, Clone)]
pub struct ChatRow {
    pub id: ChatId,
    pub kind: ChatKind,
    pub name: Option<String>,
    pub order_id: Option<String>,
    pub admin: Option<UserId>,
    pub status: ChatStatus,
    pub created_at: i64,
    pub updated_at: i64,
    /// The role of the member it was looked up for.
    pub role: Role,
    /// That member's clear mark.
    pub cleared: MessageId,
}

const COLUMNS: &str =
    "c.id, c.kind, c.name, c.order_id, c.admin, c.status, c.created_at, c.updated_at, m.role, \
     m.cleared_up_to";

fn from_row(r: &Row) -> rusqlite::Result<ChatRow> {
    Ok(ChatRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        name: r.get(2)?,
        order_id: r.get(3)?,
        admin: r.get(4)?,
        status: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        role: r.get(8)?,
        cleared: r.get(9)?,
    })
}

/// The chat, if `user` is a member of it; otherwise `chat_not_found`, as if it did not exist.
pub fn member_chat(conn: &Connection, chat_id: ChatId, user: &UserId) -> Result<ChatRow> {
    let sql = format!(
        "SELECT {COLUMNS} FROM chats c JOIN members m ON m.chat_id = c.id
         WHERE c.id = ?1 AND m.user_id = ?2"
    );
    conn.prepare_cached(&sql)?
        .query_row(params![chat_id, user.as_str()], from_row)
        .optional()?
        .ok_or(Error::ChatNotFound(chat_id))
}

/// The chat as `user` sees it: members, last message, the user's unread count.
pub fn view(conn: &Connection, row: ChatRow, user: &UserId) -> Result<Chat> {
    view_as(conn, row, Some(user))
}

/// The chat as `user` sees it, or with no user (the host's view: nothing cleared, `unread` 0).
fn view_as(conn: &Connection, row: ChatRow, user: Option<&UserId>) -> Result<Chat> {
    let receipts = receipts(conn, row.id)?;
    let (read, cleared) = user
        .and_then(|u| receipts.iter().find(|r| &r.user == u))
        .map_or((MessageId::ZERO, MessageId::ZERO), |r| (r.read, r.cleared));
    let unread = match user {
        Some(u) => messages::unread(conn, row.id, u, read.max(cleared))?,
        None => 0,
    };
    Ok(Chat {
        id: row.id,
        last_message: messages::last(conn, row.id, cleared, &receipts)?,
        unread,
        member_count: receipts.len() as i64,
        users: receipts
            .into_iter()
            .take(LISTED_MEMBERS)
            .map(|r| Member {
                id: r.user,
                role: r.role,
            })
            .collect(),
        kind: row.kind,
        name: row.name,
        order_id: row.order_id,
        admin: row.admin,
        status: row.status,
        created_at: crate::time::rfc3339(row.created_at),
        updated_at: crate::time::rfc3339(row.updated_at),
    })
}

/// Fails with `chat_not_found` unless the chat exists (for the host, who sees every chat).
pub fn require(conn: &Connection, chat_id: ChatId) -> Result<()> {
    let found: bool = conn
        .prepare_cached("SELECT EXISTS(SELECT 1 FROM chats WHERE id = ?1)")?
        .query_row([chat_id], |r| r.get(0))?;
    if found {
        Ok(())
    } else {
        Err(Error::ChatNotFound(chat_id))
    }
}

/// A chat's own columns as the host backend sees them, member or not (role `host`).
pub fn host_row(conn: &Connection, chat_id: ChatId) -> Result<ChatRow> {
    conn.prepare_cached(
        "SELECT c.id, c.kind, c.name, c.order_id, c.admin, c.status, c.created_at, c.updated_at,
                'host', 0 FROM chats c WHERE c.id = ?1",
    )?
    .query_row([chat_id], from_row)
    .optional()?
    .ok_or(Error::ChatNotFound(chat_id))
}

/// A chat as the host backend sees it, member or not.
pub fn host_view(conn: &Connection, chat_id: ChatId) -> Result<Chat> {
    let row = host_row(conn, chat_id)?;
    view_as(conn, row, None)
}

/// A stored `chat` event's data as `user` sees it: their `unread`, and no `lastMessage` when
/// they cleared it. (The event is stored once for the chat with the shared fields; these are
/// computed when it is delivered.)
pub fn personalize(conn: &Connection, user: &UserId, data: &str) -> Result<String> {
    let Ok(mut chat) = serde_json::from_str::<Chat>(data) else {
        return Ok(data.to_string());
    };
    let marks: Option<(MessageId, MessageId)> = conn
        .prepare_cached(
            "SELECT read_up_to, cleared_up_to FROM members WHERE chat_id = ?1 AND user_id = ?2",
        )?
        .query_row(params![chat.id, user.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let cleared = marks.map_or(MessageId::ZERO, |(_, cleared)| cleared);
    chat.unread = match marks {
        Some((read, cleared)) => messages::unread(conn, chat.id, user, read.max(cleared))?,
        None => 0,
    };
    if chat.last_message.as_ref().is_some_and(|m| m.id <= cleared) {
        chat.last_message = None;
    }
    Ok(serde_json::to_string(&chat).map_err(anyhow::Error::from)?)
}

/// One chat as `user` sees it, if they are a member.
pub fn get(conn: &Connection, chat_id: ChatId, user: &UserId) -> Result<Chat> {
    let row = member_chat(conn, chat_id, user)?;
    view(conn, row, user)
}

/// Up to `count` of `user`'s chats, most recent activity first (ties: higher id first); with
/// `before` = (activity time in Unix ms, chat id), only the chats after that one in this order.
pub fn list(
    conn: &Connection,
    user: &UserId,
    count: usize,
    before: Option<(i64, ChatId)>,
) -> Result<Vec<Chat>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM chats c JOIN members m ON m.chat_id = c.id
         WHERE m.user_id = ?1 AND (c.updated_at < ?2 OR (c.updated_at = ?2 AND c.id < ?3))
         ORDER BY c.updated_at DESC, c.id DESC LIMIT ?4"
    );
    let (at, id) = before.unwrap_or((i64::MAX, ChatId::ZERO));
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![user.as_str(), at, id, count as i64], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(|row| view(conn, row, user)).collect()
}

/// The key that makes a direct chat between two users unique.
fn direct_key(a: &UserId, b: &UserId) -> String {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    format!("{x}\n{y}")
}

/// The direct chat between `a` and `b`, if there is one.
pub fn find_direct(conn: &Connection, a: &UserId, b: &UserId) -> Result<Option<ChatId>> {
    Ok(conn
        .prepare_cached("SELECT id FROM chats WHERE direct_key = ?1")?
        .query_row([direct_key(a, b)], |r| r.get(0))
        .optional()?)
}

/// What a new chat is.
#[derive(Debug, Clone)]
pub struct NewChat<'a> {
    pub kind: ChatKind,
    pub name: Option<&'a str>,
    pub order_id: Option<&'a str>,
    pub admin: Option<&'a UserId>,
    /// Members with their roles.
    pub members: &'a [(UserId, Role)],
}

/// Creates a chat with its members (a direct chat gets its uniqueness key); returns its id.
pub fn create(conn: &mut Tx, new: &NewChat) -> Result<ChatId> {
    let now = crate::time::now_ms();
    let key = match (new.kind, new.members) {
        (ChatKind::Direct, [(a, _), (b, _)]) => Some(direct_key(a, b)),
        _ => None,
    };
    conn.prepare_cached(
        "INSERT INTO chats(kind, name, order_id, admin, direct_key, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![
        new.kind,
        new.name,
        new.order_id,
        new.admin.map(UserId::as_str),
        key,
        now
    ])?;
    let id = ChatId::new(conn.last_insert_rowid());
    add_members(conn, id, new.members, MessageId::ZERO)?;
    Ok(id)
}

/// Adds members with their roles; returns those who were not members yet. Messages up to
/// `seen_up_to` count as delivered and read for them, so joining neither floods them with unread
/// messages nor moves old messages' status back. They see the chat's events from the next one.
pub fn add_members(
    conn: &mut Tx,
    chat_id: ChatId,
    members: &[(UserId, Role)],
    seen_up_to: MessageId,
) -> Result<Vec<Member>> {
    // `joined_at` orders the members: strictly after everyone already in the chat, and in the
    // order given (a millisecond apart), so ties never fall back to id order.
    let latest: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(joined_at), 0) FROM members WHERE chat_id = ?1")?
        .query_row([chat_id], |r| r.get(0))?;
    let mut joined = crate::time::now_ms().max(latest + 1);
    let mut added = Vec::new();
    for (user, role) in members {
        crate::store::users::ensure(conn, user)?;
        let n = conn
            .prepare_cached(
                "INSERT INTO members(chat_id, user_id, role, joined_at, delivered_up_to, read_up_to)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT(chat_id, user_id) DO NOTHING",
            )?
            .execute(params![chat_id, user.as_str(), role, joined, seen_up_to])?;
        if n > 0 {
            joined += 1;
            conn.joined(chat_id, user)?;
            added.push(Member {
                id: user.clone(),
                role: role.clone(),
            });
        }
    }
    count_members(conn, chat_id, added.len() as i64)?;
    touch(conn, chat_id)?;
    Ok(added)
}

/// Moves a chat's member count by `delta`.
fn count_members(conn: &Connection, chat_id: ChatId, delta: i64) -> Result<()> {
    conn.prepare_cached("UPDATE chats SET member_count = member_count + ?2 WHERE id = ?1")?
        .execute(params![chat_id, delta])?;
    Ok(())
}

/// How many members a chat has.
pub fn member_count(conn: &Connection, chat_id: ChatId) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT member_count FROM chats WHERE id = ?1")?
        .query_row([chat_id], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Moves a chat's activity time to now.
pub(super) fn touch(conn: &Connection, chat_id: ChatId) -> Result<()> {
    conn.prepare_cached("UPDATE chats SET updated_at = MAX(updated_at + 1, ?2) WHERE id = ?1")?
        .execute(params![chat_id, crate::time::now_ms()])?;
    Ok(())
}

/// The id of the newest message of a chat (0 if none).
pub fn last_message_id(conn: &Connection, chat_id: ChatId) -> Result<MessageId> {
    Ok(conn
        .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM messages WHERE chat_id = ?1")?
        .query_row([chat_id], |r| r.get(0))?)
}

/// Renames a chat.
pub fn rename(conn: &Connection, chat_id: ChatId, name: &str) -> Result<()> {
    conn.prepare_cached("UPDATE chats SET name = ?2 WHERE id = ?1")?
        .execute(params![chat_id, name])?;
    touch(conn, chat_id)
}

/// Removes a member; if they were the admin, the longest-standing remaining member takes over.
/// From the next event on, the chat's events no longer reach them.
pub fn remove_member(conn: &mut Tx, chat_id: ChatId, user: &UserId) -> Result<()> {
    let n = conn
        .prepare_cached("DELETE FROM members WHERE chat_id = ?1 AND user_id = ?2")?
        .execute(params![chat_id, user.as_str()])?;
    if n > 0 {
        conn.left(chat_id, user)?;
        count_members(conn, chat_id, -1)?;
    }
    conn.prepare_cached(
        "UPDATE chats SET admin = (SELECT user_id FROM members WHERE chat_id = ?1
                                   ORDER BY joined_at, user_id LIMIT 1)
         WHERE id = ?1 AND admin = ?2",
    )?
    .execute(params![chat_id, user.as_str()])?;
    touch(conn, chat_id)
}

/// Deletes a chat with its members and messages; its events no longer reach anyone.
pub fn delete(conn: &mut Tx, chat_id: ChatId) -> Result<()> {
    for member in member_ids(conn, chat_id)? {
        conn.left(chat_id, &member)?;
    }
    conn.prepare_cached("DELETE FROM chats WHERE id = ?1")?
        .execute([chat_id])?;
    Ok(())
}

/// Hides every message up to `up_to` from `user` (their clear mark never moves back).
pub fn clear_for(
    conn: &Connection,
    chat_id: ChatId,
    user: &UserId,
    up_to: MessageId,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE members SET cleared_up_to = MAX(cleared_up_to, ?3) WHERE chat_id = ?1 AND user_id = ?2",
    )?
    .execute(params![chat_id, user.as_str(), up_to])?;
    Ok(())
}

/// Every chat of at most `limit` members that `user` is in, with its other members (whom
/// `user`'s presence concerns).
pub fn partners(
    conn: &Connection,
    user: &UserId,
    limit: usize,
) -> Result<Vec<(ChatId, Vec<UserId>)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.chat_id, o.user_id FROM members m JOIN chats c ON c.id = m.chat_id
         JOIN members o ON o.chat_id = m.chat_id
         WHERE m.user_id = ?1 AND o.user_id != ?1 AND c.member_count <= ?2 ORDER BY m.chat_id",
    )?;
    let mut out: Vec<(ChatId, Vec<UserId>)> = Vec::new();
    let rows = stmt.query_map(params![user, limit as i64], |r| {
        Ok((r.get::<_, ChatId>(0)?, r.get::<_, UserId>(1)?))
    })?;
    for row in rows {
        let (chat, other) = row?;
        match out.last_mut() {
            Some((c, v)) if *c == chat => v.push(other),
            _ => out.push((chat, vec![other])),
        }
    }
    Ok(out)
}
