//! One user's feed of events, the one piece under both transports (SSE and long-poll): it
//! subscribes, resolves the cursor, replays the store after it, goes live, drops repeats by id,
//! checks each chat event against the user's membership, renders per-user fields, re-reads the
//! store after a lag, and answers `reset` when the cursor is past retention. It holds at most
//! one small page of events in memory. What it reads comes from the database here, or on an
//! edge of a cluster from the primary ([`Reader`]).

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::deliveries::Deliveries;
use crate::error::{Error, Result};
use crate::hub::{Frame, Hub, Item, Subscription};
use crate::link::{Link, Opening};
use crate::metrics::Metrics;
use crate::model::{ChatId, EventId, EventKind, UserId};
use crate::store::events::{self, Page, Span};
use crate::store::{chats, Store};

/// Most events handed out at once (one poll answer, one SSE chunk).
pub const MAX_EVENTS: usize = 500;
/// About the most bytes of event data handed out at once, and read per replay page: a stalled
/// stream's connection holds one such chunk (with its SSE framing, under 48 KiB unless one event
/// is larger alone).
pub const MAX_BYTES: usize = 32 * 1024;

/// Where a feed reads the store: the database itself, or the primary's through the cluster.
#[derive(Clone)]
pub enum Reader {
    Local(Store),
    Remote(Link),
}

impl Reader {
    async fn spans(&self, user: &UserId) -> Result<Vec<Span>> {
        match self {
            Reader::Local(store) => {
                let user = user.clone();
                store.read(move |c| events::spans(c, &user)).await
            }
            Reader::Remote(link) => link.spans(user).await,
        }
    }

    async fn page(&self, user: &UserId, after: EventId) -> Result<Option<Page>> {
        match self {
            Reader::Local(store) => {
                let user = user.clone();
                store
                    .read(move |c| events::resume_page(c, &user, after, MAX_EVENTS, MAX_BYTES))
                    .await
            }
            Reader::Remote(link) => link.page(user, after).await,
        }
    }

    async fn personalize(&self, user: &UserId, data: &Arc<str>) -> Result<String> {
        match self {
            Reader::Local(store) => {
                let (user, data) = (user.clone(), data.clone());
                store
                    .read(move |c| chats::personalize(c, &user, &data))
                    .await
            }
            Reader::Remote(link) => link.personalize(user, data).await,
        }
    }
}

/// Where `user`'s feed starts: the newest committed id (read first), what is pruned, their
/// spans, and (if asked) the `chats` snapshot a stream starts with, read after the head so that
/// nothing committed in between is missed by both.
pub async fn opening(store: &Store, hub: &Hub, user: &UserId, snapshot: bool) -> Result<Opening> {
    let head = hub.head();
    let u = user.clone();
    let (pruned, spans, snapshot) = store
        .read(move |c| {
            let snapshot = match snapshot {
                true => Some(chats::snapshot(c, &u, 50, None)?),
                false => None,
            };
            Ok((events::pruned_through(c)?, events::spans(c, &u)?, snapshot))
        })
        .await?;
    Ok(Opening {
        user: user.clone(),
        head,
        pruned,
        spans,
        snapshot,
    })
}

/// What a feed reads and listens through.
#[derive(Clone)]
pub struct Sources {
    pub reader: Reader,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub deliveries: Arc<Deliveries>,
}

/// A user's events after a cursor, then live.
pub struct Feed {
    src: Sources,
    user: UserId,
    sub: Subscription,
    /// The newest stored event id handled: anything at or below it is a repeat.
    last: EventId,
    /// The user's membership spans, as of the last change the feed was told of.
    spans: Vec<Span>,
    /// The store holds events the channel may not have carried: read them before going live.
    catch_up: bool,
    /// Received and not yet judged (kept here so that a cancelled `next` loses nothing).
    pending: VecDeque<Item>,
    /// Judged and rendered, not yet handed out.
    ready: Vec<Arc<Frame>>,
    ready_bytes: usize,
    /// The cursor could not be resumed: the `reset` to send first.
    reset: Option<Frame>,
}

