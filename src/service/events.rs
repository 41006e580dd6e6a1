//! Intake of follow-up events from the registers, by HTTP batch or CSV file.
//!
//! A batch is all-or-nothing: every row is validated first and every problem reported (by row,
//! with the field and reason); only a clean batch reaches the store, in one transaction, where
//! a replayed event (same id, same content) changes nothing and a resubmitted id with other
//! content fails the whole batch.

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::error::{detail, Code, CodedError};
use super::{Principal, Role};
use crate::endpoints::{parse_event, Event, EventFields};
use crate::randomise::Timestamp;
use crate::store::events::{self, EventRow};
use crate::store::{allocations, audit, Store, StoreError};

/// Largest number of events in one HTTP batch.
pub const MAX_HTTP_EVENTS: usize = 10_000;

/// A problem with one row of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// 0-based position in the HTTP batch's `events` array, or the 1-based line of a CSV file.
    pub row: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

/// What an accepted batch did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    pub received: usize,
    /// Newly stored.
    pub stored: u64,
    /// Already stored with identical content (replays).
    pub already_present: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{0}")]
    Forbidden(String),
    #[error("{} invalid row(s); nothing was stored", .0.len())]
    Invalid(Vec<RowError>),
    #[error("{} row(s) name subjects outside this token's scope; nothing was stored", .0.len())]
    OutOfScope(Vec<RowError>),
    #[error("{} event id(s) were already stored with different content; nothing was stored", .0.len())]
    Conflict(Vec<RowError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CodedError for IngestError {
    fn code(&self) -> Code {
        match self {
            IngestError::Forbidden(_) | IngestError::OutOfScope(_) => Code::Forbidden,
            IngestError::Invalid(_) => Code::InvalidEvents,
            IngestError::Conflict(_) => Code::EventConflict,
            IngestError::Store(e) => e.code(),
        }
    }

    fn public_message(&self) -> String {
        match self {
            IngestError::Store(e) => e.public_message(),
            other => other.to_string(),
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            IngestError::Invalid(rows)
            | IngestError::Conflict(rows)
            | IngestError::OutOfScope(rows) => detail("rows", rows),
            _ => Map::new(),
        }
    }
}

/// Validate the HTTP body `{"events":[{...}]}` of a batch received on `received_on`.
pub fn parse_json_batch(body: &Value, received_on: NaiveDate) -> Result<Vec<Event>, Vec<RowError>> {
    let whole = |message: &str| {
        vec![RowError {
            row: 0,
            event_id: None,
            field: Some("events".into()),
            message: message.into(),
        }]
    };
    let Some(obj) = body.as_object() else {
        return Err(whole("the body must be an object {\"events\": [...]}"));
    };
    if let Some(key) = obj.keys().find(|k| *k != "events") {
        return Err(whole(&format!(
            "unknown key `{}`: the body holds only `events`",
            key.escape_debug()
        )));
    }
    let Some(items) = obj.get("events").and_then(Value::as_array) else {
        return Err(whole("`events` must be an array of events"));
    };
    if items.len() > MAX_HTTP_EVENTS {
        return Err(whole(&format!(
            "{} events in one batch; send at most {MAX_HTTP_EVENTS} per request",
            items.len()
        )));
    }
    let mut events = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (row, item) in items.iter().enumerate() {
        match event_from_json(item, received_on) {
            Ok(e) => events.push(e),
            Err(errs) => errors.extend(errs.into_iter().map(|(field, message)| {
                RowError {
                    row,
                    event_id: item
                        .get("event_id")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    field,
                    message,
                }
            })),
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(errors)
    }
}

const EVENT_KEYS: [&str; 7] = [
    "event_id", "subject", "type", "date", "code", "value", "source",
];

fn event_from_json(
    item: &Value,
    received_on: NaiveDate,
) -> Result<Event, Vec<(Option<String>, String)>> {
    let Some(obj) = item.as_object() else {
        return Err(vec![(None, "each event must be an object".into())]);
    };
    let mut errors = Vec::new();
    for key in obj.keys() {
        if !EVENT_KEYS.contains(&key.as_str()) {
            errors.push((
                Some(key.escape_debug().to_string()),
                format!(
                    "unknown key `{}`: expected {}",
                    key.escape_debug(),
                    EVENT_KEYS.join(", ")
                ),
            ));
        }
    }
    // Text fields must be JSON strings; `value` may be a number (or a numeric string).
    let mut texts: Vec<Option<String>> = Vec::new();
    for key in EVENT_KEYS {
        texts.push(match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) if key == "value" => Some(n.to_string()),
            Some(other) => {
                errors.push((
                    Some(key.to_string()),
                    format!(
                        "{key} must be a {}, got {other}",
                        if key == "value" { "number" } else { "string" }
                    ),
                ));
                None
            }
        });
    }
    let fields = EventFields {
        event_id: texts[0].as_deref(),
        subject: texts[1].as_deref(),
        event_type: texts[2].as_deref(),
        date: texts[3].as_deref(),
        code: texts[4].as_deref(),
        value: texts[5].as_deref(),
        source: texts[6].as_deref(),
    };
    match parse_event(&fields, received_on) {
        Ok(e) if errors.is_empty() => Ok(e),
        Ok(_) => Err(errors),
        Err(errs) => {
            errors.extend(errs.into_iter().map(|e| (Some(e.field), e.message)));
            Err(errors)
        }
    }
}

