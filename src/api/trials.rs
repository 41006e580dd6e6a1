//! Trial-level reads and screening reports:
//! `POST /api/v1/trials/{trial}/screenings`, `GET /api/v1/trials/{trial}/summary` (blinded)
//! and `GET /api/v1/trials/{trial}/analysis` (unblinded).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::auth::Authenticated;
use super::error::{ApiError, ErrorCode};
use super::{ApiJson, AppState};
use crate::endpoints::DataCutoff;
use crate::service::analyse::Analysis;
use crate::service::export::ExportError;
use crate::service::release::BlindedSummary;
use crate::service::screening::{self, ScreeningOutcome};
use crate::service::{Principal, Role};

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
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    Ok(
        match screening::report_not_randomised(
            &state.store,
            &state.trials,
            &principal,
            &trial,
            &body,
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

fn cutoff(q: &CutoffQuery) -> Result<DataCutoff, ApiError> {
    match &q.cutoff {
        None => Ok(DataCutoff(chrono::Utc::now().date_naive())),
        Some(s) => crate::endpoints::parse_event_date(s)
            .map(DataCutoff)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidQuery,
                    format!("cutoff `{s}` is not a date YYYY-MM-DD"),
                )
            }),
    }
}

async fn load(
    state: &AppState,
    principal: &Principal,
    trial: &str,
    q: &CutoffQuery,
) -> Result<Analysis, ApiError> {
    if state.trials.get(trial).is_none() {
        return Err(ApiError::new(
            ErrorCode::TrialNotFound,
            format!("no trial `{trial}` is served here"),
        ));
    }
    if !principal.may_access_trial(trial) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("this token is not valid for trial `{trial}`"),
        ));
    }
    let cutoff = cutoff(q)?;
    state
        .dashboards
        .snapshot(&state.store, trial, cutoff)
        .await
        .map(|s| s.analysis.clone())
        .map_err(|e| match e {
            ExportError::Store(s) => s.into(),
            other => {
                tracing::error!(error = %other, "analysis failed");
                ApiError::new(
                    ErrorCode::Internal,
                    "the analysis failed; see the server log",
                )
            }
        })
}

/// Blinded: recruitment and pooled outcomes under disclosure control (the figures the blinded
/// page shows); a site-scoped token sees its own site only.
async fn summary(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
    Query(q): Query<CutoffQuery>,
) -> Result<Json<BlindedSummary>, ApiError> {
    let analysis = load(&state, &principal, &trial, &q).await?;
    Ok(Json(BlindedSummary::release(
        analysis,
        principal.site_code.as_deref(),
    )))
}

/// Unblinded: only the trial statistician and the DSMB.
async fn analysis(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(trial): Path<String>,
    Query(q): Query<CutoffQuery>,
) -> Result<Json<Analysis>, ApiError> {
    if !matches!(principal.role, Role::Statistician | Role::Dsmb) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "role `{}` may not see unblinded results",
                principal.role.as_str()
            ),
        ));
    }
    Ok(Json(load(&state, &principal, &trial, &q).await?))
}
