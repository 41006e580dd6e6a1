//! CloudEvents received, over HTTP or the bus: one envelope validated against the CloudEvents
//! 1.0 specification and rrct's three inbound types, before any service sees it.
//!
//! Types: `rrct.enrolment.requested` (data: an enrolment body plus `trial_id`),
//! `rrct.screening.reported` (data: a screening report plus `trial_id`) and `rrct.event.recorded`
//! (data: one follow-up event). The required attributes `id`, `source`, `specversion` (`1.0`)
//! and `type` are checked here, each problem named by its attribute; the envelope is then read
//! by the CloudEvents SDK (`cloudevents-sdk`), which checks the rest of the specification (a
//! `source` that is a URI-reference, a `time` in RFC 3339, attribute names). `(source, id)` is
//! the idempotency key; [`Envelope::content_sha256`] tells a replay from a reuse of the key with
//! other content. Binary mode (`ce-*` headers, the data as the body) is turned into the same
//! structured form first, so both modes are judged alike. Pure: no I/O.

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub const ENROLMENT_REQUESTED: &str = "rrct.enrolment.requested";
pub const SCREENING_REPORTED: &str = "rrct.screening.reported";
pub const EVENT_RECORDED: &str = "rrct.event.recorded";
/// The inbound types rrct accepts.
pub const TYPES: [&str; 3] = [ENROLMENT_REQUESTED, SCREENING_REPORTED, EVENT_RECORDED];

/// The content types of the three HTTP content modes.
pub const STRUCTURED: &str = "application/cloudevents+json";
pub const BATCH: &str = "application/cloudevents-batch+json";

/// Longest `id` or `source` accepted.
pub const MAX_ATTRIBUTE_LEN: usize = 256;
/// Most events in one batch.
pub const MAX_BATCH: usize = 1000;

/// A valid inbound CloudEvent.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: String,
    pub source: String,
    pub event_type: String,
    /// The event's data, a JSON object.
    pub data: Map<String, Value>,
    /// Where the sender wants the answer published (the `replyto` extension; the bus only).
    pub reply_to: Option<String>,
    /// SHA-256 of the type and the data in canonical form (keys sorted).
    pub content_sha256: String,
}

/// One problem with an envelope: the attribute at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeError {
    pub attribute: String,
    pub message: String,
}

fn problem(attribute: &str, message: impl Into<String>) -> AttributeError {
    AttributeError {
        attribute: attribute.to_string(),
        message: message.into(),
    }
}

/// Validate one structured-mode event (a JSON object); every problem is reported.
pub fn structured(value: &Value) -> Result<Envelope, Vec<AttributeError>> {
    let Some(obj) = value.as_object() else {
        return Err(vec![problem(
            "event",
            "a CloudEvent must be a JSON object of attributes",
        )]);
    };
    let mut errors = Vec::new();
    let mut text = |name: &str| -> Option<String> {
        match obj.get(name) {
            None | Some(Value::Null) => {
                errors.push(problem(
                    name,
                    format!("the required attribute `{name}` is missing"),
                ));
                None
            }
            Some(Value::String(s)) if s.is_empty() => {
                errors.push(problem(name, format!("`{name}` must not be empty")));
                None
            }
            Some(Value::String(s)) if s.len() > MAX_ATTRIBUTE_LEN => {
                errors.push(problem(
                    name,
                    format!("`{name}` is longer than {MAX_ATTRIBUTE_LEN} bytes"),
                ));
                None
            }
            Some(Value::String(s)) if s.chars().any(char::is_control) => {
                errors.push(problem(name, format!("`{name}` holds a control character")));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                errors.push(problem(
                    name,
                    format!("`{name}` must be a string, got {other}"),
                ));
                None
            }
        }
    };
    let id = text("id");
    let source = text("source");
    let specversion = text("specversion");
    let event_type = text("type");
    if let Some(v) = &specversion {
        if v != "1.0" {
            errors.push(problem(
                "specversion",
                format!(
                    "`specversion` is `{}`; rrct reads CloudEvents 1.0",
                    v.escape_debug()
                ),
            ));
        }
    }
    if let Some(t) = &event_type {
        if !TYPES.contains(&t.as_str()) {
            errors.push(problem(
                "type",
                format!(
                    "type `{}` is not one rrct receives; expected {}",
                    t.escape_debug(),
                    TYPES.join(", ")
                ),
            ));
        }
    }
    if let Some(ct) = obj.get("datacontenttype") {
        let json = ct
            .as_str()
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .is_some_and(|c| c == "application/json" || c.ends_with("+json"));
        if !json {
            errors.push(problem(
                "datacontenttype",
                format!("`datacontenttype` is {ct}; rrct reads JSON data (application/json)"),
            ));
        }
    }
    if obj.contains_key("data_base64") {
        errors.push(problem(
            "data_base64",
            "data must be JSON (`data`), not base64",
        ));
    }
    let data = match obj.get("data") {
        Some(Value::Object(m)) => Some(m.clone()),
        None | Some(Value::Null) => {
            errors.push(problem("data", "the event carries no `data`"));
            None
        }
        Some(other) => {
            errors.push(problem(
                "data",
                format!("`data` must be a JSON object, got {other}"),
            ));
            None
        }
    };
    let reply_to = match obj.get("replyto") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if is_subject(s) => Some(s.clone()),
        Some(other) => {
            errors.push(problem(
                "replyto",
                format!("`replyto` must be a NATS subject, got {other}"),
            ));
            None
        }
    };
    if errors.is_empty() {
        // The rest of the specification, as the SDK reads it.
        if let Err(e) = serde_json::from_value::<cloudevents::Event>(value.clone()) {
            errors.push(problem("event", format!("not a CloudEvent 1.0: {e}")));
        }
    }
    match (id, source, event_type, data, errors.is_empty()) {
        (Some(id), Some(source), Some(event_type), Some(data), true) => {
            let content_sha256 = content_hash(&event_type, &data);
            Ok(Envelope {
                id,
                source,
                event_type,
                data,
                reply_to,
                content_sha256,
            })
        }
        _ => Err(errors),
    }
}

