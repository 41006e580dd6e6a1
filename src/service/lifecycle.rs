//! A trial's lifecycle while it runs, and the master seed's reveal once it is over.
//!
//! # Two statuses
//! A protocol file has a `status` (planned, recruiting, paused, closed): the plan as written
//! and amended, registered with each version and reversible by the next amendment. The
//! **lifecycle** is what the trial's admins decide while it runs, recorded in the database
//! (`trials.lifecycle`, migration 0010) with a reason and an audit entry:
//!
//! ```text
//!   active ──pause──▶ paused ──resume──▶ active
//!   active ──close──▶ closed ◀──close── paused      (closed is final)
//! ```
//!
//! and, per site, enrolment `open` ⇄ `closed` (`site-close`, `site-open`; not once the trial is
//! closed). An enrolment needs all of them: lifecycle `active` (else `409 trial_closed` or
//! `409 trial_paused`), protocol status `recruiting` with an ethics approval (else
//! `409 trial_not_active`, as before) and an open site (else `409 site_closed`). A protocol
//! `status = "closed"` therefore still refuses enrolments, but it is not the end of the trial:
//! only the lifecycle's `closed` is, and only it allows the master seed to be revealed.
//!
//! The enrolment batch reads the lifecycle and the closed sites in the transaction that decides
//! (under the database's single writer lock, which every change here also takes), so a pause
//! committed before a batch is seen by all of it, and a batch committed before a pause is
//! ordered before it in the audit chain: no enrolment is allocated after a pause commits.
//!
//! Every change is audited (`trial_status_changed`, `site_enrolment_changed`, both written to
//! the outbox, so the bus and webhooks tell the register) and kept in `lifecycle_changes`, the
//! history the pages show. A register's retry of an enrolment made before a pause or close is
//! still answered with its allocation.
//!
//! # The seed's reveal
//! Once the trial is closed, an admin reveals its master seed: it must hash to the commitment
//! the trial published when it was created, and it is written into the audit log
//! (`seed_revealed`), so the anchored chain carries it and an export names it. A second reveal
//! returns the first.

use serde::Serialize;
use serde_json::{Map, Value};

use super::auth::AccessError;
use super::error::{detail, Code, CodedError};
use super::{AppState, Principal};
use crate::identity;
use crate::protocol::FieldError;
use crate::randomise::{seed_commitment, MasterSeed, Timestamp};
pub use crate::store::lifecycle::Lifecycle;
use crate::store::lifecycle::{self as stored, ChangeRow, Changed, NewChange, Revealed};
use crate::store::{Store, StoreError};

/// Longest accepted reason, in characters.
pub const MAX_REASON_LEN: usize = 2000;

/// A change an admin asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Pause,
    Resume,
    Close,
    SiteClose,
    SiteOpen,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Pause => "pause",
            Change::Resume => "resume",
            Change::Close => "close",
            Change::SiteClose => "site_close",
            Change::SiteOpen => "site_open",
        }
    }

    fn is_site(self) -> bool {
        matches!(self, Change::SiteClose | Change::SiteOpen)
    }

    /// The status after the change from `current` (the trial's lifecycle is `trial`), or why
    /// it cannot be made.
    fn apply(self, current: &str, trial: &str) -> Result<&'static str, String> {
        if trial == Lifecycle::Closed.as_str() {
            return Err("the trial is closed, which is final".into());
        }
        match (self, current) {
            (Change::Pause, "active") => Ok("paused"),
            (Change::Resume, "paused") => Ok("active"),
            (Change::Close, "active" | "paused") => Ok("closed"),
            (Change::SiteClose, "open") => Ok("closed"),
            (Change::SiteOpen, "closed") => Ok("open"),
            (Change::SiteClose | Change::SiteOpen, _) => {
                Err(format!("the site's enrolment is already `{current}`"))
            }
            (Change::Pause, _) => Err(format!(
                "only an active trial can be paused; it is `{current}`"
            )),
            (Change::Resume, _) => Err(format!(
                "only a paused trial can be resumed; it is `{current}`"
            )),
            (Change::Close, _) => Err(format!("the trial is `{current}`")),
        }
    }
}

