//! Request bodies: read within the size limit (refusing an honest oversized `Content-Length`
//! before reading, and stopping a lying or chunked one at the limit) and the time limit (a
//! whole JSON body within it; an upload with no longer pause), then parse the envelope.

use std::time::Duration;

use bytes::Bytes;
use http::header;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;

use crate::error::{Error, Result};

/// Reads the whole body, failing with 413 past `limit` bytes without buffering more than that,
/// and with 408 when it has not all arrived within `timeout`.
pub async fn read_limited(req: super::In, limit: usize, timeout: Duration) -> Result<Bytes> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Error::PayloadTooLarge(limit as u64));
    }
    let read = tokio::time::timeout(timeout, Limited::new(req.into_body(), limit).collect());
    match read.await.map_err(|_| Error::RequestTimeout(timeout))? {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Error::PayloadTooLarge(limit as u64))
        }
        Err(e) => Err(Error::BadRequest(format!("could not read the body: {e}"))),
    }
}

/// Why the next piece of an upload did not come.
#[derive(Debug, thiserror::Error)]
pub enum PieceError {
    /// None came within the body timeout.
    #[error("no part of the body arrived for {} s", .0.as_secs())]
    Timeout(Duration),
    /// The connection failed.
    #[error(transparent)]
    Read(#[from] super::BodyError),
}

impl From<PieceError> for Error {
    fn from(e: PieceError) -> Error {
        match e {
            PieceError::Timeout(t) => Error::RequestTimeout(t),
            PieceError::Read(e) => Error::BadRequest(format!("could not read the upload: {e}")),
        }
    }
}

/// The body's data as a stream of pieces, each of which must come within `gap` of the one
/// before (an upload may take long in all, but may not stall).
pub fn paced(
    req: super::In,
    gap: Duration,
) -> impl tokio_stream::Stream<Item = std::result::Result<Bytes, PieceError>> + Unpin + Send {
    use tokio_stream::StreamExt;
    let frames = http_body_util::BodyStream::new(req.into_body());
    let data = frames.filter_map(|frame| match frame {
        Ok(f) => f.into_data().ok().map(Ok),
        Err(e) => Some(Err(PieceError::Read(e))),
    });
    Box::pin(data.timeout(gap).map(move |piece| match piece {
        Ok(piece) => piece,
        Err(_) => Err(PieceError::Timeout(gap)),
    }))
}

/// A decoded envelope: the type it names (if any), its data (`{}` when absent), and the names
/// of any other top-level fields (request fields sent outside `data` by mistake).
#[derive(Debug, PartialEq)]
pub struct Envelope {
    pub kind: Option<String>,
    pub data: Value,
    pub stray: Vec<String>,
}

/// Parses a JSON body strictly (see [`crate::strict`]); `None` when it is empty (or only white
/// space). Errors name places under `root`: `""` for an envelope, `"body"` for the host API.
pub fn json(bytes: &[u8], root: &str) -> Result<Option<Value>> {
    crate::strict::body(bytes, root)
}

/// Decodes `{"type": T, "data": D}`; an empty body is an empty envelope.
pub fn envelope(bytes: &[u8]) -> Result<Envelope> {
    let Some(value) = json(bytes, "")? else {
        return Ok(Envelope {
            kind: None,
            data: Value::Object(Default::default()),
            stray: Vec::new(),
        });
    };
    let Value::Object(mut obj) = value else {
        return Err(Error::BadRequest(
            "the body must be a JSON object {\"type\", \"data\"}".into(),
        ));
    };
    let kind = match obj.remove("type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(Error::BadRequest("type must be a string".into())),
    };
    let data = match obj.remove("data") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(d @ Value::Object(_)) => d,
        Some(_) => return Err(Error::BadRequest("data must be a JSON object".into())),
    };
    let stray = obj.keys().cloned().collect();
    Ok(Envelope { kind, data, stray })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(bytes: &[u8]) -> String {
        match envelope(bytes) {
            Err(Error::BadRequest(m)) => m,
            other => panic!("expected bad_request, got {other:?}"),
        }
    }

    #[test]
    fn decodes_type_and_data() {
        let e = envelope(br#"{"type":"typing","data":{"chatId":1}}"#).unwrap();
        assert_eq!(e.kind.as_deref(), Some("typing"));
        assert_eq!(e.data["chatId"], 1);
        let e = envelope(b"").unwrap();
        assert_eq!(
            e,
            Envelope {
                kind: None,
                data: serde_json::json!({}),
                stray: Vec::new(),
            }
        );
        let e = envelope(br#"{"type":"history","chatId":1}"#).unwrap();
        assert_eq!(e.stray, ["chatId"]);
    }

    #[test]
    fn names_the_problem() {
        assert!(bad(b"\xff\xfe").contains("UTF-8"));
        assert!(bad(b"{\"type\":").contains("JSON"));
        assert!(bad(b"[1,2]").contains("object"));
        assert!(bad(br#"{"type":5}"#).contains("type"));
        assert!(bad(br#"{"data":[]}"#).contains("data must be a JSON object"));
    }
}