/// Whose events a sender may deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventScope {
    /// Any subject, randomised or not yet: a national feed (`source` tokens), an unscoped
    /// administrator, the operator importing a file.
    AnySubject,
    /// Only subjects randomised in the trial (any trial when `None`), at the site (any site when
    /// `None`).
    Randomised {
        trial: Option<String>,
        site: Option<String>,
    },
}

/// Whose events this caller may send: a register token only its own subjects (of its trial, of
/// its site), a `source` token any subject.
pub fn authorise(principal: &Principal) -> Result<EventScope, IngestError> {
    match principal.role {
        Role::Source => Ok(EventScope::AnySubject),
        Role::Admin if principal.trial_id.is_none() => Ok(EventScope::AnySubject),
        Role::Register | Role::Admin => Ok(EventScope::Randomised {
            trial: principal.trial_id.clone(),
            site: principal.site_code.clone(),
        }),
        other => Err(IngestError::Forbidden(format!(
            "role `{}` cannot send events; a `register` or `source` token is needed",
            other.as_str()
        ))),
    }
}

/// The stored form of an event, with its content hash.
fn to_row(e: &Event, recorded_at: &str) -> EventRow {
    let content = serde_json::json!([
        e.subject,
        e.event_type,
        e.date.to_string(),
        e.code,
        e.value,
        e.source
    ])
    .to_string();
    EventRow {
        event_id: e.event_id.clone(),
        subject: e.subject.clone(),
        event_type: e.event_type.clone(),
        event_date: e.date.to_string(),
        code: e.code.clone(),
        value: e.value,
        source: e.source.clone(),
        content_sha256: hex::encode(Sha256::digest(content.as_bytes())),
        recorded_at: recorded_at.to_string(),
    }
}

/// Who delivers a batch, and when it is received.
pub struct Delivery<'a> {
    /// Recorded in the audit entry.
    pub actor: &'a str,
    pub scope: EventScope,
    /// The moment of receipt (the service's clock): an event counts as of a cut-off when it
    /// was received by then.
    pub received_at: Timestamp,
}

/// Store a validated batch in one transaction. `rows` gives each event's row number for error
/// reports (index in the batch, or CSV line); `progress` is told how many rows are stored. A
/// batch naming a subject outside the sender's scope is refused whole.
#[tracing::instrument(skip_all, fields(events = events.len()), err(level = tracing::Level::DEBUG))]
pub async fn ingest(
    store: &Store,
    events: &[Event],
    rows: &[usize],
    delivery: &Delivery<'_>,
    progress: impl FnMut(usize),
) -> Result<IngestReport, IngestError> {
    let recorded_at = delivery.received_at.to_string();
    let actor = delivery.actor;
    let stored_rows: Vec<EventRow> = events.iter().map(|e| to_row(e, &recorded_at)).collect();
    let mut tx = store.begin_write().await?;
    if let EventScope::Randomised { trial, site } = &delivery.scope {
        // Under the writer lock: the subjects in scope cannot change before the commit.
        let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
        let known =
            allocations::randomised_subjects(&mut tx, &subjects, trial.as_deref(), site.as_deref())
                .await?;
        let outside: Vec<RowError> = events
            .iter()
            .zip(rows)
            .filter(|(e, _)| !known.contains(&e.subject))
            .map(|(e, &row)| RowError {
                row,
                event_id: Some(e.event_id.clone()),
                field: Some("subject".into()),
                message: format!(
                    "subject `{}` is not randomised {}; this token sends events only for its own subjects",
                    e.subject,
                    match (trial, site) {
                        (Some(t), Some(s)) => format!("in trial `{t}` at site `{s}`"),
                        (Some(t), None) => format!("in trial `{t}`"),
                        (None, Some(s)) => format!("at site `{s}`"),
                        (None, None) => "in any trial".to_string(),
                    }
                ),
            })
            .collect();
        if !outside.is_empty() {
            tx.rollback().await?;
            return Err(IngestError::OutOfScope(outside));
        }
    }
    let outcome = events::insert(&mut tx, &stored_rows, progress).await?;
    if !outcome.conflicts.is_empty() {
        tx.rollback().await?;
        let errors = events
            .iter()
            .zip(rows)
            .filter(|(e, _)| outcome.conflicts.contains(&e.event_id))
            .map(|(e, &row)| RowError {
                row,
                event_id: Some(e.event_id.clone()),
                field: None,
                message: format!(
                    "event `{}` was already received with different content; send corrections under a new event id",
                    e.event_id
                ),
            })
            .collect();
        return Err(IngestError::Conflict(errors));
    }
    if outcome.stored > 0 {
        let digest = hex::encode(Sha256::digest(
            stored_rows
                .iter()
                .map(|r| format!("{}:{}", r.event_id, r.content_sha256))
                .collect::<Vec<_>>()
                .join("\n")
                .as_bytes(),
        ));
        audit::append(
            &mut tx,
            actor,
            "events_received",
            None,
            &serde_json::json!({"received": events.len(), "stored": outcome.stored, "batch_sha256": digest}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(IngestReport {
        received: events.len(),
        stored: outcome.stored,
        already_present: events.len() as u64 - outcome.stored,
    })
}
