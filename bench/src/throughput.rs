//! The throughput and rate parts: many pairs sending as fast as answered, or paced to a fixed rate.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::load::{run_load, Pace};
use crate::stats::Percentiles;
use crate::{thousands, Args, Row};

/// Target of the throughput part: messages delivered per second.
const TARGET_DELIVERED_PER_S: f64 = 15_000.0;
/// Target of the rate part: p99 send-to-SSE latency, in ms.
const TARGET_P99_MS: f64 = 10.0;

pub async fn throughput_part(args: &Args) -> Result<Vec<Row>> {
    println!(
        "\n[throughput] {} pairs, closed loop, {} s",
        args.pairs, args.seconds
    );
    let r = run_load(args, "tp", Pace::ClosedLoop).await?;
    let (sent, delivered) = r.rates();
    println!(
        "  delivered {}/s, sent {}/s",
        thousands(delivered),
        thousands(sent)
    );
    let mut rows = vec![Row::info(
        "throughput",
        format!("delivered / sent per s ({} pairs)", args.pairs),
        format!("{} / {}", thousands(delivered), thousands(sent)),
    )
    .goal(
        format!(">= {} delivered/s", thousands(TARGET_DELIVERED_PER_S)),
        delivered >= TARGET_DELIVERED_PER_S,
    )];
    if let Some(p) = Percentiles::of(r.latencies.clone()) {
        rows.push(Row::info(
            "throughput",
            "send->SSE p50/p90/p99/max at saturation",
            p.line(),
        ));
    }
    rows.extend(r.closing_rows("throughput"));
    Ok(rows)
}

pub async fn rate_part(args: &Args) -> Result<Vec<Row>> {
    println!(
        "\n[rate] {} msgs/s over {} pairs, {} s",
        thousands(f64::from(args.rate)),
        args.pairs,
        args.seconds
    );
    let period = Duration::from_secs_f64(args.pairs as f64 / f64::from(args.rate));
    let r = run_load(args, "rt", Pace::Every(period)).await?;
    let (sent, delivered) = r.rates();
    let p = Percentiles::of(r.latencies.clone()).context("no message was delivered")?;
    println!("  send->SSE p50/p90/p99/max: {}", p.line());
    println!(
        "  achieved: sent {}/s, delivered {}/s",
        thousands(sent),
        thousands(delivered)
    );
    let target = f64::from(args.rate);
    let mut rows = vec![
        Row::info(
            "rate",
            format!("send->SSE p50/p90/p99/max at {}/s", thousands(target)),
            p.line(),
        )
        .goal(
            format!("p99 < {TARGET_P99_MS} ms"),
            p.p99 < TARGET_P99_MS && sent >= 0.95 * target,
        ),
        Row::info(
            "rate",
            "achieved sent / delivered per s",
            format!("{} / {}", thousands(sent), thousands(delivered)),
        ),
    ];
    rows.extend(r.closing_rows("rate"));
    Ok(rows)
}
