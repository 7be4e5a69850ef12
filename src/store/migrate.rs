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

    #[test]
    fn schema_7_draws_message_ids_past_every_message_id_ever_given() {
        // A schema-6 database whose newest messages went with their chat, after an older
        // release posted them without an event (a chat without members).
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..6] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 6).unwrap();
        conn.execute_batch(
            "INSERT INTO chats(id, kind, created_at, updated_at) VALUES (1, 'group', 0, 0),
                                                                      (2, 'group', 0, 0);
             INSERT INTO messages(id, chat_id, sender, client_message_id, type, text, insert_date)
             VALUES (1, 1, 'system', 'a', 'text', 'kept', 0),
                    (9, 2, 'system', 'b', 'text', 'gone', 0);
             INSERT INTO events(chat_id, type, message_id, created_at) VALUES (1, 'message', 1, 0);
             DELETE FROM chats WHERE id = 2;",
        )
        .unwrap();

        run(&mut conn).unwrap();

        let next = super::super::events::reserve(&conn).unwrap();
        assert_eq!(next.get(), 10, "message 9 was given once already");
        let from: String = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'message_events_from'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(from, "10");
    }
}
