//! JSON requests read strictly, from HTTP bodies and bus frames alike: a key given twice in one
//! object, or a string holding a NUL character, is refused with the path of the offender.
//! Everything else parses as serde_json does; no other module reads request JSON from bytes.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{short, Error, Result as Answer};

/// A request's bytes as JSON: `None` when there are none (or only whitespace); `400` when they
/// are not UTF-8 or not strict JSON, naming the place under `root`.
pub fn body(bytes: &[u8], root: &str) -> Answer<Option<Value>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Error::BadRequest(format!(
            "the body is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    parse(text, root).map(Some).map_err(Error::BadRequest)
}

/// Parses `text` as JSON; the error names the offending place under `root` (`data.text`,
/// `body.userId`; for an envelope, whose root is the body itself, `data.messages[0].text`).
pub fn parse(text: &str, root: &str) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = At(root.to_string()).deserialize(&mut de);
    let value = value.and_then(|v| de.end().map(|()| v));
    value.map_err(|e| match e.is_data() {
        // Ours: valid JSON, refused. The message names the place; serde's position follows.
        true => e.to_string(),
        false => format!("the body is not valid JSON: {e}"),
    })
}

/// A value at a path.
struct At(String);

impl At {
    fn child(&self, key: &str) -> At {
        match self.0.is_empty() {
            true => At(key.to_string()),
            false => At(format!("{}.{key}", self.0)),
        }
    }

    fn name(&self) -> &str {
        if self.0.is_empty() {
            "the body"
        } else {
            &self.0
        }
    }
}

impl<'de> DeserializeSeed<'de> for At {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for At {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.visit_string(v.to_string())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        // A NUL cuts C strings short in logs, shells and other clients' storage.
        if v.contains('\0') {
            return Err(E::custom(format!(
                "{} must not contain a NUL character (U+0000)",
                self.name()
            )));
        }
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(At(format!("{}[{}]", self.0, out.len())))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = self.child(&key);
            if key.contains('\0') {
                return Err(A::Error::custom(format!(
                    "a key in {} contains a NUL character (U+0000)",
                    self.name()
                )));
            }
            if out.contains_key(&key) {
                // Which of the two counts differs between JSON parsers: refuse, don't guess.
                return Err(A::Error::custom(format!(
                    "{} is given twice; give each key once",
                    short(&at.0)
                )));
            }
            let value = map.next_value_seed(at)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_serde_json() {
        let text = r#"{"type":"message","data":{"n":-1,"f":1.5,"a":[true,null,"x"],"big":18446744073709551615}}"#;
        let want: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parse(text, "").unwrap(), want);
    }

    #[test]
    fn refuses_duplicate_keys_and_nul_by_path() {
        let cases = [
            (
                r#"{"data":{"chatId":1,"chatId":2}}"#,
                "",
                "data.chatId is given twice",
            ),
            (r#"{"a":1,"a":1}"#, "body", "body.a is given twice"),
            (
                r#"{"data":{"messages":[{"text":"a\u0000b"}]}}"#,
                "",
                "data.messages[0].text must not contain a NUL",
            ),
            (
                r#"{"userId":"a\u0000"}"#,
                "body",
                "body.userId must not contain a NUL",
            ),
            (r#"{"k\u0000":1}"#, "body", "a key in body contains a NUL"),
        ];
        for (text, root, want) in cases {
            let e = parse(text, root).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
