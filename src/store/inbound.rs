//! CloudEvents received: the answer kept under each `(source, id)`, so that a replay is answered
//! alike and a reuse of the key with other content is told apart.

use sqlx::Row;

use super::{Store, StoreError, StoreResult};

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
    kept_from(
        r.try_get("ce_type")?,
        r.try_get("content_sha256")?,
        r.try_get("status")?,
        &r.try_get::<String, _>("answer")?,
    )
}

/// A kept answer from its stored columns.
pub(super) fn kept_from(
    ce_type: String,
    content_sha256: String,
    status: i64,
    answer: &str,
) -> StoreResult<Kept> {
    Ok(Kept {
        ce_type,
        content_sha256,
        status: u16::try_from(status).unwrap_or(500),
        answer: serde_json::from_str(answer)
            .map_err(|e| StoreError::Corrupt(format!("inbound answer is not JSON: {e}")))?,
    })
}

/// The three parts of `keys` (scopes, sources, ids) as parallel JSON lists, one element per
/// key (the keys sorted, without repeats): element `i` of each list is key `i`'s part.
pub(super) fn key_lists(keys: &[Key]) -> StoreResult<[String; 3]> {
    let mut keys: Vec<&Key> = keys.iter().collect();
    keys.sort();
    keys.dedup();
    let list = |part: fn(&Key) -> &String| {
        let v: Vec<&String> = keys.iter().map(|k| part(k)).collect();
        serde_json::to_string(&v)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode keys: {e}")))
    };
    Ok([list(|k| &k.0)?, list(|k| &k.1)?, list(|k| &k.2)?])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lists_are_parallel_one_element_per_key() {
        let key = |s: &str, c: &str, i: &str| -> Key { (s.into(), c.into(), i.into()) };
        let keys = [
            key("register|taste", "/b", "2"),
            key("register|taste", "/a", "9"),
            key("register|taste", "/b", "2"),
            key("feed|x", "/a", "1"),
        ];
        let [scopes, sources, ids] = key_lists(&keys).unwrap();
        // Element i of each list is key i's part: the pairs survive, the repeat does not.
        assert_eq!(scopes, r#"["feed|x","register|taste","register|taste"]"#);
        assert_eq!(sources, r#"["/a","/a","/b"]"#);
        assert_eq!(ids, r#"["1","9","2"]"#);
        let empty = key_lists(&[]).unwrap();
        assert_eq!(empty, ["[]", "[]", "[]"].map(String::from));
    }
}
