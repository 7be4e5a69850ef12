//! Users as the host sees them: their tokens, the read-only notifications chat, one support chat
//! each, and direct chats that take no third member.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{host, host_ok, spawn_app};

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

#[tokio::test]
async fn a_notice_reaches_a_notifications_chat_the_host_closed() {
    // Arrange: the host closes the user's notifications chat (any chat id can be closed)
    let app = spawn_app().await;
    let notice = json!({"user_id": "ann", "text": "Welcome"});
    let first = host_ok(&app, Method::POST, "/notifications", notice).await;
    let chat_id = first["message"]["chatId"].as_i64().unwrap();
    host_ok(
        &app,
        Method::POST,
        "/chats/status",
        json!({"chat_id": chat_id}),
    )
    .await;

    // Act
    let later = json!({"user_id": "ann", "text": "Your order shipped"});
    let (status, body) = host(&app, Method::POST, "/notifications", later).await;

    // Assert: notices are the system's, not a conversation: the chat's state does not stop them
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["chatId"], chat_id);
    assert_eq!(body["message"]["text"], "Your order shipped");
}

#[tokio::test]
async fn each_notifications_channel_is_its_own_read_only_chat_named_by_it() {
    let app = spawn_app().await;
    let mut stream = app.events("42", "snapshot=0", None).await;
    let notice = |channel: Option<&str>, text: &str| {
        let mut body = json!({"user_id": "42", "text": text});
        if let Some(c) = channel {
            body["channel"] = json!(c);
        }
        body
    };
    let bot = host_ok(
        &app,
        Method::POST,
        "/notifications",
        notice(Some("bot-bookings"), "Booked via the bot"),
    )
    .await;
    let bot_chat = bot["message"]["chatId"].as_i64().unwrap();
    let pushed = stream.next_of("chat").await;
    assert_eq!(pushed.data()["kind"], "notifications");
    assert_eq!(pushed.data()["name"], "bot-bookings");
    let online = host_ok(
        &app,
        Method::POST,
        "/notifications",
        notice(Some("online-bookings"), "Booked online"),
    )
    .await;
    let online_chat = online["message"]["chatId"].as_i64().unwrap();
    assert_ne!(online_chat, bot_chat, "another channel, another chat");
    assert_eq!(
        stream.next_of("chat").await.data()["name"],
        "online-bookings"
    );
    let again = host_ok(
        &app,
        Method::POST,
        "/notifications",
        notice(Some("bot-bookings"), "Another"),
    )
    .await;
    assert_eq!(
        again["message"]["chatId"], bot_chat,
        "the same channel, the same chat"
    );
    let plain = host_ok(
        &app,
        Method::POST,
        "/notifications",
        notice(None, "General"),
    )
    .await;
    let plain_chat = plain["message"]["chatId"].as_i64().unwrap();
    assert!(plain_chat != bot_chat && plain_chat != online_chat);

    let chats = app.ok("42", "chats", json!({})).await;
    let mut names: Vec<(i64, serde_json::Value)> = (chats["chats"].as_array().unwrap())
        .iter()
        .filter(|c| c["kind"] == "notifications")
        .map(|c| (c["id"].as_i64().unwrap(), c["name"].clone()))
        .collect();
    names.sort_by_key(|(id, _)| *id);
    assert_eq!(
        names,
        vec![
            (bot_chat, json!("bot-bookings")),
            (online_chat, json!("online-bookings")),
            (plain_chat, json!(null))
        ]
    );
    let page = app.ok("42", "history", json!({"chatId": bot_chat})).await;
    let texts: Vec<&str> = (page["messages"].as_array().unwrap())
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Booked via the bot", "Another"]);

    // Read-only like the plain one.
    let (status, body) = app
        .post(
            "42",
            "message",
            json!({"messages": [{"clientMessageId": "c1", "chatId": bot_chat, "text": "hi"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for bad in ["", "a/b", "has space", &"x".repeat(65)] {
        let (status, body) =
            host(&app, Method::POST, "/notifications", notice(Some(bad), "x")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("body.channel"));
    }
}
