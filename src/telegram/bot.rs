//! Telegram's Bot API as the bridge uses it: `getMe`, `getUpdates`, `sendMessage`, `sendPhoto`
//! and `sendDocument`, each answer sorted into taken, wait (`429` with `retry_after`), the token
//! refused, refused for this request, or unreachable. The token is part of every URL, so no
//! error here ever carries a URL.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::Telegram;

/// How long a send or a `getMe` may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a file's download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// The `User-Agent` of every request.
const USER_AGENT: &str = concat!("Chinwag-Telegram/", env!("CARGO_PKG_VERSION"));

/// Why a Bot API call did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// `429`: flood control; try again after this long.
    Wait(Duration),
    /// `401` or `404` on the bot's own URL: the token is wrong or revoked.
    Token(String),
    /// Refused for this request (a `400` or `403`: a bad message, the bot not in the group…).
    Refused(u16, String),
    /// No answer, or a server error: Telegram is out of reach for now.
    Unreachable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Wait(d) => write!(f, "flood control: retry after {}s", d.as_secs()),
            Failure::Token(d) => write!(f, "the bot token was refused ({d})"),
            Failure::Refused(code, d) => write!(f, "refused with {code} ({d})"),
            Failure::Unreachable(d) => write!(f, "not reachable ({d})"),
        }
    }
}

/// The Bot API's envelope.
#[derive(Deserialize)]
struct Answer {
    ok: bool,
    result: Option<Value>,
    error_code: Option<u16>,
    description: Option<String>,
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    retry_after: Option<u64>,
}

/// The bot, as `getMe` describes it.
#[derive(Clone, Debug, Deserialize)]
pub struct Me {
    pub id: i64,
    pub username: Option<String>,
}

/// A message the bot posted, as Telegram answers a send.
#[derive(Clone, Debug, Deserialize)]
pub struct Posted {
    pub message_id: i64,
    pub chat: Chat,
}

/// A Telegram chat.
#[derive(Clone, Debug, Deserialize)]
pub struct Chat {
    pub id: i64,
    pub username: Option<String>,
}

/// Someone on Telegram.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Sender {
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
}

/// A message seen in an update.
#[derive(Clone, Debug, Deserialize)]
pub struct Incoming {
    pub message_id: i64,
    pub chat: Chat,
    pub from: Option<Sender>,
    /// The chat a message is sent on behalf of (an anonymous admin's: the group itself).
    pub sender_chat: Option<Chat>,
    pub text: Option<String>,
    pub caption: Option<String>,
    pub reply_to_message: Option<Box<Replied>>,
    /// A photo, in the sizes Telegram keeps (the largest last).
    pub photo: Option<Vec<TelegramFile>>,
    pub document: Option<TelegramFile>,
}

/// A file on Telegram's side: a photo's size or a document.
#[derive(Clone, Debug, Deserialize)]
pub struct TelegramFile {
    pub file_id: String,
    pub file_size: Option<u64>,
    /// A document's name (photos have none).
    pub file_name: Option<String>,
}

impl Incoming {
    /// The file the message carries, if any: a photo's largest size, or its document; with
    /// whether it is a photo.
    pub fn attachment(&self) -> Option<(&TelegramFile, bool)> {
        match (&self.photo, &self.document) {
            (Some(sizes), _) => sizes.last().map(|f| (f, true)),
            (None, Some(doc)) => Some((doc, false)),
            (None, None) => None,
        }
    }
}

/// The message a reply answers (only what the bridge needs of it).
#[derive(Clone, Debug, Deserialize)]
pub struct Replied {
    pub message_id: i64,
}

/// One update from `getUpdates`: its id, and its message when it is one the bridge can read
/// (an update of another shape, or one that does not decode, has none).
#[derive(Clone, Debug)]
pub struct Update {
    pub update_id: i64,
    pub message: Option<Incoming>,
}

impl Update {
    /// Decodes one update on its own, so that one the bridge cannot read never holds up the rest.
    fn decode(raw: Value) -> Option<Update> {
        let update_id = raw.get("update_id")?.as_i64()?;
        let message = raw
            .get("message")
            .and_then(|m| serde_json::from_value(m.clone()).ok());
        Some(Update { update_id, message })
    }
}

/// An attachment to send: its name, type and bytes.
pub struct Attachment {
    pub name: String,
    pub mime: String,
    pub bytes: Vec<u8>,
}

/// A client of one bot's API.
pub struct Bot {
    http: reqwest::Client,
    base: String,
}

