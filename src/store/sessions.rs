//! The pages' sessions, the sign-ins through OpenID Connect under way, and the log of
//! unblinded pages read: the SQL only. When a session ends and what it grants is decided in
//! `service::sessions`; this module stores and finds what it is told, by hashes it is given.

use sqlx::Row;

use super::{now_text, Store, StoreResult};

/// A session as stored: its grant and its times (milliseconds since 1970 UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id_hash: String,
    pub role: String,
    pub trial_id: Option<String>,
    pub site_code: Option<String>,
    pub actor: String,
    /// The hash of the bearer token a session from the token form rests on.
    pub token_hash: Option<String>,
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub person_name: Option<String>,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub expires_ms: i64,
}

const SESSION_COLUMNS: &str = "id_hash, role, trial_id, site_code, actor, token_hash, issuer, \
     subject, person_name, created_ms, last_seen_ms, expires_ms";

/// Store a new session, first deleting `replacing` (the session the browser came with, if
/// any) and the sessions that ended before `now_ms` (idle since `idle_before_ms`).
#[tracing::instrument(skip_all, err)]
pub async fn insert(
    store: &Store,
    session: &SessionRow,
    replacing: Option<&str>,
    idle_before_ms: i64,
) -> StoreResult<()> {
    let mut tx = store.pool().begin().await?;
    sqlx::query(
        "DELETE FROM page_sessions WHERE id_hash = $1 OR expires_ms <= $2 OR last_seen_ms < $3",
    )
    .bind(replacing.unwrap_or(""))
    .bind(session.created_ms)
    .bind(idle_before_ms)
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO page_sessions ({SESSION_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(&session.id_hash)
    .bind(&session.role)
    .bind(session.trial_id.as_deref())
    .bind(session.site_code.as_deref())
    .bind(&session.actor)
    .bind(session.token_hash.as_deref())
    .bind(session.issuer.as_deref())
    .bind(session.subject.as_deref())
    .bind(session.person_name.as_deref())
    .bind(session.created_ms)
    .bind(session.last_seen_ms)
    .bind(session.expires_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The session with this id hash, whatever its times.
pub async fn find(store: &Store, id_hash: &str) -> StoreResult<Option<SessionRow>> {
    let row = sqlx::query(&format!(
        "SELECT {SESSION_COLUMNS} FROM page_sessions WHERE id_hash = $1"
    ))
    .bind(id_hash)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(session_row).transpose()
}

fn session_row(r: &sqlx::any::AnyRow) -> StoreResult<SessionRow> {
    Ok(SessionRow {
        id_hash: r.try_get("id_hash")?,
        role: r.try_get("role")?,
        trial_id: r.try_get("trial_id")?,
        site_code: r.try_get("site_code")?,
        actor: r.try_get("actor")?,
        token_hash: r.try_get("token_hash")?,
        issuer: r.try_get("issuer")?,
        subject: r.try_get("subject")?,
        person_name: r.try_get("person_name")?,
        created_ms: r.try_get("created_ms")?,
        last_seen_ms: r.try_get("last_seen_ms")?,
        expires_ms: r.try_get("expires_ms")?,
    })
}

/// Record that the session was used at `now_ms`.
pub async fn touch(store: &Store, id_hash: &str, now_ms: i64) -> StoreResult<()> {
    sqlx::query(
        "UPDATE page_sessions SET last_seen_ms = $2 WHERE id_hash = $1 AND last_seen_ms < $2",
    )
    .bind(id_hash)
    .bind(now_ms)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Delete a session; true when there was one.
pub async fn delete(store: &Store, id_hash: &str) -> StoreResult<bool> {
    let done = sqlx::query("DELETE FROM page_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// How many sessions are stored (the tests' and an operator's count).
pub async fn count(store: &Store) -> StoreResult<i64> {
    Ok(sqlx::query("SELECT COUNT(*) AS n FROM page_sessions")
        .fetch_one(store.pool())
        .await?
        .try_get("n")?)
}

/// Every stored session (for a look at what is kept: the tests, an operator).
pub async fn all(store: &Store) -> StoreResult<Vec<SessionRow>> {
    let rows = sqlx::query(&format!("SELECT {SESSION_COLUMNS} FROM page_sessions"))
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(session_row).collect()
}

/// A sign-in under way, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub state_hash: String,
    pub browser_hash: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub created_ms: i64,
}

/// Store a sign-in under way, deleting those started before `stale_before_ms`.
pub async fn insert_attempt(
    store: &Store,
    attempt: &AttemptRow,
    stale_before_ms: i64,
) -> StoreResult<()> {
    let mut tx = store.pool().begin().await?;
    sqlx::query("DELETE FROM sign_in_attempts WHERE created_ms < $1")
        .bind(stale_before_ms)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO sign_in_attempts (state_hash, browser_hash, nonce, pkce_verifier, created_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&attempt.state_hash)
    .bind(&attempt.browser_hash)
    .bind(&attempt.nonce)
    .bind(&attempt.pkce_verifier)
    .bind(attempt.created_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Take (read and delete, at once) the sign-in with this state hash: a state is good once.
pub async fn take_attempt(store: &Store, state_hash: &str) -> StoreResult<Option<AttemptRow>> {
    let row = sqlx::query(
        "DELETE FROM sign_in_attempts WHERE state_hash = $1 \
         RETURNING state_hash, browser_hash, nonce, pkce_verifier, created_ms",
    )
    .bind(state_hash)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| {
        Ok(AttemptRow {
            state_hash: r.try_get("state_hash")?,
            browser_hash: r.try_get("browser_hash")?,
            nonce: r.try_get("nonce")?,
            pkce_verifier: r.try_get("pkce_verifier")?,
            created_ms: r.try_get("created_ms")?,
        })
    })
    .transpose()
}

/// One read of an unblinded page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PageRead {
    pub read_at: String,
    pub trial_id: String,
    pub cutoff: String,
    pub role: String,
    pub actor: String,
    pub subject: Option<String>,
    pub person_name: Option<String>,
}

/// Log a read of an unblinded page (its `read_at` is now).
pub async fn log_read(store: &Store, read: &PageRead) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO unblinded_page_reads (read_at, trial_id, cutoff, role, actor, subject, person_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(now_text())
    .bind(&read.trial_id)
    .bind(&read.cutoff)
    .bind(&read.role)
    .bind(&read.actor)
    .bind(read.subject.as_deref())
    .bind(read.person_name.as_deref())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// The reads of a trial's unblinded pages, oldest first.
pub async fn reads(store: &Store, trial_id: &str) -> StoreResult<Vec<PageRead>> {
    let rows = sqlx::query(
        "SELECT read_at, trial_id, cutoff, role, actor, subject, person_name \
         FROM unblinded_page_reads WHERE trial_id = $1 ORDER BY seq",
    )
    .bind(trial_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PageRead {
                read_at: r.try_get("read_at")?,
                trial_id: r.try_get("trial_id")?,
                cutoff: r.try_get("cutoff")?,
                role: r.try_get("role")?,
                actor: r.try_get("actor")?,
                subject: r.try_get("subject")?,
                person_name: r.try_get("person_name")?,
            })
        })
        .collect()
}
