//! The screening log: every enrolment attempt that reached a decision (randomised or not
//! eligible) and every eligible patient the register reports as not randomised. The rows are
//! written by the enrolment batch ([`super::batch`]) and the screening report; the participant
//! flow reads them back as [`Screening`] entries.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::allocations::json_list;
use super::{Backend, SqlType, Store, StoreResult, WriteTx};
use crate::endpoints::flow::Screening;

/// One row of the screening log: every enrolment attempt that reached a decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScreeningRow {
    pub trial_id: String,
    pub record_id: String,
    pub subject: String,
    pub site_code: String,
    /// `randomised` or `not_eligible`.
    pub outcome: String,
    /// JSON array of the unmet criteria (empty when randomised).
    pub reasons: String,
    /// JSON object of the enrolment fields as received.
    pub fields: String,
    pub request_sha256: String,
    pub protocol_version: String,
    pub randomisation_number: Option<i64>,
    pub screened_at: String,
}

/// The screening-log columns with whether each is an integer, for [`Backend::json_rows`].
pub(super) const SCREENING_COLUMNS: [(&str, SqlType); 11] = [
    ("trial_id", SqlType::Text),
    ("record_id", SqlType::Text),
    ("subject", SqlType::Text),
    ("site_code", SqlType::Text),
    ("outcome", SqlType::Text),
    ("reasons", SqlType::Text),
    ("fields", SqlType::Text),
    ("request_sha256", SqlType::Text),
    ("protocol_version", SqlType::Text),
    ("randomisation_number", SqlType::Integer),
    ("screened_at", SqlType::Text),
];

/// Earlier refusals of these records: `(record_id, request_sha256) → reasons` (JSON text),
/// the latest refusal winning. A refusal is a `not_eligible` row, or a `not_randomised` row
/// of a patient on the objection list (reason `objected`).
pub async fn refusals(
    tx: &mut WriteTx,
    trial_id: &str,
    record_ids: &[&str],
) -> StoreResult<HashMap<(String, String), String>> {
    if record_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT record_id, request_sha256, reasons FROM screening_log WHERE trial_id = $1 \
         AND (outcome = 'not_eligible' OR (outcome = 'not_randomised' \
         AND reasons = '[{{\"reason\":\"objected\"}}]')) AND record_id {} ORDER BY screening_id",
        tx.backend().in_json(2)
    );
    let rows = sqlx::query(&sql)
        .bind(trial_id)
        .bind(json_list(record_ids))
        .fetch_all(tx.conn())
        .await?;
    let mut found = HashMap::new();
    for row in rows {
        found.insert(
            (row.try_get("record_id")?, row.try_get("request_sha256")?),
            row.try_get("reasons")?,
        );
    }
    Ok(found)
}

/// The whole screening log of a trial, oldest first.
pub async fn screening_log(store: &Store, trial_id: &str) -> StoreResult<Vec<ScreeningRow>> {
    let rows = sqlx::query(
        "SELECT trial_id, record_id, subject, site_code, outcome, reasons, fields, request_sha256, \
         protocol_version, randomisation_number, screened_at FROM screening_log \
         WHERE trial_id = $1 ORDER BY screening_id",
    )
    .bind(trial_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ScreeningRow {
                trial_id: r.try_get("trial_id")?,
                record_id: r.try_get("record_id")?,
                subject: r.try_get("subject")?,
                site_code: r.try_get("site_code")?,
                outcome: r.try_get("outcome")?,
                reasons: r.try_get("reasons")?,
                fields: r.try_get("fields")?,
                request_sha256: r.try_get("request_sha256")?,
                protocol_version: r.try_get("protocol_version")?,
                randomisation_number: r.try_get("randomisation_number")?,
                screened_at: r.try_get("screened_at")?,
            })
        })
        .collect()
}

