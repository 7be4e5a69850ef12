//! Chinwag: a chat backend over plain HTTP, Server-Sent Events and long-poll, stored in SQLite.
//!
//! # Layout
//!
//! Every module, top layer first; a module imports only those below it.
//!
//! - [`cli`] parses flags and `CHINWAG_*` variables into a [`config::Config`] and runs the
//!   commands; nothing else reads the environment. It alone uses [`server`].
//! - [`server`] serves one node's [`app`] until a shutdown future resolves, and runs the
//!   background tasks (the [`janitor`], the [`webhooks`] worker, [`deliveries`], pings, the bus).
//! - [`cluster`] runs a node of a cluster: the primary's answers to the edges, and an edge's
//!   serving (streams from relayed events, everything else forwarded to the primary).
//! - [`bus`] answers the host API over a NATS bus (seed 001's Bus API), beside [`http`].
//! - [`http`] is the HTTP edge: the accept loop, the connection cap and the drain at shutdown
//!   (`http/listen.rs`), admission (address rate, head bounds, the [`drain`]), routes
//!   (`http/routes.rs`: the fixed routes' table), credentials (tokens, the service key), bodies
//!   within their size and time limits, uploads and ranged downloads (`http/files.rs`),
//!   replies and stream headers, closing stalled connections.
//! - [`api`] is the protocol: the client request table (`api/mod.rs`) and the host routes'
//!   (`api/host/mod.rs`), one module per area, who is calling (`api/caller.rs`: token checks,
//!   first-seen users and their support chat), the one posting core (`api/posting.rs`), the
//!   receiving side (`api/stream.rs`) over the [`feed`], the staff's replies from Telegram
//!   (`api/telegram.rs`).
//! - [`app`] holds the shared handles, built once at start; no logic.
//! - [`feed`] is the one cursor-keeping reader under SSE and long-poll; [`sse`] frames streams
//!   and keeps their one ping clock.
//! - [`webhooks`] POSTs signed events about new messages to the host for members with nothing
//!   open, from an outbox; [`telegram`] posts users' support messages to the staff's Telegram
//!   group from an outbox (the staff's replies come back through `api/telegram.rs`); [`janitor`] prunes events past retention and uploads never sent, and
//!   sweeps presence.
//! - [`presence`] owns who is online and who has what open, and tells chat partners;
//!   [`deliveries`] marks what reached a recipient as delivered.
//! - [`link`] is the wire between the nodes of a cluster, [`pieces`] how bodies of any size
//!   cross it.
//! - [`limits`] is what one caller may take (request rates, open streams); [`drain`] is
//!   shutdown as requests see it; [`thumbnails`] makes upload thumbnails within a global bound.
//! - [`store`] is the only place with SQL: a pool of readers and one writer thread that commits
//!   concurrent requests together (group commit) and publishes their events to the [`hub`];
//!   [`store::backup`] copies a running server's data (`chinwag backup`).
//! - [`hub`] fans committed and live events out to each user's open streams and polls (and, on
//!   a cluster's primary, to the relay).
//! - [`auth`] mints and verifies client tokens and compares the service key.
//! - [`metrics`] holds the Prometheus families every layer records into, served at `/metrics`;
//!   [`reports`] sends each 500's cause chain and each panic to Sentry when a DSN is configured;
//!   [`health`] holds the process's own checks (`chinwag health`, the open-file limit).
//! - [`blocking`] runs blocking work (file-system calls tokio's own `fs` does not wrap, image
//!   decoding, the database's close) off the async runtime, with one failure policy.
//! - [`config`] holds the settings and the data directory's layout; [`files`] is where uploads
//!   live on disk and what type they are.
//! - [`random`] draws ids and secrets from the OS random source; [`strict`] reads request JSON
//!   strictly (no key twice, no NUL) for both edges.
//! - [`error`] is the protocol's table of error reasons; [`model`] the wire types (chat, message,
//!   event and user ids, the objects) and the protocol's words (chat kinds and statuses, message
//!   statuses, event kinds, member roles); [`time`] formats and parses the protocol's times.

pub mod api;
pub mod app;
pub mod auth;
pub mod blocking;
pub mod bus;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod deliveries;
pub mod drain;
pub mod error;
pub mod feed;
pub mod files;
pub mod health;
pub mod http;
pub mod hub;
pub mod janitor;
pub mod limits;
pub mod link;
pub mod metrics;
pub mod model;
pub mod pieces;
pub mod presence;
pub mod random;
pub mod reports;
pub mod server;
pub mod sse;
pub mod store;
pub mod strict;
pub mod telegram;
pub mod thumbnails;
pub mod time;
pub mod webhooks;

/// The version `--version` prints: the crate's, with the commit it was built from when known.
pub const VERSION: &str = env!("CHINWAG_VERSION");

/// Installs ring as the process's TLS crypto provider, once. Every HTTP client built in the
/// process needs it first (reqwest's rustls comes without a provider of its own); a provider
/// already installed is kept.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
