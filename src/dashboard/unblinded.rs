//! The unblinded page for the trial statistician and the DSMB, and the closed report
//! `rrct analyse --format html` writes: Kaplan–Meier curves per arm with numbers at risk, the
//! primary analysis, interim monitoring against the group-sequential boundaries, subgroup
//! forest plots, binary endpoint tables, balance and predictability of the allocations per
//! stratum and the flow per arm.

use std::collections::BTreeMap;

use askama::Template;

use super::charts;
use super::page::{self, opt, p_value, Chrome, FlowStep};
use crate::analysis::summary::{Analysis, Comparison};
use crate::protocol::EndpointKind;
use crate::service::trial_view::PreparedTrial;

#[derive(Template)]
#[template(path = "dashboard/unblinded.html")]
pub struct UnblindedPage {
    pub chrome: Chrome,
    pub reference_arm: String,
    pub headline: Vec<(String, String)>,
    pub primary: Option<PrimaryAnalysis>,
    pub survival: Vec<SurvivalEndpoint>,
    pub binary: Vec<BinaryEndpoint>,
    /// `(endpoint, arm, subjects, events, mean, incomplete)`.
    pub descriptive: Vec<(String, String, u64, u64, String, u64)>,
    pub arm_names: Vec<String>,
    pub balance: Vec<BalanceRow>,
    /// Correct-guess rates of the convergence strategy: seeing the whole trial, and seeing
    /// only the patient's stratum.
    pub guessing: Option<(String, String)>,
    /// One per experimental arm against the reference arm.
    pub monitoring: Vec<Monitoring>,
    /// When the planned looks will be reached.
    pub forecast: Option<page::ForecastView>,
    /// The randomised against the eligible not randomised, in full.
    pub representativeness: Option<super::representativeness::RepresentativenessView>,
    /// Consents, overdue deferred consents and withdrawals.
    pub participation: Option<super::representativeness::ParticipationView>,
    pub forests: Vec<Forest>,
    /// Rate ratios of count endpoints by stratification factor.
    pub rate_forests: Vec<Forest>,
    /// Differences in means of continuous endpoints by stratification factor.
    pub mean_forests: Vec<Forest>,
    /// The registers: complete-through dates, last deliveries, stale flags.
    pub sources: Vec<page::SourceRow>,
    pub flow: Vec<FlowStep>,
}

/// Interim monitoring of the primary endpoint.
pub struct Monitoring {
    pub endpoint: String,
    pub design: String,
    pub status: String,
    pub svg: String,
    pub looks: Vec<LookRow>,
    pub note: Option<String>,
}

pub struct LookRow {
    pub look: usize,
    pub planned: String,
    pub cutoff: String,
    pub events: u64,
    pub fraction: String,
    pub z: String,
    pub hazard_ratio: String,
    pub boundary: String,
    pub crossed: bool,
    pub conditional_power: String,
    pub repeated_ci: String,
}

/// One stratification factor's subgroups.
pub struct Forest {
    pub factor: String,
    pub comparison: String,
    pub svg: String,
    pub rows: Vec<ForestTableRow>,
    pub interaction: String,
}

pub struct ForestTableRow {
    pub label: String,
    pub n: usize,
    pub events: usize,
    pub hr: String,
    pub ci: String,
    pub p: String,
}

pub struct PrimaryAnalysis {
    pub label: String,
    pub ratios: Vec<HazardRatio>,
    pub logrank_p: String,
    pub not_estimable: Option<String>,
}

pub struct HazardRatio {
    pub name: String,
    pub estimate: String,
    pub ci: String,
    pub p: String,
}

pub struct SurvivalEndpoint {
    pub id: String,
    pub label: String,
    pub primary: bool,
    pub not_estimable: Option<String>,
    pub svg: String,
    pub times: Vec<String>,
    pub at_risk: Vec<AtRiskRow>,
    pub arms: Vec<ArmSummary>,
    pub tests: String,
}

pub struct AtRiskRow {
    pub arm: String,
    pub colour: String,
    pub counts: Vec<usize>,
}

pub struct ArmSummary {
    pub arm: String,
    pub n: usize,
    pub events: usize,
    pub median: String,
    pub at_horizon: String,
}

pub struct BinaryEndpoint {
    pub label: String,
    pub not_estimable: Option<String>,
    pub rows: Vec<BinaryRow>,
}

pub struct BinaryRow {
    pub arm: String,
    pub events: String,
    pub risk: String,
    pub incomplete: u64,
    pub rr: String,
    pub rd: String,
    pub p: String,
}

pub struct BalanceRow {
    pub stratum: String,
    pub counts: Vec<u64>,
    pub total: u64,
    pub imbalance: String,
    pub max_imbalance: String,
    pub correct_guesses: String,
}

fn ci(lo: Option<f64>, hi: Option<f64>) -> String {
    match (lo, hi) {
        (Some(lo), Some(hi)) => format!("{lo:.2}–{hi:.2}"),
        _ => "–".into(),
    }
}

/// Times for the numbers-at-risk table: about six even steps up to `until` days.
fn at_risk_times(until: f64) -> Vec<f64> {
    let step = [7.0, 14.0, 30.0, 60.0, 90.0, 180.0, 365.0, 730.0]
        .into_iter()
        .find(|s| until / s <= 7.0)
        .unwrap_or(until / 6.0)
        .max(1.0);
    (0..)
        .map(|k| k as f64 * step)
        .take_while(|t| *t <= until)
        .collect()
}

