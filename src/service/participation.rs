//! A patient's consent and withdrawal after randomisation, and each trial's objection list.
//!
//! - **Withdrawal** (`POST .../enrolments/{record_id}/withdrawal`, `{"withdrawn_on",
//!   "scope", "reason"?}`): recorded with its audit entry (told to others as
//!   `rrct.enrolment.withdrawn`) in one transaction; the allocation is never changed or
//!   deleted. A later withdrawal may only widen the scope (`already_withdrawn` otherwise);
//!   `data_use_withdrawn` needs the protocol's `data_use_withdrawal = true`
//!   (`data_use_withdrawal_not_allowed`). What the scopes do to the analyses:
//!   [`crate::analysis::participation`].
//! - **Deferred consent confirmed** (`POST .../enrolments/{record_id}/consent`, `{"kind",
//!   "taken_by", "taken_at"}`): only for an enrolment randomised with consent `deferred`, once;
//!   audited (`rrct.consent.confirmed`), with whether it came within the protocol's
//!   `deferred_consent_days`. A relative or patient who refuses is recorded as a withdrawal.
//! - **Objection list**: subjects (in the canonical id form, [`identity::canonical_id`], as
//!   the enrolment reads them) who must never be randomised in the trial; the enrolment checks
//!   it in its own transaction. Managed by the trial's admin (API) or the operator (CLI),
//!   each change audited.
//!
//! Who may record a consent or a withdrawal is decided by
//! [`super::Principal::may_record_participation`].

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Map, Value};

use super::auth::AccessError;
use super::error::{detail, Code, CodedError};
use super::{AppState, Principal};
use crate::analysis::participation::{Confirmation, Withdrawal, WithdrawalScope};
use crate::identity;
use crate::protocol::{self, ConsentKind, FieldError, Protocol};
use crate::randomise::Timestamp;
use crate::store::participation::{self, Objection};
use crate::store::{allocations, audit, trials, Store, StoreError};

/// Longest accepted reason, in characters.
pub const MAX_REASON_LEN: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum ParticipationError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("no enrolment `{record_id}` in trial `{trial_id}`")]
    EnrolmentNotFound { trial_id: String, record_id: String },
    #[error("the request is invalid: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("enrolment `{record_id}` has already withdrawn ({scope}, on {withdrawn_on}); a further withdrawal must widen the scope")]
    AlreadyWithdrawn {
        record_id: String,
        scope: &'static str,
        withdrawn_on: NaiveDate,
    },
    #[error("the protocol of trial `{0}` does not allow withdrawing the use of collected data (`data_use_withdrawal` is not set); record `no_further_data_collection` instead")]
    DataUseWithdrawalNotAllowed(String),
    #[error("enrolment `{record_id}` was randomised with consent `{kind}`, not deferred: there is no consent to confirm")]
    ConsentNotDeferred { record_id: String, kind: String },
    #[error("the deferred consent of enrolment `{record_id}` was confirmed on {recorded_at}")]
    ConsentAlreadyConfirmed {
        record_id: String,
        recorded_at: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CodedError for ParticipationError {
    fn code(&self) -> Code {
        match self {
            ParticipationError::Access(e) => e.code(),
            ParticipationError::EnrolmentNotFound { .. } => Code::EnrolmentNotFound,
            ParticipationError::Invalid(_) => Code::InvalidRequest,
            ParticipationError::AlreadyWithdrawn { .. } => Code::AlreadyWithdrawn,
            ParticipationError::DataUseWithdrawalNotAllowed(_) => Code::DataUseWithdrawalNotAllowed,
            ParticipationError::ConsentNotDeferred { .. } => Code::ConsentNotDeferred,
            ParticipationError::ConsentAlreadyConfirmed { .. } => Code::ConsentAlreadyConfirmed,
            ParticipationError::Store(e) => e.code(),
        }
    }

    fn public_message(&self) -> String {
        match self {
            ParticipationError::Store(e) => e.public_message(),
            other => other.to_string(),
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            ParticipationError::Invalid(fields) => detail("fields", fields),
            ParticipationError::DataUseWithdrawalNotAllowed(_) => detail(
                "fields",
                [FieldError {
                    field: "scope".into(),
                    message: "data_use_withdrawn is not allowed by this trial's protocol".into(),
                }],
            ),
            _ => Map::new(),
        }
    }
}

fn invalid(field: &str, message: String) -> ParticipationError {
    ParticipationError::Invalid(vec![FieldError {
        field: field.to_string(),
        message,
    }])
}

/// The answer to a withdrawal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WithdrawalRecorded {
    pub trial_id: String,
    pub record_id: String,
    pub subject: String,
    pub randomisation_number: i64,
    #[serde(flatten)]
    pub withdrawal: Withdrawal,
}

