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
use bytes::{Bytes, BytesMut};
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use tokio_stream::StreamExt;

use crate::app::App;
use crate::error::{Error, Result};
use crate::http::{Body, BodyError, In};
use crate::link::{Link, Refused, HTTP};

/// Largest piece of a body in one NATS message (well under NATS's default 1 MB).
pub const PIECE: usize = 256 * 1024;

const METHOD: &str = "Chinwag-Method";
const TARGET: &str = "Chinwag-Target";
const PEER: &str = "Chinwag-Peer";
const STATUS: &str = "Chinwag-Status";
/// On a piece: more pieces follow.
const MORE: &str = "Chinwag-More";
/// On a piece after the first: its number, from 1.
const PART: &str = "Chinwag-Part";
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

fn has(headers: Option<&HeaderMap>, name: &str) -> bool {
    headers.is_some_and(|h| h.get(name).is_some())
}

/// Reads `body` in pieces of at most [`PIECE`] bytes, each within `gap` of the one before, and
/// at most `limit` bytes in all.
struct Pieces<B> {
    body: B,
    gap: Duration,
    limit: u64,
    read: u64,
    done: bool,
}

impl<B> Pieces<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    /// The next piece (`None`: the body has ended).
    async fn next(&mut self) -> Result<Option<Bytes>> {
        let mut piece = BytesMut::new();
        while !self.done && piece.len() < PIECE {
            let frame = tokio::time::timeout(self.gap, self.body.frame())
                .await
                .map_err(|_| Error::RequestTimeout(self.gap))?;
            match frame {
                None => self.done = true,
                Some(Err(e)) => {
                    return Err(Error::BadRequest(format!("could not read the body: {e}")))
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.read += data.len() as u64;
                        if self.read > self.limit {
                            return Err(Error::PayloadTooLarge(self.limit));
                        }
                        piece.extend_from_slice(&data);
                    }
                }
            }
        }
        Ok((!piece.is_empty() || !self.done).then(|| piece.freeze()))
    }
}

/// Sends pieces after the first (numbered from 1) to `to`, the last without `MORE`.
async fn send_rest<B>(
    client: &async_nats::Client,
    to: Subject,
    mut next: Option<Bytes>,
    pieces: &mut Pieces<B>,
) -> Result<()>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut part = 1u64;
    while let Some(piece) = next {
        next = pieces.next().await?;
        let mut headers = HeaderMap::new();
        headers.insert(PART, part.to_string().as_str());
        if next.is_some() {
            headers.insert(MORE, "1");
        }
        client
            .publish_with_headers(to.clone(), headers, piece)
            .await
            .map_err(|e| Error::Internal(anyhow::anyhow!("sending a body piece: {e}")))?;
        part += 1;
    }
    Ok(())
}

/// The pieces after the first, read from `messages` until the last: each must come within
/// `gap`, numbered in order; otherwise the stream ends with an error.
fn rest(
    mut messages: async_nats::Subscriber,
    gap: Duration,
) -> impl tokio_stream::Stream<Item = std::result::Result<Bytes, String>> + Send {
    async_stream::stream! {
        let mut part = 1u64;
        loop {
            let message = match tokio::time::timeout(gap, messages.next()).await {
                Ok(Some(m)) => m,
                Ok(None) => { yield Err("the pieces' subscription ended".to_string()); return; }
                Err(_) => { yield Err(format!("piece {part} did not arrive within {gap:?}")); return; }
            };
            let headers = message.headers.as_ref();
            let numbered = headers
                .and_then(|h| h.get(PART))
                .and_then(|v| v.as_str().parse::<u64>().ok());
            if numbered != Some(part) {
                yield Err(format!("piece {part} is missing"));
                return;
            }
            let more = has(headers, MORE);
            yield Ok(message.payload);
            if !more {
                return;
            }
            part += 1;
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
    let mut pieces = Pieces {
        body,
        gap: body_timeout,
        limit,
        read: 0,
        done: false,
    };
    let first = pieces.next().await?.unwrap_or_default();
    let second = pieces.next().await?;
    if second.is_some() {
        head.insert(MORE, "1");
    }
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
            send_rest(client, to, second, &mut pieces).await?;
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
            let all = first.chain(rest(replies, link.timeout));
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

/// The next message on the edge's inbox, within `timeout`; the NATS server's "no responders"
/// (no primary listening) and no answer in time are both the primary being away.
async fn next_reply(
    replies: &mut async_nats::Subscriber,
    timeout: Duration,
) -> Result<async_nats::Message> {
    match tokio::time::timeout(timeout, replies.next()).await {
        Ok(Some(m)) if m.status != Some(async_nats::StatusCode::NO_RESPONDERS) => Ok(m),
        _ => Err(Error::from(Refused::unreachable())),
    }
}

/// The primary's side: answers a forwarded request through `http::handle`, on its reply inbox.
pub async fn answer(app: &Arc<App>, client: &async_nats::Client, message: async_nats::Message) {
    let Some(reply) = message.reply.clone() else {
        return;
    };
    let res = match request(app, client, &reply, &message).await {
        Ok((req, peer)) => crate::http::handle(app.clone(), req, peer).await,
        Err(e) => crate::http::reply::error(&e),
    };
    if let Err(e) = send_answer(client, reply, res).await {
        tracing::warn!("an answer to an edge was cut: {e:#}");
    }
}

/// Sends `res` to `to`: its head with the first piece, then the rest.
async fn send_answer(
    client: &async_nats::Client,
    to: Subject,
    res: Response<Body>,
) -> anyhow::Result<()> {
    let (parts, body) = res.into_parts();
    let mut head = HeaderMap::new();
    head.insert(STATUS, parts.status.as_str());
    put_headers(&parts.headers, &mut head);
    let is_stream = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    // Streams are the edges' own; one that got here would never end.
    let body = match is_stream {
        true => crate::http::reply::full(Bytes::new()),
        false => body,
    };
    let mut pieces = Pieces {
        body,
        gap: Duration::from_secs(30),
        limit: u64::MAX,
        read: 0,
        done: false,
    };
    let first = pieces.next().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let second = pieces.next().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if second.is_some() {
        head.insert(MORE, "1");
    }
    client
        .publish_with_headers(to.clone(), head, first.unwrap_or_default())
        .await?;
    send_rest(client, to, second, &mut pieces)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
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
            let all = first.chain(rest(pieces, app.config.body_timeout));
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
