//! Trials, their protocol versions, sites and secret master seeds.

use sqlx::Row;

use super::{audit, now_text, Store, StoreError, StoreResult};
use crate::protocol::{Protocol, ProtocolVersion, TrialStatus};

/// What happened when a protocol file was registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// The trial did not exist; it was created with a fresh master seed.
    Created,
    /// A new protocol version was recorded and made current.
    NewVersion,
    /// This exact protocol version was already there.
    Unchanged,
}

/// Why a protocol cannot be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(
        "protocol `{trial}` version {version} is already registered with different content \
         (sha256 {stored}); give the changed protocol a new version"
    )]
    VersionChanged {
        trial: String,
        version: String,
        stored: String,
    },
    #[error(
        "protocol `{trial}` version {version} is older than the trial's current version {current}; \
         a server must serve the current protocol (bring the file up to date), and an amendment \
         must raise the version"
    )]
    VersionBehind {
        trial: String,
        version: String,
        current: String,
    },
    #[error(
        "protocol `{trial}` version {version} cannot be ordered against the stored version \
         {current}: versions must be whole numbers separated by dots"
    )]
    VersionUnordered {
        trial: String,
        version: String,
        current: String,
    },
    #[error(
        "protocol `{trial}` version {version} cannot amend version {from}:\n  - {}",
        reasons.join("\n  - ")
    )]
    AmendmentRefused {
        trial: String,
        version: String,
        from: String,
        reasons: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an amendment is judged against, read under the writer lock in the transaction that
/// registers the new version (so no allocation can slip in between the check and the change).
#[derive(Debug, Clone)]
pub struct AmendmentInputs {
    /// The current version and its source text.
    pub current_version: String,
    pub current_source: String,
    /// Allocations made so far.
    pub allocations: i64,
    /// Arm ids that have received allocations.
    pub allocated_arms: Vec<String>,
}

/// A trial as stored, with its master seed as stored (sealed; see `service::seed_vault`).
#[derive(Debug, Clone)]
pub struct StoredTrial {
    pub trial_id: String,
    pub status: TrialStatus,
    pub current_version: String,
    pub seed_commitment: String,
    pub stored_seed: Vec<u8>,
}

/// The master seed of a trial about to be created: its published commitment and its sealed
/// form (the store never sees the seed itself).
#[derive(Debug, Clone)]
pub struct NewSeed {
    pub commitment: String,
    pub sealed: Vec<u8>,
}

/// Register a protocol: create the trial (with `new_seed` as its master seed, used only when the
/// trial does not exist yet) or record a new version. `source` is the protocol file's text, kept verbatim for the record.
#[tracing::instrument(skip_all, fields(trial = %protocol.trial_id, version = %protocol.version), err)]
///
/// A new version of an existing trial is first put to `amend`, which returns the changes to
/// record in the audit entry or the reasons to refuse it.
pub async fn register(
    store: &Store,
    protocol: &Protocol,
    source: &str,
    new_seed: &NewSeed,
    amend: impl FnOnce(&AmendmentInputs) -> Result<Vec<String>, Vec<String>>,
) -> Result<Registration, RegisterError> {
    use sha2::{Digest, Sha256};
    let sha = hex::encode(Sha256::digest(source.as_bytes()));
    let trial = protocol.trial_id.as_str();
    let mut tx = store.begin_write().await?;
    let existing: Option<String> =
        sqlx::query_scalar("SELECT current_version FROM trials WHERE trial_id = $1")
            .bind(trial)
            .fetch_optional(tx.conn())
            .await
            .map_err(StoreError::from)?;
    let now = now_text();
    let mut amendment = serde_json::Value::Null;
    let outcome = match existing {
        None => {
            let commitment = new_seed.commitment.clone();
            sqlx::query(
                "INSERT INTO trials (trial_id, title, status, current_version, seed_commitment, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(trial)
            .bind(&protocol.title)
            .bind(protocol.status.as_str())
            .bind(&protocol.version)
            .bind(&commitment)
            .bind(&now)
            .execute(tx.conn())
            .await
            .map_err(StoreError::from)?;
            sqlx::query("INSERT INTO trial_secrets (trial_id, master_seed) VALUES ($1, $2)")
                .bind(trial)
                .bind(new_seed.sealed.clone())
                .execute(tx.conn())
                .await
                .map_err(StoreError::from)?;
            system_entry(
                &mut tx,
                "trial_created",
                trial,
                serde_json::json!({
                    "title": protocol.title,
                    "seed_commitment": commitment,
                    "seed_commitment_algorithm": "sha256(master_seed)",
                }),
            )
            .await?;
            Registration::Created
        }
        Some(current) => {
            use std::cmp::Ordering;
            let order = match (
                ProtocolVersion::parse(&protocol.version),
                ProtocolVersion::parse(&current),
            ) {
                (Some(new), Some(old)) => new.cmp(&old),
                _ => {
                    tx.rollback().await?;
                    return Err(RegisterError::VersionUnordered {
                        trial: trial.to_string(),
                        version: protocol.version.clone(),
                        current,
                    });
                }
            };
            let stored: Option<String> = match order {
                Ordering::Less => {
                    tx.rollback().await?;
                    return Err(RegisterError::VersionBehind {
                        trial: trial.to_string(),
                        version: protocol.version.clone(),
                        current,
                    });
                }
                // The current version, however it is spelled ("1" is "1.0").
                Ordering::Equal => sqlx::query_scalar(
                    "SELECT source_sha256 FROM protocol_versions WHERE trial_id = $1 AND version = $2",
                )
                .bind(trial)
                .bind(&current)
                .fetch_optional(tx.conn())
                .await
                .map_err(StoreError::from)?
                .or(Some(String::new())),
                Ordering::Greater => None,
            };
            match stored {
                Some(stored) if stored == sha => {
                    tx.rollback().await?;
                    return Ok(Registration::Unchanged);
                }
                Some(stored) => {
                    tx.rollback().await?;
                    return Err(RegisterError::VersionChanged {
                        trial: trial.to_string(),
                        version: protocol.version.clone(),
                        stored,
                    });
                }
                None => {
                    let inputs = amendment_inputs(&mut tx, trial).await?;
                    match amend(&inputs) {
                        Ok(changes) => {
                            amendment = serde_json::json!({
                                "amends": inputs.current_version,
                                "changes": changes,
                                "allocations_so_far": inputs.allocations,
                            })
                        }
                        Err(reasons) => {
                            tx.rollback().await?;
                            return Err(RegisterError::AmendmentRefused {
                                trial: trial.to_string(),
                                version: protocol.version.clone(),
                                from: inputs.current_version,
                                reasons,
                            });
                        }
                    }
                    sqlx::query(
                        "UPDATE trials SET title = $2, status = $3, current_version = $4 WHERE trial_id = $1",
                    )
                    .bind(trial)
                    .bind(&protocol.title)
                    .bind(protocol.status.as_str())
                    .bind(&protocol.version)
                    .execute(tx.conn())
                    .await
                    .map_err(StoreError::from)?;
                    Registration::NewVersion
                }
            }
        }
    };
    sqlx::query(
        "INSERT INTO protocol_versions (trial_id, version, source_sha256, source, loaded_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(trial)
    .bind(&protocol.version)
    .bind(&sha)
    .bind(source)
    .bind(&now)
    .execute(tx.conn())
    .await
    .map_err(StoreError::from)?;
    for site in &protocol.sites {
        sqlx::query(
            "INSERT INTO sites (trial_id, site_code, name) VALUES ($1, $2, $3) \
             ON CONFLICT (trial_id, site_code) DO UPDATE SET name = excluded.name",
        )
        .bind(trial)
        .bind(&site.code)
        .bind(site.name.as_deref())
        .execute(tx.conn())
        .await
        .map_err(StoreError::from)?;
    }
    system_entry(
        &mut tx,
        "protocol_version_registered",
        trial,
        serde_json::json!({
            "version": protocol.version,
            "status": protocol.status.as_str(),
            "source_sha256": sha,
            "amendment": amendment,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(outcome)
}

/// An audit entry of a registration, made by the system rather than a token holder.
async fn system_entry(
    tx: &mut super::WriteTx,
    action: &str,
    trial: &str,
    payload: serde_json::Value,
) -> StoreResult<()> {
    audit::append(tx, "system", action, Some(trial), &payload).await?;
    Ok(())
}

async fn amendment_inputs(tx: &mut super::WriteTx, trial: &str) -> StoreResult<AmendmentInputs> {
    let row = sqlx::query(
        "SELECT t.current_version, t.next_randomisation_number, p.source \
         FROM trials t JOIN protocol_versions p ON p.trial_id = t.trial_id \
         AND p.version = t.current_version WHERE t.trial_id = $1",
    )
    .bind(trial)
    .fetch_one(tx.conn())
    .await?;
    let next: i64 = row.try_get("next_randomisation_number")?;
    let allocated_arms: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT arm FROM allocations WHERE trial_id = $1 ORDER BY arm")
            .bind(trial)
            .fetch_all(tx.conn())
            .await?;
    Ok(AmendmentInputs {
        current_version: row.try_get("current_version")?,
        current_source: row.try_get("source")?,
        allocations: next - 1,
        allocated_arms,
    })
}

/// Load a trial with its seed.
pub async fn load(store: &Store, trial_id: &str) -> StoreResult<Option<StoredTrial>> {
    let row = sqlx::query(
        "SELECT t.trial_id, t.status, t.current_version, t.seed_commitment, s.master_seed \
         FROM trials t JOIN trial_secrets s ON s.trial_id = t.trial_id WHERE t.trial_id = $1",
    )
    .bind(trial_id)
    .fetch_optional(store.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let status: String = row.try_get("status")?;
    let stored_seed: Vec<u8> = row.try_get("master_seed")?;
    Ok(Some(StoredTrial {
        trial_id: row.try_get("trial_id")?,
        status: TrialStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown trial status `{status}`")))?,
        current_version: row.try_get("current_version")?,
        seed_commitment: row.try_get("seed_commitment")?,
        stored_seed,
    }))
}

/// Whether a trial exists.
pub async fn exists(conn: &mut sqlx::AnyConnection, trial_id: &str) -> StoreResult<bool> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT trial_id FROM trials WHERE trial_id = $1")
            .bind(trial_id)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

/// The source text of one registered protocol version.
pub async fn protocol_source(
    conn: &mut sqlx::AnyConnection,
    trial_id: &str,
    version: &str,
) -> StoreResult<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT source FROM protocol_versions WHERE trial_id = $1 AND version = $2",
    )
    .bind(trial_id)
    .bind(version)
    .fetch_optional(conn)
    .await?)
}

/// The current protocol version of a trial and its source text, as registered.
pub async fn current_protocol(
    store: &Store,
    trial_id: &str,
) -> StoreResult<Option<(String, String)>> {
    let row = sqlx::query(
        "SELECT p.version, p.source FROM trials t JOIN protocol_versions p \
         ON p.trial_id = t.trial_id AND p.version = t.current_version WHERE t.trial_id = $1",
    )
    .bind(trial_id)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| Ok((r.try_get("version")?, r.try_get("source")?)))
        .transpose()
}

/// Every trial's current protocol text: `(trial_id, source)`.
pub async fn current_protocols(
    conn: &mut sqlx::AnyConnection,
) -> StoreResult<Vec<(String, String)>> {
    let rows = sqlx::query(
        "SELECT t.trial_id, p.source FROM trials t JOIN protocol_versions p \
         ON p.trial_id = t.trial_id AND p.version = t.current_version ORDER BY t.trial_id",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("trial_id")?, r.try_get("source")?)))
        .collect()
}

/// Every trial's stored master seed.
pub async fn stored_seeds(store: &Store) -> StoreResult<Vec<(String, Vec<u8>)>> {
    let rows = sqlx::query("SELECT trial_id, master_seed FROM trial_secrets ORDER BY trial_id")
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("trial_id")?, r.try_get("master_seed")?)))
        .collect()
}

