//! The command line: `chinwag serve` and `chinwag token`. Every flag also reads its `CHINWAG_*`
//! variable. This is the only module that knows about flags and the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

mod parse;

use parse::*;

use crate::config::{self, Config};

#[derive(Parser, Debug)]
#[command(
    name = "chinwag",
    version = crate::VERSION,
    about = "Chat over plain HTTP, Server-Sent Events and long-poll, stored in SQLite."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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
struct BackupArgs {
    #[command(flatten)]
    data: DataDir,
    /// A new (or empty) directory to write the backup to; start a server with it as its
    /// --data-dir to restore.
    dest: PathBuf,
}

#[derive(Args, Debug)]
struct HealthArgs {
    /// The server's listen address (an unspecified address such as 0.0.0.0 means this machine).
    #[arg(long, env = "CHINWAG_LISTEN", default_value = config::DEFAULT_LISTEN, value_parser = parse_listen)]
    listen: SocketAddr,
    /// How long to wait for the answer.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
}

/// Where the data lives: every command but `health` reads it.
#[derive(Args, Debug)]
struct DataDir {
    /// Data directory: the SQLite database, uploaded files and generated secrets.
    #[arg(long, env = "CHINWAG_DATA_DIR", default_value = config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

/// Flags `serve` and `token` share: the data directory and the token secret.
#[derive(Args, Debug)]
struct Common {
    #[command(flatten)]
    data: DataDir,
    /// HS256 key of client tokens. Default: the one kept in <data-dir>/secret, which `serve`
    /// creates on first start.
    #[arg(long, env = "CHINWAG_SECRET", hide_env_values = true, value_parser = parse_key)]
    secret: Option<String>,
}

#[derive(Args, Debug)]
struct ServeArgs {
    #[command(flatten)]
    common: Common,
    /// Bearer key of the host backend API (generated and kept in the data directory if unset).
    #[arg(long, env = "CHINWAG_SERVICE_KEY", hide_env_values = true, value_parser = parse_key)]
    service_key: Option<String>,
    /// Clock skew allowed on a client token's exp and nbf (e.g. 30s, 2m, 0s).
    #[arg(long, env = "CHINWAG_TOKEN_LEEWAY", default_value = "30s", value_parser = parse_duration)]
    token_leeway: Duration,
    /// Address to listen on: HOST:PORT, or :PORT for every interface (0.0.0.0:8080 in a
    /// container).
    #[arg(long, env = "CHINWAG_LISTEN", default_value = config::DEFAULT_LISTEN, value_parser = parse_listen)]
    listen: SocketAddr,
    /// SQLite durability: `full` survives a machine crash, `normal` a process crash.
    #[arg(long, env = "CHINWAG_SYNC", value_enum, default_value = "full")]
    sync: SyncArg,
    /// How long stored events stay resumable (e.g. 7d, 12h, 30m).
    #[arg(long, env = "CHINWAG_RETENTION", default_value = "7d", value_parser = parse_retention)]
    retention: Duration,
    /// Largest JSON request body, at least 1KiB (e.g. 1MiB, 256KiB).
    #[arg(long, env = "CHINWAG_MAX_BODY", default_value = "1MiB", value_parser = parse_body_limit)]
    max_body: usize,
    /// Largest file upload, at least 1 byte (e.g. 25MiB, 100MB).
    #[arg(long, env = "CHINWAG_MAX_UPLOAD", default_value = "25MiB", value_parser = parse_upload_limit)]
    max_upload: usize,
    /// Largest message: its text plus its params' keys and values, at least 1 byte (e.g. 64KiB).
    #[arg(long, env = "CHINWAG_MAX_MESSAGE_BYTES", default_value = "64KiB", value_parser = parse_upload_limit)]
    max_message_bytes: usize,
    /// Thumbnail decodes that run at once; further image uploads wait their turn.
    #[arg(long, env = "CHINWAG_THUMBNAIL_DECODES", default_value_t = config::DEFAULT_THUMBNAIL_DECODES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    thumbnail_decodes: usize,
    /// Memory the running thumbnail decodes may take together (e.g. 256MiB); an image that
    /// alone needs more gets no thumbnail.
    #[arg(long, env = "CHINWAG_THUMBNAIL_MEMORY", default_value = "256MiB", value_parser = parse_upload_limit)]
    thumbnail_memory: usize,
    /// Most bytes the SQLite database may grow to (e.g. 10GiB): past it writes answer 507 and
    /// /healthz 503, as on a full disk, with room left on the disk. Default: no limit.
    #[arg(long, env = "CHINWAG_MAX_DB_SIZE", value_parser = config::parse_size)]
    max_db_size: Option<usize>,
    /// Most members a group may have (createChat and addMembers take 500 ids per call).
    #[arg(long, env = "CHINWAG_MAX_GROUP_SIZE", default_value_t = config::DEFAULT_MAX_GROUP_SIZE,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..=1_000_000))]
    max_group_size: usize,
    /// Groups with more members than this get no presence pushes (opponentStatus on request
    /// only), and their receipts are pushed to the message's author only.
    #[arg(long, env = "CHINWAG_PRESENCE_GROUP_LIMIT", default_value_t = config::DEFAULT_PRESENCE_GROUP_LIMIT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..))]
    presence_group_limit: usize,
    /// Give every user a support chat with this user (e.g. your support team's account).
    #[arg(long, env = "CHINWAG_SUPPORT_USER", value_parser = parse_user)]
    support_user: Option<crate::model::UserId>,
    /// POST a signed event here for each new message to each member with no open connection
    /// (http:// or https://; needs --webhook-secret).
    #[arg(long, env = "CHINWAG_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// HMAC-SHA256 key of the webhooks' X-Chinwag-Signature header.
    #[arg(long, env = "CHINWAG_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Wait after a webhook delivery's first failure; doubles after each further one (up to 1h).
    #[arg(long, env = "CHINWAG_WEBHOOK_BACKOFF", default_value = "1s", value_parser = parse_duration)]
    webhook_backoff: Duration,
    /// Attempts at one webhook delivery before it is dropped.
    #[arg(long, env = "CHINWAG_WEBHOOK_MAX_ATTEMPTS", default_value_t = config::DEFAULT_WEBHOOK_MAX_ATTEMPTS,
          value_parser = clap::value_parser!(u32).range(1..))]
    webhook_max_attempts: u32,
    /// Also serve GET /metrics, without the service key, on this address (e.g. 127.0.0.1:9100
    /// or :9100). Without it, /metrics is served on --listen to the service key only.
    #[arg(long, env = "CHINWAG_METRICS_LISTEN", value_parser = parse_listen)]
    metrics_listen: Option<SocketAddr>,
    /// Log lines as `text` (for people) or `json` (one object per line, for log collectors).
    #[arg(long, env = "CHINWAG_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// On SIGTERM, the longest the drain may take: requests already read are answered, later
    /// ones get 503, then streams end.
    #[arg(long, env = "CHINWAG_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// Close a connection whose client takes no data for this long while a response waits (a
    /// stream resumes by Last-Event-ID when the client reconnects).
    #[arg(long, env = "CHINWAG_STALL_TIMEOUT", default_value = "30s", value_parser = parse_stall_timeout)]
    stall_timeout: Duration,
    /// How often the janitor prunes events past the retention window and unused uploads.
    #[arg(long, env = "CHINWAG_JANITOR_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    janitor_interval: Duration,
    /// Also answer the host API over this NATS server (nats://host:4222; comma-separated for a
    /// cluster), as seed 001's Bus API: frames {method, path, body} on --bus-topic.
    #[arg(long, env = "CHINWAG_BUS_URL")]
    bus_url: Option<String>,
    /// The NATS subject bus requests come on; every Chinwag on it shares them (a queue group).
    #[arg(long, env = "CHINWAG_BUS_TOPIC", default_value = config::DEFAULT_BUS_TOPIC, value_parser = parse_subject)]
    bus_topic: String,
    /// The NATS server's auth token, if it wants one.
    #[arg(long, env = "CHINWAG_BUS_TOKEN", hide_env_values = true, value_parser = parse_key)]
    bus_token: Option<String>,
    /// How long connecting to NATS may take (a bare number is milliseconds, as seed 001's
    /// BUS_TIMEOUT).
    #[arg(long, env = "CHINWAG_BUS_TIMEOUT", default_value = "1s", value_parser = parse_millis)]
    bus_timeout: Duration,
    /// Wait between attempts to get a lost NATS connection back (a bare number is seconds, as
    /// seed 001's RECONNECT_TO_SERVICE); the HTTP API is unaffected meanwhile.
    #[arg(long, env = "CHINWAG_BUS_RECONNECT", default_value = "15s", value_parser = parse_seconds)]
    bus_reconnect: Duration,
    /// Run as a node of a cluster joined by this NATS server (nats://host:4222): one primary
    /// owns the database, any number of edges serve clients (see --role).
    #[arg(long, env = "CHINWAG_CLUSTER")]
    cluster: Option<String>,
    /// What this node of the cluster is: `primary` (owns the data directory) or `edge` (keeps
    /// no data; forwards reads and writes to the primary, delivers events to its own streams).
    #[arg(long, env = "CHINWAG_ROLE", value_enum, requires = "cluster")]
    role: Option<config::Role>,
    /// The cluster NATS server's auth token, if it wants one.
    #[arg(long, env = "CHINWAG_CLUSTER_TOKEN", hide_env_values = true, value_parser = parse_key)]
    cluster_token: Option<String>,
    /// This node's name in the cluster (unique per node; default: random at each start).
    #[arg(long, env = "CHINWAG_NODE", value_parser = parse_subject)]
    node: Option<String>,
    /// How long an edge waits for the primary before it answers 503 with Retry-After.
    #[arg(long, env = "CHINWAG_CLUSTER_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    cluster_timeout: Duration,
    /// Report every 500 and every panic, with its cause chain, to this Sentry DSN.
    #[arg(long, env = "CHINWAG_SENTRY_DSN", hide_env_values = true)]
    sentry_dsn: Option<String>,
    /// Web origins whose pages may call the API from a browser: `*` for any, or a comma list
    /// (https://app.example.com,https://admin.example.com).
    #[arg(long, env = "CHINWAG_CORS_ORIGINS", default_value = "*", value_parser = config::Cors::parse)]
    cors_origins: config::Cors,
    /// Development sign-in: anyone may get a token for any user name (POST /v1/dev/token), so
    /// the demo app at / can be tried without a host backend. Never in production.
    #[arg(long, env = "CHINWAG_DEV")]
    dev: bool,
    #[command(flatten)]
    limits: LimitArgs,
}

