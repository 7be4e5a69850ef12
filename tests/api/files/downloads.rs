//! Downloads: type, length, disposition and ETag, validators and byte ranges.

use reqwest::StatusCode;

use super::{assert_file, fetch, fetch_with, file_path, noise, uploaded};
use crate::helpers::spawn_app;

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
