//! Groups and their size: membership deltas, capped member lists and paging, the group size
//! limit, presence and receipts in large groups, and message events replayed as messages now are.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    assert_outcome, concerns, polled, spawn_app, spawn_with, until_message, watch, Event, Outcome,
    Sse, TestApp, BAD_REQUEST, NO_CHAT, OK,
};

/// The ids of a list of objects with an `id` (members, users), in the order given.
fn ids_of(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|m| m["id"].as_str().expect("a string id").to_string())
        .collect()
}

/// The type and data of every stored event about `chat` a poll from `since` returns to `user`.
async fn polled_of_chat(app: &TestApp, user: &str, since: i64, chat: i64) -> Vec<(String, Value)> {
    polled(app, user, since)
        .await
        .into_iter()
        .filter(|e| e["id"].is_i64())
        .map(|e| (e["type"].as_str().unwrap().to_string(), e["data"].clone()))
        .filter(|(kind, data)| concerns(kind, data, chat))
        .collect()
}

/// The stored events about `chat` that arrive on `sse`, up to and including the first of type
/// `last` (waiting up to 5 s for each).
async fn stored_of_chat_until(sse: &mut Sse, chat: i64, last: &str) -> Vec<Event> {
    let mut seen = Vec::new();
    loop {
        let e = sse.next().await;
        if e.id.is_none() || !concerns(&e.event, e.data(), chat) {
            continue;
        }
        let done = e.event == last;
        seen.push(e);
        if done {
            return seen;
        }
    }
}

/// Every event that arrives on `sse` within `secs` seconds.
async fn events_within(sse: &mut Sse, secs: f64) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return seen;
        }
        match sse.next_within(left.as_secs_f64()).await {
            Some(e) => seen.push(e),
            None => return seen,
        }
    }
}

/// Whether an event is an `opponentStatus` that names chat `chat`.
fn is_status_about(e: &Event, chat: i64) -> bool {
    e.event == "opponentStatus"
        && (e.data()["chatId"] == chat
            || e.data()["chatIds"]
                .as_array()
                .is_some_and(|ids| ids.contains(&json!(chat))))
}

/// The next `read` receipt on `sse`, skipping everything else (delivered receipts included).
async fn next_read(sse: &mut Sse) -> Event {
    loop {
        let e = sse.next_of("messageStatus").await;
        if e.data()["status"] == "read" {
            return e;
        }
    }
}

/// `n` member ids that sort in the order they are listed: `m001`, `m002`, ...
fn numbered(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("m{i:03}")).collect()
}

/// Creates a group of `creator` and `others`; returns the createChat answer.
async fn create_group(app: &TestApp, creator: &str, others: &[String]) -> Value {
    app.ok(
        creator,
        "createChat",
        json!({"userIds": others, "name": "Large"}),
    )
    .await
}

// ---- Membership deltas ----

#[tokio::test]
async fn add_members_pushes_who_joined_then_the_chat_to_old_and_new_members() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let mut watching = watch(&app, &["alice", "bob", "carol", "dave"]).await;

    // Act
    app.ok(
        "alice",
        "addMembers",
        json!({"chatId": team, "userIds": ["dave"]}),
    )
    .await;

    // Assert
    let delta = json!({
        "chatId": team,
        "added": [{"id": "dave", "role": "member"}],
        "removed": [],
        "memberCount": 4,
    });
    for (user, sse, since) in &mut watching {
        let live = stored_of_chat_until(sse, team, "chat").await;
        let kinds: Vec<&str> = live.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(kinds, ["chatMembers", "chat"], "{user}: live");
        assert_eq!(live[0].data(), &delta, "{user}: the delta");
        let chat = live[1].data();
        assert_eq!(chat["memberCount"], 4, "{user}");
        assert_eq!(
            ids_of(&chat["users"]),
            ["alice", "bob", "carol", "dave"],
            "{user}"
        );

        let stored = polled_of_chat(&app, user, *since, team).await;
        let kinds: Vec<&str> = stored.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["chatMembers", "chat"], "{user}: polled");
        assert_eq!(stored[0].1, delta, "{user}: the polled delta");
    }
}

