//! Many pairs at once: senders closed loop or paced over a timed window; what the listeners saw.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};

use crate::client::Api;
use crate::pairs::{now_ns, setup_pairs, Delivery, Pair, DELIVERY_TIMEOUT};
use crate::server::Server;
use crate::stats::CpuMeter;
use crate::{Args, Row};

/// Writer thread CPU per message, at most (µs).
const TARGET_WRITER_US: f64 = 30.0;

/// Pause between the end of setup and the start of a timed window.
const LEAD_IN: Duration = Duration::from_millis(200);
/// Most unanswered POSTs one paced sender keeps open.
const MAX_IN_FLIGHT_PER_SENDER: usize = 64;

/// How senders send.
#[derive(Clone, Copy)]
pub enum Pace {
    /// Each sender posts its next message as soon as the previous one is answered.
    ClosedLoop,
    /// Each sender posts on a fixed schedule, without waiting for answers (open loop).
    Every(Duration),
}

/// The timed window and the counts senders keep.
struct Window {
    start: Instant,
    end: Instant,
    /// `start` and `end` on the [`now_ns`] clock.
    start_ns: u64,
    end_ns: u64,
    /// POSTs answered with 2xx before `end`.
    sent_in_window: AtomicU64,
    /// POSTs answered with 2xx at all.
    sent_total: AtomicU64,
    /// Senders that have finished.
    done: AtomicUsize,
}

impl Window {
    /// A window of `length` that opens after `lead_in`.
    fn new(lead_in: Duration, length: Duration) -> Window {
        let (start, start_ns) = (
            Instant::now() + lead_in,
            now_ns() + lead_in.as_nanos() as u64,
        );
        Window {
            start,
            end: start + length,
            start_ns,
            end_ns: start_ns + length.as_nanos() as u64,
            sent_in_window: AtomicU64::new(0),
            sent_total: AtomicU64::new(0),
            done: AtomicUsize::new(0),
        }
    }

