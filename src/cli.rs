//! The command line: `chinwag serve` and `chinwag token`. Every flag also reads its `CHINWAG_*`
//! variable. This is the only module that knows about flags and the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{self, Config};

#[derive(Parser, Debug)]
#[command(
    name = "chinwag",
    version,
    about = "Chat over plain HTTP, Server-Sent Events and long-poll, stored in SQLite."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Print a client token for a user, signed with the server's secret.
    Token(TokenArgs),
}

/// Flags both commands share: where the data lives and the secrets.
#[derive(Args, Debug)]
struct Common {
    /// Data directory: the SQLite database and generated secrets.
    #[arg(long, env = "CHINWAG_DATA_DIR", default_value = config::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// HS256 key of client tokens (generated and kept in the data directory if unset).
    #[arg(long, env = "CHINWAG_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Bearer key of the host backend API (generated and kept in the data directory if unset).
    #[arg(long, env = "CHINWAG_SERVICE_KEY", hide_env_values = true)]
    service_key: Option<String>,
}

#[derive(Args, Debug)]
struct ServeArgs {
    #[command(flatten)]
    common: Common,
    /// Address to listen on (use 0.0.0.0:8080 in a container).
    #[arg(long, env = "CHINWAG_LISTEN", default_value = config::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// SQLite durability: `full` survives a machine crash, `normal` a process crash.
    #[arg(long, env = "CHINWAG_SYNC", value_enum, default_value = "full")]
    sync: SyncArg,
    /// How long stored events stay resumable (e.g. 7d, 12h, 30m).
    #[arg(long, env = "CHINWAG_RETENTION", default_value = "7d", value_parser = parse_duration)]
    retention: Duration,
    /// Largest JSON request body (e.g. 1MiB, 256KiB).
    #[arg(long, env = "CHINWAG_MAX_BODY", default_value = "1MiB", value_parser = config::parse_size)]
    max_body: usize,
    /// Largest file upload (e.g. 25MiB, 100MB).
    #[arg(long, env = "CHINWAG_MAX_UPLOAD", default_value = "25MiB", value_parser = config::parse_size)]
    max_upload: usize,
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
}

#[derive(Args, Debug)]
struct TokenArgs {
    #[command(flatten)]
    common: Common,
    /// The user the token speaks for.
    #[arg(long, env = "CHINWAG_TOKEN_USER")]
    user: String,
    /// Lifetime in seconds.
    #[arg(long, env = "CHINWAG_TOKEN_TTL", default_value_t = 86_400)]
    ttl: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SyncArg {
    Full,
    Normal,
}

fn parse_user(s: &str) -> Result<crate::model::UserId, String> {
    crate::model::UserId::parse(s)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 7d, 12h, 90s)"))
}

impl Common {
    fn config(&self) -> Config {
        let mut c = Config::new(&self.data_dir);
        c.secret = self.secret.clone();
        c.service_key = self.service_key.clone();
        c
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Token(args) => token(args),
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
    let secret = args.common.config().token_secret()?;
    println!("{}", crate::auth::mint(&secret, &user, args.ttl));
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "chinwag=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut config = args.common.config();
    config.sync = match args.sync {
        SyncArg::Full => config::Sync::Full,
        SyncArg::Normal => config::Sync::Normal,
    };
    config.retention = args.retention;
    config.max_body = args.max_body;
    config.max_upload = args.max_upload as u64;
    config.support_user = args.support_user;
    config.webhook_url = args.webhook_url;
    config.webhook_secret = args.webhook_secret;
    config.webhook_backoff = args.webhook_backoff;
    config.webhook_max_attempts = args.webhook_max_attempts;
    // Before binding, so a bad setting is the only thing printed.
    crate::webhooks::check(&config)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Blocking work is SQLite reads on a pool of 8 connections: more threads only wait.
        .max_blocking_threads(16)
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let addr = listener.local_addr()?;
        println!("chinwag listening on http://{addr}");
        println!("data directory: {}", config.data_dir.display());
        println!(
            "mint a client token with: chinwag token --user 42 --data-dir {}",
            config.data_dir.display()
        );
        crate::server::run(listener, config, shutdown_signal()).await
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down");
}
