//! Files: uploads, limits, sniffed types, thumbnails, downloads, who may read them, orphans.

use std::io::Cursor;
use std::time::Duration;

use bytes::Bytes;
use image::codecs::gif::GifEncoder;
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ExtendedColorType, Frame, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_with, token, TestApp};

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
async fn uploaded(app: &TestApp, user: &str, name: &str, bytes: Vec<u8>) -> Value {
    let (status, body) = upload(app, user, Some(name), None, bytes).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["data"].clone()
}

/// A download as the client sees it.
struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
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
    let mut req = app
        .client
        .get(format!("{}{path}", app.base))
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

#[tokio::test]
async fn raw_uploads_round_trip_byte_for_byte() {
    // Arrange
    let app = spawn_app().await;
    let blob = noise(300 * 1024 + 7, 1);
    let picture = png(800, 400);

    // Act
    let (blob_status, blob_body) =
        upload(&app, "alice", Some("blob.bin"), None, blob.clone()).await;
    let (pic_status, pic_body) =
        upload(&app, "alice", Some("photo.png"), None, picture.clone()).await;

    // Assert
    assert_eq!(blob_status, StatusCode::CREATED, "{blob_body}");
    assert_eq!(blob_body["type"], "file");
    assert_file(
        &blob_body["data"],
        "blob.bin",
        "application/octet-stream",
        blob.len(),
        false,
    );
    assert_eq!(pic_status, StatusCode::CREATED, "{pic_body}");
    assert_eq!(pic_body["type"], "file");
    assert_file(
        &pic_body["data"],
        "photo.png",
        "image/png",
        picture.len(),
        true,
    );
    let got = fetch(&app, "alice", &file_path(&blob_body["data"]["id"])).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.body == blob, "the blob came back changed");
    let got = fetch(&app, "alice", &file_path(&pic_body["data"]["id"])).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.body == picture, "the picture came back changed");
}

#[tokio::test]
async fn multipart_uploads_round_trip_and_keep_only_the_base_name() {
    // Arrange
    let app = spawn_app().await;
    let blob = noise(300 * 1024 + 13, 2);
    let picture = jpeg(300, 900);

    // Act
    let (blob_status, blob_body) = upload_multipart(&app, "alice", "../../x.txt", &blob).await;
    let (pic_status, pic_body) =
        upload_multipart(&app, "alice", "C:\\photos\\tall.jpg", &picture).await;

    // Assert
    assert_eq!(blob_status, StatusCode::CREATED, "{blob_body}");
    assert_eq!(blob_body["type"], "file");
    assert_file(
        &blob_body["data"],
        "x.txt",
        "application/octet-stream",
        blob.len(),
        false,
    );
    assert_eq!(pic_status, StatusCode::CREATED, "{pic_body}");
    assert_file(
        &pic_body["data"],
        "tall.jpg",
        "image/jpeg",
        picture.len(),
        true,
    );
    let got = fetch(&app, "alice", &file_path(&blob_body["data"]["id"])).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.body == blob, "the multipart blob came back changed");
    let got = fetch(&app, "alice", &file_path(&pic_body["data"]["id"])).await;
    assert!(
        got.body == picture,
        "the multipart picture came back changed"
    );
}

#[tokio::test]
async fn uploads_over_the_limit_are_refused_and_leave_nothing_behind() {
    // Arrange
    let app = spawn_with(|c| c.max_upload = 1000).await;
    let exact = noise(1000, 3);
    let over = noise(1001, 4);

    // Act: exactly the limit is fine
    let (status, body) = upload(&app, "alice", Some("exact.bin"), None, exact.clone()).await;

    // Assert
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let kept = body["data"]["id"].as_str().unwrap().to_string();
    let only_kept = vec![kept.clone()];
    assert_eq!(on_disk(&app), only_kept);
    assert_eq!(file_rows(&app).await, 1);

    // Act: one byte more, in every way a body can arrive
    let honest = upload(&app, "alice", Some("over.bin"), None, over.clone()).await;
    let chunks: Vec<Result<Bytes, std::io::Error>> = over
        .chunks(300)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let chunked = upload(
        &app,
        "alice",
        Some("over.bin"),
        None,
        reqwest::Body::wrap_stream(tokio_stream::iter(chunks)),
    )
    .await;
    let form = upload_multipart(&app, "alice", "over.bin", &over).await;

    // Assert
    for (how, (status, body)) in [
        ("content-length", honest),
        ("chunked", chunked),
        ("multipart", form),
    ] {
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{how}: {body}");
        assert_eq!(
            body["error"]["reason"], "payload_too_large",
            "{how}: {body}"
        );
        assert_eq!(on_disk(&app), only_kept, "{how} left something behind");
        assert_eq!(file_rows(&app).await, 1, "{how} left a row behind");
    }
    let got = fetch(&app, "alice", &format!("/v1/files/{kept}")).await;
    assert!(got.body == exact);
}