impl UnblindedPage {
    pub fn build(prepared: &PreparedTrial, chrome: Chrome) -> UnblindedPage {
        let data = &prepared.data;
        let protocol = &data.protocol;
        let analysis = &prepared.analysis;
        let arms: Vec<(String, String)> = protocol
            .arms
            .iter()
            .map(|a| (a.id.clone(), a.label.clone()))
            .collect();
        let arm_ids: Vec<&str> = arms.iter().map(|(id, _)| id.as_str()).collect();
        let name = |id: &str| {
            arms.iter()
                .find(|(a, _)| a == id)
                .map_or_else(|| id.to_string(), |(a, label)| format!("{label} ({a})"))
        };
        let reference_arm = arm_ids.last().map_or_else(String::new, |a| name(a));

        let mut primary = None;
        let mut survival = Vec::new();
        let mut binary = Vec::new();
        let mut descriptive = Vec::new();
        let mut rate_forests = Vec::new();
        let mut mean_forests = Vec::new();
        for ((endpoint, rows), summary) in prepared.derived().zip(&analysis.endpoints) {
            let label = summary.label.clone().unwrap_or_else(|| summary.id.clone());
            match (&endpoint.kind, &summary.comparison) {
                (EndpointKind::TimeToEvent { horizon_days, .. }, comparison) => {
                    let mut s = SurvivalEndpoint {
                        id: summary.id.clone(),
                        label: label.clone(),
                        primary: summary.primary,
                        not_estimable: None,
                        svg: String::new(),
                        times: vec![],
                        at_risk: vec![],
                        arms: vec![],
                        tests: String::new(),
                    };
                    match comparison {
                        Some(Comparison::Survival {
                            curves,
                            logrank,
                            hazard_ratios,
                            warnings,
                            fitted,
                            ..
                        }) => {
                            // The curves the analysis fitted: drawn, not fitted again.
                            let time =
                                crate::endpoints::SurvivalData::from_rows(rows, &arm_ids).time;
                            let last = time.iter().copied().fold(0.0, f64::max);
                            let until =
                                horizon_days.map_or(last, |h| f64::from(h).min(last.max(1.0)));
                            let curves_drawn: Vec<charts::ArmCurve<'_>> = fitted
                                .iter()
                                .zip(&arm_ids)
                                .map(|(curve, a)| charts::ArmCurve {
                                    label: name(a),
                                    curve,
                                })
                                .collect();
                            s.svg = charts::kaplan_meier(
                                &format!("Kaplan–Meier: {label}"),
                                &curves_drawn,
                                until,
                            );
                            let times = at_risk_times(until);
                            s.times = times.iter().map(|t| format!("{t:.0}")).collect();
                            s.at_risk = fitted
                                .iter()
                                .zip(&arm_ids)
                                .enumerate()
                                .map(|(i, (curve, a))| AtRiskRow {
                                    arm: name(a),
                                    colour: charts::arm_colour_css(i),
                                    counts: curve
                                        .survival_at(&times)
                                        .iter()
                                        .map(|at| at.n_risk)
                                        .collect(),
                                })
                                .collect();
                            s.arms = curves
                                .iter()
                                .map(|c| ArmSummary {
                                    arm: name(&c.arm),
                                    n: c.n,
                                    events: c.events,
                                    median: opt(c.median.median, |m| format!("{m:.0}")),
                                    at_horizon: c
                                        .at_horizon
                                        .and_then(|h| {
                                            h.survival.map(|v| (h.time, v, h.lower, h.upper))
                                        })
                                        .map_or_else(
                                            || "–".to_string(),
                                            |(t, v, lo, hi)| {
                                                format!(
                                                    "{:.1}% at day {t:.0} ({})",
                                                    100.0 * v,
                                                    match (lo, hi) {
                                                        (Some(lo), Some(hi)) => format!(
                                                            "95% CI {:.1}–{:.1}%",
                                                            100.0 * lo,
                                                            100.0 * hi
                                                        ),
                                                        _ => "no CI".into(),
                                                    }
                                                )
                                            },
                                        ),
                                })
                                .collect();
                            let ratios: Vec<HazardRatio> = hazard_ratios
                                .iter()
                                .map(|h| HazardRatio {
                                    name: h.name.clone(),
                                    estimate: opt(h.hr, |v| format!("{v:.2}")),
                                    ci: ci(h.hr_lower, h.hr_upper),
                                    p: opt(h.p, p_value),
                                })
                                .collect();
                            s.tests = format!(
                                "Log-rank χ² = {:.2} on {} df, p = {}. Cox hazard ratios: {}.{}",
                                logrank.chisq,
                                logrank.df,
                                p_value(logrank.p),
                                ratios
                                    .iter()
                                    .map(|h| format!("{} {} (95% CI {})", h.name, h.estimate, h.ci))
                                    .collect::<Vec<_>>()
                                    .join("; "),
                                if warnings.is_empty() {
                                    String::new()
                                } else {
                                    format!(" Warnings: {}", warnings.join("; "))
                                }
                            );
                            if summary.primary {
                                primary = Some(PrimaryAnalysis {
                                    label: label.clone(),
                                    ratios,
                                    logrank_p: p_value(logrank.p),
                                    not_estimable: None,
                                });
                            }
                        }
                        Some(Comparison::CompetingRisks(c)) => {
                            let until = if c.at_day > 0.0 { c.at_day } else { 1.0 };
                            let drawn: Vec<charts::ArmIncidence<'_>> = c
                                .incidence
                                .iter()
                                .map(|a| charts::ArmIncidence {
                                    label: name(&a.arm),
                                    curve: &a.curve,
                                })
                                .collect();
                            s.svg = charts::cumulative_incidence(
                                &format!("Cumulative incidence (Aalen–Johansen): {label}"),
                                &drawn,
                                until,
                            );
                            let pct = |v: Option<f64>| opt(v, |v| format!("{:.1}%", 100.0 * v));
                            s.arms = c
                                .incidence
                                .iter()
                                .map(|a| ArmSummary {
                                    arm: name(&a.arm),
                                    n: a.n,
                                    events: a.events,
                                    median: "–".into(),
                                    at_horizon: format!(
                                        "incidence {} at day {:.0} (CI {}–{}); competing events {} ({})",
                                        pct(a.incidence.cif),
                                        a.incidence.time,
                                        pct(a.incidence.lower),
                                        pct(a.incidence.upper),
                                        a.competing_events,
                                        pct(a.competing_incidence.cif),
                                    ),
                                })
                                .collect();
                            s.tests = format!(
                                "Gray's test: {}. Fine–Gray subdistribution hazard ratios: {}. Cause-specific hazard ratios: {}.",
                                c.gray
                                    .iter()
                                    .map(|g| format!(
                                        "{} χ² = {:.2} on {} df, p = {}",
                                        g.cause,
                                        g.test.chisq,
                                        g.test.df,
                                        p_value(g.test.p)
                                    ))
                                    .collect::<Vec<_>>()
                                    .join("; "),
                                c.subdistribution_hazard_ratios
                                    .iter()
                                    .map(|h| format!(
                                        "{} {:.2} (CI {:.2}–{:.2})",
                                        h.name, h.shr, h.shr_lower, h.shr_upper
                                    ))
                                    .collect::<Vec<_>>()
                                    .join("; "),
                                c.cause_specific_hazard_ratios
                                    .iter()
                                    .map(|h| format!(
                                        "{} {} (CI {})",
                                        h.name,
                                        opt(h.hr, |v| format!("{v:.2}")),
                                        ci(h.hr_lower, h.hr_upper)
                                    ))
                                    .collect::<Vec<_>>()
                                    .join("; "),
                            );
                        }
                        Some(Comparison::NotEstimable { reason }) => {
                            s.not_estimable = Some(reason.clone());
                            if summary.primary {
                                primary = Some(PrimaryAnalysis {
                                    label: label.clone(),
                                    ratios: vec![],
                                    logrank_p: "–".into(),
                                    not_estimable: Some(reason.clone()),
                                });
                            }
                        }
                        _ => {}
                    }
                    survival.push(s);
                }
                (EndpointKind::Binary { .. }, comparison) => {
                    let tables: BTreeMap<&str, &crate::stats::binary::TwoByTwo> = match comparison {
                        Some(Comparison::Binary { tables, .. }) => {
                            tables.iter().map(|t| (t.arm.as_str(), &t.table)).collect()
                        }
                        _ => BTreeMap::new(),
                    };
                    let reference_table = tables.values().next();
                    let rows = arm_ids
                        .iter()
                        .enumerate()
                        .map(|(i, a)| {
                            let g = summary.groups.get(*a).cloned().unwrap_or_default();
                            let table = tables.get(a);
                            // The reference arm's figures are the second column of any table.
                            let (events, n) = match (table, reference_table) {
                                (Some(t), _) => (t.events[0], t.n[0]),
                                (None, Some(t)) if i + 1 == arm_ids.len() => (t.events[1], t.n[1]),
                                _ => (g.events, g.subjects - g.incomplete),
                            };
                            BinaryRow {
                                arm: name(a),
                                events: format!("{events} / {n}"),
                                risk: if n > 0 {
                                    format!("{:.1}%", 100.0 * events as f64 / n as f64)
                                } else {
                                    "–".into()
                                },
                                incomplete: g.incomplete,
                                rr: table.map_or_else(
                                    || "reference".into(),
                                    |t| {
                                        format!(
                                            "{} ({})",
                                            opt(t.rr, |v| format!("{v:.2}")),
                                            ci(t.rr_lower, t.rr_upper)
                                        )
                                    },
                                ),
                                rd: table.map_or_else(
                                    || "reference".into(),
                                    |t| {
                                        format!(
                                            "{:+.1} pp ({:+.1} to {:+.1})",
                                            100.0 * t.rd,
                                            100.0 * t.rd_lower,
                                            100.0 * t.rd_upper
                                        )
                                    },
                                ),
                                p: table.map_or_else(String::new, |t| p_value(t.fisher_p)),
                            }
                        })
                        .collect();
                    binary.push(BinaryEndpoint {
                        label,
                        not_estimable: match comparison {
                            Some(Comparison::NotEstimable { reason }) => Some(reason.clone()),
                            _ => None,
                        },
                        rows,
                    });
                }
                _ => {
                    rate_forests.extend(
                        crate::analysis::subgroups::rate_subgroups(protocol, endpoint, rows)
                            .iter()
                            .map(|f| rate_forest(f, &label, &name)),
                    );
                    mean_forests.extend(
                        crate::analysis::subgroups::mean_subgroups(protocol, endpoint, rows)
                            .iter()
                            .map(|f| mean_forest(f, &label, &name)),
                    );
                    for a in &arm_ids {
                        let g = summary.groups.get(*a).cloned().unwrap_or_default();
                        descriptive.push((
                            label.clone(),
                            name(a),
                            g.subjects,
                            g.events,
                            opt(g.mean_value, |m| format!("{m:.2}")),
                            g.incomplete,
                        ));
                    }
                }
            }
        }

        let (balance, guessing) = balance(analysis);
        let monitoring = analysis
            .interim
            .iter()
            .flat_map(|r| r.comparisons.iter().map(move |c| (r, c)))
            .map(|(r, c)| monitoring(r, c, &name, protocol))
            .collect();
        let forests = analysis
            .subgroups
            .iter()
            .map(|f| forest(f, &name))
            .collect();

        let t = &analysis.flow.total;
        let headline = vec![
            ("Randomised".to_string(), t.randomised.to_string()),
            (
                "Target".to_string(),
                protocol.target_sample_size.to_string(),
            ),
            ("Analysed".to_string(), t.analysed.to_string()),
            (
                "Lost to follow-up".to_string(),
                t.lost_to_follow_up.to_string(),
            ),
            (
                "Inclusion rate".to_string(),
                opt(t.inclusion_rate, crate::dashboard::suppress::percent),
            ),
        ];
        let named_arms: Vec<(String, String)> =
            arms.iter().map(|(id, _)| (id.clone(), name(id))).collect();
        UnblindedPage {
            flow: page::consort(t, protocol, &named_arms, page::plain),
            arm_names: named_arms.into_iter().map(|(_, n)| n).collect(),
            chrome,
            reference_arm,
            headline,
            primary,
            survival,
            binary,
            descriptive,
            balance,
            guessing,
            monitoring,
            forecast: page::forecast_view(analysis.forecast.as_ref()),
            representativeness: analysis
                .representativeness
                .as_ref()
                .map(super::representativeness::full),
            participation: analysis
                .participation
                .as_ref()
                .map(super::representativeness::participation),
            forests,
            rate_forests,
            mean_forests,
            sources: page::source_rows(&analysis.sources),
        }
    }
}

