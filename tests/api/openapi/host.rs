//! The host API's part of the walk in answers.rs: real answers of every `/v1/server` route,
//! successes and errors, fit the document.

use serde_json::{json, Value};

use super::{Auth, Checker};

/// Calls every host route through `c`, with the client chat `direct` and the uploaded `id`.
pub(super) async fn answers(c: &mut Checker, direct: &Value, id: &str) {
    let order = c
        .host("POST", "/chats/new", json!({"order_id": 501}), 200)
        .await["chat"]["id"]
        .clone();
    c.hosts(vec![
        (
            "POST",
            "/chats/user/subscribe",
            json!({"user_id": "alice", "user_type": "client", "chat_id": order}),
            200,
        ),
        (
            "POST",
            "/chats/user/subscribe",
            json!({"user_id": "doc-1", "user_type": "consultant", "chat_id": order}),
            200,
        ),
    ])
    .await;
    c.client("alice", "join", json!({"consultationId": 501}), 204)
        .await;
    c.host(
        "PUT",
        "/chats/user/subscribe",
        json!({"chat_id": order, "old_user_id": "doc-1", "new_user_id": "doc-2"}),
        200,
    )
    .await;
    let posted = c
        .host(
            "POST",
            "/chats/message",
            json!({"chat_id": order, "message": "Started", "client_message_id": "s1"}),
            200,
        )
        .await;
    let first = posted["message"]["id"].clone();
    let around = json!({"user_id": "alice", "chat_id": order, "message_id": first, "count": 5});
    let mut calls = vec![(
        "POST",
        "/chats/message",
        json!({"chat_id": order, "user_id": "doc-2", "message": "Hello", "file_id": id}),
        200,
    )];
    calls.extend(
        [
            "/chats/chat/recent",
            "/chats/messages/update",
            "/chats/chat/history",
            "/chats/messages/history",
        ]
        .map(|route| ("GET", route, around.clone(), 200)),
    );
    calls.extend([
        (
            "GET",
            "/chats/chats",
            json!({"user_id": "alice", "count": 5}),
            200,
        ),
        (
            "GET",
            "/chats/chat",
            json!({"user_id": "alice", "chat_id": order}),
            200,
        ),
        (
            "GET",
            "/chats/chat",
            json!({"user_id": "zed", "chat_id": order}),
            404,
        ),
        (
            "GET",
            "/chats/info",
            json!({"user_id": "alice", "chats_id": [order, direct, 999]}),
            200,
        ),
        (
            "GET",
            "/order/chats",
            json!({"order_id": 501, "opponent_id": "alice"}),
            200,
        ),
        (
            "GET",
            "/order/chats",
            json!({"order_id": 502, "opponent_id": "alice"}),
            200,
        ),
        (
            "POST",
            "/ws/client/message",
            json!({"user_id": "alice", "type": "orderUpdate", "data": {"step": 2}}),
            204,
        ),
        (
            "POST",
            "/ws/client/message",
            json!({"user_id": "alice", "type": "chat", "data": {}}),
            400,
        ),
        (
            "POST",
            "/ws/client/consultation/update",
            json!({"user_id": "alice", "data": {"active": true, "consultationId": 501}}),
            204,
        ),
        (
            "POST",
            "/users",
            json!({"user_id": "alice", "first_name": "Alice", "email": "a@example.com"}),
            200,
        ),
        (
            "POST",
            "/tokens",
            json!({"user_id": "alice", "ttl_seconds": 60}),
            200,
        ),
        (
            "POST",
            "/notifications",
            json!({"user_id": "alice", "text": "Your order shipped"}),
            200,
        ),
        ("POST", "/chats/status", json!({"chat_id": order}), 200),
        (
            "POST",
            "/chats/message",
            json!({"chat_id": order, "message": "late"}),
            409,
        ),
    ]);
    c.hosts(calls).await;
    c.client(
        "alice",
        "message",
        json!({"messages": [{"clientMessageId": "m9", "chatId": order, "text": "late"}]}),
        409,
    )
    .await;
    c.hosts(vec![
        (
            "POST",
            "/chats/user/unsubscribe",
            json!({"user_id": "alice", "chat_id": order}),
            200,
        ),
        ("POST", "/chats/status", json!({"chat_id": 999}), 404),
        ("POST", "/chats/status", json!({}), 400),
    ])
    .await;
    c.calls(vec![
        (
            "POST",
            "/v1/server/users",
            "/v1/server/users",
            Auth::Bearer("alice"),
            Some(json!({"user_id": "x"})),
            401,
        ),
        (
            "GET",
            "/v1/server/users",
            "/v1/server/users",
            Auth::Host,
            None,
            405,
        ),
    ])
    .await;
}
