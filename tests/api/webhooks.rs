//! Webhooks: a real receiver on a loopback port gets one signed delivery per message for each
//! member with no open connection, retried until it answers 2xx, across a restart, and a receiver
//! that fails or hangs never holds up sending.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chinwag::config::Config;
use chinwag::webhooks::{deliver_once, pending};
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::watch;

use crate::helpers::{spawn_app, spawn_with, wait_for};

const HOOK_SECRET: &str = "hook-secret";

/// How the receiver answers its `n`-th request (from 0).
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    /// Never answers.
    Hang,
}

/// One request the receiver got.
struct Hit {
    headers: http::HeaderMap,
    body: Bytes,
    /// What the receiver answered (0 for a request it never answered).
    status: u16,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }

    /// Whether `X-Chinwag-Signature` is `sha256=` and the hex HMAC-SHA256 of the raw body.
    fn signature_is_valid(&self, secret: &str) -> bool {
        let Some(hex) = self.header("x-chinwag-signature").strip_prefix("sha256=") else {
            return false;
        };
        let Some(sig) = decode_hex(hex) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(&self.body);
        mac.verify_slice(&sig).is_ok()
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A webhook receiver on 127.0.0.1 that records every request.
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    count: watch::Receiver<usize>,
}

impl Receiver {
    /// Starts a receiver that answers its `n`-th request with `answer(n)`.
    async fn start(answer: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let (count_tx, count) = watch::channel(0);
        let count_tx = Arc::new(count_tx);
        let answer = Arc::new(answer);
        let recorded = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (hits, count_tx, answer) = (recorded.clone(), count_tx.clone(), answer.clone());
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let (hits, count_tx, answer) = (hits.clone(), count_tx.clone(), answer.clone());
                    async move {
                        let headers = req.headers().clone();
                        let body = req.into_body().collect().await?.to_bytes();
                        let n = {
                            let mut hits = hits.lock().unwrap();
                            hits.push(Hit {
                                headers,
                                body,
                                status: 0,
                            });
                            hits.len() - 1
                        };
                        let status = match answer(n) {
                            Answer::Status(s) => s,
                            Answer::Hang => {
                                count_tx.send_modify(|c| *c += 1);
                                std::future::pending::<()>().await;
                                unreachable!()
                            }
                        };
                        hits.lock().unwrap()[n].status = status;
                        count_tx.send_modify(|c| *c += 1);
                        let mut res = hyper::Response::new(Full::new(Bytes::from_static(b"ok")));
                        *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        Ok::<_, hyper::Error>(res)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { url, hits, count }
    }

    /// Waits (up to `secs`) until `n` requests were answered (or, hanging, received).
    async fn wait_for_requests(&self, n: usize, secs: f64) {
        let what = format!("the receiver to get {n} requests");
        wait_for(&what, secs, || {
            std::future::ready((*self.count.borrow() >= n).then_some(()))
        })
        .await;
    }

    fn hits(&self) -> std::sync::MutexGuard<'_, Vec<Hit>> {
        self.hits.lock().unwrap()
    }
}

/// Points `config` at `receiver` with the test secret and a short backoff.
fn hooked(config: &mut Config, receiver: &Receiver, backoff_ms: u64) {
    config.webhook_url = Some(receiver.url.clone());
    config.webhook_secret = Some(HOOK_SECRET.into());
    config.webhook_backoff = Duration::from_millis(backoff_ms);
}

