//! The real `chinwag` binary as a child process: `serve` it (reading the addresses its banner
//! prints), mint tokens with `chinwag token`, call it over HTTP, and stop it with SIGTERM.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

pub const BIN: &str = env!("CARGO_BIN_EXE_chinwag");

/// Starts `chinwag serve` in `cwd` and returns it with the address it printed.
pub fn serve(cwd: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let (child, banner) = serve_logging(cwd, args, env, Stdio::null());
    (child, banner[0].clone())
}

/// Starts `chinwag serve` in `cwd` with its log (stderr) going to `stderr`; returns it with the
/// addresses it printed: the API's first, then the metrics address when there is one.
pub fn serve_logging(
    cwd: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    stderr: Stdio,
) -> (Child, Vec<String>) {
    let mut child = serve_command(cwd, args, env)
        .stderr(stderr)
        .spawn()
        .expect("start chinwag serve");
    let banner = read_banner(&mut child, String::new);
    (child, banner)
}

/// Starts `chinwag serve` in `cwd` with its log (stderr) captured; returns it with the API's
/// address and its log so far (read in the background).
pub fn serve_capturing(
    cwd: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, String, Arc<Mutex<String>>) {
    spawn_capturing(serve_command(cwd, args, env))
}

/// Spawns `command` (a `serve`) with its log captured, and reads its banner.
fn spawn_capturing(mut command: Command) -> (Child, String, Arc<Mutex<String>>) {
    let mut child = command
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chinwag serve");
    let log = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stderr.read(&mut buf) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let banner = read_banner(&mut child, || format!("; stderr: {}", log.lock().unwrap()));
    (child, banner[0].clone(), log)
}

/// Starts `chinwag serve` in `cwd` with an open-file limit (soft and hard) of `files`, as a
/// small container might give it; returns it with the address it printed and its log.
pub fn serve_with_file_limit(
    cwd: &std::path::Path,
    args: &[&str],
    files: u64,
) -> (Child, String, Arc<Mutex<String>>) {
    let mut command = serve_command(cwd, args, &[("RUST_LOG", "chinwag=info")]);
    // SAFETY: between fork and exec only setrlimit runs, which is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(move || chinwag::health::set_open_files(files, files));
    }
    spawn_capturing(command)
}

/// Starts `chinwag serve ARGS` in `cwd` under `tracer` (a command and its arguments, e.g.
/// strace's), which runs the server as its child; returns the tracer with the API's address.
pub fn serve_under(cwd: &std::path::Path, tracer: &[&str], args: &[&str]) -> (Child, String) {
    let mut command = Command::new(tracer[0]);
    command.args(&tracer[1..]).arg(BIN);
    let mut child = with_serve(command, cwd, args, &[])
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", tracer[0]));
    let banner = read_banner(&mut child, String::new);
    (child, banner[0].clone())
}

/// `chinwag serve ARGS` in `cwd` with `env` added, its stdout piped for the banner.
fn serve_command(cwd: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    with_serve(Command::new(BIN), cwd, args, env)
}

/// `command` (the binary, or a tracer given the binary) with `serve ARGS`, `env` and `cwd`.
fn with_serve(
    mut command: Command,
    cwd: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Command {
    command
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdout(Stdio::piped());
    command
}

/// Reads the banner from `child`'s stdout: the API's address, then the metrics address when
/// there is one; `more` adds to the panic on an unexpected first line.
fn read_banner(child: &mut Child, more: impl Fn() -> String) -> Vec<String> {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line on stdout").unwrap();
    let addr = first
        .strip_prefix("chinwag listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}{}", more()))
        .to_string();
    let mut banner = vec![addr];
    // The banner's other lines up to the data directory's: the metrics address, if any.
    for line in lines.by_ref() {
        let line = line.unwrap();
        // A server's banner ends with its data directory; an edge of a cluster has none.
        if line.starts_with("data directory:") || line.starts_with("an edge of the cluster") {
            break;
        }
        if let Some(m) = line.strip_prefix("metrics on ") {
            banner.push(m.to_string());
        }
    }
    // Keep reading stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    banner
}

/// Runs `chinwag token ARGS` in `cwd`, expecting success; returns the token.
pub fn token(cwd: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("token")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `POST /v1/{kind}` with `{"data": data}` as `token`'s user against the server at `addr`: the
/// status and the JSON body (Null when there is none).
pub async fn post(
    addr: &str,
    token: &str,
    kind: &str,
    data: serde_json::Value,
) -> (u16, serde_json::Value) {
    let res = super::http_client()
        .post(format!("{addr}/v1/{kind}"))
        .bearer_auth(token)
        .json(&json!({ "data": data }))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

/// The status of `POST /v1/chats` with `token` against the server at `addr`.
pub async fn chats_status(addr: &str, token: &str) -> u16 {
    let res = super::http_client()
        .post(format!("{addr}/v1/chats"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    res.status().as_u16()
}

/// Sends SIGTERM and waits (at most 10 s) for the exit.
pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    // SAFETY: sends a signal to our own child process, which has not been reaped yet.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0, "kill failed");
    // Not `wait_for`: this is synchronous (sync code and `spawn_blocking` call it too), and at the
    // deadline it kills the child before panicking, so none is left behind.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("chinwag did not exit within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
