//! A trial's data as every analysis reads them: the protocol as registered, the allocations in
//! randomisation order, the register events received, the randomised-in-error marks and each
//! randomised subject's enrolment fields (its baseline).
//!
//! Pure: the trial view in the service layer reads these from the store (and keeps them up to
//! date with [`TrialData::add`]); the design simulator builds them in memory.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::endpoints::{self, DataCutoff, ReceivedEvent, Subject};
use crate::protocol::{Endpoint, Protocol};
use crate::randomise::AllocationRecord;

/// One allocation marked randomised in error. The allocation itself is never changed: it stays
/// in every data set (intention to treat) and is flagged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ErrorMark {
    pub trial_id: String,
    pub record_id: String,
    pub reason: String,
    pub marked_by: String,
    pub marked_at: String,
}

/// A trial's protocol (as registered), randomised subjects and their events.
#[derive(Clone)]
pub struct TrialData {
    pub protocol: Protocol,
    /// In randomisation order.
    pub allocations: Vec<AllocationRecord>,
    /// Ordered by subject, date and event id ([`endpoints::sort_received`]).
    pub events: Vec<ReceivedEvent>,
    /// Allocations marked randomised in error, by record id.
    pub in_error: HashMap<String, ErrorMark>,
    /// The sources' deliveries, in the order received (of every source; the protocol's sources
    /// are read from them).
    pub deliveries: Vec<endpoints::sources::Delivery>,
    /// Consents recorded with the enrolments, and withdrawals ([`super::participation`]).
    pub participation: super::participation::Participation,
    /// The arms open to new patients under each protocol version the trial has had, by
    /// version: a subject is a concurrent control for an arm only if that arm was open under
    /// the version the subject was randomised under. A version not listed is read from the
    /// current protocol when it is that version, and otherwise taken to have had every arm
    /// open.
    pub open_arms_by_version: BTreeMap<String, Vec<String>>,
    /// Each randomised subject's enrolment fields, for the analysis plan's covariates beyond
    /// `site` and the stratification factors ([`super::baseline`]).
    pub baseline: super::baseline::Baseline,
}

/// Why a data set cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("trial `{trial}` has no endpoint `{endpoint}`; it has: {known}")]
    EndpointNotFound {
        trial: String,
        endpoint: String,
        known: String,
    },
    #[error("cannot write CSV: {0}")]
    Csv(#[from] csv::Error),
}

impl TrialData {
    /// A trial of which nothing is held yet but its protocol (fill in what is read, e.g.
    /// `TrialData { allocations, events, ..TrialData::of(protocol) }`).
    pub fn of(protocol: Protocol) -> Self {
        TrialData {
            protocol,
            allocations: Vec::new(),
            events: Vec::new(),
            in_error: HashMap::new(),
            deliveries: Vec::new(),
            participation: Default::default(),
            open_arms_by_version: BTreeMap::new(),
            baseline: Default::default(),
        }
    }

    /// Add allocations made and events received since the data were read (allocations in
    /// randomisation order after those held; events in any order). The events stay ordered by
    /// subject, date and event id: the added ones are put in place, without comparing the
    /// held ones with each other.
    pub fn add(&mut self, allocations: Vec<AllocationRecord>, mut received: Vec<ReceivedEvent>) {
        self.allocations.extend(allocations);
        if received.is_empty() {
            return;
        }
        endpoints::sort_received(&mut received);
        let at: Vec<usize> = received
            .iter()
            .map(|r| self.events.partition_point(|e| e.order() < r.order()))
            .collect();
        let held = std::mem::take(&mut self.events);
        let mut merged = Vec::with_capacity(held.len() + received.len());
        let mut held = held.into_iter();
        let mut taken = 0;
        for (r, at) in received.into_iter().zip(at) {
            merged.extend(held.by_ref().take(at - taken));
            taken = at;
            merged.push(r);
        }
        merged.extend(held);
        self.events = merged;
    }

    /// The allocations made on or before the cut-off day, in randomisation order: who is in
    /// the trial as of the cut-off.
    pub fn randomised_by(&self, cutoff: DataCutoff) -> impl Iterator<Item = &AllocationRecord> {
        self.allocations
            .iter()
            .filter(move |a| a.randomised_on() <= cutoff.0)
    }

