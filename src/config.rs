//! The server's settings as one plain value, with named defaults, the data directory's layout and
//! the secrets generated there on first start. Only `cli` builds it from flags and environment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

mod services;

pub use services::{Bus, Cluster, Role, Telegram, DEFAULT_TELEGRAM_API};

/// Where the server listens when nothing is said.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Where the database and generated secrets live when nothing is said.
pub const DEFAULT_DATA_DIR: &str = "./chinwag-data";
/// Clock skew allowed when a token's `exp` and `nbf` are checked.
pub const DEFAULT_TOKEN_LEEWAY: Duration = Duration::from_secs(30);
/// How long stored events stay resumable.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Largest JSON request body.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Largest upload.
pub const DEFAULT_MAX_UPLOAD: u64 = 25 * 1024 * 1024;
/// Largest message text plus params.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Thumbnail decodes that run at once.
pub const DEFAULT_THUMBNAIL_DECODES: usize = 2;
/// Memory that thumbnail decodes may reserve together.
pub const DEFAULT_THUMBNAIL_MEMORY: u64 = 256 * 1024 * 1024;
/// Most members a group may have.
pub const DEFAULT_MAX_GROUP_SIZE: usize = 10_000;
/// Largest group whose members are told each other's presence and every receipt.
pub const DEFAULT_PRESENCE_GROUP_LIMIT: usize = 100;
/// Uploads never attached to a message are removed after a day.
pub const ORPHAN_TTL: Duration = Duration::from_secs(24 * 3600);
/// A comment line on every SSE stream this often keeps proxies from closing it.
pub const PING_INTERVAL: Duration = Duration::from_secs(15);
/// A user whose last poll ended this long ago, with no stream open, is offline.
pub const POLL_PRESENCE: Duration = Duration::from_secs(30);
/// How often the janitor prunes events past the retention window.
pub const JANITOR_INTERVAL: Duration = Duration::from_secs(60);
/// The longest the drain at shutdown may take (requests answered, streams ended).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// A connection whose client takes no data for this long while a response waits is closed; its
/// stream resumes when the client reconnects.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Wait after a webhook delivery's first failed attempt; it doubles after each further failure.
pub const DEFAULT_WEBHOOK_BACKOFF: Duration = Duration::from_secs(1);
/// The doubling wait between webhook attempts never grows past this.
pub const WEBHOOK_MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Attempts at one webhook delivery before it is dropped (with 1 s doubling: about 8.5 minutes).
pub const DEFAULT_WEBHOOK_MAX_ATTEMPTS: u32 = 10;
/// How long one webhook attempt may take (connect, send, answer) before it counts as failed.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests one user may make: this many a second on average, `burst` at once.
pub const DEFAULT_USER_RATE: Rate = Rate {
    per_second: 20.0,
    burst: 60,
};
/// Requests one client address may make (every user behind one NAT shares it).
pub const DEFAULT_IP_RATE: Rate = Rate {
    per_second: 200.0,
    burst: 400,
};
/// Open streams and held polls one user may have; opening one more closes their oldest.
pub const DEFAULT_MAX_STREAMS: usize = 10;
/// Most connections open at once from one client address.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
/// A request's body must arrive within this long (an upload: no pause longer than this).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Open files kept free of connections for the database, uploads and webhook sockets: the
/// default connection cap is the open-file limit less this.
pub const RESERVED_FILES: u64 = 128;

/// A token bucket: refilled at `per_second`, holding at most `burst`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Requests a second on average (more than 0).
    pub per_second: f64,
    /// Requests at once after a quiet spell (at least 1).
    pub burst: u32,
}

/// SQLite durability: what a 2xx promises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    /// `synchronous=FULL`: an acknowledged write survives a crash of the machine (power loss).
    Full,
    /// `synchronous=NORMAL`: an acknowledged write survives a crash of the process.
    Normal,
}

