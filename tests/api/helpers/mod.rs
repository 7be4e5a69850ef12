//! The test harness: the real server on port 0 with a temp data directory, and one helper per
//! protocol operation, so tests read like a client.

use std::sync::Arc;
use std::time::Duration;

use chinwag::app::App;
use chinwag::config::Config;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub mod binary;
pub mod nats;
mod sse;
pub mod telegram;

pub use sse::{until_message, Event, Sse};

/// Waits at most `secs` for `probe` to give a value, asking every 20 ms; panics naming `what`
/// when it never does. The one way tests wait for something that happens in the background.
pub async fn wait_for<T, F, Fut>(what: &str, secs: f64, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait_every(what, secs, Duration::from_millis(20), probe).await
}

/// [`wait_for`], asking every `every`: for a probe that is a request a real client paces (one
/// user's requests count against their rate limit).
pub async fn wait_every<T, F, Fut>(what: &str, secs: f64, every: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {secs} s for {what}"
        );
        tokio::time::sleep(every).await;
    }
}

/// Whether `tool` (with `args`) runs here; CI installs it, so there its absence is a failure.
pub fn available(tool: &str, args: &[&str]) -> bool {
    let found = std::process::Command::new(tool)
        .args(args)
        .output()
        .is_ok_and(|out| out.status.success());
    if !found && std::env::var_os("CI").is_some() {
        panic!("{tool} {args:?} does not run here (see .ci/run)");
    }
    found
}

/// The token secret of every test server.
pub const SECRET: &str = "test-secret";

/// The service key of every test server.
pub const SERVICE_KEY: &str = "test-service-key";

/// A running server and a client for it.
pub struct TestApp {
    pub base: String,
    pub app: Arc<App>,
    pub client: reqwest::Client,
    pub dir: Arc<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A server with test defaults: fast pings, short poll presence, janitor driven by hand.
pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// A server whose config `adjust` changes first.
pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    start(dir, adjust).await
}

