//! A patient's consent and withdrawal after randomisation, and the trial's objection list:
//! `POST /api/v1/trials/{trial}/enrolments/{record_id}/withdrawal`,
//! `POST /api/v1/trials/{trial}/enrolments/{record_id}/consent` (a deferred consent confirmed),
//! `GET|POST /api/v1/trials/{trial}/objections` and
//! `DELETE /api/v1/trials/{trial}/objections/{subject}` (admin). The rules are the service's
//! ([`crate::service::participation`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};

use super::auth::Authenticated;
use super::error::ApiError;
use super::ApiJson;
use crate::service::{participation, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/trials/{trial}/enrolments/{record_id}/withdrawal",
            post(withdraw),
        )
        .route(
            "/api/v1/trials/{trial}/enrolments/{record_id}/consent",
            post(confirm_consent),
        )
        .route(
            "/api/v1/trials/{trial}/objections",
            post(add_objection).get(list_objections),
        )
        .route(
            "/api/v1/trials/{trial}/objections/{subject}",
            delete(remove_objection),
        )
}

/// Record a withdrawal: `{"withdrawn_on", "scope", "reason"?}` → 201.
#[utoipa::path(
    post,
    path = "/api/v1/trials/{trial}/enrolments/{record_id}/withdrawal",
    tag = "enrolment",
    summary = "Record a patient's withdrawal (no further contact, no further data collection, or data use withdrawn)",
    params(("trial" = String, Path, description = "The trial id", example = "taste"), ("record_id" = String, Path, description = "The register's record id of the enrolment")),
    request_body(content = crate::api::schema::WithdrawalBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Recorded", body = crate::api::schema::WithdrawalAnswer),
        (status = 400, description = "The body is not JSON, or repeats a key (`malformed_json`)", body = crate::api::schema::ErrorBody),
        (status = 413, description = "The body is too large (`payload_too_large`)", body = crate::api::schema::ErrorBody),
        (status = 415, description = "The body is not declared `application/json` (`unsupported_media_type`)", body = crate::api::schema::ErrorBody),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial or enrolment", body = crate::api::schema::ErrorBody),
        (status = 409, description = "Already withdrawn as far (`already_withdrawn`)", body = crate::api::schema::ErrorBody),
        (status = 422, description = "The body is invalid (`invalid_request`), or data use may not be withdrawn under this protocol (`data_use_withdrawal_not_allowed`)", body = crate::api::schema::ErrorBody),
    )
)]
pub(super) async fn withdraw(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((trial, record_id)): Path<(String, String)>,
    ApiJson(body): ApiJson,
) -> Result<Response, ApiError> {
    let done = participation::withdraw_for(&state, &principal, &trial, &record_id, &body).await?;
    Ok((StatusCode::CREATED, Json(done)).into_response())
}

/// Confirm a deferred consent: `{"kind", "taken_by", "taken_at"}` → 201.
#[utoipa::path(
    post,
    path = "/api/v1/trials/{trial}/enrolments/{record_id}/consent",
    tag = "enrolment",
    summary = "Confirm a deferred consent",
    params(("trial" = String, Path, description = "The trial id", example = "taste"), ("record_id" = String, Path, description = "The register's record id of the enrolment")),
    request_body(content = crate::api::schema::ConsentBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Confirmed", body = crate::api::schema::ConsentAnswer),
        (status = 400, description = "The body is not JSON, or repeats a key (`malformed_json`)", body = crate::api::schema::ErrorBody),
        (status = 413, description = "The body is too large (`payload_too_large`)", body = crate::api::schema::ErrorBody),
        (status = 415, description = "The body is not declared `application/json` (`unsupported_media_type`)", body = crate::api::schema::ErrorBody),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial or enrolment", body = crate::api::schema::ErrorBody),
        (status = 409, description = "The consent was not deferred (`consent_not_deferred`) or is confirmed already (`consent_already_confirmed`)", body = crate::api::schema::ErrorBody),
        (status = 422, description = "The body is invalid (`invalid_request`)", body = crate::api::schema::ErrorBody),
    )
)]
pub(super) async fn confirm_consent(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((trial, record_id)): Path<(String, String)>,
    ApiJson(body): ApiJson,
) -> Result<Response, ApiError> {
    let done = participation::confirm_for(&state, &principal, &trial, &record_id, &body).await?;
    Ok((StatusCode::CREATED, Json(done)).into_response())
}

/// Add a subject to the objection list: `{"subject"}` → 201 (200 when already on it).
#[utoipa::path(
    post,
    path = "/api/v1/trials/{trial}/objections",
    tag = "enrolment",
    summary = "Add a subject to the trial's objection list (admins): never randomised",
    params(("trial" = String, Path, description = "The trial id", example = "taste")),
    request_body(content = crate::api::schema::ObjectionBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Added", body = crate::api::schema::ObjectionAnswer),
        (status = 200, description = "Already on the list", body = crate::api::schema::ObjectionAnswer),
        (status = 400, description = "The body is not JSON, or repeats a key (`malformed_json`)", body = crate::api::schema::ErrorBody),
        (status = 413, description = "The body is too large (`payload_too_large`)", body = crate::api::schema::ErrorBody),
        (status = 415, description = "The body is not declared `application/json` (`unsupported_media_type`)", body = crate::api::schema::ErrorBody),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial (`trial_not_found`)", body = crate::api::schema::ErrorBody),
        (status = 422, description = "The subject is invalid (`invalid_request`)", body = crate::api::schema::ErrorBody),
    )
)]
pub(super) async fn add_objection(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
    ApiJson(body): ApiJson,
) -> Result<Response, ApiError> {
    let subject = participation::objection_from_json(&body)?;
    let done =
        participation::change_objection_for(&state, &principal, &trial, &subject, true).await?;
    let status = if done.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(done)).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/trials/{trial}/objections",
    tag = "enrolment",
    summary = "The trial's objection list (admins)",
    params(("trial" = String, Path, description = "The trial id", example = "taste")),
    responses(
        (status = 200, description = "The list", body = crate::api::schema::ObjectionList),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial (`trial_not_found`)", body = crate::api::schema::ErrorBody),
    )
)]
pub(super) async fn list_objections(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
) -> Result<Response, ApiError> {
    let list = participation::objections_for(&state, &principal, &trial).await?;
    Ok(Json(serde_json::json!({ "trial_id": trial, "objections": list })).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/trials/{trial}/objections/{subject}",
    tag = "enrolment",
    summary = "Take a subject off the trial's objection list (admins)",
    params(("trial" = String, Path, description = "The trial id", example = "taste"), ("subject" = String, Path, description = "The subject, as enrolments name it")),
    responses(
        (status = 200, description = "Taken off, or not on it", body = crate::api::schema::ObjectionAnswer),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial (`trial_not_found`)", body = crate::api::schema::ErrorBody),
        (status = 422, description = "The subject is invalid (`invalid_request`)", body = crate::api::schema::ErrorBody),
    )
)]
pub(super) async fn remove_objection(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((trial, subject)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let done =
        participation::change_objection_for(&state, &principal, &trial, &subject, false).await?;
    Ok(Json(done).into_response())
}
