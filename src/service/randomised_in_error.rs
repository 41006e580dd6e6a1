//! Allocations randomised in error, handled the intention-to-treat way (Yelland, Sullivan,
//! Voysey et al., "Applying the intention-to-treat principle in practice: Guidance on the
//! handling of randomisation errors", Clinical Trials 12(4), 2015).
//!
//! A patient randomised in error (found ineligible afterwards, randomised twice, the wrong
//! stratum) stays randomised: the allocation remains in the data, in every analysis and in the
//! audit chain, and nothing is ever deleted. Marking it records why, and from then on the
//! patient no longer counts towards minimisation balance: the trial-wide marginal counts it
//! contributed are released, so later patients are balanced against the patients who belong
//! in the trial. Block positions and the coins' arm counts are not rewound: the allocation
//! sequence already handed out stays as it was. In a cluster trial the randomised unit is the
//! cluster, which stays randomised, so no count changes. Exports carry the flag.

use serde::Serialize;
use serde_json::{Map, Value};

use super::auth::AccessError;
use super::error::{detail, Code, CodedError};
use super::{AppState, Principal};
use crate::analysis::ErrorMark;
use crate::identity;
use crate::protocol::{self, FieldError};
use crate::randomise::{sequence, Draw, Scheme, Timestamp};
use crate::store::{allocation_errors, allocations, screening_log};
use crate::store::{audit, trials, Store, StoreError};

/// Longest accepted reason, in characters.
pub const MAX_REASON_LEN: usize = 2000;

/// The answer to a marking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MarkedInError {
    pub trial_id: String,
    pub record_id: String,
    pub subject: String,
    pub arm: String,
    pub randomisation_number: i64,
    pub randomised_in_error: bool,
    pub reason: String,
    pub marked_by: String,
    pub marked_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    #[error("no trial `{0}` here")]
    TrialNotFound(String),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("no enrolment `{record_id}` in trial `{trial_id}`")]
    EnrolmentNotFound { trial_id: String, record_id: String },
    #[error(
        "enrolment `{record_id}` was already marked randomised in error on {marked_at} ({reason})"
    )]
    AlreadyMarked {
        record_id: String,
        marked_at: String,
        reason: String,
    },
    #[error("the request is invalid: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CodedError for MarkError {
    fn code(&self) -> Code {
        match self {
            MarkError::TrialNotFound(_) => Code::TrialNotFound,
            MarkError::Access(e) => e.code(),
            MarkError::EnrolmentNotFound { .. } => Code::EnrolmentNotFound,
            MarkError::AlreadyMarked { .. } => Code::AlreadyMarkedInError,
            MarkError::Invalid(_) => Code::InvalidRequest,
            MarkError::Store(e) => e.code(),
        }
    }

    fn public_message(&self) -> String {
        match self {
            MarkError::Store(e) => e.public_message(),
            other => other.to_string(),
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            MarkError::AlreadyMarked { marked_at, .. } => detail("marked_at", marked_at),
            MarkError::Invalid(fields) => detail("fields", fields),
            _ => Map::new(),
        }
    }
}

/// Mark an allocation randomised in error on behalf of a token holder: only an `admin` token
/// for a trial served here may (the body is `{"reason": "..."}`).
pub async fn mark_for(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
    record_id: &str,
    body: &Value,
) -> Result<MarkedInError, MarkError> {
    if state.trials.get(trial_id).is_none() {
        return Err(AccessError::TrialNotFound(trial_id.to_string()).into());
    }
    if !principal.may_administer(trial_id) {
        return Err(AccessError::Forbidden(format!(
            "an `admin` token for trial `{trial_id}` is needed to mark an allocation randomised in error"
        ))
        .into());
    }
    let reason = reason_from_json(body)?;
    let marked = Marking {
        actor: &principal.actor,
        at: state.clock.now(),
    };
    mark(&state.store, trial_id, record_id, &reason, &marked).await
}

/// Read the HTTP body `{"reason": "..."}`.
pub fn reason_from_json(body: &Value) -> Result<String, MarkError> {
    let err = |field: &str, message: String| {
        MarkError::Invalid(vec![FieldError {
            field: field.to_string(),
            message,
        }])
    };
    let Some(obj) = body.as_object() else {
        return Err(err(
            "",
            "the body must be a JSON object {\"reason\": \"...\"}".into(),
        ));
    };
    if let Some(key) = obj.keys().find(|k| *k != "reason") {
        return Err(err(key, format!("unknown key `{key}`: expected reason")));
    }
    match obj.get("reason") {
        Some(Value::String(reason)) => check_reason(reason),
        None | Some(Value::Null) => Err(err("reason", "reason is required".into())),
        Some(_) => Err(err("reason", "reason must be a string".into())),
    }
}

/// A reason as stored: trimmed, not empty, at most [`MAX_REASON_LEN`] characters, a free text
/// (lines may break; no control or invisible characters, no personal identity number).
pub fn check_reason(reason: &str) -> Result<String, MarkError> {
    let reason = reason.trim();
    let checked = if reason.is_empty() {
        Err("reason must not be empty: say why the patient was randomised in error".to_string())
    } else {
        identity::free_text(reason, MAX_REASON_LEN, true).map_err(|e| format!("reason {e}"))
    };
    checked.map_err(|message| {
        MarkError::Invalid(vec![FieldError {
            field: "reason".into(),
            message,
        }])
    })
}

