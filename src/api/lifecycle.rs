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

#[utoipa::path(
    get,
    path = "/api/v1/trials/{trial}/status",
    tag = "lifecycle",
    summary = "The trial's lifecycle, closed sites and history",
    params(("trial" = String, Path, description = "The trial id", example = "taste")),
    responses(
        (status = 200, description = "The lifecycle", body = crate::service::lifecycle::Overview),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial served here (`trial_not_found`)", body = crate::api::schema::ErrorBody),
    )
)]
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

#[utoipa::path(
    post,
    path = "/api/v1/trials/{trial}/pause",
    tag = "lifecycle",
    summary = "Pause enrolment (admins)",
    params(("trial" = String, Path, description = "The trial id", example = "taste")),
    request_body(content = crate::api::schema::ReasonBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed", body = crate::service::lifecycle::LifecycleChange),
        (status = 400, description = "The body is not JSON, or repeats a key (`malformed_json`)", body = crate::api::schema::ErrorBody),
        (status = 413, description = "The body is too large (`payload_too_large`)", body = crate::api::schema::ErrorBody),
        (status = 415, description = "The body is not declared `application/json` (`unsupported_media_type`)", body = crate::api::schema::ErrorBody),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial served here (`trial_not_found`)", body = crate::api::schema::ErrorBody),
        (status = 409, description = "The trial's or site's status does not allow the change (`invalid_transition`)", body = crate::api::schema::ErrorBody),
        (status = 422, description = "The body is invalid; each field named (`invalid_request`)", body = crate::api::schema::ErrorBody),
    )
)]
async fn pause(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
    ApiJson(body): ApiJson,
) -> Result<Json<LifecycleChange>, ApiError> {
    trial_change(&state, &principal, &trial, Change::Pause, None, &body).await
}

#[utoipa::path(
    post,
    path = "/api/v1/trials/{trial}/resume",
    tag = "lifecycle",
    summary = "Resume enrolment (admins)",
    params(("trial" = String, Path, description = "The trial id", example = "taste")),
    request_body(content = crate::api::schema::ReasonBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed", body = crate::service::lifecycle::LifecycleChange),
        (status = 400, description = "The body is not JSON, or repeats a key (`malformed_json`)", body = crate::api::schema::ErrorBody),
        (status = 413, description = "The body is too large (`payload_too_large`)", body = crate::api::schema::ErrorBody),
        (status = 415, description = "The body is not declared `application/json` (`unsupported_media_type`)", body = crate::api::schema::ErrorBody),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial served here (`trial_not_found`)", body = crate::api::schema::ErrorBody),
        (status = 409, description = "The trial's or site's status does not allow the change (`invalid_transition`)", body = crate::api::schema::ErrorBody),
        (status = 422, description = "The body is invalid; each field named (`invalid_request`)", body = crate::api::schema::ErrorBody),
    )
)]
async fn resume(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
    ApiJson(body): ApiJson,
) -> Result<Json<LifecycleChange>, ApiError> {
    trial_change(&state, &principal, &trial, Change::Resume, None, &body).await
}

#[utoipa::path(
    post,
    path = "/api/v1/trials/{trial}/close",
    tag = "lifecycle",
    summary = "Close the trial for good (admins)",
    params(("trial" = String, Path, description = "The trial id", example = "taste")),
    request_body(content = crate::api::schema::ReasonBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed", body = crate::service::lifecycle::LifecycleChange),
        (status = 400, description = "The body is not JSON, or repeats a key (`malformed_json`)", body = crate::api::schema::ErrorBody),
        (status = 413, description = "The body is too large (`payload_too_large`)", body = crate::api::schema::ErrorBody),
        (status = 415, description = "The body is not declared `application/json` (`unsupported_media_type`)", body = crate::api::schema::ErrorBody),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial served here (`trial_not_found`)", body = crate::api::schema::ErrorBody),
        (status = 409, description = "The trial's or site's status does not allow the change (`invalid_transition`)", body = crate::api::schema::ErrorBody),
        (status = 422, description = "The body is invalid; each field named (`invalid_request`)", body = crate::api::schema::ErrorBody),
    )
)]
async fn close(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
    ApiJson(body): ApiJson,
) -> Result<Json<LifecycleChange>, ApiError> {
    trial_change(&state, &principal, &trial, Change::Close, None, &body).await
}

