//! The memory part: the server's resident memory per idle SSE stream.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{Api, SseStream};
use crate::server::Server;
use crate::stats::status_field;
use crate::{thousands, Args, Row};

/// Pause before reading the server's memory, so that work triggered by new streams settles.
const SETTLE: Duration = Duration::from_secs(1);
/// Streams opened at once in the memory part.
const OPEN_CONCURRENCY: usize = 64;
/// Streams opened before the memory baseline, so one-time costs (page cache, threads, allocator
/// arenas) are not charged to the measured streams.
pub const WARM_STREAMS: usize = 50;
/// Target of the memory part: server memory per idle stream, in KiB.
const TARGET_KIB_PER_STREAM: f64 = 16.0;

/// Opens `count` streams of distinct users `TAG-I`, a few at a time; each has had its first
/// bytes when this returns.
async fn open_idle(server: &Server, api: &Api, tag: &str, count: usize) -> Result<Vec<SseStream>> {
    let slots = Arc::new(Semaphore::new(OPEN_CONCURRENCY));
    let mut opening = JoinSet::new();
    for i in 0..count {
        let token = server.token(&format!("{tag}-{i}"))?;
        let (api, slots) = (api.clone(), slots.clone());
        opening.spawn(async move {
            let _slot = slots.acquire_owned().await?;
            api.open_stream(&token).await
        });
    }
    let mut streams = Vec::with_capacity(count);
    while let Some(opened) = opening.join_next().await {
        streams.push(opened??);
    }
    Ok(streams)
}

/// The server's resident memory (KiB) and thread count.
fn server_footprint(server: &Server) -> Result<(u64, u64)> {
    Ok((
        status_field(server.pid(), "VmRSS")?,
        status_field(server.pid(), "Threads")?,
    ))
}

pub async fn part(args: &Args) -> Result<Vec<Row>> {
    let k = args.idle_streams;
    println!("\n[memory] {k} idle SSE streams (after {WARM_STREAMS} warm-up streams)");
    let server = Server::start(args.server.as_deref(), args.sync)?;
    let api = Api::new(&server)?;
    let warm = open_idle(&server, &api, "warm", WARM_STREAMS).await?;
    tokio::time::sleep(SETTLE).await;
    let (rss_before, threads_before) = server_footprint(&server)?;
    let idle = open_idle(&server, &api, "idle", k).await?;
    tokio::time::sleep(SETTLE).await;
    let (rss_after, threads_after) = server_footprint(&server)?;
    drop(idle);
    drop(warm);
    let per_stream = rss_after.saturating_sub(rss_before) as f64 / k as f64;
    println!(
        "  VmRSS {rss_before} -> {rss_after} KiB, threads {threads_before} -> {threads_after}"
    );
    println!("  {per_stream:.1} KiB per idle stream");
    Ok(vec![
        Row::info(
            "memory",
            format!("VmRSS before / after {k} streams"),
            format!(
                "{} / {} KiB",
                thousands(rss_before as f64),
                thousands(rss_after as f64)
            ),
        ),
        Row::info(
            "memory",
            "server threads before / after",
            format!("{threads_before} / {threads_after}"),
        ),
        Row::info(
            "memory",
            "VmRSS per idle stream",
            format!("{per_stream:.1} KiB"),
        )
        .goal(
            format!("<= {TARGET_KIB_PER_STREAM} KiB"),
            per_stream <= TARGET_KIB_PER_STREAM,
        ),
    ])
}
