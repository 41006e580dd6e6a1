//! A trial's lifecycle (migration 0010): its status (`trials.lifecycle`), its sites' enrolment
//! (`sites.enrolment`), the history of changes (`lifecycle_changes`), the master seed's reveal
//! and the emergency unblindings (`unblindings`). Every change is decided by the caller's
//! closure on the current value read under the writer lock, and written with its audit entry in
//! one transaction; each history row carries its audit entry's sequence number.

use sqlx::Row;

use super::{audit, Store, StoreError, StoreResult};

/// A trial's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    #[default]
    Active,
    Paused,
    Closed,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Active => "active",
            Lifecycle::Paused => "paused",
            Lifecycle::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Lifecycle> {
        [Lifecycle::Active, Lifecycle::Paused, Lifecycle::Closed]
            .into_iter()
            .find(|l| l.as_str() == s)
    }
}

/// One change of a trial's or a site's status, as kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ChangeRow {
    /// The audit entry's sequence number.
    pub seq: i64,
    pub trial_id: String,
    /// The site, for a site's enrolment.
    pub site_code: Option<String>,
    /// `pause`, `resume`, `close`, `site_close`, `site_open` or `reveal_seed`.
    pub change: String,
    /// The status after the change.
    pub status: String,
    pub reason: String,
    pub actor: String,
    pub changed_at: String,
}

/// A change to make.
#[derive(Debug, Clone)]
pub struct NewChange<'a> {
    pub trial_id: &'a str,
    pub site_code: Option<&'a str>,
    pub change: &'a str,
    pub reason: &'a str,
    pub actor: &'a str,
    pub changed_at: &'a str,
}

/// What came of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    Done {
        row: ChangeRow,
        previous: String,
    },
    /// The caller's rule refused it: the current status and why.
    Refused {
        current: String,
        why: String,
    },
    NoTrial,
    NoSite,
}

const CHANGE_COLUMNS: &str = "seq, trial_id, site_code, change, status, reason, actor, changed_at";

fn change_row(r: &sqlx::any::AnyRow) -> StoreResult<ChangeRow> {
    Ok(ChangeRow {
        seq: r.try_get("seq")?,
        trial_id: r.try_get("trial_id")?,
        site_code: r.try_get("site_code")?,
        change: r.try_get("change")?,
        status: r.try_get("status")?,
        reason: r.try_get("reason")?,
        actor: r.try_get("actor")?,
        changed_at: r.try_get("changed_at")?,
    })
}

/// Change the trial's lifecycle (no site) or a site's enrolment: `decide` gets the current
/// status and the trial's lifecycle under the writer lock and returns the new status or why
/// not. The audit entry is `trial_status_changed` or `site_enrolment_changed` (both told to
/// others through the outbox).
pub async fn change(
    store: &Store,
    new: &NewChange<'_>,
    decide: impl FnOnce(&str, &str) -> Result<String, String>,
) -> StoreResult<Changed> {
    let mut tx = store.begin_write().await?;
    let lifecycle: Option<String> =
        sqlx::query_scalar("SELECT lifecycle FROM trials WHERE trial_id = $1")
            .bind(new.trial_id)
            .fetch_optional(tx.conn())
            .await?;
    let Some(lifecycle) = lifecycle else {
        tx.rollback().await?;
        return Ok(Changed::NoTrial);
    };
    let current = match new.site_code {
        None => lifecycle.clone(),
        Some(site) => {
            let found: Option<String> = sqlx::query_scalar(
                "SELECT enrolment FROM sites WHERE trial_id = $1 AND site_code = $2",
            )
            .bind(new.trial_id)
            .bind(site)
            .fetch_optional(tx.conn())
            .await?;
            let Some(found) = found else {
                tx.rollback().await?;
                return Ok(Changed::NoSite);
            };
            found
        }
    };
    let status = match decide(&current, &lifecycle) {
        Ok(status) => status,
        Err(why) => {
            tx.rollback().await?;
            return Ok(Changed::Refused { current, why });
        }
    };
    match new.site_code {
        None => {
            sqlx::query("UPDATE trials SET lifecycle = $2 WHERE trial_id = $1")
                .bind(new.trial_id)
                .bind(&status)
                .execute(tx.conn())
                .await?
        }
        Some(site) => {
            sqlx::query("UPDATE sites SET enrolment = $3 WHERE trial_id = $1 AND site_code = $2")
                .bind(new.trial_id)
                .bind(site)
                .bind(&status)
                .execute(tx.conn())
                .await?
        }
    };
    let (action, payload) = match new.site_code {
        None => (
            "trial_status_changed",
            serde_json::json!({
                "change": new.change, "status": status, "previous_status": current,
                "reason": new.reason,
            }),
        ),
        Some(site) => (
            "site_enrolment_changed",
            serde_json::json!({
                "change": new.change, "site": site, "enrolment": status,
                "previous_enrolment": current, "reason": new.reason,
            }),
        ),
    };
    let row = record(&mut tx, new, &status, action, &payload).await?;
    tx.commit().await?;
    Ok(Changed::Done {
        row,
        previous: current,
    })
}

