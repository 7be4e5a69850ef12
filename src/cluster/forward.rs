//! Client requests from an edge to the primary, as they came, in NATS messages: the method,
//! target, client address and headers as NATS headers; bodies either way in pieces of at most
//! [`PIECE`] bytes, so an upload or a download of any size fits NATS messages of the default
//! size. The primary answers through its own HTTP handling (`http::handle`), so a forwarded
//! request is authenticated, limited, logged and answered exactly as one made to it directly.
//!
//! The exchange, on an inbox of the edge's: the edge sends the head with the first piece; if
//! more follow, the primary answers `Continue` naming an inbox of its own, and the edge sends
//! the rest there. The primary then sends the answer's head with its first piece, and the
//! rest. Every piece after the first is numbered and says whether more follow; a piece that is
//! missing or late ends the body: a request's with an error (nothing half-read is stored), an
//! answer's short of its `Content-Length` (the client sees it cut).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use tokio_stream::StreamExt;

use crate::app::App;
use crate::error::{Error, Result};
use crate::http::{Body, BodyError, In};
use crate::link::{Link, Refused, HTTP};
use crate::pieces::{self, has, Pieces, MORE};

const METHOD: &str = "Chinwag-Method";
const TARGET: &str = "Chinwag-Target";
const PEER: &str = "Chinwag-Peer";
const STATUS: &str = "Chinwag-Status";
/// The primary's answer to a head with more pieces: where to send them.
const CONTINUE: &str = "Chinwag-Continue";
/// Each HTTP header travels as a NATS header with this prefix (NATS has names of its own).
const PREFIX: &str = "H-";

/// Headers that belong to one connection and are not passed on.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "upgrade"
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

/// The edge's side: sends `req` (a body of at most `limit` bytes, each piece within
/// `body_timeout`) to the primary and answers with what it answered; `503` with `Retry-After`
/// when the primary does not answer in time.
pub async fn forward(
    link: &Link,
    req: In,
    peer: IpAddr,
    body_timeout: Duration,
    limit: u64,
) -> Result<Response<Body>> {
    let client = &link.client;
    let inbox = client.new_inbox();
    fn unreachable<E>(_: E) -> Error {
        Error::from(Refused::unreachable())
    }
    let mut replies = client.subscribe(inbox.clone()).await.map_err(unreachable)?;
    let (parts, body) = req.into_parts();
    let mut head = HeaderMap::new();
    head.insert(METHOD, parts.method.as_str());
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    head.insert(TARGET, target);
    head.insert(PEER, peer.to_string().as_str());
    put_headers(&parts.headers, &mut head);
    let declared = (parts.headers.get(header::CONTENT_LENGTH))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(Error::PayloadTooLarge(limit));
    }
    let mut pieces = Pieces::new(body, body_timeout, limit);
    let (first, second) = pieces::first_two(&mut head, &mut pieces).await?;
    client
        .publish_with_reply_and_headers(HTTP, inbox, head, first)
        .await
        .map_err(unreachable)?;
    let mut answer = next_reply(&mut replies, link.timeout).await?;
    if second.is_some() {
        let to = answer
            .headers
            .as_ref()
            .and_then(|h| h.get(CONTINUE))
            .map(|v| Subject::from(v.as_str()));
        if let Some(to) = to {
            pieces::send_rest(client, to, second, &mut pieces).await?;
            answer = next_reply(&mut replies, link.timeout).await?;
        }
    }
    let Some(got) = answer.headers.as_ref() else {
        return Err(Error::Internal(anyhow::anyhow!(
            "the primary's answer has no headers"
        )));
    };
    let status = got
        .get(STATUS)
        .and_then(|s| s.as_str().parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("the primary's answer has no status")))?;
    let body = match has(Some(got), MORE) {
        false => crate::http::reply::full(answer.payload),
        true => {
            let first = tokio_stream::once(Ok(answer.payload.clone()));
            let all = first.chain(pieces::rest(replies, link.timeout));
            // A missing piece ends the body short of its Content-Length: the client sees it cut.
            let frames = all.map_while(|piece| piece.ok().map(|b| Ok(hyper::body::Frame::data(b))));
            StreamBody::new(frames).boxed()
        }
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    take_headers(got, res.headers_mut());
    Ok(res)
}

