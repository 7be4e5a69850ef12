//! The real `chinwag` binary: runs out of the box, mints tokens that `serve` accepts, reads its
//! `CHINWAG_*` variables, and stops cleanly on SIGTERM.

use std::time::Duration;

use serde_json::json;

use crate::helpers::binary::{chats_status, serve, terminate, token};

#[tokio::test]
async fn runs_out_of_the_box_and_stops_on_sigterm() {
    let cwd = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(cwd.path(), &["--listen", "127.0.0.1:0"], &[]);
    let client = crate::helpers::http_client();

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
    // A token 2 s past its expiry still works within the default 30 s leeway for clock skew.
    let short = token(cwd.path(), &["--user", "alice", "--ttl", "1"]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(chats_status(&addr, &short).await, 200);

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
        ("CHINWAG_TOKEN_LEEWAY", "0s"),
    ];
    let (mut child, addr) = serve(cwd.path(), &[], &env);
    let t = token(cwd.path(), &["--data-dir", data, "--user", "7"]);
    assert_eq!(chats_status(&addr, &t).await, 200);
    // With no leeway (CHINWAG_TOKEN_LEEWAY=0s), a token is refused as soon as it expires.
    let short = token(
        cwd.path(),
        &["--data-dir", data, "--user", "7", "--ttl", "1"],
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(chats_status(&addr, &short).await, 401);
    assert!(terminate(&mut child).success());

    // Same data directory, new process: the old token still works.
    let (mut child, addr) = serve(cwd.path(), &[], &env);
    assert_eq!(chats_status(&addr, &t).await, 200);
    assert!(terminate(&mut child).success());

    // An explicit secret wins over the kept one.
    let (mut child, addr) = serve(cwd.path(), &["--secret", "configured"], &env);
    assert_eq!(chats_status(&addr, &t).await, 401);
    let t2 = token(cwd.path(), &["--secret", "configured", "--user", "7"]);
    assert_eq!(chats_status(&addr, &t2).await, 200);
    assert!(terminate(&mut child).success());
}
