//! The groups part: sends per second and database growth per message in a direct chat, a group
//! of 50 and a group of 500, each with the same concurrent senders in one run, on one server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Result;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::Api;
use crate::server::Server;
use crate::stats::{thread_cpu_seconds, WRITER};
use crate::{thousands, Args, Row};

/// Concurrent senders into each chat.
const SENDERS: usize = 16;
/// Group sizes measured against a direct chat.
const SIZES: [usize; 2] = [50, 500];

/// What one chat's window measured.
struct Measured {
    per_s: f64,
    bytes_per_message: f64,
    writer_us: f64,
}

/// Runs `SENDERS` closed-loop senders into their chats for the window.
async fn measure(
    server: &Server,
    api: &Api,
    senders: Vec<(String, i64)>,
    args: &Args,
) -> Result<Measured> {
    let before = server.db_bytes()?;
    let writer_before = thread_cpu_seconds(server.pid(), WRITER)?;
    let sent = Arc::new(AtomicUsize::new(0));
    let end = Instant::now() + args.window();
    let mut tasks = JoinSet::new();
    for (i, (token, chat)) in senders.into_iter().enumerate() {
        let (api, sent) = (api.clone(), sent.clone());
        tasks.spawn(async move {
            let mut n = 0;
            while Instant::now() < end {
                api.send(&token, chat, &format!("g{chat}-{i}-{n}")).await?;
                sent.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let n = sent.load(Ordering::Relaxed).max(1) as f64;
    Ok(Measured {
        per_s: n / args.window().as_secs_f64(),
        bytes_per_message: (server.db_bytes()? as f64 - before as f64) / n,
        writer_us: (thread_cpu_seconds(server.pid(), WRITER)? - writer_before) * 1e6 / n,
    })
}

pub async fn part(args: &Args) -> Result<Vec<Row>> {
    println!(
        "\n[groups] {SENDERS} senders, closed loop, {} s per chat: direct, then groups of {SIZES:?}",
        args.seconds
    );
    let server = Server::start(args.server.as_deref(), args.sync)?;
    let api = Api::new(&server)?;
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        let token = server.token(&format!("d-s{i}"))?;
        let chat = api.create_chat(&token, &format!("d-l{i}")).await?;
        senders.push((token, chat));
    }
    let direct = measure(&server, &api, senders, args).await?;
    let mut rows = vec![Row::info(
        "groups",
        "direct: sends/s, bytes/message, writer µs/message",
        format!(
            "{} / {:.0} B / {:.1} µs",
            thousands(direct.per_s),
            direct.bytes_per_message,
            direct.writer_us
        ),
    )];
    for size in SIZES {
        let admin = server.token(&format!("g{size}-s0"))?;
        let others: Vec<String> = (1..size).map(|i| format!("g{size}-m{i}")).collect();
        let chat = api.create_group(&admin, &others, "bench").await?;
        // The senders are members; the rest are offline.
        let mut senders = vec![(admin.clone(), chat)];
        for m in others.iter().take(SENDERS - 1) {
            senders.push((server.token(m)?, chat));
        }
        let g = measure(&server, &api, senders, args).await?;
        let speed = g.per_s / direct.per_s;
        let growth = g.bytes_per_message / direct.bytes_per_message.max(1.0);
        println!(
            "  group of {size}: {}/s ({:.0} % of direct), {:.0} B/message ({growth:.2}x direct)",
            thousands(g.per_s),
            speed * 100.0,
            g.bytes_per_message
        );
        rows.push(Row::info(
            "groups",
            format!("group of {size}: sends/s, bytes/message, writer µs/message"),
            format!(
                "{} / {:.0} B / {:.1} µs",
                thousands(g.per_s),
                g.bytes_per_message,
                g.writer_us
            ),
        ));
        if size == 500 {
            rows.push(
                Row::info(
                    "groups",
                    "500-group sends/s vs direct",
                    format!("{:.0} %", speed * 100.0),
                )
                .goal(">= 50 %", speed >= 0.5),
            );
            rows.push(
                Row::info(
                    "groups",
                    "500-group growth/message vs direct",
                    format!("{growth:.2}x"),
                )
                .goal("<= 2x", growth <= 2.0),
            );
        }
    }
    println!(
        "  direct: {}/s, {:.0} B/message, writer {:.1} µs/message",
        thousands(direct.per_s),
        direct.bytes_per_message,
        direct.writer_us
    );
    Ok(rows)
}
