//! The host backend API under /v1/server: the service key, every route with a good and a bad
//! body, GET bodies from the query string, and seed 001's consultation flow end to end.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{host, host_as, host_ok, read, spawn_app, token, SERVICE_KEY as KEY};

/// Every route: (method, path, a good body, a bad body, the field the error must name).
fn routes(chat: i64) -> Vec<(Method, &'static str, Value, Value, &'static str)> {
    use Method as M;
    vec![
        (
            M::GET,
            "/chats/chats",
            json!({"user_id": "ann", "count": 10}),
            json!({"count": 10}),
            "body.user_id",
        ),
        (
            M::GET,
            "/chats/chat",
            json!({"chat_id": chat, "user_id": "ann"}),
            json!({"chat_id": "x", "user_id": "ann"}),
            "body.chat_id",
        ),
        (
            M::GET,
            "/order/chats",
            json!([{"order_id": 7, "opponent_id": "ann"}]),
            json!([{"order_id": 7}]),
            "opponent_id",
        ),
        (
            M::GET,
            "/chats/info",
            json!({"user_id": "ann", "chats_id": [chat]}),
            json!({"user_id": "ann"}),
            "body.chats_id",
        ),
        (
            M::GET,
            "/chats/chat/recent",
            json!({"user_id": "ann", "chat_id": chat, "message_id": 0, "count": 5}),
            json!({"user_id": "ann", "chat_id": chat, "count": 0}),
            "count",
        ),
        (
            M::GET,
            "/chats/messages/update",
            json!({"user_id": "ann", "chat_id": chat, "message_id": 0, "count": 5}),
            json!({"user_id": "ann"}),
            "body.chat_id",
        ),
        (
            M::GET,
            "/chats/chat/history",
            json!({"user_id": "ann", "chat_id": chat, "count": 5}),
            json!({"user_id": "ann", "chat_id": true}),
            "body.chat_id",
        ),
        (
            M::GET,
            "/chats/messages/history",
            json!({"user_id": "ann", "chat_id": chat}),
            json!({"chat_id": chat}),
            "body.user_id",
        ),
        (
            M::POST,
            "/chats/new",
            json!({"order_id": 7}),
            json!({}),
            "body.order_id",
        ),
        (
            M::POST,
            "/chats/user/subscribe",
            json!({"user_id": "bo", "user_type": "consultant", "chat_id": chat}),
            json!({"user_id": "bo", "chat_id": chat}),
            "body.user_type",
        ),
        (
            M::PUT,
            "/chats/user/subscribe",
            json!({"chat_id": chat, "old_user_id": "bo", "new_user_id": "cy"}),
            json!({"chat_id": chat, "old_user_id": "bo"}),
            "body.new_user_id",
        ),
        (
            M::POST,
            "/chats/message",
            json!({"chat_id": chat, "user_id": "ann", "message": "hi", "client_message_id": "h1", "type": "text"}),
            json!({"chat_id": chat, "message": ""}),
            "body.message",
        ),
        (
            M::POST,
            "/chats/user/unsubscribe",
            json!({"user_id": "cy", "chat_id": chat}),
            json!({"user_id": "cy"}),
            "body.chat_id",
        ),
        (
            M::POST,
            "/ws/client/message",
            json!({"user_id": "ann", "type": "bonus", "data": {"points": "5"}}),
            json!({"user_id": "ann", "type": "message", "data": {}}),
            "body.type",
        ),
        (
            M::POST,
            "/ws/client/consultation/update",
            json!({"user_id": "ann", "data": {"active": true, "consultationId": 7}}),
            json!({"user_id": "ann", "data": {"active": "yes", "consultationId": 7}}),
            "body.data.active",
        ),
        (
            M::POST,
            "/users",
            json!({"user_id": "ann", "first_name": "Ann"}),
            json!({"user_id": "not valid"}),
            "body.user_id",
        ),
        (
            M::POST,
            "/tokens",
            json!({"user_id": "ann", "ttl_seconds": 60}),
            json!({"user_id": "ann", "ttl_seconds": 0}),
            "body.ttl_seconds",
        ),
        (
            M::POST,
            "/notifications",
            json!({"user_id": "ann", "text": "Your booking is confirmed"}),
            json!({"user_id": "ann"}),
            "body.text",
        ),
        (
            M::POST,
            "/chats/status",
            json!({"chat_id": chat}),
            json!({"chat_id": -1}),
            "body.chat_id",
        ),
    ]
}

