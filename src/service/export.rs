//! Analysis data sets as CSV: ADTTE (one row per subject for one endpoint) and ADSL (one row
//! per randomised subject), derived as of a data cut-off.
//!
//! Output is deterministic: rows in randomisation order, fixed columns, numbers formatted the
//! same way on every run and backend, so two exports of the same data are byte-identical.

use chrono::NaiveDate;

use crate::endpoints::{self, DataCutoff, ReceivedEvent, Subject};
use crate::protocol::{self, Protocol};
use std::collections::HashMap;

use crate::store::allocation_errors::{self, ErrorMark};
use crate::store::allocations::{self, AllocationRow};
use crate::store::{events, trials, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no trial `{0}` in this database")]
    TrialNotFound(String),
    #[error("trial `{trial}` has no endpoint `{endpoint}`; it has: {known}")]
    EndpointNotFound {
        trial: String,
        endpoint: String,
        known: String,
    },
    #[error("the stored protocol of `{0}` no longer parses: {1}")]
    Protocol(String, protocol::ProtocolErrors),
    #[error("cannot write CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The analysis task did not finish (it panicked or the runtime is shutting down).
    #[error("the analysis of `{0}` did not finish: {1}")]
    Interrupted(String, String),
}

/// A trial's protocol (as registered), randomised subjects and their events.
#[derive(Clone)]
pub struct TrialData {
    pub protocol: Protocol,
    pub allocations: Vec<AllocationRow>,
    pub events: Vec<ReceivedEvent>,
    /// Allocations marked randomised in error, by record id. They stay in every data set
    /// (intention to treat) and are flagged.
    pub in_error: HashMap<String, ErrorMark>,
}

impl TrialData {
    #[tracing::instrument(skip_all, fields(trial = %trial_id), err)]
    pub async fn load(store: &Store, trial_id: &str) -> Result<TrialData, ExportError> {
        // Independent reads: on a pool, at the same time.
        let (protocol, allocations, events, in_error) = tokio::try_join!(
            Self::stored_protocol(store, trial_id),
            async { Ok(allocations::list(store, trial_id).await?) },
            async { Ok(events::for_trial(store, trial_id).await?) },
            async { Ok(allocation_errors::of_trial(store, trial_id).await?) },
        )?;
        Ok(TrialData {
            protocol,
            allocations,
            events,
            in_error,
        })
    }

    /// The trial from rows read in one snapshot ([`crate::store::since::all`]), with the
    /// protocol read after it (so no later amendment can go unnoticed by a reader that compares
    /// audit entries since the snapshot).
    pub async fn from_rows(
        store: &Store,
        trial_id: &str,
        rows: crate::store::since::TrialRows,
    ) -> Result<TrialData, ExportError> {
        let in_error = match rows.in_error {
            // The snapshot's marks, matching its allocations (a first read has them).
            Some(marks) => marks,
            None => allocation_errors::of_trial(store, trial_id).await?,
        };
        let mut data = TrialData {
            protocol: Self::stored_protocol(store, trial_id).await?,
            allocations: Vec::new(),
            events: Vec::new(),
            in_error,
        };
        data.add(rows.allocations, rows.events);
        Ok(data)
    }

