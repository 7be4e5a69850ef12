//! The receiving side: `GET /v1/events` (SSE) and `GET /v1/poll` (long-poll), two thin encoders
//! over one [`Feed`]: no gap, no duplicate, the same events either way. They run from
//! [`Streams`], the handles a stream needs, the same on a single server and on an edge of a
//! cluster (where the feed reads the primary's store and presence is the primary's).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::feed::{Feed, Sources};
use crate::hub::Frame;
use crate::limits::{Limits, Slot};
use crate::link::Opening;
use crate::model::{EventId, EventKind, UserId};
use crate::presence::{Connection, Kind};
use crate::sse;
use crate::store::Store;

/// Reconnect delay sent to SSE clients.
const RETRY_MS: u64 = 3000;
/// Default and largest long-poll hold.
const POLL_DEFAULT: u64 = 25;
const POLL_MAX_TIMEOUT: u64 = 60;

fn parse_cursor(name: &str, s: &str) -> Result<EventId> {
    s.trim()
        .parse::<u64>()
        .map(EventId::from_wire)
        .map_err(|_| {
            Error::BadRequest(format!(
                "{name} must be an event id (a whole number), not {s:?}"
            ))
        })
}

/// Opens a presence connection for a user.
pub type Connect = Arc<dyn Fn(&UserId, Kind) -> Connection + Send + Sync>;

/// What a stream or poll runs from.
pub struct Streams {
    pub sources: Sources,
    /// Opens a presence connection for a user (this node's registry, or the primary's).
    pub connect: Connect,
    pub limits: Arc<Limits>,
    /// Becomes true when the server stops: streams end, polls answer.
    pub stop: watch::Receiver<bool>,
    /// Becomes true when draining begins: held polls answer.
    pub draining: watch::Receiver<bool>,
    /// Changes every ping interval.
    pub pings: watch::Receiver<()>,
}

impl Streams {
    /// A single server's (or a primary's): its database, hub and presence.
    pub fn here(app: &crate::app::App) -> Streams {
        let presence = app.presence.clone();
        Streams {
            sources: Sources {
                reader: crate::feed::Reader::Local(app.store.clone()),
                hub: app.hub.clone(),
                metrics: app.metrics.clone(),
                deliveries: app.deliveries.clone(),
            },
            connect: Arc::new(move |user, kind| presence.connect(user, kind)),
            limits: app.limits.clone(),
            stop: app.stopping(),
            draining: app.drain.watch(),
            pings: app.ping_tx.subscribe(),
        }
    }
}

/// Where a feed starts: this node's database, or where the primary said (an edge).
pub enum Start {
    Here(Store),
    Opened(Opening),
}

impl Start {
    /// Opens `user`'s feed after `cursor`, with the `chats` snapshot if asked for.
    async fn feed(
        self,
        s: &Streams,
        user: &UserId,
        cursor: Option<EventId>,
        snapshot: bool,
    ) -> Result<(Feed, Option<Value>)> {
        match self {
            Start::Here(store) => Feed::open(&s.sources, &store, user, cursor, snapshot).await,
            Start::Opened(opening) => Ok(Feed::resume(&s.sources, cursor, opening)),
        }
    }
}

/// What an SSE request asks for: where to resume, and whether to start with the snapshot.
#[derive(Debug, Clone, Copy)]
pub struct SseAsk {
    pub cursor: Option<EventId>,
    pub snapshot: bool,
}

impl SseAsk {
    /// From `Last-Event-ID` (or `?since=`) and `?snapshot=`.
    pub fn parse(query: &HashMap<String, String>, last_event_id: Option<&str>) -> Result<SseAsk> {
        let cursor = match (last_event_id, query.get("since")) {
            (Some(s), _) if !s.trim().is_empty() => Some(parse_cursor("Last-Event-ID", s)?),
            (_, Some(s)) if !s.trim().is_empty() => Some(parse_cursor("since", s)?),
            _ => None,
        };
        let snapshot = !matches!(
            query.get("snapshot").map(String::as_str),
            Some("0" | "false")
        );
        Ok(SseAsk { cursor, snapshot })
    }
}

