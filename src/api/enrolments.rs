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
