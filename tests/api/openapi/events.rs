//! Every pushed event type, by SSE and by long-poll, fits its `Event_*` schema.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{document, named, violations};
use crate::helpers::{spawn_app, SERVICE_KEY};

/// The `Event_*` name of an event type (`custom` for the host's own types).
fn event_schema(doc: &Value, kind: &str) -> String {
    let name = format!("Event_{kind}");
    if doc["components"]["schemas"].get(&name).is_some() {
        name
    } else {
        "Event_custom".into()
    }
}

/// Checks one SSE event against its `Event_*` schema and `SseEvent`; counts it in `seen`.
fn check_event(
    doc: &Value,
    e: &crate::helpers::Event,
    seen: &mut BTreeMap<String, usize>,
    problems: &mut Vec<String>,
) {
    let schema = event_schema(doc, &e.event);
    if e.envelope["type"] != e.event {
        problems.push(format!(
            "event: {} carries type {}",
            e.event, e.envelope["type"]
        ));
    }
    for v in violations(doc, &named(&schema), &e.envelope) {
        problems.push(format!("{}: {v}: {}", e.event, e.envelope));
    }
    for v in violations(doc, &named("SseEvent"), &e.envelope) {
        problems.push(format!("SseEvent {}: {v}", e.event));
    }
    *seen.entry(schema).or_default() += 1;
}

#[tokio::test]
async fn every_pushed_event_fits_its_schema() {
    let app = spawn_app().await;
    let doc = document();
    let mut bob = app.events("bob", "", None).await;
    let direct = app.direct_chat("alice", "bob").await;
    let msg = app.send_text("alice", direct, "m1", "hi").await;
    app.ok(
        "bob",
        "messageStatus",
        json!({"status": "read", "chatId": direct, "messageId": msg["id"]}),
    )
    .await;
    // Bob's other connection sees his own status, alice's stream the delivered tick.
    app.ok(
        "alice",
        "typing",
        json!({"chatId": direct, "status": "typing", "message": "h"}),
    )
    .await;
    app.ok(
        "alice",
        "call",
        json!({"chatId": direct, "callId": "c1", "action": "offer", "sdp": "v=0"}),
    )
    .await;
    // Alice connects (bob gets opponentStatus), then drops her stream (clientConnectionError).
    let alice = app.events("alice", "", None).await;
    crate::helpers::wait_for("alice online", 5.0, || async {
        let answer = app
            .ok("bob", "opponentStatus", json!({"chatId": direct}))
            .await;
        (answer["users"][0]["status"] == "online").then_some(())
    })
    .await;
    alice.close();
    let host = |path: &str, body: Value| {
        app.client
            .post(format!("{}/v1/server{path}", app.base))
            .bearer_auth(SERVICE_KEY)
            .json(&body)
            .send()
    };
    for (path, body) in [
        (
            "/ws/client/consultation/update",
            json!({"user_id": "bob", "data": {"active": true, "consultationId": 501}}),
        ),
        (
            "/ws/client/message",
            json!({"user_id": "bob", "type": "orderUpdate", "data": {"step": 2}}),
        ),
    ] {
        let res = host(path, body).await.unwrap();
        assert_eq!(res.status(), 204);
    }
    app.ok(
        "alice",
        "clearChat",
        json!({"chatId": direct, "forAll": true}),
    )
    .await;
    let group = app.group("alice", &["bob", "carol"]).await;
    app.ok(
        "alice",
        "addMembers",
        json!({"chatId": group, "userIds": ["dave"]}),
    )
    .await;
    app.ok(
        "alice",
        "removeMember",
        json!({"chatId": group, "userId": "bob"}),
    )
    .await;

    let wanted: BTreeSet<String> = doc["components"]["schemas"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("Event_"))
        .cloned()
        .collect();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    // A cursor from the future gets `reset` before the snapshot.
    let mut reset = app.events("bob", "since=999999", None).await;
    for _ in 0..2 {
        check_event(&doc, &reset.next().await, &mut seen, &mut problems);
    }
    reset.close();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.keys().cloned().collect::<BTreeSet<_>>() != wanted
        && tokio::time::Instant::now() < deadline
    {
        if let Some(e) = bob.next_within(0.5).await {
            check_event(&doc, &e, &mut seen, &mut problems);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let missing: Vec<_> = wanted.iter().filter(|w| !seen.contains_key(*w)).collect();
    assert!(
        missing.is_empty(),
        "never pushed: {missing:?} (seen {seen:?})"
    );

    // The same events by long-poll fit PollResponse.
    let (status, body) = app.poll("bob", "since=0&timeout=0").await;
    assert_eq!(status, 200);
    let bad = violations(&doc, &named("PollResponse"), &body);
    assert!(bad.is_empty(), "{body}\n{}", bad.join("\n"));
    assert!(body["events"].as_array().unwrap().len() >= 8, "{body}");
}
