//! Memory of prepared trials and rendered pages, so that a page is not rebuilt from 100,000
//! events for every reader and every reload.
//!
//! Every write to the database (enrolment, screening report, event batch, protocol, token)
//! appends to the audit chain in the same transaction, so the chain head's sequence number is
//! a version of the whole database. Entries are keyed by it: the key of a request is read
//! (one indexed single-row query) before anything else, a write committed since then gives a
//! new head and so a new key, and an entry is never served for a head other than the one it
//! was built at or after. Several `rrct serve` processes on one database stay correct: each
//! keys its own memory by the shared head.
//!
//! A prepared trial (data, endpoint rows, unblinded analysis) is shared by every role and by
//! the summary and analysis API; a page is kept per role and site, since its header names
//! them. Concurrent requests for the same missing entry wait for one computation.
//!
//! Under both sits each trial's data as last read ([`Held`]): the first request (or
//! [`DashboardCache::warm`] at start-up) reads the whole trial in one snapshot, and after a
//! write only the rows written since are read and added (see [`crate::store::since`]); a write
//! that changes more than it adds (an amendment) makes the next request read the trial afresh.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::page::TrialSnapshot;
use crate::endpoints::flow::Screening;
use crate::endpoints::DataCutoff;
use crate::service::analyse::screening_entry;
use crate::service::export::{ExportError, TrialData};
use crate::store::since::{self, Marks, Since};
use crate::store::{audit, Store};

/// Prepared trials kept: a few cut-offs of a few trials. Each holds a trial's events.
const SNAPSHOTS: usize = 4;

/// Rendered pages kept (a few hundred KiB each).
const PAGES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
struct SnapshotKey {
    trial: String,
    cutoff: DataCutoff,
    head: i64,
}

/// Which page for whom: the view and everything its header shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageKey {
    pub trial: String,
    pub cutoff: DataCutoff,
    pub role: String,
    pub site: Option<String>,
    head: i64,
}

type Slot<T> = Arc<OnceCell<Arc<T>>>;

/// A small most-recently-used list of single-flight slots.
struct Recent<K, T> {
    capacity: usize,
    entries: VecDeque<(K, Slot<T>)>,
}

impl<K: PartialEq + Clone, T> Recent<K, T> {
    fn new(capacity: usize) -> Self {
        Recent {
            capacity,
            entries: VecDeque::new(),
        }
    }

    /// The slot for `key` (new and empty if absent), moved to the front; entries whose head
    /// is older than `head` are dropped, as no request will ask for them again.
    fn slot(&mut self, key: &K, head: i64, head_of: impl Fn(&K) -> i64) -> Slot<T> {
        self.entries.retain(|(k, _)| head_of(k) >= head);
        let slot = match self.entries.iter().position(|(k, _)| k == key) {
            Some(i) => self.entries.remove(i).map(|(_, s)| s).unwrap_or_default(),
            None => Arc::new(OnceCell::new()),
        };
        self.entries.push_front((key.clone(), slot.clone()));
        self.entries.truncate(self.capacity);
        slot
    }
}

/// A trial's data as last read, and how far that read went.
struct Held {
    data: Arc<TrialData>,
    screening: Arc<Vec<Screening>>,
    marks: Marks,
}

/// One trial's held data; the lock makes one request read while the others wait for it.
type HeldSlot = Arc<tokio::sync::Mutex<Option<Held>>>;

/// What `rrct serve` remembers between requests.
pub struct DashboardCache {
    snapshots: Mutex<Recent<SnapshotKey, TrialSnapshot>>,
    pages: Mutex<Recent<PageKey, String>>,
    held: Mutex<HashMap<String, HeldSlot>>,
}

impl Default for DashboardCache {
    fn default() -> Self {
        DashboardCache {
            snapshots: Mutex::new(Recent::new(SNAPSHOTS)),
            pages: Mutex::new(Recent::new(PAGES)),
            held: Mutex::new(HashMap::new()),
        }
    }
}

/// The current version of the database.
async fn head(store: &Store) -> Result<i64, ExportError> {
    Ok(audit::head_seq(store).await?)
}

impl DashboardCache {
    /// The trial prepared as of `cutoff`, from memory when nothing was written since.
    #[tracing::instrument(skip_all, fields(trial = %trial_id), err)]
    pub async fn snapshot(
        &self,
        store: &Store,
        trial_id: &str,
        cutoff: DataCutoff,
    ) -> Result<Arc<TrialSnapshot>, ExportError> {
        let head = head(store).await?;
        self.snapshot_at(store, trial_id, cutoff, head).await
    }

