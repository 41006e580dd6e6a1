//! The unblinded page for the trial statistician and the DSMB, and the closed report
//! `rrct analyse --format html` writes: Kaplan–Meier curves per arm with numbers at risk, the
//! primary analysis, binary endpoint tables, balance per stratum and the flow per arm.

use std::collections::BTreeMap;

use askama::Template;

use super::charts;
use super::page::{self, opt, p_value, Chrome, FlowStep, TrialSnapshot};
use crate::protocol::EndpointKind;
use crate::service::analyse::{self, Comparison};
use crate::stats::km::{kaplan_meier, KmOptions};

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
    pub flow: Vec<FlowStep>,
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
    pub imbalance: u64,
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
    pub fn build(snapshot: &TrialSnapshot, chrome: Chrome) -> UnblindedPage {
        let data = &snapshot.data;
        let protocol = &data.protocol;
        let derived = analyse::derive_endpoints(data, snapshot.cutoff);
        let analysis =
            analyse::analyse_derived(data, &snapshot.screening, snapshot.cutoff, &derived);
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
        for ((endpoint, rows), summary) in derived.iter().zip(&analysis.endpoints) {
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
                            ..
                        }) => {
                            let crate::endpoints::SurvivalData { time, event, group } =
                                crate::endpoints::SurvivalData::from_rows(rows, &arm_ids);
                            match kaplan_meier(
                                &time,
                                &event,
                                Some((&group, arm_ids.len())),
                                &KmOptions::default(),
                            ) {
                                Ok(km) => {
                                    let last = time.iter().copied().fold(0.0, f64::max);
                                    let until = horizon_days
                                        .map_or(last, |h| f64::from(h).min(last.max(1.0)));
                                    let curves_drawn: Vec<charts::ArmCurve<'_>> = km
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
                                    s.at_risk = km
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
                                }
                                Err(e) => s.not_estimable = Some(e.to_string()),
                            }
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

        // Balance: allocations per stratum and arm, as of the cut-off.
        let cutoff = snapshot.cutoff.0.to_string();
        let mut strata: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for a in data
            .allocations
            .iter()
            .filter(|a| a.allocated_at.get(..10).unwrap_or("") <= cutoff.as_str())
        {
            if let Some(i) = arm_ids.iter().position(|x| *x == a.arm) {
                strata
                    .entry(a.stratum.as_str())
                    .or_insert_with(|| vec![0; arm_ids.len()])[i] += 1;
            }
        }
        let mut totals = vec![0u64; arm_ids.len()];
        let mut balance: Vec<BalanceRow> = strata
            .into_iter()
            .map(|(stratum, counts)| {
                for (t, c) in totals.iter_mut().zip(&counts) {
                    *t += c;
                }
                BalanceRow {
                    stratum: stratum.to_string(),
                    total: counts.iter().sum(),
                    imbalance: counts.iter().max().unwrap_or(&0)
                        - counts.iter().min().unwrap_or(&0),
                    counts,
                }
            })
            .collect();
        balance.push(BalanceRow {
            stratum: "All strata".into(),
            total: totals.iter().sum(),
            imbalance: totals.iter().max().unwrap_or(&0) - totals.iter().min().unwrap_or(&0),
            counts: totals,
        });

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
            flow: page::consort(t, snapshot, &named_arms, page::plain),
            arm_names: named_arms.into_iter().map(|(_, n)| n).collect(),
            chrome,
            reference_arm,
            headline,
            primary,
            survival,
            binary,
            descriptive,
            balance,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn at_risk_times_are_even_steps() {
        assert_eq!(
            super::at_risk_times(365.0),
            vec![0.0, 60.0, 120.0, 180.0, 240.0, 300.0, 360.0]
        );
        assert_eq!(super::at_risk_times(30.0).len(), 5);
    }
}
