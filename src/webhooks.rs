//! Signed webhooks through an outbox. [`queue_message`] writes one delivery per offline recipient
//! inside the message's own transaction; the worker ([`run`], or [`deliver_once`] for one pass)
//! POSTs due deliveries on its own task, signed with HMAC-SHA256, and retries failures with
//! doubling backoff until a 2xx or the attempt limit. It must never hold up the writer or a
//! request: HTTP happens only here, outside any transaction, and each outcome is one small write.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinSet;

use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model::{EventKind, Message, MessageId, UserId};
use crate::presence::Presence;
use crate::store::outbox::{self, Delivery};
use crate::store::{Store, Tx};

/// Deliveries in flight at once.
const CONCURRENCY: usize = 8;
/// Due deliveries read per query.
const BATCH: usize = 64;
/// Longest the idle worker sleeps before looking at the outbox again (it is woken sooner when a
/// delivery is queued or falls due).
const IDLE_CHECK: Duration = Duration::from_secs(60);
/// The `User-Agent` of every delivery.
const USER_AGENT: &str = concat!("Chinwag-Webhooks/", env!("CARGO_PKG_VERSION"));

type HmacSha256 = Hmac<Sha256>;

/// Where deliveries go and how they are signed.
struct Target {
    url: reqwest::Url,
    secret: String,
    client: reqwest::Client,
}

/// How failed deliveries are retried.
#[derive(Clone, Copy, Debug)]
struct Retry {
    backoff: Duration,
    max_attempts: u32,
}

impl Retry {
    /// The wait after the `failures`-th failed attempt: `backoff`, doubling each time, capped.
    fn delay(&self, failures: u32) -> Duration {
        crate::time::doubling(self.backoff, failures, config::WEBHOOK_MAX_BACKOFF)
    }
}

/// The webhook settings of a running server, the worker's wake-up and its one-pass-at-a-time lock.
pub struct Webhooks {
    /// `None` when no URL is configured: nothing is queued or sent.
    target: Option<Arc<Target>>,
    retry: Retry,
    /// Poked when a delivery is queued.
    wake: Notify,
    /// Held for a whole pass, so the worker and a driven pass never send the same row twice.
    pass: Mutex<()>,
}

/// Checks the webhook settings of `config`: a URL must be http(s) and come with a secret, since
/// anyone who learned the URL could forge unsigned events. Returns the URL and secret, if set.
pub fn check(config: &Config) -> anyhow::Result<Option<(reqwest::Url, String)>> {
    let Some(url) = config.webhook_url.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let url =
        reqwest::Url::parse(url).with_context(|| format!("--webhook-url {url:?} is not a URL"))?;
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https"),
        "--webhook-url must start with https:// (or http://), not {}:",
        url.scheme()
    );
    let secret = config
        .webhook_secret
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .context(
            "--webhook-url needs --webhook-secret (CHINWAG_WEBHOOK_SECRET): \
             webhooks are always signed",
        )?;
    Ok(Some((url, secret.to_string())))
}

impl Webhooks {
    /// Reads the webhook settings of `config` (see [`check`]) and builds the HTTP client.
    pub fn new(config: &Config) -> anyhow::Result<Arc<Webhooks>> {
        let retry = Retry {
            backoff: config.webhook_backoff,
            max_attempts: config.webhook_max_attempts.max(1),
        };
        let target = match check(config)? {
            None => None,
            Some((url, secret)) => {
                crate::install_tls_provider();
                let client = reqwest::Client::builder()
                    .user_agent(USER_AGENT)
                    .timeout(config::WEBHOOK_TIMEOUT)
                    // A redirect is an answer that is not a 2xx: retried like any failure.
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .context("building the webhook client")?;
                Some(Arc::new(Target {
                    url,
                    secret,
                    client,
                }))
            }
        };
        Ok(Arc::new(Webhooks {
            target,
            retry,
            wake: Notify::new(),
            pass: Mutex::new(()),
        }))
    }

    /// Whether a webhook URL is configured.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }
}

/// `sha256=<hex HMAC-SHA256 of body keyed with secret>`: the `X-Chinwag-Signature` header value.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 2 * digest.len());
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The delivery id of message `message_id` for `user`: the same on every attempt, unique per
/// message and recipient.
pub fn delivery_id(message_id: MessageId, user: &UserId) -> String {
    format!("msg-{message_id}-{user}")
}

/// Queues one `message` delivery for each of `members` other than the author who has no open
/// stream or poll right now. Call it in the transaction that stores `msg`: the deliveries commit
/// (or roll back) with it. Does nothing when webhooks are off.
pub fn queue_message(
    tx: &mut Tx,
    presence: &Presence,
    webhooks: &Webhooks,
    msg: &Message,
    members: &[UserId],
) -> Result<()> {
    if !webhooks.enabled() {
        return Ok(());
    }
    let now = crate::time::now_ms();
    let mut data = None;
    let mut queued = false;
    for member in members {
        if msg.user_id.as_ref() == Some(member) || presence.has_open(member) {
            continue;
        }
        let data = match &data {
            Some(d) => d,
            None => data.insert(serde_json::to_value(msg).map_err(anyhow::Error::from)?),
        };
        let id = delivery_id(msg.id, member);
        // preserve_order keeps the keys in this order in the body.
        let body =
            json!({"id": id, "type": EventKind::Message.as_str(), "userId": member, "data": data});
        queued |= outbox::enqueue(tx, &id, member, &body.to_string(), now)?;
    }
    if queued {
        // The worker waits for this transaction to commit before it looks (see `run`).
        webhooks.wake.notify_one();
    }
    Ok(())
}

