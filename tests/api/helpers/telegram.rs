//! A fake of Telegram's Bot API, as a small real HTTP server in the test: it knows one bot
//! token, records every send, hands out the updates a test queues through `getUpdates` (held
//! as a long-poll, from the offset asked for), and can be down or under flood control.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::wait_for;

/// The token the fake accepts.
pub const BOT_TOKEN: &str = "4242:fake-bot-token";
/// The staff's group.
pub const GROUP: i64 = -1001234567890;

/// One message the bot sent.
#[derive(Clone, Debug)]
pub struct Sent {
    pub method: String,
    pub message_id: i64,
    pub chat_id: String,
    /// The text, or the caption of a photo or document.
    pub text: String,
    pub reply_to: Option<i64>,
    /// A photo's or document's file name and size.
    pub file: Option<(String, usize)>,
    pub at: Instant,
}

/// How the fake answers sends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Up,
    /// Every call answers 502 (Telegram out of reach).
    Down,
    /// The next send answers 429 with this `retry_after`, then sends work again.
    FloodOnce(u64),
    /// Sends are taken (and seen by [`FakeBot::sent`]) at once, but answered this many
    /// milliseconds later, as a slow network would.
    SlowSends(u64),
}

#[derive(Default)]
struct State {
    sent: Vec<Sent>,
    /// Every call's method, whatever its token, in order.
    calls: Vec<String>,
    /// When sends were refused.
    refused: Vec<Instant>,
    updates: Vec<Value>,
    offsets: Vec<i64>,
    next_update: i64,
    next_message: i64,
    mode: Option<Mode>,
    /// Files the staff sent, by file id: their bytes.
    files: std::collections::HashMap<String, Vec<u8>>,
}

/// A running fake Bot API.
pub struct FakeBot {
    pub url: String,
    state: Arc<Mutex<State>>,
    queued: Arc<Notify>,
}

impl FakeBot {
    pub async fn start() -> FakeBot {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            next_update: 1000,
            next_message: 500,
            ..State::default()
        }));
        let queued = Arc::new(Notify::new());
        let (st, q) = (state.clone(), queued.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (st, q) = (st.clone(), q.clone());
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let (st, q) = (st.clone(), q.clone());
                    async move {
                        if let Some(file) = download(&st, req.uri().path()) {
                            return Ok::<_, hyper::Error>(file);
                        }
                        let (status, body) = answer(&st, &q, req).await;
                        let mut res =
                            hyper::Response::new(Full::new(Bytes::from(body.to_string())));
                        *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        res.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/json"),
                        );
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
        FakeBot { url, state, queued }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = Some(mode);
    }

    /// Every message the bot sent so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.state.lock().unwrap().sent.clone()
    }

    /// Every method called, with any token, in order.
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    /// When sends were refused (down or flood control).
    pub fn refused(&self) -> Vec<Instant> {
        self.state.lock().unwrap().refused.clone()
    }

    /// The offsets `getUpdates` was asked for, in order.
    pub fn offsets(&self) -> Vec<i64> {
        self.state.lock().unwrap().offsets.clone()
    }

    /// Waits until the bot has sent `n` messages; returns them.
    pub async fn wait_sent(&self, n: usize, secs: f64) -> Vec<Sent> {
        wait_for(&format!("the bot to send {n} messages"), secs, || {
            let sent = self.sent();
            std::future::ready((sent.len() >= n).then_some(sent))
        })
        .await
    }

    /// Queues a message from a staff member in the group, replying to the bot's message
    /// `reply_to` when given; returns its update id.
    pub fn staff_writes(&self, text: &str, reply_to: Option<i64>) -> i64 {
        self.staff_sends(json!({"text": text}), reply_to)
    }

    /// Queues a photo from a staff member (`bytes`, with `caption`) replying to `reply_to`.
    pub fn staff_sends_photo(&self, bytes: Vec<u8>, caption: &str, reply_to: i64) -> i64 {
        let size = bytes.len();
        self.state
            .lock()
            .unwrap()
            .files
            .insert("photo-1".into(), bytes);
        let sizes = json!([
            {"file_id": "photo-1-small", "file_unique_id": "s", "width": 9, "height": 6, "file_size": 100},
            {"file_id": "photo-1", "file_unique_id": "p", "width": 30, "height": 20, "file_size": size},
        ]);
        self.staff_sends(json!({"photo": sizes, "caption": caption}), Some(reply_to))
    }

    /// Queues a staff member's message with `content` (its text or media fields).
    fn staff_sends(&self, content: Value, reply_to: Option<i64>) -> i64 {
        let mut s = self.state.lock().unwrap();
        s.next_update += 1;
        s.next_message += 1;
        let mut message = json!({
            "message_id": s.next_message,
            "date": 0,
            "chat": {"id": GROUP, "type": "supergroup", "title": "Support"},
            "from": {"id": 77, "is_bot": false, "first_name": "Ivan", "last_name": "Petrov"},
        });
        for (k, v) in content.as_object().unwrap() {
            message[k] = v.clone();
        }
        if let Some(id) = reply_to {
            message["reply_to_message"] = json!({
                "message_id": id, "date": 0,
                "chat": {"id": GROUP, "type": "supergroup"},
                "from": {"id": 4242, "is_bot": true, "first_name": "Support bot"},
            });
        }
        let id = s.next_update;
        s.updates.push(json!({"update_id": id, "message": message}));
        drop(s);
        self.queued.notify_waiters();
        id
    }
}

