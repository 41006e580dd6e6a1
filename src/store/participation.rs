//! Consents recorded with enrolments, withdrawals and each trial's objection list
//! (migration 0011). A withdrawal is a row of its own: the allocation is never changed or
//! deleted. A deferred consent's confirmation fills the confirmation columns of its consent row
//! once.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::{Backend, Store, StoreError, StoreResult, WriteTx};
use crate::analysis::participation::{
    Confirmation, ConsentRecord, Participation, Withdrawal, WithdrawalScope,
};
use crate::protocol::ConsentKind;

const CONSENT_COLUMNS: &str = "record_id, randomisation_number, kind, taken_by, taken_at, \
     confirmed_kind, confirmed_by, confirmed_at, confirmed_recorded_by, confirmed_recorded_at";

/// One consent row to write with an enrolment's allocation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConsentRow {
    pub trial_id: String,
    pub record_id: String,
    pub randomisation_number: i64,
    pub kind: String,
    pub taken_by: Option<String>,
    pub taken_at: Option<String>,
}

fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

/// A consent read row by row (one record's, inside a write transaction).
fn consent_from(row: &sqlx::any::AnyRow) -> StoreResult<ConsentRecord> {
    consent_record((
        row.try_get("record_id")?,
        row.try_get("randomisation_number")?,
        row.try_get("kind")?,
        row.try_get("taken_by")?,
        row.try_get("taken_at")?,
        row.try_get("confirmed_kind")?,
        row.try_get("confirmed_by")?,
        row.try_get("confirmed_at")?,
        row.try_get("confirmed_recorded_by")?,
        row.try_get("confirmed_recorded_at")?,
    ))
}

/// A consent from its columns, in the order of [`CONSENT_COLUMNS`].
fn consent_record(
    (record_id, number, kind, taken_by, taken_at, c_kind, c_by, c_at, c_rec_by, c_rec_at): ConsentTuple,
) -> StoreResult<ConsentRecord> {
    let kind_of = |text: &str| {
        ConsentKind::parse(text).ok_or_else(|| corrupt(format!("unknown consent kind `{text}`")))
    };
    let confirmed = match c_kind {
        None => None,
        Some(k) => Some(Confirmation {
            kind: kind_of(&k)?,
            taken_by: c_by.unwrap_or_default(),
            taken_at: c_at.unwrap_or_default(),
            recorded_by: c_rec_by.unwrap_or_default(),
            recorded_at: c_rec_at.unwrap_or_default(),
        }),
    };
    Ok(ConsentRecord {
        record_id,
        randomisation_number: number,
        kind: kind_of(&kind)?,
        taken_by,
        taken_at,
        confirmed,
    })
}

