//! Bearer tokens, stored only as their SHA-256 hash, with their expiry and revocation.

use sqlx::Row;

use super::{audit, now_text, Store, StoreResult};

/// A stored token's grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub token_hash: String,
    pub role: String,
    pub trial_id: Option<String>,
    pub site_code: Option<String>,
    /// The declared source a `source` token delivers for.
    pub source_id: Option<String>,
    /// RFC 3339 UTC; `None` for a token that does not expire.
    pub expires_at: Option<String>,
}

impl TokenGrant {
    /// The token's public id: the first 12 hex digits of its hash.
    pub fn token_id(&self) -> &str {
        &self.token_hash[..12.min(self.token_hash.len())]
    }
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TokenRecord {
    pub token_id: String,
    pub role: String,
    pub trial_id: Option<String>,
    pub site_code: Option<String>,
    pub source_id: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub revoked_by: Option<String>,
}

/// Store a token hash with its role, scope and expiry, with an audit entry.
#[tracing::instrument(skip_all, fields(role = %grant.role), err)]
pub async fn insert(store: &Store, grant: &TokenGrant, actor: &str) -> StoreResult<()> {
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "INSERT INTO tokens (token_hash, token_id, role, trial_id, site_code, created_at, expires_at, source_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&grant.token_hash)
    .bind(grant.token_id())
    .bind(&grant.role)
    .bind(grant.trial_id.as_deref())
    .bind(grant.site_code.as_deref())
    .bind(now_text())
    .bind(grant.expires_at.as_deref())
    .bind(grant.source_id.as_deref())
    .execute(tx.conn())
    .await?;
    audit::append(
        &mut tx,
        actor,
        "token_created",
        grant.trial_id.as_deref(),
        &serde_json::json!({
            "token_hash_prefix": grant.token_id(),
            "role": grant.role,
            "site": grant.site_code,
            "source": grant.source_id,
            "expires_at": grant.expires_at,
        }),
    )
    .await?;
    tx.commit().await
}

/// Look a token up by its hash; revoked and expired tokens are not found.
pub async fn find(store: &Store, token_hash: &str) -> StoreResult<Option<TokenGrant>> {
    let row = sqlx::query(
        "SELECT token_hash, role, trial_id, site_code, source_id, expires_at FROM tokens \
         WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(token_hash)
    .bind(now_text())
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| {
        Ok(TokenGrant {
            token_hash: r.try_get("token_hash")?,
            role: r.try_get("role")?,
            trial_id: r.try_get("trial_id")?,
            site_code: r.try_get("site_code")?,
            source_id: r.try_get("source_id")?,
            expires_at: r.try_get("expires_at")?,
        })
    })
    .transpose()
}

/// Every token (of one trial, when given), oldest first.
pub async fn list(store: &Store, trial_id: Option<&str>) -> StoreResult<Vec<TokenRecord>> {
    let rows = sqlx::query(
        "SELECT token_id, role, trial_id, site_code, source_id, created_at, expires_at, revoked_at, revoked_by \
         FROM tokens WHERE ($1 IS NULL OR trial_id = $1) ORDER BY created_at, token_id",
    )
    .bind(trial_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(record).collect()
}

/// A token's record from a row with the columns of [`TokenRecord`].
fn record(r: &sqlx::any::AnyRow) -> StoreResult<TokenRecord> {
    Ok(TokenRecord {
        token_id: r.try_get("token_id")?,
        role: r.try_get("role")?,
        trial_id: r.try_get("trial_id")?,
        site_code: r.try_get("site_code")?,
        source_id: r.try_get("source_id")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        revoked_by: r.try_get("revoked_by")?,
    })
}

/// What revoking a token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// Revoked now; the token's hash (for caches) and record.
    Revoked {
        token_hash: String,
        record: TokenRecord,
    },
    /// Revoked earlier.
    AlreadyRevoked(TokenRecord),
    NotFound,
}

/// Revoke the token with this public id, with an audit entry; `within_trial` limits it to the
/// tokens of one trial (a trial-scoped administrator).
#[tracing::instrument(skip_all, fields(token = %token_id), err)]
pub async fn revoke(
    store: &Store,
    token_id: &str,
    within_trial: Option<&str>,
    actor: &str,
) -> StoreResult<Revocation> {
    let mut tx = store.begin_write().await?;
    let row = sqlx::query(
        "SELECT token_hash, token_id, role, trial_id, site_code, source_id, created_at, expires_at, \
         revoked_at, revoked_by FROM tokens WHERE token_id = $1 AND ($2 IS NULL OR trial_id = $2)",
    )
    .bind(token_id)
    .bind(within_trial)
    .fetch_optional(tx.conn())
    .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        return Ok(Revocation::NotFound);
    };
    let mut record = record(&row)?;
    if record.revoked_at.is_some() {
        tx.rollback().await?;
        return Ok(Revocation::AlreadyRevoked(record));
    }
    let token_hash: String = row.try_get("token_hash")?;
    let now = now_text();
    sqlx::query("UPDATE tokens SET revoked_at = $2, revoked_by = $3 WHERE token_hash = $1")
        .bind(&token_hash)
        .bind(&now)
        .bind(actor)
        .execute(tx.conn())
        .await?;
    audit::append(
        &mut tx,
        actor,
        "token_revoked",
        record.trial_id.as_deref(),
        &serde_json::json!({"token_hash_prefix": record.token_id, "role": record.role}),
    )
    .await?;
    tx.commit().await?;
    record.revoked_at = Some(now);
    record.revoked_by = Some(actor.to_string());
    Ok(Revocation::Revoked { token_hash, record })
}

/// Whether `site` is a site of `trial` (its latest protocol's sites).
pub async fn site_exists(store: &Store, trial_id: &str, site: &str) -> StoreResult<bool> {
    Ok(
        sqlx::query("SELECT 1 FROM sites WHERE trial_id = $1 AND site_code = $2")
            .bind(trial_id)
            .bind(site)
            .fetch_optional(store.pool())
            .await?
            .is_some(),
    )
}