/// The `reset` event: its id moves the client's cursor to `head`.
pub fn reset_frame(head: EventId) -> Frame {
    let data = json!({"reason": "the cursor is older than the retention window or unknown; refetch chats"});
    Frame {
        id: Some(head),
        ..Frame::live(EventKind::Reset, &data)
    }
}

/// The chats a user's events come from now.
fn open_chats(spans: &[Span]) -> impl Iterator<Item = ChatId> + '_ {
    spans.iter().filter(|s| s.until.is_none()).map(|s| s.chat)
}

impl Feed {
    /// Starts `user`'s feed after `cursor` (`None`: from now), on this node's database; with the
    /// `chats` snapshot when asked for. A cursor older than retention, or newer than any id
    /// given out, starts from now with a `reset` first.
    pub async fn open(
        src: &Sources,
        store: &Store,
        user: &UserId,
        cursor: Option<EventId>,
        snapshot: bool,
    ) -> Result<(Feed, Option<serde_json::Value>)> {
        // Subscribe before anything is read, so nothing committed meanwhile is missed.
        let sub = src.hub.subscribe(user);
        let opening = opening(store, &src.hub, user, snapshot).await?;
        Ok(Feed::start(src, sub, cursor, opening))
    }

    /// Starts a feed from where the primary said it starts (on an edge). Subscribed after that
    /// was read: what was committed in between comes from the first replay, which is read now.
    pub fn resume(
        src: &Sources,
        cursor: Option<EventId>,
        opening: Opening,
    ) -> (Feed, Option<serde_json::Value>) {
        src.hub.advance(opening.head);
        let sub = src.hub.subscribe(&opening.user);
        Feed::start(src, sub, cursor, opening)
    }

    fn start(
        src: &Sources,
        sub: Subscription,
        cursor: Option<EventId>,
        opening: Opening,
    ) -> (Feed, Option<serde_json::Value>) {
        let Opening {
            user,
            head,
            pruned,
            spans,
            snapshot,
        } = opening;
        // From here on the user's chats' events reach the channel; the first replay, read after
        // this, holds whatever was committed before.
        let _ = src.hub.watch(&user, open_chats(&spans));
        let (last, reset) = match cursor {
            None => (head, None),
            Some(c) if c < pruned || c > head => (head, Some(reset_frame(head))),
            Some(c) => (c, None),
        };
        let feed = Feed {
            src: src.clone(),
            user,
            sub,
            last,
            spans,
            catch_up: true,
            pending: VecDeque::new(),
            ready: Vec::new(),
            ready_bytes: 0,
            reset,
        };
        (feed, snapshot)
    }

    /// The `reset` to send before anything else, if the cursor could not be resumed.
    pub fn take_reset(&mut self) -> Option<Frame> {
        self.reset.take()
    }

    /// The newest stored event id handed out or passed over: the cursor to resume from.
    pub fn cursor(&self) -> EventId {
        self.last
    }

    /// Whatever is judged and ready, without waiting (may be empty). After a cancelled `next`,
    /// this is what `cursor` already counts as handed out.
    pub fn take_ready(&mut self) -> Vec<Arc<Frame>> {
        self.hand_out()
    }

    /// What the store holds after the cursor, without waiting for anything live (may be empty).
    pub async fn stored(&mut self) -> Result<Vec<Arc<Frame>>> {
        while self.catch_up && self.ready.is_empty() {
            self.replay_page().await?;
        }
        Ok(self.hand_out())
    }

