//! Allocations: the record of each randomisation, read back by record, by trial or as the
//! rows added since an earlier read. They are written by the enrolment batch (see
//! [`super::batch`]), which runs under the writer lock (see the `store` module): that lock is
//! what makes two server processes on one PostgreSQL database unable to hand out the same block
//! slot or randomisation number twice.

use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::{FromRow, Row};

use super::{Backend, SqlType, Store, StoreResult, WriteTx};
use crate::randomise::{AllocationRecord, Draw, Timestamp};

/// Read from the columns named as its fields (see [`ALLOCATION_COLUMNS`]); the timestamp and
/// the draw kind are parsed here, once, and a stored value that does not parse is a decode
/// error rather than a silent default.
impl<'r> FromRow<'r, AnyRow> for AllocationRecord {
    fn from_row(row: &'r AnyRow) -> Result<Self, sqlx::Error> {
        let decode = |column: &str, text: &str| sqlx::Error::ColumnDecode {
            index: column.to_string(),
            source: format!("unreadable stored value `{text}`").into(),
        };
        let allocated_at: String = row.try_get("allocated_at")?;
        let draw: String = row.try_get("draw")?;
        Ok(AllocationRecord {
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
            allocated_at: Timestamp::parse(&allocated_at)
                .ok_or_else(|| decode("allocated_at", &allocated_at))?,
            detail: row.try_get("detail")?,
            eligible_arms: row.try_get("eligible_arms")?,
            cluster: row.try_get("cluster")?,
            draw: Draw::parse(&draw).ok_or_else(|| decode("draw", &draw))?,
        })
    }
}

/// The columns of [`AllocationRecord`], in the order of its fields.
pub(super) const ALLOCATION_COLUMNS: &str = "trial_id, randomisation_number, record_id, subject, \
     site_code, arm, stratum, block_number, block_size, block_position, protocol_version, \
     request_sha256, allocated_at, detail, eligible_arms, cluster, draw";

/// Read one allocation by record id.
pub async fn by_record(
    conn: &mut AnyConnection,
    trial_id: &str,
    record_id: &str,
) -> StoreResult<Option<AllocationRecord>> {
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
pub async fn list(store: &Store, trial_id: &str) -> StoreResult<Vec<AllocationRecord>> {
    let mut conn = store.pool().acquire().await?;
    after(&mut conn, store.backend(), trial_id, 0).await
}

/// The allocations of a trial with a randomisation number above `after`, in randomisation
/// order, read as one JSON value (see [`Backend::json_array_rows`]; row by row, sqlx `Any`
/// takes several times as long for a large trial).
pub(crate) async fn after(
    conn: &mut AnyConnection,
    backend: Backend,
    trial_id: &str,
    after: i64,
) -> StoreResult<Vec<AllocationRecord>> {
    let columns: Vec<&str> = ALLOCATION_COLUMNS.split(", ").collect();
    // Each row is an array in the order of the columns, which is the order of the fields.
    let mut rows: Vec<AllocationRecord> = super::json_rows_after(
        conn,
        backend,
        &columns,
        "allocations WHERE trial_id = $1 AND randomisation_number > $2",
        (trial_id, after),
        "allocations",
    )
    .await?;
    rows.sort_by_key(|a| a.randomisation_number);
    Ok(rows)
}

/// Read one allocation outside any transaction.
pub async fn get(
    store: &Store,
    trial_id: &str,
    record_id: &str,
) -> StoreResult<Option<AllocationRecord>> {
    let mut conn = store.pool().acquire().await?;
    by_record(&mut conn, trial_id, record_id).await
}

/// The trials and sites each of `subjects` is randomised in: `(subject, trial_id, site_code)`
/// (read under the writer lock, so it cannot change before the caller commits).
pub async fn subject_trials(
    tx: &mut WriteTx,
    subjects: &[&str],
) -> StoreResult<Vec<(String, String, String)>> {
    if subjects.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT DISTINCT subject, trial_id, site_code FROM allocations WHERE subject {} \
         ORDER BY subject, trial_id",
        tx.backend().in_json(1)
    );
    // Distinct first (a large import names each subject many times), then sorted: sorting
    // every mention would compare strings n·log n times.
    let distinct: std::collections::HashSet<&str> = subjects.iter().copied().collect();
    let mut unique: Vec<&str> = distinct.into_iter().collect();
    unique.sort_unstable();
    let rows = sqlx::query(&sql)
        .bind(json_list(&unique))
        .fetch_all(tx.conn())
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("subject")?,
                r.try_get("trial_id")?,
                r.try_get("site_code")?,
            ))
        })
        .collect()
}

/// Record ids of a trial's allocations in permuted blocks that are still open (fewer slots
/// taken than the block holds): their arms let a reader tell the block's remaining arms.
pub async fn in_open_blocks(
    store: &Store,
    trial_id: &str,
) -> StoreResult<std::collections::HashSet<String>> {
    Ok(sqlx::query_scalar(
        "SELECT a.record_id FROM allocations a JOIN (\
           SELECT stratum, block_number FROM allocations \
           WHERE trial_id = $1 AND draw = 'slot' AND block_size > 1 \
           GROUP BY stratum, block_number, block_size HAVING COUNT(*) < block_size\
         ) o ON a.stratum = o.stratum AND a.block_number = o.block_number \
         WHERE a.trial_id = $1 AND a.draw = 'slot'",
    )
    .bind(trial_id)
    .fetch_all(store.pool())
    .await?
    .into_iter()
    .collect())
}

/// Existing allocations of a trial for any of these record ids or subjects.
pub async fn existing(
    tx: &mut WriteTx,
    trial_id: &str,
    record_ids: &[&str],
    subjects: &[&str],
) -> StoreResult<Vec<AllocationRecord>> {
    if record_ids.is_empty() && subjects.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {ALLOCATION_COLUMNS} FROM allocations WHERE trial_id = $1 AND record_id {} \
         UNION SELECT {ALLOCATION_COLUMNS} FROM allocations WHERE trial_id = $1 AND subject {}",
        tx.backend().in_json(2),
        tx.backend().in_json(3)
    );
    Ok(sqlx::query_as(&sql)
        .bind(trial_id)
        .bind(json_list(record_ids))
        .bind(json_list(subjects))
        .fetch_all(tx.conn())
        .await?)
}

pub(super) fn json_list(keys: &[&str]) -> String {
    serde_json::Value::from(keys.to_vec()).to_string()
}

/// The allocation columns with whether each is an integer, for [`Backend::json_rows`].
pub(super) const ALLOCATION_COLUMN_TYPES: [(&str, SqlType); 17] = [
    ("trial_id", SqlType::Text),
    ("randomisation_number", SqlType::Integer),
    ("record_id", SqlType::Text),
    ("subject", SqlType::Text),
    ("site_code", SqlType::Text),
    ("arm", SqlType::Text),
    ("stratum", SqlType::Text),
    ("block_number", SqlType::Integer),
    ("block_size", SqlType::Integer),
    ("block_position", SqlType::Integer),
    ("protocol_version", SqlType::Text),
    ("request_sha256", SqlType::Text),
    ("allocated_at", SqlType::Text),
    ("detail", SqlType::Text),
    ("eligible_arms", SqlType::Text),
    ("cluster", SqlType::Text),
    ("draw", SqlType::Text),
];

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
