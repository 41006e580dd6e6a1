//! Endpoints: per-subject outcomes derived from register events as of a data cut-off.
//!
//! Owns the meaning of an endpoint definition (see `protocol::Endpoint`) applied to the events
//! the registers sent: which events count, when follow-up ends, how a subject is censored. The
//! derivation is a pure function of (randomised subjects, events, cut-off): the same inputs give
//! the same rows, so an interim analysis repeated next month for the same cut-off reproduces
//! today's. It never reads the database or the clock; the caller passes both the data and the
//! cut-off. [`DataCutoff`] is where a cut-off given as text is read and checked against the day
//! the caller's clock shows: every interface reads cut-offs through it, and the derivation never.
//!
//! # Rules
//! - As of cut-off date `C`, the known events are those *received* on or before `C`
//!   (`recorded_at`), whatever their clinical date; an event dated before `C` but received later
//!   is not yet known.
//! - Follow-up ends at the earliest of: `C` minus the reporting lag of the source the
//!   endpoint's events come from (administrative censoring: the source's data are complete
//!   through that day; for a composite, the slowest source's), the first censoring event (e.g.
//!   emigration), and the endpoint's horizon. With no source declared, the protocol's
//!   `[follow_up] reporting_lag_days` is every type's lag.
//! - Where two sources deliver one event type, a subject's events of that type are taken from
//!   the source first in the protocol's precedence among those that reported any.
//! - Only events dated on or after the randomisation day count (day 0 is the randomisation day);
//!   earlier events are history, never outcomes. An outcome event on the same day as a
//!   censoring event counts: the subject was followed that day.
//! - Subjects randomised after `C` are not in the data set as of `C`.

mod derive;
mod event;
pub mod flow;
pub mod sources;
mod withdrawal;

pub use derive::{
    administrative_end, apply_precedence, complete_through, count_events, decided_outcome, derive,
    derive_grouped, event_count_changes, slowest_source, sort_received, subject_outcome,
    CensorReason, EndpointRow, EventCountChanges, EventsBySubject, KnownEvent, Outcome,
    ReceivedEvent, SurvivalData,
};
pub use event::{
    is_type_name, parse_date as parse_event_date, parse_event, Event, EventError, EventFields,
};
pub use withdrawal::WithdrawalScope;

use std::sync::Arc;

use chrono::NaiveDate;
use serde::Serialize;

/// The date data are taken as of: events received up to and including this day count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DataCutoff(pub NaiveDate);

/// A cut-off that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CutoffError {
    #[error("cutoff `{0}` is not a date YYYY-MM-DD")]
    NotADate(String),
    /// Data not yet received would read as complete follow-up.
    #[error("cutoff {cutoff} is after today ({today}): data cannot be taken as of a day that has not come")]
    AfterToday { cutoff: NaiveDate, today: NaiveDate },
}

impl DataCutoff {
    /// A cut-off written `YYYY-MM-DD`.
    ///
    /// ```
    /// use rrct::endpoints::DataCutoff;
    /// assert_eq!(DataCutoff::parse("2024-02-29").unwrap().0.to_string(), "2024-02-29");
    /// assert!(DataCutoff::parse("2023-02-29").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<DataCutoff, CutoffError> {
        parse_event_date(text)
            .map(DataCutoff)
            .ok_or_else(|| CutoffError::NotADate(text.to_string()))
    }

    /// This cut-off, unless it is after `today`.
    pub fn not_after(self, today: NaiveDate) -> Result<DataCutoff, CutoffError> {
        if self.0 > today {
            Err(CutoffError::AfterToday {
                cutoff: self.0,
                today,
            })
        } else {
            Ok(self)
        }
    }

    /// The cut-off a reader asked for (`None`: today), which may not be after `today`: the one
    /// reading of a cut-off every interface uses (through the service's clock).
    ///
    /// ```
    /// use rrct::endpoints::DataCutoff;
    /// let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
    /// assert_eq!(DataCutoff::parse_not_after(None, today).unwrap().0, today);
    /// assert!(DataCutoff::parse_not_after(Some("2026-12-06"), today).is_err());
    /// ```
    pub fn parse_not_after(
        text: Option<&str>,
        today: NaiveDate,
    ) -> Result<DataCutoff, CutoffError> {
        text.map_or(Ok(DataCutoff(today)), DataCutoff::parse)?
            .not_after(today)
    }
}

/// A randomised subject as the endpoint derivation needs it. Every endpoint row carries one, so
/// its texts are shared rather than copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subject {
    pub record_id: Arc<str>,
    pub subject: Arc<str>,
    pub site: Arc<str>,
    pub arm: Arc<str>,
    pub stratum: Arc<str>,
    pub randomised_on: NaiveDate,
    /// The day follow-up data stop being collected (a withdrawal): every endpoint is censored
    /// there (`withdrawal`) unless it ended earlier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_collection_ends: Option<NaiveDate>,
}
