//! The receiving side: `GET /v1/events` (SSE) and `GET /v1/poll` (long-poll), two encoders over
//! one subscription. Subscribe first, replay stored events after the cursor, then go live and skip
//! anything already sent: no gap, no duplicate.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use crate::error::{Error, Result};
use crate::http::{sse, Body};
use crate::hub::{Frame, Subscription};
use crate::model::UserId;
use crate::presence::{Connection, Kind};
use crate::server::App;
use crate::store::events;

/// Stored events read per query while replaying.
const PAGE: usize = 500;
/// Most events one poll answer carries; the client polls again with `next` for the rest.
const POLL_MAX: usize = 500;
/// Reconnect delay sent to SSE clients.
const RETRY_MS: u64 = 3000;
/// Default and largest long-poll hold.
const POLL_DEFAULT: u64 = 25;
const POLL_MAX_TIMEOUT: u64 = 60;

/// Where a subscriber starts.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// No cursor: live from the newest event now.
    Now(i64),
    /// Replay everything after this id.
    After(i64),
    /// The cursor cannot be resumed (pruned, or from another database): refetch, then live.
    Reset(i64),
}

fn parse_cursor(name: &str, s: &str) -> Result<i64> {
    s.trim().parse::<u64>().map(super::id).map_err(|_| {
        Error::BadRequest(format!(
            "{name} must be an event id (a whole number), not {s:?}"
        ))
    })
}

async fn start(app: &App, cursor: Option<i64>) -> Result<Start> {
    let head = app.hub.head();
    let Some(c) = cursor else {
        return Ok(Start::Now(head));
    };
    let pruned = app.store.read(events::pruned_through).await?;
    Ok(if c < pruned || c > head {
        Start::Reset(head)
    } else {
        Start::After(c)
    })
}

/// The `reset` event: its id moves the client's cursor to the present.
fn reset_frame(head: i64) -> Frame {
    let data = json!({"reason": "the cursor is older than the retention window or unknown; refetch chats"});
    Frame {
        id: Some(head),
        ..Frame::live("reset", &data)
    }
}

/// The next page of `user`'s events after `after`; `None` when the cursor fell out of retention.
async fn read_after(
    app: &App,
    user: &UserId,
    after: i64,
    limit: usize,
) -> Result<Option<Vec<Frame>>> {
    let user = user.clone();
    app.store
        .read(move |c| events::resume_page(c, &user, after, limit))
        .await
}