    fn count_sent(&self) {
        self.sent_total.fetch_add(1, Ordering::Relaxed);
        if Instant::now() <= self.end {
            self.sent_in_window.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What one run of many pairs measured.
pub struct LoadResult {
    window: Duration,
    sent_in_window: u64,
    sent_total: u64,
    delivered_in_window: u64,
    delivered_total: u64,
    /// Latencies of messages sent inside the window.
    pub latencies: Vec<u64>,
    cpu: (f64, f64, f64),
}

impl LoadResult {
    /// Messages (sent, delivered) per second of the window.
    pub fn rates(&self) -> (f64, f64) {
        let secs = self.window.as_secs_f64();
        (
            self.sent_in_window as f64 / secs,
            self.delivered_in_window as f64 / secs,
        )
    }

    /// The rows a part ends with: CPU used, then the messages that were answered but never
    /// reached their listener, if any.
    pub fn closing_rows(&self, part: &'static str) -> Vec<Row> {
        let (server, bench, writer) = self.cpu;
        let mut rows = vec![Row::cpu(part, (server, bench))];
        if self.sent_in_window > 0 {
            let per_message = writer * 1e6 / self.sent_in_window as f64;
            rows.push(
                Row::info(
                    part,
                    "writer thread CPU per message",
                    format!("{per_message:.1} µs"),
                )
                .goal(
                    format!("<= {TARGET_WRITER_US} µs"),
                    per_message <= TARGET_WRITER_US,
                ),
            );
        }
        let lost = self.sent_total.saturating_sub(self.delivered_total);
        if lost > 0 {
            rows.push(Row::info(
                part,
                "answered but not delivered",
                format!("{lost} of {}", self.sent_total),
            ));
        }
        rows
    }
}

async fn closed_loop_sender(api: Api, pair: Pair, w: Arc<Window>) -> Result<()> {
    tokio::time::sleep_until(w.start).await;
    let mut n = 0;
    while Instant::now() < w.end {
        pair.send(&api, "tp", n).await?;
        w.count_sent();
        n += 1;
    }
    Ok(())
}

async fn paced_sender(
    api: Api,
    pair: Pair,
    w: Arc<Window>,
    period: Duration,
    phase: Duration,
) -> Result<()> {
    let mut tick = tokio::time::interval_at(w.start + phase, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT_PER_SENDER));
    let mut posts = JoinSet::new();
    let mut n = 0;
    while tick.tick().await < w.end {
        let slot = slots.clone().acquire_owned().await?;
        let (api, pair, w) = (api.clone(), pair.clone(), w.clone());
        posts.spawn(async move {
            let _slot = slot;
            pair.send(&api, "rt", n).await?;
            w.count_sent();
            anyhow::Ok(())
        });
        n += 1;
        while let Some(done) = posts.try_join_next() {
            done??;
        }
    }
    while let Some(done) = posts.join_next().await {
        done??;
    }
    Ok(())
}

/// Tallies deliveries until every answered message has arrived (after the senders are done),
/// or the drain deadline passes.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Delivery>,
    w: &Window,
    senders: usize,
) -> (u64, u64, Vec<u64>) {
    let drain_deadline = w.end + DELIVERY_TIMEOUT;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let (mut in_window, mut total, mut latencies) = (0u64, 0u64, Vec::new());
    loop {
        tokio::select! {
            got = rx.recv() => match got {
                Some(d) => {
                    total += 1;
                    if d.received_ns <= w.end_ns {
                        in_window += 1;
                    }
                    if (w.start_ns..=w.end_ns).contains(&d.sent_ns) {
                        latencies.push(d.latency_ns());
                    }
                }
                None => break,
            },
            _ = tick.tick() => {}
        }
        let senders_done = w.done.load(Ordering::Acquire) == senders;
        if Instant::now() >= drain_deadline
            || (senders_done && total >= w.sent_total.load(Ordering::Acquire))
        {
            break;
        }
    }
    (in_window, total, latencies)
}

/// CPU use over the window, measured by a task that wakes at its start and end.
fn measure_cpu(pid: u32, w: &Window) -> JoinHandle<Result<(f64, f64, f64)>> {
    let (start, end) = (w.start, w.end);
    tokio::spawn(async move {
        tokio::time::sleep_until(start).await;
        let meter = CpuMeter::start(pid)?;
        tokio::time::sleep_until(end).await;
        meter.stop()
    })
}

/// Sets up the pairs, runs the senders over the window and collects what the listeners saw.
pub async fn run_load(args: &Args, tag: &str, pace: Pace) -> Result<LoadResult> {
    let server = Server::start(args.server.as_deref(), args.sync)?;
    let api = Api::new(&server)?;
    run_load_across(args, tag, pace, &server, &api, &api).await
}

/// [`run_load`] against running nodes: streams through `listen`, sends through `send`, tokens
/// from (and CPU measured on) `server`.
pub async fn run_load_across(
    args: &Args,
    tag: &str,
    pace: Pace,
    server: &Server,
    listen: &Api,
    api: &Api,
) -> Result<LoadResult> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listen_until = Instant::now() + Duration::from_secs(120) + args.window() + DELIVERY_TIMEOUT;
    let (pairs, listeners) =
        setup_pairs(server, listen, api, tag, args.pairs, &tx, listen_until).await?;
    drop(tx);
    let w = Arc::new(Window::new(LEAD_IN, args.window()));
    let cpu = measure_cpu(server.pid(), &w);
    let n = pairs.len();
    let mut senders = JoinSet::new();
    for (i, pair) in pairs.into_iter().enumerate() {
        let (api, w) = (api.clone(), w.clone());
        senders.spawn(async move {
            let result = match pace {
                Pace::ClosedLoop => closed_loop_sender(api, pair, w.clone()).await,
                Pace::Every(period) => {
                    // Spread the senders' ticks evenly over one period.
                    let phase = period.mul_f64(i as f64 / n as f64);
                    paced_sender(api, pair, w.clone(), period, phase).await
                }
            };
            w.done.fetch_add(1, Ordering::Release);
            result
        });
    }
    let (delivered_in_window, delivered_total, latencies) = collect(&mut rx, &w, n).await;
    drop(listeners);
    while let Some(done) = senders.join_next().await {
        done??;
    }
    let cpu = cpu.await??;
    Ok(LoadResult {
        window: args.window(),
        sent_in_window: w.sent_in_window.load(Ordering::Acquire),
        sent_total: w.sent_total.load(Ordering::Acquire),
        delivered_in_window,
        delivered_total,
        latencies,
        cpu,
    })
}
