//! A change's transaction: its connection inside the writer's shared transaction, and the
//! events it appends to the log and publishes once the transaction commits.

use std::ops::Deref;
use std::sync::Arc;

use rusqlite::Connection;

use crate::error::Result;
use crate::hub::{Frame, Published};
use crate::model::{ChatId, EventId, EventKind, Message, MessageId, UserId};
use crate::store::messages::NewMessage;

/// A change's connection inside the shared transaction, and what it publishes once committed.
pub struct Tx<'c> {
    pub(super) conn: &'c Connection,
    pub(super) events: Vec<Published>,
}

impl Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

fn to_json(data: &impl serde::Serialize) -> Result<Arc<str>> {
    Ok(serde_json::to_string(data)
        .map_err(anyhow::Error::from)?
        .into())
}

impl Tx<'_> {
    /// Stores one row of the event log; returns its id.
    fn append(
        &self,
        chat: Option<ChatId>,
        user: Option<&UserId>,
        kind: &str,
        message: Option<MessageId>,
        data: Option<&str>,
    ) -> Result<EventId> {
        self.conn
            .prepare_cached(
                "INSERT INTO events(chat_id, user_id, type, message_id, data, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(rusqlite::params![
                chat,
                user.map(UserId::as_str),
                kind,
                message,
                data,
                crate::time::now_ms()
            ])?;
        Ok(EventId::new(self.conn.last_insert_rowid()))
    }

    /// Stores one event of `kind` with `data` for each of `users` (an event about them alone,
    /// such as a removal's `chatDeleted`); they are published after commit.
    pub fn emit<'u>(
        &mut self,
        users: impl IntoIterator<Item = &'u UserId>,
        kind: EventKind,
        data: &impl serde::Serialize,
    ) -> Result<()> {
        let data = to_json(data)?;
        let kind: Arc<str> = kind.as_str().into();
        for user in users {
            let id = self.append(None, Some(user), &kind, None, Some(&data))?;
            let frame = Frame {
                id: Some(id),
                chat: None,
                kind: kind.clone(),
                data: data.clone(),
            };
            self.events
                .push(Published::User(user.clone(), Arc::new(frame)));
        }
        Ok(())
    }

    /// Stores one event of `kind` for a chat: every member sees it, whatever their number.
    pub fn emit_chat(
        &mut self,
        chat: ChatId,
        kind: EventKind,
        data: &impl serde::Serialize,
    ) -> Result<()> {
        let data = to_json(data)?;
        let id = self.append(Some(chat), None, kind.as_str(), None, Some(&data))?;
        self.publish_chat(chat, id, kind.as_str(), data);
        Ok(())
    }

    /// Stores a new message from `user` (None: a system message) with the author's `sender`
    /// role, as its own `message` event: its id is drawn from the event log's counter, so no
    /// event row is written for it (replay reads it from `messages`). Published once committed.
    pub fn new_message(
        &mut self,
        user: Option<&UserId>,
        sender: &str,
        new: &NewMessage,
    ) -> Result<Message> {
        let id = crate::store::events::reserve(self.conn)?;
        let id_as_message = MessageId::new(id.get());
        let message = crate::store::messages::insert(self.conn, id_as_message, user, sender, new)?;
        let data = to_json(&message)?;
        self.publish_chat(message.chat_id, id, EventKind::Message.as_str(), data);
        Ok(message)
    }

    /// Stores a `message` event for a change to a message (an edit, a deletion). The row holds
    /// only the message's id: replay renders the message as it then is.
    pub fn emit_message(&mut self, message: &Message) -> Result<()> {
        let data = to_json(message)?;
        let id = self.append(
            Some(message.chat_id),
            None,
            EventKind::Message.as_str(),
            Some(message.id),
            None,
        )?;
        self.publish_chat(message.chat_id, id, EventKind::Message.as_str(), data);
        Ok(())
    }

    fn publish_chat(&mut self, chat: ChatId, id: EventId, kind: &str, data: Arc<str>) {
        let frame = Frame {
            id: Some(id),
            chat: Some(chat),
            kind: kind.into(),
            data,
        };
        self.events.push(Published::Chat(chat, Arc::new(frame)));
    }

    /// The id the next event will get: membership spans start and end there.
    fn next_event_id(&self) -> Result<EventId> {
        Ok(EventId::new(
            crate::store::events::head(self.conn)?.get() + 1,
        ))
    }

    /// Opens `user`'s membership span in `chat` (no-op if one is open): they see the chat's
    /// events from the next one on.
    pub fn joined(&mut self, chat: ChatId, user: &UserId) -> Result<()> {
        let from = self.next_event_id()?;
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO spans(user_id, chat_id, from_id)
                 SELECT ?1, ?2, ?3 WHERE NOT EXISTS (
                     SELECT 1 FROM spans WHERE user_id = ?1 AND chat_id = ?2 AND until_id IS NULL)",
            )?
            .execute(rusqlite::params![user.as_str(), chat, from])?;
        if n > 0 {
            self.events.push(Published::Joined(chat, user.clone()));
        }
        Ok(())
    }

    /// Ends `user`'s membership span in `chat`: no event of the chat from the next one on
    /// reaches them.
    pub fn left(&mut self, chat: ChatId, user: &UserId) -> Result<()> {
        let until = self.next_event_id()?;
        self.conn
            .prepare_cached(
                "UPDATE spans SET until_id = ?3
                 WHERE user_id = ?1 AND chat_id = ?2 AND until_id IS NULL",
            )?
            .execute(rusqlite::params![user.as_str(), chat, until])?;
        self.events.push(Published::Left(chat, user.clone()));
        Ok(())
    }
}