/// One open stream or poll: the user's presence connection, counted in the metrics while it
/// lives, logged when it opens and when it closes (how long, how many events).
struct Opened {
    conn: Connection,
    user: UserId,
    kind: Kind,
    started: std::time::Instant,
    sent: usize,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl Opened {
    fn new(app: &App, user: &UserId, kind: Kind, cursor: Option<i64>) -> Opened {
        let gauge = app.metrics.open(kind.transport());
        gauge.inc();
        if kind == Kind::Stream {
            tracing::info!(user = %user, transport = kind.transport(), cursor, "stream opened");
        }
        Opened {
            conn: app.presence.connect(user, kind),
            user: user.clone(),
            kind,
            started: std::time::Instant::now(),
            sent: 0,
            gauge,
        }
    }

    fn count(&mut self, sent: bool) {
        self.sent += usize::from(sent);
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        self.gauge.dec();
        let ms = self.started.elapsed().as_millis() as u64;
        let (user, transport, events) = (&self.user, self.kind.transport(), self.sent);
        match self.kind {
            Kind::Stream => tracing::info!(user = %user, transport, ms, events, "stream closed"),
            Kind::Poll => tracing::debug!(user = %user, transport, ms, events, "poll answered"),
        }
    }
}

/// Opens an SSE stream for `user`.
pub async fn sse(
    app: &Arc<App>,
    user: UserId,
    query: HashMap<String, String>,
    last_event_id: Option<String>,
) -> Result<Response<Body>> {
    let cursor = match (last_event_id.as_deref(), query.get("since")) {
        (Some(s), _) if !s.trim().is_empty() => Some(parse_cursor("Last-Event-ID", s)?),
        (_, Some(s)) if !s.trim().is_empty() => Some(parse_cursor("since", s)?),
        _ => None,
    };
    // Taken before any await, so a shutdown that starts meanwhile is still seen.
    let stop = app.stopping();
    let want_snapshot = !matches!(
        query.get("snapshot").map(String::as_str),
        Some("0" | "false")
    );
    // Subscribe before anything is read from the store, so nothing committed meanwhile is missed.
    let sub = app.hub.subscribe(&user);
    let from = start(app, cursor).await?;
    let snapshot = if want_snapshot {
        let data = super::chats::snapshot(app, &user, 50, None).await?;
        Some(Frame::live("chats", &data))
    } else {
        None
    };
    let opened = Opened::new(app, &user, Kind::Stream, cursor);
    let body = StreamBody::new(events(app.clone(), user, sub, from, snapshot, opened, stop));
    let mut res = Response::new(BodyExt::boxed(body));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

/// Resolves once the server is shutting down (at once if it already is).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// What woke a live stream.
enum Wake {
    Event(std::result::Result<Arc<Frame>, broadcast::error::RecvError>),
    Ping,
    Stop,
}

/// The body of one stream: the first chunk, the replay, then live events and pings until the
/// server stops (a clean end) or the client goes (hyper drops the body, and with it `opened`).
/// It is a generator polled by the connection itself: no task or channel per stream.
fn events(
    app: Arc<App>,
    user: UserId,
    mut sub: Subscription,
    from: Start,
    snapshot: Option<Frame>,
    mut opened: Opened,
    mut stop: watch::Receiver<bool>,
) -> impl tokio_stream::Stream<Item = std::result::Result<hyper::body::Frame<Bytes>, Infallible>> {
    async_stream::stream! {
        let mut first = BytesMut::new();
        first.extend_from_slice(&sse::retry(RETRY_MS));
        // A reset comes before the snapshot: the client drops its state, then takes the fresh one.
        let mut last = match from {
            Start::Now(head) | Start::After(head) => head,
            Start::Reset(head) => {
                sse::encode(&mut first, &reset_frame(head));
                head
            }
        };
        if let Some(s) = &snapshot {
            sse::encode(&mut first, s);
        }
        drop(snapshot);
        yield Ok(hyper::body::Frame::data(first.freeze()));
        let mut catch_up = matches!(from, Start::After(_));
        let mut ping = app.pings();
        loop {
            // Replay from the store: after the cursor at first, and whenever the channel lagged.
            while catch_up {
                let page = match read_after(&app, &user, last, PAGE).await {
                    Ok(Some(page)) => page,
                    Ok(None) => {
                        // Pruned while we were away: start over from the present.
                        let head = app.hub.head();
                        let mut out = BytesMut::new();
                        sse::encode(&mut out, &reset_frame(head));
                        last = head;
                        catch_up = false;
                        yield Ok(hyper::body::Frame::data(out.freeze()));
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!("replay for {user} failed: {e:?}");
                        opened.conn.close_cleanly();
                        return;
                    }
                };
                catch_up = page.len() == PAGE;
                app.metrics.events_replayed.inc_by(page.len() as u64);
                let mut out = BytesMut::new();
                for f in &page {
                    opened.count(push(&mut out, f, &mut last));
                }
                if !out.is_empty() {
                    yield Ok(hyper::body::Frame::data(out.freeze()));
                    app.deliveries.note(&user, &page);
                }
            }
            let wake = tokio::select! {
                received = sub.rx.recv() => Wake::Event(received),
                r = ping.changed() => if r.is_ok() { Wake::Ping } else { Wake::Stop },
                _ = stopped(&mut stop) => Wake::Stop,
            };
            match wake {
                Wake::Event(received) => {
                    let mut out = BytesMut::new();
                    let mut sent = Vec::new();
                    match received {
                        Ok(f) => sent.push(f),
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            app.metrics.lag_rereads.inc();
                            catch_up = true
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            opened.conn.close_cleanly();
                            return;
                        }
                    }
                    // Send whatever else is already waiting in the same chunk.
                    while sent.len() < 256 && !catch_up {
                        match sub.rx.try_recv() {
                            Ok(f) => sent.push(f),
                            Err(broadcast::error::TryRecvError::Lagged(_)) => {
                                app.metrics.lag_rereads.inc();
                                catch_up = true
                            }
                            Err(_) => break,
                        }
                    }
                    for f in &sent {
                        opened.count(push(&mut out, f, &mut last));
                    }
                    if !out.is_empty() {
                        yield Ok(hyper::body::Frame::data(out.freeze()));
                        app.deliveries.note(&user, sent.iter().map(|f| &**f));
                    }
                }
                Wake::Ping => yield Ok(hyper::body::Frame::data(sse::ping())),
                Wake::Stop => {
                    opened.conn.close_cleanly();
                    return;
                }
            }
        }
    }
}

/// Encodes a frame unless it is a stored event already sent; says whether it did.
fn push(out: &mut BytesMut, f: &Frame, last: &mut i64) -> bool {
    if let Some(id) = f.id {
        if id <= *last {
            return false;
        }
        *last = id;
    }
    sse::encode(out, f);
    true
}

fn poll_event(f: &Frame) -> Value {
    let data: Value = serde_json::from_str(&f.data).unwrap_or(Value::Null);
    match f.id {
        Some(id) => json!({"id": id, "type": &*f.kind, "data": data}),
        None => json!({"type": &*f.kind, "data": data}),
    }
}

/// Answers a long-poll: at once when events newer than `since` are stored, otherwise when the
/// next event arrives or the timeout ends.
pub async fn poll(app: &Arc<App>, user: UserId, query: HashMap<String, String>) -> Result<Value> {
    let mut stop = app.stopping();
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
    let mut sub = app.hub.subscribe(&user);
    let mut opened = Opened::new(app, &user, Kind::Poll, cursor);
    let mut next = match start(app, cursor).await? {
        Start::Reset(head) => {
            return Ok(json!({"events": [poll_event(&reset_frame(head))], "next": head}));
        }
        Start::Now(head) => head,
        Start::After(c) => c,
    };
    let mut out: Vec<Value> = Vec::new();
    let Some(stored) = read_after(app, &user, next, POLL_MAX).await? else {
        let head = app.hub.head();
        return Ok(json!({"events": [poll_event(&reset_frame(head))], "next": head}));
    };
    app.metrics.events_replayed.inc_by(stored.len() as u64);
    for f in &stored {
        out.push(poll_event(f));
        next = f.id.unwrap_or(next);
    }
    opened.sent = out.len();
    if !out.is_empty() || timeout == 0 {
        app.deliveries.note(&user, &stored);
        return Ok(json!({"events": out, "next": next}));
    }
    let deadline = tokio::time::sleep(Duration::from_secs(timeout));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            received = sub.rx.recv() => {
                let mut frames = Vec::new();
                let mut lagged = false;
                match received {
                    Ok(f) => frames.push(f),
                    Err(broadcast::error::RecvError::Lagged(_)) => lagged = true,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
                while frames.len() < POLL_MAX && !lagged {
                    match sub.rx.try_recv() {
                        Ok(f) => frames.push(f),
                        Err(broadcast::error::TryRecvError::Lagged(_)) => lagged = true,
                        Err(_) => break,
                    }
                }
                if lagged {
                    app.metrics.lag_rereads.inc();
                    // Live frames collected before the lag are kept; stored ones come from the store.
                    let live: Vec<_> = frames.into_iter().filter(|f| f.id.is_none()).collect();
                    let stored = read_after(app, &user, next, POLL_MAX).await?.unwrap_or_default();
                    frames = stored.into_iter().map(Arc::new).chain(live).collect();
                }
                frames.retain(|f| f.id.is_none_or(|id| id > next));
                for f in &frames {
                    next = f.id.unwrap_or(next).max(next);
                    out.push(poll_event(f));
                }
                app.deliveries.note(&user, frames.iter().map(|f| &**f));
                if !out.is_empty() {
                    break;
                }
            }
            _ = &mut deadline => break,
            _ = stopped(&mut stop) => break,
        }
    }
    opened.sent = out.len();
    Ok(json!({"events": out, "next": next}))
}
