//! Allocations, stratum positions and the screening log.
//!
//! The batch functions run inside the caller's write transaction (see `service::enrol`), which
//! holds the audit chain head's lock from its first statement to commit (see the `store`
//! module): that lock is what makes two server processes on one PostgreSQL database unable to
//! hand out the same block slot or randomisation number twice.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::{FromRow, Row};

use super::balance::{ArmCountRow, Balance, BalanceKeys, ClusterRow, MarginalRow};
use super::{Backend, SqlType, Store, StoreError, StoreResult, WriteTx};
use crate::randomise::StratumState;

/// One stored allocation.
/// The fields are in the order of [`ALLOCATION_COLUMNS`] (rows are read as JSON arrays).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
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
    /// The decision's audit detail (JSON), when the procedure gives one.
    pub detail: Option<String>,
    /// JSON array of the arm ids the patient was eligible for, when restricted.
    pub eligible_arms: Option<String>,
    /// The cluster (its unit's value), in a cluster trial.
    pub cluster: Option<String>,
    /// What the allocation took from its stratum's sequence: [`DRAW_SLOT`],
    /// [`DRAW_RESTRICTED`] or [`DRAW_INHERITED`].
    pub draw: String,
}

/// A block slot or sequence number, unique within the stratum.
pub const DRAW_SLOT: &str = "slot";
/// A restricted patient's draw beside the stratum's block; no slot is taken.
pub const DRAW_RESTRICTED: &str = "restricted";
/// A cluster member given its cluster's arm, without a draw.
pub const DRAW_INHERITED: &str = "inherited";

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
            detail: row.try_get("detail")?,
            eligible_arms: row.try_get("eligible_arms")?,
            cluster: row.try_get("cluster")?,
            draw: row.try_get("draw")?,
        })
    }
}

/// The columns of [`AllocationRow`], in the order of its fields.
const ALLOCATION_COLUMNS: &str = "trial_id, randomisation_number, record_id, subject, site_code, \
     arm, stratum, block_number, block_size, block_position, protocol_version, request_sha256, \
     allocated_at, detail, eligible_arms, cluster, draw";

