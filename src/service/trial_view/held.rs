//! Each trial's data as last read, and how to bring them up to date: the first request (or
//! [`HeldData::warm`] at start-up) reads the whole trial in one snapshot, and after a write only
//! the rows written since are read and added (see [`crate::store::since`]), with the protocol
//! read again after an amendment; a write that changes rows in place makes the next request
//! read the trial afresh. A trial not held yet is taken from the rows a server saved, when it
//! may be (see [`crate::store::snapshots`]), and brought up to date the same way.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::TrialViewError;
use crate::analysis::participation::Participation;
use crate::analysis::TrialData;
use crate::endpoints::flow::Screening;
use crate::protocol::{self, Protocol};
use crate::store::since::{self, Marks, Since, TrialRows};
use crate::store::snapshots;
use crate::store::{
    allocation_errors, allocations, deliveries, events, participation, screening_log, trials, Store,
};

/// Batches of subjects with events added kept in an [`AddedLog`] at most, and subjects in all.
const LOG_BATCHES: usize = 1024;
const LOG_SUBJECTS: usize = 100_000;

/// Held rows are saved again ([`HeldData::save_in_background`]) once rows added since the copy
/// saved (allocations, events and screening entries) reach a tenth of those held, and at
/// least this many: a server starting again then reads at most about that many.
const SAVE_AFTER_ROWS: usize = 1_000;

/// A trial's data as last read, and how far that read went.
struct Held {
    data: Arc<TrialData>,
    screening: Arc<Vec<Screening>>,
    marks: Marks,
    /// This state's version: new on every read and every addition of rows written since.
    version: u64,
    log: AddedLog,
    /// Rows added since these data were saved or taken from a saved copy (`None`: neither).
    unsaved: Option<usize>,
}

impl Held {
    /// Allocations, events and screening entries held.
    fn rows(&self) -> usize {
        self.data.allocations.len() + self.data.events.len() + self.screening.len()
    }

    /// Whether to save these data: never saved, or grown by a tenth since.
    fn save_due(&self) -> bool {
        self.unsaved
            .is_none_or(|n| n >= SAVE_AFTER_ROWS.max(self.rows() / 10))
    }
}

/// The subjects whose events each addition of rows brought, by the version it made, for every
/// version from `from` on (the read afresh, or the oldest addition still kept).
struct AddedLog {
    from: u64,
    batches: VecDeque<(u64, Vec<String>)>,
    subjects: usize,
}

impl AddedLog {
    fn new(from: u64) -> Self {
        AddedLog {
            from,
            batches: VecDeque::new(),
            subjects: 0,
        }
    }

    fn push(&mut self, version: u64, subjects: Vec<String>) {
        self.subjects += subjects.len();
        self.batches.push_back((version, subjects));
        while self.batches.len() > LOG_BATCHES || self.subjects > LOG_SUBJECTS {
            let Some((version, dropped)) = self.batches.pop_front() else {
                break;
            };
            // Every addition after `version` is still kept.
            self.from = version;
            self.subjects -= dropped.len();
        }
    }

    /// The subjects with events added after state `version` (up to `now`, the latest), if the
    /// log reaches back to it.
    fn since(&self, version: u64, now: u64) -> Option<HashSet<String>> {
        (self.from <= version && version <= now).then(|| {
            self.batches
                .iter()
                .filter(|(v, _)| *v > version)
                .flat_map(|(_, subjects)| subjects.iter().cloned())
                .collect()
        })
    }
}

/// Where the data a read gives came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Held already (brought up to date with the rows written since, if any).
    Held,
    /// Taken from the copy a server saved (see [`crate::store::snapshots`]) and brought up to
    /// date with the rows written since.
    Saved,
    /// Read afresh, the whole trial.
    Read,
}

/// A trial's data as held now ([`HeldData::at_least`]).
pub struct HeldRead {
    pub data: Arc<TrialData>,
    pub screening: Arc<Vec<Screening>>,
    /// The version of the held data these are.
    pub version: u64,
    /// The subjects with events added since the version the caller named, when it named one
    /// and these data grew from it by additions alone (not read afresh since).
    pub events_added_since: Option<HashSet<String>>,
    /// Where this read found the data.
    pub origin: Origin,
}

