//! The trial view: how every interface reads an analysed trial.
//!
//! One entry point, [`TrialViews::open`], takes the store, the trial, the cut-off as asked and
//! the reader, and does in order what every reader needs: the trial lookup and access check
//! ([`auth::served_trial`]), the cut-off ([`DataCutoff::parse_or_today`]), and the blinding
//! decision. It hands back either the unblinded [`PreparedTrial`] (statistician, DSMB, the
//! operator of the database) or a [`BlindedTrial`], from which only the released summary and the
//! recruitment days of the reader's own scope can be taken. The summary and analysis API, the
//! pages, `rrct analyse` (JSON and the HTML closed report), `rrct export` and the demo all come
//! through here.
//!
//! Preparing a trial is CPU work over all its data, so prepared trials are kept, keyed by
//! (trial, cut-off, audit chain head). Every write appends to the audit chain in its own
//! transaction, so the head's sequence number is a version of the whole database: the head is
//! read (one indexed single-row query) before anything else, a write committed since then gives
//! a new head and so a new key, and a prepared trial is never served for a head other than the
//! one it was built at or after. Several `rrct serve` processes on one database stay correct:
//! each keys its memory by the shared head. Under the prepared trials sit each trial's data as
//! last read ([`held`]), brought up to date with only the rows written since.

pub mod held;
pub mod prepared;
pub mod recent;

use std::sync::{Arc, Mutex};

use chrono::NaiveDate;

pub use prepared::PreparedTrial;
use recent::Recent;

use super::auth::{self, AccessError, Principal};
use super::error::{Code, CodedError};
use super::TrialRegistry;
use crate::analysis::release::BlindedSummary;
use crate::endpoints::{CutoffError, DataCutoff};
use crate::protocol::{Protocol, ProtocolErrors};
use crate::store::{audit, Store, StoreError};

/// Prepared trials kept: a few cut-offs of a few trials. Each holds a trial's events.
const PREPARED: usize = 4;

/// Who reads.
#[derive(Clone, Copy)]
pub enum Reader<'a> {
    /// A token holder, checked against its role and scope; only trials this server serves.
    Token {
        principal: &'a Principal,
        served: &'a TrialRegistry,
    },
    /// Whoever runs a command on the database itself (`rrct analyse`, `rrct export`, the
    /// demo): they can read every row anyway, so they get every trial the database holds,
    /// unblinded.
    Operator,
}

/// What the reader asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// The blinded released summary, whoever asks.
    Blinded,
    /// The unblinded analysis; refused to readers who may not see it.
    Unblinded,
    /// What the reader's role sees: unblinded for those who may, blinded otherwise.
    ForRole,
}

/// One request for a trial's view.
pub struct ViewRequest<'a> {
    pub trial: &'a str,
    /// The cut-off as the reader gave it, read with [`DataCutoff::parse_or_today`] (or
    /// [`DataCutoff::parse`]); a bad one is reported after the access checks.
    pub cutoff: Result<DataCutoff, CutoffError>,
    pub reader: Reader<'a>,
    pub ask: Ask,
}

/// A view handed out, with the database version it is as new as.
pub struct Opened {
    /// The audit chain head the view was read at or after.
    pub head: i64,
    pub cutoff: DataCutoff,
    pub view: TrialView,
}

/// What a reader gets.
pub enum TrialView {
    Unblinded(Arc<PreparedTrial>),
    Blinded(BlindedTrial),
}

/// A trial as a blinded reader may have it: the prepared trial stays private, and only what
/// [`BlindedTrial::release`] releases leaves.
pub struct BlindedTrial {
    prepared: Arc<PreparedTrial>,
    site: Option<String>,
}

/// What a blinded reader is given.
pub struct BlindedRelease {
    /// The blinded analysis, scoped to the reader's site, under disclosure control.
    pub summary: BlindedSummary,
    /// Randomisation days on or before the cut-off in the reader's scope (no arm, no subject).
    pub randomisation_days: Vec<NaiveDate>,
}

impl BlindedTrial {
    /// The site the reader is scoped to, if any.
    pub fn site(&self) -> Option<&str> {
        self.site.as_deref()
    }

    /// The protocol as registered (it is not secret).
    pub fn protocol(&self) -> &Protocol {
        &self.prepared.data.protocol
    }

    /// Blind, scope and release.
    pub fn release(&self) -> BlindedRelease {
        let p = &self.prepared;
        BlindedRelease {
            summary: BlindedSummary::release(&p.analysis, self.site()),
            randomisation_days: p
                .data
                .randomised_by(p.cutoff)
                .filter(|a| self.site().is_none_or(|own| own == a.site_code))
                .map(|a| a.randomised_on())
                .collect(),
        }
    }
}

