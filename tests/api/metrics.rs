//! `GET /metrics`: the service key guards it, and what it reports follows what the server does
//! (requests by route template, open streams, online users, the writer's commits, stored events).

use serde_json::json;

use crate::helpers::{page, spawn_app, token, value, wait_for, TestApp};

/// Waits (at most 5 s) until `sample` reads `want`.
async fn settles(app: &TestApp, sample: &str, want: f64) {
    let what = format!("{sample} to read {want}");
    wait_for(&what, 5.0, || async {
        (value(&page(app).await, sample) == Some(want)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn metrics_need_the_service_key() {
    let app = spawn_app().await;
    for auth in [None, Some(token("alice")), Some("wrong".to_string())] {
        let mut req = app.client.get(format!("{}/metrics", app.base));
        if let Some(a) = &auth {
            req = req.bearer_auth(a);
        }
        let (status, body) = crate::helpers::read(req.send().await.unwrap()).await;
        assert_eq!(status, 401, "{auth:?}: {body}");
        assert_eq!(body["error"]["reason"], "token_invalid");
    }
}

#[tokio::test]
async fn metrics_follow_requests_streams_and_commits() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let before = page(&app).await;
    let stream = app.events("bob", "", None).await;

    // Act
    for i in 0..3 {
        app.send_text("alice", chat, &format!("m{i}"), "hi").await;
    }
    let (status, _) = app.post("alice", "history", json!({"chatId": 12345})).await;
    assert_eq!(status, 404);

    // Assert
    settles(&app, "chinwag_open_connections{transport=\"sse\"}", 1.0).await;
    settles(&app, "chinwag_online_users", 1.0).await;
    let during = page(&app).await;
    let sends = "chinwag_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/message\",status=\"200\"}";
    assert_eq!(value(&during, sends), Some(3.0), "{during}");
    let missing = "chinwag_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/history\",status=\"404\"}";
    assert_eq!(value(&during, missing), Some(1.0));
    let appended = |p: &str| value(p, "chinwag_events_appended_total").unwrap();
    // Each message is stored once, for its chat.
    assert!(appended(&during) >= appended(&before) + 3.0, "{during}");
    let commits = |p: &str| value(p, "chinwag_writer_batch_size_count").unwrap();
    assert!(commits(&during) > commits(&before));
    assert_eq!(
        value(&during, "chinwag_writer_queue_depth"),
        Some(0.0),
        "nothing is left queued"
    );
    assert!(value(&during, "chinwag_database_size_bytes").unwrap() > 0.0);
    // Webhook outcomes are there before any attempt, at 0.
    for outcome in ["delivered", "failed", "dropped"] {
        let sample = format!("chinwag_webhook_attempts_total{{outcome=\"{outcome}\"}}");
        assert_eq!(value(&during, &sample), Some(0.0), "{during}");
    }
    // Made-up methods share one label.
    for made_up in ["FOO1", "BAR2"] {
        let m = reqwest::Method::from_bytes(made_up.as_bytes()).unwrap();
        let _ = app
            .client
            .request(m, format!("{}/healthz", app.base))
            .send()
            .await;
    }
    let other = "chinwag_http_request_duration_seconds_count{method=\"other\",route=\"/healthz\",status=\"405\"}";
    assert_eq!(value(&page(&app).await, other), Some(2.0));
    // Unknown paths share one label instead of one each.
    let _ = app.client.get(format!("{}/nope/1", app.base)).send().await;
    let _ = app.client.get(format!("{}/nope/2", app.base)).send().await;
    let unknown = "chinwag_http_request_duration_seconds_count{method=\"GET\",route=\"unknown\",status=\"404\"}";
    assert_eq!(value(&page(&app).await, unknown), Some(2.0));

    stream.close();
    settles(&app, "chinwag_open_connections{transport=\"sse\"}", 0.0).await;
}