/// An imbalance as a number of patients (fractional only under unequal ratios).
fn patients(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn rate(v: Option<f64>) -> String {
    opt(v, crate::dashboard::suppress::percent)
}

/// Allocations per stratum and arm as of the cut-off, with each stratum's final and maximum
/// imbalance and convergence-strategy guess rate, then the whole trial.
fn balance(analysis: &Analysis) -> (Vec<BalanceRow>, Option<(String, String)>) {
    let Some(q) = &analysis.allocation_quality else {
        return (vec![], None);
    };
    let row = |stratum: &str, s: &crate::randomise::quality::SequenceQuality| BalanceRow {
        stratum: stratum.to_string(),
        counts: s.counts.clone(),
        total: s.n,
        imbalance: patients(s.final_imbalance),
        max_imbalance: patients(s.max_imbalance),
        correct_guesses: rate(s.correct_guess_rate),
    };
    let mut rows: Vec<BalanceRow> = q.observed.strata.iter().map(|(k, s)| row(k, s)).collect();
    rows.push(row("All strata", &q.observed.overall));
    let guessing = (q.observed.overall.n > 0).then(|| {
        (
            rate(q.observed.overall.correct_guess_rate),
            rate(q.observed.within_strata_correct_guess_rate),
        )
    });
    (rows, guessing)
}

fn monitoring(
    report: &crate::analysis::interim::InterimReport,
    r: &crate::analysis::interim::ArmMonitoring,
    name: &dyn Fn(&str) -> String,
    protocol: &crate::protocol::Protocol,
) -> Monitoring {
    let d = &report.design;
    let two_sided = !r.planned_lower_z.is_empty();
    let planned: Vec<charts::PlannedLook> = d
        .looks
        .iter()
        .zip(&r.planned_upper_z)
        .enumerate()
        .map(|(i, (&fraction, &upper))| charts::PlannedLook {
            fraction,
            upper,
            lower: r.planned_lower_z.get(i).copied(),
        })
        .collect();
    let held: Vec<charts::HeldLook> = r
        .looks
        .iter()
        .map(|l| charts::HeldLook {
            fraction: l.information_fraction,
            z: l.z,
            upper: l.upper_z,
            lower: if two_sided { l.lower_z } else { None },
        })
        .collect();
    let endpoint = protocol
        .endpoint(&report.endpoint)
        .and_then(|e| e.label.clone())
        .unwrap_or_else(|| report.endpoint.clone());
    Monitoring {
        endpoint,
        design: format!(
            "{}-sided α = {} for this comparison (alpha split: {}), {} alpha spending, {} planned events, looks at information fractions {}; {} against {} ({} concurrent controls, {} non-concurrent left out).",
            if two_sided { "Two" } else { "One" },
            report.alpha_per_comparison,
            report.alpha_split,
            d.spending,
            d.planned_events,
            d.looks
                .iter()
                .map(|t| format!("{t}"))
                .collect::<Vec<_>>()
                .join(", "),
            name(&r.experimental_arm),
            name(&report.reference_arm),
            r.concurrent_controls,
            r.non_concurrent_controls,
        ),
        status: format!(
            "{} events so far: information fraction {:.2}.",
            r.events, r.information_fraction
        ),
        svg: charts::group_sequential(&planned, &held),
        looks: r
            .looks
            .iter()
            .map(|l| LookRow {
                look: l.look,
                planned: format!("{}", l.planned_fraction),
                cutoff: l.cutoff.to_string(),
                events: l.events,
                fraction: format!("{:.3}", l.information_fraction),
                z: format!("{:.2}", l.z),
                hazard_ratio: format!("{:.2}", l.hazard_ratio),
                boundary: match l.lower_z {
                    Some(lo) if two_sided => format!("{:.2} / {lo:.2}", l.upper_z),
                    _ => format!("{:.2}", l.upper_z),
                },
                crossed: l.crossed,
                conditional_power: match (l.conditional_power_design, l.conditional_power_trend)
                {
                    (Some(a), Some(b)) => format!(
                        "{} (design), {} (trend)",
                        crate::dashboard::suppress::percent(a),
                        crate::dashboard::suppress::percent(b)
                    ),
                    _ => "–".into(),
                },
                repeated_ci: l
                    .repeated_ci_hr
                    .map_or_else(|| "–".into(), |[lo, hi]| format!("{lo:.2}–{hi:.2}")),
            })
            .collect(),
        note: r.note.clone(),
    }
}

fn forest(f: &crate::analysis::subgroups::SubgroupForest, name: &dyn Fn(&str) -> String) -> Forest {
    use crate::stats::subgroups::TreatmentEffect;
    // A subgroup with events in one arm only has an estimate running off to 0 or infinity.
    let ratio = |v: f64| {
        if !v.is_finite() || v > 999.0 {
            ">999".to_string()
        } else if v < 0.001 {
            "<0.001".to_string()
        } else {
            format!("{v:.2}")
        }
    };
    let table_row = |label: String, e: &TreatmentEffect| ForestTableRow {
        label,
        n: e.n,
        events: e.events,
        hr: opt(e.hr, ratio),
        ci: match (e.hr_lower, e.hr_upper) {
            (Some(lo), Some(hi)) => format!("{}–{}", ratio(lo), ratio(hi)),
            _ => "–".into(),
        },
        p: opt(e.p, p_value),
    };
    let chart_row = |label: String, e: &TreatmentEffect, overall| charts::ForestRow {
        label,
        hr: e.hr,
        lower: e.hr_lower,
        upper: e.hr_upper,
        overall,
    };
    let label = |level: &str| format!("{} = {level}", f.factor);
    let mut chart_rows = vec![chart_row("All patients".into(), &f.overall, true)];
    chart_rows.extend(
        f.levels
            .iter()
            .map(|l| chart_row(label(&l.level), &l.effect, false)),
    );
    let mut rows = vec![table_row("All patients".into(), &f.overall)];
    rows.extend(
        f.levels
            .iter()
            .map(|l| table_row(label(&l.level), &l.effect)),
    );
    Forest {
        comparison: format!(
            "{} against {}",
            name(&f.experimental_arm),
            name(&f.reference_arm)
        ),
        svg: charts::forest(&format!("Hazard ratio by {}", f.factor), &chart_rows),
        rows,
        interaction: f.interaction.as_ref().map_or_else(
            || "not estimable".into(),
            |t| format!("χ² = {:.2} on {} df, p = {}", t.chisq, t.df, p_value(t.p)),
        ),
        factor: f.factor.clone(),
    }
}

/// A count endpoint's rate ratios by one factor, drawn and tabled as a forest (`hr` holds the
/// rate ratio, `events` the events counted).
fn rate_forest(
    f: &crate::analysis::subgroups::RateForest,
    label: &str,
    name: &dyn Fn(&str) -> String,
) -> Forest {
    level_forest(
        &f.factor,
        format!(
            "{label}: {} against {}",
            name(&f.experimental_arm),
            name(&f.reference_arm)
        ),
        f.rows.iter().map(|(level, n, events, r)| LevelEstimate {
            level,
            n: *n,
            events: *events as usize,
            estimate: r.as_ref().map(|r| (r.rate_ratio, r.lower, r.upper, r.p)),
        }),
        |rows| {
            charts::ratio_forest(
                &format!("Rate ratio of {label} by {}", f.factor),
                rows,
                "Rate ratio",
            )
        },
        &|v| format!("{v:.2}"),
        "–",
    )
}

/// A continuous endpoint's differences in means by one factor, drawn on a linear axis and
/// tabled as a forest (`hr` holds the difference, `events` the subjects with a value).
fn mean_forest(
    f: &crate::analysis::subgroups::MeanForest,
    label: &str,
    name: &dyn Fn(&str) -> String,
) -> Forest {
    level_forest(
        &f.factor,
        format!(
            "{label}: {} minus {}",
            name(&f.experimental_arm),
            name(&f.reference_arm)
        ),
        f.rows.iter().map(|(level, n, d)| LevelEstimate {
            level,
            n: *n,
            events: *n,
            estimate: d.as_ref().map(|d| (d.difference, d.lower, d.upper, d.p)),
        }),
        |rows| {
            charts::difference_forest(
                &format!("Difference in means of {label} by {}", f.factor),
                rows,
                "Difference in means (experimental minus reference)",
            )
        },
        &difference,
        " to ",
    )
}

/// One row of a rate-ratio or mean-difference forest: the level (the first row is the overall
/// one), its subjects, its events, and the estimate with its bounds and p-value.
struct LevelEstimate<'a> {
    level: &'a str,
    n: usize,
    events: usize,
    estimate: Option<(f64, f64, f64, f64)>,
}