/// Everything `serve` needs. Tests build it with [`Config::new`] and adjust fields.
#[derive(Clone, Debug)]
pub struct Config {
    /// The data directory: `chinwag.db` and the generated secrets.
    pub data_dir: PathBuf,
    /// HS256 key of client tokens; generated and kept in the data directory when `None`.
    pub secret: Option<String>,
    /// Bearer key of the host backend API; generated and kept when `None`.
    pub service_key: Option<String>,
    /// Clock skew allowed on a token's `exp` and `nbf` (whole seconds count).
    pub token_leeway: Duration,
    /// SQLite durability.
    pub sync: Sync,
    /// How long stored events stay resumable.
    pub retention: Duration,
    /// Largest JSON request body in bytes.
    pub max_body: usize,
    /// Interval of SSE keep-alive comments.
    pub ping_interval: Duration,
    /// How long after their last poll a poll-only user stays online.
    pub poll_presence: Duration,
    /// How often the janitor runs.
    pub janitor_interval: Duration,
    /// The longest the drain at shutdown may take (requests answered, streams ended).
    pub shutdown_grace: Duration,
    /// A connection whose client takes no data for this long while a response waits is closed.
    pub stall_timeout: Duration,
    /// Where new messages are POSTed for members with no open connection; `None`: no webhooks.
    pub webhook_url: Option<String>,
    /// The host API over a NATS bus; `None`: HTTP only.
    pub bus: Option<Bus>,
    /// This server as a node of a cluster; `None`: a single server.
    pub cluster: Option<Cluster>,
    /// The support chats' bridge to a Telegram group; `None`: no bridge.
    pub telegram: Option<Telegram>,
    /// HMAC-SHA256 key of the webhook signature; required when `webhook_url` is set.
    pub webhook_secret: Option<String>,
    /// Wait after a delivery's first failure, doubling after each further one.
    pub webhook_backoff: Duration,
    /// Attempts at one delivery before it is dropped.
    pub webhook_max_attempts: u32,
    /// Largest upload in bytes.
    pub max_upload: u64,
    /// Largest message: text plus params' keys and values, in bytes.
    pub max_message_bytes: usize,
    /// Thumbnail decodes that run at once; more uploads wait their turn.
    pub thumbnail_decodes: usize,
    /// Bytes that running thumbnail decodes may reserve together.
    pub thumbnail_memory: u64,
    /// Most bytes the database may grow to; past it writes answer 507 (as on a full disk) and
    /// `/healthz` 503. `None`: only the disk limits it.
    pub max_db_size: Option<u64>,
    /// Most members a group may have.
    pub max_group_size: usize,
    /// Groups with more members get no presence pushes, and receipts only to the author.
    pub presence_group_limit: usize,
    /// Uploads never attached to a message are deleted after this long.
    pub orphan_ttl: Duration,
    /// The user every other user gets a `support` chat with; `None`: no support chats.
    pub support_user: Option<crate::model::UserId>,
    /// Where 500s and panics are reported (a Sentry DSN); `None`: not reported.
    pub sentry_dsn: Option<String>,
    /// Each user's request rate (client token requests); `None`: unlimited.
    pub user_rate: Option<Rate>,
    /// Each client address's request rate (all but the host API); `None`: unlimited.
    pub ip_rate: Option<Rate>,
    /// The header a trusted proxy puts the client's address in (e.g. `Fly-Client-IP`); `None`:
    /// the address the connection comes from.
    pub client_ip_header: Option<String>,
    /// Most open streams and held polls per user; one more closes the user's oldest.
    pub max_streams: usize,
    /// How long a request's body may take to arrive (an upload: its longest pause).
    pub body_timeout: Duration,
    /// Most open connections; at the cap the server stops accepting until one closes. `None`:
    /// the open-file limit less [`RESERVED_FILES`].
    pub max_connections: Option<usize>,
    /// Most connections open at once from one client address (an IPv6 one by its /64); past it
    /// a new one is answered `429` and closed. 0, or a `client_ip_header`: no such cap.
    pub max_connections_per_ip: usize,
    /// Which web origins a browser lets call the API.
    pub cors: Cors,
    /// Development sign-in (`POST /v1/dev/token`): a token for any user name, for the demo app.
    pub dev: bool,
}

