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

#[utoipa::path(
    post,
    path = "/api/v1/events",
    tag = "events",
    operation_id = "receive_events",
    summary = "Receive a batch of follow-up events (all or nothing)",
    request_body(content = crate::api::schema::EventBatch, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored (replays counted apart)", body = crate::service::events::IngestReport),
        (status = 400, description = "The body is not JSON, or repeats a key (`malformed_json`)", body = crate::api::schema::ErrorBody),
        (status = 413, description = "The body is too large (`payload_too_large`)", body = crate::api::schema::ErrorBody),
        (status = 415, description = "The body is not declared `application/json` (`unsupported_media_type`)", body = crate::api::schema::ErrorBody),
        (status = 403, description = "The token's role or scope does not allow this (`forbidden`)", body = crate::api::schema::ErrorBody),
        (status = 409, description = "Event ids stored before with other content (`event_conflict`); nothing stored", body = crate::api::schema::ErrorBody),
        (status = 422, description = "Invalid rows, each listed (`invalid_events`); nothing stored", body = crate::api::schema::ErrorBody),
    )
)]
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
    state
        .metrics
        .events(batch.iter().map(|e| e.source.as_deref()));
    Ok(Json(report))
}