/// Why a view cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum TrialViewError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    InvalidCutoff(#[from] CutoffError),
    #[error("no trial `{0}` in this database")]
    NotInDatabase(String),
    #[error("the stored protocol of `{0}` no longer parses: {1}")]
    Protocol(String, ProtocolErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The analysis task did not finish (it panicked or the runtime is shutting down).
    #[error("the analysis of `{0}` did not finish: {1}")]
    Interrupted(String, String),
}

impl CodedError for TrialViewError {
    fn code(&self) -> Code {
        match self {
            TrialViewError::Access(e) => e.code(),
            TrialViewError::InvalidCutoff(_) => Code::InvalidQuery,
            TrialViewError::NotInDatabase(_) => Code::TrialNotFound,
            TrialViewError::Store(e) => e.code(),
            TrialViewError::Protocol(..) | TrialViewError::Interrupted(..) => Code::Internal,
        }
    }

    fn public_message(&self) -> String {
        match self {
            TrialViewError::Store(e) => e.public_message(),
            TrialViewError::Protocol(..) | TrialViewError::Interrupted(..) => {
                "the analysis failed; see the server log".into()
            }
            other => other.to_string(),
        }
    }
}

pub(crate) fn poisoned() -> TrialViewError {
    TrialViewError::Store(StoreError::Corrupt("trial view lock poisoned".into()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PreparedKey {
    trial: String,
    cutoff: DataCutoff,
    head: i64,
}

/// What a process remembers of the trials it has read: their data, and the trials prepared as
/// of recent cut-offs.
pub struct TrialViews {
    prepared: Mutex<Recent<PreparedKey, PreparedTrial>>,
    held: held::HeldData,
}

impl Default for TrialViews {
    fn default() -> Self {
        TrialViews {
            prepared: Mutex::new(Recent::new(PREPARED)),
            held: held::HeldData::default(),
        }
    }
}

impl TrialViews {
    /// The view `request` asks for: see the module documentation for the checks and their
    /// order.
    #[tracing::instrument(skip_all, fields(trial = %request.trial), err(level = tracing::Level::DEBUG))]
    pub async fn open(
        &self,
        store: &Store,
        request: ViewRequest<'_>,
    ) -> Result<Opened, TrialViewError> {
        let ViewRequest {
            trial,
            cutoff,
            reader,
            ask,
        } = request;
        let (unblinded, site) = match reader {
            Reader::Token { principal, served } => {
                if ask == Ask::Unblinded {
                    auth::require_unblinded(principal)?;
                }
                auth::served_trial(served, principal, trial)?;
                let unblinded = match ask {
                    Ask::Blinded => false,
                    Ask::Unblinded => true,
                    Ask::ForRole => principal.may_see_unblinded(),
                };
                (unblinded, principal.site_code.clone())
            }
            Reader::Operator => (ask != Ask::Blinded, None),
        };
        let cutoff = cutoff?;
        let head = audit::head_seq(store).await?;
        let prepared = self.prepared_at(store, trial, cutoff, head).await?;
        let view = if unblinded {
            TrialView::Unblinded(prepared)
        } else {
            TrialView::Blinded(BlindedTrial { prepared, site })
        };
        Ok(Opened { head, cutoff, view })
    }

    /// Read each trial's data now (at start-up) and prepare it as of `today`, the cut-off a
    /// page asks for when it names none, so that the first reader is answered from memory
    /// (a reader arriving meanwhile waits for the same preparation, not a second one). A write
    /// committed meanwhile moves the head, and the next reader prepares the trial again from
    /// the data read here and the rows written since.
    pub async fn warm(
        &self,
        store: &Store,
        trial_ids: &[String],
        today: DataCutoff,
    ) -> Result<(), TrialViewError> {
        let head = audit::head_seq(store).await?;
        for trial in trial_ids {
            self.held.at_least(store, trial, head).await?;
        }
        for trial in trial_ids {
            self.prepared_at(store, trial, today, head).await?;
        }
        Ok(())
    }

    async fn prepared_at(
        &self,
        store: &Store,
        trial_id: &str,
        cutoff: DataCutoff,
        head: i64,
    ) -> Result<Arc<PreparedTrial>, TrialViewError> {
        let key = PreparedKey {
            trial: trial_id.to_string(),
            cutoff,
            head,
        };
        let slot = self
            .prepared
            .lock()
            .map_err(|_| poisoned())?
            .slot(&key, head, |k| k.head);
        slot.get_or_try_init(|| async {
            // Read at or after the head: the data are at least as new as the key says.
            let (data, screening) = self.held.at_least(store, trial_id, head).await?;
            // Deriving and analysing is CPU work over the whole trial: off the request threads.
            tokio::task::spawn_blocking(move || PreparedTrial::prepare(data, screening, cutoff))
                .await
                .map(Arc::new)
                .map_err(|e| TrialViewError::Interrupted(trial_id.to_string(), e.to_string()))
        })
        .await
        .cloned()
    }
}
