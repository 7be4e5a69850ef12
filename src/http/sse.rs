//! Server-Sent Events framing: every frame on a stream, control frames included, is made here.

use bytes::{BufMut, Bytes, BytesMut};

use crate::hub::Frame;

/// The first bytes of every stream: the client's reconnect delay.
pub fn retry(ms: u64) -> Bytes {
    Bytes::from(format!("retry: {ms}\n\n"))
}

/// A keep-alive comment.
pub fn ping() -> Bytes {
    Bytes::from_static(b": ping\n\n")
}

/// A comment line for whoever reads the raw stream (EventSource ignores it).
pub fn comment(text: &str) -> Bytes {
    Bytes::from(format!(": {}\n\n", text.replace('\n', " ")))
}

/// Appends one event: `id:` (stored events only), `event:`, and the envelope as one `data:` line.
pub fn encode(out: &mut BytesMut, f: &Frame) {
    if let Some(id) = f.id {
        out.put_slice(format!("id: {id}\n").as_bytes());
    }
    out.put_slice(b"event: ");
    out.put_slice(f.kind.as_bytes());
    out.put_slice(b"\ndata: ");
    out.put_slice(f.envelope().as_bytes());
    out.put_slice(b"\n\n");
}

/// One event as its own chunk.
pub fn event(f: &Frame) -> Bytes {
    let mut out = BytesMut::new();
    encode(&mut out, f);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_events_carry_their_id() {
        let f = Frame {
            id: Some(7),
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
    fn live_events_have_no_id() {
        let f = Frame::live("typing", &serde_json::json!({}));
        assert!(event(&f).starts_with(b"event: typing\n"));
    }
}
