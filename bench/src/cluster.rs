//! The cluster part: a real nats-server, a primary and two edges. A message sent through edge A
//! to a stream on edge B, timed one at a time next to the same on a single server (in the same
//! run), and the messages per second delivered through the two edges with the throughput part's
//! pairs.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::client::Api;
use crate::latency::sequential;
use crate::load::{run_load_across, Pace};
use crate::server::Server;
use crate::{thousands, Args, Row};

/// A `nats-server` on a free loopback port, killed when dropped.
struct Nats {
    child: Child,
    port: u16,
}

impl Nats {
    fn start() -> Result<Nats> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nats-server (the cluster part needs it on PATH)")?;
        let nats = Nats { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("nats-server did not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nats)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until a request through the edge at `api` reaches the primary.
async fn reachable(api: &Api, token: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.chats_status(token).await? != 200 {
        if Instant::now() > deadline {
            bail!("the edge did not reach the primary within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

pub async fn part(args: &Args) -> Result<Vec<Row>> {
    let n = args.messages;
    println!("\n[cluster] {n} messages one at a time on one server, then edge A -> edge B; then {} pairs through the edges", args.pairs);
    let exe = args.server.as_deref();
    let single = {
        let server = Server::start(exe, args.sync)?;
        let api = Api::new(&server)?;
        sequential(&server, &api, &api, "one", n).await?
    };
    println!("  one server send->SSE p50/p90/p99/max: {}", single.line());

    let nats = Nats::start()?;
    let url = nats.url();
    let primary = Server::start_with(exe, args.sync, &["--cluster", &url, "--role", "primary"])?;
    let edge = |name: &str| {
        let flags = ["--cluster", &url, "--role", "edge", "--node", name];
        Server::start_with(exe, args.sync, &flags)
    };
    let (edge_a, edge_b) = (edge("a")?, edge("b")?);
    let (a, b) = (Api::new(&edge_a)?, Api::new(&edge_b)?);
    let probe = primary.token("probe")?;
    reachable(&a, &probe).await?;
    reachable(&b, &probe).await?;
    let across = sequential(&primary, &b, &a, "ab", n).await?;
    println!(
        "  edge A -> edge B send->SSE p50/p90/p99/max: {}",
        across.line()
    );

    let r = run_load_across(args, "cl", Pace::ClosedLoop, &primary, &b, &a).await?;
    let (sent, delivered) = r.rates();
    println!(
        "  through two edges: delivered {}/s, sent {}/s",
        thousands(delivered),
        thousands(sent)
    );
    let mut rows = vec![
        Row::info(
            "cluster",
            format!("one server send->SSE p50/p90/p99/max ({n} msgs)"),
            single.line(),
        ),
        Row::info(
            "cluster",
            format!("edge A -> edge B send->SSE p50/p90/p99/max ({n} msgs)"),
            across.line(),
        ),
        Row::info(
            "cluster",
            format!(
                "through two edges: delivered / sent per s ({} pairs)",
                args.pairs
            ),
            format!("{} / {}", thousands(delivered), thousands(sent)),
        ),
    ];
    rows.extend(r.closing_rows("cluster"));
    Ok(rows)
}
