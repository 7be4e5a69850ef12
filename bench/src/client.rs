//! The HTTP client of one server: the POSTs the bench makes, and SSE streams read frame by frame.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::BytesMut;
use serde::Deserialize;
use serde_json::json;

use crate::server::Server;

/// How long one POST may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
struct Created {
    data: CreatedData,
}

#[derive(Deserialize)]
struct CreatedData {
    chat: ChatRef,
}

#[derive(Deserialize)]
struct ChatRef {
    id: i64,
}

/// A client of one server.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: Arc<str>,
}

impl Api {
    pub fn new(server: &Server) -> Result<Api> {
        Api::from_address(server, None)
    }

    /// A client whose connections come from `local` (another loopback address, so that the
    /// server's per-address limits tell it apart), or from the default one.
    pub fn from_address(server: &Server, local: Option<std::net::IpAddr>) -> Result<Api> {
        Api::at(server.base(), local)
    }

    /// A client of the server at `base` (`http://ADDR`), connecting from `local` if given.
    pub fn at(base: &str, local: Option<std::net::IpAddr>) -> Result<Api> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .local_address(local)
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Api {
            http,
            base: base.into(),
        })
    }

    /// `POST /v1/{kind}` with `{"data": data}`; the answer's body when it is a 2xx.
    async fn post(&self, token: &str, kind: &str, data: serde_json::Value) -> Result<bytes::Bytes> {
        let res = self
            .http
            .post(format!("{}/v1/{kind}", self.base))
            .bearer_auth(token)
            .timeout(REQUEST_TIMEOUT)
            .json(&json!({ "data": data }))
            .send()
            .await
            .with_context(|| format!("POST /v1/{kind}"))?;
        let status = res.status();
        let body = res.bytes().await?;
        if !status.is_success() {
            bail!(
                "POST /v1/{kind} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(body)
    }

    /// The direct chat of the token's user with `other`.
    pub async fn create_chat(&self, token: &str, other: &str) -> Result<i64> {
        let body = self
            .post(token, "createChat", json!({ "userIds": [other] }))
            .await?;
        let created: Created = serde_json::from_slice(&body).context("createChat answer")?;
        Ok(created.data.chat.id)
    }

    /// A group of the token's user with `others`.
    pub async fn create_group(&self, token: &str, others: &[String], name: &str) -> Result<i64> {
        let body = self
            .post(
                token,
                "createChat",
                json!({ "userIds": others, "name": name }),
            )
            .await?;
        let created: Created = serde_json::from_slice(&body).context("createChat answer")?;
        Ok(created.data.chat.id)
    }

    /// Adds `users` (at most 500) to a group of the token's user.
    pub async fn add_members(&self, token: &str, chat_id: i64, users: &[String]) -> Result<()> {
        self.post(
            token,
            "addMembers",
            json!({ "chatId": chat_id, "userIds": users }),
        )
        .await?;
        Ok(())
    }

    /// Sends text messages `(client id, text)` in one request.
    pub async fn send_texts(
        &self,
        token: &str,
        chat_id: i64,
        texts: &[(String, String)],
    ) -> Result<()> {
        let messages: Vec<_> = texts
            .iter()
            .map(|(id, text)| json!({ "clientMessageId": id, "chatId": chat_id, "text": text }))
            .collect();
        self.post(token, "message", json!({ "messages": messages }))
            .await?;
        Ok(())
    }

    /// Opens `GET /v1/events` without a snapshot, resuming after `last_event_id`, and waits for
    /// its first bytes.
    pub async fn resume_stream(&self, token: &str, last_event_id: i64) -> Result<SseStream> {
        let url = format!("{}/v1/events?token={token}&snapshot=0", self.base);
        let res = self
            .http
            .get(url)
            .header("Last-Event-ID", last_event_id.to_string())
            .send()
            .await?;
        if res.status() != reqwest::StatusCode::OK {
            bail!("GET /v1/events answered {}", res.status());
        }
        Ok(SseStream {
            res,
            buf: BytesMut::new(),
        })
    }

    /// Uploads `bytes` as a file (`POST /v1/files`); the answer's body when it is a 2xx.
    pub async fn upload(&self, token: &str, bytes: Vec<u8>) -> Result<serde_json::Value> {
        let res = self
            .http
            .post(format!("{}/v1/files", self.base))
            .bearer_auth(token)
            .timeout(Duration::from_secs(120))
            .body(bytes)
            .send()
            .await
            .context("POST /v1/files")?;
        let status = res.status();
        let body: serde_json::Value = res.json().await?;
        if !status.is_success() {
            bail!("POST /v1/files answered {status}: {body}");
        }
        Ok(body)
    }

    /// The newest event id `token`'s user has (a poll that answers at once).
    pub async fn cursor(&self, token: &str) -> Result<i64> {
        let res = self
            .http
            .get(format!("{}/v1/poll?timeout=0&token={token}", self.base))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await?;
        let body: serde_json::Value = res.json().await?;
        body["next"].as_i64().context("poll answer without next")
    }

    /// The value of the `/metrics` sample named exactly `sample` (name and labels).
    pub async fn metric(&self, service_key: &str, sample: &str) -> Result<f64> {
        let page = self
            .http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(service_key)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .context("GET /metrics")?
            .error_for_status()?
            .text()
            .await?;
        page.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .with_context(|| format!("no {sample} in /metrics"))
    }

    /// The status of `POST /v1/chats` (the chat list), whatever it is.
    pub async fn chats_status(&self, token: &str) -> Result<u16> {
        let res = self
            .http
            .post(format!("{}/v1/chats", self.base))
            .bearer_auth(token)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .context("POST /v1/chats")?;
        Ok(res.status().as_u16())
    }

    /// Sends one text message.
    pub async fn send(&self, token: &str, chat_id: i64, client_id: &str) -> Result<()> {
        let msg =
            json!({ "clientMessageId": client_id, "chatId": chat_id, "text": "bench message" });
        self.post(token, "message", json!({ "messages": [msg] }))
            .await?;
        Ok(())
    }

    /// Opens `GET /v1/events` without a snapshot and waits for its first bytes, after which the
    /// server has subscribed the stream.
    pub async fn open_stream(&self, token: &str) -> Result<SseStream> {
        let url = format!("{}/v1/events?token={token}&snapshot=0", self.base);
        let opened = async {
            let res = self.http.get(url).send().await?;
            if res.status() != reqwest::StatusCode::OK {
                let status = res.status();
                let body = res.text().await.unwrap_or_default();
                bail!("GET /v1/events answered {status}: {body}");
            }
            let mut stream = SseStream {
                res,
                buf: BytesMut::new(),
            };
            if !stream.read().await? {
                bail!("the stream ended before its first bytes");
            }
            Ok(stream)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, opened)
            .await
            .context("opening a stream timed out")?
    }
}

/// An open SSE response and the bytes read from it that are not yet a whole frame.
pub struct SseStream {
    res: reqwest::Response,
    buf: BytesMut,
}

impl SseStream {
    /// Reads the next chunk into the buffer; false when the server ended the stream.
    pub async fn read(&mut self) -> Result<bool> {
        match self.res.chunk().await? {
            Some(chunk) => {
                self.buf.extend_from_slice(&chunk);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Takes every byte read so far out of the buffer.
    pub fn take_all(&mut self) -> BytesMut {
        self.buf.split()
    }

    /// Takes the next complete frame (up to its blank line) out of the buffer.
    pub fn next_frame(&mut self) -> Option<BytesMut> {
        let end = self.buf.windows(2).position(|w| w == b"\n\n")?;
        Some(self.buf.split_to(end + 2))
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    data: WireMessage,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessage {
    client_message_id: String,
}

/// The client message id of a `message` frame; None for any other frame.
pub fn message_client_id(frame: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(frame).ok()?;
    let mut is_message = false;
    let mut data = None;
    for line in text.lines() {
        if line == "event: message" {
            is_message = true;
        } else if let Some(d) = line.strip_prefix("data: ") {
            data = Some(d);
        }
    }
    if !is_message {
        return None;
    }
    let env: Envelope = serde_json::from_str(data?).ok()?;
    (env.kind == "message").then_some(env.data.client_message_id)
}