/// The origins whose pages a browser lets read Chinwag's answers (`Access-Control-Allow-Origin`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cors {
    /// Any origin (`*`): Chinwag uses bearer tokens, never cookies, so a page on another origin
    /// gains nothing a token does not already give.
    Any,
    /// Only these origins (`https://app.example.com`), each answered with its own name.
    Only(Vec<String>),
}

impl Cors {
    /// Parses `*` or a comma list of origins (`scheme://host[:port]`, no path).
    pub fn parse(s: &str) -> Result<Cors, String> {
        if s.trim() == "*" {
            return Ok(Cors::Any);
        }
        let mut origins = Vec::new();
        for origin in s.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', ' ']) => {
                    origins.push(origin.to_ascii_lowercase())
                }
                _ => {
                    return Err(format!(
                        "{origin:?} is not an origin: give scheme://host[:port] with no path, \
                         e.g. https://app.example.com, or * for any"
                    ))
                }
            }
        }
        if origins.is_empty() {
            return Err("give * or at least one origin, e.g. https://app.example.com".into());
        }
        Ok(Cors::Only(origins))
    }

    /// What `Access-Control-Allow-Origin` says to a request from `origin`: `*`, the origin
    /// itself when it is allowed, nothing when it is not.
    pub fn allow<'a>(&self, origin: Option<&'a str>) -> Option<&'a str> {
        match self {
            Cors::Any => Some("*"),
            Cors::Only(list) => origin.filter(|o| list.iter().any(|a| a.eq_ignore_ascii_case(o))),
        }
    }
}

/// The bus topic when `--bus-topic` is not given.
pub const DEFAULT_BUS_TOPIC: &str = "chinwag.host";

impl Config {
    /// Defaults everywhere, data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            secret: None,
            service_key: None,
            token_leeway: DEFAULT_TOKEN_LEEWAY,
            sync: Sync::Full,
            retention: DEFAULT_RETENTION,
            max_body: DEFAULT_MAX_BODY,
            ping_interval: PING_INTERVAL,
            poll_presence: POLL_PRESENCE,
            janitor_interval: JANITOR_INTERVAL,
            shutdown_grace: SHUTDOWN_GRACE,
            stall_timeout: STALL_TIMEOUT,
            max_upload: DEFAULT_MAX_UPLOAD,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            thumbnail_decodes: DEFAULT_THUMBNAIL_DECODES,
            thumbnail_memory: DEFAULT_THUMBNAIL_MEMORY,
            max_db_size: None,
            max_group_size: DEFAULT_MAX_GROUP_SIZE,
            presence_group_limit: DEFAULT_PRESENCE_GROUP_LIMIT,
            orphan_ttl: ORPHAN_TTL,
            support_user: None,
            sentry_dsn: None,
            webhook_url: None,
            bus: None,
            cluster: None,
            telegram: None,
            webhook_secret: None,
            webhook_backoff: DEFAULT_WEBHOOK_BACKOFF,
            webhook_max_attempts: DEFAULT_WEBHOOK_MAX_ATTEMPTS,
            user_rate: Some(DEFAULT_USER_RATE),
            ip_rate: Some(DEFAULT_IP_RATE),
            client_ip_header: None,
            max_streams: DEFAULT_MAX_STREAMS,
            body_timeout: BODY_TIMEOUT,
            max_connections: None,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            cors: Cors::Any,
            dev: false,
        }
    }

    /// Directory of uploaded files.
    pub fn files_dir(&self) -> PathBuf {
        self.data_dir.join("files")
    }

    /// Path of the SQLite database.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("chinwag.db")
    }

    /// The token secret: the configured one, or the one kept in the data directory (made on first use).
    pub fn token_secret(&self) -> anyhow::Result<String> {
        match &self.secret {
            Some(s) => Ok(s.clone()),
            None => kept_secret(&self.data_dir.join("secret")),
        }
    }

    /// The token secret for minting outside the server: the configured one or the one the server
    /// keeps, never a new one (the server would not know it). The error says where it looked.
    pub fn existing_token_secret(&self) -> anyhow::Result<String> {
        if let Some(s) = &self.secret {
            return Ok(s.clone());
        }
        let path = self.data_dir.join("secret");
        read_kept(&path)?.ok_or_else(|| {
            anyhow::anyhow!(
                "no token secret at {}: start `chinwag serve` once with this data directory to \
                 create it, pass the server's --data-dir (or CHINWAG_DATA_DIR), or give the \
                 server's --secret (or CHINWAG_SECRET)",
                path.display()
            )
        })
    }

    /// Takes the data directory for this process (an exclusive lock on `<data-dir>/lock`, held
    /// until the returned file is dropped), creating the directory if needed. A second server on
    /// the same directory gets an error naming it.
    pub fn lock_data_dir(&self) -> anyhow::Result<std::fs::File> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating {}", self.data_dir.display()))?;
        let path = self.data_dir.join("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "the data directory {} is in use by another chinwag process; stop it first, or \
                 give this one its own --data-dir",
                self.data_dir.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }

    /// The service key: the configured one, or the one kept in the data directory (made on first use).
    pub fn host_key(&self) -> anyhow::Result<String> {
        match &self.service_key {
            Some(s) => Ok(s.clone()),
            None => kept_secret(&self.data_dir.join("service-key")),
        }
    }
}

