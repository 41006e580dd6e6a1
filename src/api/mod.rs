//! The HTTP interface (axum): routes, authentication and the mapping of service errors to the
//! error code table in [`error`]. Handlers stay thin: parse, call a service, shape the response.

pub mod auth;
pub mod enrolments;
pub mod error;
pub mod events;
pub mod trials;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::service::auth::Authenticator;
use crate::service::enrol::EnrolmentQueue;
use crate::service::TrialRegistry;
use crate::store::Store;
use error::{ApiError, ErrorCode};

/// Largest request body accepted; an enrolment is a few hundred bytes.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub trials: Arc<TrialRegistry>,
    pub enrolments: EnrolmentQueue,
    pub auth: Authenticator,
    /// Prepared trials and rendered pages, keyed by the database's audit-chain head.
    pub dashboards: Arc<crate::dashboard::cache::DashboardCache>,
}

impl AppState {
    /// State for serving `trials` from `store`; starts the enrolment queue's task, so it must
    /// be called inside a tokio runtime.
    pub fn new(store: Store, trials: TrialRegistry) -> Self {
        AppState {
            enrolments: EnrolmentQueue::start(store.clone()),
            auth: Authenticator::new(store.clone()),
            dashboards: Arc::default(),
            store,
            trials: Arc::new(trials),
        }
    }
}

/// `axum::Json` whose rejections use our error body.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// The whole application router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .merge(enrolments::router())
        .merge(events::router())
        .merge(trials::router())
        .merge(crate::dashboard::router())
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Serve until `shutdown` resolves, then finish in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    sqlx::query("SELECT 1")
        .execute(state.store.pool())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "health check: database unreachable");
            ApiError::new(ErrorCode::Unavailable, "the database is unreachable")
        })?;
    Ok(Json(json!({
        "status": "ok",
        "trials": state.trials.ids().collect::<Vec<_>>(),
    })))
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
