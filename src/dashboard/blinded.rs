//! The blinded page for sponsors, register hosts and administrators: recruitment, sites,
//! screening, pooled outcome counts, data quality and the flow without arm split.
//!
//! Blinding is a property of the data this page is built from, not of its markup: the
//! builder blinds the analysis itself ([`Analysis::blinded`]), takes only randomisation days
//! and sites from the allocations, and its template has no field that could hold an arm.
//! Small counts are suppressed here, before anything is formatted.

use askama::Template;

use super::charts::{self, SiteBar};
use super::page::{self, Chrome, FlowStep, TrialSnapshot};
use super::suppress::{self, count};
use crate::service::analyse::{self, Analysis};

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
    /// Build the page for a reader scoped to `site` (a register host) or to the whole trial.
    pub fn build(snapshot: &TrialSnapshot, site: Option<&str>, chrome: Chrome) -> BlindedPage {
        let derived = analyse::derive_endpoints(&snapshot.data, snapshot.cutoff);
        let analysis = analyse::analyse_derived(
            &snapshot.data,
            &snapshot.screening,
            snapshot.cutoff,
            &derived,
        );
        drop(derived);
        Self::from_analysis(snapshot, analysis, site, chrome)
    }

    /// Build from an analysis, which is blinded here whatever it was.
    pub fn from_analysis(
        snapshot: &TrialSnapshot,
        analysis: Analysis,
        site: Option<&str>,
        chrome: Chrome,
    ) -> BlindedPage {
        let blinded = analysis.blinded();
        let a = match site {
            Some(site) => blinded.for_site(site),
            None => blinded,
        };
        let flow = &a.flow;
        let t = &flow.total;

        let days: Vec<_> = snapshot
            .randomisation_days()
            .filter(|(_, s)| site.is_none_or(|own| own == *s))
            .map(|(d, _)| d)
            .collect();
        let (points, unit) = page::cumulative_by_period(days);
        // The trial's target is not a site's target.
        let target = site
            .is_none()
            .then_some(u64::from(snapshot.data.protocol.target_sample_size));
        let recruitment_svg = charts::recruitment(&points, target);
        let recruitment_note = match target {
            Some(target) => format!(
                "Cumulative randomised at the end of each {unit}; the dashed line is the target sample size ({target}). The protocol plans no end date, so the target is drawn level."
            ),
            None => format!("Cumulative randomised at your site at the end of each {unit}."),
        };

        let active = flow
            .sites
            .iter()
            .filter(|s| s.counts.randomised > 0)
            .count();
        let mut headline = vec![
            ("Randomised".to_string(), count(t.randomised)),
            ("Eligible".to_string(), count(t.eligible)),
            (
                "Inclusion rate (randomised ÷ eligible)".to_string(),
                suppress::rate(t.inclusion_rate, &[t.randomised, t.eligible]),
            ),
            ("Screened".to_string(), count(t.screened)),
        ];
        if let Some(target) = target {
            headline.insert(1, ("Target".to_string(), target.to_string()));
            if !suppress::is_small(t.randomised) && target > 0 {
                headline.insert(
                    2,
                    (
                        "Of target".to_string(),
                        suppress::percent(t.randomised as f64 / target as f64),
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
                name: snapshot.site_name(&s.site),
                screened: count(s.counts.screened),
                eligible: count(s.counts.eligible),
                randomised: count(s.counts.randomised),
                inclusion_rate: suppress::rate(
                    s.counts.inclusion_rate,
                    &[s.counts.randomised, s.counts.eligible],
                ),
            })
            .collect();

        let mut screening: Vec<(String, String, String)> = t
            .not_eligible_by_criterion
            .iter()
            .map(|(c, n)| {
                (
                    "Not eligible".to_string(),
                    snapshot.criterion_text(c),
                    count(*n),
                )
            })
            .collect();
        screening.extend(t.not_randomised_by_reason.iter().map(|(r, n)| {
            (
                "Eligible, not randomised".to_string(),
                r.replace('_', " "),
                count(*n),
            )
        }));

        let endpoints = a
            .endpoints
            .iter()
            .map(|e| {
                let all = e.groups.values().fold((0, 0, 0), |acc, g| {
                    (acc.0 + g.subjects, acc.1 + g.events, acc.2 + g.incomplete)
                });
                PooledEndpoint {
                    label: e.label.clone().unwrap_or_else(|| e.id.clone()),
                    kind: e.kind.replace('_', " "),
                    primary: e.primary,
                    subjects: count(all.0),
                    events: count(all.1),
                    incomplete: count(all.2),
                }
            })
            .collect();
        let outcomes_note = site.map(|_| {
            "Outcome counts are trial-wide figures and are shown to the sponsor only.".to_string()
        });

        let days = |v: Option<f64>| page::opt(v, |d| format!("{d:.0}"));
        let quality = flow
            .sites
            .iter()
            .map(|s| QualityRow {
                site: s.site.clone(),
                completeness: suppress::rate(
                    s.follow_up_completeness,
                    &[s.counts.randomised, s.counts.lost_to_follow_up],
                ),
                lost: count(s.counts.lost_to_follow_up),
                events: count(s.events_received),
                lag_median: days(s.event_lag_days_median),
                lag_p90: days(s.event_lag_days_p90),
            })
            .collect();

        BlindedPage {
            flow: page::consort(t, snapshot, &[], page::suppressed),
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
        }
    }
}
