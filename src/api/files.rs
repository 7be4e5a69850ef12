//! Files for a caller, without HTTP: an upload stored (its bytes within the size limit, its type
//! sniffed from them, its thumbnail, its row) and the file or thumbnail a caller may read. The
//! HTTP layer (`http/files.rs`) reads the body, multipart or raw, and answers ranges.

use std::path::PathBuf;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio_stream::{Stream, StreamExt};

use crate::app::App;
use crate::error::{io, Error, Result};
use crate::files::{self, Disk};
use crate::model::{File, UserId};
use crate::store::files::{self as rows, FileRow};

/// Runs blocking file-system work off the runtime.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    crate::blocking::run(what, f)
        .await
        .map_err(Error::Internal)?
        .map_err(io(what))
}

/// An upload in progress: the temporary file its bytes go to, removed unless it is kept.
pub struct Upload {
    disk: Disk,
    temp: Option<PathBuf>,
    limit: u64,
    written: Option<(u64, Vec<u8>)>,
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(p) = self.temp.take() {
            // One unlink, left on the runtime on purpose: a refused upload's answer never
            // comes before its bytes are gone.
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Upload {
    /// Starts an upload of at most `--max-upload` bytes.
    pub async fn begin(app: &App) -> Result<Upload> {
        let disk = app.disk.clone();
        let ensure = disk.clone();
        blocking("creating the files directory", move || ensure.ensure()).await?;
        Ok(Upload {
            temp: Some(disk.temp()?),
            disk,
            limit: app.config.max_upload,
            written: None,
        })
    }

    /// Writes the file's bytes from `chunks`, failing with 413 past the limit, and syncs them.
    pub async fn write<S, E>(&mut self, mut chunks: S) -> Result<()>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: Into<Error>,
    {
        let path = self
            .temp
            .clone()
            .expect("an upload's file until it is kept");
        let mut out = tokio::fs::File::create(&path)
            .await
            .map_err(io("creating an upload"))?;
        let (mut size, mut head) = (0u64, Vec::new());
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(Into::into)?;
            size += chunk.len() as u64;
            if size > self.limit {
                return Err(Error::PayloadTooLarge(self.limit));
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
        self.written = Some((size, head));
        Ok(())
    }

    /// Keeps the written file as `user`'s, titled `title`: its type, its thumbnail, its name on
    /// disk and its row. An upload with no bytes is refused.
    pub async fn finish(mut self, app: &App, user: &UserId, title: &str) -> Result<File> {
        let (size, head) = self.written.take().unwrap_or_default();
        if size == 0 {
            // A missing file in `curl --data-binary @missing` sends nothing: say so, store nothing.
            return Err(Error::BadRequest(
                "the upload is empty: send the file's bytes as the body (or a multipart part \
                 \"file\")"
                    .into(),
            ));
        }
        let path = self
            .temp
            .clone()
            .expect("an upload's file until it is kept");
        let mime = files::sniff(&head);
        let id = files::new_id()?;
        let thumb_mime = if files::has_thumbnail(&mime) {
            app.thumbnails
                .make(path.clone(), self.disk.thumbnail(&id))
                .await
                .map(str::to_string)
        } else {
            None
        };
        let row = FileRow {
            id: id.clone(),
            owner: user.to_string(),
            title: files::clean_title(title),
            mime,
            size: size as i64,
            thumb_mime,
            created_at: crate::time::now_ms(),
        };
        let (to, name) = (self.disk.clone(), id.clone());
        blocking("storing an upload", move || to.keep(&path, &name)).await?;
        self.temp = None;
        let stored = row.clone();
        if let Err(e) = app.store.write(move |tx| rows::insert(tx, &stored)).await {
            let disk = self.disk.clone();
            blocking("removing an upload", move || {
                disk.remove(&id);
                Ok(())
            })
            .await?;
            return Err(e);
        }
        Ok(row.to_file())
    }
}

/// A file, or a file's thumbnail, that its caller may read.
pub struct Readable {
    pub path: PathBuf,
    pub mime: String,
    pub size: u64,
    /// Strong: files never change after upload.
    pub etag: String,
    /// Its upload time, which is its last modification.
    pub modified: SystemTime,
    /// How a browser should name it when saved (not for thumbnails).
    pub disposition: Option<String>,
}

/// The file `id` (or its thumbnail) for `user`: the uploader, or a member of a chat it was sent
/// in. Anyone else, and a file without a thumbnail asked for one, gets 404.
pub async fn readable(app: &App, user: UserId, id: &str, thumbnail: bool) -> Result<Readable> {
    if !files::valid_id(id) {
        return Err(Error::FileNotFound(id.to_string()));
    }
    let file_id = id.to_string();
    let row = app
        .store
        .read(move |c| rows::readable(c, &file_id, &user))
        .await?
        .ok_or_else(|| Error::FileNotFound(id.to_string()))?;
    let disk = app.disk.clone();
    let (path, mime, etag, disposition) = if thumbnail {
        let mime = row
            .thumb_mime
            .clone()
            .ok_or_else(|| Error::FileNotFound(format!("{id}/thumbnail")))?;
        (disk.thumbnail(id), mime, format!("\"{id}-thumb\""), None)
    } else {
        let disposition = files::content_disposition(&row.mime, &row.title);
        (
            disk.path(id),
            row.mime.clone(),
            format!("\"{id}\""),
            Some(disposition),
        )
    };
    let size = tokio::fs::metadata(&path)
        .await
        .map_err(io("reading a file's size"))?
        .len();
    Ok(Readable {
        path,
        mime,
        size,
        etag,
        modified: std::time::UNIX_EPOCH + std::time::Duration::from_millis(row.created_at as u64),
        disposition,
    })
}
