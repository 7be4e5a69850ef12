//! Request values decoded into their types, with errors that name the offending field as the
//! caller wrote it (`data.messages[0].chatId`, `body.chat_id`) and point out misspelt fields.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};

/// Decodes a request's `data` into its type; the error names the offending field.
pub fn data<T: DeserializeOwned>(data: Value) -> Result<T> {
    decode_at(data, "data")
}

/// Decodes a JSON value into its type; the error names the offending field under `root` (e.g.
/// `data.messages[0].chatId`, or `body.chat_id` for the host API). When a required field is
/// missing and the same object has fields the type does not know (a typo such as `chatID`), the
/// error names those too.
pub fn decode_at<T: DeserializeOwned>(value: Value, root: &str) -> Result<T> {
    let mut unknown: Vec<String> = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let result = {
        let de = serde_path_to_error::Deserializer::new(value, &mut track);
        T::deserialize(serde_ignored::Deserializer::new(de, &mut |path| {
            unknown.push(ignored_path(root, &path))
        }))
    };
    result.map_err(|e| {
        let path = match track.path().to_string() {
            p if p == "." => root.to_string(),
            p => format!("{root}.{p}"),
        };
        let inner = e.to_string();
        // "missing field `chatId`" is about a child of `path`: name the child itself.
        let missing = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(field, _)| field.to_string());
        match missing {
            Some(field) => {
                let prefix = format!("{path}.");
                let strays: Vec<&str> = unknown
                    .iter()
                    .filter(|u| {
                        u.strip_prefix(&prefix)
                            .is_some_and(|k| !k.contains(['.', '[']))
                    })
                    .map(String::as_str)
                    .collect();
                if strays.is_empty() {
                    Error::BadRequest(format!("{path}.{field} is required"))
                } else {
                    Error::BadRequest(format!(
                        "{path}.{field} is required (and {} is not a known field)",
                        strays.join(", ")
                    ))
                }
            }
            None => Error::BadRequest(format!("{path}: {}", plain(&inner))),
        }
    })
}

/// serde's words for types in the protocol's: "expected u64" reads "expected a whole number".
fn plain(message: &str) -> String {
    let mut out = message
        .replace("expected u64", "expected a whole number, 0 or more")
        .replace("expected u32", "expected a whole number, 0 or more")
        .replace("expected i64", "expected a whole number")
        .replace("expected a sequence", "expected an array")
        .replace("expected a map", "expected an object");
    if let Some(at) = out.find("expected struct ") {
        out.replace_range(at.., "expected an object");
    }
    out
}

/// A path of an ignored field in the style of the other errors: `data.messages[0].chatID`.
fn ignored_path(root: &str, path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => root.to_string(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(root, parent)),
        Path::Map { parent, key } => format!("{}.{key}", ignored_path(root, parent)),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(root, parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(rename_all = "camelCase")]
        #[allow(dead_code)]
        struct Req {
            chat_id: u64,
        }
        let e = data::<Req>(serde_json::json!({"chatId": "x"})).unwrap_err();
        assert!(e.to_string().contains("data.chatId"), "{e}");
        let e = data::<Req>(serde_json::json!({})).unwrap_err();
        assert_eq!(e.to_string(), "data.chatId is required");
        let e = data::<Req>(serde_json::json!({"chatID": 1})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "data.chatId is required (and data.chatID is not a known field)"
        );
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Batch {
            messages: Vec<Req>,
        }
        let e = data::<Batch>(serde_json::json!({"messages": [{"chatId": 1}, {"chat": 2}]}))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "data.messages[1].chatId is required (and data.messages[1].chat is not a known field)"
        );
    }
}
