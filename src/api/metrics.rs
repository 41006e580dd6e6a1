//! `GET /metrics`: the engine's metrics in the OpenMetrics text format Prometheus scrapes
//! ([`crate::service::metrics`] decides what is counted). By default only an admin token of no
//! single trial may scrape (`Authorization: Bearer ...`, as Prometheus's `authorization`
//! setting sends it); `rrct serve --metrics-access open` serves them to anyone who can reach
//! the port, for a scraper on a private network.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::auth::Authenticated;
use super::error::ApiError;
use crate::service::error::Code;
use crate::service::metrics::{MetricsAccess, CONTENT_TYPE as METRICS_TYPE};
use crate::service::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    summary = "The engine's metrics in the OpenMetrics text format (Prometheus)",
    responses(
        (status = 200, description = "The metrics; nothing per arm or per subject", body = String, content_type = "application/openmetrics-text"),
        (status = 403, description = "Not an admin token of no single trial (`forbidden`)", body = crate::api::schema::ErrorBody),
    )
)]
async fn scrape(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    if state.metrics_access == MetricsAccess::Token {
        let (mut parts, _) = request.into_parts();
        let Authenticated(principal) =
            Authenticated::from_request_parts(&mut parts, &state).await?;
        if !principal.may_scrape_metrics() {
            return Err(ApiError::new(
                Code::Forbidden,
                "only an admin token of no single trial may scrape the metrics",
            ));
        }
    }
    let served: Vec<&str> = state.trials.ids().collect();
    let text = state.metrics.render(&state.store, &served).await?;
    Ok(([(CONTENT_TYPE, METRICS_TYPE)], text).into_response())
}
