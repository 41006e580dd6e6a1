//! The trial's analysis as of a data cut-off: participant flow, data completeness and
//! timeliness, and each endpoint per arm. [`Analysis::blinded`] is what sponsors and register
//! hosts may see.

use std::collections::BTreeMap;

use serde::Serialize;

use super::data::{Concurrency, TrialData};
use crate::endpoints::flow::{self, Flow, Screening};
use crate::endpoints::{self, DataCutoff, EndpointRow, Outcome};
use crate::stats;

/// One endpoint summarised for a group of subjects (an arm, or everyone when blinded).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EndpointGroup {
    pub subjects: u64,
    /// Subjects with the event (time-to-event, binary), or events counted (count).
    pub events: u64,
    /// Binary/count/continuous subjects without a usable value yet.
    pub incomplete: u64,
    /// Continuous endpoints: mean of the values available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_value: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointSummary {
    pub id: String,
    pub label: Option<String>,
    pub kind: &'static str,
    pub primary: bool,
    /// The day the endpoint's data are complete through as of the cut-off (administrative
    /// follow-up ends there): the cut-off minus its slowest source's lag.
    pub complete_through: chrono::NaiveDate,
    /// The sources its events come from, in order of precedence per type (empty when the
    /// protocol declares none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// By arm (unblinded) or a single `all` group (blinded).
    pub groups: BTreeMap<String, EndpointGroup>,
    /// The comparison between arms (unblinded only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// What the comparison is, as the protocol's analysis plan (`[analysis]`) prescribes: the
    /// methods, the stratification, the covariates, the confidence level and which controls
    /// (unblinded only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<String>,
}

/// Kaplan–Meier summary of one arm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmCurve {
    pub arm: String,
    pub n: usize,
    pub events: usize,
    pub median: stats::km::Median,
    /// Survival at the endpoint's horizon, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_horizon: Option<stats::km::SurvivalAt>,
}

/// The primary comparison of an endpoint between arms. Hazard ratios, risk ratios and
/// differences compare each arm with the reference arm, the last one declared in the protocol
/// (by convention the control arm).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Comparison {
    /// Time to event: Kaplan–Meier per arm, log-rank test, Cox model with arm indicators.
    Survival {
        reference_arm: String,
        curves: Vec<ArmCurve>,
        logrank: stats::ChiSquareTest,
        hazard_ratios: Vec<stats::cox::CoxCoefficient>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
        /// The Kaplan–Meier fits behind `curves`, one per arm in the protocol's order, kept
        /// for the pages that draw them (not part of the JSON).
        #[serde(skip)]
        fitted: Vec<stats::km::KaplanMeier>,
    },
    /// Binary at a horizon, among subjects with complete follow-up: each arm against the
    /// reference arm.
    Binary {
        reference_arm: String,
        tables: Vec<BinaryComparison>,
        /// Stratified or adjusted plans: Mantel–Haenszel estimates of each arm against the
        /// reference across the strata (`mantelhaen.test`, Greenland–Robins variances).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        mantel_haenszel: Vec<ArmMantelHaenszel>,
    },
    /// Counts: rate ratios from negative binomial regression with the exposure observed.
    Rates(super::effects::RateComparison),
    /// Continuous: differences in means.
    MeanDifference(super::effects::MeanComparison),
    /// Time to event with competing events: cumulative incidence, Gray, Fine–Gray.
    CompetingRisks(super::effects::CompetingRiskComparison),
    /// Several arms whose subjects were not all concurrent, eligible controls for each other
    /// (an arm opened or closed by amendment, or patients ineligible for some arms): each arm
    /// against the reference arm on its own, with only the reference-arm subjects who could
    /// have been randomised to it.
    PerArm {
        reference_arm: String,
        comparisons: Vec<ArmComparison>,
    },
    /// The data do not support the comparison yet (e.g. no events).
    NotEstimable { reason: String },
}

