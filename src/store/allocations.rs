//! Allocations, stratum positions and the screening log.
//!
//! These functions run inside the caller's write transaction (see `service::enrol`), which holds
//! the trial row's lock from [`lock_trial`] to commit: that lock is what makes two server
//! processes on one PostgreSQL database unable to hand out the same block slot or
//! randomisation number twice.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::{FromRow, Row};

use super::{Store, StoreError, StoreResult, WriteTx};
use crate::randomise::StratumState;

/// One stored allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllocationRow {
    pub trial_id: String,
    pub randomisation_number: i64,
    pub record_id: String,
    pub subject: String,
    pub site_code: String,
    pub arm: String,
    pub stratum: String,
    pub block_number: i64,
    pub block_size: i64,
    pub block_position: i64,
    pub protocol_version: String,
    pub request_sha256: String,
    pub allocated_at: String,
}

impl<'r> FromRow<'r, AnyRow> for AllocationRow {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        Ok(AllocationRow {
            trial_id: row.try_get("trial_id")?,
            randomisation_number: row.try_get("randomisation_number")?,
            record_id: row.try_get("record_id")?,
            subject: row.try_get("subject")?,
            site_code: row.try_get("site_code")?,
            arm: row.try_get("arm")?,
            stratum: row.try_get("stratum")?,
            block_number: row.try_get("block_number")?,
            block_size: row.try_get("block_size")?,
            block_position: row.try_get("block_position")?,
            protocol_version: row.try_get("protocol_version")?,
            request_sha256: row.try_get("request_sha256")?,
            allocated_at: row.try_get("allocated_at")?,
        })
    }
}

const ALLOCATION_COLUMNS: &str = "trial_id, randomisation_number, record_id, subject, site_code, \
     arm, stratum, block_number, block_size, block_position, protocol_version, request_sha256, \
     allocated_at";

/// The trial's status and next randomisation number, locking the trial row until the
/// transaction ends. `None` when the trial does not exist.
pub async fn lock_trial(tx: &mut WriteTx, trial_id: &str) -> StoreResult<Option<(String, i64)>> {
    let sql = format!(
        "SELECT status, next_randomisation_number FROM trials WHERE trial_id = $1{}",
        tx.backend().for_update()
    );
    let row = sqlx::query(&sql)
        .bind(trial_id)
        .fetch_optional(tx.conn())
        .await?;
    row.map(|r| {
        Ok((
            r.try_get("status")?,
            r.try_get("next_randomisation_number")?,
        ))
    })
    .transpose()
}

pub async fn by_record(
    conn: &mut AnyConnection,
    trial_id: &str,
    record_id: &str,
) -> StoreResult<Option<AllocationRow>> {
    let sql = format!(
        "SELECT {ALLOCATION_COLUMNS} FROM allocations WHERE trial_id = $1 AND record_id = $2"
    );
    Ok(sqlx::query_as(&sql)
        .bind(trial_id)
        .bind(record_id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// All allocations of a trial in randomisation order.
pub async fn list(store: &Store, trial_id: &str) -> StoreResult<Vec<AllocationRow>> {
    let sql = format!(
        "SELECT {ALLOCATION_COLUMNS} FROM allocations WHERE trial_id = $1 ORDER BY randomisation_number"
    );
    Ok(sqlx::query_as(&sql)
        .bind(trial_id)
        .fetch_all(store.pool())
        .await?)
}

/// Read one allocation outside any transaction.
pub async fn get(
    store: &Store,
    trial_id: &str,
    record_id: &str,
) -> StoreResult<Option<AllocationRow>> {
    let mut conn = store.pool().acquire().await?;
    by_record(&mut conn, trial_id, record_id).await
}

/// Allocations of a trial whose `column` (`record_id` or `subject`) is among `keys`.
async fn where_in(
    tx: &mut WriteTx,
    trial_id: &str,
    column: &str,
    keys: &[&str],
) -> StoreResult<Vec<AllocationRow>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {ALLOCATION_COLUMNS} FROM allocations WHERE trial_id = $1 AND {column} IN ({})",
        tx.backend().json_strings(2)
    );
    Ok(sqlx::query_as(&sql)
        .bind(trial_id)
        .bind(json_list(keys))
        .fetch_all(tx.conn())
        .await?)
}

fn json_list(keys: &[&str]) -> String {
    serde_json::Value::from(keys.to_vec()).to_string()
}

/// Existing allocations for any of these record ids.
pub async fn by_records(
    tx: &mut WriteTx,
    trial_id: &str,
    record_ids: &[&str],
) -> StoreResult<Vec<AllocationRow>> {
    where_in(tx, trial_id, "record_id", record_ids).await
}

/// Existing allocations for any of these subjects.
pub async fn by_subjects(
    tx: &mut WriteTx,
    trial_id: &str,
    subjects: &[&str],
) -> StoreResult<Vec<AllocationRow>> {
    where_in(tx, trial_id, "subject", subjects).await
}

/// Stored positions of these strata (absent strata have not started).
pub async fn stratum_states(
    tx: &mut WriteTx,
    trial_id: &str,
    strata: &[&str],
) -> StoreResult<HashMap<String, StratumState>> {
    if strata.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "SELECT stratum, block_number, position, allocated FROM strata \
         WHERE trial_id = $1 AND stratum IN ({})",
        tx.backend().json_strings(2)
    );
    let rows = sqlx::query(&sql)
        .bind(trial_id)
        .bind(json_list(strata))
        .fetch_all(tx.conn())
        .await?;
    let mut states = HashMap::new();
    for row in rows {
        let number = |name: &str| -> StoreResult<u64> {
            let v: i64 = row.try_get(name)?;
            u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("strata.{name} is negative")))
        };
        let state = StratumState {
            block_number: number("block_number")?,
            position: u32::try_from(number("position")?)
                .map_err(|_| StoreError::Corrupt("strata.position out of range".into()))?,
            allocated: number("allocated")?,
        };
        states.insert(row.try_get("stratum")?, state);
    }
    Ok(states)
}

