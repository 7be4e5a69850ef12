//! The command line's flags: every command's arguments, each flag with its `CHINWAG_*`
//! variable, and how `serve`'s become the [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::parse::*;
use crate::config::{self, Config};

#[derive(Parser, Debug)]
#[command(
    name = "chinwag",
    version = crate::VERSION,
    about = "Chat over plain HTTP, Server-Sent Events and long-poll, stored in SQLite."
)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Subcommand, Debug)]
pub(super) enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Print a client token for a user, signed with the server's secret.
    Token(TokenArgs),
    /// Copy the database and the uploaded files it references to DEST, while the server runs.
    Backup(BackupArgs),
    /// Exit 0 if the server at --listen answers its health check (for container health checks).
    Health(HealthArgs),
}

#[derive(Args, Debug)]
pub(super) struct BackupArgs {
    #[command(flatten)]
    pub(super) data: DataDir,
    /// A new (or empty) directory to write the backup to; start a server with it as its
    /// --data-dir to restore.
    pub(super) dest: PathBuf,
}

#[derive(Args, Debug)]
pub(super) struct HealthArgs {
    /// The server's listen address (an unspecified address such as 0.0.0.0 means this machine).
    #[arg(long, env = "CHINWAG_LISTEN", default_value = config::DEFAULT_LISTEN, value_parser = parse_listen)]
    pub(super) listen: SocketAddr,
    /// How long to wait for the answer.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(super) timeout: Duration,
}

/// Where the data lives: every command but `health` reads it.
#[derive(Args, Debug)]
pub(super) struct DataDir {
    /// Data directory: the SQLite database, uploaded files and generated secrets.
    #[arg(long, env = "CHINWAG_DATA_DIR", default_value = config::DEFAULT_DATA_DIR)]
    pub(super) data_dir: PathBuf,
}

/// Flags `serve` and `token` share: the data directory and the token secret.
#[derive(Args, Debug)]
pub(super) struct Common {
    #[command(flatten)]
    pub(super) data: DataDir,
    /// HS256 key of client tokens. Default: the one kept in <data-dir>/secret, which `serve`
    /// creates on first start.
    #[arg(long, env = "CHINWAG_SECRET", hide_env_values = true, value_parser = parse_key)]
    pub(super) secret: Option<String>,
}

