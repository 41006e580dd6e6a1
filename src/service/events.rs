//! Intake of follow-up events from the registers, by HTTP batch or CSV file.
//!
//! A batch is all-or-nothing: every row is validated first and every problem reported (by row,
//! with the field and reason); only a clean batch reaches the store, in one transaction, where
//! a replayed event (same id, same content) changes nothing and a resubmitted id with other
//! content fails the whole batch.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::error::{detail, Code, CodedError};
use super::{Principal, Role};
use crate::endpoints::{parse_event, Event, EventFields};
use crate::protocol::{Protocol, SourceRefusal};
use crate::randomise::Timestamp;
use crate::store::deliveries::{self, DeliveryRow};
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

/// Whose events a sender may deliver, and as which source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventScope {
    /// Any subject, randomised or not yet: an unscoped administrator, the operator importing a
    /// file. Each event must still be of a type a trial knows.
    AnySubject,
    /// Only subjects randomised in the trial (any trial when `None`), at the site (any site when
    /// `None`): a quality register's own patients.
    Randomised {
        trial: Option<String>,
        site: Option<String>,
    },
    /// A register feed bound to one source: only that source's event types, for subjects
    /// randomised in a trial (this one, when `trial` is set) whose protocol declares the source.
    Source {
        source: String,
        trial: Option<String>,
    },
}

