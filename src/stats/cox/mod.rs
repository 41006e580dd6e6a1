//! Cox proportional hazards regression as R's `coxph(Surv(time, event) ~ x1 + ... +
//! strata(s), ties = "efron" | "breslow")`.
//!
//! The fit follows `coxph.fit`/`coxfit6`: covariates other than 0/±1 indicators are centred
//! and scaled, Newton–Raphson starts at 0 with step halving and stops on a relative change of
//! the log partial likelihood below [`COX_EPS`] (at most [`COX_ITER_MAX`] iterations);
//! covariates found redundant by the generalised Cholesky decomposition ([`COX_TOLER_CHOL`])
//! get no coefficient (R's `NA`), and a coefficient whose next Newton step is still large
//! after convergence is reported as possibly infinite, with R's warning.
//!
//! Results: coefficients with standard errors, z, p, hazard ratios and Wald confidence
//! limits; the log partial likelihood at 0 and at the estimate; likelihood-ratio, Wald and
//! score (log-rank) tests.

mod counting;
mod newton;
mod risk_sets;
mod two_groups;

pub use counting::{cox_ph_extended, CoxExtras};

use serde::{Serialize, Serializer};

use super::dist::{normal_two_sided_p, z_for_level};
use super::km::check_inputs;
use super::linalg::{cholesky2, chsolve2, Square};
use super::timeline::{check_codes, Timeline};
use super::{
    ChiSquareTest, StatsError, COX_EPS, COX_ITER_MAX, COX_TOLER_CHOL, COX_TOLER_INF,
    DEFAULT_CONF_LEVEL,
};
use risk_sets::{RiskSets, TieGroup};

/// How tied event times enter the partial likelihood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ties {
    /// Efron's approximation: R's default.
    #[default]
    Efron,
    /// Breslow's approximation.
    Breslow,
}

impl Ties {
    /// Parses `efron` or `breslow`.
    ///
    /// ```
    /// use rrct::stats::Ties;
    /// assert_eq!(Ties::parse("breslow"), Some(Ties::Breslow));
    /// assert_eq!(Ties::parse("exact"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "efron" => Some(Self::Efron),
            "breslow" => Some(Self::Breslow),
            _ => None,
        }
    }

    /// The lowercase name R uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::Efron => "efron",
            Self::Breslow => "breslow",
        }
    }
}

impl Serialize for Ties {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One covariate column.
#[derive(Debug, Clone, Copy)]
pub struct Covariate<'a> {
    /// The name reported with its coefficient.
    pub name: &'a str,
    /// One finite value per observation.
    pub values: &'a [f64],
}

impl Covariate<'_> {
    /// That it has `n` values, all finite; `kind` names it in the error (`covariate`, `column`).
    pub fn check(&self, n: usize, kind: &str) -> Result<(), StatsError> {
        if self.values.len() != n {
            return Err(StatsError::LengthMismatch {
                what: format!("{kind} `{}`", self.name),
                expected: n,
                found: self.values.len(),
            });
        }
        if let Some(index) = self.values.iter().position(|v| !v.is_finite()) {
            return Err(StatsError::InvalidCovariate {
                name: self.name.to_string(),
                index,
                value: self.values[index],
            });
        }
        Ok(())
    }
}

/// The data of a Cox model.
#[derive(Debug, Clone)]
pub struct CoxData<'a> {
    /// Follow-up times, finite and non-negative.
    pub time: &'a [f64],
    /// True for an event, false for censoring.
    pub event: &'a [bool],
    /// Covariate columns (at least one).
    pub covariates: Vec<Covariate<'a>>,
    /// Stratum codes `0..levels`, each stratum with its own baseline hazard.
    pub strata: Option<(&'a [usize], usize)>,
}