#[tokio::test]
async fn remove_member_pushes_who_left_then_the_chat_to_the_remaining_members() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let mut watching = watch(&app, &["alice", "bob"]).await;

    // Act
    app.ok(
        "alice",
        "removeMember",
        json!({"chatId": team, "userId": "carol"}),
    )
    .await;

    // Assert
    let delta = json!({"chatId": team, "added": [], "removed": ["carol"], "memberCount": 2});
    for (user, sse, since) in &mut watching {
        let live = stored_of_chat_until(sse, team, "chat").await;
        let kinds: Vec<&str> = live.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(kinds, ["chatMembers", "chat"], "{user}: live");
        assert_eq!(live[0].data(), &delta, "{user}: the delta");
        assert_eq!(live[1].data()["memberCount"], 2, "{user}");
        assert_eq!(ids_of(&live[1].data()["users"]), ["alice", "bob"], "{user}");

        let stored = polled_of_chat(&app, user, *since, team).await;
        let kinds: Vec<&str> = stored.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["chatMembers", "chat"], "{user}: polled");
        assert_eq!(stored[0].1, delta, "{user}: the polled delta");
    }
}

#[tokio::test]
async fn a_removed_member_gets_chat_deleted_and_neither_the_delta_nor_the_chat() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let since = app.cursor("carol").await;
    let mut carol = app.events("carol", "snapshot=0", None).await;

    // Act
    app.ok(
        "alice",
        "removeMember",
        json!({"chatId": team, "userId": "carol"}),
    )
    .await;

    // Assert: on the stream, chatDeleted is the first stored event and nothing follows it
    let live = stored_of_chat_until(&mut carol, team, "chatDeleted").await;
    let kinds: Vec<&str> = live.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["chatDeleted"], "carol's stream");
    assert_eq!(live[0].data(), &json!({"chatId": team}));
    let after: Vec<Event> = events_within(&mut carol, 1.0)
        .await
        .into_iter()
        .filter(|e| e.id.is_some())
        .collect();
    assert!(after.is_empty(), "after chatDeleted carol got {after:?}");

    // And a poll from her old cursor ends at the chatDeleted
    let stored: Vec<(String, Value)> = polled(&app, "carol", since)
        .await
        .into_iter()
        .filter(|e| e["id"].is_i64())
        .map(|e| (e["type"].as_str().unwrap().to_string(), e["data"].clone()))
        .collect();
    assert_eq!(
        stored,
        [("chatDeleted".to_string(), json!({"chatId": team}))],
        "carol's poll"
    );
}

// ---- Large groups: the capped list, memberCount and the members request ----

#[tokio::test]
async fn a_large_group_lists_its_first_100_members_creator_first_and_counts_them_all() {
    // Arrange: the creator's id sorts after everyone else's, so joining order is not id order
    let app = spawn_app().await;
    let others = numbered(149);
    let mut owner = app.events("owner", "snapshot=0", None).await;
    let mut last = app.events("m149", "snapshot=0", None).await;
    let mut first_hundred = vec!["owner".to_string()];
    first_hundred.extend(others[..99].iter().cloned());

    // Act
    let created = create_group(&app, "owner", &others).await;

    // Assert
    let team = created["chat"]["id"].as_i64().unwrap();
    let seen = app.ok("m149", "chat", json!({"chatId": team})).await;
    let listed = app.ok("owner", "chats", json!({})).await;
    assert_eq!(listed["chats"][0]["id"], team);
    let pushed_to_owner = owner.next_of("chat").await;
    let pushed_to_last = last.next_of("chat").await;
    let views = [
        ("the createChat answer", &created["chat"]),
        ("chat", &seen["chat"]),
        ("chats", &listed["chats"][0]),
        ("the chat pushed to the creator", pushed_to_owner.data()),
        ("the chat pushed to the last member", pushed_to_last.data()),
    ];
    let expected: Vec<(&str, Value, Value, Vec<String>)> = views
        .iter()
        .map(|(view, _)| (*view, json!(team), json!(150), first_hundred.clone()))
        .collect();
    let got: Vec<(&str, Value, Value, Vec<String>)> = views
        .iter()
        .map(|(view, chat)| {
            let listed = ids_of(&chat["users"]);
            (
                *view,
                chat["id"].clone(),
                chat["memberCount"].clone(),
                listed,
            )
        })
        .collect();
    assert_eq!(got, expected, "(view, id, memberCount, users) of each view");
}

