//! The audit log: an append-only hash chain.
//!
//! Each entry's hash is SHA-256 over a JSON array of its own fields and the previous entry's
//! hash, so changing, removing or reordering any entry breaks every hash after it. The single
//! `audit_head` row holds the newest entry; every write transaction locks it first (see the
//! `store` module), which makes the chain one sequence even across several server processes
//! sharing a PostgreSQL database.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::insert_json_rows;
use super::{now_text, Backend, SqlType, Store, StoreResult, WriteTx};

/// The hash before the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One stored audit entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub recorded_at: String,
    /// Who caused it: `system`, `cli`, `token:<first 12 hex of the token hash>`, or a person
    /// signed in to the pages, `person:<subject> (<name>)`.
    pub actor: String,
    pub action: String,
    pub trial_id: Option<String>,
    /// JSON text describing the event.
    pub payload: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Compute an entry's hash from its fields and the previous hash.
pub fn entry_hash(
    seq: i64,
    recorded_at: &str,
    actor: &str,
    action: &str,
    trial_id: Option<&str>,
    payload: &str,
    prev_hash: &str,
) -> String {
    let canonical = serde_json::json!([
        seq,
        recorded_at,
        actor,
        action,
        trial_id,
        payload,
        prev_hash
    ])
    .to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// An entry to append: the parts the caller decides.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub actor: String,
    pub action: String,
    pub trial_id: Option<String>,
    pub payload: serde_json::Value,
}

/// Append one entry inside the caller's write transaction.
pub async fn append(
    tx: &mut WriteTx,
    actor: &str,
    action: &str,
    trial_id: Option<&str>,
    payload: &serde_json::Value,
) -> StoreResult<()> {
    append_many(
        tx,
        &[NewEntry {
            actor: actor.to_string(),
            action: action.to_string(),
            trial_id: trial_id.map(str::to_string),
            payload: payload.clone(),
        }],
    )
    .await
}

/// The newest entry's sequence number and hash (0 and [`GENESIS_HASH`] for an empty log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

/// The transaction's view of the chain head, read on first use (the writer lock keeps it
/// current until commit).
pub(crate) async fn head(tx: &mut WriteTx) -> StoreResult<&mut ChainHead> {
    if tx.head.is_none() {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(tx.conn())
            .await?;
        tx.head = Some(ChainHead {
            seq: row.try_get("seq")?,
            hash: row.try_get("hash")?,
        });
    }
    tx.head
        .as_mut()
        .ok_or_else(|| crate::store::StoreError::Corrupt("audit head not loaded".into()))
}

/// Chain entries onto the transaction's head, in order, without writing them yet: returns the
/// complete entries and advances the head in memory.
pub async fn chain(tx: &mut WriteTx, entries: &[NewEntry]) -> StoreResult<Vec<AuditEntry>> {
    let recorded_at = now_text();
    let head = head(tx).await?;
    Ok(entries
        .iter()
        .map(|entry| {
            let seq = head.seq + 1;
            let payload = entry.payload.to_string();
            let hash = entry_hash(
                seq,
                &recorded_at,
                &entry.actor,
                &entry.action,
                entry.trial_id.as_deref(),
                &payload,
                &head.hash,
            );
            let prev_hash = std::mem::replace(&mut head.hash, hash.clone());
            head.seq = seq;
            AuditEntry {
                seq,
                recorded_at: recorded_at.clone(),
                actor: entry.actor.clone(),
                action: entry.action.clone(),
                trial_id: entry.trial_id.clone(),
                payload,
                prev_hash,
                hash,
            }
        })
        .collect())
}

/// The audit columns with whether each is an integer, for [`Backend::json_rows`].
pub(crate) const COLUMNS: [(&str, SqlType); 8] = [
    ("seq", SqlType::Integer),
    ("recorded_at", SqlType::Text),
    ("actor", SqlType::Text),
    ("action", SqlType::Text),
    ("trial_id", SqlType::Text),
    ("payload", SqlType::Text),
    ("prev_hash", SqlType::Text),
    ("hash", SqlType::Text),
];

/// SQL that moves the stored head to the values of a one-element JSON array at `$n`.
pub(crate) fn head_update_sql(backend: Backend, n: usize) -> String {
    format!(
        "UPDATE audit_head SET seq = x.seq, hash = x.hash FROM ({}) AS x WHERE audit_head.id = 1",
        backend.json_rows(n, &[("seq", SqlType::Integer), ("hash", SqlType::Text)])
    )
}

/// JSON parameter for [`head_update_sql`].
pub(crate) fn head_json(head: &ChainHead) -> String {
    serde_json::json!([{ "seq": head.seq, "hash": head.hash }]).to_string()
}

/// Chain and store entries, and move the stored head, inside the caller's transaction.
pub async fn append_many(tx: &mut WriteTx, entries: &[NewEntry]) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let rows = chain(tx, entries).await?;
    insert_json_rows(tx, "audit_log", &COLUMNS, &rows).await?;
    let sql = head_update_sql(tx.backend(), 1);
    let head = head_json(head(tx).await?);
    sqlx::query(&sql).bind(head).execute(tx.conn()).await?;
    Ok(())
}

