//! Server-Sent Events framing: every frame on a stream, control frames included, is made here.

use bytes::{BufMut, Bytes, BytesMut};

use crate::hub::Frame;

/// The first bytes of every stream: the client's reconnect delay.
pub fn retry(ms: u64) -> Bytes {
    Bytes::from(format!("retry: {ms}\n\n"))
}

/// A stream's first lines: the reconnect delay and, for a stream that starts from now, the
/// cursor it starts at (`id:` with no data moves the client's last event id all the same).
pub fn opening(retry_ms: u64, start: Option<crate::model::EventId>) -> Bytes {
    match start {
        Some(id) => Bytes::from(format!("retry: {retry_ms}\nid: {id}\n\n")),
        None => retry(retry_ms),
    }
}

/// A keep-alive comment.
pub fn ping() -> Bytes {
    Bytes::from_static(b": ping\n\n")
}

/// A comment line for whoever reads the raw stream (EventSource ignores it).
pub fn comment(text: &str) -> Bytes {
    Bytes::from(format!(": {}\n\n", text.replace('\n', " ")))
}

/// What comes before an event's data: `id:` (stored events only), `event:`, and the start of
/// the envelope on the `data:` line.
fn head(f: &Frame) -> String {
    let kind = serde_json::to_string(&*f.kind).unwrap_or_default();
    let id = f.id.map(|id| format!("id: {id}\n")).unwrap_or_default();
    format!("{id}event: {}\ndata: {{\"type\":{kind},\"data\":", f.kind)
}

/// What ends an event: the envelope, its line and the frame.
const TAIL: &[u8] = b"}\n\n";

/// `prefix`, then each frame as an event (the envelope `{"type","data"}` as one `data:` line),
/// in one buffer of exactly their size: a chunk waiting for a slow client holds no spare room.
pub fn chunk(prefix: &[u8], frames: &[&Frame]) -> Bytes {
    let heads: Vec<String> = frames.iter().map(|f| head(f)).collect();
    let len = prefix.len()
        + heads
            .iter()
            .zip(frames)
            .map(|(h, f)| h.len() + f.data.len() + TAIL.len())
            .sum::<usize>();
    let mut out = BytesMut::with_capacity(len);
    out.put_slice(prefix);
    for (h, f) in heads.iter().zip(frames) {
        out.put_slice(h.as_bytes());
        out.put_slice(f.data.as_bytes());
        out.put_slice(TAIL);
    }
    out.freeze()
}

/// One event as its own chunk.
pub fn event(f: &Frame) -> Bytes {
    chunk(b"", &[f])
}

/// Changes `pings` every `period`, for ever: every stream's keep-alive runs off this one clock.
pub async fn ping_clock(period: std::time::Duration, pings: &tokio::sync::watch::Sender<()>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tick.tick().await;
        pings.send_replace(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventId, EventKind};

    #[test]
    fn stored_events_carry_their_id() {
        let f = Frame {
            id: Some(EventId::new(7)),
            chat: None,
            kind: "message".into(),
            data: r#"{"a":1}"#.into(),
        };
        assert_eq!(
            &event(&f)[..],
            b"id: 7\nevent: message\ndata: {\"type\":\"message\",\"data\":{\"a\":1}}\n\n"
        );
    }

    #[test]
    fn a_chunk_is_its_prefix_then_its_events_in_exactly_their_size() {
        let a = Frame::live(EventKind::Typing, &serde_json::json!({"x": 1}));
        let b = Frame {
            id: Some(EventId::new(9)),
            ..Frame::live(EventKind::Chat, &serde_json::json!({}))
        };
        let got = chunk(b"retry: 5\n\n", &[&a, &b]);
        let mut want = b"retry: 5\n\n".to_vec();
        want.extend_from_slice(&event(&a));
        want.extend_from_slice(&event(&b));
        assert_eq!(&got[..], &want[..]);
        assert_eq!(
            &event(&a)[..],
            b"event: typing\ndata: {\"type\":\"typing\",\"data\":{\"x\":1}}\n\n"
        );
    }

    #[test]
    fn live_events_have_no_id() {
        let f = Frame::live(EventKind::Typing, &serde_json::json!({}));
        assert!(event(&f).starts_with(b"event: typing\n"));
    }
}
