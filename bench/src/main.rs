//! chinwag-bench: load tests a real `chinwag serve` on 127.0.0.1 (latency, throughput, memory,
//! stalled clients).
//!
//! The parts, each against a fresh server with a fresh temporary data directory:
//!
//! - `latency`: one sender, one SSE listener; messages sent one at a time, each timed from just
//!   before its POST until its frame arrives on the listener's stream.
//! - `throughput`: sender/listener pairs; every sender posts as fast as its answers come back;
//!   messages delivered to the listeners' streams per second.
//! - `rate`: the same pairs paced (open loop) to a fixed total rate; latency at that rate.
//! - `memory`: the server's resident memory before and after opening many idle SSE streams.
//! - `groups`: sends per second and database growth per message in a direct chat and in groups
//!   of 50 and 500, with the same concurrent senders.
//! - `fanout`: a group of 10,000 with every member's stream open: one message to every stream,
//!   and the pushes one member's connect causes.
//! - `resume`: a stream 100,000 events behind reconnects and replays them.
//! - `stall`: streams whose clients never read while messages flow to them: the server's memory
//!   meanwhile, and how soon after the last message the stall timeout has closed them all.
//! - `attacks`: one user's unread streams and polls from event 0, image bombs and a group grown
//!   to 10,000: the server's peak memory, and another user's send times meanwhile.
//! - `floods`: with every limit at its default and 1,024 open files, from a second loopback
//!   address: 1,100 slow bodies, 500 streams of one user and 5,000 requests of one token; what
//!   the server held, and another user's send times meanwhile.
//! - `cluster`: a nats-server, a primary and two edges: send through edge A to a stream on edge
//!   B one at a time (next to the same on a single server), and the pairs' delivered messages
//!   per second through the two edges. Needs `nats-server` on PATH; not part of a full run.
//!
//! Every message's client id carries the time it was sent, so a listener computes latency
//! without shared state. Every loop ends on a count or a deadline, and the server is killed
//! and its data directory removed when a part ends, also on error.
//!
//! This file holds the flags, the order of the parts and the summary table.

mod attacks;
mod client;
mod cluster;
mod fanout;
mod floods;
mod groups;
mod latency;
mod load;
mod memory;
mod pairs;
mod resume;
mod server;
mod stall;
mod stats;
mod throughput;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "chinwag-bench",
    about = "Load test of a real chinwag server on 127.0.0.1 (Linux: reads /proc)."
)]
struct Args {
    /// Messages sent one at a time in the latency part.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// Sender/listener pairs in the throughput and rate parts.
    #[arg(long, default_value_t = 50)]
    pairs: usize,
    /// Length of the throughput and rate windows, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Target total send rate of the rate part, in messages per second.
    #[arg(long, default_value_t = 5000)]
    rate: u32,
    /// Idle SSE streams opened in the memory part.
    #[arg(long, default_value_t = 2000)]
    idle_streams: usize,
    /// Members of the fanout part's group.
    #[arg(long, default_value_t = 10_000)]
    group_members: usize,
    /// Events the resume part's stream is behind.
    #[arg(long, default_value_t = 100_000)]
    resume_events: usize,
    /// Streams that never read in the stall part.
    #[arg(long, default_value_t = 100)]
    stalled_streams: usize,
    /// Messages sent to the stalled streams' group in the stall part.
    #[arg(long, default_value_t = 20_000)]
    stall_messages: usize,
    /// The server's --stall-timeout in the stall part, in seconds.
    #[arg(long, default_value_t = 5)]
    stall_timeout: u64,
    /// The server's SQLite durability.
    #[arg(long, value_enum, default_value = "full")]
    sync: SyncMode,
    /// Run only this part.
    #[arg(long, value_enum)]
    only: Option<Part>,
    /// The chinwag binary to load (default: the one next to this tool), e.g. an older build to
    /// compare with in the same run.
    #[arg(long)]
    server: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SyncMode {
    Full,
    Normal,
}

impl SyncMode {
    fn flag(self) -> &'static str {
        match self {
            SyncMode::Full => "full",
            SyncMode::Normal => "normal",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    Latency,
    Throughput,
    Rate,
    Memory,
    Groups,
    Fanout,
    Resume,
    Stall,
    Attacks,
    Floods,
    Cluster,
}

impl Args {
    fn check(&self) -> Result<()> {
        if self.messages == 0 || self.pairs == 0 || self.seconds == 0 || self.rate == 0 {
            bail!("--messages, --pairs, --seconds and --rate must be at least 1");
        }
        if self.idle_streams == 0 {
            bail!("--idle-streams must be at least 1");
        }
        if self.group_members < 2 || self.resume_events == 0 {
            bail!("--group-members must be at least 2 and --resume-events at least 1");
        }
        if self.stalled_streams == 0 || self.stall_messages == 0 || self.stall_timeout == 0 {
            bail!("--stalled-streams, --stall-messages and --stall-timeout must be at least 1");
        }
        Ok(())
    }