/// A withdrawal as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawalRequest {
    pub withdrawn_on: NaiveDate,
    pub scope: WithdrawalScope,
    pub reason: Option<String>,
}

/// Read `{"withdrawn_on": "YYYY-MM-DD", "scope": "...", "reason": "..."?}`, every problem named.
pub fn withdrawal_from_json(body: &Value) -> Result<WithdrawalRequest, ParticipationError> {
    let Some(obj) = body.as_object() else {
        return Err(invalid(
            "",
            "the body must be a JSON object {\"withdrawn_on\", \"scope\", \"reason\"}".into(),
        ));
    };
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.into(),
            message,
        })
    };
    for key in obj.keys() {
        if !matches!(key.as_str(), "withdrawn_on" | "scope" | "reason") {
            err(
                key,
                format!("unknown key `{key}`: expected withdrawn_on, scope, reason"),
            );
        }
    }
    let withdrawn_on = match obj.get("withdrawn_on") {
        None | Some(Value::Null) => {
            err("withdrawn_on", "withdrawn_on is required".into());
            None
        }
        Some(Value::String(s)) => crate::endpoints::parse_event_date(s).or_else(|| {
            err(
                "withdrawn_on",
                format!("withdrawn_on `{s}` is not a date YYYY-MM-DD"),
            );
            None
        }),
        Some(_) => {
            err("withdrawn_on", "withdrawn_on must be a string".into());
            None
        }
    };
    let scopes = WithdrawalScope::ALL.map(WithdrawalScope::as_str).join(", ");
    let scope = match obj.get("scope") {
        None | Some(Value::Null) => {
            err("scope", format!("scope is required: one of {scopes}"));
            None
        }
        Some(Value::String(s)) => WithdrawalScope::parse(s).or_else(|| {
            err(
                "scope",
                format!("unknown scope `{s}`; expected one of {scopes}"),
            );
            None
        }),
        Some(_) => {
            err("scope", "scope must be a string".into());
            None
        }
    };
    let reason = match obj.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if r.trim().is_empty() => None,
        Some(Value::String(r)) => match identity::free_text(r.trim(), MAX_REASON_LEN, true) {
            Ok(r) => Some(r),
            Err(e) => {
                err("reason", format!("reason {e}"));
                None
            }
        },
        Some(_) => {
            err("reason", "reason must be a string".into());
            None
        }
    };
    match (withdrawn_on, scope) {
        (Some(withdrawn_on), Some(scope)) if errors.is_empty() => Ok(WithdrawalRequest {
            withdrawn_on,
            scope,
            reason,
        }),
        _ => Err(ParticipationError::Invalid(errors)),
    }
}

fn record_of(record_id: &str) -> Result<String, ParticipationError> {
    identity::canonical_id(record_id).map_err(|e| invalid("record_id", format!("record_id {e}")))
}

/// Who records, and when.
pub struct Recording<'a> {
    pub actor: &'a str,
    pub at: Timestamp,
}

/// Record a withdrawal for a token holder (see the module documentation).
pub async fn withdraw_for(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
    record_id: &str,
    body: &Value,
) -> Result<WithdrawalRecorded, ParticipationError> {
    let runtime = state
        .trials
        .get(trial_id)
        .ok_or_else(|| AccessError::TrialNotFound(trial_id.to_string()))?;
    if !matches!(principal.role, super::Role::Admin | super::Role::Register)
        || !principal.may_access_trial(trial_id)
    {
        return Err(AccessError::Forbidden(format!(
            "a `register` or `admin` token for trial `{trial_id}` is needed to record a withdrawal"
        ))
        .into());
    }
    let request = withdrawal_from_json(body)?;
    let recording = Recording {
        actor: &principal.actor,
        at: state.clock.now(),
    };
    withdraw(
        &state.store,
        &runtime.protocol,
        record_id,
        &request,
        &recording,
        Some(principal),
    )
    .await
}

