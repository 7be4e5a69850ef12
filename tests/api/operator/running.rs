//! A running binary as an operator sees it: version and health, a backup restored, metrics and
//! the JSON request log, the open-file limit, the shutdown grace, the janitor's interval, the
//! allocator's settings.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::{chinwag, chinwag_with, stderr};
use crate::helpers::binary::{chats_status, post, serve, serve_logging, terminate, token, BIN};
use crate::helpers::http_client;

#[tokio::test]
async fn version_and_health_answer_for_the_container() {
    let cwd = tempfile::tempdir().unwrap();
    let version = chinwag(cwd.path(), &["--version"]);
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(
        version.starts_with(&format!("chinwag {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );

    let (mut server, addr) = serve(cwd.path(), &["--listen", ":0"], &[]);
    let port = addr.rsplit(':').next().unwrap();
    // The container's form: CHINWAG_LISTEN=0.0.0.0:PORT, asked on this machine.
    let ok = Command::new(BIN)
        .arg("health")
        .env("CHINWAG_LISTEN", format!("0.0.0.0:{port}"))
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(terminate(&mut server).success());
    let down = chinwag(
        cwd.path(),
        &["health", "--listen", &format!("127.0.0.1:{port}")],
    );
    assert!(!down.status.success());
    assert!(stderr(&down).contains("cannot reach"), "{}", stderr(&down));
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_history_files_and_resumable_streams() {
    let cwd = tempfile::tempdir().unwrap();
    let (mut server, addr) = serve(cwd.path(), &["--listen", "127.0.0.1:0"], &[]);
    let alice = token(cwd.path(), &["--user", "alice"]);
    let bob = token(cwd.path(), &["--user", "bob"]);
    let client = http_client();
    let (_, chat) = post(&addr, &alice, "createChat", json!({"userIds": ["bob"]})).await;
    let chat = chat["data"]["chat"]["id"].as_i64().unwrap();
    let send = |id: &'static str, extra: Value| {
        let (addr, alice) = (addr.clone(), alice.clone());
        async move {
            let mut m = json!({"clientMessageId": id, "chatId": chat, "text": id});
            m.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let (status, body) = post(&addr, &alice, "message", json!({"messages": [m]})).await;
            assert_eq!(status, 200, "{body}");
        }
    };
    send("before", json!({})).await;
    let poll: Value = client
        .get(format!("{addr}/v1/poll?since=0&timeout=0&token={bob}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cursor = poll["next"].as_i64().unwrap();
    let upload: Value = client
        .post(format!("{addr}/v1/files?name=notes.txt"))
        .bearer_auth(&alice)
        .body("the notes")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let file = upload["data"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{upload}"))
        .to_string();
    send("after", json!({"type": "file", "fileId": file})).await;

    let backup = chinwag(cwd.path(), &["backup", "copy"]);
    assert!(backup.status.success(), "{}", stderr(&backup));
    // The source keeps serving, and what it stores now is not in the copy.
    send("later", json!({})).await;
    assert!(terminate(&mut server).success());
    let refused = chinwag(cwd.path(), &["backup", "copy"]);
    assert!(
        stderr(&refused).contains("not empty"),
        "{}",
        stderr(&refused)
    );

    let (mut restored, addr) = serve(
        cwd.path(),
        &["--listen", "127.0.0.1:0", "--data-dir", "copy"],
        &[],
    );
    // Tokens minted before the backup still work: the secret came along.
    let (status, history) = post(&addr, &bob, "history", json!({"chatId": chat})).await;
    assert_eq!(status, 200, "{history}");
    let texts: Vec<&str> = history["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["before", "after"]);
    let bytes = client
        .get(format!("{addr}/v1/files/{file}?token={bob}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"the notes");
    // Bob's stream resumes from his cursor: only what came after it.
    let mut stream = client
        .get(format!("{addr}/v1/events?token={bob}"))
        .header("Last-Event-ID", cursor.to_string())
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    while !text.contains("\"after\"") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), stream.chunk())
            .await
            .expect("the resumed stream stalled")
            .unwrap()
            .expect("the resumed stream ended");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!text.contains("\"before\""), "{text}");
    assert!(!text.contains("event: reset"), "{text}");
    drop(stream);
    assert!(terminate(&mut restored).success());
}

#[tokio::test]
async fn metrics_on_their_own_address_and_a_json_log_line_per_request() {
    let cwd = tempfile::tempdir().unwrap();
    let (mut server, banner) = serve_logging(
        cwd.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ],
        &[("RUST_LOG", "chinwag=debug")],
        Stdio::piped(),
    );
    let (addr, metrics) = (banner[0].clone(), banner[1].clone());
    let lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let v = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let _ = tx.send(v);
        }
    });
    let alice = token(cwd.path(), &["--user", "alice"]);
    assert_eq!(chats_status(&addr, &alice).await, 200);
    let (status, _) = post(&addr, &alice, "history", json!({"chatId": 99})).await;
    assert_eq!(status, 404);

    // One line per answered request, with the route template, the user, the status and ms.
    let mut answered = Vec::new();
    while answered.len() < 2 {
        let line = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .expect("no request line")
            .unwrap();
        if line["fields"]["message"] == "answered" {
            answered.push(line);
        }
    }
    let [ok, missing] = &answered[..] else {
        unreachable!()
    };
    assert_eq!(ok["level"], "INFO");
    assert_eq!(ok["fields"]["status"], 200);
    assert_eq!(ok["span"]["route"], "/v1/chats");
    assert_eq!(ok["span"]["method"], "POST");
    assert_eq!(ok["span"]["user"], "alice");
    assert!(ok["fields"]["ms"].as_f64().is_some(), "{ok}");
    assert_eq!(missing["level"], "DEBUG");
    assert_eq!(missing["fields"]["status"], 404);
    assert_eq!(missing["fields"]["reason"], "chat_not_found");

    // The metrics address answers without a key; the main one wants the service key.
    let client = http_client();
    let page = client.get(&metrics).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains(
            "chinwag_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/chats\",status=\"200\"} 1"
        ),
        "{page}"
    );
    let other = client
        .get(metrics.replace("/metrics", "/v1/chats"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let keyless = client.get(format!("{addr}/metrics")).send().await.unwrap();
    assert_eq!(keyless.status(), 401);
    let key = std::fs::read_to_string(cwd.path().join("chinwag-data/service-key")).unwrap();
    let keyed = client
        .get(format!("{addr}/metrics"))
        .bearer_auth(key.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 200);
    assert!(terminate(&mut server).success());
}

#[tokio::test]
async fn the_version_names_the_commit_of_a_checkout() {
    let cwd = tempfile::tempdir().unwrap();
    let version = chinwag(cwd.path(), &["--version"]);
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success());
    match head {
        Some(head) => {
            let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
            assert_eq!(
                version,
                format!("chinwag {} (commit {head})", env!("CARGO_PKG_VERSION"))
            );
        }
        // Built from a source tree without git: the version alone.
        None => assert_eq!(version, format!("chinwag {}", env!("CARGO_PKG_VERSION"))),
    }
}

#[tokio::test]
async fn the_open_file_limit_is_raised_to_the_hard_limit_at_start() {
    use std::os::unix::process::CommandExt;
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(cwd.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only getrlimit and setrlimit between fork and exec, on the child's own limits.
    unsafe {
        cmd.pre_exec(|| {
            let (_, hard) = chinwag::health::open_files()?;
            chinwag::health::set_open_files(256.min(hard), hard)
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = out.next().unwrap().unwrap();
    assert!(first.starts_with("chinwag listening on"), "{first}");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers[0], numbers[1], "soft = hard: {files}");
    assert!(terminate(&mut child).success());
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(
        log.contains(&format!("open-file limit: {} (was 256)", numbers[0])),
        "{log}"
    );
}

#[tokio::test]
async fn shutdown_waits_for_requests_in_flight_only_as_long_as_the_grace() {
    use tokio::io::AsyncWriteExt;
    let cwd = tempfile::tempdir().unwrap();
    let (mut server, addr) = serve(
        cwd.path(),
        &["--listen", "127.0.0.1:0", "--shutdown-grace", "1s"],
        &[],
    );
    let alice = token(cwd.path(), &["--user", "alice"]);
    // An upload whose body never finishes keeps its request in flight.
    let mut conn = tokio::net::TcpStream::connect(addr.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /v1/files?name=a.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\n\
         Content-Length: 100000\r\n\r\npartial"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    // Lets the server read the head: nothing outside its process shows that it has.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || terminate(&mut server))
        .await
        .unwrap();
    // With the default grace (10 s), `terminate` would give up and fail here.
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "it did wait for the request in flight"
    );
    drop(conn);
}

#[tokio::test]
async fn the_janitor_runs_at_its_interval() {
    let cwd = tempfile::tempdir().unwrap();
    let (mut server, addr) = serve(
        cwd.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--retention",
            "1s",
            "--janitor-interval",
            "1s",
        ],
        &[],
    );
    let alice = token(cwd.path(), &["--user", "alice"]);
    let (status, _) = post(&addr, &alice, "createChat", json!({"userIds": ["bob"]})).await;
    assert_eq!(status, 200);
    // Within a few intervals the chat's event is past retention and pruned: a poll from the
    // start of time gets `reset` instead of the event.
    crate::helpers::wait_for("the chat's event pruned", 10.0, || async {
        let poll: Value = http_client()
            .get(format!("{addr}/v1/poll?since=0&timeout=0&token={alice}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (poll["events"][0]["type"] == "reset").then_some(())
    })
    .await;
    assert!(terminate(&mut server).success());
}

/// The allocator's settings compiled into the binary are the ones it runs with, and the
/// environment still overrides them (docs/operations.md, "Memory the allocator keeps"): jemalloc
/// prints the options in force when asked for its statistics at exit.
#[test]
fn the_binary_runs_with_its_allocator_settings_unless_the_environment_overrides_them() {
    let cwd = tempfile::tempdir().unwrap();
    let options = |conf: &str| {
        let out = chinwag_with(cwd.path(), &["--version"], &[("_RJEM_MALLOC_CONF", conf)]);
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    let compiled = options("stats_print:true");
    assert!(compiled.contains("opt.narenas: 1\n"), "{compiled}");
    assert!(compiled.contains("opt.dirty_decay_ms: 1000 "), "{compiled}");
    let overridden = options("stats_print:true,narenas:2,dirty_decay_ms:0");
    assert!(overridden.contains("opt.narenas: 2\n"), "{overridden}");
    assert!(
        overridden.contains("opt.dirty_decay_ms: 0 "),
        "{overridden}"
    );
}