#[tokio::test]
async fn the_type_is_sniffed_from_the_bytes_not_taken_from_the_client() {
    // Arrange
    let app = spawn_app().await;
    let picture = png(800, 400);
    let text = "plain words, café\n".repeat(20).into_bytes();
    let blob = noise(4096, 5);

    // Act
    let (s1, as_text) = upload(&app, "alice", Some("a"), Some("text/plain"), picture).await;
    let (s2, as_png) = upload(&app, "alice", Some("b"), Some("image/png"), text.clone()).await;
    let (s3, as_jpeg) = upload(&app, "alice", Some("c"), Some("image/jpeg"), blob.clone()).await;

    // Assert
    assert_eq!(
        (s1, s2, s3),
        (
            StatusCode::CREATED,
            StatusCode::CREATED,
            StatusCode::CREATED
        )
    );
    assert_eq!(as_text["data"]["mimeType"], "image/png", "{as_text}");
    assert!(as_text["data"]["thumbnail"].is_string(), "{as_text}");
    let got = fetch(&app, "alice", &file_path(&as_text["data"]["id"])).await;
    assert_eq!(got.header("content-type"), "image/png");
    assert_eq!(
        thumbnail_size(&app, "alice", &as_text["data"]).await,
        (320, 160)
    );

    assert_file(
        &as_png["data"],
        "b",
        "text/plain; charset=utf-8",
        text.len(),
        false,
    );
    let got = fetch(&app, "alice", &file_path(&as_png["data"]["id"])).await;
    assert_eq!(got.header("content-type"), "text/plain; charset=utf-8");
    let thumb = fetch(&app, "alice", &thumb_path(&as_png["data"]["id"])).await;
    assert_eq!(thumb.status, StatusCode::NOT_FOUND);
    assert_eq!(thumb.reason(), "file_not_found");

    assert_eq!(as_jpeg["data"]["mimeType"], "application/octet-stream");
    assert_eq!(as_jpeg["data"]["thumbnail"], Value::Null);
    let got = fetch(&app, "alice", &file_path(&as_jpeg["data"]["id"])).await;
    assert_eq!(got.header("content-type"), "application/octet-stream");
}

#[tokio::test]
async fn thumbnails_fit_320_and_keep_the_aspect_ratio() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let wide = uploaded(&app, "alice", "wide.png", png(800, 400)).await;
    let tall = uploaded(&app, "alice", "tall.jpg", jpeg(300, 900)).await;
    let lossless = uploaded(&app, "alice", "pic.webp", webp(640, 480)).await;
    let small = uploaded(&app, "alice", "small.png", png(100, 50)).await;

    // Assert
    assert_eq!(wide["mimeType"], "image/png");
    assert_scaled(thumbnail_size(&app, "alice", &wide).await, 800, 400);
    assert_eq!(tall["mimeType"], "image/jpeg");
    assert_scaled(thumbnail_size(&app, "alice", &tall).await, 300, 900);
    assert_eq!(lossless["mimeType"], "image/webp");
    assert_scaled(thumbnail_size(&app, "alice", &lossless).await, 640, 480);
    assert_eq!(small["mimeType"], "image/png");
    assert_eq!(thumbnail_size(&app, "alice", &small).await, (100, 50));
}

#[tokio::test]
async fn an_animated_gif_gets_a_thumbnail_of_its_first_frame() {
    // Arrange
    let app = spawn_app().await;
    let gif = uploaded(&app, "alice", "anim.gif", animated_gif(640, 480)).await;

    // Act
    let got = fetch(&app, "alice", &thumb_path(&gif["id"])).await;

    // Assert
    assert_eq!(gif["mimeType"], "image/gif");
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.header("content-type").starts_with("image/"));
    let thumb = image::load_from_memory(&got.body).unwrap().to_rgb8();
    assert_scaled(thumb.dimensions(), 640, 480);
    let Rgb([r, g, b]) = *thumb.get_pixel(thumb.width() / 2, thumb.height() / 2);
    assert!(
        r > 200 && g < 60 && b < 60,
        "the thumbnail shows the first (red) frame, not ({r}, {g}, {b})"
    );
}

