//! Error reports to Sentry: every 500 with its cause chain, and every panic. Nothing here runs
//! unless a DSN is configured; without one [`init`] sets nothing up and [`server_error`] does
//! nothing.
//!
//! Reports go out through the project's own reqwest client (the [`Outbox`] transport), from a
//! thread of their own behind a bounded queue: reporting never waits on the network in a request,
//! and a report that does not fit in the queue is dropped. An event carries the error's or the
//! panic's text, the release, the environment and the host's name and OS; never a request, its
//! body, its headers or a token.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use reqwest::StatusCode;
use sentry::client_report::{Reason as Loss, Recorder};
use sentry::{Envelope, TransportOptions};

use crate::config::Config;

/// Reports waiting to be sent; one more is dropped.
pub const QUEUE: usize = 64;
/// How long one report's POST may take (connect, send, answer).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown, and a panic, wait for queued reports to go out.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause after a 429 that says nothing of how long to wait.
const DEFAULT_PAUSE: Duration = Duration::from_secs(60);

/// The release of every report: `chinwag@` and the crate's version.
pub const RELEASE: &str = concat!(env!("CARGO_PKG_NAME"), "@", env!("CARGO_PKG_VERSION"));

/// The environment of every report.
const ENVIRONMENT: &str = if cfg!(debug_assertions) {
    "development"
} else {
    "production"
};

/// Whether a client is bound: the one check [`server_error`] makes when reports are off.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Reports are sent while this lives. Dropping it sends what is queued (waiting up to 5 s) and
/// stops reporting.
#[must_use = "reports stop when the guard is dropped"]
pub struct Reports {
    client: Option<Arc<sentry::Client>>,
}

impl Reports {
    /// Whether reports are being sent (a DSN was configured).
    pub fn enabled(&self) -> bool {
        self.client.is_some()
    }
}

impl Drop for Reports {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            ENABLED.store(false, Ordering::Relaxed);
            if !client.close(Some(FLUSH_TIMEOUT)) {
                tracing::warn!("some error reports were not sent before shutdown");
            }
            sentry::Hub::main().bind_client(None);
        }
    }
}

/// Starts reporting to `config.sentry_dsn`, if set (an empty value counts as unset). Call it once,
/// on the main thread before the runtime and other threads start, and hold the guard until exit.
/// Fails only on a DSN that does not parse.
pub fn init(config: &Config) -> anyhow::Result<Reports> {
    let Some(dsn) = config.sentry_dsn.as_deref().map(str::trim) else {
        return Ok(Reports { client: None });
    };
    if dsn.is_empty() {
        return Ok(Reports { client: None });
    }
    // The DSN holds the project's key: never printed, not even in this error.
    let dsn: sentry::types::Dsn = dsn
        .parse()
        .map_err(|e| anyhow::anyhow!("--sentry-dsn is not a Sentry DSN: {e}"))?;
    crate::install_tls_provider();
    let http = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the client of error reports")?;
    let host = dsn.host().to_string();
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(dsn);
    options.release = Some(RELEASE.into());
    options.environment = Some(ENVIRONMENT.into());
    options.transport = Some(Arc::new(OutboxFactory(http)));
    options.shutdown_timeout = FLUSH_TIMEOUT;
    // Added here rather than by sentry's defaults, which also read SENTRY_* variables.
    options.default_integrations = false;
    options.integrations = vec![
        Arc::new(sentry::integrations::contexts::ContextIntegration::default()),
        // Reports the panic, then calls the hook that was there before (which prints it).
        Arc::new(sentry::integrations::panic::PanicIntegration::default()),
        Arc::new(sentry::integrations::backtrace::ProcessStacktraceIntegration),
    ];
    let client = Arc::new(sentry::Client::from(options));
    // The main hub: every thread started from now on reports through it.
    sentry::Hub::main().bind_client(Some(client.clone()));
    ENABLED.store(true, Ordering::Relaxed);
    tracing::info!("reporting 500s and panics to Sentry at {host}");
    Ok(Reports {
        client: Some(client),
    })
}

/// Reports the cause of a 500: one exception per link of the chain, outermost context first in
/// Sentry's view. Returns at once; the report is sent in the background.
pub fn server_error(cause: &anyhow::Error) {
    if ENABLED.load(Ordering::Relaxed) {
        sentry::integrations::anyhow::capture_anyhow(cause);
    }
}

/// Makes an [`Outbox`] for the client, with the project's HTTP client.
struct OutboxFactory(reqwest::Client);

impl sentry::TransportFactory for OutboxFactory {
    fn create_transport_with_options(
        &self,
        options: TransportOptions,
    ) -> Arc<dyn sentry::Transport> {
        Arc::new(Outbox::start(self.0.clone(), options))
    }
}

/// The transport: a bounded queue in front of one thread that POSTs envelopes in order.
struct Outbox {
    queue: SyncSender<Envelope>,
    pending: Arc<Pending>,
    recorder: Recorder,
}

/// Envelopes queued or being sent, for flushing.
#[derive(Default)]
struct Pending {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Pending {
    fn add(&self) {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }

