//! What the stale-source alarm reads, and its writing: once per silence of a source, under the
//! writer lock, so that several instances raise it once.

use sqlx::Row;

use super::{audit, Store, StoreResult};

/// Each source's last delivery (RFC 3339), over every trial.
pub async fn last_deliveries(store: &Store) -> StoreResult<Vec<(String, String)>> {
    let rows = sqlx::query(
        "SELECT source, MAX(received_at) AS last FROM source_deliveries GROUP BY source",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("source")?, r.try_get("last")?)))
        .collect()
}

/// When a trial's first patient was randomised (RFC 3339), if one was.
pub async fn first_randomised(store: &Store, trial_id: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT MIN(allocated_at) FROM allocations WHERE trial_id = $1")
            .bind(trial_id)
            .fetch_one(store.pool())
            .await?,
    )
}

/// Raise the alarm `payload` (which names `source` and `last_delivery`) for a trial, unless one
/// was raised for the same source and the same last delivery: then nothing is written. Whether
/// it was raised.
pub async fn raise_once(
    store: &Store,
    trial_id: &str,
    payload: &serde_json::Value,
) -> StoreResult<bool> {
    let mut tx = store.begin_write().await?;
    let raised: Vec<String> = sqlx::query_scalar(
        "SELECT payload FROM audit_log WHERE action = 'source_stale' AND trial_id = $1",
    )
    .bind(trial_id)
    .fetch_all(tx.conn())
    .await?;
    let same = raised.iter().any(|p| {
        serde_json::from_str::<serde_json::Value>(p).is_ok_and(|p| {
            p["source"] == payload["source"] && p["last_delivery"] == payload["last_delivery"]
        })
    });
    if same {
        tx.rollback().await?;
        return Ok(false);
    }
    audit::append(&mut tx, "system", "source_stale", Some(trial_id), payload).await?;
    tx.commit().await?;
    Ok(true)
}