#[derive(Args, Debug)]
pub(super) struct ServeArgs {
    #[command(flatten)]
    pub(super) common: Common,
    /// Bearer key of the host backend API (generated and kept in the data directory if unset).
    #[arg(long, env = "CHINWAG_SERVICE_KEY", hide_env_values = true, value_parser = parse_key)]
    pub(super) service_key: Option<String>,
    /// Clock skew allowed on a client token's exp and nbf (e.g. 30s, 2m, 0s).
    #[arg(long, env = "CHINWAG_TOKEN_LEEWAY", default_value = "30s", value_parser = parse_duration)]
    pub(super) token_leeway: Duration,
    /// Address to listen on: HOST:PORT, or :PORT for every interface (0.0.0.0:8080 in a
    /// container).
    #[arg(long, env = "CHINWAG_LISTEN", default_value = config::DEFAULT_LISTEN, value_parser = parse_listen)]
    pub(super) listen: SocketAddr,
    /// SQLite durability: `full` survives a machine crash, `normal` a process crash.
    #[arg(long, env = "CHINWAG_SYNC", value_enum, default_value = "full")]
    pub(super) sync: SyncArg,
    /// How long stored events stay resumable (e.g. 7d, 12h, 30m).
    #[arg(long, env = "CHINWAG_RETENTION", default_value = "7d", value_parser = parse_retention)]
    pub(super) retention: Duration,
    /// Largest JSON request body, at least 1KiB (e.g. 1MiB, 256KiB).
    #[arg(long, env = "CHINWAG_MAX_BODY", default_value = "1MiB", value_parser = parse_body_limit)]
    pub(super) max_body: usize,
    /// Largest file upload, at least 1 byte (e.g. 25MiB, 100MB).
    #[arg(long, env = "CHINWAG_MAX_UPLOAD", default_value = "25MiB", value_parser = parse_upload_limit)]
    pub(super) max_upload: usize,
    /// Largest message: its text plus its params' keys and values, at least 1 byte (e.g. 64KiB).
    #[arg(long, env = "CHINWAG_MAX_MESSAGE_BYTES", default_value = "64KiB", value_parser = parse_upload_limit)]
    pub(super) max_message_bytes: usize,
    /// Thumbnail decodes that run at once; further image uploads wait their turn.
    #[arg(long, env = "CHINWAG_THUMBNAIL_DECODES", default_value_t = config::DEFAULT_THUMBNAIL_DECODES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub(super) thumbnail_decodes: usize,
    /// Memory the running thumbnail decodes may take together (e.g. 256MiB); an image that
    /// alone needs more gets no thumbnail.
    #[arg(long, env = "CHINWAG_THUMBNAIL_MEMORY", default_value = "256MiB", value_parser = parse_upload_limit)]
    pub(super) thumbnail_memory: usize,
    /// Most bytes the SQLite database may grow to (e.g. 10GiB): past it writes answer 507 and
    /// /healthz 503, as on a full disk, with room left on the disk. Default: no limit.
    #[arg(long, env = "CHINWAG_MAX_DB_SIZE", value_parser = config::parse_size)]
    pub(super) max_db_size: Option<usize>,
    /// Most members a group may have (createChat and addMembers take 500 ids per call).
    #[arg(long, env = "CHINWAG_MAX_GROUP_SIZE", default_value_t = config::DEFAULT_MAX_GROUP_SIZE,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..=1_000_000))]
    pub(super) max_group_size: usize,
    /// Groups with more members than this get no presence pushes (opponentStatus on request
    /// only), and their receipts are pushed to the message's author only.
    #[arg(long, env = "CHINWAG_PRESENCE_GROUP_LIMIT", default_value_t = config::DEFAULT_PRESENCE_GROUP_LIMIT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..))]
    pub(super) presence_group_limit: usize,
    /// Give every user a support chat with this user (e.g. your support team's account).
    #[arg(long, env = "CHINWAG_SUPPORT_USER", value_parser = parse_user)]
    pub(super) support_user: Option<crate::model::UserId>,
    /// POST a signed event here for each new message to each member with no open connection
    /// (http:// or https://; needs --webhook-secret).
    #[arg(long, env = "CHINWAG_WEBHOOK_URL")]
    pub(super) webhook_url: Option<String>,
    /// HMAC-SHA256 key of the webhooks' X-Chinwag-Signature header.
    #[arg(long, env = "CHINWAG_WEBHOOK_SECRET", hide_env_values = true)]
    pub(super) webhook_secret: Option<String>,
    /// Wait after a webhook delivery's first failure; doubles after each further one (up to 1h).
    #[arg(long, env = "CHINWAG_WEBHOOK_BACKOFF", default_value = "1s", value_parser = parse_duration)]
    pub(super) webhook_backoff: Duration,
    /// Attempts at one webhook delivery before it is dropped.
    #[arg(long, env = "CHINWAG_WEBHOOK_MAX_ATTEMPTS", default_value_t = config::DEFAULT_WEBHOOK_MAX_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(super) webhook_max_attempts: u32,
    /// Also serve GET /metrics, without the service key, on this address (e.g. 127.0.0.1:9100
    /// or :9100). Without it, /metrics is served on --listen to the service key only.
    #[arg(long, env = "CHINWAG_METRICS_LISTEN", value_parser = parse_listen)]
    pub(super) metrics_listen: Option<SocketAddr>,
    /// Log lines as `text` (for people) or `json` (one object per line, for log collectors).
    #[arg(long, env = "CHINWAG_LOG_FORMAT", value_enum, default_value = "text")]
    pub(super) log_format: LogFormat,
    /// On SIGTERM, the longest the drain may take: requests already read are answered, later
    /// ones get 503, then streams end.
    #[arg(long, env = "CHINWAG_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub(super) shutdown_grace: Duration,
    /// Close a connection whose client takes no data for this long while a response waits (a
    /// stream resumes by Last-Event-ID when the client reconnects).
    #[arg(long, env = "CHINWAG_STALL_TIMEOUT", default_value = "30s", value_parser = parse_stall_timeout)]
    pub(super) stall_timeout: Duration,
    /// How often the janitor prunes events past the retention window and unused uploads.
    #[arg(long, env = "CHINWAG_JANITOR_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub(super) janitor_interval: Duration,
    /// Also answer the host API over this NATS server (nats://host:4222; comma-separated for a
    /// cluster), as seed 001's Bus API: frames {method, path, body} on --bus-topic.
    #[arg(long, env = "CHINWAG_BUS_URL")]
    pub(super) bus_url: Option<String>,
    /// The NATS subject bus requests come on; every Chinwag on it shares them (a queue group).
    #[arg(long, env = "CHINWAG_BUS_TOPIC", default_value = config::DEFAULT_BUS_TOPIC, value_parser = parse_subject)]
    pub(super) bus_topic: String,
    /// The NATS server's auth token, if it wants one.
    #[arg(long, env = "CHINWAG_BUS_TOKEN", hide_env_values = true, value_parser = parse_key)]
    pub(super) bus_token: Option<String>,
    /// How long connecting to NATS may take (a bare number is milliseconds, as seed 001's
    /// BUS_TIMEOUT).
    #[arg(long, env = "CHINWAG_BUS_TIMEOUT", default_value = "1s", value_parser = parse_millis)]
    pub(super) bus_timeout: Duration,
    /// Wait between attempts to get a lost NATS connection back (a bare number is seconds, as
    /// seed 001's RECONNECT_TO_SERVICE); the HTTP API is unaffected meanwhile.
    #[arg(long, env = "CHINWAG_BUS_RECONNECT", default_value = "15s", value_parser = parse_seconds)]
    pub(super) bus_reconnect: Duration,
    /// Run as a node of a cluster joined by this NATS server (nats://host:4222): one primary
    /// owns the database, any number of edges serve clients (see --role).
    #[arg(long, env = "CHINWAG_CLUSTER")]
    pub(super) cluster: Option<String>,
    /// What this node of the cluster is: `primary` (owns the data directory) or `edge` (keeps
    /// no data; forwards reads and writes to the primary, delivers events to its own streams).
    #[arg(long, env = "CHINWAG_ROLE", value_enum, requires = "cluster")]
    pub(super) role: Option<config::Role>,
    /// The cluster NATS server's auth token, if it wants one.
    #[arg(long, env = "CHINWAG_CLUSTER_TOKEN", hide_env_values = true, value_parser = parse_key)]
    pub(super) cluster_token: Option<String>,
    /// This node's name in the cluster (unique per node; default: random at each start).
    #[arg(long, env = "CHINWAG_NODE", value_parser = parse_subject)]
    pub(super) node: Option<String>,
    /// How long an edge waits for the primary before it answers 503 with Retry-After.
    #[arg(long, env = "CHINWAG_CLUSTER_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub(super) cluster_timeout: Duration,
    /// Report every 500 and every panic, with its cause chain, to this Sentry DSN.
    #[arg(long, env = "CHINWAG_SENTRY_DSN", hide_env_values = true)]
    pub(super) sentry_dsn: Option<String>,
    /// Web origins whose pages may call the API from a browser: `*` for any, or a comma list
    /// (https://app.example.com,https://admin.example.com).
    #[arg(long, env = "CHINWAG_CORS_ORIGINS", default_value = "*", value_parser = config::Cors::parse)]
    pub(super) cors_origins: config::Cors,
    /// Development sign-in: anyone may get a token for any user name (POST /v1/dev/token), so
    /// the demo app at / can be tried without a host backend. Never in production.
    #[arg(long, env = "CHINWAG_DEV")]
    pub(super) dev: bool,
    /// Bridge the support chats to the support staff's Telegram group through this bot (its
    /// token from @BotFather); needs --telegram-chat-id and --support-user.
    #[arg(
        long,
        env = "CHINWAG_TELEGRAM_BOT_TOKEN",
        hide_env_values = true,
        requires = "telegram_chat_id"
    )]
    pub(super) telegram_bot_token: Option<String>,
    /// The support staff's Telegram group, where the bot posts users' support messages and
    /// reads the staff's replies: its id (e.g. -1001234567890) or its @username.
    #[arg(
        long,
        env = "CHINWAG_TELEGRAM_CHAT_ID",
        allow_hyphen_values = true,
        requires = "telegram_bot_token"
    )]
    pub(super) telegram_chat_id: Option<String>,
    /// Telegram's Bot API (another address only for a local Bot API server or a test).
    #[arg(long, env = "CHINWAG_TELEGRAM_API_URL", default_value = config::DEFAULT_TELEGRAM_API)]
    pub(super) telegram_api_url: String,
    #[command(flatten)]
    pub(super) limits: LimitArgs,
}