/// Append the audit entry and the history row of a change.
async fn record(
    tx: &mut super::WriteTx,
    new: &NewChange<'_>,
    status: &str,
    action: &str,
    payload: &serde_json::Value,
) -> StoreResult<ChangeRow> {
    audit::append(tx, new.actor, action, Some(new.trial_id), payload).await?;
    let seq = audit::head(tx).await?.seq;
    let row = ChangeRow {
        seq,
        trial_id: new.trial_id.to_string(),
        site_code: new.site_code.map(str::to_string),
        change: new.change.to_string(),
        status: status.to_string(),
        reason: new.reason.to_string(),
        actor: new.actor.to_string(),
        changed_at: new.changed_at.to_string(),
    };
    sqlx::query(&format!(
        "INSERT INTO lifecycle_changes ({CHANGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(row.seq)
    .bind(&row.trial_id)
    .bind(row.site_code.as_deref())
    .bind(&row.change)
    .bind(&row.status)
    .bind(&row.reason)
    .bind(&row.actor)
    .bind(&row.changed_at)
    .execute(tx.conn())
    .await?;
    Ok(row)
}

/// A trial's lifecycle as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub lifecycle: String,
    pub closed_sites: Vec<String>,
    /// Oldest first.
    pub history: Vec<ChangeRow>,
}

/// A trial's lifecycle, closed sites and history; `None` when there is no such trial.
pub async fn of_trial(store: &Store, trial_id: &str) -> StoreResult<Option<Stored>> {
    let pool = store.pool();
    let lifecycle: Option<String> =
        sqlx::query_scalar("SELECT lifecycle FROM trials WHERE trial_id = $1")
            .bind(trial_id)
            .fetch_optional(pool)
            .await?;
    let Some(lifecycle) = lifecycle else {
        return Ok(None);
    };
    let closed_sites: Vec<String> = sqlx::query_scalar(
        "SELECT site_code FROM sites WHERE trial_id = $1 AND enrolment = 'closed' ORDER BY site_code",
    )
    .bind(trial_id)
    .fetch_all(pool)
    .await?;
    let history = sqlx::query(&format!(
        "SELECT {CHANGE_COLUMNS} FROM lifecycle_changes WHERE trial_id = $1 ORDER BY seq"
    ))
    .bind(trial_id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(change_row)
    .collect::<StoreResult<_>>()?;
    Ok(Some(Stored {
        lifecycle,
        closed_sites,
        history,
    }))
}

/// What came of a reveal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revealed {
    /// Revealed now.
    Now(ChangeRow),
    /// Revealed before: that change, and the seed as its audit entry published it.
    Before {
        row: ChangeRow,
        seed_hex: String,
    },
    /// The caller's rule refused it.
    Refused(String),
    NoTrial,
}

/// Publish a trial's master seed in the audit log (`seed_revealed`, with `payload`) once:
/// `allowed` gets the lifecycle and the seed commitment under the writer lock.
pub async fn reveal_seed(
    store: &Store,
    new: &NewChange<'_>,
    payload: &serde_json::Value,
    allowed: impl FnOnce(&str, &str) -> Result<(), String>,
) -> StoreResult<Revealed> {
    let mut tx = store.begin_write().await?;
    let row = sqlx::query("SELECT lifecycle, seed_commitment FROM trials WHERE trial_id = $1")
        .bind(new.trial_id)
        .fetch_optional(tx.conn())
        .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        return Ok(Revealed::NoTrial);
    };
    let lifecycle: String = row.try_get("lifecycle")?;
    let commitment: String = row.try_get("seed_commitment")?;
    let earlier = sqlx::query(&format!(
        "SELECT {CHANGE_COLUMNS} FROM lifecycle_changes WHERE trial_id = $1 \
         AND change = 'reveal_seed' ORDER BY seq LIMIT 1"
    ))
    .bind(new.trial_id)
    .fetch_optional(tx.conn())
    .await?;
    if let Some(earlier) = earlier {
        let row = change_row(&earlier)?;
        tx.rollback().await?;
        let seed_hex = revealed_seed_at(store, row.seq).await?;
        return Ok(Revealed::Before { row, seed_hex });
    }
    if let Err(why) = allowed(&lifecycle, &commitment) {
        tx.rollback().await?;
        return Ok(Revealed::Refused(why));
    }
    let row = record(&mut tx, new, &lifecycle, "seed_revealed", payload).await?;
    tx.commit().await?;
    Ok(Revealed::Now(row))
}

