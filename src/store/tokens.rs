//! Bearer tokens, stored only as their SHA-256 hash.

use sqlx::Row;

use super::{audit, now_text, Store, StoreResult};

/// A stored token's grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub token_hash: String,
    pub role: String,
    pub trial_id: Option<String>,
    pub site_code: Option<String>,
}

/// Store a token hash with its role and scope, with an audit entry.
#[tracing::instrument(skip_all, fields(role = %grant.role), err)]
pub async fn insert(store: &Store, grant: &TokenGrant, actor: &str) -> StoreResult<()> {
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "INSERT INTO tokens (token_hash, role, trial_id, site_code, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&grant.token_hash)
    .bind(&grant.role)
    .bind(grant.trial_id.as_deref())
    .bind(grant.site_code.as_deref())
    .bind(now_text())
    .execute(tx.conn())
    .await?;
    audit::append(
        &mut tx,
        actor,
        "token_created",
        grant.trial_id.as_deref(),
        &serde_json::json!({
            "token_hash_prefix": &grant.token_hash[..12.min(grant.token_hash.len())],
            "role": grant.role,
            "site": grant.site_code,
        }),
    )
    .await?;
    tx.commit().await
}

/// Look a token up by its hash; revoked tokens are not found.
pub async fn find(store: &Store, token_hash: &str) -> StoreResult<Option<TokenGrant>> {
    let row = sqlx::query(
        "SELECT token_hash, role, trial_id, site_code FROM tokens \
         WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(token_hash)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| {
        Ok(TokenGrant {
            token_hash: r.try_get("token_hash")?,
            role: r.try_get("role")?,
            trial_id: r.try_get("trial_id")?,
            site_code: r.try_get("site_code")?,
        })
    })
    .transpose()
}
