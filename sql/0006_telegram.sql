-- The support chats' Telegram bridge.
--
-- telegram_outbox: one row per support message waiting to be posted to the staff's group,
-- written in the same transaction as the message and deleted in the same transaction as its
-- telegram_posts row, once Telegram has taken it. Sent oldest first; a failure waits
-- next_attempt_at.
--
-- telegram_posts: which support chat each message the bot posted belongs to, so that a staff
-- member's reply to it (Telegram's reply-to) finds its chat.
--
-- The offset of the next update to read is meta's 'telegram_offset:{bot id}' (each bot numbers
-- its own updates), written in the transaction that posts the reply it follows.

CREATE TABLE telegram_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      INTEGER NOT NULL UNIQUE,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,         -- Unix ms; due when <= now
    created_at      INTEGER NOT NULL
);
CREATE INDEX telegram_outbox_due ON telegram_outbox(next_attempt_at);

CREATE TABLE telegram_posts (
    telegram_chat_id    INTEGER NOT NULL,
    telegram_message_id INTEGER NOT NULL,
    chat_id             INTEGER NOT NULL,
    message_id          INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    PRIMARY KEY (telegram_chat_id, telegram_message_id)
) WITHOUT ROWID;
