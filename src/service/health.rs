//! Whether this engine can serve: what `GET /healthz` reports, and whether it is ready to
//! answer readers from memory: what `GET /readyz` reports.

use serde::Serialize;

use super::error::{Code, CodedError};
use super::trial_view::Readiness;
use super::AppState;
use crate::store::StoreError;

/// Why the engine cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("the database is unreachable")]
    Unreachable(#[source] StoreError),
    #[error("the database cannot be written")]
    ReadOnly(#[source] StoreError),
    #[error(
        "the served trials' data are being read and prepared at start-up ({} ms so far); \
         ready when done",
        .0.as_millis()
    )]
    Preparing(std::time::Duration),
}

impl CodedError for HealthError {
    fn code(&self) -> Code {
        Code::Unavailable
    }
}

/// A healthy engine's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    pub status: &'static str,
    /// The trials served.
    pub trials: Vec<String>,
}

/// The database answers and can be written (a write of nothing, rolled back): the engine is
/// healthy. A read-only file or server, a full disk or an outage is not.
pub async fn check(state: &AppState) -> Result<Health, HealthError> {
    state.store.ping().await.map_err(|e| {
        tracing::error!(error = %e, "health check: database unreachable");
        HealthError::Unreachable(e)
    })?;
    state.store.check_writable().await.map_err(|e| {
        tracing::error!(error = %e, "health check: database cannot be written");
        HealthError::ReadOnly(e)
    })?;
    Ok(Health {
        status: "ok",
        trials: state.trials.ids().map(str::to_string).collect(),
    })
}

/// Healthy (see [`check`]) and done with the start-up preparation of the served trials
/// ([`crate::service::trial_view::TrialViews::warm`]), so that a reader sent here now is
/// answered from memory. A load balancer or orchestrator routes to a server once this says so;
/// a request sent earlier is still answered, after waiting for that preparation.
pub async fn ready(state: &AppState) -> Result<Health, HealthError> {
    let health = check(state).await?;
    match state.views.readiness() {
        Readiness::Ready => Ok(Health {
            status: "ready",
            ..health
        }),
        Readiness::Preparing(so_far) => Err(HealthError::Preparing(so_far)),
    }
}