/// The seed a `seed_revealed` audit entry published.
async fn revealed_seed_at(store: &Store, seq: i64) -> StoreResult<String> {
    let payload: String = sqlx::query_scalar("SELECT payload FROM audit_log WHERE seq = $1")
        .bind(seq)
        .fetch_one(store.pool())
        .await?;
    serde_json::from_str::<serde_json::Value>(&payload)
        .ok()
        .and_then(|p| p["master_seed"].as_str().map(str::to_string))
        .ok_or_else(|| StoreError::Corrupt(format!("audit entry {seq} holds no revealed seed")))
}

/// The revealed master seed of a trial (hex), if it was revealed.
pub async fn revealed_seed(store: &Store, trial_id: &str) -> StoreResult<Option<String>> {
    let seq: Option<i64> = sqlx::query_scalar(
        "SELECT seq FROM lifecycle_changes WHERE trial_id = $1 AND change = 'reveal_seed' \
         ORDER BY seq LIMIT 1",
    )
    .bind(trial_id)
    .fetch_optional(store.pool())
    .await?;
    match seq {
        Some(seq) => revealed_seed_at(store, seq).await.map(Some),
        None => Ok(None),
    }
}

/// One emergency unblinding, as kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct UnblindingRow {
    /// The audit entry's sequence number.
    pub seq: i64,
    pub trial_id: String,
    pub record_id: String,
    pub randomisation_number: i64,
    /// The person who asked, as named.
    pub person: String,
    pub reason: String,
    /// The token used.
    pub actor: String,
    pub unblinded_at: String,
}

const UNBLINDING_COLUMNS: &str =
    "seq, trial_id, record_id, randomisation_number, person, reason, actor, unblinded_at";

/// Record an unblinding of an allocation: the allocation is read (and returned) in the same
/// transaction as the record and its audit entry are written; nothing else changes. `None` when
/// the trial has no such record.
pub async fn unblind(
    store: &Store,
    trial_id: &str,
    record_id: &str,
    person: &str,
    reason: &str,
    actor: &str,
    at: &str,
) -> StoreResult<Option<(crate::randomise::AllocationRecord, UnblindingRow)>> {
    let mut tx = store.begin_write().await?;
    let Some(allocation) = super::allocations::by_record(tx.conn(), trial_id, record_id).await?
    else {
        tx.rollback().await?;
        return Ok(None);
    };
    audit::append(
        &mut tx,
        actor,
        "emergency_unblinded",
        Some(trial_id),
        &serde_json::json!({
            "record_id": allocation.record_id,
            "randomisation_number": allocation.randomisation_number,
            "person": person,
            "reason": reason,
        }),
    )
    .await?;
    let row = UnblindingRow {
        seq: audit::head(&mut tx).await?.seq,
        trial_id: trial_id.to_string(),
        record_id: allocation.record_id.clone(),
        randomisation_number: allocation.randomisation_number,
        person: person.to_string(),
        reason: reason.to_string(),
        actor: actor.to_string(),
        unblinded_at: at.to_string(),
    };
    sqlx::query(&format!(
        "INSERT INTO unblindings ({UNBLINDING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(row.seq)
    .bind(&row.trial_id)
    .bind(&row.record_id)
    .bind(row.randomisation_number)
    .bind(&row.person)
    .bind(&row.reason)
    .bind(&row.actor)
    .bind(&row.unblinded_at)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(Some((allocation, row)))
}

/// A trial's unblindings, oldest first.
pub async fn unblindings(store: &Store, trial_id: &str) -> StoreResult<Vec<UnblindingRow>> {
    sqlx::query(&format!(
        "SELECT {UNBLINDING_COLUMNS} FROM unblindings WHERE trial_id = $1 ORDER BY seq"
    ))
    .bind(trial_id)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(|r| {
        Ok(UnblindingRow {
            seq: r.try_get("seq")?,
            trial_id: r.try_get("trial_id")?,
            record_id: r.try_get("record_id")?,
            randomisation_number: r.try_get("randomisation_number")?,
            person: r.try_get("person")?,
            reason: r.try_get("reason")?,
            actor: r.try_get("actor")?,
            unblinded_at: r.try_get("unblinded_at")?,
        })
    })
    .collect()
}