/// The result of recomputing the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainStatus {
    Intact { entries: u64 },
    Broken { seq: i64, reason: String },
}

/// Recompute the whole chain from the first entry.
#[tracing::instrument(skip_all, err)]
pub async fn verify(store: &Store) -> StoreResult<ChainStatus> {
    let rows = sqlx::query(
        "SELECT seq, recorded_at, actor, action, trial_id, payload, prev_hash, hash \
         FROM audit_log ORDER BY seq",
    )
    .fetch_all(store.pool())
    .await?;
    let mut expected_prev = GENESIS_HASH.to_string();
    let mut expected_seq = 1i64;
    for row in &rows {
        let e = entry_from_row(row)?;
        if e.seq != expected_seq {
            return Ok(ChainStatus::Broken {
                seq: e.seq,
                reason: format!("expected entry {expected_seq} next, found {}", e.seq),
            });
        }
        if e.prev_hash != expected_prev {
            return Ok(ChainStatus::Broken {
                seq: e.seq,
                reason: "previous-hash link does not match the entry before it".into(),
            });
        }
        let recomputed = entry_hash(
            e.seq,
            &e.recorded_at,
            &e.actor,
            &e.action,
            e.trial_id.as_deref(),
            &e.payload,
            &e.prev_hash,
        );
        if recomputed != e.hash {
            return Ok(ChainStatus::Broken {
                seq: e.seq,
                reason: "content does not match its hash (entry altered)".into(),
            });
        }
        expected_prev = e.hash;
        expected_seq += 1;
    }
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(store.pool())
        .await?;
    let head_seq: i64 = head.try_get("seq")?;
    let head_hash: String = head.try_get("hash")?;
    if head_seq != expected_seq - 1 || head_hash != expected_prev {
        return Ok(ChainStatus::Broken {
            seq: head_seq,
            reason: format!(
                "chain head says {head_seq} entries but the log holds {} (entries removed?)",
                expected_seq - 1
            ),
        });
    }
    Ok(ChainStatus::Intact {
        entries: rows.len() as u64,
    })
}

/// Entries for one trial (or all when `trial_id` is `None`), oldest first.
pub async fn entries(store: &Store, trial_id: Option<&str>) -> StoreResult<Vec<AuditEntry>> {
    let rows = sqlx::query(
        "SELECT seq, recorded_at, actor, action, trial_id, payload, prev_hash, hash \
         FROM audit_log WHERE ($1 IS NULL OR trial_id = $1) ORDER BY seq",
    )
    .bind(trial_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(entry_from_row).collect()
}

/// The newest entry's sequence number: every write transaction appends to the chain, so this
/// changes with every committed write (a version of the whole database for caches).
pub async fn head_seq(store: &Store) -> StoreResult<i64> {
    Ok(sqlx::query("SELECT seq FROM audit_head WHERE id = 1")
        .fetch_one(store.pool())
        .await?
        .try_get("seq")?)
}

/// One page of a trial's entries, newest first, and how many entries the trial has.
pub async fn entries_page(
    store: &Store,
    trial_id: &str,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<AuditEntry>, i64)> {
    let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE trial_id = $1")
        .bind(trial_id)
        .fetch_one(store.pool())
        .await?
        .try_get("n")?;
    let rows = sqlx::query(
        "SELECT seq, recorded_at, actor, action, trial_id, payload, prev_hash, hash \
         FROM audit_log WHERE trial_id = $1 ORDER BY seq DESC LIMIT $2 OFFSET $3",
    )
    .bind(trial_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(store.pool())
    .await?;
    Ok((
        rows.iter()
            .map(entry_from_row)
            .collect::<StoreResult<_>>()?,
        total,
    ))
}

fn entry_from_row(row: &sqlx::any::AnyRow) -> StoreResult<AuditEntry> {
    Ok(AuditEntry {
        seq: row.try_get("seq")?,
        recorded_at: row.try_get("recorded_at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        trial_id: row.try_get("trial_id")?,
        payload: row.try_get("payload")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// The chain head as stored (the newest entry's sequence number and hash).
pub async fn stored_head(store: &Store) -> StoreResult<ChainHead> {
    let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(store.pool())
        .await?;
    Ok(ChainHead {
        seq: row.try_get("seq")?,
        hash: row.try_get("hash")?,
    })
}

/// Every entry up to and including `seq`, oldest first.
pub async fn entries_through(store: &Store, seq: i64) -> StoreResult<Vec<AuditEntry>> {
    let rows = sqlx::query(
        "SELECT seq, recorded_at, actor, action, trial_id, payload, prev_hash, hash \
         FROM audit_log WHERE seq <= $1 ORDER BY seq",
    )
    .bind(seq)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(entry_from_row).collect()
}
