//! The staff's replies from Telegram: updates read by long-polling `getUpdates` from the offset
//! kept in the database. A reply (Telegram's reply-to) to a message the bot posted goes into
//! that message's support chat as the support user, in the same transaction that moves the
//! offset past it, so a restart neither loses nor repeats one; anything else in the group gets
//! a short help answer. A reply's photo or document is downloaded and stored as an upload of the
//! support user's, and goes with the message.

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::error::{Error, Result};
use crate::model::{ChatId, File, Params};
use crate::store::messages::NewMessage;
use crate::store::telegram;
use crate::telegram::bot::{Incoming, Update};
use crate::telegram::{Bridge, Failure};

use super::files::Upload;
use super::posting::{check_size, post, Onward, Poster};
use tokio_stream::StreamExt;

/// How long one `getUpdates` waits for an update.
const POLL_WAIT: Duration = Duration::from_secs(25);
/// Largest file the Bot API lets a bot download.
const BOT_DOWNLOAD_LIMIT: u64 = 20 * 1024 * 1024;
/// The longest wait after failures in a row.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The bot's answer to a message in the group that is not a reply to one of its posts.
pub const HELP: &str = "To answer a user, reply to the message of theirs that I posted: your \
                        reply goes to their support chat.";

/// Runs until aborted: reads the group's updates and posts the staff's replies.
pub async fn run(app: Arc<App>, bridge: Arc<Bridge>) {
    let mut failures = 0u32;
    loop {
        let problem = match pass(&app, &bridge).await {
            Ok(()) => {
                failures = 0;
                continue;
            }
            Err(Step::Telegram(Failure::Wait(d))) => {
                tracing::info!("telegram: flood control; reading updates again in {d:?}");
                tokio::time::sleep(d).await;
                continue;
            }
            Err(Step::Telegram(f @ Failure::Token(_))) => {
                tracing::error!("telegram: reading updates: {f}");
                f.to_string()
            }
            Err(Step::Telegram(f)) => format!("reading updates: {f}"),
            Err(Step::Store(e)) => format!("posting a reply: {e:?}"),
        };
        failures += 1;
        let wait = crate::time::doubling(Duration::from_secs(2), failures, MAX_BACKOFF);
        tracing::warn!("telegram: {problem}; trying again in {wait:?}");
        tokio::time::sleep(wait).await;
    }
}

/// Why a pass stopped.
enum Step {
    Telegram(Failure),
    Store(Error),
}

/// Reads one batch of updates and handles each in order.
async fn pass(app: &Arc<App>, bridge: &Arc<Bridge>) -> std::result::Result<(), Step> {
    let bot = bridge.bot_id.clone();
    let offset = app
        .store
        .read(move |c| telegram::offset(c, &bot))
        .await
        .map_err(Step::Store)?;
    let updates = bridge
        .bot
        .updates(offset, POLL_WAIT)
        .await
        .map_err(Step::Telegram)?;
    for update in updates {
        handle(app, bridge, update).await?;
    }
    Ok(())
}

/// Moves the bridge's offset past update `id`.
async fn read_past(app: &App, bridge: &Bridge, id: i64) -> Result<()> {
    let bot = bridge.bot_id.clone();
    app.store
        .write(move |tx| telegram::read_past(tx, &bot, id))
        .await
}

/// Handles one update: a staff reply is posted with the offset moved past it; anything else
/// moves the offset, and a message in the group that is no reply to a post gets [`HELP`].
async fn handle(app: &Arc<App>, bridge: &Arc<Bridge>, update: Update) -> Result<(), Step> {
    let id = update.update_id;
    let skip = || async { read_past(app, bridge, id).await.map_err(Step::Store) };
    let Some(msg) = update.message.filter(|m| bridge.is_group(&m.chat)) else {
        // Not the staff's group (someone wrote to the bot), or not a message.
        return skip().await;
    };
    // An anonymous admin writes as the group itself, through a bot account; other bots are
    // not staff.
    let as_group = msg
        .sender_chat
        .as_ref()
        .is_some_and(|c| c.id == msg.chat.id);
    let said = msg.text.is_some() || msg.caption.is_some();
    let service = !said && msg.attachment().is_none();
    if service || (msg.from.as_ref().is_some_and(|f| f.is_bot) && !as_group) {
        // A service message (someone joined, a pin…) or another bot's: nothing to answer.
        return skip().await;
    }
    let group = msg.chat.id;
    let replied = msg.reply_to_message.as_ref().map(|r| r.message_id);
    let chat_of = |posted| async move {
        app.store
            .read(move |c| telegram::chat_of(c, group, posted))
            .await
            .map_err(Step::Store)
    };
    let chat = match replied {
        Some(posted) => match chat_of(posted).await? {
            Some(chat) => Some(chat),
            // The bot may have posted it a moment ago and not recorded it yet.
            None => {
                bridge.recorded().await;
                chat_of(posted).await?
            }
        },
        None => None,
    };
    let Some(chat) = chat else {
        skip().await?;
        answer(bridge, &msg, HELP).await;
        return Ok(());
    };
    let text = msg.text.clone().or(msg.caption.clone()).unwrap_or_default();
    let file = match msg.attachment() {
        Some((file, photo)) => {
            match fetch(app, bridge, &file.file_id, &file.file_name, photo).await {
                Ok(stored) => Some((stored, photo)),
                Err(Step::Telegram(Failure::Refused(_, why))) => {
                    skip().await?;
                    answer(
                        bridge,
                        &msg,
                        &format!("Not delivered: Telegram gave no file ({why})."),
                    )
                    .await;
                    return Ok(());
                }
                Err(Step::Store(e @ Error::PayloadTooLarge(_))) => {
                    skip().await?;
                    answer(bridge, &msg, &format!("Not delivered: {e}.")).await;
                    return Ok(());
                }
                Err(other) => return Err(other),
            }
        }
        None => None,
    };
    if text.trim().is_empty() && file.is_none() {
        skip().await?;
        answer(
            bridge,
            &msg,
            "Nothing to pass on: write your answer as text.",
        )
        .await;
        return Ok(());
    }
    let why = match reply(app, bridge, id, chat, &msg, text, file).await {
        Ok(()) => return Ok(()),
        Err(Error::ChatClosed(_)) => "that support chat is closed".to_string(),
        Err(Error::ChatNotFound(_)) => "that support chat no longer exists".to_string(),
        Err(e @ (Error::BadRequest(_) | Error::MessageTooLarge { .. })) => e.to_string(),
        Err(e) => return Err(Step::Store(e)),
    };
    skip().await?;
    answer(bridge, &msg, &format!("Not delivered: {why}.")).await;
    Ok(())
}