/// A kept secret: `None` when the file does not exist; an error when it cannot be read or is
/// blank (never sign with an empty key, and a new one would orphan every token minted so far).
fn read_kept(path: &Path) -> anyhow::Result<Option<String>> {
    let s = match std::fs::read_to_string(path) {
        Ok(s) => s.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    anyhow::ensure!(
        !s.is_empty(),
        "{} is empty: delete it to generate a new one (tokens signed with the old one stop \
         working), or restore it from a backup",
        path.display()
    );
    Ok(Some(s))
}

/// Reads a secret file, or creates it with 32 random bytes in hex (mode 0600).
fn kept_secret(path: &Path) -> anyhow::Result<String> {
    if let Some(s) = read_kept(path)? {
        return Ok(s);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let hex = crate::random::random_hex(32)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(hex.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            f.sync_all()?;
            Ok(hex)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_kept(path)?
            .ok_or_else(|| anyhow::anyhow!("{} vanished while it was made", path.display())),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// Parses a size such as `1MiB`, `512KiB`, `25MB` or `1048576` into bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1 << 20,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB, GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("25MB"), Ok(25_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1XB").is_err());
    }

    #[test]
    fn cors_origins_are_star_or_a_list_of_bare_origins() {
        assert_eq!(Cors::parse("*"), Ok(Cors::Any));
        let list = Cors::parse("https://App.example.com, http://localhost:3000").unwrap();
        let want = vec![
            "https://app.example.com".into(),
            "http://localhost:3000".into(),
        ];
        assert_eq!(list, Cors::Only(want));
        assert_eq!(
            list.allow(Some("https://app.example.com")),
            Some("https://app.example.com")
        );
        assert_eq!(list.allow(Some("https://other.example.com")), None);
        assert_eq!(list.allow(None), None);
        assert_eq!(Cors::Any.allow(None), Some("*"));
        for bad in [
            "",
            " , ",
            "app.example.com",
            "https://app.example.com/path",
            "ftp://x",
        ] {
            assert!(Cors::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn generated_secrets_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new(dir.path().join("data"));
        let first = config.token_secret().unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(config.token_secret().unwrap(), first);
        assert_ne!(config.host_key().unwrap(), first);
    }
}
