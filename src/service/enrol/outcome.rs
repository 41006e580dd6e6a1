//! What an enrolment gives back: the allocation as returned to the register, or why it was
//! refused.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::protocol::FieldError;
use crate::randomise::AllocationRecord;
use crate::service::answer::Answer;
use crate::service::error::{detail, Code, CodedError};
use crate::service::TrialRuntime;
use crate::store::StoreError;

/// The allocation as returned to the register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Allocation {
    pub trial_id: String,
    pub record_id: String,
    pub subject: String,
    pub arm: String,
    pub arm_label: String,
    pub randomisation_number: i64,
    pub stratum: String,
    #[schema(value_type = String, format = DateTime)]
    pub allocated_at: crate::randomise::Timestamp,
    pub protocol_version: String,
    /// The arms the patient was eligible for, when the enrolment named ineligible arms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eligible_arms: Option<Vec<String>>,
}

impl Allocation {
    pub fn from_row(row: AllocationRecord, runtime: &TrialRuntime) -> Self {
        let arm_label = runtime
            .protocol
            .arms
            .iter()
            .find(|a| a.id == row.arm)
            .map_or_else(|| row.arm.clone(), |a| a.label.clone());
        // Written by `decide_one` as a JSON array of arm ids; anything else is not shown.
        let eligible_arms = row
            .eligible_arms
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok());
        Allocation {
            eligible_arms,
            trial_id: row.trial_id,
            record_id: row.record_id,
            subject: row.subject,
            arm: row.arm,
            arm_label,
            randomisation_number: row.randomisation_number,
            stratum: row.stratum,
            allocated_at: row.allocated_at,
            protocol_version: row.protocol_version,
        }
    }
}

/// A successful enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrolOutcome {
    /// Newly randomised.
    Created(Allocation),
    /// The same request was seen before: its allocation, unchanged.
    Replayed(Allocation),
    /// A CloudEvent answered before: the answer it was given, as kept (only for enrolments
    /// sent as CloudEvents, see [`super::enrol_event`]).
    Kept(Answer),
}

/// What the sender of an enrolment CloudEvent is told of `outcome`: the status and body the
/// plain endpoint gives.
pub fn answer(outcome: &Result<EnrolOutcome, EnrolError>) -> Answer {
    match outcome {
        Ok(EnrolOutcome::Created(a)) => Answer {
            status: 201,
            body: serde_json::json!(a),
        },
        Ok(EnrolOutcome::Replayed(a)) => Answer {
            status: 200,
            body: serde_json::json!(a),
        },
        Ok(EnrolOutcome::Kept(answer)) => answer.clone(),
        Err(e) => Answer::of(e),
    }
}

/// Why an enrolment was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error("no trial `{0}` is served here")]
    TrialNotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the enrolment is invalid: {}", describe(.0))]
    Invalid(Vec<FieldError>),
    #[error("the patient is not eligible")]
    NotEligible {
        /// The unmet criteria, as recorded in the screening log.
        reasons: Value,
    },
    #[error(
        "subject `{subject}` is already randomised in this trial{}",
        record_id.as_ref().map_or_else(String::new, |r| format!(" (record `{r}`)"))
    )]
    AlreadyRandomised {
        subject: String,
        /// The record it was randomised under, when the caller may know it (a site-scoped
        /// token is not told another site's record ids).
        record_id: Option<String>,
    },
    #[error("record `{0}` was already submitted with a different body")]
    RecordConflict(String),
    #[error(
        "subject `{0}` is on this trial's objection list and is never randomised; the \
         screening is recorded"
    )]
    Objected(String),
    #[error("trial `{trial}` is not recruiting: {reason}")]
    TrialNotActive { trial: String, reason: String },
    #[error("trial `{0}` is paused: it enrols no patient until an admin resumes it")]
    TrialPaused(String),
    #[error("trial `{0}` is closed: it enrols no more patients")]
    TrialClosed(String),
    #[error("site `{site}` of trial `{trial}` is closed to enrolment")]
    SiteClosed { trial: String, site: String },
    #[error(
        "cluster `{cluster}` was randomised to arm `{arm}`, which the current protocol no longer \
         has; its members cannot be enrolled"
    )]
    ClusterArmClosed { cluster: String, arm: String },
    #[error(
        "CloudEvent `{id}` from `{ce_source}` was received before with other content; send another \
         event under a new id"
    )]
    CloudEventConflict { ce_source: String, id: String },
    #[error("the enrolment service is shutting down")]
    Unavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CodedError for EnrolError {
    fn code(&self) -> Code {
        match self {
            EnrolError::TrialNotFound(_) => Code::TrialNotFound,
            EnrolError::Forbidden(_) => Code::Forbidden,
            EnrolError::Invalid(_) => Code::InvalidEnrolment,
            EnrolError::NotEligible { .. } => Code::NotEligible,
            EnrolError::AlreadyRandomised { .. } => Code::AlreadyRandomised,
            EnrolError::RecordConflict(_) => Code::RecordConflict,
            EnrolError::Objected(_) => Code::Objected,
            EnrolError::TrialNotActive { .. } => Code::TrialNotActive,
            EnrolError::TrialPaused(_) => Code::TrialPaused,
            EnrolError::TrialClosed(_) => Code::TrialClosed,
            EnrolError::SiteClosed { .. } => Code::SiteClosed,
            EnrolError::ClusterArmClosed { .. } => Code::ClusterArmClosed,
            EnrolError::CloudEventConflict { .. } => Code::CloudEventConflict,
            EnrolError::Unavailable => Code::Unavailable,
            EnrolError::Store(e) => e.code(),
        }
    }

    fn public_message(&self) -> String {
        match self {
            EnrolError::Store(e) => e.public_message(),
            other => other.to_string(),
        }
    }

    fn details(&self) -> Map<String, Value> {
        match self {
            EnrolError::Invalid(fields) => detail("fields", fields),
            EnrolError::NotEligible { reasons } => detail("reasons", reasons),
            EnrolError::AlreadyRandomised {
                record_id: Some(record_id),
                ..
            } => detail("record_id", record_id),
            _ => Map::new(),
        }
    }
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}
