//! The host API over a real nats-server (seed 001's Bus API): every route with the same answers
//! and errors as over HTTP, frames that are not requests, several servers sharing one topic,
//! and a bus that comes and goes while the HTTP API keeps working.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::nats::{ask, ask_raw, bus, Nats};
use crate::helpers::{host, host_ok, spawn_with, wait_for, TestApp};

const TOPIC: &str = "dev_chats.test.1";

async fn on_bus(nats: &Nats, topic: &str) -> TestApp {
    let config = bus(nats.url(), topic, None);
    spawn_with(move |c| c.bus = Some(config)).await
}

/// `GET /healthz`'s status: the HTTP API, whatever the bus does.
async fn healthz(app: &TestApp) -> u16 {
    let res = app.client.get(format!("{}/healthz", app.base)).send();
    res.await.unwrap().status().as_u16()
}

/// Waits until the server answers on the bus (it joins the topic in the background).
async fn ready(client: &async_nats::Client, topic: &str) {
    let probe = json!({"method": "GET", "path": "/chats/chats", "body": {"user_id": "probe"}});
    wait_for("the server to answer on the bus", 10.0, || async {
        ask_raw(client, topic, probe.to_string().into_bytes()).await
    })
    .await;
}

#[tokio::test]
async fn every_host_route_answers_over_the_bus_as_over_http() {
    let Some(nats) = Nats::start(None) else {
        return;
    };
    let app = on_bus(&nats, TOPIC).await;
    let client = nats.client().await;
    ready(&client, TOPIC).await;
    let (status, made) = ask(&client, TOPIC, "POST", "/chats/new", json!({"order_id": 7})).await;
    assert_eq!(status, 200, "{made}");
    let chat = made["chat"]["id"].as_i64().unwrap();
    let member = json!({"user_id": "ann", "user_type": "client", "chat_id": chat});
    let (status, _) = ask(&client, TOPIC, "POST", "/chats/user/subscribe", member).await;
    assert_eq!(status, 200);

    for (method, path, good, bad, field) in crate::host::routes::routes(chat) {
        let m = method.as_str();
        let (status, body) = ask(&client, TOPIC, m, path, bad).await;
        assert_eq!(status, 400, "{m} {path}: {body}");
        assert_eq!(body["error"]["reason"], "bad_request", "{m} {path}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{m} {path}: {message:?} should name {field}"
        );
        let (status, body) = ask(&client, TOPIC, m, path, good.clone()).await;
        assert!((200..300).contains(&status), "{m} {path}: {status} {body}");
        if method == Method::GET {
            // A read answers the same object over both.
            let (http_status, http_body) = host(&app, method.clone(), path, good).await;
            assert_eq!(
                (status, &body),
                (http_status.as_u16(), &http_body),
                "{m} {path}"
            );
        } else if status == 204 {
            assert_eq!(body, Value::Null, "{m} {path}");
        }
    }
    // What was written over the bus is what HTTP reads.
    let history = json!({"user_id": "ann", "chat_id": chat});
    let page = host_ok(&app, Method::GET, "/chats/chat/history", history).await;
    assert!(page.to_string().contains("\"hi\""), "{page}");
}

#[tokio::test]
async fn frames_that_are_not_requests_get_the_error_table() {
    let Some(nats) = Nats::start(None) else {
        return;
    };
    let _app = on_bus(&nats, TOPIC).await;
    let client = nats.client().await;
    ready(&client, TOPIC).await;
    let raw = |payload: &str| ask_raw(&client, TOPIC, payload.as_bytes().to_vec());
    for (payload, status, says) in [
        ("not json", 400, "expected"),
        ("[1, 2]", 400, "not an object"),
        (r#"{"path": "/chats/chats"}"#, 400, "method is required"),
        (r#"{"method": "GET"}"#, 400, "path is required"),
        (
            r#"{"method": 7, "path": "/chats/chats"}"#,
            400,
            "method must be",
        ),
        (
            r#"{"method": "GET", "path": "/chats/chats", "body": {"user_id": "a", "user_id": "b"}}"#,
            400,
            "given twice",
        ),
        (
            r#"{"method": "GET", "path": "/nope"}"#,
            404,
            "no such host endpoint",
        ),
        (r#"{"method": "DELETE", "path": "/chats/new"}"#, 405, "POST"),
        (
            r#"{"method": "G E T", "path": "/chats/new"}"#,
            400,
            "not an HTTP method",
        ),
    ] {
        let (got, body) = raw(payload).await.expect("an answer");
        assert_eq!(got, status, "{payload}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(says),
            "{payload}: {message:?} should say {says:?}"
        );
    }
    // The HTTP API's prefix and a lower-case method are understood; a body may be left out.
    let frame =
        json!({"method": "get", "path": "/v1/server/chats/chats", "body": {"user_id": "ann"}});
    let (status, body) = raw(&frame.to_string()).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["chats"], json!([]));
    let (status, body) = raw(r#"{"method": "POST", "path": "/chats/new"}"#)
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (400, Some("body.order_id is required"))
    );
    // Past the body limit: 413, as over HTTP.
    let big = json!({"method": "POST", "path": "/users", "body": {"user_id": "ann", "first_name": "x".repeat(70_000)}});
    let small = bus(nats.url(), "dev_chats.small", None);
    let _limited = spawn_with(move |c| {
        c.bus = Some(small);
        c.max_body = 64 * 1024;
    })
    .await;
    ready(&client, "dev_chats.small").await;
    let (status, body) = ask_raw(&client, "dev_chats.small", big.to_string().into_bytes())
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["reason"].as_str()),
        (413, Some("payload_too_large"))
    );
}

