//! The real `chinwag` binary: runs out of the box, mints tokens that `serve` accepts, reads its
//! `CHINWAG_*` variables, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_chinwag");

/// Starts `chinwag serve` in `cwd` and returns it with the address it printed.
fn serve(cwd: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chinwag serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line on stdout").unwrap();
    let addr = first
        .strip_prefix("chinwag listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    // Keep reading stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

fn token(cwd: &std::path::Path, args: &[&str]) -> String {
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

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
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

#[tokio::test]
async fn runs_out_of_the_box_and_stops_on_sigterm() {
    let cwd = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(cwd.path(), &["--listen", "127.0.0.1:0"], &[]);
    let client = reqwest::Client::new();

    // Defaults: the data directory is ./chinwag-data with a database and kept secrets.
    let health = client.get(format!("{addr}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    for file in ["chinwag.db", "secret", "service-key"] {
        assert!(
            cwd.path().join("chinwag-data").join(file).exists(),
            "{file}"
        );
    }

    // `chinwag token` in the same directory mints what `serve` accepts.
    let alice = token(cwd.path(), &["--user", "alice"]);
    let res = client
        .post(format!("{addr}/v1/createChat"))
        .bearer_auth(&alice)
        .json(&json!({"data": {"userIds": ["bob"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let short = token(cwd.path(), &["--user", "alice", "--ttl", "1"]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let res = client
        .post(format!("{addr}/v1/chats"))
        .bearer_auth(&short)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // An open stream ends on SIGTERM, and the process exits cleanly.
    let mut stream = client
        .get(format!("{addr}/v1/events?token={alice}"))
        .send()
        .await
        .unwrap();
    assert!(stream.chunk().await.unwrap().is_some());
    let status = tokio::task::spawn_blocking(move || terminate(&mut child))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the stream did not end");
}

#[tokio::test]
async fn reads_its_settings_from_the_environment_and_keeps_secrets_across_restarts() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("elsewhere");
    let data = data.to_str().unwrap();
    let env = [
        ("CHINWAG_LISTEN", "127.0.0.1:0"),
        ("CHINWAG_DATA_DIR", data),
        ("CHINWAG_SYNC", "normal"),
    ];
    let (mut child, addr) = serve(cwd.path(), &[], &env);
    let t = token(cwd.path(), &["--data-dir", data, "--user", "7"]);
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{addr}/v1/chats"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(terminate(&mut child).success());

    // Same data directory, new process: the old token still works.
    let (mut child, addr) = serve(cwd.path(), &[], &env);
    let res = client
        .post(format!("{addr}/v1/chats"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(terminate(&mut child).success());

    // An explicit secret wins over the kept one.
    let (mut child, addr) = serve(cwd.path(), &["--secret", "configured"], &env);
    let res = client
        .post(format!("{addr}/v1/chats"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let t2 = token(cwd.path(), &["--secret", "configured", "--user", "7"]);
    let res = client
        .post(format!("{addr}/v1/chats"))
        .bearer_auth(&t2)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(terminate(&mut child).success());
}
