//! Enrolment: eligibility, stratified randomisation and durable allocation in one transaction.
//!
//! The order of checks is part of the contract with register hosts:
//! 1. the request must parse and its fields fit the protocol (`invalid_enrolment`, nothing stored);
//! 2. a `record_id` seen before answers from the store: the same body replays the allocation,
//!    another body is a `record_conflict` — this works even after recruitment has closed, so a
//!    register's retry of an acknowledged enrolment never fails;
//! 3. the trial must be recruiting and have an ethics approval (`trial_not_active`);
//! 4. a subject already randomised under another record is refused (`already_randomised`);
//! 5. an ineligible patient is refused with reasons, and the refusal is recorded in the screening
//!    log (identical retries are not recorded twice);
//! 6. otherwise the stratum's next slot is allocated, and allocation, stratum position, trial
//!    counter, screening-log row and audit entry are committed together.
//!
//! Steps 2–6 run under the trial row's lock, so concurrent enrolments of one trial, from any
//! number of server processes sharing the database, are serialised by the database itself.

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{Principal, Role, TrialRegistry, TrialRuntime};
use crate::protocol::{self, FieldError, TrialStatus};
use crate::randomise;
use crate::store::allocations::{self, AllocationRow, ScreeningRow};
use crate::store::{audit, now_text, Store, StoreError};

/// Longest accepted `record_id`, `subject` or `site`.
pub const MAX_ID_LEN: usize = 128;

/// A parsed enrolment request.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrolmentRequest {
    /// The register's identifier of this enrolment attempt (the idempotency key).
    pub record_id: String,
    /// Pseudonymous subject identifier.
    pub subject: String,
    pub site: String,
    pub fields: Map<String, Value>,
    /// SHA-256 of the canonical JSON of the whole body, to tell a retry from a different request.
    pub request_sha256: String,
}

