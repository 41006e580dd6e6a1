//! The CONSORT-ROUTINE participant flow, per site inclusion rates, and data completeness and
//! timeliness, computed from the screening log, the allocations and the derived primary
//! endpoint as of a cut-off.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use serde::Serialize;

use super::{CensorReason, DataCutoff, EndpointRow, Outcome, ReceivedEvent, WithdrawalScope};

/// One screening-log entry as the flow needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Screening {
    pub record_id: String,
    pub site: String,
    /// `randomised`, `not_eligible` or `not_randomised`.
    pub outcome: String,
    /// Unmet criteria (not eligible) or the reason given (not randomised).
    pub reasons: Vec<String>,
    pub screened_on: NaiveDate,
    /// The enrolment fields as the register sent them (for the representativeness of the
    /// randomised, see `analysis::representativeness`).
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// Counts for the whole trial or one site. Arm splits are `None` in blinded views.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FlowCounts {
    /// Distinct registrations that reached a screening decision.
    pub screened: u64,
    pub not_eligible: u64,
    pub not_eligible_by_criterion: BTreeMap<String, u64>,
    pub eligible: u64,
    pub not_randomised: u64,
    pub not_randomised_by_reason: BTreeMap<String, u64>,
    pub randomised: u64,
    /// Randomised ÷ eligible: the share of eligible patients the trial reached.
    pub inclusion_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub randomised_by_arm: Option<BTreeMap<String, u64>>,
    /// Follow-up ended by a censoring event (e.g. emigration) before the primary endpoint's
    /// horizon or the cut-off.
    pub lost_to_follow_up: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_to_follow_up_by_arm: Option<BTreeMap<String, u64>>,
    /// Randomised patients who withdrew from further contact only (register follow-up goes on).
    pub withdrew_contact_only: u64,
    /// Randomised patients who withdrew from further data collection (follow-up censored at the
    /// withdrawal date), including those who also withdrew the use of their data.
    pub withdrew_from_follow_up: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrew_from_follow_up_by_arm: Option<BTreeMap<String, u64>>,
    /// Randomised patients who withdrew the use of their data: excluded from every analysis.
    pub withdrew_data_use: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrew_data_use_by_arm: Option<BTreeMap<String, u64>>,
    /// Subjects with a primary-endpoint value usable in the analysis.
    pub analysed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysed_by_arm: Option<BTreeMap<String, u64>>,
}

/// Data completeness and timeliness at one site.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SiteData {
    pub site: String,
    #[serde(flatten)]
    pub counts: FlowCounts,
    /// Share of randomised subjects followed up to the cut-off, the horizon or their event
    /// (not lost to follow-up).
    pub follow_up_completeness: Option<f64>,
    /// Events received for the site's subjects, and the days from event to receipt of those
    /// dated on or after the subject's randomisation (follow-up, not history).
    pub events_received: u64,
    pub event_lag_days_median: Option<f64>,
    pub event_lag_days_p90: Option<f64>,
}

/// The whole flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flow {
    pub cutoff: NaiveDate,
    pub primary_endpoint: Option<String>,
    #[serde(flatten)]
    pub total: FlowCounts,
    pub sites: Vec<SiteData>,
}

impl Flow {
    /// The same flow without any per-arm figure, for sponsors and register hosts.
    pub fn blinded(mut self) -> Flow {
        let strip = |c: &mut FlowCounts| {
            c.randomised_by_arm = None;
            c.lost_to_follow_up_by_arm = None;
            c.withdrew_from_follow_up_by_arm = None;
            c.withdrew_data_use_by_arm = None;
            c.analysed_by_arm = None;
        };
        strip(&mut self.total);
        for s in &mut self.sites {
            strip(&mut s.counts);
        }
        self
    }
}

