//! More than one node: a primary that owns the database (and serves clients as a single server
//! does) and edges that keep no data, joined by a NATS server. Edges forward every request to
//! the primary and deliver its committed events to their own streams; presence counts every
//! node's streams. The wire between them is `link`.

pub mod edge;
pub mod forward;
pub mod primary;
