//! How the protocol's types are stored: chat, message and event ids as INTEGER; a user id, a
//! member's role, a chat's kind and status as TEXT. A value that does not read back is an error,
//! never a row that silently loses its user, its role or its kind.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::model::{ChatId, ChatKind, ChatStatus, EventId, MessageId, Role, UserId};

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

/// Stores an id as its integer.
macro_rules! stored_as_integer {
    ($($ty:ty),*) => {
        $(
            impl ToSql for $ty {
                fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                    Ok(ToSqlOutput::from(self.get()))
                }
            }

            impl FromSql for $ty {
                fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                    i64::column_result(value).map(<$ty>::new)
                }
            }
        )*
    };
}

stored_as_integer!(ChatId, MessageId, EventId);

impl ToSql for Role {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Role {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Role::parse(value.as_str()?, "a stored role").map_err(|e| FromSqlError::Other(e.into()))
    }
}

/// Stores an enum of protocol words as its word.
macro_rules! stored_as_word {
    ($($ty:ty),*) => {
        $(
            impl ToSql for $ty {
                fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                    Ok(ToSqlOutput::from(self.as_str()))
                }
            }

            impl FromSql for $ty {
                fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                    let word = value.as_str()?;
                    <$ty>::parse(word).ok_or_else(|| {
                        FromSqlError::Other(format!("unknown {} {word:?}", stringify!($ty)).into())
                    })
                }
            }
        )*
    };
}

stored_as_word!(ChatKind, ChatStatus);

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

    #[test]
    fn ids_round_trip_as_integers_and_text_is_an_error() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let chat = ChatId::new(7);
        let back: ChatId = conn.query_row("SELECT ?1", [chat], |r| r.get(0)).unwrap();
        assert_eq!(back, chat);
        let n: i64 = conn
            .query_row("SELECT ?1", [MessageId::new(9)], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 9);
        let bad = conn.query_row("SELECT 'seven'", [], |r| r.get::<_, EventId>(0));
        assert!(bad.is_err(), "{bad:?}");
        let none: Option<MessageId> = conn.query_row("SELECT NULL", [], |r| r.get(0)).unwrap();
        assert_eq!(none, None);
    }

    #[test]
    fn roles_round_trip_and_a_reserved_or_malformed_one_is_an_error() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for word in ["member", "client", "support", "consultant"] {
            let role = Role::parse(word, "r").unwrap();
            let back: Role = conn.query_row("SELECT ?1", [&role], |r| r.get(0)).unwrap();
            assert_eq!(back, role);
        }
        for bad in ["SELECT 'system'", "SELECT 'a b'", "SELECT 3"] {
            let got = conn.query_row(bad, [], |r| r.get::<_, Role>(0));
            assert!(got.is_err(), "{bad}: {got:?}");
        }
    }

    #[test]
    fn chat_words_round_trip_and_an_unknown_one_is_an_error() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for kind in ChatKind::ALL {
            let back: ChatKind = conn.query_row("SELECT ?1", [kind], |r| r.get(0)).unwrap();
            assert_eq!(back, *kind);
        }
        let bad = conn.query_row("SELECT 'channel'", [], |r| r.get::<_, ChatKind>(0));
        assert!(bad.is_err(), "{bad:?}");
        let closed: ChatStatus = conn.query_row("SELECT 'closed'", [], |r| r.get(0)).unwrap();
        assert_eq!(closed, ChatStatus::Closed);
    }
}
