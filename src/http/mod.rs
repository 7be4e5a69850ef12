//! HTTP: each request's admission (its address's rate, its head's bounds, the drain), its log
//! line and metrics sample, and its answer; routes in `routes`, callers in `credentials`.
//! Handlers never see a socket; this layer never sees SQL.

pub mod accept;
pub mod body;
pub mod credentials;
pub mod files;
pub mod head;
pub mod listen;
pub mod reply;
mod routes;
pub mod stall;
pub mod web;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};

use crate::api;
use crate::app::App;
use crate::config::Config;
use crate::drain::Drain;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

pub use reply::Body;
pub use routes::{node_local, NodeLocal};

/// Why a request body could not be read: the connection failed, or (forwarded from an edge of a
/// cluster) a piece of it did not arrive.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub Box<dyn std::error::Error + Send + Sync>);

impl From<hyper::Error> for BodyError {
    fn from(e: hyper::Error) -> BodyError {
        BodyError(Box::new(e))
    }
}

/// Every request body: a connection's (`hyper::body::Incoming`, boxed where it is accepted) or
/// one forwarded from an edge of the cluster. One type, so handlers do not care which.
pub type ReqBody = http_body_util::combinators::BoxBody<bytes::Bytes, BodyError>;

/// A request as every handler takes it.
pub type In = Request<ReqBody>;
pub use routes::{last_event_id, routes, template, web_file};

/// What answers requests: a server with its database ([`App`]) or an edge of a cluster. Each
/// request goes through [`handle`], which admits, logs, counts and finishes it the same way for
/// both; only the routing differs.
pub trait Serves: Send + Sync + 'static {
    fn config(&self) -> &Config;
    fn drain(&self) -> &Drain;
    fn metrics(&self) -> &Arc<Metrics>;
    /// Answers an admitted request (an error becomes the error envelope).
    fn route(
        self: &Arc<Self>,
        req: In,
        peer: IpAddr,
    ) -> impl std::future::Future<Output = Result<Response<Body>>> + Send;
    /// The metrics page, current as of this call.
    fn scrape(&self) -> impl std::future::Future<Output = Result<String>> + Send;
}

impl Serves for App {
    fn config(&self) -> &Config {
        &self.config
    }
    fn drain(&self) -> &Drain {
        &self.drain
    }
    fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
    async fn route(self: &Arc<Self>, req: In, peer: IpAddr) -> Result<Response<Body>> {
        admit_then_route(self, req, peer).await
    }
    async fn scrape(&self) -> Result<String> {
        api::metrics::scrape(self).await
    }
}

/// Answers one request from `peer`. Every failure becomes the protocol's error envelope. Each
/// request is one span (method, route template, user) with one line when it is answered: 2xx
/// and 3xx at info, 4xx at debug, 5xx at error with the cause chain; and one sample in the
/// metrics. Once the server drains, a request is answered `503` (a stream: told to reconnect
/// later) and every answer closes its connection.
pub async fn handle<S: Serves>(app: Arc<S>, req: In, peer: IpAddr) -> Response<Body> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    // Kept only where the answer names it: with `*`, every request skips the copy.
    let origin = match app.config().cors {
        crate::config::Cors::Any => None,
        crate::config::Cors::Only(_) => req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let route_name = template(req.uri().path());
    // The raw path only where there is no template to name it by.
    let unknown_path = (route_name == "unknown").then(|| req.uri().path().to_string());
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route_name,
        user = tracing::field::Empty
    );
    // Boxed: hyper keeps each connection's request future allocated for as long as the
    // connection lives, so the large routing future must not be part of it (idle streams).
    let admitted = app.drain().admit();
    let result = match admitted {
        Some(_) => {
            let routed = Box::pin(app.route(req, peer));
            tracing::Instrument::instrument(routed, span.clone()).await
        }
        None => drained(&req),
    };
    drop(admitted);
    let ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1000.0;
    let _entered = span.enter();
    let (mut res, reason) = match result {
        Ok(res) => (res, None),
        Err(e) => {
            match &e {
                Error::Internal(cause) => tracing::error!(status = 500, ms, "answered: {cause:#}"),
                Error::RequestTimeout(_) => app.metrics().limited("body_timeout"),
                _ => {}
            }
            (reply::error(&e), Some(e.response_parts().1))
        }
    };
    let status = res.status().as_u16();
    let path = unknown_path.as_deref();
    match status {
        500.. => {}
        400..=499 => tracing::debug!(status, ms, reason, path, "answered"),
        _ => tracing::info!(status, ms, "answered"),
    }
    app.metrics()
        .request(method_name(&method), route_name, status, started.elapsed());
    let cors = &app.config().cors;
    let vary = matches!(cors, crate::config::Cors::Only(_));
    reply::add_cors(&mut res, cors.allow(origin.as_deref()), vary);
    if app.drain().is_draining() {
        res.headers_mut()
            .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    res
}

