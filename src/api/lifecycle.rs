//! A trial's lifecycle, the seed's reveal and emergency unblinding:
//! `POST /api/v1/trials/{trial}/pause|resume|close` and
//! `POST /api/v1/trials/{trial}/sites/{site}/close|open` (admins, `{"reason": "..."}`),
//! `GET /api/v1/trials/{trial}/status` (any reader), `POST /api/v1/trials/{trial}/reveal-seed`
//! (admins, once the trial is closed), `POST /api/v1/trials/{trial}/enrolments/{record_id}/unblind`
//! (the on-call unblinder, `{"reason": "...", "person": "..."}`) and
//! `GET /api/v1/trials/{trial}/unblindings` (statistician, DSMB, auditor).

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::auth::Authenticated;
use super::error::ApiError;
use super::ApiJson;
use crate::service::lifecycle::{self, Change, LifecycleChange, Overview, RevealedSeed};
use crate::service::unblinding::{self, Unblinded};
use crate::service::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/trials/{trial}/status", get(status))
        .route("/api/v1/trials/{trial}/pause", post(pause))
        .route("/api/v1/trials/{trial}/resume", post(resume))
        .route("/api/v1/trials/{trial}/close", post(close))
        .route(
            "/api/v1/trials/{trial}/sites/{site}/close",
            post(site_close),
        )
        .route("/api/v1/trials/{trial}/sites/{site}/open", post(site_open))
        .route("/api/v1/trials/{trial}/reveal-seed", post(reveal_seed))
        .route(
            "/api/v1/trials/{trial}/enrolments/{record_id}/unblind",
            post(unblind),
        )
        .route("/api/v1/trials/{trial}/unblindings", get(unblindings))
}

async fn status(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
) -> Result<Json<Overview>, ApiError> {
    Ok(Json(
        lifecycle::overview_for(&state, &principal, &trial).await?,
    ))
}

async fn trial_change(
    state: &AppState,
    principal: &crate::service::Principal,
    trial: &str,
    change: Change,
    site: Option<&str>,
    body: &serde_json::Value,
) -> Result<Json<LifecycleChange>, ApiError> {
    Ok(Json(
        lifecycle::change_for(state, principal, trial, change, site, body).await?,
    ))
}

async fn pause(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
    ApiJson(body): ApiJson,
) -> Result<Json<LifecycleChange>, ApiError> {
    trial_change(&state, &principal, &trial, Change::Pause, None, &body).await
}

async fn resume(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
    ApiJson(body): ApiJson,
) -> Result<Json<LifecycleChange>, ApiError> {
    trial_change(&state, &principal, &trial, Change::Resume, None, &body).await
}

async fn close(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
    ApiJson(body): ApiJson,
) -> Result<Json<LifecycleChange>, ApiError> {
    trial_change(&state, &principal, &trial, Change::Close, None, &body).await
}

async fn site_close(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((trial, site)): Path<(String, String)>,
    ApiJson(body): ApiJson,
) -> Result<Json<LifecycleChange>, ApiError> {
    trial_change(
        &state,
        &principal,
        &trial,
        Change::SiteClose,
        Some(&site),
        &body,
    )
    .await
}

async fn site_open(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((trial, site)): Path<(String, String)>,
    ApiJson(body): ApiJson,
) -> Result<Json<LifecycleChange>, ApiError> {
    trial_change(
        &state,
        &principal,
        &trial,
        Change::SiteOpen,
        Some(&site),
        &body,
    )
    .await
}

async fn reveal_seed(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
) -> Result<Json<RevealedSeed>, ApiError> {
    Ok(Json(
        lifecycle::reveal_seed_for(&state, &principal, &trial).await?,
    ))
}

async fn unblind(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((trial, record_id)): Path<(String, String)>,
    ApiJson(body): ApiJson,
) -> Result<Json<Unblinded>, ApiError> {
    Ok(Json(
        unblinding::unblind_for(&state, &principal, &trial, &record_id, &body).await?,
    ))
}

async fn unblindings(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
) -> Result<Json<Vec<crate::service::unblinding::UnblindingEntry>>, ApiError> {
    Ok(Json(
        unblinding::list_for(&state, &principal, &trial).await?,
    ))
}
