//! One enrolment batch's round trips: what the batch must know before deciding
//! ([`batch_context`]) and everything it decided ([`write_batch_and_commit`]), each in a fixed
//! number of statements however many enrolments the batch holds (key lists and rows travel as
//! one JSON parameter, so a statement's text does not depend on the batch's size and is
//! prepared once per connection; the context read has two texts, with and without the answers
//! kept for CloudEvents).
//!
//! Both run inside the caller's write transaction (see `service::enrol`), which holds the
//! writer lock from its first statement to commit (see the `store` module).

use std::collections::{HashMap, HashSet};

use sqlx::{FromRow, Row};

use super::allocations::{json_list, ALLOCATION_COLUMNS, ALLOCATION_COLUMN_TYPES};
use super::balance::{ArmCountRow, Balance, BalanceKeys, ClusterRow, MarginalRow};
use super::inbound;
use super::screening_log::{ScreeningRow, SCREENING_COLUMNS};
use super::{Backend, SqlType, StoreError, StoreResult, WriteTx};
use crate::randomise::{AllocationRecord, StratumState};

/// What a batch needs to know about one trial before deciding, read in one round trip: the
/// trial's status and next randomisation number (`None` when the trial does not exist), the
/// existing allocations of its records and subjects, the stored positions of its strata and
/// the counts and clusters named by the batch's [`BalanceKeys`], and which of its subjects object
/// to the trial. The same round trip loads the audit chain head into the transaction.
pub struct BatchContext {
    pub trial: Option<(String, i64)>,
    /// The trial's lifecycle (`active`, `paused`, `closed`; migration 0010).
    pub lifecycle: Option<String>,
    /// The trial's sites closed to enrolment.
    pub closed_sites: Vec<String>,
    pub allocations: Vec<AllocationRecord>,
    pub strata: HashMap<String, StratumState>,
    pub balance: Balance,
    /// The batch's subjects on the trial's objection list (migration 0011).
    pub objecting: HashSet<String>,
    /// Answers kept under the batch's CloudEvent keys (read under the writer lock, so nothing
    /// is kept under them before the batch commits).
    pub kept: HashMap<inbound::Key, inbound::Kept>,
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

/// The kept answers of the batch's CloudEvent keys (`$9`, `$10`, `$11`: parallel JSON lists of
/// scopes, sources and ids, one element per key): a `FROM` clause over `inbound_events`.
///
/// On PostgreSQL each key is one probe of the primary key: the lists are zipped into rows
/// (`ROWS FROM`) and each looks its answer up in a `LATERAL` subquery (its `LIMIT 1` keeps it
/// a subquery of its own). Three `= ANY` lists were costed as their cross product, ten
/// elements each by the planner's guess, a thousand index descents: before the table had
/// statistics it read every answer kept for the sender instead, and with them the whole table
/// until that held tens of thousands of answers. With the key's every column fixed the
/// planner knows there is at most one row, with or without statistics. On SQLite, `IN` lists,
/// which its planner answers through the primary key; their cross product may hold other keys,
/// so the caller matches the rows to its keys.
fn kept_answers(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => format!(
            "inbound_events WHERE scope {} AND ce_source {} AND ce_id {}",
            backend.in_json(9),
            backend.in_json(10),
            backend.in_json(11)
        ),
        Backend::Postgres => "ROWS FROM (jsonb_array_elements_text($9::jsonb), \
             jsonb_array_elements_text($10::jsonb), jsonb_array_elements_text($11::jsonb)) \
             AS k(key_scope, key_source, key_id) CROSS JOIN LATERAL (SELECT scope, ce_source, \
             ce_id, ce_type, content_sha256, status, answer FROM inbound_events \
             WHERE scope = k.key_scope AND ce_source = k.key_source AND ce_id = k.key_id \
             LIMIT 1) AS r"
            .to_string(),
    }
}