#[tokio::test]
async fn members_pages_through_every_member_of_a_large_group_in_id_order() {
    // Arrange
    let app = spawn_app().await;
    let others = numbered(149);
    let team = create_group(&app, "owner", &others).await["chat"]["id"]
        .as_i64()
        .unwrap();
    let mut everyone = others.clone();
    everyone.push("owner".to_string());
    everyone.sort();

    // Act: pages of 40, each after the last id of the one before
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let mut req = json!({"chatId": team, "count": 40});
        if let Some(a) = &after {
            req["after"] = json!(a);
        }
        let page = app.ok("m149", "members", req).await;
        let more = page["hasMore"].as_bool().unwrap();
        after = ids_of(&page["members"]).last().cloned();
        pages.push(page);
        if !more {
            break;
        }
    }

    // Assert
    let sizes: Vec<usize> = pages
        .iter()
        .map(|p| p["members"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [40, 40, 40, 30]);
    let more: Vec<&Value> = pages.iter().map(|p| &p["hasMore"]).collect();
    assert_eq!(more, [true, true, true, false]);
    let walked: Vec<String> = pages.iter().flat_map(|p| ids_of(&p["members"])).collect();
    assert_eq!(walked, everyone, "every member once, in id order");
    for page in &pages {
        assert_eq!(page["chatId"], team);
        assert_eq!(page["memberCount"], 150);
        for member in page["members"].as_array().unwrap() {
            assert_eq!(member["role"], "member", "{member}");
        }
        let mut members = ids_of(&page["members"]);
        let mut profiles = ids_of(&page["users"]);
        members.sort();
        profiles.sort();
        assert_eq!(profiles, members, "the page's profiles");
    }
}

#[tokio::test]
async fn members_is_not_found_for_a_non_member() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;

    // Act
    let (status, body) = app.post("eve", "members", json!({"chatId": team})).await;

    // Assert
    assert_outcome("a non-member", status, &body, NO_CHAT);
}

#[tokio::test]
async fn members_takes_a_count_of_1_to_500() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    // (case, count, outcome)
    #[rustfmt::skip]
    let cases: &[(&str, u64, Outcome)] = &[
        ("zero", 0, BAD_REQUEST),
        ("one", 1, OK),
        ("the most", 500, OK),
        ("one too many", 501, BAD_REQUEST),
    ];

    for &(case, count, want) in cases {
        // Act
        let (status, body) = app
            .post("alice", "members", json!({"chatId": team, "count": count}))
            .await;

        // Assert
        assert_outcome(case, status, &body, want);
    }
}

// ---- The group size limit ----