    /// The next events for the user: waits until there is at least one. Cancel-safe: dropping
    /// the future (a ping, a shutdown, a poll's timeout) loses nothing.
    pub async fn next(&mut self) -> Result<Vec<Arc<Frame>>> {
        loop {
            let full = self.ready.len() >= MAX_EVENTS || self.ready_bytes >= MAX_BYTES;
            if full || (!self.ready.is_empty() && (self.catch_up || self.pending.is_empty())) {
                return Ok(self.hand_out());
            }
            if self.catch_up {
                self.replay_page().await?;
            } else if let Some(item) = self.pending.front().cloned() {
                self.judge(item).await?;
                self.pending.pop_front();
            } else {
                let first = self.sub.rx.recv().await;
                self.receive(first.map_err(|e| match e {
                    RecvError::Lagged(_) => TryRecvError::Lagged(0),
                    RecvError::Closed => TryRecvError::Closed,
                }))?;
                while self.pending.len() < MAX_EVENTS && !self.catch_up {
                    match self.sub.rx.try_recv() {
                        Err(TryRecvError::Empty) => break,
                        other => self.receive(other)?,
                    }
                }
            }
        }
    }

    fn receive(&mut self, got: std::result::Result<Item, TryRecvError>) -> Result<()> {
        match got {
            Ok(item) => self.pending.push_back(item),
            Err(TryRecvError::Lagged(_)) => {
                // Stored events it missed come from the store; live ones already here stay.
                self.src.metrics.lag_rereads.inc();
                self.catch_up = true;
            }
            Err(TryRecvError::Closed) => {
                return Err(Error::Internal(anyhow::anyhow!(
                    "the hub closed the channel"
                )))
            }
            Err(TryRecvError::Empty) => {}
        }
        Ok(())
    }

    /// Reads the next page after the cursor into `ready`.
    async fn replay_page(&mut self) -> Result<()> {
        let page = self.src.reader.page(&self.user, self.last).await?;
        let Some(Page {
            frames,
            through,
            more,
            spans,
        }) = page
        else {
            // Pruned while the feed was behind: start over from the present, with the
            // memberships as they are now (changes it was told of may be among what it missed).
            let spans = self.src.reader.spans(&self.user).await?;
            let head = self.src.hub.head();
            self.spans = spans;
            let _ = self.src.hub.watch(&self.user, open_chats(&self.spans));
            self.last = head;
            self.catch_up = false;
            self.push(Arc::new(reset_frame(head)));
            return Ok(());
        };
        self.src.metrics.events_replayed.inc_by(frames.len() as u64);
        self.spans = spans;
        // A chat routed only now (its join was among what the channel missed) may have had
        // events committed after this page was read and before it was routed: read once more.
        let newly = self.src.hub.watch(&self.user, open_chats(&self.spans));
        for f in frames {
            self.push(Arc::new(f));
        }
        self.last = self.last.max(through);
        self.catch_up = more || newly;
        Ok(())
    }

    /// Decides whether a received item goes to the user, rendering it for them if needed.
    async fn judge(&mut self, item: Item) -> Result<()> {
        let mut frame = match item {
            Item::Membership => {
                self.spans = self.src.reader.spans(&self.user).await?;
                return Ok(());
            }
            Item::Resync => {
                self.src.metrics.lag_rereads.inc();
                self.catch_up = true;
                return Ok(());
            }
            Item::Frame(f) => f,
        };
        if frame.id.is_some_and(|id| id <= self.last) {
            return Ok(());
        }
        if let Some(chat) = frame.chat {
            let visible = self
                .spans
                .iter()
                .any(|s| s.chat == chat && frame.id.map_or(s.until.is_none(), |id| s.covers(id)));
            if !visible {
                return Ok(());
            }
            if frame.is(EventKind::Chat) {
                let data = self.src.reader.personalize(&self.user, &frame.data).await?;
                frame = Arc::new(Frame {
                    data: data.into(),
                    ..(*frame).clone()
                });
            }
        }
        if let Some(id) = frame.id {
            self.last = id;
        }
        self.push(frame);
        Ok(())
    }

    fn push(&mut self, f: Arc<Frame>) {
        self.ready_bytes += f.data.len();
        self.ready.push(f);
    }

    /// Hands out what is ready; what reached the user counts as delivered.
    fn hand_out(&mut self) -> Vec<Arc<Frame>> {
        self.ready_bytes = 0;
        let out = std::mem::take(&mut self.ready);
        self.src
            .deliveries
            .note(&self.user, out.iter().map(|f| &**f));
        out
    }
}
