//! The stall part: streams whose clients stop reading while messages flow to them; the server's
//! memory meanwhile, and how soon after the last message it has closed them all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{message_client_id, Api};
use crate::server::Server;
use crate::stats::status_field;
use crate::{thousands, Args, Row};

/// Members that send, each closed loop: the group's traffic.
const SENDERS: usize = 4;
/// Messages per POST.
const BATCH: usize = 10;
/// Length of each message's text, in bytes.
const TEXT_BYTES: usize = 200;
/// Receive buffer asked for on each stalled client's socket.
const STALLED_RECV_BUFFER: u32 = 4096;
/// How often the server's memory and open streams are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// How far a close measured by samples may be from the stall timeout, in seconds.
const SAMPLING_SLACK: f64 = 0.5;
/// Pause before the memory baseline, so work triggered by the new streams settles.
const SETTLE: Duration = Duration::from_secs(1);
/// Target: growth of the server's resident memory while the messages flow, in MiB.
const TARGET_GROWTH_MIB: f64 = 20.0;
const OPEN_SSE: &str = "chinwag_open_connections{transport=\"sse\"}";

/// A stream that sends its request and then never reads: the server's writes fill the socket.
async fn open_stalled(addr: SocketAddr, token: &str) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(STALLED_RECV_BUFFER)?;
    let mut s = socket.connect(addr).await?;
    let request =
        format!("GET /v1/events?snapshot=0&token={token} HTTP/1.1\r\nHost: chinwag\r\n\r\n");
    s.write_all(request.as_bytes()).await?;
    Ok(s)
}

/// Waits until the server counts `want` open streams, for at most `within`.
async fn streams_reach(api: &Api, key: &str, want: f64, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    while api.metric(key, OPEN_SSE).await? != want {
        if Instant::now() > deadline {
            bail!("the server does not count {want} open streams after {within:?}");
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    Ok(())
}

/// Reads a stalled socket to the server's end (EOF or reset); the bytes it still held, or None
/// if it has not ended within `within`.
async fn drain(mut s: TcpStream, within: Duration) -> Option<usize> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut held = 0;
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => held += n,
                Err(_) => return,
            }
        }
    };
    tokio::time::timeout(within, read_all).await.ok()?;
    Some(held)
}

/// The server's side of one stalled connection, as the kernel reports it.
#[derive(Default)]
struct Side {
    /// Bytes the socket holds that the client has not acknowledged.
    unacked: u64,
    /// When `unacked` last grew: after that the server's writes were refused.
    grew_at: Option<Instant>,
    /// When the server closed the connection (it left ESTABLISHED or vanished).
    closed_at: Option<Instant>,
}

/// The server's TCP connections from `/proc/net/tcp`: by the client's port, whether each is
/// established and what it holds unacknowledged (`tx_queue`).
fn server_sockets(server_port: u16) -> Result<HashMap<u16, (bool, u64)>> {
    let text = std::fs::read_to_string("/proc/net/tcp").context("reading /proc/net/tcp")?;
    let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
    let mut sockets = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(state), Some(queues)) =
            (f.get(1), f.get(2), f.get(3), f.get(4))
        else {
            continue;
        };
        if port(local) != Some(server_port) {
            continue;
        }
        let (Some(client), Some(tx)) = (
            port(remote),
            queues
                .split(':')
                .next()
                .and_then(|t| u64::from_str_radix(t, 16).ok()),
        ) else {
            continue;
        };
        // State 01 is ESTABLISHED.
        sockets.insert(client, (*state == "01", tx));
    }
    Ok(sockets)
}

/// What the sampler saw: the highest VmRSS (KiB) and each stalled connection's server side.
struct Sampled {
    peak_kib: u64,
    sides: HashMap<u16, Side>,
}

