//! `createChat`, `chats` and `chat`: making direct and group chats, and reading them as a member.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{bounded, Out};
use crate::app::App;
use crate::error::{Error, Result};
use crate::model::{Chat, ChatId, ChatKind, EventKind, Member, Role, UserId};
use crate::store::chats::{self, NewChat};
use crate::store::Tx;
use crate::store::{host_chats, users};

/// Most other members a new chat may name.
const MAX_NEW_MEMBERS: usize = 500;
/// Longest group name, in characters.
const MAX_NAME: usize = 200;

/// `{chat, users}`: a chat with its members' profiles.
pub fn with_profiles(conn: &rusqlite::Connection, chat: Chat) -> Result<Value> {
    let profiles = chats::member_profiles(conn, std::slice::from_ref(&chat))?;
    Ok(json!({"chat": chat, "users": profiles}))
}

/// Tells a chat's members that it was created or changed: one stored `chat` event for the chat,
/// with the fields every member shares (each member's `unread` is filled in on delivery).
pub fn push_chat(tx: &mut Tx, chat_id: ChatId) -> Result<()> {
    let view = chats::host_view(tx, chat_id)?;
    tx.emit_chat(chat_id, EventKind::Chat, &view)
}

/// Tells a chat's members who joined and who left (`chatMembers`), then the chat as it now is.
/// Members who left no longer see either.
pub fn push_members(
    tx: &mut Tx,
    chat_id: ChatId,
    added: &[Member],
    removed: &[UserId],
) -> Result<()> {
    if !added.is_empty() || !removed.is_empty() {
        let count = chats::member_count(tx, chat_id)?;
        let data =
            json!({"chatId": chat_id, "added": added, "removed": removed, "memberCount": count});
        tx.emit_chat(chat_id, EventKind::ChatMembers, &data)?;
    }
    push_chat(tx, chat_id)
}

/// Makes `user`'s support chat with `support` (roles `client` and `support`) unless it exists;
/// both get the new `chat`.
pub fn ensure_support_chat(tx: &mut Tx, user: &UserId, support: &UserId) -> Result<()> {
    let members = [
        (user.clone(), Role::Client),
        (support.clone(), Role::Support),
    ];
    let (chat_id, created) = host_chats::personal_chat(tx, ChatKind::Support, user, &members)?;
    if created {
        push_chat(tx, chat_id)?;
    }
    Ok(())
}

/// The error for a group that would pass `--max-group-size`.
pub fn too_large(max: usize) -> Error {
    Error::BadRequest(format!(
        "a group has at most {max} members (the server's --max-group-size)"
    ))
}

/// A group name: trimmed, at most 200 characters; empty means none.
pub fn group_name(name: Option<String>) -> Result<Option<String>> {
    let name = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > MAX_NAME) {
        return Err(Error::BadRequest(format!(
            "data.name must be at most {MAX_NAME} characters"
        )));
    }
    Ok(name)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    count: Option<u64>,
    before: Option<String>,
    before_id: Option<ChatId>,
}

/// `{chats, users}` for `user`: their most recently active chats first.
pub async fn snapshot(
    app: &App,
    user: &UserId,
    count: usize,
    before: Option<(i64, ChatId)>,
) -> Result<Value> {
    let user = user.clone();
    app.store
        .read(move |c| chats::snapshot(c, &user, count, before))
        .await
}

/// The caller's chats, most recent activity first, paged by the last chat of the previous page:
/// its `updatedAt` as `before` and its id as `beforeId` (chats can share an `updatedAt`).
pub async fn list(app: &Arc<App>, user: &UserId, req: ListRequest) -> Result<Out> {
    let count = bounded("data.count", req.count, 50, 200)?;
    let before = match req.before {
        None => None,
        Some(s) => {
            let at = crate::time::parse_rfc3339(&s).ok_or_else(|| {
                Error::BadRequest(format!(
                    "data.before must be an RFC 3339 time (an updatedAt), not {s:?}"
                ))
            })?;
            // Without beforeId, every chat active at exactly that time counts as seen.
            Some((at, req.before_id.unwrap_or(ChatId::ZERO)))
        }
    };
    Ok(Out::ok(snapshot(app, user, count, before).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetRequest {
    chat_id: ChatId,
}

/// One chat the caller is a member of.
pub async fn get(app: &Arc<App>, user: &UserId, req: GetRequest) -> Result<Out> {
    let (user, chat_id) = (user.clone(), req.chat_id);
    app.store
        .read(move |c| Ok(Out::ok(with_profiles(c, chats::get(c, chat_id, &user)?)?)))
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembersRequest {
    chat_id: ChatId,
    after: Option<UserId>,
    count: Option<u64>,
}

/// A page of a chat's members in id order (`after`: the last id of the previous page), with
/// their profiles: the whole list of a group too large for its Chat object.
pub async fn members(app: &Arc<App>, user: &UserId, req: MembersRequest) -> Result<Out> {
    let count = bounded("data.count", req.count, 100, 500)?;
    let (user, chat_id) = (user.clone(), req.chat_id);
    app.store
        .read(move |c| {
            chats::member_chat(c, chat_id, &user)?;
            let after = req.after.as_ref().map(UserId::as_str);
            let (members, more) = crate::store::members::page(c, chat_id, after, count)?;
            let profiles = users::profiles(c, members.iter().map(|m| m.id.as_str()))?;
            Ok(Out::ok(json!({
                "chatId": chat_id,
                "members": members,
                "users": profiles,
                "memberCount": chats::member_count(c, chat_id)?,
                "hasMore": more,
            })))
        })
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    user_ids: Vec<UserId>,
    name: Option<String>,
}

/// One other user: the direct chat with them (the existing one if there is one). More: a new
/// group with the caller as its admin. New chats are pushed to every member.
pub async fn create(app: &Arc<App>, user: &UserId, req: CreateRequest) -> Result<Out> {
    let mut others: Vec<UserId> = Vec::new();
    for u in req.user_ids {
        if &u != user && !others.contains(&u) {
            others.push(u);
        }
    }
    if others.is_empty() || others.len() > MAX_NEW_MEMBERS {
        return Err(Error::BadRequest(format!(
            "data.userIds must name 1 to {MAX_NEW_MEMBERS} users other than yourself"
        )));
    }
    if others.len() + 1 > app.config.max_group_size {
        return Err(too_large(app.config.max_group_size));
    }
    let name = group_name(req.name)?;
    if name.is_some() && others.len() == 1 {
        // Dropping it silently would leave the caller believing the chat has a name.
        return Err(Error::BadRequest(
            "data.name is for groups: a direct chat (one other user) has no name; leave it out"
                .into(),
        ));
    }
    let me = user.clone();
    app.store
        .write_rows(others.len(), move |tx| {
            let existing = match others.as_slice() {
                [other] => chats::find_direct(tx, &me, other)?,
                _ => None,
            };
            let chat_id = match existing {
                Some(id) => id,
                None => {
                    let mut members = vec![(me.clone(), Role::Member)];
                    members.extend(others.iter().map(|u| (u.clone(), Role::Member)));
                    let direct = others.len() == 1;
                    let id = chats::create(
                        tx,
                        &NewChat {
                            kind: if direct {
                                ChatKind::Direct
                            } else {
                                ChatKind::Group
                            },
                            name: name.as_deref(),
                            order_id: None,
                            admin: (!direct).then_some(&me),
                            members: &members,
                        },
                    )?;
                    push_chat(tx, id)?;
                    id
                }
            };
            Ok(Out::ok(with_profiles(tx, chats::get(tx, chat_id, &me)?)?))
        })
        .await
}
