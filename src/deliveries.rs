//! Automatic `delivered` receipts: a message that reached a recipient's open stream or poll is
//! marked delivered for them, and its author is told with `messageStatus`, so clients that never
//! send receipts still show two ticks. Marks are gathered in memory and written in one change
//! every `FLUSH_DELAY`, so a busy stream costs a write per interval, not per message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::hub::Frame;
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

/// Pending delivered marks: for each recipient and chat, the newest message that reached them.
pub struct Deliveries {
    pending: Mutex<HashMap<(UserId, ChatId), MessageId>>,
    wake: Notify,
    store: Store,
}

impl Deliveries {
    /// A collector that writes through `store`.
    pub fn new(store: Store) -> Arc<Deliveries> {
        Arc::new(Deliveries {
            pending: Mutex::default(),
            wake: Notify::new(),
            store,
        })
    }

    /// Notes that `frames` reached `user`: the messages among them by others count as delivered.
    pub fn note<'f>(&self, user: &UserId, frames: impl IntoIterator<Item = &'f Frame>) {
        let mut noted = false;
        let mut pending = self.pending.lock().unwrap();
        for f in frames {
            if &*f.kind != "message" {
                continue;
            }
            let Ok(m) = serde_json::from_str::<MessageRef>(&f.data) else {
                continue;
            };
            if m.user_id.as_deref() == Some(user.as_str()) {
                continue;
            }
            let mark = pending
                .entry((user.clone(), m.chat_id))
                .or_insert(MessageId::ZERO);
            *mark = (*mark).max(m.id);
            noted = true;
        }
        drop(pending);
        if noted {
            self.wake.notify_one();
        }
    }

    /// Writes every pending mark in one change; each mark that moved tells the authors of the
    /// messages it newly covers.
    pub async fn flush(&self) -> Result<()> {
        let batch: Vec<((UserId, ChatId), MessageId)> =
            self.pending.lock().unwrap().drain().collect();
        if batch.is_empty() {
            return Ok(());
        }
        self.store
            .write(move |tx| {
                for ((user, chat_id), message_id) in &batch {
                    let before =
                        match messages::mark(tx, *chat_id, user, *message_id, Receipt::Delivered) {
                            Ok(Marked::Moved { before }) => before,
                            Ok(Marked::Unchanged { .. }) => continue,
                            // The chat was deleted or the user left it since: nothing to mark.
                            Err(Error::ChatNotFound(_) | Error::MessageNotFound(_)) => continue,
                            Err(e) => return Err(e),
                        };
                    let authors =
                        messages::authors_between(tx, *chat_id, before, *message_id, user)?;
                    let data = json!({
                        "status": "delivered",
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