#[tokio::test]
async fn create_chat_refuses_a_group_larger_than_the_max_group_size() {
    // Arrange
    let app = spawn_with(|c| c.max_group_size = 5).await;
    // (case, others, outcome)
    #[rustfmt::skip]
    let cases: &[(&str, &[&str], Outcome)] = &[
        ("six members", &["b", "c", "d", "e", "f"], BAD_REQUEST),
        ("five members", &["b", "c", "d", "e"], OK),
    ];

    for &(case, others, want) in cases {
        // Act
        let (status, body) = app
            .post("alice", "createChat", json!({"userIds": others}))
            .await;

        // Assert
        assert_outcome(case, status, &body, want);
    }
    let list = app.ok("alice", "chats", json!({})).await;
    let counts: Vec<&Value> = list["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["memberCount"])
        .collect();
    assert_eq!(counts, [5], "only the group of five was made");
}

#[tokio::test]
async fn add_members_past_the_max_group_size_is_refused_and_adds_nobody() {
    // Arrange: a group of four under a limit of five
    let app = spawn_with(|c| c.max_group_size = 5).await;
    let team = app.group("alice", &["bob", "carol", "dave"]).await;

    // Act
    let (status, body) = app
        .post(
            "alice",
            "addMembers",
            json!({"chatId": team, "userIds": ["erin", "frank"]}),
        )
        .await;

    // Assert
    assert_outcome("two more", status, &body, BAD_REQUEST);
    let seen = app.ok("alice", "chat", json!({"chatId": team})).await;
    assert_eq!(seen["chat"]["memberCount"], 4);
    assert_eq!(ids_of(&seen["chat"]["users"]).len(), 4);
    for user in ["erin", "frank"] {
        let (status, body) = app.post(user, "chat", json!({"chatId": team})).await;
        assert_outcome(user, status, &body, NO_CHAT);
    }
}

#[tokio::test]
async fn add_members_does_not_count_users_already_in_the_group_against_the_max() {
    // Arrange: a group of four under a limit of five
    let app = spawn_with(|c| c.max_group_size = 5).await;
    let team = app.group("alice", &["bob", "carol", "dave"]).await;

    // Act: three members again and one new user
    let (status, body) = app
        .post(
            "alice",
            "addMembers",
            json!({"chatId": team, "userIds": ["bob", "carol", "dave", "erin"]}),
        )
        .await;

    // Assert
    assert_outcome("members again and one new", status, &body, OK);
    assert_eq!(body["data"]["chat"]["memberCount"], 5);
    let seen = app.ok("erin", "chat", json!({"chatId": team})).await;
    assert_eq!(seen["chat"]["memberCount"], 5);
}

// ---- Presence in large groups ----

#[tokio::test]
async fn coming_online_in_a_group_larger_than_the_presence_limit_pushes_no_status() {
    // Arrange: four members, a limit of three, no direct chats
    let app = spawn_with(|c| c.presence_group_limit = 3).await;
    let team = app.group("alice", &["bob", "carol", "dave"]).await;
    let mut alice = app.events("alice", "snapshot=0", None).await;
    let mut carol = app.events("carol", "snapshot=0", None).await;

    // Act
    let _bob = app.events("bob", "snapshot=0", None).await;

    // Assert
    for (user, sse) in [("alice", &mut alice), ("carol", &mut carol)] {
        let got = events_within(sse, 1.0).await;
        let statuses: Vec<&Event> = got.iter().filter(|e| is_status_about(e, team)).collect();
        assert!(statuses.is_empty(), "{user} got {statuses:?}");
    }
}

#[tokio::test]
async fn dropping_off_in_a_group_larger_than_the_presence_limit_pushes_nothing() {
    // Arrange: four members, a limit of three, no direct chats
    let app = spawn_with(|c| c.presence_group_limit = 3).await;
    app.group("alice", &["bob", "carol", "dave"]).await;
    let bob = app.events("bob", "snapshot=0", None).await;
    let mut alice = app.events("alice", "snapshot=0", None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Act
    bob.close();

    // Assert
    let got = events_within(&mut alice, 1.0).await;
    let presence: Vec<&Event> = got
        .iter()
        .filter(|e| e.event == "opponentStatus" || e.event == "clientConnectionError")
        .collect();
    assert!(presence.is_empty(), "alice got {presence:?}");
}

#[tokio::test]
async fn coming_online_in_a_group_within_the_presence_limit_pushes_a_status() {
    // Arrange: three members, a limit of three, no direct chats
    let app = spawn_with(|c| c.presence_group_limit = 3).await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let mut alice = app.events("alice", "snapshot=0", None).await;
    let mut carol = app.events("carol", "snapshot=0", None).await;

    // Act
    let _bob = app.events("bob", "snapshot=0", None).await;

    // Assert
    for (user, sse) in [("alice", &mut alice), ("carol", &mut carol)] {
        let status = loop {
            let e = sse.next_of("opponentStatus").await;
            if e.data()["users"][0]["userId"] == "bob" {
                break e;
            }
        };
        assert_eq!(status.data()["chatId"], team, "{user}");
        assert_eq!(status.data()["chatIds"], json!([team]), "{user}");
        assert_eq!(status.data()["users"][0]["status"], "online", "{user}");
    }
}

#[tokio::test]
async fn opponent_status_answers_for_a_group_larger_than_the_presence_limit() {
    // Arrange: four members, a limit of three; bob is online
    let app = spawn_with(|c| c.presence_group_limit = 3).await;
    let team = app.group("alice", &["bob", "carol", "dave"]).await;
    let _bob = app.events("bob", "snapshot=0", None).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Act
    let answer = app
        .ok("alice", "opponentStatus", json!({"chatId": team}))
        .await;

    // Assert
    assert_eq!(answer["chatId"], team);
    let mut users: Vec<(String, Value, bool)> = answer["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["userId"].as_str().unwrap().to_string(),
                u["status"].clone(),
                u["lastSeen"].is_string(),
            )
        })
        .collect();
    users.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        users,
        [
            ("bob".to_string(), json!("online"), true),
            ("carol".to_string(), json!("offline"), false),
            ("dave".to_string(), json!("offline"), false),
        ]
    );
}

