//! The attacks part: what one user with a valid token can make the server hold or make others
//! wait for. Streams that resume from event 0 and read nothing, polls from 0 that read nothing,
//! image bombs, and a group grown to its largest size, each while another user's sends are timed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::Api;
use crate::server::Server;
use crate::stats::{status_field, Percentiles};
use crate::{Args, Row};

/// Stored messages the resuming attackers ask for from event 0, and the size of each.
const STORED_MESSAGES: usize = 1_200;
const STORED_TEXT_BYTES: usize = 64_000;
/// Messages per POST while storing them (a body stays under the 1 MiB limit).
const STORE_BATCH: usize = 15;
/// Streams resuming from 0 and polls from 0 that never read.
const RESUMERS: usize = 10;
const POLLERS: usize = 4;
/// Concurrent uploads of an image that claims side x side pixels in a few hundred bytes: one
/// past the decode budget alone, one within it that is decoded.
const BOMBS: usize = 12;
const BOMB_SIDES: [u16; 2] = [16_000, 6_000];
/// Calls of 500 ids that grow a group of 500 (its creator and 499) to 10,000.
const ADD_CALLS: usize = 19;
const ADD_IDS: usize = 500;
/// How long the unread streams and polls are held, and how often memory is sampled.
const HOLD: Duration = Duration::from_secs(4);
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// Shortest time the other user's sends are timed for, however quick the attack.
const MIN_PROBE: Duration = Duration::from_secs(1);
/// Gap between the timed user's sends.
const PROBE_EVERY: Duration = Duration::from_millis(25);
/// What one stream or poll may hold (a page in its feed and one chunk in its connection's buffer)
/// and the page caches of the database connections (8 readers of 1 MiB, the writer's 2 MiB),
/// in KiB: the documented bound of the unread resumes.
pub const PER_CONNECTION_KIB: f64 = 128.0;
pub const CACHES_KIB: f64 = 10.0 * 1024.0;
/// The server's default --thumbnail-memory, in MiB: the bound of the bombs.
const THUMBNAIL_BUDGET_MIB: f64 = 256.0;
/// Target: another user's send is answered within this while an attack runs.
const TARGET_PROBE_MS: f64 = 100.0;

/// A connection that sends one request and never reads the answer.
async fn unread(addr: SocketAddr, request: String) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let mut s = socket.connect(addr).await?;
    s.write_all(request.as_bytes()).await?;
    Ok(s)
}

/// A JPEG of a few hundred bytes whose header claims `side` x `side` pixels.
fn image_bomb(side: u16) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageLuma8(image::GrayImage::new(8, 8))
        .write_to(&mut out, image::ImageFormat::Jpeg)?;
    let mut jpeg = out.into_inner();
    // SOF0: FF C0, length (2), precision (1), height (2), width (2).
    let Some(sof) = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]) else {
        bail!("the encoder wrote no baseline frame header");
    };
    let side = side.to_be_bytes();
    jpeg[sof + 5..sof + 7].copy_from_slice(&side);
    jpeg[sof + 7..sof + 9].copy_from_slice(&side);
    Ok(jpeg)
}

/// The other user whose sends are timed while an attack runs: one to `chat` every `every`.
#[derive(Clone, Copy)]
pub struct Victim<'a> {
    pub api: &'a Api,
    pub token: &'a str,
    pub chat: i64,
    pub every: Duration,
}

/// The victim's sends, each timed until its answer, until stopped.
struct Probe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<Vec<u64>>>,
}

impl Probe {
    fn start(victim: Victim) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let (api, flag) = (victim.api.clone(), stop.clone());
        let (token, chat, every) = (victim.token.to_string(), victim.chat, victim.every);
        let task = tokio::spawn(async move {
            let mut took = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(600);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                let at = Instant::now();
                api.send(&token, chat, &format!("probe-{}", took.len()))
                    .await?;
                took.push(at.elapsed().as_nanos() as u64);
                tokio::time::sleep(every).await;
            }
            Ok(took)
        });
        Probe { stop, task }
    }

    async fn finish(self) -> Result<Percentiles> {
        self.stop.store(true, Ordering::Relaxed);
        let took = self.task.await??;
        Percentiles::of(took).ok_or_else(|| anyhow::anyhow!("the probe sent nothing"))
    }
}

