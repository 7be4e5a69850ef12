//! The protocol's table of error reasons: every failure a caller can see is one variant here, and
//! [`Error::response_parts`] is the one place a failure becomes a status and a JSON body.

use serde_json::json;

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
    ChatNotFound(i64),
    /// 404: no such message, or not in a chat the caller is a member of.
    #[error("message {0} does not exist")]
    MessageNotFound(i64),
    /// 404: no such file, or not visible to the caller.
    #[error("file {0} does not exist")]
    FileNotFound(String),
    /// 404: no consultation chat with that id that the caller is a member of.
    #[error("consultation {0} does not exist")]
    ConsultationNotFound(String),
    /// 409: writing to a closed chat.
    #[error("chat {0} is closed")]
    ChatClosed(i64),
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
            Error::RateLimited { .. } => (429, "rate_limited"),
            Error::Unavailable { .. } => (503, "unavailable"),
            Error::Internal(_) => (500, "server_error"),
        };
        let message = match self {
            Error::Internal(_) => "internal error; see the server log".to_string(),
            other => other.to_string(),
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

    /// Whether the connection is closed after this answer: a body that did not arrive is
    /// unread, and a server that is shutting down takes no more requests on the connection.
    pub fn closes_connection(&self) -> bool {
        matches!(self, Error::RequestTimeout(_) | Error::Unavailable { .. })
    }

    /// The error body: `{"error": {"code", "reason", "message"}}`.
    pub fn body(&self) -> serde_json::Value {
        let (code, reason, message) = self.response_parts();
        json!({"error": {"code": code, "reason": reason, "message": message}})
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Internal(anyhow::Error::new(e).context("database"))
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
    fn not_member_reads_as_not_found() {
        let (status, reason, message) = Error::ChatNotFound(17).response_parts();
        assert_eq!((status, reason), (404, "chat_not_found"));
        assert_eq!(message, "chat 17 does not exist");
    }
}