/// The next reply on the edge's inbox; nobody answering is the primary being away.
async fn next_reply(
    replies: &mut async_nats::Subscriber,
    timeout: Duration,
) -> Result<async_nats::Message> {
    pieces::next_reply(replies, timeout)
        .await
        .ok_or_else(|| Error::from(Refused::unreachable()))
}

/// The primary's side: answers a forwarded request through `http::handle`, on its reply inbox
/// (saying it is still working every second meanwhile).
pub async fn answer(app: &Arc<App>, client: &async_nats::Client, message: async_nats::Message) {
    let Some(reply) = message.reply.clone() else {
        return;
    };
    let working = pieces::working(client, reply.clone());
    let res = match request(app, client, &reply, &message).await {
        Ok((req, peer)) => crate::http::handle(app.clone(), req, peer).await,
        Err(e) => crate::http::reply::error(&e),
    };
    working.abort();
    if let Err(e) = send_answer(client, reply, res).await {
        tracing::warn!("an answer to an edge was cut: {e:#}");
    }
}

/// Sends `res` to `to`: its head with the first piece, then the rest.
async fn send_answer(client: &async_nats::Client, to: Subject, res: Response<Body>) -> Result<()> {
    let (mut parts, body) = res.into_parts();
    let is_stream = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    // Streams are the edges' own; one that got here would never end.
    let body = match is_stream {
        true => crate::http::reply::full(Bytes::new()),
        false => body,
    };
    // Sent with its length, so that an answer cut on the way is seen cut.
    if let Some(n) = hyper::body::Body::size_hint(&body).exact() {
        parts
            .headers
            .entry(header::CONTENT_LENGTH)
            .or_insert(n.into());
    }
    let mut head = HeaderMap::new();
    head.insert(STATUS, parts.status.as_str());
    put_headers(&parts.headers, &mut head);
    let mut pieces = Pieces::new(body, Duration::from_secs(30), u64::MAX);
    pieces::send(client, to, head, &mut pieces).await
}

/// The forwarded request a message carries (its body read in pieces from an inbox of ours when
/// more than one), and the client's address.
async fn request(
    app: &App,
    client: &async_nats::Client,
    reply: &Subject,
    message: &async_nats::Message,
) -> Result<(In, IpAddr)> {
    let bad = |what: &str| Error::BadRequest(format!("a forwarded request without {what}"));
    let headers = message.headers.as_ref().ok_or_else(|| bad("headers"))?;
    let get = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
    let method = get(METHOD).ok_or_else(|| bad("a method"))?;
    let target = get(TARGET).ok_or_else(|| bad("a target"))?;
    let peer: IpAddr = get(PEER)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| bad("the client's address"))?;
    let first = message.payload.clone();
    let body = match has(Some(headers), MORE) {
        false => {
            let frame = Ok::<_, BodyError>(hyper::body::Frame::data(first));
            StreamBody::new(tokio_stream::once(frame)).boxed()
        }
        true => {
            let inbox = client.new_inbox();
            let pieces = client
                .subscribe(inbox.clone())
                .await
                .map_err(|e| Error::Internal(anyhow::anyhow!("subscribing for a body: {e}")))?;
            let mut go = HeaderMap::new();
            go.insert(CONTINUE, inbox.as_str());
            client
                .publish_with_headers(reply.clone(), go, Bytes::new())
                .await
                .map_err(|e| Error::Internal(anyhow::anyhow!("asking for a body: {e}")))?;
            let first = tokio_stream::once(Ok(first));
            let all = first.chain(pieces::rest(pieces, app.config.body_timeout));
            let frames = all.map(|piece| match piece {
                Ok(b) => Ok(hyper::body::Frame::data(b)),
                Err(why) => Err(BodyError(why.into())),
            });
            StreamBody::new(frames).boxed()
        }
    };
    let mut req = http::Request::builder()
        .method(method.as_str())
        .uri(target.as_str())
        .body(body)
        .map_err(|e| Error::BadRequest(format!("a forwarded request is malformed: {e}")))?;
    take_headers(headers, req.headers_mut());
    Ok((req, peer))
}

/// A refusal of the primary's (or its absence) as the response HTTP gives it.
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
