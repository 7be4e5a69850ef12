//! HTTP: one routing match, authentication of the caller, and the turn from handler results into
//! responses. Handlers never see a socket; this layer never sees SQL.

pub mod accept;
pub mod body;
pub mod files;
pub mod head;
pub mod reply;
pub mod stall;
pub mod strict;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::api;
use crate::app::App;
use crate::error::{Error, Result};
use crate::model::UserId;

pub use reply::Body;

/// Answers one request from `peer`. Every failure becomes the protocol's error envelope. Each
/// request is one span (method, route template, user) with one line when it is answered: 2xx
/// and 3xx at info, 4xx at debug, 5xx at error with the cause chain; and one sample in the
/// metrics. Once the server drains, a request is answered `503` (a stream: told to reconnect
/// later) and every answer closes its connection.
pub async fn handle(app: Arc<App>, req: Request<Incoming>, peer: IpAddr) -> Response<Body> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
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
    let admitted = app.drain.admit();
    let result = match admitted {
        Some(_) => {
            let routed = Box::pin(admit_then_route(&app, req, peer));
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
                Error::RequestTimeout(_) => app.metrics.limited("body_timeout"),
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
    app.metrics
        .request(method_name(&method), route_name, status, started.elapsed());
    reply::add_cors(&mut res);
    if app.drain.is_draining() {
        res.headers_mut()
            .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    res
}

/// The answer to a request that came after draining began: a preflight as always, a stream
/// that ends at once after telling the client when to reconnect (a browser's EventSource gives
/// up for good on an error status), `503 unavailable` for anything else.
fn drained(req: &Request<Incoming>) -> Result<Response<Body>> {
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
fn client_ip(app: &App, req: &Request<Incoming>, peer: IpAddr) -> IpAddr {
    let Some(name) = &app.config.client_ip_header else {
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
async fn admit_then_route(
    app: &Arc<App>,
    req: Request<Incoming>,
    peer: IpAddr,
) -> Result<Response<Body>> {
    let path = req.uri().path();
    let host_route = path.starts_with("/v1/server/") || path == "/metrics";
    if !(host_route && service_key(app, &req).is_ok()) {
        app.limits.check_ip(client_ip(app, &req, peer))?;
    }
    head::check(&req)?;
    route(app, req).await
}

/// The route template of `path` for logs and metrics: a fixed path, `/v1/files/{fileId}`, a
/// known client type or host route; anything else is `unknown`, so labels stay few.
pub fn template(path: &str) -> &'static str {
    if let Some(rest) = path.strip_prefix("/v1/files/") {
        return if rest.ends_with("/thumbnail") {
            "/v1/files/{fileId}/thumbnail"
        } else {
            "/v1/files/{fileId}"
        };
    }
    // Built once: every request looks its path up without allocating.
    static KNOWN: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        routes()
            .into_iter()
            .map(|(_, p)| &*Box::leak(p.into_boxed_str()))
            .collect()
    });
    known.get(path).copied().unwrap_or("unknown")
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
pub fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    if let Some(q) = req.uri().query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
    }
    map
}

/// The fixed routes outside the client types and the host API, as (methods, path template).
const FIXED_ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/events"),
    ("GET", "/v1/poll"),
    ("POST", "/v1"),
    ("POST", "/v1/files"),
    ("GET", "/v1/files/{fileId}"),
    ("GET", "/v1/files/{fileId}/thumbnail"),
];

/// Every route the server answers, as (method, path template): the fixed ones, one
/// `POST /v1/{type}` per client request type, and the host API under `/v1/server`. The API
/// description (`GET /v1/openapi.json`) is checked against this list.
pub fn routes() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let fixed = FIXED_ROUTES.iter().map(|(m, p)| (*m, p.to_string()));
    let client = api::CLIENT_TYPES
        .iter()
        .map(|t| ("POST", format!("/v1/{t}")));
    let host = api::host::ROUTES
        .iter()
        .map(|(p, m)| (*m, format!("/v1/server{p}")));
    for (methods, path) in fixed.chain(client).chain(host) {
        for m in methods.split(", ") {
            out.push((m, path.clone()));
        }
    }
    out
}