#[tokio::test]
async fn a_failing_receiver_gets_the_delivery_after_a_restart_with_a_valid_signature() {
    // Arrange: a receiver that fails three times, then succeeds; bob has no connection.
    let receiver = Receiver::start(|n| Answer::Status(if n < 3 { 500 } else { 200 })).await;
    let url = receiver.url.clone();
    let app = spawn_with(|c| hooked(c, &receiver, 1000)).await;
    let chat = app.direct_chat("alice", "bob").await;

    // Act: alice sends; the first attempt fails and the retry waits a second.
    let msg = app.send_text("alice", chat, "c1", "are you there?").await;
    receiver.wait_for_requests(1, 5.0).await;
    assert_eq!(pending(&app.app.store).await.unwrap(), 1);

    // A restart in between, with a backoff short enough to fail twice more, then succeed.
    let app = app
        .restart_with(|c| {
            c.webhook_url = Some(url);
            c.webhook_secret = Some(HOOK_SECRET.into());
            c.webhook_backoff = Duration::from_millis(10);
        })
        .await;
    assert!(
        *receiver.count.borrow() < 4,
        "the delivery succeeded before the restart"
    );
    receiver.wait_for_requests(4, 10.0).await;
    deliver_once(&app.app.webhook_worker()).await.unwrap();

    // Assert: four attempts of the same signed body, one success, nothing left.
    assert_eq!(pending(&app.app.store).await.unwrap(), 0);
    let hits = receiver.hits();
    let statuses: Vec<u16> = hits.iter().map(|h| h.status).collect();
    assert_eq!(statuses, [500, 500, 500, 200]);
    let first = hits[0].json();
    assert_eq!(first["type"], "message");
    assert_eq!(first["userId"], "bob");
    assert_eq!(first["data"]["id"], msg["id"]);
    assert_eq!(first["data"]["text"], "are you there?");
    assert_eq!(first["data"]["userId"], "alice");
    let id = first["id"].as_str().expect("a delivery id").to_string();
    for hit in hits.iter() {
        assert!(hit.signature_is_valid(HOOK_SECRET), "bad signature");
        assert!(!hit.signature_is_valid("another-secret"));
        assert_eq!(hit.body, hits[0].body, "every attempt sends the same bytes");
        assert_eq!(hit.header("x-chinwag-delivery"), id);
        assert_eq!(hit.header("content-type"), "application/json");
        assert!(hit.header("user-agent").starts_with("Chinwag-Webhooks/"));
    }
}

#[tokio::test]
async fn members_with_an_open_stream_and_the_author_get_no_webhook() {
    let receiver = Receiver::start(|_| Answer::Status(204)).await;
    let app = spawn_with(|c| hooked(c, &receiver, 10)).await;
    let chat = app.group("alice", &["bob", "carol"]).await;
    let _bob = app.events("bob", "snapshot=0", None).await;

    let msg = app.send_text("alice", chat, "c1", "hello team").await;
    receiver.wait_for_requests(1, 5.0).await;
    deliver_once(&app.app.webhook_worker()).await.unwrap();

    // Everything queued with the message is due now, so the pass above sent all of it.
    assert_eq!(pending(&app.app.store).await.unwrap(), 0);
    let hits = receiver.hits();
    let recipients: Vec<Value> = hits.iter().map(|h| h.json()["userId"].clone()).collect();
    assert_eq!(recipients, ["carol"]);
    assert_eq!(hits[0].json()["data"]["id"], msg["id"]);
    assert!(hits[0].signature_is_valid(HOOK_SECRET));
}

#[tokio::test]
async fn without_a_webhook_url_nothing_is_queued() {
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    app.send_text("alice", chat, "c1", "hi").await;

    assert_eq!(pending(&app.app.store).await.unwrap(), 0);
    assert_eq!(deliver_once(&app.app.webhook_worker()).await.unwrap(), 0);
}

#[tokio::test]
async fn a_delivery_is_dropped_after_the_retry_limit() {
    let receiver = Receiver::start(|_| Answer::Status(503)).await;
    let app = spawn_with(|c| {
        hooked(c, &receiver, 5);
        c.webhook_max_attempts = 3;
    })
    .await;
    let chat = app.direct_chat("alice", "bob").await;
    app.send_text("alice", chat, "c1", "anyone?").await;

    receiver.wait_for_requests(3, 10.0).await;
    // Waits for the worker's pass, which gives up after the third failure.
    deliver_once(&app.app.webhook_worker()).await.unwrap();

    assert_eq!(pending(&app.app.store).await.unwrap(), 0);
    assert_eq!(receiver.hits().len(), 3);
}

#[tokio::test]
async fn a_hanging_receiver_does_not_hold_up_sending() {
    let receiver = Receiver::start(|_| Answer::Hang).await;
    let app = spawn_with(|c| hooked(c, &receiver, 10)).await;
    let chat = app.direct_chat("alice", "bob").await;
    app.send_text("alice", chat, "c0", "first").await;
    receiver.wait_for_requests(1, 5.0).await;

    // The worker is stuck on the first delivery; sends still answer (a generous bound).
    let sends = async {
        for i in 1..=20 {
            app.send_text("alice", chat, &format!("c{i}"), "still here?")
                .await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), sends)
        .await
        .expect("20 sends while the receiver hangs");

    // None was answered, so all 21 are still waiting in the outbox.
    assert_eq!(pending(&app.app.store).await.unwrap(), 21);
}

#[tokio::test]
async fn a_webhook_url_without_a_secret_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("data"));
    config.webhook_url = Some("http://127.0.0.1:9/hooks".into());
    let err = chinwag::app::App::open(config)
        .err()
        .expect("no secret, no start");
    assert!(format!("{err:#}").contains("--webhook-secret"), "{err:#}");
}
