//! Subgroup analyses for the unblinded report: the hazard ratio of the primary endpoint's
//! experimental arm (the first declared) against the reference arm (the last declared) within
//! each level of every stratification factor, with the overall effect and the interaction
//! test; and likewise the rate ratios of count endpoints and the differences in means of
//! continuous endpoints — the data of the report's forest plots.
//!
//! Stratification factors are the subgroups: they were fixed before randomisation and every
//! allocation carries them in its stratum key, so no further baseline data are needed. Levels
//! that enrolled nobody are left out.

use serde::Serialize;

use crate::endpoints::{EndpointRow, Outcome};
use crate::protocol::{EndpointKind, Protocol};
use crate::randomise::quality::Population;
use crate::stats::subgroups::{subgroup_analysis, SubgroupData, TreatmentEffect};
use crate::stats::{ChiSquareTest, CoxOptions};

/// One factor's forest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubgroupForest {
    pub endpoint: String,
    pub factor: String,
    pub experimental_arm: String,
    pub reference_arm: String,
    pub overall: TreatmentEffect,
    pub levels: Vec<SubgroupLevel>,
    /// Likelihood-ratio test of the treatment-by-factor interaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interaction: Option<ChiSquareTest>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubgroupLevel {
    pub level: String,
    #[serde(flatten)]
    pub effect: TreatmentEffect,
}

/// The level of `factor` in a stratum key such as `site=UPP;sex=F`.
fn level_of<'a>(stratum: &'a str, factor: &str) -> Option<&'a str> {
    stratum
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .find(|(f, _)| *f == factor)
        .map(|(_, level)| level)
}

/// Forests for the primary endpoint's rows, one per stratification factor with at least two
/// levels enrolled; empty when the primary endpoint is not time-to-event, the protocol has
/// fewer than two arms, or there are no events yet.
pub fn primary_subgroups(protocol: &Protocol, primary: &[EndpointRow]) -> Vec<SubgroupForest> {
    let Some(endpoint) = protocol.primary_endpoint() else {
        return vec![];
    };
    if !matches!(endpoint.kind, EndpointKind::TimeToEvent { .. }) || protocol.arms.len() < 2 {
        return vec![];
    }
    let (Some(experimental), Some(reference)) = (protocol.arms.first(), protocol.arms.last())
    else {
        return vec![];
    };
    // Rows of the two compared arms.
    let rows: Vec<(&EndpointRow, i64, bool, bool)> = primary
        .iter()
        .filter_map(|r| match r.outcome {
            Outcome::TimeToEvent { time_days, event } => {
                let treated = *r.subject.arm == *experimental.id;
                (treated || *r.subject.arm == *reference.id)
                    .then_some((r, time_days, event, treated))
            }
            _ => None,
        })
        .collect();
    if !rows.iter().any(|(_, _, event, _)| *event) {
        return vec![];
    }
    let time: Vec<f64> = rows.iter().map(|(_, t, _, _)| *t as f64).collect();
    let event: Vec<bool> = rows.iter().map(|(_, _, e, _)| *e).collect();
    let treatment: Vec<bool> = rows.iter().map(|(_, _, _, t)| *t).collect();
    let population = Population::from_protocol(protocol);
    let options = CoxOptions::default();
    protocol
        .randomisation
        .strata
        .iter()
        .filter_map(|factor| {
            // Declared levels first, in the protocol's order, then any other level seen.
            let mut levels: Vec<String> = population
                .factors
                .iter()
                .find(|f| &f.name == factor)
                .map(|f| f.levels.clone())
                .unwrap_or_default();
            let seen: Vec<&str> = rows
                .iter()
                .map(|(r, ..)| level_of(&r.subject.stratum, factor).unwrap_or("(missing)"))
                .collect();
            for s in &seen {
                if !levels.iter().any(|l| l == s) {
                    levels.push(s.to_string());
                }
            }
            levels.retain(|l| seen.contains(&l.as_str()));
            if levels.len() < 2 {
                return None;
            }
            let codes: Vec<usize> = seen
                .iter()
                .map(|s| levels.iter().position(|l| l == s).unwrap_or(0))
                .collect();
            let analysis = subgroup_analysis(
                &SubgroupData {
                    time: &time,
                    event: &event,
                    treatment: &treatment,
                    factor: (&codes, levels.len()),
                    strata: None,
                },
                &options,
            )
            .ok()?;
            Some(SubgroupForest {
                endpoint: endpoint.id.clone(),
                factor: factor.clone(),
                experimental_arm: experimental.id.clone(),
                reference_arm: reference.id.clone(),
                overall: analysis.overall,
                levels: levels
                    .into_iter()
                    .zip(analysis.subgroups)
                    .map(|(level, effect)| SubgroupLevel { level, effect })
                    .collect(),
                interaction: analysis.interaction,
            })
        })
        .collect()
}