/// The forest of `rows` by `factor`: drawn by `draw`, tabled with estimates and bounds printed
/// by `show` (the bounds joined by `between`).
fn level_forest<'a>(
    factor: &str,
    comparison: String,
    rows: impl Iterator<Item = LevelEstimate<'a>>,
    draw: impl Fn(&[charts::ForestRow]) -> String,
    show: &dyn Fn(f64) -> String,
    between: &str,
) -> Forest {
    let rows: Vec<(String, LevelEstimate)> = rows
        .enumerate()
        .map(|(i, r)| {
            let label = if i == 0 {
                r.level.to_string()
            } else {
                format!("{factor} = {}", r.level)
            };
            (label, r)
        })
        .collect();
    let chart_rows: Vec<charts::ForestRow> = rows
        .iter()
        .enumerate()
        .map(|(i, (label, r))| charts::ForestRow {
            label: label.clone(),
            hr: r.estimate.map(|e| e.0),
            lower: r.estimate.map(|e| e.1),
            upper: r.estimate.map(|e| e.2),
            overall: i == 0,
        })
        .collect();
    Forest {
        factor: factor.to_string(),
        comparison,
        svg: draw(&chart_rows),
        rows: rows
            .into_iter()
            .map(|(label, r)| ForestTableRow {
                label,
                n: r.n,
                events: r.events,
                hr: opt(r.estimate.map(|e| e.0), show),
                ci: r.estimate.map_or_else(
                    || "–".into(),
                    |(_, lo, hi, _)| format!("{}{between}{}", show(lo), show(hi)),
                ),
                p: opt(r.estimate.map(|e| e.3), p_value),
            })
            .collect(),
        interaction: String::new(),
    }
}

