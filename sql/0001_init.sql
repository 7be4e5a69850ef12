-- Chinwag schema, version 1: users, chats, members, messages and the per-user event log.
-- Times are Unix milliseconds (UTC). Ids assigned by Chinwag are INTEGER PRIMARY KEY AUTOINCREMENT,
-- so an id is never reused, even after the janitor prunes old rows.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    first_name  TEXT,
    last_name   TEXT,
    middle_name TEXT,
    photo       TEXT,
    email       TEXT,
    phone       TEXT,
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER
);

CREATE TABLE chats (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,           -- direct | group | support | notifications | order
    name            TEXT,
    order_id        TEXT,
    admin           TEXT,
    direct_key      TEXT UNIQUE,             -- "a\nb" with a < b, for direct chats only
    status          TEXT NOT NULL DEFAULT 'open',
    last_message_id INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX chats_by_order ON chats(order_id) WHERE order_id IS NOT NULL;

CREATE TABLE members (
    chat_id         INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL,
    role            TEXT NOT NULL DEFAULT 'member',
    delivered_up_to INTEGER NOT NULL DEFAULT 0,
    read_up_to      INTEGER NOT NULL DEFAULT 0,
    joined_at       INTEGER NOT NULL,
    PRIMARY KEY (chat_id, user_id)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members(user_id, chat_id);

CREATE TABLE messages (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id           INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    user_id           TEXT,                  -- NULL for system messages
    sender            TEXT NOT NULL,         -- the author's role in the chat
    client_message_id TEXT NOT NULL,
    type              TEXT NOT NULL,
    text              TEXT NOT NULL,
    params            TEXT NOT NULL DEFAULT '{}',
    file_id           TEXT,
    deleted           INTEGER NOT NULL DEFAULT 0,
    insert_date       INTEGER NOT NULL,
    edit_date         INTEGER
);
CREATE INDEX messages_by_chat ON messages(chat_id, id);
CREATE UNIQUE INDEX messages_idempotency ON messages(user_id, client_message_id);

-- One row per recipient: a user's stream replays exactly the rows addressed to them, so what a
-- user may see is decided when the event is written (membership at that moment).
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT NOT NULL,
    type       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX events_by_user ON events(user_id, id);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
