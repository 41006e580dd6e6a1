//! The comparisons of count, continuous and competing-risk endpoints between arms, each arm
//! against the reference arm (the protocol's last): rate ratios from negative binomial
//! regression with the days observed in the window as exposure (Poisson when the negative
//! binomial cannot be fitted, said in the warnings), differences in means from a linear model
//! on the arm, and for a time-to-event endpoint with `competing` events the Aalen–Johansen
//! cumulative incidence per arm, Gray's test, Fine–Gray subdistribution and cause-specific
//! hazard ratios.
//!
//! What it must never do: read or write anything — it works on endpoint rows already derived.

use serde::Serialize;

use super::adjust::{Adjustment, Term};
use super::baseline::Covariates;
use crate::endpoints::{EndpointRow, Outcome};
use crate::protocol::EndpointPlan;
use crate::stats::{
    self,
    competing::{self, IncidenceAt},
    continuous::{self, AncovaData},
    finegray::{self, FineGrayCoefficient},
    km::KmOptions,
    rates::{self, CountData, CountModel, RateCoefficient},
    Covariate,
};

/// One arm's cumulative incidence of the endpoint and of the competing events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmIncidence {
    pub arm: String,
    pub n: usize,
    pub events: usize,
    pub competing_events: usize,
    /// Cumulative incidence of the endpoint at the horizon (or at the last time observed).
    pub incidence: IncidenceAt,
    /// Cumulative incidence of the competing events at the same time.
    pub competing_incidence: IncidenceAt,
    /// The whole curves `(time, incidence of the endpoint)`, for the pages that draw them
    /// (not part of the JSON).
    #[serde(skip)]
    pub curve: Vec<(f64, f64)>,
}

/// Gray's test for one cause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GrayResult {
    /// `endpoint` or `competing`.
    pub cause: String,
    #[serde(flatten)]
    pub test: stats::ChiSquareTest,
}

/// Counts: rate ratios from negative binomial regression (Poisson when it cannot be fitted)
/// with the years observed in the window as exposure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateComparison {
    pub reference_arm: String,
    pub model: CountModel,
    pub subjects: usize,
    pub exposure: &'static str,
    pub rate_ratios: Vec<RateCoefficient>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub theta: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Continuous: differences in means (`lm(value ~ arm)`, with the plan's covariates and strata
/// when it adjusts).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeanComparison {
    pub reference_arm: String,
    pub subjects: usize,
    pub model: &'static str,
    pub differences: Vec<continuous::MeanDifference>,
}

/// Time to event with competing events: cumulative incidence per arm, Gray's test, Fine–Gray
/// and cause-specific hazard ratios.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompetingRiskComparison {
    pub reference_arm: String,
    /// The day the cumulative incidences are given at (the horizon, else the last day).
    pub at_day: f64,
    pub incidence: Vec<ArmIncidence>,
    pub gray: Vec<GrayResult>,
    pub subdistribution_hazard_ratios: Vec<FineGrayCoefficient>,
    pub cause_specific_hazard_ratios: Vec<stats::cox::CoxCoefficient>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn indicators(group: &[usize], arms: &[&str], reference: usize) -> Vec<(String, Vec<f64>)> {
    (0..arms.len())
        .filter(|&a| a != reference)
        .map(|a| {
            (
                format!("{} vs {}", arms[a], arms[reference]),
                group.iter().map(|&g| f64::from(u8::from(g == a))).collect(),
            )
        })
        .collect()
}

fn covariates(columns: &[(String, Vec<f64>)]) -> Vec<Covariate<'_>> {
    columns
        .iter()
        .map(|(name, values)| Covariate { name, values })
        .collect()
}