/// What a long-poll asks for: where to resume, and how long to hold.
#[derive(Debug, Clone, Copy)]
pub struct PollAsk {
    pub cursor: Option<EventId>,
    pub timeout: u64,
}

impl PollAsk {
    /// From `?since=` and `?timeout=`.
    pub fn parse(query: &HashMap<String, String>) -> Result<PollAsk> {
        let timeout = match query.get("timeout") {
            None => POLL_DEFAULT,
            Some(t) => t
                .parse::<u64>()
                .ok()
                .filter(|t| *t <= POLL_MAX_TIMEOUT)
                .ok_or_else(|| {
                    Error::BadRequest(format!(
                        "timeout must be 0 to {POLL_MAX_TIMEOUT} seconds, not {t:?}"
                    ))
                })?,
        };
        let cursor = query
            .get("since")
            .filter(|s| !s.trim().is_empty())
            .map(|s| parse_cursor("since", s))
            .transpose()?;
        Ok(PollAsk { cursor, timeout })
    }
}

/// One open stream or poll: the user's presence connection and place under the cap of open
/// streams, counted in the metrics while it lives, logged when it opens and when it closes (how
/// long, how many events).
struct Opened {
    conn: Connection,
    slot: Slot,
    user: UserId,
    kind: Kind,
    started: std::time::Instant,
    sent: usize,
    _counted: crate::metrics::Held,
}

impl Opened {
    fn new(s: &Streams, user: &UserId, kind: Kind, cursor: Option<EventId>) -> Opened {
        let counted = crate::metrics::Held::new(&s.sources.metrics.open(kind.transport()));
        if kind == Kind::Stream {
            let cursor = cursor.map(EventId::get);
            tracing::info!(user = %user, transport = kind.transport(), cursor, "stream opened");
        }
        Opened {
            conn: (s.connect)(user, kind),
            slot: s.limits.open_stream(user),
            user: user.clone(),
            kind,
            started: std::time::Instant::now(),
            sent: 0,
            _counted: counted,
        }
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        let ms = self.started.elapsed().as_millis() as u64;
        let (user, transport, events) = (&self.user, self.kind.transport(), self.sent);
        match self.kind {
            Kind::Stream => tracing::info!(user = %user, transport, ms, events, "stream closed"),
            Kind::Poll => tracing::debug!(user = %user, transport, ms, events, "poll answered"),
        }
    }
}

/// Opens an SSE stream for `user`: its chunks, each ready to send as it is.
pub async fn sse(
    s: &Streams,
    user: UserId,
    ask: SseAsk,
    start: Start,
) -> Result<impl tokio_stream::Stream<Item = Bytes> + Send + Sync + 'static> {
    // Taken before any await, so a shutdown that starts meanwhile is still seen.
    let stop = s.stop.clone();
    // The feed listens before the snapshot is read, so nothing committed meanwhile is missed.
    let (feed, snapshot) = start.feed(s, &user, ask.cursor, ask.snapshot).await?;
    let snapshot = snapshot.map(|data| Frame::live(EventKind::Chats, &data));
    let opened = Opened::new(s, &user, Kind::Stream, ask.cursor);
    let mut pings = s.pings.clone();
    pings.mark_unchanged();
    Ok(events(
        pings,
        feed,
        snapshot,
        opened,
        stop,
        ask.cursor.is_none(),
    ))
}

/// The whole of `GET /v1/events` while the server drains: a stream that asks the client to
/// reconnect after `secs` seconds and ends at once.
pub fn restarting(secs: u64) -> Bytes {
    let mut first = sse::retry(secs * 1000).to_vec();
    first.extend_from_slice(&sse::comment("the server is restarting; reconnect"));
    Bytes::from(first)
}

/// Resolves once the server is shutting down (at once if it already is).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// What woke a live stream.
enum Wake {
    Events(Result<Vec<Arc<Frame>>>),
    Ping,
    Stop,
    /// A newer stream of the user took this one's place.
    Replaced,
}

