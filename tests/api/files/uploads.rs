//! Uploads: raw and multipart bodies round trip, the size limit in every way a body arrives, types
//! sniffed from the bytes, empty uploads.

use bytes::Bytes;
use reqwest::StatusCode;
use serde_json::Value;

use super::{
    assert_file, fetch, file_path, file_rows, jpeg, noise, on_disk, png, thumb_path,
    thumbnail_size, upload, upload_multipart,
};
use crate::helpers::{spawn_app, spawn_with};

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
