//! The floods part: one client's connection attacks on a server with every limit at its default
//! and 1,024 open files: slow bodies (each of its own user), 500 streams of one user, a request
//! flood from one token.
//! The attacker connects from 127.0.0.2 and the timed user from 127.0.0.1, so that the
//! per-address limits apply to the attacker alone, as they would to two machines.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::attacks::{during, rows, Victim, CACHES_KIB, PER_CONNECTION_KIB};
use crate::client::Api;
use crate::server::Server;
use crate::{Args, Row};

/// The attacker's address: loopback, but not the timed user's.
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// The server's open-file limit, as a small container gives it.
const OPEN_FILES: u64 = 1_024;
/// Connections that send a request's headers and a few bytes of its body, then nothing.
const SLOW_BODIES: usize = 1_100;
/// Streams one user opens, one after another.
const STREAMS: usize = 500;
/// Requests of one token, sent by this many connections at once.
const FLOOD_REQUESTS: usize = 5_000;
const FLOOD_WORKERS: usize = 32;
/// How long the slow bodies are held.
const HOLD: Duration = Duration::from_secs(4);
/// The timed user's pace: inside the default per-user rate of 20 requests a second.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// The default --max-connections-per-ip and --max-streams.
const PER_ADDRESS: usize = 256;
const MAX_STREAMS: usize = 10;

/// A connection from the attacker's address that has sent `request`.
async fn attacker_sends(addr: SocketAddr, request: &str) -> Result<Opened> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ATTACKER, 0))?;
    let mut socket = socket.connect(addr).await?;
    socket.write_all(request.as_bytes()).await?;
    Ok(Opened {
        socket,
        seen: Vec::new(),
    })
}

/// A connection the attacker opened, and the bytes of its answer read so far.
struct Opened {
    socket: TcpStream,
    seen: Vec<u8>,
}

impl Opened {
    /// Whether the server still holds it open (it has nothing more to read, and a stream has
    /// not been ended), and the status of the answer it got, if any.
    fn fate(&mut self) -> (bool, Option<String>) {
        let mut buf = [0u8; 8192];
        let open = loop {
            match self.socket.try_read(&mut buf) {
                Ok(0) => break false,
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
                Err(_) => break false,
            }
        };
        let text = String::from_utf8_lossy(&self.seen);
        let status = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("HTTP/1.1 "));
        // A stream the server ended has its last chunk; the connection may stay open.
        let ended = text.contains("\r\n0\r\n\r\n");
        (open && !ended, status.map(|s| s.chars().take(3).collect()))
    }
}

/// What became of `opened`: how many the server holds open as `held` (streams: with a `200`;
/// bodies: unanswered), and the rest by their answer's status ("ended": an ended stream).
fn tally(opened: &mut [Opened], held_status: Option<&str>) -> (usize, Vec<(String, usize)>) {
    let (mut held, mut rest) = (0, std::collections::BTreeMap::<String, usize>::new());
    for o in opened {
        match o.fate() {
            (true, status) if status.as_deref() == held_status => held += 1,
            (open, status) => {
                let what = match (status, open) {
                    (Some(s), true) => format!("{s} kept alive"),
                    (Some(s), false) => format!("{s} and ended"),
                    (None, _) => "closed unanswered".into(),
                };
                *rest.entry(what).or_default() += 1
            }
        }
    }
    (held, rest.into_iter().collect())
}

