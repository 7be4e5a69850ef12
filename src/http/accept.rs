//! Taking connections: from the API address and the optional metrics address, at most
//! `--max-connections` open at once (at the cap it stops accepting until one closes, leaving the
//! rest in the kernel's queue) and at most `--max-connections-per-ip` from one address (one more
//! is answered `429` and closed, so one client cannot take every place), and backing off when
//! accepting fails for want of resources (EMFILE and the like) instead of spinning. It serves
//! nothing itself.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;
use crate::limits::ip_key;
use crate::metrics::{Held, Metrics};

/// How long a refused connection's 429 may take to write before the socket is dropped.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// First wait after accepting failed for want of resources; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// Longest wait between two failed accepts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// One accepted connection and its place under the cap (given back when it is dropped).
pub struct Accepted {
    /// The socket.
    pub stream: TcpStream,
    /// The peer's address.
    pub peer: SocketAddr,
    /// True when it came to the metrics address.
    pub metrics_only: bool,
    /// Held for as long as the connection lives.
    pub place: Place,
}

/// A connection's place under the cap; counted in `chinwag_tcp_connections`.
pub struct Place {
    _permit: OwnedSemaphorePermit,
    _counted: Held,
    /// Its address's count, when addresses are capped.
    address: Option<(Arc<PerAddress>, IpAddr)>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some((per, ip)) = self.address.take() {
            per.leave(ip);
        }
    }
}

/// Open connections by client address (an IPv6 one by its /64).
pub struct PerAddress {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    /// A cap of `max` connections per address.
    pub fn new(max: usize) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            max,
            open: Mutex::default(),
        })
    }

    /// Counts one more connection from `ip`, unless that address is at the cap.
    fn enter(&self, ip: IpAddr) -> bool {
        let mut open = self.open.lock().unwrap();
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return false;
        }
        *n += 1;
        true
    }

    fn leave(&self, ip: IpAddr) {
        let mut open = self.open.lock().unwrap();
        if let Some(n) = open.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&ip);
            }
        }
    }
}

/// Answers a connection past its address's cap with `429 rate_limited` and closes it, off the
/// accept loop.
fn refuse(mut stream: TcpStream) {
    let body = Error::RateLimited {
        limit: "connections per address",
        retry_after: 1,
    }
    .body()
    .to_string();
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\naccess-control-allow-origin: *\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    tokio::spawn(async move {
        let write = async {
            stream.write_all(answer.as_bytes()).await?;
            stream.shutdown().await
        };
        let _ = tokio::time::timeout(REFUSAL_WRITE, write).await;
    });
}

/// The doubling wait after failed accepts; a success resets it.
#[derive(Debug, Default)]
pub struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    /// The wait after one more failure.
    pub fn failed(&mut self) -> Duration {
        let wait = self.next.unwrap_or(FIRST_BACKOFF);
        self.next = Some((wait * 2).min(MAX_BACKOFF));
        wait
    }

    /// Whether the last accept failed (and a success is news worth a log line).
    pub fn succeeded(&mut self) -> bool {
        self.next.take().is_some()
    }
}

/// Whether an accept error concerns only the connection being accepted (it was reset or aborted
/// while queued): take the next one at once. Any other error (out of files, buffers or memory)
/// would repeat at once, so it is waited out.
fn only_this_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    )
}

/// The listeners and the cap.
pub struct Acceptor {
    api: TcpListener,
    metrics_listener: Option<TcpListener>,
    places: Arc<Semaphore>,
    per_address: Option<Arc<PerAddress>>,
    backoff: Backoff,
    metrics: Arc<Metrics>,
}

impl Acceptor {
    /// Accepts from `api` (and `metrics_listener`), at most `max` connections open at once and,
    /// when `per_address` is given, at most that many from one address.
    pub fn new(
        api: TcpListener,
        metrics_listener: Option<TcpListener>,
        max: usize,
        per_address: Option<usize>,
        metrics: Arc<Metrics>,
    ) -> Acceptor {
        Acceptor {
            api,
            metrics_listener,
            places: Arc::new(Semaphore::new(max.max(1))),
            per_address: per_address.map(PerAddress::new),
            backoff: Backoff::default(),
            metrics,
        }
    }

