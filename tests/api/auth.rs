//! Client authentication through the real server: token checks, token transport and token profiles.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{
    member_ids, now_s, read, spawn_app, spawn_with, token, TestApp, SECRET, SERVICE_KEY,
};

/// Signs `header` and `claims` (as given, byte for byte) with HMAC-SHA256 under `secret`.
fn hs256(secret: &str, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    let sig = B64.encode(mac.finalize().into_bytes());
    format!("{input}.{sig}")
}

/// Valid claims for `user` as JSON text.
fn claims(user: &str) -> String {
    json!({"sub": user, "exp": now_s() + 3600}).to_string()
}

/// Asserts a 401 `token_invalid` error body whose message mentions `mention`.
fn assert_token_invalid(status: StatusCode, body: &Value, mention: &str, context: &str) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{context}: {body}");
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{context}: no error in {body}"));
    assert_eq!(error.len(), 3, "{context}: {body}");
    assert_eq!(body["error"]["code"], 401, "{context}");
    assert_eq!(body["error"]["reason"], "token_invalid", "{context}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(mention),
        "{context}: message {message:?} should mention {mention:?}"
    );
}

/// `POST /v1/{kind}` of `data` with an optional bearer token.
async fn post_as(
    app: &TestApp,
    bearer: Option<&str>,
    kind: &str,
    data: Value,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(format!("{}/v1/{kind}", app.base))
        .json(&json!({"type": kind, "data": data}));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    read(req.send().await.unwrap()).await
}

/// `GET` of `path_and_query` with an optional bearer token.
async fn get_as(app: &TestApp, bearer: Option<&str>, path_and_query: &str) -> (StatusCode, Value) {
    let mut req = app.client.get(format!("{}{path_and_query}", app.base));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    read(req.send().await.unwrap()).await
}

#[tokio::test]
async fn bad_tokens_are_refused_everywhere() {
    // Arrange
    let app = spawn_app().await;
    let none_header = r#"{"alg":"none","typ":"JWT"}"#;
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no Authorization", None, "no token"),
        ("not a JWT", Some("not-a-token".into()), "JWT"),
        (
            "another secret",
            Some(chinwag::auth::mint_claims(
                "other-secret",
                &json!({"sub": "u", "exp": now_s() + 3600}),
            )),
            "signature",
        ),
        (
            "expired",
            Some(chinwag::auth::mint_claims(
                SECRET,
                &json!({"sub": "u", "exp": now_s() - 300}),
            )),
            "expired",
        ),
        (
            "alg none",
            Some(format!(
                "{}.{}.",
                B64.encode(none_header),
                B64.encode(claims("u"))
            )),
            "algorithm",
        ),
        (
            "alg none, signed",
            Some(hs256(SECRET, none_header, &claims("u"))),
            "algorithm",
        ),
        (
            "HS512",
            Some(hs256(
                SECRET,
                r#"{"alg":"HS512","typ":"JWT"}"#,
                &claims("u"),
            )),
            "algorithm",
        ),
        (
            "RS256",
            Some(hs256(
                SECRET,
                r#"{"alg":"RS256","typ":"JWT"}"#,
                &claims("u"),
            )),
            "algorithm",
        ),
        (
            "no exp",
            Some(chinwag::auth::mint_claims(SECRET, &json!({"sub": "u"}))),
            "exp",
        ),
        (
            "no sub",
            Some(chinwag::auth::mint_claims(
                SECRET,
                &json!({"exp": now_s() + 3600}),
            )),
            "sub",
        ),
    ];

    for (name, bearer, mention) in &cases {
        let bearer = bearer.as_deref();

        // Act
        let post = post_as(&app, bearer, "chats", json!({})).await;
        let events = get_as(&app, bearer, "/v1/events").await;
        let poll = get_as(&app, bearer, "/v1/poll?timeout=0").await;

        // Assert
        assert_token_invalid(
            post.0,
            &post.1,
            mention,
            &format!("{name} on POST /v1/chats"),
        );
        assert_token_invalid(
            events.0,
            &events.1,
            mention,
            &format!("{name} on GET /v1/events"),
        );
        assert_token_invalid(poll.0, &poll.1, mention, &format!("{name} on GET /v1/poll"));
    }
}