fn counts(answered: &[(String, usize)]) -> String {
    let parts: Vec<String> = answered.iter().map(|(s, n)| format!("{n}× {s}")).collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

pub async fn part(args: &Args) -> Result<Vec<Row>> {
    println!(
        "\n[floods] limits at their defaults, {OPEN_FILES} open files; from another address: \
         {SLOW_BODIES} slow bodies, {STREAMS} streams of one user, {FLOOD_REQUESTS} requests of \
         one token; another user's sends timed meanwhile"
    );
    let server = Server::start_defended(args.server.as_deref(), args.sync, OPEN_FILES)?;
    let api = Api::new(&server)?;
    let addr: SocketAddr = server.base().trim_start_matches("http://").parse()?;
    let attacker = server.token("atk")?;
    let victim_token = server.token("victim")?;
    let victim = Victim {
        api: &api,
        token: &victim_token,
        chat: api.create_chat(&victim_token, "victim-peer").await?,
        every: PROBE_EVERY,
    };
    let mut out = Vec::new();

    // One user's streams, opened one after another.
    let stream_request =
        format!("GET /v1/events?snapshot=0&token={attacker} HTTP/1.1\r\nHost: chinwag\r\n\r\n");
    let (streamed, sockets) = during(&server, victim, async {
        let mut sockets = Vec::with_capacity(STREAMS);
        for _ in 0..STREAMS {
            let mut opened = attacker_sends(addr, &stream_request).await?;
            // Its answer's head, before the next one is opened.
            let mut head = [0u8; 64];
            let read = opened.socket.read(&mut head);
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), read).await {
                opened.seen.extend_from_slice(&head[..n]);
            }
            sockets.push(opened);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(sockets)
    })
    .await?;
    let mut sockets = sockets;
    let (open, ended) = tally(&mut sockets, Some("200"));
    drop(sockets);
    println!(
        "  {STREAMS} streams of one user: {open} still open; the rest {}; \
         peak +{:.1} MiB; another user's sends {}",
        counts(&ended),
        streamed.peak_growth_mib,
        streamed.probe.line()
    );
    let bound = (MAX_STREAMS as f64 * PER_CONNECTION_KIB + CACHES_KIB) / 1024.0;
    out.extend(rows(
        "floods",
        &format!("{STREAMS} streams of one user"),
        &streamed,
        bound,
    ));
    out.push(
        Row::info(
            "floods",
            format!("{STREAMS} streams of one user: still open"),
            open.to_string(),
        )
        .goal(format!("<= {MAX_STREAMS}"), open <= MAX_STREAMS),
    );

    // Bodies that never finish arriving, held open together.
    // Each of its own user, so that the per-user rate does not cut them off first.
    let body_request = |token: String| {
        format!(
            "POST /v1/message HTTP/1.1\r\nHost: chinwag\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"data\""
        )
    };
    let requests: Vec<String> = (0..SLOW_BODIES)
        .map(|i| server.token(&format!("slow-{i}")).map(body_request))
        .collect::<Result<_>>()?;
    let (slowed, sockets) = during(&server, victim, async {
        let mut sockets = Vec::with_capacity(SLOW_BODIES);
        for request in &requests {
            sockets.push(attacker_sends(addr, request).await?);
        }
        tokio::time::sleep(HOLD).await;
        Ok(sockets)
    })
    .await?;
    let mut sockets = sockets;
    let (held, answered) = tally(&mut sockets, None);
    drop(sockets);
    println!(
        "  {SLOW_BODIES} slow bodies from one address, each of its own user: {held} held; the \
         rest {}; \
         peak +{:.1} MiB; another user's sends {}",
        counts(&answered),
        slowed.peak_growth_mib,
        slowed.probe.line()
    );
    let bound = (PER_ADDRESS as f64 * PER_CONNECTION_KIB + CACHES_KIB) / 1024.0;
    out.extend(rows(
        "floods",
        &format!("{SLOW_BODIES} slow bodies"),
        &slowed,
        bound,
    ));
    out.push(
        Row::info(
            "floods",
            format!("{SLOW_BODIES} slow bodies: held by the server"),
            held.to_string(),
        )
        .goal(format!("<= {PER_ADDRESS}"), held <= PER_ADDRESS),
    );

    // One token's requests, as fast as answers come back.
    let flooder = Api::from_address(&server, Some(ATTACKER))?;
    let (flooded, (statuses, secs)) = during(&server, victim, async {
        let started = Instant::now();
        let mut workers = JoinSet::new();
        for _ in 0..FLOOD_WORKERS {
            let (api, token) = (flooder.clone(), attacker.clone());
            workers.spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..FLOOD_REQUESTS / FLOOD_WORKERS {
                    statuses.push(api.chats_status(&token).await?);
                }
                anyhow::Ok(statuses)
            });
        }
        let mut statuses = Vec::new();
        while let Some(done) = workers.join_next().await {
            statuses.extend(done??);
        }
        Ok((statuses, started.elapsed().as_secs_f64()))
    })
    .await?;
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    let served = statuses.iter().filter(|&&s| s == 200).count();
    println!(
        "  {} requests of one token in {secs:.2} s: {served} served, {limited} answered 429; \
         peak +{:.1} MiB; another user's sends {}",
        statuses.len(),
        flooded.peak_growth_mib,
        flooded.probe.line()
    );
    out.extend(rows(
        "floods",
        &format!("{FLOOD_REQUESTS} requests of one token"),
        &flooded,
        (FLOOD_WORKERS as f64 * PER_CONNECTION_KIB + CACHES_KIB) / 1024.0,
    ));
    out.push(Row::info(
        "floods",
        format!("{FLOOD_REQUESTS} requests of one token: served; 429"),
        format!("{served}; {limited} in {secs:.2} s"),
    ));
    Ok(out)
}