/// Fitting options; the defaults are R's `coxph.control()` and `ties = "efron"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoxOptions {
    /// Tie handling.
    pub ties: Ties,
    /// Most Newton–Raphson iterations.
    pub max_iter: usize,
    /// Relative log-likelihood change that counts as converged.
    pub eps: f64,
    /// Cholesky tolerance for redundant covariates.
    pub toler_chol: f64,
    /// Threshold of the infinite-coefficient warning.
    pub toler_inf: f64,
    /// Confidence level of the hazard-ratio intervals.
    pub conf_level: f64,
}

impl Default for CoxOptions {
    fn default() -> Self {
        Self {
            ties: Ties::Efron,
            max_iter: COX_ITER_MAX,
            eps: COX_EPS,
            toler_chol: COX_TOLER_CHOL,
            toler_inf: COX_TOLER_INF,
            conf_level: DEFAULT_CONF_LEVEL,
        }
    }
}

/// One coefficient; every number is `None` for a redundant (collinear) covariate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoxCoefficient {
    /// Covariate name.
    pub name: String,
    /// Log hazard ratio.
    pub coef: Option<f64>,
    /// Its standard error (inverse information).
    pub se: Option<f64>,
    /// Wald z.
    pub z: Option<f64>,
    /// Two-sided p-value of z.
    pub p: Option<f64>,
    /// Hazard ratio `exp(coef)`.
    pub hr: Option<f64>,
    /// Lower Wald limit of the hazard ratio.
    pub hr_lower: Option<f64>,
    /// Upper Wald limit of the hazard ratio.
    pub hr_upper: Option<f64>,
    /// Cluster-robust (sandwich) standard error, when a cluster was given; z, p and the limits
    /// then use it, as R's `coxph(... + cluster(id))` does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub robust_se: Option<f64>,
}

/// A fitted Cox model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoxFit {
    /// Observations used.
    pub n: usize,
    /// Events.
    pub events: usize,
    /// Tie handling.
    pub ties: Ties,
    /// Newton–Raphson iterations (R's `fit$iter` on convergence; when the limit is reached
    /// first this is the limit, where R reports the limit plus one).
    pub iterations: usize,
    /// False when the iteration limit was reached first.
    pub converged: bool,
    /// Coefficients in covariate order.
    pub coefficients: Vec<CoxCoefficient>,
    /// Log partial likelihood at coefficients 0.
    pub loglik_null: f64,
    /// Log partial likelihood at the estimate.
    pub loglik: f64,
    /// Likelihood-ratio test.
    pub lr_test: ChiSquareTest,
    /// Wald test of all estimated coefficients.
    pub wald_test: ChiSquareTest,
    /// Score test at 0 (the log-rank test for a single binary covariate).
    pub score_test: ChiSquareTest,
    /// R's warnings: possibly infinite coefficients, redundant covariates, non-convergence.
    pub warnings: Vec<String>,
    /// Variance matrix of the coefficients (row-major; zero rows for redundant covariates);
    /// the robust one when a cluster was given.
    #[serde(skip)]
    pub variance: Vec<f64>,
    /// The robust score test (R's `rscore`), when a cluster was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub robust_score_test: Option<ChiSquareTest>,
}

/// Fits a Cox model.
///
/// ```
/// use rrct::stats::cox::{cox_ph, CoxData, CoxOptions, Covariate, Ties};
/// // Therneau & Grambsch's small example (R's survival test `test1` without its NA row).
/// let time = [9.0, 1.0, 1.0, 6.0, 6.0, 8.0];
/// let event = [true, true, false, true, true, false];
/// let x = [0.0, 1.0, 1.0, 1.0, 0.0, 0.0];
/// let data = CoxData {
///     time: &time,
///     event: &event,
///     covariates: vec![Covariate { name: "x", values: &x }],
///     strata: None,
/// };
/// let breslow = CoxOptions { ties: Ties::Breslow, ..CoxOptions::default() };
/// let b = cox_ph(&data, &breslow).unwrap().coefficients[0].coef.unwrap();
/// assert!((b - 1.475285).abs() < 1e-6);
/// let e = cox_ph(&data, &CoxOptions::default()).unwrap().coefficients[0].coef.unwrap();
/// assert!((e - 1.676857).abs() < 1e-6);
/// ```
pub fn cox_ph(data: &CoxData<'_>, options: &CoxOptions) -> Result<CoxFit, StatsError> {
    let events = validate(data, options)?;
    // One 0/1 covariate without strata (every two-arm comparison): counts per time suffice.
    let two_groups = match (data.covariates.as_slice(), data.strata) {
        ([x], None) => two_groups::TwoGroups::of(data.time, data.event, x.values),
        _ => None,
    };
    if let Some(counts) = two_groups {
        let fit = newton::iterate(&counts, &settings(options));
        return Ok(finish(data, options, fit, &[1.0], events));
    }
    let (risk_sets, scale) = prepare(data);
    let fit = newton::iterate(&risk_sets, &settings(options));
    Ok(finish(data, options, fit, &scale, events))
}