/// One arm against the concurrent, eligible controls of the reference arm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmComparison {
    pub arm: String,
    /// Reference-arm subjects compared with this arm: randomised while both arms were open and
    /// eligible for this arm.
    pub concurrent_controls: usize,
    /// Reference-arm subjects left out: randomised before the arm opened or after it closed,
    /// or not eligible for it.
    pub non_concurrent_controls: usize,
    /// Subjects of this arm left out (randomised while the reference arm was closed to them).
    #[serde(skip_serializing_if = "is_zero")]
    pub excluded_from_arm: usize,
    pub comparison: Box<Comparison>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The Mantel–Haenszel estimates of one arm against the reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmMantelHaenszel {
    pub arm: String,
    /// What the strata are (the randomisation strata and/or the covariates' levels).
    pub strata_by: String,
    #[serde(flatten)]
    pub estimates: stats::mantel_haenszel::MantelHaenszel,
    /// Strata left out because they hold fewer than two subjects of the two arms.
    #[serde(skip_serializing_if = "is_zero")]
    pub strata_left_out: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BinaryComparison {
    pub arm: String,
    #[serde(flatten)]
    pub table: stats::binary::TwoByTwo,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    pub trial_id: String,
    pub title: String,
    pub protocol_version: String,
    pub blinded: bool,
    pub flow: Flow,
    /// Each declared source as of the cut-off: complete-through date, last delivery, stale.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<endpoints::sources::SourceStatus>,
    pub endpoints: Vec<EndpointSummary>,
    /// Interim monitoring of the primary endpoint (unblinded only; when the protocol plans it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interim: Option<super::interim::InterimReport>,
    /// Subgroup analyses of the primary endpoint by stratification factor (unblinded only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subgroups: Vec<super::subgroups::SubgroupForest>,
    /// Balance and predictability of the trial's own allocations as of the cut-off
    /// (unblinded only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocation_quality: Option<AllocationQuality>,
    /// When the primary endpoint's planned looks will be reached (pooled over arms, so blinded
    /// readers see it too; when the protocol plans looks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<super::forecast::Outlook>,
    /// The randomised against the eligible patients not randomised, field by field (pooled over
    /// arms; a sponsor sees it under disclosure control, a site-scoped reader not at all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub representativeness: Option<super::representativeness::Representativeness>,
    /// Consents recorded, deferred consents overdue and withdrawals (unblinded only: it names
    /// records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participation: Option<super::participation_report::ParticipationReport>,
}

/// [`quality::observed`](crate::randomise::quality::observed) applied to the allocations made
/// by the cut-off, in randomisation order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllocationQuality {
    /// Arm ids in the order of `counts`.
    pub arms: Vec<String>,
    pub ratios: Vec<u32>,
    #[serde(flatten)]
    pub observed: crate::randomise::quality::ObservedQuality,
}

fn allocation_quality(data: &TrialData, cutoff: DataCutoff) -> AllocationQuality {
    let arms = &data.protocol.arms;
    let observed = crate::randomise::quality::observed(
        data.randomised_by(cutoff).filter_map(|a| {
            let arm = arms.iter().position(|x| x.id == a.arm)?;
            Some((a.stratum.as_str(), arm))
        }),
        &arms.iter().map(|a| a.ratio).collect::<Vec<_>>(),
    );
    AllocationQuality {
        arms: arms.iter().map(|a| a.id.clone()).collect(),
        ratios: arms.iter().map(|a| a.ratio).collect(),
        observed,
    }
}

impl Analysis {
    /// Without any per-arm figure.
    /// Only what a blinded reader sees is copied: no comparison, fit, interim look or subgroup.
    pub fn blinded(&self) -> Analysis {
        Analysis {
            trial_id: self.trial_id.clone(),
            title: self.title.clone(),
            protocol_version: self.protocol_version.clone(),
            blinded: true,
            interim: None,
            subgroups: Vec::new(),
            allocation_quality: None,
            forecast: self.forecast.clone(),
            representativeness: self.representativeness.clone(),
            participation: None,
            flow: self.flow.clone().blinded(),
            sources: self.sources.clone(),
            endpoints: self
                .endpoints
                .iter()
                .map(|e| {
                    let mut all = EndpointGroup::default();
                    let mut sum = 0.0;
                    let mut valued = 0u64;
                    for g in e.groups.values() {
                        all.subjects += g.subjects;
                        all.events += g.events;
                        all.incomplete += g.incomplete;
                        if let Some(m) = g.mean_value {
                            let n = g.subjects - g.incomplete;
                            sum += m * n as f64;
                            valued += n;
                        }
                    }
                    all.mean_value = (valued > 0).then(|| sum / valued as f64);
                    EndpointSummary {
                        id: e.id.clone(),
                        label: e.label.clone(),
                        kind: e.kind,
                        primary: e.primary,
                        complete_through: e.complete_through,
                        sources: e.sources.clone(),
                        groups: BTreeMap::from([("all".to_string(), all)]),
                        comparison: None,
                        analysis: None,
                    }
                })
                .collect(),
        }
    }
}

