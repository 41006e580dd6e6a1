//! The engine's clock: when an allocation, a screening report, a delivery of register events
//! or a randomised-in-error mark happened, and which day is "today" for cut-offs and for the
//! dates a register may send.
//!
//! A server runs on the system clock. A demonstration or a test may run the engine's calendar
//! elsewhere — a trial enrolled two years ago and followed up since — by setting the day the
//! clock shows; time of day keeps running. Nothing outside the services reads the time for a
//! trial's data: the store records the real time only in its own bookkeeping (audit entries,
//! token and protocol registration times).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{Duration, NaiveDate, Utc};

use crate::endpoints::{CutoffError, DataCutoff};
use crate::randomise::Timestamp;

/// A clock, cheap to clone; clones share their setting.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Microseconds added to the system time (0 on a server).
    offset_micros: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock whose calendar shows `day` now (time of day runs on).
    pub fn on(day: NaiveDate) -> Clock {
        let clock = Clock::default();
        clock.set_today(day);
        clock
    }

    /// Move the calendar to `day`, keeping the time of day.
    pub fn set_today(&self, day: NaiveDate) {
        let days = (day - Utc::now().date_naive()).num_days();
        self.offset_micros
            .store(days * 86_400_000_000, Ordering::SeqCst);
    }

    /// Now.
    pub fn now(&self) -> Timestamp {
        let offset = Duration::microseconds(self.offset_micros.load(Ordering::SeqCst));
        Timestamp::from(Utc::now() + offset)
    }

    /// Today (UTC).
    pub fn today(&self) -> NaiveDate {
        self.now().date()
    }

    /// The cut-off a reader asked for, or today when they named none; a cut-off after today
    /// is refused, since data not yet received would read as complete follow-up.
    pub fn cutoff(&self, asked: Option<&str>) -> Result<DataCutoff, CutoffError> {
        DataCutoff::parse_not_after(asked, self.today())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_set_to_a_day_shows_that_day_and_clones_follow() {
        let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let clock = Clock::on(day);
        let copy = clock.clone();
        assert_eq!(copy.today(), day);
        clock.set_today(day + chrono::Days::new(40));
        assert_eq!(copy.today(), day + chrono::Days::new(40));
        assert!(copy.cutoff(Some("2024-04-10")).is_ok());
        assert!(copy.cutoff(Some("2024-04-11")).is_err(), "after today");
        assert_eq!(copy.cutoff(None).unwrap().0, day + chrono::Days::new(40));
        assert_eq!(Clock::system().today(), Utc::now().date_naive());
    }
}