impl Bot {
    /// The bot of `settings`.
    pub fn new(settings: &Telegram) -> anyhow::Result<Bot> {
        crate::install_tls_provider();
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Bot {
            http,
            base: format!("{}/bot{}", settings.api_url, settings.token),
        })
    }

    /// Who the bot is: the check of the token at start.
    pub async fn me(&self) -> Result<Me, Failure> {
        let answer = self.call("getMe", json!({}), REQUEST_TIMEOUT).await?;
        serde_json::from_value(answer).map_err(|e| Failure::Unreachable(format!("getMe: {e}")))
    }

    /// Updates from `offset` on, waiting up to `wait` for one.
    pub async fn updates(&self, offset: i64, wait: Duration) -> Result<Vec<Update>, Failure> {
        let body =
            json!({"offset": offset, "timeout": wait.as_secs(), "allowed_updates": ["message"]});
        let answer = self
            .call("getUpdates", body, wait + REQUEST_TIMEOUT)
            .await?;
        let raw: Vec<Value> = serde_json::from_value(answer)
            .map_err(|e| Failure::Unreachable(format!("getUpdates: {e}")))?;
        Ok(raw.into_iter().filter_map(Update::decode).collect())
    }

    /// Posts `text` to `chat`, as a reply to `reply_to` when given.
    pub async fn send_text(
        &self,
        chat: &str,
        text: &str,
        reply_to: Option<i64>,
    ) -> Result<Posted, Failure> {
        let mut body = json!({"chat_id": chat, "text": text});
        if let Some(id) = reply_to {
            body["reply_parameters"] =
                json!({"message_id": id, "allow_sending_without_reply": true});
        }
        self.posted(
            "sendMessage",
            self.call("sendMessage", body, REQUEST_TIMEOUT).await?,
        )
    }

    /// Posts `file` to `chat` as a photo (`photo`) or a document, with `caption`.
    pub async fn send_file(
        &self,
        chat: &str,
        file: Attachment,
        caption: &str,
        photo: bool,
    ) -> Result<Posted, Failure> {
        let (method, field) = match photo {
            true => ("sendPhoto", "photo"),
            false => ("sendDocument", "document"),
        };
        let part = reqwest::multipart::Part::bytes(file.bytes)
            .file_name(file.name)
            .mime_str(&file.mime)
            .map_err(|e| Failure::Refused(400, format!("the file's type: {e}")))?;
        let form = reqwest::multipart::Form::new()
            .text("chat_id", chat.to_string())
            .text("caption", caption.to_string())
            .part(field, part);
        let req = self
            .http
            .post(format!("{}/{method}", self.base))
            .timeout(REQUEST_TIMEOUT)
            .multipart(form);
        self.posted(method, answer(method, req.send().await).await?)
    }

    /// Downloads file `file_id` (at most `limit` bytes; the Bot API serves up to 20 MB) as
    /// its chunks, once `getFile` has said where it is.
    pub async fn download(
        &self,
        file_id: &str,
        limit: u64,
    ) -> Result<impl tokio_stream::Stream<Item = reqwest::Result<bytes::Bytes>>, Failure> {
        let answer = self
            .call("getFile", json!({"file_id": file_id}), REQUEST_TIMEOUT)
            .await?;
        let size = answer["file_size"].as_u64().unwrap_or(0);
        if size > limit {
            return Err(Failure::Refused(
                413,
                format!("the file has {size} bytes, over {limit}"),
            ));
        }
        let Some(path) = answer["file_path"].as_str() else {
            return Err(Failure::Refused(
                400,
                "getFile: no file_path (over 20 MB?)".into(),
            ));
        };
        // The file's address is the API's with `/file` before the bot's part.
        let (api, bot) = self.base.rsplit_once('/').unwrap_or_default();
        let res = self
            .http
            .get(format!("{api}/file/{bot}/{path}"))
            .timeout(DOWNLOAD_TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                Failure::Unreachable(format!(
                    "a download: {:#}",
                    anyhow::Error::new(e.without_url())
                ))
            })?;
        if !res.status().is_success() {
            return Err(Failure::Unreachable(format!(
                "a download answered {}",
                res.status()
            )));
        }
        Ok(res.bytes_stream())
    }

    fn posted(&self, method: &str, answer: Value) -> Result<Posted, Failure> {
        serde_json::from_value(answer).map_err(|e| Failure::Unreachable(format!("{method}: {e}")))
    }

    async fn call(&self, method: &str, body: Value, timeout: Duration) -> Result<Value, Failure> {
        let req = self
            .http
            .post(format!("{}/{method}", self.base))
            .timeout(timeout)
            .json(&body);
        answer(method, req.send().await).await
    }
}

/// Sorts a Bot API answer into its result or a [`Failure`].
async fn answer(method: &str, res: reqwest::Result<reqwest::Response>) -> Result<Value, Failure> {
    let res = res.map_err(|e| {
        Failure::Unreachable(format!(
            "{method}: {:#}",
            anyhow::Error::new(e.without_url())
        ))
    })?;
    let status = res.status().as_u16();
    let parsed = res.json::<Answer>().await;
    let Ok(a) = parsed else {
        return Err(Failure::Unreachable(format!(
            "{method}: answered {status} without the Bot API's JSON"
        )));
    };
    if a.ok {
        return Ok(a.result.unwrap_or(Value::Null));
    }
    let code = a.error_code.unwrap_or(status);
    let what = format!(
        "{method}: {}",
        a.description.unwrap_or_else(|| format!("error {code}"))
    );
    Err(match code {
        429 => {
            let secs = a.parameters.and_then(|p| p.retry_after).unwrap_or(5);
            Failure::Wait(Duration::from_secs(secs.clamp(1, 3600)))
        }
        401 | 404 => Failure::Token(what),
        400..=499 => Failure::Refused(code, what),
        _ => Failure::Unreachable(what),
    })
}
