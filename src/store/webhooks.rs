//! Registered webhooks and each one's delivery state (migration 0009).
//!
//! Registration and removal are audited; delivery progress is not (it is the state of a
//! transport, not a change to a trial) but every write of it still goes through
//! [`Store::begin_write`], so it queues behind enrolments instead of racing them. A webhook's
//! signing secret arrives here sealed and never leaves this module but sealed; nothing here
//! writes a secret into the audit log.

use sqlx::Row;

use super::{audit, now_text, Store, StoreResult, WriteTx};

/// A webhook to store: what the service validated and sealed.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub webhook_id: String,
    pub trial_id: String,
    pub url: String,
    pub sealed_secret: Vec<u8>,
    /// JSON array of outbound types, `None` for every type.
    pub event_types: Option<String>,
}

/// A webhook as listed: registration and delivery state, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WebhookRecord {
    pub webhook_id: String,
    pub trial_id: String,
    pub url: String,
    /// JSON array of outbound types, `None` for every type.
    pub event_types: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub removed_at: Option<String>,
    pub removed_by: Option<String>,
    /// The outbox id through which the webhook has its records.
    pub delivered_through: i64,
    /// Records acknowledged so far.
    pub delivered: i64,
    /// Failed attempts at the next record.
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_attempt_at: Option<String>,
    pub last_delivered_at: Option<String>,
    pub last_error: Option<String>,
}

const RECORD_COLUMNS: &str = "w.webhook_id, w.trial_id, w.url, w.event_types, w.created_at, \
     w.created_by, w.removed_at, w.removed_by, d.delivered_through, d.delivered, d.attempts, \
     d.next_attempt_at, d.last_attempt_at, d.last_delivered_at, d.last_error";

fn record(r: &sqlx::any::AnyRow) -> StoreResult<WebhookRecord> {
    Ok(WebhookRecord {
        webhook_id: r.try_get("webhook_id")?,
        trial_id: r.try_get("trial_id")?,
        url: r.try_get("url")?,
        event_types: r.try_get("event_types")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        removed_at: r.try_get("removed_at")?,
        removed_by: r.try_get("removed_by")?,
        delivered_through: r.try_get("delivered_through")?,
        delivered: r.try_get("delivered")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_attempt_at: r.try_get("last_attempt_at")?,
        last_delivered_at: r.try_get("last_delivered_at")?,
        last_error: r.try_get("last_error")?,
    })
}

/// Store a webhook with its delivery state and an audit entry (which names the webhook, its
/// trial, URL and types, never its secret). It receives the records committed after it: its
/// cursor starts at the newest outbox id, read under the writer lock, so no record committed
/// later can be missed and none committed earlier is sent.
#[tracing::instrument(skip_all, fields(trial = %webhook.trial_id, webhook = %webhook.webhook_id), err)]
pub async fn insert(store: &Store, webhook: &NewWebhook, actor: &str) -> StoreResult<i64> {
    let mut tx = store.begin_write().await?;
    let now = now_text();
    let through: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(outbox_id), 0) FROM outbox")
        .fetch_one(tx.conn())
        .await?;
    sqlx::query(
        "INSERT INTO webhooks (webhook_id, trial_id, url, sealed_secret, event_types, created_at, \
         created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&webhook.webhook_id)
    .bind(&webhook.trial_id)
    .bind(&webhook.url)
    .bind(webhook.sealed_secret.clone())
    .bind(webhook.event_types.as_deref())
    .bind(&now)
    .bind(actor)
    .execute(tx.conn())
    .await?;
    sqlx::query(
        "INSERT INTO webhook_deliveries (webhook_id, delivered_through, next_attempt_at) \
         VALUES ($1, $2, $3)",
    )
    .bind(&webhook.webhook_id)
    .bind(through)
    .bind(&now)
    .execute(tx.conn())
    .await?;
    let types: Option<serde_json::Value> = webhook
        .event_types
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok());
    audit::append(
        &mut tx,
        actor,
        "webhook_added",
        Some(&webhook.trial_id),
        &serde_json::json!({
            "webhook_id": webhook.webhook_id,
            "url": webhook.url,
            "types": types,
            "after_outbox_id": through,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(through)
}

/// Every webhook (of one trial, when given), removed ones too, oldest first.
pub async fn list(store: &Store, trial_id: Option<&str>) -> StoreResult<Vec<WebhookRecord>> {
    let rows = sqlx::query(&format!(
        "SELECT {RECORD_COLUMNS} FROM webhooks w JOIN webhook_deliveries d \
         ON d.webhook_id = w.webhook_id WHERE ($1 IS NULL OR w.trial_id = $1) \
         ORDER BY w.created_at, w.webhook_id"
    ))
    .bind(trial_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(record).collect()
}

/// What removing a webhook found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Removed(WebhookRecord),
    AlreadyRemoved(WebhookRecord),
    NotFound,
}

/// Remove a webhook: no more deliveries, its secret erased, an audit entry. Its registration
/// and delivery state stay, to be listed.
#[tracing::instrument(skip_all, fields(webhook = %webhook_id), err)]
pub async fn remove(store: &Store, webhook_id: &str, actor: &str) -> StoreResult<Removal> {
    let mut tx = store.begin_write().await?;
    let row = sqlx::query(&format!(
        "SELECT {RECORD_COLUMNS} FROM webhooks w JOIN webhook_deliveries d \
         ON d.webhook_id = w.webhook_id WHERE w.webhook_id = $1"
    ))
    .bind(webhook_id)
    .fetch_optional(tx.conn())
    .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        return Ok(Removal::NotFound);
    };
    let mut found = record(&row)?;
    if found.removed_at.is_some() {
        tx.rollback().await?;
        return Ok(Removal::AlreadyRemoved(found));
    }
    let now = now_text();
    sqlx::query(
        "UPDATE webhooks SET removed_at = $2, removed_by = $3, sealed_secret = $4 \
         WHERE webhook_id = $1",
    )
    .bind(webhook_id)
    .bind(&now)
    .bind(actor)
    .bind(Vec::<u8>::new())
    .execute(tx.conn())
    .await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL \
         WHERE webhook_id = $1",
    )
    .bind(webhook_id)
    .execute(tx.conn())
    .await?;
    audit::append(
        &mut tx,
        actor,
        "webhook_removed",
        Some(&found.trial_id),
        &serde_json::json!({
            "webhook_id": found.webhook_id,
            "url": found.url,
            "delivered_through": found.delivered_through,
        }),
    )
    .await?;
    tx.commit().await?;
    found.removed_at = Some(now);
    found.removed_by = Some(actor.to_string());
    Ok(Removal::Removed(found))
}

