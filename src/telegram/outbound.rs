//! Posting the outbox to the staff's group: oldest first, one at a time (the group reads a
//! conversation in order), each message naming its author and support chat; images go as
//! photos and other files as documents. Telegram's `429` pauses the whole outbox for its
//! `retry_after`; an outage, a refused token or a refusal of the group (the bot removed, the
//! group's id wrong) waits with a doubling backoff. Nothing queued is dropped but a message that
//! is gone; a file Telegram will not take goes as a document, then as a line naming it.

use std::sync::Arc;
use std::time::Duration;

use crate::files::Disk;
use crate::model::{Message, User};
use crate::store::telegram::{self, Pending};
use crate::store::Store;

use super::bot::{Attachment, Failure, Posted};
use super::Bridge;

/// The first wait after a failure; it doubles with each further one, up to [`MAX_BACKOFF`].
const BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Longest the idle worker sleeps before looking at the outbox again.
const IDLE_CHECK: Duration = Duration::from_secs(60);
/// Telegram's limit on a message's text, and on a caption (in characters).
const TEXT_LIMIT: usize = 4096;
const CAPTION_LIMIT: usize = 1024;
/// Largest photo `sendPhoto` takes; larger images go as documents.
const PHOTO_LIMIT: i64 = 10 * 1024 * 1024;
/// Largest file a bot may send; a larger one goes as a line naming it.
const DOCUMENT_LIMIT: i64 = 50 * 1024 * 1024;

/// What the outbox worker uses.
#[derive(Clone)]
pub struct Worker {
    pub store: Store,
    pub disk: Disk,
    pub bridge: Arc<Bridge>,
}

/// The wait after the `failures`-th failure in a row.
fn backoff(failures: u32) -> Duration {
    crate::time::doubling(BACKOFF, failures, MAX_BACKOFF)
}

