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
}

impl CodedError for HealthError {
    fn code(&self) -> Code {
        Code::Unavailable
    }
}

/// A healthy engine's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub status: &'static str,
    /// The trials served.
    pub trials: Vec<String>,
}

/// The database answers: the engine is healthy.
pub async fn check(state: &AppState) -> Result<Health, HealthError> {
    state.store.ping().await.map_err(|e| {
        tracing::error!(error = %e, "health check: database unreachable");
        HealthError::Unreachable(e)
    })?;
    Ok(Health {
        status: "ok",
        trials: state.trials.ids().map(str::to_string).collect(),
    })
}
