//! Bodies of any size over NATS: a body in numbered pieces of at most [`PIECE`] bytes (well under
//! NATS's default 1 MB message), each saying whether more follow, and the waiting for replies on
//! an inbox (where the answering side sends `Working` while it works, so that a slow answer is
//! not taken for an absent one). Used by every exchange between the nodes of a cluster.

use std::time::Duration;

use async_nats::{HeaderMap, Subject};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio_stream::StreamExt;

use crate::error::{Error, Result};

/// Largest piece of a body in one NATS message.
pub const PIECE: usize = 256 * 1024;
/// On a piece: more pieces follow.
pub const MORE: &str = "Chinwag-More";
/// On a piece after the first: its number, from 1.
const PART: &str = "Chinwag-Part";
/// A message that only says the answer is still being worked on.
const WORKING: &str = "Chinwag-Working";
/// How often the answering side says it is still working.
pub const WORKING_EVERY: Duration = Duration::from_secs(1);

/// Whether `headers` has `name`.
pub fn has(headers: Option<&HeaderMap>, name: &str) -> bool {
    headers.is_some_and(|h| h.get(name).is_some())
}

/// Reads `body` in pieces of at most [`PIECE`] bytes (a larger frame is split), each within
/// `gap` of the one before, and at most `limit` bytes in all.
pub struct Pieces<B> {
    body: B,
    gap: Duration,
    limit: u64,
    read: u64,
    /// Read from the body and not yet handed out.
    held: Bytes,
    done: bool,
    /// A piece was handed out (an empty body is one empty piece).
    given: bool,
}

impl<B> Pieces<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    pub fn new(body: B, gap: Duration, limit: u64) -> Pieces<B> {
        Pieces {
            body,
            gap,
            limit,
            read: 0,
            held: Bytes::new(),
            done: false,
            given: false,
        }
    }

    /// The next piece (`None`: the body has ended; an empty body is one empty piece).
    pub async fn next(&mut self) -> Result<Option<Bytes>> {
        let mut piece = BytesMut::new();
        let mut any = false;
        loop {
            if !self.held.is_empty() {
                let take = self.held.len().min(PIECE - piece.len());
                piece.extend_from_slice(&self.held.split_to(take));
                any = true;
            }
            if piece.len() >= PIECE || self.done {
                break;
            }
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
                        self.held = data;
                    }
                }
            }
        }
        let out = (any || !self.given).then(|| piece.freeze());
        self.given = true;
        Ok(out)
    }
}

/// Sends a body to `to`: `head` with the first piece (and `MORE` when more follow), then the
/// rest numbered from 1, the last without `MORE`.
pub async fn send<B>(
    client: &async_nats::Client,
    to: Subject,
    mut head: HeaderMap,
    pieces: &mut Pieces<B>,
) -> Result<()>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let (first, second) = first_two(&mut head, pieces).await?;
    publish(client, to.clone(), head, first).await?;
    send_rest(client, to, second, pieces).await
}

/// The first piece (to go with `head`) and the second, if any; `head` says `MORE` when there is
/// one. What [`send`] sends first, for exchanges that send the head on their own.
pub async fn first_two<B>(
    head: &mut HeaderMap,
    pieces: &mut Pieces<B>,
) -> Result<(Bytes, Option<Bytes>)>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let first = pieces.next().await?.unwrap_or_default();
    let second = pieces.next().await?;
    if second.is_some() {
        head.insert(MORE, "1");
    }
    Ok((first, second))
}

/// Sends the pieces after the first, `next` being the second (if any).
pub async fn send_rest<B>(
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
        publish(client, to.clone(), headers, piece).await?;
        part += 1;
    }
    Ok(())
}

async fn publish(
    client: &async_nats::Client,
    to: Subject,
    headers: HeaderMap,
    piece: Bytes,
) -> Result<()> {
    client
        .publish_with_headers(to, headers, piece)
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("sending a piece: {e}")))
}

/// Sends `Working` to `to` every [`WORKING_EVERY`] until dropped.
pub fn working(client: &async_nats::Client, to: Subject) -> tokio::task::JoinHandle<()> {
    let client = client.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(WORKING_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            let mut headers = HeaderMap::new();
            headers.insert(WORKING, "1");
            let _ = client
                .publish_with_headers(to.clone(), headers, Bytes::new())
                .await;
        }
    })
}

/// The pieces after the first, read from `messages` until the last: each must come within
/// `gap`, numbered in order; otherwise the stream ends with an error.
pub fn rest(
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
            if has(headers, WORKING) {
                continue;
            }
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

/// The next reply on an inbox, skipping `Working` (each resets the wait); the NATS server's
/// "no responders" and no word within `timeout` are both `None`: nobody is answering.
pub async fn next_reply(
    replies: &mut async_nats::Subscriber,
    timeout: Duration,
) -> Option<async_nats::Message> {
    loop {
        match tokio::time::timeout(timeout, replies.next()).await {
            Ok(Some(m)) if m.status == Some(async_nats::StatusCode::NO_RESPONDERS) => return None,
            Ok(Some(m)) if has(m.headers.as_ref(), WORKING) => continue,
            Ok(Some(m)) => return Some(m),
            _ => return None,
        }
    }
}

/// A whole reply: its head message and, when more pieces follow, all of them joined.
pub async fn whole(
    first: async_nats::Message,
    replies: async_nats::Subscriber,
    gap: Duration,
) -> std::result::Result<(async_nats::Message, Bytes), String> {
    if !has(first.headers.as_ref(), MORE) {
        let payload = first.payload.clone();
        return Ok((first, payload));
    }
    let mut all = BytesMut::from(&first.payload[..]);
    let rest = rest(replies, gap);
    tokio::pin!(rest);
    while let Some(piece) = rest.next().await {
        all.extend_from_slice(&piece?);
    }
    Ok((first, all.freeze()))
}

/// `bytes` as a body for [`Pieces`].
pub fn body(bytes: Bytes) -> http_body_util::Full<Bytes> {
    http_body_util::Full::new(bytes)
}