impl Analysis {
    /// What a register host scoped to `site` may see of a blinded analysis: its own site's
    /// flow as the totals, and no trial-wide outcome counts.
    pub fn for_site(mut self, site: &str) -> Analysis {
        self.flow.sites.retain(|s| s.site == site);
        self.flow.total = self
            .flow
            .sites
            .first()
            .map(|s| s.counts.clone())
            .unwrap_or_default();
        // Pooled endpoint counts are trial-wide: not for a single site's eyes.
        self.endpoints.clear();
        self.forecast = None;
        self.representativeness = None;
        for s in &mut self.sources {
            s.events_received = None;
            s.event_lag_days_median = None;
        }
        self
    }
}

/// The sources of an endpoint's event types, each once, in the order its types and their
/// precedence give.
fn endpoint_sources(
    follow_up: &crate::protocol::FollowUp,
    e: &crate::protocol::Endpoint,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in &e.events().types {
        for s in follow_up.sources_of(t) {
            if !out.contains(&s.id) {
                out.push(s.id.clone());
            }
        }
    }
    out
}

fn kind_name(e: &crate::protocol::Endpoint) -> &'static str {
    match e.kind {
        crate::protocol::EndpointKind::TimeToEvent { .. } => "time_to_event",
        crate::protocol::EndpointKind::Binary { .. } => "binary",
        crate::protocol::EndpointKind::Count { .. } => "count",
        crate::protocol::EndpointKind::Continuous { .. } => "continuous",
    }
}

fn summarise(rows: &[EndpointRow]) -> BTreeMap<String, EndpointGroup> {
    let mut groups: BTreeMap<String, EndpointGroup> = BTreeMap::new();
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for r in rows {
        let g = groups.entry(r.subject.arm.to_string()).or_default();
        g.subjects += 1;
        match r.outcome {
            Outcome::TimeToEvent { event, .. } => g.events += u64::from(event),
            Outcome::Binary { event, .. } => match event {
                Some(e) => g.events += u64::from(e),
                None => g.incomplete += 1,
            },
            Outcome::Count {
                count, complete, ..
            } => {
                g.events += u64::from(count);
                g.incomplete += u64::from(!complete);
            }
            Outcome::Continuous { value, .. } => match value {
                Some(v) => *sums.entry(r.subject.arm.to_string()).or_default() += v,
                None => g.incomplete += 1,
            },
        }
    }
    for (arm, sum) in sums {
        if let Some(g) = groups.get_mut(&arm) {
            let n = g.subjects - g.incomplete;
            g.mean_value = (n > 0).then(|| sum / n as f64);
        }
    }
    groups
}

pub use super::derived::derive_endpoints;

/// The parts of an analysis that need no endpoint rows as of the cut-off: the interim looks
/// (which derive the primary endpoint at their own days), the registers' state, the
/// representativeness and participation reports and the allocation quality.
pub struct Beside {
    pub interim: Option<super::interim::InterimReport>,
    /// What the interim looks computed subject by subject, for the next preparation.
    pub kept_looks: super::interim::KeptLooks,
    sources: Vec<endpoints::sources::SourceStatus>,
    representativeness: super::representativeness::Representativeness,
    participation: super::participation_report::ParticipationReport,
    allocation_quality: AllocationQuality,
}

