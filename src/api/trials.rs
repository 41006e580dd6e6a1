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
