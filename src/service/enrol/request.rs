//! The enrolment body as a register sends it: `{"record_id","subject","site","fields":{...}}`,
//! checked for shape before anything else, and the hash that tells a retry from a different
//! request.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::protocol::{self, FieldError};

/// Longest accepted `record_id`, `subject` or `site`.
pub const MAX_ID_LEN: usize = 128;

/// A parsed enrolment request.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrolmentRequest {
    /// The register's identifier of this enrolment attempt (the idempotency key).
    pub record_id: String,
    /// Pseudonymous subject identifier.
    pub subject: String,
    pub site: String,
    pub fields: Map<String, Value>,
    /// SHA-256 of the canonical JSON of the whole body, to tell a retry from a different request.
    pub request_sha256: String,
}

impl EnrolmentRequest {
    /// Check the body's shape: `{"record_id","subject","site","fields":{...}}` and nothing else.
    pub fn from_json(body: &Value) -> Result<Self, Vec<FieldError>> {
        Self::from_json_with(body, &[])
    }

    /// As [`Self::from_json`], also allowing the top-level keys in `extra` (checked by the
    /// caller).
    pub fn from_json_with(body: &Value, extra: &[&str]) -> Result<Self, Vec<FieldError>> {
        let err = |field: &str, message: String| FieldError {
            field: field.to_string(),
            message,
        };
        let Some(obj) = body.as_object() else {
            return Err(vec![err(
                "",
                "the body must be a JSON object with record_id, subject, site and fields".into(),
            )]);
        };
        let mut errors = Vec::new();
        for key in obj.keys() {
            if !matches!(key.as_str(), "record_id" | "subject" | "site" | "fields")
                && !extra.contains(&key.as_str())
            {
                let mut expected = vec!["record_id", "subject", "site", "fields"];
                expected.extend_from_slice(extra);
                errors.push(err(
                    key,
                    format!("unknown key `{key}`: expected {}", expected.join(", ")),
                ));
            }
        }
        let mut text = |name: &str| -> String {
            match obj.get(name) {
                None | Some(Value::Null) => {
                    errors.push(err(name, format!("{name} is required")));
                    String::new()
                }
                Some(Value::String(s)) if s.trim().is_empty() => {
                    errors.push(err(name, format!("{name} must not be empty")));
                    String::new()
                }
                Some(Value::String(s)) if s.chars().count() > MAX_ID_LEN => {
                    errors.push(err(
                        name,
                        format!("{name} is longer than {MAX_ID_LEN} characters"),
                    ));
                    String::new()
                }
                Some(Value::String(s)) if s.chars().any(char::is_control) => {
                    errors.push(err(name, format!("{name} contains control characters")));
                    String::new()
                }
                Some(Value::String(s)) => s.clone(),
                Some(other) => {
                    errors.push(err(
                        name,
                        format!("{name} must be a string, got {}", json_type(other)),
                    ));
                    String::new()
                }
            }
        };
        let record_id = text("record_id");
        let subject = text("subject");
        let site = text("site");
        if protocol::looks_like_personal_identity_number(&subject) {
            errors.push(err(
                "subject",
                "subject looks like a personal identity number; send the register's pseudonym"
                    .into(),
            ));
        }
        let fields = match obj.get("fields") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                errors.push(err(
                    "fields",
                    format!("fields must be an object, got {}", json_type(other)),
                ));
                Map::new()
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(EnrolmentRequest {
            record_id,
            subject,
            site,
            fields,
            request_sha256: hex::encode(Sha256::digest(canonical_json(body).as_bytes())),
        })
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// JSON with object keys sorted at every level, so the same request hashes the same whatever
/// key order the register's JSON library writes.
pub fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&m[k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}
