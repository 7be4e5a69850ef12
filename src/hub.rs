//! Fan-out. Every open stream or poll of a user holds a receiver on that user's channel; the hub
//! also knows which chats each listening user is in, so an event stored once for a chat reaches
//! its listening members without the writer looking them up. The store's writer publishes each
//! committed change here in commit order; live-only events (typing, presence, calls) are published
//! directly. Memory only makes delivery fast: a receiver that falls behind re-reads the store,
//! and each receiver checks a chat's event against its own membership before sending it.
//!
//! In a cluster the primary's hub also hands every change, in the same order, to a relay (sent on
//! to the edges); an edge's hub takes them from there with [`Hub::apply`], and tells every
//! receiver to re-read the store ([`Item::Resync`]) when some may have been lost on the way.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::model::{ChatId, EventId, EventKind, UserId};

/// How many items a user's channel buffers before a slow receiver lags and re-reads the store.
const CHANNEL_CAPACITY: usize = 16;

/// One event on its way to users: stored ones have an id, live-only ones do not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// The event id (stored events only).
    pub id: Option<EventId>,
    /// The chat whose members it is for (stored once for the chat), or `None` (addressed).
    pub chat: Option<ChatId>,
    /// The event type, e.g. `message`.
    pub kind: Arc<str>,
    /// The event's `data` as serialized JSON.
    pub data: Arc<str>,
}

impl Frame {
    /// A live-only event (no id).
    pub fn live(kind: EventKind, data: &serde_json::Value) -> Frame {
        Frame {
            id: None,
            chat: None,
            kind: kind.as_str().into(),
            data: data.to_string().into(),
        }
    }

    /// Whether it is an event of `kind`.
    pub fn is(&self, kind: EventKind) -> bool {
        *self.kind == *kind.as_str()
    }

    /// The envelope `{"type":…,"data":…}` as one JSON line.
    pub fn envelope(&self) -> String {
        let kind = serde_json::to_string(&*self.kind).unwrap_or_default();
        format!("{{\"type\":{kind},\"data\":{}}}", self.data)
    }
}

/// What a user's channel carries.
#[derive(Debug, Clone)]
pub enum Item {
    /// An event for the user (or for a chat they are in).
    Frame(Arc<Frame>),
    /// The user's memberships changed: re-read them before judging the next chat event.
    Membership,
    /// Changes may have been lost on their way to this node: read the store after the cursor.
    Resync,
}

/// A committed change as the writer hands it over, in commit order (a live event for one user
/// travels as `User` too).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Published {
    /// An event for one user.
    User(UserId, Arc<Frame>),
    /// An event for every member of a chat.
    Chat(ChatId, Arc<Frame>),
    /// A user became a member of a chat.
    Joined(ChatId, UserId),
    /// A user stopped being a member of a chat.
    Left(ChatId, UserId),
}

/// A listening user: their channel, how many subscriptions hold it, and their chats.
struct Listener {
    tx: broadcast::Sender<Item>,
    holders: usize,
    chats: HashSet<ChatId>,
}

#[derive(Default)]
struct Routes {
    users: HashMap<UserId, Listener>,
    /// For each chat, its listening members (it may name a few who just left: receivers check).
    chats: HashMap<ChatId, HashSet<UserId>>,
}

impl Routes {
    /// Routes `chat`'s events to a listening `user`; whether it was not routed before.
    fn route(&mut self, user: &UserId, chat: ChatId) -> bool {
        let Some(l) = self.users.get_mut(user) else {
            return false;
        };
        let newly = l.chats.insert(chat);
        if newly {
            self.chats.entry(chat).or_default().insert(user.clone());
        }
        newly
    }

    fn unroute(&mut self, user: &UserId, chat: ChatId) {
        if let Some(l) = self.users.get_mut(user) {
            l.chats.remove(&chat);
        }
        if let Some(set) = self.chats.get_mut(&chat) {
            set.remove(user);
            if set.is_empty() {
                self.chats.remove(&chat);
            }
        }
    }

    fn send(&self, user: &UserId, item: Item) {
        if let Some(l) = self.users.get(user) {
            let _ = l.tx.send(item);
        }
    }
}

/// What the hub hands its relay: one publish call's changes, numbered in order from 1, with the
/// newest committed event id after them.
#[derive(Debug, Clone)]
pub struct Relayed {
    pub seq: u64,
    pub head: EventId,
    pub changes: Vec<Published>,
}

/// How many publish calls the relay may have queued; past it they are dropped, and the gap in
/// `seq` tells the edges to re-read the store.
pub const RELAY_CAPACITY: usize = 4096;

