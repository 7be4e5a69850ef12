//! Who is online: a user is online while any stream or poll of theirs is open, or a poll of theirs
//! ended less than the grace period ago. The first connection and the last one going tell the
//! user's chat partners (`opponentStatus`); a connection that drops without a clean close tells
//! them `clientConnectionError`. All of it is live only, never stored.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::hub::{Frame, Hub};
use crate::model::{ChatId, EventKind, Online, UserId, UserStatus};
use crate::store::{self, Store};

/// What kind of connection a guard stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An SSE stream.
    Stream,
    /// A long-poll request.
    Poll,
}

impl Kind {
    /// The transport's name in logs and metrics: `sse` or `poll`.
    pub fn transport(self) -> &'static str {
        match self {
            Kind::Stream => "sse",
            Kind::Poll => "poll",
        }
    }
}

#[derive(Debug, Default)]
struct Entry {
    conns: u32,
    last_poll: Option<Instant>,
    /// When the user was last online (Unix ms).
    last_seen: i64,
    /// Counts online/offline changes: a status told in the background is dropped if a newer
    /// change happened meanwhile (the newer one tells its own), so partners end on the latest.
    generation: u64,
}

impl Entry {
    fn online(&self, grace: Duration) -> bool {
        self.conns > 0 || self.last_poll.is_some_and(|t| t.elapsed() < grace)
    }
}

/// How long an offline user's entry is kept before it is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// The presence registry.
pub struct Presence {
    users: Mutex<HashMap<UserId, Entry>>,
    store: Store,
    hub: Arc<Hub>,
    grace: Duration,
    /// Larger groups are left out of presence pushes.
    group_limit: usize,
}

/// What closing a connection does, told whether it closed cleanly.
type Close = Box<dyn FnOnce(bool) + Send + Sync>;

/// An open connection; dropping it closes it. Call [`Connection::close_cleanly`] first when the
/// server ended it on purpose.
pub struct Connection {
    close: Option<Close>,
    clean: bool,
}

impl Connection {
    /// A connection whose close runs `close` (an edge's tells the primary); `clean` from the
    /// start for a poll, whose end is always on purpose.
    pub fn new(kind: Kind, close: impl FnOnce(bool) + Send + Sync + 'static) -> Connection {
        Connection {
            close: Some(Box::new(close)),
            clean: kind == Kind::Poll,
        }
    }

    /// Marks the end as clean: no `clientConnectionError` is sent.
    pub fn close_cleanly(&mut self) {
        self.clean = true;
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(close) = self.close.take() {
            close(self.clean);
        }
    }
}

impl Presence {
    /// A registry that tells partners through `hub`, finding them in `store`; partners are the
    /// members of the user's chats of at most `group_limit` members.
    pub fn new(store: Store, hub: Arc<Hub>, grace: Duration, group_limit: usize) -> Arc<Presence> {
        Arc::new(Presence {
            users: Mutex::default(),
            store,
            hub,
            grace,
            group_limit,
        })
    }

    /// Opens a connection for `user`; tells partners if the user just came online.
    pub fn connect(self: &Arc<Self>, user: &UserId, kind: Kind) -> Connection {
        let came_online = {
            let mut users = self.users.lock().unwrap();
            let e = users.entry(user.clone()).or_default();
            let was = e.online(self.grace);
            e.conns += 1;
            e.last_seen = crate::time::now_ms();
            if !was {
                e.generation += 1;
            }
            (!was).then_some(e.generation)
        };
        if let Some(generation) = came_online {
            self.tell_partners(user.clone(), Some(generation), None);
        }
        let (presence, user) = (self.clone(), user.clone());
        Connection::new(kind, move |clean| presence.disconnect(&user, kind, clean))
    }

    fn disconnect(self: &Arc<Self>, user: &UserId, kind: Kind, clean: bool) {
        let went_offline = {
            let mut users = self.users.lock().unwrap();
            let Some(e) = users.get_mut(user) else { return };
            e.conns = e.conns.saturating_sub(1);
            e.last_seen = crate::time::now_ms();
            if kind == Kind::Poll {
                e.last_poll = Some(Instant::now());
            }
            let offline = !e.online(self.grace);
            if offline {
                e.generation += 1;
            }
            offline.then_some(e.generation)
        };
        let error = (!clean)
            .then(|| Frame::live(EventKind::ClientConnectionError, &json!({"userId": user})));
        if went_offline.is_some() || error.is_some() {
            self.tell_partners(user.clone(), went_offline, error);
        }
    }

    /// Whether `user` has a stream open or a poll waiting on this server now (not merely online:
    /// a poller between polls has none).
    pub fn has_open(&self, user: &UserId) -> bool {
        let users = self.users.lock().unwrap();
        users.get(user).is_some_and(|e| e.conns > 0)
    }

