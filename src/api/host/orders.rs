//! Host routes about chats: reading a user's chats and messages, order chats (consultations),
//! membership with roles, handing a membership over, posting as a member or as the system, and
//! closing a chat.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use super::decode;
use crate::api::bounded;
use crate::api::chats::{push_chat, push_members, snapshot, with_profiles};
use crate::api::posting::{post, validate, Onward, OutgoingMessage, Poster};
use crate::app::App;
use crate::error::{Error, Result};
use crate::model::{ChatId, ChatKind, EventKind, Member, MessageId, OrderId, Params, Role, UserId};
use crate::store::chats::{self, NewChat};
use crate::store::messages::Page;
use crate::store::{host_chats, users, Tx};

#[derive(Deserialize)]
pub struct UserChatsRequest {
    user_id: UserId,
    count: Option<u64>,
}

/// `GET /chats/chats`: the user's chats, as the client's `chats` shows them.
pub async fn user_chats(app: &Arc<App>, req: UserChatsRequest) -> Result<Value> {
    let count = bounded("body.count", req.count, 50, 200)?;
    snapshot(app, &req.user_id, count, None).await
}

#[derive(Deserialize)]
pub struct UserChatRequest {
    chat_id: ChatId,
    user_id: UserId,
}

/// `GET /chats/chat`: one chat as that user (a member) sees it.
pub async fn user_chat(app: &Arc<App>, req: UserChatRequest) -> Result<Value> {
    app.store
        .read(move |c| with_profiles(c, chats::get(c, req.chat_id, &req.user_id)?))
        .await
}

/// One value or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(x) => vec![x],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
pub struct InfoRequest {
    user_id: UserId,
    chats_id: OneOrMany<ChatId>,
}

