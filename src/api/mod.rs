//! Client request handlers, one module per protocol area, and the dispatch on the request type.
//! Every handler has the same shape: validate, one store call, publish, reply.

pub mod caller;
pub mod chats;
pub mod decode;
pub mod files;
pub mod host;
pub mod live;
pub mod manage;
pub mod messages;
pub mod metrics;
pub mod stream;

use std::sync::Arc;

use http::StatusCode;
use serde_json::Value;

use crate::app::App;
use crate::error::{Error, Result};
use crate::model::UserId;

/// A handler's answer: the status and, unless it is 204, the response's `data`.
#[derive(Debug)]
pub struct Out {
    pub status: StatusCode,
    pub data: Option<Value>,
}

impl Out {
    /// 200 with data.
    pub fn ok(data: Value) -> Out {
        Out {
            status: StatusCode::OK,
            data: Some(data),
        }
    }

    /// 202 with data: relayed, not stored.
    pub fn accepted(data: Value) -> Out {
        Out {
            status: StatusCode::ACCEPTED,
            data: Some(data),
        }
    }

    /// 204.
    pub fn no_content() -> Out {
        Out {
            status: StatusCode::NO_CONTENT,
            data: None,
        }
    }
}

/// The request types `POST /v1/{type}` accepts.
pub const CLIENT_TYPES: &[&str] = &[
    "message",
    "messageStatus",
    "opponentStatus",
    "typing",
    "join",
    "createChat",
    "chats",
    "chat",
    "members",
    "history",
    "renameChat",
    "addMembers",
    "removeMember",
    "deleteChat",
    "clearChat",
    "editMessage",
    "deleteMessage",
    "call",
];

/// Whether `kind` is a client request type.
pub fn is_client_type(kind: &str) -> bool {
    CLIENT_TYPES.contains(&kind)
}

/// Runs client request `kind` for `user`.
pub async fn client(app: &Arc<App>, user: &UserId, kind: &str, data: Value) -> Result<Out> {
    use decode::data as decode;
    match kind {
        "message" => messages::send(app, user, decode(data)?).await,
        "messageStatus" => messages::status(app, user, decode(data)?).await,
        "history" => messages::history(app, user, decode(data)?).await,
        "opponentStatus" => live::opponent_status(app, user, decode(data)?).await,
        "typing" => live::typing(app, user, decode(data)?).await,
        "join" => live::join(app, user, decode(data)?).await,
        "createChat" => chats::create(app, user, decode(data)?).await,
        "chats" => chats::list(app, user, decode(data)?).await,
        "chat" => chats::get(app, user, decode(data)?).await,
        "members" => chats::members(app, user, decode(data)?).await,
        "renameChat" => manage::rename(app, user, decode(data)?).await,
        "addMembers" => manage::add_members(app, user, decode(data)?).await,
        "removeMember" => manage::remove_member(app, user, decode(data)?).await,
        "deleteChat" => manage::delete(app, user, decode(data)?).await,
        "clearChat" => manage::clear(app, user, decode(data)?).await,
        "editMessage" => messages::edit(app, user, decode(data)?).await,
        "deleteMessage" => messages::delete(app, user, decode(data)?).await,
        "call" => live::call(app, user, decode(data)?).await,
        other => Err(Error::TypeNotFound(format!(
            "unknown request type {other:?}; known types: {}",
            CLIENT_TYPES.join(", ")
        ))),
    }
}

/// Checks a bounded count parameter, naming the field by its whole path as the caller sent it
/// (`data.count` in a client envelope, `body.count` from the host) when it is out of range.
pub fn bounded(field: &str, value: Option<u64>, default: usize, max: usize) -> Result<usize> {
    match value {
        None => Ok(default),
        Some(n) if (1..=max as u64).contains(&n) => Ok(n as usize),
        Some(n) => Err(Error::BadRequest(format!(
            "{field} must be 1 to {max}, not {n}"
        ))),
    }
}

/// A chat or message id from the wire as the store's integer.
pub fn id(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
