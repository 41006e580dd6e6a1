//! Request bodies as JSON, read strictly: a body whose object repeats a key is refused (with the
//! key, line and column) instead of the last value silently winning — `"age"` twice must not
//! decide eligibility — and the body must be declared `application/json`.

use std::fmt;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::service::error::Code;

/// A JSON request body, read with [`parse_strict`].
pub struct ApiJson(pub Value);

impl<S: Send + Sync> FromRequest<S> for ApiJson {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(CONTENT_TYPE)) {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                "the body must be sent as `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(Code::PayloadTooLarge, e.body_text())
            } else {
                ApiError::new(Code::MalformedJson, e.body_text())
            }
        })?;
        parse_strict(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::new(Code::MalformedJson, e.to_string()))
    }
}

fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parse JSON text, refusing any object that repeats a key.
///
/// ```
/// use rrct::api::json::parse_strict;
/// assert!(parse_strict(br#"{"a": 1, "b": {"c": 2}}"#).is_ok());
/// let e = parse_strict(br#"{"fields": {"age": 40, "age": 90}}"#).unwrap_err();
/// assert_eq!(e.to_string(), "duplicate key `age` at line 1 column 28");
/// ```
pub fn parse_strict(text: &[u8]) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let value = Strict::deserialize(&mut deserializer)?.0;
    deserializer.end()?;
    Ok(value)
}

/// A `serde_json::Value` built by a visitor that refuses repeated keys.
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Strict, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key `{}`",
                    key.escape_debug()
                )));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_refused_at_any_depth_and_distinct_ones_kept() {
        for bad in [
            r#"{"a": 1, "a": 1}"#,
            r#"{"events": [{"event_id": "E1", "subject": "S", "subject": "T"}]}"#,
            r#"[{"x": {"y": 1, "y": 2}}]"#,
        ] {
            let e = parse_strict(bad.as_bytes()).unwrap_err();
            assert!(e.to_string().starts_with("duplicate key"), "{bad}: {e}");
        }
        let v =
            parse_strict(br#"{"a": 1, "b": [1, 2.5, "x", null, true], "c": {"a": 1}}"#).unwrap();
        assert_eq!(v["b"][1], 2.5);
        assert_eq!(v["c"]["a"], 1);
        assert!(parse_strict(b"{} extra").is_err(), "trailing characters");
    }
}
