//! Seed 001's consultation flow of an order end to end, and the host's custom pushes.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{host, host_ok, spawn_app};

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