/// A record id as a caller named it, in its canonical form.
fn record_of(record_id: &str) -> Result<String, MarkError> {
    identity::canonical_id(record_id).map_err(|e| {
        MarkError::Invalid(vec![FieldError {
            field: "record_id".into(),
            message: format!("record_id {e}"),
        }])
    })
}

/// Who marks, and when.
pub struct Marking<'a> {
    pub actor: &'a str,
    pub at: Timestamp,
}

/// Mark an allocation randomised in error, in one transaction with its audit entry and the
/// release of the marginal counts it contributed. `actor` is recorded as the marker.
#[tracing::instrument(skip_all, fields(trial = %trial_id, record = %record_id), err(level = tracing::Level::DEBUG))]
pub async fn mark(
    store: &Store,
    trial_id: &str,
    record_id: &str,
    reason: &str,
    marking: &Marking<'_>,
) -> Result<MarkedInError, MarkError> {
    let actor = marking.actor;
    let record_id = record_of(record_id)?;
    let record_id = record_id.as_str();
    let reason = check_reason(reason)?;
    let mut tx = store.begin_write().await?;
    let Some(row) = allocations::by_record(tx.conn(), trial_id, record_id).await? else {
        let trial_exists = trials::exists(tx.conn(), trial_id).await?;
        tx.rollback().await?;
        return Err(if trial_exists {
            MarkError::EnrolmentNotFound {
                trial_id: trial_id.to_string(),
                record_id: record_id.to_string(),
            }
        } else {
            MarkError::TrialNotFound(trial_id.to_string())
        });
    };
    if let Some(earlier) = allocation_errors::get(&mut tx, trial_id, record_id).await? {
        tx.rollback().await?;
        return Err(MarkError::AlreadyMarked {
            record_id: record_id.to_string(),
            marked_at: earlier.marked_at,
            reason: earlier.reason,
        });
    }

    // The marginal counts the allocation went into: the minimisation factors of the protocol
    // version it was made under, at the levels of the enrolment as received.
    // In a cluster trial the unit is the cluster, which stays randomised whatever became of
    // one of its members: its counts stay.
    let mut released = Vec::new();
    if row.draw != Draw::Inherited && row.cluster.is_none() {
        let source = trials::protocol_source(tx.conn(), trial_id, &row.protocol_version)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "protocol version {} of {trial_id} is not stored",
                    row.protocol_version
                ))
            })?;
        let corrupt = |what: String| StoreError::Corrupt(what);
        let protocol = protocol::parse(&source, "stored protocol").map_err(|e| {
            corrupt(format!(
                "stored protocol {} no longer parses: {e}",
                row.protocol_version
            ))
        })?;
        let scheme = Scheme::from_protocol(&protocol)
            .map_err(|e| corrupt(format!("stored protocol's scheme: {e}")))?;
        if !scheme.factors().is_empty() {
            let (site, fields) = screening_log::randomised_fields(&mut tx, trial_id, record_id)
                .await?
                .ok_or_else(|| corrupt(format!("no screening-log row for {record_id}")))?;
            let fields: serde_json::Map<String, Value> = serde_json::from_str(&fields)
                .map_err(|e| corrupt(format!("stored fields of {record_id}: {e}")))?;
            let values = protocol::parse_enrolment(&protocol, &site, &fields).map_err(|e| {
                corrupt(format!(
                    "stored fields of {record_id} no longer parse: {e:?}"
                ))
            })?;
            // The rule the replay of an exported log follows too.
            let levels = sequence::levels(&scheme, &values);
            for (factor, level, arm) in sequence::released_by_mark(
                &scheme,
                &levels,
                &row.arm,
                row.draw,
                row.cluster.as_deref(),
            ) {
                allocation_errors::release_marginal(&mut tx, trial_id, &factor, &level, &arm)
                    .await?;
                released.push(serde_json::json!({
                    "factor": factor, "level": level, "arm": arm,
                }));
            }
        }
    }

    let mark = ErrorMark {
        trial_id: trial_id.to_string(),
        record_id: record_id.to_string(),
        reason,
        marked_by: actor.to_string(),
        marked_at: marking.at.to_string(),
    };
    allocation_errors::insert(&mut tx, &mark).await?;
    audit::append(
        &mut tx,
        actor,
        "randomised_in_error_marked",
        Some(trial_id),
        &serde_json::json!({
            "record_id": row.record_id,
            "subject": row.subject,
            "randomisation_number": row.randomisation_number,
            "arm": row.arm,
            "reason": mark.reason,
            "released_marginal_counts": released,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(MarkedInError {
        trial_id: mark.trial_id,
        record_id: mark.record_id,
        subject: row.subject,
        arm: row.arm,
        randomisation_number: row.randomisation_number,
        randomised_in_error: true,
        reason: mark.reason,
        marked_by: mark.marked_by,
        marked_at: mark.marked_at,
    })
}
