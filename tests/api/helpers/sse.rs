//! Server-Sent Events as a client reads them: a stream read by a background task, its events
//! one by one, by type, or up to a given message.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

/// Every event `sse` receives up to and including the `message` event with `message_id`.
pub async fn until_message(sse: &mut Sse, message_id: &Value) -> Vec<Event> {
    let mut seen = Vec::new();
    loop {
        let e = sse.next().await;
        let done = e.event == "message" && e.data()["id"] == *message_id;
        seen.push(e);
        if done {
            return seen;
        }
    }
}

/// One SSE event as a client sees it.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: Option<i64>,
    pub event: String,
    /// The whole envelope (`{"type", "data"}`).
    pub envelope: Value,
}

impl Event {
    /// The envelope's `data`.
    pub fn data(&self) -> &Value {
        &self.envelope["data"]
    }
}

/// An open SSE stream read by a background task.
pub struct Sse {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    events: mpsc::UnboundedReceiver<Event>,
    /// Raw lines that were not events (retry:, comments), in order.
    pub control: Arc<std::sync::Mutex<Vec<String>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Sse {
    /// Reads an SSE response as it arrives.
    pub fn new(res: reqwest::Response) -> Sse {
        let status = res.status();
        let headers = res.headers().clone();
        let (tx, events) = mpsc::unbounded_channel();
        let control = Arc::new(std::sync::Mutex::new(Vec::new()));
        let ctl = control.clone();
        let reader = tokio::spawn(async move {
            let mut stream = res.bytes_stream();
            let mut buf = String::new();
            while let Some(Ok(chunk)) = stream.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    let (mut id, mut event, mut data) = (None, String::new(), None);
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("id: ") {
                            id = v.parse().ok();
                        } else if let Some(v) = line.strip_prefix("event: ") {
                            event = v.to_string();
                        } else if let Some(v) = line.strip_prefix("data: ") {
                            data = Some(
                                serde_json::from_str::<Value>(v).expect("data is one JSON line"),
                            );
                        } else if !line.is_empty() {
                            ctl.lock().unwrap().push(line.to_string());
                        }
                    }
                    if let Some(envelope) = data {
                        if tx
                            .send(Event {
                                id,
                                event,
                                envelope,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        Sse {
            status,
            headers,
            events,
            control,
            reader,
        }
    }

    /// The next event, or None if none arrives within `secs` seconds or the stream ended.
    pub async fn next_within(&mut self, secs: f64) -> Option<Event> {
        tokio::time::timeout(Duration::from_secs_f64(secs), self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next event (waiting up to 5 s); panics if there is none.
    pub async fn next(&mut self) -> Event {
        self.next_within(5.0).await.expect("an event within 5 s")
    }

    /// The next event of type `kind`, skipping others (up to 5 s).
    pub async fn next_of(&mut self, kind: &str) -> Event {
        let e = self.next_of_within(kind, 5.0).await;
        e.unwrap_or_else(|| panic!("no {kind} event within 5 s"))
    }

    /// The next event of type `kind`, skipping others, or None if none comes within `secs`.
    pub async fn next_of_within(&mut self, kind: &str, secs: f64) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(e)) if e.event == kind => return Some(e),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    }

    /// Collects events until `n` of type `kind` arrived (up to `secs`); returns those.
    pub async fn collect_of(&mut self, kind: &str, n: usize, secs: f64) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(e)) if e.event == kind => out.push(e),
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        out
    }

    /// Whether the server ended the stream within `secs`.
    pub async fn ended_within(&mut self, secs: f64) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(None) => return true,
                Ok(Some(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Closes the connection from the client side.
    pub fn close(self) {
        self.reader.abort();
    }
}