/// The OpenAPI 3.1 description of every route, embedded in the binary.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// The bearer credential of `Authorization`, if there is one. Two `Authorization` headers are
/// refused: a proxy and the client could each have added one, and which one counts is a guess.
fn bearer(req: &Request<Incoming>) -> Result<Option<&str>> {
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return match req.headers().contains_key(header::AUTHORIZATION) {
            true => Err(Error::TokenInvalid(
                "more than one Authorization header: send exactly one".into(),
            )),
            false => Ok(None),
        };
    };
    let Some((scheme, token)) = value.to_str().ok().and_then(|v| v.split_once(' ')) else {
        return Ok(None);
    };
    Ok(scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()))
}

/// The caller of a client endpoint, from `Authorization: Bearer` or (streams only) `?token=`.
async fn caller(app: &App, req: &Request<Incoming>, query_token: bool) -> Result<UserId> {
    let from_query = query_token.then(|| query(req).remove("token")).flatten();
    let token = match (bearer(req)?, from_query.as_deref()) {
        (Some(t), _) => t.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => {
            return Err(Error::TokenInvalid(if query_token {
                "no token: send Authorization: Bearer <token> or ?token=<token>".into()
            } else {
                "no token: send Authorization: Bearer <token>".into()
            }))
        }
    };
    let user = api::caller::authenticate(app, &token).await?;
    tracing::Span::current().record("user", user.as_str());
    app.limits.check_user(&user)?;
    Ok(user)
}

fn only(method: &Method, wanted: Method, allowed: &'static str) -> Result<()> {
    if *method == wanted {
        Ok(())
    } else {
        Err(Error::MethodNotAllowed {
            method: method.to_string(),
            allowed,
        })
    }
}