pub async fn batch_context(
    tx: &mut WriteTx,
    trial_id: &str,
    record_ids: &[&str],
    subjects: &[&str],
    strata: &[&str],
    keys: &BalanceKeys<'_>,
    kept_keys: &[inbound::Key],
) -> StoreResult<BatchContext> {
    let backend = tx.backend();
    let sql = format!(
        "SELECT 'a' AS kind, {ALLOCATION_COLUMNS} FROM allocations \
         WHERE trial_id = $1 AND record_id {in2} \
         UNION SELECT 'a', {ALLOCATION_COLUMNS} FROM allocations WHERE trial_id = $1 AND subject {in3} \
         UNION ALL {strata} \
         UNION ALL {trial} \
         UNION ALL {closed_sites} \
         UNION ALL {head} \
         UNION ALL {counts} \
         UNION ALL {marginals} \
         UNION ALL {clusters} \
         UNION ALL {objecting}{kept}",
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
            &format!(
                "strata WHERE trial_id = $1 AND stratum {}",
                backend.in_json(4)
            ),
        ),
        trial = riding(
            "t",
            &[
                ("trial_id", "trial_id"),
                ("randomisation_number", "next_randomisation_number"),
                ("record_id", "status"),
                ("subject", "lifecycle"),
            ],
            "trials WHERE trial_id = $1",
        ),
        closed_sites = riding(
            "x",
            &[("trial_id", "trial_id"), ("site_code", "site_code")],
            "sites WHERE trial_id = $1 AND enrolment = 'closed'",
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
            &format!(
                "arm_counts WHERE trial_id = $1 AND stratum {}",
                backend.in_json(5)
            ),
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
            &format!(
                "clusters WHERE trial_id = $1 AND cluster {}",
                backend.in_json(8)
            ),
        ),
        objecting = riding(
            "o",
            &[("subject", "subject")],
            &format!(
                "objections WHERE trial_id = $1 AND subject {}",
                backend.in_json(3)
            ),
        ),
        // Only a batch with CloudEvents looks for kept answers: the plain requests' batches
        // neither plan nor run that part (its statement text is another, prepared apart).
        kept = if kept_keys.is_empty() {
            String::new()
        } else {
            format!(
                " UNION ALL {}",
                riding(
                    "i",
                    &[
                        ("record_id", "scope"),
                        ("subject", "ce_source"),
                        ("site_code", "ce_id"),
                        ("arm", "ce_type"),
                        ("stratum", "content_sha256"),
                        ("randomisation_number", "status"),
                        ("detail", "answer"),
                    ],
                    &kept_answers(backend),
                )
            )
        },
    );
    let mut query = sqlx::query(&sql)
        .bind(trial_id)
        .bind(json_list(record_ids))
        .bind(json_list(subjects))
        .bind(json_list(strata))
        .bind(json_list(&keys.strata))
        .bind(json_list(&keys.factors))
        .bind(json_list(&keys.levels))
        .bind(json_list(&keys.clusters));
    if !kept_keys.is_empty() {
        let [scopes, sources, ids] = inbound::key_lists(kept_keys)?;
        query = query.bind(scopes).bind(sources).bind(ids);
    }
    let rows = query.fetch_all(tx.conn()).await?;
    let mut context = BatchContext {
        trial: None,
        lifecycle: None,
        closed_sites: Vec::new(),
        allocations: Vec::new(),
        strata: HashMap::new(),
        balance: Balance::default(),
        objecting: HashSet::new(),
        kept: HashMap::new(),
    };
    let wanted: HashSet<&inbound::Key> = kept_keys.iter().collect();
    for row in &rows {
        let kind: String = row.try_get("kind")?;
        match kind.as_str() {
            "a" => context.allocations.push(AllocationRecord::from_row(row)?),
            "t" => {
                context.trial = Some((
                    row.try_get("record_id")?,
                    row.try_get("randomisation_number")?,
                ));
                context.lifecycle = Some(row.try_get("subject")?);
            }
            "x" => context.closed_sites.push(row.try_get("site_code")?),
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
            "k" => context.balance.insert_cluster(row, trial_id, "record_id")?,
            "o" => {
                context.objecting.insert(row.try_get("subject")?);
            }
            "i" => {
                let key: inbound::Key = (
                    row.try_get("record_id")?,
                    row.try_get("subject")?,
                    row.try_get("site_code")?,
                );
                if wanted.contains(&key) {
                    let kept = inbound::kept_from(
                        row.try_get("arm")?,
                        row.try_get("stratum")?,
                        row.try_get("randomisation_number")?,
                        &row.try_get::<String, _>("detail")?,
                    )?;
                    context.kept.insert(key, kept);
                }
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

/// Everything a batch of enrolment decisions writes.
#[derive(Debug, Default)]
pub struct BatchWrite {
    pub allocations: Vec<AllocationRecord>,
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
    /// Answers to the batch's CloudEvents, kept with the decisions they report.
    pub kept: Vec<super::inbound::KeptRow>,
    /// The consents recorded with the batch's allocations (migration 0011).
    pub consents: Vec<super::participation::ConsentRow>,
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
        8 => format!(
            "INSERT INTO inbound_events (scope, ce_source, ce_id, ce_type, content_sha256, status, \
             answer, received_at) {}",
            rows(&[
                ("scope", SqlType::Text),
                ("ce_source", SqlType::Text),
                ("ce_id", SqlType::Text),
                ("ce_type", SqlType::Text),
                ("content_sha256", SqlType::Text),
                ("status", SqlType::Integer),
                ("answer", SqlType::Text),
                ("received_at", SqlType::Text),
            ])
        ),
        9 => format!(
            "INSERT INTO enrolment_consents (trial_id, record_id, randomisation_number, kind, \
             taken_by, taken_at) {}",
            rows(&[
                ("trial_id", SqlType::Text),
                ("record_id", SqlType::Text),
                ("randomisation_number", SqlType::Integer),
                ("kind", SqlType::Text),
                ("taken_by", SqlType::Text),
                ("taken_at", SqlType::Text),
            ])
        ),
        _ => super::audit::head_update_sql(backend, n),
    }
}

const BATCH_PARTS: usize = 11;

/// Run on PostgreSQL just before a batch's write: the rest of the transaction (the write, and
/// the foreign-key checks and outbox trigger it sets off) uses cached generic plans. The
/// connection's `force_custom_plan` (see `Store::connect_pooled`) is for reads, whose best plan
/// changes as a trial grows; under it every batch planned its write, and each row's key checks
/// and trigger statement, again: planning was 43% of the server's CPU under load. The write's
/// plans cannot go stale that way: its rows come from its parameters, every foreign key it
/// checks is a trial's primary key, and the trigger inserts one row. `LOCAL`: the connection
/// is back on custom plans at commit or rollback.
const GENERIC_PLANS_FROM_HERE: &str = "SET LOCAL plan_cache_mode = force_generic_plan";

/// Write a batch's decisions (chaining its audit entries onto the transaction's head) and
/// commit. On PostgreSQL the writes are one statement of data-modifying CTEs, run after
/// `GENERIC_PLANS_FROM_HERE`, so a batch costs two round trips however many enrolments it
/// holds; on SQLite they are one multi-statement text ending in `COMMIT`, so writing and
/// committing cost one round trip to the connection's thread, not two.
pub async fn write_batch_and_commit(mut tx: WriteTx, batch: &BatchWrite) -> StoreResult<()> {
    if tx.backend() == Backend::Sqlite {
        return match write(&mut tx, batch, true).await {
            Ok(true) => {
                tx.committed();
                Ok(())
            }
            Ok(false) => tx.commit().await,
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        };
    }
    write(&mut tx, batch, false).await?;
    tx.commit().await
}

/// Write `batch`; with `commit` (SQLite only), end the statement text with `COMMIT`. Whether it
/// did (nothing to write: no statement, no commit).
async fn write(tx: &mut WriteTx, batch: &BatchWrite, commit: bool) -> StoreResult<bool> {
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
        (
            batch.kept.is_empty(),
            encode(serde_json::to_string(&batch.kept))?,
        ),
        (
            batch.consents.is_empty(),
            encode(serde_json::to_string(&batch.consents))?,
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
            // Planned once per connection, foreign-key checks and the outbox trigger included.
            sqlx::Executor::execute(&mut *tx.conn(), GENERIC_PLANS_FROM_HERE).await?;
            let mut query = sqlx::query(&sql);
            for (_, json) in params {
                query = query.bind(json);
            }
            query.execute(tx.conn()).await?;
        }
        // SQLite writes no CTEs: the parts that write something, as one multi-statement text
        // (one round trip to the connection), each part reading its own `$n`.
        Backend::Sqlite => {
            let parts: Vec<(usize, String)> = params
                .into_iter()
                .enumerate()
                .filter(|(_, (empty, _))| !empty)
                .map(|(i, (_, json))| (i, json))
                .collect();
            if parts.is_empty() {
                return Ok(false);
            }
            let mut statements: Vec<String> = parts
                .iter()
                .enumerate()
                .map(|(n, (i, _))| batch_statement(Backend::Sqlite, *i, n + 1))
                .collect();
            if commit {
                statements.push("COMMIT".into());
            }
            let sql = statements.join(";\n");
            let mut query = sqlx::query(&sql);
            for (_, json) in parts {
                query = query.bind(json);
            }
            query.execute(tx.conn()).await?;
            return Ok(commit);
        }
    }
    Ok(false)
}
