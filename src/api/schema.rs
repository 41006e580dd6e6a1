//! The shapes the OpenAPI document ([`super::openapi`]) gives request bodies and failures.
//! The handlers read bodies strictly as JSON values and the services validate them field by
//! field, so their shapes are written down once, here, for the document (and for the clients
//! generated from it); the fuzzing in CI holds the server to them.

use std::collections::BTreeMap;

use utoipa::ToSchema;

/// Every failure's body: `{"error": {"code": "snake_case", "message": "...", ...details}}`.
/// The codes are stable (see the error table in the README); details depend on the code
/// (`errors` lists each bad field or row, for example).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// The stable error code, e.g. `not_eligible`, `trial_not_found`.
    pub code: String,
    /// For people; not to be parsed.
    pub message: String,
}

/// An enrolment: the register's record, the pseudonymous subject, the site, and the fields the
/// trial's protocol declares (their names and types differ by trial; the protocol says which).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EnrolmentBody {
    /// The register's id of this enrolment attempt; the idempotency key.
    pub record_id: String,
    /// Pseudonymous subject id (never a personal identity number).
    pub subject: String,
    /// Site code, as the protocol declares it.
    pub site: String,
    /// The protocol's enrolment fields by name.
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Arms the patient cannot receive (trials that allow it).
    pub ineligible_arms: Option<Vec<String>>,
    /// The consent taken, as the protocol's consent model asks (required for oral and written
    /// consent; absent under a waiver; `deferred` without who and when).
    pub consent: Option<ConsentBody>,
}

/// A consent: `kind` one of `oral`, `written`, `deferred`, `opt_out_not_objected`; who took it
/// and when (YYYY-MM-DD), except for a consent still deferred or an opt-out.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ConsentBody {
    pub kind: String,
    pub taken_by: Option<String>,
    pub taken_at: Option<String>,
}

/// A withdrawal: the day, and how far it goes (`no_further_contact`,
/// `no_further_data_collection`, or `data_use_withdrawn` where the protocol allows it).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WithdrawalBody {
    pub withdrawn_on: String,
    pub scope: String,
    pub reason: Option<String>,
}

/// A withdrawal recorded.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WithdrawalAnswer {
    pub trial_id: String,
    pub record_id: String,
    pub subject: String,
    pub randomisation_number: i64,
    pub scope: String,
    pub withdrawn_on: String,
    pub reason: Option<String>,
    pub recorded_by: String,
    pub recorded_at: String,
}

/// A deferred consent confirmed.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ConsentAnswer {
    pub trial_id: String,
    pub record_id: String,
    pub subject: String,
    pub randomisation_number: i64,
    pub kind: String,
    pub taken_by: String,
    pub taken_at: String,
    pub recorded_by: String,
    pub recorded_at: String,
    /// The last day the protocol allows for confirming.
    pub deadline: Option<String>,
    pub within_deadline: bool,
}

/// A subject for the objection list.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ObjectionBody {
    pub subject: String,
}

/// A change to an objection list (`changed`: false when the subject was already on it, or not
/// on it).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ObjectionAnswer {
    pub trial_id: String,
    pub subject: String,
    pub changed: bool,
}

/// A trial's objection list.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ObjectionList {
    pub trial_id: String,
    pub objections: Vec<serde_json::Value>,
}

/// An eligible patient who was not randomised, for the screening log.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ScreeningBody {
    pub record_id: String,
    pub subject: String,
    pub site: String,
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Why the patient was not randomised.
    pub reason: String,
}

/// A batch of follow-up events, stored all or nothing.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventBatch {
    pub events: Vec<EventRow>,
}

/// One follow-up event from a register.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventRow {
    /// The sender's id of the event; the idempotency key.
    pub event_id: String,
    pub subject: String,
    /// Event type, e.g. `death`, `mi` (`[a-z][a-z0-9_]*`).
    #[schema(rename = "type")]
    pub event_type: String,
    #[schema(format = Date)]
    pub date: String,
    /// Classification code, e.g. ICD-10 `I21.4`.
    pub code: Option<String>,
    pub value: Option<f64>,
    /// The register that sent it.
    pub source: Option<String>,
}

/// A reasoned administrative change.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ReasonBody {
    pub reason: String,
}

/// An emergency unblinding: why, and who asked.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UnblindBody {
    pub reason: String,
    pub person: String,
}

/// A JSON object whose shape depends on the trial (the analysis, the blinded summary).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AnyObject(BTreeMap<String, serde_json::Value>);

/// A FHIR R4 resource (`ResearchStudy`, `ResearchSubject`, `Bundle`, `CapabilityStatement`);
/// its shape is FHIR's.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FhirResource {
    /// The FHIR resource type.
    #[schema(rename = "resourceType")]
    pub resource_type: String,
}

/// A FHIR `OperationOutcome`: how the FHIR views answer a failure.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OperationOutcome {
    /// Always `OperationOutcome`.
    #[schema(rename = "resourceType")]
    pub resource_type: String,
    pub issue: Vec<OutcomeIssue>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OutcomeIssue {
    /// `error`.
    pub severity: String,
    /// FHIR's IssueType: `invalid`, `login`, `forbidden`, `not-found`, ...
    pub code: String,
    pub diagnostics: String,
}
