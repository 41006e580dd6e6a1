//! CloudEvents received: the answer kept under each `(source, id)`, so that a replay is answered
//! alike and a reuse of the key with other content is told apart.

use sqlx::Row;

use std::collections::HashMap;

use super::{Store, StoreError, StoreResult, WriteTx};

/// An answer kept for a CloudEvent.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    pub ce_type: String,
    pub content_sha256: String,
    pub status: u16,
    pub answer: serde_json::Value,
}

/// The answer kept for `(source, id)` within `scope`, if any.
pub async fn find(store: &Store, scope: &str, source: &str, id: &str) -> StoreResult<Option<Kept>> {
    let row = sqlx::query(
        "SELECT ce_type, content_sha256, status, answer FROM inbound_events \
         WHERE scope = $1 AND ce_source = $2 AND ce_id = $3",
    )
    .bind(scope)
    .bind(source)
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(kept_of).transpose()
}

/// A kept answer's key: `(scope, source, id)`.
pub type Key = (String, String, String);

fn kept_of(r: &sqlx::any::AnyRow) -> StoreResult<Kept> {
    let answer: String = r.try_get("answer")?;
    let status: i64 = r.try_get("status")?;
    Ok(Kept {
        ce_type: r.try_get("ce_type")?,
        content_sha256: r.try_get("content_sha256")?,
        status: u16::try_from(status).unwrap_or(500),
        answer: serde_json::from_str(&answer)
            .map_err(|e| StoreError::Corrupt(format!("inbound answer is not JSON: {e}")))?,
    })
}

/// The answers kept under any of `keys`, read inside a write transaction (an enrolment batch:
/// under the writer lock, so nothing is kept under these keys before the batch commits). One
/// statement however many keys: each key part travels as one JSON list (the primary key
/// drives the lookup), and the rows are matched to the keys here.
pub async fn find_in(tx: &mut WriteTx, keys: &[Key]) -> StoreResult<HashMap<Key, Kept>> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let list = |part: fn(&Key) -> &String| {
        let mut v: Vec<&String> = keys.iter().map(part).collect();
        v.sort();
        v.dedup();
        serde_json::to_string(&v)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode keys: {e}")))
    };
    let backend = tx.backend();
    let sql = format!(
        "SELECT scope, ce_source, ce_id, ce_type, content_sha256, status, answer \
         FROM inbound_events WHERE scope {} AND ce_source {} AND ce_id {}",
        backend.in_json(1),
        backend.in_json(2),
        backend.in_json(3)
    );
    let rows = sqlx::query(&sql)
        .bind(list(|k| &k.0)?)
        .bind(list(|k| &k.1)?)
        .bind(list(|k| &k.2)?)
        .fetch_all(tx.conn())
        .await?;
    let wanted: std::collections::HashSet<&Key> = keys.iter().collect();
    let mut found = HashMap::new();
    for r in &rows {
        let key: Key = (
            r.try_get("scope")?,
            r.try_get("ce_source")?,
            r.try_get("ce_id")?,
        );
        if wanted.contains(&key) {
            found.insert(key, kept_of(r)?);
        }
    }
    Ok(found)
}

/// A kept answer as an enrolment batch writes it (see `store::batch`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeptRow {
    pub scope: String,
    pub ce_source: String,
    pub ce_id: String,
    pub ce_type: String,
    pub content_sha256: String,
    pub status: i64,
    /// The answer's JSON text.
    pub answer: String,
    pub received_at: String,
}

/// One answer to keep: `(scope, source, id, answer, received_at)`.
pub type ToKeep = (String, String, String, Kept, String);

/// Keep many answers in one transaction (the keeper's group commit): for each, `None` when it
/// was kept, or the answer kept before under its key.
pub async fn keep_many(store: &Store, items: &[ToKeep]) -> StoreResult<Vec<Option<Kept>>> {
    let mut tx = store.begin_write().await?;
    let mut inserted = Vec::with_capacity(items.len());
    for (scope, source, id, kept, received_at) in items {
        let n = sqlx::query(
            "INSERT INTO inbound_events (scope, ce_source, ce_id, ce_type, content_sha256, status, answer, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (scope, ce_source, ce_id) DO NOTHING",
        )
        .bind(scope)
        .bind(source)
        .bind(id)
        .bind(&kept.ce_type)
        .bind(&kept.content_sha256)
        .bind(i64::from(kept.status))
        .bind(kept.answer.to_string())
        .bind(received_at)
        .execute(tx.conn())
        .await?
        .rows_affected();
        inserted.push(n == 1);
    }
    tx.commit().await?;
    let mut out = Vec::with_capacity(items.len());
    for ((scope, source, id, _, _), new) in items.iter().zip(inserted) {
        out.push(if new {
            None
        } else {
            find(store, scope, source, id).await?
        });
    }
    Ok(out)
}

/// Number of kept answers (tests).
pub async fn count(store: &Store) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM inbound_events")
        .fetch_one(store.pool())
        .await?)
}
