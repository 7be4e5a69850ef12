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
use orders::Direction::{After, Before};

/// Decodes a host body; errors name the field as `body.chat_id`.
fn decode<T: DeserializeOwned>(body: Value) -> Result<T> {
    crate::api::decode::decode_at(body, "body")
}

/// Declares the host routes from one table: [`ROUTES`] (each path with its methods, which
/// tells a wrong method from an unknown path and which the API description is checked against)
/// and [`handle`], which runs them. Each route's expression sees the request as `app` and
/// `body` and gives the answer's JSON, or `None` for 204.
macro_rules! host_routes {
    ($app:ident, $body:ident;
     $($path:literal { $m1:literal => $run1:expr $(, $m:literal => $run:expr)* $(,)? },)*) => {
        /// Every path the host API serves (under `/v1/server`) and its methods.
        pub const ROUTES: &[(&str, &str)] = &[$(($path, concat!($m1 $(, ", ", $m)*)),)*];

        /// Runs host request `method path` with its body (JSON, or the query string turned
        /// into JSON).
        pub async fn handle(
            $app: &Arc<App>,
            method: &Method,
            path: &str,
            $body: Value,
        ) -> Result<Option<Value>> {
            match (method.as_str(), path) {
                $(
                    ($m1, $path) => Ok($run1),
                    $(($m, $path) => Ok($run),)*
                )*
                (m, p) => Err(match ROUTES.iter().find(|(path, _)| *path == p) {
                    Some((_, allowed)) => Error::MethodNotAllowed {
                        method: m.to_string(),
                        allowed,
                    },
                    None => Error::TypeNotFound(format!(
                        "no such host endpoint: {m} /v1/server{p}"
                    )),
                }),
            }
        }
    };
}

// The one table of host routes: seed 001's Bus API.
host_routes! { app, body;
    "/chats/chats" { "GET" => Some(orders::user_chats(app, decode(body)?).await?) },
    "/chats/chat" { "GET" => Some(orders::user_chat(app, decode(body)?).await?) },
    "/order/chats" { "GET" => Some(orders::order_chats(app, body).await?) },
    "/chats/info" { "GET" => Some(orders::info(app, decode(body)?).await?) },
    "/chats/chat/recent" { "GET" => Some(orders::messages(app, decode(body)?, After).await?) },
    "/chats/messages/update" { "GET" => Some(orders::messages(app, decode(body)?, After).await?) },
    "/chats/chat/history" { "GET" => Some(orders::messages(app, decode(body)?, Before).await?) },
    "/chats/messages/history" {
        "GET" => Some(orders::messages(app, decode(body)?, Before).await?)
    },
    "/chats/new" { "POST" => Some(orders::new_chat(app, decode(body)?).await?) },
    "/chats/user/subscribe" {
        "POST" => Some(orders::subscribe(app, decode(body)?).await?),
        "PUT" => Some(orders::hand_over(app, decode(body)?).await?),
    },
    "/chats/user/unsubscribe" { "POST" => Some(orders::unsubscribe(app, decode(body)?).await?) },
    "/chats/message" { "POST" => Some(orders::post_message(app, decode(body)?).await?) },
    "/chats/status" { "POST" => Some(orders::close(app, decode(body)?).await?) },
    "/ws/client/message" {
        "POST" => {
            users::push(app, decode(body)?).await?;
            None
        }
    },
    "/ws/client/consultation/update" {
        "POST" => {
            users::consultation_update(app, decode(body)?).await?;
            None
        }
    },
    "/users" { "POST" => Some(users::upsert(app, decode(body)?).await?) },
    "/tokens" { "POST" => Some(users::token(app, decode(body)?).await?) },
    "/notifications" { "POST" => Some(users::notify(app, decode(body)?).await?) },
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
