//! The HTTP of files: `POST /v1/files` read raw or as multipart within its limits, and
//! `GET`/`HEAD /v1/files/{id}[/thumbnail]` answered whole or by range, with the headers that let
//! browsers and players cache and seek. What is stored and who may read it: `api::files`.

use std::convert::Infallible;
use std::path::Path;

use bytes::BytesMut;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_stream::StreamExt;

use super::{body, reply, Body};
use crate::api::files::{readable, Upload};
use crate::app::App;
use crate::error::{io, Error, Result};
use crate::model::UserId;

/// Chunk size of downloads.
const CHUNK: usize = 64 * 1024;
/// What a multipart body may carry beyond its file (boundaries, part headers).
const MULTIPART_OVERHEAD: u64 = 16 * 1024;

/// A multipart error in the protocol's terms: a stalled body is a 408 like any other.
fn multipart_error(e: multer::Error) -> Error {
    match e {
        multer::Error::StreamReadFailed(inner) => match inner.downcast::<body::PieceError>() {
            Ok(piece) => (*piece).into(),
            Err(other) => Error::BadRequest(format!("could not read the upload: {other}")),
        },
        other => Error::BadRequest(format!("malformed multipart body: {other}")),
    }
}

/// Stores an upload: the raw body (name in `?name=`) or the `file` part of a multipart form.
/// Answers `201 {"type": "file", "data": File}`.
pub async fn upload(
    app: &App,
    user: UserId,
    req: super::In,
    name: Option<String>,
) -> Result<Response<Body>> {
    let limit = app.config.max_upload;
    let gap = app.config.body_timeout;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // An honest Content-Length over the limit is refused before any byte is read. (A multipart
    // body carries a little more than the file; the file itself is checked as it streams in.)
    if declared.is_some_and(|n| n > limit + MULTIPART_OVERHEAD) {
        return Err(Error::PayloadTooLarge(limit));
    }
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok());
    let mut upload = Upload::begin(app).await?;
    let title = match boundary {
        None => {
            if declared.is_some_and(|n| n > limit) {
                return Err(Error::PayloadTooLarge(limit));
            }
            upload.write(body::paced(req, gap)).await?;
            name.unwrap_or_default()
        }
        Some(boundary) => {
            let mut form = multer::Multipart::new(body::paced(req, gap), boundary);
            let mut title = None;
            while let Some(field) = form.next_field().await.map_err(multipart_error)? {
                if field.name() != Some("file") {
                    continue;
                }
                title = Some(
                    name.clone()
                        .or_else(|| field.file_name().map(str::to_string))
                        .unwrap_or_default(),
                );
                upload
                    .write(field.map(|r| r.map_err(multipart_error)))
                    .await?;
                break;
            }
            title.ok_or_else(|| {
                Error::BadRequest("the multipart body has no part named \"file\"".into())
            })?
        }
    };
    let file = upload.finish(app, &user, &title).await?;
    let body = serde_json::json!({"type": "file", "data": file});
    Ok(reply::json(StatusCode::CREATED, &body))
}

/// A single byte range of a file of `size` bytes: `Ok(None)` for the whole file, `Err(())` when
/// it cannot be satisfied. Multiple ranges are answered with the whole file.
fn range(headers: &HeaderMap, size: u64) -> std::result::Result<Option<(u64, u64)>, ()> {
    let Some(spec) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = spec.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(s), Some(e)) if s <= e => (s, e.min(size.saturating_sub(1))),
        (Some(s), None) if b.is_empty() => (s, size.saturating_sub(1)),
        // The last 0 bytes (`bytes=-0`) are no bytes at all: unsatisfiable, as RFC 9110 says.
        (None, Some(0)) if a.is_empty() => return Err(()),
        (None, Some(n)) if a.is_empty() => (size.saturating_sub(n), size.saturating_sub(1)),
        _ => return Ok(None),
    };
    if size == 0 || start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// Streams `len` bytes of the file at `path` from `start`.
async fn file_body(path: &Path, start: u64, len: u64) -> Result<Body> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(io("opening a file"))?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(io("seeking in a file"))?;
    let stream = async_stream::stream! {
        let mut left = len;
        while left > 0 {
            let mut buf = BytesMut::with_capacity(CHUNK.min(left as usize));
            match file.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let take = (n as u64).min(left);
                    left -= take;
                    let mut chunk = buf.freeze();
                    chunk.truncate(take as usize);
                    yield Ok::<_, Infallible>(hyper::body::Frame::data(chunk));
                }
            }
        }
    };
    Ok(BodyExt::boxed(StreamBody::new(stream)))
}

/// Serves a file (or its thumbnail) to someone allowed to read it; anyone else gets 404.
pub async fn download(
    app: &App,
    user: UserId,
    id: &str,
    thumbnail: bool,
    headers: &HeaderMap,
) -> Result<Response<Body>> {
    let file = readable(app, user, id, thumbnail).await?;
    let (size, etag) = (file.size, file.etag.as_str());
    let last_modified = httpdate::fmt_http_date(file.modified);
    let mut res = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag)
    {
        reply::empty(StatusCode::NOT_MODIFIED)
    } else {
        // A Range goes with an If-Range that names this version of the file, or with none; for
        // another version (the client's copy is stale) the answer is the whole file.
        let if_range = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok());
        let ranged = if_range.is_none_or(|v| v == etag || v == last_modified);
        let wanted = if ranged {
            range(headers, size)
        } else {
            Ok(None)
        };
        match wanted {
            Err(()) => {
                let mut res = reply::error(&Error::RangeNotSatisfiable(size));
                res.headers_mut()
                    .insert(header::CONTENT_RANGE, value(&format!("bytes */{size}")));
                return Ok(res);
            }
            Ok(None) => {
                let mut res = Response::new(file_body(&file.path, 0, size).await?);
                res.headers_mut()
                    .insert(header::CONTENT_LENGTH, value(&size.to_string()));
                res
            }
            Ok(Some((start, end))) => {
                let len = end - start + 1;
                let mut res = Response::new(file_body(&file.path, start, len).await?);
                *res.status_mut() = StatusCode::PARTIAL_CONTENT;
                let h = res.headers_mut();
                h.insert(header::CONTENT_LENGTH, value(&len.to_string()));
                h.insert(
                    header::CONTENT_RANGE,
                    value(&format!("bytes {start}-{end}/{size}")),
                );
                res
            }
        }
    };
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, value(&file.mime));
    h.insert(header::ETAG, value(etag));
    h.insert(header::LAST_MODIFIED, value(&last_modified));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Some(disposition) = &file.disposition {
        h.insert(header::CONTENT_DISPOSITION, value(disposition));
    }
    Ok(res)
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_range(r: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(r).unwrap());
        h
    }

    #[test]
    fn ranges_parse_like_rfc_9110() {
        assert_eq!(range(&HeaderMap::new(), 100), Ok(None));
        assert_eq!(range(&with_range("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(range(&with_range("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(range(&with_range("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(range(&with_range("bytes=50-500"), 100), Ok(Some((50, 99))));
        assert_eq!(range(&with_range("bytes=100-"), 100), Err(()));
        assert_eq!(range(&with_range("bytes=-0"), 100), Err(()));
        assert_eq!(range(&with_range("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(range(&with_range("items=0-1"), 100), Ok(None));
    }
}
