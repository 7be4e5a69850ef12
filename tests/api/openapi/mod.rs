//! The API description (docs/openapi.json) kept true: the shared pieces, loading the document,
//! validating JSON against its schemas and checking real answers against it.

mod answers;
mod events;
mod examples;
mod host;
mod routes;

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{token, TestApp, SERVICE_KEY};

fn document() -> Value {
    serde_json::from_str(chinwag::http::OPENAPI).expect("docs/openapi.json is JSON")
}

/// The server's routes as `(lowercase method, path template)`.
fn routes() -> BTreeSet<(String, String)> {
    chinwag::http::routes()
        .into_iter()
        .map(|(m, p)| (m.to_lowercase(), p))
        .collect()
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
            Auth::Host => req = req.bearer_auth(SERVICE_KEY),
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

    /// Makes each `(method, template, path, auth, body, status)` call in order; asserts the status.
    async fn calls(&mut self, cases: Vec<Call<'_>>) {
        for (method, template, path, auth, body, want) in cases {
            let (status, _) = self.call(method, template, path, auth, body).await;
            assert_eq!(status, want, "{method} {path}");
        }
    }

    /// Makes each `(user, kind, data, status)` client request in order with [`Checker::client`].
    async fn clients(&mut self, cases: Vec<(&str, &str, Value, u16)>) {
        for (user, kind, data, want) in cases {
            self.client(user, kind, data, want).await;
        }
    }

    /// Makes each `(method, route, body, status)` host request in order with [`Checker::host`].
    async fn hosts(&mut self, cases: Vec<(&str, &str, Value, u16)>) {
        for (method, route, body, want) in cases {
            self.host(method, route, body, want).await;
        }
    }
}

/// A call whose status is asserted: method, route template, path, auth, JSON body, status.
type Call<'a> = (&'a str, &'a str, &'a str, Auth<'a>, Option<Value>, u16);