/// Replace stored seeds (sealed anew), and webhooks' secrets sealed under the same key, in one
/// transaction with one audit entry: all or none.
pub async fn replace_seeds(
    store: &Store,
    seeds: &[(String, Vec<u8>)],
    webhook_secrets: &[(String, Vec<u8>)],
    actor: &str,
    action: &str,
    payload: &serde_json::Value,
) -> StoreResult<()> {
    let mut tx = store.begin_write().await?;
    for (trial, sealed) in seeds {
        sqlx::query("UPDATE trial_secrets SET master_seed = $2 WHERE trial_id = $1")
            .bind(trial)
            .bind(sealed.clone())
            .execute(tx.conn())
            .await?;
    }
    super::webhooks::replace_sealed_secrets(&mut tx, webhook_secrets).await?;
    audit::append(&mut tx, actor, action, None, payload).await?;
    tx.commit().await
}

/// One registered protocol version of a trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    pub version: String,
    pub source_sha256: String,
    pub source: String,
    pub loaded_at: String,
}

/// Every registered protocol version of a trial, in registration order.
pub async fn protocol_versions(store: &Store, trial_id: &str) -> StoreResult<Vec<VersionRow>> {
    let rows = sqlx::query(
        "SELECT version, source_sha256, source, loaded_at FROM protocol_versions \
         WHERE trial_id = $1 ORDER BY loaded_at, version",
    )
    .bind(trial_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(VersionRow {
                version: r.try_get("version")?,
                source_sha256: r.try_get("source_sha256")?,
                source: r.try_get("source")?,
                loaded_at: r.try_get("loaded_at")?,
            })
        })
        .collect()
}

/// A trial's seed commitment, if the trial exists.
pub async fn seed_commitment(store: &Store, trial_id: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT seed_commitment FROM trials WHERE trial_id = $1")
            .bind(trial_id)
            .fetch_optional(store.pool())
            .await?,
    )
}