/// `GET /chats/info`: those of the chats that the user is a member of, as they see them.
pub async fn info(app: &Arc<App>, req: InfoRequest) -> Result<Value> {
    let ids = req.chats_id.into_vec();
    if ids.len() > 200 {
        return Err(Error::BadRequest(
            "body.chats_id may name at most 200 chats".into(),
        ));
    }
    app.store
        .read(move |c| {
            let mut list = Vec::new();
            for chat_id in ids {
                match chats::get(c, chat_id, &req.user_id) {
                    Ok(chat) => list.push(chat),
                    Err(Error::ChatNotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            let members = list
                .iter()
                .flat_map(|c| c.users.iter().map(|m| m.id.as_str()));
            let profiles = users::profiles(c, members)?;
            Ok(json!({"chats": list, "users": profiles}))
        })
        .await
}

#[derive(Deserialize)]
pub struct OrderPair {
    order_id: OrderId,
    opponent_id: UserId,
}

/// `GET /order/chats`: for each `{order_id, opponent_id}`, the newest chat of that order with that
/// opponent as a member, as the opponent sees it (or null).
pub async fn order_chats(app: &Arc<App>, body: Value) -> Result<Value> {
    let pairs: Vec<OrderPair> = match body {
        Value::Array(_) => decode(body)?,
        one => vec![decode(one)?],
    };
    if pairs.len() > 200 {
        return Err(Error::BadRequest(
            "the body may hold at most 200 pairs".into(),
        ));
    }
    app.store
        .read(move |c| {
            let mut out = Vec::with_capacity(pairs.len());
            for p in pairs {
                let chat =
                    match host_chats::consultation_chat(c, p.order_id.as_str(), &p.opponent_id)? {
                        Some(chat_id) => Some(chats::get(c, chat_id, &p.opponent_id)?),
                        None => None,
                    };
                out.push(
                    json!({"order_id": p.order_id, "opponent_id": p.opponent_id, "chat": chat}),
                );
            }
            Ok(json!({"chats": out}))
        })
        .await
}

/// Which way `messages` reads from `message_id`.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    /// Newer messages (`/chats/chat/recent`).
    After,
    /// Older messages (`/chats/chat/history`).
    Before,
}

#[derive(Deserialize)]
pub struct MessagesRequest {
    user_id: UserId,
    chat_id: ChatId,
    message_id: Option<MessageId>,
    count: Option<u64>,
}

/// Messages of a chat as that user (a member) sees them, after or before `message_id`.
pub async fn messages(app: &Arc<App>, req: MessagesRequest, way: Direction) -> Result<Value> {
    let limit = bounded("body.count", req.count, 50, 200)?;
    let from = req.message_id;
    let page = match way {
        Direction::After => Page {
            after: Some(from.unwrap_or(MessageId::ZERO)),
            before: None,
            limit,
        },
        Direction::Before => Page {
            after: None,
            before: from,
            limit,
        },
    };
    crate::api::messages::history_page(app, req.user_id, req.chat_id, page).await
}

#[derive(Deserialize)]
pub struct NewChatRequest {
    order_id: OrderId,
}

/// `POST /chats/new`: the open order chat of `order_id`, made now if there is none (the first
/// one was closed, or none existed).
pub async fn new_chat(app: &Arc<App>, req: NewChatRequest) -> Result<Value> {
    app.store
        .write(move |tx| {
            let order = req.order_id.as_str();
            let chat_id = match host_chats::open_order_chat(tx, order)? {
                Some(id) => id,
                None => chats::create(
                    tx,
                    &NewChat {
                        kind: ChatKind::Order,
                        name: None,
                        order_id: Some(order),
                        admin: None,
                        members: &[],
                    },
                )?,
            };
            Ok(json!({"chat": chats::host_view(tx, chat_id)?}))
        })
        .await
}

#[derive(Deserialize)]
pub struct SubscribeRequest {
    user_id: UserId,
    user_type: String,
    chat_id: ChatId,
}

/// `POST /chats/user/subscribe`: adds the user with that role (or changes the role of a member).
/// A new member sees the history, counted as read. Every member gets the new `chat`.
pub async fn subscribe(app: &Arc<App>, req: SubscribeRequest) -> Result<Value> {
    // The role becomes the `sender` of the member's messages.
    let role = Role::parse(&req.user_type, "body.user_type").map_err(Error::BadRequest)?;
    let chat_id = req.chat_id;
    app.store
        .write(move |tx| {
            let kind = chats::host_view(tx, chat_id)?.kind;
            let members = crate::store::members::member_ids(tx, chat_id)?;
            if kind == ChatKind::Direct && !members.contains(&req.user_id) {
                return Err(Error::Forbidden(format!(
                    "chat {chat_id} is a direct chat of two users; it takes no other member"
                )));
            }
            let added = if members.contains(&req.user_id) {
                host_chats::set_role(tx, chat_id, &req.user_id, &role)?;
                Vec::new()
            } else {
                let seen = chats::last_message_id(tx, chat_id)?;
                chats::add_members(tx, chat_id, &[(req.user_id.clone(), role)], seen)?
            };
            changed(tx, chat_id, &added, None)
        })
        .await
}

/// Pushes the membership change and `chat` to the members, `chatDeleted` to `gone`; answers
/// the host's view.
fn changed(tx: &mut Tx, chat_id: ChatId, added: &[Member], gone: Option<&UserId>) -> Result<Value> {
    let removed: Vec<UserId> = gone.into_iter().cloned().collect();
    push_members(tx, chat_id, added, &removed)?;
    if let Some(gone) = gone {
        tx.emit([gone], EventKind::ChatDeleted, &json!({"chatId": chat_id}))?;
    }
    with_profiles(tx, chats::host_view(tx, chat_id)?)
}

fn require_member(members: &[UserId], user: &UserId, field: &str, chat_id: ChatId) -> Result<()> {
    if members.contains(user) {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "body.{field}: {user} is not a member of chat {chat_id}"
        )))
    }
}

#[derive(Deserialize)]
pub struct HandOverRequest {
    chat_id: ChatId,
    old_user_id: UserId,
    new_user_id: UserId,
}

