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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use tokio::sync::watch;

pub use prepared::PreparedTrial;
use recent::Recent;

use super::auth::{self, AccessError, Principal};
use super::error::{Code, CodedError};
use super::TrialRegistry;
use crate::analysis::derived::EarlierRows;
use crate::analysis::interim::KeptLooks;
use crate::analysis::release::BlindedSummary;
use crate::endpoints::{CutoffError, DataCutoff, EndpointRow};
use crate::protocol::{Endpoint, FollowUp, Protocol, ProtocolErrors};
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

/// The rows of a trial's latest preparation, and what they were derived from: the next
/// preparation of the trial at the same cut-off takes the unchanged subjects' rows from them.
struct Derivation {
    /// The version of the held data they were derived from.
    held_version: u64,
    cutoff: DataCutoff,
    follow_up: FollowUp,
    endpoints: Vec<Endpoint>,
    rows: Arc<Vec<Vec<EndpointRow>>>,
    /// What the interim looks of that preparation kept.
    looks: Arc<KeptLooks>,
}

/// What a process remembers of the trials it has read: their data, and the trials prepared as
/// of recent cut-offs.
pub struct TrialViews {
    prepared: Mutex<Recent<PreparedKey, PreparedTrial>>,
    held: held::HeldData,
    /// Each trial's latest derivation.
    derivations: Mutex<HashMap<String, Arc<Derivation>>>,
    /// The start-up preparations under way: how many, and since when the first began.
    warming: watch::Sender<Option<Warming>>,
}

#[derive(Debug, Clone, Copy)]
struct Warming {
    count: usize,
    since: Instant,
}

impl Default for TrialViews {
    fn default() -> Self {
        TrialViews {
            prepared: Mutex::new(Recent::new(PREPARED)),
            held: held::HeldData::default(),
            derivations: Mutex::default(),
            warming: watch::Sender::new(None),
        }
    }
}

/// Whether a reader would be answered from what is prepared, or wait for the start-up
/// preparation ([`TrialViews::warm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// No start-up preparation is under way (it is done, or none was asked for).
    Ready,
    /// The served trials are being read and prepared, for this long so far.
    Preparing(Duration),
}

/// A start-up preparation under way, for as long as this lives (see
/// [`TrialViews::preparing`]).
pub struct Preparing {
    warming: watch::Sender<Option<Warming>>,
}

