//! The outbox: rows the audit log's trigger adds in the transaction of every change others are
//! told of (see migration 0008), read with their audit entry for publishing.

use sqlx::Row;

use super::{Store, StoreError, StoreResult};
use crate::outbound::OutboundRecord;

const SELECT: &str = "SELECT o.outbox_id, o.trial_id, o.event_type, o.recorded_at, a.action, \
     a.payload FROM outbox o JOIN audit_log a ON a.seq = o.outbox_id";

fn record(r: &sqlx::any::AnyRow) -> StoreResult<OutboundRecord> {
    let payload: String = r.try_get("payload")?;
    Ok(OutboundRecord {
        id: r.try_get("outbox_id")?,
        trial_id: r.try_get("trial_id")?,
        event_type: r.try_get("event_type")?,
        time: r.try_get("recorded_at")?,
        action: r.try_get("action")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("audit payload is not JSON: {e}")))?,
    })
}

/// Records not yet published to the bus, oldest first.
pub async fn unpublished(store: &Store, limit: i64) -> StoreResult<Vec<OutboundRecord>> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE o.published_at IS NULL ORDER BY o.outbox_id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(record).collect()
}

/// Records after `after` (an outbox id), oldest first, of one trial when given.
pub async fn after(
    store: &Store,
    after: i64,
    trial_id: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<OutboundRecord>> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE o.outbox_id > $1 AND ($2 IS NULL OR o.trial_id = $2) \
         ORDER BY o.outbox_id LIMIT $3"
    ))
    .bind(after)
    .bind(trial_id)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(record).collect()
}

/// Mark records published (after the bus acknowledged them).
pub async fn mark_published(store: &Store, ids: &[i64], at: &str) -> StoreResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let list: Vec<serde_json::Value> = ids.iter().map(|i| serde_json::json!(i)).collect();
    let sql = format!(
        "UPDATE outbox SET published_at = $1 WHERE published_at IS NULL AND outbox_id {}",
        store.backend().in_json_integers(2)
    );
    let query = sqlx::query(&sql)
        .bind(at)
        .bind(serde_json::Value::from(list).to_string());
    match store.backend() {
        // SQLite writes on its one writing connection.
        super::Backend::Sqlite => {
            let mut tx = store.begin_write().await?;
            query.execute(tx.conn()).await?;
            tx.commit().await
        }
        // PostgreSQL: one statement of its own, without the writers' lock (the marks touch no
        // audit entry, and an enrolment batch waiting for that lock would wait for them).
        super::Backend::Postgres => {
            query.execute(store.pool()).await?;
            Ok(())
        }
    }
}

/// How many records wait to be published.
pub async fn backlog(store: &Store) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(store.pool())
            .await?,
    )
}

/// Every record (tests and reports), oldest first.
pub async fn all(store: &Store) -> StoreResult<Vec<OutboundRecord>> {
    after(store, 0, None, i64::MAX).await
}