/// `PUT /chats/user/subscribe`: gives `old_user_id`'s place (and role) to `new_user_id`, who sees
/// the whole history. The old member gets `chatDeleted`, everyone else the new `chat`.
pub async fn hand_over(app: &Arc<App>, req: HandOverRequest) -> Result<Value> {
    let chat_id = req.chat_id;
    app.store
        .write(move |tx| {
            chats::require(tx, chat_id)?;
            let members = crate::store::members::member_ids(tx, chat_id)?;
            require_member(&members, &req.old_user_id, "old_user_id", chat_id)?;
            if members.contains(&req.new_user_id) {
                return Err(Error::BadRequest(format!(
                    "body.new_user_id: {} is already a member of chat {chat_id}",
                    req.new_user_id
                )));
            }
            let seen = chats::last_message_id(tx, chat_id)?;
            host_chats::hand_over(tx, chat_id, &req.old_user_id, &req.new_user_id, seen)?;
            let role = chats::member_chat(tx, chat_id, &req.new_user_id)?.role;
            let added = [Member {
                id: req.new_user_id.clone(),
                role,
            }];
            changed(tx, chat_id, &added, Some(&req.old_user_id))
        })
        .await
}

#[derive(Deserialize)]
pub struct UnsubscribeRequest {
    user_id: UserId,
    chat_id: ChatId,
}

/// `POST /chats/user/unsubscribe`: removes the member; they get `chatDeleted`, the rest `chat`.
pub async fn unsubscribe(app: &Arc<App>, req: UnsubscribeRequest) -> Result<Value> {
    let chat_id = req.chat_id;
    app.store
        .write(move |tx| {
            chats::require(tx, chat_id)?;
            let members = crate::store::members::member_ids(tx, chat_id)?;
            require_member(&members, &req.user_id, "user_id", chat_id)?;
            chats::remove_member(tx, chat_id, &req.user_id)?;
            changed(tx, chat_id, &[], Some(&req.user_id))
        })
        .await
}

#[derive(Deserialize)]
pub struct PostRequest {
    chat_id: ChatId,
    user_id: Option<UserId>,
    message: String,
    client_message_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    params: Params,
    file_id: Option<String>,
}

/// A client message id for a host message that came without one.
pub fn fresh_client_id() -> Result<String> {
    Ok(format!("host-{}", crate::random::random_hex(12)?))
}

/// `POST /chats/message`: posts as a member (with their role as `sender`), or without `user_id`
/// as the system. Idempotent on (author, `client_message_id`) like a client's send.
pub async fn post_message(app: &Arc<App>, req: PostRequest) -> Result<Value> {
    let rename = |name: &str| match name {
        "clientMessageId" => "body.client_message_id".to_string(),
        "text" => "body.message".to_string(),
        "fileId" => "body.file_id".to_string(),
        other => format!("body.{other}"),
    };
    let client_message_id = match req.client_message_id {
        Some(id) => id,
        None => fresh_client_id()?,
    };
    let draft = OutgoingMessage {
        client_message_id,
        chat_id: req.chat_id,
        kind: req.kind,
        text: req.message,
        params: req.params,
        file_id: req.file_id,
    };
    let new = validate(draft, app.config.max_message_bytes, &rename)?;
    let author = req.user_id;
    let onward = Onward::of(app);
    app.store
        .write(move |tx| {
            let msg = post(tx, &onward, &Poster::Host(author.as_ref()), &new)?;
            Ok(json!({"message": msg}))
        })
        .await
}

#[derive(Deserialize)]
pub struct CloseRequest {
    chat_id: ChatId,
}

/// `POST /chats/status`: closes the chat. Messages to it then get `409 chat_closed`; members get
/// the closed `chat`. Closing a closed chat changes nothing.
pub async fn close(app: &Arc<App>, req: CloseRequest) -> Result<Value> {
    let chat_id = req.chat_id;
    app.store
        .write(move |tx| {
            chats::require(tx, chat_id)?;
            if host_chats::close(tx, chat_id)? {
                push_chat(tx, chat_id)?;
                with_profiles(tx, chats::host_view(tx, chat_id)?)
            } else {
                with_profiles(tx, chats::host_view(tx, chat_id)?)
            }
        })
        .await
}
