//! The host backend API under `/v1/server`: seed 001's Bus API routes with their snake_case
//! bodies, authenticated by the service key. Answers use the client API's objects, without the
//! client envelope; pushes and other acknowledgements answer 204.

mod orders;
mod users;

use std::sync::Arc;

use http::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::app::App;
use crate::error::{Error, Result};

/// Every path the host API serves (under `/v1/server`) and its methods: the list that tells a
/// wrong method from an unknown path, and that the API description is checked against.
pub const ROUTES: &[(&str, &str)] = &[
    ("/chats/chats", "GET"),
    ("/chats/chat", "GET"),
    ("/order/chats", "GET"),
    ("/chats/info", "GET"),
    ("/chats/chat/recent", "GET"),
    ("/chats/messages/update", "GET"),
    ("/chats/chat/history", "GET"),
    ("/chats/messages/history", "GET"),
    ("/chats/new", "POST"),
    ("/chats/user/subscribe", "POST, PUT"),
    ("/chats/user/unsubscribe", "POST"),
    ("/chats/message", "POST"),
    ("/chats/status", "POST"),
    ("/ws/client/message", "POST"),
    ("/ws/client/consultation/update", "POST"),
    ("/users", "POST"),
    ("/tokens", "POST"),
    ("/notifications", "POST"),
];

/// Decodes a host body; errors name the field as `body.chat_id`.
fn decode<T: DeserializeOwned>(body: Value) -> Result<T> {
    crate::api::decode::decode_at(body, "body")
}

/// Runs host request `method path` with its body (JSON, or the query string turned into JSON).
/// `None` means 204.
pub async fn handle(
    app: &Arc<App>,
    method: &Method,
    path: &str,
    body: Value,
) -> Result<Option<Value>> {
    use orders::Direction::{After, Before};
    let m = method.as_str();
    let out = match (m, path) {
        ("GET", "/chats/chats") => orders::user_chats(app, decode(body)?).await?,
        ("GET", "/chats/chat") => orders::user_chat(app, decode(body)?).await?,
        ("GET", "/chats/info") => orders::info(app, decode(body)?).await?,
        ("GET", "/order/chats") => orders::order_chats(app, body).await?,
        ("GET", "/chats/chat/recent" | "/chats/messages/update") => {
            orders::messages(app, decode(body)?, After).await?
        }
        ("GET", "/chats/chat/history" | "/chats/messages/history") => {
            orders::messages(app, decode(body)?, Before).await?
        }
        ("POST", "/chats/new") => orders::new_chat(app, decode(body)?).await?,
        ("POST", "/chats/user/subscribe") => orders::subscribe(app, decode(body)?).await?,
        ("PUT", "/chats/user/subscribe") => orders::hand_over(app, decode(body)?).await?,
        ("POST", "/chats/user/unsubscribe") => orders::unsubscribe(app, decode(body)?).await?,
        ("POST", "/chats/message") => orders::post_message(app, decode(body)?).await?,
        ("POST", "/chats/status") => orders::close(app, decode(body)?).await?,
        ("POST", "/ws/client/message") => {
            return users::push(app, decode(body)?).await.map(|_| None)
        }
        ("POST", "/ws/client/consultation/update") => {
            return users::consultation_update(app, decode(body)?)
                .await
                .map(|_| None)
        }
        ("POST", "/users") => users::upsert(app, decode(body)?).await?,
        ("POST", "/tokens") => users::token(app, decode(body)?).await?,
        ("POST", "/notifications") => users::notify(app, decode(body)?).await?,
        (_, p) => {
            return Err(match ROUTES.iter().find(|(path, _)| *path == p) {
                Some((_, allowed)) => Error::MethodNotAllowed {
                    method: m.to_string(),
                    allowed,
                },
                None => Error::TypeNotFound(format!("no such host endpoint: {m} /v1/server{p}")),
            })
        }
    };
    Ok(Some(out))
}

/// A query string as a JSON object for GET routes: whole numbers become numbers, `true`/`false`
/// booleans, a repeated name or a comma-separated value an array.
pub fn query_json(pairs: impl IntoIterator<Item = (String, String)>) -> Value {
    fn scalar(v: &str) -> Value {
        // Only a number written the canonical way: user "007" is not user "7".
        if let Some(n) = v.parse::<u64>().ok().filter(|n| n.to_string() == v) {
            Value::from(n)
        } else if v == "true" || v == "false" {
            Value::from(v == "true")
        } else {
            Value::from(v)
        }
    }
    let mut map = serde_json::Map::new();
    for (k, v) in pairs {
        let value = if v.contains(',') {
            Value::Array(v.split(',').map(scalar).collect())
        } else {
            scalar(&v)
        };
        match map.get_mut(&k) {
            Some(Value::Array(items)) => items.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None => {
                map.insert(k, value);
            }
        }
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_become_typed_json() {
        let q = |s: &str| {
            query_json(
                form_urlencoded::parse(s.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())),
            )
        };
        assert_eq!(
            q("user_id=42&count=10"),
            serde_json::json!({"user_id": 42, "count": 10})
        );
        assert_eq!(q("user_id=alice"), serde_json::json!({"user_id": "alice"}));
        assert_eq!(q("user_id=007"), serde_json::json!({"user_id": "007"}));
        assert_eq!(
            q("chats_id=1,2,3"),
            serde_json::json!({"chats_id": [1, 2, 3]})
        );
        assert_eq!(
            q("chats_id=1&chats_id=2"),
            serde_json::json!({"chats_id": [1, 2]})
        );
        assert_eq!(q("active=true"), serde_json::json!({"active": true}));
    }
}
