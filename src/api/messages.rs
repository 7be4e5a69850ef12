//! `message`, `messageStatus`, `history`, `editMessage` and `deleteMessage`: sending (batched,
//! all-or-nothing, idempotent), receipts, paging through a chat, and changing what was sent.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use super::posting::{check_size, post, validate, Onward, OutgoingMessage, Poster};
use super::{bounded, Out};
use crate::app::App;
use crate::error::{Error, Result};
use crate::model::{
    ChatId, ChatKind, ChatStatus, EventKind, Message, MessageId, Params, Receipt, UserId,
};
use crate::store::messages::{Marked, Page};
use crate::store::{chats, messages, users, Tx};

/// Largest batch of one `message` request.
const MAX_BATCH: usize = 100;

#[derive(Deserialize)]
pub struct SendRequest {
    messages: Vec<OutgoingMessage>,
}

/// Stores a batch of messages from `user` and pushes each to its chat's members.
pub async fn send(app: &Arc<App>, user: &UserId, req: SendRequest) -> Result<Out> {
    if req.messages.is_empty() || req.messages.len() > MAX_BATCH {
        return Err(Error::BadRequest(format!(
            "data.messages must hold 1 to {MAX_BATCH} messages, not {}",
            req.messages.len()
        )));
    }
    let batch = req
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            validate(m, app.config.max_message_bytes, &|name| {
                format!("data.messages[{i}].{name}")
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // Each id names one message: a second one in the same batch would be dropped as a retry.
    for (i, m) in batch.iter().enumerate() {
        if let Some(j) = batch[..i]
            .iter()
            .position(|o| o.client_message_id == m.client_message_id)
        {
            return Err(Error::BadRequest(format!(
                "data.messages[{i}].clientMessageId repeats data.messages[{j}]'s; each message \
                 needs its own"
            )));
        }
    }
    let user = user.clone();
    let onward = Onward::of(app);
    let (sent, profiles) = app
        .store
        .write(move |tx| {
            let mut sent = Vec::with_capacity(batch.len());
            for m in &batch {
                let msg = post(tx, &onward, &Poster::Client(&user), m)?;
                sent.push(msg);
            }
            let profiles = users::profiles(tx, [user.as_str()])?;
            Ok((sent, profiles))
        })
        .await?;
    Ok(Out::ok(json!({"messages": sent, "users": profiles})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRequest {
    status: Receipt,
    chat_id: ChatId,
    message_id: MessageId,
}

/// Marks messages up to one as delivered or read for `user`, and tells the chat when it moved.
/// The answer is the message's status as stored: `delivered` for a message already read
/// answers `read`.
pub async fn status(app: &Arc<App>, user: &UserId, req: StatusRequest) -> Result<Out> {
    let (me, user) = (user.clone(), user.clone());
    let (chat_id, message_id) = (req.chat_id, req.message_id);
    let data = move |status: Receipt| {
        json!({
            "status": status,
            "chatId": chat_id,
            "messageId": message_id,
            "userId": user,
        })
    };
    let mark = req.status;
    let event = data(req.status);
    let limit = app.config.presence_group_limit as i64;
    let stored = app
        .store
        .write(move |tx| {
            chats::member_chat(tx, chat_id, &me)?;
            let before = match messages::mark(tx, chat_id, &me, message_id, mark)? {
                Marked::Moved { before } => before,
                Marked::Unchanged { stored } => return Ok(stored),
            };
            if chats::member_count(tx, chat_id)? <= limit {
                tx.emit_chat(chat_id, EventKind::MessageStatus, &event)?;
            } else {
                // A large group hears only of receipts for its own messages.
                let authors = messages::authors_between(tx, chat_id, before, message_id, &me)?;
                tx.emit(&authors, EventKind::MessageStatus, &event)?;
            }
            Ok(mark)
        })
        .await?;
    Ok(Out::ok(data(stored)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRequest {
    chat_id: ChatId,
    before: Option<MessageId>,
    after: Option<MessageId>,
    limit: Option<u64>,
}

/// A page of a chat's messages, ascending, with `hasMore`.
pub async fn history(app: &Arc<App>, user: &UserId, req: HistoryRequest) -> Result<Out> {
    let page = Page {
        before: req.before,
        after: req.after,
        limit: bounded("data.limit", req.limit, 50, 200)?,
    };
    let page = history_page(app, user.clone(), req.chat_id, page).await?;
    Ok(Out::ok(page))
}

/// A page of a chat's history as `user`, a member, sees it (nothing they cleared): the
/// messages, their authors' profiles and whether there are more. The client's `history` and
/// the host's message pages both read it here.
pub async fn history_page(app: &App, user: UserId, chat_id: ChatId, page: Page) -> Result<Value> {
    app.store
        .read(move |c| {
            let chat = chats::member_chat(c, chat_id, &user)?;
            let (msgs, more) = messages::history(c, chat_id, chat.cleared, page)?;
            let authors = msgs
                .iter()
                .filter_map(|m| m.user_id.as_ref().map(UserId::as_str));
            let profiles = users::profiles(c, authors)?;
            Ok(json!({"messages": msgs, "users": profiles, "hasMore": more}))
        })
        .await
}

/// A message the caller may act on: it exists in a chat they are a member of, which is open.
fn own_chat_message(
    tx: &Tx,
    user: &UserId,
    message_id: MessageId,
) -> Result<(Message, chats::ChatRow)> {
    let msg = messages::get(tx, message_id)?.ok_or(Error::MessageNotFound(message_id))?;
    let chat = chats::member_chat(tx, msg.chat_id, user).map_err(|e| match e {
        Error::ChatNotFound(_) => Error::MessageNotFound(message_id),
        other => other,
    })?;
    if chat.status == ChatStatus::Closed {
        return Err(Error::ChatClosed(chat.id));
    }
    Ok((msg, chat))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EditRequest {
    message_id: MessageId,
    text: String,
    params: Option<Params>,
}

/// Changes the text (and params, if given) of the caller's own message; the chat gets the new
/// `message` with `editDate` set.
pub async fn edit(app: &Arc<App>, user: &UserId, req: EditRequest) -> Result<Out> {
    if req.text.is_empty() {
        return Err(Error::BadRequest("data.text must not be empty".into()));
    }
    let limit = app.config.max_message_bytes;
    let (me, message_id) = (user.clone(), req.message_id);
    app.store
        .write(move |tx| {
            let (msg, _) = own_chat_message(tx, &me, message_id)?;
            if msg.user_id.as_ref() != Some(&me) {
                return Err(Error::Forbidden(format!(
                    "only the author can edit message {message_id}"
                )));
            }
            if msg.deleted {
                return Err(Error::Forbidden(format!(
                    "message {message_id} was deleted"
                )));
            }
            let params = req.params.unwrap_or(msg.params);
            // Kept params count too: a new text must fit beside them.
            check_size(&req.text, &params, limit, "data.text".into())?;
            let edited = messages::edit(tx, message_id, &req.text, &params)?;
            tx.emit_message(&edited)?;
            Ok(Out::ok(json!({"message": edited})))
        })
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRequest {
    message_id: MessageId,
}

/// Deletes a message (its author, or the admin of its group): it stays in the chat as
/// `deleted: true` with no text, params or file, and the chat gets that `message`. Deleting it
/// again changes nothing.
pub async fn delete(app: &Arc<App>, user: &UserId, req: DeleteRequest) -> Result<Out> {
    let (me, message_id) = (user.clone(), req.message_id);
    app.store
        .write(move |tx| {
            let (msg, chat) = own_chat_message(tx, &me, message_id)?;
            let author = msg.user_id.as_ref() == Some(&me);
            let admin = chat.kind == ChatKind::Group && chat.admin.as_ref() == Some(&me);
            if !author && !admin {
                return Err(Error::Forbidden(format!(
                    "only the author or the group's admin can delete message {message_id}"
                )));
            }
            if !msg.deleted {
                let deleted = messages::delete(tx, message_id)?;
                tx.emit_message(&deleted)?;
            }
            Ok(Out::no_content())
        })
        .await
}
