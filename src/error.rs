//! The protocol's table of error reasons: every failure a caller can see is one variant here, and
//! [`Error::response_parts`] is the one place a failure becomes a status and a JSON body.

use serde_json::json;

use crate::model::{ChatId, MessageId};

/// A failure with its protocol `reason`. Handlers return these; the HTTP layer renders them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: malformed JSON, invalid UTF-8, a missing or mistyped field (the message names it).
    #[error("{0}")]
    BadRequest(String),
    /// 400: the body's `type` differs from the path's.
    #[error("the body's type \"{body}\" differs from the path's \"{path}\"")]
    TypeMismatch { path: String, body: String },
    /// 404: unknown request type or path.
    #[error("{0}")]
    TypeNotFound(String),
    /// 405: a known path asked with the wrong method.
    #[error("{method} is not allowed here; use {allowed}")]
    MethodNotAllowed {
        method: String,
        allowed: &'static str,
    },
    /// 401: missing, malformed, forged or expired token (or service key).
    #[error("{0}")]
    TokenInvalid(String),
    /// 403: authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such chat, or the caller is not a member.
    #[error("chat {0} does not exist")]
    ChatNotFound(ChatId),
    /// 404: no such message, or not in a chat the caller is a member of.
    #[error("message {0} does not exist")]
    MessageNotFound(MessageId),
    /// 404: no such file, or not visible to the caller.
    #[error("file {0} does not exist")]
    FileNotFound(String),
    /// 404: no consultation chat with that id that the caller is a member of.
    #[error("consultation {0} does not exist")]
    ConsultationNotFound(String),
    /// 409: writing to a closed chat.
    #[error("chat {0} is closed")]
    ChatClosed(ChatId),
    /// 413: body or upload over the limit (the limit in bytes).
    #[error("the body is larger than the limit of {0} bytes")]
    PayloadTooLarge(u64),
    /// 413: a message's text plus params over `--max-message-bytes`.
    #[error("{field} is {size} bytes of text and params, over the limit of {limit}")]
    MessageTooLarge {
        field: String,
        size: usize,
        limit: usize,
    },
    /// 414: the request target (path and query) over the limit (in bytes).
    #[error("the request target is {size} bytes, over the limit of {limit}")]
    UriTooLong { size: usize, limit: usize },
    /// 431: more header fields, or more header bytes, than the limit (the message says which).
    #[error("{0}")]
    HeadersTooLarge(String),
    /// 408: the request's body did not arrive within the body timeout.
    #[error("the request's body did not arrive within {} s", .0.as_secs())]
    RequestTimeout(std::time::Duration),
    /// 429: the caller is over a rate limit (`limit` names it); retry after `retry_after` seconds.
    #[error("too many requests (the {limit} limit); retry after {retry_after} s")]
    RateLimited {
        limit: &'static str,
        retry_after: u64,
    },
    /// 503: the server is shutting down and takes no new work; retry after `retry_after` seconds.
    #[error("the server is restarting; retry after {retry_after} s")]
    Unavailable { retry_after: u64 },
    /// 416: a `Range` no byte of the file satisfies (the file's size in bytes).
    #[error("the range is not satisfiable: the file has {0} bytes")]
    RangeNotSatisfiable(u64),
    /// 507: the disk (or the database's `--max-db-size`) is full; nothing was stored.
    #[error("the server's storage is full; nothing was stored")]
    InsufficientStorage,
    /// 503: the server is up but cannot do its work (`/healthz` while writes fail).
    #[error("{0}")]
    Unhealthy(String),
    /// 500: a bug or an I/O fault. The cause is logged, never sent.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// HTTP status, stable reason string, and the human message sent to the caller.
    pub fn response_parts(&self) -> (u16, &'static str, String) {
        let (status, reason) = match self {
            Error::BadRequest(_) => (400, "bad_request"),
            Error::TypeMismatch { .. } => (400, "type_mismatch"),
            Error::TypeNotFound(_) => (404, "type_not_found"),
            Error::MethodNotAllowed { .. } => (405, "method_not_allowed"),
            Error::TokenInvalid(_) => (401, "token_invalid"),
            Error::Forbidden(_) => (403, "forbidden"),
            Error::ChatNotFound(_) | Error::ConsultationNotFound(_) => (404, "chat_not_found"),
            Error::MessageNotFound(_) => (404, "message_not_found"),
            Error::FileNotFound(_) => (404, "file_not_found"),
            Error::ChatClosed(_) => (409, "chat_closed"),
            Error::PayloadTooLarge(_) | Error::MessageTooLarge { .. } => (413, "payload_too_large"),
            Error::RequestTimeout(_) => (408, "request_timeout"),
            Error::UriTooLong { .. } => (414, "uri_too_long"),
            Error::HeadersTooLarge(_) => (431, "headers_too_large"),
            Error::RateLimited { .. } => (429, "rate_limited"),
            Error::Unavailable { .. } | Error::Unhealthy(_) => (503, "unavailable"),
            Error::RangeNotSatisfiable(_) => (416, "range_not_satisfiable"),
            Error::InsufficientStorage => (507, "insufficient_storage"),
            Error::Internal(_) => (500, "server_error"),
        };
        let message = match self {
            Error::Internal(_) => "internal error; see the server log".to_string(),
            // Messages quote what the caller sent (serde's "invalid type: string …", a path, a
            // key): cut here, once, for every message, present and future.
            other => clip(&other.to_string()),
        };
        (status, reason, message)
    }

    /// The seconds a `Retry-After` header carries, for the errors that have one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::RateLimited { retry_after, .. } | Error::Unavailable { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// Whether the connection is closed after this answer: a body that did not arrive (or, after
    /// an oversized head, was never read) is unread, and a server that is shutting down takes no more requests on the connection.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Error::RequestTimeout(_)
                | Error::Unavailable { .. }
                | Error::UriTooLong { .. }
                | Error::HeadersTooLarge(_)
        )
    }

    /// The error body: `{"error": {"code", "reason", "message"}}`.
    pub fn body(&self) -> serde_json::Value {
        let (code, reason, message) = self.response_parts();
        json!({"error": {"code": code, "reason": reason, "message": message}})
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        if is_full(&e) {
            return Error::InsufficientStorage;
        }
        Error::Internal(anyhow::Error::new(e).context("database"))
    }
}