/// A difference as the tables print it: three significant digits at least, never `-0`.
fn difference(v: f64) -> String {
    let decimals = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 1.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.decimals$}");
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::analysis::TrialData;
    use crate::endpoints::{DataCutoff, Event, ReceivedEvent};
    use crate::randomise::{AllocationRecord, Draw, Timestamp};
    use crate::service::trial_view::PreparedTrial;

    /// A TASTE trial of 60 subjects, a third of them dying at different days.
    fn prepared() -> PreparedTrial {
        prepared_from(include_str!("../../protocols/taste.toml"))
    }

    /// The same subjects under a TASTE protocol edited, with some infarctions besides.
    fn prepared_from(source: &str) -> PreparedTrial {
        let protocol = crate::protocol::parse(source, "taste.toml").unwrap();
        let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let arms: Vec<String> = protocol.arms.iter().map(|a| a.id.clone()).collect();
        let allocations: Vec<AllocationRecord> = (0..60)
            .map(|i| AllocationRecord {
                trial_id: protocol.trial_id.clone(),
                randomisation_number: i + 1,
                record_id: format!("R{i}"),
                subject: format!("S{i:02}"),
                site_code: "UPP".into(),
                arm: arms[i as usize % arms.len()].clone(),
                stratum: "site=UPP;sex=F".into(),
                block_number: 0,
                block_size: 0,
                block_position: 0,
                protocol_version: protocol.version.clone(),
                request_sha256: String::new(),
                allocated_at: Timestamp::parse("2024-01-01T10:00:00.000000Z").unwrap(),
                detail: None,
                eligible_arms: None,
                cluster: None,
                draw: Draw::Slot,
            })
            .collect();
        let events = (0..60)
            .filter(|i| i % 3 == 0)
            .map(|i| ReceivedEvent {
                event: Event {
                    event_id: format!("D{i}"),
                    subject: format!("S{i:02}"),
                    event_type: "death".into(),
                    date: start + chrono::Days::new(5 + 4 * i),
                    code: None,
                    value: None,
                    source: None,
                },
                received_on: start + chrono::Days::new(300),
            })
            .chain((0..60).filter(|i| i % 5 == 1).map(|i| ReceivedEvent {
                event: Event {
                    event_id: format!("M{i}"),
                    subject: format!("S{i:02}"),
                    event_type: "mi".into(),
                    date: start + chrono::Days::new(3 + 3 * i),
                    code: None,
                    value: None,
                    source: None,
                },
                received_on: start + chrono::Days::new(300),
            }))
            .collect::<Vec<_>>();
        let mut events = events;
        crate::endpoints::sort_received(&mut events);
        // The enrolment fields (TASTE adjusts death or reinfarction for age and sex).
        let mut baseline = crate::analysis::baseline::Baseline::default();
        for i in 0..60 {
            let serde_json::Value::Object(fields) =
                serde_json::json!({"age": 50 + (i * 7) % 35, "sex": "F"})
            else {
                unreachable!("an object")
            };
            baseline.insert(format!("R{i}"), fields);
        }
        let data = TrialData {
            allocations,
            events,
            baseline,
            ..TrialData::of(protocol)
        };
        PreparedTrial::prepare(
            Arc::new(data),
            Arc::new(Vec::new()),
            DataCutoff(start + chrono::Days::new(400)),
        )
    }

    fn chrome() -> Chrome {
        Chrome {
            trial_id: "taste".into(),
            title: "TASTE".into(),
            protocol_version: "1.0".into(),
            role: "Statistician".into(),
            scope: "all sites".into(),
            cutoff: String::new(),
            interactive: false,
            lifecycle: None,
        }
    }

    /// Kaplan–Meier is fitted once per prepared trial: the analysis keeps one fitted curve per
    /// arm for each time-to-event endpoint, and the page draws those curves rather than fitting
    /// again (a page built from curves swapped between the arms shows the swapped numbers).
    #[test]
    fn the_page_draws_the_curves_the_analysis_fitted() {
        let mut prepared = prepared();
        let arms = prepared.data.protocol.arms.len();
        let mut survival = 0;
        for summary in &mut prepared.analysis.endpoints {
            if let Some(Comparison::Survival { fitted, .. }) = &mut summary.comparison {
                assert_eq!(fitted.len(), arms, "{}: one curve per arm", summary.id);
                survival += 1;
                fitted.swap(0, 1);
            }
        }
        assert_eq!(survival, 2, "both time-to-event endpoints were compared");
        let page = UnblindedPage::build(&prepared, chrome());
        let primary = page.survival.iter().find(|s| s.primary).unwrap();
        let Some(Comparison::Survival { fitted, .. }) = prepared
            .analysis
            .endpoints
            .iter()
            .find(|e| e.primary)
            .and_then(|e| e.comparison.as_ref())
        else {
            panic!("the primary endpoint has a survival comparison");
        };
        let times: Vec<f64> = primary.times.iter().map(|t| t.parse().unwrap()).collect();
        for (row, curve) in primary.at_risk.iter().zip(fitted) {
            let expected: Vec<usize> = curve.survival_at(&times).iter().map(|a| a.n_risk).collect();
            assert_eq!(row.counts, expected, "{}", row.arm);
        }
        // The swap is visible: the first arm's row now holds what a fit of the second arm gives.
        assert_ne!(primary.at_risk[0].counts, primary.at_risk[1].counts);
    }

    /// A competing-risk endpoint is drawn as cumulative incidence per arm, with Gray's test and
    /// the subdistribution hazard ratios beside it.
    #[test]
    fn a_competing_risk_endpoint_is_drawn_as_cumulative_incidence() {
        let source = include_str!("../../protocols/taste.toml").replace(
            "events = [\"death\", \"mi\"]",
            "events = [\"mi\"]\ncompeting = [\"death\"]",
        );
        let prepared = prepared_from(&source);
        let page = UnblindedPage::build(&prepared, chrome());
        let mi = page
            .survival
            .iter()
            .find(|s| s.id == "death_or_mi_1y")
            .unwrap();
        assert!(mi.not_estimable.is_none());
        assert!(
            mi.svg.contains("Cumulative incidence (Aalen–Johansen)"),
            "{}",
            mi.svg
        );
        assert_eq!(mi.arms.len(), prepared.data.protocol.arms.len());
        assert!(
            mi.tests.starts_with("Gray's test: endpoint"),
            "{}",
            mi.tests
        );
        assert!(mi
            .tests
            .contains("Fine–Gray subdistribution hazard ratios: aspiration vs pci"));
        // Each arm's row is the analysis's: its events and the curve drawn rising to them.
        let Some(Comparison::CompetingRisks(c)) = prepared
            .analysis
            .endpoints
            .iter()
            .find(|e| e.id == "death_or_mi_1y")
            .and_then(|e| e.comparison.as_ref())
        else {
            panic!("competing risks compared");
        };
        for (row, a) in mi.arms.iter().zip(&c.incidence) {
            assert_eq!(row.events, a.events, "{}", a.arm);
            assert!(a.events > 0 && a.curve.last().is_some_and(|p| p.1 > 0.0));
        }
    }

    /// A DAPA-HF-REG trial of 48 subjects in two diabetes strata, NT-proBNP measured at about
    /// six months for all but every seventh.
    fn prepared_dapa() -> PreparedTrial {
        let protocol = crate::protocol::parse(
            include_str!("../../protocols/dapa-hf-reg.toml"),
            "dapa-hf-reg.toml",
        )
        .unwrap();
        let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let mut baseline = crate::analysis::baseline::Baseline::default();
        let mut events = Vec::new();
        let allocations: Vec<AllocationRecord> = (0..48)
            .map(|i| {
                let arm = ["active", "usual_care"][i % 2];
                let diabetes = i % 3 == 0;
                if i % 7 != 3 {
                    // Lower on the active arm, and more so among diabetics.
                    let effect = match (arm, diabetes) {
                        ("active", true) => -300.0,
                        ("active", false) => -100.0,
                        _ => 0.0,
                    };
                    events.push(ReceivedEvent {
                        event: Event {
                            event_id: format!("N{i}"),
                            subject: format!("S{i:02}"),
                            event_type: "nt_probnp".into(),
                            date: start + chrono::Days::new(i as u64 + 180),
                            code: None,
                            value: Some(1000.0 + effect + ((i * 37) % 17) as f64 * 20.0),
                            source: Some("laboratory".into()),
                        },
                        received_on: start + chrono::Days::new(400),
                    });
                }
                let serde_json::Value::Object(fields) =
                    serde_json::json!({"age": 55 + i % 30, "nt_probnp": 1200.0 + i as f64})
                else {
                    unreachable!("an object")
                };
                baseline.insert(format!("R{i}"), fields);
                AllocationRecord {
                    trial_id: protocol.trial_id.clone(),
                    randomisation_number: i as i64 + 1,
                    record_id: format!("R{i}"),
                    subject: format!("S{i:02}"),
                    site_code: "KS".into(),
                    arm: arm.into(),
                    stratum: format!("site=KS;diabetes={diabetes}"),
                    block_number: 0,
                    block_size: 0,
                    block_position: 0,
                    protocol_version: protocol.version.clone(),
                    request_sha256: String::new(),
                    allocated_at: Timestamp::parse(&format!(
                        "{}T10:00:00.000000Z",
                        start + chrono::Days::new(i as u64)
                    ))
                    .unwrap(),
                    detail: None,
                    eligible_arms: None,
                    cluster: None,
                    draw: Draw::Slot,
                }
            })
            .collect();
        crate::endpoints::sort_received(&mut events);
        let data = TrialData {
            allocations,
            events,
            baseline,
            ..TrialData::of(protocol)
        };
        PreparedTrial::prepare(
            Arc::new(data),
            Arc::new(Vec::new()),
            DataCutoff(start + chrono::Days::new(500)),
        )
    }

    /// A continuous endpoint gets a forest of differences in means per stratification factor
    /// level, on a linear axis, with the numbers the analysis computed.
    #[test]
    fn a_continuous_endpoint_is_drawn_as_a_forest_of_mean_differences() {
        let prepared = prepared_dapa();
        let page = UnblindedPage::build(&prepared, chrome());
        assert_eq!(page.mean_forests.len(), 1, "site has one level only");
        let f = &page.mean_forests[0];
        assert_eq!(f.factor, "diabetes");
        assert!(
            f.comparison.starts_with("NT-proBNP at 6 months (ng/L): "),
            "{}",
            f.comparison
        );
        assert!(f.svg.contains("0 is no difference"), "{}", f.svg);
        assert!(!f.svg.contains("log scale"));
        // The rows are the analysis's: the same forest computed from the prepared trial's rows.
        let (endpoint, rows) = prepared
            .derived()
            .find(|(e, _)| e.id == "nt_probnp_6m")
            .unwrap();
        let forests =
            crate::analysis::subgroups::mean_subgroups(&prepared.data.protocol, endpoint, rows);
        assert_eq!(forests.len(), 1);
        assert_eq!(f.rows.len(), forests[0].rows.len());
        for (shown, (level, n, d)) in f.rows.iter().zip(&forests[0].rows) {
            let d = d.as_ref().expect("estimable");
            assert!(shown.label.ends_with(level.as_str()), "{}", shown.label);
            assert_eq!(shown.n, *n);
            assert_eq!(shown.hr, super::difference(d.difference));
            assert_eq!(
                shown.ci,
                format!(
                    "{} to {}",
                    super::difference(d.lower),
                    super::difference(d.upper)
                )
            );
            assert!(f.svg.contains(&format!("{} = {level}", f.factor)) || level == "All patients");
        }
        // Overall it is the difference of the arms' means the analysis reports, every subject
        // with a value counted.
        let summary = prepared
            .analysis
            .endpoints
            .iter()
            .find(|e| e.id == "nt_probnp_6m")
            .unwrap();
        let mean = |arm: &str| summary.groups[arm].mean_value.unwrap();
        let overall = forests[0].rows[0].2.as_ref().unwrap();
        assert!((overall.difference - (mean("active") - mean("usual_care"))).abs() < 1e-9);
        assert_eq!(forests[0].rows[0].1, (0..48).filter(|i| i % 7 != 3).count());
        // Larger among diabetics, as generated.
        let by = |l: &str| {
            forests[0]
                .rows
                .iter()
                .find(|r| r.0 == l)
                .and_then(|r| r.2.as_ref())
                .unwrap()
                .difference
        };
        assert!(by("true") < by("false") && by("false") < 0.0);
        let html = page.render().unwrap();
        assert!(html.contains("Differences in means by subgroup"));
        assert!(html.contains(&f.rows[1].hr));
    }

    #[test]
    fn at_risk_times_are_even_steps() {
        assert_eq!(
            super::at_risk_times(365.0),
            vec![0.0, 60.0, 120.0, 180.0, 240.0, 300.0, 360.0]
        );
        assert_eq!(super::at_risk_times(30.0).len(), 5);
    }
}