/// Stores Telegram's file `file_id` as an upload of the support user's, within the upload
/// limit (and the Bot API's 20 MB for downloads).
async fn fetch(
    app: &App,
    bridge: &Bridge,
    file_id: &str,
    name: &Option<String>,
    photo: bool,
) -> Result<File, Step> {
    let limit = app.config.max_upload.min(BOT_DOWNLOAD_LIMIT);
    let chunks = bridge
        .bot
        .download(file_id, limit)
        .await
        .map_err(Step::Telegram)?;
    let chunks = chunks.map(|chunk| {
        chunk.map_err(|e| {
            let e = anyhow::Error::new(e.without_url());
            Error::Internal(e.context("downloading a file from Telegram"))
        })
    });
    let mut upload = Upload::begin(app).await.map_err(Step::Store)?;
    upload.write(Box::pin(chunks)).await.map_err(Step::Store)?;
    let title = match (name, photo) {
        (Some(name), _) => name.as_str(),
        (None, true) => "photo.jpg",
        (None, false) => "file",
    };
    upload
        .finish(app, &bridge.support, title)
        .await
        .map_err(Step::Store)
}

/// Posts the staff's reply (`text`, and `file` with whether it is a photo) into support chat
/// `chat` as the support user, and moves the offset past update `id`, in one transaction.
/// The message's client id is the Telegram message's own (group and message id), so a reply
/// read twice is stored once.
async fn reply(
    app: &Arc<App>,
    bridge: &Arc<Bridge>,
    id: i64,
    chat: ChatId,
    msg: &Incoming,
    text: String,
    file: Option<(File, bool)>,
) -> Result<()> {
    let mut params = Params::new();
    if let Some(name) = staff_name(msg) {
        params.insert("telegramStaff".into(), name);
    }
    check_size(&text, &params, app.config.max_message_bytes, "text".into())?;
    let kind = match &file {
        Some((_, true)) => "image",
        Some((_, false)) => "file",
        None => "text",
    };
    let new = NewMessage {
        client_message_id: format!("telegram-{}-{}", msg.chat.id, msg.message_id),
        chat_id: chat,
        kind: kind.into(),
        text,
        params,
        file_id: file.map(|(f, _)| f.id),
    };
    let onward = Onward::of(app);
    let support = bridge.support.clone();
    let bot = bridge.bot_id.clone();
    app.store
        .write(move |tx| {
            post(tx, &onward, &Poster::Host(Some(&support)), &new)?;
            telegram::read_past(tx, &bot, id)
        })
        .await
}

/// The staff member's name as Telegram shows it (none for an anonymous admin).
fn staff_name(msg: &Incoming) -> Option<String> {
    let from = msg.from.as_ref().filter(|f| !f.is_bot)?;
    let name = match &from.last_name {
        Some(last) => format!("{} {last}", from.first_name),
        None => from.first_name.clone(),
    };
    let name = name.trim().to_string();
    match name.is_empty() {
        true => from.username.clone(),
        false => Some(name),
    }
}

/// The bot's short answer to `msg`, best effort: one that cannot be sent is only logged.
async fn answer(bridge: &Bridge, msg: &Incoming, text: &str) {
    let group = msg.chat.id.to_string();
    if let Err(e) = bridge
        .bot
        .send_text(&group, text, Some(msg.message_id))
        .await
    {
        tracing::warn!(
            "telegram: answering message {} in the group: {e}",
            msg.message_id
        );
    }
}
