//! Numbered migrations from `sql/`, embedded in the binary and applied at start, tracked by
//! `PRAGMA user_version`.

use rusqlite::Connection;

/// Migration `n` is `MIGRATIONS[n - 1]`; append new files, never edit applied ones.
const MIGRATIONS: &[&str] = &[
    include_str!("../../sql/0001_init.sql"),
    include_str!("../../sql/0002_lifecycle.sql"),
    include_str!("../../sql/0003_webhooks.sql"),
    include_str!("../../sql/0004_files.sql"),
    include_str!("../../sql/0005_event_log.sql"),
    include_str!("../../sql/0006_telegram.sql"),
    include_str!("../../sql/0007_message_events.sql"),
];

/// Applies every migration newer than the database's `user_version`, each in its own transaction.
pub fn run(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        run(&mut conn).unwrap();
        run(&mut conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
    }
}