/// Compute the flow. `primary` holds the primary endpoint's rows as of the same cut-off (one
/// per randomised subject whose data may be used), `arms` the randomised record ids with their
/// arm and site, `withdrawn` the widest withdrawal scope of each record that withdrew.
pub fn flow(
    cutoff: DataCutoff,
    screening: &[Screening],
    arms: &[(String, String, String)],
    primary_endpoint: Option<&str>,
    primary: &[EndpointRow],
    events: &[ReceivedEvent],
    withdrawn: &HashMap<&str, WithdrawalScope>,
) -> Flow {
    // Final status per record: randomised wins; otherwise the latest screening decision.
    let randomised: HashMap<&str, (&str, &str)> = arms
        .iter()
        .map(|(record, arm, site)| (record.as_str(), (arm.as_str(), site.as_str())))
        .collect();
    let mut latest: BTreeMap<&str, &Screening> = BTreeMap::new();
    for s in screening.iter().filter(|s| s.screened_on <= cutoff.0) {
        latest.insert(s.record_id.as_str(), s);
    }
    let mut total = FlowCounts::default();
    let mut sites: BTreeMap<String, SiteData> = BTreeMap::new();
    // Counted by key without making the key's text again for every subject.
    let bump = |map: &mut Option<BTreeMap<String, u64>>, key: &str| {
        let map = map.get_or_insert_with(BTreeMap::new);
        match map.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                map.insert(key.to_string(), 1);
            }
        }
    };
    for (record, s) in &latest {
        let site = sites.entry(s.site.clone()).or_insert_with(|| SiteData {
            site: s.site.clone(),
            ..Default::default()
        });
        for c in [&mut total, &mut site.counts] {
            c.screened += 1;
            if let Some((arm, _)) = randomised.get(record) {
                c.eligible += 1;
                c.randomised += 1;
                bump(&mut c.randomised_by_arm, arm);
                match withdrawn.get(record) {
                    None => {}
                    Some(WithdrawalScope::NoFurtherContact) => c.withdrew_contact_only += 1,
                    Some(scope) => {
                        c.withdrew_from_follow_up += 1;
                        bump(&mut c.withdrew_from_follow_up_by_arm, arm);
                        if *scope == WithdrawalScope::DataUseWithdrawn {
                            c.withdrew_data_use += 1;
                            bump(&mut c.withdrew_data_use_by_arm, arm);
                        }
                    }
                }
            } else if s.outcome == "not_randomised" {
                c.eligible += 1;
                c.not_randomised += 1;
                for r in &s.reasons {
                    *c.not_randomised_by_reason.entry(r.clone()).or_default() += 1;
                }
            } else {
                c.not_eligible += 1;
                for r in &s.reasons {
                    *c.not_eligible_by_criterion.entry(r.clone()).or_default() += 1;
                }
            }
        }
    }
    for row in primary {
        let arm = &*row.subject.arm;
        let lost = matches!(row.censor_reason, Some(CensorReason::Event(_)));
        let analysed = match &row.outcome {
            Outcome::TimeToEvent { .. } => true,
            Outcome::Binary { event, .. } => event.is_some(),
            Outcome::Count { complete, .. } => *complete,
            Outcome::Continuous { value, .. } => value.is_some(),
        };
        let site = sites
            .entry(row.subject.site.to_string())
            .or_insert_with(|| SiteData {
                site: row.subject.site.to_string(),
                ..Default::default()
            });
        for c in [&mut total, &mut site.counts] {
            if lost {
                c.lost_to_follow_up += 1;
                bump(&mut c.lost_to_follow_up_by_arm, arm);
            }
            if analysed {
                c.analysed += 1;
                bump(&mut c.analysed_by_arm, arm);
            }
        }
    }
    // Timeliness: days from event to receipt of follow-up events (dated on or after the
    // subject's randomisation: history linked at enrolment says nothing of how timely a
    // register is), per site of the randomised subject.
    let subject_site: HashMap<&str, (&str, NaiveDate)> = primary
        .iter()
        .map(|r| {
            (
                &*r.subject.subject,
                (&*r.subject.site, r.subject.randomised_on),
            )
        })
        .collect();
    let mut lags: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut received: BTreeMap<&str, u64> = BTreeMap::new();
    // A subject's events come one after another (the store reads them by subject): its site
    // is looked up once per run of its events, and the run's counts added at its end.
    let mut run = Run::default();
    for e in events.iter().filter(|e| e.received_on <= cutoff.0) {
        let subject = e.event.subject.as_str();
        if run.subject != Some(subject) {
            run.close(&mut received, &mut lags);
            run.subject = Some(subject);
            run.site = subject_site.get(subject).copied();
        }
        if let Some((_, randomised_on)) = run.site {
            run.received += 1;
            if e.event.date >= randomised_on {
                run.lags
                    .push((e.received_on - e.event.date).num_days() as f64);
            }
        }
    }
    run.close(&mut received, &mut lags);
    for site in sites.values_mut() {
        let c = &mut site.counts;
        c.inclusion_rate = (c.eligible > 0).then(|| c.randomised as f64 / c.eligible as f64);
        if primary_endpoint.is_some() && c.randomised > 0 {
            site.follow_up_completeness =
                Some(1.0 - c.lost_to_follow_up as f64 / c.randomised as f64);
        }
        site.events_received = received.get(site.site.as_str()).copied().unwrap_or(0);
        if let Some(l) = lags.get_mut(site.site.as_str()) {
            l.sort_by(f64::total_cmp);
            site.event_lag_days_median = quantile(l, 0.5);
            site.event_lag_days_p90 = quantile(l, 0.9);
        }
    }
    total.inclusion_rate =
        (total.eligible > 0).then(|| total.randomised as f64 / total.eligible as f64);
    Flow {
        cutoff: cutoff.0,
        primary_endpoint: primary_endpoint.map(str::to_string),
        total,
        sites: sites.into_values().collect(),
    }
}

