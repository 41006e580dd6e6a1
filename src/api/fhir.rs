//! FHIR R4, read-only: a trial as a `ResearchStudy`, its randomised subjects as
//! `ResearchSubject`s (read by id, or searched by study in a paged `searchset` `Bundle`), the
//! server's `CapabilityStatement` at `/fhir/metadata`, and every failure as an
//! `OperationOutcome`, all as `application/fhir+json`.
//!
//! Who may read what, which subjects a site-scoped token sees and whether arms are shown are
//! decided by [`crate::service::subjects`] (with the policy of `service::auth`); this module
//! only shapes resources. Ids: a trial id's `_` (not allowed in a FHIR id) is written `.`
//! (never in a trial id), and a subject is `{study id}-{randomisation number}`. A subject's
//! `assignedArm` is its allocation; `actualArm` is not sent, since rrct knows the allocation,
//! not the treatment received.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::auth::Authenticated;
use super::error::{status, ApiError};
use crate::service::error::Code;
use crate::service::subjects::{self, Study, Subject, MAX_PAGE};
use crate::service::AppState;

/// The media type of every answer.
pub const FHIR_JSON: &str = "application/fhir+json";

/// Subjects on a search page unless `_count` says otherwise.
pub const DEFAULT_PAGE: i64 = 50;

/// The FHIR version served.
pub const FHIR_VERSION: &str = "4.0.1";

/// Identifier systems of rrct's ids.
const TRIAL_SYSTEM: &str = "urn:rrct:trial";
const SITE_SYSTEM: &str = "urn:rrct:site";
const SUBJECT_SYSTEM: &str = "urn:rrct:subject";
const SITE_EXTENSION: &str = "urn:rrct:fhir:StructureDefinition:research-subject-site";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/fhir/metadata", get(metadata))
        .route("/fhir/ResearchStudy/{id}", get(research_study))
        .route("/fhir/ResearchSubject", get(search_subjects))
        .route("/fhir/ResearchSubject/{id}", get(research_subject))
        .route("/fhir/{*rest}", get(unknown))
}

/// A FHIR answer: `value` as `application/fhir+json` with `status`.
fn fhir(status: StatusCode, value: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, FHIR_JSON)],
        value.to_string(),
    )
        .into_response()
}

/// A failure as an `OperationOutcome`, with the status of its code in the one table.
pub struct FhirError(ApiError);

impl From<ApiError> for FhirError {
    fn from(e: ApiError) -> Self {
        FhirError(e)
    }
}

impl<E: crate::service::error::CodedError> From<E> for FhirError {
    fn from(e: E) -> Self {
        FhirError(ApiError::from(e))
    }
}

/// The `OperationOutcome.issue.code` (FHIR's IssueType) of an error code.
fn issue_type(code: Code) -> &'static str {
    match status(code).as_u16() {
        400 => "invalid",
        401 => "login",
        403 => "forbidden",
        404 => "not-found",
        405 => "not-supported",
        408 => "timeout",
        409 => "conflict",
        413 => "too-costly",
        429 => "throttled",
        _ if code.is_fault() => "exception",
        _ => "processing",
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let FhirError(e) = self;
        let outcome = json!({
            "resourceType": "OperationOutcome",
            "issue": [{
                "severity": "error",
                "code": issue_type(e.code),
                "details": {
                    "coding": [{"system": "urn:rrct:error-code", "code": e.code.as_str()}],
                    "text": e.code.as_str(),
                },
                "diagnostics": e.message,
            }],
        });
        let mut response = fhir(status(e.code), outcome);
        if e.code == Code::Unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

fn not_found(what: &str) -> FhirError {
    FhirError(ApiError::new(Code::NotFound, what))
}

fn invalid(message: String) -> FhirError {
    FhirError(ApiError::new(Code::InvalidQuery, message))
}

/// The FHIR id of a trial.
pub fn study_id(trial_id: &str) -> String {
    trial_id.replace('_', ".")
}

/// The trial of a FHIR study id.
pub fn trial_of(study_id: &str) -> String {
    study_id.replace('.', "_")
}

/// The FHIR id of a subject.
pub fn subject_id(trial_id: &str, randomisation_number: i64) -> String {
    format!("{}-{randomisation_number}", study_id(trial_id))
}

/// The trial and randomisation number of a FHIR subject id.
fn subject_of_id(id: &str) -> Option<(String, i64)> {
    let (study, number) = id.rsplit_once('-')?;
    let number: i64 = number.parse().ok().filter(|n| *n > 0)?;
    (!study.is_empty() && number.to_string() == id[study.len() + 1..])
        .then(|| (trial_of(study), number))
}

/// The base URL requests came to (for a Bundle's absolute links).
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("localhost");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}/fhir")
}

fn site_reference(code: &str, name: Option<&str>) -> Value {
    let mut reference = json!({
        "type": "Location",
        "identifier": {"system": SITE_SYSTEM, "value": code},
    });
    if let Some(name) = name {
        reference["display"] = json!(name);
    }
    reference
}

