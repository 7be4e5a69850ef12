//! Users: profiles set by tokens or the host, and when they were last seen.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;
use crate::model::{Profile, User, UserId};

/// Makes sure `user` has a row (users appear the first time anything names them).
pub fn ensure(conn: &Connection, user: &UserId) -> Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO users(id, created_at) VALUES (?1, ?2)")?
        .execute(params![user.as_str(), crate::time::now_ms()])?;
    Ok(())
}

/// Stores the profile fields that are present; absent ones keep their value.
pub fn upsert_profile(conn: &Connection, user: &UserId, p: &Profile) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO users(id, first_name, last_name, middle_name, photo, email, phone, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(id) DO UPDATE SET
           first_name = COALESCE(excluded.first_name, first_name),
           last_name = COALESCE(excluded.last_name, last_name),
           middle_name = COALESCE(excluded.middle_name, middle_name),
           photo = COALESCE(excluded.photo, photo),
           email = COALESCE(excluded.email, email),
           phone = COALESCE(excluded.phone, phone)",
    )?
    .execute(params![
        user.as_str(),
        p.first_name,
        p.last_name,
        p.middle_name,
        p.photo,
        p.email,
        p.phone,
        crate::time::now_ms()
    ])?;
    Ok(())
}

/// Public profiles of `ids`, in the order given, without repeats; unknown ids get empty profiles.
pub fn profiles<'a>(
    conn: &Connection,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<User>> {
    let mut stmt = conn.prepare_cached(
        "SELECT first_name, last_name, middle_name, photo FROM users WHERE id = ?1",
    )?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for id in ids {
        if !seen.insert(id) {
            continue;
        }
        let user = stmt
            .query_row([id], |r| {
                Ok(User {
                    id: id.to_string(),
                    first_name: r.get(0)?,
                    last_name: r.get(1)?,
                    middle_name: r.get(2)?,
                    photo: r.get(3)?,
                })
            })
            .optional()?
            .unwrap_or_else(|| User {
                id: id.to_string(),
                ..User::default()
            });
        out.push(user);
    }
    Ok(out)
}

/// Records when `user` was last online.
pub fn set_last_seen(conn: &Connection, user: &UserId, ms: i64) -> Result<()> {
    ensure(conn, user)?;
    conn.prepare_cached("UPDATE users SET last_seen = ?2 WHERE id = ?1")?
        .execute(params![user.as_str(), ms])?;
    Ok(())
}

/// When `user` was last online, if ever recorded.
pub fn last_seen(conn: &Connection, user: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT last_seen FROM users WHERE id = ?1")?
        .query_row([user], |r| r.get(0))
        .optional()?
        .flatten())
}