impl Drop for Preparing {
    fn drop(&mut self) {
        self.warming.send_modify(|w| {
            *w = match w.take() {
                Some(Warming { count, since }) if count > 1 => Some(Warming {
                    count: count - 1,
                    since,
                }),
                _ => None,
            }
        });
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

    /// Whether the start-up preparation is done: what `GET /readyz` reports, so that a load
    /// balancer sends readers only to a server that answers them from memory.
    pub fn readiness(&self) -> Readiness {
        match *self.warming.borrow() {
            None => Readiness::Ready,
            Some(w) => Readiness::Preparing(w.since.elapsed()),
        }
    }

    /// Wait until no start-up preparation is under way.
    pub async fn until_ready(&self) {
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = self.warming.subscribe().wait_for(Option::is_none).await;
    }

    /// Mark a start-up preparation as under way until the returned guard is dropped:
    /// [`TrialViews::warm`] holds one while it reads and prepares, whether it succeeds or not
    /// (a failed preparation leaves readers to read on demand, as without one). Whoever starts
    /// a warm-up in a task of its own takes one first, so that no reader is told `Ready`
    /// before the task has begun.
    pub fn preparing(&self) -> Preparing {
        self.warming.send_modify(|w| {
            *w = Some(match *w {
                Some(Warming { count, since }) => Warming {
                    count: count + 1,
                    since,
                },
                None => Warming {
                    count: 1,
                    since: Instant::now(),
                },
            })
        });
        Preparing {
            warming: self.warming.clone(),
        }
    }

    /// [`TrialViews::warm`] in a task of its own, logging how it went; its handle gives the
    /// outcome. Not ready from the call on (the guard is taken before the task is spawned), so
    /// no poll of `GET /readyz` in between is told `Ready`. Once ready, the task saves the
    /// data it read ([`crate::store::snapshots`]) before it ends, unless they were taken from
    /// a saved copy that is recent enough.
    pub fn warm_in_background(
        self: &Arc<Self>,
        store: Store,
        trial_ids: Vec<String>,
        today: DataCutoff,
    ) -> tokio::task::JoinHandle<Result<(), TrialViewError>> {
        let preparing = self.preparing();
        let views = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let outcome = {
                let _preparing = preparing;
                views.warm(&store, &trial_ids, today).await
            };
            match &outcome {
                Ok(()) => tracing::info!(
                    ms = started.elapsed().as_millis() as u64,
                    "trial data read and prepared as of today"
                ),
                Err(e) => tracing::warn!(error = %e, "trial data not read at start-up"),
            }
            // Once ready: the data read are saved, so that a server starting again reads only
            // the rows written since.
            if outcome.is_ok() {
                for trial in &trial_ids {
                    if let Ok(saving) = views.held.save_in_background(&store, trial) {
                        let _ = saving.await;
                    }
                }
            }
            outcome
        })
    }

    /// Read each trial's data now (at start-up) and prepare it as of `today`, the cut-off a
    /// page asks for when it names none, so that the first reader is answered from memory
    /// (a reader arriving meanwhile waits for the same preparation, not a second one). A write
    /// committed meanwhile moves the head, and the next reader prepares the trial again from
    /// the data read here and the rows written since. [`TrialViews::readiness`] says
    /// `Preparing` until this returns.
    pub async fn warm(
        &self,
        store: &Store,
        trial_ids: &[String],
        today: DataCutoff,
    ) -> Result<(), TrialViewError> {
        let _preparing = self.preparing();
        let head = audit::head_seq(store).await?;
        for trial in trial_ids {
            self.held.at_least(store, trial, head, None).await?;
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
            let earlier = self
                .derivations
                .lock()
                .map_err(|_| poisoned())?
                .get(trial_id)
                .cloned();
            // Read at or after the head: the data are at least as new as the key says.
            let read = self
                .held
                .at_least(
                    store,
                    trial_id,
                    head,
                    earlier.as_ref().map(|d| d.held_version),
                )
                .await?;
            let version = read.version;
            // Deriving and analysing is CPU work over the whole trial: off the request threads.
            let prepared = tokio::task::spawn_blocking(move || {
                let added = read.events_added_since;
                let earlier =
                    earlier
                        .as_deref()
                        .zip(added.as_ref())
                        .map(|(d, added)| EarlierRows {
                            cutoff: d.cutoff,
                            follow_up: &d.follow_up,
                            endpoints: &d.endpoints,
                            rows: &d.rows,
                            events_added_for: added,
                            looks: Some(&d.looks),
                        });
                PreparedTrial::prepare_after(read.data, read.screening, cutoff, earlier.as_ref())
            })
            .await
            .map(Arc::new)
            .map_err(|e| TrialViewError::Interrupted(trial_id.to_string(), e.to_string()))?;
            self.keep_derivation(trial_id, version, &prepared)?;
            // Saved again once grown by a tenth since last saved (in a task of its own).
            self.held.save_in_background(store, trial_id)?;
            Ok(prepared)
        })
        .await
        .cloned()
    }

    /// Keep `prepared`'s rows as the trial's latest derivation, unless one from newer data is
    /// kept already.
    fn keep_derivation(
        &self,
        trial_id: &str,
        held_version: u64,
        prepared: &PreparedTrial,
    ) -> Result<(), TrialViewError> {
        let mut kept = self.derivations.lock().map_err(|_| poisoned())?;
        if kept
            .get(trial_id)
            .is_some_and(|d| d.held_version > held_version)
        {
            return Ok(());
        }
        kept.insert(
            trial_id.to_string(),
            Arc::new(Derivation {
                held_version,
                cutoff: prepared.cutoff,
                follow_up: prepared.data.protocol.follow_up.clone(),
                endpoints: prepared.data.protocol.endpoints.clone(),
                rows: prepared.rows.clone(),
                looks: prepared.looks.clone(),
            }),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preparing(views: &TrialViews) -> bool {
        matches!(views.readiness(), Readiness::Preparing(_))
    }

    /// Ready until a preparation begins, not ready while any is under way (counted, so the
    /// first to end does not end the others), ready again when the last guard goes.
    #[tokio::test]
    async fn readiness_follows_the_preparations_under_way() {
        let views = Arc::new(TrialViews::default());
        assert_eq!(views.readiness(), Readiness::Ready);
        let outer = views.preparing();
        let inner = views.preparing();
        assert!(preparing(&views));
        drop(inner);
        assert!(preparing(&views), "one preparation is still under way");
        let waiter = {
            let views = views.clone();
            tokio::spawn(async move { views.until_ready().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiter.is_finished(),
            "not ready while a preparation is under way"
        );
        drop(outer);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("ready once the last preparation ends")
            .unwrap();
        assert_eq!(views.readiness(), Readiness::Ready);
    }

    /// A warm-up that fails (here: a trial the database does not hold) leaves readers to
    /// read on demand, so it must not leave the server unready; one that succeeds is ready.
    #[tokio::test]
    async fn a_warm_up_ends_the_preparation_whether_it_succeeds_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("v.db").display());
        let store = Store::connect(&url).await.unwrap();
        let views = TrialViews::default();
        let today = DataCutoff(chrono::NaiveDate::from_ymd_opt(2026, 12, 6).unwrap());
        let failed = views.warm(&store, &["absent".to_string()], today).await;
        assert!(
            matches!(failed, Err(TrialViewError::NotInDatabase(_))),
            "{:?}",
            failed.err()
        );
        assert_eq!(views.readiness(), Readiness::Ready);
        views.warm(&store, &[], today).await.unwrap();
        assert_eq!(views.readiness(), Readiness::Ready);
    }
}