/// An active webhook's sealed secret with what it is bound to.
#[derive(Debug, Clone)]
pub struct SealedWebhook {
    pub webhook_id: String,
    pub trial_id: String,
    pub url: String,
    pub event_types: Option<String>,
    pub sealed_secret: Vec<u8>,
}

fn sealed(r: &sqlx::any::AnyRow) -> StoreResult<SealedWebhook> {
    Ok(SealedWebhook {
        webhook_id: r.try_get("webhook_id")?,
        trial_id: r.try_get("trial_id")?,
        url: r.try_get("url")?,
        event_types: r.try_get("event_types")?,
        sealed_secret: r.try_get("sealed_secret")?,
    })
}

/// Every active webhook's sealed secret (for re-sealing under a new key).
pub async fn sealed_secrets(store: &Store) -> StoreResult<Vec<SealedWebhook>> {
    let rows = sqlx::query(
        "SELECT webhook_id, trial_id, url, event_types, sealed_secret FROM webhooks \
         WHERE removed_at IS NULL ORDER BY webhook_id",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(sealed).collect()
}

/// Replace sealed secrets `(webhook id, sealed)` inside the caller's transaction (a key
/// rotation's).
pub async fn replace_sealed_secrets(
    tx: &mut WriteTx,
    secrets: &[(String, Vec<u8>)],
) -> StoreResult<()> {
    for (webhook_id, sealed) in secrets {
        sqlx::query(
            "UPDATE webhooks SET sealed_secret = $2 WHERE webhook_id = $1 AND removed_at IS NULL",
        )
        .bind(webhook_id)
        .bind(sealed.clone())
        .execute(tx.conn())
        .await?;
    }
    Ok(())
}

/// A webhook with records waiting, due for an attempt and not leased.
#[derive(Debug, Clone)]
pub struct DueWebhook {
    pub webhook: SealedWebhook,
    pub delivered_through: i64,
    pub attempts: i64,
}

/// The active webhooks that have records after their cursor, whose next attempt is due by
/// `now` and that no live lease holds.
pub async fn due(store: &Store, now: &str) -> StoreResult<Vec<DueWebhook>> {
    let rows = sqlx::query(
        "SELECT w.webhook_id, w.trial_id, w.url, w.event_types, w.sealed_secret, \
         d.delivered_through, d.attempts FROM webhooks w JOIN webhook_deliveries d \
         ON d.webhook_id = w.webhook_id \
         WHERE w.removed_at IS NULL AND d.next_attempt_at <= $1 \
         AND (d.lease_owner IS NULL OR d.lease_until <= $1) \
         AND EXISTS (SELECT 1 FROM outbox o WHERE o.trial_id = w.trial_id \
                     AND o.outbox_id > d.delivered_through) \
         ORDER BY w.webhook_id",
    )
    .bind(now)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DueWebhook {
                webhook: sealed(r)?,
                delivered_through: r.try_get("delivered_through")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect()
}

/// The condition that `owner` still holds the lease of an active webhook `$1`.
const HELD: &str = "webhook_id = $1 AND lease_owner = $2 AND EXISTS (SELECT 1 FROM webhooks w \
     WHERE w.webhook_id = webhook_deliveries.webhook_id AND w.removed_at IS NULL)";

/// Take the lease of a due webhook for `owner` until `until`; false when another worker has
/// it (or it is no longer due). Returns the cursor and attempts as of the claim.
pub async fn claim(
    store: &Store,
    webhook_id: &str,
    owner: &str,
    now: &str,
    until: &str,
) -> StoreResult<Option<(i64, i64)>> {
    let mut tx = store.begin_write().await?;
    let taken = sqlx::query(
        "UPDATE webhook_deliveries SET lease_owner = $2, lease_until = $4 \
         WHERE webhook_id = $1 AND next_attempt_at <= $3 \
         AND (lease_owner IS NULL OR lease_until <= $3)",
    )
    .bind(webhook_id)
    .bind(owner)
    .bind(now)
    .bind(until)
    .execute(tx.conn())
    .await?
    .rows_affected()
        == 1;
    let state = if taken {
        let row = sqlx::query(
            "SELECT delivered_through, attempts FROM webhook_deliveries WHERE webhook_id = $1",
        )
        .bind(webhook_id)
        .fetch_one(tx.conn())
        .await?;
        Some((row.try_get("delivered_through")?, row.try_get("attempts")?))
    } else {
        None
    };
    tx.commit().await?;
    Ok(state)
}

/// Move the cursor from `from` to `to` (records up to it delivered, `delivered` of them sent
/// and acknowledged), clear the attempts and renew the lease until `until`; false when the
/// lease was lost, the webhook removed or the cursor moved meanwhile.
#[allow(clippy::too_many_arguments)]
pub async fn advance(
    store: &Store,
    webhook_id: &str,
    owner: &str,
    from: i64,
    to: i64,
    delivered: i64,
    now: &str,
    until: &str,
) -> StoreResult<bool> {
    let mut tx = store.begin_write().await?;
    let sql = format!(
        "UPDATE webhook_deliveries SET delivered_through = $4, delivered = delivered + $5, \
         attempts = 0, last_error = NULL, lease_until = $7, \
         last_attempt_at = CASE WHEN $5 > 0 THEN $6 ELSE last_attempt_at END, \
         last_delivered_at = CASE WHEN $5 > 0 THEN $6 ELSE last_delivered_at END \
         WHERE {HELD} AND delivered_through = $3"
    );
    let moved = sqlx::query(&sql)
        .bind(webhook_id)
        .bind(owner)
        .bind(from)
        .bind(to)
        .bind(delivered)
        .bind(now)
        .bind(until)
        .execute(tx.conn())
        .await?
        .rows_affected()
        == 1;
    tx.commit().await?;
    Ok(moved)
}

/// A failed attempt at the record after `to` (the cursor moves from `from` to `to` first, past
/// records the filter passed over): record it, schedule the next attempt, let the lease go.
#[allow(clippy::too_many_arguments)]
pub async fn failed(
    store: &Store,
    webhook_id: &str,
    owner: &str,
    from: i64,
    to: i64,
    attempts: i64,
    now: &str,
    next_attempt_at: &str,
    error: &str,
) -> StoreResult<bool> {
    let mut tx = store.begin_write().await?;
    let sql = format!(
        "UPDATE webhook_deliveries SET delivered_through = $4, attempts = $5, \
         last_attempt_at = $6, next_attempt_at = $7, last_error = $8, lease_owner = NULL, \
         lease_until = NULL WHERE {HELD} AND delivered_through = $3"
    );
    let recorded = sqlx::query(&sql)
        .bind(webhook_id)
        .bind(owner)
        .bind(from)
        .bind(to)
        .bind(attempts)
        .bind(now)
        .bind(next_attempt_at)
        .bind(error)
        .execute(tx.conn())
        .await?
        .rows_affected()
        == 1;
    tx.commit().await?;
    Ok(recorded)
}

/// Let a lease go (the worker is done with the webhook for now).
pub async fn release(store: &Store, webhook_id: &str, owner: &str) -> StoreResult<()> {
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL \
         WHERE webhook_id = $1 AND lease_owner = $2",
    )
    .bind(webhook_id)
    .bind(owner)
    .execute(tx.conn())
    .await?;
    tx.commit().await
}
