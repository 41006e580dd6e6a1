//! `POST /api/v1/trials/{trial}/enrolments` and `GET .../enrolments/{record_id}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use super::auth::Authenticated;
use super::error::{ApiError, ErrorCode};
use super::{ApiJson, AppState};
use crate::service::enrol::{self, EnrolOutcome};
use crate::service::{randomised_in_error, Role};

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
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    if state.trials.get(&trial).is_none() {
        return Err(ApiError::new(
            ErrorCode::TrialNotFound,
            format!("no trial `{trial}` is served here"),
        ));
    }
    if principal.role != Role::Admin || !principal.may_access_trial(&trial) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("an `admin` token for trial `{trial}` is needed to mark an allocation randomised in error"),
        ));
    }
    let reason = randomised_in_error::reason_from_json(&body)?;
    let marked =
        randomised_in_error::mark(&state.store, &trial, &record_id, &reason, &principal.actor)
            .await?;
    Ok((StatusCode::CREATED, Json(marked)).into_response())
}

async fn create(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let outcome = enrol::enrol(&state.enrolments, &state.trials, &principal, &trial, &body).await?;
    Ok(match outcome {
        EnrolOutcome::Created(a) => (StatusCode::CREATED, Json(a)).into_response(),
        EnrolOutcome::Replayed(a) => (StatusCode::OK, Json(a)).into_response(),
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
            ErrorCode::EnrolmentNotFound,
            format!("no enrolment `{record_id}` in trial `{trial}`"),
        )),
    }
}