/// One trial's held data; the lock makes one request read while the others wait for it.
type HeldSlot = Arc<tokio::sync::Mutex<Option<Held>>>;

/// The data of every trial read so far.
#[derive(Default)]
pub struct HeldData {
    trials: Mutex<HashMap<String, HeldSlot>>,
    /// The last version given to a trial's held state.
    versions: AtomicU64,
    /// Held while saving: a save that finds nothing to do returns only once the one under way
    /// has ended, so that whoever awaits it knows what is saved.
    saving: Arc<tokio::sync::Mutex<()>>,
}

impl HeldData {
    /// The trial's data at least as new as `head`: held, brought up to date with the rows
    /// written since it was read, or read afresh; with the subjects whose events were added
    /// since the held version `since`, when the caller names one.
    pub async fn at_least(
        &self,
        store: &Store,
        trial_id: &str,
        head: i64,
        since: Option<u64>,
    ) -> Result<HeldRead, TrialViewError> {
        let next_version = || self.versions.fetch_add(1, Ordering::Relaxed) + 1;
        let slot = self
            .trials
            .lock()
            .map_err(|_| super::poisoned())?
            .entry(trial_id.to_string())
            .or_default()
            .clone();
        let mut held = slot.lock().await;
        let (current, origin) = match held.take() {
            Some(h) => up_to_date(store, trial_id, h, head, &next_version, Origin::Held).await?,
            None => match taken_from_saved(store, trial_id, next_version()).await {
                Some(h) => {
                    up_to_date(store, trial_id, h, head, &next_version, Origin::Saved).await?
                }
                None => (
                    read_afresh(store, trial_id, next_version()).await?,
                    Origin::Read,
                ),
            },
        };
        let out = HeldRead {
            data: current.data.clone(),
            screening: current.screening.clone(),
            version: current.version,
            events_added_since: since.and_then(|v| current.log.since(v, current.version)),
            origin,
        };
        *held = Some(current);
        Ok(out)
    }

    /// Save the trial's held data (see [`crate::store::snapshots`]) in a task of its own, when
    /// they were never saved or have grown by a tenth since; the task gives whether it saved,
    /// and ends after any save under way. A failure is logged: a server starting again then
    /// reads more.
    pub fn save_in_background(
        &self,
        store: &Store,
        trial_id: &str,
    ) -> Result<tokio::task::JoinHandle<bool>, TrialViewError> {
        let slot = self
            .trials
            .lock()
            .map_err(|_| super::poisoned())?
            .get(trial_id)
            .cloned();
        let (store, trial) = (store.clone(), trial_id.to_string());
        let saving = self.saving.clone();
        Ok(tokio::spawn(async move {
            let Some(slot) = slot else {
                return false;
            };
            let _saving = saving.lock().await;
            let taken = {
                let mut held = slot.lock().await;
                match held.as_mut() {
                    Some(h) if h.save_due() => {
                        // Counted as saved now, so that no second task saves the same rows.
                        h.unsaved = Some(0);
                        Some((h.data.clone(), h.screening.clone(), h.marks))
                    }
                    _ => None,
                }
            };
            let Some((data, screening, marks)) = taken else {
                return false;
            };
            let body = tokio::task::spawn_blocking(move || {
                snapshots::encode(&snapshots::HeldRows {
                    marks: &marks,
                    allocations: &data.allocations,
                    events: &data.events,
                    screening: &screening,
                    in_error: &data.in_error,
                    deliveries: &data.deliveries,
                    consents: data.participation.consents.values().collect(),
                    withdrawals: &data.participation.withdrawals,
                })
            })
            .await
            .ok()
            .flatten();
            let Some(body) = body else {
                return false;
            };
            match snapshots::save(&store, &trial, marks.head, &body).await {
                Ok(saved) => saved,
                Err(e) => {
                    tracing::warn!(trial = %trial, error = %e, "held data not saved");
                    false
                }
            }
        }))
    }
}

