//! Edits, deletions and calls: who may change a message or signal a call, and who is told.

use serde_json::{json, Value};

use crate::helpers::{
    assert_outcome, data_of, polled, spawn_app, until_message, watch, Event, Outcome, TestApp,
    ACCEPTED, BAD_REQUEST, FORBIDDEN, NO_CHAT, NO_CONTENT, NO_MESSAGE, OK,
};

/// The message with `id` as `user` finds it in the chat's history.
async fn in_history(app: &TestApp, user: &str, chat: i64, id: &Value) -> Value {
    let page = app.ok(user, "history", json!({"chatId": chat})).await;
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == *id)
        .cloned()
        .unwrap_or_else(|| panic!("message {id} is not in the history of {user}"))
}

#[tokio::test]
async fn edit_message_is_for_the_author_only() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let direct = app.direct_chat("alice", "bob").await;
    let mine = app.send_text("bob", team, "mine", "original").await["id"].clone();
    let gone = app.send_text("bob", team, "gone", "deleted").await["id"].clone();
    app.ok("bob", "deleteMessage", json!({"messageId": gone}))
        .await;
    let theirs = app.send_text("alice", direct, "theirs", "from alice").await["id"].clone();
    // (case, caller, message, text, outcome)
    #[rustfmt::skip]
    let cases: &[(&str, &str, &Value, &str, Outcome)] = &[
        ("the author", "bob", &mine, "edited", OK),
        ("the group's admin", "alice", &mine, "by alice", FORBIDDEN),
        ("another member", "carol", &mine, "by carol", FORBIDDEN),
        ("a non-member", "eve", &mine, "by eve", NO_MESSAGE),
        ("the other member of a direct chat", "bob", &theirs, "by bob", FORBIDDEN),
        ("the author of a deleted message", "bob", &gone, "back", FORBIDDEN),
        ("empty text", "bob", &mine, "", BAD_REQUEST),
        ("an unknown message", "bob", &json!(999_999), "x", NO_MESSAGE),
    ];

    for &(case, caller, message, text, want) in cases {
        // Act
        let (status, body) = app
            .post(
                caller,
                "editMessage",
                json!({"messageId": message, "text": text}),
            )
            .await;

        // Assert
        assert_outcome(case, status, &body, want);
        if want == OK {
            assert_eq!(body["data"]["message"]["id"], *message, "{case}");
            assert_eq!(body["data"]["message"]["text"], text, "{case}");
            assert!(body["data"]["message"]["editDate"].is_string(), "{case}");
        }
    }
    assert_eq!(
        in_history(&app, "carol", team, &mine).await["text"],
        "edited"
    );
    let deleted = in_history(&app, "carol", team, &gone).await;
    assert_eq!(
        (&deleted["text"], &deleted["deleted"]),
        (&json!(""), &json!(true))
    );
    assert_eq!(
        in_history(&app, "alice", direct, &theirs).await["text"],
        "from alice"
    );
}

#[tokio::test]
async fn edit_message_pushes_the_new_text_with_edit_date_to_every_member() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let params = json!({"k": "v"});
    let message =
        json!({"clientMessageId": "e1", "chatId": team, "text": "frist", "params": params});
    let sent = app
        .ok("bob", "message", json!({"messages": [message]}))
        .await["messages"][0]
        .clone();
    let mut watching = watch(&app, &["alice", "bob", "carol"]).await;

    // Act
    let edited = app
        .ok(
            "bob",
            "editMessage",
            json!({"messageId": sent["id"], "text": "first"}),
        )
        .await["message"]
        .clone();

    // Assert
    assert_eq!(edited["text"], "first");
    assert_eq!(
        edited["params"],
        json!({"k": "v"}),
        "params not given are kept"
    );
    assert_eq!(edited["insertDate"], sent["insertDate"]);
    assert_eq!(edited["deleted"], false);
    assert!(edited["editDate"].is_string(), "{edited}");
    for (user, sse, since) in &mut watching {
        let live = sse.next_of("message").await;
        assert!(live.id.is_some(), "{user}");
        assert_eq!(live.data(), &edited, "{user}: the pushed edit");
        let pushed = data_of(&polled(&app, user, *since).await, "message");
        assert_eq!(
            pushed,
            std::slice::from_ref(&edited),
            "{user}: the polled edit"
        );
    }
    let again = app
        .ok(
            "bob",
            "editMessage",
            json!({"messageId": sent["id"], "text": "first!", "params": {"n": "1"}}),
        )
        .await["message"]
        .clone();
    assert_eq!(again["params"], json!({"n": "1"}), "params given replace");
}

