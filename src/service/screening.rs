//! Eligible patients the register reports as *not* randomised, with the reason: the other half
//! of the screening log, which the CONSORT-ROUTINE flow and the inclusion rate need.

use serde::Serialize;
use serde_json::Value;

use super::enrol::{EnrolError, EnrolmentRequest};
use super::{Principal, Role, TrialRegistry};
use crate::protocol;
use crate::randomise::Timestamp;
use crate::store::allocations;
use crate::store::audit::NewEntry;
use crate::store::batch::{self, BatchWrite};
use crate::store::screening_log::{self, ScreeningRow};
use crate::store::Store;

/// Reasons an eligible patient was not randomised, as the national R-RCT interface lists them.
pub const REASONS: [&str; 4] = [
    "consent_declined",
    "clinician_decision",
    "system_not_used",
    "other",
];

/// The recorded report, as returned to the register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ScreeningReport {
    pub trial_id: String,
    pub record_id: String,
    pub subject: String,
    pub site: String,
    pub outcome: &'static str,
    pub reason: String,
    pub recorded_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScreeningOutcome {
    Created(ScreeningReport),
    /// The same report was received before.
    Replayed(ScreeningReport),
}

/// Record that an eligible patient was not randomised. Idempotent by `record_id`.
#[tracing::instrument(skip_all, fields(trial = %trial_id), err(level = tracing::Level::DEBUG))]
pub async fn report_not_randomised(
    store: &Store,
    registry: &TrialRegistry,
    principal: &Principal,
    trial_id: &str,
    body: &Value,
    now: Timestamp,
) -> Result<ScreeningOutcome, EnrolError> {
    let runtime = registry
        .get(trial_id)
        .ok_or_else(|| EnrolError::TrialNotFound(trial_id.to_string()))?;
    if principal.role != Role::Register || !principal.may_access_trial(trial_id) {
        return Err(EnrolError::Forbidden(format!(
            "a `register` token for trial `{trial_id}` is needed to report screenings"
        )));
    }
    let request = EnrolmentRequest::from_json_with(body, &["reason", protocol::CONSENT])
        .map_err(EnrolError::Invalid)?;
    let reason = match body.get("reason") {
        Some(Value::String(r)) if REASONS.contains(&r.as_str()) => r.clone(),
        other => {
            return Err(EnrolError::Invalid(vec![protocol::FieldError {
                field: "reason".into(),
                message: format!(
                    "reason must be one of {}, got {}",
                    REASONS.join(", "),
                    other.map_or_else(|| "nothing".to_string(), Value::to_string)
                ),
            }]))
        }
    };
    if !principal.may_access_site(&request.site) {
        return Err(EnrolError::Forbidden(format!(
            "this token may not report for site `{}`",
            request.site
        )));
    }
    let protocol = &runtime.protocol;
    let values = protocol::parse_enrolment(protocol, &request.site, &request.fields)
        .map_err(EnrolError::Invalid)?;
    let refusals = protocol::check_eligibility(protocol, &values);
    if !refusals.is_empty() {
        return Err(EnrolError::NotEligible {
            reasons: serde_json::to_value(&refusals).unwrap_or(Value::Null),
        });
    }
    let report = |recorded_at: String| ScreeningReport {
        trial_id: trial_id.to_string(),
        record_id: request.record_id.clone(),
        subject: request.subject.clone(),
        site: request.site.clone(),
        outcome: "not_randomised",
        reason: reason.clone(),
        recorded_at,
    };
    let mut tx = store.begin_write().await?;
    // A subject randomised anywhere in the trial (under this record or another, at any site)
    // cannot also be screened out.
    if let Some(a) = allocations::existing(
        &mut tx,
        trial_id,
        &[&request.record_id],
        &[&request.subject],
    )
    .await?
    .into_iter()
    .next()
    {
        tx.rollback().await?;
        return Err(EnrolError::AlreadyRandomised {
            subject: a.subject,
            record_id: super::enrol::visible_record(
                &a.record_id,
                Some(&a.site_code),
                principal.site_code.as_deref(),
            ),
        });
    }
    let earlier =
        screening_log::screenings_of_record(&mut tx, trial_id, &request.record_id).await?;
    if let Some((_, sha, _, at)) = earlier.iter().find(|(o, ..)| o == "not_randomised") {
        tx.rollback().await?;
        return if *sha == request.request_sha256 {
            Ok(ScreeningOutcome::Replayed(report(at.clone())))
        } else {
            Err(EnrolError::RecordConflict(request.record_id.clone()))
        };
    }
    let now = now.to_string();
    let batch = BatchWrite {
        screening: vec![ScreeningRow {
            trial_id: trial_id.to_string(),
            record_id: request.record_id.clone(),
            subject: request.subject.clone(),
            site_code: request.site.clone(),
            outcome: "not_randomised".into(),
            reasons: serde_json::json!([{ "reason": reason }]).to_string(),
            fields: Value::Object(request.fields.clone()).to_string(),
            request_sha256: request.request_sha256.clone(),
            protocol_version: protocol.version.clone(),
            randomisation_number: None,
            screened_at: now.clone(),
        }],
        audit: vec![NewEntry {
            actor: principal.actor.clone(),
            action: "screened_not_randomised".into(),
            trial_id: Some(trial_id.to_string()),
            payload: serde_json::json!({
                "record_id": request.record_id,
                "subject": request.subject,
                "site": request.site,
                "reason": reason,
                "request_sha256": request.request_sha256,
            }),
        }],
        ..Default::default()
    };
    batch::write_batch_and_commit(tx, &batch).await?;
    Ok(ScreeningOutcome::Created(report(now)))
}