/// One endpoint's estimate of the experimental arm (the first declared) against the reference
/// arm (the last) within each level of a stratification factor: the data of the DSMB report's
/// rate-ratio and mean-difference forests. Within a level the plan's model is fitted to the arm
/// alone (no further adjustment: the level is the stratum).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelForest<R> {
    pub endpoint: String,
    pub factor: String,
    pub experimental_arm: String,
    pub reference_arm: String,
    /// All patients, then each level.
    pub rows: Vec<R>,
}

/// A count endpoint's forest: each row `(level, subjects, events, rate ratio)`; a level whose
/// model cannot be fitted has no ratio.
pub type RateForest = LevelForest<(
    String,
    usize,
    u64,
    Option<crate::stats::rates::RateCoefficient>,
)>;

/// A continuous endpoint's forest: each row `(level, subjects with a value, difference)`, the
/// difference `lm(value ~ arm)` with its t interval at the plan's level; a level whose difference
/// cannot be estimated (an arm without values) has none.
pub type MeanForest = LevelForest<(
    String,
    usize,
    Option<crate::stats::continuous::MeanDifference>,
)>;

/// Rate-ratio forests of a count endpoint, one per stratification factor with at least two
/// levels enrolled; empty for other endpoints.
pub fn rate_subgroups(
    protocol: &Protocol,
    endpoint: &crate::protocol::Endpoint,
    rows: &[EndpointRow],
) -> Vec<RateForest> {
    let EndpointKind::Count { window, .. } = &endpoint.kind else {
        return vec![];
    };
    level_forests(
        protocol,
        endpoint,
        rows,
        |_| true,
        |fit, rows| {
            let events = rows
                .iter()
                .map(|r| match r.outcome {
                    Outcome::Count { count, .. } => u64::from(count),
                    _ => 0,
                })
                .sum();
            let ratio =
                super::effects::rates(&fit.arms, 1, window.from_day, rows, &fit.plan, &fit.values)
                    .ok()
                    .and_then(|c| c.rate_ratios.into_iter().next());
            (rows.len(), events, ratio)
        },
        |level, (n, events, ratio)| (level, n, events, ratio),
    )
}

/// Mean-difference forests of a continuous endpoint, one per stratification factor with at
/// least two levels enrolled; empty for other endpoints.
pub fn mean_subgroups(
    protocol: &Protocol,
    endpoint: &crate::protocol::Endpoint,
    rows: &[EndpointRow],
) -> Vec<MeanForest> {
    if !matches!(endpoint.kind, EndpointKind::Continuous { .. }) {
        return vec![];
    }
    level_forests(
        protocol,
        endpoint,
        rows,
        // Subjects with a value.
        |r| matches!(r.outcome, Outcome::Continuous { value: Some(_), .. }),
        |fit, rows| {
            let difference = super::effects::means(&fit.arms, 1, rows, &fit.plan, &fit.values)
                .ok()
                .and_then(|c| c.differences.into_iter().next());
            (rows.len(), difference)
        },
        |level, (n, difference)| (level, n, difference),
    )
}

/// What a forest's fit within a level is given: the two arms compared and the endpoint's plan
/// without stratification or covariates (nothing is read from the baseline).
struct Unadjusted<'p> {
    arms: [&'p str; 2],
    plan: crate::protocol::EndpointPlan,
    values: super::baseline::Covariates<'p>,
}

