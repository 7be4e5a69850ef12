//! Work that blocks a thread (file-system calls, image decoding) run off the async runtime: one
//! way for every caller, a panic or cancellation becoming an error that says what was running.

/// Runs `f` on the blocking pool; `Err` (naming `what`) only when it panicked or was cancelled.
pub async fn run<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::Error::new(e).context(what))
}