/// A file's bytes, as Telegram serves them at `/file/bot{token}/{file_path}`; `None` for any
/// other path.
fn download(state: &Mutex<State>, path: &str) -> Option<hyper::Response<Full<Bytes>>> {
    let rest = path.strip_prefix("/file/bot")?;
    let (status, bytes) = match rest.strip_prefix(&format!("{BOT_TOKEN}/files/")) {
        Some(id) => match state.lock().unwrap().files.get(id) {
            Some(b) => (200, b.clone()),
            None => (404, Vec::new()),
        },
        None => (401, Vec::new()),
    };
    let mut res = hyper::Response::new(Full::new(Bytes::from(bytes)));
    *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
    Some(res)
}

/// The fake's answer to one Bot API call.
async fn answer(
    state: &Mutex<State>,
    queued: &Notify,
    req: hyper::Request<Incoming>,
) -> (u16, Value) {
    let path = req.uri().path().to_string();
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let Some((token, method)) = path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
    else {
        return (
            404,
            json!({"ok": false, "error_code": 404, "description": "Not Found"}),
        );
    };
    state.lock().unwrap().calls.push(method.to_string());
    if token != BOT_TOKEN {
        return (
            401,
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
        );
    }
    let mode = state.lock().unwrap().mode.unwrap_or(Mode::Up);
    if mode == Mode::Down {
        if method.starts_with("send") {
            state.lock().unwrap().refused.push(Instant::now());
        }
        return (
            502,
            json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
        );
    }
    match method {
        "getMe" => (
            200,
            json!({"ok": true, "result": {
                "id": 4242, "is_bot": true, "first_name": "Support bot", "username": "support_test_bot"
            }}),
        ),
        "getFile" => {
            let args: Value = serde_json::from_slice(&body).unwrap_or_default();
            let id = args["file_id"].as_str().unwrap_or_default().to_string();
            let s = state.lock().unwrap();
            match s.files.get(&id) {
                Some(b) => (
                    200,
                    json!({"ok": true, "result": {
                        "file_id": id, "file_unique_id": "u", "file_size": b.len(),
                        "file_path": format!("files/{id}"),
                    }}),
                ),
                None => (
                    400,
                    json!({"ok": false, "error_code": 400,
                                     "description": "Bad Request: invalid file_id"}),
                ),
            }
        }
        "getUpdates" => {
            let args: Value = serde_json::from_slice(&body).unwrap_or_default();
            let offset = args["offset"].as_i64().unwrap_or(0);
            let wait = Duration::from_secs(args["timeout"].as_u64().unwrap_or(0).min(25));
            state.lock().unwrap().offsets.push(offset);
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let notified = queued.notified();
                let ready: Vec<Value> = {
                    let s = state.lock().unwrap();
                    let pending = s.updates.iter();
                    pending
                        .filter(|u| u["update_id"].as_i64().unwrap() >= offset)
                        .cloned()
                        .collect()
                };
                if !ready.is_empty() || tokio::time::Instant::now() >= deadline {
                    return (200, json!({"ok": true, "result": ready}));
                }
                let _ = tokio::time::timeout_at(deadline, notified).await;
            }
        }
        "sendMessage" | "sendPhoto" | "sendDocument" => {
            let taken = take_send(state, mode, method, &content_type, &body);
            let result = match taken {
                Ok(result) => result,
                Err(refused) => return refused,
            };
            if let Mode::SlowSends(ms) = mode {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            (200, json!({"ok": true, "result": result}))
        }
        _ => (
            404,
            json!({"ok": false, "error_code": 404, "description": "Not Found: method"}),
        ),
    }
}

