//! The wire between the nodes of a cluster: the NATS subjects, what travels on each, and an
//! edge's requests to the primary ([`Link`]). A request the primary does not answer in time (it
//! is down or restarting) is `503 unavailable` with a `Retry-After`, never a hang.

use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::hub::Published;
use crate::model::{ChatId, EventId, MessageId, UserId};
use crate::pieces;
use crate::store::events::{Page, Span};

/// Committed changes and live events, from the primary to every edge ([`Batch`]).
pub const EVENTS: &str = "chinwag.cluster.events";
/// An edge's questions to the primary ([`Ask`]), answered as [`Answer`].
pub const ASK: &str = "chinwag.cluster.ask";
/// Client requests an edge forwards to the primary as they came (see `cluster::forward`).
pub const HTTP: &str = "chinwag.cluster.http";
/// The streams and polls open on each edge ([`Presence`]), for cluster-wide presence.
pub const PRESENCE: &str = "chinwag.cluster.presence";
/// The queue group the primary answers in (one primary: a second one shares, never doubles).
pub const PRIMARY_GROUP: &str = "chinwag-primary";

/// Seconds an edge tells a client to wait when the primary does not answer.
pub const RETRY_AFTER: u64 = 2;

/// One publish of the primary's hub, as the edges receive it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Batch {
    /// Random per start of the primary: a new one means the numbering starts over.
    pub epoch: u64,
    /// 1, 2, 3… for each batch of one epoch: a gap means batches were lost.
    pub seq: u64,
    /// The newest committed event id after this batch.
    pub head: EventId,
    /// A beat: no changes, `seq` repeats the last batch's (sent every second).
    #[serde(default)]
    pub beat: bool,
    pub changes: Vec<Published>,
}

/// What an edge asks the primary.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "ask", rename_all = "camelCase")]
pub enum Ask {
    /// Checks a client token (as any request of the user would) and tells where the user's feed
    /// starts: [`Opening`].
    Open { token: String, snapshot: bool },
    /// A user's membership spans.
    Spans { user: UserId },
    /// The next page of a user's events after `after` (`None`: pruned meanwhile).
    Page { user: UserId, after: EventId },
    /// A pushed `chat` event's data, with the user's own fields.
    Personalize { user: UserId, data: String },
    /// Delivered marks: for each recipient and chat, the newest message that reached them.
    Delivered {
        marks: Vec<(UserId, ChatId, MessageId)>,
    },
}

/// Where a feed starts, as the primary saw it when the stream opened.
#[derive(Debug, Serialize, Deserialize)]
pub struct Opening {
    pub user: UserId,
    /// The newest committed event id, read before anything else.
    pub head: EventId,
    /// Events up to this id are pruned.
    pub pruned: EventId,
    pub spans: Vec<Span>,
    /// The `chats` snapshot a stream starts with, when asked for.
    pub snapshot: Option<Value>,
}

/// The primary's answer to an [`Ask`]: `{"ok": …}` or the error as HTTP would answer it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Answer {
    Ok(Value),
    Refused(Refused),
}

/// A request the primary refused (or could not be reached for): its status and error body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refused {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<u64>,
}

impl Refused {
    /// The refusal an error is, as HTTP would answer it.
    pub fn from_error(e: &Error) -> Refused {
        Refused {
            status: e.response_parts().0,
            body: e.body(),
            retry_after: e.retry_after(),
        }
    }

    /// The primary did not answer (down, restarting, or the bus is away).
    pub fn unreachable() -> Refused {
        Refused::from_error(&Error::Unavailable {
            retry_after: RETRY_AFTER,
        })
    }
}

impl From<Refused> for Error {
    /// Inside a feed, a refusal ends the stream: unavailable when the primary is away, otherwise
    /// an error for the log.
    fn from(r: Refused) -> Error {
        match r.status {
            503 => Error::Unavailable {
                retry_after: r.retry_after.unwrap_or(RETRY_AFTER),
            },
            _ => Error::Internal(anyhow::anyhow!(
                "the primary refused: {} {}",
                r.status,
                r.body
            )),
        }
    }
}

