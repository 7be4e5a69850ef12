//! The routes: the fixed ones (health, metrics, the description, streams, polls, files) in one
//! table with their methods, beside the client types (`api::CLIENT_TYPES`) and the host routes
//! (`api::host::ROUTES`), each its surface's one list; a wrong method's `405` and its `Allow`
//! come from them. Also the route template of any path, for logs and metrics.

use std::sync::Arc;

use http::{Method, Response, StatusCode};

use super::credentials::{caller, service_key};
use super::{body, files, query, reply, Body, OPENAPI};
use crate::api;
use crate::app::App;
use crate::error::{Error, Result};

/// The fixed routes, each answered by its own arm of [`route`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fixed {
    Health,
    Metrics,
    Description,
    Events,
    Poll,
    Envelope,
    Upload,
    File,
    Thumbnail,
    App,
    Asset,
    Client,
    Dev,
    DevToken,
}

/// The fixed routes: which, the path template, the methods it answers (HEAD: a file's headers
/// without its bytes, as a player asks a file's size).
const FIXED: &[(Fixed, &str, &str)] = &[
    (Fixed::Health, "/healthz", "GET"),
    (Fixed::Metrics, "/metrics", "GET"),
    (Fixed::Description, "/v1/openapi.json", "GET"),
    (Fixed::Events, "/v1/events", "GET"),
    (Fixed::Poll, "/v1/poll", "GET"),
    (Fixed::Envelope, "/v1", "POST"),
    (Fixed::Upload, "/v1/files", "POST"),
    (Fixed::File, "/v1/files/{fileId}", "GET, HEAD"),
    (
        Fixed::Thumbnail,
        "/v1/files/{fileId}/thumbnail",
        "GET, HEAD",
    ),
    (Fixed::App, "/", "GET, HEAD"),
    (Fixed::Asset, "/{asset}", "GET, HEAD"),
    (Fixed::Client, "/v1/client.js", "GET, HEAD"),
    (Fixed::Dev, "/v1/dev", "GET"),
    (Fixed::DevToken, "/v1/dev/token", "POST"),
];

/// The fixed route `path` is, with its template and methods.
fn fixed(path: &str) -> Option<(Fixed, &'static str, &'static str)> {
    let which = match path.strip_prefix("/v1/files/") {
        Some(rest) if rest.ends_with("/thumbnail") => Fixed::Thumbnail,
        Some(rest) if !rest.is_empty() => Fixed::File,
        _ if path.strip_prefix('/').is_some_and(super::web::is_asset) => Fixed::Asset,
        _ => return FIXED.iter().copied().find(|(_, t, _)| *t == path),
    };
    FIXED.iter().copied().find(|(f, _, _)| *f == which)
}

/// The fixed routes an edge of a cluster answers itself (it forwards the rest to the primary).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeLocal {
    Health,
    Events,
    Poll,
}

/// Which route a node answers itself `req` is, with a method the table allows, if any.
pub fn node_local(req: &super::In) -> Option<NodeLocal> {
    let (which, _, allowed) = fixed(req.uri().path())?;
    allow(req.method(), allowed).ok()?;
    match which {
        Fixed::Health => Some(NodeLocal::Health),
        Fixed::Events => Some(NodeLocal::Events),
        Fixed::Poll => Some(NodeLocal::Poll),
        _ => None,
    }
}

/// `Ok` when `method` is one of `allowed` (as `"GET, HEAD"`); otherwise `405` naming them.
fn allow(method: &Method, allowed: &'static str) -> Result<()> {
    if allowed.split(", ").any(|m| m == method.as_str()) {
        Ok(())
    } else {
        Err(Error::MethodNotAllowed {
            method: method.to_string(),
            allowed,
        })
    }
}

/// The route template of `path` for logs and metrics: a fixed route's, a known client type or
/// host route; anything else is `unknown`, so labels stay few.
pub fn template(path: &str) -> &'static str {
    if let Some((_, template, _)) = fixed(path) {
        return template;
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

/// Every route the server answers, as (method, path template): the fixed ones, one
/// `POST /v1/{type}` per client request type, and the host API under `/v1/server`. The API
/// description (`GET /v1/openapi.json`) is checked against this list; HEAD goes without
/// saying where GET is, as HTTP has it.
pub fn routes() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let fixed = FIXED.iter().map(|(_, p, m)| (*m, p.to_string()));
    let client = api::CLIENT_TYPES
        .iter()
        .map(|t| ("POST", format!("/v1/{t}")));
    let host = api::host::ROUTES
        .iter()
        .map(|(p, m)| (*m, format!("/v1/server{p}")));
    for (methods, path) in fixed.chain(client).chain(host) {
        for m in methods.split(", ").filter(|m| *m != "HEAD") {
            out.push((m, path.clone()));
        }
    }
    out
}