/// Samples the server's memory and the server side of each connection from `clients` (their
/// local ports) until all are closed or `deadline` passes.
fn sample(
    server: &Server,
    clients: Vec<u16>,
    deadline: Instant,
) -> Result<tokio::task::JoinHandle<Result<Sampled>>> {
    let pid = server.pid();
    let addr: SocketAddr = server.base().trim_start_matches("http://").parse()?;
    Ok(tokio::spawn(async move {
        let mut s = Sampled {
            peak_kib: 0,
            sides: clients.into_iter().map(|p| (p, Side::default())).collect(),
        };
        while Instant::now() < deadline {
            s.peak_kib = s.peak_kib.max(status_field(pid, "VmRSS")?);
            let now = Instant::now();
            let sockets = server_sockets(addr.port())?;
            for (client, side) in s.sides.iter_mut().filter(|(_, d)| d.closed_at.is_none()) {
                match sockets.get(client) {
                    Some(&(true, unacked)) => {
                        if unacked > side.unacked {
                            side.unacked = unacked;
                            side.grew_at = Some(now);
                        }
                    }
                    _ => side.closed_at = Some(now),
                }
            }
            if s.sides.values().all(|d| d.closed_at.is_some()) {
                break;
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
        Ok(s)
    }))
}

/// Sends `count` messages into `chat` as `token`, `BATCH` at a time, each as soon as the last is
/// answered.
async fn send(api: Api, token: String, chat: i64, sender: usize, count: usize) -> Result<()> {
    let mut n = 0;
    while n < count {
        let texts: Vec<(String, String)> = (n..count.min(n + BATCH))
            .map(|i| {
                let mut text = format!("stall message {sender}-{i} ");
                text.extend(std::iter::repeat_n(
                    'x',
                    TEXT_BYTES.saturating_sub(text.len()),
                ));
                (format!("st-{sender}-{i}"), text)
            })
            .collect();
        api.send_texts(&token, chat, &texts).await?;
        n += texts.len();
    }
    Ok(())
}

/// Seconds from `from` to `to`, negative when `to` came first.
fn secs_between(from: Instant, to: Instant) -> f64 {
    if to >= from {
        (to - from).as_secs_f64()
    } else {
        -(from - to).as_secs_f64()
    }
}

pub async fn part(args: &Args) -> Result<Vec<Row>> {
    let (k, total, timeout) = (
        args.stalled_streams,
        args.stall_messages,
        args.stall_timeout,
    );
    println!(
        "\n[stall] {k} streams that never read, {} messages of {TEXT_BYTES} B from {SENDERS} \
         senders in one group, --stall-timeout {timeout}s",
        thousands(total as f64)
    );
    let stall_flag = format!("{timeout}s");
    let server = Server::start_with(
        args.server.as_deref(),
        args.sync,
        &["--stall-timeout", &stall_flag],
    )?;
    let timeout = Duration::from_secs(timeout);
    let api = Api::new(&server)?;
    let key = server.service_key()?;
    let addr: SocketAddr = server.base().trim_start_matches("http://").parse()?;

    // One member reads: it shows that the others' stalls cost nobody else their messages.
    let mut reader = api.open_stream(&server.token("st-reader")?).await?;
    let mut stalled = Vec::with_capacity(k);
    for i in 0..k {
        stalled.push(open_stalled(addr, &server.token(&format!("st-z{i}"))?).await?);
    }
    let ports = stalled
        .iter()
        .map(|s| Ok(s.local_addr()?.port()))
        .collect::<Result<Vec<u16>>>()?;
    streams_reach(&api, &key, (k + 1) as f64, Duration::from_secs(30)).await?;
    let senders: Vec<String> = (0..SENDERS).map(|i| format!("st-s{i}")).collect();
    let mut others: Vec<String> = senders[1..].to_vec();
    others.extend((0..k).map(|i| format!("st-z{i}")));
    others.push("st-reader".into());
    let chat = api
        .create_group(&server.token(&senders[0])?, &others, "stall")
        .await?;
    tokio::time::sleep(SETTLE).await;
    let rss_before = status_field(server.pid(), "VmRSS")?;

    // The reader's stream stays open until the part ends: it hands the stream back.
    let reading = tokio::spawn(async move {
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(300);
        while got < total {
            match tokio::time::timeout_at(deadline, reader.read()).await {
                Ok(Ok(true)) => {}
                _ => break,
            }
            while let Some(frame) = reader.next_frame() {
                got += usize::from(message_client_id(&frame).is_some());
            }
        }
        (got, reader)
    });
    let started = Instant::now();
    let sampler = sample(&server, ports, started + Duration::from_secs(600))?;
    let mut sending = JoinSet::new();
    for (i, sender) in senders.iter().enumerate() {
        let count = total / SENDERS + usize::from(i < total % SENDERS);
        let token = server.token(sender)?;
        sending.spawn(send(api.clone(), token, chat, i, count));
    }
    while let Some(done) = sending.join_next().await {
        done??;
    }
    let last_sent = Instant::now();
    let rss_flowed = status_field(server.pid(), "VmRSS")?;
    let sampled = sampler.await??;
    let (received, _reader) = reading.await?;
    // The server's own count agrees once every stalled stream is gone: only the reader's is left.
    streams_reach(&api, &key, 1.0, Duration::from_secs(10)).await?;
    let closed: Vec<Instant> = sampled.sides.values().filter_map(|d| d.closed_at).collect();
    if closed.len() < k {
        bail!(
            "{} of {k} stalled streams were still open after 600 s",
            k - closed.len()
        );
    }
    let stalled_for: Vec<f64> = sampled
        .sides
        .values()
        .filter_map(|d| Some((d.closed_at? - d.grew_at?).as_secs_f64()))
        .collect();
    // Every stalled socket ends once what the kernel held for it is read.
    let mut draining = JoinSet::new();
    for s in stalled {
        draining.spawn(drain(s, Duration::from_secs(30)));
    }
    let (mut ended, mut held) = (0, 0);
    while let Some(d) = draining.join_next().await {
        if let Some(bytes) = d? {
            ended += 1;
            held += bytes;
        }
    }

    let send_secs = (last_sent - started).as_secs_f64();
    let rate = total as f64 / send_secs.max(1e-9);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let growth = mib(rss_flowed.saturating_sub(rss_before));
    let peak_growth = mib(sampled.peak_kib.max(rss_flowed).saturating_sub(rss_before));
    let after_last = |t: Option<&Instant>| t.map_or(f64::NAN, |t| secs_between(last_sent, *t));
    let first = after_last(closed.iter().min());
    let last = after_last(closed.iter().max());
    let min_of = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let max_of = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (stall_min, stall_max) = (min_of(&stalled_for), max_of(&stalled_for));
    let held_kib = held as f64 / 1024.0 / ended.max(1) as f64;
    let t = timeout.as_secs_f64();
    println!(
        "  sent in {send_secs:.1} s ({}/s); the reading member got {}",
        thousands(rate),
        thousands(received as f64)
    );
    println!(
        "  VmRSS {rss_before} KiB -> {rss_flowed} KiB after the messages, peak {} KiB: +{growth:.1} \
         MiB, peak +{peak_growth:.1} MiB",
        sampled.peak_kib
    );
    println!(
        "  stalled streams closed {first:+.1} s to {last:+.1} s after the last message, each \
         {stall_min:.2} to {stall_max:.2} s after its socket last took data (timeout {t}s)"
    );
    println!("  {ended}/{k} sockets then read to EOF, {held_kib:.0} KiB held in each on average");
    Ok(vec![
        Row::info(
            "stall",
            format!("sent msgs/s; reader got (of {})", thousands(total as f64)),
            format!("{} ; {}", thousands(rate), thousands(received as f64)),
        ),
        Row::info(
            "stall",
            format!("VmRSS growth after / peak, {k} stalled"),
            format!("{growth:.1} / {peak_growth:.1} MiB"),
        )
        .goal(
            format!("<= {TARGET_GROWTH_MIB} MiB"),
            peak_growth <= TARGET_GROWTH_MIB,
        ),
        Row::info(
            "stall",
            "all stalled closed, after the last msg",
            format!("{last:+.1} s ({ended}/{k} at EOF)"),
        )
        .goal(
            format!("<= {t}s"),
            last <= t && ended == k && received == total,
        ),
        Row::info(
            "stall",
            "each closed after its socket took no data",
            format!("{stall_min:.2} to {stall_max:.2} s"),
        )
        // Each end is seen by a sample, so each figure is off by up to a sampling period or two.
        .goal(
            format!("{t}s +- {SAMPLING_SLACK}s"),
            stall_min >= t - SAMPLING_SLACK && stall_max <= t + SAMPLING_SLACK,
        ),
    ])
}