/// Whose events this caller may send: a register token only its own subjects (of its trial, of
/// its site), a `source` token its source's event types for the subjects of the trials
/// declaring its source. The one decision of event scope, for every path (HTTP, import).
pub fn authorise(principal: &Principal) -> Result<EventScope, IngestError> {
    match principal.role {
        Role::Source => match &principal.source_id {
            Some(source) => Ok(EventScope::Source {
                source: source.clone(),
                trial: principal.trial_id.clone(),
            }),
            None => Err(IngestError::Forbidden(
                "this `source` token is bound to no source; create one with --source ID".into(),
            )),
        },
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

/// The stored form of an event under its attributed source, with its content hash. The hash
/// covers what the sender sent (and the source a feed is bound to), not the attribution, so a
/// replay stays a replay when attribution changes (an amendment declaring sources, a subject
/// enrolled after its history arrived).
/// Batches of at least this many events are placed and hashed on several cores.
const PARALLEL_FROM: usize = 4096;

fn to_row(
    e: &Event,
    source: Option<String>,
    bound: Option<&str>,
    recorded_at: &str,
    token: Option<&str>,
) -> EventRow {
    // The JSON array `[subject, type, date, code, value, source]`, written as a tuple: the
    // same bytes as through a `serde_json::Value`, without building one.
    let content = serde_json::to_string(&(
        &e.subject,
        &e.event_type,
        e.date.to_string(),
        &e.code,
        e.value,
        bound.or(e.source.as_deref()),
    ))
    .unwrap_or_default();
    EventRow {
        event_id: e.event_id.clone(),
        subject: e.subject.clone(),
        event_type: e.event_type.clone(),
        event_date: e.date.to_string(),
        code: e.code.clone(),
        value: e.value,
        source,
        content_sha256: hex::encode(Sha256::digest(content.as_bytes())),
        recorded_at: recorded_at.to_string(),
        token_id: token.map(str::to_string),
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

impl Delivery<'_> {
    /// The delivering token's id, kept with each event it stores (`None` for the operator).
    fn token_id(&self) -> Option<&str> {
        self.actor.strip_prefix("token:")
    }
}

/// Where one event may go: the trials its subject is randomised in within the sender's scope,
/// and the source it is stored under; or why it may not.
enum Placed {
    Source(Option<String>),
    OutOfScope(String),
    Refused {
        field: &'static str,
        message: String,
    },
}

/// Decide one event against the sender's scope, the trials its subject is randomised in
/// (`(trial, site)`) and every trial's protocol. Pure: the one place event scope and
/// attribution are decided.
fn place(
    scope: &EventScope,
    event: &Event,
    randomised_in: &[(&str, &str)],
    protocols: &HashMap<&str, &Protocol>,
) -> Placed {
    let (candidates, bound): (Vec<&Protocol>, Option<&str>) = match scope {
        EventScope::Randomised { trial, site } => {
            let within: Vec<&Protocol> = randomised_in
                .iter()
                .filter(|(t, s)| {
                    trial.as_deref().is_none_or(|x| x == *t)
                        && site.as_deref().is_none_or(|x| x == *s)
                })
                .filter_map(|(t, _)| protocols.get(t).copied())
                .collect();
            if within.is_empty() {
                return Placed::OutOfScope(format!(
                    "subject `{}` is not randomised {}; this token sends events only for its own subjects",
                    event.subject,
                    match (trial, site) {
                        (Some(t), Some(s)) => format!("in trial `{t}` at site `{s}`"),
                        (Some(t), None) => format!("in trial `{t}`"),
                        (None, Some(s)) => format!("at site `{s}`"),
                        (None, None) => "in any trial".to_string(),
                    }
                ));
            }
            (within, None)
        }
        EventScope::Source { source, trial } => {
            let within: Vec<&Protocol> = randomised_in
                .iter()
                .filter(|(t, _)| trial.as_deref().is_none_or(|x| x == *t))
                .filter_map(|(t, _)| protocols.get(t).copied())
                .filter(|p| p.follow_up.source(source).is_some())
                .collect();
            if within.is_empty() {
                return Placed::OutOfScope(format!(
                    "subject `{}` is not randomised in any trial{} that declares source \
                     `{source}`; this token delivers only for those trials' subjects",
                    event.subject,
                    trial
                        .as_deref()
                        .map_or_else(String::new, |t| format!(" (of `{t}`)"))
                ));
            }
            (within, Some(source.as_str()))
        }
        EventScope::AnySubject => {
            let within: Vec<&Protocol> = randomised_in
                .iter()
                .filter_map(|(t, _)| protocols.get(t).copied())
                .collect();
            if within.is_empty() {
                // Not randomised (yet): history any trial may read later, attributed as the
                // first trial (by id) knowing the type attributes it.
                let mut all: Vec<&Protocol> = protocols.values().copied().collect();
                all.sort_by(|a, b| a.trial_id.cmp(&b.trial_id));
                for p in &all {
                    if let Ok(source) =
                        p.attribute_event(&event.event_type, event.source.as_deref(), None)
                    {
                        return Placed::Source(source);
                    }
                }
                return match all.first() {
                    Some(p) => refusal(
                        p,
                        p.attribute_event(&event.event_type, event.source.as_deref(), None),
                    ),
                    None => Placed::Refused {
                        field: "type",
                        message: "no trial is registered in this database, so no event type is \
                                  known"
                            .into(),
                    },
                };
            }
            if within.is_empty() {
                return Placed::Refused {
                    field: "type",
                    message: "no trial is registered in this database, so no event type is known"
                        .into(),
                };
            }
            (within, None)
        }
    };
    // Events are the subject's, whichever trial reads them: every trial the subject is in
    // (within the sender's scope) must accept the event and attribute it alike.
    let mut agreed: Option<(&str, Option<String>)> = None;
    for p in &candidates {
        let attributed = p.attribute_event(&event.event_type, event.source.as_deref(), bound);
        match (attributed, &agreed) {
            (Err(e), _) => return refusal(p, Err(e)),
            (Ok(source), None) => agreed = Some((p.trial_id.as_str(), source)),
            (Ok(source), Some((first, theirs))) if source != *theirs => {
                return Placed::Refused {
                    field: "source",
                    message: format!(
                        "trials `{first}` and `{}` attribute event type `{}` to different \
                         sources ({} and {}); name the `source`",
                        p.trial_id,
                        event.event_type,
                        theirs.as_deref().unwrap_or("none"),
                        source.as_deref().unwrap_or("none")
                    ),
                };
            }
            (Ok(_), Some(_)) => {}
        }
    }
    match agreed {
        Some((_, source)) => Placed::Source(source),
        None => Placed::Refused {
            field: "subject",
            message: "no trial to attribute the event in".into(),
        },
    }
}

/// The refusal of an event by trial `p`.
fn refusal(p: &Protocol, attributed: Result<Option<String>, SourceRefusal>) -> Placed {
    let refusal = match attributed {
        Ok(source) => return Placed::Source(source),
        Err(r) => r,
    };
    let trial = &p.trial_id;
    let field = match refusal {
        SourceRefusal::UnknownType(_) => "type",
        _ => "source",
    };
    let message = match refusal {
        SourceRefusal::UnknownType(t) => format!(
            "event type `{}` is not an event type of trial `{trial}`; its types are {}",
            t.escape_debug(),
            known_types(p)
        ),
        other => format!("{other} (trial `{trial}`)"),
    };
    Placed::Refused { field, message }
}

/// "`death`, `emigration`, `mi`": the types a trial reads, for error messages.
fn known_types(p: &Protocol) -> String {
    let mut types: Vec<&str> = if p.follow_up.sources.is_empty() {
        p.endpoints
            .iter()
            .flat_map(|e| e.events().types.iter())
            .chain(&p.follow_up.censor_on)
            .map(String::as_str)
            .collect()
    } else {
        p.follow_up
            .sources
            .iter()
            .flat_map(|s| s.delivers.iter().map(String::as_str))
            .collect()
    };
    types.sort_unstable();
    types.dedup();
    types
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Store a validated batch in one transaction. `rows` gives each event's row number for error
/// reports (index in the batch, or CSV line); `progress` is told how many rows are stored. A
/// batch naming a subject outside the sender's scope is refused whole, and so is one holding an
/// event of a type its trial does not know or that its sender's source does not deliver. Each
/// stored event keeps the source it is attributed to and the token that delivered it; each
/// source delivering records a delivery (a `source` token's, even with no events).
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
    let started = std::time::Instant::now();
    let lap = |what: &str| {
        tracing::debug!(ms = started.elapsed().as_millis() as u64, "ingest: {what}");
    };
    let mut tx = store.begin_write().await?;
    // Under the writer lock: the subjects' trials cannot change before the commit.
    let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
    let found = allocations::subject_trials(&mut tx, &subjects).await?;
    let mut randomised_in: HashMap<&str, Vec<(&str, &str)>> = HashMap::new();
    for (subject, trial, site) in &found {
        randomised_in
            .entry(subject.as_str())
            .or_default()
            .push((trial.as_str(), site.as_str()));
    }
    let stored_protocols = super::trials::stored_protocols_on(tx.conn()).await?;
    let protocols: HashMap<&str, &Protocol> = stored_protocols
        .iter()
        .map(|p| (p.trial_id.as_str(), p.as_ref()))
        .collect();
    let bound = match &delivery.scope {
        EventScope::Source { source, .. } => Some(source.as_str()),
        _ => None,
    };
    let mut outside = Vec::new();
    let mut invalid = Vec::new();
    lap("subjects' trials read");
    // Each event is placed and hashed on its own (pure work), a chunk at a time as the insert
    // asks for rows, so placing the next chunk overlaps inserting the one before; a large
    // chunk side by side on the available cores. After a refusal nothing more is inserted
    // (the transaction is rolled back), but every event is still placed, so that every
    // refusal is reported.
    let one = |e: &Event| {
        let theirs = randomised_in
            .get(e.subject.as_str())
            .map_or(&[][..], Vec::as_slice);
        match place(&delivery.scope, e, theirs, &protocols) {
            Placed::Source(source) => {
                Ok(to_row(e, source, bound, &recorded_at, delivery.token_id()))
            }
            other => Err(other),
        }
    };
    let mut pending = events.iter().zip(rows);
    // The batch's digest, SHA-256 of `event_id:content_sha256` of every row in order, one per
    // line, taken as the rows are made.
    let mut batch_hash = Sha256::new();
    let mut hashed = 0usize;
    let next = |n: usize| -> Option<Vec<EventRow>> {
        use rayon::prelude::*;
        let chunk: Vec<(&Event, &usize)> = pending.by_ref().take(n).collect();
        if chunk.is_empty() {
            return None;
        }
        let placed: Vec<Result<EventRow, Placed>> = if chunk.len() >= PARALLEL_FROM {
            chunk
                .par_iter()
                .with_min_len(PARALLEL_FROM / 4)
                .map(|(e, _)| one(e))
                .collect()
        } else {
            chunk.iter().map(|(e, _)| one(e)).collect()
        };
        let mut placed_rows = Vec::with_capacity(chunk.len());
        for ((e, &row), placed) in chunk.into_iter().zip(placed) {
            match placed {
                Ok(r) => placed_rows.push(r),
                // Never: a placed event is a row.
                Err(Placed::Source(_)) => {}
                Err(Placed::OutOfScope(message)) => outside.push(RowError {
                    row,
                    event_id: Some(e.event_id.clone()),
                    field: Some("subject".into()),
                    message,
                }),
                Err(Placed::Refused { field, message }) => invalid.push(RowError {
                    row,
                    event_id: Some(e.event_id.clone()),
                    field: Some(field.into()),
                    message,
                }),
            }
        }
        if !outside.is_empty() || !invalid.is_empty() {
            placed_rows.clear();
        }
        for r in &placed_rows {
            if hashed > 0 {
                batch_hash.update(b"\n");
            }
            batch_hash.update(r.event_id.as_bytes());
            batch_hash.update(b":");
            batch_hash.update(r.content_sha256.as_bytes());
            hashed += 1;
        }
        Some(placed_rows)
    };
    let (outcome, stored_rows) = events::insert(&mut tx, events.len(), next, progress).await?;
    if !outside.is_empty() {
        tx.rollback().await?;
        return Err(IngestError::OutOfScope(outside));
    }
    if !invalid.is_empty() {
        tx.rollback().await?;
        return Err(IngestError::Invalid(invalid));
    }
    lap("placed, hashed and inserted");
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
                    "event `{}` was already received (or is now attributed) with different content; send corrections under a new event id",
                    e.event_id
                ),
            })
            .collect();
        return Err(IngestError::Conflict(errors));
    }
    // A register's own delivery (its bound token, or the operator's import as it) is recorded,
    // also with nothing new: that is what tells a quiet source from a silent one. Events other
    // senders attribute to a source do not make it look alive.
    if let Some(source) = bound {
        deliveries::record(
            &mut tx,
            &DeliveryRow {
                source: source.to_string(),
                received_at: recorded_at.clone(),
                token_id: delivery.token_id().map(str::to_string),
                events_received: events.len() as u64,
                events_stored: outcome.stored,
            },
        )
        .await?;
    }
    let mut sources: Vec<&str> = stored_rows
        .iter()
        .filter_map(|r| r.source.as_deref())
        .chain(bound)
        .collect();
    sources.sort_unstable();
    sources.dedup();
    if outcome.stored > 0 {
        let digest = hex::encode(batch_hash.finalize());
        audit::append(
            &mut tx,
            actor,
            "events_received",
            None,
            &serde_json::json!({"received": events.len(), "stored": outcome.stored, "batch_sha256": digest, "sources": sources}),
        )
        .await?;
    } else if bound.is_some() {
        audit::append(
            &mut tx,
            actor,
            "source_delivery",
            None,
            &serde_json::json!({"received": events.len(), "stored": 0, "sources": sources}),
        )
        .await?;
    }
    tx.commit().await?;
    lap("committed");
    Ok(IngestReport {
        received: events.len(),
        stored: outcome.stored,
        already_present: events.len() as u64 - outcome.stored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The content hash of events stored by earlier versions (through a `serde_json::Value`)
    /// must not move, or a register's replay would read as a conflict.
    #[test]
    fn the_content_hash_is_that_of_the_json_value() {
        let date = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        let values = [
            None,
            Some(0.1),
            Some(1e21),
            Some(-0.0),
            Some(f64::NAN),
            Some(3.0),
        ];
        let codes = [None, Some("I21.4".to_string()), Some("\"å\\\n".to_string())];
        for value in values {
            for code in &codes {
                for source in [None, Some("swedeheart")] {
                    let e = Event {
                        event_id: "E1".into(),
                        subject: "P\u{e9}1".into(),
                        event_type: "death".into(),
                        date,
                        code: code.clone(),
                        value,
                        source: source.map(str::to_string),
                    };
                    let before = serde_json::json!([
                        e.subject,
                        e.event_type,
                        e.date.to_string(),
                        e.code,
                        e.value,
                        e.source.as_deref()
                    ])
                    .to_string();
                    let row = to_row(&e, None, None, "now", None);
                    assert_eq!(
                        row.content_sha256,
                        hex::encode(Sha256::digest(before.as_bytes())),
                        "{before}"
                    );
                }
            }
        }
    }
}
