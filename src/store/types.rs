//! How the protocol's types are stored: a user id is TEXT, and one that does not parse back is
//! an error, never a row that silently loses its user.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::model::UserId;

impl ToSql for UserId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for UserId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        UserId::parse(value.as_str()?).map_err(|e| FromSqlError::Other(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_round_trip_and_a_bad_one_is_an_error() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let alice = UserId::parse("alice").unwrap();
        let back: UserId = conn.query_row("SELECT ?1", [&alice], |r| r.get(0)).unwrap();
        assert_eq!(back, alice);
        let bad = conn.query_row("SELECT 'not a user!'", [], |r| r.get::<_, UserId>(0));
        assert!(bad.is_err(), "{bad:?}");
        let none: Option<UserId> = conn.query_row("SELECT NULL", [], |r| r.get(0)).unwrap();
        assert_eq!(none, None);
    }
}