/// Whether SQLite failed for want of space: `SQLITE_FULL` (a full disk, or the page limit of
/// `--max-db-size`).
pub fn is_full(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

/// An I/O error as the caller sees it: a full disk (`ENOSPC`, or a quota: `EDQUOT`) is
/// `insufficient_storage`; anything else a 500 whose cause, `what` failed, is logged.
pub fn io(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            tracing::error!("{what}: {e}");
            Error::InsufficientStorage
        }
        _ => Error::Internal(anyhow::Error::new(e).context(what)),
    }
}

/// How much of a caller's value an error message quotes.
pub const QUOTE_CHARS: usize = 64;

/// A caller's value as an error message may quote it: its first [`QUOTE_CHARS`] characters, with
/// `…` when there was more (a 1 MB value must not come back whole).
pub fn short(value: &str) -> String {
    match value.char_indices().nth(QUOTE_CHARS) {
        Some((at, _)) => format!("{}…", &value[..at]),
        None => value.to_string(),
    }
}

/// Longest message an error carries, after every quoted value in it was cut by [`short`].
const MAX_MESSAGE_CHARS: usize = 512;

/// `message` with each quoted run (`"…"` or `` `…` ``) and each unbroken word longer than
/// [`QUOTE_CHARS`] cut by [`short`], and the whole at most [`MAX_MESSAGE_CHARS`].
pub fn clip(message: &str) -> String {
    if message.chars().count() <= QUOTE_CHARS {
        return message.to_string();
    }
    let mut out = String::with_capacity(message.len().min(4 * MAX_MESSAGE_CHARS));
    let mut rest = message;
    while let Some(c) = rest.chars().next() {
        let (run, after) = match c {
            '"' | '`' => {
                // Up to the closing quote, skipping escaped ones (\" inside a Debug string).
                let body = &rest[1..];
                let mut end = None;
                let mut escaped = false;
                for (i, ch) in body.char_indices() {
                    match ch {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        ch if ch == c => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                match end {
                    Some(i) => {
                        out.push(c);
                        out.push_str(&short(&body[..i]));
                        out.push(c);
                        rest = &body[i + 1..];
                        continue;
                    }
                    None => rest.split_at(rest.find(char::is_whitespace).unwrap_or(rest.len())),
                }
            }
            c if c.is_whitespace() => rest.split_at(c.len_utf8()),
            _ => rest.split_at(rest.find(char::is_whitespace).unwrap_or(rest.len())),
        };
        out.push_str(&short(run));
        rest = after;
        if out.len() > 4 * MAX_MESSAGE_CHARS {
            break;
        }
    }
    match out.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((at, _)) => format!("{}…", &out[..at]),
        None => out,
    }
}

/// Shorthand for results whose error is the protocol's.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = Error::Internal(anyhow::anyhow!("disk on fire at /secret/path"));
        let body = e.body().to_string();
        assert!(body.contains("server_error"));
        assert!(!body.contains("secret"));
    }

    #[test]
    fn short_cuts_long_values_at_a_character() {
        assert_eq!(short("abc"), "abc");
        let long = "é".repeat(1000);
        let cut = short(&long);
        assert_eq!(cut.chars().count(), QUOTE_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn clip_cuts_quoted_values_and_long_words() {
        let big = "x".repeat(1_000_000);
        let serde = format!("data.chatId: invalid type: string \"{big}\", expected a whole number");
        let cut = clip(&serde);
        assert!(
            cut.starts_with("data.chatId: invalid type: string \"xxx"),
            "{cut}"
        );
        assert!(cut.ends_with("…\", expected a whole number"), "{cut}");
        assert!(cut.chars().count() < 150, "{cut}");
        let spaced = format!("no such endpoint: POST /v1/{}", "a b ".repeat(100_000));
        assert!(clip(&spaced).chars().count() <= MAX_MESSAGE_CHARS + 1);
        assert!(clip(&format!("`{big}` and /{big}")).chars().count() < 150);
        let plain =
            "data.messages[1].chatId is required (and data.messages[1].chat is not a known field)";
        assert_eq!(clip(plain), plain);
    }

    #[test]
    fn a_full_device_is_insufficient_storage() {
        use std::io::Write;
        // /dev/full fails every write with ENOSPC, as a full disk does.
        let Ok(mut full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let e = full.write_all(b"x").and_then(|_| full.flush()).unwrap_err();
        let (status, reason, _) = io("writing an upload")(e).response_parts();
        assert_eq!((status, reason), (507, "insufficient_storage"));
        let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(io("x")(other).response_parts().0, 500);
    }

    #[test]
    fn not_member_reads_as_not_found() {
        let (status, reason, message) = Error::ChatNotFound(ChatId::new(17)).response_parts();
        assert_eq!((status, reason), (404, "chat_not_found"));
        assert_eq!(message, "chat 17 does not exist");
    }
}