    /// [`Self::randomised_by`] without those who withdrew the use of their data: whose data
    /// the analyses and data sets may use.
    pub fn usable_by(&self, cutoff: DataCutoff) -> impl Iterator<Item = &AllocationRecord> {
        self.randomised_by(cutoff)
            .filter(|a| !self.participation.data_use_withdrawn(&a.record_id))
    }

    /// Subjects as the derivation sees them, in randomisation order: without those who
    /// withdrew the use of their data, and with the day follow-up data stop for those who
    /// withdrew from data collection.
    pub fn subjects(&self) -> Vec<Subject> {
        self.allocations
            .iter()
            .filter(|a| !self.participation.data_use_withdrawn(&a.record_id))
            .map(|a| Subject {
                data_collection_ends: self.participation.data_collection_ends(&a.record_id),
                record_id: a.record_id.as_str().into(),
                subject: a.subject.as_str().into(),
                site: a.site_code.as_str().into(),
                arm: a.arm.as_str().into(),
                stratum: a.stratum.as_str().into(),
                randomised_on: a.randomised_on(),
            })
            .collect()
    }

    /// Each declared source's state as of the cut-off ([`endpoints::sources::status`]).
    pub fn source_status(&self, cutoff: DataCutoff) -> Vec<endpoints::sources::SourceStatus> {
        if self.protocol.follow_up.sources.is_empty() {
            return Vec::new();
        }
        let randomised: HashMap<&str, chrono::NaiveDate> = self
            .randomised_by(cutoff)
            .map(|a| (a.subject.as_str(), a.randomised_on()))
            .collect();
        endpoints::sources::status(
            &self.protocol.follow_up,
            &self.deliveries,
            &self.events,
            &randomised,
            cutoff,
        )
    }

    /// Whether the subject of allocation `a` could have been randomised to `arm`: the arm was
    /// open to new patients under the protocol version `a` was made under, and the patient was
    /// eligible for it (the allocation's `eligible_arms`, when its arms were restricted). Only
    /// such subjects are concurrent, eligible controls for `arm`.
    pub fn could_have_received(&self, a: &AllocationRecord, arm: &str) -> bool {
        if a.arm == arm {
            return true;
        }
        let open = match self.open_arms_by_version.get(&a.protocol_version) {
            Some(open) => open.iter().any(|x| x == arm),
            None if a.protocol_version == self.protocol.version => {
                self.protocol.arms.iter().any(|x| x.id == arm && !x.closed)
            }
            None => true,
        };
        let eligible = a.eligible_arms.as_deref().is_none_or(|list| {
            // Written by the engine as a JSON array of arm ids; anything else restricts nothing.
            serde_json::from_str::<Vec<String>>(list)
                .map_or(true, |ids| ids.iter().any(|x| x == arm))
        });
        open && eligible
    }

    pub fn endpoint(&self, id: &str) -> Result<&Endpoint, DataError> {
        self.protocol
            .endpoint(id)
            .ok_or_else(|| DataError::EndpointNotFound {
                trial: self.protocol.trial_id.clone(),
                endpoint: id.to_string(),
                known: self
                    .protocol
                    .endpoints
                    .iter()
                    .map(|e| e.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// For each allocation (by record id), whether its subject could have been randomised to each
/// arm of the protocol ([`TrialData::could_have_received`]).
pub(crate) struct Concurrency {
    by_record: std::collections::HashMap<String, Vec<bool>>,
}

impl Concurrency {
    pub(crate) fn of(data: &TrialData) -> Concurrency {
        let arms = &data.protocol.arms;
        Concurrency {
            by_record: data
                .allocations
                .iter()
                .map(|a| {
                    (
                        a.record_id.clone(),
                        arms.iter()
                            .map(|arm| data.could_have_received(a, &arm.id))
                            .collect(),
                    )
                })
                .collect(),
        }
    }

    /// Whether the subject of `record` belongs in the comparison of arms `a` and `b` (protocol
    /// indices): it could have been randomised to either.
    pub(crate) fn keeps(&self, record: &str, a: usize, b: usize) -> bool {
        self.by_record.get(record).is_none_or(|open| {
            open.get(a).copied().unwrap_or(true) && open.get(b).copied().unwrap_or(true)
        })
    }
}
