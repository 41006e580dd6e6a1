//! `POST /api/v1/events`: follow-up events from the registers, in all-or-nothing batches.

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use axum::{Json, Router};

use super::auth::Authenticated;
use super::error::ApiError;
use super::ApiJson;
use crate::service::events::{self, IngestReport};
use crate::service::AppState;

/// Event batches are larger than enrolments: up to `MAX_HTTP_EVENTS` rows.
pub const EVENTS_BODY_LIMIT_BYTES: usize = 16 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/events",
        post(receive).layer(DefaultBodyLimit::max(EVENTS_BODY_LIMIT_BYTES)),
    )
}

async fn receive(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson,
) -> Result<Json<IngestReport>, ApiError> {
    let scope = events::authorise(&principal)?;
    let received_at = state.clock.now();
    let batch = events::parse_json_batch(&body, received_at.date())
        .map_err(events::IngestError::Invalid)?;
    let rows: Vec<usize> = (0..batch.len()).collect();
    let delivery = events::Delivery {
        actor: &principal.actor,
        scope,
        received_at,
    };
    let report = events::ingest(&state.store, &batch, &rows, &delivery, |_| {}).await?;
    Ok(Json(report))
}
