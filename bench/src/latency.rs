//! The latency part: one pair, messages sent one at a time, each timed from send to SSE frame.

use anyhow::{bail, Context, Result};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::Api;
use crate::pairs::{setup_pairs, Delivery, DELIVERY_TIMEOUT};
use crate::server::Server;
use crate::stats::{CpuMeter, Percentiles};
use crate::{Args, Row};

/// Target of sequential send->SSE p50, in ms.
const TARGET_P50_MS: f64 = 0.35;

/// Waits for the delivery of `client_id`, skipping any other.
async fn wait_for(rx: &mut mpsc::UnboundedReceiver<Delivery>, client_id: &str) -> Result<Delivery> {
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(d)) if d.client_id == client_id => return Ok(d),
            Ok(Some(_)) => continue,
            Ok(None) => bail!("the listener's stream ended"),
            Err(_) => bail!("{client_id} did not arrive within {DELIVERY_TIMEOUT:?}"),
        }
    }
}

pub async fn part(args: &Args) -> Result<Vec<Row>> {
    println!("\n[latency] {} messages, one at a time", args.messages);
    let server = Server::start(args.server.as_deref(), args.sync)?;
    let api = Api::new(&server)?;
    let cpu = CpuMeter::start(server.pid())?;
    let p = sequential(&server, &api, &api, "lat", args.messages).await?;
    let (server_cpu, bench_cpu, _) = cpu.stop()?;
    println!("  send->SSE p50/p90/p99/max: {}", p.line());
    Ok(vec![
        Row::info(
            "latency",
            format!("send->SSE p50/p90/p99/max ({} msgs)", args.messages),
            p.line(),
        )
        .goal(format!("p50 <= {TARGET_P50_MS} ms"), p.p50 <= TARGET_P50_MS),
        Row::cpu("latency", (server_cpu, bench_cpu)),
    ])
}

/// `n` messages sent one at a time through `send` to a listener whose stream is open through
/// `listen`, each timed from just before its POST until its frame arrives.
pub async fn sequential(
    server: &Server,
    listen: &Api,
    send: &Api,
    tag: &str,
    n: usize,
) -> Result<Percentiles> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let deadline = Instant::now() + DELIVERY_TIMEOUT * (n as u32 + 10);
    let (pairs, _listeners) = setup_pairs(server, listen, send, tag, 1, &tx, deadline).await?;
    let pair = &pairs[0];
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let id = pair.send(send, tag, i).await?;
        latencies.push(wait_for(&mut rx, &id).await?.latency_ns());
    }
    Percentiles::of(latencies).context("no messages")
}