/// Answers `req` from its route: the host API under `/v1/server/`, a fixed route, or a client
/// type at `/v1/{type}`. `host`: the request has shown the service key already.
pub async fn route(app: &Arc<App>, req: super::In, host: bool) -> Result<Response<Body>> {
    if req.method() == Method::OPTIONS {
        return Ok(reply::preflight());
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if let Some(sub) = path
        .strip_prefix("/v1/server")
        .filter(|s| s.starts_with('/'))
    {
        return host_request(app, req, sub, host).await;
    }
    let Some((which, _, allowed)) = fixed(&path) else {
        let kind = path
            .strip_prefix("/v1/")
            .filter(|k| !k.is_empty() && !k.contains('/'));
        return match kind {
            Some(kind) if method == Method::POST => {
                let kind = kind.to_string();
                client_request(app, req, Some(kind)).await
            }
            // A known type asked with another method is told to POST; anything else is unknown.
            Some(kind) if api::is_client_type(kind) => Err(Error::MethodNotAllowed {
                method: method.to_string(),
                allowed: "POST",
            }),
            _ => Err(Error::TypeNotFound(format!(
                "no such endpoint: {method} {path}"
            ))),
        };
    };
    allow(&method, allowed)?;
    match which {
        Fixed::Health => {
            app.store.healthy().await?;
            Ok(reply::json(
                StatusCode::OK,
                &serde_json::json!({"status": "ok"}),
            ))
        }
        Fixed::Metrics => {
            if !host {
                service_key(app, &req)?;
            }
            super::metrics_page(&**app).await
        }
        Fixed::Description => Ok(reply::typed(StatusCode::OK, "application/json", OPENAPI)),
        Fixed::Events => {
            let user = caller(app, &req, true).await?;
            let ask = api::stream::SseAsk::parse(&query(&req), last_event_id(&req))?;
            let start = api::stream::Start::Here(app.store.clone());
            let streams = api::stream::Streams::here(app);
            let chunks = api::stream::sse(&streams, user, ask, start).await?;
            Ok(reply::event_stream(chunks))
        }
        Fixed::Poll => {
            let user = caller(app, &req, true).await?;
            let ask = api::stream::PollAsk::parse(&query(&req))?;
            let start = api::stream::Start::Here(app.store.clone());
            let streams = api::stream::Streams::here(app);
            let body = api::stream::poll(&streams, user, ask, start).await?;
            Ok(reply::json(StatusCode::OK, &body))
        }
        Fixed::Envelope => client_request(app, req, None).await,
        Fixed::App | Fixed::Asset | Fixed::Client => web_file(&req).unwrap_or_else(|| {
            Err(Error::TypeNotFound(format!("no such endpoint: {method} {path}")))
        }),
        Fixed::Dev | Fixed::DevToken if !app.config.dev => Err(Error::TypeNotFound(format!(
            "no such endpoint: {method} {path} (development sign-in is off: the server runs without --dev)"
        ))),
        Fixed::Dev => Ok(reply::json(
            StatusCode::OK,
            &serde_json::json!({"type": "dev", "data": {"dev": true}}),
        )),
        Fixed::DevToken => {
            let bytes =
                body::read_limited(req, app.config.max_body, app.config.body_timeout).await?;
            let env = body::envelope(&bytes)?;
            let data = api::dev::token(app, api::decode::data(env.data)?);
            Ok(reply::json(
                StatusCode::OK,
                &serde_json::json!({"type": "token", "data": data}),
            ))
        }
        Fixed::Upload => {
            let user = caller(app, &req, false).await?;
            let name = query(&req).remove("name");
            files::upload(app, user, req, name).await
        }
        Fixed::File | Fixed::Thumbnail => {
            // ?token= too: an <img> or <audio> element cannot send a header.
            let user = caller(app, &req, true).await?;
            let rest = &path["/v1/files/".len()..];
            let thumbnail = which == Fixed::Thumbnail;
            let id = if thumbnail {
                &rest[..rest.len() - "/thumbnail".len()]
            } else {
                rest
            };
            let mut res = files::download(app, user, id, thumbnail, req.headers()).await?;
            if method == Method::HEAD {
                *res.body_mut() = reply::full(bytes::Bytes::new());
            }
            Ok(res)
        }
    }
}

/// The demo app's page, its assets and the client, when `req` asks for one of them with a method
/// they answer (`None`: another route).
pub fn web_file(req: &super::In) -> Option<Result<Response<Body>>> {
    let path = req.uri().path();
    let (which, _, allowed) = fixed(path)?;
    let name = match which {
        Fixed::App => "index.html",
        Fixed::Client => super::web::CLIENT,
        Fixed::Asset => &path[1..],
        _ => return None,
    };
    if let Err(e) = allow(req.method(), allowed) {
        return Some(Err(e));
    }
    let Some(mut res) = super::web::serve(name, req.headers()) else {
        return Some(Err(Error::TypeNotFound(format!(
            "{path}: not in this build"
        ))));
    };
    if req.method() == Method::HEAD {
        *res.body_mut() = reply::full(bytes::Bytes::new());
    }
    Some(Ok(res))
}

/// The `Last-Event-ID` a reconnecting stream sends.
pub fn last_event_id(req: &super::In) -> Option<&str> {
    req.headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
}

/// `POST /v1/{type}` and `POST /v1`: authenticate, read and decode the envelope, dispatch.
async fn client_request(
    app: &Arc<App>,
    req: super::In,
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

/// `/v1/server/*`: check the service key, take the body (JSON, or for GET without one the query
/// string), dispatch.
async fn host_request(
    app: &Arc<App>,
    req: super::In,
    path: &str,
    key_shown: bool,
) -> Result<Response<Body>> {
    if !key_shown {
        // Fails, saying why: a wrong or missing key.
        service_key(app, &req)?;
    }
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