/// What one caller may take, and how many connections the server holds.
#[derive(Args, Debug)]
pub(super) struct LimitArgs {
    /// Requests a second one user may make on average (client token requests, streams and
    /// polls included); 0: no limit. Over it: 429 rate_limited with Retry-After.
    #[arg(long, env = "CHINWAG_RATE_PER_USER", default_value_t = config::DEFAULT_USER_RATE.per_second, value_parser = parse_rate)]
    pub(super) rate_per_user: f64,
    /// Requests one user may make at once after a quiet spell.
    #[arg(long, env = "CHINWAG_BURST_PER_USER", default_value_t = config::DEFAULT_USER_RATE.burst,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(super) burst_per_user: u32,
    /// Requests a second one client address may make on average (an IPv6 address counts by its
    /// /64; the host API with its service key is exempt); 0: no limit.
    #[arg(long, env = "CHINWAG_RATE_PER_IP", default_value_t = config::DEFAULT_IP_RATE.per_second, value_parser = parse_rate)]
    pub(super) rate_per_ip: f64,
    /// Requests one client address may make at once after a quiet spell.
    #[arg(long, env = "CHINWAG_BURST_PER_IP", default_value_t = config::DEFAULT_IP_RATE.burst,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(super) burst_per_ip: u32,
    /// Take the client's address from this header, set by a trusted proxy in front (e.g.
    /// Fly-Client-IP, X-Real-IP; of a list, the first). Never set it without such a proxy: a
    /// client could pick its own address.
    #[arg(long, env = "CHINWAG_CLIENT_IP_HEADER")]
    pub(super) client_ip_header: Option<String>,
    /// Most open SSE streams and held long-polls per user; one more closes that user's oldest.
    #[arg(long, env = "CHINWAG_MAX_STREAMS", default_value_t = config::DEFAULT_MAX_STREAMS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub(super) max_streams: usize,
    /// How long a request's body may take to arrive (an upload: its longest pause); later: 408.
    #[arg(long, env = "CHINWAG_BODY_TIMEOUT", default_value = "30s", value_parser = parse_stall_timeout)]
    pub(super) body_timeout: Duration,
    /// Most open connections; at the cap the server stops accepting until one closes. Default:
    /// the open-file limit less 128.
    #[arg(long, env = "CHINWAG_MAX_CONNECTIONS",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub(super) max_connections: Option<usize>,
    /// Most connections open at once from one client address (IPv6: its /64); one more is
    /// answered 429 and closed. 0: no cap. Not applied with --client-ip-header (behind a proxy
    /// every connection comes from the proxy).
    #[arg(long, env = "CHINWAG_MAX_CONNECTIONS_PER_IP", default_value_t = config::DEFAULT_MAX_CONNECTIONS_PER_IP)]
    pub(super) max_connections_per_ip: usize,
}