fn settings(options: &CoxOptions) -> newton::Settings {
    newton::Settings {
        ties: options.ties,
        max_iter: options.max_iter,
        eps: options.eps,
        toler_chol: options.toler_chol,
    }
}

/// Checks the data and options; returns the number of events.
fn validate(data: &CoxData<'_>, options: &CoxOptions) -> Result<usize, StatsError> {
    let n = data.time.len();
    check_inputs(data.time, data.event)?;
    if data.covariates.is_empty() {
        return Err(StatsError::NoCovariates);
    }
    for c in &data.covariates {
        c.check(n, "covariate")?;
    }
    if let Some((codes, levels)) = data.strata {
        check_codes("stratum", codes, n, levels)?;
    }
    if !(options.conf_level > 0.0 && options.conf_level < 1.0) {
        return Err(StatsError::InvalidArgument(format!(
            "confidence level {} is not in (0, 1)",
            options.conf_level
        )));
    }
    let events = data.event.iter().filter(|&&e| e).count();
    if events == 0 {
        return Err(StatsError::NoEvents("the Cox model".into()));
    }
    Ok(events)
}

/// Coefficients, tests and warnings from the iteration on covariates scaled by `scale`.
fn finish(
    data: &CoxData<'_>,
    options: &CoxOptions,
    fit: newton::Newton,
    scale: &[f64],
    events: usize,
) -> CoxFit {
    let n = data.time.len();
    let p = scale.len();
    // Back to the covariates' own scale.
    let coef: Vec<f64> = (0..p).map(|i| fit.beta[i] * scale[i]).collect();
    let u: Vec<f64> = (0..p).map(|i| fit.u[i] / scale[i]).collect();
    let mut var = vec![0.0f64; p * p];
    for i in 0..p {
        for j in 0..p {
            var[i * p + j] = fit.var.get(i, j) * scale[i] * scale[j];
        }
    }
    let redundant: Vec<bool> = if fit.rank < p as i64 {
        (0..p).map(|i| var[i * p + i] == 0.0).collect()
    } else {
        vec![false; p]
    };

    let mut warnings = Vec::new();
    let names: Vec<&str> = data.covariates.iter().map(|c| c.name).collect();
    if options.max_iter > 1 {
        if !fit.converged {
            warnings.push("Ran out of iterations and did not converge".to_string());
        } else {
            let infinite: Vec<String> = (0..p)
                .filter(|&k| {
                    let step = (0..p).map(|i| u[i] * var[i * p + k]).sum::<f64>().abs();
                    !u[k].is_finite()
                        || (step > options.eps && step > options.toler_inf * coef[k].abs())
                })
                .map(|k| format!("{} ({})", k + 1, names[k]))
                .collect();
            if !infinite.is_empty() {
                warnings.push(format!(
                    "Loglik converged before variable {}; coefficient may be infinite",
                    infinite.join(", ")
                ));
            }
        }
    }
    for (k, _) in redundant.iter().enumerate().filter(|(_, r)| **r) {
        warnings.push(format!(
            "covariate `{}` is collinear with the others; its coefficient is not estimated \
             (NA in R)",
            names[k]
        ));
    }

    let z_crit = z_for_level(options.conf_level);
    let coefficients = (0..p)
        .map(|k| {
            if redundant[k] {
                return CoxCoefficient {
                    name: names[k].to_string(),
                    coef: None,
                    se: None,
                    z: None,
                    p: None,
                    hr: None,
                    hr_lower: None,
                    hr_upper: None,
                    robust_se: None,
                };
            }
            let b = coef[k];
            let se = var[k * p + k].sqrt();
            let z = b / se;
            CoxCoefficient {
                name: names[k].to_string(),
                coef: Some(b),
                se: Some(se),
                z: Some(z),
                p: Some(normal_two_sided_p(z)),
                hr: Some(b.exp()),
                hr_lower: Some((b - z_crit * se).exp()),
                hr_upper: Some((b + z_crit * se).exp()),
                robust_se: None,
            }
        })
        .collect();

    let df = redundant.iter().filter(|r| !**r).count();
    let wald = wald_statistic(&coef, &var, &redundant, options.toler_chol);
    CoxFit {
        n,
        events,
        ties: options.ties,
        iterations: fit.iterations,
        converged: fit.converged,
        coefficients,
        loglik_null: fit.loglik_null,
        loglik: fit.loglik,
        lr_test: ChiSquareTest::new(2.0 * (fit.loglik - fit.loglik_null), df),
        wald_test: ChiSquareTest::new(wald, df),
        score_test: ChiSquareTest::new(fit.score_test, df),
        warnings,
        variance: var,
        robust_score_test: None,
    }
}

