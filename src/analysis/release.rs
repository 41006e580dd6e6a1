//! The blinded summary as released to sponsors and register hosts (`GET .../summary` and the
//! blinded page): the blinded analysis, scoped to the reader's site, with the disclosure rule
//! of [`super::disclosure`] applied to every count. Both the page and the API are built from
//! this one value, so they release exactly the same figures.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Serialize, Serializer};

use super::disclosure::{self, Cell, Disclosure, Released};
use super::summary::Analysis;
use crate::endpoints::flow::FlowCounts;

/// A proportion as released: withheld when any count it is made of is not shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReleasedRate {
    Shown(f64),
    /// Not defined (no denominator).
    Undefined,
    Withheld,
}

/// What a withheld rate reads as.
pub const WITHHELD_RATE: &str = "suppressed";

impl Serialize for ReleasedRate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ReleasedRate::Shown(v) => s.serialize_f64(*v),
            ReleasedRate::Undefined => s.serialize_none(),
            ReleasedRate::Withheld => s.serialize_str(WITHHELD_RATE),
        }
    }
}

fn rate(value: Option<f64>, parts: &[Released]) -> ReleasedRate {
    match value {
        None => ReleasedRate::Undefined,
        Some(v) if parts.iter().all(|p| p.is_shown()) => ReleasedRate::Shown(v),
        Some(_) => ReleasedRate::Withheld,
    }
}

