//! Chats: direct chats are reused, groups get their creator as admin, lists follow activity.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_direct_chat_is_created_once_and_pushed_to_both() {
    let app = spawn_app().await;
    let mut bob = app.events("bob", "snapshot=0", None).await;

    let created = app
        .ok("alice", "createChat", json!({"userIds": ["bob"]}))
        .await;
    let again = app
        .ok("bob", "createChat", json!({"userIds": ["alice", "bob"]}))
        .await;

    assert_eq!(created["chat"]["kind"], "direct");
    assert_eq!(created["chat"]["admin"], json!(null));
    assert_eq!(again["chat"]["id"], created["chat"]["id"]);
    let pushed = bob.next_of("chat").await;
    assert!(pushed.id.is_some());
    assert_eq!(pushed.data()["id"], created["chat"]["id"]);
    assert!(
        bob.next_within(0.3).await.is_none(),
        "the reuse pushed again"
    );
    let ids: Vec<_> = created["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].clone())
        .collect();
    assert_eq!(ids, [json!("alice"), json!("bob")]);
}

#[tokio::test]
async fn a_group_has_its_creator_as_admin() {
    let app = spawn_app().await;
    let mut carol = app.events("carol", "snapshot=0", None).await;

    let group = app
        .ok(
            "alice",
            "createChat",
            json!({"userIds": ["bob", "carol", 42], "name": "Team"}),
        )
        .await["chat"]
        .clone();

    assert_eq!(group["kind"], "group");
    assert_eq!(group["name"], "Team");
    assert_eq!(group["admin"], "alice");
    assert_eq!(group["users"].as_array().unwrap().len(), 4);
    assert_eq!(group["status"], "open");
    assert_eq!(carol.next_of("chat").await.data()["id"], group["id"]);
    // Numeric user ids are read as their decimal string
    assert_eq!(
        app.ok("42", "chat", json!({"chatId": group["id"]})).await["chat"]["id"],
        group["id"]
    );
}

#[tokio::test]
async fn chats_are_listed_by_latest_activity_with_last_message_and_unread() {
    let app = spawn_app().await;
    // Each change at a later millisecond, so that the activity order is certain.
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(5));
    let with_bob = app.direct_chat("alice", "bob").await;
    pause().await;
    let with_carol = app.direct_chat("alice", "carol").await;
    pause().await;
    app.send_text("bob", with_bob, "1", "newest").await;

    let list = app.ok("alice", "chats", json!({})).await;

    let chats = list["chats"].as_array().unwrap();
    assert_eq!(chats[0]["id"], with_bob);
    assert_eq!(chats[1]["id"], with_carol);
    assert_eq!(chats[0]["lastMessage"]["text"], "newest");
    assert_eq!(chats[0]["unread"], 1);
    assert_eq!(chats[1]["lastMessage"], json!(null));
    let user_ids: Vec<_> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert!(user_ids.contains(&"carol") && user_ids.contains(&"bob"));

    // Paging by updatedAt
    let first = app.ok("alice", "chats", json!({"count": 1})).await;
    assert_eq!(first["chats"].as_array().unwrap().len(), 1);
    let before = first["chats"][0]["updatedAt"].clone();
    let rest = app
        .ok("alice", "chats", json!({"count": 1, "before": before}))
        .await;
    assert_eq!(rest["chats"][0]["id"], with_carol);
}

#[tokio::test]
async fn joining_a_consultation_needs_its_order_chat() {
    let app = spawn_app().await;
    // No order chat exists for consultation 5, so nobody can join it.
    for id in [json!(5), json!("5")] {
        let (status, body) = app
            .post("alice", "join", json!({"consultationId": id}))
            .await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["reason"], "chat_not_found");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("consultation 5"));
    }
    let (status, body) = app.post("alice", "join", json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["message"], "data.consultationId is required");
}

#[tokio::test]
async fn paging_chats_one_by_one_finds_each_once_even_with_equal_times() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for other in ["b", "c", "d", "e"] {
        ids.push(app.direct_chat("a", other).await);
    }
    // One request touches all four chats, so they tend to share an updatedAt.
    let batch: Vec<_> = ids
        .iter()
        .map(|id| json!({"clientMessageId": format!("t{id}"), "chatId": id, "text": "tie"}))
        .collect();
    app.ok("a", "message", json!({"messages": batch})).await;

    let mut seen = Vec::new();
    let mut cursor = json!({"count": 1});
    for _ in 0..10 {
        let page = app.ok("a", "chats", cursor.clone()).await;
        let Some(chat) = page["chats"].as_array().unwrap().first().cloned() else {
            break;
        };
        seen.push(chat["id"].as_i64().unwrap());
        cursor = json!({"count": 1, "before": chat["updatedAt"], "beforeId": chat["id"]});
    }

    let mut sorted = seen.clone();
    sorted.sort_unstable();
    ids.sort_unstable();
    assert_eq!(sorted, ids, "pages: {seen:?}");
}

#[tokio::test]
async fn clients_cannot_delete_rename_or_leave_chats_the_host_owns() {
    let app = spawn_app().await;
    // Host-owned chats come from the host backend; made here through the store directly.
    let mut chats = Vec::new();
    for kind in ["support", "notifications", "order"] {
        let id = app
            .app
            .store
            .write(move |tx| {
                use chinwag::model::{Role, UserId};
                let members = [
                    (UserId::parse("alice").unwrap(), Role::Client),
                    (
                        UserId::parse("staff").unwrap(),
                        Role::parse("consultant", "role").unwrap(),
                    ),
                ];
                chinwag::store::chats::create(
                    tx,
                    &chinwag::store::chats::NewChat {
                        kind: chinwag::model::ChatKind::parse(kind).unwrap(),
                        name: None,
                        order_id: (kind == "order").then_some("77"),
                        admin: None,
                        members: &members,
                    },
                )
            })
            .await
            .unwrap();
        chats.push((kind, id));
    }

    for (kind, chat) in chats {
        for (request, data) in [
            ("deleteChat", json!({"chatId": chat})),
            ("renameChat", json!({"chatId": chat, "name": "mine now"})),
            ("clearChat", json!({"chatId": chat, "forAll": true})),
            ("removeMember", json!({"chatId": chat, "userId": "alice"})),
        ] {
            let (status, body) = app.post("alice", request, data).await;
            assert_eq!(status, 403, "{kind} {request}: {body}");
            assert_eq!(body["error"]["reason"], "forbidden");
        }
        // Reading and clearing for oneself still work.
        let (status, _) = app
            .post("alice", "clearChat", json!({"chatId": chat}))
            .await;
        assert_eq!(status, 204);
        assert_eq!(
            app.ok("alice", "chat", json!({"chatId": chat})).await["chat"]["kind"],
            kind
        );
    }
}
