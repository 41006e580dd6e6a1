//! Enrolment: eligibility, stratified randomisation and durable allocation in one transaction.
//!
//! The order of checks is part of the contract with register hosts:
//! 1. the request must parse and its fields (and `ineligible_arms`, when the protocol has arm
//!    eligibility, and `consent`, as the protocol's consent model asks: see
//!    [`crate::protocol::parse_enrolment_consent`]) fit the protocol (`invalid_enrolment`,
//!    nothing stored);
//! 2. a `record_id` seen before answers from the store: the same body replays the allocation,
//!    another body is a `record_conflict` — this works even after recruitment has closed, so a
//!    register's retry of an acknowledged enrolment never fails;
//! 3. the trial's lifecycle must be active (`trial_closed`, `trial_paused`: see
//!    [`super::lifecycle`]), its protocol must say it is recruiting and have an ethics approval
//!    (`trial_not_active`), and the site must be open (`site_closed`);
//! 4. a subject already randomised under another record is refused (`already_randomised`);
//! 5. an ineligible patient is refused with reasons, and the refusal is recorded in the screening
//!    log; an eligible patient on the trial's objection (opt-out) list is refused (`objected`)
//!    and recorded in the screening log as not randomised for reason `objected`, so the flow
//!    counts them (identical retries are recorded once either way);
//! 6. otherwise the patient is allocated by the protocol's procedure (a cluster member inherits
//!    its cluster's arm), and allocation, stratum position, trial counter, the counts the
//!    adaptive procedures balance, the cluster's arm, screening-log row and audit entry are
//!    committed together.
//!
//! The counts (per-stratum arm counts, trial-wide minimisation marginals, cluster arms) are
//! read for the keys a batch needs, updated in memory as the batch decides in arrival order —
//! so enrolments decided together see each other — and written back once per batch.
//!
//! Steps 2–6 run in one write transaction, which holds the database's single writer lock (see
//! the `store` module), so concurrent enrolments, from any number of server processes sharing
//! the database, are serialised by the database itself.
//!
//! # Layout
//! - [`request`]: the enrolment body as sent, checked for shape (no database);
//! - [`outcome`]: the allocation as returned and the reasons an enrolment is refused;
//! - this module: the checks that need no database (token, fields, eligibility, stratum), then
//!   the hand-over to the queue; and reading an allocation back;
//! - [`queue`]: the group-commit queue that decides waiting enrolments in batches;
//! - [`decide`]: one batch's transaction, deciding each enrolment in arrival order.

mod decide;
pub mod outcome;
mod queue;
pub mod request;

use serde_json::Value;

pub use outcome::{answer, Allocation, EnrolError, EnrolOutcome};

use crate::service::answer::Answer;
pub use queue::{EnrolmentQueue, MAX_BATCH};
pub use request::{canonical_json, EnrolmentRequest, MAX_ID_LEN};

use super::{Principal, Role, TrialRegistry};
use crate::protocol::{self, FieldError};
use crate::randomise::sequence;
use crate::store::{allocations, Store};
pub(crate) use decide::visible_record;
use decide::Pending;

/// Enrol one patient: see the module documentation for the order of checks.
#[tracing::instrument(skip_all, fields(trial = %trial_id), err(level = tracing::Level::DEBUG))]
pub async fn enrol(
    queue: &EnrolmentQueue,
    registry: &TrialRegistry,
    principal: &Principal,
    trial_id: &str,
    body: &Value,
) -> Result<EnrolOutcome, EnrolError> {
    let started = std::time::Instant::now();
    let outcome = match prepare(registry, principal, trial_id, body, None) {
        Ok(pending) => queue.submit(pending).await,
        Err(e) => Err(e),
    };
    count(queue, registry, trial_id, outcome.as_ref(), started);
    outcome
}

/// Count an answered enrolment in the metrics: its latency and outcome (never its arm).
fn count(
    queue: &EnrolmentQueue,
    registry: &TrialRegistry,
    trial_id: &str,
    outcome: Result<&EnrolOutcome, &EnrolError>,
    started: std::time::Instant,
) {
    use super::error::CodedError;
    let what = match outcome {
        Ok(EnrolOutcome::Created(_)) => "randomised",
        Ok(EnrolOutcome::Replayed(_)) => "replayed",
        Ok(EnrolOutcome::Kept(_)) => "replayed",
        Err(e) => e.code().as_str(),
    };
    // A trial not served here is counted under one label, so clients cannot make labels up.
    let trial = if registry.get(trial_id).is_some() {
        trial_id
    } else {
        "unknown"
    };
    queue.metrics.enrolment(trial, what, started.elapsed());
}

/// The key an enrolment sent as a CloudEvent is answered under: the sender's scope, the
/// event's `(source, id)`, its type and the hash of its content.
#[derive(Debug, Clone)]
pub struct CloudEventKey {
    pub scope: String,
    pub source: String,
    pub id: String,
    pub ce_type: String,
    pub content_sha256: String,
}

