//! The server under test: `chinwag serve` in a temporary data directory, and its open-file limit.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};

use chinwag::model::UserId;

use crate::SyncMode;

/// How long the server may take to print its listen line.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Lifetime of the bench's tokens.
const TOKEN_TTL_SECS: u64 = 3600;

/// A running `chinwag serve`; dropping it kills the process and removes its data directory.
pub struct Server {
    child: Child,
    data_dir: PathBuf,
    base: String,
    secret: String,
}

impl Server {
    /// Starts `exe` (default: the server next to this binary) on an ephemeral loopback port.
    pub fn start(exe: Option<&std::path::Path>, sync: SyncMode) -> Result<Server> {
        Server::start_with(exe, sync, &[])
    }

    /// [`Server::start`] with further `serve` flags.
    pub fn start_with(
        exe: Option<&std::path::Path>,
        sync: SyncMode,
        flags: &[&str],
    ) -> Result<Server> {
        Server::launch(exe, sync, flags, None)
    }

    /// A server with every per-caller limit at its default (the other parts turn the rates and
    /// the per-address connection cap off) and an open-file limit of `open_files`, soft and
    /// hard, as a small container gives it.
    pub fn start_defended(
        exe: Option<&std::path::Path>,
        sync: SyncMode,
        open_files: u64,
    ) -> Result<Server> {
        Server::launch(exe, sync, &[], Some(open_files))
    }

    fn launch(
        exe: Option<&std::path::Path>,
        sync: SyncMode,
        flags: &[&str],
        defended: Option<u64>,
    ) -> Result<Server> {
        let exe = match exe {
            Some(exe) => exe.to_path_buf(),
            None => std::env::current_exe()?.with_file_name("chinwag"),
        };
        if !exe.exists() {
            bail!(
                "{} not found: build the server too (cargo build --release --workspace), or pass --server",
                exe.display()
            );
        }
        let data_dir = unique_data_dir();
        let secret = random_secret()?;
        let mut cmd = Command::new(&exe);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--sync", sync.flag()])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(flags);
        // Only the settings given here apply, whatever the caller's environment holds.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CHINWAG_") {
                cmd.env_remove(name);
            }
        }
        match defended {
            // The load tool measures the server, not its per-caller limits (it sends as many
            // users from one address); variables, not flags, so that older servers still start.
            None => {
                cmd.env("CHINWAG_RATE_PER_USER", "0")
                    .env("CHINWAG_RATE_PER_IP", "0")
                    .env("CHINWAG_MAX_CONNECTIONS_PER_IP", "0");
            }
            Some(files) => limit_open_files(&mut cmd, files),
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

    /// Bytes the database's pages in use take now (its committed state, WAL included).
    pub fn db_bytes(&self) -> Result<u64> {
        let path = self.data_dir.join("chinwag.db");
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .with_context(|| format!("opening {}", path.display()))?;
        let pragma = |name: &str| -> Result<u64> {
            Ok(conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0))? as u64)
        };
        Ok((pragma("page_count")? - pragma("freelist_count")?) * pragma("page_size")?)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's base URL, `http://ADDR`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The service key the server generated in its data directory (for `/metrics`).
    pub fn service_key(&self) -> Result<String> {
        let path = self.data_dir.join("service-key");
        let key = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(key.trim().to_string())
    }

    /// A client token for `user`, signed with the secret the server was given.
    pub fn token(&self, user: &str) -> Result<String> {
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

/// Gives the process `cmd` starts an open-file limit of `files`, soft and hard.
fn limit_open_files(cmd: &mut Command, files: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only setrlimit runs, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || chinwag::health::set_open_files(files, files));
    }
}

/// Raises this process's open-file limit to at least `needed` (up to the hard limit); the server
/// inherits it.
pub fn raise_fd_limit(needed: usize) -> Result<()> {
    let (soft, hard) = chinwag::health::open_files().context("getrlimit")?;
    let needed = needed as u64;
    if soft >= needed {
        return Ok(());
    }
    if hard < needed {
        eprintln!(
            "warning: the open-file limit is at most {hard}, below the {needed} this run needs"
        );
    }
    chinwag::health::set_open_files(needed.min(hard), hard).context("setrlimit")
}