/// Store new stratum positions (insert or overwrite).
pub async fn save_stratum_states(
    tx: &mut WriteTx,
    states: &[(&str, &str, StratumState)],
) -> StoreResult<()> {
    if states.is_empty() {
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = states
        .iter()
        .map(|(trial, stratum, state)| {
            serde_json::json!({
                "trial_id": trial, "stratum": stratum, "block_number": state.block_number,
                "position": state.position, "allocated": state.allocated,
            })
        })
        .collect();
    let sql = format!(
        "INSERT INTO strata (trial_id, stratum, block_number, position, allocated) {} \
         ON CONFLICT (trial_id, stratum) DO UPDATE SET block_number = excluded.block_number, \
         position = excluded.position, allocated = excluded.allocated",
        tx.backend().json_rows(
            1,
            &[
                ("trial_id", false),
                ("stratum", false),
                ("block_number", true),
                ("position", true),
                ("allocated", true),
            ]
        )
    );
    sqlx::query(&sql)
        .bind(serde_json::Value::from(rows).to_string())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The allocation columns with whether each is an integer, for [`Backend::json_rows`].
const ALLOCATION_COLUMN_TYPES: [(&str, bool); 13] = [
    ("trial_id", false),
    ("randomisation_number", true),
    ("record_id", false),
    ("subject", false),
    ("site_code", false),
    ("arm", false),
    ("stratum", false),
    ("block_number", true),
    ("block_size", true),
    ("block_position", true),
    ("protocol_version", false),
    ("request_sha256", false),
    ("allocated_at", false),
];

/// Store allocations (one multi-row insert).
pub async fn insert_many(tx: &mut WriteTx, rows: &[AllocationRow]) -> StoreResult<()> {
    insert_json_rows(tx, "allocations", &ALLOCATION_COLUMN_TYPES, rows).await
}

/// `INSERT INTO table (columns) SELECT ... FROM json` with all `rows` as one JSON parameter.
pub(crate) async fn insert_json_rows<T: Serialize>(
    tx: &mut WriteTx,
    table: &str,
    columns: &[(&str, bool)],
    rows: &[T],
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let sql = format!(
        "INSERT INTO {table} ({}) {}",
        names.join(", "),
        tx.backend().json_rows(1, columns)
    );
    let json = serde_json::to_string(rows)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode {table} rows: {e}")))?;
    sqlx::query(&sql).bind(json).execute(tx.conn()).await?;
    Ok(())
}

/// Set a trial's next randomisation number.
pub async fn set_next_number(tx: &mut WriteTx, trial_id: &str, next: i64) -> StoreResult<()> {
    sqlx::query("UPDATE trials SET next_randomisation_number = $2 WHERE trial_id = $1")
        .bind(trial_id)
        .bind(next)
        .execute(tx.conn())
        .await?;
    Ok(())
}

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

/// Append screening-log rows (one multi-row insert), in order.
pub async fn insert_screenings(tx: &mut WriteTx, rows: &[ScreeningRow]) -> StoreResult<()> {
    const COLUMNS: [(&str, bool); 11] = [
        ("trial_id", false),
        ("record_id", false),
        ("subject", false),
        ("site_code", false),
        ("outcome", false),
        ("reasons", false),
        ("fields", false),
        ("request_sha256", false),
        ("protocol_version", false),
        ("randomisation_number", true),
        ("screened_at", false),
    ];
    insert_json_rows(tx, "screening_log", &COLUMNS, rows).await
}

/// Earlier refusals of these records: `(record_id, request_sha256) → reasons` (JSON text),
/// the latest refusal winning.
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
         AND outcome = 'not_eligible' AND record_id IN ({}) ORDER BY screening_id",
        tx.backend().json_strings(2)
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

/// Row counts of the tables an enrolment writes to: tests use them to prove nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteCounts {
    pub allocations: i64,
    pub screening: i64,
    pub audit: i64,
    pub strata: i64,
}

pub async fn write_counts(store: &Store) -> StoreResult<WriteCounts> {
    let count = |table: &'static str| {
        let pool = store.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&pool)
                .await
        }
    };
    Ok(WriteCounts {
        allocations: count("allocations").await?,
        screening: count("screening_log").await?,
        audit: count("audit_log").await?,
        strata: count("strata").await?,
    })
}