    /// The connection's place, or `None` when its address is at its cap (it is then refused).
    fn place(
        &self,
        permit: OwnedSemaphorePermit,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<(TcpStream, Place)> {
        let address = match &self.per_address {
            Some(per) => {
                let ip = ip_key(peer.ip());
                if !per.enter(ip) {
                    self.metrics.limited("connections_per_ip");
                    refuse(stream);
                    return None;
                }
                Some((per.clone(), ip))
            }
            None => None,
        };
        let place = Place {
            _permit: permit,
            _counted: Held::new(&self.metrics.tcp_connections),
            address,
        };
        Some((stream, place))
    }

    /// A free place: at once, or once a connection closes (counted as one hit of the cap).
    async fn free_place(&self) -> OwnedSemaphorePermit {
        match self.places.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.metrics.limited("connections");
                tracing::warn!("at --max-connections: not accepting until a connection closes");
                let p = self.places.clone().acquire_owned().await;
                p.expect("the semaphore is never closed")
            }
        }
    }

    /// The next connection. Cancel-safe: a place taken for a connection not yet accepted is
    /// given back.
    pub async fn next(&mut self) -> Accepted {
        loop {
            let permit = self.free_place().await;
            let metrics = async {
                match &self.metrics_listener {
                    Some(l) => l.accept().await,
                    None => std::future::pending().await,
                }
            };
            let (accepted, metrics_only) = tokio::select! {
                a = self.api.accept() => (a, false),
                m = metrics => (m, true),
            };
            match accepted {
                Ok((stream, peer)) => {
                    if self.backoff.succeeded() {
                        tracing::info!("accepting connections again");
                    }
                    let Some((stream, place)) = self.place(permit, stream, peer) else {
                        continue;
                    };
                    return Accepted {
                        stream,
                        peer,
                        metrics_only,
                        place,
                    };
                }
                Err(e) if only_this_connection(&e) => continue,
                Err(e) => {
                    drop(permit);
                    let wait = self.backoff.failed();
                    self.metrics.limited("accept_failed");
                    tracing::warn!("accept failed: {e}; trying again in {wait:?}");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// The connections the kernel has already completed but the server has not taken, without
    /// waiting for more (while there are free places): taken at shutdown so that they are
    /// answered rather than reset when the listeners close.
    pub fn queued(&mut self) -> Vec<Accepted> {
        let mut out = Vec::new();
        let listeners = std::iter::once((&self.api, false))
            .chain(self.metrics_listener.iter().map(|l| (l, true)));
        for (listener, metrics_only) in listeners {
            loop {
                let Ok(permit) = self.places.clone().try_acquire_owned() else {
                    return out;
                };
                let waker = std::task::Waker::noop();
                let mut cx = std::task::Context::from_waker(waker);
                match listener.poll_accept(&mut cx) {
                    std::task::Poll::Ready(Ok((stream, peer))) => {
                        if let Some((stream, place)) = self.place(permit, stream, peer) {
                            out.push(Accepted {
                                stream,
                                peer,
                                metrics_only,
                                place,
                            });
                        }
                    }
                    std::task::Poll::Ready(Err(e)) if only_this_connection(&e) => continue,
                    _ => break,
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_wait_longer_each_time_up_to_a_second_and_a_success_resets() {
        let mut b = Backoff::default();
        let waits: Vec<_> = (0..9).map(|_| b.failed()).collect();
        assert_eq!(waits[0], FIRST_BACKOFF);
        assert!(waits.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*waits.last().unwrap(), MAX_BACKOFF);
        assert!(b.succeeded());
        assert!(!b.succeeded());
        assert_eq!(b.failed(), FIRST_BACKOFF);
    }

    #[tokio::test]
    async fn at_the_cap_the_next_connection_waits_for_a_place() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        let mut acceptor = Acceptor::new(listener, None, 1, None, metrics.clone());
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let first = acceptor.next().await;
        assert_eq!(metrics.tcp_connections.get(), 1);
        assert!(acceptor.queued().is_empty(), "no place for the queued one");
        drop(first);
        assert_eq!(metrics.tcp_connections.get(), 0);
        let second = acceptor.next().await;
        assert_eq!(metrics.tcp_connections.get(), 1);
        drop(second);
    }
}