#[utoipa::path(
    post,
    path = "/api/v1/trials/{trial}/sites/{site}/close",
    tag = "lifecycle",
    summary = "Close a site to enrolment (admins)",
    params(("trial" = String, Path, description = "The trial id", example = "taste"), ("site" = String, Path, description = "A site code of the trial", example = "UPP")),
    request_body(content = crate::api::schema::ReasonBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed", body = crate::service::lifecycle::LifecycleChange),
        (status = 400, description = "The body is not JSON, or repeats a key (`malformed_json`)", body = crate::api::schema::ErrorBody),
        (status = 413, description = "The body is too large (`payload_too_large`)", body = crate::api::schema::ErrorBody),
        (status = 415, description = "The body is not declared `application/json` (`unsupported_media_type`)", body = crate::api::schema::ErrorBody),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial or site (`trial_not_found`, `site_not_found`)", body = crate::api::schema::ErrorBody),
        (status = 409, description = "The trial's or site's status does not allow the change (`invalid_transition`)", body = crate::api::schema::ErrorBody),
        (status = 422, description = "The body is invalid; each field named (`invalid_request`)", body = crate::api::schema::ErrorBody),
    )
)]
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

#[utoipa::path(
    post,
    path = "/api/v1/trials/{trial}/sites/{site}/open",
    tag = "lifecycle",
    summary = "Open a site to enrolment again (admins)",
    params(("trial" = String, Path, description = "The trial id", example = "taste"), ("site" = String, Path, description = "A site code of the trial", example = "UPP")),
    request_body(content = crate::api::schema::ReasonBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed", body = crate::service::lifecycle::LifecycleChange),
        (status = 400, description = "The body is not JSON, or repeats a key (`malformed_json`)", body = crate::api::schema::ErrorBody),
        (status = 413, description = "The body is too large (`payload_too_large`)", body = crate::api::schema::ErrorBody),
        (status = 415, description = "The body is not declared `application/json` (`unsupported_media_type`)", body = crate::api::schema::ErrorBody),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial or site (`trial_not_found`, `site_not_found`)", body = crate::api::schema::ErrorBody),
        (status = 409, description = "The trial's or site's status does not allow the change (`invalid_transition`)", body = crate::api::schema::ErrorBody),
        (status = 422, description = "The body is invalid; each field named (`invalid_request`)", body = crate::api::schema::ErrorBody),
    )
)]
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

#[utoipa::path(
    post,
    path = "/api/v1/trials/{trial}/reveal-seed",
    tag = "lifecycle",
    summary = "Reveal the closed trial's master seed (admins), so anyone can replay the allocations",
    params(("trial" = String, Path, description = "The trial id", example = "taste")),
    responses(
        (status = 200, description = "The seed, checked against its commitment", body = crate::service::lifecycle::RevealedSeed),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial served here (`trial_not_found`)", body = crate::api::schema::ErrorBody),
        (status = 409, description = "The trial is not closed (`trial_not_closed`)", body = crate::api::schema::ErrorBody),
    )
)]
async fn reveal_seed(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
) -> Result<Json<RevealedSeed>, ApiError> {
    Ok(Json(
        lifecycle::reveal_seed_for(&state, &principal, &trial).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/trials/{trial}/enrolments/{record_id}/unblind",
    tag = "lifecycle",
    summary = "Emergency unblinding of one subject (the on-call unblinder), reasoned and audited",
    params(("trial" = String, Path, description = "The trial id", example = "taste"), ("record_id" = String, Path, description = "The register's record id of the enrolment")),
    request_body(content = crate::api::schema::UnblindBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The subject's arm", body = crate::service::unblinding::Unblinded),
        (status = 400, description = "The body is not JSON, or repeats a key (`malformed_json`)", body = crate::api::schema::ErrorBody),
        (status = 413, description = "The body is too large (`payload_too_large`)", body = crate::api::schema::ErrorBody),
        (status = 415, description = "The body is not declared `application/json` (`unsupported_media_type`)", body = crate::api::schema::ErrorBody),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial or enrolment", body = crate::api::schema::ErrorBody),
        (status = 422, description = "The body is invalid (`invalid_request`)", body = crate::api::schema::ErrorBody),
    )
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/trials/{trial}/unblindings",
    tag = "lifecycle",
    summary = "The emergency unblindings (statistician, DSMB, auditor); never the arms",
    params(("trial" = String, Path, description = "The trial id", example = "taste")),
    responses(
        (status = 200, description = "Oldest first", body = Vec<crate::service::unblinding::UnblindingEntry>),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial served here (`trial_not_found`)", body = crate::api::schema::ErrorBody),
    )
)]
async fn unblindings(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
) -> Result<Json<Vec<crate::service::unblinding::UnblindingEntry>>, ApiError> {
    Ok(Json(
        unblinding::list_for(&state, &principal, &trial).await?,
    ))
}