/// A binary-mode event: the `ce-*` headers as attributes, `content-type` as
/// `datacontenttype`, the body as the data. `headers` are `(name, value)` pairs, names in any
/// case.
pub fn binary<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: &[u8],
) -> Result<Envelope, Vec<AttributeError>> {
    let mut obj = Map::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if let Some(attribute) = name.strip_prefix("ce-") {
            obj.insert(attribute.to_string(), Value::String(value.to_string()));
        } else if name == "content-type" {
            obj.insert("datacontenttype".into(), Value::String(value.to_string()));
        }
    }
    if !body.is_empty() {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) => {
                obj.insert("data".into(), v);
            }
            Err(e) => return Err(vec![problem("data", format!("the body is not JSON: {e}"))]),
        }
    }
    structured(&Value::Object(obj))
}

/// A batch: a JSON array of structured events, each judged on its own. `Err` when the batch
/// itself is not an array or is too large.
pub fn batch(value: &Value) -> Result<Vec<Result<Envelope, Vec<AttributeError>>>, AttributeError> {
    let Some(items) = value.as_array() else {
        return Err(problem(
            "batch",
            "a batch must be a JSON array of CloudEvents",
        ));
    };
    if items.len() > MAX_BATCH {
        return Err(problem(
            "batch",
            format!(
                "{} events in one batch; send at most {MAX_BATCH}",
                items.len()
            ),
        ));
    }
    Ok(items.iter().map(structured).collect())
}

/// A NATS subject a reply may be published to: dot-separated tokens of printable ASCII
/// without spaces or wildcards.
fn is_subject(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ATTRIBUTE_LEN
        && s.split('.').all(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_graphic() && c != '*' && c != '>')
        })
}

/// SHA-256 of the type and the data with object keys sorted.
fn content_hash(event_type: &str, data: &Map<String, Value>) -> String {
    let text = format!(
        "{event_type}\n{}",
        crate::identity::canonical_json(&Value::Object(data.clone()))
    );
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn enrolment() -> Value {
        json!({
            "specversion": "1.0", "id": "E-1", "source": "/registers/swedeheart/upp",
            "type": ENROLMENT_REQUESTED, "datacontenttype": "application/json",
            "time": "2026-12-05T10:00:00Z",
            "data": {"trial_id": "taste", "record_id": "R1", "subject": "S1", "site": "UPP",
                     "fields": {"age": 64}}
        })
    }

    #[test]
    fn a_structured_event_is_read() {
        let e = structured(&enrolment()).unwrap();
        assert_eq!(
            (e.id.as_str(), e.event_type.as_str()),
            ("E-1", ENROLMENT_REQUESTED)
        );
        assert_eq!(e.data["trial_id"], "taste");
        // The same content with keys in another order hashes alike.
        let mut again = enrolment();
        again["data"] = json!({"fields": {"age": 64}, "site": "UPP", "subject": "S1",
                               "record_id": "R1", "trial_id": "taste"});
        assert_eq!(structured(&again).unwrap().content_sha256, e.content_sha256);
        again["data"]["site"] = json!("KS");
        assert_ne!(structured(&again).unwrap().content_sha256, e.content_sha256);
    }

    #[test]
    fn each_required_attribute_is_named_when_missing() {
        for attribute in ["id", "source", "specversion", "type"] {
            let mut e = enrolment();
            e.as_object_mut().unwrap().remove(attribute);
            let errors = structured(&e).unwrap_err();
            assert_eq!(errors.len(), 1, "{attribute}: {errors:?}");
            assert_eq!(errors[0].attribute, attribute);
        }
        let mut e = enrolment();
        e["specversion"] = json!("0.3");
        assert_eq!(structured(&e).unwrap_err()[0].attribute, "specversion");
        e["type"] = json!("com.example.other");
        assert_eq!(structured(&e).unwrap_err().len(), 2);
    }

    #[test]
    fn the_sdk_checks_the_rest_of_the_specification() {
        let mut e = enrolment();
        e["time"] = json!("yesterday");
        let errors = structured(&e).unwrap_err();
        assert_eq!(errors[0].attribute, "event", "{errors:?}");
    }

    #[test]
    fn binary_mode_reads_headers_and_body() {
        let body = serde_json::to_vec(&enrolment()["data"]).unwrap();
        let e = binary(
            [
                ("ce-specversion", "1.0"),
                ("CE-ID", "E-1"),
                ("ce-source", "/registers/swedeheart/upp"),
                ("ce-type", ENROLMENT_REQUESTED),
                ("content-type", "application/json"),
            ],
            &body,
        )
        .unwrap();
        assert_eq!(
            e.content_sha256,
            structured(&enrolment()).unwrap().content_sha256
        );
        let errors = binary([("ce-specversion", "1.0")], &body).unwrap_err();
        let named: Vec<&str> = errors.iter().map(|e| e.attribute.as_str()).collect();
        assert_eq!(named, ["id", "source", "type"]);
    }

    #[test]
    fn a_batch_judges_each_event() {
        let mut bad = enrolment();
        bad["id"] = json!("");
        let results = batch(&json!([enrolment(), bad])).unwrap();
        assert!(results[0].is_ok());
        assert_eq!(results[1].as_ref().unwrap_err()[0].attribute, "id");
        assert!(batch(&json!({"not": "an array"})).is_err());
    }
}
