-- Attachments: uploaded files' metadata (the bytes live under <data-dir>/files/).
CREATE TABLE files (
    id          TEXT PRIMARY KEY,          -- unguessable, 32 hex characters
    owner       TEXT NOT NULL,             -- the uploader
    title       TEXT NOT NULL,             -- the name it was uploaded with
    mime        TEXT NOT NULL,             -- sniffed from the bytes
    size        INTEGER NOT NULL,
    thumb_mime  TEXT,                      -- NULL: no thumbnail
    created_at  INTEGER NOT NULL
);
CREATE INDEX files_by_age ON files(created_at);
CREATE INDEX messages_by_file ON messages(file_id) WHERE file_id IS NOT NULL;

-- Messages with their attachment's metadata, for every query that shows messages.
CREATE VIEW message_rows AS
SELECT m.*, f.title AS file_title, f.mime AS file_mime, f.size AS file_size,
       f.thumb_mime AS file_thumb_mime, f.created_at AS file_created_at
FROM messages m LEFT JOIN files f ON f.id = m.file_id;