/// Flow counts as released (the blinded fields of [`FlowCounts`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleasedCounts {
    pub screened: Released,
    pub not_eligible: Released,
    pub not_eligible_by_criterion: BTreeMap<String, Released>,
    pub eligible: Released,
    pub not_randomised: Released,
    pub not_randomised_by_reason: BTreeMap<String, Released>,
    pub randomised: Released,
    pub inclusion_rate: ReleasedRate,
    pub lost_to_follow_up: Released,
    /// Withdrew from further data collection (follow-up censored at the withdrawal).
    pub withdrew_from_follow_up: Released,
    /// Withdrew the use of their data (left out of the analyses).
    pub withdrew_data_use: Released,
    pub analysed: Released,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleasedSite {
    pub site: String,
    #[serde(flatten)]
    pub counts: ReleasedCounts,
    pub follow_up_completeness: ReleasedRate,
    pub events_received: Released,
    /// Withheld (absent) when the events they describe are not shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_lag_days_median: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_lag_days_p90: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleasedFlow {
    pub cutoff: NaiveDate,
    pub primary_endpoint: Option<String>,
    #[serde(flatten)]
    pub total: ReleasedCounts,
    pub sites: Vec<ReleasedSite>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleasedGroup {
    pub subjects: Released,
    pub events: Released,
    pub incomplete: Released,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_value: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleasedEndpoint {
    pub id: String,
    pub label: Option<String>,
    pub kind: &'static str,
    pub primary: bool,
    /// The day its data are complete through (the cut-off minus its slowest source's lag).
    pub complete_through: chrono::NaiveDate,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// One group, `all`: outcomes are never split by arm here.
    pub groups: BTreeMap<String, ReleasedGroup>,
}

/// How counts were suppressed, for readers of the JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuppressionNote {
    pub small_count_limit: u64,
    pub small: &'static str,
    pub withheld: &'static str,
    pub withheld_rate: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlindedSummary {
    pub trial_id: String,
    pub title: String,
    pub protocol_version: String,
    pub blinded: bool,
    /// The site the reader is scoped to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    pub suppression: SuppressionNote,
    pub flow: ReleasedFlow,
    /// Each register's complete-through date, last delivery and staleness (no event counts:
    /// those are trial-wide outcome counts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<crate::endpoints::sources::SourceStatus>,
    /// Pooled counts; empty for a site-scoped reader (they are trial-wide).
    pub endpoints: Vec<ReleasedEndpoint>,
    /// When the planned looks will be reached: dates and intervals only (no counts); not for a
    /// site-scoped reader.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<super::forecast::Outlook>,
    /// The randomised against the eligible not randomised, under disclosure control; not for a
    /// site-scoped reader.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub representativeness: Option<super::representativeness::ReleasedRepresentativeness>,
}

/// The cells of one [`FlowCounts`].
struct CountCells {
    screened: Cell,
    not_eligible: Cell,
    criteria: BTreeMap<String, Cell>,
    eligible: Cell,
    not_randomised: Cell,
    reasons: BTreeMap<String, Cell>,
    randomised: Cell,
    lost: Cell,
    withdrew_follow_up: Cell,
    withdrew_data_use: Cell,
    analysed: Cell,
}

impl CountCells {
    fn register(d: &mut Disclosure, c: &FlowCounts) -> CountCells {
        let cells = CountCells {
            screened: d.cell(c.screened),
            not_eligible: d.cell(c.not_eligible),
            criteria: c
                .not_eligible_by_criterion
                .iter()
                .map(|(k, v)| (k.clone(), d.cell(*v)))
                .collect(),
            eligible: d.cell(c.eligible),
            not_randomised: d.cell(c.not_randomised),
            reasons: c
                .not_randomised_by_reason
                .iter()
                .map(|(k, v)| (k.clone(), d.cell(*v)))
                .collect(),
            randomised: d.cell(c.randomised),
            lost: d.cell(c.lost_to_follow_up),
            withdrew_follow_up: d.cell(c.withdrew_from_follow_up),
            withdrew_data_use: d.cell(c.withdrew_data_use),
            analysed: d.cell(c.analysed),
        };
        // The flow's own sums.
        d.sum(cells.screened, &[cells.not_eligible, cells.eligible]);
        d.sum(cells.eligible, &[cells.not_randomised, cells.randomised]);
        d.sum(
            cells.not_eligible,
            &cells.criteria.values().copied().collect::<Vec<_>>(),
        );
        d.sum(
            cells.not_randomised,
            &cells.reasons.values().copied().collect::<Vec<_>>(),
        );
        cells
    }

    fn release(&self, r: &[Released], c: &FlowCounts) -> ReleasedCounts {
        let get = |cell: Cell| r[cell_index(cell)];
        ReleasedCounts {
            screened: get(self.screened),
            not_eligible: get(self.not_eligible),
            not_eligible_by_criterion: self
                .criteria
                .iter()
                .map(|(k, c)| (k.clone(), get(*c)))
                .collect(),
            eligible: get(self.eligible),
            not_randomised: get(self.not_randomised),
            not_randomised_by_reason: self
                .reasons
                .iter()
                .map(|(k, c)| (k.clone(), get(*c)))
                .collect(),
            randomised: get(self.randomised),
            inclusion_rate: rate(
                c.inclusion_rate,
                &[get(self.randomised), get(self.eligible)],
            ),
            lost_to_follow_up: get(self.lost),
            withdrew_from_follow_up: get(self.withdrew_follow_up),
            withdrew_data_use: get(self.withdrew_data_use),
            analysed: get(self.analysed),
        }
    }
}

fn cell_index(c: Cell) -> usize {
    c.index()
}

impl BlindedSummary {
    /// Blind `analysis`, scope it to `site` (a register host's own site: its flow as the
    /// totals, no trial-wide outcome counts) and apply disclosure control.
    pub fn release(analysis: &Analysis, site: Option<&str>) -> BlindedSummary {
        let blinded = analysis.blinded();
        let a = match site {
            Some(site) => blinded.for_site(site),
            None => blinded,
        };
        let mut d = Disclosure::new();
        let total = CountCells::register(&mut d, &a.flow.total);
        let sites: Vec<(CountCells, Cell)> = a
            .flow
            .sites
            .iter()
            .map(|s| {
                (
                    CountCells::register(&mut d, &s.counts),
                    d.cell(s.events_received),
                )
            })
            .collect();
        // Sites add up to the totals, column by column and reason by reason.
        type Column = fn(&CountCells) -> Cell;
        let columns: [Column; 9] = [
            |c| c.screened,
            |c| c.not_eligible,
            |c| c.eligible,
            |c| c.not_randomised,
            |c| c.randomised,
            |c| c.lost,
            |c| c.withdrew_follow_up,
            |c| c.withdrew_data_use,
            |c| c.analysed,
        ];
        for column in columns {
            let parts: Vec<Cell> = sites.iter().map(|(c, _)| column(c)).collect();
            d.sum(column(&total), &parts);
        }
        for (key, cell) in &total.criteria {
            let parts: Vec<Cell> = sites
                .iter()
                .filter_map(|(c, _)| c.criteria.get(key).copied())
                .collect();
            d.sum(*cell, &parts);
        }
        for (key, cell) in &total.reasons {
            let parts: Vec<Cell> = sites
                .iter()
                .filter_map(|(c, _)| c.reasons.get(key).copied())
                .collect();
            d.sum(*cell, &parts);
        }
        // Every subject randomised by the cut-off is in each endpoint's data set.
        let endpoint_cells: Vec<(Cell, Cell, Cell)> = a
            .endpoints
            .iter()
            .map(|e| {
                let g = e.groups.values().next().cloned().unwrap_or_default();
                let subjects = d.cell(g.subjects);
                d.sum(subjects, &[total.randomised]);
                (subjects, d.cell(g.events), d.cell(g.incomplete))
            })
            .collect();
        let r = d.solve();
        let get = |cell: Cell| r[cell_index(cell)];

        let flow = ReleasedFlow {
            cutoff: a.flow.cutoff,
            primary_endpoint: a.flow.primary_endpoint.clone(),
            total: total.release(&r, &a.flow.total),
            sites: a
                .flow
                .sites
                .iter()
                .zip(&sites)
                .map(|(s, (cells, events))| {
                    let counts = cells.release(&r, &s.counts);
                    let events = get(*events);
                    let lag = |v: Option<f64>| v.filter(|_| events.is_shown());
                    ReleasedSite {
                        site: s.site.clone(),
                        follow_up_completeness: rate(
                            s.follow_up_completeness,
                            &[counts.randomised, counts.lost_to_follow_up],
                        ),
                        counts,
                        events_received: events,
                        event_lag_days_median: lag(s.event_lag_days_median),
                        event_lag_days_p90: lag(s.event_lag_days_p90),
                    }
                })
                .collect(),
        };
        let endpoints = a
            .endpoints
            .iter()
            .zip(&endpoint_cells)
            .map(|(e, (subjects, events, incomplete))| {
                let g = e.groups.values().next().cloned().unwrap_or_default();
                let incomplete = get(*incomplete);
                let subjects = get(*subjects);
                ReleasedEndpoint {
                    id: e.id.clone(),
                    label: e.label.clone(),
                    kind: e.kind,
                    primary: e.primary,
                    complete_through: e.complete_through,
                    sources: e.sources.clone(),
                    groups: BTreeMap::from([(
                        "all".to_string(),
                        ReleasedGroup {
                            subjects,
                            events: get(*events),
                            // A mean of a handful of values is as telling as the values.
                            mean_value: g.mean_value.filter(|_| {
                                !disclosure::is_small(g.subjects - g.incomplete)
                                    && subjects.is_shown()
                                    && incomplete.is_shown()
                            }),
                            incomplete,
                        },
                    )]),
                }
            })
            .collect();
        BlindedSummary {
            trial_id: a.trial_id,
            title: a.title,
            protocol_version: a.protocol_version,
            blinded: true,
            site: site.map(str::to_string),
            forecast: a.forecast.as_ref().map(super::forecast::Outlook::released),
            representativeness: a
                .representativeness
                .as_ref()
                .map(super::representativeness::Representativeness::released),
            suppression: SuppressionNote {
                small_count_limit: disclosure::SMALL_COUNT_LIMIT,
                small: disclosure::SMALL,
                withheld: disclosure::WITHHELD,
                withheld_rate: WITHHELD_RATE,
            },
            flow,
            // No event counts; a median of fewer events than the small-count limit would show
            // how many arrived (and one event's delay), so it goes too.
            sources: a
                .sources
                .iter()
                .map(|s| crate::endpoints::sources::SourceStatus {
                    events_received: None,
                    event_lag_days_median: s
                        .event_lag_days_median
                        .filter(|_| s.events_received.unwrap_or(0) > disclosure::SMALL_COUNT_LIMIT),
                    ..s.clone()
                })
                .collect(),
            endpoints,
        }
    }
}
