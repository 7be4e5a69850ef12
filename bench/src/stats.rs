//! What a part measures besides counts: latency percentiles, and CPU time and memory from /proc.

use anyhow::{Context, Result};
use tokio::time::Instant;

/// The text of `/proc/{who}/{file}`; `who` is a pid or `self`.
fn read_proc(who: &str, file: &str) -> Result<String> {
    let path = format!("/proc/{who}/{file}");
    std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))
}

/// The first number of a `/proc/PID/status` line such as `VmRSS:   1234 kB`.
pub fn status_field(pid: u32, field: &str) -> Result<u64> {
    let text = read_proc(&pid.to_string(), "status")?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// CPU time (user + system) a process has used, in seconds; `who` is a pid or `self`.
fn cpu_seconds(who: &str) -> Result<f64> {
    let text = read_proc(who, "stat")?;
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

/// The name of the server's one writer thread.
pub const WRITER: &str = "chinwag-writer";

/// CPU time the server's thread named `name` has used, in seconds (`/proc/PID/task/*/comm`).
pub fn thread_cpu_seconds(pid: u32, name: &str) -> Result<f64> {
    let tasks = format!("/proc/{pid}/task");
    for entry in std::fs::read_dir(&tasks).with_context(|| format!("reading {tasks}"))? {
        let tid = entry?.file_name().to_string_lossy().into_owned();
        let who = format!("{pid}/task/{tid}");
        if read_proc(&who, "comm").is_ok_and(|c| c.trim() == name) {
            return cpu_seconds(&who);
        }
    }
    anyhow::bail!("the server has no thread named {name}")
}

/// CPU used by the server and by the bench over an interval, in cores.
pub struct CpuMeter {
    pid: u32,
    server: f64,
    bench: f64,
    writer: f64,
    at: Instant,
}

impl CpuMeter {
    pub fn start(pid: u32) -> Result<CpuMeter> {
        Ok(CpuMeter {
            pid,
            server: cpu_seconds(&pid.to_string())?,
            bench: cpu_seconds("self")?,
            writer: thread_cpu_seconds(pid, WRITER)?,
            at: Instant::now(),
        })
    }

    /// (server cores, bench cores, writer thread CPU seconds) since `start`.
    pub fn stop(&self) -> Result<(f64, f64, f64)> {
        let wall = self.at.elapsed().as_secs_f64().max(1e-9);
        let server = cpu_seconds(&self.pid.to_string())? - self.server;
        let bench = cpu_seconds("self")? - self.bench;
        let writer = thread_cpu_seconds(self.pid, WRITER)? - self.writer;
        Ok((server / wall, bench / wall, writer))
    }
}

/// Latency percentiles in milliseconds.
pub struct Percentiles {
    pub p50: f64,
    p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(mut ns: Vec<u64>) -> Option<Percentiles> {
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

    pub fn line(&self) -> String {
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2} ms",
            self.p50, self.p90, self.p99, self.max
        )
    }
}