// ---- Receipts in large groups ----

#[tokio::test]
async fn a_read_receipt_in_a_group_larger_than_the_presence_limit_reaches_only_the_author() {
    // Arrange: four members, a limit of three; alice wrote
    let app = spawn_with(|c| c.presence_group_limit = 3).await;
    let team = app.group("alice", &["bob", "carol", "dave"]).await;
    let sent = app.send_text("alice", team, "m1", "hello all").await;
    let mut watching = watch(&app, &["alice", "carol"]).await;

    // Act
    app.ok(
        "bob",
        "messageStatus",
        json!({"status": "read", "chatId": team, "messageId": sent["id"]}),
    )
    .await;

    // Assert: alice, the author, is told
    let receipt =
        json!({"status": "read", "chatId": team, "messageId": sent["id"], "userId": "bob"});
    let (_, alice, alice_since) = &mut watching[0];
    assert_eq!(next_read(alice).await.data(), &receipt, "alice's stream");
    let polled_reads: Vec<Value> = polled(&app, "alice", *alice_since)
        .await
        .into_iter()
        .filter(|e| e["type"] == "messageStatus" && e["data"]["status"] == "read")
        .map(|e| e["data"].clone())
        .collect();
    assert_eq!(polled_reads, [receipt], "alice's poll");

    // And carol is not: nothing before a later message, nothing on a poll
    let sentinel = app.send_text("alice", team, "m2", "after the read").await;
    let (_, carol, carol_since) = &mut watching[1];
    let before = until_message(carol, &sentinel["id"]).await;
    let reads: Vec<&Event> = before
        .iter()
        .filter(|e| e.event == "messageStatus" && e.data()["status"] == "read")
        .collect();
    assert!(reads.is_empty(), "carol's stream got {reads:?}");
    let polled_reads: Vec<Value> = polled(&app, "carol", *carol_since)
        .await
        .into_iter()
        .filter(|e| e["type"] == "messageStatus" && e["data"]["status"] == "read")
        .collect();
    assert!(polled_reads.is_empty(), "carol's poll got {polled_reads:?}");
}

#[tokio::test]
async fn a_read_receipt_in_a_group_within_the_presence_limit_reaches_every_member() {
    // Arrange: three members, a limit of three; alice wrote
    let app = spawn_with(|c| c.presence_group_limit = 3).await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let sent = app.send_text("alice", team, "m1", "hello all").await;
    let mut watching = watch(&app, &["alice", "bob", "carol"]).await;

    // Act
    app.ok(
        "bob",
        "messageStatus",
        json!({"status": "read", "chatId": team, "messageId": sent["id"]}),
    )
    .await;

    // Assert
    let receipt =
        json!({"status": "read", "chatId": team, "messageId": sent["id"], "userId": "bob"});
    for (user, sse, since) in &mut watching {
        assert_eq!(next_read(sse).await.data(), &receipt, "{user}'s stream");
        let polled_reads: Vec<Value> = polled(&app, user, *since)
            .await
            .into_iter()
            .filter(|e| e["type"] == "messageStatus" && e["data"]["status"] == "read")
            .map(|e| e["data"].clone())
            .collect();
        assert_eq!(
            polled_reads,
            std::slice::from_ref(&receipt),
            "{user}'s poll"
        );
    }
}

