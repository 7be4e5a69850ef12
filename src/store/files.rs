//! Uploaded files' metadata: record, look up, decide who may read, and find orphans. The bytes are
//! on disk under the data directory; this module only answers questions about the rows.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;
use crate::model::{File, UserId};

/// A stored file's row.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    pub id: String,
    pub owner: String,
    pub title: String,
    pub mime: String,
    pub size: i64,
    /// The thumbnail's type, if the file has one.
    pub thumb_mime: Option<String>,
    pub created_at: i64,
}

impl FileRow {
    /// The wire form.
    pub fn to_file(&self) -> File {
        File::new(
            self.id.clone(),
            self.title.clone(),
            self.mime.clone(),
            self.size,
            self.thumb_mime.is_some(),
            self.created_at,
        )
    }
}

/// Records an uploaded file.
pub fn insert(conn: &Connection, f: &FileRow) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO files(id, owner, title, mime, size, thumb_mime, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        f.id,
        f.owner,
        f.title,
        f.mime,
        f.size,
        f.thumb_mime,
        f.created_at
    ])?;
    Ok(())
}

/// A file by id.
pub fn get(conn: &Connection, id: &str) -> Result<Option<FileRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, owner, title, mime, size, thumb_mime, created_at FROM files WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(FileRow {
                id: r.get(0)?,
                owner: r.get(1)?,
                title: r.get(2)?,
                mime: r.get(3)?,
                size: r.get(4)?,
                thumb_mime: r.get(5)?,
                created_at: r.get(6)?,
            })
        })
        .optional()?)
}

/// The file, if `user` may read it: they uploaded it, or it is attached to a message (not
/// deleted) in a chat they are a member of.
pub fn readable(conn: &Connection, id: &str, user: &UserId) -> Result<Option<FileRow>> {
    let Some(f) = get(conn, id)? else {
        return Ok(None);
    };
    if f.owner == user.as_str() {
        return Ok(Some(f));
    }
    let shared: bool = conn
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM messages m JOIN members mb ON mb.chat_id = m.chat_id
                           WHERE m.file_id = ?1 AND m.deleted = 0 AND mb.user_id = ?2)",
        )?
        .query_row(params![id, user.as_str()], |r| r.get(0))?;
    Ok(shared.then_some(f))
}

/// Up to `limit` files created before `cutoff_ms` that no message refers to.
pub fn orphans(conn: &Connection, cutoff_ms: i64, limit: usize) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM files f WHERE created_at < ?1
         AND NOT EXISTS (SELECT 1 FROM messages WHERE file_id = f.id) LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![cutoff_ms, limit as i64], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Forgets a file if no message refers to it; true if it did (the caller removes the bytes
/// after this commits).
pub fn delete_if_orphan(conn: &Connection, id: &str) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "DELETE FROM files WHERE id = ?1
             AND NOT EXISTS (SELECT 1 FROM messages WHERE file_id = ?1)",
        )?
        .execute([id])?;
    Ok(n > 0)
}
