//! The API description (docs/openapi.json) kept true: every route is described and every
//! described route exists, the server serves the same document, every JSON example in the docs
//! validates against the schema it names, every error reason is in the error table, every pushed
//! event fits its `Event_*` schema, and real answers of every route fit the documented status,
//! content type and schema.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_with, token, TestApp};

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(chinwag::http::OPENAPI).expect("docs/openapi.json is JSON")
}

/// A validator for `schema`, whose `$ref`s point into the document's components.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"))
}

/// Every reason `instance` breaks `schema` with, or none.
fn violations(doc: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    validator(doc, schema)
        .iter_errors(instance)
        .map(|e| format!("{e} (at {})", e.instance_path()))
        .collect()
}

fn named(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// Follows a `$ref` to a component (`#/components/responses/NotFound`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

#[test]
fn every_route_is_described_and_every_described_route_exists() {
    let doc = document();
    let routes: BTreeSet<(String, String)> = chinwag::http::routes()
        .into_iter()
        .map(|(m, p)| (m.to_lowercase(), p))
        .collect();
    let mut described = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if METHODS.contains(&method.as_str()) {
                described.insert((method.clone(), path.clone()));
            }
        }
    }
    let undocumented: Vec<_> = routes.difference(&described).collect();
    let unknown: Vec<_> = described.difference(&routes).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "routes missing from docs/openapi.json: {undocumented:?}; documented but not routes: \
         {unknown:?}"
    );
    // Each operation: a unique id, a 500, and error answers from the shared table.
    let mut ids = BTreeSet::new();
    for (method, path) in &described {
        let op = &doc["paths"][path][method];
        let id = op["operationId"].as_str().expect("an operationId");
        assert!(ids.insert(id.to_string()), "operationId {id} twice");
        let responses = op["responses"].as_object().expect("responses");
        assert!(responses.contains_key("500"), "{method} {path} has no 500");
        for (status, r) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                if let Some(r) = r.get("$ref").and_then(Value::as_str) {
                    assert!(doc.pointer(&r[1..]).is_some(), "dangling {r}");
                } else {
                    assert!(
                        ["416"].contains(&status.as_str()),
                        "{method} {path} {status}: errors use components/responses"
                    );
                }
            }
        }
    }
}

/// One error of every variant: the exhaustive match fails to compile when a variant is added.
fn every_error() -> Vec<chinwag::error::Error> {
    use chinwag::error::Error;
    let all = vec![
        Error::BadRequest("data.chatId is required".into()),
        Error::TypeMismatch {
            path: "chat".into(),
            body: "chats".into(),
        },
        Error::TypeNotFound("no such endpoint".into()),
        Error::MethodNotAllowed {
            method: "GET".into(),
            allowed: "POST",
        },
        Error::TokenInvalid("expired".into()),
        Error::Forbidden("only the admin".into()),
        Error::ChatNotFound(7),
        Error::MessageNotFound(7),
        Error::FileNotFound("f".into()),
        Error::ConsultationNotFound("501".into()),
        Error::ChatClosed(7),
        Error::PayloadTooLarge(1024),
        Error::Internal(anyhow::anyhow!("disk")),
    ];
    for e in &all {
        match e {
            Error::BadRequest(_)
            | Error::TypeMismatch { .. }
            | Error::TypeNotFound(_)
            | Error::MethodNotAllowed { .. }
            | Error::TokenInvalid(_)
            | Error::Forbidden(_)
            | Error::ChatNotFound(_)
            | Error::MessageNotFound(_)
            | Error::FileNotFound(_)
            | Error::ConsultationNotFound(_)
            | Error::ChatClosed(_)
            | Error::PayloadTooLarge(_)
            | Error::Internal(_) => {}
        }
    }
    all
}

#[test]
fn every_error_reason_is_in_the_error_table() {
    let doc = document();
    for e in every_error() {
        let (status, reason, _) = e.response_parts();
        let body = e.body();
        for schema in [named("Error"), named(&format!("Error_{status}"))] {
            let bad = violations(&doc, &schema, &body);
            assert!(bad.is_empty(), "{reason} ({status}) vs {schema}: {bad:?}");
        }
    }
}

