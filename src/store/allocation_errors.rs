//! Allocations marked "randomised in error" (migration 0004). A mark is a row of its own: the
//! allocation is never changed or deleted, and a record is marked at most once.

use std::collections::HashMap;

use sqlx::Row;

use super::{Store, StoreError, StoreResult, WriteTx};
use crate::analysis::ErrorMark;

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<ErrorMark> {
    Ok(ErrorMark {
        trial_id: row.try_get("trial_id")?,
        record_id: row.try_get("record_id")?,
        reason: row.try_get("reason")?,
        marked_by: row.try_get("marked_by")?,
        marked_at: row.try_get("marked_at")?,
    })
}

const COLUMNS: &str = "trial_id, record_id, reason, marked_by, marked_at";

/// The mark of one record, if any, inside a write transaction.
pub async fn get(
    tx: &mut WriteTx,
    trial_id: &str,
    record_id: &str,
) -> StoreResult<Option<ErrorMark>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM allocation_errors WHERE trial_id = $1 AND record_id = $2"
    ))
    .bind(trial_id)
    .bind(record_id)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn insert(tx: &mut WriteTx, mark: &ErrorMark) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO allocation_errors ({COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
    ))
    .bind(&mark.trial_id)
    .bind(&mark.record_id)
    .bind(&mark.reason)
    .bind(&mark.marked_by)
    .bind(&mark.marked_at)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Every mark of a trial, by record id.
pub async fn of_trial(store: &Store, trial_id: &str) -> StoreResult<HashMap<String, ErrorMark>> {
    let mut conn = store.pool().acquire().await?;
    of_trial_on(&mut conn, trial_id).await
}

/// [`of_trial`] on a given connection (inside a read transaction, say).
pub(crate) async fn of_trial_on(
    conn: &mut sqlx::AnyConnection,
    trial_id: &str,
) -> StoreResult<HashMap<String, ErrorMark>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM allocation_errors WHERE trial_id = $1"
    ))
    .bind(trial_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| from_row(r).map(|m| (m.record_id.clone(), m)))
        .collect()
}

/// Take one unit out of the marginal count of (factor, level, arm); the count must hold it.
pub async fn release_marginal(
    tx: &mut WriteTx,
    trial_id: &str,
    factor: &str,
    level: &str,
    arm: &str,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE marginal_counts SET n = n - 1 WHERE trial_id = $1 AND factor = $2 \
         AND level = $3 AND arm = $4 AND n > 0",
    )
    .bind(trial_id)
    .bind(factor)
    .bind(level)
    .bind(arm)
    .execute(tx.conn())
    .await?
    .rows_affected();
    if done != 1 {
        return Err(StoreError::Corrupt(format!(
            "no marginal count of {factor} = {level} on arm {arm} to release in trial {trial_id}"
        )));
    }
    Ok(())
}