/// The server's resident memory, sampled until stopped: its peak in KiB.
fn sample_peak(pid: u32) -> (Arc<AtomicBool>, tokio::task::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let (mut peak, deadline) = (0, Instant::now() + Duration::from_secs(600));
        while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
            peak = peak.max(status_field(pid, "VmRSS").unwrap_or(0));
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
        peak
    });
    (stop, task)
}

/// One attack's outcome: its peak memory over the baseline, and the other user's sends meanwhile.
pub struct Outcome {
    pub peak_growth_mib: f64,
    pub probe: Percentiles,
}

/// Runs `attack` while memory is sampled and the other user's sends are timed.
pub async fn during<F, T>(server: &Server, victim: Victim<'_>, attack: F) -> Result<(Outcome, T)>
where
    F: std::future::Future<Output = Result<T>>,
{
    let base = status_field(server.pid(), "VmRSS")?;
    let (stop, peak) = sample_peak(server.pid());
    let timed = Probe::start(victim);
    // However quick the attack, the other user's sends are timed for a second at least.
    let (result, ()) = tokio::join!(attack, tokio::time::sleep(MIN_PROBE));
    let probe = timed.finish().await?;
    stop.store(true, Ordering::Relaxed);
    let peak = peak.await?.max(status_field(server.pid(), "VmRSS")?);
    let outcome = Outcome {
        peak_growth_mib: peak.saturating_sub(base) as f64 / 1024.0,
        probe,
    };
    Ok((outcome, result?))
}

/// The rows of one attack: peak memory growth within `bound_mib`, and the other user's answer
/// times.
pub fn rows(part: &'static str, name: &str, o: &Outcome, bound_mib: f64) -> Vec<Row> {
    let worst = o.probe.max;
    vec![
        Row::info(
            part,
            format!("{name}: peak VmRSS growth"),
            format!("+{:.1} MiB", o.peak_growth_mib),
        )
        .goal(
            format!("<= {bound_mib:.0} MiB"),
            o.peak_growth_mib <= bound_mib,
        ),
        Row::info(
            part,
            format!("{name}: another user's send p50 / max"),
            format!("{:.2} / {worst:.1} ms", o.probe.p50),
        )
        .goal(
            format!("max <= {TARGET_PROBE_MS} ms"),
            worst <= TARGET_PROBE_MS,
        ),
    ]
}

pub async fn part(args: &Args) -> Result<Vec<Row>> {
    println!(
        "\n[attacks] one user's {RESUMERS} streams and {POLLERS} polls from event 0 over {} MB, \
         {BOMBS} image bombs, a group grown to {}; another user's sends timed meanwhile",
        STORED_MESSAGES * STORED_TEXT_BYTES / 1_000_000,
        (ADD_CALLS + 1) * ADD_IDS
    );
    let server = Server::start_with(args.server.as_deref(), args.sync, &[])?;
    let api = Api::new(&server)?;
    let addr: SocketAddr = server.base().trim_start_matches("http://").parse()?;
    let attacker = server.token("atk")?;
    let victim = server.token("victim")?;
    let probe_chat = api.create_chat(&victim, "victim-peer").await?;
    let stored_chat = api.create_chat(&attacker, "atk-peer").await?;
    let text = "m".repeat(STORED_TEXT_BYTES);
    for batch in 0..STORED_MESSAGES / STORE_BATCH {
        let texts: Vec<(String, String)> = (0..STORE_BATCH)
            .map(|i| (format!("s{batch}-{i}"), text.clone()))
            .collect();
        api.send_texts(&attacker, stored_chat, &texts).await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let probe = Victim {
        api: &api,
        token: &victim,
        chat: probe_chat,
        every: PROBE_EVERY,
    };
    let mut out = Vec::new();

    // Streams and polls from 0 that read nothing, held open together.
    let (held, _sockets) = during(&server, probe, async {
        let mut sockets = Vec::new();
        for _ in 0..RESUMERS {
            let request = format!(
                "GET /v1/events?snapshot=0&token={attacker} HTTP/1.1\r\nHost: chinwag\r\n\
                 Last-Event-ID: 0\r\n\r\n"
            );
            sockets.push(unread(addr, request).await?);
        }
        for _ in 0..POLLERS {
            let request = format!(
                "GET /v1/poll?since=0&timeout=0&token={attacker} HTTP/1.1\r\nHost: chinwag\r\n\r\n"
            );
            sockets.push(unread(addr, request).await?);
        }
        tokio::time::sleep(HOLD).await;
        Ok(sockets)
    })
    .await?;
    println!(
        "  {RESUMERS} streams + {POLLERS} polls from 0, unread: peak +{:.1} MiB; another \
         user's sends {}",
        held.peak_growth_mib,
        held.probe.line()
    );
    let bound = ((RESUMERS + POLLERS) as f64 * PER_CONNECTION_KIB + CACHES_KIB) / 1024.0;
    out.extend(rows("attacks", "unread resumes from 0", &held, bound));
    drop(_sockets);

    // Image bombs, all at once.
    for side in BOMB_SIDES {
        let bomb = image_bomb(side)?;
        let (bombed, (files, secs)) = during(&server, probe, async {
            let started = Instant::now();
            let mut uploads = JoinSet::new();
            for _ in 0..BOMBS {
                let (api, token, bytes) = (api.clone(), attacker.clone(), bomb.clone());
                uploads.spawn(async move { api.upload(&token, bytes).await });
            }
            let mut files = Vec::new();
            while let Some(done) = uploads.join_next().await {
                files.push(done??);
            }
            Ok((files, started.elapsed().as_secs_f64()))
        })
        .await?;
        let thumbnails = files
            .iter()
            .filter(|f| f["data"]["thumbnail"].is_string())
            .count();
        println!(
            "  {BOMBS} uploads of a {} B JPEG claiming {side}x{side}: all answered in {secs:.2} s, \
             {thumbnails} thumbnails; peak +{:.1} MiB; another user's sends {}",
            bomb.len(),
            bombed.peak_growth_mib,
            bombed.probe.line()
        );
        let name = format!("{BOMBS} bombs of {side}x{side}");
        out.extend(rows("attacks", &name, &bombed, THUMBNAIL_BUDGET_MIB));
        out.push(Row::info(
            "attacks",
            format!("{name}: answered in; thumbnails"),
            format!("{secs:.2} s; {thumbnails}"),
        ));
    }

    // A group grown 500 at a time to 10,000 members.
    let ids =
        |call: usize| -> Vec<String> { (0..ADD_IDS).map(|i| format!("g{call}-{i}")).collect() };
    let (grown, calls) = during(&server, probe, async {
        let group = api.create_group(&attacker, &ids(0)[1..], "big").await?;
        let mut calls = Vec::with_capacity(ADD_CALLS);
        for call in 1..=ADD_CALLS {
            let at = Instant::now();
            api.add_members(&attacker, group, &ids(call)).await?;
            calls.push(at.elapsed().as_nanos() as u64);
        }
        Ok(calls)
    })
    .await?;
    let calls = Percentiles::of(calls).ok_or_else(|| anyhow::anyhow!("no addMembers calls"))?;
    println!(
        "  addMembers of {ADD_IDS} up to {} members: {}; another user's sends {}",
        (ADD_CALLS + 1) * ADD_IDS,
        calls.line(),
        grown.probe.line()
    );
    out.extend(rows(
        "attacks",
        "addMembers to 10,000",
        &grown,
        CACHES_KIB / 1024.0,
    ));
    out.push(Row::info(
        "attacks",
        format!("addMembers of {ADD_IDS}: p50 / max"),
        format!("{:.1} / {:.1} ms", calls.p50, calls.max),
    ));
    Ok(out)
}
