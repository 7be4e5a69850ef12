-- Webhook outbox: one row per pending delivery, written in the same transaction as the message it
-- announces, deleted once the receiver acknowledges it (2xx) or the retry limit is reached.
-- `body` is the exact JSON that is POSTed and signed, so every attempt sends the same bytes.
-- `delivery_id` is the id inside the body: the receiver deduplicates on it, and UNIQUE keeps one
-- row per message and recipient.

CREATE TABLE webhook_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id     TEXT NOT NULL UNIQUE,
    user_id         TEXT NOT NULL,
    body            TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,         -- Unix ms; due when <= now
    created_at      INTEGER NOT NULL
);
CREATE INDEX webhook_outbox_due ON webhook_outbox(next_attempt_at);
