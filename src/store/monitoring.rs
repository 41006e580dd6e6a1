//! The figures a metrics scrape reads from the database: the outbox's backlog, the webhooks
//! whose deliveries fail, and how many subjects each trial has randomised. Counts only: nothing
//! per arm or per subject is read here.

use super::{outbox, Store, StoreResult};

/// What the database says at the moment of a scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub outbox_backlog: i64,
    /// Webhooks (not removed) whose last attempt failed.
    pub webhooks_failing: i64,
    /// Their failed attempts since their last success, summed.
    pub webhook_failed_attempts: i64,
    /// `(trial_id, randomised)` for each trial with allocations.
    pub randomised: Vec<(String, i64)>,
}

pub async fn snapshot(store: &Store) -> StoreResult<Snapshot> {
    let outbox_backlog = outbox::backlog(store).await?;
    let (webhooks_failing, webhook_failed_attempts): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(d.attempts), 0) AS BIGINT) \
         FROM webhook_deliveries d JOIN webhooks w ON w.webhook_id = d.webhook_id \
         WHERE w.removed_at IS NULL AND d.last_error IS NOT NULL",
    )
    .fetch_one(store.pool())
    .await?;
    let randomised: Vec<(String, i64)> = sqlx::query_as(
        "SELECT trial_id, COUNT(*) FROM allocations GROUP BY trial_id ORDER BY trial_id",
    )
    .fetch_all(store.pool())
    .await?;
    Ok(Snapshot {
        outbox_backlog,
        webhooks_failing,
        webhook_failed_attempts,
        randomised,
    })
}
