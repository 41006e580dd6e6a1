//! Whether this engine can serve: what `GET /healthz` reports.

use serde::Serialize;

use super::error::{Code, CodedError};
use super::AppState;
use crate::store::StoreError;

/// Why the engine cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("the database is unreachable")]
    Unreachable(#[source] StoreError),
    #[error("the database cannot be written")]
    ReadOnly(#[source] StoreError),
}

impl CodedError for HealthError {
    fn code(&self) -> Code {
        Code::Unavailable
    }
}

/// A healthy engine's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Health {
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
