//! What every trial page shares: the page header, the CONSORT flow boxes, the protocol's
//! wording and number formats.

use chrono::NaiveDate;

use crate::endpoints::flow::FlowCounts;
use crate::protocol::Protocol;

/// A site's name as the protocol gives it (empty when it gives none).
pub fn site_name(protocol: &Protocol, code: &str) -> String {
    protocol
        .sites
        .iter()
        .find(|s| s.code == code)
        .and_then(|s| s.name.clone())
        .unwrap_or_default()
}

/// The wording of an eligibility criterion, or its id when the protocol has no such one.
pub fn criterion_text(protocol: &Protocol, id: &str) -> String {
    protocol
        .inclusion
        .iter()
        .chain(&protocol.exclusion)
        .find(|c| c.id == id)
        .map_or_else(|| id.to_string(), |c| format!("{} ({id})", c.text))
}

/// The header of a trial page.
pub struct Chrome {
    pub trial_id: String,
    pub title: String,
    pub protocol_version: String,
    /// The reader's role as shown.
    pub role: String,
    /// "all sites", or the site a register host is scoped to.
    pub scope: String,
    /// The data cut-off (empty where it does not apply).
    pub cutoff: String,
    /// Served pages have the cut-off form and sign-out; a written report has neither.
    pub interactive: bool,
    /// The trial's lifecycle, its history and its emergency unblindings (served pages).
    pub lifecycle: Option<LifecyclePanel>,
}

/// The trial's lifecycle as every page shows it under its header.
pub struct LifecyclePanel {
    /// active, paused or closed.
    pub status: String,
    pub closed_sites: String,
    /// Newest first: (when, what, site, reason, by).
    pub history: Vec<[String; 5]>,
    /// How many emergency unblindings there were (every reader sees the number).
    pub unblindings: usize,
    /// Who, when, why, which record (no arm): for the statistician, the DSMB and the auditor.
    pub unblinding_list: Option<Vec<[String; 6]>>,
    /// Whether the reader may pause, resume or close the trial, and mark an allocation
    /// randomised in error, from the page (its admins).
    pub may_change: bool,
    /// Whether the reader may break the blind of one subject from the page (its unblinder).
    pub may_unblind: bool,
}

/// One box of the CONSORT flow.
pub struct FlowStep {
    pub label: String,
    pub total: String,
    /// Per-arm counts (unblinded) or reasons (exclusion boxes).
    pub split: Vec<(String, String)>,
    /// An exclusion box, drawn to the side of the main flow.
    pub side: bool,
}

/// The flow boxes; `count` formats numbers (suppressing small ones on blinded pages) and
/// `arms` lists `(arm id, shown name)` for the per-arm split, empty when blinded.
pub fn consort(
    total: &FlowCounts,
    protocol: &Protocol,
    arms: &[(String, String)],
    count: fn(u64) -> String,
) -> Vec<FlowStep> {
    let by_arm = |m: &Option<std::collections::BTreeMap<String, u64>>| -> Vec<(String, String)> {
        arms.iter()
            .map(|(id, name)| {
                (
                    name.clone(),
                    count(m.as_ref().and_then(|m| m.get(id)).copied().unwrap_or(0)),
                )
            })
            .collect()
    };
    let reasons = |m: &std::collections::BTreeMap<String, u64>, text: &dyn Fn(&str) -> String| {
        m.iter()
            .map(|(r, n)| (text(r), count(*n)))
            .collect::<Vec<_>>()
    };
    [
        FlowStep {
            label: "Screened in the register".into(),
            total: count(total.screened),
            split: vec![],
            side: false,
        },
        FlowStep {
            label: "Not eligible".into(),
            total: count(total.not_eligible),
            split: reasons(&total.not_eligible_by_criterion, &|r| {
                criterion_text(protocol, r)
            }),
            side: true,
        },
        FlowStep {
            label: "Eligible".into(),
            total: count(total.eligible),
            split: vec![],
            side: false,
        },
        FlowStep {
            label: "Eligible, not randomised".into(),
            total: count(total.not_randomised),
            split: reasons(&total.not_randomised_by_reason, &|r| r.replace('_', " ")),
            side: true,
        },
        FlowStep {
            label: "Randomised".into(),
            total: count(total.randomised),
            split: by_arm(&total.randomised_by_arm),
            side: false,
        },
        FlowStep {
            label: "Lost to follow-up".into(),
            total: count(total.lost_to_follow_up),
            split: by_arm(&total.lost_to_follow_up_by_arm),
            side: true,
        },
        FlowStep {
            label: "Withdrew from data collection (censored at withdrawal)".into(),
            total: count(total.withdrew_from_follow_up),
            split: by_arm(&total.withdrew_from_follow_up_by_arm),
            side: true,
        },
        FlowStep {
            label: "Withdrew use of data (not analysed)".into(),
            total: count(total.withdrew_data_use),
            split: by_arm(&total.withdrew_data_use_by_arm),
            side: true,
        },
        FlowStep {
            label: "Analysed (primary endpoint)".into(),
            total: count(total.analysed),
            split: by_arm(&total.analysed_by_arm),
            side: false,
        },
    ]
    .into_iter()
    // Withdrawals are shown when there are any.
    .filter(|s| !s.label.starts_with("Withdrew") || s.total != count(0))
    .collect()
}

/// A p-value as a report prints it.
pub fn p_value(p: f64) -> String {
    if p.is_nan() {
        "–".into()
    } else if p < 0.001 {
        "<0.001".into()
    } else {
        format!("{p:.3}")
    }
}

pub fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "–".to_string(), f)
}

