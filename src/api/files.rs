//! `POST /v1/files` (upload, raw or multipart) and `GET /v1/files/{id}[/thumbnail]` (download
//! with ranges, for the uploader and members of chats where the file was sent).

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_stream::{Stream, StreamExt};

use crate::error::{io, Error, Result};
use crate::files::{self, Disk};
use crate::http::{body, reply, Body};
use crate::model::UserId;
use crate::server::App;
use crate::store::files::{self as rows, FileRow};

/// Chunk size of downloads.
const CHUNK: usize = 64 * 1024;

fn disk(app: &App) -> Disk {
    Disk::new(app.config.files_dir())
}

/// A temporary upload that removes itself unless kept.
struct Temp(Option<PathBuf>);

impl Temp {
    fn keep(mut self) -> PathBuf {
        self.0.take().expect("kept once")
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Writes a stream of chunks to `path`, failing with 413 past `limit` bytes; returns the size and
/// the first bytes (for sniffing).
async fn write_limited<S, E>(path: &Path, mut chunks: S, limit: u64) -> Result<(u64, Vec<u8>)>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: Into<Error>,
{
    let mut out = tokio::fs::File::create(path)
        .await
        .map_err(io("creating an upload"))?;
    let (mut size, mut head) = (0u64, Vec::new());
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(Into::into)?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(Error::PayloadTooLarge(limit));
        }
        if head.len() < files::SNIFF_BYTES {
            let take = (files::SNIFF_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        out.write_all(&chunk)
            .await
            .map_err(io("writing an upload"))?;
    }
    out.sync_all().await.map_err(io("syncing an upload"))?;
    Ok((size, head))
}

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
    app: &Arc<App>,
    user: UserId,
    req: Request<Incoming>,
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
    if declared.is_some_and(|n| n > limit + 16 * 1024) {
        return Err(Error::PayloadTooLarge(limit));
    }
    let disk = disk(app);
    disk.ensure().map_err(io("creating the files directory"))?;
    let temp = Temp(Some(disk.temp()?));
    let path = temp.0.clone().expect("set");
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok());
    let (size, head, title) = match boundary {
        None => {
            if declared.is_some_and(|n| n > limit) {
                return Err(Error::PayloadTooLarge(limit));
            }
            let (size, head) = write_limited(&path, body::paced(req, gap), limit).await?;
            (size, head, name.unwrap_or_default())
        }
        Some(boundary) => {
            let mut form = multer::Multipart::new(body::paced(req, gap), boundary);
            let mut found = None;
            while let Some(field) = form.next_field().await.map_err(multipart_error)? {
                if field.name() != Some("file") {
                    continue;
                }
                let title = name
                    .clone()
                    .or_else(|| field.file_name().map(str::to_string))
                    .unwrap_or_default();
                let (size, head) =
                    write_limited(&path, field.map(|r| r.map_err(multipart_error)), limit).await?;
                found = Some((size, head, title));
                break;
            }
            found.ok_or_else(|| {
                Error::BadRequest("the multipart body has no part named \"file\"".into())
            })?
        }
    };
    if size == 0 {
        // A missing file in `curl --data-binary @missing` sends nothing: say so, store nothing.
        return Err(Error::BadRequest(
            "the upload is empty: send the file's bytes as the body (or a multipart part \"file\")"
                .into(),
        ));
    }
    let mime = files::sniff(&head);
    let id = files::new_id()?;
    let thumb_mime = if files::has_thumbnail(&mime) {
        app.thumbnails
            .make(path.clone(), disk.thumbnail(&id))
            .await
            .map(str::to_string)
    } else {
        None
    };
    let row = FileRow {
        id: id.clone(),
        owner: user.to_string(),
        title: files::clean_title(&title),
        mime,
        size: size as i64,
        thumb_mime,
        created_at: crate::time::now_ms(),
    };
    let (kept, to) = (temp.keep(), disk.clone());
    let name = id.clone();
    tokio::task::spawn_blocking(move || to.keep(&kept, &name))
        .await
        .map_err(|e| Error::Internal(e.into()))?
        .map_err(io("storing an upload"))?;
    let stored = row.clone();
    if let Err(e) = app.store.write(move |tx| rows::insert(tx, &stored)).await {
        disk.remove(&id);
        return Err(e);
    }
    let body = serde_json::json!({"type": "file", "data": row.to_file()});
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
    app: &Arc<App>,
    user: UserId,
    id: &str,
    thumbnail: bool,
    headers: &HeaderMap,
) -> Result<Response<Body>> {
    if !files::valid_id(id) {
        return Err(Error::FileNotFound(id.to_string()));
    }
    let file_id = id.to_string();
    let row = app
        .store
        .read(move |c| rows::readable(c, &file_id, &user))
        .await?
        .ok_or_else(|| Error::FileNotFound(id.to_string()))?;
    let disk = disk(app);
    let (path, mime, etag) = if thumbnail {
        let mime = row
            .thumb_mime
            .clone()
            .ok_or_else(|| Error::FileNotFound(format!("{id}/thumbnail")))?;
        (disk.thumbnail(id), mime, format!("\"{id}-thumb\""))
    } else {
        (disk.path(id), row.mime.clone(), format!("\"{id}\""))
    };
    let size = tokio::fs::metadata(&path)
        .await
        .map_err(io("reading a file's size"))?
        .len();
    // Files never change after upload: their upload time is their last modification.
    let modified = std::time::UNIX_EPOCH + std::time::Duration::from_millis(row.created_at as u64);
    let last_modified = httpdate::fmt_http_date(modified);
    let mut res = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
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
                let mut res = Response::new(file_body(&path, 0, size).await?);
                res.headers_mut()
                    .insert(header::CONTENT_LENGTH, value(&size.to_string()));
                res
            }
            Ok(Some((start, end))) => {
                let len = end - start + 1;
                let mut res = Response::new(file_body(&path, start, len).await?);
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
    h.insert(header::CONTENT_TYPE, value(&mime));
    h.insert(header::ETAG, value(&etag));
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
    if !thumbnail {
        h.insert(
            header::CONTENT_DISPOSITION,
            value(&files::content_disposition(&row.mime, &row.title)),
        );
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
