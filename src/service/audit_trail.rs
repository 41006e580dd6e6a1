//! The audit trail as readers see it: the chain recomputed (`rrct audit verify`, the demo, the
//! auditor's page) and a trial's entries a page at a time.

use super::auth::{self, AccessError, Principal};
use super::error::{Code, CodedError};
use super::AppState;
use crate::store::{audit, Store, StoreError};

pub use crate::store::audit::{AuditEntry, ChainStatus};

/// Entries per page.
pub const PAGE_SIZE: i64 = 100;

/// One page of a trial's audit trail, under the result of recomputing the whole chain.
#[derive(Debug, Clone)]
pub struct AuditTrailPage {
    pub chain: ChainStatus,
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// The trial's entries in all.
    pub total: i64,
    /// 1 = the newest entries.
    pub page: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditTrailError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CodedError for AuditTrailError {
    fn code(&self) -> Code {
        match self {
            AuditTrailError::Access(e) => e.code(),
            AuditTrailError::Store(e) => e.code(),
        }
    }

    fn public_message(&self) -> String {
        match self {
            AuditTrailError::Access(e) => e.public_message(),
            AuditTrailError::Store(e) => e.public_message(),
        }
    }
}

/// Recompute the whole hash chain.
pub async fn verify(store: &Store) -> Result<ChainStatus, StoreError> {
    audit::verify(store).await
}

/// Page `page` (1 = newest) of a served trial's entries, for a reader who may read the trial.
#[tracing::instrument(skip_all, fields(trial = %trial_id), err)]
pub async fn page(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
    page: i64,
) -> Result<AuditTrailPage, AuditTrailError> {
    auth::served_trial(&state.trials, principal, trial_id)?;
    let page = page.max(1);
    let (entries, total) =
        audit::entries_page(&state.store, trial_id, PAGE_SIZE, (page - 1) * PAGE_SIZE).await?;
    let chain = audit::verify(&state.store).await?;
    Ok(AuditTrailPage {
        chain,
        entries,
        total,
        page,
    })
}