/// R's `coxph.wtest`: `b' V^-1 b` over the estimated coefficients, via `cholesky2`.
fn wald_statistic(coef: &[f64], var: &[f64], redundant: &[bool], toler: f64) -> f64 {
    let p = coef.len();
    let keep: Vec<usize> = (0..p).filter(|&k| !redundant[k]).collect();
    let m = keep.len();
    let mut v = Square::zeros(m);
    for (a, &i) in keep.iter().enumerate() {
        for (b, &j) in keep.iter().enumerate() {
            v.set(a, b, var[i * p + j]);
        }
    }
    let b: Vec<f64> = keep.iter().map(|&k| coef[k]).collect();
    cholesky2(&mut v, toler);
    let mut solved = b.clone();
    chsolve2(&v, &mut solved);
    b.iter().zip(&solved).map(|(x, y)| x * y).sum()
}

/// Centres and scales the covariates as `coxfit6` (indicator-like columns whose values are
/// all in {-1, 0, 1} are left alone, R's `nocenter`) and lays the rows out in processing
/// order. Returns the layout and the per-covariate scale factors.
fn prepare(data: &CoxData<'_>) -> (RiskSets, Vec<f64>) {
    let n = data.time.len();
    let p = data.covariates.len();
    let mut mean = vec![0.0f64; p];
    let mut scale = vec![1.0f64; p];
    for (k, c) in data.covariates.iter().enumerate() {
        if c.values.iter().all(|&v| v == 0.0 || v == 1.0 || v == -1.0) {
            continue;
        }
        let m = c.values.iter().sum::<f64>() / n as f64;
        let abs_dev: f64 = c.values.iter().map(|v| (v - m).abs()).sum();
        mean[k] = m;
        scale[k] = if abs_dev > 0.0 {
            n as f64 / abs_dev
        } else {
            1.0
        };
    }

    let timeline = Timeline::build(data.time, data.strata);
    // Each observation's row in processing order: strata in turn, tied-time groups from the
    // latest, censored rows before events inside a group. Rows are then scattered there in
    // one sequential pass over the columns (one random write per row instead of one random
    // read per covariate).
    let mut dest = vec![0u32; n];
    let mut groups = Vec::new();
    let mut row = 0usize;
    for range in &timeline.strata {
        let mut new_stratum = true;
        let mut end = range.end;
        while end > range.start {
            let t = timeline.time[end - 1];
            let mut start = end - 1;
            while start > range.start && timeline.time[start - 1] == t {
                start -= 1;
            }
            let members = &timeline.order[start..end];
            let n_dead = members.iter().filter(|&&i| data.event[i as usize]).count();
            let (mut censored, mut dead) = (row, row + members.len() - n_dead);
            for &i in members {
                let slot = if data.event[i as usize] {
                    &mut dead
                } else {
                    &mut censored
                };
                dest[i as usize] = *slot as u32;
                *slot += 1;
            }
            row += members.len();
            groups.push(TieGroup {
                end: row as u32,
                n_dead: n_dead as u32,
                new_stratum,
            });
            new_stratum = false;
            end = start;
        }
    }
    let mut x = vec![0.0f64; n * p];
    for (i, &d) in dest.iter().enumerate() {
        let target = &mut x[d as usize * p..d as usize * p + p];
        for (k, c) in data.covariates.iter().enumerate() {
            target[k] = (c.values[i] - mean[k]) * scale[k];
        }
    }
    (RiskSets { p, x, groups }, scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(time: &[f64], event: &[bool], x: &[f64], ties: Ties) -> CoxFit {
        let data = CoxData {
            time,
            event,
            covariates: vec![Covariate {
                name: "x",
                values: x,
            }],
            strata: None,
        };
        cox_ph(
            &data,
            &CoxOptions {
                ties,
                ..CoxOptions::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn therneau_grambsch_closed_form() {
        let time = [9.0, 1.0, 1.0, 6.0, 6.0, 8.0];
        let event = [true, true, false, true, true, false];
        let x = [0.0, 1.0, 1.0, 1.0, 0.0, 0.0];
        // Breslow: beta = log(1.5 + sqrt(33) / 2).
        let b = one(&time, &event, &x, Ties::Breslow);
        let exact = (1.5 + 33f64.sqrt() / 2.0).ln();
        assert!((b.coefficients[0].coef.unwrap() - exact).abs() < 1e-9);
        let e = one(&time, &event, &x, Ties::Efron);
        assert!((e.coefficients[0].coef.unwrap() - 1.676857).abs() < 1e-6);
    }

    #[test]
    fn collinear_covariate_is_not_estimated() {
        let time = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let event = [true, false, true, true, false, true, true, true];
        let a = [0.5, 1.2, 3.3, 0.1, 2.2, 1.9, 0.7, 2.8];
        let b: Vec<f64> = a.iter().map(|v| 2.0 * v + 1.0).collect();
        let data = CoxData {
            time: &time,
            event: &event,
            covariates: vec![
                Covariate {
                    name: "a",
                    values: &a,
                },
                Covariate {
                    name: "b",
                    values: &b,
                },
            ],
            strata: None,
        };
        let fit = cox_ph(&data, &CoxOptions::default()).unwrap();
        assert!(fit.coefficients[0].coef.is_some());
        assert_eq!(fit.coefficients[1].coef, None);
        assert_eq!(fit.lr_test.df, 1);
        assert!(fit.warnings.iter().any(|w| w.contains("collinear")));
    }

    #[test]
    fn separated_data_warn_infinite() {
        // Everyone with x = 1 dies before everyone with x = 0.
        let time = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let event = [true, true, true, true, true, true];
        let x = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0];
        let fit = one(&time, &event, &x, Ties::Efron);
        assert!(
            fit.warnings.iter().any(|w| w.contains("may be infinite")),
            "{:?}",
            fit.warnings
        );
    }

    #[test]
    fn no_events_is_an_error() {
        let data = CoxData {
            time: &[1.0, 2.0],
            event: &[false, false],
            covariates: vec![Covariate {
                name: "x",
                values: &[0.0, 1.0],
            }],
            strata: None,
        };
        assert!(matches!(
            cox_ph(&data, &CoxOptions::default()),
            Err(StatsError::NoEvents(_))
        ));
    }
}