/// `h` (from `origin`) brought up to date with the rows written since it was read, when it is
/// older than `head`; read afresh (and from [`Origin::Read`]) when something changed rows in
/// place.
async fn up_to_date(
    store: &Store,
    trial_id: &str,
    h: Held,
    head: i64,
    next_version: &impl Fn() -> u64,
    origin: Origin,
) -> Result<(Held, Origin), TrialViewError> {
    if h.marks.head >= head {
        return Ok((h, origin));
    }
    Ok(match since::since(store, trial_id, &h.marks).await? {
        Since::Added(rows, marks) => {
            let version = next_version();
            let mut log = h.log;
            let mut subjects: Vec<String> = rows
                .events
                .iter()
                .map(|e| e.event.subject.clone())
                .collect();
            subjects.sort_unstable();
            subjects.dedup();
            log.push(version, subjects);
            let added = rows.allocations.len() + rows.events.len() + rows.screening.len();
            // Prepared trials of the older head were dropped when this head's slot was
            // made, so the data are normally no longer shared and grow in place.
            let mut data = Arc::unwrap_or_clone(h.data);
            let mut screening = Arc::unwrap_or_clone(h.screening);
            data.add(rows.allocations, rows.events);
            data.deliveries.extend(rows.deliveries);
            data.participation
                .consents
                .extend(rows.consents.into_iter().map(|c| (c.record_id.clone(), c)));
            if let Some(marks) = rows.in_error {
                data.in_error = marks;
            }
            if rows.protocol_registered {
                // Read after the snapshot, as on a first read (see `from_rows`), with
                // the arms each version had open.
                data.protocol = stored_protocol(store, trial_id).await?;
                data.open_arms_by_version = open_arms_by_version(store, trial_id).await?;
            }
            // The enrolment fields of the newly randomised: their screening rows
            // are among those written since.
            data.baseline.record(&rows.screening);
            screening.extend(rows.screening);
            let held = Held {
                data: Arc::new(data),
                screening: Arc::new(screening),
                marks,
                version,
                log,
                unsaved: h.unsaved.map(|n| n + added),
            };
            (held, origin)
        }
        Since::Changed => (
            read_afresh(store, trial_id, next_version()).await?,
            Origin::Read,
        ),
    })
}

/// The trial as a server saved it ([`crate::store::snapshots`]), as held state `version`, when
/// a copy this server may take is saved; `None` otherwise (a failure to read it is logged: the
/// caller reads the trial afresh).
async fn taken_from_saved(store: &Store, trial_id: &str, version: u64) -> Option<Held> {
    let taken = async {
        let Some((rows, marks)) = snapshots::load(store, trial_id).await? else {
            return Ok(None);
        };
        tracing::info!(trial = %trial_id, head = marks.head, "saved rows taken");
        Ok::<_, TrialViewError>(Some(
            held_from(store, trial_id, rows, marks, version, Some(0)).await?,
        ))
    };
    match taken.await {
        Ok(held) => held,
        Err(e) => {
            tracing::warn!(trial = %trial_id, error = %e, "saved rows not taken");
            None
        }
    }
}

/// The whole trial, read in one snapshot, as held state `version`.
async fn read_afresh(store: &Store, trial_id: &str, version: u64) -> Result<Held, TrialViewError> {
    let (rows, marks) = since::all(store, trial_id).await?;
    held_from(store, trial_id, rows, marks, version, None).await
}

/// Held state `version` of every row of the trial (read afresh, or saved) and how far they go,
/// with `unsaved` rows added since saved.
async fn held_from(
    store: &Store,
    trial_id: &str,
    mut rows: TrialRows,
    marks: Marks,
    version: u64,
    unsaved: Option<usize>,
) -> Result<Held, TrialViewError> {
    let screening = std::mem::take(&mut rows.screening);
    let mut data = from_rows(store, trial_id, rows).await?;
    data.baseline.record(&screening);
    Ok(Held {
        data: Arc::new(data),
        screening: Arc::new(screening),
        marks,
        version,
        log: AddedLog::new(version),
        unsaved,
    })
}

