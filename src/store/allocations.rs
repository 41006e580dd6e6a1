//! Allocations, stratum positions and the screening log.
//!
//! These functions run inside the caller's write transaction (see `service::enrol`), which holds
//! the trial row's lock from [`lock_trial`] to commit: that lock is what makes two server
//! processes on one PostgreSQL database unable to hand out the same block slot or
//! randomisation number twice.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::{FromRow, Row};

use super::{Backend, Store, StoreError, StoreResult};
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
pub async fn lock_trial(
    conn: &mut AnyConnection,
    backend: Backend,
    trial_id: &str,
) -> StoreResult<Option<(String, i64)>> {
    let sql = format!(
        "SELECT status, next_randomisation_number FROM trials WHERE trial_id = $1{}",
        backend.for_update()
    );
    let row = sqlx::query(&sql)
        .bind(trial_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| Ok((r.try_get("status")?, r.try_get("next_randomisation_number")?)))
        .transpose()
}

pub async fn by_record(
    conn: &mut AnyConnection,
    trial_id: &str,
    record_id: &str,
) -> StoreResult<Option<AllocationRow>> {
    let sql =
        format!("SELECT {ALLOCATION_COLUMNS} FROM allocations WHERE trial_id = $1 AND record_id = $2");
    Ok(sqlx::query_as(&sql)
        .bind(trial_id)
        .bind(record_id)
        .fetch_optional(&mut *conn)
        .await?)
}

pub async fn by_subject(
    conn: &mut AnyConnection,
    trial_id: &str,
    subject: &str,
) -> StoreResult<Option<AllocationRow>> {
    let sql =
        format!("SELECT {ALLOCATION_COLUMNS} FROM allocations WHERE trial_id = $1 AND subject = $2");
    Ok(sqlx::query_as(&sql)
        .bind(trial_id)
        .bind(subject)
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

pub async fn stratum_state(
    conn: &mut AnyConnection,
    trial_id: &str,
    stratum: &str,
) -> StoreResult<StratumState> {
    let row = sqlx::query(
        "SELECT block_number, position, allocated FROM strata WHERE trial_id = $1 AND stratum = $2",
    )
    .bind(trial_id)
    .bind(stratum)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(StratumState::default());
    };
    let number = |name: &str| -> StoreResult<u64> {
        let v: i64 = row.try_get(name)?;
        u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("strata.{name} is negative")))
    };
    Ok(StratumState {
        block_number: number("block_number")?,
        position: u32::try_from(number("position")?)
            .map_err(|_| StoreError::Corrupt("strata.position out of range".into()))?,
        allocated: number("allocated")?,
    })
}

/// Store the allocation, the stratum's new position and the trial's next randomisation number.
pub async fn insert(
    conn: &mut AnyConnection,
    row: &AllocationRow,
    next_state: StratumState,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO strata (trial_id, stratum, block_number, position, allocated) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (trial_id, stratum) DO UPDATE SET block_number = excluded.block_number, \
         position = excluded.position, allocated = excluded.allocated",
    )
    .bind(&row.trial_id)
    .bind(&row.stratum)
    .bind(to_i64(next_state.block_number)?)
    .bind(i64::from(next_state.position))
    .bind(to_i64(next_state.allocated)?)
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO allocations ({ALLOCATION_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&row.trial_id)
    .bind(row.randomisation_number)
    .bind(&row.record_id)
    .bind(&row.subject)
    .bind(&row.site_code)
    .bind(&row.arm)
    .bind(&row.stratum)
    .bind(row.block_number)
    .bind(row.block_size)
    .bind(row.block_position)
    .bind(&row.protocol_version)
    .bind(&row.request_sha256)
    .bind(&row.allocated_at)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE trials SET next_randomisation_number = $2 WHERE trial_id = $1")
        .bind(&row.trial_id)
        .bind(row.randomisation_number + 1)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn to_i64(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{v} does not fit in BIGINT")))
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

pub async fn insert_screening(conn: &mut AnyConnection, row: &ScreeningRow) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO screening_log (trial_id, record_id, subject, site_code, outcome, reasons, \
         fields, request_sha256, protocol_version, randomisation_number, screened_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&row.trial_id)
    .bind(&row.record_id)
    .bind(&row.subject)
    .bind(&row.site_code)
    .bind(&row.outcome)
    .bind(&row.reasons)
    .bind(&row.fields)
    .bind(&row.request_sha256)
    .bind(&row.protocol_version)
    .bind(row.randomisation_number)
    .bind(&row.screened_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The reasons of an earlier identical refusal (same record and same request body), if any.
pub async fn earlier_refusal(
    conn: &mut AnyConnection,
    trial_id: &str,
    record_id: &str,
    request_sha256: &str,
) -> StoreResult<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT reasons FROM screening_log WHERE trial_id = $1 AND record_id = $2 \
         AND request_sha256 = $3 AND outcome = 'not_eligible' ORDER BY screening_id DESC LIMIT 1",
    )
    .bind(trial_id)
    .bind(record_id)
    .bind(request_sha256)
    .fetch_optional(&mut *conn)
    .await?)
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
