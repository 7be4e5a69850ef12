//! Chat management: `renameChat`, `addMembers`, `removeMember`, `deleteChat` and `clearChat`, with
//! their permission rules. Membership is the access boundary: each change decides who is told.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use super::chats::{push_chat, push_members, with_profiles};
use super::Out;
use crate::app::App;
use crate::error::{Error, Result};
use crate::model::{ChatId, ChatKind, EventKind, Role, UserId};
use crate::store::chats::{self, ChatRow};

/// Most users one `addMembers` may add.
const MAX_ADD: usize = 500;

/// Chats the host owns: clients may not delete or rename them.
fn host_owned(chat: &ChatRow) -> bool {
    matches!(
        chat.kind,
        ChatKind::Support | ChatKind::Notifications | ChatKind::Order
    )
}

/// Allows only the admin of a group. `action` is what the admin does, in the active voice
/// ("rename it"), so both refusals read forwards: "only the admin of chat 3 can rename it".
fn group_admin(chat: &ChatRow, user: &UserId, action: &str) -> Result<()> {
    if chat.kind != ChatKind::Group {
        return Err(Error::Forbidden(format!(
            "chat {} is a {} chat, not a group: only a group's admin can {action}",
            chat.id, chat.kind
        )));
    }
    if chat.admin.as_ref() != Some(user) {
        return Err(Error::Forbidden(format!(
            "only the admin of chat {} can {action}",
            chat.id
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenameRequest {
    chat_id: ChatId,
    name: String,
}

/// Renames a group (its admin only); every member gets the new `chat`.
pub async fn rename(app: &Arc<App>, user: &UserId, req: RenameRequest) -> Result<Out> {
    let name = super::chats::group_name(Some(req.name))?
        .ok_or_else(|| Error::BadRequest("data.name must not be empty".into()))?;
    let (me, chat_id) = (user.clone(), req.chat_id);
    app.store
        .write(move |tx| {
            let chat = chats::member_chat(tx, chat_id, &me)?;
            group_admin(&chat, &me, "rename it")?;
            chats::rename(tx, chat_id, &name)?;
            push_chat(tx, chat_id)?;
            Ok(Out::ok(json!({"chat": chats::get(tx, chat_id, &me)?})))
        })
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddRequest {
    chat_id: ChatId,
    user_ids: Vec<UserId>,
}

/// Adds members to a group (its admin only). They see the whole history, with what came before
/// them counted as read; old and new members get the new `chat`.
pub async fn add_members(app: &Arc<App>, user: &UserId, req: AddRequest) -> Result<Out> {
    if req.user_ids.is_empty() || req.user_ids.len() > MAX_ADD {
        return Err(Error::BadRequest(format!(
            "data.userIds must name 1 to {MAX_ADD} users"
        )));
    }
    let (me, chat_id) = (user.clone(), req.chat_id);
    let max = app.config.max_group_size;
    app.store
        .write_rows(req.user_ids.len(), move |tx| {
            let chat = chats::member_chat(tx, chat_id, &me)?;
            group_admin(&chat, &me, "add members to it")?;
            let new: Vec<(UserId, Role)> = req
                .user_ids
                .into_iter()
                .map(|u| (u, Role::Member))
                .collect();
            let seen = chats::last_message_id(tx, chat_id)?;
            let added = chats::add_members(tx, chat_id, &new, seen)?;
            // Past the limit, the change fails and its savepoint takes every addition back.
            if chats::member_count(tx, chat_id)? as usize > max {
                return Err(super::chats::too_large(max));
            }
            push_members(tx, chat_id, &added, &[])?;
            Ok(Out::ok(with_profiles(tx, chats::get(tx, chat_id, &me)?)?))
        })
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveRequest {
    chat_id: ChatId,
    user_id: UserId,
}

/// Removes a member from a group: the admin removes anyone, anyone removes themselves (leaves).
/// The remaining members get the new `chat`, the removed one `chatDeleted`.
pub async fn remove_member(app: &Arc<App>, user: &UserId, req: RemoveRequest) -> Result<Out> {
    let (me, chat_id, gone) = (user.clone(), req.chat_id, req.user_id);
    app.store
        .write(move |tx| {
            let chat = chats::member_chat(tx, chat_id, &me)?;
            if gone != me {
                group_admin(&chat, &me, "remove other members from it")?;
            } else if chat.kind != ChatKind::Group {
                return Err(Error::Forbidden(format!(
                    "only group chats can be left; chat {chat_id} is {}",
                    chat.kind
                )));
            }
            let before = crate::store::members::member_ids(tx, chat_id)?;
            if !before.contains(&gone) {
                return Err(Error::BadRequest(format!(
                    "{gone} is not a member of chat {chat_id}"
                )));
            }
            chats::remove_member(tx, chat_id, &gone)?;
            push_members(tx, chat_id, &[], std::slice::from_ref(&gone))?;
            tx.emit([&gone], EventKind::ChatDeleted, &json!({"chatId": chat_id}))?;
            // The caller sees the chat as it now is. One who just left is no longer a member, so
            // it is read as from outside: the members left, nothing unread.
            let chat = if gone == me {
                chats::host_view(tx, chat_id)?
            } else {
                chats::get(tx, chat_id, &me)?
            };
            Ok(Out::ok(json!({"chat": chat})))
        })
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRequest {
    chat_id: ChatId,
}

/// Deletes a chat for everyone: a direct chat by either member, a group by its admin. Support,
/// notification and order chats belong to the host and cannot be deleted by clients.
pub async fn delete(app: &Arc<App>, user: &UserId, req: DeleteRequest) -> Result<Out> {
    let (me, chat_id) = (user.clone(), req.chat_id);
    app.store
        .write(move |tx| {
            let chat = chats::member_chat(tx, chat_id, &me)?;
            if host_owned(&chat) {
                return Err(Error::Forbidden(format!(
                    "{} chats cannot be deleted by clients",
                    chat.kind
                )));
            }
            if chat.kind == ChatKind::Group {
                group_admin(&chat, &me, "delete it")?;
            }
            let members = crate::store::members::member_ids(tx, chat_id)?;
            chats::delete(tx, chat_id)?;
            tx.emit(
                &members,
                EventKind::ChatDeleted,
                &json!({"chatId": chat_id}),
            )?;
            Ok(Out::no_content())
        })
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClearRequest {
    chat_id: ChatId,
    #[serde(default)]
    for_all: bool,
}

/// Hides the chat's messages so far: for the caller, or with `forAll` for every member (a member
/// of a direct chat, or a group's admin). Whoever it was cleared for gets `chatCleared`.
pub async fn clear(app: &Arc<App>, user: &UserId, req: ClearRequest) -> Result<Out> {
    let (me, chat_id, for_all) = (user.clone(), req.chat_id, req.for_all);
    app.store
        .write(move |tx| {
            let chat = chats::member_chat(tx, chat_id, &me)?;
            let targets = if for_all {
                match chat.kind {
                    ChatKind::Direct => {}
                    ChatKind::Group => group_admin(&chat, &me, "clear it for all")?,
                    other => {
                        return Err(Error::Forbidden(format!(
                            "{other} chats cannot be cleared for all by clients"
                        )))
                    }
                }
                crate::store::members::member_ids(tx, chat_id)?
            } else {
                vec![me.clone()]
            };
            let up_to = chats::last_message_id(tx, chat_id)?;
            for member in &targets {
                chats::clear_for(tx, chat_id, member, up_to)?;
            }
            tx.emit(
                &targets,
                EventKind::ChatCleared,
                &json!({"chatId": chat_id, "upTo": up_to}),
            )?;
            Ok(Out::no_content())
        })
        .await
}