#[tokio::test]
async fn delete_message_is_for_the_author_and_the_group_admin() {
    // (case, in the group?, author, caller, outcome)
    #[rustfmt::skip]
    let cases: &[(&str, bool, &str, &str, Outcome)] = &[
        ("the author", true, "bob", "bob", NO_CONTENT),
        ("the group's admin", true, "bob", "alice", NO_CONTENT),
        ("another member", true, "bob", "carol", FORBIDDEN),
        ("a non-member", true, "bob", "eve", NO_MESSAGE),
        ("the author in a direct chat", false, "alice", "alice", NO_CONTENT),
        ("the other member of a direct chat", false, "alice", "bob", FORBIDDEN),
    ];
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let direct = app.direct_chat("alice", "bob").await;
    for &(case, in_group, author, caller, want) in cases {
        // Arrange
        let chat = if in_group { team } else { direct };
        let sent = app.send_text(author, chat, case, "to delete").await;

        // Act
        let (status, body) = app
            .post(caller, "deleteMessage", json!({"messageId": sent["id"]}))
            .await;

        // Assert
        assert_outcome(case, status, &body, want);
        let now = in_history(&app, author, chat, &sent["id"]).await;
        assert_eq!(now["deleted"], want == NO_CONTENT, "{case}");
    }
    let (status, body) = app
        .post("alice", "deleteMessage", json!({"messageId": 999_999}))
        .await;
    assert_outcome("an unknown message", status, &body, NO_MESSAGE);
}

#[tokio::test]
async fn delete_message_pushes_it_wiped_and_deleting_again_pushes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let params = json!({"k": "v"});
    let message =
        json!({"clientMessageId": "d1", "chatId": team, "text": "oops", "params": params});
    let sent = app
        .ok("bob", "message", json!({"messages": [message]}))
        .await["messages"][0]
        .clone();
    let mut watching = watch(&app, &["alice", "bob", "carol"]).await;

    // Act
    let (status, body) = app
        .post("bob", "deleteMessage", json!({"messageId": sent["id"]}))
        .await;

    // Assert
    assert_outcome("the first delete", status, &body, NO_CONTENT);
    let mut cursors = Vec::new();
    for (user, sse, since) in &mut watching {
        let live = sse.next_of("message").await;
        assert!(live.id.is_some(), "{user}");
        let pushed = live.data().clone();
        assert_eq!(pushed["id"], sent["id"], "{user}");
        assert_eq!(pushed["deleted"], true, "{user}");
        assert_eq!(pushed["text"], "", "{user}");
        assert_eq!(pushed["file"], Value::Null, "{user}");
        assert_eq!(pushed["params"], json!({}), "{user}");
        assert_eq!(pushed["clientMessageId"], sent["clientMessageId"], "{user}");
        assert_eq!(pushed["userId"], "bob", "{user}");
        let polled_now = data_of(&polled(&app, user, *since).await, "message");
        assert_eq!(polled_now, [pushed], "{user}: the polled deletion");
        cursors.push(app.cursor(user).await);
    }

    // Act: again, by the author and by the admin
    for caller in ["bob", "alice"] {
        let (status, body) = app
            .post(caller, "deleteMessage", json!({"messageId": sent["id"]}))
            .await;
        assert_outcome("deleting again", status, &body, NO_CONTENT);
    }

    // Assert: nothing was pushed before a later message
    let sentinel = app.send_text("carol", team, "after", "after").await;
    for ((user, sse, _), since) in watching.iter_mut().zip(cursors) {
        let messages: Vec<Value> = until_message(sse, &sentinel["id"])
            .await
            .iter()
            .filter(|e| e.event == "message")
            .map(|e| e.data()["id"].clone())
            .collect();
        assert_eq!(
            messages,
            [sentinel["id"].clone()],
            "{user}: streamed messages"
        );
        let polled_ids: Vec<Value> = data_of(&polled(&app, user, since).await, "message")
            .iter()
            .map(|m| m["id"].clone())
            .collect();
        assert_eq!(
            polled_ids,
            [sentinel["id"].clone()],
            "{user}: polled messages"
        );
    }
}

