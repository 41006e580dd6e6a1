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
async fn withdraw(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((trial, record_id)): Path<(String, String)>,
    ApiJson(body): ApiJson,
) -> Result<Response, ApiError> {
    let done = participation::withdraw_for(&state, &principal, &trial, &record_id, &body).await?;
    Ok((StatusCode::CREATED, Json(done)).into_response())
}

/// Confirm a deferred consent: `{"kind", "taken_by", "taken_at"}` → 201.
async fn confirm_consent(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((trial, record_id)): Path<(String, String)>,
    ApiJson(body): ApiJson,
) -> Result<Response, ApiError> {
    let done = participation::confirm_for(&state, &principal, &trial, &record_id, &body).await?;
    Ok((StatusCode::CREATED, Json(done)).into_response())
}

/// Add a subject to the objection list: `{"subject"}` → 201 (200 when already on it).
async fn add_objection(
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

async fn list_objections(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
) -> Result<Response, ApiError> {
    let list = participation::objections_for(&state, &principal, &trial).await?;
    Ok(Json(serde_json::json!({ "trial_id": trial, "objections": list })).into_response())
}

async fn remove_objection(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((trial, subject)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let done =
        participation::change_objection_for(&state, &principal, &trial, &subject, false).await?;
    Ok(Json(done).into_response())
}