    async fn snapshot_at(
        &self,
        store: &Store,
        trial_id: &str,
        cutoff: DataCutoff,
        head: i64,
    ) -> Result<Arc<TrialSnapshot>, ExportError> {
        let key = SnapshotKey {
            trial: trial_id.to_string(),
            cutoff,
            head,
        };
        let slot = self
            .snapshots
            .lock()
            .map_err(|_| poisoned())?
            .slot(&key, head, |k| k.head);
        slot.get_or_try_init(|| async {
            // Read at or after the head: the data are at least as new as the key says.
            let (data, screening) = self.data(store, trial_id, head).await?;
            // Deriving and analysing is CPU work over the whole trial: off the request threads.
            tokio::task::spawn_blocking(move || TrialSnapshot::prepare(data, screening, cutoff))
                .await
                .map(Arc::new)
                .map_err(|e| ExportError::Interrupted(trial_id.to_string(), e.to_string()))
        })
        .await
        .cloned()
    }

    /// Read each trial's data now (at start-up), so that the first reader of a dashboard waits
    /// only for the analysis.
    pub async fn warm(&self, store: &Store, trial_ids: &[String]) -> Result<(), ExportError> {
        let head = head(store).await?;
        for trial in trial_ids {
            self.data(store, trial, head).await?;
        }
        Ok(())
    }

    /// The trial's data at least as new as `head`: held, brought up to date with the rows
    /// written since it was read, or read afresh.
    async fn data(
        &self,
        store: &Store,
        trial_id: &str,
        head: i64,
    ) -> Result<(Arc<TrialData>, Arc<Vec<Screening>>), ExportError> {
        let slot = self
            .held
            .lock()
            .map_err(|_| poisoned())?
            .entry(trial_id.to_string())
            .or_default()
            .clone();
        let mut held = slot.lock().await;
        let current = match held.take() {
            Some(h) if h.marks.head >= head => h,
            Some(h) => match since::since(store, trial_id, &h.marks).await? {
                Since::Added(rows, marks) => {
                    // Snapshots of the older head were dropped when this head's slot was
                    // made, so the data are normally no longer shared and grow in place.
                    let mut data = Arc::unwrap_or_clone(h.data);
                    let mut screening = Arc::unwrap_or_clone(h.screening);
                    data.add(rows.allocations, rows.events);
                    if let Some(marks) = rows.in_error {
                        data.in_error = marks;
                    }
                    screening.extend(rows.screening.into_iter().map(screening_entry));
                    Held {
                        data: Arc::new(data),
                        screening: Arc::new(screening),
                        marks,
                    }
                }
                Since::Changed => read_afresh(store, trial_id).await?,
            },
            None => read_afresh(store, trial_id).await?,
        };
        let out = (current.data.clone(), current.screening.clone());
        *held = Some(current);
        Ok(out)
    }

    /// A page from memory, or built by `build` from the prepared trial (on a blocking thread:
    /// building is CPU work over the whole trial) and remembered.
    pub async fn page<E>(
        &self,
        store: &Store,
        trial_id: &str,
        cutoff: DataCutoff,
        role: &str,
        site: Option<&str>,
        build: impl FnOnce(&TrialSnapshot) -> Result<String, E> + Send + 'static,
    ) -> Result<Arc<String>, PageError>
    where
        E: std::fmt::Display,
    {
        let head = head(store).await?;
        let key = PageKey {
            trial: trial_id.to_string(),
            cutoff,
            role: role.to_string(),
            site: site.map(str::to_string),
            head,
        };
        let slot = self
            .pages
            .lock()
            .map_err(|_| poisoned())?
            .slot(&key, head, |k| k.head);
        slot.get_or_try_init(|| async {
            let snapshot = self.snapshot_at(store, trial_id, cutoff, head).await?;
            let body = tokio::task::spawn_blocking(move || {
                build(&snapshot).map_err(|e| PageError::Render(e.to_string()))
            })
            .await
            .map_err(|e| PageError::Render(e.to_string()))??;
            Ok(Arc::new(body))
        })
        .await
        .cloned()
    }
}

/// The whole trial, read in one snapshot.
async fn read_afresh(store: &Store, trial_id: &str) -> Result<Held, ExportError> {
    let (mut rows, marks) = since::all(store, trial_id).await?;
    let screening = std::mem::take(&mut rows.screening)
        .into_iter()
        .map(screening_entry)
        .collect();
    Ok(Held {
        data: Arc::new(TrialData::from_rows(store, trial_id, rows).await?),
        screening: Arc::new(screening),
        marks,
    })
}

fn poisoned() -> ExportError {
    ExportError::Store(crate::store::StoreError::Corrupt(
        "dashboard cache lock poisoned".into(),
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    Data(#[from] ExportError),
    #[error("rendering failed: {0}")]
    Render(String),
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> Self {
        PageError::Data(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_heads_evict_older_entries_and_capacity_is_kept() {
        let mut r: Recent<(u8, i64), u8> = Recent::new(2);
        let a = r.slot(&(1, 5), 5, |k| k.1);
        assert!(Arc::ptr_eq(&a, &r.slot(&(1, 5), 5, |k| k.1)));
        r.slot(&(2, 5), 5, |k| k.1);
        r.slot(&(3, 5), 5, |k| k.1);
        assert_eq!(r.entries.len(), 2);
        r.slot(&(1, 6), 6, |k| k.1);
        assert_eq!(r.entries.len(), 1, "head 5 entries are gone");
    }
}