#[tokio::test]
async fn servers_on_one_topic_share_its_requests_and_each_is_answered_once() {
    let Some(nats) = Nats::start(None) else {
        return;
    };
    let (a, b) = (on_bus(&nats, TOPIC).await, on_bus(&nats, TOPIC).await);
    let client = nats.client().await;
    ready(&client, TOPIC).await;
    // NATS hands each request to one member of the group: send until both have taken some
    // (each joins in the background), then check that none was answered twice or dropped.
    let taken = || a.app.metrics.bus_requests() + b.app.metrics.bus_requests();
    let before = taken();
    let mut sent = 0;
    while a.app.metrics.bus_requests() == 0 || b.app.metrics.bus_requests() == 0 {
        assert!(sent < 500, "one server took all {sent} requests");
        let body = json!({"user_id": format!("u{sent}"), "first_name": "U"});
        let (status, _) = ask(&client, TOPIC, "POST", "/users", body).await;
        assert_eq!(status, 200);
        sent += 1;
    }
    for i in 0..40 {
        let body = json!({"user_id": format!("v{i}"), "first_name": "V"});
        assert_eq!(ask(&client, TOPIC, "POST", "/users", body).await.0, 200);
    }
    assert_eq!(taken(), before + sent + 40);
}

#[tokio::test]
async fn the_bus_may_come_later_and_go_away_while_http_keeps_working() {
    let Some(first) = Nats::start(None) else {
        return;
    };
    let port = first.kill();
    // No bus yet: the server starts and HTTP works.
    let config = bus(format!("nats://127.0.0.1:{port}"), TOPIC, None);
    let app = spawn_with(move |c| c.bus = Some(config)).await;
    assert_eq!(healthz(&app).await, 200);
    // The bus comes: the server joins within its reconnect interval.
    let nats = Nats::on(port, None);
    let client = nats.client().await;
    ready(&client, TOPIC).await;
    // It goes away and comes back: HTTP meanwhile, and the bus again after.
    drop(client);
    nats.kill();
    assert_eq!(healthz(&app).await, 200);
    let nats = Nats::on(port, None);
    let client = nats.client().await;
    ready(&client, TOPIC).await;
    let (status, _) = ask(&client, TOPIC, "POST", "/chats/new", json!({"order_id": 9})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_bus_that_wants_a_token_gets_it() {
    let Some(nats) = Nats::start(Some("s3cret-bus")) else {
        return;
    };
    let config = bus(nats.url(), TOPIC, Some("s3cret-bus"));
    let _app = spawn_with(move |c| c.bus = Some(config)).await;
    let client = nats.client().await;
    ready(&client, TOPIC).await;
    // With the wrong token the server never joins, and HTTP still works.
    let other = bus(nats.url(), "dev_chats.wrong", Some("wrong"));
    let wrong = spawn_with(move |c| c.bus = Some(other)).await;
    let probe = json!({"method": "GET", "path": "/chats/chats", "body": {"user_id": "a"}});
    // Nothing answers within the 2 s the request waits.
    assert!(
        ask_raw(&client, "dev_chats.wrong", probe.to_string().into_bytes())
            .await
            .is_none()
    );
    assert_eq!(healthz(&wrong).await, 200);
}

#[tokio::test]
async fn the_binary_takes_seed_001s_bus_settings_from_its_variables() {
    let Some(nats) = Nats::start(Some("gch7t34yur8u4xm37hy7tnh43")) else {
        return;
    };
    let cwd = tempfile::tempdir().unwrap();
    let url = nats.url();
    // The seed's values as it writes them: a timeout in milliseconds, a reconnect in seconds.
    let env = [
        ("CHINWAG_BUS_URL", url.as_str()),
        ("CHINWAG_BUS_TOPIC", "dev_chats.eldar.1.1"),
        ("CHINWAG_BUS_TOKEN", "gch7t34yur8u4xm37hy7tnh43"),
        ("CHINWAG_BUS_TIMEOUT", "1000"),
        ("CHINWAG_BUS_RECONNECT", "15"),
    ];
    let (mut child, _addr) =
        crate::helpers::binary::serve(cwd.path(), &["--listen", "127.0.0.1:0"], &env);
    let client = nats.client().await;
    ready(&client, "dev_chats.eldar.1.1").await;
    let made = ask(
        &client,
        "dev_chats.eldar.1.1",
        "POST",
        "/chats/new",
        json!({"order_id": 1}),
    )
    .await;
    assert_eq!(made.0, 200, "{}", made.1);
    assert_eq!(made.1["chat"]["kind"], "order");
    assert!(crate::helpers::binary::terminate(&mut child).success());
    // A bad setting is refused before anything starts.
    let out = std::process::Command::new(crate::helpers::binary::BIN)
        .args(["serve", "--bus-url", &url, "--bus-topic", "two words"])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a NATS subject"));
}
