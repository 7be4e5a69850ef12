//! A connection's socket with a write deadline: a client that takes no data for the stall timeout
//! while a response waits has its connection closed (a stream resumes by `Last-Event-ID`); reads
//! are never timed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// An accepted socket whose writes fail with [`io::ErrorKind::TimedOut`] once its peer has taken
/// no data for `timeout` while the socket refused every write; hyper then drops the connection.
pub struct Stall<T> {
    io: T,
    timeout: Duration,
    /// Fires `timeout` after the current stall began or the peer last took data; made on the
    /// first refused write, so a connection that never stalls never has one.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Whether writes are being refused: `deadline` counts (false once a write went through).
    stalled: bool,
    /// What the socket held unacknowledged when `deadline` was last set, if it can tell.
    unacked: Option<usize>,
}

/// What a transport holds that its peer has not taken yet. A peer that reads slowly frees the
/// socket's buffer only a little at a time, and the kernel signals room for more writes only once
/// a good part of it is free: on a large buffer that can take longer than the timeout although
/// the client reads all along. This tells the two apart.
pub trait Unacked {
    /// Bytes written that the peer has not acknowledged; `None` when the transport cannot tell.
    fn unacked(&self) -> Option<usize>;
}

impl Unacked for tokio::net::TcpStream {
    #[cfg(target_os = "linux")]
    fn unacked(&self) -> Option<usize> {
        use std::os::fd::AsRawFd;
        let mut n: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) on a socket writes one int to the pointer it is given.
        let r = unsafe { libc::ioctl(self.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
        if r == 0 {
            usize::try_from(n).ok()
        } else {
            None
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn unacked(&self) -> Option<usize> {
        None
    }
}

impl<T: Unacked> Stall<T> {
    /// Wraps `io`; a stall longer than `timeout` ends it.
    pub fn new(io: T, timeout: Duration) -> Stall<T> {
        Stall {
            io,
            timeout,
            deadline: None,
            stalled: false,
            unacked: None,
        }
    }

    /// The socket answered a write (with progress or an error): the next refusal counts anew.
    fn answered<R>(&mut self, r: io::Result<R>) -> Poll<io::Result<R>> {
        self.stalled = false;
        Poll::Ready(r)
    }

    /// The socket refused a write: wait while the peer has taken something within the timeout,
    /// fail once it has taken nothing for the whole of it.
    fn refused<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let until = Instant::now() + self.timeout;
        let deadline = match &mut self.deadline {
            Some(d) if self.stalled => d,
            Some(d) => {
                d.as_mut().reset(until);
                d
            }
            None => self
                .deadline
                .insert(Box::pin(tokio::time::sleep_until(until))),
        };
        if !self.stalled {
            self.stalled = true;
            self.unacked = self.io.unacked();
        }
        loop {
            if deadline.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = self.io.unacked();
            match (self.unacked, now) {
                // The peer took some of what the socket held: it reads, slowly. Count afresh.
                (Some(before), Some(left)) if left < before => {
                    self.unacked = now;
                    deadline.as_mut().reset(Instant::now() + self.timeout);
                }
                _ => break,
            }
        }
        let after = humantime::format_duration(self.timeout);
        tracing::info!("closing a connection: the client accepted no data for {after}");
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client accepted no data for {after}"),
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stall<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unacked + Unpin> AsyncWrite for Stall<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(r) => this.answered(r),
            Poll::Pending => this.refused(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => this.answered(r),
            Poll::Pending => this.refused(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Ready(r) => this.answered(r),
            Poll::Pending => this.refused(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const TIMEOUT: Duration = Duration::from_secs(30);

    /// An in-memory pipe cannot tell what its peer took: only refused writes count.
    impl Unacked for tokio::io::DuplexStream {
        fn unacked(&self) -> Option<usize> {
            None
        }
    }

    /// A socket whose peer buffers at most 64 bytes, wrapped; and that peer.
    fn pipe() -> (Stall<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (ours, peer) = tokio::io::duplex(64);
        (Stall::new(ours, TIMEOUT), peer)
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_whose_peer_never_reads_fails_after_the_timeout() {
        // Arrange
        let (mut io, _peer) = pipe();
        let started = Instant::now();

        // Act
        let mut written = 0;
        let err = loop {
            match io.write(&[b'x'; 16]).await {
                Ok(n) => written += n,
                Err(e) => break e,
            }
        };

        // Assert
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "the client accepted no data for 30s");
        assert_eq!(written, 64, "the peer's buffer was filled first");
        let waited = started.elapsed();
        assert!(
            waited >= TIMEOUT && waited < TIMEOUT + Duration::from_secs(1),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_whose_peer_reads_slowly_but_steadily_never_fails() {
        // Arrange: the peer takes 16 bytes every 20 s, less often than the timeout allows for
        // nothing but often enough that no single stall reaches it.
        let (mut io, mut peer) = pipe();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let mut read = 0;
            while read < 4096 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                read += peer.read(&mut buf).await.unwrap();
            }
            read
        });

        // Act: 4 KiB through a 64-byte pipe takes far longer than the timeout in all.
        let started = Instant::now();
        io.write_all(&[b'x'; 4096]).await.unwrap();
        io.flush().await.unwrap();

        // Assert
        assert!(started.elapsed() > TIMEOUT * 10);
        assert_eq!(reader.await.unwrap(), 4096);
    }

    /// A socket that refuses every write, and tells how much its peer has not taken yet.
    struct Refusing(Arc<AtomicUsize>);

    impl AsyncWrite for Refusing {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl Unacked for Refusing {
        fn unacked(&self) -> Option<usize> {
            Some(self.0.load(Ordering::Relaxed))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_takes_data_while_writes_are_refused_is_given_time() {
        // Arrange: the peer takes 10 bytes of what the socket holds every 20 s, ten times.
        let held = Arc::new(AtomicUsize::new(1000));
        let mut io = Stall::new(Refusing(held.clone()), TIMEOUT);
        tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                held.fetch_sub(10, Ordering::Relaxed);
            }
        });
        let started = Instant::now();

        // Act
        let err = io.write(b"x").await.unwrap_err();

        // Assert: the write failed only once the peer had taken nothing for a whole timeout.
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        let last_taken = Duration::from_secs(200);
        assert!(
            waited > last_taken && waited <= last_taken + 2 * TIMEOUT,
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reads_are_not_timed() {
        // Arrange
        let (mut io, mut peer) = pipe();

        // Act: nothing arrives for ten timeouts, then a byte does.
        let late = tokio::spawn(async move {
            tokio::time::sleep(TIMEOUT * 10).await;
            peer.write_all(b"!").await.unwrap();
            peer
        });
        let mut buf = [0u8; 1];
        let n = io.read(&mut buf).await.unwrap();

        // Assert
        assert_eq!(&buf[..n], b"!");
        drop(late.await.unwrap());
    }
}