/// Which streams and polls an edge has open, for the primary's presence registry.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Presence {
    /// A stream (`poll: false`) or poll opened on `node`, numbered `id` there.
    Open {
        node: String,
        id: u64,
        user: UserId,
        poll: bool,
    },
    /// It closed (`clean`: on purpose, not a dropped connection).
    Close { node: String, id: u64, clean: bool },
    /// Every second: all that is open on `node`. A node unheard of for a few seconds is gone,
    /// and its connections with it.
    Beat {
        node: String,
        open: Vec<(u64, UserId, bool)>,
    },
}

/// How every node (and the bus) connects to NATS: in the background, retrying at once and then
/// every `reconnect` while the server is away, logging what happens to the connection.
pub fn nats_options(
    name: &str,
    timeout: Duration,
    reconnect: Duration,
    token: Option<&str>,
) -> async_nats::ConnectOptions {
    let options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(timeout)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(move |attempts| {
            if attempts <= 1 {
                Duration::ZERO
            } else {
                reconnect
            }
        })
        .event_callback(|event| async move { log_event(event) });
    match token {
        Some(token) => options.token(token.to_string()),
        None => options,
    }
}

/// Logs what happens to a NATS connection: losing it and getting it back at warn and info, and
/// the server's refusals (a wrong token) at error.
fn log_event(event: async_nats::Event) {
    use async_nats::Event;
    match event {
        Event::Connected => tracing::info!("connected to NATS"),
        Event::Disconnected => tracing::warn!("lost the NATS server; reconnecting"),
        Event::ServerError(e) => tracing::error!("the NATS server refused: {e}"),
        Event::ClientError(e) => tracing::debug!("NATS: {e}"),
        other => tracing::info!("NATS: {other}"),
    }
}

/// An edge's connection to the primary, through the NATS server.
#[derive(Clone)]
pub struct Link {
    pub client: async_nats::Client,
    /// How long a request waits for the primary's answer.
    pub timeout: Duration,
}

impl Link {
    /// Asks the primary; its answer (in pieces when large) decoded as `T`.
    pub async fn ask<T: DeserializeOwned>(&self, ask: &Ask) -> std::result::Result<T, Refused> {
        let payload = Bytes::from(serde_json::to_vec(ask).map_err(|_| Refused::unreachable())?);
        let client = &self.client;
        let inbox = client.new_inbox();
        let mut replies =
            (client.subscribe(inbox.clone()).await).map_err(|_| Refused::unreachable())?;
        (client.publish_with_reply(ASK, inbox, payload).await)
            .map_err(|_| Refused::unreachable())?;
        let first = pieces::next_reply(&mut replies, self.timeout)
            .await
            .ok_or_else(Refused::unreachable)?;
        let internal = |e: String| Refused::from_error(&Error::Internal(anyhow::anyhow!(e)));
        let (_, answer) = pieces::whole(first, replies, self.timeout)
            .await
            .map_err(internal)?;
        match serde_json::from_slice::<Answer>(&answer) {
            Ok(Answer::Ok(v)) => serde_json::from_value(v).map_err(|e| {
                tracing::warn!("an answer of the primary did not decode: {e}");
                internal(format!("bad answer: {e}"))
            }),
            Ok(Answer::Refused(r)) => Err(r),
            Err(e) => Err(internal(format!(
                "an answer of the primary is not an answer: {e}"
            ))),
        }
    }

    /// The next page of `user`'s events after `after`.
    pub async fn page(&self, user: &UserId, after: EventId) -> Result<Option<Page>> {
        let user = user.clone();
        Ok(self.ask(&Ask::Page { user, after }).await?)
    }

    /// `user`'s membership spans.
    pub async fn spans(&self, user: &UserId) -> Result<Vec<Span>> {
        let user = user.clone();
        Ok(self.ask(&Ask::Spans { user }).await?)
    }

    /// A `chat` event's data for `user`.
    pub async fn personalize(&self, user: &UserId, data: &str) -> Result<String> {
        let (user, data) = (user.clone(), data.to_string());
        Ok(self.ask(&Ask::Personalize { user, data }).await?)
    }
}

/// The answer frame to an [`Ask`].
pub fn answer(result: Result<Value>) -> Bytes {
    let answer = match result {
        Ok(v) => Answer::Ok(v),
        Err(e) => Answer::Refused(Refused::from_error(&e)),
    };
    Bytes::from(serde_json::to_vec(&answer).unwrap_or_else(|_| json!(null).to_string().into()))
}