/// The answer to a request that came after draining began: a preflight as always, a stream
/// that ends at once after telling the client when to reconnect (a browser's EventSource gives
/// up for good on an error status), `503 unavailable` for anything else.
fn drained(req: &In) -> Result<Response<Body>> {
    if req.method() == Method::OPTIONS {
        return Ok(reply::preflight());
    }
    if req.uri().path() == "/v1/events" && req.method() == Method::GET {
        let once = api::stream::restarting(crate::drain::RETRY_AFTER);
        return Ok(reply::event_stream(tokio_stream::once(once)));
    }
    Err(Error::Unavailable {
        retry_after: crate::drain::RETRY_AFTER,
    })
}

/// The client's address: from the configured header a trusted proxy sets, else the peer's.
pub fn client_ip<S: Serves>(app: &S, req: &In, peer: IpAddr) -> IpAddr {
    let Some(name) = &app.config().client_ip_header else {
        return peer;
    };
    req.headers()
        .get(name.as_str())
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(peer)
}

/// Counts the request against its address's rate, unless it is the host backend's (it presents
/// the service key: the host acts for all its users and is limited by its own design), then
/// routes it. A wrong service key counts like any other request.
async fn admit_then_route(app: &Arc<App>, req: In, peer: IpAddr) -> Result<Response<Body>> {
    let path = req.uri().path();
    let host_route = path.starts_with("/v1/server/") || path == "/metrics";
    // Checked once: the host's routes take this answer rather than asking again.
    let host = host_route && credentials::service_key(app, &req).is_ok();
    if !host {
        app.limits.check_ip(client_ip(&**app, &req, peer))?;
    }
    head::check(&req)?;
    routes::route(app, req, host).await
}

/// A method's name for labels: the standard ones, anything else `other`.
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The query string as a map (first value of each name wins).
pub fn query(req: &In) -> HashMap<String, String> {
    let mut map = HashMap::new();
    if let Some(q) = req.uri().query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
    }
    map
}

/// The OpenAPI 3.1 description of every route, embedded in the binary.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// The metrics page, in the OpenMetrics text format (which Prometheus reads).
pub async fn metrics_page<S: Serves>(node: &S) -> Result<Response<Body>> {
    let page = node.scrape().await?;
    Ok(reply::typed(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        page,
    ))
}

/// Answers the separate metrics address (`--metrics-listen`): `GET /metrics` without a key,
/// nothing else.
pub async fn handle_metrics<S: Serves>(app: Arc<S>, req: In) -> Response<Body> {
    let result = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => metrics_page(&*app).await,
        (_, "/metrics") => Err(Error::MethodNotAllowed {
            method: req.method().to_string(),
            allowed: "GET",
        }),
        (m, p) => Err(Error::TypeNotFound(format!(
            "no such endpoint: {m} {p} (this address serves only GET /metrics)"
        ))),
    };
    result.unwrap_or_else(|e| reply::error(&e))
}
