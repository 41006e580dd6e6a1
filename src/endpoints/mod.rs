//! Endpoints: per-subject outcomes derived from register events as of a data cut-off.
//!
//! Owns the meaning of an endpoint definition (see `protocol::Endpoint`) applied to the events
//! the registers sent: which events count, when follow-up ends, how a subject is censored. The
//! derivation is a pure function of (randomised subjects, events, cut-off): the same inputs give
//! the same rows, so an interim analysis repeated next month for the same cut-off reproduces
//! today's. It never reads the database or the clock; the caller passes both the data and the
//! cut-off. [`DataCutoff`] is where a cut-off given as text is read, and where "no cut-off given"
//! becomes today (UTC): every interface calls those two, and the derivation neither.
//!
//! # Rules
//! - As of cut-off date `C`, the known events are those *received* on or before `C`
//!   (`recorded_at`), whatever their clinical date; an event dated before `C` but received later
//!   is not yet known.
//! - Follow-up ends at the earliest of: `C` minus the protocol's reporting lag (administrative
//!   censoring), the first censoring event (e.g. emigration), and the endpoint's horizon.
//! - Only events dated on or after the randomisation day count (day 0 is the randomisation day);
//!   earlier events are history, never outcomes. An outcome event on the same day as a
//!   censoring event counts: the subject was followed that day.
//! - Subjects randomised after `C` are not in the data set as of `C`.

mod derive;
mod event;
pub mod flow;

pub use derive::{
    administrative_end, count_events, derive, derive_grouped, event_count_changes, sort_received,
    subject_outcome, CensorReason, EndpointRow, EventsBySubject, KnownEvent, Outcome,
    ReceivedEvent, SurvivalData,
};
pub use event::{
    is_type_name, parse_date as parse_event_date, parse_event, Event, EventError, EventFields,
};

use std::sync::Arc;

use chrono::NaiveDate;
use serde::Serialize;

/// The date data are taken as of: events received up to and including this day count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DataCutoff(pub NaiveDate);

/// A cut-off given as text that is not a date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cutoff `{0}` is not a date YYYY-MM-DD")]
pub struct CutoffError(pub String);

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
            .ok_or_else(|| CutoffError(text.to_string()))
    }

    /// Today, UTC: the cut-off when none is given.
    pub fn today() -> DataCutoff {
        DataCutoff(chrono::Utc::now().date_naive())
    }

    /// The cut-off a reader asked for, or today when they named none.
    pub fn parse_or_today(text: Option<&str>) -> Result<DataCutoff, CutoffError> {
        text.map_or_else(|| Ok(DataCutoff::today()), DataCutoff::parse)
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
}