/// The `ResearchStudy.status` of a trial: the admins' lifecycle first, then the protocol's.
fn study_status(study: &Study) -> &'static str {
    match (study.lifecycle.as_str(), study.protocol_status.as_str()) {
        ("closed", _) | (_, "closed") => "closed-to-accrual",
        ("paused", _) | (_, "paused") => "temporarily-closed-to-accrual",
        (_, "planned") => "approved",
        _ => "active",
    }
}

/// A trial as a `ResearchStudy`.
pub fn research_study_resource(study: &Study) -> Value {
    let mut resource = json!({
        "resourceType": "ResearchStudy",
        "id": study_id(&study.trial_id),
        "identifier": [{"system": TRIAL_SYSTEM, "value": study.trial_id}],
        "title": study.title,
        "status": study_status(study),
        "site": study.sites.iter()
            .map(|s| site_reference(&s.code, s.name.as_deref()))
            .collect::<Vec<_>>(),
    });
    let mut period = serde_json::Map::new();
    if let Some(start) = &study.first_randomised {
        period.insert("start".into(), json!(start));
    }
    if let Some(end) = &study.closed_at {
        period.insert("end".into(), json!(end));
    }
    if !period.is_empty() {
        resource["period"] = Value::Object(period);
    }
    if !study.arms.is_empty() {
        resource["arm"] = study
            .arms
            .iter()
            .map(|a| json!({"name": a.id, "description": a.label}))
            .collect();
    }
    resource
}

/// A randomised subject as a `ResearchSubject`.
pub fn research_subject_resource(subject: &Subject) -> Value {
    let mut resource = json!({
        "resourceType": "ResearchSubject",
        "id": subject_id(&subject.trial_id, subject.randomisation_number),
        "extension": [{
            "url": SITE_EXTENSION,
            "valueReference": site_reference(&subject.site_code, None),
        }],
        "identifier": [{
            "system": format!("{TRIAL_SYSTEM}:{}:randomisation-number", subject.trial_id),
            "value": subject.randomisation_number.to_string(),
        }],
        "status": "on-study",
        "period": {"start": subject.allocated_at},
        "study": {"reference": format!("ResearchStudy/{}", study_id(&subject.trial_id))},
        "individual": {
            "type": "Patient",
            "identifier": {"system": SUBJECT_SYSTEM, "value": subject.subject},
        },
    });
    if let Some(arm) = &subject.arm {
        resource["assignedArm"] = json!(arm.id);
    }
    resource
}

#[utoipa::path(
    get,
    path = "/fhir/metadata",
    tag = "fhir",
    summary = "The FHIR CapabilityStatement",
    security(()),
    responses(
        (status = 200, description = "The CapabilityStatement", body = crate::api::schema::FhirResource, content_type = "application/fhir+json"),
    )
)]
async fn metadata(State(state): State<AppState>) -> Response {
    let now = state.clock.now().to_string();
    fhir(
        StatusCode::OK,
        json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": now,
            "publisher": "rrct",
            "kind": "instance",
            "software": {"name": "rrct", "version": env!("CARGO_PKG_VERSION")},
            "implementation": {"description": "rrct: registry-based randomised trials, read-only FHIR view"},
            "fhirVersion": FHIR_VERSION,
            "format": [FHIR_JSON, "json"],
            "rest": [{
                "mode": "server",
                "security": {
                    "description": "Bearer tokens (Authorization: Bearer <token>) made by `rrct token create`; arms only for roles allowed to see them, a site-scoped token sees its own site's subjects only",
                },
                "resource": [
                    {
                        "type": "ResearchStudy",
                        "interaction": [{"code": "read"}],
                    },
                    {
                        "type": "ResearchSubject",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {"name": "study", "type": "reference", "documentation": "The trial: its id or ResearchStudy/{id} (required)"},
                            {"name": "_count", "type": "number", "documentation": format!("Subjects on a page, 1 to {MAX_PAGE} (default {DEFAULT_PAGE})")},
                        ],
                    },
                ],
            }],
        }),
    )
}

#[utoipa::path(
    get,
    path = "/fhir/ResearchStudy/{id}",
    tag = "fhir",
    summary = "A trial as a FHIR R4 ResearchStudy",
    params(("id" = String, Path, description = "The trial id (`_` written `.`)", example = "taste")),
    responses(
        (status = 200, description = "The ResearchStudy (arms only for roles that see them)", body = crate::api::schema::FhirResource, content_type = "application/fhir+json"),
        (status = 403, description = "A token that may not read the trial", body = crate::api::schema::OperationOutcome, content_type = "application/fhir+json"),
        (status = 404, description = "No such trial", body = crate::api::schema::OperationOutcome, content_type = "application/fhir+json"),
    )
)]
async fn research_study(
    State(state): State<AppState>,
    auth: Result<Authenticated, ApiError>,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let Authenticated(principal) = auth?;
    let study = subjects::study(&state, &principal, &trial_of(&id)).await?;
    Ok(fhir(StatusCode::OK, research_study_resource(&study)))
}