/// Record a withdrawal, in one transaction with its audit entry. `principal`, when given, must
/// be allowed to record for the enrolment's site (the operator's CLI passes none).
#[tracing::instrument(skip_all, fields(trial = %protocol.trial_id, record = %record_id), err(level = tracing::Level::DEBUG))]
pub async fn withdraw(
    store: &Store,
    protocol: &Protocol,
    record_id: &str,
    request: &WithdrawalRequest,
    recording: &Recording<'_>,
    principal: Option<&Principal>,
) -> Result<WithdrawalRecorded, ParticipationError> {
    let trial_id = protocol.trial_id.as_str();
    let record_id = record_of(record_id)?;
    if request.scope == WithdrawalScope::DataUseWithdrawn && !protocol.data_use_withdrawal {
        return Err(ParticipationError::DataUseWithdrawalNotAllowed(
            trial_id.to_string(),
        ));
    }
    let today = recording.at.date();
    if request.withdrawn_on > today {
        return Err(invalid(
            "withdrawn_on",
            format!(
                "withdrawn_on {} is after today ({today})",
                request.withdrawn_on
            ),
        ));
    }
    let mut tx = store.begin_write().await?;
    let row = match allocations::by_record(tx.conn(), trial_id, &record_id).await? {
        Some(row)
            if principal.is_none_or(|p| p.may_record_participation(trial_id, &row.site_code)) =>
        {
            row
        }
        _ => {
            // A site-scoped caller is not told that another site's record exists.
            tx.rollback().await?;
            return Err(ParticipationError::EnrolmentNotFound {
                trial_id: trial_id.to_string(),
                record_id,
            });
        }
    };
    if request.withdrawn_on < row.randomised_on() {
        tx.rollback().await?;
        return Err(invalid(
            "withdrawn_on",
            format!(
                "withdrawn_on {} is before the randomisation on {}",
                request.withdrawn_on,
                row.randomised_on()
            ),
        ));
    }
    let earlier = participation::withdrawals_of(&mut tx, trial_id, &record_id).await?;
    if let Some(widest) = earlier.iter().max_by_key(|w| w.scope) {
        if widest.scope >= request.scope {
            tx.rollback().await?;
            return Err(ParticipationError::AlreadyWithdrawn {
                record_id,
                scope: widest.scope.as_str(),
                withdrawn_on: widest.withdrawn_on,
            });
        }
    }
    let withdrawal = Withdrawal {
        record_id: record_id.clone(),
        scope: request.scope,
        withdrawn_on: request.withdrawn_on,
        reason: request.reason.clone(),
        recorded_by: recording.actor.to_string(),
        recorded_at: recording.at.to_string(),
    };
    participation::insert_withdrawal(&mut tx, trial_id, &withdrawal).await?;
    audit::append(
        &mut tx,
        recording.actor,
        "withdrawal_recorded",
        Some(trial_id),
        &serde_json::json!({
            "record_id": row.record_id,
            "subject": row.subject,
            "site": row.site_code,
            "randomisation_number": row.randomisation_number,
            "scope": withdrawal.scope,
            "withdrawn_on": withdrawal.withdrawn_on,
            "reason": withdrawal.reason,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(WithdrawalRecorded {
        trial_id: trial_id.to_string(),
        record_id,
        subject: row.subject,
        randomisation_number: row.randomisation_number,
        withdrawal,
    })
}

/// The answer to a deferred consent's confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentConfirmed {
    pub trial_id: String,
    pub record_id: String,
    pub subject: String,
    pub randomisation_number: i64,
    #[serde(flatten)]
    pub confirmation: Confirmation,
    /// The last day the protocol allows for confirming.
    pub deadline: Option<NaiveDate>,
    pub within_deadline: bool,
}

/// Confirm a deferred consent for a token holder (see the module documentation).
pub async fn confirm_for(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
    record_id: &str,
    body: &Value,
) -> Result<ConsentConfirmed, ParticipationError> {
    let runtime = state
        .trials
        .get(trial_id)
        .ok_or_else(|| AccessError::TrialNotFound(trial_id.to_string()))?;
    if !matches!(principal.role, super::Role::Admin | super::Role::Register)
        || !principal.may_access_trial(trial_id)
    {
        return Err(AccessError::Forbidden(format!(
            "a `register` or `admin` token for trial `{trial_id}` is needed to confirm a consent"
        ))
        .into());
    }
    let given = protocol::parse_confirmation(body).map_err(ParticipationError::Invalid)?;
    let recording = Recording {
        actor: &principal.actor,
        at: state.clock.now(),
    };
    confirm(
        &state.store,
        &runtime.protocol,
        record_id,
        &given,
        &recording,
        Some(principal),
    )
    .await
}

/// Confirm a deferred consent, in one transaction with its audit entry.
#[tracing::instrument(skip_all, fields(trial = %protocol.trial_id, record = %record_id), err(level = tracing::Level::DEBUG))]
pub async fn confirm(
    store: &Store,
    protocol: &Protocol,
    record_id: &str,
    given: &protocol::GivenConsent,
    recording: &Recording<'_>,
    principal: Option<&Principal>,
) -> Result<ConsentConfirmed, ParticipationError> {
    let trial_id = protocol.trial_id.as_str();
    let record_id = record_of(record_id)?;
    let (Some(taken_by), Some(taken_at), Some(taken_on)) =
        (&given.taken_by, &given.taken_at, given.taken_on)
    else {
        return Err(invalid(
            "taken_at",
            "a confirmation names who took the consent and when".into(),
        ));
    };
    let today = recording.at.date();
    if taken_on > today {
        return Err(invalid(
            "taken_at",
            format!("taken_at {taken_on} is after today ({today})"),
        ));
    }
    let mut tx = store.begin_write().await?;
    let row = match allocations::by_record(tx.conn(), trial_id, &record_id).await? {
        Some(row)
            if principal.is_none_or(|p| p.may_record_participation(trial_id, &row.site_code)) =>
        {
            row
        }
        _ => {
            tx.rollback().await?;
            return Err(ParticipationError::EnrolmentNotFound {
                trial_id: trial_id.to_string(),
                record_id,
            });
        }
    };
    let consent = participation::consent_of(&mut tx, trial_id, &record_id).await?;
    let consent = match consent {
        Some(c) if c.kind == ConsentKind::Deferred => c,
        other => {
            tx.rollback().await?;
            return Err(ParticipationError::ConsentNotDeferred {
                record_id,
                kind: other.map_or_else(|| "none".to_string(), |c| c.kind.as_str().to_string()),
            });
        }
    };
    if let Some(c) = consent.confirmed {
        tx.rollback().await?;
        return Err(ParticipationError::ConsentAlreadyConfirmed {
            record_id,
            recorded_at: c.recorded_at,
        });
    }
    let randomised_on = row.randomised_on();
    if taken_on < randomised_on {
        tx.rollback().await?;
        return Err(invalid(
            "taken_at",
            format!(
                "taken_at {taken_on} is before the randomisation on {randomised_on}: a deferred \
                 consent is taken after it"
            ),
        ));
    }
    let confirmation = Confirmation {
        kind: given.kind,
        taken_by: taken_by.clone(),
        taken_at: taken_at.clone(),
        recorded_by: recording.actor.to_string(),
        recorded_at: recording.at.to_string(),
    };
    let deadline = protocol
        .deferred_consent_days
        .map(|d| randomised_on + chrono::Days::new(u64::from(d)));
    let within_deadline = deadline.is_none_or(|d| taken_on <= d);
    participation::confirm(&mut tx, trial_id, &record_id, &confirmation).await?;
    audit::append(
        &mut tx,
        recording.actor,
        "consent_confirmed",
        Some(trial_id),
        &serde_json::json!({
            "record_id": row.record_id,
            "subject": row.subject,
            "site": row.site_code,
            "randomisation_number": row.randomisation_number,
            "kind": confirmation.kind,
            "taken_by": confirmation.taken_by,
            "taken_at": confirmation.taken_at,
            "deadline": deadline,
            "within_deadline": within_deadline,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(ConsentConfirmed {
        trial_id: trial_id.to_string(),
        record_id,
        subject: row.subject,
        randomisation_number: row.randomisation_number,
        confirmation,
        deadline,
        within_deadline,
    })
}

/// A change to an objection list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectionChange {
    pub trial_id: String,
    pub subject: String,
    /// Whether the list changed (false: the subject was already on it, or not on it).
    pub changed: bool,
}

/// A subject as a caller named it, in the canonical form the enrolment uses.
pub fn subject_of(subject: &str) -> Result<String, ParticipationError> {
    identity::canonical_id(subject).map_err(|e| invalid("subject", format!("subject {e}")))
}

/// Read `{"subject": "..."}`.
pub fn objection_from_json(body: &Value) -> Result<String, ParticipationError> {
    let Some(obj) = body.as_object() else {
        return Err(invalid(
            "",
            "the body must be a JSON object {\"subject\": \"...\"}".into(),
        ));
    };
    if let Some(key) = obj.keys().find(|k| *k != "subject") {
        return Err(invalid(
            key,
            format!("unknown key `{key}`: expected subject"),
        ));
    }
    match obj.get("subject") {
        Some(Value::String(s)) => subject_of(s),
        None | Some(Value::Null) => Err(invalid("subject", "subject is required".into())),
        Some(_) => Err(invalid("subject", "subject must be a string".into())),
    }
}

fn may_manage_objections(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
) -> Result<(), AccessError> {
    if state.trials.get(trial_id).is_none() {
        return Err(AccessError::TrialNotFound(trial_id.to_string()));
    }
    if !principal.may_administer(trial_id) {
        return Err(AccessError::Forbidden(format!(
            "an `admin` token for trial `{trial_id}` is needed for its objection list"
        )));
    }
    Ok(())
}

/// Add to (`add`) or remove from a trial's objection list, for a token holder (admin).
pub async fn change_objection_for(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
    subject: &str,
    add: bool,
) -> Result<ObjectionChange, ParticipationError> {
    may_manage_objections(state, principal, trial_id)?;
    let recording = Recording {
        actor: &principal.actor,
        at: state.clock.now(),
    };
    change_objection(&state.store, trial_id, subject, add, &recording).await
}

/// The objection list, for a token holder (admin).
pub async fn objections_for(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
) -> Result<Vec<Objection>, ParticipationError> {
    may_manage_objections(state, principal, trial_id)?;
    Ok(participation::objections(&state.store, trial_id).await?)
}

/// The objection list (the operator's CLI).
pub async fn objections(
    store: &Store,
    trial_id: &str,
) -> Result<Vec<Objection>, ParticipationError> {
    Ok(participation::objections(store, trial_id).await?)
}

/// Add or remove one subject, with an audit entry when the list changes.
#[tracing::instrument(skip_all, fields(trial = %trial_id), err(level = tracing::Level::DEBUG))]
pub async fn change_objection(
    store: &Store,
    trial_id: &str,
    subject: &str,
    add: bool,
    recording: &Recording<'_>,
) -> Result<ObjectionChange, ParticipationError> {
    let subject = subject_of(subject)?;
    let mut tx = store.begin_write().await?;
    if !trials::exists(tx.conn(), trial_id).await? {
        tx.rollback().await?;
        return Err(AccessError::TrialNotFound(trial_id.to_string()).into());
    }
    let changed = if add {
        participation::add_objection(
            &mut tx,
            trial_id,
            &Objection {
                subject: subject.clone(),
                added_by: recording.actor.to_string(),
                added_at: recording.at.to_string(),
            },
        )
        .await?
    } else {
        participation::remove_objection(&mut tx, trial_id, &subject).await?
    };
    if changed {
        audit::append(
            &mut tx,
            recording.actor,
            if add {
                "objection_added"
            } else {
                "objection_removed"
            },
            Some(trial_id),
            &serde_json::json!({ "subject": subject }),
        )
        .await?;
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(ObjectionChange {
        trial_id: trial_id.to_string(),
        subject,
        changed,
    })
}
