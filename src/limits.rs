//! What one caller may take: request rates per user and per client address (token buckets), and
//! the cap on each user's open streams and held polls. It refuses or closes; it never waits, and
//! it knows nothing of routes (the router decides what counts).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::oneshot;

use crate::config::{Config, Rate};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model::UserId;

/// A user's open streams, oldest first: each one's id and the sender that tells it to close.
type Open = VecDeque<(u64, oneshot::Sender<()>)>;

/// The per-user and per-address buckets, and each user's open streams.
pub struct Limits {
    user: Option<DefaultKeyedRateLimiter<UserId>>,
    ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    max_streams: usize,
    streams: Mutex<HashMap<UserId, Open>>,
    next_stream: AtomicU64,
    metrics: Arc<Metrics>,
}

/// A user's place among their open streams; dropping it gives the place back. `closed`
/// resolves when a newer stream of the same user took the place (the cap was reached).
pub struct Slot {
    limits: Arc<Limits>,
    user: UserId,
    id: u64,
    /// Resolves when this stream must end to make room for a newer one.
    pub closed: oneshot::Receiver<()>,
}

/// The bucket of `rate`: a GCRA quota refilled every `1 / per_second`, `burst` deep.
fn quota(rate: Rate) -> Quota {
    let period = Duration::from_secs_f64(1.0 / rate.per_second.max(1e-6));
    let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .expect("a period above zero")
        .allow_burst(burst)
}

/// Whole seconds to wait, rounded up and at least 1 (`Retry-After` takes whole seconds).
fn whole_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Takes one token of `key` from `limiter`, or says how long until there is one.
fn take<K: Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    name: &'static str,
    metrics: &Metrics,
) -> Result<()> {
    limiter.check_key(key).map_err(|not_until| {
        metrics.limited(name);
        let wait = not_until.wait_time_from(limiter.clock().now());
        Error::RateLimited {
            limit: name,
            retry_after: whole_seconds(wait),
        }
    })
}

/// The key an address is limited by: an IPv6 address by its /64, the block one subscriber is
/// usually given (a client could otherwise take a fresh address for every request).
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl Limits {
    /// The limits `config` sets, counting hits in `metrics`.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Arc<Limits> {
        Arc::new(Limits {
            user: config
                .user_rate
                .map(|r| DefaultKeyedRateLimiter::keyed(quota(r))),
            ip: config
                .ip_rate
                .map(|r| DefaultKeyedRateLimiter::keyed(quota(r))),
            max_streams: config.max_streams.max(1),
            streams: Mutex::default(),
            next_stream: AtomicU64::new(0),
            metrics,
        })
    }

    /// Counts one request of `user`: `rate_limited` when their bucket is empty.
    pub fn check_user(&self, user: &UserId) -> Result<()> {
        match &self.user {
            Some(l) => take(l, user, "user_rate", &self.metrics),
            None => Ok(()),
        }
    }

    /// Counts one request from `ip`: `rate_limited` when its bucket is empty.
    pub fn check_ip(&self, ip: IpAddr) -> Result<()> {
        match &self.ip {
            Some(l) => take(l, &ip_key(ip), "ip_rate", &self.metrics),
            None => Ok(()),
        }
    }

    /// Forgets the buckets that are full again (they hold nothing a new one would not), so
    /// memory follows the callers of the last moments, not every caller ever seen.
    pub fn prune(&self) {
        if let Some(l) = &self.user {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Takes a place for a new stream or poll of `user`. At the cap, the user's oldest is told
    /// to close: a client that reconnects while its old connection is half-dead gets in, and the
    /// dead one goes.
    pub fn open_stream(self: &Arc<Self>, user: &UserId) -> Slot {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let (tx, closed) = oneshot::channel();
        let mut streams = self.streams.lock().unwrap();
        let open = streams.entry(user.clone()).or_default();
        while open.len() >= self.max_streams {
            if let Some((_, oldest)) = open.pop_front() {
                let _ = oldest.send(());
                self.metrics.limited("streams");
            }
        }
        open.push_back((id, tx));
        Slot {
            limits: self.clone(),
            user: user.clone(),
            id,
            closed,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut streams = self.limits.streams.lock().unwrap();
        if let Some(open) = streams.get_mut(&self.user) {
            open.retain(|(id, _)| *id != self.id);
            if open.is_empty() {
                streams.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(adjust: impl FnOnce(&mut Config)) -> Arc<Limits> {
        let mut config = Config::new("unused");
        adjust(&mut config);
        Limits::new(&config, Arc::default())
    }

    #[test]
    fn a_burst_passes_then_the_wait_is_named_in_whole_seconds() {
        let l = limits(|c| {
            c.user_rate = Some(Rate {
                per_second: 0.5,
                burst: 3,
            })
        });
        let alice = UserId::parse("alice").unwrap();
        for _ in 0..3 {
            l.check_user(&alice).unwrap();
        }
        match l.check_user(&alice) {
            Err(Error::RateLimited { limit, retry_after }) => {
                assert_eq!(limit, "user_rate");
                assert_eq!(retry_after, 2);
            }
            other => panic!("expected rate_limited, got {other:?}"),
        }
        // Another user has a bucket of their own.
        l.check_user(&UserId::parse("bob").unwrap()).unwrap();
    }

    #[test]
    fn the_default_burst_takes_an_app_opening_with_fifty_requests_at_once() {
        let l = limits(|_| {});
        let alice = UserId::parse("alice").unwrap();
        for _ in 0..50 {
            l.check_user(&alice).unwrap();
        }
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(ip_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_stream_past_the_cap_closes_the_oldest() {
        let l = limits(|c| c.max_streams = 2);
        let alice = UserId::parse("alice").unwrap();
        let mut first = l.open_stream(&alice);
        let mut second = l.open_stream(&alice);
        let mut third = l.open_stream(&alice);
        assert!(
            first.closed.try_recv().is_ok(),
            "the oldest is told to close"
        );
        assert!(second.closed.try_recv().is_err());
        drop(first);
        drop(second);
        let mut fourth = l.open_stream(&alice);
        assert!(
            third.closed.try_recv().is_err(),
            "a freed place is taken first"
        );
        assert!(fourth.closed.try_recv().is_err());
        drop((third, fourth));
        assert!(l.streams.lock().unwrap().is_empty());
    }
}
