//! The server's Prometheus metrics: one registry per server, the families the layers record into,
//! and the text encoding served at `/metrics`. Gauges that describe state (open streams, queue
//! depths, file sizes) are set from their owners just before each scrape; this module imports
//! nothing of the server's.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// Labels of one HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `GET`, `POST`, …
    pub method: &'static str,
    /// The route template (`/v1/files/{fileId}`), never the raw path.
    pub route: &'static str,
    /// The response's status code.
    pub status: u16,
}

/// Labels of one request answered on the bus.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// The reply frame's status.
    pub status: u16,
}

/// Labels that name a transport (`sse` or `poll`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabels {
    /// `sse` or `poll`.
    pub transport: &'static str,
}

/// Labels of a webhook attempt's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `delivered`, `failed` (retried later) or `dropped` (gave up).
    pub outcome: &'static str,
}

/// What the bound on thumbnail decodes exports.
#[derive(Clone, Default)]
pub struct ThumbnailMetrics {
    /// Decodes running now.
    pub running: Gauge,
    /// Uploads waiting for a decode slot or for memory.
    pub waiting: Gauge,
    /// Images given no thumbnail because alone they would pass the memory budget.
    pub over_budget: Counter,
}

/// Labels that name a limit.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// One of [`LIMITS`].
    pub limit: &'static str,
}

/// The names of the limits [`Metrics::limited`] counts.
pub const LIMITS: &[&str] = &[
    "user_rate",
    "ip_rate",
    "streams",
    "body_timeout",
    "connections",
    "connections_per_ip",
    "accept_failed",
];

/// A gauge counted up while this lives: an open connection, a stream, a decode under way.
pub struct Held(Gauge);