#[tokio::test]
async fn downloads_carry_type_length_disposition_and_etag_and_honour_validators() {
    // Arrange
    let app = spawn_app().await;
    let content: Vec<u8> = (0..5000u32)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[(i * 7 % 36) as usize])
        .collect();
    let file = uploaded(&app, "alice", "naïve \"q\";\r\n.txt", content.clone()).await;
    let path = file_path(&file["id"]);

    // Act
    let got = fetch(&app, "alice", &path).await;

    // Assert
    assert_file(
        &file,
        "naïve \"q\";.txt",
        "text/plain; charset=utf-8",
        5000,
        false,
    );
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.body == content);
    assert_eq!(got.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(got.header("content-length"), "5000");
    let disposition = got.header("content-disposition");
    assert!(
        disposition.starts_with("attachment;"),
        "text is not shown inline: {disposition}"
    );
    assert!(
        disposition.contains("filename*=UTF-8''na%C3%AFve%20%22q%22%3B.txt"),
        "{disposition}"
    );
    assert!(
        !disposition.contains(['\r', '\n']) && disposition.is_ascii(),
        "{disposition:?}"
    );
    let etag = got.header("etag").to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    // Act & Assert: a validator that matches
    let cached = fetch_with(&app, "alice", &path, &[("if-none-match", &etag)]).await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert!(cached.body.is_empty());
}

