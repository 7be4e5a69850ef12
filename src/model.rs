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

impl UserId {
    /// Checks the characters and length.
    pub fn parse(s: &str) -> Result<UserId, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.@:-".contains(&b));
        if ok {
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

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(u64),
        }
        let s = match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a user id (string or number)"))?
        {
            Raw::S(s) => s,
            Raw::N(n) => n.to_string(),
        };
        UserId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Message string parameters: an object of string to string.
pub type Params = BTreeMap<String, String>;

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
    pub status: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    pub params: Params,
    pub file: Option<serde_json::Value>,
    pub deleted: bool,
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
    pub id: String,
    pub role: String,
}

/// A chat as one user sees it (`unread` is theirs).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Chat {
    pub id: i64,
    pub kind: String,
    pub name: Option<String>,
    pub order_id: Option<String>,
    pub users: Vec<Member>,
    pub admin: Option<String>,
    pub last_message: Option<Message>,
    pub unread: i64,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A user's presence as `opponentStatus` reports it.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    pub user_id: String,
    pub status: &'static str,
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
    fn user_ids_reject_bad_characters_and_lengths() {
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
        assert!(serde_json::from_str::<UserId>("\"a b\"").is_err());
        assert!(serde_json::from_str::<UserId>(&format!("\"{}\"", "x".repeat(65))).is_err());
        assert!(serde_json::from_str::<UserId>("-1").is_err());
        assert!(serde_json::from_str::<UserId>("true").is_err());
    }
}
