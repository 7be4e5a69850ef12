//! The browser's side of the server: the demo app and the JS client served from the binary,
//! development sign-in only with `--dev`, and CORS for any origin or a configured list.

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{read, spawn_app, spawn_with, TestApp};

/// `method path` on `app` with `headers`, no credentials (the browser's files need none).
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(header::HeaderName, &str)],
) -> reqwest::Response {
    let mut req = app.client.request(method, format!("{}{path}", app.base));
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_demo_app_and_the_client_are_served_with_validators() {
    let app = spawn_app().await;
    for (path, kind, needle) in [
        ("/", "text/html", "<html"),
        ("/app.js", "text/javascript", "client.js"),
        ("/app.css", "text/css", "{"),
        ("/v1/client.js", "text/javascript", "export class Chinwag"),
    ] {
        let res = call(&app, Method::GET, path, &[]).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let h = res.headers().clone();
        assert!(
            h[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind),
            "{path}: {h:?}"
        );
        assert_eq!(h[header::CACHE_CONTROL], "no-cache", "{path}");
        let etag = h[header::ETAG].to_str().unwrap().to_string();
        let body = res.text().await.unwrap();
        assert!(body.contains(needle), "{path} does not hold {needle:?}");
        // The browser's copy is current: 304 with no body; a stale one gets the file.
        let res = call(&app, Method::GET, path, &[(header::IF_NONE_MATCH, &etag)]).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(res.headers()[header::ETAG].to_str().unwrap(), etag);
        assert!(res.bytes().await.unwrap().is_empty());
        let res = call(&app, Method::GET, path, &[(header::IF_NONE_MATCH, "\"0\"")]).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        // HEAD: the headers alone.
        let res = call(&app, Method::HEAD, path, &[]).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn only_the_apps_files_are_served_and_other_methods_are_refused() {
    let app = spawn_app().await;
    // The client has its own path; Node's manifest and anything else are not pages.
    for path in [
        "/chinwag.js",
        "/package.json",
        "/nope.html",
        "/../Cargo.toml",
        "/v1/app.js",
    ] {
        let res = call(&app, Method::GET, path, &[]).await;
        let (status, body) = read(res).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["error"]["reason"], "type_not_found", "{path}");
    }
    for path in ["/", "/app.js", "/v1/client.js"] {
        let res = call(&app, Method::POST, path, &[]).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(res.headers()[header::ALLOW], "GET, HEAD", "{path}");
    }
}

#[tokio::test]
async fn development_sign_in_is_off_unless_the_server_runs_with_dev() {
    let app = spawn_app().await;
    let res = call(&app, Method::GET, "/v1/dev", &[]).await;
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("--dev"),
        "{body}"
    );
    let asked = app.client.post(format!("{}/v1/dev/token", app.base));
    let res = asked
        .json(&json!({"data": {"userId": "alice"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn with_dev_anyone_signs_in_by_name_and_the_token_works() {
    let app = spawn_with(|c| c.dev = true).await;
    let res = call(&app, Method::GET, "/v1/dev", &[]).await;
    let (status, body) = read(res).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"type": "dev", "data": {"dev": true}})
        )
    );
    let token_for = |data: Value| {
        let req = app.client.post(format!("{}/v1/dev/token", app.base));
        async move { read(req.json(&json!({"data": data})).send().await.unwrap()).await }
    };
    let (status, body) = token_for(json!({"userId": "alice"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["type"], "token");
    assert_eq!(body["data"]["userId"], "alice");
    let token = body["data"]["token"].as_str().unwrap().to_string();
    // The token is a client token like any other; its profile names the user.
    let chats = app
        .client
        .post(format!("{}/v1/createChat", app.base))
        .bearer_auth(&token);
    let res = chats
        .json(&json!({"data": {"userIds": ["bob"]}}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let users = body["data"]["users"].as_array().unwrap();
    let alice = users
        .iter()
        .find(|u| u["id"] == "alice")
        .expect("alice's profile");
    assert_eq!(alice["firstName"], "alice", "{body}");
    // Bad names get the envelope, naming the field.
    for (data, says) in [
        (json!({}), "data.userId is required"),
        (json!({"userId": "a b"}), "data.userId"),
    ] {
        let (status, body) = token_for(data).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(says),
            "{body}"
        );
    }
}

#[tokio::test]
async fn any_origin_by_default_and_the_preflight_allows_what_sse_polyfills_send() {
    let app = spawn_app().await;
    let origin = (header::ORIGIN, "https://app.example.com");
    let res = call(&app, Method::GET, "/healthz", std::slice::from_ref(&origin)).await;
    assert_eq!(res.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert!(res.headers().get(header::VARY).is_none());
    let asked = [
        origin,
        (header::ACCESS_CONTROL_REQUEST_METHOD, "GET"),
        (
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "cache-control, x-requested-with",
        ),
    ];
    let res = call(&app, Method::OPTIONS, "/v1/events", &asked).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let allowed = res.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap();
    let allowed = allowed.to_ascii_lowercase();
    for h in [
        "authorization",
        "content-type",
        "last-event-id",
        "cache-control",
        "x-requested-with",
    ] {
        assert!(allowed.split(", ").any(|a| a == h), "{h} not in {allowed}");
    }
}

#[tokio::test]
async fn a_list_of_origins_answers_each_its_own_and_no_other() {
    let list = "https://app.example.com,http://localhost:3000";
    let app = spawn_with(|c| c.cors = chinwag::config::Cors::parse(list).unwrap()).await;
    let from = |origin: Option<&'static str>, method: Method| {
        let mut req = app
            .client
            .request(method, format!("{}/v1/poll?timeout=0", app.base));
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        async move { req.send().await.unwrap() }
    };
    for origin in ["https://app.example.com", "http://localhost:3000"] {
        for method in [Method::GET, Method::OPTIONS] {
            let res = from(Some(origin), method.clone()).await;
            let h = res.headers();
            assert_eq!(
                h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
                origin,
                "{method} from {origin}"
            );
            assert_eq!(h[header::VARY], "Origin");
        }
    }
    // Another origin, or none (curl), gets its answer without the header: a browser keeps it
    // from the page; the answer itself is the same.
    for origin in [Some("https://evil.example.com"), None] {
        let res = from(origin, Method::GET).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(
            res.headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none(),
            "{origin:?}"
        );
        assert_eq!(res.headers()[header::VARY], "Origin");
    }
}