async fn start(dir: Arc<tempfile::TempDir>, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::new(dir.path().join("data"));
    config.secret = Some(SECRET.into());
    config.service_key = Some(SERVICE_KEY.into());
    config.ping_interval = Duration::from_millis(200);
    config.poll_presence = Duration::from_millis(800);
    config.janitor_interval = Duration::from_secs(3600);
    // Tests send as fast as the machine goes, far above any client's pace: the rate limits stay
    // on (the same code runs) with buckets no test empties; tests of the limits set small ones.
    let generous = chinwag::config::Rate {
        per_second: 1_000_000.0,
        burst: 1_000_000,
    };
    config.user_rate = Some(generous);
    config.ip_rate = Some(generous);
    adjust(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = App::open(config).expect("open app");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(chinwag::server::serve(listener, None, app.clone(), async {
        let _ = stopped.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        app,
        client: http_client(),
        dir,
        stop: Some(stop),
        task: Some(task),
    }
}

/// An HTTP client that opens a new connection per request. Every client in the process needs the
/// TLS provider installed first.
pub fn http_client() -> reqwest::Client {
    chinwag::install_tls_provider();
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// A client token for `user`, valid for an hour.
pub fn token(user: &str) -> String {
    chinwag::auth::mint_claims(SECRET, &json!({"sub": user, "exp": now_s() + 3600}))
}

/// Unix seconds now.
pub fn now_s() -> i64 {
    chinwag::time::now_ms() / 1000
}

impl TestApp {
    /// Stops the server gracefully and waits for it; the data directory stays.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Stops this server and starts a new one on the same data directory.
    pub async fn restart(self) -> TestApp {
        self.restart_with(|_| {}).await
    }

    /// Stops this server and starts a new one on the same data directory, its config changed by
    /// `adjust` (test defaults otherwise, as in [`spawn_with`]).
    pub async fn restart_with(mut self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        self.stop().await;
        start(self.dir.clone(), adjust).await
    }

    /// `POST /v1/{kind}` with `{"data": data}` as `user`: the status and the JSON body (Null if empty).
    pub async fn post(&self, user: &str, kind: &str, data: Value) -> (StatusCode, Value) {
        let res = self
            .client
            .post(format!("{}/v1/{kind}", self.base))
            .bearer_auth(token(user))
            .json(&json!({"type": kind, "data": data}))
            .send()
            .await
            .unwrap();
        read(res).await
    }

    /// `POST /v1/server{path}` with the service key and `body` as JSON: the host backend's call.
    pub async fn host(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .client
            .post(format!("{}/v1/server{path}", self.base))
            .bearer_auth(SERVICE_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        read(res).await
    }

    /// `POST` of raw bytes to a path with optional bearer token.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.post(format!("{}{path}", self.base)).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.unwrap()).await
    }

    /// `POST /v1/{kind}` expecting 2xx; returns the response's `data`.
    pub async fn ok(&self, user: &str, kind: &str, data: Value) -> Value {
        let (status, body) = self.post(user, kind, data).await;
        assert!(status.is_success(), "{kind} failed: {status} {body}");
        body["data"].clone()
    }

    /// Creates (or finds) the direct chat of `a` and `b`; returns its id.
    pub async fn direct_chat(&self, a: &str, b: &str) -> i64 {
        let data = self.ok(a, "createChat", json!({"userIds": [b]})).await;
        data["chat"]["id"].as_i64().unwrap()
    }

    /// Creates a group named "Team" of `admin` and `others` (with one other: their direct chat,
    /// which has no name); returns its id.
    pub async fn group(&self, admin: &str, others: &[&str]) -> i64 {
        let data = match others {
            [_] => json!({"userIds": others}),
            _ => json!({"userIds": others, "name": "Team"}),
        };
        let data = self.ok(admin, "createChat", data).await;
        data["chat"]["id"].as_i64().unwrap()
    }

    /// `user`'s event cursor now, as a poll reports it.
    pub async fn cursor(&self, user: &str) -> i64 {
        let (status, body) = self.poll(user, "timeout=0").await;
        assert_eq!(status, 200, "{body}");
        body["next"].as_i64().unwrap()
    }

    /// Sends one text message; returns the stored message.
    pub async fn send_text(&self, user: &str, chat: i64, client_id: &str, text: &str) -> Value {
        let data = self
            .ok(
                user,
                "message",
                json!({"messages": [{"clientMessageId": client_id, "chatId": chat, "text": text}]}),
            )
            .await;
        data["messages"][0].clone()
    }

    /// `GET /v1/poll` with a query string as `user`.
    pub async fn poll(&self, user: &str, query: &str) -> (StatusCode, Value) {
        let res = self
            .client
            .get(format!("{}/v1/poll?{query}", self.base))
            .bearer_auth(token(user))
            .send()
            .await
            .unwrap();
        read(res).await
    }

    /// Opens `GET /v1/events?{query}` as `user` (token in the query), optionally with Last-Event-ID.
    pub async fn events(&self, user: &str, query: &str, last_event_id: Option<i64>) -> Sse {
        let mut req = self.client.get(format!(
            "{}/v1/events?token={}&{query}",
            self.base,
            token(user)
        ));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let res = req.send().await.unwrap();
        Sse::new(res)
    }
}

/// A response's status and JSON body (Null when empty).
pub async fn read(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let bytes = res.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, body)
}

/// A host request with any method, with `key` (None: no Authorization header); the body as JSON
/// unless Null.
pub async fn host_as(
    app: &TestApp,
    key: Option<&str>,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .request(method, format!("{}/v1/server{path}", app.base));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if !body.is_null() {
        req = req.json(&body);
    }
    read(req.send().await.unwrap()).await
}

/// A host request with any method and the service key ([`TestApp::host`] is its `POST`).
pub async fn host(app: &TestApp, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    host_as(app, Some(SERVICE_KEY), method, path, body).await
}

/// A host request that must succeed; returns the body.
pub async fn host_ok(app: &TestApp, method: Method, path: &str, body: Value) -> Value {
    let (status, out) = host(app, method, path, body).await;
    assert!(status.is_success(), "{path}: {status} {out}");
    out
}

/// The events (`{id, type, data}`) a poll from `since` returns to `user`.
pub async fn polled(app: &TestApp, user: &str, since: i64) -> Vec<Value> {
    let (status, body) = app.poll(user, &format!("since={since}&timeout=0")).await;
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().unwrap().clone()
}

/// The `data` of every `kind` event in `events`.
pub fn data_of(events: &[Value], kind: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["type"] == kind)
        .map(|e| e["data"].clone())
        .collect()
}

/// The `data` of every `kind` event a poll from `since` returns to `user`.
pub async fn polled_of(app: &TestApp, user: &str, since: i64, kind: &str) -> Vec<Value> {
    data_of(&polled(app, user, since).await, kind)
}

/// Whether a pushed event of type `kind` is about chat `chat`.
pub fn concerns(kind: &str, data: &Value, chat: i64) -> bool {
    if kind == "chat" {
        data["id"] == chat
    } else {
        data["chatId"] == chat
    }
}

/// A live SSE stream for each of `users`, with their poll cursor taken just before it opened.
pub async fn watch<'a>(app: &TestApp, users: &[&'a str]) -> Vec<(&'a str, Sse, i64)> {
    let mut watching = Vec::new();
    for &user in users {
        let since = app.cursor(user).await;
        watching.push((user, app.events(user, "snapshot=0", None).await, since));
    }
    watching
}

/// One field of every message of a page (`{"messages": [...]}`), in order.
pub fn message_field(page: &Value, field: &str) -> Vec<Value> {
    page["messages"]
        .as_array()
        .expect("a page of messages")
        .iter()
        .map(|m| m[field].clone())
        .collect()
}

/// The member ids of a chat object, sorted.
pub fn member_ids(chat: &Value) -> Vec<String> {
    let mut ids: Vec<String> = chat["users"]
        .as_array()
        .expect("a chat with users")
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort_unstable();
    ids
}

/// A response status and, for a failure, its `error.reason`.
pub type Outcome = (u16, Option<&'static str>);

pub const OK: Outcome = (200, None);
pub const NO_CONTENT: Outcome = (204, None);
pub const ACCEPTED: Outcome = (202, None);
pub const BAD_REQUEST: Outcome = (400, Some("bad_request"));
pub const FORBIDDEN: Outcome = (403, Some("forbidden"));
pub const NO_CHAT: Outcome = (404, Some("chat_not_found"));
pub const NO_MESSAGE: Outcome = (404, Some("message_not_found"));

/// Asserts a response's status and, for a failure, its `error.reason`.
pub fn assert_outcome(case: &str, status: StatusCode, body: &Value, (want, reason): Outcome) {
    assert_eq!(status.as_u16(), want, "{case}: status of {body}");
    if let Some(reason) = reason {
        assert_eq!(body["error"]["reason"], reason, "{case}: reason of {body}");
    }
}

/// The metrics page, fetched with the service key.
pub async fn page(app: &TestApp) -> String {
    let res = app
        .client
        .get(format!("{}/metrics", app.base))
        .bearer_auth(SERVICE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let kind = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    res.text().await.unwrap()
}

/// The value of the sample named exactly `sample` (name and labels), if the page has it.
pub fn value(page: &str, sample: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}
