//! Each trial's rows as a server last held them (`trial_snapshots`, migration 0015), so that a
//! server starting again reads the rows written since instead of the whole trial.
//!
//! A saved copy is a cache, never a source of truth. It is taken only when it was written by a
//! server of this version on this schema ([`format`]) and the audit chain still has, at the
//! entry the rows were read at, the hash it had then: a chain that was rolled back, restored
//! or rewritten below that entry makes the copy unusable, and the trial is read afresh. What
//! was written after that entry is read as after any other write ([`super::since`]), which
//! also tells when something changed rows in place and everything must be read again.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::since::{Marks, TrialRows};
use super::{events, now_text, Backend, Store, StoreResult};
use crate::analysis::participation::{ConsentRecord, Withdrawal};
use crate::analysis::ErrorMark;
use crate::endpoints::flow::Screening;
use crate::endpoints::sources::Delivery;
use crate::endpoints::ReceivedEvent;
use crate::randomise::AllocationRecord;

/// The layout of a saved body. Raise it whenever what a body holds, or how the rows it copies
/// are read from the tables, changes: a copy of another layout is not taken.
const LAYOUT: u32 = 1;

/// What a body must have been saved as to be taken: this program's version, the body's layout
/// and the last migration of `backend` (a migration may change rows without an audit entry).
pub fn format(backend: Backend) -> String {
    let migrations = match backend {
        Backend::Sqlite => &super::SQLITE_MIGRATIONS,
        Backend::Postgres => &super::POSTGRES_MIGRATIONS,
    };
    let last = migrations.iter().map(|m| m.version).max().unwrap_or(0);
    format!("{}/{LAYOUT}/{last}", env!("CARGO_PKG_VERSION"))
}

/// A trial's rows as held, to save: everything [`super::since::all`] reads, and how far.
pub struct HeldRows<'a> {
    pub marks: &'a Marks,
    /// In randomisation order.
    pub allocations: &'a [AllocationRecord],
    pub events: &'a [ReceivedEvent],
    /// In screening order.
    pub screening: &'a [Screening],
    pub in_error: &'a HashMap<String, ErrorMark>,
    /// In the order recorded.
    pub deliveries: &'a [Delivery],
    pub consents: Vec<&'a ConsentRecord>,
    pub withdrawals: &'a HashMap<String, Vec<Withdrawal>>,
}

#[derive(Serialize)]
struct BodyOut<'a> {
    marks: &'a Marks,
    allocations: &'a [AllocationRecord],
    /// How many events the columns after the JSON hold.
    events: usize,
    screening: &'a [Screening],
    in_error: &'a HashMap<String, ErrorMark>,
    deliveries: &'a [Delivery],
    consents: &'a [&'a ConsentRecord],
    withdrawals: &'a HashMap<String, Vec<Withdrawal>>,
}

#[derive(Deserialize)]
struct BodyIn {
    marks: Marks,
    allocations: Vec<AllocationRecord>,
    events: usize,
    screening: Vec<Screening>,
    in_error: HashMap<String, ErrorMark>,
    deliveries: Vec<Delivery>,
    consents: Vec<ConsentRecord>,
    withdrawals: HashMap<String, Vec<Withdrawal>>,
}

/// Between the events' columns after the JSON: the record separator, a control character no
/// id or text accepted at intake holds (nor the unit separator between a column's values).
const COLUMN_SEPARATOR: char = '\u{1e}';

/// The body saving `held` writes (CPU work: a trial of 100,000 events is some megabytes): one
/// line of JSON with everything but the events, then the events' columns as they are, each
/// column's values joined by the unit separator ([`events::from_columns`]), which JSON would
/// have to escape and unescape value by value. `None` when an event's text holds either
/// separator (which intake refuses), so that such a trial is never saved.
pub fn encode(held: &HeldRows<'_>) -> Option<String> {
    let columns = events::to_columns(held.events)?;
    if columns.iter().any(|c| c.contains(COLUMN_SEPARATOR)) {
        return None;
    }
    let mut body = serde_json::to_string(&BodyOut {
        marks: held.marks,
        allocations: held.allocations,
        events: held.events.len(),
        screening: held.screening,
        in_error: held.in_error,
        deliveries: held.deliveries,
        consents: &held.consents,
        withdrawals: held.withdrawals,
    })
    .ok()?;
    // JSON text holds no raw line break: the first one ends it.
    body.push('\n');
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            body.push(COLUMN_SEPARATOR);
        }
        body.push_str(column);
    }
    Some(body)
}

/// The rows and marks of a body ([`encode`]), as a first read ([`super::since::all`]) gives
/// them; `None` when it cannot be read back. The JSON and the events are read side by side.
fn decode(trial_id: &str, body: &str) -> Option<(TrialRows, Marks)> {
    let (json, columns) = body.split_once('\n')?;
    let columns: Vec<&str> = columns.split(COLUMN_SEPARATOR).collect();
    let (body, events) = rayon::join(
        || serde_json::from_str::<BodyIn>(json).ok(),
        || {
            // The count comes with the JSON: a column that does not split into as many values
            // as the first is refused below, by the count.
            let n = columns.first().map_or(0, |c| {
                if c.is_empty() {
                    0
                } else {
                    c.split(events::UNIT_SEPARATOR).count()
                }
            });
            events::from_columns(&columns, n, trial_id).ok().flatten()
        },
    );
    let (body, events) = (body?, events?);
    if events.len() != body.events {
        return None;
    }
    Some((
        TrialRows {
            allocations: body.allocations,
            events,
            screening: body.screening,
            in_error: Some(body.in_error),
            deliveries: body.deliveries,
            protocol_registered: false,
            consents: body.consents,
            withdrawals: Some(body.withdrawals),
        },
        body.marks,
    ))
}