#[utoipa::path(
    get,
    path = "/fhir/ResearchSubject/{id}",
    tag = "fhir",
    summary = "A randomised subject as a FHIR R4 ResearchSubject",
    params(("id" = String, Path, description = "`{trial}-{randomisation number}`", example = "taste-1")),
    responses(
        (status = 200, description = "The ResearchSubject (assignedArm only for roles that see arms)", body = crate::api::schema::FhirResource, content_type = "application/fhir+json"),
        (status = 403, description = "A token that may not read the trial", body = crate::api::schema::OperationOutcome, content_type = "application/fhir+json"),
        (status = 404, description = "No such subject visible to this token", body = crate::api::schema::OperationOutcome, content_type = "application/fhir+json"),
    )
)]
async fn research_subject(
    State(state): State<AppState>,
    auth: Result<Authenticated, ApiError>,
    Path(id): Path<String>,
) -> Result<Response, FhirError> {
    let Authenticated(principal) = auth?;
    let Some((trial, number)) = subject_of_id(&id) else {
        return Err(not_found(&format!("no ResearchSubject `{id}`")));
    };
    match subjects::one(&state, &principal, &trial, number).await? {
        Some(subject) => Ok(fhir(StatusCode::OK, research_subject_resource(&subject))),
        None => Err(not_found(&format!("no ResearchSubject `{id}`"))),
    }
}

#[utoipa::path(
    get,
    path = "/fhir/ResearchSubject",
    tag = "fhir",
    summary = "The randomised subjects of a trial: a paged searchset Bundle",
    params(
        ("study" = String, Query, description = "The trial: its id or `ResearchStudy/{id}`", example = "taste"),
        ("_count" = Option<i64>, Query, description = "Subjects on a page, 1 to 500 (default 50)"),
        ("_cursor" = Option<i64>, Query, description = "Continue after this randomisation number (from a `next` link)"),
    ),
    responses(
        (status = 200, description = "A searchset Bundle with `total` and `self`/`next` links", body = crate::api::schema::FhirResource, content_type = "application/fhir+json"),
        (status = 400, description = "No study, or a bad `_count` or `_cursor`", body = crate::api::schema::OperationOutcome, content_type = "application/fhir+json"),
        (status = 403, description = "A token that may not read the trial", body = crate::api::schema::OperationOutcome, content_type = "application/fhir+json"),
        (status = 404, description = "No such trial", body = crate::api::schema::OperationOutcome, content_type = "application/fhir+json"),
    )
)]
async fn search_subjects(
    State(state): State<AppState>,
    auth: Result<Authenticated, ApiError>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, FhirError> {
    let Authenticated(principal) = auth?;
    let Query(query) = query.map_err(|e| invalid(format!("unreadable query: {e}")))?;
    let study = query
        .get("study")
        .map(|s| s.strip_prefix("ResearchStudy/").unwrap_or(s))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            invalid("the search needs `study` (a trial id or ResearchStudy/{id})".into())
        })?
        .to_string();
    let number = |name: &str, default: i64| -> Result<i64, FhirError> {
        match query.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .map_err(|_| invalid(format!("`{name}` must be a whole number, got `{v}`"))),
        }
    };
    let count = number("_count", DEFAULT_PAGE)?;
    let after = number("_cursor", 0)?;
    let page = subjects::page(&state, &principal, &trial_of(&study), after, count).await?;
    let base = base_url(&headers);
    let search = |after: i64| {
        let mut url = format!("{base}/ResearchSubject?study={study}&_count={count}");
        if after > 0 {
            url.push_str(&format!("&_cursor={after}"));
        }
        url
    };
    let mut links = vec![json!({"relation": "self", "url": search(after)})];
    if let Some(next) = page.next_after {
        links.push(json!({"relation": "next", "url": search(next)}));
    }
    let entries: Vec<Value> = page
        .subjects
        .iter()
        .map(|s| {
            let resource = research_subject_resource(s);
            json!({
                "fullUrl": format!("{base}/ResearchSubject/{}", resource["id"].as_str().unwrap_or_default()),
                "resource": resource,
                "search": {"mode": "match"},
            })
        })
        .collect();
    Ok(fhir(
        StatusCode::OK,
        json!({
            "resourceType": "Bundle",
            "type": "searchset",
            "total": page.total,
            "link": links,
            "entry": entries,
        }),
    ))
}

async fn unknown(Path(rest): Path<String>) -> FhirError {
    not_found(&format!(
        "no FHIR resource or operation at `{rest}`; see /fhir/metadata"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_go_both_ways() {
        assert_eq!(subject_id("a_b-c", 17), "a.b-c-17");
        assert_eq!(subject_of_id("a.b-c-17"), Some(("a_b-c".to_string(), 17)));
        assert_eq!(subject_of_id("taste-017"), None, "one spelling per number");
        assert_eq!(subject_of_id("taste-0"), None);
        assert_eq!(subject_of_id("taste"), None);
        assert_eq!(subject_of_id("-5"), None);
    }
}