#[tokio::test]
async fn call_is_accepted_from_any_member_for_every_action() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    // (case, caller, action, outcome)
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, Outcome)] = &[
        ("an offer from the admin", "alice", "offer", ACCEPTED),
        ("an answer from a member", "bob", "answer", ACCEPTED),
        ("a candidate", "carol", "candidate", ACCEPTED),
        ("a hangup", "bob", "hangup", ACCEPTED),
        ("a reject", "carol", "reject", ACCEPTED),
        ("a non-member", "eve", "offer", NO_CHAT),
        ("an unknown action", "alice", "ring", BAD_REQUEST),
    ];

    for &(case, caller, action, want) in cases {
        // Act
        let (status, body) = app
            .post(
                caller,
                "call",
                json!({"chatId": team, "callId": "call-1", "action": action}),
            )
            .await;

        // Assert
        assert_outcome(case, status, &body, want);
        if want == ACCEPTED {
            assert_eq!(body["data"], json!({"callId": "call-1"}), "{case}");
        }
    }
    let (status, body) = app
        .post(
            "alice",
            "call",
            json!({"chatId": 999_999, "callId": "call-1", "action": "offer"}),
        )
        .await;
    assert_outcome("an unknown chat", status, &body, NO_CHAT);
}

#[tokio::test]
async fn call_signals_reach_the_other_members_live_and_are_never_stored() {
    // Arrange
    let app = spawn_app().await;
    let team = app.group("alice", &["bob", "carol"]).await;
    let sdp = json!({"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"});
    let candidate = json!({
        "candidate": "candidate:1 1 UDP 2122252543 192.0.2.1 54400 typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    });
    // (action, sdp, candidate)
    let signals = [
        ("offer", sdp.clone(), Value::Null),
        ("candidate", Value::Null, candidate.clone()),
        ("hangup", Value::Null, Value::Null),
    ];
    let mut watching = watch(&app, &["alice", "bob", "carol"]).await;

    // Act
    for (action, sdp, candidate) in &signals {
        let mut data = json!({"chatId": team, "callId": "c-42", "action": action});
        if !sdp.is_null() {
            data["sdp"] = sdp.clone();
        }
        if !candidate.is_null() {
            data["candidate"] = candidate.clone();
        }
        let (status, body) = app.post("alice", "call", data).await;
        assert_outcome(action, status, &body, ACCEPTED);
    }

    // Assert: the others get each signal live, in order
    for (user, sse, _) in watching.iter_mut().filter(|(u, ..)| *u != "alice") {
        for (action, sdp, candidate) in &signals {
            let got = sse.next_of("call").await;
            assert_eq!(got.id, None, "{user}: a call signal is live only");
            let data = got.data();
            assert_eq!(data["chatId"], team, "{user}");
            assert_eq!(data["userId"], "alice", "{user}");
            assert_eq!(data["callId"], "c-42", "{user}");
            assert_eq!(data["action"], *action, "{user}");
            assert_eq!(data["sdp"], *sdp, "{user}: {action} sdp");
            assert_eq!(data["candidate"], *candidate, "{user}: {action} candidate");
        }
    }
    // The caller's own stream gets none
    let sentinel = app.send_text("bob", team, "after", "after the call").await;
    let (_, alice, _) = &mut watching[0];
    let calls: Vec<Event> = until_message(alice, &sentinel["id"])
        .await
        .into_iter()
        .filter(|e| e.event == "call")
        .collect();
    assert!(calls.is_empty(), "the caller got {calls:?}");
    // And nobody can read them back
    for (user, _, since) in &watching {
        let stored = data_of(&polled(&app, user, *since).await, "call");
        assert!(stored.is_empty(), "{user} polled {stored:?}");
    }
}