#[tokio::test]
async fn nbf_exp_and_crit_are_checked_like_jwt_libraries_do() {
    // Arrange: the default leeway is 30 seconds.
    let app = spawn_app().await;
    let at = |claims: Value| chinwag::auth::mint_claims(SECRET, &claims);
    let crit = |header: &str| hs256(SECRET, header, &claims("u"));
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        (
            "nbf in an hour",
            at(json!({"sub": "u", "exp": now_s() + 7200, "nbf": now_s() + 3600})),
            Some("nbf"),
        ),
        (
            "nbf in 5 s (within leeway)",
            at(json!({"sub": "u", "exp": now_s() + 60, "nbf": now_s() + 5})),
            None,
        ),
        (
            "nbf a minute ago",
            at(json!({"sub": "u", "exp": now_s() + 60, "nbf": now_s() - 60})),
            None,
        ),
        (
            "nbf not a number",
            at(json!({"sub": "u", "exp": now_s() + 60, "nbf": "now"})),
            Some("nbf"),
        ),
        (
            "expired 5 s ago (within leeway)",
            at(json!({"sub": "u", "exp": now_s() - 5})),
            None,
        ),
        (
            "expired 5 minutes ago",
            at(json!({"sub": "u", "exp": now_s() - 300})),
            Some("expired"),
        ),
        (
            "unknown crit",
            crit(r#"{"alg":"HS256","crit":["urn:x:must-know"],"urn:x:must-know":1}"#),
            Some("crit"),
        ),
        (
            "empty crit",
            crit(r#"{"alg":"HS256","crit":[]}"#),
            Some("crit"),
        ),
    ];

    for (name, t, refused) in cases {
        // Act
        let (status, body) = post_as(&app, Some(&t), "chats", json!({})).await;

        // Assert
        match refused {
            Some(mention) => assert_token_invalid(status, &body, mention, name),
            None => assert_eq!(status, StatusCode::OK, "{name}: {body}"),
        }
    }
}

#[tokio::test]
async fn the_token_leeway_is_configurable() {
    // Arrange
    let strict = spawn_with(|c| c.token_leeway = std::time::Duration::ZERO).await;
    let t = chinwag::auth::mint_claims(SECRET, &json!({"sub": "u", "exp": now_s() - 5}));

    // Act
    let (status, body) = post_as(&strict, Some(&t), "chats", json!({})).await;

    // Assert
    assert_token_invalid(status, &body, "expired", "5 s late with no leeway");
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    // Arrange
    let app = spawn_app().await;
    let good = format!("Bearer {}", token("u"));

    for path in ["/v1/chats", "/v1/server/users"] {
        // Act
        let res = app
            .client
            .post(format!("{}{path}", app.base))
            .header("authorization", &good)
            .header("authorization", "Bearer test-service-key")
            .json(&json!({"type": "chats", "data": {}}))
            .send()
            .await
            .unwrap();
        let (status, body) = read(res).await;

        // Assert
        assert_token_invalid(status, &body, "more than one Authorization", path);
    }
}

#[tokio::test]
async fn bad_tokens_in_the_query_are_refused_on_streams() {
    // Arrange
    let app = spawn_app().await;
    let cases = [
        (
            "another secret",
            chinwag::auth::mint_claims("other-secret", &json!({"sub": "u", "exp": now_s() + 3600})),
            "signature",
        ),
        (
            "expired",
            chinwag::auth::mint_claims(SECRET, &json!({"sub": "u", "exp": now_s() - 300})),
            "expired",
        ),
    ];

    for (name, t, mention) in cases {
        for path in ["/v1/events", "/v1/poll"] {
            // Act
            let (status, body) = get_as(&app, None, &format!("{path}?token={t}&timeout=0")).await;

            // Assert
            assert_token_invalid(status, &body, mention, &format!("{name} on {path}"));
        }
    }
}

#[tokio::test]
async fn a_token_from_a_standard_jwt_library_works() {
    // Arrange
    let app = spawn_app().await;
    let header = r#"{"typ":"JWT","alg":"HS256"}"#;
    let claims = json!({"iat": now_s(), "exp": now_s() + 600, "sub": 12345}).to_string();
    let t = hs256(SECRET, header, &claims);

    // Act
    let (status, body) = post_as(&app, Some(&t), "createChat", json!({"userIds": ["bob"]})).await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(member_ids(&body["data"]["chat"]), ["12345", "bob"]);
}

#[tokio::test]
async fn the_query_token_works_on_streams_only() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.direct_chat("alice", "bob").await;
    let t = token("alice");

    // Act
    let events = app.events("alice", "snapshot=0", None).await;
    let poll = get_as(&app, None, &format!("/v1/poll?token={t}&timeout=0")).await;
    let message = app
        .client
        .post(format!("{}/v1/message?token={t}", app.base))
        .json(&json!({"type": "message", "data": {"messages": [{"clientMessageId": "q1", "chatId": chat, "text": "hi"}]}}))
        .send()
        .await
        .unwrap();
    let message = read(message).await;

    // Assert
    assert_eq!(events.status, StatusCode::OK);
    assert_eq!(
        events.headers.get(reqwest::header::CONTENT_TYPE).unwrap(),
        "text/event-stream"
    );
    events.close();
    assert_eq!(poll.0, StatusCode::OK, "{}", poll.1);
    assert!(poll.1["events"].is_array(), "{}", poll.1);
    assert_token_invalid(
        message.0,
        &message.1,
        "Authorization",
        "?token= on POST /v1/message",
    );
    let history = app.ok("bob", "history", json!({"chatId": chat})).await;
    assert_eq!(history["messages"], json!([]));
}

