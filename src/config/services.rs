//! Settings of the outside services a server may talk to: a NATS bus for the host API, the
//! NATS server a cluster's nodes share, and Telegram's Bot API for the support bridge.

use std::time::Duration;

/// Where the host API is also answered: a NATS server and the topic (seed 001's `BUS_*`).
#[derive(Clone, Debug)]
pub struct Bus {
    /// The NATS server (`nats://host:4222`; several, comma-separated, for a cluster).
    pub url: String,
    /// The subject requests come on.
    pub topic: String,
    /// The NATS server's auth token, if it wants one.
    pub token: Option<String>,
    /// How long connecting to NATS, and sending the last replies at shutdown, may take.
    pub timeout: Duration,
    /// Wait between attempts to get a lost NATS connection back.
    pub reconnect: Duration,
}

/// A node of a cluster: the NATS server the nodes share and what this one is.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The NATS server (`nats://host:4222`; several, comma-separated).
    pub url: String,
    /// The NATS server's auth token, if it wants one.
    pub token: Option<String>,
    pub role: Role,
    /// This node's name among the edges (presence keeps each node's connections apart).
    pub node: String,
    /// How long an edge waits for the primary's answer before it answers `503`.
    pub timeout: Duration,
}

/// What a node of a cluster is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Owns the database, answers the edges, and serves clients too.
    Primary,
    /// Serves clients' connections; reads and writes go to the primary.
    Edge,
}

/// Telegram's public Bot API, where `--telegram-api-url` points when not given.
pub const DEFAULT_TELEGRAM_API: &str = "https://api.telegram.org";

/// The bridge between the support chats and the support staff's Telegram group.
#[derive(Clone)]
pub struct Telegram {
    /// The bot's token (from @BotFather); it is part of every Bot API URL, so never logged.
    pub token: String,
    /// The staff's group: its numeric id (`-100…`) or its `@username`.
    pub chat: String,
    /// The Bot API's base URL (no trailing slash).
    pub api_url: String,
}

impl std::fmt::Debug for Telegram {
    /// Everything but the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telegram")
            .field("token", &"…")
            .field("chat", &self.chat)
            .field("api_url", &self.api_url)
            .finish()
    }
}

impl Telegram {
    /// The bridge's settings from its flags: a token with no spaces, the group as a number or
    /// an `@username`, an http(s) API URL. Says which flag is wrong.
    pub fn new(token: &str, chat: &str, api_url: &str) -> Result<Telegram, String> {
        let token = token.trim();
        // `123456:ABC-def_…`: the bot's id, a colon, then letters, digits, `-` and `_`.
        let well_formed = token.split_once(':').is_some_and(|(id, key)| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        if !well_formed {
            return Err(
                "--telegram-bot-token must be the bot's token from @BotFather (123456:ABC-…)"
                    .into(),
            );
        }
        let chat = chat.trim();
        let numeric = chat.parse::<i64>().is_ok();
        let username = chat.strip_prefix('@').is_some_and(|u| {
            !u.is_empty() && u.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if !numeric && !username {
            return Err(format!(
                "--telegram-chat-id must be the group's id (e.g. -1001234567890) or its @username, not {chat:?}"
            ));
        }
        let api_url = api_url.trim().trim_end_matches('/');
        if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
            return Err(format!(
                "--telegram-api-url must be an http(s) URL, not {api_url:?}"
            ));
        }
        Ok(Telegram {
            token: token.into(),
            chat: chat.into(),
            api_url: api_url.into(),
        })
    }
}