/// Each endpoint's rows ([`derive_endpoints`], or [`super::derived::derive_endpoints_after`]
/// rows derived `earlier`) and what needs no rows ([`Beside`]), computed side by side on the
/// available cores.
pub fn derive_with_interim<'p>(
    data: &'p TrialData,
    screening: &[Screening],
    cutoff: DataCutoff,
    earlier: Option<&super::derived::EarlierRows<'_>>,
) -> (
    Vec<(&'p crate::protocol::Endpoint, Vec<EndpointRow>)>,
    Beside,
) {
    let (
        derived,
        (
            (interim, kept_looks),
            ((sources, allocation_quality), (representativeness, participation)),
        ),
    ) = rayon::join(
        || match earlier {
            Some(earlier) => super::derived::derive_endpoints_after(data, cutoff, earlier),
            None => derive_endpoints(data, cutoff),
        },
        || {
            rayon::join(
                || {
                    super::interim::interim_after(
                        data,
                        cutoff,
                        earlier.and_then(|e| {
                            Some(super::interim::EarlierLooks {
                                kept: e.looks?,
                                events_added_for: e.events_added_for,
                            })
                        }),
                    )
                },
                || {
                    rayon::join(
                        || (data.source_status(cutoff), allocation_quality(data, cutoff)),
                        || {
                            rayon::join(
                                || super::representativeness::compare(data, screening, cutoff),
                                || super::participation_report::report(data, cutoff),
                            )
                        },
                    )
                },
            )
        },
    );
    (
        derived,
        Beside {
            interim,
            kept_looks,
            sources,
            representativeness,
            participation,
            allocation_quality,
        },
    )
}

/// Compute the unblinded analysis from a trial's data and screening log.
pub fn analyse(data: &TrialData, screening: &[Screening], cutoff: DataCutoff) -> Analysis {
    let (derived, beside) = derive_with_interim(data, screening, cutoff, None);
    analyse_derived(data, screening, cutoff, &derived, beside)
}

/// Compute the unblinded analysis from endpoint rows and what needs none, already computed by
/// [`derive_with_interim`] (callers that also draw the rows, such as the dashboards, derive
/// them once).
pub fn analyse_derived(
    data: &TrialData,
    screening: &[Screening],
    cutoff: DataCutoff,
    derived: &[(&crate::protocol::Endpoint, Vec<EndpointRow>)],
    beside: Beside,
) -> Analysis {
    use rayon::prelude::*;
    let arms: Vec<(String, String, String)> = data
        .randomised_by(cutoff)
        .map(|a| (a.record_id.clone(), a.arm.clone(), a.site_code.clone()))
        .collect();
    let withdrawn: std::collections::HashMap<&str, endpoints::WithdrawalScope> = data
        .participation
        .withdrawals
        .keys()
        .filter_map(|r| Some((r.as_str(), data.participation.scope(r)?)))
        .collect();
    let primary = derived.iter().find(|(e, _)| e.primary);
    let competing = competing_rows(data, cutoff, derived);
    let concurrency = Concurrency::of(data);
    let values = super::baseline::Covariates {
        protocol: &data.protocol,
        baseline: &data.baseline,
    };
    // The comparisons and the subgroup forest each fit models over every subject: side by side.
    // The forecast of the looks simulates a thousand futures of the trial: beside the rest.
    let ((flow, forecast), (subgroups, endpoints)) = rayon::join(
        || {
            rayon::join(
                || {
                    flow::flow(
                        cutoff,
                        screening,
                        &arms,
                        primary.map(|(e, _)| e.id.as_str()),
                        primary.map_or(&[][..], |(_, rows)| rows.as_slice()),
                        &data.events,
                        &withdrawn,
                    )
                },
                || {
                    primary.and_then(|(_, rows)| {
                        super::forecast::outlook(&data.protocol, rows, cutoff)
                    })
                },
            )
        },
        || {
            rayon::join(
                || {
                    primary.map_or_else(Vec::new, |(_, rows)| {
                        super::subgroups::primary_subgroups(&data.protocol, rows)
                    })
                },
                || {
                    derived
                        .par_iter()
                        .enumerate()
                        .map(|(i, (e, rows))| {
                            let (comparison, analysis) = compare(
                                &data.protocol,
                                e,
                                rows,
                                competing[i].as_deref(),
                                &concurrency,
                                &values,
                            );
                            EndpointSummary {
                                id: e.id.clone(),
                                label: e.label.clone(),
                                kind: kind_name(e),
                                primary: e.primary,
                                complete_through: endpoints::complete_through(
                                    &data.protocol.follow_up,
                                    e,
                                    cutoff,
                                ),
                                sources: endpoint_sources(&data.protocol.follow_up, e),
                                groups: summarise(rows),
                                comparison,
                                analysis,
                            }
                        })
                        .collect()
                },
            )
        },
    );
    Analysis {
        trial_id: data.protocol.trial_id.clone(),
        title: data.protocol.title.clone(),
        protocol_version: data.protocol.version.clone(),
        blinded: false,
        flow,
        sources: beside.sources,
        interim: beside.interim,
        subgroups,
        allocation_quality: Some(beside.allocation_quality),
        forecast,
        representativeness: Some(beside.representativeness),
        participation: Some(beside.participation),
        endpoints,
    }
}

/// For each derived endpoint with `competing` event types, every subject's time to the first
/// of them (same horizon), derived as a time-to-event endpoint of its own.
fn competing_rows(
    data: &TrialData,
    cutoff: DataCutoff,
    derived: &[(&crate::protocol::Endpoint, Vec<EndpointRow>)],
) -> Vec<Option<Vec<EndpointRow>>> {
    use crate::protocol::{Endpoint, EndpointKind, EventSelector};
    if derived.iter().all(|(e, _)| e.competing.is_empty()) {
        return vec![None; derived.len()];
    }
    let subjects = data.subjects();
    let events = endpoints::EventsBySubject::new(&data.events);
    derived
        .iter()
        .map(|(e, _)| {
            let EndpointKind::TimeToEvent { horizon_days, .. } = &e.kind else {
                return None;
            };
            if e.competing.is_empty() {
                return None;
            }
            let other = Endpoint {
                id: format!("{}_competing", e.id),
                label: None,
                primary: false,
                kind: EndpointKind::TimeToEvent {
                    events: EventSelector {
                        types: e.competing.clone(),
                        codes: Vec::new(),
                    },
                    horizon_days: *horizon_days,
                },
                competing: Vec::new(),
            };
            Some(endpoints::derive_grouped(
                &data.protocol.follow_up,
                &other,
                &subjects,
                &events,
                cutoff,
            ))
        })
        .collect()
}

/// Compare arms on one endpoint's rows (`competing` holds the competing events' rows of a
/// time-to-event endpoint that declares them), as the protocol's analysis plan says; with the
/// sentence that says what was done.
pub(super) fn compare(
    protocol: &crate::protocol::Protocol,
    endpoint: &crate::protocol::Endpoint,
    rows: &[EndpointRow],
    competing: Option<&[EndpointRow]>,
    concurrency: &Concurrency,
    values: &super::baseline::Covariates<'_>,
) -> (Option<Comparison>, Option<String>) {
    let arms: Vec<&str> = protocol.arms.iter().map(|a| a.id.as_str()).collect();
    let Some(reference) = arms.len().checked_sub(1) else {
        return (None, None);
    };
    let plan = protocol.analysis.of(&endpoint.id);
    // Subjects without a value of a covariate are left out of every comparison (complete
    // cases); the sentence says how many of the compared arms' subjects were.
    let (rows, left_out) = super::adjust::complete_cases(rows, plan, values);
    let rows: &[EndpointRow] = &rows;
    let arm_of = |r: &EndpointRow| arms.iter().position(|a| *a == &*r.subject.arm);
    // Each arm's rows against the reference when every subject of the two arms could have
    // been randomised to either: the usual joint comparison. Otherwise each arm on its own.
    let restricted = (0..reference).any(|a| {
        rows.iter().any(|r| {
            arm_of(r).is_some_and(|g| g == a || g == reference)
                && !concurrency.keeps(&r.subject.record_id, a, reference)
        })
    });
    let method = describe(endpoint, competing.is_some(), plan, protocol, left_out);
    if !restricted {
        let comparison = compare_arms(endpoint, &arms, reference, rows, competing, plan, values);
        return (Some(comparison), Some(method));
    }
    let comparisons = (0..reference)
        .map(|a| {
            let (mut controls, mut non_concurrent, mut excluded) = (0, 0, 0);
            let kept: Vec<EndpointRow> = rows
                .iter()
                .filter(|r| {
                    let g = arm_of(r);
                    if g != Some(a) && g != Some(reference) {
                        return false;
                    }
                    let keep = concurrency.keeps(&r.subject.record_id, a, reference);
                    match (g == Some(reference), keep) {
                        (true, true) => controls += 1,
                        (true, false) => non_concurrent += 1,
                        (false, false) => excluded += 1,
                        (false, true) => {}
                    }
                    keep
                })
                .cloned()
                .collect();
            ArmComparison {
                arm: arms[a].to_string(),
                concurrent_controls: controls,
                non_concurrent_controls: non_concurrent,
                excluded_from_arm: excluded,
                comparison: Box::new(compare_arms(
                    endpoint,
                    &[arms[a], arms[reference]],
                    1,
                    &kept,
                    competing,
                    plan,
                    values,
                )),
            }
        })
        .collect();
    (
        Some(Comparison::PerArm {
            reference_arm: arms[reference].to_string(),
            comparisons,
        }),
        Some(format!(
            "{method}; each arm against concurrent, eligible controls only (reference-arm \
             subjects randomised while both arms were open and eligible for the arm)"
        )),
    )
}

/// The sentence that says how an endpoint is compared under `plan`.
fn describe(
    endpoint: &crate::protocol::Endpoint,
    competing: bool,
    plan: &crate::protocol::EndpointPlan,
    protocol: &crate::protocol::Protocol,
    left_out: usize,
) -> String {
    use crate::protocol::EndpointKind;
    let strata = &protocol.randomisation.strata;
    let described = |plan, how| super::adjust::described(plan, protocol, how, left_out);
    match &endpoint.kind {
        EndpointKind::TimeToEvent { .. } if competing => format!(
            "Aalen-Johansen cumulative incidence per arm, Gray's test, Fine-Gray subdistribution \
             and cause-specific Cox (Efron ties) hazard ratios{}",
            described(
                plan,
                "as strata of Gray's test and the cause-specific Cox model and as a factor in \
                 the Fine-Gray model"
            )
        ),
        EndpointKind::TimeToEvent { .. } => format!(
            "Kaplan-Meier per arm, log-rank test and Cox proportional hazards (Efron ties){}",
            described(plan, "as strata of the log-rank test and the Cox model")
        ),
        EndpointKind::Binary { .. } => {
            let mut by: Vec<String> = Vec::new();
            if plan.stratified {
                by.push(format!("the randomisation strata ({})", strata.join(" × ")));
            }
            by.extend(plan.covariates.iter().map(|c| format!("`{c}`")));
            let mh = if by.is_empty() {
                String::new()
            } else {
                format!(
                    "; Mantel-Haenszel odds ratio, risk ratio and risk difference across the \
                     strata formed by {}",
                    by.join(" and ")
                )
            };
            let complete = super::adjust::complete_cases_said(plan, protocol, left_out);
            format!(
                "risk difference, risk ratio and odds ratio with Wald intervals among subjects \
                 with complete follow-up{mh}{complete}; {}% confidence intervals",
                (plan.conf_level * 1e6).round() / 1e4
            )
        }
        EndpointKind::Count { .. } => format!(
            "{} with log years observed in the window as offset{}",
            match plan.count_model {
                stats::rates::CountModel::Negbin => {
                    "negative binomial regression (as MASS::glm.nb; Poisson if it cannot be \
                     fitted)"
                }
                stats::rates::CountModel::Poisson => "Poisson regression (as glm)",
            },
            described(plan, "as a factor")
        ),
        EndpointKind::Continuous { .. } => format!(
            "difference in means by {}{}",
            if plan.stratified || !plan.covariates.is_empty() {
                "ANCOVA (lm)"
            } else {
                "linear model (lm)"
            },
            described(plan, "as a factor")
        ),
    }
}

/// Compare `arms` (the reference at `reference`) on the rows of subjects in them.
fn compare_arms(
    endpoint: &crate::protocol::Endpoint,
    arms: &[&str],
    reference: usize,
    rows: &[EndpointRow],
    competing: Option<&[EndpointRow]>,
    plan: &crate::protocol::EndpointPlan,
    values: &super::baseline::Covariates<'_>,
) -> Comparison {
    use super::adjust::Adjustment;
    use crate::protocol::EndpointKind;
    let arm_index = |r: &EndpointRow| arms.iter().position(|a| *a == &*r.subject.arm);
    let not_estimable = |e: stats::StatsError| Comparison::NotEstimable {
        reason: e.to_string(),
    };
    let estimable_not = |reason: String| Comparison::NotEstimable { reason };
    match &endpoint.kind {
        EndpointKind::TimeToEvent { horizon_days, .. } if competing.is_some() => {
            super::effects::competing_risks(
                arms,
                reference,
                *horizon_days,
                rows,
                competing.unwrap_or_default(),
                plan,
                values,
            )
            .map_or_else(estimable_not, Comparison::CompetingRisks)
        }
        EndpointKind::TimeToEvent { horizon_days, .. } => {
            let endpoints::SurvivalData { time, event, group } =
                endpoints::SurvivalData::from_rows(rows, arms);
            if !event.iter().any(|e| *e) {
                return Comparison::NotEstimable {
                    reason: "no events yet".into(),
                };
            }
            // The subjects in the order `from_rows` keeps them.
            let subjects: Vec<&endpoints::Subject> = rows
                .iter()
                .filter(|r| {
                    matches!(r.outcome, Outcome::TimeToEvent { .. }) && arm_index(r).is_some()
                })
                .map(|r| &r.subject)
                .collect();
            let adjustment = Adjustment::new(plan, &subjects, values);
            let result = (|| {
                let curves = stats::km::kaplan_meier(
                    &time,
                    &event,
                    Some((&group, arms.len())),
                    &stats::km::KmOptions {
                        conf_level: plan.conf_level,
                        ..stats::km::KmOptions::default()
                    },
                )?;
                let strata = adjustment.strata();
                let logrank = stats::logrank::log_rank(&time, &event, &group, arms.len(), strata)?;
                let mut columns: Vec<(String, Vec<f64>)> = (0..arms.len())
                    .filter(|&a| a != reference)
                    .map(|a| {
                        (
                            format!("{} vs {}", arms[a], arms[reference]),
                            group.iter().map(|&g| f64::from(u8::from(g == a))).collect(),
                        )
                    })
                    .collect();
                columns.extend(adjustment.covariate_columns());
                let cox = stats::cox::cox_ph(
                    &stats::cox::CoxData {
                        time: &time,
                        event: &event,
                        covariates: columns
                            .iter()
                            .map(|(name, values)| stats::cox::Covariate { name, values })
                            .collect(),
                        strata,
                    },
                    &stats::cox::CoxOptions {
                        conf_level: plan.conf_level,
                        ..stats::cox::CoxOptions::default()
                    },
                )?;
                Ok::<_, stats::StatsError>(Comparison::Survival {
                    reference_arm: arms[reference].to_string(),
                    curves: curves
                        .iter()
                        .zip(arms)
                        .map(|(c, arm)| ArmCurve {
                            arm: arm.to_string(),
                            n: c.n,
                            events: c.events,
                            median: c.median(),
                            at_horizon: horizon_days
                                .and_then(|h| c.survival_at(&[f64::from(h)]).into_iter().next()),
                        })
                        .collect(),
                    logrank: stats::ChiSquareTest {
                        chisq: logrank.chisq,
                        df: logrank.df,
                        p: logrank.p,
                    },
                    hazard_ratios: cox.coefficients.into_iter().take(arms.len() - 1).collect(),
                    warnings: cox.warnings,
                    fitted: curves,
                })
            })();
            result.unwrap_or_else(not_estimable)
        }
        EndpointKind::Binary { .. } => binary(arms, reference, rows, plan, values),
        EndpointKind::Count { window, .. } => {
            super::effects::rates(arms, reference, window.from_day, rows, plan, values)
                .map_or_else(estimable_not, Comparison::Rates)
        }
        EndpointKind::Continuous { .. } => {
            super::effects::means(arms, reference, rows, plan, values)
                .map_or_else(estimable_not, Comparison::MeanDifference)
        }
    }
}

/// Binary: each arm's 2×2 table against the reference, and when the plan stratifies or adjusts,
/// the Mantel–Haenszel estimates across the strata the plan's factors form.
fn binary(
    arms: &[&str],
    reference: usize,
    rows: &[EndpointRow],
    plan: &crate::protocol::EndpointPlan,
    values: &super::baseline::Covariates<'_>,
) -> Comparison {
    use super::baseline::CovariateValue;
    use stats::mantel_haenszel::{mantel_haenszel, Stratum2x2};
    let mut events = vec![0u64; arms.len()];
    let mut n = vec![0u64; arms.len()];
    // (stratum, arm) → (events, subjects).
    let mut cells: BTreeMap<(String, usize), (u64, u64)> = BTreeMap::new();
    let adjusted = plan.stratified || !plan.covariates.is_empty();
    for r in rows {
        let (Outcome::Binary { event: Some(e), .. }, Some(g)) =
            (&r.outcome, arms.iter().position(|a| *a == &*r.subject.arm))
        else {
            continue;
        };
        n[g] += 1;
        events[g] += u64::from(*e);
        if adjusted {
            let mut key: Vec<std::borrow::Cow<str>> = Vec::new();
            if plan.stratified {
                key.push((*r.subject.stratum).into());
            }
            // Validation lets only categorical covariates adjust a binary endpoint.
            key.extend(
                plan.covariates
                    .iter()
                    .map(|c| match values.value(&r.subject, c) {
                        Some(CovariateValue::Level(l)) => l,
                        Some(CovariateValue::Number(x)) => x.to_string().into(),
                        None => crate::protocol::MISSING_LEVEL.into(),
                    }),
            );
            let cell = cells.entry((key.join("|"), g)).or_default();
            cell.0 += u64::from(*e);
            cell.1 += 1;
        }
    }
    let strata_by = {
        let mut by: Vec<String> = Vec::new();
        if plan.stratified {
            by.push("randomisation stratum".to_string());
        }
        by.extend(plan.covariates.iter().cloned());
        by.join(" × ")
    };
    let keys: std::collections::BTreeSet<&String> = cells.keys().map(|(k, _)| k).collect();
    let mut mantel = Vec::new();
    let tables: Result<Vec<BinaryComparison>, stats::StatsError> = (0..arms.len())
        .filter(|&a| a != reference)
        .map(|a| {
            if adjusted {
                let cell =
                    |k: &String, g: usize| cells.get(&(k.clone(), g)).copied().unwrap_or_default();
                let (mut strata, mut left_out) = (Vec::new(), 0);
                for k in &keys {
                    let ((ea, na), (er, nr)) = (cell(k, a), cell(k, reference));
                    if na + nr < 2 {
                        left_out += usize::from(na + nr > 0);
                        continue;
                    }
                    strata.push(Stratum2x2 {
                        a: ea,
                        n1: na,
                        c: er,
                        n0: nr,
                    });
                }
                mantel.push(ArmMantelHaenszel {
                    arm: arms[a].to_string(),
                    strata_by: strata_by.clone(),
                    estimates: mantel_haenszel(&strata, plan.conf_level)?,
                    strata_left_out: left_out,
                });
            }
            Ok(BinaryComparison {
                arm: arms[a].to_string(),
                table: stats::binary::two_by_two_at(
                    [events[a], events[reference]],
                    [n[a], n[reference]],
                    plan.conf_level,
                )?,
            })
        })
        .collect();
    match tables {
        Ok(tables) => Comparison::Binary {
            reference_arm: arms[reference].to_string(),
            tables,
            mantel_haenszel: mantel,
        },
        Err(e) => Comparison::NotEstimable {
            reason: e.to_string(),
        },
    }
}
