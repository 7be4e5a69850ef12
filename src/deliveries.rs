//! Automatic `delivered` receipts: a message that reached a recipient's open stream or poll is
//! marked delivered for them, and its author is told with `messageStatus`, so clients that never
//! send receipts still show two ticks. Marks are gathered in memory and written in one change
//! every `FLUSH_DELAY`, so a busy stream costs a write per interval, not per message. An edge
//! of a cluster sends its marks to the primary, which writes them the same way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::hub::Frame;
use crate::link::{Ask, Link};
use crate::model::{ChatId, EventKind, MessageId, Receipt, UserId};
use crate::store::messages::{self, Marked};
use crate::store::Store;

/// How long marks gather before they are written.
const FLUSH_DELAY: Duration = Duration::from_millis(100);

/// What a `message` event says about itself, enough to mark it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageRef {
    id: MessageId,
    chat_id: ChatId,
    user_id: Option<String>,
}

/// Where marks are written: this node's database, or the primary's.
pub enum Sink {
    Store(Store),
    Remote(Link),
}

/// Marks: for each recipient and chat, the newest message that reached them.
pub type Marks = Vec<(UserId, ChatId, MessageId)>;

/// Pending delivered marks: for each recipient and chat, the newest message that reached them.
pub struct Deliveries {
    pending: Mutex<HashMap<(UserId, ChatId), MessageId>>,
    wake: Notify,
    sink: Sink,
}

impl Deliveries {
    /// A collector that writes to `sink`.
    pub fn new(sink: Sink) -> Arc<Deliveries> {
        Arc::new(Deliveries {
            pending: Mutex::default(),
            wake: Notify::new(),
            sink,
        })
    }

    /// Notes that `frames` reached `user`: the messages among them by others count as delivered.
    pub fn note<'f>(&self, user: &UserId, frames: impl IntoIterator<Item = &'f Frame>) {
        let mut noted = false;
        let mut pending = self.pending.lock().unwrap();
        for f in frames {
            if !f.is(EventKind::Message) {
                continue;
            }
            let Ok(m) = serde_json::from_str::<MessageRef>(&f.data) else {
                continue;
            };
            if m.user_id.as_deref() == Some(user.as_str()) {
                continue;
            }
            raise(&mut pending, user.clone(), m.chat_id, m.id);
            noted = true;
        }
        drop(pending);
        if noted {
            self.wake.notify_one();
        }
    }

    /// Writes every pending mark (on an edge: sends them to the primary).
    pub async fn flush(&self) -> Result<()> {
        let batch: Marks = (self.pending.lock().unwrap().drain())
            .map(|((user, chat), message)| (user, chat, message))
            .collect();
        if batch.is_empty() {
            return Ok(());
        }
        match &self.sink {
            Sink::Store(store) => write(store, batch).await,
            Sink::Remote(link) => {
                // A few thousand marks a question, each well within one NATS message.
                for marks in batch.chunks(2000) {
                    let ask = Ask::Delivered {
                        marks: marks.to_vec(),
                    };
                    if let Err(refused) = link.ask::<serde_json::Value>(&ask).await {
                        // Kept for the next flush: the primary may be back by then.
                        let mut pending = self.pending.lock().unwrap();
                        for (user, chat, message) in marks.iter().cloned() {
                            raise(&mut pending, user, chat, message);
                        }
                        return Err(refused.into());
                    }
                }
                Ok(())
            }
        }
    }

    /// Runs until aborted: waits for marks, lets more gather for a moment, writes them.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            tokio::time::sleep(FLUSH_DELAY).await;
            if let Err(e) = self.flush().await {
                tracing::warn!("writing delivered receipts failed: {e:?}");
            }
        }
    }
}

/// Raises the pending mark of `user` in `chat` to `message` (a mark never moves back).
fn raise(
    pending: &mut HashMap<(UserId, ChatId), MessageId>,
    user: UserId,
    chat: ChatId,
    message: MessageId,
) {
    let mark = pending.entry((user, chat)).or_insert(MessageId::ZERO);
    *mark = (*mark).max(message);
}

/// Writes `marks` in one change; each mark that moved tells the authors of the messages it
/// newly covers.
pub async fn write(store: &Store, marks: Marks) -> Result<()> {
    store
        .write(move |tx| {
            for (user, chat_id, message_id) in &marks {
                let before =
                    match messages::mark(tx, *chat_id, user, *message_id, Receipt::Delivered) {
                        Ok(Marked::Moved { before }) => before,
                        Ok(Marked::Unchanged { .. }) => continue,
                        // The chat was deleted or the user left it since: nothing to mark.
                        Err(Error::ChatNotFound(_) | Error::MessageNotFound(_)) => continue,
                        Err(e) => return Err(e),
                    };
                let authors = messages::authors_between(tx, *chat_id, before, *message_id, user)?;
                let data = json!({
                    "status": Receipt::Delivered,
                    "chatId": chat_id,
                    "messageId": message_id,
                    "userId": user,
                });
                tx.emit(&authors, EventKind::MessageStatus, &data)?;
            }
            Ok(())
        })
        .await
}