/// Where an enrolment sent as a CloudEvent ended.
#[derive(Debug)]
pub enum Decided {
    /// Decided in an enrolment batch, which also looked for an answer kept under the event's
    /// key and kept this one (when final) in the same transaction: the answer to send.
    Queued(Answer),
    /// Refused before reaching the queue (checks that need no database); nothing was looked
    /// up or kept.
    Refused(EnrolError),
}

/// Enrol one patient sent as a CloudEvent: as [`enrol`], with the answer kept under `key` in
/// the batch's own transaction — under the writer lock, so two deliveries of one key are
/// decided one after the other: the second gets the first's answer (or a conflict when its
/// content differs), and the answer is durable exactly when the allocation is.
pub async fn enrol_event(
    queue: &EnrolmentQueue,
    registry: &TrialRegistry,
    principal: &Principal,
    trial_id: &str,
    body: &Value,
    key: CloudEventKey,
) -> Decided {
    let started = std::time::Instant::now();
    match prepare(registry, principal, trial_id, body, Some(key)) {
        Ok(pending) => {
            let outcome = queue.submit(pending).await;
            count(queue, registry, trial_id, outcome.as_ref(), started);
            Decided::Queued(answer(&outcome))
        }
        Err(e) => {
            count(queue, registry, trial_id, Err(&e), started);
            Decided::Refused(e)
        }
    }
}

/// The checks that need no database, giving the enrolment the queue decides.
fn prepare(
    registry: &TrialRegistry,
    principal: &Principal,
    trial_id: &str,
    body: &Value,
    cloud_event: Option<CloudEventKey>,
) -> Result<Pending, EnrolError> {
    let runtime = registry
        .get(trial_id)
        .ok_or_else(|| EnrolError::TrialNotFound(trial_id.to_string()))?;
    if principal.role != Role::Register {
        return Err(EnrolError::Forbidden(format!(
            "role `{}` cannot enrol patients; a `register` token is needed",
            principal.role.as_str()
        )));
    }
    if !principal.may_access_trial(trial_id) {
        return Err(EnrolError::Forbidden(format!(
            "this token is not valid for trial `{trial_id}`"
        )));
    }
    let request =
        EnrolmentRequest::from_json_with(body, &[protocol::INELIGIBLE_ARMS, protocol::CONSENT])
            .map_err(EnrolError::Invalid)?;
    if !principal.may_access_site(&request.site) {
        return Err(EnrolError::Forbidden(format!(
            "this token may not enrol at site `{}`",
            request.site
        )));
    }
    let protocol = &runtime.protocol;
    // Every problem at once: the arm list's and the fields'.
    let eligible = protocol::parse_ineligible_arms(protocol, body.get(protocol::INELIGIBLE_ARMS));
    let values = protocol::parse_enrolment(protocol, &request.site, &request.fields);
    let consent = protocol::parse_enrolment_consent(protocol, body.get(protocol::CONSENT));
    let (eligible, values, consent) = match (eligible, values, consent) {
        (Ok(eligible), Ok(values), Ok(consent)) => (eligible, values, consent),
        (eligible, values, consent) => {
            let mut errors: Vec<FieldError> = eligible.err().into_iter().collect();
            errors.extend(values.err().unwrap_or_default());
            errors.extend(consent.err().unwrap_or_default());
            return Err(EnrolError::Invalid(errors));
        }
    };
    let refusals = protocol::check_eligibility(protocol, &values);
    let judged = sequence::judge(protocol, &runtime.scheme, &values, eligible);
    Ok(Pending {
        runtime,
        actor: principal.actor.clone(),
        request,
        values,
        refusals,
        judged,
        consent,
        site_scope: principal.site_code.clone(),
        cloud_event,
    })
}

/// Look up an enrolment's allocation for a caller allowed to see it.
pub async fn lookup(
    store: &Store,
    registry: &TrialRegistry,
    principal: &Principal,
    trial_id: &str,
    record_id: &str,
) -> Result<Option<Allocation>, EnrolError> {
    let runtime = registry
        .get(trial_id)
        .ok_or_else(|| EnrolError::TrialNotFound(trial_id.to_string()))?;
    if !matches!(principal.role, Role::Register | Role::Admin) {
        return Err(EnrolError::Forbidden(format!(
            "role `{}` may not see individual allocations",
            principal.role.as_str()
        )));
    }
    if !principal.may_access_trial(trial_id) {
        return Err(EnrolError::Forbidden(format!(
            "this token is not valid for trial `{trial_id}`"
        )));
    }
    let record_id = crate::identity::canonical_id(record_id).map_err(|e| {
        EnrolError::Invalid(vec![FieldError {
            field: "record_id".into(),
            message: format!("record_id {e}"),
        }])
    })?;
    let Some(row) = allocations::get(store, trial_id, &record_id).await? else {
        return Ok(None);
    };
    if !principal.may_access_site(&row.site_code) {
        // Do not reveal that the record exists at another site.
        return Ok(None);
    }
    Ok(Some(Allocation::from_row(row, &runtime)))
}
