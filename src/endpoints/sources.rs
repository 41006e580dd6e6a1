//! Each register's state as of a cut-off: the day its data are complete through, when it last
//! delivered, whether it is stale, and how timely its events are.
//!
//! A source is **stale** when its last delivery (as of the cut-off) is more than its
//! `expected_every_days` before the cut-off, or when it never delivered although subjects were
//! randomised longer ago than that. A stale source's silence is not "no events": the pages and
//! `rrct analyse` flag it.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::{DataCutoff, ReceivedEvent};
use crate::protocol::FollowUp;

/// One accepted delivery of a source (a batch of events, possibly empty), as the trial's data
/// hold it: on the day it was received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Delivery {
    pub source: String,
    pub received_on: NaiveDate,
    /// Events newly stored by the delivery (for any trial).
    pub events_stored: u64,
}

/// One source as of a cut-off.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceStatus {
    pub id: String,
    pub label: String,
    pub delivers: Vec<String>,
    pub reporting_lag_days: u32,
    pub expected_every_days: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<String>,
    /// The cut-off minus the lag: the source's events up to this day are taken as complete.
    pub complete_through: NaiveDate,
    /// The last delivery received on or before the cut-off.
    pub last_delivery: Option<NaiveDate>,
    pub days_since_last_delivery: Option<i64>,
    /// Deliveries received on or before the cut-off.
    pub deliveries: u64,
    pub stale: bool,
    /// Why it is stale, in words, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_reason: Option<String>,
    /// The trial's events from this source received by the cut-off, and the days from event to
    /// receipt of those dated on or after their subject's randomisation (`None` for readers
    /// who may not see trial-wide counts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_received: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_lag_days_median: Option<f64>,
}

/// Every declared source's state as of `cutoff`. `events` are the trial's events, `randomised`
/// each randomised subject's randomisation day, `deliveries` the sources' deliveries (of any
/// source; others are ignored).
pub fn status(
    follow_up: &FollowUp,
    deliveries: &[Delivery],
    events: &[ReceivedEvent],
    randomised: &HashMap<&str, NaiveDate>,
    cutoff: DataCutoff,
) -> Vec<SourceStatus> {
    let first_randomised = randomised.values().filter(|d| **d <= cutoff.0).min();
    // One pass over the events: each received by the cut-off counts for its source, and its
    // delay from event to receipt where it is follow-up of a randomised subject.
    let mut per_source: Vec<(u64, Vec<f64>)> = vec![(0, Vec::new()); follow_up.sources.len()];
    for e in events.iter().filter(|e| e.received_on <= cutoff.0) {
        let Some(source) = e.event.source.as_deref() else {
            continue;
        };
        let Some(i) = follow_up.sources.iter().position(|s| s.id == source) else {
            continue;
        };
        let (received, lags) = &mut per_source[i];
        *received += 1;
        if randomised
            .get(e.event.subject.as_str())
            .is_some_and(|r| e.event.date >= *r)
        {
            lags.push((e.received_on - e.event.date).num_days() as f64);
        }
    }
    follow_up
        .sources
        .iter()
        .zip(per_source)
        .map(|(s, (received, mut lags))| {
            let mut last = None;
            let mut count = 0u64;
            for d in deliveries
                .iter()
                .filter(|d| d.source == s.id && d.received_on <= cutoff.0)
            {
                count += 1;
                last = last.max(Some(d.received_on));
            }
            lags.sort_by(f64::total_cmp);
            let days_since = last.map(|l| (cutoff.0 - l).num_days());
            let expected = i64::from(s.expected_every_days);
            let stale_reason = match (days_since, first_randomised) {
                (Some(n), _) if n > expected => Some(format!(
                    "last delivery {n} days before the cut-off; expected every {expected} days"
                )),
                (None, Some(first)) if (cutoff.0 - *first).num_days() > expected => Some(format!(
                    "no delivery since the first randomisation ({first}); expected every \
                     {expected} days"
                )),
                _ => None,
            };
            SourceStatus {
                id: s.id.clone(),
                label: s.label.clone(),
                delivers: s.delivers.clone(),
                reporting_lag_days: s.reporting_lag_days,
                expected_every_days: s.expected_every_days,
                provenance: s.provenance.clone(),
                complete_through: cutoff.0 - chrono::Days::new(u64::from(s.reporting_lag_days)),
                last_delivery: last,
                days_since_last_delivery: days_since,
                deliveries: count,
                stale: stale_reason.is_some(),
                stale_reason,
                events_received: Some(received),
                event_lag_days_median: super::flow::quantile(&lags, 0.5),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::Event;
    use crate::protocol::Source;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn follow_up() -> FollowUp {
        let source = |id: &str, lag, every| Source {
            id: id.into(),
            label: id.to_uppercase(),
            delivers: vec![format!("{id}_event")],
            reporting_lag_days: lag,
            expected_every_days: every,
            provenance: None,
        };
        FollowUp {
            sources: vec![
                source("quality", 1, 1),
                source("deaths", 60, 31),
                source("drugs", 30, 31),
            ],
            ..FollowUp::default()
        }
    }

    fn delivery(source: &str, on: &str) -> Delivery {
        Delivery {
            source: source.into(),
            received_on: d(on),
            events_stored: 0,
        }
    }

    #[test]
    fn complete_through_last_delivery_and_staleness() {
        let deliveries = [
            delivery("quality", "2024-12-30"),
            delivery("quality", "2024-12-31"),
            // Received after the cut-off: not seen as of it.
            delivery("quality", "2025-01-02"),
            delivery("deaths", "2024-10-15"),
            delivery("deaths", "2024-11-20"),
        ];
        let events = [ReceivedEvent {
            event: Event {
                event_id: "e1".into(),
                subject: "S1".into(),
                event_type: "deaths_event".into(),
                date: d("2024-10-01"),
                code: None,
                value: None,
                source: Some("deaths".into()),
            },
            received_on: d("2024-11-20"),
        }];
        let randomised = HashMap::from([("S1", d("2024-06-01"))]);
        let got = status(
            &follow_up(),
            &deliveries,
            &events,
            &randomised,
            DataCutoff(d("2024-12-31")),
        );
        let quality = &got[0];
        assert_eq!(quality.complete_through, d("2024-12-30"));
        assert_eq!(quality.last_delivery, Some(d("2024-12-31")));
        assert_eq!((quality.deliveries, quality.stale), (2, false));
        let deaths = &got[1];
        assert_eq!(deaths.complete_through, d("2024-11-01"));
        // 41 days since the last delivery, expected every 31: stale.
        assert_eq!(deaths.days_since_last_delivery, Some(41));
        assert!(deaths.stale);
        assert_eq!(
            deaths.stale_reason.as_deref(),
            Some("last delivery 41 days before the cut-off; expected every 31 days")
        );
        assert_eq!(deaths.events_received, Some(1));
        assert_eq!(deaths.event_lag_days_median, Some(50.0));
        // Never delivered, subjects randomised 213 days ago: stale.
        let drugs = &got[2];
        assert_eq!((drugs.last_delivery, drugs.stale), (None, true));
        // As of the day after the first randomisation nothing was expected yet.
        let early = status(
            &follow_up(),
            &deliveries,
            &events,
            &randomised,
            DataCutoff(d("2024-06-02")),
        );
        assert!(!early[2].stale);
        assert!(early[1].stale_reason.is_none());
    }
}
