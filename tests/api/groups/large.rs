//! Large groups: the capped member list, memberCount, the members request and the group size
//! limit.

use serde_json::{json, Value};

use super::ids_of;
use crate::helpers::{
    assert_outcome, spawn_app, spawn_with, Outcome, TestApp, BAD_REQUEST, NO_CHAT, OK,
};

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
