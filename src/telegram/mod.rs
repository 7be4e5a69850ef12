//! The support chats' bridge to the support staff's Telegram group. A user's message in their
//! support chat is queued ([`queue`]) in its own transaction and posted to the group by the
//! bot from that outbox ([`outbound`]), naming the user and the chat; the staff's replies come
//! back through `api::telegram`. [`check`] asks Telegram about the bot and the group at start.

pub mod bot;
pub mod outbound;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::config::Telegram;
use crate::error::Result;
use crate::model::{ChatKind, Message, UserId};
use crate::store::{telegram, Tx};

pub use bot::{Bot, Failure};

/// Longest a staff reply waits for the record of the post it answers (see [`Bridge::recorded`]).
const RECORD_WAIT: Duration = Duration::from_secs(10);

/// A post sent and not yet recorded, while it lives (see [`Bridge::posting`]).
pub struct Posting<'b>(&'b watch::Sender<bool>);

impl Drop for Posting<'_> {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

/// A running bridge: its settings, the bot and the outbox worker's wake-up.
pub struct Bridge {
    pub settings: Telegram,
    pub bot: Bot,
    /// The user the staff answer as (`--support-user`).
    pub support: UserId,
    /// The bot's id (the token's part before `:`): update ids and the offset are the bot's own.
    pub bot_id: String,
    /// Poked when a message is queued.
    pub wake: Notify,
    /// True from the moment the outbox sends a post until it has recorded it: a staff reply to
    /// that post can arrive in between, and must wait for the record to find its chat.
    posting: watch::Sender<bool>,
    /// Set when Telegram refused the token at start: messages are still queued (for a start
    /// with a good token), but nothing is sent or read.
    refused: AtomicBool,
}

impl Bridge {
    /// The bridge of `settings`, answering as `support`.
    pub fn new(settings: Telegram, support: UserId) -> anyhow::Result<Arc<Bridge>> {
        Ok(Arc::new(Bridge {
            bot: Bot::new(&settings)?,
            bot_id: settings
                .token
                .split(':')
                .next()
                .unwrap_or_default()
                .to_string(),
            settings,
            support,
            wake: Notify::new(),
            posting: watch::Sender::new(false),
            refused: AtomicBool::new(false),
        }))
    }

    /// Whether the bridge runs: false once Telegram refused the token at start.
    pub fn running(&self) -> bool {
        !self.refused.load(Ordering::Relaxed)
    }

    /// Marks a post as sent and not yet recorded until the guard is dropped.
    pub fn posting(&self) -> Posting<'_> {
        self.posting.send_replace(true);
        Posting(&self.posting)
    }

    /// Waits (at most `RECORD_WAIT`) until no post is sent and unrecorded.
    pub async fn recorded(&self) {
        let mut idle = self.posting.subscribe();
        let _ = tokio::time::timeout(RECORD_WAIT, idle.wait_for(|posting| !*posting)).await;
    }

    /// Whether `chat` is the staff's group (by id, or by `@username`).
    pub fn is_group(&self, chat: &bot::Chat) -> bool {
        let want = self.settings.chat.as_str();
        chat.id.to_string() == want
            || chat.username.as_deref().is_some_and(|u| {
                want.strip_prefix('@')
                    .is_some_and(|w| w.eq_ignore_ascii_case(u))
            })
    }
}

/// Queues `msg` for the staff's group when it is a user's message in a support chat (not the
/// support user's own, nor the system's), in the transaction that stores it.
pub fn queue(tx: &Tx, bridge: &Bridge, kind: ChatKind, msg: &Message) -> Result<()> {
    let by_user = msg.user_id.as_ref().is_some_and(|u| u != &bridge.support);
    if kind != ChatKind::Support || !by_user {
        return Ok(());
    }
    telegram::enqueue(tx, msg.id, crate::time::now_ms())?;
    // The worker waits for this transaction to commit before it looks (see `outbound::run`).
    bridge.wake.notify_one();
    Ok(())
}

/// How long the check at start waits for Telegram.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks Telegram who the bot is, at start: one line for the banner and the log, `Err` when
/// the token is refused, which turns the bridge off (the chat works on without it). Telegram
/// out of reach is no reason to stop: the bridge keeps trying.
pub async fn check(bridge: &Bridge) -> std::result::Result<String, String> {
    let asked = tokio::time::timeout(CHECK_TIMEOUT, bridge.bot.me()).await;
    let me = match asked {
        Ok(Ok(me)) => me,
        Ok(Err(Failure::Token(why))) => {
            bridge.refused.store(true, Ordering::Relaxed);
            return Err(format!(
                "the Telegram bot token was refused ({why}); the bridge is off: support chats \
                 work without it, and their messages wait in its outbox for a good token"
            ));
        }
        Ok(Err(e)) => {
            return Ok(format!(
                "Telegram is {e}; the bridge keeps trying, and support messages wait in its outbox"
            ))
        }
        Err(_) => {
            return Ok(format!(
                "Telegram did not answer within {}s; the bridge keeps trying, and support \
                 messages wait in its outbox",
                CHECK_TIMEOUT.as_secs()
            ))
        }
    };
    let name = me.username.map_or(me.id.to_string(), |u| format!("@{u}"));
    Ok(format!(
        "the Telegram bot {name} bridges support chats to the group {}",
        bridge.settings.chat
    ))
}