/// The hash of the audit entry whose number `seq` (an SQL expression) gives, or an empty text
/// for none (an empty chain, or an entry that is not there).
fn entry_hash(seq: &str) -> String {
    format!("COALESCE((SELECT hash FROM audit_log WHERE seq = {seq}), '')")
}

/// Save `body` ([`encode`]) as the trial's rows read at audit entry `head`, unless a copy read
/// at a later entry is saved already. Through the pool, outside the writers' lock: it changes
/// no row of the trial. Whether it was saved.
#[tracing::instrument(skip_all, fields(trial = %trial_id, head = head), err)]
pub async fn save(store: &Store, trial_id: &str, head: i64, body: &str) -> StoreResult<bool> {
    let done = sqlx::query(&format!(
        "INSERT INTO trial_snapshots (trial_id, head, head_hash, format, body, saved_at) \
         VALUES ($1, $2, {}, $3, $4, $5) \
         ON CONFLICT (trial_id) DO UPDATE SET head = excluded.head, \
         head_hash = excluded.head_hash, format = excluded.format, body = excluded.body, \
         saved_at = excluded.saved_at \
         WHERE trial_snapshots.head <= excluded.head OR trial_snapshots.format <> excluded.format",
        entry_hash("$2")
    ))
    .bind(trial_id)
    .bind(head)
    .bind(format(store.backend()))
    .bind(body)
    .bind(now_text())
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The trial's saved rows and how far they go, when a copy is saved that this server may take
/// (see the module documentation); `None` otherwise, or when it cannot be read back (logged).
#[tracing::instrument(skip_all, fields(trial = %trial_id), err)]
pub async fn load(store: &Store, trial_id: &str) -> StoreResult<Option<(TrialRows, Marks)>> {
    let row = sqlx::query(&format!(
        "SELECT s.head, s.body FROM trial_snapshots s WHERE s.trial_id = $1 AND s.format = $2 \
         AND s.head_hash = {}",
        entry_hash("s.head")
    ))
    .bind(trial_id)
    .bind(format(store.backend()))
    .fetch_optional(store.pool())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let head: i64 = row.try_get("head")?;
    let body: String = row.try_get("body")?;
    let trial = trial_id.to_string();
    // Reading a body back is CPU work over the whole trial: off the request threads.
    let decoded = tokio::task::spawn_blocking(move || decode(&trial, &body))
        .await
        .ok()
        .flatten();
    match decoded {
        Some((rows, marks)) if marks.head == head => Ok(Some((rows, marks))),
        _ => {
            tracing::warn!("the saved rows cannot be read back: the trial is read afresh");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::Event;
    use chrono::NaiveDate;

    fn event(
        id: &str,
        code: Option<&str>,
        value: Option<f64>,
        source: Option<&str>,
    ) -> ReceivedEvent {
        ReceivedEvent {
            event: Event {
                event_id: id.into(),
                subject: "P\u{e9}1".into(),
                event_type: "nt_probnp".into(),
                date: NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
                code: code.map(str::to_string),
                value,
                source: source.map(str::to_string),
            },
            received_on: NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
        }
    }

    fn held<'a>(
        marks: &'a Marks,
        events: &'a [ReceivedEvent],
        empty: &'a HashMap<String, ErrorMark>,
        none: &'a HashMap<String, Vec<Withdrawal>>,
    ) -> HeldRows<'a> {
        HeldRows {
            marks,
            allocations: &[],
            events,
            screening: &[],
            in_error: empty,
            deliveries: &[],
            consents: Vec::new(),
            withdrawals: none,
        }
    }

    /// Every value and every absent field reads back as it was; a text holding a separator is
    /// never saved; a body cut short is not read back.
    #[test]
    fn events_read_back_as_saved() {
        let marks: Marks = serde_json::from_str(
            r#"{"head": 7, "allocation": 3, "event": 9, "screening": 4, "delivery": 1}"#,
        )
        .unwrap();
        let (empty, none) = (HashMap::new(), HashMap::new());
        let values = [
            None,
            Some(0.1),
            Some(1e21),
            Some(-0.0),
            Some(5e-324),
            Some(1.0 / 3.0),
        ];
        let events: Vec<ReceivedEvent> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                event(
                    &format!("E{i}"),
                    (i % 2 == 0).then_some("I21.4 \"\u{e5}\\"),
                    *v,
                    (i % 3 != 0).then_some("laboratory"),
                )
            })
            .collect();
        for n in [0, 1, events.len()] {
            let body = encode(&held(&marks, &events[..n], &empty, &none)).expect("saved");
            let (rows, back) = decode("t", &body).expect("read back");
            assert_eq!(back, marks);
            assert_eq!(rows.events, events[..n], "{n} events");
            for (a, b) in rows.events.iter().zip(&events) {
                assert_eq!(
                    a.event.value.map(f64::to_bits),
                    b.event.value.map(f64::to_bits),
                    "the same double, bit for bit"
                );
            }
            assert!(decode("t", &body[..body.len() - 1]).is_none() || n == 0);
        }
        for bad in ["E\u{1f}1", "E\u{1e}1"] {
            let events = [event(bad, None, None, None)];
            assert!(
                encode(&held(&marks, &events, &empty, &none)).is_none(),
                "{bad:?}"
            );
        }
    }
}