    fn done(&self) {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.changed.notify_all();
        }
    }

    /// Waits until nothing is pending; false if `timeout` passed first.
    fn wait(&self, timeout: Duration) -> bool {
        let n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        let (n, _) = self
            .changed
            .wait_timeout_while(n, timeout, |n| *n > 0)
            .unwrap_or_else(|e| e.into_inner());
        *n == 0
    }
}

impl Outbox {
    fn start(http: reqwest::Client, options: TransportOptions) -> Outbox {
        let (queue, envelopes) = mpsc::sync_channel(QUEUE);
        let pending = Arc::new(Pending::default());
        let sender = Sender {
            url: options.dsn.envelope_api_url().to_string(),
            auth: options.dsn.to_auth(Some(&options.user_agent)).to_string(),
            user_agent: options.user_agent.to_string(),
            http,
            recorder: options.client_report_recorder.clone(),
            paused_until: None,
        };
        let worker = pending.clone();
        let started = std::thread::Builder::new()
            .name("chinwag-reports".into())
            .spawn(move || sender.run(envelopes, &worker));
        if let Err(e) = started {
            tracing::error!("error reports are off: could not start their thread: {e}");
        }
        Outbox {
            queue,
            pending,
            recorder: options.client_report_recorder,
        }
    }
}

impl sentry::Transport for Outbox {
    fn send_envelope(&self, envelope: Envelope) {
        self.pending.add();
        if let Err(e) = self.queue.try_send(envelope) {
            self.pending.done();
            let (envelope, reason, why) = match e {
                TrySendError::Full(e) => (e, Loss::QueueOverflow, "the queue is full"),
                TrySendError::Disconnected(e) => (e, Loss::InternalError, "the sender stopped"),
            };
            self.recorder.record_lost_data(&envelope, reason);
            tracing::warn!("an error report was dropped: {why}");
        }
    }

    fn flush(&self, timeout: Duration) -> bool {
        self.pending.wait(timeout)
    }
}

/// The sending thread's state.
struct Sender {
    url: String,
    auth: String,
    user_agent: String,
    http: reqwest::Client,
    recorder: Recorder,
    /// Set by a rate limit: nothing is sent before then.
    paused_until: Option<Instant>,
}

impl Sender {
    fn run(mut self, envelopes: Receiver<Envelope>, pending: &Pending) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let rt = match rt {
            Ok(rt) => Some(rt),
            Err(e) => {
                tracing::error!("error reports are off: no runtime for sending them: {e}");
                None
            }
        };
        // Ends when the transport is dropped (the client closed).
        for envelope in envelopes {
            match &rt {
                Some(rt) if !self.paused() => rt.block_on(self.send(&envelope)),
                Some(_) => self
                    .recorder
                    .record_lost_data(&envelope, Loss::RatelimitBackoff),
                None => self
                    .recorder
                    .record_lost_data(&envelope, Loss::InternalError),
            }
            pending.done();
        }
    }

    fn paused(&mut self) -> bool {
        match self.paused_until {
            Some(t) if Instant::now() < t => true,
            _ => {
                self.paused_until = None;
                false
            }
        }
    }

    async fn send(&mut self, envelope: &Envelope) {
        let mut body = Vec::new();
        if let Err(e) = envelope.to_writer(&mut body) {
            self.recorder
                .record_lost_data(envelope, Loss::InternalError);
            tracing::warn!("an error report could not be encoded: {e}");
            return;
        }
        let res = self
            .http
            .post(&self.url)
            .header("X-Sentry-Auth", &self.auth)
            .header(USER_AGENT, &self.user_agent)
            .header(CONTENT_TYPE, "application/x-sentry-envelope")
            .body(body)
            .send()
            .await;
        match res {
            Ok(res) => {
                let status = res.status();
                if let Some(pause) = pause(res.headers(), status) {
                    self.paused_until = Some(Instant::now() + pause);
                }
                // Sentry counts what it refuses with a 429 itself.
                if !status.is_success() && status != StatusCode::TOO_MANY_REQUESTS {
                    self.recorder.record_lost_data(envelope, Loss::SendError);
                    tracing::warn!("Sentry refused an error report: {status}");
                }
            }
            Err(e) => {
                self.recorder.record_lost_data(envelope, Loss::NetworkError);
                tracing::warn!(
                    "could not send an error report: {:#}",
                    anyhow::Error::from(e)
                );
            }
        }
    }
}

