//! Building responses: JSON bodies, the error envelope, CORS and the protocol's stream headers.

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};

use crate::error::Error;

/// Every response body: a buffered JSON document or an event stream.
pub type Body = BoxBody<Bytes, Infallible>;

/// A buffered body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A JSON response with `status`.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    typed(status, "application/json", value.to_string())
}

/// A buffered response with `status` and its `Content-Type`.
pub fn typed(
    status: StatusCode,
    content_type: &'static str,
    bytes: impl Into<Bytes>,
) -> Response<Body> {
    let mut res = Response::new(full(bytes));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// An event stream of `chunks` (SSE), with the headers every stream has: its type, and no
/// caching or buffering on the way.
pub fn event_stream(
    chunks: impl tokio_stream::Stream<Item = Bytes> + Send + Sync + 'static,
) -> Response<Body> {
    use tokio_stream::StreamExt;
    let frames = chunks.map(|chunk| Ok(hyper::body::Frame::data(chunk)));
    let mut res = Response::new(http_body_util::StreamBody::new(frames).boxed());
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

/// An empty response with `status`.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut res = Response::new(full(Bytes::new()));
    *res.status_mut() = status;
    res
}

/// The error envelope. (A 500's cause chain is logged once, by the request's log line.)
pub fn error(e: &Error) -> Response<Body> {
    let (status, _, _) = e.response_parts();
    // Every 500 goes to Sentry too, when reports are on.
    if let Error::Internal(cause) = e {
        crate::reports::server_error(cause);
    }
    let mut res = json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.body(),
    );
    let h = res.headers_mut();
    if let Error::MethodNotAllowed { allowed, .. } = e {
        h.insert(header::ALLOW, HeaderValue::from_static(allowed));
    }
    if let Some(secs) = e.retry_after() {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if e.closes_connection() {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// Lets browser pages on the allowed origins read the answer (no cookies are used, so no
/// credentials are allowed): `allowed` is what `Access-Control-Allow-Origin` says, `*` or the
/// request's own origin; `None` adds nothing, and the browser keeps the answer from the page.
/// `vary`: the answer depends on the request's `Origin` (a list of origins is configured).
pub fn add_cors(res: &mut Response<Body>, allowed: Option<&str>, vary: bool) {
    let h = res.headers_mut();
    if vary {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    let Some(value) = allowed.and_then(|a| HeaderValue::from_str(a).ok()) else {
        return;
    };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Retry-After"),
    );
}

/// The answer to a CORS preflight.
pub fn preflight() -> Response<Body> {
    let mut res = empty(StatusCode::NO_CONTENT);
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        // What SSE polyfills send too: Cache-Control, X-Requested-With.
        HeaderValue::from_static(
            "Authorization, Content-Type, Last-Event-ID, Cache-Control, X-Requested-With",
        ),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    res
}
