//! Shutdown as requests see it. Once draining begins, a request the server had already taken
//! runs to its answer, and any later one is answered `503 unavailable` instead of being cut
//! off; every answer from then on closes its connection. It counts the requests in flight so
//! that the server knows when the last one has been answered.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::{watch, Notify};

/// Seconds a client is told to wait (`Retry-After`) when the server is restarting.
pub const RETRY_AFTER: u64 = 5;

/// Whether the server is draining, and how many requests it is still answering.
pub struct Drain {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
    signal: watch::Sender<bool>,
}

/// A request the server took before draining began; dropping it counts it answered.
pub struct Admitted<'a>(&'a Drain);

impl Default for Drain {
    fn default() -> Self {
        Drain {
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            signal: watch::channel(false).0,
        }
    }
}

impl Drain {
    /// Takes a request, unless draining has begun. Counted before the check, so a request
    /// taken is always waited for by [`Drain::settled`].
    pub fn admit(&self) -> Option<Admitted<'_>> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let admitted = Admitted(self);
        (!self.draining.load(Ordering::SeqCst)).then_some(admitted)
    }

    /// Starts draining: later requests are refused, held polls answer.
    pub fn begin(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.signal.send_replace(true);
    }

    /// Whether draining has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Becomes true when draining begins; `wait_for(|d| *d)` also sees a start before the call.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.signal.subscribe()
    }

    /// Resolves once no admitted request is still being answered.
    pub async fn settled(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settles_when_the_requests_taken_before_draining_are_answered() {
        let drain = Drain::default();
        let taken = drain.admit().expect("taken before draining");
        drain.begin();
        assert!(drain.admit().is_none(), "refused once draining");
        let settled = drain.settled();
        tokio::pin!(settled);
        assert!(futures_poll(&mut settled).is_pending());
        drop(taken);
        settled.await;
    }

    fn futures_poll<F: std::future::Future + Unpin>(f: &mut F) -> std::task::Poll<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        std::pin::Pin::new(f).poll(&mut cx)
    }
}