#[tokio::test]
async fn the_service_key_is_not_a_client_token() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let (status, body) = post_as(&app, Some(SERVICE_KEY), "chats", json!({})).await;

    // Assert
    assert_token_invalid(status, &body, "JWT", "service key as a client token");
}

#[tokio::test]
async fn token_profiles_are_stored_and_shown_without_contact_details() {
    // Arrange
    let app = spawn_app().await;
    let profile = json!({"firstName": "Ann", "lastName": "Lee", "photo": "p.png", "email": "ann@x", "phone": "1"});
    let ann = chinwag::auth::mint_claims(
        SECRET,
        &json!({"sub": "ann", "exp": now_s() + 3600, "profile": profile}),
    );
    let (status, body) = post_as(&app, Some(&ann), "chats", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Act
    let res = app
        .client
        .post(format!("{}/v1/createChat", app.base))
        .bearer_auth(token("bob"))
        .json(&json!({"type": "createChat", "data": {"userIds": ["ann"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();

    // Assert
    let body: Value = serde_json::from_str(&text).unwrap();
    let users = body["data"]["users"].as_array().unwrap();
    let shown = users
        .iter()
        .find(|u| u["id"] == "ann")
        .unwrap_or_else(|| panic!("ann not in {text}"));
    assert_eq!(shown["firstName"], "Ann");
    assert_eq!(shown["lastName"], "Lee");
    assert_eq!(shown["photo"], "p.png");
    for hidden in ["email", "phone", "ann@x"] {
        assert!(!text.contains(hidden), "{hidden} is in {text}");
    }
}

#[tokio::test]
async fn a_later_token_profile_updates_the_stored_one() {
    // Arrange
    let app = spawn_app().await;
    let first = json!({"firstName": "Ann", "lastName": "Lee", "photo": "p.png"});
    let ann = chinwag::auth::mint_claims(
        SECRET,
        &json!({"sub": "ann", "exp": now_s() + 3600, "profile": first}),
    );
    assert_eq!(
        post_as(&app, Some(&ann), "chats", json!({})).await.0,
        StatusCode::OK
    );
    let chat = app.direct_chat("bob", "ann").await;

    // Act
    let renamed = chinwag::auth::mint_claims(
        SECRET,
        &json!({"sub": "ann", "exp": now_s() + 3600, "profile": {"firstName": "Annie"}}),
    );
    let (status, body) = post_as(&app, Some(&renamed), "chats", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = app.ok("bob", "chat", json!({"chatId": chat})).await;

    // Assert
    let users = data["users"].as_array().unwrap();
    let shown = users
        .iter()
        .find(|u| u["id"] == "ann")
        .unwrap_or_else(|| panic!("ann not in {data}"));
    assert_eq!(shown["firstName"], "Annie");
    assert_eq!(shown["lastName"], "Lee");
    assert_eq!(shown["photo"], "p.png");
}