impl EnrolmentRequest {
    /// Check the body's shape: `{"record_id","subject","site","fields":{...}}` and nothing else.
    pub fn from_json(body: &Value) -> Result<Self, Vec<FieldError>> {
        let err = |field: &str, message: String| FieldError {
            field: field.to_string(),
            message,
        };
        let Some(obj) = body.as_object() else {
            return Err(vec![err(
                "",
                "the body must be a JSON object with record_id, subject, site and fields".into(),
            )]);
        };
        let mut errors = Vec::new();
        for key in obj.keys() {
            if !matches!(key.as_str(), "record_id" | "subject" | "site" | "fields") {
                errors.push(err(
                    key,
                    format!("unknown key `{key}`: expected record_id, subject, site and fields"),
                ));
            }
        }
        let mut text = |name: &str| -> String {
            match obj.get(name) {
                None | Some(Value::Null) => {
                    errors.push(err(name, format!("{name} is required")));
                    String::new()
                }
                Some(Value::String(s)) if s.trim().is_empty() => {
                    errors.push(err(name, format!("{name} must not be empty")));
                    String::new()
                }
                Some(Value::String(s)) if s.chars().count() > MAX_ID_LEN => {
                    errors.push(err(
                        name,
                        format!("{name} is longer than {MAX_ID_LEN} characters"),
                    ));
                    String::new()
                }
                Some(Value::String(s)) if s.chars().any(char::is_control) => {
                    errors.push(err(name, format!("{name} contains control characters")));
                    String::new()
                }
                Some(Value::String(s)) => s.clone(),
                Some(other) => {
                    errors.push(err(
                        name,
                        format!("{name} must be a string, got {}", json_type(other)),
                    ));
                    String::new()
                }
            }
        };
        let record_id = text("record_id");
        let subject = text("subject");
        let site = text("site");
        if protocol::looks_like_personal_identity_number(&subject) {
            errors.push(err(
                "subject",
                "subject looks like a personal identity number; send the register's pseudonym"
                    .into(),
            ));
        }
        let fields = match obj.get("fields") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                errors.push(err(
                    "fields",
                    format!("fields must be an object, got {}", json_type(other)),
                ));
                Map::new()
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(EnrolmentRequest {
            record_id,
            subject,
            site,
            fields,
            request_sha256: hex::encode(Sha256::digest(canonical_json(body).as_bytes())),
        })
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// JSON with object keys sorted at every level, so the same request hashes the same whatever
/// key order the register's JSON library writes.
pub fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&m[k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

/// The allocation as returned to the register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Allocation {
    pub trial_id: String,
    pub record_id: String,
    pub subject: String,
    pub arm: String,
    pub arm_label: String,
    pub randomisation_number: i64,
    pub stratum: String,
    pub allocated_at: String,
    pub protocol_version: String,
}

impl Allocation {
    pub fn from_row(row: AllocationRow, runtime: &TrialRuntime) -> Self {
        let arm_label = runtime
            .protocol
            .arms
            .iter()
            .find(|a| a.id == row.arm)
            .map_or_else(|| row.arm.clone(), |a| a.label.clone());
        Allocation {
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
    #[error("subject `{subject}` is already randomised in this trial (record `{record_id}`)")]
    AlreadyRandomised { subject: String, record_id: String },
    #[error("record `{0}` was already submitted with a different body")]
    RecordConflict(String),
    #[error("trial `{trial}` is not recruiting: {reason}")]
    TrialNotActive { trial: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Enrol one patient: see the module documentation for the order of checks.
#[tracing::instrument(skip_all, fields(trial = %trial_id), err(level = tracing::Level::DEBUG))]
pub async fn enrol(
    store: &Store,
    registry: &TrialRegistry,
    principal: &Principal,
    trial_id: &str,
    body: &Value,
) -> Result<EnrolOutcome, EnrolError> {
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
    let request = EnrolmentRequest::from_json(body).map_err(EnrolError::Invalid)?;
    if !principal.may_access_site(&request.site) {
        return Err(EnrolError::Forbidden(format!(
            "this token may not enrol at site `{}`",
            request.site
        )));
    }
    let protocol = &runtime.protocol;
    let values = protocol::parse_enrolment(protocol, &request.site, &request.fields)
        .map_err(EnrolError::Invalid)?;
    let refusals = protocol::check_eligibility(protocol, &values);
    let stratum = protocol::stratum(protocol, &values);
    // A concurrent identical request may win the race to insert; one retry then finds its
    // allocation through the replay path.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match decide(
            store,
            &runtime,
            principal,
            &request,
            &values,
            &refusals,
            &stratum.key,
        )
        .await
        {
            Err(EnrolError::Store(e)) if e.is_unique_violation() && attempt < 2 => continue,
            other => return other,
        }
    }
}

async fn decide(
    store: &Store,
    runtime: &TrialRuntime,
    principal: &Principal,
    request: &EnrolmentRequest,
    values: &protocol::EnrolmentValues,
    refusals: &[protocol::Ineligibility],
    stratum: &str,
) -> Result<EnrolOutcome, EnrolError> {
    let protocol = &runtime.protocol;
    let trial_id = protocol.trial_id.as_str();
    let mut tx = store.begin_write().await?;
    let Some((status, next_number)) =
        allocations::lock_trial(tx.conn(), store.backend(), trial_id).await?
    else {
        return Err(EnrolError::TrialNotFound(trial_id.to_string()));
    };

    if let Some(existing) = allocations::by_record(tx.conn(), trial_id, &request.record_id).await?
    {
        tx.rollback().await?;
        return if existing.request_sha256 == request.request_sha256 {
            Ok(EnrolOutcome::Replayed(Allocation::from_row(existing, runtime)))
        } else {
            Err(EnrolError::RecordConflict(request.record_id.clone()))
        };
    }

    let status = TrialStatus::parse(&status)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown trial status `{status}`")))?;
    let not_active = if status != TrialStatus::Recruiting {
        Some(format!("its status is `{}`", status.as_str()))
    } else if protocol.ethics_approval.is_none() {
        Some("no ethics approval is recorded in its protocol".to_string())
    } else {
        None
    };
    if let Some(reason) = not_active {
        tx.rollback().await?;
        return Err(EnrolError::TrialNotActive {
            trial: trial_id.to_string(),
            reason,
        });
    }

    if let Some(existing) = allocations::by_subject(tx.conn(), trial_id, &request.subject).await? {
        tx.rollback().await?;
        return Err(EnrolError::AlreadyRandomised {
            subject: request.subject.clone(),
            record_id: existing.record_id,
        });
    }

    let fields_json = Value::Object(request.fields.clone()).to_string();
    let now = now_text();
    if !refusals.is_empty() {
        let reasons = serde_json::to_value(refusals).unwrap_or(Value::Null);
        if let Some(earlier) = allocations::earlier_refusal(
            tx.conn(),
            trial_id,
            &request.record_id,
            &request.request_sha256,
        )
        .await?
        {
            tx.rollback().await?;
            let reasons = serde_json::from_str(&earlier).unwrap_or(reasons);
            return Err(EnrolError::NotEligible { reasons });
        }
        allocations::insert_screening(
            tx.conn(),
            &ScreeningRow {
                trial_id: trial_id.to_string(),
                record_id: request.record_id.clone(),
                subject: request.subject.clone(),
                site_code: request.site.clone(),
                outcome: "not_eligible".into(),
                reasons: reasons.to_string(),
                fields: fields_json,
                request_sha256: request.request_sha256.clone(),
                protocol_version: protocol.version.clone(),
                randomisation_number: None,
                screened_at: now,
            },
        )
        .await?;
        audit::append(
            tx.conn(),
            &principal.actor,
            "screened_not_eligible",
            Some(trial_id),
            &serde_json::json!({
                "record_id": request.record_id,
                "subject": request.subject,
                "site": request.site,
                "criteria": refusals.iter().map(|r| r.criterion.as_str()).collect::<Vec<_>>(),
                "request_sha256": request.request_sha256,
            }),
        )
        .await?;
        tx.commit().await?;
        return Err(EnrolError::NotEligible { reasons });
    }

    let state = allocations::stratum_state(tx.conn(), trial_id, stratum).await?;
    let decision = randomise::allocate(&runtime.scheme, &runtime.seed, trial_id, stratum, state);
    let arm = protocol
        .arms
        .get(decision.arm)
        .ok_or_else(|| StoreError::Corrupt(format!("arm index {} out of range", decision.arm)))?;
    let row = AllocationRow {
        trial_id: trial_id.to_string(),
        randomisation_number: next_number,
        record_id: request.record_id.clone(),
        subject: request.subject.clone(),
        site_code: request.site.clone(),
        arm: arm.id.clone(),
        stratum: stratum.to_string(),
        block_number: i64::try_from(decision.block_number)
            .map_err(|_| StoreError::Corrupt("block number overflow".into()))?,
        block_size: i64::from(decision.block_size),
        block_position: i64::from(decision.block_position),
        protocol_version: protocol.version.clone(),
        request_sha256: request.request_sha256.clone(),
        allocated_at: now.clone(),
    };
    allocations::insert(tx.conn(), &row, decision.next).await?;
    allocations::insert_screening(
        tx.conn(),
        &ScreeningRow {
            trial_id: trial_id.to_string(),
            record_id: request.record_id.clone(),
            subject: request.subject.clone(),
            site_code: request.site.clone(),
            outcome: "randomised".into(),
            reasons: "[]".into(),
            fields: fields_json,
            request_sha256: request.request_sha256.clone(),
            protocol_version: protocol.version.clone(),
            randomisation_number: Some(next_number),
            screened_at: now,
        },
    )
    .await?;
    audit::append(
        tx.conn(),
        &principal.actor,
        "randomised",
        Some(trial_id),
        &serde_json::json!({
            "record_id": row.record_id,
            "subject": row.subject,
            "site": row.site_code,
            "randomisation_number": row.randomisation_number,
            "arm": row.arm,
            "stratum": row.stratum,
            "block_number": row.block_number,
            "block_size": row.block_size,
            "block_position": row.block_position,
            "derived": values,
            "request_sha256": row.request_sha256,
            "protocol_version": row.protocol_version,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(EnrolOutcome::Created(Allocation::from_row(row, runtime)))
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
    let Some(row) = allocations::get(store, trial_id, record_id).await? else {
        return Ok(None);
    };
    if !principal.may_access_site(&row.site_code) {
        // Do not reveal that the record exists at another site.
        return Ok(None);
    }
    Ok(Some(Allocation::from_row(row, &runtime)))
}
