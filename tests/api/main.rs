//! Integration tests: the real server on port 0 with a real SQLite file, driven over HTTP, SSE
//! and long-poll like a client would.

mod helpers;

mod audit;
mod auth;
mod binary;
mod bounds;
mod bus;
mod chats;
mod cluster;
mod counters;
mod durability;
mod edits;
mod errors;
mod feed;
mod files;
mod groups;
mod hardening;
mod host;
mod limits;
mod manage;
mod messaging;
mod metrics;
mod openapi;
mod operator;
mod paging;
mod presence;
mod reports;
mod shutdown;
mod stall;
mod streams;
mod telegram;
mod upgrade;
mod web;
mod webhooks;
