//! Wire types: validated ids and the protocol's objects (Message, User, Chat) as they are sent.
//! Input is parsed into these at the edge; past it, code trusts them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

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

/// What a chat is, which decides who may change it: made by clients (`direct`, `group`), by
/// the server for each user (`support`, `notifications`), or by the host for an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    Direct,
    Group,
    Support,
    Notifications,
    Order,
}

/// Whether a chat takes new messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatStatus {
    Open,
    Closed,
}

/// How far a message got with the members other than its author: the least advanced of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Sent,
    Delivered,
    Read,
}

/// Whether a user is online: has a stream open, or polled within the grace period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Online {
    Online,
    Offline,
}

/// A receipt a member sets on the messages up to one: delivered, or read (which implies
/// delivered).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Receipt {
    Delivered,
    Read,
}

/// The protocol's word for each value of these enums, as the wire and the database spell it.
macro_rules! words {
    ($($ty:ident { $($variant:ident = $word:literal),* })*) => {
        $(
            impl $ty {
                /// Every value, in declaration order.
                pub const ALL: &[$ty] = &[$($ty::$variant),*];

                /// The protocol's word for it.
                pub fn as_str(self) -> &'static str {
                    match self {
                        $($ty::$variant => $word,)*
                    }
                }

                /// The value `word` names, if any.
                pub fn parse(word: &str) -> Option<$ty> {
                    match word {
                        $($word => Some($ty::$variant),)*
                        _ => None,
                    }
                }
            }

            impl fmt::Display for $ty {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str(self.as_str())
                }
            }
        )*
    };
}

words! {
    ChatKind {
        Direct = "direct",
        Group = "group",
        Support = "support",
        Notifications = "notifications",
        Order = "order"
    }
    ChatStatus { Open = "open", Closed = "closed" }
    MessageStatus { Sent = "sent", Delivered = "delivered", Read = "read" }
    Receipt { Delivered = "delivered", Read = "read" }
    Online { Online = "online", Offline = "offline" }
}

/// What an event is: one of the protocol's kinds, or a kind of the host's own that a host push
/// (`POST /v1/server/ws/client/message`) names, which may be none of the protocol's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    Message,
    MessageStatus,
    Chat,
    Chats,
    ChatDeleted,
    ChatCleared,
    ChatMembers,
    ConsultationUpdate,
    Typing,
    OpponentStatus,
    ClientConnectionError,
    Call,
    Reset,
    /// A host's own kind, never one of the above.
    Custom(String),
}

impl EventKind {
    /// The protocol's own kinds (a host push may use none of them).
    pub const PROTOCOL: &[EventKind] = &[
        EventKind::Message,
        EventKind::MessageStatus,
        EventKind::Chat,
        EventKind::Chats,
        EventKind::ChatDeleted,
        EventKind::ChatCleared,
        EventKind::ChatMembers,
        EventKind::ConsultationUpdate,
        EventKind::Typing,
        EventKind::OpponentStatus,
        EventKind::ClientConnectionError,
        EventKind::Call,
        EventKind::Reset,
    ];

    /// The kind's word, as the `type` of an event.
    pub fn as_str(&self) -> &str {
        match self {
            EventKind::Message => "message",
            EventKind::MessageStatus => "messageStatus",
            EventKind::Chat => "chat",
            EventKind::Chats => "chats",
            EventKind::ChatDeleted => "chatDeleted",
            EventKind::ChatCleared => "chatCleared",
            EventKind::ChatMembers => "chatMembers",
            EventKind::ConsultationUpdate => "consultationUpdate",
            EventKind::Typing => "typing",
            EventKind::OpponentStatus => "opponentStatus",
            EventKind::ClientConnectionError => "clientConnectionError",
            EventKind::Call => "call",
            EventKind::Reset => "reset",
            EventKind::Custom(word) => word,
        }
    }

    /// The kind `word` names: a protocol kind, or a custom one.
    pub fn parse(word: &str) -> EventKind {
        EventKind::PROTOCOL
            .iter()
            .find(|k| k.as_str() == word)
            .cloned()
            .unwrap_or_else(|| EventKind::Custom(word.to_string()))
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message as every endpoint and stream shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: i64,
    pub client_message_id: String,
    pub insert_date: String,
    pub edit_date: Option<String>,
    pub chat_id: i64,
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
    pub role: String,
}

/// A chat as one user sees it (`unread` is theirs).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Chat {
    pub id: i64,
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
    fn the_words_round_trip_through_json_and_text() {
        for kind in ChatKind::ALL {
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(ChatKind::parse(kind.as_str()), Some(*kind));
        }
        for status in MessageStatus::ALL {
            let back: MessageStatus = serde_json::from_str(&format!("\"{status}\"")).unwrap();
            assert_eq!(back, *status);
        }
        assert_eq!(ChatStatus::parse("closed"), Some(ChatStatus::Closed));
        assert_eq!(ChatStatus::parse("Closed"), None);
    }

    #[test]
    fn event_kinds_read_back_from_their_words() {
        for kind in EventKind::PROTOCOL {
            assert_eq!(EventKind::parse(kind.as_str()), *kind);
        }
        let own = EventKind::parse("orderShipped");
        assert_eq!(own, EventKind::Custom("orderShipped".into()));
        assert_eq!(own.as_str(), "orderShipped");
    }

    #[test]
    fn user_ids_accept_strings_and_numbers() {
        let u: UserId = serde_json::from_str("42").unwrap();
        assert_eq!(u.as_str(), "42");
        let u: UserId = serde_json::from_str("\"alice@example.com\"").unwrap();
        assert_eq!(u.as_str(), "alice@example.com");
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
