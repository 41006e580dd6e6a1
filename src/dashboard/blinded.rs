//! The blinded page for sponsors, register hosts and administrators: recruitment, sites,
//! screening, pooled outcome counts, data quality and the flow without arm split.
//!
//! Blinding is a property of the data this page is built from, not of its markup: the page
//! is built from the [`BlindedRelease`] a blinded reader is given by the trial view — the
//! [`BlindedSummary`](crate::analysis::release::BlindedSummary) the summary API returns (the
//! analysis blinded, scoped to the reader's site and put through disclosure control, see
//! [`crate::analysis::disclosure`]) and the randomisation days of the reader's scope — and its
//! template has no field that could hold an arm.

use askama::Template;

use super::charts::{self, SiteBar};
use super::page::{self, criterion_text, site_name, Chrome, FlowStep};
use super::suppress;
use crate::analysis::disclosure::Released;
use crate::analysis::release::{ReleasedCounts, ReleasedRate};
use crate::protocol::Protocol;
use crate::service::trial_view::BlindedRelease;

#[derive(Template)]
#[template(path = "dashboard/blinded.html")]
pub struct BlindedPage {
    pub chrome: Chrome,
    pub headline: Vec<(String, String)>,
    pub recruitment_svg: String,
    pub recruitment_note: String,
    pub sites_svg: String,
    pub sites: Vec<SiteRow>,
    /// `(outcome, reason, count)`.
    pub screening: Vec<(String, String, String)>,
    pub endpoints: Vec<PooledEndpoint>,
    /// Why outcome counts are not shown, when they are not.
    pub outcomes_note: Option<String>,
    pub quality: Vec<QualityRow>,
    /// The registers: complete-through dates, last deliveries, stale flags.
    pub sources: Vec<page::SourceRow>,
    /// When the planned looks will be reached (dates only).
    pub forecast: Option<page::ForecastView>,
    /// The randomised against the eligible not randomised, small cells suppressed.
    pub representativeness: Option<super::representativeness::RepresentativenessView>,
    pub flow: Vec<FlowStep>,
}

pub struct SiteRow {
    pub site: String,
    pub name: String,
    pub screened: String,
    pub eligible: String,
    pub randomised: String,
    pub inclusion_rate: String,
}

pub struct PooledEndpoint {
    pub label: String,
    pub kind: String,
    pub primary: bool,
    pub subjects: String,
    pub events: String,
    pub incomplete: String,
}

pub struct QualityRow {
    pub site: String,
    pub completeness: String,
    pub lost: String,
    pub events: String,
    pub lag_median: String,
    pub lag_p90: String,
}