/// The screening log of a trial as the participant flow reads it, oldest first, with only the
/// columns the flow needs (not the enrolment fields, which are most of a row).
pub async fn screening_outcomes(store: &Store, trial_id: &str) -> StoreResult<Vec<Screening>> {
    let mut conn = store.pool().acquire().await?;
    Ok(
        screening_outcomes_after(&mut conn, store.backend(), trial_id, 0)
            .await?
            .0,
    )
}

/// [`screening_outcomes`] with a screening id above `after`, and the largest id read (`after`
/// when none).
///
/// Read as one JSON value (see [`super::json_rows_after`]).
pub(crate) async fn screening_outcomes_after(
    conn: &mut AnyConnection,
    backend: Backend,
    trial_id: &str,
    after: i64,
) -> StoreResult<(Vec<Screening>, i64)> {
    type Tuple = (i64, String, String, String, String, String, String);
    let mut rows: Vec<Tuple> = super::json_rows_after(
        conn,
        backend,
        &[
            "screening_id",
            "record_id",
            "site_code",
            "outcome",
            "reasons",
            "screened_at",
            "fields",
        ],
        "screening_log WHERE trial_id = $1 AND screening_id > $2",
        (trial_id, after),
        "screening log",
    )
    .await?;
    rows.sort_unstable_by_key(|r| r.0);
    let last = rows.last().map_or(after, |r| r.0);
    let outcomes = rows
        .into_iter()
        .map(
            |(_, record_id, site, outcome, reasons, screened_at, fields)| {
                let mut entry = screening_entry(record_id, site, outcome, &reasons, &screened_at);
                // Stored by the enrolment as a JSON object; anything else has no fields to compare.
                if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&fields) {
                    entry.fields = map;
                }
                entry
            },
        )
        .collect();
    Ok((outcomes, last))
}

/// A screening-log row as the flow reads it: the unmet criteria (or the reason an eligible
/// patient was not randomised) from the stored reasons JSON, and the day screened.
fn screening_entry(
    record_id: String,
    site: String,
    outcome: String,
    reasons: &str,
    screened_at: &str,
) -> Screening {
    let reasons: serde_json::Value =
        serde_json::from_str(reasons).unwrap_or(serde_json::Value::Null);
    Screening {
        reasons: reasons
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| {
                r.get("criterion")
                    .or_else(|| r.get("reason"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
            .collect(),
        record_id,
        site,
        outcome,
        fields: serde_json::Map::new(),
        screened_on: screened_at
            .get(..10)
            .and_then(crate::endpoints::parse_event_date)
            .unwrap_or(chrono::NaiveDate::MIN),
    }
}

/// The site and fields (JSON text, as received) of the enrolment that randomised a record.
pub async fn randomised_fields(
    tx: &mut WriteTx,
    trial_id: &str,
    record_id: &str,
) -> StoreResult<Option<(String, String)>> {
    let row = sqlx::query(
        "SELECT site_code, fields FROM screening_log WHERE trial_id = $1 AND record_id = $2 \
         AND outcome = 'randomised'",
    )
    .bind(trial_id)
    .bind(record_id)
    .fetch_optional(tx.conn())
    .await?;
    row.map(|r| Ok((r.try_get("site_code")?, r.try_get("fields")?)))
        .transpose()
}

/// Screening-log entries of one record: `(outcome, request_sha256, reasons, screened_at)`,
/// oldest first.
pub async fn screenings_of_record(
    tx: &mut WriteTx,
    trial_id: &str,
    record_id: &str,
) -> StoreResult<Vec<(String, String, String, String)>> {
    let rows = sqlx::query(
        "SELECT outcome, request_sha256, reasons, screened_at FROM screening_log \
         WHERE trial_id = $1 AND record_id = $2 ORDER BY screening_id",
    )
    .bind(trial_id)
    .bind(record_id)
    .fetch_all(tx.conn())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("outcome")?,
                r.try_get("request_sha256")?,
                r.try_get("reasons")?,
                r.try_get("screened_at")?,
            ))
        })
        .collect()
}
