//! The chats the host and the server make for users: order chats and their consultations,
//! each user's support and notifications chats; hand-overs, roles and closing.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;
use crate::model::{ChatId, ChatKind, MessageId, Role, UserId};
use crate::store::chats::{add_members, touch};
use crate::store::Tx;

/// The newest order chat for `order_id` that is still open.
pub fn open_order_chat(conn: &Connection, order_id: &str) -> Result<Option<ChatId>> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM chats WHERE kind = 'order' AND order_id = ?1 AND status = 'open'
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row([order_id], |r| r.get(0))
        .optional()?)
}

/// Closes a chat (no more messages); true if it was open.
pub fn close(conn: &Connection, chat_id: ChatId) -> Result<bool> {
    let n = conn
        .prepare_cached("UPDATE chats SET status = 'closed' WHERE id = ?1 AND status = 'open'")?
        .execute([chat_id])?;
    if n > 0 {
        touch(conn, chat_id)?;
    }
    Ok(n > 0)
}

/// Sets a member's role (the `sender` of their future messages).
pub fn set_role(conn: &Connection, chat_id: ChatId, user: &UserId, role: &Role) -> Result<()> {
    conn.prepare_cached("UPDATE members SET role = ?3 WHERE chat_id = ?1 AND user_id = ?2")?
        .execute(params![chat_id, user.as_str(), role])?;
    touch(conn, chat_id)
}

/// Hands `old`'s membership (role included) to `new`, who sees the history as read up to now.
pub fn hand_over(
    conn: &mut Tx,
    chat_id: ChatId,
    old: &UserId,
    new: &UserId,
    seen_up_to: MessageId,
) -> Result<()> {
    crate::store::users::ensure(conn, new)?;
    conn.left(chat_id, old)?;
    conn.joined(chat_id, new)?;
    conn.prepare_cached(
        "UPDATE members SET user_id = ?3, delivered_up_to = MAX(delivered_up_to, ?4),
                            read_up_to = MAX(read_up_to, ?4), cleared_up_to = 0, joined_at = ?5
         WHERE chat_id = ?1 AND user_id = ?2",
    )?
    .execute(params![
        chat_id,
        old.as_str(),
        new.as_str(),
        seen_up_to,
        crate::time::now_ms()
    ])?;
    conn.prepare_cached("UPDATE chats SET admin = ?3 WHERE id = ?1 AND admin = ?2")?
        .execute(params![chat_id, old.as_str(), new.as_str()])?;
    touch(conn, chat_id)
}

/// The one chat of `kind` (`support` or `notifications`) that belongs to `user`, created with
/// `members` the first time it is asked for. Returns its id and whether it was created now.
pub fn personal_chat(
    conn: &mut Tx,
    kind: ChatKind,
    user: &UserId,
    members: &[(UserId, Role)],
) -> Result<(ChatId, bool)> {
    personal_chat_named(conn, kind, user, None, members)
}

/// [`personal_chat`], one per `channel` (a notifications channel, which is also the chat's
/// name); `None` is the user's one chat of `kind`.
pub fn personal_chat_named(
    conn: &mut Tx,
    kind: ChatKind,
    user: &UserId,
    channel: Option<&str>,
    members: &[(UserId, Role)],
) -> Result<(ChatId, bool)> {
    // "/" cannot appear in a user id or a channel, so this never meets a direct chat's key,
    // and a channel's key never meets another's.
    let key = match channel {
        None => format!("{kind}/{user}"),
        Some(channel) => format!("{kind}/{user}/{channel}"),
    };
    let existing: Option<ChatId> = conn
        .prepare_cached("SELECT id FROM chats WHERE direct_key = ?1")?
        .query_row([&key], |r| r.get(0))
        .optional()?;
    if let Some(id) = existing {
        return Ok((id, false));
    }
    let now = crate::time::now_ms();
    conn.prepare_cached(
        "INSERT INTO chats(kind, name, direct_key, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
    )?
    .execute(params![kind, channel, key, now])?;
    let id = ChatId::new(conn.last_insert_rowid());
    add_members(conn, id, members, MessageId::ZERO)?;
    Ok((id, true))
}

/// The newest order chat (open or closed) for `order_id` that `user` is a member of.
pub fn consultation_chat(
    conn: &Connection,
    order_id: &str,
    user: &UserId,
) -> Result<Option<ChatId>> {
    Ok(conn
        .prepare_cached(
            "SELECT c.id FROM chats c JOIN members m ON m.chat_id = c.id
             WHERE c.kind = 'order' AND c.order_id = ?1 AND m.user_id = ?2
             ORDER BY c.id DESC LIMIT 1",
        )?
        .query_row(params![order_id, user.as_str()], |r| r.get(0))
        .optional()?)
}
