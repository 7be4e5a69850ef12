//! The protocol's words: chat kinds and statuses, message statuses, receipts, presence, event
//! kinds and member roles, each one table that gives both its values and its words.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::is_name;

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

/// Declares an enum of the protocol's own words that is open to words of the host's, from one
/// table: the enum (each word its variant, any other word `Custom`), the list of its own values
/// (named by the caller), each value's word (`as_str`) and the own value a word names (`own`).
macro_rules! open_words {
    ($(#[$meta:meta])* $ty:ident, $all:ident {
        $($(#[$vmeta:meta])* $variant:ident = $word:literal,)*
    } $(#[$cmeta:meta])* Custom) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $ty {
            $($(#[$vmeta])* $variant,)*
            $(#[$cmeta])*
            Custom(String),
        }

        impl $ty {
            /// The protocol's own values, in the table's order.
            pub const $all: &[$ty] = &[$($ty::$variant),*];

            /// The value's word.
            pub fn as_str(&self) -> &str {
                match self {
                    $($ty::$variant => $word,)*
                    $ty::Custom(word) => word,
                }
            }

            /// The protocol's own value `word` names, if it is one.
            fn own(word: &str) -> Option<$ty> {
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
    };
}

open_words! {
    /// What an event is: one of the protocol's kinds, or a kind of the host's own that a host
    /// push (`POST /v1/server/ws/client/message`) names, which may be none of the protocol's.
    EventKind, PROTOCOL {
        Message = "message",
        MessageStatus = "messageStatus",
        Chat = "chat",
        Chats = "chats",
        ChatDeleted = "chatDeleted",
        ChatCleared = "chatCleared",
        ChatMembers = "chatMembers",
        ConsultationUpdate = "consultationUpdate",
        Typing = "typing",
        OpponentStatus = "opponentStatus",
        ClientConnectionError = "clientConnectionError",
        Call = "call",
        Reset = "reset",
    }
    /// A host's own kind, never one of the above.
    Custom
}

impl EventKind {
    /// The kind `word` names: a protocol kind, or a custom one.
    pub fn parse(word: &str) -> EventKind {
        EventKind::own(word).unwrap_or_else(|| EventKind::Custom(word.to_string()))
    }
}

/// The `sender` of a message the host posts without a user; it is no member's role.
pub const SYSTEM: &str = "system";

open_words! {
    /// A member's role in a chat, which is the `sender` of their messages: one the server gives
    /// (`member` in the chats clients make and in notifications chats, `client` and `support` in
    /// support chats), or one the host gives with `user_type` (`client`, `consultant`, …).
    Role, OWN {
        Member = "member",
        Client = "client",
        Support = "support",
    }
    /// A role of the host's own, never one of the above: 1 to 32 characters of
    /// `A-Z a-z 0-9 _ . -`, and never [`SYSTEM`].
    Custom
}

impl Role {
    /// The role `word` names: 1 to 32 characters of `A-Z a-z 0-9 _ . -`, and not [`SYSTEM`],
    /// which only the host's own messages are sent as. The error names `field`.
    pub fn parse(word: &str, field: &str) -> Result<Role, String> {
        if !is_name(word, 32, b"_.-") {
            return Err(format!(
                "{field} must be 1 to 32 characters of A-Z a-z 0-9 _ . -"
            ));
        }
        if word == SYSTEM {
            return Err(format!(
                "{field} {SYSTEM:?} is reserved for system messages"
            ));
        }
        Ok(Role::own(word).unwrap_or_else(|| Role::Custom(word.to_string())))
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let word = String::deserialize(d)?;
        Role::parse(&word, "a role").map_err(serde::de::Error::custom)
    }
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
    fn roles_read_back_from_their_words_and_the_host_may_give_its_own() {
        for role in Role::OWN {
            assert_eq!(Role::parse(role.as_str(), "r").as_ref(), Ok(role));
            let json = serde_json::to_string(role).unwrap();
            assert_eq!(json, format!("\"{role}\""));
        }
        let doc = Role::parse("consultant", "r").unwrap();
        assert_eq!(doc, Role::Custom("consultant".into()));
        let back: Role = serde_json::from_str("\"consultant\"").unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn a_role_is_a_short_name_and_never_the_system() {
        assert_eq!(
            Role::parse("system", "body.user_type"),
            Err("body.user_type \"system\" is reserved for system messages".into())
        );
        for bad in ["", "a b", &"x".repeat(33)] {
            assert_eq!(
                Role::parse(bad, "body.user_type"),
                Err("body.user_type must be 1 to 32 characters of A-Z a-z 0-9 _ . -".into())
            );
        }
        assert!(serde_json::from_str::<Role>("\"system\"").is_err());
        assert!(serde_json::from_str::<Role>("7").is_err());
    }
}