#[tokio::test]
async fn downloads_serve_byte_ranges() {
    // Arrange
    let app = spawn_app().await;
    let content = noise(5000, 6);
    let file = uploaded(&app, "alice", "blob.bin", content.clone()).await;
    let path = file_path(&file["id"]);

    // Act
    let head = fetch_with(&app, "alice", &path, &[("range", "bytes=0-99")]).await;
    let tail = fetch_with(&app, "alice", &path, &[("range", "bytes=-100")]).await;
    let past = fetch_with(&app, "alice", &path, &[("range", "bytes=5000-")]).await;

    // Assert
    assert_eq!(head.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(head.header("content-range"), "bytes 0-99/5000");
    assert_eq!(head.header("content-length"), "100");
    assert!(head.body[..] == content[..100]);
    assert_eq!(tail.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail.header("content-range"), "bytes 4900-4999/5000");
    assert!(tail.body[..] == content[4900..]);
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(past.header("content-range"), "bytes */5000");
}

#[tokio::test]
async fn an_unsent_upload_is_the_uploaders_alone_and_unknown_ids_look_the_same() {
    // Arrange
    let app = spawn_app().await;
    let file = uploaded(&app, "alice", "photo.png", png(800, 400)).await;

    // Act
    let owner = fetch(&app, "alice", &file_path(&file["id"])).await;
    let owner_thumb = fetch(&app, "alice", &thumb_path(&file["id"])).await;
    let stranger = fetch(&app, "carol", &file_path(&file["id"])).await;
    let stranger_thumb = fetch(&app, "carol", &thumb_path(&file["id"])).await;
    let random = fetch(&app, "carol", "/v1/files/0123456789abcdef0123456789abcdef").await;
    let malformed = fetch(&app, "carol", "/v1/files/..%2F..%2Fetc").await;
    let upper_case = fetch(
        &app,
        "alice",
        &format!("/v1/files/{}", file["id"].as_str().unwrap().to_uppercase()),
    )
    .await;

    // Assert
    assert_eq!(owner.status, StatusCode::OK);
    assert_eq!(owner_thumb.status, StatusCode::OK);
    for (who, got) in [
        ("stranger", &stranger),
        ("stranger's thumbnail", &stranger_thumb),
        ("random id", &random),
        ("malformed id", &malformed),
        ("upper-case id", &upper_case),
    ] {
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{who}");
        assert_eq!(got.reason(), "file_not_found", "{who}");
    }
}

#[tokio::test]
async fn a_sent_file_is_readable_by_the_chats_members_and_no_one_else() {
    // Arrange
    let app = spawn_app().await;
    let direct = app.direct_chat("alice", "bob").await;
    let group = app.group("alice", &["dave"]).await;
    let in_direct = uploaded(&app, "alice", "direct.png", png(800, 400)).await;
    let in_group = uploaded(&app, "alice", "group.png", png(400, 800)).await;

    // Act
    let (s1, b1) = send_file(&app, "alice", direct, "d1", &in_direct["id"]).await;
    let (s2, b2) = send_file(&app, "alice", group, "g1", &in_group["id"]).await;

    // Assert
    assert_eq!(s1, StatusCode::OK, "{b1}");
    assert_eq!(s2, StatusCode::OK, "{b2}");
    let bob = fetch(&app, "bob", &file_path(&in_direct["id"])).await;
    assert_eq!(bob.status, StatusCode::OK);
    assert!(bob.body == png(800, 400));
    assert_eq!(
        fetch(&app, "bob", &thumb_path(&in_direct["id"]))
            .await
            .status,
        StatusCode::OK
    );
    let by_query = fetch_with_query_token(&app, "bob", &file_path(&in_direct["id"])).await;
    assert_eq!(by_query.status, StatusCode::OK);
    assert!(by_query.body == png(800, 400));
    let thumb_by_query = fetch_with_query_token(&app, "bob", &thumb_path(&in_direct["id"])).await;
    assert_eq!(thumb_by_query.status, StatusCode::OK);
    assert!(image::load_from_memory(&thumb_by_query.body).is_ok());
    let dave = fetch(&app, "dave", &file_path(&in_group["id"])).await;
    assert_eq!(dave.status, StatusCode::OK);
    assert_eq!(
        fetch(&app, "dave", &thumb_path(&in_group["id"]))
            .await
            .status,
        StatusCode::OK
    );
    for (who, path) in [
        ("carol", file_path(&in_direct["id"])),
        ("carol", thumb_path(&in_direct["id"])),
        ("carol", file_path(&in_group["id"])),
        ("dave", file_path(&in_direct["id"])),
        ("bob", file_path(&in_group["id"])),
    ] {
        let got = fetch(&app, who, &path).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{who} {path}");
        assert_eq!(got.reason(), "file_not_found", "{who} {path}");
    }
    let query_stranger = fetch_with_query_token(&app, "carol", &file_path(&in_direct["id"])).await;
    assert_eq!(query_stranger.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn only_the_uploader_can_send_a_file_and_file_messages_need_one() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let alices = uploaded(&app, "alice", "photo.png", png(100, 50)).await;

    // Act
    let (stolen, stolen_body) = send_file(&app, "bob", chat, "steal", &alices["id"]).await;
    let (unknown, unknown_body) = send_file(
        &app,
        "alice",
        chat,
        "unknown",
        &json!("0123456789abcdef0123456789abcdef"),
    )
    .await;
    let (bare, bare_body) = app
        .post(
            "alice",
            "message",
            json!({"messages": [{"clientMessageId": "bare", "chatId": chat, "type": "image", "text": ""}]}),
        )
        .await;

    // Assert
    assert_eq!(stolen, StatusCode::NOT_FOUND, "{stolen_body}");
    assert_eq!(stolen_body["error"]["reason"], "file_not_found");
    assert_eq!(unknown, StatusCode::NOT_FOUND, "{unknown_body}");
    assert_eq!(unknown_body["error"]["reason"], "file_not_found");
    assert_eq!(bare, StatusCode::BAD_REQUEST, "{bare_body}");
    assert_eq!(bare_body["error"]["reason"], "bad_request");
    assert!(
        bare_body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fileId"),
        "{bare_body}"
    );
    let history = app.ok("bob", "history", json!({"chatId": chat})).await;
    assert_eq!(history["messages"], json!([]), "nothing was sent");
    let bob = fetch(&app, "bob", &file_path(&alices["id"])).await;
    assert_eq!(bob.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deleting_the_message_takes_the_file_away_from_the_other_member() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let file = uploaded(&app, "alice", "photo.png", png(800, 400)).await;
    let (status, body) = send_file(&app, "alice", chat, "m1", &file["id"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        fetch(&app, "bob", &file_path(&file["id"])).await.status,
        StatusCode::OK
    );

    // Act
    app.ok(
        "alice",
        "deleteMessage",
        json!({"messageId": body["data"]["messages"][0]["id"]}),
    )
    .await;

    // Assert
    for path in [file_path(&file["id"]), thumb_path(&file["id"])] {
        let bob = fetch(&app, "bob", &path).await;
        assert_eq!(bob.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(bob.reason(), "file_not_found", "{path}");
        assert_eq!(
            fetch(&app, "alice", &path).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    let history = app.ok("bob", "history", json!({"chatId": chat})).await;
    assert_eq!(history["messages"][0]["deleted"], true);
    assert_eq!(history["messages"][0]["file"], Value::Null);
}

#[tokio::test]
async fn a_message_carries_its_file_everywhere_it_is_shown() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let file = uploaded(&app, "alice", "photo.jpg", jpeg(300, 900)).await;
    let mut bob = app.events("bob", "", None).await;
    assert_eq!(bob.next().await.event, "chats");

    // Act
    let (status, body) = send_file(&app, "alice", chat, "m1", &file["id"]).await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = &body["data"]["messages"][0];
    assert_eq!(sent["type"], "image");
    assert_eq!(sent["file"], file, "in the message response");
    let pushed = bob.next_of("message").await;
    assert_eq!(pushed.data()["id"], sent["id"]);
    assert_eq!(pushed.data()["file"], file, "in the SSE message event");
    let history = app.ok("bob", "history", json!({"chatId": chat})).await;
    assert_eq!(history["messages"][0]["id"], sent["id"]);
    assert_eq!(history["messages"][0]["file"], file, "in history");
    for user in ["alice", "bob"] {
        let chats = app.ok(user, "chats", json!({})).await;
        let last = &chats["chats"][0]["lastMessage"];
        assert_eq!(last["id"], sent["id"], "{user}'s chats");
        assert_eq!(last["file"], file, "in {user}'s chats lastMessage");
    }
}

#[tokio::test]
async fn the_janitor_removes_uploads_never_sent_and_keeps_sent_ones() {
    // Arrange
    let app = spawn_with(|c| c.orphan_ttl = Duration::ZERO).await;
    let chat = app.direct_chat("alice", "bob").await;
    let never_sent = uploaded(&app, "alice", "a.png", png(800, 400)).await;
    let sent_bytes = png(400, 800);
    let sent = uploaded(&app, "alice", "b.png", sent_bytes.clone()).await;
    let (status, body) = send_file(&app, "alice", chat, "m1", &sent["id"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (a, b) = (
        never_sent["id"].as_str().unwrap().to_string(),
        sent["id"].as_str().unwrap().to_string(),
    );
    assert!(on_disk(&app).contains(&format!("{a}.thumb")));
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Act
    let removed = chinwag::janitor::prune_files_once(&app.app.janitor())
        .await
        .unwrap();

    // Assert
    assert_eq!(removed, 1);
    let gone = fetch(&app, "alice", &file_path(&never_sent["id"])).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.reason(), "file_not_found");
    let mut want = vec![b.clone(), format!("{b}.thumb")];
    want.sort_unstable();
    assert_eq!(
        on_disk(&app),
        want,
        "only the sent file and its thumbnail stay"
    );
    assert_eq!(file_rows(&app).await, 1);
    for user in ["alice", "bob"] {
        let kept = fetch(&app, user, &file_path(&sent["id"])).await;
        assert_eq!(kept.status, StatusCode::OK, "{user}");
        assert!(kept.body == sent_bytes, "{user}");
        assert_eq!(
            fetch(&app, user, &thumb_path(&sent["id"])).await.status,
            StatusCode::OK,
            "{user}"
        );
    }
}

#[tokio::test]
async fn an_empty_upload_is_refused_and_stores_nothing() {
    // Arrange: `curl --data-binary @missing-file` sends an empty body
    let app = spawn_app().await;

    // Act
    let raw = upload(&app, "alice", Some("photo.jpg"), None, Vec::new()).await;
    let form = upload_multipart(&app, "alice", "photo.jpg", b"").await;

    // Assert
    for (status, body) in [raw, form] {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["reason"], "bad_request");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("empty"),
            "{body}"
        );
    }
    assert!(on_disk(&app).iter().all(|n| n.starts_with("tmp-")) && on_disk(&app).is_empty());
    assert_eq!(file_rows(&app).await, 0);
}