/// The registry of listening users, and the newest committed event id.
#[derive(Default)]
pub struct Hub {
    routes: Mutex<Routes>,
    head: AtomicI64,
    relay: OnceLock<mpsc::Sender<Relayed>>,
    /// The last `seq` handed to the relay (counted under the routes lock: in publish order).
    relayed: std::sync::atomic::AtomicU64,
}

/// A receiver on one user's events; unregisters itself when dropped.
pub struct Subscription {
    /// Items for the user, in the order they were committed or sent.
    pub rx: broadcast::Receiver<Item>,
    hub: Arc<Hub>,
    user: UserId,
}

impl Hub {
    /// A hub whose newest committed event id is `head`.
    pub fn new(head: EventId) -> Arc<Hub> {
        Arc::new(Hub {
            head: AtomicI64::new(head.get()),
            ..Hub::default()
        })
    }

    /// From now on every publish is also handed, in order, to the returned receiver (the
    /// primary of a cluster sends it on to the edges). Once only.
    pub fn relay(&self) -> mpsc::Receiver<Relayed> {
        let (tx, rx) = mpsc::channel(RELAY_CAPACITY);
        if self.relay.set(tx).is_err() {
            panic!("the hub's relay is taken once");
        }
        rx
    }

    /// Hands `changes` to the relay, if there is one. Called with the routes lock held, so the
    /// relay's order is the hub's.
    fn to_relay(&self, changes: impl FnOnce() -> Vec<Published>) {
        let Some(tx) = self.relay.get() else { return };
        let seq = self.relayed.fetch_add(1, Ordering::AcqRel) + 1;
        let relayed = Relayed {
            seq,
            head: self.head(),
            changes: changes(),
        };
        if tx.try_send(relayed).is_err() {
            tracing::warn!("the cluster relay is full; edges will re-read the store");
        }
    }

    /// Applies changes relayed from the primary: the head moves to `head`, then they are
    /// delivered as if committed here.
    pub fn apply(&self, head: EventId, changes: &[Published]) {
        self.advance(head);
        self.publish_committed(changes);
    }

    /// Tells every receiver to re-read the store: changes may have been lost on the way here.
    pub fn resync(&self) {
        let routes = self.routes.lock().unwrap();
        for l in routes.users.values() {
            let _ = l.tx.send(Item::Resync);
        }
    }

    /// Starts receiving `user`'s events: those addressed to them at once, their chats' once
    /// [`Hub::watch`] names the chats. Subscribe before reading the store, then skip repeats.
    pub fn subscribe(self: &Arc<Self>, user: &UserId) -> Subscription {
        let mut routes = self.routes.lock().unwrap();
        let l = routes
            .users
            .entry(user.clone())
            .or_insert_with(|| Listener {
                tx: broadcast::channel(CHANNEL_CAPACITY).0,
                holders: 0,
                chats: HashSet::new(),
            });
        l.holders += 1;
        let rx = l.tx.subscribe();
        Subscription {
            rx,
            hub: self.clone(),
            user: user.clone(),
        }
    }

    /// Routes the events of `chats` to a subscribed `user` (chats joined later are added by the
    /// writer's `Joined`).
    /// Whether any of them was not routed to the user before.
    pub fn watch(&self, user: &UserId, chats: impl IntoIterator<Item = ChatId>) -> bool {
        let mut routes = self.routes.lock().unwrap();
        let mut newly = false;
        for chat in chats {
            newly |= routes.route(user, chat);
        }
        newly
    }

    /// The newest committed event id.
    pub fn head(&self) -> EventId {
        EventId::new(self.head.load(Ordering::Acquire))
    }

    /// Records a commit's newest event id. Called by the writer before it publishes.
    pub fn advance(&self, id: EventId) {
        self.head.fetch_max(id.get(), Ordering::AcqRel);
    }

    /// Delivers committed changes, in order, to whoever they concern and is listening.
    pub fn publish_committed(&self, changes: &[Published]) {
        let mut routes = self.routes.lock().unwrap();
        self.to_relay(|| changes.to_vec());
        for change in changes {
            match change {
                Published::User(user, frame) => routes.send(user, Item::Frame(frame.clone())),
                Published::Chat(chat, frame) => {
                    if let Some(members) = routes.chats.get(chat) {
                        for user in members {
                            routes.send(user, Item::Frame(frame.clone()));
                        }
                    }
                }
                Published::Joined(chat, user) => {
                    let _ = routes.route(user, *chat);
                    routes.send(user, Item::Membership);
                }
                Published::Left(chat, user) => {
                    routes.send(user, Item::Membership);
                    routes.unroute(user, *chat);
                }
            }
        }
    }