#[tokio::test]
async fn the_server_serves_this_document() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(format!("{}/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let served: Value = res.json().await.unwrap();
    assert_eq!(served, document());
}

/// The ```json blocks of a Markdown file, each with the schema named by the
/// `<!-- schema: Name -->` line before it (None when there is none) and its line number.
fn json_blocks(text: &str) -> Vec<(usize, Option<String>, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_start() == "```json" {
            let start = i + 1;
            let schema = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| {
                    l.trim()
                        .strip_prefix("<!-- schema:")?
                        .strip_suffix("-->")
                        .map(|s| s.trim().to_string())
                });
            let mut body = Vec::new();
            i += 1;
            while i < lines.len() && lines[i].trim_start() != "```" {
                body.push(lines[i]);
                i += 1;
            }
            out.push((start, schema, body.join("\n")));
        }
        i += 1;
    }
    out
}

#[test]
fn every_json_example_in_the_docs_fits_its_schema() {
    let doc = document();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        for (line, schema, body) in json_blocks(&text) {
            let Some(schema) = schema else {
                problems.push(format!(
                    "{name}:{line}: a json block needs <!-- schema: Name --> before it"
                ));
                continue;
            };
            if doc["components"]["schemas"].get(&schema).is_none() {
                problems.push(format!("{name}:{line}: no schema {schema} in openapi.json"));
                continue;
            }
            let example: Value = match serde_json::from_str(&body) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("{name}:{line}: not JSON: {e}"));
                    continue;
                }
            };
            for v in violations(&doc, &named(&schema), &example) {
                problems.push(format!("{name}:{line}: {schema}: {v}"));
            }
            checked += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 10, "only {checked} examples found");
}

#[test]
fn a_wrong_example_is_caught() {
    let doc = document();
    let text = "<!-- schema: Chat -->\n```json\n{\"id\": 1}\n```\n```json\n{}\n```\n";
    let blocks = json_blocks(text);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].1.as_deref(), Some("Chat"));
    assert_eq!(blocks[1].1, None);
    let example: Value = serde_json::from_str(&blocks[0].2).unwrap();
    assert!(!violations(&doc, &named("Chat"), &example).is_empty());
}

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Query(&'a str),
    Host,
}

/// Calls the real server and checks the answer against the operation `method template`: the
/// status is documented, the content type is one documented for it, and a JSON body fits the
/// documented schema. Returns the status and the JSON body (Null when not JSON or empty).
struct Checker {
    app: TestApp,
    doc: Value,
    seen: BTreeSet<(String, String)>,
}

impl Checker {
    async fn new(app: TestApp) -> Checker {
        Checker {
            app,
            doc: document(),
            seen: BTreeSet::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn call_with(
        &mut self,
        method: &str,
        template: &str,
        path: &str,
        auth: Auth<'_>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut url = format!("{}{path}", self.app.base);
        if let Auth::Query(user) = auth {
            url.push(if path.contains('?') { '&' } else { '?' });
            url.push_str(&format!("token={}", token(user)));
        }
        let method_ = Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.app.client.request(method_, &url);
        match auth {
            Auth::None | Auth::Query(_) => {}
            Auth::Bearer(user) => req = req.bearer_auth(token(user)),
            Auth::Host => req = req.bearer_auth("test-service-key"),
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let ctype = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = if ctype.as_deref() == Some("text/event-stream") {
            Vec::new() // a stream does not end; its events are checked elsewhere
        } else {
            res.bytes().await.unwrap().to_vec()
        };
        let json_body = if ctype.as_deref() == Some("application/json") {
            serde_json::from_slice(&bytes).expect("a JSON body")
        } else {
            Value::Null
        };
        let what = format!("{method} {path} → {status}");
        let item = &self.doc["paths"][template];
        let op = match item.get(method.to_lowercase()) {
            Some(op) => {
                self.seen
                    .insert((method.to_lowercase(), template.to_string()));
                op
            }
            // Another method on a documented path: the 405 of the path's operations.
            None => {
                assert_eq!(status, 405, "{what}: {method} {template} is not documented");
                let (_, op) = item
                    .as_object()
                    .and_then(|ops| ops.iter().next())
                    .unwrap_or_else(|| panic!("{template} is not documented"));
                op
            }
        };
        let documented = op["responses"]
            .get(status.to_string())
            .map(|r| resolve(&self.doc, r))
            .unwrap_or_else(|| panic!("{what}: status not documented; body {json_body}"));
        match (documented.get("content").and_then(Value::as_object), &ctype) {
            (None, _) => assert!(bytes.is_empty(), "{what}: documented without a body"),
            (Some(content), Some(ctype)) => {
                let media = ctype.split(';').next().unwrap().trim();
                let key = content
                    .keys()
                    .find(|k| *k == "*/*" || k.as_str() == media)
                    .unwrap_or_else(|| panic!("{what}: content type {ctype} not documented"));
                if media == "application/json" {
                    let schema = &content[key]["schema"];
                    let bad = violations(&self.doc, schema, &json_body);
                    assert!(bad.is_empty(), "{what}: {json_body}\n{}", bad.join("\n"));
                }
            }
            (Some(_), None) => panic!("{what}: no content type"),
        }
        (status, json_body)
    }

    async fn call(
        &mut self,
        method: &str,
        template: &str,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string().into_bytes());
        self.call_with(method, template, path, auth, body, &[])
            .await
    }

    /// `POST /v1/{kind}` as `user` with `{"data": data}`; asserts `want`.
    async fn client(&mut self, user: &str, kind: &str, data: Value, want: u16) -> Value {
        let path = format!("/v1/{kind}");
        let body = json!({"type": kind, "data": data});
        let (status, body) = self
            .call("POST", &path, &path, Auth::Bearer(user), Some(body))
            .await;
        assert_eq!(status, want, "{kind}: {body}");
        body["data"].clone()
    }

    /// A host route: GET with a query string, others with a JSON body; asserts `want`.
    async fn host(&mut self, method: &str, route: &str, body: Value, want: u16) -> Value {
        let template = format!("/v1/server{route}");
        let (status, out) = if method == "GET" {
            let query: Vec<String> = body
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}={s}"),
                    Value::Array(items) => {
                        let items: Vec<String> = items.iter().map(Value::to_string).collect();
                        format!("{k}={}", items.join(","))
                    }
                    other => format!("{k}={other}"),
                })
                .collect();
            let path = format!("{template}?{}", query.join("&"));
            self.call(method, &template, &path, Auth::Host, None).await
        } else {
            self.call(method, &template, &template, Auth::Host, Some(body))
                .await
        };
        assert_eq!(status, want, "{method} {route}: {out}");
        out
    }
}