/// What one caller may take, and how many connections the server holds.
#[derive(Args, Debug)]
struct LimitArgs {
    /// Requests a second one user may make on average (client token requests, streams and
    /// polls included); 0: no limit. Over it: 429 rate_limited with Retry-After.
    #[arg(long, env = "CHINWAG_RATE_PER_USER", default_value_t = config::DEFAULT_USER_RATE.per_second, value_parser = parse_rate)]
    rate_per_user: f64,
    /// Requests one user may make at once after a quiet spell.
    #[arg(long, env = "CHINWAG_BURST_PER_USER", default_value_t = config::DEFAULT_USER_RATE.burst,
          value_parser = clap::value_parser!(u32).range(1..))]
    burst_per_user: u32,
    /// Requests a second one client address may make on average (an IPv6 address counts by its
    /// /64; the host API with its service key is exempt); 0: no limit.
    #[arg(long, env = "CHINWAG_RATE_PER_IP", default_value_t = config::DEFAULT_IP_RATE.per_second, value_parser = parse_rate)]
    rate_per_ip: f64,
    /// Requests one client address may make at once after a quiet spell.
    #[arg(long, env = "CHINWAG_BURST_PER_IP", default_value_t = config::DEFAULT_IP_RATE.burst,
          value_parser = clap::value_parser!(u32).range(1..))]
    burst_per_ip: u32,
    /// Take the client's address from this header, set by a trusted proxy in front (e.g.
    /// Fly-Client-IP, X-Real-IP; of a list, the first). Never set it without such a proxy: a
    /// client could pick its own address.
    #[arg(long, env = "CHINWAG_CLIENT_IP_HEADER")]
    client_ip_header: Option<String>,
    /// Most open SSE streams and held long-polls per user; one more closes that user's oldest.
    #[arg(long, env = "CHINWAG_MAX_STREAMS", default_value_t = config::DEFAULT_MAX_STREAMS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_streams: usize,
    /// How long a request's body may take to arrive (an upload: its longest pause); later: 408.
    #[arg(long, env = "CHINWAG_BODY_TIMEOUT", default_value = "30s", value_parser = parse_stall_timeout)]
    body_timeout: Duration,
    /// Most open connections; at the cap the server stops accepting until one closes. Default:
    /// the open-file limit less 128.
    #[arg(long, env = "CHINWAG_MAX_CONNECTIONS",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_connections: Option<usize>,
    /// Most connections open at once from one client address (IPv6: its /64); one more is
    /// answered 429 and closed. 0: no cap. Not applied with --client-ip-header (behind a proxy
    /// every connection comes from the proxy).
    #[arg(long, env = "CHINWAG_MAX_CONNECTIONS_PER_IP", default_value_t = config::DEFAULT_MAX_CONNECTIONS_PER_IP)]
    max_connections_per_ip: usize,
}

