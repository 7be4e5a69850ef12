//! chinwag-bench: load tests a real `chinwag serve` on 127.0.0.1 (latency, throughput, memory).
//!
//! Four parts, each against a fresh server with a fresh temporary data directory:
//!
//! - `latency`: one sender, one SSE listener; messages sent one at a time, each timed from just
//!   before its POST until its frame arrives on the listener's stream.
//! - `throughput`: sender/listener pairs; every sender posts as fast as its answers come back;
//!   messages delivered to the listeners' streams per second.
//! - `rate`: the same pairs paced (open loop) to a fixed total rate; latency at that rate.
//! - `memory`: the server's resident memory before and after opening many idle SSE streams.
//!
//! Every message's client id carries the time it was sent, so a listener computes latency
//! without shared state. Every loop ends on a count or a deadline, and the server is killed
//! and its data directory removed when a part ends, also on error.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use bytes::BytesMut;
use clap::{Parser, ValueEnum};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};

use chinwag::model::UserId;

/// How long one POST may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a sent message may take to reach its listener before the part gives up on it.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may take to print its listen line.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between the end of setup and the start of a timed window.
const LEAD_IN: Duration = Duration::from_millis(200);
/// Pause before reading the server's memory, so that work triggered by new streams settles.
const SETTLE: Duration = Duration::from_secs(1);
/// Streams opened at once in the memory part.
const OPEN_CONCURRENCY: usize = 64;
/// Streams opened before the memory baseline, so one-time costs (page cache, threads, allocator
/// arenas) are not charged to the measured streams.
const WARM_STREAMS: usize = 50;
/// Most unanswered POSTs one paced sender keeps open.
const MAX_IN_FLIGHT_PER_SENDER: usize = 64;
/// Lifetime of the bench's tokens.
const TOKEN_TTL_SECS: u64 = 3600;

/// Target of the throughput part: messages delivered per second.
const TARGET_DELIVERED_PER_S: f64 = 15_000.0;
/// Target of the rate part: p99 send-to-SSE latency, in ms.
const TARGET_P99_MS: f64 = 10.0;
/// Target of the memory part: server memory per idle stream, in KiB.
const TARGET_KIB_PER_STREAM: f64 = 16.0;

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
    /// The server's SQLite durability.
    #[arg(long, value_enum, default_value = "full")]
    sync: SyncMode,
    /// Run only this part.
    #[arg(long, value_enum)]
    only: Option<Part>,
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
}

impl Args {
    fn check(&self) -> Result<()> {
        if self.messages == 0 || self.pairs == 0 || self.seconds == 0 || self.rate == 0 {
            bail!("--messages, --pairs, --seconds and --rate must be at least 1");
        }
        if self.idle_streams == 0 {
            bail!("--idle-streams must be at least 1");
        }
        Ok(())
    }

    fn runs(&self, part: Part) -> bool {
        self.only.is_none_or(|p| p == part)
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
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
    raise_fd_limit(args.idle_streams + WARM_STREAMS + 4 * args.pairs + 512)?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "chinwag-bench: sync={}, {cpus} CPUs shared by server and bench, data under {}",
        args.sync.flag(),
        std::env::temp_dir().display()
    );
    let mut rows = Vec::new();
    if args.runs(Part::Latency) {
        rows.extend(latency_part(args).await.context("latency part")?);
    }
    if args.runs(Part::Throughput) {
        rows.extend(throughput_part(args).await.context("throughput part")?);
    }
    if args.runs(Part::Rate) {
        rows.extend(rate_part(args).await.context("rate part")?);
    }
    if args.runs(Part::Memory) {
        rows.extend(memory_part(args).await.context("memory part")?);
    }
    print_table(&rows);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------

/// A running `chinwag serve`; dropping it kills the process and removes its data directory.
struct Server {
    child: Child,
    data_dir: PathBuf,
    base: String,
    secret: String,
}

impl Server {
    /// Starts the server next to this binary on an ephemeral loopback port.
    fn start(sync: SyncMode) -> Result<Server> {
        let exe = std::env::current_exe()?.with_file_name("chinwag");
        if !exe.exists() {
            bail!(
                "{} not found: build both binaries (cargo build --release --bins)",
                exe.display()
            );
        }
        let data_dir = unique_data_dir();
        let secret = random_secret()?;
        let mut cmd = Command::new(&exe);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--sync", sync.flag()])
            .arg("--data-dir")
            .arg(&data_dir);
        // Only the settings given here apply, whatever the caller's environment holds.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CHINWAG_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("CHINWAG_SECRET", &secret)
            .env("RUST_LOG", "chinwag=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let mut server = Server {
            child,
            data_dir,
            base: String::new(),
            secret,
        };
        let addr = server.wait_for_listen_line()?;
        server.base = format!("http://{addr}");
        Ok(server)
    }

