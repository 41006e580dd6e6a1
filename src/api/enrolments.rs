//! `POST /api/v1/trials/{trial}/enrolments` and `GET .../enrolments/{record_id}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::auth::Authenticated;
use super::error::ApiError;
use super::ApiJson;
use crate::service::enrol::{self, EnrolOutcome};
use crate::service::error::Code;
use crate::service::{randomised_in_error, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/trials/{trial}/enrolments", post(create))
        .route("/api/v1/trials/{trial}/enrolments/{record_id}", get(show))
        .route(
            "/api/v1/trials/{trial}/enrolments/{record_id}/error",
            post(mark_error),
        )
}

/// Mark an allocation randomised in error (admin only): `{"reason": "..."}` → 201 with the mark.
#[utoipa::path(
    post,
    path = "/api/v1/trials/{trial}/enrolments/{record_id}/error",
    tag = "enrolment",
    summary = "Mark an allocation randomised in error (admins)",
    params(("trial" = String, Path, description = "The trial id", example = "taste"), ("record_id" = String, Path, description = "The register's record id of the enrolment")),
    request_body(content = crate::api::schema::ReasonBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Marked", body = crate::service::randomised_in_error::MarkedInError),
        (status = 400, description = "The body is not JSON, or repeats a key (`malformed_json`)", body = crate::api::schema::ErrorBody),
        (status = 413, description = "The body is too large (`payload_too_large`)", body = crate::api::schema::ErrorBody),
        (status = 415, description = "The body is not declared `application/json` (`unsupported_media_type`)", body = crate::api::schema::ErrorBody),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial or enrolment", body = crate::api::schema::ErrorBody),
        (status = 409, description = "Already marked (`already_marked_in_error`)", body = crate::api::schema::ErrorBody),
        (status = 422, description = "The body is invalid (`invalid_request`)", body = crate::api::schema::ErrorBody),
    )
)]
async fn mark_error(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((trial, record_id)): Path<(String, String)>,
    ApiJson(body): ApiJson,
) -> Result<Response, ApiError> {
    let marked =
        randomised_in_error::mark_for(&state, &principal, &trial, &record_id, &body).await?;
    Ok((StatusCode::CREATED, Json(marked)).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/trials/{trial}/enrolments",
    tag = "enrolment",
    summary = "Enrol and randomise one patient",
    description = "Checks eligibility, randomises and records the allocation in one transaction. Idempotent by `record_id`: the same body again answers 200 with the same allocation.",
    params(("trial" = String, Path, description = "The trial id", example = "taste")),
    request_body(content = crate::api::schema::EnrolmentBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Randomised", body = crate::service::enrol::Allocation),
        (status = 200, description = "The same enrolment again: its allocation", body = crate::service::enrol::Allocation),
        (status = 400, description = "The body is not JSON, or repeats a key (`malformed_json`)", body = crate::api::schema::ErrorBody),
        (status = 413, description = "The body is too large (`payload_too_large`)", body = crate::api::schema::ErrorBody),
        (status = 415, description = "The body is not declared `application/json` (`unsupported_media_type`)", body = crate::api::schema::ErrorBody),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial served here (`trial_not_found`)", body = crate::api::schema::ErrorBody),
        (status = 409, description = "Already randomised, the record id reused with another body, or the trial or site not recruiting", body = crate::api::schema::ErrorBody),
        (status = 422, description = "Invalid fields (`invalid_enrolment`) or not eligible (`not_eligible`, recorded in the screening log)", body = crate::api::schema::ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
    ApiJson(body): ApiJson,
) -> Result<Response, ApiError> {
    let outcome = enrol::enrol(&state.enrolments, &state.trials, &principal, &trial, &body).await?;
    Ok(match outcome {
        EnrolOutcome::Created(a) => (StatusCode::CREATED, Json(a)).into_response(),
        EnrolOutcome::Replayed(a) => (StatusCode::OK, Json(a)).into_response(),
        // Only enrolments sent as CloudEvents are answered from a kept answer.
        EnrolOutcome::Kept(answer) => (
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK),
            Json(answer.body),
        )
            .into_response(),
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/trials/{trial}/enrolments/{record_id}",
    tag = "enrolment",
    summary = "Read an enrolment's allocation",
    params(("trial" = String, Path, description = "The trial id", example = "taste"), ("record_id" = String, Path, description = "The register's record id of the enrolment")),
    responses(
        (status = 200, description = "The allocation", body = crate::service::enrol::Allocation),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial (`trial_not_found`) or enrolment visible to this token (`enrolment_not_found`)", body = crate::api::schema::ErrorBody),
        (status = 422, description = "The record id is not in canonical form (`invalid_enrolment`)", body = crate::api::schema::ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((trial, record_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    match enrol::lookup(&state.store, &state.trials, &principal, &trial, &record_id).await? {
        Some(a) => Ok(Json(a).into_response()),
        None => Err(ApiError::new(
            Code::EnrolmentNotFound,
            format!("no enrolment `{record_id}` in trial `{trial}`"),
        )),
    }
}
