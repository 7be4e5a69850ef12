//! Every host route: the service key, a good and a bad body, unknown routes and wrong methods,
//! GET bodies from the query string.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{host, host_as, host_ok, read, spawn_app, token, SERVICE_KEY as KEY};

/// Every route: (method, path, a good body, a bad body, the field the error must name).
pub(crate) fn routes(chat: i64) -> Vec<(Method, &'static str, Value, Value, &'static str)> {
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