/// Counts: a rate ratio per arm against the reference, by the plan's model (a negative
/// binomial that cannot be fitted falls back to Poisson, said in the warnings), the stratum and
/// covariates as factors.
pub(crate) fn rates(
    arms: &[&str],
    reference: usize,
    window_from: u32,
    rows: &[EndpointRow],
    plan: &EndpointPlan,
    values: &Covariates<'_>,
) -> Result<RateComparison, String> {
    let mut count = Vec::new();
    let mut exposure = Vec::new();
    let mut group = Vec::new();
    let mut subjects = Vec::new();
    for r in rows {
        let (
            Outcome::Count {
                time_days,
                count: c,
                ..
            },
            Some(g),
        ) = (&r.outcome, arms.iter().position(|a| *a == &*r.subject.arm))
        else {
            continue;
        };
        // Days observed in the window, both ends included; subjects not yet in it add nothing.
        let days = time_days - i64::from(window_from) + 1;
        if days > 0 {
            count.push(f64::from(*c));
            exposure.push(days as f64 / 365.25);
            group.push(g);
            subjects.push(&r.subject);
        }
    }
    if count.iter().all(|&c| c == 0.0) {
        return Err("no events counted yet".into());
    }
    let mut columns = indicators(&group, arms, reference);
    columns.extend(Adjustment::new(plan, &subjects, values).all_columns());
    let data = CountData {
        count: &count,
        columns: covariates(&columns),
        exposure: Some(&exposure),
    };
    let mut warnings = Vec::new();
    let fit = match plan.count_model {
        CountModel::Poisson => rates::fit_rates(&data, CountModel::Poisson, plan.conf_level),
        CountModel::Negbin => match rates::fit_rates(&data, CountModel::Negbin, plan.conf_level) {
            Ok(fit) if fit.converged => Ok(fit),
            other => {
                let why = match other {
                    Ok(fit) => format!("did not converge ({})", fit.warnings.join("; ")),
                    Err(e) => e.to_string(),
                };
                warnings.push(format!(
                    "negative binomial regression not estimable ({why}): Poisson regression \
                     instead"
                ));
                rates::fit_rates(&data, CountModel::Poisson, plan.conf_level)
            }
        },
    };
    let fit = fit.map_err(|e| e.to_string())?;
    warnings.extend(fit.warnings.iter().cloned());
    Ok(RateComparison {
        reference_arm: arms[reference].to_string(),
        model: fit.model,
        subjects: fit.n,
        exposure: "years observed in the window (offset log exposure)",
        // The intercept first, then the arms; the adjustment terms are not the comparison.
        rate_ratios: fit
            .coefficients
            .into_iter()
            .skip(1)
            .take(arms.len() - 1)
            .collect(),
        theta: fit.theta,
        warnings,
    })
}

/// Continuous: the difference in means per arm against the reference (`lm(value ~ arm)`, an
/// ANCOVA when the plan adjusts: numeric covariates as linear terms, the others and the
/// stratum as factors).
pub(crate) fn means(
    arms: &[&str],
    reference: usize,
    rows: &[EndpointRow],
    plan: &EndpointPlan,
    values: &Covariates<'_>,
) -> Result<MeanComparison, String> {
    // The reference arm first, as the linear model's baseline level.
    let mut order: Vec<usize> = vec![reference];
    order.extend((0..arms.len()).filter(|&a| a != reference));
    let levels: Vec<String> = order.iter().map(|&a| arms[a].to_string()).collect();
    let mut value = Vec::new();
    let mut group = Vec::new();
    let mut subjects = Vec::new();
    for r in rows {
        if let (Outcome::Continuous { value: Some(v), .. }, Some(g)) = (
            &r.outcome,
            order.iter().position(|&a| arms[a] == &*r.subject.arm),
        ) {
            value.push(*v);
            group.push(g);
            subjects.push(&r.subject);
        }
    }
    let adjustment = Adjustment::new(plan, &subjects, values);
    // Numeric covariates as linear terms, the others and the stratum as factors: as
    // `lm(value ~ arm + age + sex + stratum)` with the columns in another order.
    let mut linear: Vec<Covariate<'_>> = Vec::new();
    let mut factors: Vec<(&str, &[usize], &[String])> = Vec::new();
    for term in &adjustment.covariates {
        match term {
            Term::Linear { name, values } => linear.push(Covariate { name, values }),
            Term::Factor(f) => factors.push((&f.name, &f.codes, &f.levels)),
        }
    }
    if let Some(f) = &adjustment.stratum {
        factors.push((&f.name, &f.codes, &f.levels));
    }
    let fit = continuous::ancova(
        &AncovaData {
            outcome: &value,
            group: (&group, &levels),
            covariates: linear,
            factors,
        },
        plan.conf_level,
    );
    let fit = fit.map_err(|e| e.to_string())?;
    Ok(MeanComparison {
        reference_arm: arms[reference].to_string(),
        subjects: fit.n,
        model: if adjustment.stratum.is_some() || !adjustment.covariates.is_empty() {
            "ANCOVA: linear model of the value on the arm and the adjustment terms (lm), t \
             intervals"
        } else {
            "linear model of the value on the arm (lm), t intervals"
        },
        differences: fit.differences,
    })
}