    /// Delivers live frames to whoever of their users is listening.
    pub fn publish<'a>(&self, frames: impl IntoIterator<Item = (&'a UserId, Arc<Frame>)>) {
        let routes = self.routes.lock().unwrap();
        let mut relayed = self.relay.get().map(|_| Vec::new());
        for (user, frame) in frames {
            if let Some(r) = &mut relayed {
                r.push(Published::User(user.clone(), frame.clone()));
            }
            routes.send(user, Item::Frame(frame));
        }
        if let Some(changes) = relayed {
            self.to_relay(|| changes);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut routes = self.hub.routes.lock().unwrap();
        let Some(l) = routes.users.get_mut(&self.user) else {
            return;
        };
        l.holders -= 1;
        if l.holders > 0 {
            return;
        }
        let chats: Vec<ChatId> = l.chats.drain().collect();
        for chat in chats {
            routes.unroute(&self.user, chat);
        }
        routes.users.remove(&self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(rx: &mut broadcast::Receiver<Item>) -> Option<Arc<Frame>> {
        match rx.try_recv() {
            Ok(Item::Frame(f)) => Some(f),
            _ => None,
        }
    }

    #[test]
    fn envelopes_are_one_json_line() {
        let f = Frame::live(
            EventKind::Typing,
            &serde_json::json!({"chatId": 1, "text": "a\nb"}),
        );
        let line = f.envelope();
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["type"], "typing");
        assert_eq!(v["data"]["text"], "a\nb");
    }

    #[tokio::test]
    async fn publishes_reach_only_their_user_and_channels_are_dropped() {
        let hub = Hub::new(EventId::ZERO);
        let a = UserId::parse("a").unwrap();
        let b = UserId::parse("b").unwrap();
        let mut sub = hub.subscribe(&a);
        let f = Arc::new(Frame::live(
            EventKind::Custom("x".into()),
            &serde_json::json!({}),
        ));
        hub.publish([(&b, f.clone()), (&a, f.clone())]);
        assert_eq!(*frame(&mut sub.rx).unwrap(), *f);
        assert!(sub.rx.try_recv().is_err());
        drop(sub);
        assert!(!hub.routes.lock().unwrap().users.contains_key(&a));
        assert!(hub.routes.lock().unwrap().chats.is_empty());
    }

    #[tokio::test]
    async fn the_relay_gets_every_publish_numbered_in_order_and_resync_reaches_every_listener() {
        let hub = Hub::new(EventId::ZERO);
        let (a, b) = (UserId::parse("a").unwrap(), UserId::parse("b").unwrap());
        let mut relay = hub.relay();
        let f = Arc::new(Frame::live(
            EventKind::Custom("x".into()),
            &serde_json::json!({}),
        ));
        hub.advance(EventId::new(5));
        hub.publish_committed(&[Published::Chat(ChatId::new(1), f.clone())]);
        hub.publish([(&a, f.clone()), (&b, f.clone())]);
        let first = relay.try_recv().unwrap();
        assert_eq!((first.seq, first.head), (1, EventId::new(5)));
        assert!(matches!(&first.changes[..], [Published::Chat(..)]));
        let second = relay.try_recv().unwrap();
        assert_eq!(second.seq, 2);
        assert!(matches!(
            &second.changes[..],
            [Published::User(..), Published::User(..)]
        ));
        assert!(relay.try_recv().is_err());

        let (mut sa, mut sb) = (hub.subscribe(&a), hub.subscribe(&b));
        hub.resync();
        assert!(matches!(sa.rx.try_recv(), Ok(Item::Resync)));
        assert!(matches!(sb.rx.try_recv(), Ok(Item::Resync)));
    }

    #[tokio::test]
    async fn chat_events_follow_membership_changes() {
        let hub = Hub::new(EventId::ZERO);
        let a = UserId::parse("a").unwrap();
        let (seven, eight) = (ChatId::new(7), ChatId::new(8));
        let mut sub = hub.subscribe(&a);
        let f = Arc::new(Frame::live(
            EventKind::Custom("x".into()),
            &serde_json::json!({}),
        ));
        hub.publish_committed(&[Published::Chat(seven, f.clone())]);
        assert!(
            sub.rx.try_recv().is_err(),
            "not routed before watch or join"
        );
        hub.watch(&a, [seven]);
        hub.publish_committed(&[
            Published::Chat(seven, f.clone()),
            Published::Left(seven, a.clone()),
            Published::Chat(seven, f.clone()),
            Published::Joined(eight, a.clone()),
            Published::Chat(eight, f.clone()),
        ]);
        assert!(frame(&mut sub.rx).is_some());
        assert!(matches!(sub.rx.try_recv(), Ok(Item::Membership)));
        assert!(matches!(sub.rx.try_recv(), Ok(Item::Membership)));
        assert!(frame(&mut sub.rx).is_some());
        assert!(sub.rx.try_recv().is_err());
    }
}
