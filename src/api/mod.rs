//! The HTTP interface (axum): routes, authentication and the mapping of service errors to
//! HTTP statuses in [`error`]. Handlers stay thin: parse, call a service, shape the response;
//! they reach the engine through [`AppState`] and never the store. [`application`] assembles a
//! server.

pub mod application;
pub mod auth;
pub mod cloudevents;
pub mod enrolments;
pub mod error;
pub mod events;
pub mod fhir;
pub mod json;
pub mod lifecycle;
pub mod metrics;
pub mod openapi;
pub mod participation;
pub mod schema;
pub mod tokens;
pub mod trials;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::service::error::Code;
use crate::service::health::{self, Health};
use crate::service::AppState;
pub use application::{shutdown_signal, Application, Settings, Trials};
use error::ApiError;
pub use json::ApiJson;

/// Largest request body accepted; an enrolment is a few hundred bytes.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// The whole application router: the API and the pages, each request bounded by
/// `limits.request_timeout`.
pub fn app(state: AppState, limits: application::Limits) -> Router {
    let timeout = limits.request_timeout;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(enrolments::router())
        .merge(events::router())
        .merge(cloudevents::router())
        .merge(trials::router())
        .merge(lifecycle::router())
        .merge(participation::router())
        .merge(tokens::router())
        .merge(metrics::router())
        .merge(fhir::router())
        .merge(openapi::router())
        .with_state(state.clone())
        .merge(crate::dashboard::router(state))
        .fallback(|| async { ApiError::new(Code::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(Code::MethodNotAllowed, "method not allowed on this route")
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            within(timeout, request, next)
        }))
        .layer(middleware::from_fn(request_id))
}

/// Answer `408 request_timeout` when a request (its body included) takes longer than `limit`.
async fn within(limit: std::time::Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(seconds = limit.as_secs(), "request timed out");
            ApiError::new(
                Code::RequestTimeout,
                format!("the request took longer than {} s", limit.as_secs()),
            )
            .into_response()
        }
    }
}

/// Serve until `shutdown` resolves, then finish in-flight requests (with the default limits).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    application::serve_with_limits(listener, state, application::Limits::default(), shutdown).await
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    summary = "The database answers and can be written",
    security(()),
    responses(
        (status = 200, description = "Healthy", body = crate::service::health::Health),
    )
)]
async fn healthz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    Ok(Json(health::check(&state).await?))
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    summary = "Healthy, and the served trials are read and prepared: readers are answered from memory",
    description = "A load balancer should send readers here once this answers `200`. Requests \
        sent earlier are answered too, after waiting for the start-up preparation.",
    security(()),
    responses(
        (status = 200, description = "Ready", body = crate::service::health::Health),
        (status = 503, description = "The served trials are still being read and prepared at start-up, or the database cannot be reached or written, as for `/healthz` (`unavailable`)", body = crate::api::schema::ErrorBody),
    )
)]
async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    Ok(Json(health::ready(&state).await?))
}

/// Give every request an id: in its tracing span and in the `x-request-id` response header.
async fn request_id(request: Request, next: Next) -> Response {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = format!(
        "{:x}-{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    );
    let span = tracing::info_span!("request", id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