/// Competing risks: `rows` are the endpoint's, `competing_rows` the same subjects' time to the
/// first competing event (same horizon).
pub(crate) fn competing_risks(
    arms: &[&str],
    reference: usize,
    horizon_days: Option<u32>,
    rows: &[EndpointRow],
    competing_rows: &[EndpointRow],
    plan: &EndpointPlan,
    values: &Covariates<'_>,
) -> Result<CompetingRiskComparison, String> {
    let competing_by_record: std::collections::HashMap<&str, (i64, bool)> = competing_rows
        .iter()
        .filter_map(|r| match r.outcome {
            Outcome::TimeToEvent { time_days, event } => {
                Some((&*r.subject.record_id, (time_days, event)))
            }
            _ => None,
        })
        .collect();
    let (mut time, mut status, mut group) = (Vec::new(), Vec::new(), Vec::new());
    let mut subjects = Vec::new();
    for r in rows {
        let (Outcome::TimeToEvent { time_days, event }, Some(g)) =
            (&r.outcome, arms.iter().position(|a| *a == &*r.subject.arm))
        else {
            continue;
        };
        let other = competing_by_record.get(&*r.subject.record_id).copied();
        // The endpoint's event counts when it comes first (ties go to the endpoint); a
        // competing event counts when it comes before the endpoint's event or its censoring.
        let (t, s) = match other {
            Some((t2, true)) if (*event && t2 < *time_days) || (!*event && t2 <= *time_days) => {
                (t2, 2)
            }
            _ => (*time_days, usize::from(*event)),
        };
        time.push(t as f64);
        status.push(s);
        group.push(g);
        subjects.push(&r.subject);
    }
    let adjustment = Adjustment::new(plan, &subjects, values);
    let result = (|| {
        let curves =
            competing::cumulative_incidence(&time, &status, 2, Some((&group, arms.len())))?;
        let at = horizon_days.map_or_else(|| time.iter().copied().fold(0.0, f64::max), f64::from);
        let options = KmOptions {
            conf_level: plan.conf_level,
            ..KmOptions::default()
        };
        let incidence = curves
            .iter()
            .zip(arms)
            .map(|(c, arm)| {
                let first = c.at(1, &[at], &options).into_iter().next();
                let second = c.at(2, &[at], &options).into_iter().next();
                let missing = IncidenceAt {
                    time: at,
                    cif: None,
                    std_err: None,
                    lower: None,
                    upper: None,
                };
                ArmIncidence {
                    arm: arm.to_string(),
                    n: c.n,
                    events: c.events[0],
                    competing_events: c.events[1],
                    incidence: first.unwrap_or(missing),
                    competing_incidence: second.unwrap_or(missing),
                    curve: c
                        .time
                        .iter()
                        .copied()
                        .zip(c.cif[0].iter().copied())
                        .collect(),
                }
            })
            .collect();
        let gray = competing::gray_test(
            &time,
            &status,
            2,
            (&group, arms.len()),
            adjustment.strata(),
            0.0,
        )?
        .into_iter()
        .map(|t| GrayResult {
            cause: if t.cause == 1 {
                "endpoint"
            } else {
                "competing"
            }
            .to_string(),
            test: t.test,
        })
        .collect();
        let compared = arms.len() - 1;
        // Fine–Gray has no strata (nor has `cmprsk::crr`): the stratum enters as a factor.
        let mut columns = indicators(&group, arms, reference);
        columns.extend(adjustment.all_columns());
        let fine_gray = finegray::fine_gray(
            &finegray::FineGrayData {
                time: &time,
                status: &status,
                causes: 2,
                cause: 1,
                covariates: covariates(&columns),
            },
            plan.conf_level,
        )?;
        let mut columns = indicators(&group, arms, reference);
        columns.extend(adjustment.covariate_columns());
        let event: Vec<bool> = status.iter().map(|&s| s == 1).collect();
        let cause_specific = stats::cox_ph(
            &stats::CoxData {
                time: &time,
                event: &event,
                covariates: covariates(&columns),
                strata: adjustment.strata(),
            },
            &stats::CoxOptions {
                conf_level: plan.conf_level,
                ..stats::CoxOptions::default()
            },
        )?;
        let mut warnings = cause_specific.warnings;
        if !fine_gray.converged {
            warnings.push("the Fine-Gray model did not converge".into());
        }
        Ok::<_, stats::StatsError>(CompetingRiskComparison {
            reference_arm: arms[reference].to_string(),
            at_day: at,
            incidence,
            gray,
            subdistribution_hazard_ratios: fine_gray
                .coefficients
                .into_iter()
                .take(compared)
                .collect(),
            cause_specific_hazard_ratios: cause_specific
                .coefficients
                .into_iter()
                .take(compared)
                .collect(),
            warnings,
        })
    })();
    result.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::analysis::summary::{analyse, Comparison};
    use crate::analysis::TrialData;
    use crate::endpoints::{DataCutoff, Event, ReceivedEvent};
    use crate::randomise::{AllocationRecord, Draw, Timestamp};

    /// Each subject's events as `(day, type)`, in day order: what the analysis must recount.
    pub(super) type Truth = Vec<(String, Vec<(i64, &'static str)>)>;
    /// One generated event: day, type, code, value, source.
    type Generated = (
        i64,
        &'static str,
        Option<&'static str>,
        Option<f64>,
        &'static str,
    );

    /// A fixed linear congruential sequence: the same data everywhere.
    struct Lcg(u64);

    impl Lcg {
        fn uniform(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn day(&mut self, below: u32) -> i64 {
            (self.uniform() * f64::from(below)).floor() as i64
        }
    }

    pub(super) fn protocol(
        name: &str,
        edit: impl Fn(String) -> String,
    ) -> crate::protocol::Protocol {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("protocols")
            .join(name);
        let text = edit(std::fs::read_to_string(&path).unwrap());
        crate::protocol::parse(&text, name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// 240 subjects randomised one a day from 2024-01-02, arms in turn, with deaths,
    /// infarctions, heart-failure hospitalisations (I50) and NT-proBNP values at about day 180.
    pub(super) fn trial(protocol: crate::protocol::Protocol) -> (TrialData, Truth) {
        let start = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        let mut rng = Lcg(17);
        let mut allocations = Vec::new();
        let mut events = Vec::new();
        let mut truth = Vec::new();
        let mut baseline = crate::analysis::baseline::Baseline::default();
        for i in 0..240usize {
            // What the register sent with the enrolment (the covariates the plans name).
            let serde_json::Value::Object(fields) = serde_json::json!({
                "age": 45 + (i * 7) % 43,
                "sex": if i % 2 == 0 { "F" } else { "M" },
                "nt_probnp": 600.0 + ((i * 13) % 29) as f64 * 40.0,
            }) else {
                unreachable!("an object")
            };
            baseline.insert(format!("r{i}"), fields);
            let arm = protocol.arms[i % protocol.arms.len()].id.clone();
            let treated = i % protocol.arms.len() == 0;
            let day0 = start + chrono::Days::new(i as u64);
            allocations.push(AllocationRecord {
                trial_id: protocol.trial_id.clone(),
                randomisation_number: i as i64 + 1,
                record_id: format!("r{i}"),
                subject: format!("s{i}"),
                site_code: "01".into(),
                arm,
                stratum: String::new(),
                block_number: 0,
                block_size: 0,
                block_position: 0,
                protocol_version: protocol.version.clone(),
                request_sha256: String::new(),
                allocated_at: Timestamp::parse(&format!("{day0}T12:00:00Z")).unwrap(),
                detail: None,
                eligible_arms: None,
                cluster: None,
                draw: Draw::Slot,
            });
            let mut mine: Vec<Generated> = Vec::new();
            let scale = if treated { 0.7 } else { 1.0 };
            if rng.uniform() < 0.3 * scale {
                mine.push((1 + rng.day(360), "death", None, None, "population_register"));
            }
            if rng.uniform() < 0.35 * scale {
                mine.push((
                    1 + rng.day(360),
                    "mi",
                    Some("I21"),
                    None,
                    "patient_register",
                ));
            }
            if rng.uniform() < 0.2 * scale {
                mine.push((
                    1 + rng.day(360),
                    "cv_death",
                    None,
                    None,
                    "cause_of_death_register",
                ));
            }
            let admissions = (rng.uniform() * 4.0 * scale).floor() as i64;
            for _ in 0..admissions {
                mine.push((
                    1 + rng.day(360),
                    "hf_hospitalisation",
                    Some("I50.1"),
                    None,
                    "patient_register",
                ));
            }
            if rng.uniform() < 0.9 {
                let value = 900.0 + 400.0 * rng.uniform() - if treated { 150.0 } else { 0.0 };
                mine.push((
                    170 + rng.day(20),
                    "nt_probnp",
                    None,
                    Some(value),
                    "laboratory",
                ));
            }
            mine.sort_by_key(|e| e.0);
            for (j, (d, kind, code, value, source)) in mine.iter().enumerate() {
                let date = day0 + chrono::Days::new(*d as u64);
                events.push(ReceivedEvent {
                    event: Event {
                        event_id: format!("e{i}-{j}"),
                        subject: format!("s{i}"),
                        event_type: kind.to_string(),
                        date,
                        code: code.map(str::to_string),
                        value: *value,
                        source: Some(source.to_string()),
                    },
                    received_on: date,
                });
            }
            truth.push((
                format!("s{i}"),
                mine.iter().map(|e| (e.0, e.1)).collect::<Vec<_>>(),
            ));
        }
        crate::endpoints::sort_received(&mut events);
        (
            TrialData {
                allocations,
                events,
                baseline,
                ..TrialData::of(protocol)
            },
            truth,
        )
    }

    pub(super) fn cutoff() -> DataCutoff {
        DataCutoff::parse("2026-06-30").unwrap()
    }

    #[test]
    fn every_endpoint_kind_of_the_shipped_protocols_gets_a_comparison() {
        for name in ["dapa-hf-reg.toml", "taste.toml"] {
            let (data, _) = trial(protocol(name, |t| t));
            let analysis = analyse(&data, &[], cutoff());
            assert!(!analysis.endpoints.is_empty());
            for e in &analysis.endpoints {
                let c = e
                    .comparison
                    .as_ref()
                    .unwrap_or_else(|| panic!("{name} {}: none", e.id));
                let ok = matches!(
                    (e.kind, c),
                    ("time_to_event", Comparison::Survival { .. })
                        | ("binary", Comparison::Binary { .. })
                        | ("count", Comparison::Rates(_))
                        | ("continuous", Comparison::MeanDifference(_))
                );
                assert!(ok, "{name} {} ({}): {c:?}", e.id, e.kind);
                // And says how, as the protocol's plan prescribes.
                let text = e.analysis.as_deref().unwrap_or_default();
                assert!(
                    text.ends_with("95% confidence intervals"),
                    "{name} {}: {text}",
                    e.id
                );
            }
        }
    }

    #[test]
    fn count_and_continuous_comparisons_agree_with_the_rows() {
        // Without the ANCOVA's covariates: the difference in means is then the raw one.
        let unadjusted = |t: String| {
            t.replace(
                "[analysis.endpoints.nt_probnp_6m]\ncovariates = [\"nt_probnp\", \"age\"]",
                "",
            )
        };
        let (data, _) = trial(protocol("dapa-hf-reg.toml", unadjusted));
        assert!(data
            .protocol
            .analysis
            .of("nt_probnp_6m")
            .covariates
            .is_empty());
        let analysis = analyse(&data, &[], cutoff());
        let by_id = |id: &str| {
            analysis
                .endpoints
                .iter()
                .find(|e| e.id == id)
                .and_then(|e| e.comparison.clone())
                .unwrap()
        };
        let Comparison::Rates(RateComparison {
            rate_ratios,
            reference_arm,
            subjects,
            ..
        }) = by_id("hfh_count_1y")
        else {
            panic!("no rates");
        };
        assert_eq!(reference_arm, "usual_care");
        assert_eq!(subjects, 240);
        assert_eq!(rate_ratios.len(), 1);
        // Every subject is followed the whole year, so exposure is equal and the negative
        // binomial rate ratio is the ratio of the mean counts.
        let groups = &analysis
            .endpoints
            .iter()
            .find(|e| e.id == "hfh_count_1y")
            .unwrap()
            .groups;
        let mean = |arm: &str| groups[arm].events as f64 / groups[arm].subjects as f64;
        let expected = mean("active") / mean("usual_care");
        assert!(
            (rate_ratios[0].rate_ratio - expected).abs() < 1e-6 * expected,
            "{} vs {expected}",
            rate_ratios[0].rate_ratio
        );
        let Comparison::MeanDifference(MeanComparison { differences, .. }) = by_id("nt_probnp_6m")
        else {
            panic!("no mean difference");
        };
        let means = &analysis
            .endpoints
            .iter()
            .find(|e| e.id == "nt_probnp_6m")
            .unwrap()
            .groups;
        let expected =
            means["active"].mean_value.unwrap() - means["usual_care"].mean_value.unwrap();
        assert!((differences[0].difference - expected).abs() < 1e-9);
        assert!(differences[0].lower < expected && expected < differences[0].upper);
    }

    #[test]
    fn competing_events_give_cumulative_incidence_gray_and_fine_gray() {
        let edit = |t: String| {
            t.replace(
                "events = [\"death\", \"mi\"]",
                "events = [\"mi\"]\ncompeting = [\"death\"]",
            )
        };
        let (data, truth) = trial(protocol("taste.toml", edit));
        let analysis = analyse(&data, &[], cutoff());
        let e = analysis
            .endpoints
            .iter()
            .find(|e| e.id == "death_or_mi_1y")
            .unwrap();
        let Some(Comparison::CompetingRisks(CompetingRiskComparison {
            incidence,
            gray,
            subdistribution_hazard_ratios,
            cause_specific_hazard_ratios,
            ..
        })) = &e.comparison
        else {
            panic!("{:?}", e.comparison);
        };
        // By hand: a subject's first of MI and death within the year decides its status.
        let (mut mi, mut death) = (0usize, 0usize);
        for (_, events) in &truth {
            let first_mi = events.iter().find(|x| x.1 == "mi").map(|x| x.0);
            let first_death = events.iter().find(|x| x.1 == "death").map(|x| x.0);
            match (first_mi, first_death) {
                (Some(m), Some(d)) if d < m => death += 1,
                (Some(_), _) => mi += 1,
                (None, Some(_)) => death += 1,
                (None, None) => {}
            }
        }
        let total_mi: usize = incidence.iter().map(|a| a.events).sum();
        let total_death: usize = incidence.iter().map(|a| a.competing_events).sum();
        assert_eq!((total_mi, total_death), (mi, death));
        assert_eq!(gray.len(), 2);
        assert_eq!(subdistribution_hazard_ratios.len(), 1);
        assert!(cause_specific_hazard_ratios[0].hr.is_some());
        // Everyone is followed the whole year: the incidence at the horizon is a proportion.
        let arm0 = &incidence[0];
        let p = arm0.incidence.cif.unwrap();
        assert!(
            (p - arm0.events as f64 / arm0.n as f64).abs() < 1e-12,
            "{p}"
        );
    }

    #[test]
    fn competing_is_validated_where_it_is_written() {
        let bad_kind = |t: String| {
            t.replace(
                "kind = \"binary\"\nevents = [\"death\"]",
                "kind = \"binary\"\nevents = [\"death\"]\ncompeting = [\"mi\"]",
            )
        };
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("protocols/taste.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let bad = bad_kind(text.clone());
        let errors = crate::protocol::parse(&bad, "taste.toml")
            .expect_err("competing on a binary endpoint is refused")
            .to_string();
        assert!(
            errors.contains("`competing` does not apply to binary endpoint `death_30d`"),
            "{errors}"
        );
        // Located at the `competing` line (found, not counted by hand: the file grows).
        let line = bad[..bad.find("competing = [\"mi\"]").unwrap()]
            .matches('\n')
            .count()
            + 1;
        assert!(errors.contains(&format!("taste.toml:{line}:")), "{errors}");
        let overlap = text.replace(
            "events = [\"death\", \"mi\"]",
            "events = [\"death\", \"mi\"]\ncompeting = [\"death\", \"Bad\"]",
        );
        let errors = crate::protocol::parse(&overlap, "taste.toml")
            .expect_err("overlap is refused")
            .to_string();
        assert!(
            errors.contains("both an outcome and a competing event"),
            "{errors}"
        );
        assert!(errors.contains("event type `Bad`"), "{errors}");
    }
}

#[cfg(test)]
mod plan_tests {
    //! The protocol's `[analysis]` plan followed: stratified and adjusted comparisons, each
    //! checked against the statistic fitted directly on strata built here from the stratum keys.

    use super::tests::{cutoff, protocol, trial};
    use crate::analysis::summary::{analyse, Comparison};
    use crate::analysis::TrialData;
    use crate::stats::mantel_haenszel::{mantel_haenszel, Stratum2x2};

    const SITES: [&str; 3] = ["KS", "SAH", "UPP"];

    /// Give the generated subjects sites and diabetes levels, as the register would.
    fn stratify(data: &mut TrialData, second: &str) {
        for (i, a) in data.allocations.iter_mut().enumerate() {
            a.site_code = SITES[i % 3].to_string();
            a.stratum = format!("site={};{second}={}", a.site_code, i % 7 < 3);
        }
    }

    /// Codes of the stratum keys of `records`, in order of first appearance.
    fn strata_codes(data: &TrialData, records: &[&str]) -> (Vec<usize>, usize) {
        let mut keys: Vec<&str> = Vec::new();
        let codes = records
            .iter()
            .map(|r| {
                let key = data
                    .allocations
                    .iter()
                    .find(|a| a.record_id == *r)
                    .map(|a| a.stratum.as_str())
                    .unwrap();
                keys.iter().position(|k| *k == key).unwrap_or_else(|| {
                    keys.push(key);
                    keys.len() - 1
                })
            })
            .collect();
        (codes, keys.len())
    }

    #[test]
    fn a_stratified_plan_gives_the_stratified_cox_model_and_says_so() {
        let (mut data, _) = trial(protocol("dapa-hf-reg.toml", |t| t));
        stratify(&mut data, "diabetes");
        let analysis = analyse(&data, &[], cutoff());
        let e = analysis
            .endpoints
            .iter()
            .find(|e| e.id == "cv_death_or_hfh")
            .unwrap();
        let text = e.analysis.as_deref().unwrap();
        assert!(
            text.contains("Cox proportional hazards (Efron ties), stratified by the randomisation strata (site × diabetes)"),
            "{text}"
        );
        let Some(Comparison::Survival {
            hazard_ratios,
            logrank,
            ..
        }) = &e.comparison
        else {
            panic!("{:?}", e.comparison);
        };
        // The same fit made directly: `coxph(Surv(time, event) ~ arm + strata(stratum))`.
        let rows = crate::analysis::summary::derive_endpoints(&data, cutoff());
        let (_, rows) = rows
            .iter()
            .find(|(e, _)| e.id == "cv_death_or_hfh")
            .unwrap();
        let arms = ["active", "usual_care"];
        let s = crate::endpoints::SurvivalData::from_rows(rows, &arms);
        let records: Vec<&str> = rows.iter().map(|r| &*r.subject.record_id).collect();
        let (codes, levels) = strata_codes(&data, &records);
        assert_eq!(levels, 6);
        let arm: Vec<f64> = s
            .group
            .iter()
            .map(|&g| f64::from(u8::from(g == 0)))
            .collect();
        let fit = |strata| {
            crate::stats::cox_ph(
                &crate::stats::CoxData {
                    time: &s.time,
                    event: &s.event,
                    covariates: vec![crate::stats::Covariate {
                        name: "arm",
                        values: &arm,
                    }],
                    strata,
                },
                &crate::stats::CoxOptions::default(),
            )
            .unwrap()
            .coefficients[0]
                .coef
                .unwrap()
        };
        let stratified = fit(Some((&codes, levels)));
        let got = hazard_ratios[0].coef.unwrap();
        assert!((got - stratified).abs() < 1e-12, "{got} vs {stratified}");
        // And not the unstratified one: the strata changed the estimate.
        assert!((got - fit(None)).abs() > 1e-6);
        let lr =
            crate::stats::logrank::log_rank(&s.time, &s.event, &s.group, 2, Some((&codes, levels)))
                .unwrap();
        assert!((logrank.chisq - lr.chisq).abs() < 1e-12);
        // The count and continuous comparisons say how the strata entered.
        for id in ["hfh_count_1y", "nt_probnp_6m"] {
            let e = analysis.endpoints.iter().find(|e| e.id == id).unwrap();
            let text = e.analysis.as_deref().unwrap();
            assert!(
                text.contains(
                    "stratified by the randomisation strata (site × diabetes) as a factor"
                ),
                "{text}"
            );
        }
    }

    /// Count subject `r`'s 30-day death (when known) into the 2×2 table of `key`: aspiration
    /// against the other arm.
    fn tally<'a>(
        tables: &mut std::collections::BTreeMap<&'a str, Stratum2x2>,
        key: &'a str,
        r: &crate::endpoints::EndpointRow,
    ) {
        let crate::endpoints::Outcome::Binary {
            event: Some(died), ..
        } = r.outcome
        else {
            return;
        };
        let t = tables.entry(key).or_insert(Stratum2x2 {
            a: 0,
            n1: 0,
            c: 0,
            n0: 0,
        });
        if &*r.subject.arm == "aspiration" {
            t.a += u64::from(died);
            t.n1 += 1;
        } else {
            t.c += u64::from(died);
            t.n0 += 1;
        }
    }

    #[test]
    fn an_adjusted_binary_endpoint_gets_mantel_haenszel_across_the_covariate_levels() {
        let (mut data, _) = trial(protocol("taste.toml", |t| t));
        stratify(&mut data, "sex");
        let analysis = analyse(&data, &[], cutoff());
        let e = analysis
            .endpoints
            .iter()
            .find(|e| e.id == "death_30d")
            .unwrap();
        let Some(Comparison::Binary {
            mantel_haenszel: mh,
            ..
        }) = &e.comparison
        else {
            panic!("{:?}", e.comparison);
        };
        assert_eq!(mh.len(), 1);
        // The tables by hand: per stratum key, deaths and subjects of each arm.
        let rows = crate::analysis::summary::derive_endpoints(&data, cutoff());
        let (_, rows) = rows.iter().find(|(e, _)| e.id == "death_30d").unwrap();
        let mut tables: std::collections::BTreeMap<&str, Stratum2x2> = Default::default();
        for r in rows {
            tally(&mut tables, &r.subject.site, r);
        }
        assert_eq!(tables.len(), 3);
        let expected = mantel_haenszel(&tables.into_values().collect::<Vec<_>>(), 0.95).unwrap();
        assert_eq!(mh[0].estimates, expected);
        assert_eq!(mh[0].strata_left_out, 0);
        assert_eq!(mh[0].strata_by, "site");
        let text = e.analysis.as_deref().unwrap();
        assert!(text.contains("Mantel-Haenszel odds ratio, risk ratio and risk difference across the strata formed by `site`"), "{text}");
    }

    /// A derived field (age bands, from the age each enrolment sent) forms the
    /// Mantel–Haenszel strata of a binary endpoint; subjects whose enrolment had no age are
    /// left out, and the sentence counts them.
    #[test]
    fn a_binary_endpoint_is_adjusted_across_the_bands_of_a_derived_field() {
        let edit = |t: String| {
            t.replace(
                "[analysis.endpoints.death_30d]\ncovariates = [\"site\"]",
                "[analysis.endpoints.death_30d]\ncovariates = [\"age_band\"]",
            )
        };
        let (mut data, _) = trial(protocol("taste.toml", edit));
        // Every tenth enrolment sent no age.
        let ages: Vec<Option<i64>> = (0..240)
            .map(|i| (i % 10 != 4).then_some(45 + (i as i64 * 7) % 43))
            .collect();
        for (i, age) in ages.iter().enumerate() {
            let mut fields = serde_json::Map::new();
            if let Some(a) = age {
                fields.insert("age".into(), (*a).into());
            }
            data.baseline.insert(format!("r{i}"), fields);
        }
        let analysis = analyse(&data, &[], cutoff());
        let e = analysis
            .endpoints
            .iter()
            .find(|e| e.id == "death_30d")
            .unwrap();
        let Some(Comparison::Binary {
            mantel_haenszel: mh,
            ..
        }) = &e.comparison
        else {
            panic!("{:?}", e.comparison);
        };
        // The tables by hand: per band of the age sent, deaths and subjects of each arm.
        let rows = crate::analysis::summary::derive_endpoints(&data, cutoff());
        let (_, rows) = rows.iter().find(|(e, _)| e.id == "death_30d").unwrap();
        let band = |age: i64| match age {
            ..65 => "<65",
            65..75 => "65-74",
            _ => ">=75",
        };
        let mut tables: std::collections::BTreeMap<&str, Stratum2x2> = Default::default();
        let mut left_out = 0;
        for r in rows {
            let i: usize = r.subject.record_id[1..].parse().unwrap();
            let Some(age) = ages[i] else {
                left_out += 1;
                continue;
            };
            tally(&mut tables, band(age), r);
        }
        assert_eq!((tables.len(), left_out), (3, 24));
        let expected = mantel_haenszel(&tables.into_values().collect::<Vec<_>>(), 0.95).unwrap();
        assert_eq!(mh[0].estimates, expected);
        assert_eq!(mh[0].strata_by, "age_band");
        let text = e.analysis.as_deref().unwrap();
        assert!(
            text.contains(
                "across the strata formed by `age_band`; complete cases (24 subjects without a \
                 covariate value left out)"
            ),
            "{text}"
        );
    }

    #[test]
    fn an_endpoint_override_changes_only_that_endpoint() {
        let edit = |t: String| {
            t + "\n[analysis.endpoints.hfh_count_1y]\nstratified = false\ncount_model = \"poisson\"\nconf_level = 0.9\n"
        };
        let (mut data, _) = trial(protocol("dapa-hf-reg.toml", edit));
        stratify(&mut data, "diabetes");
        let analysis = analyse(&data, &[], cutoff());
        let e = analysis
            .endpoints
            .iter()
            .find(|e| e.id == "hfh_count_1y")
            .unwrap();
        let Some(Comparison::Rates(r)) = &e.comparison else {
            panic!("{:?}", e.comparison);
        };
        assert_eq!(r.model, crate::stats::rates::CountModel::Poisson);
        // Everyone is followed the whole year: the unstratified Poisson rate ratio is the
        // ratio of the mean counts, with a 90% interval.
        let groups = &e.groups;
        let mean = |arm: &str| groups[arm].events as f64 / groups[arm].subjects as f64;
        let expected = mean("active") / mean("usual_care");
        let rr = &r.rate_ratios[0];
        assert!((rr.rate_ratio - expected).abs() < 1e-9 * expected);
        let z = (rr.upper.ln() - rr.rate_ratio.ln()) / rr.se;
        assert!((z - 1.644_853_626_951_472_2).abs() < 1e-9, "{z}");
        let text = e.analysis.as_deref().unwrap();
        assert!(text.starts_with("Poisson regression"), "{text}");
        assert!(text.ends_with("90% confidence intervals"), "{text}");
        // The primary endpoint keeps the trial's stratified default.
        let primary = analysis.endpoints.iter().find(|e| e.primary).unwrap();
        assert!(primary.analysis.as_deref().unwrap().contains("stratified"));
    }
}