/// Cumulative counts at the end of each week (spans up to half a year) or month.
pub fn cumulative_by_period(mut days: Vec<NaiveDate>) -> (Vec<(NaiveDate, u64)>, &'static str) {
    use chrono::Datelike;
    days.sort_unstable();
    let (Some(&first), Some(&last)) = (days.first(), days.last()) else {
        return (vec![], "week");
    };
    let weekly = (last - first).num_days() <= 183;
    let period_end = |d: NaiveDate| -> NaiveDate {
        if weekly {
            d + chrono::Duration::days(6 - i64::from(d.weekday().num_days_from_monday()))
        } else {
            let (y, m) = if d.month() == 12 {
                (d.year() + 1, 1)
            } else {
                (d.year(), d.month() + 1)
            };
            NaiveDate::from_ymd_opt(y, m, 1).map_or(d, |n| n - chrono::Duration::days(1))
        }
    };
    let mut out: Vec<(NaiveDate, u64)> = Vec::new();
    let mut n = 0u64;
    for d in days {
        n += 1;
        let end = period_end(d);
        match out.last_mut() {
            Some(last) if last.0 == end => last.1 = n,
            _ => out.push((end, n)),
        }
    }
    (out, if weekly { "week" } else { "month" })
}

/// An unblinded report's count format.
pub fn plain(n: u64) -> String {
    n.to_string()
}

/// One planned look's event count on a page: reached, or when it is expected.
pub struct ForecastRow {
    pub look: usize,
    pub events: u64,
    pub when: String,
    pub interval: String,
    pub probability: String,
}

/// The forecast of the looks as the pages show it: its rows, the sentence that explains it,
/// and a note when none can be made yet.
pub struct ForecastView {
    pub rows: Vec<ForecastRow>,
    pub basis: String,
    pub note: Option<String>,
}

pub fn forecast_view(outlook: Option<&crate::analysis::forecast::Outlook>) -> Option<ForecastView> {
    use crate::analysis::forecast::Outlook;
    match outlook? {
        Outlook::NotYet { note } => Some(ForecastView {
            rows: Vec::new(),
            basis: String::new(),
            note: Some(note.clone()),
        }),
        Outlook::Forecast(f) => {
            let rate = |r: f64| format!("{:.3}", r * 365.25);
            let basis = match &f.model {
                None => format!(
                    "From the data complete through {}, pooled over the arms.",
                    f.complete_through
                ),
                Some(m) => format!(
                "From {} randomised and {} events ({} dropped out) in the data complete through {}: \
                 {} a year at risk{}{}, pooled over the arms; {} replicates, {:.0}% prediction \
                 intervals.",
                m.subjects,
                m.events,
                m.dropped_out,
                f.complete_through,
                m.hazard_per_day
                    .iter()
                    .map(|&r| rate(r))
                    .collect::<Vec<_>>()
                    .join(" / "),
                m.drop_out_per_day
                    .map_or_else(String::new, |r| format!(", drop-out {} a year", rate(r))),
                m.accrual_per_day.map_or_else(String::new, |r| format!(
                    ", {:.1} randomised a week",
                    r * 7.0
                )),
                m.replicates,
                m.level * 100.0
            ),
            };
            let rows = f
                .looks
                .iter()
                .map(|l| ForecastRow {
                    look: l.look,
                    events: l.events,
                    when: match (l.reached_on, l.expected_on) {
                        (Some(d), _) => format!("reached {d}"),
                        (None, Some(d)) => format!("expected {d}"),
                        (None, None) => "not within 20 years".to_string(),
                    },
                    interval: l
                        .interval
                        .map_or_else(|| "–".to_string(), |[a, b]| format!("{a} to {b}")),
                    probability: format!("{:.0}%", l.probability_reached * 100.0),
                })
                .collect();
            Some(ForecastView {
                rows,
                basis,
                note: None,
            })
        }
    }
}

/// One register on a page: its complete-through date, last delivery and whether it is stale.
pub struct SourceRow {
    pub id: String,
    pub label: String,
    pub delivers: String,
    pub lag: u32,
    pub every: u32,
    pub complete_through: String,
    pub last_delivery: String,
    pub stale: bool,
    pub stale_reason: String,
    /// Events received (only where the reader may see trial-wide counts) and the median days
    /// from event to receipt.
    pub events: String,
    pub lag_median: String,
    pub provenance: String,
}

/// The rows of the sources table from the sources' states.
pub fn source_rows(sources: &[crate::endpoints::sources::SourceStatus]) -> Vec<SourceRow> {
    sources
        .iter()
        .map(|s| SourceRow {
            id: s.id.clone(),
            label: s.label.clone(),
            delivers: s.delivers.join(", "),
            lag: s.reporting_lag_days,
            every: s.expected_every_days,
            complete_through: s.complete_through.to_string(),
            last_delivery: match (s.last_delivery, s.days_since_last_delivery) {
                (Some(d), Some(n)) => format!("{d} ({n} d ago)"),
                _ => "never".to_string(),
            },
            stale: s.stale,
            stale_reason: s.stale_reason.clone().unwrap_or_default(),
            events: s.events_received.map_or("–".into(), |n| n.to_string()),
            lag_median: opt(s.event_lag_days_median, |d| format!("{d:.0}")),
            provenance: s.provenance.clone().unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekly_cumulative_counts() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        // 2024-01-01 is a Monday.
        let (points, unit) =
            cumulative_by_period(vec![d("2024-01-03"), d("2024-01-01"), d("2024-01-08")]);
        assert_eq!(unit, "week");
        assert_eq!(points, vec![(d("2024-01-07"), 2), (d("2024-01-14"), 3)]);
        assert_eq!(p_value(0.0004), "<0.001");
    }
}