/// The forests of `endpoint`: the experimental arm (the first declared) against the reference
/// arm (the last), on the rows of those arms that `keep` keeps, fitted by `fit` for all
/// patients and within each level of each stratification factor with at least two levels, and
/// each fit made a row by `row`. Empty with fewer than two arms.
fn level_forests<T: Clone, R>(
    protocol: &Protocol,
    endpoint: &crate::protocol::Endpoint,
    rows: &[EndpointRow],
    keep: impl Fn(&EndpointRow) -> bool,
    fit: impl Fn(&Unadjusted<'_>, &[EndpointRow]) -> T,
    row: impl Fn(String, T) -> R,
) -> Vec<LevelForest<R>> {
    let (Some(experimental), Some(reference)) = (protocol.arms.first(), protocol.arms.last())
    else {
        return vec![];
    };
    if protocol.arms.len() < 2 {
        return vec![];
    }
    let baseline = super::baseline::Baseline::default();
    let unadjusted = Unadjusted {
        arms: [experimental.id.as_str(), reference.id.as_str()],
        plan: crate::protocol::EndpointPlan {
            stratified: false,
            covariates: Vec::new(),
            ..protocol.analysis.of(&endpoint.id).clone()
        },
        values: super::baseline::Covariates {
            protocol,
            baseline: &baseline,
        },
    };
    let compared: Vec<EndpointRow> = rows
        .iter()
        .filter(|r| unadjusted.arms.contains(&&*r.subject.arm) && keep(r))
        .cloned()
        .collect();
    let fit = |rows: &[EndpointRow]| fit(&unadjusted, rows);
    let overall = fit(&compared);
    per_level(protocol, &compared, &overall, fit)
        .into_iter()
        .map(|(factor, fits)| LevelForest {
            endpoint: endpoint.id.clone(),
            factor,
            experimental_arm: experimental.id.clone(),
            reference_arm: reference.id.clone(),
            rows: fits.into_iter().map(|(level, t)| row(level, t)).collect(),
        })
        .collect()
}

/// Each stratification factor with at least two levels among `compared`, with its rows: "All
/// patients" (`overall`) and then each level's `fit` of the rows at that level.
fn per_level<T: Clone>(
    protocol: &Protocol,
    compared: &[EndpointRow],
    overall: &T,
    fit: impl Fn(&[EndpointRow]) -> T,
) -> Vec<(String, Vec<(String, T)>)> {
    fn level<'r>(r: &'r EndpointRow, factor: &str) -> &'r str {
        level_of(&r.subject.stratum, factor).unwrap_or("(missing)")
    }
    protocol
        .randomisation
        .strata
        .iter()
        .filter_map(|factor| {
            let mut levels: Vec<&str> = compared.iter().map(|r| level(r, factor)).collect();
            levels.sort_unstable();
            levels.dedup();
            if levels.len() < 2 {
                return None;
            }
            let mut out = vec![("All patients".to_string(), overall.clone())];
            for l in levels {
                let within: Vec<EndpointRow> = compared
                    .iter()
                    .filter(|r| level(r, factor) == l)
                    .cloned()
                    .collect();
                out.push((l.to_string(), fit(&within)));
            }
            Some((factor.clone(), out))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::endpoints::{EndpointRow, Outcome, Subject};

    /// Subject `i` of `arm` at site KS, of the given diabetes level, with `outcome`.
    fn row(diabetes: &str, arm: &str, i: usize, outcome: Outcome) -> EndpointRow {
        EndpointRow {
            subject: Subject {
                record_id: format!("{diabetes}-{arm}-{i}").into(),
                subject: format!("{diabetes}-{arm}-{i}").into(),
                site: "KS".into(),
                arm: arm.into(),
                stratum: format!("site=KS;diabetes={diabetes}").into(),
                randomised_on: chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
                data_collection_ends: None,
            },
            outcome,
            censor_reason: None,
            source: None,
            source_event_id: None,
        }
    }

    #[test]
    fn rate_forests_fit_each_level_of_each_factor() {
        let p = crate::protocol::parse(
            include_str!("../../protocols/dapa-hf-reg.toml"),
            "dapa-hf-reg.toml",
        )
        .unwrap();
        let endpoint = p.endpoint("hfh_count_1y").unwrap();
        // Diabetes levels: among diabetics the rate ratio is (4/10)/(8/10) = 0.5, among the
        // others (3/10)/(3/10) = 1, and overall (7/20)/(11/20). Everyone followed the year.
        let mut rows = Vec::new();
        for (diabetes, arm, counts) in [
            ("true", "active", [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]),
            ("true", "usual_care", [2, 2, 1, 1, 1, 1, 0, 0, 0, 0]),
            ("false", "active", [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]),
            ("false", "usual_care", [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]),
        ] {
            for (i, c) in counts.into_iter().enumerate() {
                rows.push(row(
                    diabetes,
                    arm,
                    i,
                    Outcome::Count {
                        time_days: 365,
                        count: c,
                        complete: true,
                    },
                ));
            }
        }
        let forests = super::rate_subgroups(&p, endpoint, &rows);
        assert_eq!(forests.len(), 1, "site has one level only");
        let f = &forests[0];
        assert_eq!(f.factor, "diabetes");
        let ratios: Vec<(&str, usize, u64, f64)> = f
            .rows
            .iter()
            .map(|(l, n, e, r)| (l.as_str(), *n, *e, r.as_ref().unwrap().rate_ratio))
            .collect();
        let expect = [
            ("All patients", 40, 18, 7.0 / 11.0),
            ("false", 20, 6, 1.0),
            ("true", 20, 12, 0.5),
        ];
        for ((l, n, e, rr), (el, en, ee, err)) in ratios.iter().zip(expect) {
            assert_eq!((*l, *n, *e), (el, en, ee));
            assert!((rr - err).abs() < 1e-6 * err, "{l}: {rr} vs {err}");
        }
    }

    #[test]
    fn mean_forests_take_the_difference_within_each_level_of_each_factor() {
        let p = crate::protocol::parse(
            include_str!("../../protocols/dapa-hf-reg.toml"),
            "dapa-hf-reg.toml",
        )
        .unwrap();
        let endpoint = p.endpoint("nt_probnp_6m").unwrap();
        // Among diabetics active 100, 200 against usual care 400, 600: -350; among the others
        // 300, 500 against 500, 700: -200; overall (150 + 400) / 2 - (500 + 600) / 2 = -275.
        // A subject without a value counts nowhere.
        let mut rows = Vec::new();
        for (diabetes, arm, values) in [
            ("true", "active", [Some(100.0), Some(200.0), None]),
            ("true", "usual_care", [Some(400.0), Some(600.0), None]),
            ("false", "active", [Some(300.0), Some(500.0), None]),
            ("false", "usual_care", [Some(500.0), Some(700.0), None]),
        ] {
            for (i, value) in values.into_iter().enumerate() {
                rows.push(row(
                    diabetes,
                    arm,
                    i,
                    Outcome::Continuous {
                        time_days: value.map(|_| 180),
                        value,
                    },
                ));
            }
        }
        assert!(super::mean_subgroups(&p, p.endpoint("hfh_count_1y").unwrap(), &rows).is_empty());
        let forests = super::mean_subgroups(&p, endpoint, &rows);
        assert_eq!(forests.len(), 1, "site has one level only");
        let f = &forests[0];
        assert_eq!(
            (
                f.factor.as_str(),
                f.experimental_arm.as_str(),
                f.reference_arm.as_str()
            ),
            ("diabetes", "active", "usual_care")
        );
        let expect = [
            ("All patients", 8, -275.0),
            ("false", 4, -200.0),
            ("true", 4, -350.0),
        ];
        assert_eq!(f.rows.len(), expect.len());
        for ((l, n, d), (el, en, ed)) in f.rows.iter().zip(expect) {
            let d = d.as_ref().unwrap();
            assert_eq!((l.as_str(), *n), (el, en));
            assert!((d.difference - ed).abs() < 1e-9, "{l}: {}", d.difference);
            assert!(d.lower < ed && ed < d.upper, "{l}");
        }
        // Within "true": residual sum of squares 5000 + 20000 on 2 df, so σ² = 12500, the SE
        // is sqrt(12500 × (1/2 + 1/2)) and the 95% t interval -350 ± 4.302653 × SE.
        let t = &f.rows[2].2.as_ref().unwrap();
        let se = 12_500f64.sqrt();
        assert!((t.se - se).abs() < 1e-9 && t.df == 2.0, "{t:?}");
        assert!(
            (t.upper - (-350.0 + 4.302_652_729_749_464 * se)).abs() < 1e-6,
            "{t:?}"
        );
    }

    #[test]
    fn levels_come_from_the_stratum_key() {
        assert_eq!(super::level_of("site=UPP;sex=F", "sex"), Some("F"));
        assert_eq!(super::level_of("all", "sex"), None);
    }
}