/// How long Sentry asks us to stop sending: the longest of its `X-Sentry-Rate-Limits`
/// (`seconds:categories:scope, ...`; we send errors only, so any category pauses all), or for a
/// 429 its `Retry-After` seconds (a minute when it gives none).
fn pause(headers: &HeaderMap, status: StatusCode) -> Option<Duration> {
    let seconds = |v: &str| {
        v.trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
    };
    if let Some(limits) = headers
        .get("x-sentry-rate-limits")
        .and_then(|v| v.to_str().ok())
    {
        return limits
            .split(',')
            .filter_map(|limit| seconds(limit.split(':').next()?))
            .reduce(f64::max)
            .map(Duration::from_secs_f64);
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        let after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(seconds);
        return Some(after.map_or(DEFAULT_PAUSE, Duration::from_secs_f64));
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc::RecvTimeoutError;

    use sentry::protocol::{EnvelopeItem, Event};

    use super::*;

    /// A Sentry stand-in on 127.0.0.1:0: records every POSTed envelope (after `delay`, before it
    /// answers 200). Returns a DSN for it and the events it received.
    fn receiver(delay: Duration) -> (String, mpsc::Receiver<Event<'static>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    assert!(line.starts_with("POST /api/1/envelope/ "), "{line:?}");
                    let mut length = None;
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        let (name, value) = header.split_once(':').unwrap();
                        if name.eq_ignore_ascii_case("content-length") {
                            length = Some(value.trim().parse::<usize>().unwrap());
                        }
                    }
                    let mut body = vec![0; length.expect("a Content-Length")];
                    reader.read_exact(&mut body).unwrap();
                    let envelope = Envelope::from_slice(&body).expect("an envelope");
                    for item in envelope.into_items() {
                        if let EnvelopeItem::Event(event) = item {
                            let _ = tx.send(*event);
                        }
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                    );
                });
            }
        });
        (format!("http://key@127.0.0.1:{port}/1"), rx)
    }

    /// The next event whose exception values contain `needle`, within 10 s.
    fn event_with(events: &mpsc::Receiver<Event<'static>>, needle: &str) -> Event<'static> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match events.recv_timeout(left) {
                Ok(e) if values(&e).iter().any(|v| v.contains(needle)) => return e,
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("no event about {needle:?} within 10 s")
                }
            }
        }
    }

    fn values(event: &Event<'_>) -> Vec<String> {
        event
            .exception
            .iter()
            .map(|e| e.value.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn pause_follows_rate_limits_and_retry_after() {
        let mut h = HeaderMap::new();
        assert_eq!(pause(&h, StatusCode::OK), None);
        assert_eq!(
            pause(&h, StatusCode::TOO_MANY_REQUESTS),
            Some(DEFAULT_PAUSE)
        );
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(
            pause(&h, StatusCode::TOO_MANY_REQUESTS),
            Some(Duration::from_secs(7))
        );
        h.insert(
            "x-sentry-rate-limits",
            "60:error:key, 2700:default:organization".parse().unwrap(),
        );
        assert_eq!(pause(&h, StatusCode::OK), Some(Duration::from_secs(2700)));
    }

    #[test]
    fn reports_panics_and_server_errors_through_the_real_transport() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path());

        // No DSN (or an empty one): nothing is set up.
        let off = init(&config).unwrap();
        assert!(!off.enabled());
        config.sentry_dsn = Some(" ".into());
        assert!(!init(&config).unwrap().enabled());
        assert!(!ENABLED.load(Ordering::Relaxed));
        config.sentry_dsn = Some("not a dsn".into());
        assert!(init(&config).is_err());

        // Each envelope is recorded 300 ms after it arrives, so flushing has to wait for it.
        let (dsn, events) = receiver(Duration::from_millis(300));
        config.sentry_dsn = Some(dsn);
        let reports = init(&config).unwrap();
        assert!(reports.enabled());
        let release = format!("chinwag@{}", env!("CARGO_PKG_VERSION"));
        assert_eq!(RELEASE, release);

        // A panic on another thread is reported (and the thread still panics).
        let joined = std::thread::spawn(|| panic!("reports test: deliberate panic")).join();
        assert!(joined.is_err());
        let event = event_with(&events, "reports test: deliberate panic");
        assert_eq!(event.exception[0].ty, "panic");
        assert_eq!(event.level, sentry::Level::Fatal);
        assert_eq!(event.release.as_deref(), Some(release.as_str()));

        // A 500's cause: each link of the chain is one exception, root cause first.
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "reports test: no such disk");
        let cause = anyhow::Error::new(io)
            .context("reading the disk")
            .context("storing an upload");
        server_error(&cause);
        // Dropping the guard waits until the report was received.
        drop(reports);
        let event = std::iter::from_fn(|| events.try_recv().ok())
            .find(|e| values(e).iter().any(|v| v.contains("no such disk")))
            .expect("the report was received before the guard's drop returned");
        assert_eq!(
            values(&event),
            [
                "reports test: no such disk",
                "reading the disk",
                "storing an upload"
            ]
        );
        assert_eq!(event.exception[0].ty, "Custom");
        assert_eq!(event.release.as_deref(), Some(release.as_str()));
        assert!(event.contexts.contains_key("os"), "{:?}", event.contexts);

        // Off again: nothing more is sent.
        server_error(&anyhow::anyhow!("reports test: after shutdown"));
        std::thread::sleep(Duration::from_millis(800));
        assert!(!std::iter::from_fn(|| events.try_recv().ok())
            .any(|e| values(&e).iter().any(|v| v.contains("after shutdown"))));
    }
}
