-- Schema 5: one stored copy per event. An event concerns a chat (`chat_id`: every member sees it
-- within their membership span) or one user (`user_id`). A `message` event keeps only the
-- message's id: it is rendered from `messages` when it is delivered. Rows written before this
-- version keep their per-user copy and replay exactly as they did.

CREATE TEMP TABLE old_events_seq AS SELECT seq FROM sqlite_sequence WHERE name = 'events';

CREATE TABLE events_v5 (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id    INTEGER,                 -- the chat it concerns, or NULL
    user_id    TEXT,                    -- the one user it concerns, or NULL
    type       TEXT NOT NULL,
    message_id INTEGER,                 -- `message` events: the message to render
    data       TEXT,                    -- the event's data; NULL when rendered from message_id
    created_at INTEGER NOT NULL
);
INSERT INTO events_v5(id, user_id, type, data, created_at)
    SELECT id, user_id, type, data, created_at FROM events;
DROP TABLE events;
ALTER TABLE events_v5 RENAME TO events;
-- Ids are never reused: the counter continues where the old table's stopped (sqlite_sequence has
-- no key, so the one row the copy made is updated, or made when the old table was empty).
UPDATE sqlite_sequence
    SET seq = MAX(seq, COALESCE((SELECT seq FROM old_events_seq), 0))
    WHERE name = 'events';
INSERT INTO sqlite_sequence(name, seq)
    SELECT 'events', seq FROM old_events_seq
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events');
DROP TABLE old_events_seq;
CREATE INDEX events_by_chat ON events(chat_id, id) WHERE chat_id IS NOT NULL;
CREATE INDEX events_by_user ON events(user_id, id) WHERE user_id IS NOT NULL;

-- Membership in event-id space: a member sees the chat's events with from_id <= id < until_id
-- (until_id NULL while they are a member). A removal ends the span before the events that
-- announce it, so nothing after it reaches the removed user, live or on resume.
CREATE TABLE spans (
    user_id  TEXT NOT NULL,
    chat_id  INTEGER NOT NULL,
    from_id  INTEGER NOT NULL,
    until_id INTEGER,
    PRIMARY KEY (user_id, chat_id, from_id)
) WITHOUT ROWID;
-- The janitor deletes the spans that ended before what it prunes.
CREATE INDEX spans_by_end ON spans(until_id) WHERE until_id IS NOT NULL;
-- Today's members see every event from the first one written by this version.
INSERT INTO spans(user_id, chat_id, from_id)
    SELECT user_id, chat_id, (SELECT seq FROM sqlite_sequence WHERE name = 'events') + 1
    FROM members;

-- Group size without counting: kept by every membership change.
ALTER TABLE chats ADD COLUMN member_count INTEGER NOT NULL DEFAULT 0;
UPDATE chats SET member_count = (SELECT COUNT(*) FROM members WHERE chat_id = chats.id);
