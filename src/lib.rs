//! Chinwag: a chat backend over plain HTTP, Server-Sent Events and long-poll, stored in SQLite.
//!
//! # Layout
//!
//! - [`cli`] parses flags and `CHINWAG_*` variables into a [`config::Config`]; nothing else reads
//!   the environment.
//! - [`server`] binds nothing itself: it serves a listener it is given until a shutdown future
//!   resolves, and owns the background tasks.
//! - [`http`] routes requests, reads bodies within their size and time limits and frames replies
//!   and streams; it holds what one caller may take (request rates, open streams), accepts
//!   connections under the cap, answers `503` while the server drains at shutdown, and closes
//!   connections whose client stopped taking data.
//! - [`api`] holds one module per protocol area; each handler validates, makes one store call,
//!   and builds the reply.
//! - [`store`] is the only place with SQL: a pool of readers and one writer thread that commits
//!   concurrent requests together (group commit) and publishes their events to the [`hub`].
//! - [`hub`] fans committed and live events out to each user's open streams and polls.
//! - [`presence`] tracks who is online and tells their chat partners; [`deliveries`] marks what
//!   reached a recipient as delivered.
//! - [`webhooks`] POSTs signed events about new messages to the host for members who are offline,
//!   from an outbox written in the message's transaction.
//! - [`thumbnails`] makes upload thumbnails within a global bound on decodes and their memory.
//! - [`metrics`] holds the Prometheus families every layer records into, served at `/metrics`.
//! - [`reports`] sends each 500's cause chain and each panic to Sentry when a DSN is configured.
//! - [`health`] holds the process's own checks: `chinwag health` and the open-file limit.
//! - [`store::backup`] copies a running server's database and files (`chinwag backup`).
//! - [`random`] draws ids and secrets from the OS random source; its failure is a 500, not a panic.
//! - [`error`] is the protocol's table of error reasons; [`model`] the wire types.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
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
pub mod metrics;
pub mod model;
pub mod presence;
pub mod random;
pub mod reports;
pub mod server;
pub mod sse;
pub mod store;
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
