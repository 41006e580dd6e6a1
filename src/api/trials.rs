//! Trial-level reads and screening reports:
//! `POST /api/v1/trials/{trial}/screenings`, `GET /api/v1/trials/{trial}/summary` (blinded)
//! and `GET /api/v1/trials/{trial}/analysis` (unblinded). Who may read what, and the cut-off,
//! are decided by the trial view ([`crate::service::trial_view`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::Authenticated;
use super::error::ApiError;
use super::ApiJson;
use crate::analysis::release::BlindedSummary;
use crate::analysis::Analysis;
use crate::service::screening::{self, ScreeningOutcome};
use crate::service::trial_view::{Ask, Opened, Reader, TrialView, ViewRequest};
use crate::service::{AppState, Principal};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/trials/{trial}/screenings", post(report_screening))
        .route("/api/v1/trials/{trial}/summary", get(summary))
        .route("/api/v1/trials/{trial}/analysis", get(analysis))
}

#[utoipa::path(
    post,
    path = "/api/v1/trials/{trial}/screenings",
    tag = "enrolment",
    summary = "Report an eligible patient who was not randomised (screening log)",
    params(("trial" = String, Path, description = "The trial id", example = "taste")),
    request_body(content = crate::api::schema::ScreeningBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Recorded", body = crate::service::screening::ScreeningReport),
        (status = 200, description = "The same report again", body = crate::service::screening::ScreeningReport),
        (status = 400, description = "The body is not JSON, or repeats a key (`malformed_json`)", body = crate::api::schema::ErrorBody),
        (status = 413, description = "The body is too large (`payload_too_large`)", body = crate::api::schema::ErrorBody),
        (status = 415, description = "The body is not declared `application/json` (`unsupported_media_type`)", body = crate::api::schema::ErrorBody),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial served here (`trial_not_found`)", body = crate::api::schema::ErrorBody),
        (status = 409, description = "The record id reused with another body, or the subject already randomised", body = crate::api::schema::ErrorBody),
        (status = 422, description = "Invalid fields (`invalid_enrolment`)", body = crate::api::schema::ErrorBody),
    )
)]
async fn report_screening(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
    ApiJson(body): ApiJson,
) -> Result<Response, ApiError> {
    Ok(
        match screening::report_not_randomised(
            &state.store,
            &state.trials,
            &principal,
            &trial,
            &body,
            state.clock.now(),
        )
        .await?
        {
            ScreeningOutcome::Created(r) => (StatusCode::CREATED, Json(r)).into_response(),
            ScreeningOutcome::Replayed(r) => (StatusCode::OK, Json(r)).into_response(),
        },
    )
}

#[derive(Debug, Deserialize)]
struct CutoffQuery {
    cutoff: Option<String>,
}

async fn open(
    state: &AppState,
    principal: &Principal,
    trial: &str,
    q: &CutoffQuery,
    ask: Ask,
) -> Result<Opened, ApiError> {
    Ok(state
        .views
        .open(
            &state.store,
            ViewRequest {
                trial,
                cutoff: state.clock.cutoff(q.cutoff.as_deref()),
                reader: Reader::Token {
                    principal,
                    served: &state.trials,
                },
                ask,
            },
        )
        .await?)
}

/// Blinded: recruitment and pooled outcomes under disclosure control (the figures the blinded
/// page shows); a site-scoped token sees its own site only.
#[utoipa::path(
    get,
    path = "/api/v1/trials/{trial}/summary",
    tag = "reads",
    summary = "Blinded summary: recruitment and pooled outcomes under disclosure control",
    params(("trial" = String, Path, description = "The trial id", example = "taste"), ("cutoff" = Option<String>, Query, description = "Data cut-off `YYYY-MM-DD` (default: today)")),
    responses(
        (status = 200, description = "The blinded summary (a site-scoped token sees its site only)", body = crate::api::schema::AnyObject),
        (status = 400, description = "The cut-off is not a date (`invalid_query`)", body = crate::api::schema::ErrorBody),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial served here (`trial_not_found`)", body = crate::api::schema::ErrorBody),
    )
)]
async fn summary(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
    Query(q): Query<CutoffQuery>,
) -> Result<Json<BlindedSummary>, ApiError> {
    match open(&state, &principal, &trial, &q, Ask::Blinded)
        .await?
        .view
    {
        TrialView::Blinded(b) => Ok(Json(b.release().summary)),
        TrialView::Unblinded(_) => Err(unexpected("an unblinded view for a blinded request")),
    }
}

/// Unblinded: only the trial statistician and the DSMB.
#[utoipa::path(
    get,
    path = "/api/v1/trials/{trial}/analysis",
    tag = "reads",
    summary = "Unblinded analysis (trial statistician and DSMB only)",
    params(("trial" = String, Path, description = "The trial id", example = "taste"), ("cutoff" = Option<String>, Query, description = "Data cut-off `YYYY-MM-DD` (default: today)")),
    responses(
        (status = 200, description = "The analysis", body = crate::api::schema::AnyObject),
        (status = 400, description = "The cut-off is not a date (`invalid_query`)", body = crate::api::schema::ErrorBody),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 404, description = "No such trial served here (`trial_not_found`)", body = crate::api::schema::ErrorBody),
    )
)]
async fn analysis(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
    Query(q): Query<CutoffQuery>,
) -> Result<Response, ApiError> {
    match open(&state, &principal, &trial, &q, Ask::Unblinded)
        .await?
        .view
    {
        // Written from the shared prepared trial, not from a copy of it.
        TrialView::Unblinded(p) => Ok(json_body(&p.analysis)),
        TrialView::Blinded(_) => Err(unexpected("a blinded view for an unblinded request")),
    }
}

/// `value` as a JSON response.
fn json_body(value: &Analysis) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(e) => unexpected(&format!("the analysis does not serialise: {e}")).into_response(),
    }
}

/// The trial view answered with a kind the request did not ask for: a fault, never shown.
fn unexpected(what: &str) -> ApiError {
    tracing::error!("trial view: {what}");
    ApiError::new(
        crate::service::error::Code::Internal,
        "internal error; see the server log",
    )
}