    /// How many users are online now.
    pub fn online_count(&self) -> usize {
        let users = self.users.lock().unwrap();
        users.values().filter(|e| e.online(self.grace)).count()
    }

    /// Takes offline the poll-only users whose last poll is older than the grace period, and
    /// forgets users offline for long (their last-seen time is in the database by then).
    pub fn sweep(self: &Arc<Self>) {
        let forget_before = crate::time::now_ms() - FORGET_AFTER.as_millis() as i64;
        let mut lapsed = Vec::new();
        {
            let mut users = self.users.lock().unwrap();
            users.retain(|user, e| {
                if e.conns == 0 && e.last_poll.is_some_and(|t| t.elapsed() >= self.grace) {
                    e.last_poll = None;
                    e.generation += 1;
                    lapsed.push((user.clone(), e.generation));
                }
                e.conns > 0 || e.last_poll.is_some() || e.last_seen >= forget_before
            });
        }
        for (user, generation) in lapsed {
            self.tell_partners(user, Some(generation), None);
        }
    }

    /// Whether the change numbered `generation` is still the newest for `user`.
    fn is_latest(&self, user: &UserId, generation: u64) -> bool {
        self.users
            .lock()
            .unwrap()
            .get(user)
            .is_none_or(|e| e.generation == generation)
    }

    /// Whether `user` is online now, and when they were last seen by this process.
    fn current(&self, user: &UserId) -> (bool, Option<i64>) {
        let users = self.users.lock().unwrap();
        match users.get(user) {
            Some(e) => (e.online(self.grace), Some(e.last_seen)),
            None => (false, None),
        }
    }

    /// The presence of each of `users`, as `opponentStatus` reports it.
    pub async fn statuses(&self, users: Vec<UserId>) -> crate::error::Result<Vec<UserStatus>> {
        let mut out = Vec::with_capacity(users.len());
        for user in users {
            let (online, seen) = self.current(&user);
            let seen = match (online, seen) {
                (true, _) => Some(crate::time::now_ms()),
                (false, Some(ms)) => Some(ms),
                (false, None) => {
                    let u = user.clone();
                    self.store
                        .read(move |c| store::users::last_seen(c, u.as_str()))
                        .await?
                }
            };
            out.push(UserStatus {
                user_id: user.clone(),
                status: if online {
                    Online::Online
                } else {
                    Online::Offline
                },
                last_seen: seen.map(crate::time::rfc3339),
            });
        }
        Ok(out)
    }

    /// Sends `extra`, if any, and `user`'s status if it changed (`change` is the change's
    /// generation), to everyone who shares a chat with them: one frame per partner, naming the
    /// shared chats. Records `last_seen` when the user went offline. Runs in the background.
    fn tell_partners(self: &Arc<Self>, user: UserId, change: Option<u64>, extra: Option<Frame>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        rt.spawn(async move {
            let (u, limit) = (user.clone(), this.group_limit);
            let partners = match this
                .store
                .read(move |c| store::chats::partners(c, &u, limit))
                .await
            {
                Ok(p) => p,
                Err(e) => return tracing::warn!("presence: cannot list partners of {user}: {e:?}"),
            };
            let mut shared: BTreeMap<&UserId, Vec<ChatId>> = BTreeMap::new();
            for (chat, others) in &partners {
                for other in others {
                    shared.entry(other).or_default().push(*chat);
                }
            }
            let status = match change {
                Some(_) => this.statuses(vec![user.clone()]).await.ok(),
                None => None,
            };
            let mut frames = Vec::new();
            if let Some(extra) = &extra {
                let f = Arc::new(extra.clone());
                frames.extend(shared.keys().map(|other| (*other, f.clone())));
            }
            let latest = change.is_some_and(|g| this.is_latest(&user, g));
            if let (Some(status), true) = (&status, latest) {
                for (other, chats) in &shared {
                    let data = json!({"chatId": chats[0], "chatIds": chats, "users": status});
                    frames.push((
                        *other,
                        Arc::new(Frame::live(EventKind::OpponentStatus, &data)),
                    ));
                }
            }
            this.hub.publish(frames);
            let offline = status.is_some_and(|s| s[0].status == Online::Offline);
            if offline {
                let seen = crate::time::now_ms();
                let u = user.clone();
                if let Err(e) = this
                    .store
                    .write(move |tx| store::users::set_last_seen(tx, &u, seen))
                    .await
                {
                    tracing::warn!("presence: cannot record last_seen of {user}: {e:?}");
                }
            }
        });
    }
}