#[tokio::test]
async fn every_route_checks_the_service_key_and_names_the_bad_field() {
    let app = spawn_app().await;
    let chat = host_ok(&app, Method::POST, "/chats/new", json!({"order_id": 7})).await["chat"]
        ["id"]
        .as_i64()
        .unwrap();
    host_ok(
        &app,
        Method::POST,
        "/chats/user/subscribe",
        json!({"user_id": "ann", "user_type": "client", "chat_id": chat}),
    )
    .await;

    for (method, path, good, bad, field) in routes(chat) {
        // A wrong key, no key, and a client token are all refused.
        for key in [Some("wrong"), None, Some(token("ann").as_str())] {
            let (status, body) = host_as(&app, key, method.clone(), path, good.clone()).await;
            assert_eq!(status, 401, "{method} {path} with {key:?}: {body}");
            assert_eq!(body["error"]["reason"], "token_invalid");
        }
        // A bad body names the field.
        let (status, body) = host(&app, method.clone(), path, bad).await;
        assert_eq!(status, 400, "{method} {path}: {body}");
        assert_eq!(body["error"]["reason"], "bad_request");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{method} {path}: {message:?} should name {field}"
        );
        // The right key and a good body work.
        let (status, body) = host(&app, method.clone(), path, good).await;
        assert!(status.is_success(), "{method} {path}: {status} {body}");
    }
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_told_apart() {
    let app = spawn_app().await;
    let (status, body) = host(&app, Method::GET, "/nope", Value::Null).await;
    assert_eq!(
        (status.as_u16(), body["error"]["reason"].as_str()),
        (404, Some("type_not_found"))
    );
    let (status, body) = host(&app, Method::DELETE, "/chats/user/subscribe", Value::Null).await;
    assert_eq!(
        (status.as_u16(), body["error"]["reason"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (status, body) = host(&app, Method::POST, "/chats/new", json!([1, 2])).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn get_routes_read_their_body_from_the_query_string() {
    let app = spawn_app().await;
    let chat = app.direct_chat("ann", "bo").await;
    app.send_text("ann", chat, "q1", "one").await;

    let url = format!(
        "{}/v1/server/chats/chat/history?user_id=bo&chat_id={chat}&count=10",
        app.base
    );
    let (status, body) = read(app.client.get(url).bearer_auth(KEY).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"][0]["text"], "one");

    let url = format!(
        "{}/v1/server/chats/info?user_id=ann&chats_id={chat},999",
        app.base
    );
    let (_, body) = read(app.client.get(url).bearer_auth(KEY).send().await.unwrap()).await;
    let ids: Vec<_> = body["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, [json!(chat)], "chats the user is not in are left out");
}

#[tokio::test]
async fn the_consultation_flow_of_an_order_end_to_end() {
    let app = spawn_app().await;

    // The host opens an order chat; asking again gives the same chat.
    let chat =
        host_ok(&app, Method::POST, "/chats/new", json!({"order_id": 501})).await["chat"].clone();
    let again =
        host_ok(&app, Method::POST, "/chats/new", json!({"order_id": "501"})).await["chat"].clone();
    assert_eq!(again["id"], chat["id"]);
    assert_eq!(chat["kind"], "order");
    assert_eq!(chat["orderId"], "501");
    let chat_id = chat["id"].as_i64().unwrap();

    // Client and consultant are subscribed with their roles; the client joins the consultation.
    let mut client = app.events("client-1", "snapshot=0", None).await;
    for (user, role) in [("client-1", "client"), ("doc-1", "consultant")] {
        host_ok(
            &app,
            Method::POST,
            "/chats/user/subscribe",
            json!({"user_id": user, "user_type": role, "chat_id": chat_id}),
        )
        .await;
    }
    assert_eq!(client.next_of("chat").await.data()["id"], chat_id);
    let (status, _) = app
        .post("client-1", "join", json!({"consultationId": 501}))
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .post("stranger", "join", json!({"consultationId": 501}))
        .await;
    assert_eq!(status, 404);

    // Messages carry the author's role as sender; the host posts as the system.
    let from_client = app
        .send_text("client-1", chat_id, "c1", "Hello doctor")
        .await;
    assert_eq!(from_client["sender"], "client");
    let from_doc = app
        .send_text("doc-1", chat_id, "d1", "Hello, how can I help?")
        .await;
    assert_eq!(from_doc["sender"], "consultant");
    let system = host_ok(&app, Method::POST, "/chats/message", json!({"chat_id": chat_id, "message": "The consultation has started", "client_message_id": "s1"})).await["message"].clone();
    assert_eq!(system["sender"], "system");
    assert_eq!(system["userId"], json!(null));
    let repeat = host_ok(&app, Method::POST, "/chats/message", json!({"chat_id": chat_id, "message": "The consultation has started", "client_message_id": "s1"})).await["message"].clone();
    assert_eq!(repeat["id"], system["id"], "host posts are idempotent too");
    let as_doc = host_ok(&app, Method::POST, "/chats/message", json!({"chat_id": chat_id, "user_id": "doc-1", "message": "Sent for the doctor", "client_message_id": "d2"})).await["message"].clone();
    assert_eq!(as_doc["sender"], "consultant");
    let got: Vec<_> = client
        .collect_of("message", 4, 5.0)
        .await
        .iter()
        .map(|e| e.data()["sender"].clone())
        .collect();
    assert_eq!(
        got,
        [
            json!("client"),
            json!("consultant"),
            json!("system"),
            json!("consultant")
        ]
    );

    // The consultant is handed over: the new one sees the history, the old one is out.
    let mut old_doc = app.events("doc-1", "snapshot=0", None).await;
    let handed = host_ok(
        &app,
        Method::PUT,
        "/chats/user/subscribe",
        json!({"chat_id": chat_id, "old_user_id": "doc-1", "new_user_id": "doc-2"}),
    )
    .await;
    let roles: Vec<_> = handed["chat"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].clone(), m["role"].clone()))
        .collect();
    assert!(
        roles.contains(&(json!("doc-2"), json!("consultant"))),
        "{roles:?}"
    );
    assert!(!roles.iter().any(|(id, _)| id == "doc-1"));
    assert_eq!(
        old_doc.next_of("chatDeleted").await.data()["chatId"],
        chat_id
    );
    let history = app.ok("doc-2", "history", json!({"chatId": chat_id})).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 4);
    assert_eq!(
        app.send_text("doc-2", chat_id, "d3", "I take over").await["sender"],
        "consultant"
    );
    let (status, _) = app
        .post("doc-1", "history", json!({"chatId": chat_id}))
        .await;
    assert_eq!(status, 404);

    // The host pushes a consultation update to the client: stored, with an id.
    let (status, _) = host(
        &app,
        Method::POST,
        "/ws/client/consultation/update",
        json!({"user_id": "client-1", "data": {"active": false, "consultationId": 501}}),
    )
    .await;
    assert_eq!(status, 204);
    let update = client.next_of("consultationUpdate").await;
    assert!(update.id.is_some());
    assert_eq!(
        update.data(),
        &json!({"active": false, "consultationId": 501})
    );

    // The host closes the chat: members get it closed, sends are refused.
    let closed = host_ok(
        &app,
        Method::POST,
        "/chats/status",
        json!({"chat_id": chat_id}),
    )
    .await;
    assert_eq!(closed["chat"]["status"], "closed");
    let pushed = client.next_of("chat").await;
    assert_eq!(pushed.data()["status"], "closed");
    let (status, body) = app.post("client-1", "message", json!({"messages": [{"clientMessageId": "late", "chatId": chat_id, "text": "still there?"}]})).await;
    assert_eq!(
        (status.as_u16(), body["error"]["reason"].as_str()),
        (409, Some("chat_closed"))
    );

    // A new order chat after the close is a new chat; /order/chats answers per pair.
    let next = host_ok(&app, Method::POST, "/chats/new", json!({"order_id": 501})).await["chat"]
        ["id"]
        .clone();
    assert_ne!(next, json!(chat_id));
    let pairs = host_ok(
        &app,
        Method::GET,
        "/order/chats",
        json!([
            {"order_id": 501, "opponent_id": "client-1"},
            {"order_id": 501, "opponent_id": "nobody"},
        ]),
    )
    .await;
    assert_eq!(pairs["chats"][0]["chat"]["id"], chat_id);
    assert_eq!(pairs["chats"][1]["chat"], json!(null));
}

#[tokio::test]
async fn custom_pushes_are_stored_and_resumable() {
    let app = spawn_app().await;
    let (status, _) = host(
        &app,
        Method::POST,
        "/ws/client/message",
        json!({"user_id": "ann", "type": "bonusPoints", "data": {"points": "5"}}),
    )
    .await;
    assert_eq!(status, 204);

    let (_, polled) = app.poll("ann", "since=0&timeout=0").await;
    let event = polled["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "bonusPoints")
        .cloned()
        .unwrap();
    assert_eq!(event["data"], json!({"points": "5"}));
    let mut resumed = app.events("ann", "snapshot=0&since=0", None).await;
    assert_eq!(
        resumed.next_of("bonusPoints").await.id,
        event["id"].as_i64()
    );
}

#[tokio::test]
async fn users_tokens_and_the_read_only_notifications_chat() {
    let app = spawn_app().await;
    let user = host_ok(
        &app,
        Method::POST,
        "/users",
        json!({"user_id": 42, "first_name": "Ann", "email": "ann@example.com"}),
    )
    .await;
    assert_eq!(
        user["user"],
        json!({"id": "42", "firstName": "Ann", "lastName": null, "middleName": null, "photo": null})
    );

    let minted = host_ok(
        &app,
        Method::POST,
        "/tokens",
        json!({"user_id": "42", "ttl_seconds": 120}),
    )
    .await;
    assert!(minted["expiresAt"].is_string());
    let res = app
        .client
        .post(format!("{}/v1/chats", app.base))
        .bearer_auth(minted["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let mut stream = app.events("42", "snapshot=0", None).await;
    let posted = host_ok(
        &app,
        Method::POST,
        "/notifications",
        json!({"user_id": 42, "text": "Booking confirmed", "params": {"booking": "9"}}),
    )
    .await;
    let chat_id = posted["message"]["chatId"].as_i64().unwrap();
    assert_eq!(stream.next_of("chat").await.data()["kind"], "notifications");
    assert_eq!(
        stream.next_of("message").await.data()["text"],
        "Booking confirmed"
    );
    let second = host_ok(
        &app,
        Method::POST,
        "/notifications",
        json!({"user_id": 42, "text": "Reminder"}),
    )
    .await;
    assert_eq!(
        second["message"]["chatId"], chat_id,
        "one notifications chat per user"
    );

    let page = app.ok("42", "history", json!({"chatId": chat_id})).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 2);
    assert!(page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["sender"] == "system"));
    let (status, body) = app
        .post(
            "42",
            "message",
            json!({"messages": [{"clientMessageId": "n1", "chatId": chat_id, "text": "thanks"}]}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["reason"].as_str()),
        (403, Some("forbidden"))
    );
}

#[tokio::test]
async fn every_user_gets_exactly_one_support_chat_even_when_first_seen_concurrently() {
    let app = std::sync::Arc::new(
        crate::helpers::spawn_with(|c| {
            c.support_user = Some(chinwag::model::UserId::parse("help").unwrap())
        })
        .await,
    );

    // Ten first requests of the same new user at once.
    let firsts: Vec<_> = (0..10)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.ok("ann", "chats", json!({})).await })
        })
        .collect();
    for f in firsts {
        f.await.unwrap();
    }

    let chats = app.ok("ann", "chats", json!({})).await["chats"].clone();
    let support: Vec<_> = chats
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "support")
        .collect();
    assert_eq!(support.len(), 1, "{chats}");
    let members: Vec<_> = support[0]["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].clone(), m["role"].clone()))
        .collect();
    assert_eq!(
        members,
        [
            (json!("ann"), json!("client")),
            (json!("help"), json!("support"))
        ]
    );
    let chat_id = support[0]["id"].as_i64().unwrap();

    // Both sides talk with their roles as sender.
    assert_eq!(
        app.send_text("ann", chat_id, "s1", "My order is late")
            .await["sender"],
        "client"
    );
    assert_eq!(
        app.send_text("help", chat_id, "s2", "Let me check").await["sender"],
        "support"
    );

    // A user the host creates gets one too; the support user gets none with themselves.
    host_ok(
        &app,
        Method::POST,
        "/users",
        json!({"user_id": "bob", "first_name": "Bob"}),
    )
    .await;
    let bob = app.ok("bob", "chats", json!({})).await["chats"].clone();
    assert_eq!(
        bob.as_array()
            .unwrap()
            .iter()
            .filter(|c| c["kind"] == "support")
            .count(),
        1
    );
    let help = app.ok("help", "chats", json!({})).await["chats"].clone();
    assert_eq!(
        help.as_array().unwrap().len(),
        2,
        "help is in ann's and bob's support chats: {help}"
    );
}

#[tokio::test]
async fn a_direct_chat_takes_no_third_member_from_the_host() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;

    // Act
    let (status, body) = host(
        &app,
        Method::POST,
        "/chats/user/subscribe",
        json!({"user_id": "zed", "user_type": "client", "chat_id": chat}),
    )
    .await;
    // A role change of a member is still fine.
    let (member, _) = host(
        &app,
        Method::POST,
        "/chats/user/subscribe",
        json!({"user_id": "bob", "user_type": "consultant", "chat_id": chat}),
    )
    .await;

    // Assert
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["reason"], "forbidden");
    assert_eq!(member, StatusCode::OK);
    let view = app.ok("alice", "chat", json!({"chatId": chat})).await;
    assert_eq!(
        crate::helpers::member_ids(&view["chat"]),
        ["alice", "bob"],
        "{view}"
    );
}
