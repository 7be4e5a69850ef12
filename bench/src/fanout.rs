//! The fanout part: a group of 10,000 members with every member's stream open. How many pushes
//! one member's connect costs the others, and how long one message takes to reach every stream.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Api, SseStream};
use crate::server::Server;
use crate::stats::Percentiles;
use crate::{thousands, Args, Row};

/// The last stream must have the message within this long.
const TARGET_LAST_MS: f64 = 250.0;
/// Streams opened at a time.
const OPENING: usize = 64;
/// Ids per createChat / addMembers call.
const PER_CALL: usize = 500;

/// The marker in the probe message's client id.
const PROBE: &[u8] = b"fanout-probe";

/// Reads a member's stream: counts presence pushes, reports when the probe arrives.
fn listen(
    mut stream: SseStream,
    presence: Arc<AtomicUsize>,
    got: mpsc::UnboundedSender<Instant>,
    until: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(Ok(true)) = tokio::time::timeout_at(until, stream.read()).await {
            let chunk = stream.take_all();
            let has = |needle: &[u8]| chunk.windows(needle.len()).any(|w| w == needle);
            if has(b"event: opponentStatus") || has(b"event: clientConnectionError") {
                presence.fetch_add(1, Ordering::Relaxed);
            }
            if has(PROBE) {
                let _ = got.send(Instant::now());
            }
        }
    })
}

pub async fn part(args: &Args) -> Result<Vec<Row>> {
    let n = args.group_members;
    println!(
        "\n[fanout] a group of {} members, every member's stream open",
        thousands(n as f64)
    );
    let server = Server::start(args.server.as_deref(), args.sync)?;
    let api = Api::new(&server)?;
    let members: Vec<String> = (0..n).map(|i| format!("f-m{i}")).collect();
    let admin = server.token(&members[0])?;
    let first = (PER_CALL - 1).min(n - 1);
    let chat = api
        .create_group(&admin, &members[1..=first], "bench")
        .await?;
    for batch in members[first + 1..].chunks(PER_CALL) {
        api.add_members(&admin, chat, batch).await?;
    }
    let (tx, mut got) = mpsc::unbounded_channel();
    let presence = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(600);
    let mut listeners = Vec::with_capacity(n);
    let opened_at = Instant::now();
    // Every member but the last, whose connect is measured below.
    let mut opening = JoinSet::new();
    for m in &members[..n - 1] {
        if opening.len() >= OPENING {
            let stream = opening.join_next().await.expect("a task")??;
            listeners.push(listen(stream, presence.clone(), tx.clone(), until));
        }
        let (api, token) = (api.clone(), server.token(m)?);
        opening.spawn(async move { api.open_stream(&token).await });
    }
    while let Some(stream) = opening.join_next().await {
        listeners.push(listen(stream??, presence.clone(), tx.clone(), until));
    }
    let open_secs = opened_at.elapsed().as_secs_f64();
    println!(
        "  opened {} streams in {open_secs:.1} s",
        thousands(listeners.len() as f64)
    );
    // Presence of the members who connected settles, then one more connects.
    tokio::time::sleep(Duration::from_secs(2)).await;
    presence.store(0, Ordering::Relaxed);
    let last = api.open_stream(&server.token(&members[n - 1])?).await?;
    listeners.push(listen(last, presence.clone(), tx.clone(), until));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connect_pushes = presence.load(Ordering::Relaxed);
    drop(tx);

    let sent = Instant::now();
    let probe = format!("{}-1", String::from_utf8_lossy(PROBE));
    api.send(&admin, chat, &probe).await?;
    let mut latencies = Vec::with_capacity(n);
    while latencies.len() < n {
        match tokio::time::timeout(Duration::from_secs(30), got.recv()).await {
            Ok(Some(at)) => latencies.push(at.duration_since(sent).as_nanos() as u64),
            _ => bail!("only {} of {n} streams got the message", latencies.len()),
        }
    }
    for l in &listeners {
        l.abort();
    }
    let last_ms = *latencies.iter().max().unwrap_or(&0) as f64 / 1e6;
    let p = Percentiles::of(latencies).expect("latencies");
    println!(
        "  one message to {} streams: {} (ms); {connect_pushes} pushes for one connect",
        thousands(n as f64),
        p.line()
    );
    Ok(vec![
        Row::info(
            "fanout",
            format!(
                "one message to {} streams p50/p90/p99/last",
                thousands(n as f64)
            ),
            p.line(),
        )
        .goal(
            format!("last <= {TARGET_LAST_MS} ms"),
            last_ms <= TARGET_LAST_MS,
        ),
        Row::info(
            "fanout",
            "presence pushes caused by one member's connect",
            connect_pushes.to_string(),
        )
        .goal(
            "bounded (0 in a group above the presence limit)",
            connect_pushes == 0,
        ),
        Row::info(
            "fanout",
            "time to open the streams",
            format!("{open_secs:.1} s"),
        ),
    ])
}