#[tokio::test]
async fn a_read_receipt_in_a_large_group_reaches_the_authors_of_the_messages_it_newly_covers() {
    // Arrange: four members, a limit of three; bob has read alice's message, carol wrote since
    let app = spawn_with(|c| c.presence_group_limit = 3).await;
    let team = app.group("alice", &["bob", "carol", "dave"]).await;
    let first = app.send_text("alice", team, "m1", "from alice").await;
    app.ok(
        "bob",
        "messageStatus",
        json!({"status": "read", "chatId": team, "messageId": first["id"]}),
    )
    .await;
    let second = app.send_text("carol", team, "m2", "from carol").await;
    let mut watching = watch(&app, &["alice", "carol"]).await;

    // Act
    app.ok(
        "bob",
        "messageStatus",
        json!({"status": "read", "chatId": team, "messageId": second["id"]}),
    )
    .await;

    // Assert: carol is told; alice, whose message was already read, is not
    let receipt =
        json!({"status": "read", "chatId": team, "messageId": second["id"], "userId": "bob"});
    let (_, carol, _) = &mut watching[1];
    assert_eq!(next_read(carol).await.data(), &receipt, "carol's stream");
    let since = watching[0].2;
    let polled_reads: Vec<Value> = polled(&app, "alice", since)
        .await
        .into_iter()
        .filter(|e| e["type"] == "messageStatus" && e["data"]["status"] == "read")
        .collect();
    assert!(polled_reads.is_empty(), "alice's poll got {polled_reads:?}");
}

// ---- Replays show messages as they now are ----

/// The `message` events for message `id` that `user` gets replayed from the start, by poll and
/// by SSE (`n` expected).
async fn replayed(app: &TestApp, user: &str, id: &Value, n: usize) -> (Vec<Value>, Vec<Value>) {
    let by_poll: Vec<Value> = polled(app, user, 0)
        .await
        .into_iter()
        .filter(|e| e["type"] == "message" && e["data"]["id"] == *id)
        .map(|e| e["data"].clone())
        .collect();
    let mut sse = app.events(user, "snapshot=0&since=0", None).await;
    let by_sse: Vec<Value> = sse
        .collect_of("message", n, 5.0)
        .await
        .into_iter()
        .map(|e| e.data().clone())
        .filter(|m| m["id"] == *id)
        .collect();
    (by_poll, by_sse)
}

#[tokio::test]
async fn a_message_event_replayed_after_an_edit_shows_the_edited_text() {
    // Arrange: a message sent, then edited twice
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let sent = app.send_text("alice", chat, "m1", "first draft").await;
    app.ok(
        "alice",
        "editMessage",
        json!({"messageId": sent["id"], "text": "second draft"}),
    )
    .await;
    app.ok(
        "alice",
        "editMessage",
        json!({"messageId": sent["id"], "text": "final", "params": {"v": "3"}}),
    )
    .await;

    // Act
    let (by_poll, by_sse) = replayed(&app, "bob", &sent["id"], 3).await;

    // Assert: one event per change, each with the current content
    for (how, events) in [("poll", by_poll), ("SSE", by_sse)] {
        assert_eq!(events.len(), 3, "{how}: {events:?}");
        for m in &events {
            assert_eq!(m["text"], "final", "{how}: {m}");
            assert_eq!(m["params"], json!({"v": "3"}), "{how}: {m}");
            assert!(m["editDate"].is_string(), "{how}: {m}");
            assert_eq!(m["deleted"], false, "{how}: {m}");
        }
    }
}

#[tokio::test]
async fn a_message_event_replayed_after_a_deletion_shows_the_message_deleted() {
    // Arrange: a message sent, edited, then deleted
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let sent = app
        .ok(
            "alice",
            "message",
            json!({"messages": [{"clientMessageId": "m1", "chatId": team, "text": "secret",
                                 "params": {"k": "v"}}]}),
        )
        .await["messages"][0]
        .clone();
    app.ok(
        "alice",
        "editMessage",
        json!({"messageId": sent["id"], "text": "still secret"}),
    )
    .await;
    let (status, body) = app
        .post("alice", "deleteMessage", json!({"messageId": sent["id"]}))
        .await;
    assert_eq!(status, 204, "{body}");

    // Act
    let (by_poll, by_sse) = replayed(&app, "bob", &sent["id"], 3).await;

    // Assert: no event still carries the content
    for (how, events) in [("poll", by_poll), ("SSE", by_sse)] {
        assert_eq!(events.len(), 3, "{how}: {events:?}");
        for m in &events {
            assert_eq!(m["deleted"], true, "{how}: {m}");
            assert_eq!(m["text"], "", "{how}: {m}");
            assert_eq!(m["params"], json!({}), "{how}: {m}");
            assert_eq!(m["file"], Value::Null, "{how}: {m}");
        }
    }
}