/// The body of one stream: the first chunk (a reset if any, the snapshot), then the feed's events
/// and pings until the server stops (a clean end) or the client goes (hyper drops the body, and
/// with it `opened`). It is a generator polled by the connection itself: no task or channel per
/// stream.
fn events(
    mut ping: watch::Receiver<()>,
    mut feed: Feed,
    snapshot: Option<Frame>,
    mut opened: Opened,
    mut stop: watch::Receiver<bool>,
    from_now: bool,
) -> impl tokio_stream::Stream<Item = Bytes> + Send + Sync + 'static {
    async_stream::stream! {
        // A reset comes before the snapshot: the client drops its state, then takes the fresh one.
        let reset = feed.take_reset();
        // A stream opened without a cursor names where it starts, so that a reconnect before
        // its first stored event still resumes from there (EventSource keeps an `id:` that
        // comes without data too); a reset carries its own id.
        let start = (from_now && reset.is_none()).then(|| feed.cursor());
        let first: Vec<&Frame> = reset.iter().chain(snapshot.iter()).collect();
        let first = sse::chunk(&sse::opening(RETRY_MS, start), &first);
        drop((reset, snapshot));
        yield first;
        loop {
            let wake = tokio::select! {
                got = feed.next() => Wake::Events(got),
                r = ping.changed() => if r.is_ok() { Wake::Ping } else { Wake::Stop },
                _ = stopped(&mut stop) => Wake::Stop,
                _ = &mut opened.slot.closed => Wake::Replaced,
            };
            match wake {
                Wake::Events(Ok(frames)) => {
                    let refs: Vec<&Frame> = frames.iter().map(|f| &**f).collect();
                    let out = sse::chunk(b"", &refs);
                    opened.sent += frames.len();
                    drop(refs);
                    drop(frames);
                    yield out;
                }
                Wake::Events(Err(e)) => {
                    tracing::warn!("the feed of {} failed: {e:?}", opened.user);
                    opened.conn.close_cleanly();
                    return;
                }
                Wake::Ping => yield sse::ping(),
                Wake::Stop => {
                    opened.conn.close_cleanly();
                    return;
                }
                Wake::Replaced => {
                    let note = "closed: this user opened more streams than the server allows";
                    yield sse::comment(note);
                    opened.conn.close_cleanly();
                    return;
                }
            }
        }
    }
}

fn poll_event(f: &Frame) -> Value {
    let data: Value = serde_json::from_str(&f.data).unwrap_or(Value::Null);
    match f.id {
        Some(id) => json!({"id": id, "type": &*f.kind, "data": data}),
        None => json!({"type": &*f.kind, "data": data}),
    }
}

/// Answers a long-poll: at once when events newer than `since` are stored, otherwise when the
/// next event arrives, the timeout ends, a newer poll or stream of the user takes its place
/// under the cap, or the server starts draining.
pub async fn poll(s: &Streams, user: UserId, ask: PollAsk, start: Start) -> Result<Value> {
    let mut stop = s.draining.clone();
    let PollAsk { cursor, timeout } = ask;
    let mut opened = Opened::new(s, &user, Kind::Poll, cursor);
    let (mut feed, _) = start.feed(s, &user, cursor, false).await?;
    if let Some(reset) = feed.take_reset() {
        return Ok(json!({"events": [poll_event(&reset)], "next": feed.cursor()}));
    }
    let mut frames = feed.stored().await?;
    if frames.is_empty() && timeout > 0 {
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::select! {
            got = feed.next() => frames = got?,
            // What the feed had already judged goes out now: the answer's `next` covers it.
            _ = deadline => frames = feed.take_ready(),
            _ = stopped(&mut stop) => frames = feed.take_ready(),
            _ = &mut opened.slot.closed => frames = feed.take_ready(),
        }
    }
    opened.sent = frames.len();
    let events: Vec<Value> = frames.iter().map(|f| poll_event(f)).collect();
    Ok(json!({"events": events, "next": feed.cursor()}))
}
