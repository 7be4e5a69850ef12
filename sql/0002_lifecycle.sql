-- Chat lifecycle: each member's clear mark (messages up to it are hidden from them).
ALTER TABLE members ADD COLUMN cleared_up_to INTEGER NOT NULL DEFAULT 0;
