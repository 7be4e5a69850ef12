//! Client request handlers, one module per protocol area, and the one table of client request
//! types they are dispatched from. Every handler has the same shape: validate, one store call,
//! publish, reply.

pub mod caller;
pub mod chats;
pub mod decode;
pub mod dev;
pub mod files;
pub mod host;
pub mod live;
pub mod manage;
pub mod messages;
pub mod metrics;
pub mod posting;
pub mod stream;
pub mod telegram;

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

/// Declares the client requests from one table: the [`ClientRequest`] enum, the list of type
/// names [`CLIENT_TYPES`], decoding a type's `data` into its variant and running it.
macro_rules! client_requests {
    ($($name:literal => $variant:ident($request:ty) => $handler:path,)*) => {
        /// A client request, decoded once at the edge from its type and `data`.
        pub enum ClientRequest {
            $($variant($request),)*
        }

        /// The request types `POST /v1/{type}` accepts, in the table's order.
        pub const CLIENT_TYPES: &[&str] = &[$($name,)*];

        impl ClientRequest {
            /// Decodes `data` as the request of type `kind`; an unknown type is 404, a
            /// malformed `data` 400 naming the field.
            pub fn decode(kind: &str, data: Value) -> Result<ClientRequest> {
                match kind {
                    $($name => Ok(ClientRequest::$variant(decode::data(data)?)),)*
                    other => Err(Error::TypeNotFound(format!(
                        "unknown request type {other:?}; known types: {}",
                        CLIENT_TYPES.join(", ")
                    ))),
                }
            }

            /// Runs the request for `user`.
            pub async fn run(self, app: &Arc<App>, user: &UserId) -> Result<Out> {
                match self {
                    $(ClientRequest::$variant(request) => $handler(app, user, request).await,)*
                }
            }
        }
    };
}

// The one table of client requests: type, variant and request, handler.
client_requests! {
    "message" => Message(messages::SendRequest) => messages::send,
    "messageStatus" => MessageStatus(messages::StatusRequest) => messages::status,
    "opponentStatus" => OpponentStatus(live::OpponentRequest) => live::opponent_status,
    "typing" => Typing(live::TypingRequest) => live::typing,
    "join" => Join(live::JoinRequest) => live::join,
    "createChat" => CreateChat(chats::CreateRequest) => chats::create,
    "chats" => Chats(chats::ListRequest) => chats::list,
    "chat" => Chat(chats::GetRequest) => chats::get,
    "members" => Members(chats::MembersRequest) => chats::members,
    "history" => History(messages::HistoryRequest) => messages::history,
    "renameChat" => RenameChat(manage::RenameRequest) => manage::rename,
    "addMembers" => AddMembers(manage::AddRequest) => manage::add_members,
    "removeMember" => RemoveMember(manage::RemoveRequest) => manage::remove_member,
    "deleteChat" => DeleteChat(manage::DeleteRequest) => manage::delete,
    "clearChat" => ClearChat(manage::ClearRequest) => manage::clear,
    "editMessage" => EditMessage(messages::EditRequest) => messages::edit,
    "deleteMessage" => DeleteMessage(messages::DeleteRequest) => messages::delete,
    "call" => Call(live::CallRequest) => live::call,
}

/// Whether `kind` is a client request type.
pub fn is_client_type(kind: &str) -> bool {
    CLIENT_TYPES.contains(&kind)
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
