//! The enrolment body as a register sends it: `{"record_id","subject","site","fields":{...}}`,
//! checked for shape before anything else (ids in their canonical form, see [`crate::identity`]),
//! and the hash that tells a retry from a different request.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::identity::{self, canonical_id, IdError};
use crate::protocol::FieldError;

pub use crate::identity::MAX_ID_LEN;

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
        let mut id = |name: &str| -> String {
            match obj.get(name) {
                None | Some(Value::Null) => {
                    errors.push(err(name, format!("{name} is required")));
                    String::new()
                }
                Some(Value::String(s)) => canonical_id(s).unwrap_or_else(|e| {
                    errors.push(err(name, format!("{name} {e}")));
                    String::new()
                }),
                Some(other) => {
                    errors.push(err(
                        name,
                        format!("{name} must be a string, got {}", json_type(other)),
                    ));
                    String::new()
                }
            }
        };
        let record_id = id("record_id");
        let subject = id("subject");
        let site = id("site");
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
        errors.extend(field_text_errors(&fields));
        if !errors.is_empty() {
            return Err(errors);
        }
        // The hash is of the request as understood: two spellings of one id are one request.
        let mut understood = body.clone();
        for (key, canonical) in [
            ("record_id", &record_id),
            ("subject", &subject),
            ("site", &site),
        ] {
            understood[key] = Value::String(canonical.clone());
        }
        Ok(EnrolmentRequest {
            record_id,
            subject,
            site,
            fields,
            request_sha256: hex::encode(Sha256::digest(canonical_json(&understood).as_bytes())),
        })
    }
}

/// Field names and text values that no register could have meant: control or invisible
/// characters (never stored, on any backend), or a personal identity number.
fn field_text_errors(fields: &Map<String, Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (key, value) in fields {
        let field = format!("fields.{key}");
        if let Some(e) = identity::forbidden_character(key) {
            errors.push(FieldError {
                field,
                message: format!("the field name {e}"),
            });
            continue;
        }
        if let Value::String(text) = value {
            if let Some(e) = identity::forbidden_character(text) {
                errors.push(FieldError {
                    message: format!("{field} {e}"),
                    field,
                });
            } else if identity::contains_personal_identity_number(text) {
                errors.push(FieldError {
                    message: format!("{field} {}", IdError::PersonalIdentityNumber),
                    field,
                });
            }
        }
    }
    errors
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

pub use crate::identity::canonical_json;
