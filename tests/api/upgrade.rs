//! Upgrading in place: the real binary started on a data directory that an earlier release wrote
//! (tests/fixtures/v4 by the schema-4 release, with a copy of each event per recipient;
//! tests/fixtures/v6 by the schema-6 release, with an event row per message; see
//! tests/fixtures/make.sh) keeps the history and resumes every old cursor to exactly the events
//! that release replayed, then carries on with the new event log.

use std::path::Path;

use serde_json::{json, Value};

use crate::helpers::binary::{serve, terminate, token};
use crate::helpers::{http_client, Sse};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const ARGS: &[&str] = &["--secret", "fixture-secret", "--service-key", "fixture-key"];

/// What the release that wrote `fixture` answered to `poll?since=0` for `user`.
fn old_replay(fixture: &str, user: &str) -> Value {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{fixture}/replay-{user}.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The server under test; killed if the test fails before it stops it.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A copy of the fixture's data directory, and the server started on it.
fn upgraded(dir: &Path, fixture: &str) -> (Served, String) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(
        format!("{FIXTURES}/{fixture}/chinwag.db"),
        data.join("chinwag.db"),
    )
    .unwrap();
    let mut args = vec![
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(ARGS);
    let (child, addr) = serve(dir, &args, &[]);
    (Served(child), addr)
}

fn user_token(dir: &Path, user: &str) -> String {
    token(dir, &["--user", user, "--secret", "fixture-secret"])
}

async fn poll(base: &str, tok: &str, since: i64) -> Value {
    let url = format!("{base}/v1/poll?since={since}&timeout=0&token={tok}");
    let res = http_client().get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// A client request to the upgraded server that must succeed; its `data`.
async fn ok(base: &str, tok: &str, kind: &str, data: Value) -> Value {
    let (status, body) = crate::helpers::binary::post(base, tok, kind, data).await;
    assert_eq!(status, 200, "{kind}: {body}");
    body["data"].clone()
}

/// The events of a poll answer up to `through` (polling marks messages delivered, which adds
/// `messageStatus` events after the old ones).
fn up_to(answer: &Value, through: i64) -> Vec<Value> {
    answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["id"].as_i64().unwrap() <= through)
        .cloned()
        .collect()
}

fn ids(events: &Value) -> Vec<i64> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn every_old_cursor_of_a_schema_4_database_resumes_to_the_events_it_replayed() {
    every_old_cursor_resumes("v4").await;
}

#[tokio::test]
async fn every_old_cursor_of_a_schema_6_database_resumes_to_the_events_it_replayed() {
    every_old_cursor_resumes("v6").await;
}

#[tokio::test]
async fn after_upgrading_a_schema_4_database_history_is_intact_and_new_ids_follow() {
    history_intact_and_new_ids_follow("v4").await;
}

#[tokio::test]
async fn after_upgrading_a_schema_6_database_history_is_intact_and_new_ids_follow() {
    history_intact_and_new_ids_follow("v6").await;
}

async fn every_old_cursor_resumes(fixture: &str) {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = upgraded(dir.path(), fixture);
    let base = addr.clone();

    for user in ["alice", "bob", "carol"] {
        let old = old_replay(fixture, user);
        let tok = user_token(dir.path(), user);

        // Act
        let all = poll(&base, &tok, 0).await;

        // Assert: the same events, byte for byte.
        let through = old["next"].as_i64().unwrap();
        let old_events = old["events"].as_array().unwrap();
        assert_eq!(&up_to(&all, through), old_events, "{user}'s replay from 0");
        assert!(all["next"].as_i64().unwrap() >= through);
        // Resuming from each old id gives exactly the rest.
        for (i, e) in old_events.iter().enumerate() {
            let id = e["id"].as_i64().unwrap();
            let rest = poll(&base, &tok, id).await;
            assert_eq!(
                &up_to(&rest, through)[..],
                &old_events[i + 1..],
                "{user} from {id}"
            );
        }
    }
    terminate(&mut server.0);
}

async fn history_intact_and_new_ids_follow(fixture: &str) {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = upgraded(dir.path(), fixture);
    let base = addr.clone();
    let (alice, bob, carol) = (
        user_token(dir.path(), "alice"),
        user_token(dir.path(), "bob"),
        user_token(dir.path(), "carol"),
    );
    let bob_next = old_replay(fixture, "bob")["next"].as_i64().unwrap();
    let carol_next = old_replay(fixture, "carol")["next"].as_i64().unwrap();
    let bob_old_ids = ids(&old_replay(fixture, "bob")["events"]);
    let resume_from = bob_old_ids[bob_old_ids.len() / 2];

    // Act
    let direct = ok(&base, &alice, "history", json!({"chatId": 1})).await;
    let group = ok(&base, &bob, "history", json!({"chatId": 2})).await;
    let sent = ok(
        &base,
        &alice,
        "message",
        json!({"messages": [{"clientMessageId": "after-upgrade", "chatId": 2, "text": "new log"}]}),
    )
    .await;
    let bob_new = poll(&base, &bob, bob_next).await;
    let carol_new = poll(&base, &carol, carol_next).await;
    // A stream resumed from an old id replays the old events, then the new one, with no reset.
    let res = http_client()
        .get(format!("{base}/v1/events?snapshot=0&token={bob}"))
        .header("Last-Event-ID", resume_from.to_string())
        .send()
        .await
        .unwrap();
    let mut stream = Sse::new(res);
    let mut resumed = Vec::new();
    while let Some(ev) = stream.next_within(3.0).await {
        assert_ne!(ev.event, "reset");
        let done = ev.event == "message" && ev.data()["clientMessageId"] == "after-upgrade";
        if ev.event == "messageStatus" && ev.id.unwrap() > bob_next {
            continue;
        }
        resumed.push(ev.id.unwrap());
        if done {
            break;
        }
    }

    // Assert
    let texts: Vec<&str> = direct["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    // Bob cleared chat 1 for himself, not for alice; message 1 was deleted, 2 edited.
    assert_eq!(texts, ["", "hello two (edited)", "hello 3", "hi alice"]);
    assert_eq!(group["messages"].as_array().unwrap().len(), 2);
    // The fixture holds messages 1 to 6; a new message's id is its own event's id.
    let new_id = sent["messages"][0]["id"].as_i64().unwrap();
    assert!(new_id > 6, "message ids continue: {new_id}");
    let messages: Vec<&Value> = bob_new["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "message")
        .collect();
    assert_eq!(messages.len(), 1, "{bob_new}");
    assert!(
        messages[0]["id"].as_i64().unwrap() > bob_next,
        "event ids continue past the old ones"
    );
    assert_eq!(messages[0]["id"], new_id, "a new message is its own event");
    assert_eq!(messages[0]["data"]["text"], "new log");
    let carol_messages = carol_new["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] != "messageStatus")
        .count();
    assert_eq!(
        carol_messages, 0,
        "carol left chat 2 before the upgrade: {carol_new}"
    );
    let old_after: Vec<i64> = bob_old_ids
        .into_iter()
        .filter(|id| *id > resume_from)
        .collect();
    assert_eq!(resumed[..resumed.len() - 1], old_after[..]);
    terminate(&mut server.0);
}
