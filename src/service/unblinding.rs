//! Emergency unblinding of one subject (a 24/7 code-break): the on-call unblinder names the
//! record, gives a reason and their own name, and gets that subject's arm and nothing else.
//!
//! Every unblinding is audited (`emergency_unblinded`: the record, the person, the reason; not
//! the arm, which the allocation already holds) and kept in `unblindings`, which the trial
//! statistician, the DSMB and the auditor read with who, when and why; the blinded pages show
//! their number only. An unblinding changes no allocation, count or status. In an open-label
//! trial the arm is known to the register already; the unblinding is still recorded, since who
//! looked is what the audit is for.

use serde::Serialize;
use serde_json::{Map, Value};

use super::auth::AccessError;
use super::error::{detail, Code, CodedError};
use super::lifecycle::text_fields;
use super::{AppState, Principal};
use crate::identity;
use crate::protocol::{FieldError, Masking};
use crate::store::lifecycle::{self as stored, UnblindingRow};

/// One emergency unblinding as listed: who (token and person), when, why; never the arm.
pub type UnblindingEntry = UnblindingRow;
use crate::store::StoreError;

/// The answer to an unblinding: the subject's arm and the record of who asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Unblinded {
    pub trial_id: String,
    pub record_id: String,
    pub subject: String,
    pub randomisation_number: i64,
    pub arm: String,
    pub arm_label: String,
    /// Whether the trial is open-label (the arm was known to the register anyway).
    pub open_label: bool,
    pub unblinded_by: String,
    pub person: String,
    pub reason: String,
    pub unblinded_at: String,
    /// The sequence number of the audit entry.
    pub audit_seq: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnblindError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("no enrolment `{record_id}` in trial `{trial_id}`")]
    EnrolmentNotFound { trial_id: String, record_id: String },
    #[error("the request is invalid: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CodedError for UnblindError {
    fn code(&self) -> Code {
        match self {
            UnblindError::Access(e) => e.code(),
            UnblindError::EnrolmentNotFound { .. } => Code::EnrolmentNotFound,
            UnblindError::Invalid(_) => Code::InvalidRequest,
            UnblindError::Store(e) => e.code(),
        }
    }

    fn public_message(&self) -> String {
        match self {
            UnblindError::Store(e) => e.public_message(),
            other => other.to_string(),
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            UnblindError::Invalid(fields) => detail("fields", fields),
            _ => Map::new(),
        }
    }
}

/// `POST /api/v1/trials/{trial}/enrolments/{record_id}/unblind` with
/// `{"reason": "...", "person": "..."}`: only the trial's on-call unblinder (a site-scoped one
/// for its own site's subjects).
#[tracing::instrument(skip_all, fields(trial = %trial_id), err(level = tracing::Level::DEBUG))]
pub async fn unblind_for(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
    record_id: &str,
    body: &Value,
) -> Result<Unblinded, UnblindError> {
    let runtime = state
        .trials
        .get(trial_id)
        .ok_or_else(|| AccessError::TrialNotFound(trial_id.to_string()))?;
    if !principal.may_unblind(trial_id) {
        return Err(AccessError::Forbidden(format!(
            "only the on-call `unblinder` of trial `{trial_id}` may break the blind of a subject"
        ))
        .into());
    }
    let fields = text_fields(
        body,
        &[
            ("reason", "say why the blind must be broken"),
            ("person", "name the person asking"),
        ],
        &[],
    )
    .map_err(UnblindError::Invalid)?;
    let (reason, person) = (
        fields[0].clone().unwrap_or_default(),
        fields[1].clone().unwrap_or_default(),
    );
    let record_id = identity::canonical_id(record_id).map_err(|e| {
        UnblindError::Invalid(vec![FieldError {
            field: "record_id".into(),
            message: format!("record_id {e}"),
        }])
    })?;
    let not_found = || UnblindError::EnrolmentNotFound {
        trial_id: trial_id.to_string(),
        record_id: record_id.clone(),
    };
    // A site-scoped unblinder is not told whether another site's record exists.
    if let Some(site) = &principal.site_code {
        let visible = crate::store::allocations::get(&state.store, trial_id, &record_id)
            .await?
            .is_some_and(|a| &a.site_code == site);
        if !visible {
            return Err(not_found());
        }
    }
    let at = state.clock.now().to_string();
    let Some((allocation, row)) = stored::unblind(
        &state.store,
        trial_id,
        &record_id,
        &person,
        &reason,
        &principal.actor,
        &at,
    )
    .await?
    else {
        return Err(not_found());
    };
    let arm_label = runtime
        .protocol
        .arms
        .iter()
        .find(|a| a.id == allocation.arm)
        .map_or_else(|| allocation.arm.clone(), |a| a.label.clone());
    Ok(Unblinded {
        trial_id: trial_id.to_string(),
        record_id: allocation.record_id,
        subject: allocation.subject,
        randomisation_number: allocation.randomisation_number,
        arm: allocation.arm,
        arm_label,
        open_label: runtime.protocol.masking == Masking::OpenLabel,
        unblinded_by: row.actor,
        person: row.person,
        reason: row.reason,
        unblinded_at: row.unblinded_at,
        audit_seq: row.seq,
    })
}

/// A trial's emergency unblindings (who, when, why; no arms), for the statistician, the DSMB
/// and the auditor.
pub async fn list_for(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
) -> Result<Vec<UnblindingRow>, UnblindError> {
    super::auth::served_trial(&state.trials, principal, trial_id)?;
    if !principal.may_list_unblindings(trial_id) {
        return Err(AccessError::Forbidden(format!(
            "role `{}` may not read the list of unblindings; their number is on the trial's page",
            principal.role.as_str()
        ))
        .into());
    }
    Ok(stored::unblindings(&state.store, trial_id).await?)
}

/// A trial's unblindings, for the pages (the caller decides who sees the list).
pub async fn of_trial(
    store: &crate::store::Store,
    trial_id: &str,
) -> Result<Vec<UnblindingRow>, StoreError> {
    stored::unblindings(store, trial_id).await
}