/// A change made, as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LifecycleChange {
    #[serde(flatten)]
    pub change: ChangeRow,
    pub previous_status: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("no trial `{0}` here")]
    TrialNotFound(String),
    #[error("trial `{trial}` has no site `{site}`")]
    SiteNotFound { trial: String, site: String },
    #[error("cannot {change} trial `{trial}`: {why}")]
    InvalidTransition {
        trial: String,
        change: String,
        current: String,
        why: String,
    },
    #[error("the master seed of trial `{trial}` can be revealed only once the trial is closed (it is `{current}`)")]
    NotClosed { trial: String, current: String },
    #[error("the request is invalid: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("the seed given for trial `{trial}` does not hash to its commitment {commitment}")]
    WrongSeed { trial: String, commitment: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CodedError for LifecycleError {
    fn code(&self) -> Code {
        match self {
            LifecycleError::Access(e) => e.code(),
            LifecycleError::TrialNotFound(_) => Code::TrialNotFound,
            LifecycleError::SiteNotFound { .. } => Code::SiteNotFound,
            LifecycleError::InvalidTransition { .. } => Code::InvalidTransition,
            LifecycleError::NotClosed { .. } => Code::TrialNotClosed,
            LifecycleError::Invalid(_) => Code::InvalidRequest,
            LifecycleError::WrongSeed { .. } => Code::Internal,
            LifecycleError::Store(e) => e.code(),
        }
    }

    fn public_message(&self) -> String {
        match self {
            LifecycleError::Store(e) => e.public_message(),
            LifecycleError::WrongSeed { .. } => "internal error; see the server log".into(),
            other => other.to_string(),
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            LifecycleError::InvalidTransition { current, .. }
            | LifecycleError::NotClosed { current, .. } => detail("status", current),
            LifecycleError::Invalid(fields) => detail("fields", fields),
            _ => Map::new(),
        }
    }
}

/// A reason as stored: trimmed, not empty, a free text of at most [`MAX_REASON_LEN`]
/// characters (no control or invisible characters, no personal identity number).
pub fn check_text(field: &str, text: &str, what: &str) -> Result<String, FieldError> {
    let text = text.trim();
    let checked = if text.is_empty() {
        Err(format!("{field} must not be empty: {what}"))
    } else {
        identity::free_text(text, MAX_REASON_LEN, true).map_err(|e| format!("{field} {e}"))
    };
    checked
        .map(|t| t.to_string())
        .map_err(|message| FieldError {
            field: field.to_string(),
            message,
        })
}

/// Read a JSON body of string fields: `required` must be there, `optional` may; nothing else.
pub fn text_fields(
    body: &Value,
    required: &[(&str, &str)],
    optional: &[&str],
) -> Result<Vec<Option<String>>, Vec<FieldError>> {
    let err = |field: &str, message: String| FieldError {
        field: field.to_string(),
        message,
    };
    let names: Vec<&str> = required
        .iter()
        .map(|(n, _)| *n)
        .chain(optional.iter().copied())
        .collect();
    let Some(obj) = body.as_object() else {
        return Err(vec![err(
            "",
            format!("the body must be a JSON object with {}", names.join(", ")),
        )]);
    };
    let mut errors: Vec<FieldError> = obj
        .keys()
        .filter(|k| !names.contains(&k.as_str()))
        .map(|k| {
            err(
                k,
                format!("unknown key `{k}`: expected {}", names.join(", ")),
            )
        })
        .collect();
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let what = required.get(i).map(|(_, w)| *w);
        match (obj.get(*name), what) {
            (Some(Value::String(s)), Some(what)) => match check_text(name, s, what) {
                Ok(t) => out.push(Some(t)),
                Err(e) => {
                    errors.push(e);
                    out.push(None)
                }
            },
            (Some(Value::String(s)), None) => out.push(Some(s.clone())),
            (None | Some(Value::Null), Some(_)) => {
                errors.push(err(name, format!("{name} is required")));
                out.push(None)
            }
            (None | Some(Value::Null), None) => out.push(None),
            (Some(_), _) => {
                errors.push(err(name, format!("{name} must be a string")));
                out.push(None)
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Who changes, and when.
pub struct By<'a> {
    pub actor: &'a str,
    pub at: Timestamp,
}

/// Make a lifecycle change: `site` for a site's enrolment.
#[tracing::instrument(skip_all, fields(trial = %trial_id, change = change.as_str()), err(level = tracing::Level::DEBUG))]
pub async fn change(
    store: &Store,
    trial_id: &str,
    change: Change,
    site: Option<&str>,
    reason: &str,
    by: &By<'_>,
) -> Result<LifecycleChange, LifecycleError> {
    let reason =
        check_text("reason", reason, "say why").map_err(|e| LifecycleError::Invalid(vec![e]))?;
    let site = match (change.is_site(), site) {
        (true, Some(site)) => Some(identity::canonical_id(site).map_err(|e| {
            LifecycleError::Invalid(vec![FieldError {
                field: "site".into(),
                message: format!("site {e}"),
            }])
        })?),
        (true, None) => {
            return Err(LifecycleError::Invalid(vec![FieldError {
                field: "site".into(),
                message: "site is required".into(),
            }]))
        }
        (false, _) => None,
    };
    let at = by.at.to_string();
    let new = NewChange {
        trial_id,
        site_code: site.as_deref(),
        change: change.as_str(),
        reason: &reason,
        actor: by.actor,
        changed_at: &at,
    };
    match stored::change(store, &new, |current, trial| {
        change.apply(current, trial).map(str::to_string)
    })
    .await?
    {
        Changed::Done { row, previous } => Ok(LifecycleChange {
            change: row,
            previous_status: previous,
        }),
        Changed::Refused { current, why } => Err(LifecycleError::InvalidTransition {
            trial: trial_id.to_string(),
            change: change.as_str().replace('_', " "),
            current,
            why,
        }),
        Changed::NoTrial => Err(LifecycleError::TrialNotFound(trial_id.to_string())),
        Changed::NoSite => Err(LifecycleError::SiteNotFound {
            trial: trial_id.to_string(),
            site: site.unwrap_or_default(),
        }),
    }
}

/// Refuse anyone but an admin of the trial.
fn require_admin(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
    what: &str,
) -> Result<(), LifecycleError> {
    if state.trials.get(trial_id).is_none() {
        return Err(AccessError::TrialNotFound(trial_id.to_string()).into());
    }
    if !principal.may_administer(trial_id) {
        return Err(AccessError::Forbidden(format!(
            "an `admin` token for trial `{trial_id}` is needed to {what}"
        ))
        .into());
    }
    Ok(())
}

/// A change asked for through the API (admins only): the body is `{"reason": "..."}`.
pub async fn change_for(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
    change: Change,
    site: Option<&str>,
    body: &Value,
) -> Result<LifecycleChange, LifecycleError> {
    require_admin(state, principal, trial_id, "change its status")?;
    let fields =
        text_fields(body, &[("reason", "say why")], &[]).map_err(LifecycleError::Invalid)?;
    let reason = fields.into_iter().next().flatten().unwrap_or_default();
    let by = By {
        actor: &principal.actor,
        at: state.clock.now(),
    };
    self::change(&state.store, trial_id, change, site, &reason, &by).await
}

/// A trial's lifecycle as the pages and the API show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Overview {
    pub trial_id: String,
    pub lifecycle: String,
    pub closed_sites: Vec<String>,
    /// Oldest first.
    pub history: Vec<ChangeRow>,
    /// The emergency unblindings so far (their number; the list is for the unblinded roles).
    pub unblindings: usize,
    pub seed_revealed: bool,
}

/// A trial's lifecycle, closed sites and history, and how many unblindings it had.
pub async fn overview(store: &Store, trial_id: &str) -> Result<Overview, LifecycleError> {
    let s = stored::of_trial(store, trial_id)
        .await?
        .ok_or_else(|| LifecycleError::TrialNotFound(trial_id.to_string()))?;
    let unblindings = stored::unblindings(store, trial_id).await?.len();
    Ok(Overview {
        trial_id: trial_id.to_string(),
        seed_revealed: s.history.iter().any(|c| c.change == "reveal_seed"),
        lifecycle: s.lifecycle,
        closed_sites: s.closed_sites,
        history: s.history,
        unblindings,
    })
}

/// `GET .../status`: any reader of the trial.
pub async fn overview_for(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
) -> Result<Overview, LifecycleError> {
    super::auth::served_trial(&state.trials, principal, trial_id)?;
    overview(&state.store, trial_id).await
}

/// A revealed master seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RevealedSeed {
    pub trial_id: String,
    /// The 32 seed bytes in hex.
    pub master_seed: String,
    pub seed_commitment: String,
    pub commitment_algorithm: &'static str,
    pub revealed_at: String,
    pub revealed_by: String,
    /// The sequence number of the `seed_revealed` audit entry.
    pub audit_seq: i64,
}

/// Reveal a closed trial's master seed (checked against its commitment), audited once.
#[tracing::instrument(skip_all, fields(trial = %trial_id), err(level = tracing::Level::DEBUG))]
pub async fn reveal_seed(
    store: &Store,
    trial_id: &str,
    seed: &MasterSeed,
    by: &By<'_>,
) -> Result<RevealedSeed, LifecycleError> {
    let seed_hex = hex::encode(seed.as_bytes());
    let commitment = seed_commitment(seed);
    let at = by.at.to_string();
    let new = NewChange {
        trial_id,
        site_code: None,
        change: "reveal_seed",
        reason: "the trial is closed: its master seed is published for replay",
        actor: by.actor,
        changed_at: &at,
    };
    let payload = serde_json::json!({
        "master_seed": seed_hex,
        "seed_commitment": commitment,
        "seed_commitment_algorithm": "sha256(master_seed)",
    });
    let mut refusal = None;
    let outcome = stored::reveal_seed(store, &new, &payload, |lifecycle, stored_commitment| {
        if lifecycle != Lifecycle::Closed.as_str() {
            refusal = Some(LifecycleError::NotClosed {
                trial: trial_id.to_string(),
                current: lifecycle.to_string(),
            });
            return Err("not closed".into());
        }
        if stored_commitment != commitment {
            refusal = Some(LifecycleError::WrongSeed {
                trial: trial_id.to_string(),
                commitment: stored_commitment.to_string(),
            });
            return Err("wrong seed".into());
        }
        Ok(())
    })
    .await?;
    let answer = |row: ChangeRow, seed_hex: String| RevealedSeed {
        trial_id: trial_id.to_string(),
        master_seed: seed_hex,
        seed_commitment: commitment.clone(),
        commitment_algorithm: "sha256(master_seed)",
        revealed_at: row.changed_at,
        revealed_by: row.actor,
        audit_seq: row.seq,
    };
    match outcome {
        Revealed::Now(row) => Ok(answer(row, seed_hex)),
        Revealed::Before { row, seed_hex } => Ok(answer(row, seed_hex)),
        Revealed::Refused(_) => Err(refusal.unwrap_or_else(|| {
            LifecycleError::Store(StoreError::Corrupt(
                "reveal refused without a reason".into(),
            ))
        })),
        Revealed::NoTrial => Err(LifecycleError::TrialNotFound(trial_id.to_string())),
    }
}

/// `POST .../reveal-seed` (admins only): the server holds the trial's seed.
pub async fn reveal_seed_for(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
) -> Result<RevealedSeed, LifecycleError> {
    require_admin(state, principal, trial_id, "reveal its master seed")?;
    let runtime = state
        .trials
        .get(trial_id)
        .ok_or_else(|| LifecycleError::TrialNotFound(trial_id.to_string()))?;
    let by = By {
        actor: &principal.actor,
        at: state.clock.now(),
    };
    reveal_seed(&state.store, trial_id, &runtime.seed, &by).await
}
