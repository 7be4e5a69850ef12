//! The document against the code: every route is described and every described route exists,
//! operation ids and error answers, every error reason in the error table, the served copy.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{document, named, routes, violations};
use crate::helpers::spawn_app;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[test]
fn every_route_is_described_and_every_described_route_exists() {
    let doc = document();
    let routes = routes();
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
    use chinwag::model::{ChatId, MessageId};
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
        Error::ChatNotFound(ChatId::new(7)),
        Error::MessageNotFound(MessageId::new(7)),
        Error::FileNotFound("f".into()),
        Error::ConsultationNotFound("501".into()),
        Error::ChatClosed(ChatId::new(7)),
        Error::PayloadTooLarge(1024),
        Error::MessageTooLarge {
            field: "data.text".into(),
            size: 70_000,
            limit: 65_536,
        },
        Error::RequestTimeout(std::time::Duration::from_secs(30)),
        Error::UriTooLong {
            size: 9000,
            limit: 8192,
        },
        Error::HeadersTooLarge("150 header fields".into()),
        Error::RateLimited {
            limit: "user_rate",
            retry_after: 2,
        },
        Error::Unavailable { retry_after: 5 },
        Error::RangeNotSatisfiable(100),
        Error::InsufficientStorage,
        Error::Unhealthy("writes are failing".into()),
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
            | Error::MessageTooLarge { .. }
            | Error::RequestTimeout(_)
            | Error::UriTooLong { .. }
            | Error::HeadersTooLarge(_)
            | Error::RateLimited { .. }
            | Error::Unavailable { .. }
            | Error::RangeNotSatisfiable(_)
            | Error::InsufficientStorage
            | Error::Unhealthy(_)
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