impl LimitArgs {
    fn apply(&self, config: &mut Config) {
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
struct TokenArgs {
    #[command(flatten)]
    common: Common,
    /// The user the token speaks for.
    #[arg(long, env = "CHINWAG_TOKEN_USER")]
    user: String,
    /// Lifetime: seconds, or a duration such as 90m, 12h, 7d.
    #[arg(long, env = "CHINWAG_TOKEN_TTL", default_value = "1d", value_parser = parse_ttl)]
    ttl: Duration,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SyncArg {
    Full,
    Normal,
}

impl Common {
    fn config(&self) -> Config {
        let mut c = Config::new(&self.data.data_dir);
        c.secret = self.secret.clone();
        c
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Token(args) => token(args),
        Command::Backup(args) => backup(args),
        Command::Health(args) => crate::health::check(args.listen, args.timeout),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chinwag: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn token(args: TokenArgs) -> anyhow::Result<()> {
    let user = crate::model::UserId::parse(&args.user).map_err(|e| anyhow::anyhow!(e))?;
    // Never invent a secret here: the server would not know it and would refuse the token.
    let secret = args.common.config().existing_token_secret()?;
    println!("{}", crate::auth::mint(&secret, &user, args.ttl.as_secs()));
    Ok(())
}

fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let config = Config::new(&args.data.data_dir);
    let report = crate::store::backup::run(&config, &args.dest)?;
    println!(
        "backed up {} to {}: database {} bytes, {} files",
        config.data_dir.display(),
        args.dest.display(),
        report.db_bytes,
        report.files
    );
    Ok(())
}

/// Logs to stderr, filtered by RUST_LOG (default `chinwag=info`), as text or JSON lines.
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "chinwag=info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logs(args.log_format);
    tracing::info!("chinwag {}", crate::VERSION);
    crate::health::raise_open_files_limit();
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
    config.sentry_dsn = args.sentry_dsn;
    config.shutdown_grace = args.shutdown_grace;
    config.stall_timeout = args.stall_timeout;
    config.janitor_interval = args.janitor_interval;
    config.cors = args.cors_origins;
    config.dev = args.dev;
    args.limits.apply(&mut config);
    // Before binding, so a bad setting is the only thing printed.
    crate::webhooks::check(&config)?;
    // Held to the end: dropping it sends the reports still queued.
    let _reports = crate::reports::init(&config)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Blocking work is SQLite reads on a pool of 8 connections: more threads only wait.
        .max_blocking_threads(16)
        .build()?;
    rt.block_on(async move {
        // The addresses first: a taken one leaves no data directory behind.
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let metrics = match args.metrics_listen {
            Some(at) => Some(
                tokio::net::TcpListener::bind(at)
                    .await
                    .with_context(|| format!("cannot listen on {at} for metrics"))?,
            ),
            None => None,
        };
        if let Some(cluster) = config
            .cluster
            .clone()
            .filter(|c| c.role == config::Role::Edge)
        {
            let shutdown = shutdown_signal()?;
            println!("chinwag listening on http://{addr}");
            println!(
                "an edge of the cluster at {} (node {}): the primary keeps the data",
                cluster.url, cluster.node
            );
            tracing::info!(%addr, "listening");
            return crate::cluster::edge::serve(listener, metrics, config, shutdown).await;
        }
        // Held until the process exits: a second server on this directory would split the users.
        let _lock = config.lock_data_dir()?;
        // Before the banner: once it says "listening", the database and the kept secrets exist.
        let app = crate::app::App::open(config)?;
        let shutdown = shutdown_signal()?;
        println!("chinwag listening on http://{addr}");
        tracing::info!(%addr, "listening");
        if let Some(m) = &metrics {
            let at = m.local_addr()?;
            println!("metrics on http://{at}/metrics");
            tracing::info!(%at, "metrics without a key on this address");
        }
        let data_dir = app.config.data_dir.display();
        println!("data directory: {data_dir}");
        // The command as this process was started (e.g. target/release/chinwag under cargo).
        let me = std::env::args().next().unwrap_or_else(|| "chinwag".into());
        println!("mint a client token with: {me} token --user 42 --data-dir {data_dir}");
        if app.config.service_key.is_none() {
            println!("the host backend's service key is in {data_dir}/service-key");
        }
        println!("the demo chat app is at http://{addr}/");
        if app.config.dev {
            println!("--dev: anyone may sign in as any user (never use it in production)");
            tracing::warn!("development sign-in is on: anyone may get a token for any user");
        }
        if let Some(cluster) = app.config.cluster.clone() {
            println!("the primary of the cluster at {}", cluster.url);
            tokio::spawn(crate::cluster::primary::run(app.clone(), cluster));
        }
        crate::server::serve(listener, metrics, app, shutdown).await
    })
}

/// Registers for SIGINT and SIGTERM at once (a signal sent right after the banner is not lost)
/// and returns a future that resolves on the first of them. Needs the runtime.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! { _ = interrupt.recv() => {}, _ = terminate.recv() => {} }
            tracing::info!("shutting down");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        })
    }
}
