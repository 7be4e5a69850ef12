//! HTTP: one routing match, authentication of the caller, and the turn from handler results into
//! responses. Handlers never see a socket; this layer never sees SQL.

pub mod body;
pub mod reply;
pub mod sse;

use std::collections::HashMap;
use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::api;
use crate::error::{Error, Result};
use crate::model::UserId;
use crate::server::App;

pub use reply::Body;

/// Answers one request. Every failure becomes the protocol's error envelope.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let mut res = match route(&app, req).await {
        Ok(res) => res,
        Err(e) => reply::error(&e),
    };
    reply::add_cors(&mut res);
    res
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
    let client = api::CLIENT_TYPES.iter().map(|t| ("POST", format!("/v1/{t}")));
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

fn bearer(req: &Request<Incoming>) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The caller of a client endpoint, from `Authorization: Bearer` or (streams only) `?token=`.
async fn caller(app: &App, req: &Request<Incoming>, query_token: bool) -> Result<UserId> {
    let from_query = query_token.then(|| query(req).remove("token")).flatten();
    let token = match (bearer(req), from_query.as_deref()) {
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
    app.authenticate(&token).await
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
        "/v1/openapi.json" => {
            only(&method, Method::GET, "GET")?;
            let mut res = reply::full_response(StatusCode::OK, OPENAPI);
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            Ok(res)
        }
        "/v1/events" => {
            only(&method, Method::GET, "GET")?;
            let user = caller(app, &req, true).await?;
            let last_event_id = req
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            api::stream::sse(app, user, query(&req), last_event_id).await
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
            api::files::upload(app, user, req, name).await
        }
        p if p.starts_with("/v1/files/") => {
            only(&method, Method::GET, "GET")?;
            // ?token= too: an <img> or <audio> element cannot send a header.
            let user = caller(app, &req, true).await?;
            let rest = &p["/v1/files/".len()..];
            let (id, thumbnail) = match rest.strip_suffix("/thumbnail") {
                Some(id) => (id, true),
                None => (rest, false),
            };
            api::files::download(app, user, id, thumbnail, req.headers()).await
        }
        p if p.starts_with("/v1/server/") => {
            let sub = p["/v1/server".len()..].to_string();
            host_request(app, req, &sub).await
        }
        p if p.starts_with("/v1/") && !p[4..].contains('/') => {
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
    let bytes = body::read_limited(req, app.config.max_body).await?;
    let env = body::envelope(&bytes)?;
    let kind = match (path_kind, env.kind) {
        (Some(path), Some(body)) if path != body => {
            return Err(Error::TypeMismatch { path, body });
        }
        (Some(path), _) => path,
        (None, Some(body)) => body,
        (None, None) => return Err(Error::BadRequest("type is required".into())),
    };
    let out = api::client(app, &user, &kind, env.data).await?;
    Ok(match out.data {
        Some(data) => reply::json(out.status, &serde_json::json!({"type": kind, "data": data})),
        None => reply::empty(out.status),
    })
}

/// `/v1/server/*`: check the service key, take the body (JSON, or for GET without one the query
/// string), dispatch.
async fn host_request(
    app: &Arc<App>,
    req: Request<Incoming>,
    path: &str,
) -> Result<Response<Body>> {
    match bearer(&req) {
        Some(key) if app.is_service_key(key) => {}
        Some(_) => return Err(Error::TokenInvalid("the service key does not match".into())),
        None => {
            return Err(Error::TokenInvalid(
                "the host API needs Authorization: Bearer <service key>".into(),
            ))
        }
    }
    let method = req.method().clone();
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let bytes = body::read_limited(req, app.config.max_body).await?;
    let value = match body::json(&bytes)? {
        Some(value) => value,
        None => api::host::query_json(query),
    };
    Ok(match api::host::handle(app, &method, path, value).await? {
        Some(data) => reply::json(StatusCode::OK, &data),
        None => reply::empty(StatusCode::NO_CONTENT),
    })
}
