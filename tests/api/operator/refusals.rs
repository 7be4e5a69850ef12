//! What the binary refuses at start, and says why: a second server, a token without a secret,
//! empty secrets and useless limits, a taken address; the command line's forms.

use std::process::{Command, Stdio};

use super::{chinwag, stderr};
use crate::helpers::binary::{chats_status, serve, terminate, token, BIN};
use crate::helpers::http_client;

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_is_refused() {
    let cwd = tempfile::tempdir().unwrap();
    let (mut first, _) = serve(cwd.path(), &["--listen", "127.0.0.1:0"], &[]);
    let second = chinwag(cwd.path(), &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!second.status.success());
    let message = stderr(&second);
    assert!(
        message.contains("chinwag-data") && message.contains("in use by another chinwag"),
        "{message}"
    );
    let status = terminate(&mut first);
    assert!(status.success(), "{status:?}");
    // Once the first one is gone, the directory is free again.
    let (mut again, _) = serve(cwd.path(), &["--listen", "127.0.0.1:0"], &[]);
    assert!(terminate(&mut again).success());
}

#[tokio::test]
async fn a_token_without_a_secret_is_refused_and_says_where_it_looked() {
    let cwd = tempfile::tempdir().unwrap();
    let out = chinwag(cwd.path(), &["token", "--user", "alice"]);
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains("no token secret at") && message.contains("chinwag-data/secret"),
        "{message}"
    );
    assert!(message.contains("--data-dir") && message.contains("--secret"));
    assert!(out.stdout.is_empty(), "nothing is printed as a token");
    assert!(
        !cwd.path().join("chinwag-data").exists(),
        "no secret is invented"
    );
    // With the server's secret given, it mints.
    let out = chinwag(cwd.path(), &["token", "--user", "alice", "--secret", "s"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn empty_secrets_and_useless_limits_are_refused_at_start() {
    let cwd = tempfile::tempdir().unwrap();
    /// The arguments, the environment, and the flag the refusal must name.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 7] = [
        (&["serve", "--secret", ""], &[], "--secret"),
        (&["serve", "--service-key", " "], &[], "--service-key"),
        (&["serve"], &[("CHINWAG_SECRET", "")], "--secret"),
        (&["token", "--user", "a", "--secret", ""], &[], "--secret"),
        (&["serve", "--max-body", "0"], &[], "--max-body"),
        (&["serve", "--retention", "0s"], &[], "--retention"),
        (&["serve", "--stall-timeout", "0s"], &[], "--stall-timeout"),
    ];
    for (args, env, flag) in cases {
        let out = Command::new(BIN)
            .args(args)
            .args(
                ["--listen", "127.0.0.1:0"]
                    .iter()
                    .filter(|_| args[0] == "serve"),
            )
            .envs(env.iter().copied())
            .current_dir(cwd.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} {env:?} started");
        assert!(stderr(&out).contains(flag), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
    }
    // An empty kept secret is refused too, not used as a key.
    std::fs::create_dir_all(cwd.path().join("chinwag-data")).unwrap();
    std::fs::write(cwd.path().join("chinwag-data/secret"), "\n").unwrap();
    let out = chinwag(cwd.path(), &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("secret is empty"), "{}", stderr(&out));
}

#[tokio::test]
async fn token_takes_durations_and_lists_only_its_own_flags() {
    let cwd = tempfile::tempdir().unwrap();
    let (mut server, addr) = serve(cwd.path(), &["--listen", "127.0.0.1:0"], &[]);
    for ttl in ["1h", "7d", "90", "30m"] {
        let t = token(cwd.path(), &["--user", "alice", "--ttl", ttl]);
        assert_eq!(chats_status(&addr, &t).await, 200, "ttl {ttl}");
    }
    let bad = chinwag(cwd.path(), &["token", "--user", "a", "--ttl", "soon"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--ttl"), "{}", stderr(&bad));
    let help = chinwag(cwd.path(), &["token", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    assert!(
        help.contains("--ttl") && help.contains("--secret"),
        "{help}"
    );
    assert!(!help.contains("--service-key"), "{help}");
    assert!(terminate(&mut server).success());
}

#[tokio::test]
async fn an_address_in_use_is_named_and_port_only_means_every_interface() {
    let cwd = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = chinwag(
        cwd.path(),
        &["serve", "--listen", &format!("127.0.0.1:{port}")],
    );
    assert!(!out.status.success());
    let message = stderr(&out);
    assert!(
        message.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{message}"
    );
    assert!(
        !cwd.path().join("chinwag-data").exists(),
        "a server that cannot listen leaves no data directory"
    );
    drop(taken);

    let (mut server, addr) = serve(cwd.path(), &["--listen", ":0"], &[]);
    assert!(addr.starts_with("http://0.0.0.0:"), "{addr}");
    let port = addr.rsplit(':').next().unwrap();
    let health = http_client()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let bad = chinwag(cwd.path(), &["serve", "--listen", "nowhere"]);
    assert!(stderr(&bad).contains("not an address"), "{}", stderr(&bad));
    assert!(terminate(&mut server).success());
}
