//! Files: uploads, limits, sniffed types, thumbnails, downloads, who may read them, orphans.

mod access;
mod downloads;
mod thumbnails;
mod uploads;

use std::io::Cursor;

use bytes::Bytes;
use image::codecs::gif::GifEncoder;
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ExtendedColorType, Frame, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{token, TestApp};

/// The boundary of every hand-built multipart body.
const BOUNDARY: &str = "chinwag-test-boundary-7MA4YWxkTrZu0gW";

/// `len` pseudo-random bytes from `seed` (xorshift), the same on every run.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// A `w`x`h` picture with a gradient, so it is not trivially compressible.
fn rgb(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            ((x + y) % 256) as u8,
        ])
    })
}

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

pub(crate) fn png(w: u32, h: u32) -> Vec<u8> {
    encode(DynamicImage::ImageRgb8(rgb(w, h)), ImageFormat::Png)
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    encode(DynamicImage::ImageRgb8(rgb(w, h)), ImageFormat::Jpeg)
}

fn webp(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    WebPEncoder::new_lossless(&mut out)
        .encode(rgb(w, h).as_raw(), w, h, ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// A two-frame animated GIF of `w`x`h`: a red frame, then a blue one.
fn animated_gif(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut out);
        encoder
            .encode_frames([
                Frame::new(RgbaImage::from_pixel(w, h, Rgba([255, 0, 0, 255]))),
                Frame::new(RgbaImage::from_pixel(w, h, Rgba([0, 0, 255, 255]))),
            ])
            .unwrap();
    }
    out
}

/// A hand-built multipart/form-data body: a `note` field, then a `file` part with `filename`.
fn multipart(filename: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nnot the file\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// `POST /v1/files` as `user` with `?name=` (URL-encoded here), a claimed Content-Type and a body.
pub(crate) async fn upload(
    app: &TestApp,
    user: &str,
    name: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let url = match name {
        Some(n) => format!(
            "{}/v1/files?name={}",
            app.base,
            form_urlencoded::byte_serialize(n.as_bytes()).collect::<String>()
        ),
        None => format!("{}/v1/files", app.base),
    };
    let mut req = app.client.post(url).bearer_auth(token(user)).body(body);
    if let Some(ct) = content_type {
        req = req.header(CONTENT_TYPE, ct);
    }
    crate::helpers::read(req.send().await.unwrap()).await
}

/// `POST /v1/files` of a multipart form whose `file` part is `bytes` named `filename`.
async fn upload_multipart(
    app: &TestApp,
    user: &str,
    filename: &str,
    bytes: &[u8],
) -> (StatusCode, Value) {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    upload(
        app,
        user,
        None,
        Some(&content_type),
        multipart(filename, bytes),
    )
    .await
}

/// Uploads expecting 201; returns the File object.
pub(crate) async fn uploaded(app: &TestApp, user: &str, name: &str, bytes: Vec<u8>) -> Value {
    let (status, body) = upload(app, user, Some(name), None, bytes).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["data"].clone()
}

/// A download as the client sees it.
pub(crate) struct Got {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    /// The `error.reason` of a JSON error body.
    fn reason(&self) -> Value {
        let body: Value = serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "{}: not a JSON error: {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        });
        body["error"]["reason"].clone()
    }
}

/// `GET {path}` (`/v1/files/...`) as `user` with a bearer token and extra headers.
async fn fetch_with(app: &TestApp, user: &str, path: &str, headers: &[(&str, &str)]) -> Got {
    request(app, reqwest::Method::GET, user, path, headers).await
}

/// `method {path}` as `user` with a bearer token and extra headers.
pub(crate) async fn request(
    app: &TestApp,
    method: reqwest::Method,
    user: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Got {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(token(user));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    Got {
        status,
        headers,
        body: res.bytes().await.unwrap(),
    }
}

async fn fetch(app: &TestApp, user: &str, path: &str) -> Got {
    fetch_with(app, user, path, &[]).await
}

/// `GET {path}?token=` as `user`, with no Authorization header.
async fn fetch_with_query_token(app: &TestApp, user: &str, path: &str) -> Got {
    let res = app
        .client
        .get(format!("{}{path}?token={}", app.base, token(user)))
        .send()
        .await
        .unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    Got {
        status,
        headers,
        body: res.bytes().await.unwrap(),
    }
}

fn file_path(id: &Value) -> String {
    format!("/v1/files/{}", id.as_str().unwrap())
}

fn thumb_path(id: &Value) -> String {
    format!("/v1/files/{}/thumbnail", id.as_str().unwrap())
}

/// Names in the files directory, sorted (empty if it does not exist yet).
fn on_disk(app: &TestApp) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(app.app.config.files_dir()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort_unstable();
    names
}

/// Rows of the files table.
async fn file_rows(app: &TestApp) -> i64 {
    app.app
        .store
        .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM files", [], |r| r.get(0))?))
        .await
        .unwrap()
}

/// Asserts `file` is the wire form of an upload: exactly its fields, with these values.
fn assert_file(file: &Value, title: &str, mime: &str, size: usize, thumbnail: bool) {
    let mut keys: Vec<&str> = file
        .as_object()
        .unwrap_or_else(|| panic!("not a File object: {file}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "id",
            "insertDate",
            "mimeType",
            "size",
            "thumbnail",
            "title",
            "url"
        ],
        "{file}"
    );
    let id = file["id"].as_str().unwrap();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "id of {file}"
    );
    assert_eq!(file["title"], title, "{file}");
    assert_eq!(file["mimeType"], mime, "{file}");
    assert_eq!(file["size"], size, "{file}");
    assert_eq!(file["url"], format!("/v1/files/{id}"), "{file}");
    let want_thumb = thumbnail.then(|| format!("/v1/files/{id}/thumbnail"));
    assert_eq!(file["thumbnail"], json!(want_thumb), "{file}");
    assert!(file["insertDate"].as_str().is_some(), "{file}");
}

/// Sends `file_id` as `user` in `chat` as an image message; returns the status and body.
async fn send_file(
    app: &TestApp,
    user: &str,
    chat: i64,
    client_id: &str,
    file_id: &Value,
) -> (StatusCode, Value) {
    app.post(
        user,
        "message",
        json!({"messages": [{
            "clientMessageId": client_id,
            "chatId": chat,
            "type": "image",
            "fileId": file_id,
            "text": "",
        }]}),
    )
    .await
}

/// Downloads the thumbnail of `file` as `user` and returns its decoded size.
async fn thumbnail_size(app: &TestApp, user: &str, file: &Value) -> (u32, u32) {
    let got = fetch(app, user, &thumb_path(&file["id"])).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(
        got.header("content-type").starts_with("image/"),
        "{:?}",
        got.headers
    );
    let img = image::load_from_memory(&got.body).expect("the thumbnail decodes");
    (img.width(), img.height())
}

/// Asserts a thumbnail of a `w`x`h` image: longer side 320, aspect ratio kept within 1 px.
fn assert_scaled(got: (u32, u32), w: u32, h: u32) {
    let scale = 320.0 / f64::from(w.max(h));
    let (want_w, want_h) = (f64::from(w) * scale, f64::from(h) * scale);
    assert_eq!(got.0.max(got.1), 320, "thumbnail of {w}x{h} is {got:?}");
    assert!(
        (f64::from(got.0) - want_w).abs() <= 1.0 && (f64::from(got.1) - want_h).abs() <= 1.0,
        "thumbnail of {w}x{h} is {got:?}, want about {want_w:.1}x{want_h:.1}"
    );
}