/// The trial from rows read in one snapshot ([`since::all`]), with the protocol read after it
/// (so no later amendment can go unnoticed by a reader that compares audit entries since the
/// snapshot).
pub async fn from_rows(
    store: &Store,
    trial_id: &str,
    rows: TrialRows,
) -> Result<TrialData, TrialViewError> {
    let in_error = match rows.in_error {
        // The snapshot's marks, matching its allocations (a first read has them).
        Some(marks) => marks,
        None => allocation_errors::of_trial(store, trial_id).await?,
    };
    let participation = match rows.withdrawals {
        Some(withdrawals) => Participation {
            consents: rows
                .consents
                .into_iter()
                .map(|c| (c.record_id.clone(), c))
                .collect(),
            withdrawals,
        },
        None => participation::of_trial(store, trial_id).await?,
    };
    let mut data = TrialData {
        protocol: stored_protocol(store, trial_id).await?,
        allocations: Vec::new(),
        events: Vec::new(),
        in_error,
        deliveries: rows.deliveries,
        participation,
        open_arms_by_version: open_arms_by_version(store, trial_id).await?,
        baseline: Default::default(),
    };
    // The enrolment fields come with the screening rows, when the caller read them.
    data.baseline.record(&rows.screening);
    data.add(rows.allocations, rows.events);
    Ok(data)
}

/// The trial's data and screening log read table by table (not in one snapshot): the plain
/// reading the held data are checked against.
#[tracing::instrument(skip_all, fields(trial = %trial_id), err)]
pub async fn read_each_table(
    store: &Store,
    trial_id: &str,
) -> Result<(TrialData, Vec<Screening>), TrialViewError> {
    // Independent reads: on a pool, at the same time.
    let (
        protocol,
        allocations,
        events,
        in_error,
        screening,
        deliveries,
        participation,
        open_arms_by_version,
    ) = tokio::try_join!(
        stored_protocol(store, trial_id),
        async { Ok(allocations::list(store, trial_id).await?) },
        async { Ok(events::for_trial(store, trial_id).await?) },
        async { Ok(allocation_errors::of_trial(store, trial_id).await?) },
        async { Ok(screening_log::screening_outcomes(store, trial_id).await?) },
        async { Ok(deliveries::all(store).await?) },
        async { Ok(participation::of_trial(store, trial_id).await?) },
        open_arms_by_version(store, trial_id),
    )?;
    let mut baseline = crate::analysis::baseline::Baseline::default();
    baseline.record(&screening);
    Ok((
        TrialData {
            protocol,
            allocations,
            events,
            in_error,
            deliveries,
            participation,
            open_arms_by_version,
            baseline,
        },
        screening,
    ))
}

/// The arms open to new patients under each registered protocol version (versions whose
/// stored text no longer parses are left out: [`TrialData::could_have_received`] then takes
/// every arm as open under them).
async fn open_arms_by_version(
    store: &Store,
    trial_id: &str,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, TrialViewError> {
    Ok(trials::protocol_versions(store, trial_id)
        .await?
        .into_iter()
        .filter_map(|v| {
            let p = protocol::parse(&v.source, &v.version).ok()?;
            let open = p
                .arms
                .iter()
                .filter(|a| !a.closed)
                .map(|a| a.id.clone())
                .collect();
            Some((v.version, open))
        })
        .collect())
}

/// The trial's current protocol, as registered.
pub async fn stored_protocol(store: &Store, trial_id: &str) -> Result<Protocol, TrialViewError> {
    let (_, source) = trials::current_protocol(store, trial_id)
        .await?
        .ok_or_else(|| TrialViewError::NotInDatabase(trial_id.to_string()))?;
    protocol::parse(&source, &format!("stored protocol of {trial_id}"))
        .map_err(|e| TrialViewError::Protocol(trial_id.to_string(), e))
}
