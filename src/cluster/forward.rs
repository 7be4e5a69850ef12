//! Client requests from an edge to the primary, as they came: the method, target, client
//! address and headers as NATS headers, the body as the payload; the answer the same way back.
//! The primary answers through its own HTTP handling (`http::handle`), so a forwarded request
//! is authenticated, limited, logged and answered exactly as one made to it directly.

use std::net::IpAddr;
use std::sync::Arc;

use async_nats::HeaderMap;
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::app::App;
use crate::error::{Error, Result};
use crate::http::{body, Body, In};
use crate::link::{Link, Refused, HTTP};

const METHOD: &str = "Chinwag-Method";
const TARGET: &str = "Chinwag-Target";
const PEER: &str = "Chinwag-Peer";
const STATUS: &str = "Chinwag-Status";
/// Each HTTP header travels as a NATS header with this prefix (NATS has names of its own).
const PREFIX: &str = "H-";

/// Headers that belong to one connection and are not passed on.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "upgrade" | "content-length"
    )
}

/// Copies HTTP headers into NATS headers.
fn put_headers(from: &http::HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if hop_by_hop(name) {
            continue;
        }
        if let Ok(value) = value.to_str() {
            to.append(format!("{PREFIX}{name}").as_str(), value);
        }
    }
}

/// Copies the prefixed NATS headers back into HTTP headers.
fn take_headers(from: &HeaderMap, to: &mut http::HeaderMap) {
    for (name, values) in from.iter() {
        let Some(name) = AsRef::<str>::as_ref(name).strip_prefix(PREFIX) else {
            continue;
        };
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        for value in values {
            if let Ok(value) = HeaderValue::from_str(value.as_str()) {
                to.append(name.clone(), value);
            }
        }
    }
}

/// The edge's side: sends `req` (its body read whole, at most what one NATS message carries)
/// to the primary and answers with what it answered; `503` with `Retry-After` when the primary
/// does not answer in time.
pub async fn forward(
    link: &Link,
    req: In,
    peer: IpAddr,
    body_timeout: std::time::Duration,
) -> Result<Response<Body>> {
    // What a NATS message may carry, less room for the headers.
    let max = (link.client.server_info().max_payload).saturating_sub(64 * 1024);
    let mut headers = HeaderMap::new();
    headers.insert(METHOD, req.method().as_str());
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    headers.insert(TARGET, target);
    headers.insert(PEER, peer.to_string().as_str());
    put_headers(req.headers(), &mut headers);
    let payload = body::read_limited(req, max, body_timeout).await?;
    let reply = match link.request(HTTP, Some(headers), payload).await {
        Ok(reply) => reply,
        Err(refused) => return Err(Error::from(refused)),
    };
    let Some(got) = reply.headers.as_ref() else {
        return Err(Error::Internal(anyhow::anyhow!(
            "the primary's answer has no headers"
        )));
    };
    let status = got
        .get(STATUS)
        .and_then(|s| s.as_str().parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("the primary's answer has no status")))?;
    let mut res = Response::new(crate::http::reply::full(reply.payload));
    *res.status_mut() = status;
    take_headers(got, res.headers_mut());
    Ok(res)
}

/// The primary's side: answers a forwarded request through `http::handle`, as the headers and
/// payload of the reply.
pub async fn answer(
    app: &Arc<App>,
    message: &async_nats::Message,
    max_payload: usize,
) -> (HeaderMap, Bytes) {
    let res = match request(message) {
        Ok((req, peer)) => crate::http::handle(app.clone(), req, peer).await,
        Err(e) => crate::http::reply::error(&e),
    };
    let (parts, body) = res.into_parts();
    let is_stream = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let bytes = match is_stream {
        // Streams are the edges' own; one that got here would never end.
        true => Bytes::new(),
        false => match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        },
    };
    let max = max_payload.saturating_sub(64 * 1024);
    if bytes.len() > max {
        let e = Error::Internal(anyhow::anyhow!(
            "an answer of {} bytes is more than one NATS message carries ({max}); raise max_payload in the NATS server's configuration",
            bytes.len()
        ));
        tracing::error!("{e:#}");
        let res = crate::http::reply::error(&e);
        return reply_of(
            res.status(),
            res.headers(),
            Bytes::from(e.body().to_string()),
        );
    }
    reply_of(parts.status, &parts.headers, bytes)
}

fn reply_of(status: StatusCode, headers: &http::HeaderMap, body: Bytes) -> (HeaderMap, Bytes) {
    let mut out = HeaderMap::new();
    out.insert(STATUS, status.as_str());
    put_headers(headers, &mut out);
    (out, body)
}

/// The forwarded request a message carries, and the client's address.
fn request(message: &async_nats::Message) -> Result<(In, IpAddr)> {
    let bad = |what: &str| Error::BadRequest(format!("a forwarded request without {what}"));
    let headers = message.headers.as_ref().ok_or_else(|| bad("headers"))?;
    let get = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
    let method = get(METHOD).ok_or_else(|| bad("a method"))?;
    let target = get(TARGET).ok_or_else(|| bad("a target"))?;
    let peer: IpAddr = get(PEER)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| bad("the client's address"))?;
    let body = Full::new(message.payload.clone())
        .map_err(|never| match never {})
        .boxed();
    let mut req = http::Request::builder()
        .method(method.as_str())
        .uri(target.as_str())
        .body(body)
        .map_err(|e| Error::BadRequest(format!("a forwarded request is malformed: {e}")))?;
    take_headers(headers, req.headers_mut());
    let len = message.payload.len().to_string();
    if let Ok(v) = HeaderValue::from_str(&len) {
        req.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    Ok((req, peer))
}

/// Keeps `Refused` in use where a link error must become a response as it was.
pub fn refused_response(r: &Refused) -> Response<Body> {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut res = crate::http::reply::json(status, &r.body);
    if let Some(secs) = r.retry_after {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    res
}