impl Held {
    /// Counts one more on `gauge` until dropped.
    pub fn new(gauge: &Gauge) -> Held {
        gauge.inc();
        Held(gauge.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Every metric the server exports. Cheap to share behind an `Arc`.
pub struct Metrics {
    registry: Registry,
    /// Requests by method, route template and status, with their latency.
    pub requests: Family<RequestLabels, Histogram>,
    /// Open SSE streams and held long-polls.
    pub connections: Family<TransportLabels, Gauge>,
    /// Users with an open stream or a recent poll.
    pub online_users: Gauge,
    /// Changes waiting for the writer thread.
    pub writer_queue: Gauge,
    /// Changes committed per transaction.
    pub writer_batch: Histogram,
    /// Time of one group commit (run the changes, COMMIT, publish).
    pub writer_commit: Histogram,
    /// Stored events committed.
    pub events_appended: Counter,
    /// Stored events sent from the store to a resuming stream or a poll.
    pub events_replayed: Counter,
    /// Times a stream or poll fell behind its live channel and re-read the store.
    pub lag_rereads: Counter,
    /// Webhook deliveries waiting in the outbox.
    pub webhook_outbox: Gauge,
    /// Webhook attempts by outcome.
    pub webhook_attempts: Family<OutcomeLabels, Counter>,
    /// Times a limit was hit, by limit.
    pub limited: Family<LimitLabels, Counter>,
    /// Open TCP connections (API and metrics addresses).
    pub tcp_connections: Gauge,
    /// Size of the database file.
    pub db_bytes: Gauge,
    /// Size of the write-ahead log.
    pub wal_bytes: Gauge,
    /// The bound on thumbnail decodes.
    pub thumbnails: ThumbnailMetrics,
    /// Host API requests answered on the bus, by status.
    pub bus_requests: Family<StatusLabels, Counter>,
}

/// Latency buckets from 0.1 ms to about 13 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0001, 2.0, 18)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every family registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("chinwag");
        let requests = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        registry.register_with_unit(
            "http_request_duration",
            "HTTP requests by method, route template and status, and how long each took",
            Unit::Seconds,
            requests.clone(),
        );
        let connections = Family::<TransportLabels, Gauge>::default();
        registry.register(
            "open_connections",
            "Open SSE streams (transport=sse) and held long-polls (transport=poll)",
            connections.clone(),
        );
        let online_users = Gauge::default();
        registry.register(
            "online_users",
            "Users with an open stream or a poll within the presence grace period",
            online_users.clone(),
        );
        let writer_queue = Gauge::default();
        registry.register(
            "writer_queue_depth",
            "Changes queued for the writer thread, not yet taken into a transaction",
            writer_queue.clone(),
        );
        let writer_batch = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "writer_batch_size",
            "Changes committed together in one transaction (group commit)",
            writer_batch.clone(),
        );
        let writer_commit = Histogram::new(latency_buckets());
        registry.register_with_unit(
            "writer_commit_duration",
            "Time of one group commit: running its changes, COMMIT (the fsync) and publishing",
            Unit::Seconds,
            writer_commit.clone(),
        );
        let events_appended = Counter::default();
        registry.register(
            "events_appended",
            "Stored events committed to the event log",
            events_appended.clone(),
        );
        let events_replayed = Counter::default();
        registry.register(
            "events_replayed",
            "Stored events read back from the database for a resuming stream or a poll",
            events_replayed.clone(),
        );
        let lag_rereads = Counter::default();
        registry.register(
            "lag_rereads",
            "Times a stream or poll fell behind its in-memory channel and re-read the store",
            lag_rereads.clone(),
        );
        let webhook_outbox = Gauge::default();
        registry.register(
            "webhook_outbox_depth",
            "Webhook deliveries waiting in the outbox (due now or later)",
            webhook_outbox.clone(),
        );
        let webhook_attempts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts by outcome: delivered, failed (retried later), dropped",
            webhook_attempts.clone(),
        );
        for outcome in ["delivered", "failed", "dropped"] {
            let _ = webhook_attempts.get_or_create(&OutcomeLabels { outcome });
        }
        let limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            "limited",
            "Times a limit was hit: requests refused (user_rate, ip_rate: 429; body_timeout: \
             408), oldest streams closed (streams), accepting paused at the cap (connections)",
            limited.clone(),
        );
        for &limit in LIMITS {
            let _ = limited.get_or_create(&LimitLabels { limit });
        }
        let tcp_connections = Gauge::default();
        registry.register(
            "tcp_connections",
            "Open TCP connections, streams and idle keep-alive ones included (--max-connections)",
            tcp_connections.clone(),
        );
        let db_bytes = Gauge::default();
        registry.register_with_unit(
            "database_size",
            "Size of the SQLite database file",
            Unit::Bytes,
            db_bytes.clone(),
        );
        let wal_bytes = Gauge::default();
        registry.register_with_unit(
            "wal_size",
            "Size of the SQLite write-ahead log",
            Unit::Bytes,
            wal_bytes.clone(),
        );
        let thumbnails = ThumbnailMetrics::default();
        registry.register(
            "thumbnail_decodes_running",
            "Thumbnail decodes running now (at most --thumbnail-decodes)",
            thumbnails.running.clone(),
        );
        registry.register(
            "thumbnail_decodes_waiting",
            "Image uploads waiting for a decode slot or for the decode memory budget",
            thumbnails.waiting.clone(),
        );
        registry.register(
            "thumbnails_over_budget",
            "Images given no thumbnail because decoding one alone would pass --thumbnail-memory",
            thumbnails.over_budget.clone(),
        );
        let bus_requests = Family::<StatusLabels, Counter>::default();
        registry.register(
            "bus_requests",
            "Host API requests answered on the NATS bus (--bus-url), by the reply's status",
            bus_requests.clone(),
        );
        Metrics {
            registry,
            bus_requests,
            requests,
            connections,
            online_users,
            writer_queue,
            writer_batch,
            writer_commit,
            events_appended,
            events_replayed,
            lag_rereads,
            webhook_outbox,
            webhook_attempts,
            limited,
            tcp_connections,
            db_bytes,
            wal_bytes,
            thumbnails,
        }
    }

    /// Records one answered request.
    pub fn request(&self, method: &'static str, route: &'static str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .observe(took.as_secs_f64());
    }

    /// Counts one request answered on the bus.
    pub fn bus_request(&self, status: u16) {
        self.bus_requests
            .get_or_create(&StatusLabels { status })
            .inc();
    }

    /// Requests answered on the bus so far, whatever their status.
    pub fn bus_requests(&self) -> u64 {
        const STATUSES: &[u16] = &[200, 204, 400, 404, 405, 409, 413, 429, 500, 503, 507];
        STATUSES
            .iter()
            .map(|&status| {
                self.bus_requests
                    .get_or_create(&StatusLabels { status })
                    .get()
            })
            .sum()
    }

    /// Counts one webhook attempt.
    pub fn webhook_attempt(&self, outcome: &'static str) {
        self.webhook_attempts
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts one hit of `limit` (one of [`LIMITS`]).
    pub fn limited(&self, limit: &'static str) {
        self.limited.get_or_create(&LimitLabels { limit }).inc();
    }

    /// The gauge of one transport's open connections.
    pub fn open(&self, transport: &'static str) -> Gauge {
        self.connections
            .get_or_create(&TransportLabels { transport })
            .clone()
    }

    /// The registry in the Prometheus text format (OpenMetrics 1.0).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_family_with_its_prefix() {
        let m = Metrics::new();
        m.request("POST", "/v1/message", 200, Duration::from_millis(3));
        m.webhook_attempt("failed");
        m.open("sse").inc();
        let text = m.encode();
        assert!(text.contains(
            "chinwag_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/message\",status=\"200\"} 1"
        ), "{text}");
        assert!(text.contains("chinwag_webhook_attempts_total{outcome=\"failed\"} 1"));
        assert!(text.contains("chinwag_open_connections{transport=\"sse\"} 1"));
        assert!(text.contains("# TYPE chinwag_wal_size_bytes gauge"));
        assert!(text.ends_with("# EOF\n"));
    }
}
