//! Subgroup analyses: the treatment hazard ratio within each level of a baseline factor and
//! the likelihood-ratio test of the treatment-by-factor interaction — the data behind a forest
//! plot.
//!
//! Each subgroup estimate is a Cox model `time ~ treatment (+ strata)` fitted to that level's
//! rows alone, as R's `coxph(..., subset = level == k)`. The interaction test compares
//! `treatment + factor + treatment:factor` with `treatment + factor` (both with the same
//! strata) by twice their log partial likelihood difference, on as many degrees of freedom as
//! the interaction adds estimable coefficients — R's `anova(reduced, full)`.

use serde::Serialize;

use super::cox::{cox_ph, Covariate, CoxData, CoxFit, CoxOptions};
use super::km::check_inputs;
use super::timeline::check_codes;
use super::{ChiSquareTest, StatsError};

/// The data of a subgroup analysis.
#[derive(Debug, Clone, Copy)]
pub struct SubgroupData<'a> {
    /// Follow-up times.
    pub time: &'a [f64],
    /// True for an event.
    pub event: &'a [bool],
    /// True for the experimental arm, false for control.
    pub treatment: &'a [bool],
    /// The factor defining the subgroups: codes `0..levels` (level 0 is the reference of the
    /// interaction model).
    pub factor: (&'a [usize], usize),
    /// Optional stratification of every model.
    pub strata: Option<(&'a [usize], usize)>,
}

/// The treatment effect in one subgroup (or overall).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TreatmentEffect {
    /// Observations.
    pub n: usize,
    /// Events.
    pub events: usize,
    /// Log hazard ratio, experimental vs control.
    pub coef: Option<f64>,
    /// Its standard error.
    pub se: Option<f64>,
    /// Hazard ratio.
    pub hr: Option<f64>,
    /// Lower Wald limit.
    pub hr_lower: Option<f64>,
    /// Upper Wald limit.
    pub hr_upper: Option<f64>,
    /// Two-sided Wald p-value.
    pub p: Option<f64>,
    /// Why numbers are missing or doubtful (no events, one arm only, infinite estimate).
    pub warnings: Vec<String>,
}

/// Subgroup effects and the interaction test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubgroupAnalysis {
    /// All rows together.
    pub overall: TreatmentEffect,
    /// One entry per factor level, in code order.
    pub subgroups: Vec<TreatmentEffect>,
    /// Likelihood-ratio test of the interaction; `None` with fewer than two levels or when
    /// either model cannot be fitted.
    pub interaction: Option<ChiSquareTest>,
}

/// Runs the subgroup analysis with the given Cox options (ties, tolerances, level).
///
/// ```
/// use rrct::stats::subgroups::{subgroup_analysis, SubgroupData};
/// use rrct::stats::CoxOptions;
/// let time = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0];
/// let event = [true; 12];
/// let treatment = [true, false, true, false, false, true, true, false, false, true, true, false];
/// let factor = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1];
/// let data = SubgroupData { time: &time, event: &event, treatment: &treatment,
///     factor: (&factor, 2), strata: None };
/// let a = subgroup_analysis(&data, &CoxOptions::default()).unwrap();
/// assert_eq!(a.subgroups.len(), 2);
/// assert_eq!(a.interaction.unwrap().df, 1);
/// ```
pub fn subgroup_analysis(
    data: &SubgroupData<'_>,
    options: &CoxOptions,
) -> Result<SubgroupAnalysis, StatsError> {
    let n = data.time.len();
    check_inputs(data.time, data.event)?;
    if data.treatment.len() != n {
        return Err(StatsError::LengthMismatch {
            what: "treatment".into(),
            expected: n,
            found: data.treatment.len(),
        });
    }
    let (codes, levels) = data.factor;
    check_codes("subgroup", codes, n, levels)?;
    if let Some((s, l)) = data.strata {
        check_codes("stratum", s, n, l)?;
    }
    let trt: Vec<f64> = data
        .treatment
        .iter()
        .map(|&t| f64::from(u8::from(t)))
        .collect();

    let all: Vec<usize> = (0..n).collect();
    let overall = effect(data, &trt, &all, options);
    let subgroups = (0..levels)
        .map(|level| {
            let rows: Vec<usize> = (0..n).filter(|&i| codes[i] == level).collect();
            effect(data, &trt, &rows, options)
        })
        .collect();
    let interaction = interaction_test(data, &trt, options);
    Ok(SubgroupAnalysis {
        overall,
        subgroups,
        interaction,
    })
}

