//! Real answers of every route, successes and errors, fit the documented status, content type
//! and schema: the walk through operations, client API, streams and files (the host API's part
//! is in host.rs), and no route is left unexercised.

use serde_json::json;

use super::{routes, Auth, Checker};
use crate::helpers::spawn_with;

#[tokio::test]
async fn real_answers_of_every_route_fit_the_document() {
    let app = spawn_with(|c| {
        c.max_body = 64 * 1024;
        c.dev = true;
    })
    .await;
    let mut c = Checker::new(app).await;

    // Operations.
    for path in ["/healthz", "/v1/openapi.json"] {
        c.call("GET", path, path, Auth::None, None).await;
    }
    c.calls(vec![
        ("GET", "/metrics", "/metrics", Auth::Host, None, 200),
        ("GET", "/metrics", "/metrics", Auth::None, None, 401),
    ])
    .await;

    // The browser's files and development sign-in.
    let token = json!({"data": {"userId": "dora"}});
    c.calls(vec![
        ("GET", "/", "/", Auth::None, None, 200),
        ("GET", "/{asset}", "/app.js", Auth::None, None, 200),
        ("GET", "/{asset}", "/nope.js", Auth::None, None, 404),
        (
            "GET",
            "/v1/client.js",
            "/v1/client.js",
            Auth::None,
            None,
            200,
        ),
        (
            "POST",
            "/v1/client.js",
            "/v1/client.js",
            Auth::None,
            None,
            405,
        ),
        ("GET", "/v1/dev", "/v1/dev", Auth::None, None, 200),
        (
            "POST",
            "/v1/dev/token",
            "/v1/dev/token",
            Auth::None,
            Some(token),
            200,
        ),
        (
            "POST",
            "/v1/dev/token",
            "/v1/dev/token",
            Auth::None,
            Some(json!({})),
            400,
        ),
    ])
    .await;

    // Chats and messages.
    let direct = c
        .client("alice", "createChat", json!({"userIds": ["bob"]}), 200)
        .await["chat"]["id"]
        .clone();
    let group = c
        .client(
            "alice",
            "createChat",
            json!({"userIds": ["bob", "carol"], "name": "Team"}),
            200,
        )
        .await["chat"]["id"]
        .clone();
    let sent = c
        .client(
            "alice",
            "message",
            json!({"messages": [{"clientMessageId": "m1", "chatId": direct, "text": "hi",
                                 "params": {"k": "v"}}]}),
            200,
        )
        .await;
    let msg = sent["messages"][0]["id"].clone();
    c.clients(vec![
        (
            "bob",
            "messageStatus",
            json!({"status": "read", "chatId": direct, "messageId": msg}),
            200,
        ),
        ("bob", "opponentStatus", json!({"chatId": direct}), 200),
        (
            "bob",
            "typing",
            json!({"chatId": direct, "status": "typing"}),
            202,
        ),
        (
            "bob",
            "call",
            json!({"chatId": direct, "callId": "c1", "action": "offer", "sdp": {"v": 0}}),
            202,
        ),
        // 64 characters, more bytes.
        (
            "bob",
            "call",
            json!({"chatId": direct, "callId": "é".repeat(64), "action": "hangup"}),
            202,
        ),
        ("bob", "chats", json!({"count": 10}), 200),
        ("bob", "chat", json!({"chatId": direct}), 200),
        ("bob", "members", json!({"chatId": direct, "count": 1}), 200),
        (
            "bob",
            "members",
            json!({"chatId": direct, "after": "alice"}),
            200,
        ),
        ("bob", "members", json!({"chatId": 999}), 404),
        ("bob", "members", json!({"chatId": direct, "count": 0}), 400),
        (
            "bob",
            "history",
            json!({"chatId": direct, "limit": 10}),
            200,
        ),
        (
            "alice",
            "renameChat",
            json!({"chatId": group, "name": "Renamed"}),
            200,
        ),
        (
            "alice",
            "addMembers",
            json!({"chatId": group, "userIds": ["dave", 42]}),
            200,
        ),
        (
            "alice",
            "removeMember",
            json!({"chatId": group, "userId": "dave"}),
            200,
        ),
        (
            "alice",
            "editMessage",
            json!({"messageId": msg, "text": "edited"}),
            200,
        ),
        ("alice", "deleteMessage", json!({"messageId": msg}), 204),
        (
            "alice",
            "clearChat",
            json!({"chatId": direct, "forAll": true}),
            204,
        ),
        ("alice", "deleteChat", json!({"chatId": group}), 204),
        ("alice", "join", json!({"consultationId": 777}), 404),
        // Errors of client requests.
        ("bob", "chat", json!({"chatId": 999}), 404),
        ("bob", "chat", json!({}), 400),
        (
            "bob",
            "renameChat",
            json!({"chatId": direct, "name": "x"}),
            403,
        ),
        (
            "bob",
            "editMessage",
            json!({"messageId": 999, "text": "x"}),
            404,
        ),
    ])
    .await;
    let big = json!({"data": {"chatId": 1, "pad": "x".repeat(70 * 1024)}});
    c.calls(vec![
        (
            "POST",
            "/v1/chat",
            "/v1/chat",
            Auth::Bearer("bob"),
            Some(json!({"type": "chats", "data": {}})),
            400,
        ),
        (
            "POST",
            "/v1/chat",
            "/v1/chat",
            Auth::None,
            Some(json!({})),
            401,
        ),
        (
            "POST",
            "/v1/chat",
            "/v1/chat",
            Auth::Bearer("bob"),
            Some(big),
            413,
        ),
    ])
    .await;
    let (status, _) = c
        .call_with(
            "POST",
            "/v1/chat",
            "/v1/chat",
            Auth::Bearer("bob"),
            Some(b"{not json".to_vec()),
            &[],
        )
        .await;
    assert_eq!(status, 400);
    let envelope = |t: &str, data| Some(json!({"type": t, "data": data}));
    c.calls(vec![
        // The envelope endpoint.
        (
            "POST",
            "/v1",
            "/v1",
            Auth::Bearer("bob"),
            envelope("chat", json!({"chatId": direct})),
            200,
        ),
        (
            "POST",
            "/v1",
            "/v1",
            Auth::Bearer("bob"),
            envelope("typing", json!({"chatId": direct, "status": "stopped"})),
            202,
        ),
        (
            "POST",
            "/v1",
            "/v1",
            Auth::Bearer("bob"),
            envelope("nope", json!({})),
            404,
        ),
        // Streams.
        (
            "GET",
            "/v1/poll",
            "/v1/poll?since=0&timeout=0",
            Auth::Query("bob"),
            None,
            200,
        ),
        (
            "GET",
            "/v1/poll",
            "/v1/poll?timeout=99",
            Auth::Bearer("bob"),
            None,
            400,
        ),
        (
            "GET",
            "/v1/events",
            "/v1/events?snapshot=0",
            Auth::Query("bob"),
            None,
            200,
        ),
        (
            "GET",
            "/v1/events",
            "/v1/events?since=x",
            Auth::Query("bob"),
            None,
            400,
        ),
    ])
    .await;

    // Files.
    let png = {
        let mut out = std::io::Cursor::new(Vec::new());
        image::RgbImage::new(4, 4)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    };
    let mut uploaded = Vec::new();
    for (name, bytes) in [("dot.png", png), ("a.txt", b"hello".to_vec())] {
        let path = format!("/v1/files?name={name}");
        let (status, up) = c
            .call_with(
                "POST",
                "/v1/files",
                &path,
                Auth::Bearer("alice"),
                Some(bytes),
                &[],
            )
            .await;
        assert_eq!(status, 201);
        uploaded.push(up["data"]["id"].as_str().unwrap().to_string());
    }
    let [id, text_id] = &uploaded[..] else {
        unreachable!()
    };
    let file_t = "/v1/files/{fileId}";
    let thumb_t = "/v1/files/{fileId}/thumbnail";
    let file = format!("/v1/files/{id}");
    let thumb = format!("/v1/files/{id}/thumbnail");
    let no_thumb = format!("/v1/files/{text_id}/thumbnail");
    let etag = format!("\"{id}\"");
    let alice = Auth::Bearer("alice");
    for (method, template, path, auth, headers, want) in [
        ("GET", file_t, &file, alice, vec![], 200),
        (
            "GET",
            file_t,
            &file,
            alice,
            vec![("Range", "bytes=0-3")],
            206,
        ),
        (
            "GET",
            file_t,
            &file,
            alice,
            vec![("Range", "bytes=99999-")],
            416,
        ),
        (
            "GET",
            file_t,
            &file,
            alice,
            vec![("If-None-Match", etag.as_str())],
            304,
        ),
        ("GET", thumb_t, &thumb, Auth::Query("alice"), vec![], 200),
        ("GET", thumb_t, &no_thumb, alice, vec![], 404),
        ("GET", file_t, &file, Auth::Bearer("bob"), vec![], 404),
        ("POST", file_t, &file, alice, vec![], 405),
    ] {
        let (status, _) = c
            .call_with(method, template, path, auth, None, &headers)
            .await;
        assert_eq!(status, want, "{method} {path} {headers:?}");
    }

    // The host API.
    super::host::answers(&mut c, &direct, id).await;

    let all = routes();
    let missed: Vec<_> = all.difference(&c.seen).collect();
    assert!(missed.is_empty(), "routes not exercised here: {missed:?}");
}