/// What the delivery worker uses: the outbox's database, the webhook settings, the metrics.
#[derive(Clone)]
pub struct Worker {
    pub store: Store,
    pub webhooks: Arc<Webhooks>,
    pub metrics: Arc<Metrics>,
}

/// How many deliveries are waiting in the outbox, due or not.
pub async fn pending(store: &Store) -> Result<usize> {
    store.read(outbox::pending).await
}

/// Sends every delivery due now (at most [`CONCURRENCY`] at a time) and records each outcome;
/// returns how many were attempted. A failure that is retried later falls due after this pass.
/// Waits for a pass already under way to finish first.
pub async fn deliver_once(worker: &Worker) -> Result<usize> {
    let (webhooks, store) = (&worker.webhooks, &worker.store);
    let Some(target) = &webhooks.target else {
        return Ok(0);
    };
    let _pass = webhooks.pass.lock().await;
    let now = crate::time::now_ms();
    let mut attempted = 0;
    loop {
        let batch = store.read(move |c| outbox::due(c, BATCH, now)).await?;
        let read = batch.len();
        let mut rest = batch.into_iter();
        let mut running = JoinSet::new();
        let mut failed = None;
        loop {
            while running.len() < CONCURRENCY {
                let Some(d) = rest.next() else { break };
                running.spawn(attempt(
                    store.clone(),
                    worker.metrics.clone(),
                    target.clone(),
                    webhooks.retry,
                    d,
                ));
            }
            let Some(done) = running.join_next().await else {
                break;
            };
            let outcome = done
                .map_err(|e| Error::Internal(anyhow::Error::new(e).context("webhook attempt")))
                .and_then(|r| r);
            if let Err(e) = outcome {
                failed = Some(e);
            }
        }
        attempted += read;
        // A row whose outcome could not be written is still due: stop rather than resend it.
        if let Some(e) = failed {
            return Err(e);
        }
        if read < BATCH {
            return Ok(attempted);
        }
    }
}

/// POSTs one delivery and records the outcome: gone on a 2xx, else retried later or given up.
async fn attempt(
    store: Store,
    metrics: Arc<crate::metrics::Metrics>,
    target: Arc<Target>,
    retry: Retry,
    d: Delivery,
) -> Result<()> {
    let res = target
        .client
        .post(target.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            "X-Chinwag-Signature",
            signature(&target.secret, d.body.as_bytes()),
        )
        .header("X-Chinwag-Delivery", &d.delivery_id)
        .body(d.body)
        .send()
        .await;
    let problem = match res {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!("answered {}", r.status())),
        // `{:#}` gives the whole chain on one line (reqwest's own message leaves out why).
        Err(e) => Some(format!("failed: {:#}", anyhow::Error::new(e.without_url()))),
    };
    let id = d.id;
    let Some(problem) = problem else {
        metrics.webhook_attempt("delivered");
        return store.write(move |tx| outbox::mark_done(tx, id)).await;
    };
    let failures = d.attempts + 1;
    if failures >= retry.max_attempts {
        metrics.webhook_attempt("dropped");
        tracing::warn!(
            "webhook {}: {problem}; giving up after {failures} attempts",
            d.delivery_id
        );
        return store.write(move |tx| outbox::give_up(tx, id)).await;
    }
    metrics.webhook_attempt("failed");
    let delay = retry.delay(failures);
    tracing::info!(
        "webhook {}: {problem} (attempt {failures}); retrying in {delay:?}",
        d.delivery_id
    );
    let next = crate::time::now_ms() + delay.as_millis() as i64;
    store
        .write(move |tx| outbox::reschedule(tx, id, failures, next))
        .await
}

/// Runs until aborted: a pass whenever deliveries are queued or fall due. Returns at once when
/// webhooks are off.
pub async fn run(worker: Worker) {
    let Some(target) = &worker.webhooks.target else {
        return;
    };
    // The host only: a path or query may hold a token of the receiver's.
    let host = target.url.host_str().unwrap_or_default();
    tracing::info!("webhooks: delivering to {}://{host}", target.url.scheme());
    loop {
        if let Err(e) = deliver_once(&worker).await {
            tracing::warn!("webhooks: a delivery pass failed: {e:?}");
        }
        let wake = &worker.webhooks.wake;
        if let Err(e) = worker.store.idle(outbox::next_due, wake, IDLE_CHECK).await {
            tracing::warn!("webhooks: waiting on the outbox failed: {e:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hex_hmac_sha256_of_the_body() {
        assert_eq!(
            signature("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let retry = Retry {
            backoff: Duration::from_secs(1),
            max_attempts: 10,
        };
        let secs: Vec<u64> = (1..=4).map(|n| retry.delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8]);
        assert_eq!(retry.delay(13), config::WEBHOOK_MAX_BACKOFF);
        assert_eq!(retry.delay(200), config::WEBHOOK_MAX_BACKOFF);
    }

    #[test]
    fn a_url_needs_a_secret_and_an_http_scheme() {
        let mut config = Config::new("unused");
        assert!(!Webhooks::new(&config).unwrap().enabled());

        config.webhook_url = Some("https://host.example/hooks".into());
        let err = Webhooks::new(&config).err().expect("no secret").to_string();
        assert!(err.contains("--webhook-secret"), "{err}");
        config.webhook_secret = Some("  ".into());
        assert!(Webhooks::new(&config).is_err(), "a blank secret is none");

        config.webhook_secret = Some("s3cret".into());
        assert!(Webhooks::new(&config).unwrap().enabled());

        config.webhook_url = Some("ftp://host.example/hooks".into());
        assert!(Webhooks::new(&config).is_err());
        config.webhook_url = Some("not a url".into());
        assert!(Webhooks::new(&config).is_err());
    }
}
