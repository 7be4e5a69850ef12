//! The command line: `chinwag serve` and `chinwag token`. Every flag also reads its `CHINWAG_*`
//! variable. This is the only module that knows about flags and the environment.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

mod args;
mod parse;

use args::*;

use crate::config::{self, Config};

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
    let (listen, metrics_listen) = (args.listen, args.metrics_listen);
    let config = args.into_config()?;
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
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {}", listen))?;
        let addr = listener.local_addr()?;
        let metrics = match metrics_listen {
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
        if let Some(bridge) = &app.telegram {
            match crate::telegram::check(bridge).await {
                Ok(line) => {
                    println!("{line}");
                    tracing::info!("{line}");
                }
                Err(line) => {
                    println!("{line}");
                    tracing::error!("{line}");
                }
            }
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