impl LimitArgs {
    pub(super) fn apply(&self, config: &mut Config) {
        let rate = |per_second: f64, burst| {
            (per_second > 0.0).then_some(config::Rate { per_second, burst })
        };
        config.user_rate = rate(self.rate_per_user, self.burst_per_user);
        config.ip_rate = rate(self.rate_per_ip, self.burst_per_ip);
        config.client_ip_header = self.client_ip_header.clone();
        config.max_streams = self.max_streams;
        config.body_timeout = self.body_timeout;
        config.max_connections = self.max_connections;
        config.max_connections_per_ip = self.max_connections_per_ip;
    }
}

#[derive(Args, Debug)]
pub(super) struct TokenArgs {
    #[command(flatten)]
    pub(super) common: Common,
    /// The user the token speaks for.
    #[arg(long, env = "CHINWAG_TOKEN_USER")]
    pub(super) user: String,
    /// Lifetime: seconds, or a duration such as 90m, 12h, 7d.
    #[arg(long, env = "CHINWAG_TOKEN_TTL", default_value = "1d", value_parser = parse_ttl)]
    pub(super) ttl: Duration,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum SyncArg {
    Full,
    Normal,
}

impl Common {
    pub(super) fn config(&self) -> Config {
        let mut c = Config::new(&self.data.data_dir);
        c.secret = self.secret.clone();
        c
    }
}

impl ServeArgs {
    /// The settings these flags give (the ones read before start, such as the addresses and
    /// the log format, are read from the flags themselves).
    pub(super) fn into_config(self) -> anyhow::Result<Config> {
        let args = self;
        let mut config = args.common.config();
        config.service_key = args.service_key;
        config.token_leeway = args.token_leeway;
        config.sync = match args.sync {
            SyncArg::Full => config::Sync::Full,
            SyncArg::Normal => config::Sync::Normal,
        };
        config.retention = args.retention;
        config.max_body = args.max_body;
        config.max_upload = args.max_upload as u64;
        config.max_message_bytes = args.max_message_bytes;
        config.thumbnail_decodes = args.thumbnail_decodes;
        config.thumbnail_memory = args.thumbnail_memory as u64;
        config.max_db_size = args.max_db_size.map(|n| n as u64);
        config.max_group_size = args.max_group_size;
        config.presence_group_limit = args.presence_group_limit;
        config.support_user = args.support_user;
        config.webhook_url = args.webhook_url;
        config.webhook_secret = args.webhook_secret;
        config.webhook_backoff = args.webhook_backoff;
        config.webhook_max_attempts = args.webhook_max_attempts;
        config.bus = args.bus_url.map(|url| config::Bus {
            url,
            topic: args.bus_topic,
            token: args.bus_token,
            timeout: args.bus_timeout,
            reconnect: args.bus_reconnect,
        });
        config.cluster = match args.cluster {
            Some(url) => Some(config::Cluster {
                url,
                token: args.cluster_token,
                role: args.role.unwrap_or(config::Role::Primary),
                node: match args.node {
                    Some(node) => node,
                    None => crate::random::random_hex(4)?,
                },
                timeout: args.cluster_timeout,
            }),
            None => None,
        };
        config.telegram = match (&args.telegram_bot_token, &args.telegram_chat_id) {
            (Some(token), Some(chat)) => {
                if config.support_user.is_none() {
                    anyhow::bail!(
                        "--telegram-bot-token needs --support-user: the staff's replies are \
                         posted as that user"
                    );
                }
                let api = &args.telegram_api_url;
                Some(config::Telegram::new(token, chat, api).map_err(anyhow::Error::msg)?)
            }
            _ => None,
        };
        config.sentry_dsn = args.sentry_dsn;
        config.shutdown_grace = args.shutdown_grace;
        config.stall_timeout = args.stall_timeout;
        config.janitor_interval = args.janitor_interval;
        config.cors = args.cors_origins;
        config.dev = args.dev;
        args.limits.apply(&mut config);
        Ok(config)
    }
}
