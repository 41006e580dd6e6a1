//! The audit trail as readers see it: the chain recomputed (`rrct audit verify`, the demo, the
//! auditor's page) and a trial's entries a page at a time.

use std::collections::HashSet;

use super::auth::{self, AccessError, Principal};
use super::error::{Code, CodedError};
use super::AppState;
use crate::protocol::TrialStatus;
use crate::store::{allocations, audit, lifecycle, Store, StoreError};

pub use crate::store::audit::{AuditEntry, ChainStatus};

/// Entries per page.
pub const PAGE_SIZE: i64 = 100;

/// One page of a trial's audit trail, under the result of recomputing the whole chain.
#[derive(Debug, Clone)]
pub struct AuditTrailPage {
    pub chain: ChainStatus,
    /// Newest first. Entries about allocations in permuted blocks still open show neither the
    /// arm nor the block position until the block is complete or the trial closed.
    pub entries: Vec<AuditEntry>,
    /// How many of `entries` have something withheld.
    pub withheld: usize,
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
    let runtime = auth::served_trial(&state.trials, principal, trial_id)?;
    let page = page.max(1);
    let (mut entries, total) =
        audit::entries_page(&state.store, trial_id, PAGE_SIZE, (page - 1) * PAGE_SIZE).await?;
    let chain = audit::verify(&state.store).await?;
    // Closed by its protocol or, for good, by its admins: no block is open any more.
    let closed = runtime.protocol.status == TrialStatus::Closed
        || lifecycle::of_trial(&state.store, trial_id)
            .await?
            .is_some_and(|l| l.lifecycle == lifecycle::Lifecycle::Closed.as_str());
    let open = if closed {
        Default::default()
    } else {
        allocations::in_open_blocks(&state.store, trial_id).await?
    };
    let mut withheld = 0;
    for entry in &mut entries {
        withheld += usize::from(withhold_open_block(entry, &open));
    }
    Ok(AuditTrailPage {
        chain,
        entries,
        withheld,
        total,
        page,
    })
}

/// What an entry about an allocation in an open block must not show.
const OPEN_BLOCK_KEYS: [&str; 6] = [
    "arm",
    "block_number",
    "block_size",
    "block_position",
    "detail",
    "eligible_arms",
];

/// Withhold the arm and block position of an entry about an allocation in an open block;
/// true when something was withheld. The stored entry, and the chain over it, are untouched.
fn withhold_open_block(entry: &mut AuditEntry, open: &HashSet<String>) -> bool {
    let Ok(serde_json::Value::Object(mut payload)) =
        serde_json::from_str::<serde_json::Value>(&entry.payload)
    else {
        return false;
    };
    let in_open_block = payload
        .get("record_id")
        .and_then(|r| r.as_str())
        .is_some_and(|r| open.contains(r));
    if !in_open_block {
        return false;
    }
    let mut any = false;
    for key in OPEN_BLOCK_KEYS {
        if let Some(v) = payload.get_mut(key) {
            *v = serde_json::Value::String("withheld while its block is open".into());
            any = true;
        }
    }
    if any {
        entry.payload = serde_json::Value::Object(payload).to_string();
    }
    any
}
