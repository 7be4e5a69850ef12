//! `opponentStatus`, `typing`, `call` and `join`: presence questions and live-only signals
//! between chat members. Nothing here is stored.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Out;
use crate::app::App;
use crate::error::{Error, Result};
use crate::hub::Frame;
use crate::model::{ChatId, EventKind, OrderId, UserId};
use crate::store::{chats, host_chats};

/// Longest typing preview, in characters.
const MAX_TYPING_PREVIEW: usize = 1000;

/// The other members of a chat the caller is in.
async fn others(app: &App, user: &UserId, chat_id: ChatId) -> Result<Vec<UserId>> {
    let user = user.clone();
    app.store
        .read(move |c| {
            chats::member_chat(c, chat_id, &user)?;
            Ok(crate::store::members::member_ids(c, chat_id)?
                .into_iter()
                .filter(|m| m != &user)
                .collect())
        })
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpponentRequest {
    chat_id: ChatId,
}

/// Online/offline and last seen of the other members of a chat.
pub async fn opponent_status(app: &Arc<App>, user: &UserId, req: OpponentRequest) -> Result<Out> {
    let chat_id = req.chat_id;
    let members = others(app, user, chat_id).await?;
    let users = app.presence.statuses(members).await?;
    Ok(Out::ok(json!({"chatId": chat_id, "users": users})))
}

#[derive(Deserialize, Serialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Typing {
    Typing,
    Stopped,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingRequest {
    chat_id: ChatId,
    status: Typing,
    #[serde(default)]
    message: String,
}

/// Relays a typing signal to the other members' open connections.
pub async fn typing(app: &Arc<App>, user: &UserId, req: TypingRequest) -> Result<Out> {
    if req.message.chars().count() > MAX_TYPING_PREVIEW {
        return Err(Error::BadRequest(format!(
            "data.message must be at most {MAX_TYPING_PREVIEW} characters"
        )));
    }
    let chat_id = req.chat_id;
    let members = others(app, user, chat_id).await?;
    let data =
        json!({"chatId": chat_id, "userId": user, "status": req.status, "message": req.message});
    let frame = Arc::new(Frame::live(EventKind::Typing, &data));
    app.hub.publish(members.iter().map(|m| (m, frame.clone())));
    Ok(Out::accepted(data))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    consultation_id: OrderId,
}

/// Joins a consultation: allowed to members of that consultation's order chat.
pub async fn join(app: &Arc<App>, user: &UserId, req: JoinRequest) -> Result<Out> {
    let (user, consultation) = (user.clone(), req.consultation_id);
    app.store
        .read(move |c| {
            host_chats::consultation_chat(c, consultation.as_str(), &user)?
                .ok_or(Error::ConsultationNotFound(consultation.to_string()))?;
            Ok(Out::no_content())
        })
        .await
}

#[derive(Deserialize, Serialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum CallAction {
    Offer,
    Answer,
    Candidate,
    Hangup,
    Reject,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRequest {
    chat_id: ChatId,
    call_id: String,
    action: CallAction,
    sdp: Option<serde_json::Value>,
    candidate: Option<serde_json::Value>,
}

/// Relays a call signal (WebRTC offer, answer, ICE candidate, hangup, reject) to the other
/// members' open connections. Never stored.
pub async fn call(app: &Arc<App>, user: &UserId, req: CallRequest) -> Result<Out> {
    if req.call_id.is_empty() || req.call_id.chars().count() > 64 {
        return Err(Error::BadRequest(
            "data.callId must be 1 to 64 characters".into(),
        ));
    }
    let chat_id = req.chat_id;
    let members = others(app, user, chat_id).await?;
    let data = json!({
        "chatId": chat_id,
        "callId": req.call_id,
        "userId": user,
        "action": req.action,
        "sdp": req.sdp,
        "candidate": req.candidate,
    });
    let frame = Arc::new(Frame::live(EventKind::Call, &data));
    app.hub.publish(members.iter().map(|m| (m, frame.clone())));
    Ok(Out::accepted(json!({"callId": req.call_id})))
}
