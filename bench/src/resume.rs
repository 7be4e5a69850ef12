//! The resume part: a stream that reconnects 100,000 events behind replays them at what rate.

use anyhow::{bail, Result};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::Api;
use crate::server::Server;
use crate::{thousands, Args, Row};

/// Replay rate to reach, events per second.
const TARGET_PER_S: f64 = 100_000.0;
/// Messages per send request while filling the log.
const BATCH: usize = 100;
/// Send requests in flight while filling the log.
const IN_FLIGHT: usize = 8;

/// How many times `needle` occurs in `hay`.
fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

pub async fn part(args: &Args) -> Result<Vec<Row>> {
    let behind = args.resume_events;
    println!(
        "\n[resume] a stream {} events behind replays them",
        thousands(behind as f64)
    );
    let server = Server::start(args.server.as_deref(), args.sync)?;
    let api = Api::new(&server)?;
    let (alice, bob) = (server.token("r-alice")?, server.token("r-bob")?);
    let chat = api.create_chat(&alice, "r-bob").await?;
    let cursor = api.cursor(&bob).await?;
    let mut tasks = JoinSet::new();
    for start in (0..behind).step_by(BATCH) {
        if tasks.len() >= IN_FLIGHT {
            tasks.join_next().await.expect("a task")??;
        }
        let (api, alice) = (api.clone(), alice.clone());
        let texts: Vec<(String, String)> = (start..(start + BATCH).min(behind))
            .map(|i| (format!("r{i}"), "replayed message".to_string()))
            .collect();
        tasks.spawn(async move { api.send_texts(&alice, chat, &texts).await });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let started = Instant::now();
    let mut stream = api.resume_stream(&bob, cursor).await?;
    let mut seen = 0;
    // A frame split between two chunks is counted once: keep the tail that may hold its start.
    let needle = b"\nevent: message\n";
    let mut carry: Vec<u8> = Vec::new();
    while seen < behind {
        let read = tokio::time::timeout(std::time::Duration::from_secs(30), stream.read()).await;
        if !matches!(read, Ok(Ok(true))) {
            bail!("the stream stopped after {seen} of {behind} events");
        }
        carry.extend_from_slice(&stream.take_all());
        seen += count(&carry, needle);
        let keep = carry.len().min(needle.len() - 1);
        carry.drain(..carry.len() - keep);
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = behind as f64 / secs;
    println!(
        "  replayed {} events in {secs:.2} s: {}/s",
        thousands(behind as f64),
        thousands(rate)
    );
    Ok(vec![Row::info(
        "resume",
        format!("replay of {} events behind", thousands(behind as f64)),
        format!("{}/s ({secs:.2} s)", thousands(rate)),
    )
    .goal(
        format!(">= {}/s", thousands(TARGET_PER_S)),
        rate >= TARGET_PER_S,
    )])
}
