//! Wire types: validated ids and the protocol's objects (Message, User, Chat) as they are sent.
//! Input is parsed into these at the edge; past it, code trusts them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

mod words;

pub use words::{ChatKind, ChatStatus, EventKind, MessageStatus, Online, Receipt, Role, SYSTEM};

/// Declares the store's integer ids, each its own type, so that a chat id is never taken for a
/// message id. On the wire each is a plain JSON integer, read as a whole number 0 or more; one
/// too large for the store is read as the largest id, which names nothing.
macro_rules! ids {
    ($($(#[$doc:meta])* $ty:ident,)*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
            #[serde(transparent)]
            pub struct $ty(i64);

            impl $ty {
                /// Below every id the store assigns (they start at 1).
                pub const ZERO: $ty = $ty(0);

                /// The id that is the store's integer `n`.
                pub const fn new(n: i64) -> $ty {
                    $ty(n)
                }

                /// The id a caller sent as the whole number `n`.
                pub fn from_wire(n: u64) -> $ty {
                    $ty(i64::try_from(n).unwrap_or(i64::MAX))
                }

                /// The store's integer.
                pub const fn get(self) -> i64 {
                    self.0
                }
            }

            impl fmt::Display for $ty {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    fmt::Display::fmt(&self.0, f)
                }
            }

            impl<'de> Deserialize<'de> for $ty {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    u64::deserialize(d).map($ty::from_wire)
                }
            }
        )*
    };
}

ids! {
    /// A chat's id.
    ChatId,
    /// A message's id. Ids grow with time, so a member's receipt and clear marks are message
    /// ids too: every message up to the mark (`ZERO`: none).
    MessageId,
    /// A stored event's id, the cursor streams and polls resume from.
    EventId,
}

/// A host-assigned user id: 1–64 characters of `[A-Za-z0-9_.@:-]`. A JSON number is read as its
/// decimal string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