    /// Add allocations made and events received since the data were read (allocations in
    /// randomisation order after those held; events in any order). The events stay ordered by
    /// subject, date and event id: the added ones are put in place, without comparing the
    /// held ones with each other.
    pub fn add(&mut self, allocations: Vec<AllocationRow>, mut received: Vec<ReceivedEvent>) {
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

    /// The trial's current protocol, as registered.
    async fn stored_protocol(store: &Store, trial_id: &str) -> Result<Protocol, ExportError> {
        let (_, source) = trials::current_protocol(store, trial_id)
            .await?
            .ok_or_else(|| ExportError::TrialNotFound(trial_id.to_string()))?;
        protocol::parse(&source, &format!("stored protocol of {trial_id}"))
            .map_err(|e| ExportError::Protocol(trial_id.to_string(), e))
    }

    /// Subjects as the derivation sees them, in randomisation order.
    pub fn subjects(&self) -> Vec<Subject> {
        self.allocations
            .iter()
            .map(|a| Subject {
                record_id: a.record_id.as_str().into(),
                subject: a.subject.as_str().into(),
                site: a.site_code.as_str().into(),
                arm: a.arm.as_str().into(),
                stratum: a.stratum.as_str().into(),
                randomised_on: randomised_on(a),
            })
            .collect()
    }

    pub fn endpoint(&self, id: &str) -> Result<&protocol::Endpoint, ExportError> {
        self.protocol
            .endpoint(id)
            .ok_or_else(|| ExportError::EndpointNotFound {
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

/// The randomisation day: the UTC date of the allocation.
fn randomised_on(a: &AllocationRow) -> NaiveDate {
    a.allocated_at
        .get(..10)
        .and_then(endpoints::parse_event_date)
        .unwrap_or(NaiveDate::MIN)
}

/// ADTTE for one endpoint: `record_id,subject,site,arm,stratum,randomised_on,time_days,event,
/// censor_reason` (allocations randomised in error are kept, intention to treat; their flag is
/// in ADSL, the subject-level data set, to merge by `record_id`). For binary endpoints `event` is 1/0 or empty when incomplete; for counts it
/// is the count; for continuous endpoints the value.
pub fn adtte(
    data: &TrialData,
    endpoint_id: &str,
    cutoff: DataCutoff,
) -> Result<Vec<u8>, ExportError> {
    let endpoint = data.endpoint(endpoint_id)?;
    let rows = endpoints::derive(
        &data.protocol.follow_up,
        endpoint,
        &data.subjects(),
        &data.events,
        cutoff,
    );
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "record_id",
        "subject",
        "site",
        "arm",
        "stratum",
        "randomised_on",
        "time_days",
        "event",
        "censor_reason",
    ])?;
    for r in &rows {
        out.write_record([
            &*r.subject.record_id,
            &r.subject.subject,
            &r.subject.site,
            &r.subject.arm,
            &r.subject.stratum,
            &r.subject.randomised_on.to_string(),
            &r.time_days().map(|t| t.to_string()).unwrap_or_default(),
            &r.event_text(),
            r.censor_reason.as_ref().map_or("", |c| c.as_text()),
        ])?;
    }
    out.into_inner()
        .map_err(|e| ExportError::Csv(e.into_error().into()))
}

/// ADSL: one row per subject randomised on or before the cut-off, with the stratification
/// factors as columns `strat_<factor>`, and `error_flag` = 1 (with `error_reason`) when the
/// register data contradict the randomisation: a death dated before the randomisation day,
/// or events dated more than a day after a recorded death; last `randomised_in_error` = 1
/// (with `randomised_in_error_reason`) for an allocation marked randomised in error.
pub fn adsl(data: &TrialData, cutoff: DataCutoff) -> Result<Vec<u8>, ExportError> {
    let factors = &data.protocol.randomisation.strata;
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = [
        "record_id",
        "subject",
        "site",
        "arm",
        "arm_label",
        "stratum",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(factors.iter().map(|f| format!("strat_{f}")));
    header.extend(
        [
            "randomisation_number",
            "randomised_on",
            "protocol_version",
            "error_flag",
            "error_reason",
            "randomised_in_error",
            "randomised_in_error_reason",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    out.write_record(&header)?;
    let mut by_subject: std::collections::HashMap<&str, Vec<&ReceivedEvent>> =
        std::collections::HashMap::new();
    for e in data.events.iter().filter(|e| e.received_on <= cutoff.0) {
        by_subject
            .entry(e.event.subject.as_str())
            .or_default()
            .push(e);
    }
    for a in &data.allocations {
        let on = randomised_on(a);
        if on > cutoff.0 {
            continue;
        }
        let levels: std::collections::HashMap<&str, &str> = a
            .stratum
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let known = by_subject
            .get(a.subject.as_str())
            .map_or(&[][..], |v| v.as_slice());
        let error = data_error(known, on);
        let marked = data.in_error.get(&a.record_id);
        let mut record: Vec<String> = vec![
            a.record_id.clone(),
            a.subject.clone(),
            a.site_code.clone(),
            a.arm.clone(),
            data.protocol
                .arms
                .iter()
                .find(|x| x.id == a.arm)
                .map_or_else(|| a.arm.clone(), |x| x.label.clone()),
            a.stratum.clone(),
        ];
        record.extend(
            factors
                .iter()
                .map(|f| levels.get(f.as_str()).unwrap_or(&"").to_string()),
        );
        record.extend([
            a.randomisation_number.to_string(),
            on.to_string(),
            a.protocol_version.clone(),
            u8::from(error.is_some()).to_string(),
            error.unwrap_or_default(),
            u8::from(marked.is_some()).to_string(),
            marked.map(|m| m.reason.clone()).unwrap_or_default(),
        ]);
        out.write_record(&record)?;
    }
    out.into_inner()
        .map_err(|e| ExportError::Csv(e.into_error().into()))
}

/// A contradiction between a subject's events and its randomisation, if any.
fn data_error(known: &[&ReceivedEvent], randomised_on: NaiveDate) -> Option<String> {
    let death = known
        .iter()
        .filter(|e| e.event.event_type == "death")
        .map(|e| e.event.date)
        .min()?;
    if death < randomised_on {
        return Some(format!(
            "death on {death} before randomisation on {randomised_on}"
        ));
    }
    known
        .iter()
        .find(|e| (e.event.date - death).num_days() > 1)
        .map(|e| {
            format!(
                "event {} ({}) on {} after death on {death}",
                e.event.event_id, e.event.event_type, e.event.date
            )
        })
}