/// Read one allocation by record id.
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
) -> StoreResult<Vec<AllocationRow>> {
    let columns: Vec<&str> = ALLOCATION_COLUMNS.split(", ").collect();
    let sql = backend.json_array_rows(
        &columns,
        "allocations WHERE trial_id = $1 AND randomisation_number > $2",
    );
    let json: String = sqlx::query_scalar(&sql)
        .bind(trial_id)
        .bind(after)
        .fetch_one(&mut *conn)
        .await?;
    // Each row is an array in the order of the columns, which is the order of the fields.
    let mut rows: Vec<AllocationRow> = serde_json::from_str(&json)
        .map_err(|e| StoreError::Corrupt(format!("allocations of `{trial_id}` as JSON: {e}")))?;
    rows.sort_by_key(|a| a.randomisation_number);
    Ok(rows)
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

/// Existing allocations of a trial for any of these record ids or subjects.
pub async fn existing(
    tx: &mut WriteTx,
    trial_id: &str,
    record_ids: &[&str],
    subjects: &[&str],
) -> StoreResult<Vec<AllocationRow>> {
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

fn json_list(keys: &[&str]) -> String {
    serde_json::Value::from(keys.to_vec()).to_string()
}

/// What a batch needs to know about one trial before deciding, read in one round trip: the
/// trial's status and next randomisation number (`None` when the trial does not exist), the
/// existing allocations of its records and subjects, the stored positions of its strata and
/// the counts and clusters named by the batch's [`BalanceKeys`]. The same round trip loads the
/// audit chain head into the transaction.
pub struct BatchContext {
    pub trial: Option<(String, i64)>,
    pub allocations: Vec<AllocationRow>,
    pub strata: HashMap<String, StratumState>,
    pub balance: Balance,
}

/// A `SELECT` whose rows ride in the allocation columns: `kind` first, then each allocation
/// column given in `columns` as its expression, the others NULL.
fn riding(kind: &str, columns: &[(&str, &str)], from: &str) -> String {
    let list: Vec<String> = ALLOCATION_COLUMN_TYPES
        .iter()
        .map(|(name, _)| {
            columns
                .iter()
                .find(|(c, _)| c == name)
                .map_or_else(|| "NULL".to_string(), |(_, e)| (*e).to_string())
        })
        .collect();
    format!("SELECT '{kind}', {} FROM {from}", list.join(", "))
}

pub async fn batch_context(
    tx: &mut WriteTx,
    trial_id: &str,
    record_ids: &[&str],
    subjects: &[&str],
    strata: &[&str],
    keys: &BalanceKeys<'_>,
) -> StoreResult<BatchContext> {
    let backend = tx.backend();
    let sql = format!(
        "SELECT 'a' AS kind, {ALLOCATION_COLUMNS} FROM allocations \
         WHERE trial_id = $1 AND record_id {in2} \
         UNION SELECT 'a', {ALLOCATION_COLUMNS} FROM allocations WHERE trial_id = $1 AND subject {in3} \
         UNION ALL {strata} \
         UNION ALL {trial} \
         UNION ALL {head} \
         UNION ALL {counts} \
         UNION ALL {marginals} \
         UNION ALL {clusters}",
        in2 = backend.in_json(2),
        in3 = backend.in_json(3),
        strata = riding(
            "s",
            &[
                ("trial_id", "trial_id"),
                ("randomisation_number", "allocated"),
                ("stratum", "stratum"),
                ("block_number", "block_number"),
                ("block_size", "position"),
            ],
            &format!("strata WHERE trial_id = $1 AND stratum {}", backend.in_json(4)),
        ),
        trial = riding(
            "t",
            &[
                ("trial_id", "trial_id"),
                ("randomisation_number", "next_randomisation_number"),
                ("record_id", "status"),
            ],
            "trials WHERE trial_id = $1",
        ),
        head = riding(
            "h",
            &[("randomisation_number", "seq"), ("record_id", "hash")],
            "audit_head WHERE id = 1",
        ),
        counts = riding(
            "c",
            &[
                ("randomisation_number", "n"),
                ("stratum", "stratum"),
                ("arm", "arm"),
            ],
            &format!("arm_counts WHERE trial_id = $1 AND stratum {}", backend.in_json(5)),
        ),
        marginals = riding(
            "m",
            &[
                ("randomisation_number", "n"),
                ("record_id", "factor"),
                ("subject", "level"),
                ("arm", "arm"),
            ],
            &format!(
                "marginal_counts WHERE trial_id = $1 AND factor {} AND level {}",
                backend.in_json(6),
                backend.in_json(7)
            ),
        ),
        clusters = riding(
            "k",
            &[
                ("randomisation_number", "randomisation_number"),
                ("record_id", "cluster"),
                ("stratum", "stratum"),
                ("arm", "arm"),
            ],
            &format!("clusters WHERE trial_id = $1 AND cluster {}", backend.in_json(8)),
        ),
    );
    let rows = sqlx::query(&sql)
        .bind(trial_id)
        .bind(json_list(record_ids))
        .bind(json_list(subjects))
        .bind(json_list(strata))
        .bind(json_list(&keys.strata))
        .bind(json_list(&keys.factors))
        .bind(json_list(&keys.levels))
        .bind(json_list(&keys.clusters))
        .fetch_all(tx.conn())
        .await?;
    let mut context = BatchContext {
        trial: None,
        allocations: Vec::new(),
        strata: HashMap::new(),
        balance: Balance::default(),
    };
    for row in &rows {
        let kind: String = row.try_get("kind")?;
        match kind.as_str() {
            "a" => context.allocations.push(AllocationRow::from_row(row)?),
            "t" => {
                context.trial = Some((
                    row.try_get("record_id")?,
                    row.try_get("randomisation_number")?,
                ))
            }
            "h" => {
                if tx.head.is_none() {
                    tx.head = Some(super::audit::ChainHead {
                        seq: row.try_get("randomisation_number")?,
                        hash: row.try_get("record_id")?,
                    });
                }
            }
            "c" => {
                context.balance.arm_counts.insert(
                    (row.try_get("stratum")?, row.try_get("arm")?),
                    row.try_get("randomisation_number")?,
                );
            }
            "m" => {
                context.balance.marginals.insert(
                    (
                        row.try_get("record_id")?,
                        row.try_get("subject")?,
                        row.try_get("arm")?,
                    ),
                    row.try_get("randomisation_number")?,
                );
            }
            "k" => {
                let cluster: String = row.try_get("record_id")?;
                context.balance.clusters.insert(
                    cluster.clone(),
                    ClusterRow {
                        trial_id: trial_id.to_string(),
                        cluster,
                        arm: row.try_get("arm")?,
                        stratum: row.try_get("stratum")?,
                        randomisation_number: row.try_get("randomisation_number")?,
                    },
                );
            }
            _ => {
                let number = |name: &str| -> StoreResult<u64> {
                    let v: i64 = row.try_get(name)?;
                    u64::try_from(v)
                        .map_err(|_| StoreError::Corrupt(format!("strata {name} is negative")))
                };
                let state = StratumState {
                    block_number: number("block_number")?,
                    position: u32::try_from(number("block_size")?)
                        .map_err(|_| StoreError::Corrupt("strata.position out of range".into()))?,
                    allocated: number("randomisation_number")?,
                };
                context.strata.insert(row.try_get("stratum")?, state);
            }
        }
    }
    Ok(context)
}

/// The allocation columns with whether each is an integer, for [`Backend::json_rows`].
const ALLOCATION_COLUMN_TYPES: [(&str, SqlType); 17] = [
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

/// `INSERT INTO table (columns) SELECT ... FROM json` with all `rows` as one JSON parameter.
pub(crate) async fn insert_json_rows<T: Serialize>(
    tx: &mut WriteTx,
    table: &str,
    columns: &[(&str, SqlType)],
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

/// Everything a batch of enrolment decisions writes.
#[derive(Debug, Default)]
pub struct BatchWrite {
    pub allocations: Vec<AllocationRow>,
    /// New positions of the strata the batch allocated in: (trial, stratum, state).
    pub strata: Vec<(String, String, StratumState)>,
    /// New next randomisation number of each trial the batch allocated in.
    pub next_numbers: Vec<(String, i64)>,
    pub screening: Vec<ScreeningRow>,
    pub audit: Vec<super::audit::NewEntry>,
    /// New values of the arm counts the batch changed.
    pub arm_counts: Vec<ArmCountRow>,
    /// New values of the marginal counts the batch changed.
    pub marginals: Vec<MarginalRow>,
    /// Clusters the batch randomised.
    pub clusters: Vec<ClusterRow>,
}

/// The statements of a batch write, each reading its rows from one JSON parameter `$n`.
fn batch_statement(backend: Backend, part: usize, n: usize) -> String {
    let rows = |columns: &[(&str, SqlType)]| backend.json_rows(n, columns);
    match part {
        0 => format!(
            "INSERT INTO allocations ({ALLOCATION_COLUMNS}) {}",
            rows(&ALLOCATION_COLUMN_TYPES)
        ),
        1 => format!(
            "INSERT INTO strata (trial_id, stratum, block_number, position, allocated) {} \
             ON CONFLICT (trial_id, stratum) DO UPDATE SET block_number = excluded.block_number, \
             position = excluded.position, allocated = excluded.allocated",
            rows(&[
                ("trial_id", SqlType::Text),
                ("stratum", SqlType::Text),
                ("block_number", SqlType::Integer),
                ("position", SqlType::Integer),
                ("allocated", SqlType::Integer),
            ])
        ),
        2 => format!(
            "UPDATE trials SET next_randomisation_number = x.next_randomisation_number \
             FROM ({}) AS x WHERE trials.trial_id = x.trial_id",
            rows(&[
                ("trial_id", SqlType::Text),
                ("next_randomisation_number", SqlType::Integer)
            ])
        ),
        3 => format!(
            "INSERT INTO screening_log ({}) {}",
            SCREENING_COLUMNS.map(|(c, _)| c).join(", "),
            rows(&SCREENING_COLUMNS)
        ),
        4 => format!(
            "INSERT INTO audit_log ({}) {}",
            super::audit::COLUMNS.map(|(c, _)| c).join(", "),
            rows(&super::audit::COLUMNS)
        ),
        5 => format!(
            "INSERT INTO arm_counts (trial_id, stratum, arm, n) {} \
             ON CONFLICT (trial_id, stratum, arm) DO UPDATE SET n = excluded.n",
            rows(&[
                ("trial_id", SqlType::Text),
                ("stratum", SqlType::Text),
                ("arm", SqlType::Text),
                ("n", SqlType::Integer),
            ])
        ),
        6 => format!(
            "INSERT INTO marginal_counts (trial_id, factor, level, arm, n) {} \
             ON CONFLICT (trial_id, factor, level, arm) DO UPDATE SET n = excluded.n",
            rows(&[
                ("trial_id", SqlType::Text),
                ("factor", SqlType::Text),
                ("level", SqlType::Text),
                ("arm", SqlType::Text),
                ("n", SqlType::Integer),
            ])
        ),
        7 => format!(
            "INSERT INTO clusters (trial_id, cluster, arm, stratum, randomisation_number) {}",
            rows(&[
                ("trial_id", SqlType::Text),
                ("cluster", SqlType::Text),
                ("arm", SqlType::Text),
                ("stratum", SqlType::Text),
                ("randomisation_number", SqlType::Integer),
            ])
        ),
        _ => super::audit::head_update_sql(backend, n),
    }
}

const BATCH_PARTS: usize = 9;

/// Write a batch's decisions (chaining its audit entries onto the transaction's head). On
/// PostgreSQL this is one statement of data-modifying CTEs, so a batch costs one round trip
/// however many enrolments it holds; SQLite, in-process, runs the same statements one by one.
pub async fn write_batch(tx: &mut WriteTx, batch: &BatchWrite) -> StoreResult<()> {
    let encode = |v: serde_json::Result<String>| {
        v.map_err(|e| StoreError::Corrupt(format!("cannot encode a batch: {e}")))
    };
    let audit_rows = super::audit::chain(tx, &batch.audit).await?;
    let head = super::audit::head_json(super::audit::head(tx).await?);
    let strata: Vec<serde_json::Value> = batch
        .strata
        .iter()
        .map(|(trial, stratum, state)| {
            serde_json::json!({
                "trial_id": trial, "stratum": stratum, "block_number": state.block_number,
                "position": state.position, "allocated": state.allocated,
            })
        })
        .collect();
    let numbers: Vec<serde_json::Value> = batch
        .next_numbers
        .iter()
        .map(|(trial, next)| serde_json::json!({"trial_id": trial, "next_randomisation_number": next}))
        .collect();
    let params: [(bool, String); BATCH_PARTS] = [
        (
            batch.allocations.is_empty(),
            encode(serde_json::to_string(&batch.allocations))?,
        ),
        (strata.is_empty(), encode(serde_json::to_string(&strata))?),
        (numbers.is_empty(), encode(serde_json::to_string(&numbers))?),
        (
            batch.screening.is_empty(),
            encode(serde_json::to_string(&batch.screening))?,
        ),
        (
            audit_rows.is_empty(),
            encode(serde_json::to_string(&audit_rows))?,
        ),
        (
            batch.arm_counts.is_empty(),
            encode(serde_json::to_string(&batch.arm_counts))?,
        ),
        (
            batch.marginals.is_empty(),
            encode(serde_json::to_string(&batch.marginals))?,
        ),
        (
            batch.clusters.is_empty(),
            encode(serde_json::to_string(&batch.clusters))?,
        ),
        (audit_rows.is_empty(), head),
    ];
    match tx.backend() {
        Backend::Postgres => {
            // Fixed text (empty arrays write nothing), so the statement is prepared once.
            let ctes: Vec<String> = (0..BATCH_PARTS - 1)
                .map(|i| format!("w{i} AS ({})", batch_statement(Backend::Postgres, i, i + 1)))
                .collect();
            let sql = format!(
                "WITH {} {}",
                ctes.join(", "),
                batch_statement(Backend::Postgres, BATCH_PARTS - 1, BATCH_PARTS)
            );
            let mut query = sqlx::query(&sql);
            for (_, json) in params {
                query = query.bind(json);
            }
            query.execute(tx.conn()).await?;
        }
        Backend::Sqlite => {
            for (i, (empty, json)) in params.into_iter().enumerate() {
                if !empty {
                    let sql = batch_statement(Backend::Sqlite, i, 1);
                    sqlx::query(&sql).bind(json).execute(tx.conn()).await?;
                }
            }
        }
    }
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

/// The screening-log columns with whether each is an integer, for [`Backend::json_rows`].
const SCREENING_COLUMNS: [(&str, SqlType); 11] = [
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
         AND outcome = 'not_eligible' AND record_id {} ORDER BY screening_id",
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

/// One screening decision as the participant flow reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreeningOutcomeRow {
    pub record_id: String,
    pub site_code: String,
    pub outcome: String,
    /// JSON text.
    pub reasons: String,
    pub screened_at: String,
}

/// The screening log of a trial, oldest first, with only the columns the flow needs (not the
/// enrolment fields, which are most of a row).
pub async fn screening_outcomes(
    store: &Store,
    trial_id: &str,
) -> StoreResult<Vec<ScreeningOutcomeRow>> {
    let mut conn = store.pool().acquire().await?;
    Ok(screening_outcomes_after(&mut conn, trial_id, 0).await?.0)
}

/// [`screening_outcomes`] with a screening id above `after`, and the largest id read (`after`
/// when none).
pub(crate) async fn screening_outcomes_after(
    conn: &mut AnyConnection,
    trial_id: &str,
    after: i64,
) -> StoreResult<(Vec<ScreeningOutcomeRow>, i64)> {
    let rows = sqlx::query(
        "SELECT screening_id, record_id, site_code, outcome, reasons, screened_at \
         FROM screening_log WHERE trial_id = $1 AND screening_id > $2 ORDER BY screening_id",
    )
    .bind(trial_id)
    .bind(after)
    .fetch_all(&mut *conn)
    .await?;
    let last = match rows.last() {
        Some(r) => r.try_get("screening_id")?,
        None => after,
    };
    let outcomes = rows
        .iter()
        .map(|r| {
            Ok(ScreeningOutcomeRow {
                record_id: r.try_get("record_id")?,
                site_code: r.try_get("site_code")?,
                outcome: r.try_get("outcome")?,
                reasons: r.try_get("reasons")?,
                screened_at: r.try_get("screened_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok((outcomes, last))
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