fn withdrawal_from(row: &sqlx::any::AnyRow) -> StoreResult<Withdrawal> {
    let scope: String = row.try_get("scope")?;
    let on: String = row.try_get("withdrawn_on")?;
    Ok(Withdrawal {
        record_id: row.try_get("record_id")?,
        scope: WithdrawalScope::parse(&scope)
            .ok_or_else(|| corrupt(format!("unknown withdrawal scope `{scope}`")))?,
        withdrawn_on: chrono::NaiveDate::parse_from_str(&on, "%Y-%m-%d")
            .map_err(|e| corrupt(format!("withdrawal date `{on}`: {e}")))?,
        reason: row.try_get("reason")?,
        recorded_by: row.try_get("recorded_by")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

/// A consent row's columns, in the order of [`CONSENT_COLUMNS`].
type ConsentTuple = (
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The consents of `trial_id`'s allocations numbered above `after` (0: all), in randomisation
/// order.
///
/// Read as one JSON value (see [`super::json_rows_after`]).
pub async fn consents_after(
    conn: &mut AnyConnection,
    backend: Backend,
    trial_id: &str,
    after: i64,
) -> StoreResult<Vec<ConsentRecord>> {
    let columns: Vec<&str> = CONSENT_COLUMNS.split(", ").collect();
    let rows: Vec<ConsentTuple> = super::json_rows_after(
        conn,
        backend,
        &columns,
        "enrolment_consents WHERE trial_id = $1 AND randomisation_number > $2",
        (trial_id, after),
        "consents",
    )
    .await?;
    let mut consents = rows
        .into_iter()
        .map(consent_record)
        .collect::<StoreResult<Vec<_>>>()?;
    consents.sort_by_key(|c| c.randomisation_number);
    Ok(consents)
}

/// Every withdrawal of `trial_id`, by record, oldest first.
pub async fn withdrawals(
    conn: &mut AnyConnection,
    trial_id: &str,
) -> StoreResult<HashMap<String, Vec<Withdrawal>>> {
    let rows = sqlx::query(
        "SELECT record_id, scope, withdrawn_on, reason, recorded_by, recorded_at \
         FROM withdrawals WHERE trial_id = $1 ORDER BY recorded_at, scope",
    )
    .bind(trial_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut out: HashMap<String, Vec<Withdrawal>> = HashMap::new();
    for r in &rows {
        let w = withdrawal_from(r)?;
        out.entry(w.record_id.clone()).or_default().push(w);
    }
    Ok(out)
}

/// A trial's whole participation data, on one connection (inside a snapshot, say).
pub async fn of_trial_on(
    conn: &mut AnyConnection,
    backend: Backend,
    trial_id: &str,
) -> StoreResult<Participation> {
    let consents = consents_after(conn, backend, trial_id, 0).await?;
    Ok(Participation {
        consents: consents
            .into_iter()
            .map(|c| (c.record_id.clone(), c))
            .collect(),
        withdrawals: withdrawals(conn, trial_id).await?,
    })
}

/// [`of_trial_on`] on a connection of the pool.
pub async fn of_trial(store: &Store, trial_id: &str) -> StoreResult<Participation> {
    let mut conn = store.pool().acquire().await?;
    of_trial_on(&mut conn, store.backend(), trial_id).await
}

/// One record's consent, inside a write transaction.
pub async fn consent_of(
    tx: &mut WriteTx,
    trial_id: &str,
    record_id: &str,
) -> StoreResult<Option<ConsentRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {CONSENT_COLUMNS} FROM enrolment_consents WHERE trial_id = $1 AND record_id = $2"
    ))
    .bind(trial_id)
    .bind(record_id)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(consent_from).transpose()
}

/// Record a deferred consent's confirmation (only once: the row must be unconfirmed).
pub async fn confirm(
    tx: &mut WriteTx,
    trial_id: &str,
    record_id: &str,
    confirmation: &Confirmation,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE enrolment_consents SET confirmed_kind = $3, confirmed_by = $4, confirmed_at = $5, \
         confirmed_recorded_by = $6, confirmed_recorded_at = $7 \
         WHERE trial_id = $1 AND record_id = $2 AND confirmed_kind IS NULL",
    )
    .bind(trial_id)
    .bind(record_id)
    .bind(confirmation.kind.as_str())
    .bind(&confirmation.taken_by)
    .bind(&confirmation.taken_at)
    .bind(&confirmation.recorded_by)
    .bind(&confirmation.recorded_at)
    .execute(tx.conn())
    .await?
    .rows_affected();
    if done != 1 {
        return Err(corrupt(format!(
            "no unconfirmed consent of {record_id} in {trial_id} to confirm"
        )));
    }
    Ok(())
}

/// One record's withdrawals, inside a write transaction.
pub async fn withdrawals_of(
    tx: &mut WriteTx,
    trial_id: &str,
    record_id: &str,
) -> StoreResult<Vec<Withdrawal>> {
    let rows = sqlx::query(
        "SELECT record_id, scope, withdrawn_on, reason, recorded_by, recorded_at \
         FROM withdrawals WHERE trial_id = $1 AND record_id = $2 ORDER BY recorded_at, scope",
    )
    .bind(trial_id)
    .bind(record_id)
    .fetch_all(tx.conn())
    .await?;
    rows.iter().map(withdrawal_from).collect()
}

pub async fn insert_withdrawal(
    tx: &mut WriteTx,
    trial_id: &str,
    w: &Withdrawal,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO withdrawals (trial_id, record_id, scope, withdrawn_on, reason, recorded_by, \
         recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(trial_id)
    .bind(&w.record_id)
    .bind(w.scope.as_str())
    .bind(w.withdrawn_on.to_string())
    .bind(&w.reason)
    .bind(&w.recorded_by)
    .bind(&w.recorded_at)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// An entry of a trial's objection list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Objection {
    pub subject: String,
    pub added_by: String,
    pub added_at: String,
}

/// Add `subject` to the trial's objection list; false when it was already on it.
pub async fn add_objection(
    tx: &mut WriteTx,
    trial_id: &str,
    objection: &Objection,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO objections (trial_id, subject, added_by, added_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (trial_id, subject) DO NOTHING",
    )
    .bind(trial_id)
    .bind(&objection.subject)
    .bind(&objection.added_by)
    .bind(&objection.added_at)
    .execute(tx.conn())
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Take `subject` off the trial's objection list; false when it was not on it.
pub async fn remove_objection(
    tx: &mut WriteTx,
    trial_id: &str,
    subject: &str,
) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM objections WHERE trial_id = $1 AND subject = $2")
        .bind(trial_id)
        .bind(subject)
        .execute(tx.conn())
        .await?
        .rows_affected();
    Ok(done == 1)
}

/// The trial's objection list, by subject (in code-point order on both backends, whatever
/// the database's collation).
pub async fn objections(store: &Store, trial_id: &str) -> StoreResult<Vec<Objection>> {
    let rows =
        sqlx::query("SELECT subject, added_by, added_at FROM objections WHERE trial_id = $1")
            .bind(trial_id)
            .fetch_all(store.pool())
            .await?;
    let mut list = rows
        .iter()
        .map(|r| {
            Ok(Objection {
                subject: r.try_get("subject")?,
                added_by: r.try_get("added_by")?,
                added_at: r.try_get("added_at")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    list.sort_by(|a, b| a.subject.cmp(&b.subject));
    Ok(list)
}