async fn route(app: &Arc<App>, req: Request<Incoming>) -> Result<Response<Body>> {
    if req.method() == Method::OPTIONS {
        return Ok(reply::preflight());
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match path.as_str() {
        "/healthz" => {
            only(&method, Method::GET, "GET")?;
            app.store.healthy().await?;
            Ok(reply::json(
                StatusCode::OK,
                &serde_json::json!({"status": "ok"}),
            ))
        }
        "/metrics" => {
            only(&method, Method::GET, "GET")?;
            service_key(app, &req)?;
            metrics_page(app).await
        }
        "/v1/openapi.json" => {
            only(&method, Method::GET, "GET")?;
            Ok(reply::typed(StatusCode::OK, "application/json", OPENAPI))
        }
        "/v1/events" => {
            only(&method, Method::GET, "GET")?;
            let user = caller(app, &req, true).await?;
            let last_event_id = req
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let chunks = api::stream::sse(app, user, query(&req), last_event_id).await?;
            Ok(reply::event_stream(chunks))
        }
        "/v1/poll" => {
            only(&method, Method::GET, "GET")?;
            let user = caller(app, &req, true).await?;
            let body = api::stream::poll(app, user, query(&req)).await?;
            Ok(reply::json(StatusCode::OK, &body))
        }
        "/v1" => {
            only(&method, Method::POST, "POST")?;
            client_request(app, req, None).await
        }
        "/v1/files" => {
            only(&method, Method::POST, "POST")?;
            let user = caller(app, &req, false).await?;
            let name = query(&req).remove("name");
            files::upload(app, user, req, name).await
        }
        p if p.len() > "/v1/files/".len() && p.starts_with("/v1/files/") => {
            // HEAD: the same headers as GET, no body (a player asking a file's size).
            if method != Method::HEAD {
                only(&method, Method::GET, "GET, HEAD")?;
            }
            // ?token= too: an <img> or <audio> element cannot send a header.
            let user = caller(app, &req, true).await?;
            let rest = &p["/v1/files/".len()..];
            let (id, thumbnail) = match rest.strip_suffix("/thumbnail") {
                Some(id) => (id, true),
                None => (rest, false),
            };
            let mut res = files::download(app, user, id, thumbnail, req.headers()).await?;
            if method == Method::HEAD {
                *res.body_mut() = reply::full(bytes::Bytes::new());
            }
            Ok(res)
        }
        p if p.starts_with("/v1/server/") => {
            let sub = p["/v1/server".len()..].to_string();
            host_request(app, req, &sub).await
        }
        p if p.len() > 4 && p.starts_with("/v1/") && !p[4..].contains('/') => {
            let kind = p[4..].to_string();
            if method != Method::POST {
                if api::is_client_type(&kind) {
                    only(&method, Method::POST, "POST")?;
                }
                return Err(Error::TypeNotFound(format!(
                    "no such endpoint: {method} {p}"
                )));
            }
            client_request(app, req, Some(kind)).await
        }
        p => Err(Error::TypeNotFound(format!(
            "no such endpoint: {method} {p}"
        ))),
    }
}

/// `POST /v1/{type}` and `POST /v1`: authenticate, read and decode the envelope, dispatch.
async fn client_request(
    app: &Arc<App>,
    req: Request<Incoming>,
    path_kind: Option<String>,
) -> Result<Response<Body>> {
    let user = caller(app, &req, false).await?;
    let bytes = body::read_limited(req, app.config.max_body, app.config.body_timeout).await?;
    let env = body::envelope(&bytes)?;
    let kind = match (path_kind, env.kind) {
        (Some(path), Some(body)) if path != body => {
            return Err(Error::TypeMismatch { path, body });
        }
        (Some(path), _) => path,
        (None, Some(body)) => body,
        (None, None) => return Err(Error::BadRequest("type is required".into())),
    };
    let request = api::ClientRequest::decode(&kind, env.data);
    let ran = match request {
        Ok(request) => request.run(app, &user).await,
        Err(e) => Err(e),
    };
    let out = match ran {
        // Fields beside `data` are the usual slip of a hand-written request: say so.
        Err(Error::BadRequest(m)) if !env.stray.is_empty() => {
            return Err(Error::BadRequest(format!(
                "{m} (the body has {} outside \"data\": request fields go inside it)",
                env.stray.join(", ")
            )))
        }
        other => other?,
    };
    Ok(match out.data {
        Some(data) => reply::json(out.status, &serde_json::json!({"type": kind, "data": data})),
        None => reply::empty(out.status),
    })
}

/// The metrics page, in the OpenMetrics text format (which Prometheus reads).
async fn metrics_page(app: &App) -> Result<Response<Body>> {
    let page = api::metrics::scrape(app).await?;
    Ok(reply::typed(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        page,
    ))
}

/// Answers the separate metrics address (`--metrics-listen`): `GET /metrics` without a key,
/// nothing else.
pub async fn handle_metrics(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let result = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => metrics_page(&app).await,
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

/// Checks that the caller presents the host backend's service key.
fn service_key(app: &App, req: &Request<Incoming>) -> Result<()> {
    match bearer(req)? {
        Some(key) if app.keys.is_service_key(key) => Ok(()),
        Some(_) => Err(Error::TokenInvalid("the service key does not match".into())),
        None => Err(Error::TokenInvalid(
            "this endpoint needs Authorization: Bearer <service key>".into(),
        )),
    }
}

/// `/v1/server/*`: check the service key, take the body (JSON, or for GET without one the query
/// string), dispatch.
async fn host_request(
    app: &Arc<App>,
    req: Request<Incoming>,
    path: &str,
) -> Result<Response<Body>> {
    service_key(app, &req)?;
    let method = req.method().clone();
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let bytes = body::read_limited(req, app.config.max_body, app.config.body_timeout).await?;
    let value = match body::json(&bytes, "body")? {
        Some(value) => value,
        None => api::host::query_json(query),
    };
    Ok(match api::host::handle(app, &method, path, value).await? {
        Some(data) => reply::json(StatusCode::OK, &data),
        None => reply::empty(StatusCode::NO_CONTENT),
    })
}
