-- Schema 7: a new message is its own event. Its id is drawn from the event log's counter, so a
-- message's id is the id of the `message` event that announced it, and no `events` row is stored
-- for it: replay reads it from `messages` (through `messages_by_chat`), which saves an `events` row
-- and an `events_by_chat` entry per message. Edits and deletions stay `events` rows. Messages stored
-- before this version keep the `events` rows that announced them: replay reads messages as their
-- own events only from `message_events_from` on.

-- The counter exists from the start (a new database has written no event yet), and is past every
-- message id ever given (the messages' own counter: a deleted chat's messages are gone, and an
-- older release wrote no event for a message to a chat without members), so no message id is ever
-- given twice.
INSERT INTO sqlite_sequence(name, seq)
    SELECT 'events', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events');
UPDATE sqlite_sequence
    SET seq = MAX(seq,
                  COALESCE((SELECT MAX(id) FROM messages), 0),
                  COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0))
    WHERE name = 'events';
INSERT INTO meta(key, value)
    SELECT 'message_events_from', seq + 1 FROM sqlite_sequence WHERE name = 'events';
