//! Per-user fan-out. Every open stream or poll of a user holds a receiver on that user's channel;
//! the store's writer publishes each committed event here (in commit order), and live-only events
//! (typing, presence, calls) are published directly. Memory only makes delivery fast: a receiver
//! that falls behind re-reads the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::model::UserId;

/// How many events a user's channel buffers before a slow receiver lags and re-reads the store.
const CHANNEL_CAPACITY: usize = 16;

/// One event on its way to a user: stored ones have an id, live-only ones do not.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The event id (stored events only).
    pub id: Option<i64>,
    /// The event type, e.g. `message`.
    pub kind: Arc<str>,
    /// The event's `data` as serialized JSON.
    pub data: Arc<str>,
}

impl Frame {
    /// A live-only event (no id).
    pub fn live(kind: &str, data: &serde_json::Value) -> Frame {
        Frame {
            id: None,
            kind: kind.into(),
            data: data.to_string().into(),
        }
    }

    /// The envelope `{"type":…,"data":…}` as one JSON line.
    pub fn envelope(&self) -> String {
        let kind = serde_json::to_string(&*self.kind).unwrap_or_default();
        format!("{{\"type\":{kind},\"data\":{}}}", self.data)
    }
}

/// A user's channel and the number of subscriptions holding it.
type Channel = (broadcast::Sender<Arc<Frame>>, usize);

/// The registry of users' channels, and the newest committed event id.
#[derive(Default)]
pub struct Hub {
    /// Each listening user's channel and how many subscriptions hold it (counted under the lock,
    /// so the last one to go always removes the entry).
    users: Mutex<HashMap<UserId, Channel>>,
    head: AtomicI64,
}

/// A receiver on one user's events; unregisters itself when dropped.
pub struct Subscription {
    /// Events for the user, in the order they were committed or sent.
    pub rx: broadcast::Receiver<Arc<Frame>>,
    hub: Arc<Hub>,
    user: UserId,
}

impl Hub {
    /// A hub whose newest committed event id is `head`.
    pub fn new(head: i64) -> Arc<Hub> {
        Arc::new(Hub {
            users: Mutex::default(),
            head: AtomicI64::new(head),
        })
    }

    /// Starts receiving `user`'s events. Subscribe before reading the store, then skip repeats.
    pub fn subscribe(self: &Arc<Self>, user: &UserId) -> Subscription {
        let mut users = self.users.lock().unwrap();
        let (tx, holders) = users
            .entry(user.clone())
            .or_insert_with(|| (broadcast::channel(CHANNEL_CAPACITY).0, 0));
        *holders += 1;
        let rx = tx.subscribe();
        Subscription {
            rx,
            hub: self.clone(),
            user: user.clone(),
        }
    }

    /// The newest committed event id.
    pub fn head(&self) -> i64 {
        self.head.load(Ordering::Acquire)
    }

    /// Records a commit's newest event id. Called by the writer before it publishes.
    pub fn advance(&self, id: i64) {
        self.head.fetch_max(id, Ordering::AcqRel);
    }

    /// Delivers frames to whoever of their users is listening.
    pub fn publish<'a>(&self, frames: impl IntoIterator<Item = (&'a UserId, Arc<Frame>)>) {
        let users = self.users.lock().unwrap();
        for (user, frame) in frames {
            if let Some((tx, _)) = users.get(user) {
                let _ = tx.send(frame);
            }
        }
    }

    /// Whether `user` has any open stream or poll on this hub.
    pub fn is_listening(&self, user: &UserId) -> bool {
        self.users.lock().unwrap().contains_key(user)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut users = self.hub.users.lock().unwrap();
        if let Some((_, holders)) = users.get_mut(&self.user) {
            *holders -= 1;
            if *holders == 0 {
                users.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_one_json_line() {
        let f = Frame::live("typing", &serde_json::json!({"chatId": 1, "text": "a\nb"}));
        let line = f.envelope();
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["type"], "typing");
        assert_eq!(v["data"]["text"], "a\nb");
    }

    #[tokio::test]
    async fn publishes_reach_only_their_user_and_channels_are_dropped() {
        let hub = Hub::new(0);
        let a = UserId::parse("a").unwrap();
        let b = UserId::parse("b").unwrap();
        let mut sub = hub.subscribe(&a);
        let f = Arc::new(Frame::live("x", &serde_json::json!({})));
        hub.publish([(&b, f.clone()), (&a, f.clone())]);
        assert_eq!(*sub.rx.recv().await.unwrap(), *f);
        assert!(sub.rx.try_recv().is_err());
        drop(sub);
        assert!(!hub.is_listening(&a));
    }
}