/// Runs until aborted: posts what is due, then sleeps until the head of the outbox is due or a
/// message is queued.
pub async fn run(worker: Worker) {
    loop {
        if let Err(e) = drain(&worker).await {
            tracing::warn!("telegram: reading or updating the outbox failed: {e:?}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let wake = &worker.bridge.wake;
        if let Err(e) = worker
            .store
            .idle(telegram::next_due, wake, IDLE_CHECK)
            .await
        {
            tracing::warn!("telegram: waiting on the outbox failed: {e:?}");
        }
    }
}

/// Posts due messages in order until the outbox is empty or its head must wait.
pub async fn drain(worker: &Worker) -> crate::error::Result<()> {
    loop {
        let now = crate::time::now_ms();
        let Some(p) = worker.store.read(move |c| telegram::next(c, now)).await? else {
            return Ok(());
        };
        let (id, attempts) = (p.id, p.attempts);
        let Some(msg) = p.message.clone().filter(|m| !m.deleted) else {
            // Deleted, or gone with its chat, before it could be posted.
            worker
                .store
                .write(move |tx| telegram::drop_row(tx, id))
                .await?;
            continue;
        };
        let posting = worker.bridge.posting();
        let failure = match post(worker, &p, &msg).await {
            Ok(posted) => {
                record(worker, id, posted, &msg).await;
                continue;
            }
            Err(f) => f,
        };
        drop(posting);
        let failures = attempts + 1;
        let (count, wait) = match &failure {
            // Flood control holds every message, so this one keeps its place and its count.
            Failure::Wait(d) => {
                tracing::info!("telegram: {failure}; the outbox waits");
                (attempts, *d)
            }
            Failure::Token(_) | Failure::Refused(..) => {
                tracing::error!(
                    "telegram: posting to the group {}: {failure}; support messages wait in the outbox",
                    worker.bridge.settings.chat
                );
                (failures, backoff(failures))
            }
            _ => {
                tracing::warn!("telegram: posting message {} {failure}", msg.id);
                (failures, backoff(failures))
            }
        };
        let next = crate::time::now_ms() + wait.as_millis() as i64;
        worker
            .store
            .write(move |tx| telegram::reschedule(tx, id, count, next))
            .await?;
        return Ok(());
    }
}

/// Records that Telegram took outbox row `id` as `posted`. Telegram has it, so the write is
/// retried until it holds rather than posting the message again.
async fn record(worker: &Worker, id: i64, posted: Posted, msg: &Message) {
    let (chat, message) = (msg.chat_id, msg.id);
    let mut failures = 0;
    loop {
        let posted = posted.clone();
        let write = worker.store.write(move |tx| {
            telegram::posted(tx, id, posted.chat.id, posted.message_id, chat, message)
        });
        match write.await {
            Ok(()) => return,
            Err(e) => {
                failures += 1;
                let wait = backoff(failures).min(Duration::from_secs(30));
                tracing::warn!(
                    "telegram: recording post of message {message}: {e:?}; again in {wait:?}"
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Posts one message to the group: text as a message, an attachment as a photo or document
/// with the text as its caption (a photo Telegram refuses goes as a document, a document it
/// refuses or one too large for bots as a line naming it).
async fn post(worker: &Worker, p: &Pending, msg: &Message) -> Result<Posted, Failure> {
    let bridge = &worker.bridge;
    let group = bridge.settings.chat.as_str();
    let head = heading(p.author.as_ref(), msg);
    let Some(file) = &p.file else {
        let text = clip(&format!("{head}\n{}", msg.text), TEXT_LIMIT);
        return bridge.bot.send_text(group, &text, None).await;
    };
    let path = worker.disk.path(&file.id);
    let bytes = crate::blocking::run("reading an upload for Telegram", move || {
        std::fs::read(path)
    })
    .await
    .map_err(|e| Failure::Unreachable(format!("{e:#}")))?;
    let stub = |why: &str| {
        let text = format!("{head}\n{}\n[{}: {why}]", msg.text, file.title);
        clip(&text, TEXT_LIMIT)
    };
    let bytes = match bytes {
        Ok(bytes) if file.size <= DOCUMENT_LIMIT => bytes,
        Ok(_) => {
            let text = stub("too large for Telegram");
            return bridge.bot.send_text(group, &text, None).await;
        }
        // The bytes are gone from disk: say so rather than hold the outbox for ever.
        Err(_) => {
            let text = stub("no longer stored");
            return bridge.bot.send_text(group, &text, None).await;
        }
    };
    let photo = matches!(
        file.mime.as_str(),
        "image/jpeg" | "image/png" | "image/webp"
    ) && file.size <= PHOTO_LIMIT;
    let caption = clip(&format!("{head}\n{}", msg.text), CAPTION_LIMIT);
    let attachment = |bytes| Attachment {
        name: file.title.clone(),
        mime: file.mime.clone(),
        bytes,
    };
    if photo {
        let sent = bridge
            .bot
            .send_file(group, attachment(bytes.clone()), &caption, true);
        match sent.await {
            // Refused as a photo (its dimensions, say): it goes as a document.
            Err(Failure::Refused(400 | 413, _)) => {}
            other => return other,
        }
    }
    let sent = bridge
        .bot
        .send_file(group, attachment(bytes), &caption, false);
    match sent.await {
        Err(Failure::Refused(400 | 413, why)) => {
            tracing::warn!(
                "telegram: a file of message {}: {why}; posting a line instead",
                msg.id
            );
            let text = stub("Telegram would not take it");
            bridge.bot.send_text(group, &text, None).await
        }
        other => other,
    }
}

/// The line that names the message's author and support chat, as the staff see it.
pub fn heading(author: Option<&User>, msg: &Message) -> String {
    let user = msg.user_id.as_ref().map_or("", |u| u.as_str());
    let name = author
        .map(|a| {
            [&a.last_name, &a.first_name, &a.middle_name]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .filter(|s| !s.trim().is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|n| !n.is_empty());
    match name {
        Some(name) => format!("{name} (user {user}) · support chat {}", msg.chat_id),
        None => format!("user {user} · support chat {}", msg.chat_id),
    }
}

/// `text` cut to at most `limit` UTF-16 units (as Telegram counts), with an ellipsis when cut.
fn clip(text: &str, limit: usize) -> String {
    let text = text.trim_end();
    if text.encode_utf16().count() <= limit {
        return text.to_string();
    }
    let mut out = String::new();
    let mut units = 0;
    for c in text.chars() {
        if units + c.len_utf16() > limit - 1 {
            break;
        }
        units += c.len_utf16();
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let secs: Vec<u64> = (1..=4).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8]);
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn long_texts_are_clipped_by_characters() {
        assert_eq!(clip("привет", 10), "привет");
        assert_eq!(clip("приветствую", 5), "прив…");
        assert_eq!(
            clip("x".repeat(5000).as_str(), TEXT_LIMIT).chars().count(),
            TEXT_LIMIT
        );
        // An emoji is two UTF-16 units, as Telegram counts.
        assert_eq!(clip(&"😀".repeat(3), 5), "😀😀…");
    }
}