/// One subject's events received, while [`flow`] goes through them: their site (none for a
/// subject without a row of the primary endpoint), how many, and their lags.
#[derive(Default)]
struct Run<'a> {
    subject: Option<&'a str>,
    site: Option<(&'a str, NaiveDate)>,
    received: u64,
    lags: Vec<f64>,
}

impl<'a> Run<'a> {
    /// Add the run's counts to its site's, and empty it.
    fn close(
        &mut self,
        received: &mut BTreeMap<&'a str, u64>,
        lags: &mut BTreeMap<&'a str, Vec<f64>>,
    ) {
        // A run with a site holds at least the event that began it.
        if let Some((site, _)) = self.site {
            *received.entry(site).or_default() += self.received;
            if !self.lags.is_empty() {
                lags.entry(site).or_default().append(&mut self.lags);
            }
        }
        self.received = 0;
        self.lags.clear();
    }
}

/// Quantile of sorted values by linear interpolation (R's default type 7).
pub(crate) fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::{Event, Subject};

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn scr(record: &str, site: &str, outcome: &str, reasons: &[&str], on: &str) -> Screening {
        Screening {
            record_id: record.into(),
            site: site.into(),
            outcome: outcome.into(),
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
            screened_on: d(on),
            fields: Default::default(),
        }
    }

    fn row(record: &str, site: &str, arm: &str, reason: Option<CensorReason>) -> EndpointRow {
        EndpointRow {
            subject: Subject {
                record_id: record.into(),
                subject: format!("S-{record}").into(),
                site: site.into(),
                arm: arm.into(),
                stratum: "all".into(),
                randomised_on: d("2024-01-01"),
                data_collection_ends: None,
            },
            outcome: Outcome::TimeToEvent {
                time_days: 10,
                event: false,
            },
            censor_reason: reason,
            source: None,
            source_event_id: None,
        }
    }

    #[test]
    fn counts_reasons_rates_and_blinding() {
        let screening = [
            scr("r1", "UPP", "randomised", &[], "2024-01-01"),
            scr("r2", "UPP", "not_eligible", &["stemi"], "2024-01-01"),
            // Corrected and randomised later: counts once, as randomised.
            scr("r3", "UPP", "not_eligible", &["early"], "2024-01-02"),
            scr("r3", "UPP", "randomised", &[], "2024-01-02"),
            scr(
                "r4",
                "KS",
                "not_randomised",
                &["consent_declined"],
                "2024-01-03",
            ),
            scr("r5", "KS", "randomised", &[], "2024-01-03"),
            // After the cut-off: not in the flow.
            scr("r6", "KS", "randomised", &[], "2024-03-01"),
        ];
        let arms = [
            ("r1".to_string(), "pci".to_string(), "UPP".to_string()),
            (
                "r3".to_string(),
                "aspiration".to_string(),
                "UPP".to_string(),
            ),
            ("r5".to_string(), "pci".to_string(), "KS".to_string()),
        ];
        let primary = [
            row("r1", "UPP", "pci", None),
            row(
                "r3",
                "UPP",
                "aspiration",
                Some(CensorReason::Event("emigration".into())),
            ),
            row("r5", "KS", "pci", Some(CensorReason::Administrative)),
        ];
        let events = [ReceivedEvent {
            event: Event {
                event_id: "e".into(),
                subject: "S-r1".into(),
                event_type: "mi".into(),
                date: d("2024-01-10"),
                code: None,
                value: None,
                source: None,
            },
            received_on: d("2024-01-14"),
        }];
        let f = flow(
            DataCutoff(d("2024-02-01")),
            &screening,
            &arms,
            Some("death_1y"),
            &primary,
            &events,
            &HashMap::from([
                ("r1", WithdrawalScope::NoFurtherContact),
                ("r5", WithdrawalScope::DataUseWithdrawn),
            ]),
        );
        assert_eq!(f.total.screened, 5);
        assert_eq!(f.total.withdrew_contact_only, 1);
        assert_eq!(f.total.withdrew_from_follow_up, 1);
        assert_eq!(f.total.withdrew_data_use, 1);
        assert_eq!(
            f.total.withdrew_data_use_by_arm,
            Some(BTreeMap::from([("pci".into(), 1)]))
        );
        assert_eq!(f.total.not_eligible, 1);
        assert_eq!(
            f.total.not_eligible_by_criterion,
            BTreeMap::from([("stemi".into(), 1)])
        );
        assert_eq!(f.total.eligible, 4);
        assert_eq!(
            f.total.not_randomised_by_reason,
            BTreeMap::from([("consent_declined".into(), 1)])
        );
        assert_eq!(f.total.randomised, 3);
        assert_eq!(f.total.inclusion_rate, Some(0.75));
        assert_eq!(f.total.lost_to_follow_up, 1);
        assert_eq!(f.total.analysed, 3);
        let upp = &f.sites[1];
        assert_eq!(upp.site, "UPP");
        assert_eq!(upp.counts.inclusion_rate, Some(1.0));
        assert_eq!(upp.follow_up_completeness, Some(0.5));
        assert_eq!(upp.event_lag_days_median, Some(4.0));
        assert_eq!(
            f.total.randomised_by_arm,
            Some(BTreeMap::from([
                ("aspiration".into(), 1),
                ("pci".into(), 2)
            ]))
        );
        let blinded = serde_json::to_string(&f.clone().blinded()).unwrap();
        assert!(
            !blinded.contains("aspiration") && !blinded.contains("pci"),
            "{blinded}"
        );
    }

    /// Events received per site and their lags: each subject's run of events counted once
    /// whatever the order they come in, history before randomisation and events received after
    /// the cut-off or of subjects not randomised left out.
    #[test]
    fn timeliness_counts_each_subject_s_events_in_any_order() {
        let primary = [
            row("r1", "UPP", "pci", None),
            row("r2", "KS", "pci", None),
            row("r3", "UPP", "pci", None),
        ];
        let event = |id: &str, subject: &str, date: &str, received: &str| ReceivedEvent {
            event: Event {
                event_id: id.into(),
                subject: subject.into(),
                event_type: "mi".into(),
                date: d(date),
                code: None,
                value: None,
                source: None,
            },
            received_on: d(received),
        };
        let by_subject = vec![
            event("a", "S-r1", "2024-01-10", "2024-01-12"),
            event("b", "S-r1", "2024-01-20", "2024-01-30"),
            // History before randomisation: received, but no lag.
            event("c", "S-r1", "2023-12-01", "2024-01-05"),
            event("d", "S-r2", "2024-01-05", "2024-01-06"),
            event("e", "S-r2", "2024-01-07", "2024-03-01"),
            event("f", "S-other", "2024-01-05", "2024-01-06"),
            event("g", "S-r3", "2024-01-02", "2024-01-05"),
        ];
        let mut interleaved = by_subject.clone();
        interleaved.swap(1, 3);
        interleaved.swap(5, 6);
        interleaved.reverse();
        let of = |events: &[ReceivedEvent]| {
            flow(
                DataCutoff(d("2024-02-01")),
                &[],
                &[],
                Some("death_1y"),
                &primary,
                events,
                &HashMap::new(),
            )
        };
        for f in [of(&by_subject), of(&interleaved)] {
            let site = |code: &str| f.sites.iter().find(|s| s.site == code).unwrap();
            let (ks, upp) = (site("KS"), site("UPP"));
            assert_eq!(upp.events_received, 4);
            // Lags 2, 10 and 3 days.
            assert_eq!(upp.event_lag_days_median, Some(3.0));
            assert_eq!(upp.event_lag_days_p90, quantile(&[2.0, 3.0, 10.0], 0.9));
            assert_eq!(ks.events_received, 1);
            assert_eq!(ks.event_lag_days_median, Some(1.0));
        }
    }

    #[test]
    fn quantiles_follow_r_type_7() {
        let v = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert_eq!(quantile(&v, 0.5), Some(3.0));
        assert!((quantile(&v, 0.9).unwrap() - 7.6).abs() < 1e-12);
        assert_eq!(quantile(&[], 0.5), None);
    }
}
