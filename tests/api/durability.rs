//! What a `201` promises is on disk: an upload's bytes are synced, its new name is synced with
//! the directory that holds it, and only then is its row committed (watched through the real
//! binary's system calls, since only a power cut would show it otherwise); and an upload that
//! finds the disk full is `507` and leaves nothing behind.

use crate::helpers::binary;
use crate::helpers::{available, wait_for};

/// The system calls traced: the renames and syncs that make an upload durable.
const TRACED: &str = "trace=rename,renameat,renameat2,fsync,fdatasync";

/// Ends the server that `tracer` runs as its child (SIGTERM), then waits (at most 10 s) for the
/// tracer.
async fn stop_traced(tracer: &mut std::process::Child) {
    let pid = tracer.id();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let server: libc::pid_t = children.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: signals the server the tracer started for this test, which is still running.
    assert_eq!(unsafe { libc::kill(server, libc::SIGTERM) }, 0);
    wait_for("the traced server to stop", 10.0, || {
        std::future::ready(tracer.try_wait().unwrap().map(|_| ()))
    })
    .await;
}

/// The index of the first line at or after `from` where a call that `starts` begins.
fn first(lines: &[&str], from: usize, starts: impl Fn(&str) -> bool) -> Option<usize> {
    lines[from..]
        .iter()
        .position(|line| {
            // "PID call(args…": the call's name and arguments, after the thread id (padded).
            line.split_once(' ')
                .is_some_and(|(_, call)| starts(call.trim_start()))
        })
        .map(|i| i + from)
}

#[tokio::test]
async fn an_upload_is_synced_then_renamed_then_its_directory_synced_before_its_row_commits() {
    if !available("strace", &["-V"]) {
        eprintln!("skipped: strace is not installed");
        return;
    }
    // Arrange
    let cwd = tempfile::tempdir().unwrap();
    let trace = cwd.path().join("trace.txt");
    let trace_arg = trace.to_str().unwrap();
    let tracer = ["strace", "-f", "-y", "-qq", "-e", TRACED, "-o", trace_arg];
    let (mut child, addr) = binary::serve_under(cwd.path(), &tracer, &["--listen", "127.0.0.1:0"]);
    let token = binary::token(cwd.path(), &["--user", "alice"]);

    // Act
    let res = crate::helpers::http_client()
        .post(format!("{addr}/v1/files?name=notes.txt"))
        .bearer_auth(&token)
        .body("the minutes of the meeting")
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap();
    stop_traced(&mut child).await;

    // Assert
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["id"].as_str().unwrap();
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let stored = format!("chinwag-data/files/{id}\"");
    let rename = first(&lines, 0, |c| {
        c.starts_with("rename") && c.contains(&stored)
    })
    .unwrap_or_else(|| panic!("no rename to {stored} in:\n{text}"));
    let temp = lines[rename]
        .split('"')
        .nth(1)
        .and_then(|p| p.rsplit('/').next())
        .unwrap();
    assert!(temp.starts_with("tmp-"), "{}", lines[rename]);
    let synced_bytes = first(&lines, 0, |c| c.starts_with("fsync(") && c.contains(temp));
    assert!(
        synced_bytes.is_some_and(|i| i < rename),
        "the upload's bytes were not synced before its rename:\n{text}"
    );
    let synced_dir = first(&lines, rename, |c| {
        c.starts_with("fsync(") && c.contains("chinwag-data/files>")
    })
    .unwrap_or_else(|| panic!("the files directory was not synced after the rename:\n{text}"));
    let committed = first(&lines, rename, |c| {
        c.starts_with("fdatasync(") && c.contains("chinwag.db-wal>")
    })
    .unwrap_or_else(|| panic!("no commit after the rename:\n{text}"));
    assert!(
        synced_dir < committed,
        "the row committed before the directory was synced:\n{text}"
    );
}

/// Runs the server (`"$@"`) in its own mount namespace, with a 256 KiB tmpfs over its files
/// directory (`$0`).
const SMALL_FILES_DIR: &str = "mount -t tmpfs -o size=256k tmpfs \"$0\" && exec \"$@\"";

/// An upload of `bytes` bytes as `token`'s user: status and body.
async fn upload(addr: &str, token: &str, bytes: usize) -> (u16, serde_json::Value) {
    let res = crate::helpers::http_client()
        .post(format!("{addr}/v1/files?name=big.bin"))
        .bearer_auth(token)
        .body(vec![7u8; bytes])
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn an_upload_that_fills_the_disk_is_507_and_leaves_no_partial_file() {
    if !available("unshare", &["-rm", "true"]) {
        eprintln!("skipped: no mount namespaces here");
        return;
    }
    // Arrange: the files directory is a 256 KiB file system; the database is not on it
    let cwd = tempfile::tempdir().unwrap();
    let files = cwd.path().join("chinwag-data/files");
    std::fs::create_dir_all(&files).unwrap();
    let files = files.to_str().unwrap();
    let namespace = ["unshare", "-rm", "sh", "-c", SMALL_FILES_DIR, files];
    let args = ["--listen", "127.0.0.1:0"];
    let (mut child, addr) = binary::serve_under(cwd.path(), &namespace, &args);
    let token = binary::token(cwd.path(), &["--user", "alice"]);

    // Act
    let (full_status, full_body) = upload(&addr, &token, 400 * 1024).await;
    let (fits_status, fits_body) = upload(&addr, &token, 150 * 1024).await;
    let (chats, _) = binary::post(&addr, &token, "chats", serde_json::json!({})).await;
    binary::terminate(&mut child);

    // Assert: refused in the envelope; its partial bytes were removed, so a smaller one fits
    assert_eq!(full_status, 507, "{full_body}");
    assert_eq!(full_body["error"]["reason"], "insufficient_storage");
    assert_eq!(fits_status, 201, "{fits_body}");
    assert_eq!(chats, 200);
}