#[tokio::test]
async fn real_answers_of_every_route_fit_the_document() {
    let app = spawn_with(|c| c.max_body = 64 * 1024).await;
    let mut c = Checker::new(app).await;

    // Operations.
    c.call("GET", "/healthz", "/healthz", Auth::None, None)
        .await;
    c.call(
        "GET",
        "/v1/openapi.json",
        "/v1/openapi.json",
        Auth::None,
        None,
    )
    .await;
    let (status, _) = c
        .call("GET", "/metrics", "/metrics", Auth::Host, None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = c
        .call("GET", "/metrics", "/metrics", Auth::None, None)
        .await;
    assert_eq!(status, 401);

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
    c.client(
        "bob",
        "messageStatus",
        json!({"status": "read", "chatId": direct, "messageId": msg}),
        200,
    )
    .await;
    c.client("bob", "opponentStatus", json!({"chatId": direct}), 200)
        .await;
    c.client(
        "bob",
        "typing",
        json!({"chatId": direct, "status": "typing"}),
        202,
    )
    .await;
    c.client(
        "bob",
        "call",
        json!({"chatId": direct, "callId": "c1", "action": "offer", "sdp": {"v": 0}}),
        202,
    )
    .await;
    // 64 characters, more bytes.
    c.client(
        "bob",
        "call",
        json!({"chatId": direct, "callId": "é".repeat(64), "action": "hangup"}),
        202,
    )
    .await;
    c.client("bob", "chats", json!({"count": 10}), 200).await;
    c.client("bob", "chat", json!({"chatId": direct}), 200)
        .await;
    c.client(
        "bob",
        "history",
        json!({"chatId": direct, "limit": 10}),
        200,
    )
    .await;
    c.client(
        "alice",
        "renameChat",
        json!({"chatId": group, "name": "Renamed"}),
        200,
    )
    .await;
    c.client(
        "alice",
        "addMembers",
        json!({"chatId": group, "userIds": ["dave", 42]}),
        200,
    )
    .await;
    c.client(
        "alice",
        "removeMember",
        json!({"chatId": group, "userId": "dave"}),
        200,
    )
    .await;
    c.client(
        "alice",
        "editMessage",
        json!({"messageId": msg, "text": "edited"}),
        200,
    )
    .await;
    c.client("alice", "deleteMessage", json!({"messageId": msg}), 204)
        .await;
    c.client(
        "alice",
        "clearChat",
        json!({"chatId": direct, "forAll": true}),
        204,
    )
    .await;
    c.client("alice", "deleteChat", json!({"chatId": group}), 204)
        .await;
    c.client("alice", "join", json!({"consultationId": 777}), 404)
        .await;
    // Errors of client requests.
    c.client("bob", "chat", json!({"chatId": 999}), 404).await;
    c.client("bob", "chat", json!({}), 400).await;
    c.client(
        "bob",
        "renameChat",
        json!({"chatId": direct, "name": "x"}),
        403,
    )
    .await;
    c.client(
        "bob",
        "editMessage",
        json!({"messageId": 999, "text": "x"}),
        404,
    )
    .await;
    let (status, _) = c
        .call(
            "POST",
            "/v1/chat",
            "/v1/chat",
            Auth::Bearer("bob"),
            Some(json!({"type": "chats", "data": {}})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = c
        .call("POST", "/v1/chat", "/v1/chat", Auth::None, Some(json!({})))
        .await;
    assert_eq!(status, 401);
    let big = json!({"data": {"chatId": 1, "pad": "x".repeat(70 * 1024)}});
    let (status, _) = c
        .call(
            "POST",
            "/v1/chat",
            "/v1/chat",
            Auth::Bearer("bob"),
            Some(big),
        )
        .await;
    assert_eq!(status, 413);
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
    // The envelope endpoint.
    let (status, _) = c
        .call(
            "POST",
            "/v1",
            "/v1",
            Auth::Bearer("bob"),
            Some(json!({"type": "chat", "data": {"chatId": direct}})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = c
        .call(
            "POST",
            "/v1",
            "/v1",
            Auth::Bearer("bob"),
            Some(json!({"type": "typing", "data": {"chatId": direct, "status": "stopped"}})),
        )
        .await;
    assert_eq!(status, 202);
    let (status, _) = c
        .call(
            "POST",
            "/v1",
            "/v1",
            Auth::Bearer("bob"),
            Some(json!({"type": "nope", "data": {}})),
        )
        .await;
    assert_eq!(status, 404);

    // Streams.
    let (status, _) = c
        .call(
            "GET",
            "/v1/poll",
            "/v1/poll?since=0&timeout=0",
            Auth::Query("bob"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = c
        .call(
            "GET",
            "/v1/poll",
            "/v1/poll?timeout=99",
            Auth::Bearer("bob"),
            None,
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = c
        .call(
            "GET",
            "/v1/events",
            "/v1/events?snapshot=0",
            Auth::Query("bob"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = c
        .call(
            "GET",
            "/v1/events",
            "/v1/events?since=x",
            Auth::Query("bob"),
            None,
        )
        .await;
    assert_eq!(status, 400);

    // Files.
    let png = {
        let mut out = std::io::Cursor::new(Vec::new());
        image::RgbImage::new(4, 4)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    };
    let (status, up) = c
        .call_with(
            "POST",
            "/v1/files",
            "/v1/files?name=dot.png",
            Auth::Bearer("alice"),
            Some(png),
            &[],
        )
        .await;
    assert_eq!(status, 201);
    let id = up["data"]["id"].as_str().unwrap().to_string();
    let (status, up) = c
        .call_with(
            "POST",
            "/v1/files",
            "/v1/files?name=a.txt",
            Auth::Bearer("alice"),
            Some(b"hello".to_vec()),
            &[],
        )
        .await;
    assert_eq!(status, 201);
    let text_id = up["data"]["id"].as_str().unwrap().to_string();
    let file_t = "/v1/files/{fileId}";
    let thumb_t = "/v1/files/{fileId}/thumbnail";
    let file = format!("/v1/files/{id}");
    let thumb = format!("/v1/files/{id}/thumbnail");
    let etag = format!("\"{id}\"");
    for (headers, want) in [
        (vec![], 200),
        (vec![("Range", "bytes=0-3")], 206),
        (vec![("Range", "bytes=99999-")], 416),
        (vec![("If-None-Match", etag.as_str())], 304),
    ] {
        let (status, _) = c
            .call_with("GET", file_t, &file, Auth::Bearer("alice"), None, &headers)
            .await;
        assert_eq!(status, want);
    }
    let (status, _) = c
        .call_with("GET", thumb_t, &thumb, Auth::Query("alice"), None, &[])
        .await;
    assert_eq!(status, 200);
    let no_thumb = format!("/v1/files/{text_id}/thumbnail");
    let (status, _) = c
        .call_with("GET", thumb_t, &no_thumb, Auth::Bearer("alice"), None, &[])
        .await;
    assert_eq!(status, 404);
    let (status, _) = c
        .call_with("GET", file_t, &file, Auth::Bearer("bob"), None, &[])
        .await;
    assert_eq!(status, 404);
    let (status, _) = c
        .call_with("POST", file_t, &file, Auth::Bearer("alice"), None, &[])
        .await;
    assert_eq!(status, 405);

    // The host API.
    let order = c
        .host("POST", "/chats/new", json!({"order_id": 501}), 200)
        .await["chat"]["id"]
        .clone();
    c.host(
        "POST",
        "/chats/user/subscribe",
        json!({"user_id": "alice", "user_type": "client", "chat_id": order}),
        200,
    )
    .await;
    c.host(
        "POST",
        "/chats/user/subscribe",
        json!({"user_id": "doc-1", "user_type": "consultant", "chat_id": order}),
        200,
    )
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
    c.host(
        "POST",
        "/chats/message",
        json!({"chat_id": order, "user_id": "doc-2", "message": "Hello", "file_id": id}),
        200,
    )
    .await;
    let first = posted["message"]["id"].clone();
    for route in [
        "/chats/chat/recent",
        "/chats/messages/update",
        "/chats/chat/history",
        "/chats/messages/history",
    ] {
        c.host(
            "GET",
            route,
            json!({"user_id": "alice", "chat_id": order, "message_id": first, "count": 5}),
            200,
        )
        .await;
    }
    c.host(
        "GET",
        "/chats/chats",
        json!({"user_id": "alice", "count": 5}),
        200,
    )
    .await;
    c.host(
        "GET",
        "/chats/chat",
        json!({"user_id": "alice", "chat_id": order}),
        200,
    )
    .await;
    c.host(
        "GET",
        "/chats/chat",
        json!({"user_id": "zed", "chat_id": order}),
        404,
    )
    .await;
    c.host(
        "GET",
        "/chats/info",
        json!({"user_id": "alice", "chats_id": [order, direct, 999]}),
        200,
    )
    .await;
    c.host(
        "GET",
        "/order/chats",
        json!({"order_id": 501, "opponent_id": "alice"}),
        200,
    )
    .await;
    c.host(
        "GET",
        "/order/chats",
        json!({"order_id": 502, "opponent_id": "alice"}),
        200,
    )
    .await;
    c.host(
        "POST",
        "/ws/client/message",
        json!({"user_id": "alice", "type": "orderUpdate", "data": {"step": 2}}),
        204,
    )
    .await;
    c.host(
        "POST",
        "/ws/client/message",
        json!({"user_id": "alice", "type": "chat", "data": {}}),
        400,
    )
    .await;
    c.host(
        "POST",
        "/ws/client/consultation/update",
        json!({"user_id": "alice", "data": {"active": true, "consultationId": 501}}),
        204,
    )
    .await;
    c.host(
        "POST",
        "/users",
        json!({"user_id": "alice", "first_name": "Alice", "email": "a@example.com"}),
        200,
    )
    .await;
    c.host(
        "POST",
        "/tokens",
        json!({"user_id": "alice", "ttl_seconds": 60}),
        200,
    )
    .await;
    c.host(
        "POST",
        "/notifications",
        json!({"user_id": "alice", "text": "Your order shipped"}),
        200,
    )
    .await;
    c.host("POST", "/chats/status", json!({"chat_id": order}), 200)
        .await;
    c.host(
        "POST",
        "/chats/message",
        json!({"chat_id": order, "message": "late"}),
        409,
    )
    .await;
    c.client(
        "alice",
        "message",
        json!({"messages": [{"clientMessageId": "m9", "chatId": order, "text": "late"}]}),
        409,
    )
    .await;
    c.host(
        "POST",
        "/chats/user/unsubscribe",
        json!({"user_id": "alice", "chat_id": order}),
        200,
    )
    .await;
    c.host("POST", "/chats/status", json!({"chat_id": 999}), 404)
        .await;
    c.host("POST", "/chats/status", json!({}), 400).await;
    let (status, _) = c
        .call(
            "POST",
            "/v1/server/users",
            "/v1/server/users",
            Auth::Bearer("alice"),
            Some(json!({"user_id": "x"})),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = c
        .call(
            "GET",
            "/v1/server/users",
            "/v1/server/users",
            Auth::Host,
            None,
        )
        .await;
    assert_eq!(status, 405);

    let all: BTreeSet<(String, String)> = chinwag::http::routes()
        .into_iter()
        .map(|(m, p)| (m.to_lowercase(), p))
        .collect();
    let missed: Vec<_> = all.difference(&c.seen).collect();
    assert!(missed.is_empty(), "routes not exercised here: {missed:?}");
}

/// The `Event_*` name of an event type (`custom` for the host's own types).
fn event_schema(doc: &Value, kind: &str) -> String {
    let name = format!("Event_{kind}");
    if doc["components"]["schemas"].get(&name).is_some() {
        name
    } else {
        "Event_custom".into()
    }
}

/// Checks one SSE event against its `Event_*` schema and `SseEvent`; counts it in `seen`.
fn check_event(
    doc: &Value,
    e: &crate::helpers::Event,
    seen: &mut BTreeMap<String, usize>,
    problems: &mut Vec<String>,
) {
    let schema = event_schema(doc, &e.event);
    if e.envelope["type"] != e.event {
        problems.push(format!(
            "event: {} carries type {}",
            e.event, e.envelope["type"]
        ));
    }
    for v in violations(doc, &named(&schema), &e.envelope) {
        problems.push(format!("{}: {v}: {}", e.event, e.envelope));
    }
    for v in violations(doc, &named("SseEvent"), &e.envelope) {
        problems.push(format!("SseEvent {}: {v}", e.event));
    }
    *seen.entry(schema).or_default() += 1;
}

#[tokio::test]
async fn every_pushed_event_fits_its_schema() {
    let app = spawn_app().await;
    let doc = document();
    let mut bob = app.events("bob", "", None).await;
    let direct = app.direct_chat("alice", "bob").await;
    let msg = app.send_text("alice", direct, "m1", "hi").await;
    app.ok(
        "bob",
        "messageStatus",
        json!({"status": "read", "chatId": direct, "messageId": msg["id"]}),
    )
    .await;
    // Bob's other connection sees his own status, alice's stream the delivered tick.
    app.ok(
        "alice",
        "typing",
        json!({"chatId": direct, "status": "typing", "message": "h"}),
    )
    .await;
    app.ok(
        "alice",
        "call",
        json!({"chatId": direct, "callId": "c1", "action": "offer", "sdp": "v=0"}),
    )
    .await;
    // Alice connects (bob gets opponentStatus), then drops her stream (clientConnectionError).
    let alice = app.events("alice", "", None).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    alice.close();
    let host = |path: &str, body: Value| {
        app.client
            .post(format!("{}/v1/server{path}", app.base))
            .bearer_auth("test-service-key")
            .json(&body)
            .send()
    };
    let res = host(
        "/ws/client/consultation/update",
        json!({"user_id": "bob", "data": {"active": true, "consultationId": 501}}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 204);
    let res = host(
        "/ws/client/message",
        json!({"user_id": "bob", "type": "orderUpdate", "data": {"step": 2}}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 204);
    app.ok(
        "alice",
        "clearChat",
        json!({"chatId": direct, "forAll": true}),
    )
    .await;
    let group = app.group("alice", &["bob", "carol"]).await;
    app.ok(
        "alice",
        "removeMember",
        json!({"chatId": group, "userId": "bob"}),
    )
    .await;

    let wanted: BTreeSet<String> = doc["components"]["schemas"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("Event_"))
        .cloned()
        .collect();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    // A cursor from the future gets `reset` before the snapshot.
    let mut reset = app.events("bob", "since=999999", None).await;
    for _ in 0..2 {
        check_event(&doc, &reset.next().await, &mut seen, &mut problems);
    }
    reset.close();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.keys().cloned().collect::<BTreeSet<_>>() != wanted
        && tokio::time::Instant::now() < deadline
    {
        if let Some(e) = bob.next_within(0.5).await {
            check_event(&doc, &e, &mut seen, &mut problems);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let missing: Vec<_> = wanted.iter().filter(|w| !seen.contains_key(*w)).collect();
    assert!(
        missing.is_empty(),
        "never pushed: {missing:?} (seen {seen:?})"
    );

    // The same events by long-poll fit PollResponse.
    let (status, body) = app.poll("bob", "since=0&timeout=0").await;
    assert_eq!(status, 200);
    let bad = violations(&doc, &named("PollResponse"), &body);
    assert!(bad.is_empty(), "{body}\n{}", bad.join("\n"));
    assert!(body["events"].as_array().unwrap().len() >= 8, "{body}");
}
