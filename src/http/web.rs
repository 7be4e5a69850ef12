//! The browser's files: the demo app (`/`, `/{asset}`) and the JS client (`/v1/client.js`),
//! embedded from `web/` when the binary is built, each with an ETag so a browser revalidates
//! them cheaply.

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use super::reply::{self, Body};

/// Every file directly in `web/`: name, bytes, ETag (quoted), as `build.rs` lists them.
const FILES: &[(&str, &[u8], &str)] = include!(concat!(env!("OUT_DIR"), "/web.rs"));

/// The client module's file, served as `/v1/client.js` rather than under `/`.
pub const CLIENT: &str = "chinwag.js";

/// Files in `web/` that are not served: the client (it has its own path) and the manifest that
/// lets Node load the client as a module.
const UNLISTED: &[&str] = &[CLIENT, "package.json"];

/// Whether `/{name}` is one of the demo app's files (`index.html` is `/`).
pub fn is_asset(name: &str) -> bool {
    !UNLISTED.contains(&name) && FILES.iter().any(|(n, _, _)| *n == name)
}

/// The content type of a file by its extension.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// `GET` of the file `name` in `web/`: its bytes, or `304` when `If-None-Match` names its
/// ETag. `Cache-Control: no-cache` has the browser ask each time, so a new binary's files are
/// seen at once. `None` when the binary holds no such file.
pub fn serve(name: &str, request: &HeaderMap) -> Option<Response<Body>> {
    let (_, bytes, etag) = FILES.iter().find(|(n, _, _)| *n == name)?;
    let matches = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == *etag || t.trim() == "*"));
    let mut res = if matches {
        reply::empty(StatusCode::NOT_MODIFIED)
    } else {
        reply::typed(StatusCode::OK, content_type(name), *bytes)
    };
    let h = res.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_static(etag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Some(res)
}
