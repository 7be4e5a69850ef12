//! The host API over a NATS bus (seed 001's Bus API): requests on `--bus-topic`, taken by one
//! of the Chinwag processes in a queue group, each payload a frame `{"method", "path", "body"}`
//! answered on its reply subject with `{"status", "body"}`: the routes, objects and error table
//! of `/v1/server`. The bus is the host's own: whoever may publish on the topic acts as the host.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};
use tokio_stream::StreamExt;

use crate::app::App;
use crate::config::Bus;
use crate::error::{Error, Result};

/// The queue group every Chinwag on a topic joins: NATS hands each request to one of them.
pub const QUEUE_GROUP: &str = "chinwag";

/// Serves the topic until the server drains: connects (in the background, retrying every
/// `reconnect` while the bus is away, so the HTTP API never waits for it), answers each request
/// on its own task, and on shutdown leaves the queue group so another process takes new
/// requests, after which requests already taken are answered like HTTP ones.
pub async fn run(app: Arc<App>, bus: Bus) {
    let options =
        crate::link::nats_options("chinwag", bus.timeout, bus.reconnect, bus.token.as_deref());
    let client = match options.connect(bus.url.as_str()).await {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(url = %bus.url, "the bus cannot be used: {e}");
            return;
        }
    };
    let mut requests = match client
        .queue_subscribe(bus.topic.clone(), QUEUE_GROUP.into())
        .await
    {
        Ok(sub) => sub,
        Err(e) => {
            tracing::error!(topic = %bus.topic, "cannot listen on the bus topic: {e}");
            return;
        }
    };
    tracing::info!(url = %bus.url, topic = %bus.topic, "answering the host API on the bus");
    let mut draining = app.drain.watch();
    loop {
        tokio::select! {
            request = requests.next() => {
                let Some(request) = request else { break };
                let (app, client) = (app.clone(), client.clone());
                tokio::spawn(async move {
                    let frame = answer(&app, &request.payload).await;
                    match request.reply {
                        Some(reply) => {
                            if let Err(e) = client.publish(reply, frame).await {
                                tracing::warn!("a bus reply was not sent: {e}");
                            }
                        }
                        None => tracing::debug!("a bus request without a reply subject was run"),
                    }
                });
            }
            _ = draining.wait_for(|d| *d) => break,
        }
    }
    if let Err(e) = requests.unsubscribe().await {
        tracing::debug!("leaving the bus queue group: {e}");
    }
    // Replies of requests still running go out before the connection closes.
    let _ = tokio::time::timeout(bus.timeout, client.flush()).await;
}

/// The reply frame to one request's payload, with its log line; a request that comes once the
/// server drains is answered `503` (the host retries it, on another process of the group).
pub async fn answer(app: &Arc<App>, payload: &[u8]) -> Bytes {
    let started = Instant::now();
    let (method, path, result) = match app.drain.admit() {
        Some(_admitted) => run_frame(app, payload).await,
        None => (
            String::new(),
            String::new(),
            Err(Error::Unavailable {
                retry_after: crate::drain::RETRY_AFTER,
            }),
        ),
    };
    let ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1000.0;
    let (status, body) = match result {
        Ok(Some(data)) => (200, data),
        Ok(None) => (204, Value::Null),
        Err(e) => {
            let (status, reason, _) = e.response_parts();
            match &e {
                Error::Internal(cause) => {
                    tracing::error!(method, path, status, ms, "bus answered: {cause:#}");
                    crate::reports::server_error(cause);
                }
                _ => tracing::debug!(method, path, status, ms, reason, "bus answered"),
            }
            (status, e.body())
        }
    };
    if status < 400 {
        tracing::info!(method, path, status, ms, "bus answered");
    }
    app.metrics.bus_request(status);
    Bytes::from(json!({"status": status, "body": body}).to_string())
}

/// Decodes a frame and runs it as the host route it names; gives the method and path for the
/// log line too.
async fn run_frame(app: &Arc<App>, payload: &[u8]) -> (String, String, Result<Option<Value>>) {
    let frame = match decode(app, payload) {
        Ok(frame) => frame,
        Err(e) => return (String::new(), String::new(), Err(e)),
    };
    let (method, path, body) = frame;
    let result = match Method::from_bytes(method.as_bytes()) {
        Ok(m) => crate::api::host::handle(app, &m, &path, body).await,
        Err(_) => Err(Error::BadRequest(format!(
            "method {method:?} is not an HTTP method"
        ))),
    };
    (method, path, result)
}

/// A frame's method (upper-cased), path (with or without the HTTP API's `/v1/server` prefix)
/// and body (`{}` when left out, as an HTTP request without a body or query).
fn decode(app: &App, payload: &[u8]) -> Result<(String, String, Value)> {
    const SHAPE: &str = "a bus request is {\"method\", \"path\", \"body\"}";
    if payload.len() > app.config.max_body {
        return Err(Error::PayloadTooLarge(app.config.max_body as u64));
    }
    let Some(Value::Object(mut frame)) = crate::strict::body(payload, "")? else {
        return Err(Error::BadRequest(format!(
            "{SHAPE}: the payload is not an object"
        )));
    };
    let mut text = |field: &str| match frame.remove(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(Error::BadRequest(format!(
            "{field} must be a non-empty string"
        ))),
        None => Err(Error::BadRequest(format!("{field} is required ({SHAPE})"))),
    };
    let method = text("method")?.to_ascii_uppercase();
    let path = text("path")?;
    let path = match path.strip_prefix("/v1/server") {
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => path,
    };
    let body = match frame.remove("body") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(body) => body,
    };
    Ok((method, path, body))
}