impl BlindedPage {
    /// Build the page from what a reader scoped to `site` (a register host) or to the whole
    /// trial was released.
    pub fn build(
        release: &BlindedRelease,
        protocol: &Protocol,
        site: Option<&str>,
        chrome: Chrome,
    ) -> BlindedPage {
        let a = &release.summary;
        let flow = &a.flow;
        let t = &flow.total;

        let (points, unit) = page::cumulative_by_period(release.randomisation_days.clone());
        // The line may only show what the randomised count shows, in steps of at least 5.
        let points = match t.randomised {
            Released::Shown(_) => suppress::recruitment_steps(&points),
            _ => vec![],
        };
        // The trial's target is not a site's target.
        let target = site
            .is_none()
            .then_some(u64::from(protocol.target_sample_size));
        let recruitment_svg = charts::recruitment(&points, target);
        let steps = format!(
            "each point is the end of a {unit} in which the count grew by {} or more",
            suppress::SMALL_COUNT_LIMIT + 1
        );
        let recruitment_note = match (target, t.randomised) {
            (_, Released::Small | Released::Withheld) => format!(
                "Too few patients randomised to draw recruitment without revealing small counts (randomised: {})",
                t.randomised
            ),
            (Some(target), _) => format!(
                "Cumulative randomised ({steps}); the dashed line is the target sample size ({target}). The protocol plans no end date, so the target is drawn level."
            ),
            (None, _) => format!("Cumulative randomised at your site ({steps})."),
        };

        let active = flow
            .sites
            .iter()
            .filter(|s| s.counts.randomised != Released::Shown(0))
            .count();
        let mut headline = vec![
            ("Randomised".to_string(), t.randomised.to_string()),
            ("Eligible".to_string(), t.eligible.to_string()),
            (
                "Inclusion rate (randomised ÷ eligible)".to_string(),
                rate(t.inclusion_rate),
            ),
            ("Screened".to_string(), t.screened.to_string()),
        ];
        if let Some(target) = target {
            headline.insert(1, ("Target".to_string(), target.to_string()));
            if let (Some(n), true) = (t.randomised.shown(), target > 0) {
                headline.insert(
                    2,
                    (
                        "Of target".to_string(),
                        suppress::percent(n as f64 / target as f64),
                    ),
                );
            }
            headline.push(("Active sites".to_string(), active.to_string()));
        }

        let sites_svg = charts::site_bars(
            &flow
                .sites
                .iter()
                .map(|s| SiteBar {
                    site: s.site.clone(),
                    eligible: s.counts.eligible,
                    randomised: s.counts.randomised,
                })
                .collect::<Vec<_>>(),
        );
        let sites = flow
            .sites
            .iter()
            .map(|s| SiteRow {
                site: s.site.clone(),
                name: site_name(protocol, &s.site),
                screened: s.counts.screened.to_string(),
                eligible: s.counts.eligible.to_string(),
                randomised: s.counts.randomised.to_string(),
                inclusion_rate: rate(s.counts.inclusion_rate),
            })
            .collect();

        let mut screening: Vec<(String, String, String)> = t
            .not_eligible_by_criterion
            .iter()
            .map(|(c, n)| {
                (
                    "Not eligible".to_string(),
                    criterion_text(protocol, c),
                    n.to_string(),
                )
            })
            .collect();
        screening.extend(t.not_randomised_by_reason.iter().map(|(r, n)| {
            (
                "Eligible, not randomised".to_string(),
                r.replace('_', " "),
                n.to_string(),
            )
        }));

        let endpoints = a
            .endpoints
            .iter()
            .filter_map(|e| {
                let all = e.groups.get("all")?;
                Some(PooledEndpoint {
                    label: e.label.clone().unwrap_or_else(|| e.id.clone()),
                    kind: e.kind.replace('_', " "),
                    primary: e.primary,
                    subjects: all.subjects.to_string(),
                    events: all.events.to_string(),
                    incomplete: all.incomplete.to_string(),
                })
            })
            .collect();
        let outcomes_note = site.map(|_| {
            "Outcome counts are trial-wide figures and are shown to the sponsor only.".to_string()
        });

        let quality = flow
            .sites
            .iter()
            .map(|s| {
                let days = |v: Option<f64>| match (v, s.events_received) {
                    (Some(d), _) => format!("{d:.0}"),
                    (None, Released::Small | Released::Withheld) => {
                        crate::analysis::release::WITHHELD_RATE.to_string()
                    }
                    (None, _) => "–".to_string(),
                };
                QualityRow {
                    site: s.site.clone(),
                    completeness: rate(s.follow_up_completeness),
                    lost: s.counts.lost_to_follow_up.to_string(),
                    events: s.events_received.to_string(),
                    lag_median: days(s.event_lag_days_median),
                    lag_p90: days(s.event_lag_days_p90),
                }
            })
            .collect();

        BlindedPage {
            flow: consort(t, protocol),
            chrome,
            headline,
            recruitment_svg,
            recruitment_note,
            sites_svg,
            sites,
            screening,
            endpoints,
            outcomes_note,
            quality,
            sources: page::source_rows(&a.sources),
            forecast: page::forecast_view(a.forecast.as_ref()),
            representativeness: a
                .representativeness
                .as_ref()
                .map(super::representativeness::released),
        }
    }
}

fn rate(r: ReleasedRate) -> String {
    match r {
        ReleasedRate::Shown(v) => suppress::percent(v),
        ReleasedRate::Undefined => "–".to_string(),
        ReleasedRate::Withheld => suppress::SUPPRESSED_RATE.to_string(),
    }
}

/// The flow boxes without arms, from released counts.
fn consort(t: &ReleasedCounts, protocol: &Protocol) -> Vec<FlowStep> {
    let step = |label: &str, total: Released, split: Vec<(String, String)>, side| FlowStep {
        label: label.into(),
        total: total.to_string(),
        split,
        side,
    };
    [
        step("Screened in the register", t.screened, vec![], false),
        step(
            "Not eligible",
            t.not_eligible,
            t.not_eligible_by_criterion
                .iter()
                .map(|(c, n)| (criterion_text(protocol, c), n.to_string()))
                .collect(),
            true,
        ),
        step("Eligible", t.eligible, vec![], false),
        step(
            "Eligible, not randomised",
            t.not_randomised,
            t.not_randomised_by_reason
                .iter()
                .map(|(r, n)| (r.replace('_', " "), n.to_string()))
                .collect(),
            true,
        ),
        step("Randomised", t.randomised, vec![], false),
        step("Lost to follow-up", t.lost_to_follow_up, vec![], true),
        step(
            "Withdrew from data collection (censored at withdrawal)",
            t.withdrew_from_follow_up,
            vec![],
            true,
        ),
        step(
            "Withdrew use of data (not analysed)",
            t.withdrew_data_use,
            vec![],
            true,
        ),
        step("Analysed (primary endpoint)", t.analysed, vec![], false),
    ]
    .into_iter()
    // Withdrawals are shown when there are any (a suppressed count is some).
    .filter(|s| !s.label.starts_with("Withdrew") || s.total != "0")
    .collect()
}