    fn runs(&self, part: Part) -> bool {
        match self.only {
            None => part != Part::Cluster,
            Some(p) => p == part,
        }
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    chinwag::install_tls_provider();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chinwag-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run(args: Args) -> Result<()> {
    args.check()?;
    // Ending early drops the running part, and with it its server and data directory.
    tokio::select! {
        result = run_parts(&args) => result,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
    }
}

async fn run_parts(args: &Args) -> Result<()> {
    let streams = args.idle_streams.max(args.group_members) + memory::WARM_STREAMS;
    server::raise_fd_limit(streams + 4 * args.pairs + args.stalled_streams + 512)?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "chinwag-bench: sync={}, {cpus} CPUs shared by server and bench, data under {}",
        args.sync.flag(),
        std::env::temp_dir().display()
    );
    let mut rows = Vec::new();
    if args.runs(Part::Latency) {
        rows.extend(latency::part(args).await.context("latency part")?);
    }
    if args.runs(Part::Throughput) {
        rows.extend(
            throughput::throughput_part(args)
                .await
                .context("throughput part")?,
        );
    }
    if args.runs(Part::Rate) {
        rows.extend(throughput::rate_part(args).await.context("rate part")?);
    }
    if args.runs(Part::Memory) {
        rows.extend(memory::part(args).await.context("memory part")?);
    }
    if args.runs(Part::Groups) {
        rows.extend(groups::part(args).await.context("groups part")?);
    }
    if args.runs(Part::Fanout) {
        rows.extend(fanout::part(args).await.context("fanout part")?);
    }
    if args.runs(Part::Resume) {
        rows.extend(resume::part(args).await.context("resume part")?);
    }
    if args.runs(Part::Stall) {
        rows.extend(stall::part(args).await.context("stall part")?);
    }
    if args.runs(Part::Attacks) {
        rows.extend(attacks::part(args).await.context("attacks part")?);
    }
    if args.runs(Part::Floods) {
        rows.extend(floods::part(args).await.context("floods part")?);
    }
    if args.runs(Part::Cluster) {
        rows.extend(cluster::part(args).await.context("cluster part")?);
    }
    print_table(&rows);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

/// One line of the summary table.
struct Row {
    part: &'static str,
    measure: String,
    result: String,
    /// The target and whether it was met.
    target: Option<(String, bool)>,
}

impl Row {
    fn info(part: &'static str, measure: impl Into<String>, result: impl Into<String>) -> Row {
        Row {
            part,
            measure: measure.into(),
            result: result.into(),
            target: None,
        }
    }

    fn goal(mut self, target: impl Into<String>, met: bool) -> Row {
        self.target = Some((target.into(), met));
        self
    }

    /// The CPU the server and the bench used during a part, in cores.
    fn cpu(part: &'static str, (server, bench): (f64, f64)) -> Row {
        Row::info(
            part,
            "CPU used: server / bench",
            format!("{server:.2} / {bench:.2} cores"),
        )
    }
}

fn print_table(rows: &[Row]) {
    let w_measure = rows.iter().map(|r| r.measure.len()).max().unwrap_or(0);
    let w_result = rows.iter().map(|r| r.result.len()).max().unwrap_or(0);
    println!();
    println!(
        "{:<10}  {:<w_measure$}  {:<w_result$}  target",
        "part", "measure", "result"
    );
    println!("{}", "-".repeat(10 + w_measure + w_result + 30));
    for r in rows {
        let target = match &r.target {
            Some((t, true)) => format!("{t}  met"),
            Some((t, false)) => format!("{t}  MISSED"),
            None => String::new(),
        };
        let line = format!(
            "{:<10}  {:<w_measure$}  {:<w_result$}  {target}",
            r.part, r.measure, r.result
        );
        println!("{}", line.trim_end());
    }
}

/// A whole number with thousands separators.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
