//! Host routes about users: profiles, client tokens, custom pushes, consultation updates and the
//! user's read-only notifications chat.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::chats::push_chat;
use crate::api::posting::{post, Onward, Poster};
use crate::app::App;
use crate::error::{Error, Result};
use crate::model::{AsSent, ChatKind, EventKind, OrderId, Params, Profile, Role, UserId};
use crate::store::messages::NewMessage;
use crate::store::{host_chats, users};

/// Longest client token lifetime the host can ask for: one year.
const MAX_TTL: u64 = 365 * 24 * 3600;

#[derive(Deserialize)]
pub struct PushRequest {
    user_id: UserId,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Value,
}

/// `POST /ws/client/message`: a custom event of the host's type for the user's clients, stored
/// and resumable like any other.
pub async fn push(app: &Arc<App>, req: PushRequest) -> Result<()> {
    if !crate::model::is_name(&req.kind, 64, b"_.:-") {
        return Err(Error::BadRequest(
            "body.type must be 1 to 64 characters of A-Z a-z 0-9 _ . : -".into(),
        ));
    }
    let kind = EventKind::parse(&req.kind);
    if !matches!(kind, EventKind::Custom(_)) {
        return Err(Error::BadRequest(format!(
            "body.type {:?} is one of the protocol's own event types",
            req.kind
        )));
    }
    app.store
        .write(move |tx| {
            users::ensure(tx, &req.user_id)?;
            tx.emit([&req.user_id], kind, &req.data)
        })
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Consultation {
    active: bool,
    /// Checked as an order id, passed on as the host's JSON (a number stays a number).
    consultation_id: AsSent<OrderId>,
}

#[derive(Deserialize)]
pub struct ConsultationRequest {
    user_id: UserId,
    data: Consultation,
}

/// `POST /ws/client/consultation/update`: a stored `consultationUpdate` for the user's clients.
pub async fn consultation_update(app: &Arc<App>, req: ConsultationRequest) -> Result<()> {
    let data = json!({"active": req.data.active, "consultationId": req.data.consultation_id});
    app.store
        .write(move |tx| {
            users::ensure(tx, &req.user_id)?;
            tx.emit([&req.user_id], EventKind::ConsultationUpdate, &data)
        })
        .await
}

#[derive(Deserialize)]
pub struct UserRequest {
    user_id: UserId,
    first_name: Option<String>,
    last_name: Option<String>,
    middle_name: Option<String>,
    photo: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

/// `POST /users`: creates or updates a profile (fields left out keep their value); the user is
/// seen from now on (and gets their support chat, when there is a support user).
pub async fn upsert(app: &Arc<App>, req: UserRequest) -> Result<Value> {
    let profile = Profile {
        first_name: req.first_name,
        last_name: req.last_name,
        middle_name: req.middle_name,
        photo: req.photo,
        email: req.email,
        phone: req.phone,
    };
    let user = crate::api::caller::see_user(app, &req.user_id, Some(profile)).await?;
    Ok(json!({"user": user}))
}

#[derive(Deserialize)]
pub struct TokenRequest {
    user_id: UserId,
    ttl_seconds: Option<u64>,
}

/// `POST /tokens`: a client token for the user, `{token, expiresAt}`.
pub async fn token(app: &Arc<App>, req: TokenRequest) -> Result<Value> {
    let ttl = req.ttl_seconds.unwrap_or(86_400);
    if ttl == 0 || ttl > MAX_TTL {
        return Err(Error::BadRequest(format!(
            "body.ttl_seconds must be 1 to {MAX_TTL}"
        )));
    }
    let (token, expires) = app.keys.mint(&req.user_id, ttl);
    Ok(json!({"token": token, "expiresAt": crate::time::rfc3339(expires * 1000)}))
}

/// Longest notifications channel name, in characters.
const MAX_CHANNEL: usize = 64;

#[derive(Deserialize)]
pub struct NotifyRequest {
    user_id: UserId,
    /// Which of the user's notifications chats (`bot-bookings`, `online-bookings`); none: the
    /// user's one notifications chat.
    channel: Option<String>,
    text: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    params: Params,
}

/// `POST /notifications`: a system message in the user's `notifications` chat, or in the one of
/// its `channel` (each made the first time, a channel's named by it), which the user can read but not write.
pub async fn notify(app: &Arc<App>, req: NotifyRequest) -> Result<Value> {
    if req.text.is_empty() {
        return Err(Error::BadRequest("body.text must not be empty".into()));
    }
    let kind = req.kind.unwrap_or_else(|| "text".into());
    crate::model::check_message_type(&kind, "body.type").map_err(Error::BadRequest)?;
    if let Some(channel) = &req.channel {
        if !crate::model::is_name(channel, MAX_CHANNEL, b"_.-") {
            return Err(Error::BadRequest(format!(
                "body.channel must be 1 to {MAX_CHANNEL} characters of A-Z a-z 0-9 _ . -"
            )));
        }
    }
    let client_message_id = super::orders::fresh_client_id()?;
    let onward = Onward::of(app);
    app.store
        .write(move |tx| {
            let user = req.user_id;
            let (chat_id, created) = host_chats::personal_chat_named(
                tx,
                ChatKind::Notifications,
                &user,
                req.channel.as_deref(),
                &[(user.clone(), Role::Member)],
            )?;
            if created {
                push_chat(tx, chat_id)?;
            }
            let new = NewMessage {
                client_message_id,
                chat_id,
                kind,
                text: req.text,
                params: req.params,
                file_id: None,
            };
            let msg = post(tx, &onward, &Poster::Notice, &new)?;
            Ok(json!({"message": msg}))
        })
        .await
}