/// Takes a send: records it and gives its `result`, or refuses it under flood control.
fn take_send(
    state: &Mutex<State>,
    mode: Mode,
    method: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Value, (u16, Value)> {
    let mut s = state.lock().unwrap();
    if let Mode::FloodOnce(secs) = mode {
        s.mode = Some(Mode::Up);
        s.refused.push(Instant::now());
        Err((
            429,
            json!({"ok": false, "error_code": 429,
                "description": format!("Too Many Requests: retry after {secs}"),
                "parameters": {"retry_after": secs}}),
        ))
    } else {
        let mut sent = match method {
            "sendMessage" => {
                let args: Value = serde_json::from_slice(body).unwrap();
                Sent {
                    method: method.into(),
                    message_id: 0,
                    chat_id: value_text(&args["chat_id"]),
                    text: args["text"].as_str().unwrap_or_default().into(),
                    reply_to: args["reply_parameters"]["message_id"].as_i64(),
                    file: None,
                    at: Instant::now(),
                }
            }
            _ => multipart(method, content_type, body),
        };
        s.next_message += 1;
        sent.message_id = s.next_message;
        let result = json!({
            "message_id": sent.message_id, "date": 0,
            "chat": {"id": GROUP, "type": "supergroup", "title": "Support"},
        });
        s.sent.push(sent);
        Ok(result)
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A `sendPhoto` or `sendDocument` form, read just far enough for the test.
fn multipart(method: &str, content_type: &str, body: &[u8]) -> Sent {
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("a multipart boundary")
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let text = String::from_utf8_lossy(body);
    let mut sent = Sent {
        method: method.into(),
        message_id: 0,
        chat_id: String::new(),
        text: String::new(),
        reply_to: None,
        file: None,
        at: Instant::now(),
    };
    for part in text.split(delimiter.as_str()) {
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let value = value.strip_suffix("\r\n").unwrap_or(value);
        let name = head
            .split("name=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default();
        let filename = head
            .split("filename=\"")
            .nth(1)
            .and_then(|r| r.split('"').next());
        match (name, filename) {
            ("chat_id", _) => sent.chat_id = value.to_string(),
            ("caption", _) => sent.text = value.to_string(),
            (_, Some(file)) => {
                // The bytes' length, from the raw body (the lossy text may differ for binary).
                let start = find(body, head.as_bytes()).unwrap() + head.len() + 4;
                let end = find(&body[start..], format!("\r\n{delimiter}").as_bytes()).unwrap();
                sent.file = Some((file.to_string(), end));
            }
            _ => {}
        }
    }
    sent
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