/// Whether `s` is 1 to `max` bytes of ASCII letters, digits and the bytes in `extra`: the shape
/// of ids, roles and type names.
pub fn is_name(s: &str, max: usize, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// Checks a message type (`text`, `image`, …): 1 to 32 of `A-Z a-z 0-9 _ . -`; the error names
/// `field`.
pub fn check_message_type(kind: &str, field: &str) -> Result<(), String> {
    if is_name(kind, 32, b"_.-") {
        Ok(())
    } else {
        Err(format!(
            "{field} must be 1 to 32 characters of A-Z a-z 0-9 _ . -"
        ))
    }
}

impl UserId {
    /// Checks the characters and length.
    pub fn parse(s: &str) -> Result<UserId, String> {
        if is_name(s, 64, b"_.@:-") {
            Ok(UserId(s.to_string()))
        } else {
            Err(format!(
                "invalid user id {s:?}: use 1-64 characters of A-Z a-z 0-9 _ . @ : -"
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads a host-assigned id given as a string or a whole number, as text. (A visitor, not an
/// untagged enum, so that a missing field still reads as "missing".)
fn string_or_number<'de, D: Deserializer<'de>>(
    d: D,
    what: &'static str,
) -> Result<String, D::Error> {
    struct Visitor(&'static str);
    impl serde::de::Visitor<'_> for Visitor {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "{} (string or number)", self.0)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(Visitor(what))
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = string_or_number(d, "a user id")?;
        UserId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A host-assigned order (consultation) id: 1–64 characters; a JSON number is read as its
/// decimal string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct OrderId(String);

impl OrderId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OrderId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = string_or_number(d, "an order id")?;
        if s.is_empty() || s.chars().count() > 64 {
            return Err(serde::de::Error::custom(
                "an order id must be 1 to 64 characters",
            ));
        }
        Ok(OrderId(s))
    }
}

/// A value checked as `T` that is passed on exactly as the caller sent it: a host's
/// `consultationId` of `7` reaches clients as `7`, not `"7"`.
#[derive(Clone, Debug, PartialEq)]
pub struct AsSent<T> {
    /// The value read as `T` (what is checked and compared).
    pub value: T,
    /// The JSON the caller sent (what is passed on).
    pub raw: serde_json::Value,
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for AsSent<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = serde_json::Value::deserialize(d)?;
        let value = T::deserialize(&raw).map_err(serde::de::Error::custom)?;
        Ok(AsSent { value, raw })
    }
}

impl<T> Serialize for AsSent<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

/// Message string parameters: an object of string to string.
pub type Params = BTreeMap<String, String>;

/// A message as every endpoint and stream shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: MessageId,
    pub client_message_id: String,
    pub insert_date: String,
    pub edit_date: Option<String>,
    pub chat_id: ChatId,
    pub user_id: Option<UserId>,
    pub sender: String,
    pub status: MessageStatus,
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    pub params: Params,
    pub file: Option<File>,
    pub deleted: bool,
}

/// An uploaded file as messages and uploads show it; `url` and `thumbnail` are paths on this
/// server (`/v1/files/{id}`), to fetch with the client token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct File {
    pub id: String,
    pub title: String,
    pub url: String,
    pub thumbnail: Option<String>,
    pub mime_type: String,
    pub insert_date: String,
    pub size: i64,
}

impl File {
    /// The wire form of a stored file.
    pub fn new(
        id: String,
        title: String,
        mime_type: String,
        size: i64,
        has_thumbnail: bool,
        created_ms: i64,
    ) -> File {
        File {
            url: format!("/v1/files/{id}"),
            thumbnail: has_thumbnail.then(|| format!("/v1/files/{id}/thumbnail")),
            insert_date: crate::time::rfc3339(created_ms),
            id,
            title,
            mime_type,
            size,
        }
    }
}

/// A user's public profile (email and phone are never shown to others).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub middle_name: Option<String>,
    pub photo: Option<String>,
}

/// Profile fields a token or the host may set for a user.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Default, Hash)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub middle_name: Option<String>,
    pub photo: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// A chat member and their role.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Member {
    pub id: UserId,
    pub role: Role,
}

/// A chat as one user sees it (`unread` is theirs).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Chat {
    pub id: ChatId,
    pub kind: ChatKind,
    pub name: Option<String>,
    pub order_id: Option<String>,
    /// The first members in joining order, up to a cap; `member_count` is the total.
    pub users: Vec<Member>,
    pub member_count: i64,
    pub admin: Option<UserId>,
    pub last_message: Option<Message>,
    pub unread: i64,
    pub status: ChatStatus,
    pub created_at: String,
    pub updated_at: String,
}

/// A user's presence as `opponentStatus` reports it.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    pub user_id: UserId,
    pub status: Online,
    pub last_seen: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_accept_strings_and_numbers() {
        let u: UserId = serde_json::from_str("42").unwrap();
        assert_eq!(u.as_str(), "42");
        let u: UserId = serde_json::from_str("\"alice@example.com\"").unwrap();
        assert_eq!(u.as_str(), "alice@example.com");
    }

    #[test]
    fn ids_are_plain_integers_and_a_huge_one_names_nothing() {
        let chat: ChatId = serde_json::from_str("42").unwrap();
        assert_eq!(chat, ChatId::new(42));
        assert_eq!(serde_json::to_string(&chat).unwrap(), "42");
        assert_eq!(chat.to_string(), "42");
        let huge: MessageId = serde_json::from_str(&u64::MAX.to_string()).unwrap();
        assert_eq!(huge.get(), i64::MAX);
        assert!(serde_json::from_str::<ChatId>("-1").is_err());
        assert!(serde_json::from_str::<ChatId>("\"7\"").is_err());
    }

    #[test]
    fn user_ids_reject_bad_characters_and_lengths() {
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
        assert!(serde_json::from_str::<UserId>("\"a b\"").is_err());
        assert!(serde_json::from_str::<UserId>(&format!("\"{}\"", "x".repeat(65))).is_err());
        assert!(serde_json::from_str::<UserId>("-1").is_err());
        assert!(serde_json::from_str::<UserId>("true").is_err());
    }
}