/// The treatment-only Cox model on a subset of rows.
fn effect(
    data: &SubgroupData<'_>,
    trt: &[f64],
    rows: &[usize],
    options: &CoxOptions,
) -> TreatmentEffect {
    let time: Vec<f64> = rows.iter().map(|&i| data.time[i]).collect();
    let event: Vec<bool> = rows.iter().map(|&i| data.event[i]).collect();
    let x: Vec<f64> = rows.iter().map(|&i| trt[i]).collect();
    let strata: Option<Vec<usize>> = data
        .strata
        .map(|(s, _)| rows.iter().map(|&i| s[i]).collect());
    let events = event.iter().filter(|&&e| e).count();
    let empty = |warning: String| TreatmentEffect {
        n: rows.len(),
        events,
        coef: None,
        se: None,
        hr: None,
        hr_lower: None,
        hr_upper: None,
        p: None,
        warnings: vec![warning],
    };
    if rows.is_empty() {
        return empty("no observations".into());
    }
    let cox = CoxData {
        time: &time,
        event: &event,
        covariates: vec![Covariate {
            name: "treatment",
            values: &x,
        }],
        strata: strata.as_deref().zip(data.strata.map(|(_, l)| l)),
    };
    match cox_ph(&cox, options) {
        Ok(fit) => {
            let c = &fit.coefficients[0];
            let mut warnings = fit.warnings.clone();
            if c.coef.is_none() {
                warnings.push("only one arm is present: no treatment effect".into());
            }
            TreatmentEffect {
                n: fit.n,
                events: fit.events,
                coef: c.coef,
                se: c.se,
                hr: c.hr,
                hr_lower: c.hr_lower,
                hr_upper: c.hr_upper,
                p: c.p,
                warnings,
            }
        }
        Err(e) => empty(e.to_string()),
    }
}

fn interaction_test(
    data: &SubgroupData<'_>,
    trt: &[f64],
    options: &CoxOptions,
) -> Option<ChiSquareTest> {
    let (codes, levels) = data.factor;
    if levels < 2 {
        return None;
    }
    let dummies: Vec<Vec<f64>> = (1..levels)
        .map(|l| codes.iter().map(|&c| f64::from(u8::from(c == l))).collect())
        .collect();
    let products: Vec<Vec<f64>> = dummies
        .iter()
        .map(|d| d.iter().zip(trt).map(|(a, b)| a * b).collect())
        .collect();
    let dummy_names: Vec<String> = (1..levels).map(|l| format!("level{l}")).collect();
    let product_names: Vec<String> = (1..levels).map(|l| format!("treatment:level{l}")).collect();
    let mut covariates = vec![Covariate {
        name: "treatment",
        values: trt,
    }];
    for (name, values) in dummy_names.iter().zip(&dummies) {
        covariates.push(Covariate { name, values });
    }
    let reduced = CoxData {
        time: data.time,
        event: data.event,
        covariates: covariates.clone(),
        strata: data.strata,
    };
    for (name, values) in product_names.iter().zip(&products) {
        covariates.push(Covariate { name, values });
    }
    let full = CoxData {
        covariates,
        ..reduced.clone()
    };
    let fit_reduced: CoxFit = cox_ph(&reduced, options).ok()?;
    let fit_full: CoxFit = cox_ph(&full, options).ok()?;
    let df = fit_full.lr_test.df.saturating_sub(fit_reduced.lr_test.df);
    Some(ChiSquareTest::new(
        2.0 * (fit_full.loglik - fit_reduced.loglik),
        df,
    ))
}