    /// Reads stdout until the `listening on http://ADDR` line; keeps draining it afterwards.
    fn wait_for_listen_line(&mut self) -> Result<SocketAddr> {
        let stdout = self.child.stdout.take().context("no server stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if let Some((_, addr)) = line.split_once("listening on http://") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.trim().to_string());
                    }
                }
            }
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => match self.child.try_wait()? {
                Some(status) => bail!("the server exited before listening ({status})"),
                None => bail!("the server printed no listen line within {START_TIMEOUT:?}"),
            },
        };
        let addr: SocketAddr = line
            .parse()
            .with_context(|| format!("unreadable listen address {line:?}"))?;
        if !addr.ip().is_loopback() {
            bail!("the server listens on {addr}, not on loopback");
        }
        Ok(addr)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client token for `user`, signed with the secret the server was given.
    fn token(&self, user: &str) -> Result<String> {
        let user = UserId::parse(user).map_err(|e| anyhow!(e))?;
        Ok(chinwag::auth::mint(&self.secret, &user, TOKEN_TTL_SECS))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn unique_data_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("chinwag-bench-{}-{nanos}-{n}", std::process::id()))
}

fn random_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("no randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Raises this process's open-file limit to at least `needed` (up to the hard limit); the server
/// inherits it.
fn raise_fd_limit(needed: usize) -> Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        bail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    let needed = needed as libc::rlim_t;
    if lim.rlim_cur >= needed {
        return Ok(());
    }
    if lim.rlim_max < needed {
        eprintln!(
            "warning: the open-file limit is at most {}, below the {needed} this run needs",
            lim.rlim_max
        );
    }
    lim.rlim_cur = needed.min(lim.rlim_max);
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        bail!("setrlimit: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// /proc readings
// ---------------------------------------------------------------------------------------------

/// The first number of a `/proc/PID/status` line such as `VmRSS:   1234 kB`.
fn status_field(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in {path}"))
}

/// CPU time (user + system) a process has used, in seconds; `who` is a pid or `self`.
fn cpu_seconds(who: &str) -> Result<f64> {
    let path = format!("/proc/{who}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name (which may hold spaces) start at field 3, `state`.
    let rest = text.rsplit_once(')').context("unreadable stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11)
        .zip(fields.get(12))
        .and_then(|(u, s)| Some(u.parse::<u64>().ok()? + s.parse::<u64>().ok()?))
        .context("unreadable stat times")?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Ok(ticks as f64 / hz as f64)
}

/// CPU used by the server and by the bench over an interval, in cores.
struct CpuMeter {
    pid: u32,
    server: f64,
    bench: f64,
    at: Instant,
}

impl CpuMeter {
    fn start(pid: u32) -> Result<CpuMeter> {
        Ok(CpuMeter {
            pid,
            server: cpu_seconds(&pid.to_string())?,
            bench: cpu_seconds("self")?,
            at: Instant::now(),
        })
    }

    /// (server cores, bench cores) since `start`.
    fn stop(&self) -> Result<(f64, f64)> {
        let wall = self.at.elapsed().as_secs_f64().max(1e-9);
        let server = cpu_seconds(&self.pid.to_string())? - self.server;
        let bench = cpu_seconds("self")? - self.bench;
        Ok((server / wall, bench / wall))
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTP client
// ---------------------------------------------------------------------------------------------

/// Nanoseconds since the bench started: the clock every send and receive time is on.
fn now_ns() -> u64 {
    static EPOCH: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);
    EPOCH.elapsed().as_nanos() as u64
}

/// A client message id that carries its send time: `TAG-N-SENTNS`.
fn client_id(tag: &str, n: usize, sent_ns: u64) -> String {
    format!("{tag}-{n}-{sent_ns}")
}

/// The send time a [`client_id`] carries.
fn sent_ns_of(client_id: &str) -> Option<u64> {
    client_id.rsplit('-').next()?.parse().ok()
}

#[derive(Deserialize)]
struct Created {
    data: CreatedData,
}

#[derive(Deserialize)]
struct CreatedData {
    chat: ChatRef,
}

#[derive(Deserialize)]
struct ChatRef {
    id: i64,
}

/// A client of one server.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: Arc<str>,
}

impl Api {
    fn new(server: &Server) -> Result<Api> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Api {
            http,
            base: server.base.as_str().into(),
        })
    }

    /// `POST /v1/{kind}` with `{"data": data}`; the answer's body when it is a 2xx.
    async fn post(&self, token: &str, kind: &str, data: serde_json::Value) -> Result<bytes::Bytes> {
        let res = self
            .http
            .post(format!("{}/v1/{kind}", self.base))
            .bearer_auth(token)
            .timeout(REQUEST_TIMEOUT)
            .json(&json!({ "data": data }))
            .send()
            .await
            .with_context(|| format!("POST /v1/{kind}"))?;
        let status = res.status();
        let body = res.bytes().await?;
        if !status.is_success() {
            bail!(
                "POST /v1/{kind} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(body)
    }

    /// The direct chat of the token's user with `other`.
    async fn create_chat(&self, token: &str, other: &str) -> Result<i64> {
        let body = self
            .post(token, "createChat", json!({ "userIds": [other] }))
            .await?;
        let created: Created = serde_json::from_slice(&body).context("createChat answer")?;
        Ok(created.data.chat.id)
    }

    /// Sends one text message.
    async fn send(&self, token: &str, chat_id: i64, client_id: &str) -> Result<()> {
        let msg =
            json!({ "clientMessageId": client_id, "chatId": chat_id, "text": "bench message" });
        self.post(token, "message", json!({ "messages": [msg] }))
            .await?;
        Ok(())
    }

    /// Opens `GET /v1/events` without a snapshot and waits for its first bytes, after which the
    /// server has subscribed the stream.
    async fn open_stream(&self, token: &str) -> Result<SseStream> {
        let url = format!("{}/v1/events?token={token}&snapshot=0", self.base);
        let opened = async {
            let res = self.http.get(url).send().await?;
            if res.status() != reqwest::StatusCode::OK {
                let status = res.status();
                let body = res.text().await.unwrap_or_default();
                bail!("GET /v1/events answered {status}: {body}");
            }
            let mut stream = SseStream {
                res,
                buf: BytesMut::new(),
            };
            if !stream.read().await? {
                bail!("the stream ended before its first bytes");
            }
            Ok(stream)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, opened)
            .await
            .context("opening a stream timed out")?
    }
}

/// An open SSE response and the bytes read from it that are not yet a whole frame.
struct SseStream {
    res: reqwest::Response,
    buf: BytesMut,
}

impl SseStream {
    /// Reads the next chunk into the buffer; false when the server ended the stream.
    async fn read(&mut self) -> Result<bool> {
        match self.res.chunk().await? {
            Some(chunk) => {
                self.buf.extend_from_slice(&chunk);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Takes the next complete frame (up to its blank line) out of the buffer.
    fn next_frame(&mut self) -> Option<BytesMut> {
        let end = self.buf.windows(2).position(|w| w == b"\n\n")?;
        Some(self.buf.split_to(end + 2))
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    data: WireMessage,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessage {
    client_message_id: String,
}

/// The client message id of a `message` frame; None for any other frame.
fn message_client_id(frame: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(frame).ok()?;
    let mut is_message = false;
    let mut data = None;
    for line in text.lines() {
        if line == "event: message" {
            is_message = true;
        } else if let Some(d) = line.strip_prefix("data: ") {
            data = Some(d);
        }
    }
    if !is_message {
        return None;
    }
    let env: Envelope = serde_json::from_str(data?).ok()?;
    (env.kind == "message").then_some(env.data.client_message_id)
}

/// One message frame seen on a listener's stream.
struct Delivery {
    client_id: String,
    sent_ns: u64,
    received_ns: u64,
}

impl Delivery {
    fn latency_ns(&self) -> u64 {
        self.received_ns.saturating_sub(self.sent_ns)
    }
}

/// Listener tasks; dropping this stops them and closes their streams.
#[derive(Default)]
struct Listeners(Vec<JoinHandle<()>>);

impl Drop for Listeners {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// Reads `stream` until it ends, fails or `deadline` passes, reporting every message frame.
fn spawn_listener(
    mut stream: SseStream,
    out: mpsc::UnboundedSender<Delivery>,
    deadline: Instant,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(Ok(true)) = tokio::time::timeout_at(deadline, stream.read()).await {
            let received_ns = now_ns();
            while let Some(frame) = stream.next_frame() {
                let Some(client_id) = message_client_id(&frame) else {
                    continue;
                };
                let Some(sent_ns) = sent_ns_of(&client_id) else {
                    continue;
                };
                let delivery = Delivery {
                    client_id,
                    sent_ns,
                    received_ns,
                };
                if out.send(delivery).is_err() {
                    return;
                }
            }
        }
    })
}

/// A sender with a direct chat to a listener.
#[derive(Clone)]
struct Pair {
    token: Arc<str>,
    chat_id: i64,
}

/// Makes `n` pairs of users `TAG-sI`/`TAG-lI` with a direct chat each; every listener's stream
/// is open (and subscribed) before its chat exists, and reports into `out` until `deadline`.
async fn setup_pairs(
    server: &Server,
    api: &Api,
    tag: &str,
    n: usize,
    out: &mpsc::UnboundedSender<Delivery>,
    deadline: Instant,
) -> Result<(Vec<Pair>, Listeners)> {
    let mut pairs = Vec::with_capacity(n);
    let mut listeners = Listeners::default();
    for i in 0..n {
        let (sender, listener) = (format!("{tag}-s{i}"), format!("{tag}-l{i}"));
        let stream = api.open_stream(&server.token(&listener)?).await?;
        listeners
            .0
            .push(spawn_listener(stream, out.clone(), deadline));
        let token = server.token(&sender)?;
        let chat_id = api.create_chat(&token, &listener).await?;
        pairs.push(Pair {
            token: token.into(),
            chat_id,
        });
    }
    Ok((pairs, listeners))
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

/// Latency percentiles in milliseconds.
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    fn of(mut ns: Vec<u64>) -> Option<Percentiles> {
        if ns.is_empty() {
            return None;
        }
        ns.sort_unstable();
        let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize] as f64 / 1e6;
        Some(Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        })
    }

    fn line(&self) -> String {
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2} ms",
            self.p50, self.p90, self.p99, self.max
        )
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

fn cpu_row(part: &'static str, (server, bench): (f64, f64)) -> Row {
    Row::info(
        part,
        "CPU used: server / bench",
        format!("{server:.2} / {bench:.2} cores"),
    )
}

// ---------------------------------------------------------------------------------------------
// Part a: sequential send-to-SSE latency
// ---------------------------------------------------------------------------------------------

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

async fn latency_part(args: &Args) -> Result<Vec<Row>> {
    println!("\n[latency] {} messages, one at a time", args.messages);
    let server = Server::start(args.sync)?;
    let api = Api::new(&server)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let deadline = Instant::now() + DELIVERY_TIMEOUT * (args.messages as u32 + 10);
    let (pairs, _listeners) = setup_pairs(&server, &api, "lat", 1, &tx, deadline).await?;
    let pair = &pairs[0];
    let cpu = CpuMeter::start(server.pid())?;
    let mut latencies = Vec::with_capacity(args.messages);
    for i in 0..args.messages {
        let id = client_id("lat", i, now_ns());
        api.send(&pair.token, pair.chat_id, &id).await?;
        latencies.push(wait_for(&mut rx, &id).await?.latency_ns());
    }
    let cpu = cpu.stop()?;
    let p = Percentiles::of(latencies).context("no messages")?;
    println!("  send->SSE p50/p90/p99/max: {}", p.line());
    Ok(vec![
        Row::info(
            "latency",
            format!("send->SSE p50/p90/p99/max ({} msgs)", args.messages),
            p.line(),
        ),
        cpu_row("latency", cpu),
    ])
}

// ---------------------------------------------------------------------------------------------
// Parts b and c: many pairs, closed loop or paced
// ---------------------------------------------------------------------------------------------

/// How senders send.
#[derive(Clone, Copy)]
enum Pace {
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
struct LoadResult {
    sent_in_window: u64,
    sent_total: u64,
    delivered_in_window: u64,
    delivered_total: u64,
    /// Latencies of messages sent inside the window.
    latencies: Vec<u64>,
    cpu: (f64, f64),
}

impl LoadResult {
    fn per_second(&self, count: u64, window: Duration) -> f64 {
        count as f64 / window.as_secs_f64()
    }
}

async fn closed_loop_sender(api: Api, pair: Pair, w: Arc<Window>) -> Result<()> {
    tokio::time::sleep_until(w.start).await;
    let mut n = 0;
    while Instant::now() < w.end {
        let id = client_id("tp", n, now_ns());
        api.send(&pair.token, pair.chat_id, &id).await?;
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
            let id = client_id("rt", n, now_ns());
            api.send(&pair.token, pair.chat_id, &id).await?;
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
fn measure_cpu(pid: u32, w: &Window) -> JoinHandle<Result<(f64, f64)>> {
    let (start, end) = (w.start, w.end);
    tokio::spawn(async move {
        tokio::time::sleep_until(start).await;
        let meter = CpuMeter::start(pid)?;
        tokio::time::sleep_until(end).await;
        meter.stop()
    })
}

/// Sets up the pairs, runs the senders over the window and collects what the listeners saw.
async fn run_load(args: &Args, tag: &str, pace: Pace) -> Result<LoadResult> {
    let server = Server::start(args.sync)?;
    let api = Api::new(&server)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listen_until = Instant::now() + Duration::from_secs(120) + args.window() + DELIVERY_TIMEOUT;
    let (pairs, listeners) = setup_pairs(&server, &api, tag, args.pairs, &tx, listen_until).await?;
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
        sent_in_window: w.sent_in_window.load(Ordering::Acquire),
        sent_total: w.sent_total.load(Ordering::Acquire),
        delivered_in_window,
        delivered_total,
        latencies,
        cpu,
    })
}

/// A row for messages that were answered but never reached their listener, if any.
fn lost_row(part: &'static str, r: &LoadResult) -> Option<Row> {
    let lost = r.sent_total.saturating_sub(r.delivered_total);
    (lost > 0).then(|| {
        Row::info(
            part,
            "answered but not delivered",
            format!("{lost} of {}", r.sent_total),
        )
    })
}

async fn throughput_part(args: &Args) -> Result<Vec<Row>> {
    println!(
        "\n[throughput] {} pairs, closed loop, {} s",
        args.pairs, args.seconds
    );
    let r = run_load(args, "tp", Pace::ClosedLoop).await?;
    let window = args.window();
    let delivered = r.per_second(r.delivered_in_window, window);
    let sent = r.per_second(r.sent_in_window, window);
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
    rows.push(cpu_row("throughput", r.cpu));
    rows.extend(lost_row("throughput", &r));
    Ok(rows)
}

async fn rate_part(args: &Args) -> Result<Vec<Row>> {
    println!(
        "\n[rate] {} msgs/s over {} pairs, {} s",
        thousands(f64::from(args.rate)),
        args.pairs,
        args.seconds
    );
    let period = Duration::from_secs_f64(args.pairs as f64 / f64::from(args.rate));
    let r = run_load(args, "rt", Pace::Every(period)).await?;
    let window = args.window();
    let sent = r.per_second(r.sent_in_window, window);
    let delivered = r.per_second(r.delivered_in_window, window);
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
        cpu_row("rate", r.cpu),
    ];
    rows.extend(lost_row("rate", &r));
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Part d: memory per idle stream
// ---------------------------------------------------------------------------------------------

/// Opens `count` streams of distinct users `TAG-I`, a few at a time; each has had its first
/// bytes when this returns.
async fn open_idle(server: &Server, api: &Api, tag: &str, count: usize) -> Result<Vec<SseStream>> {
    let slots = Arc::new(Semaphore::new(OPEN_CONCURRENCY));
    let mut opening = JoinSet::new();
    for i in 0..count {
        let token = server.token(&format!("{tag}-{i}"))?;
        let (api, slots) = (api.clone(), slots.clone());
        opening.spawn(async move {
            let _slot = slots.acquire_owned().await?;
            api.open_stream(&token).await
        });
    }
    let mut streams = Vec::with_capacity(count);
    while let Some(opened) = opening.join_next().await {
        streams.push(opened??);
    }
    Ok(streams)
}

/// The server's resident memory (KiB) and thread count.
fn server_footprint(server: &Server) -> Result<(u64, u64)> {
    Ok((
        status_field(server.pid(), "VmRSS")?,
        status_field(server.pid(), "Threads")?,
    ))
}

async fn memory_part(args: &Args) -> Result<Vec<Row>> {
    let k = args.idle_streams;
    println!("\n[memory] {k} idle SSE streams (after {WARM_STREAMS} warm-up streams)");
    let server = Server::start(args.sync)?;
    let api = Api::new(&server)?;
    let warm = open_idle(&server, &api, "warm", WARM_STREAMS).await?;
    tokio::time::sleep(SETTLE).await;
    let (rss_before, threads_before) = server_footprint(&server)?;
    let idle = open_idle(&server, &api, "idle", k).await?;
    tokio::time::sleep(SETTLE).await;
    let (rss_after, threads_after) = server_footprint(&server)?;
    drop(idle);
    drop(warm);
    let per_stream = rss_after.saturating_sub(rss_before) as f64 / k as f64;
    println!(
        "  VmRSS {rss_before} -> {rss_after} KiB, threads {threads_before} -> {threads_after}"
    );
    println!("  {per_stream:.1} KiB per idle stream");
    Ok(vec![
        Row::info(
            "memory",
            format!("VmRSS before / after {k} streams"),
            format!(
                "{} / {} KiB",
                thousands(rss_before as f64),
                thousands(rss_after as f64)
            ),
        ),
        Row::info(
            "memory",
            "server threads before / after",
            format!("{threads_before} / {threads_after}"),
        ),
        Row::info(
            "memory",
            "VmRSS per idle stream",
            format!("{per_stream:.1} KiB"),
        )
        .goal(
            format!("<= {TARGET_KIB_PER_STREAM} KiB"),
            per_stream <= TARGET_KIB_PER_STREAM,
        ),
    ])
}
