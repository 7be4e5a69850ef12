//! The one way a message is posted: a draft checked, then stored once and told to its chat,
//! whether a client sends it as a member or the host posts it as a member or as the system.
//! What differs between them is the [`Poster`].

use std::sync::Arc;

use crate::app::App;
use crate::error::{Error, Result};
use crate::model::{ChatId, ChatKind, ChatStatus, Message, Params, UserId, SYSTEM};
use crate::presence::Presence;
use crate::store::messages::{self, NewMessage};
use crate::store::{chats, files, Tx};
use crate::telegram::Bridge;
use crate::webhooks::Webhooks;
use serde::Deserialize;

/// Longest client message id.
const MAX_CLIENT_ID: usize = 128;

/// One message as a client sends it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingMessage {
    pub client_message_id: String,
    pub chat_id: ChatId,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub params: Params,
    pub file_id: Option<String>,
}

/// Refuses (413) a message whose text plus params' keys and values pass `limit` bytes; `field`
/// names the text for the error.
pub fn check_size(text: &str, params: &Params, limit: usize, field: String) -> Result<()> {
    let size = text.len() + params.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    if size > limit {
        return Err(Error::MessageTooLarge { field, size, limit });
    }
    Ok(())
}

/// Checks a message to send, at most `max_bytes` of text and params; `field` names a field for
/// errors (`data.messages[0].text`).
pub fn validate(
    m: OutgoingMessage,
    max_bytes: usize,
    field: &dyn Fn(&str) -> String,
) -> Result<NewMessage> {
    if m.client_message_id.is_empty() || m.client_message_id.chars().count() > MAX_CLIENT_ID {
        return Err(Error::BadRequest(format!(
            "{} must be 1 to {MAX_CLIENT_ID} characters",
            field("clientMessageId")
        )));
    }
    let kind = m.kind.unwrap_or_else(|| "text".into());
    crate::model::check_message_type(&kind, &field("type")).map_err(Error::BadRequest)?;
    if m.file_id
        .as_ref()
        .is_some_and(|f| f.is_empty() || f.len() > 64)
    {
        return Err(Error::BadRequest(format!(
            "{} must be a file id",
            field("fileId")
        )));
    }
    if matches!(kind.as_str(), "image" | "file") && m.file_id.is_none() {
        return Err(Error::BadRequest(format!(
            "{} is required for a message of type {kind}",
            field("fileId")
        )));
    }
    if m.text.is_empty() && m.file_id.is_none() {
        return Err(Error::BadRequest(format!(
            "{} must not be empty (it may be only with a fileId)",
            field("text")
        )));
    }
    check_size(&m.text, &m.params, max_bytes, field("text"))?;
    Ok(NewMessage {
        client_message_id: m.client_message_id,
        chat_id: m.chat_id,
        kind,
        text: m.text,
        params: m.params,
        file_id: m.file_id,
    })
}

/// Who hears of a new message beyond its chat's streams: webhooks for members with nothing
/// open (which presence knows), and the support staff's Telegram group.
#[derive(Clone)]
pub struct Onward {
    pub presence: Arc<Presence>,
    pub webhooks: Arc<Webhooks>,
    pub telegram: Option<Arc<Bridge>>,
}

impl Onward {
    /// The handles of `app`.
    pub fn of(app: &App) -> Onward {
        Onward {
            presence: app.presence.clone(),
            webhooks: app.webhooks.clone(),
            telegram: app.telegram.clone(),
        }
    }
}

/// Tells a new message in a chat of `kind` (already its chat's `message` event, see
/// `Tx::new_message`) onward: a webhook for each member with no open connection, and a support
/// message to the staff's Telegram group. Every way a message is posted ends here.
pub fn announce(tx: &mut Tx, onward: &Onward, kind: ChatKind, msg: &Message) -> Result<()> {
    if let Some(bridge) = &onward.telegram {
        crate::telegram::queue(tx, bridge, kind, msg)?;
    }
    if !onward.webhooks.enabled() {
        return Ok(());
    }
    let members = crate::store::members::member_ids(tx, msg.chat_id)?;
    crate::webhooks::queue_message(tx, &onward.presence, &onward.webhooks, msg, &members)
}

/// Who posts a message, which decides the rules.
pub enum Poster<'a> {
    /// A client, as a member of the chat: only to chats they are in, with their own uploads,
    /// never to a notifications chat.
    Client(&'a UserId),
    /// The host backend, as a member (`Some`, who must be in the chat) or as the system: to any
    /// open chat, with any upload.
    Host(Option<&'a UserId>),
    /// The host's notice to a user's notifications chat (`POST /v1/server/notifications`), as
    /// the system: delivered even if the host has closed that chat.
    Notice,
}

/// Posts `new` by `poster`: once (a retry with the same client message id gets the stored
/// message back), to a chat that is open, then told to its members (see [`announce`]).
pub fn post(tx: &mut Tx, onward: &Onward, poster: &Poster, new: &NewMessage) -> Result<Message> {
    let author = match poster {
        Poster::Client(user) => Some(*user),
        Poster::Host(author) => *author,
        Poster::Notice => None,
    };
    let existing = match author {
        Some(user) => messages::by_client_id(tx, user, &new.client_message_id)?,
        None => messages::system_by_client_id(tx, new.chat_id, &new.client_message_id)?,
    };
    if let Some(m) = existing {
        return Ok(m);
    }
    let (kind, status, sender) = match poster {
        Poster::Client(user) => {
            let chat = chats::member_chat(tx, new.chat_id, user)?;
            (chat.kind, chat.status, chat.role.to_string())
        }
        Poster::Notice => {
            let chat = chats::host_row(tx, new.chat_id)?;
            (chat.kind, chat.status, SYSTEM.to_string())
        }
        Poster::Host(author) => {
            // Its own columns only: a whole view would read every member's marks.
            let chat = chats::host_row(tx, new.chat_id)?;
            let sender = match author {
                // Looked up directly: a Chat lists only the first members of a large group.
                Some(user) => match chats::member_chat(tx, chat.id, user) {
                    Ok(row) => row.role.to_string(),
                    Err(Error::ChatNotFound(_)) => {
                        return Err(Error::BadRequest(format!(
                            "body.user_id: {user} is not a member of chat {}",
                            chat.id
                        )))
                    }
                    Err(e) => return Err(e),
                },
                None => SYSTEM.to_string(),
            };
            (chat.kind, chat.status, sender)
        }
    };
    if status == ChatStatus::Closed && !matches!(poster, Poster::Notice) {
        return Err(Error::ChatClosed(new.chat_id));
    }
    if let Some(file) = &new.file_id {
        let found = files::get(tx, file)?;
        let allowed = match poster {
            // Only one's own uploads can be sent.
            Poster::Client(user) => found.is_some_and(|f| f.owner == user.as_str()),
            Poster::Host(_) | Poster::Notice => found.is_some(),
        };
        if !allowed {
            return Err(Error::FileNotFound(file.clone()));
        }
    }
    if matches!(poster, Poster::Client(_)) && kind == ChatKind::Notifications {
        return Err(Error::Forbidden(format!(
            "chat {} is a notifications chat: it can be read, not written",
            new.chat_id
        )));
    }
    let msg = tx.new_message(author, &sender, new)?;
    announce(tx, onward, kind, &msg)?;
    Ok(msg)
}
