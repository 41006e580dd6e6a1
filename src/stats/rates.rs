//! Count endpoints: rate ratios from Poisson regression (as R's `glm(family = poisson)`) and
//! negative binomial regression (as `MASS::glm.nb`), log link, with `log(exposure)` as offset.
//!
//! The fits follow R's own iteration paths so that estimates agree to rounding error rather
//! than to a convergence tolerance: `glm.fit`'s IRLS (Poisson start `mu = y + 0.1`, stop when
//! `|dev - dev_old| / (|dev| + 0.1) < 1e-8`, at most 25 iterations, the covariance from the
//! weights of the last iteration), and `glm.nb`'s alternation of IRLS at fixed `theta` with
//! `theta.ml`'s Newton steps for `theta` (stop when `|ΔLm|/d1 + |Δθ|/d2 <= 1e-8`). Standard
//! errors use dispersion 1, as `summary` does for both families; intervals are Wald intervals on
//! the log scale (`confint.default`).
//!
//! What it must never do: no I/O, no panics on data.

use serde::Serialize;
use statrs::function::gamma::{digamma, ln_gamma};

use super::dist::{normal_two_sided_p, z_for_level};
use super::linalg::{chinv2, cholesky2, chsolve2, Square};
use super::{StatsError, COX_TOLER_CHOL};

/// `glm.control()$epsilon`.
pub const GLM_EPSILON: f64 = 1e-8;
/// `glm.control()$maxit`.
pub const GLM_MAX_ITER: usize = 25;

/// The distribution of the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CountModel {
    /// Poisson.
    Poisson,
    /// Negative binomial with `theta` estimated by maximum likelihood.
    Negbin,
}

impl CountModel {
    /// Parses `poisson` or `negbin`.
    ///
    /// ```
    /// use rrct::stats::rates::CountModel;
    /// assert_eq!(CountModel::parse("negbin"), Some(CountModel::Negbin));
    /// assert_eq!(CountModel::parse("quasipoisson"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "poisson" => Some(Self::Poisson),
            "negbin" => Some(Self::Negbin),
            _ => None,
        }
    }
}

/// The data: the counts, the model matrix columns (the intercept is added) and an optional
/// exposure (follow-up time) whose log is the offset.
#[derive(Debug, Clone)]
pub struct CountData<'a> {
    /// Non-negative counts.
    pub count: &'a [f64],
    /// Named columns of the model matrix (without the intercept).
    pub columns: Vec<super::Covariate<'a>>,
    /// Exposure per observation, positive.
    pub exposure: Option<&'a [f64]>,
}

/// One coefficient.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateCoefficient {
    /// Column name (`(Intercept)` first).
    pub name: String,
    /// Log rate ratio.
    pub coef: f64,
    /// Standard error.
    pub se: f64,
    /// Wald z.
    pub z: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Rate ratio `exp(coef)`.
    pub rate_ratio: f64,
    /// Lower Wald limit.
    pub lower: f64,
    /// Upper Wald limit.
    pub upper: f64,
}

/// A fitted count model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateFit {
    /// The model.
    pub model: CountModel,
    /// Observations.
    pub n: usize,
    /// Coefficients, intercept first.
    pub coefficients: Vec<RateCoefficient>,
    /// Negative binomial `theta` (`None` for Poisson).
    pub theta: Option<f64>,
    /// Its standard error (`theta.ml`'s `SE`).
    pub theta_se: Option<f64>,
    /// Twice the log-likelihood at the estimate.
    pub two_loglik: f64,
    /// AIC (`theta` counted as a parameter for the negative binomial).
    pub aic: f64,
    /// Residual deviance (Poisson only; R's negative binomial deviance is at the previous
    /// alternation's theta).
    pub deviance: Option<f64>,
    /// False when an iteration limit was reached.
    pub converged: bool,
    /// R's warnings.
    pub warnings: Vec<String>,
}

/// Fits the model.
///
/// ```
/// use rrct::stats::rates::{fit_rates, CountData, CountModel};
/// use rrct::stats::Covariate;
/// let count = [0.0, 2.0, 1.0, 4.0, 3.0, 6.0];
/// let arm = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0];
/// let data = CountData { count: &count, columns: vec![Covariate { name: "arm", values: &arm }], exposure: None };
/// let fit = fit_rates(&data, CountModel::Poisson, 0.95).unwrap();
/// // Rates 1 and 13/3: the rate ratio is exactly 13/3.
/// assert!((fit.coefficients[1].rate_ratio - 13.0 / 3.0).abs() < 1e-9);
/// ```
pub fn fit_rates(
    data: &CountData<'_>,
    model: CountModel,
    conf_level: f64,
) -> Result<RateFit, StatsError> {
    let n = data.count.len();
    if n == 0 {
        return Err(StatsError::NoObservations);
    }
    if let Some(index) = data
        .count
        .iter()
        .position(|y| !(y.is_finite() && *y >= 0.0))
    {
        return Err(StatsError::InvalidArgument(format!(
            "observation {index}: count {} is not a finite number >= 0",
            data.count[index]
        )));
    }
    for c in &data.columns {
        c.check(n, "column")?;
    }
    let offset: Vec<f64> = match data.exposure {
        None => vec![0.0; n],
        Some(e) => {
            if e.len() != n {
                return Err(StatsError::LengthMismatch {
                    what: "exposure".into(),
                    expected: n,
                    found: e.len(),
                });
            }
            if let Some(index) = e.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(StatsError::InvalidArgument(format!(
                    "observation {index}: exposure {} is not a finite number > 0",
                    e[index]
                )));
            }
            e.iter().map(|v| v.ln()).collect()
        }
    };
    if !(conf_level > 0.0 && conf_level < 1.0) {
        return Err(StatsError::InvalidArgument(format!(
            "confidence level {conf_level} is not in (0, 1)"
        )));
    }
    let p = data.columns.len() + 1;
    if n <= p {
        return Err(StatsError::InvalidArgument(format!(
            "{n} observations cannot estimate {p} coefficients"
        )));
    }
    let mut x = vec![0.0f64; n * p];
    for i in 0..n {
        x[i * p] = 1.0;
        for (k, c) in data.columns.iter().enumerate() {
            x[i * p + k + 1] = c.values[i];
        }
    }
    let design = Design {
        n,
        p,
        x,
        y: data.count,
        offset,
    };
    let mut warnings = Vec::new();
    let mut converged = true;

    let start: Vec<f64> = data.count.iter().map(|y| (y + 0.1).ln()).collect();
    let mut fit = design.irls(Family::Poisson, &start)?;
    converged &= fit.converged;
    let (theta, theta_se, two_loglik, aic, deviance) = match model {
        CountModel::Poisson => {
            let ll: f64 = (0..n)
                .map(|i| {
                    let (y, mu) = (design.y[i], fit.mu[i]);
                    let ylogmu = if y == 0.0 { 0.0 } else { y * mu.ln() };
                    ylogmu - mu - ln_gamma(y + 1.0)
                })
                .sum();
            (
                None,
                None,
                2.0 * ll,
                -2.0 * ll + 2.0 * p as f64,
                Some(fit.deviance),
            )
        }
        CountModel::Negbin => {
            let weight_sum = n as f64;
            let mut mu = fit.mu.clone();
            let mut th = theta_ml(design.y, &mu, weight_sum, GLM_MAX_ITER, &mut warnings);
            let d1 = (2.0 * ((n - p) as f64).max(1.0)).sqrt();
            let d2 = 1.0;
            let mut del = 1.0f64;
            let mut lm = nb_loglik(th.0, &mu, design.y);
            let mut lm0 = lm + 2.0 * d1;
            let mut iter = 0usize;
            loop {
                iter += 1;
                if iter > GLM_MAX_ITER || (lm0 - lm).abs() / d1 + del.abs() / d2 <= GLM_EPSILON {
                    break;
                }
                let eta: Vec<f64> = mu.iter().map(|m| m.ln()).collect();
                fit = design.irls(Family::NegativeBinomial(th.0), &eta)?;
                converged &= fit.converged;
                let t0 = th.0;
                th = theta_ml(design.y, &mu, weight_sum, GLM_MAX_ITER, &mut warnings);
                mu.clone_from(&fit.mu);
                del = t0 - th.0;
                lm0 = lm;
                lm = nb_loglik(th.0, &mu, design.y);
            }
            if iter > GLM_MAX_ITER {
                warnings.push("alternation limit reached".into());
                converged = false;
            }
            (
                Some(th.0),
                Some(th.1),
                2.0 * lm,
                -2.0 * lm + 2.0 * p as f64 + 2.0,
                None,
            )
        }
    };
    let z_crit = z_for_level(conf_level);
    let mut names = vec!["(Intercept)".to_string()];
    names.extend(data.columns.iter().map(|c| c.name.to_string()));
    let coefficients = names
        .into_iter()
        .enumerate()
        .map(|(k, name)| {
            let coef = fit.beta[k];
            let se = fit.cov[k * p + k].sqrt();
            let z = coef / se;
            RateCoefficient {
                name,
                coef,
                se,
                z,
                p: normal_two_sided_p(z),
                rate_ratio: coef.exp(),
                lower: (coef - z_crit * se).exp(),
                upper: (coef + z_crit * se).exp(),
            }
        })
        .collect();
    Ok(RateFit {
        model,
        n,
        coefficients,
        theta,
        theta_se,
        two_loglik,
        aic,
        deviance,
        converged,
        warnings,
    })
}

#[derive(Debug, Clone, Copy)]
enum Family {
    Poisson,
    NegativeBinomial(f64),
}

impl Family {
    fn variance(self, mu: f64) -> f64 {
        match self {
            Family::Poisson => mu,
            Family::NegativeBinomial(th) => mu + mu * mu / th,
        }
    }

    fn deviance(self, y: &[f64], mu: &[f64]) -> f64 {
        y.iter()
            .zip(mu)
            .map(|(&y, &m)| match self {
                Family::Poisson => {
                    if y > 0.0 {
                        2.0 * (y * (y / m).ln() - (y - m))
                    } else {
                        2.0 * m
                    }
                }
                Family::NegativeBinomial(th) => {
                    2.0 * (y * (y.max(1.0) / m).ln() - (y + th) * ((y + th) / (m + th)).ln())
                }
            })
            .sum()
    }
}

struct Design<'a> {
    n: usize,
    p: usize,
    x: Vec<f64>,
    y: &'a [f64],
    offset: Vec<f64>,
}

struct Irls {
    beta: Vec<f64>,
    mu: Vec<f64>,
    deviance: f64,
    /// `(X'WX)^-1` with the weights of the last iteration.
    cov: Vec<f64>,
    converged: bool,
}

impl Design<'_> {
    /// `glm.fit` from `eta` (log link).
    fn irls(&self, family: Family, eta_start: &[f64]) -> Result<Irls, StatsError> {
        let (n, p) = (self.n, self.p);
        let mut eta = eta_start.to_vec();
        let mut mu: Vec<f64> = eta.iter().map(|e| e.exp()).collect();
        let mut dev_old = family.deviance(self.y, &mu);
        let mut beta = vec![0.0f64; p];
        let mut xtwx = Square::zeros(p);
        for _ in 0..GLM_MAX_ITER {
            // Working response and weights: d mu / d eta = mu for the log link.
            let mut xtwz = vec![0.0f64; p];
            xtwx.a.iter_mut().for_each(|v| *v = 0.0);
            for i in 0..n {
                let m = mu[i];
                let z = eta[i] - self.offset[i] + (self.y[i] - m) / m;
                let w = m * m / family.variance(m);
                let xi = &self.x[i * p..i * p + p];
                for a in 0..p {
                    xtwz[a] += w * xi[a] * z;
                    for b in 0..=a {
                        xtwx.a[a * p + b] += w * xi[a] * xi[b];
                    }
                }
            }
            for a in 0..p {
                for b in 0..a {
                    xtwx.a[b * p + a] = xtwx.a[a * p + b];
                }
            }
            let mut chol = xtwx.clone();
            let rank = cholesky2(&mut chol, COX_TOLER_CHOL);
            if rank < p as i64 {
                return Err(StatsError::InvalidArgument(
                    "the model matrix is rank deficient (a column is constant or collinear)".into(),
                ));
            }
            chsolve2(&chol, &mut xtwz);
            beta = xtwz;
            for i in 0..n {
                let xi = &self.x[i * p..i * p + p];
                eta[i] = xi.iter().zip(&beta).map(|(a, b)| a * b).sum::<f64>() + self.offset[i];
                mu[i] = eta[i].exp();
            }
            let dev = family.deviance(self.y, &mu);
            if !dev.is_finite() {
                return Err(StatsError::InvalidArgument(
                    "the fit diverged (non-finite deviance)".into(),
                ));
            }
            if (dev - dev_old).abs() / (dev.abs() + 0.1) < GLM_EPSILON {
                chinv2(&mut chol);
                return Ok(Irls {
                    beta,
                    mu,
                    deviance: dev,
                    cov: chol.a,
                    converged: true,
                });
            }
            dev_old = dev;
        }
        let mut chol = xtwx;
        cholesky2(&mut chol, COX_TOLER_CHOL);
        chinv2(&mut chol);
        let deviance = family.deviance(self.y, &mu);
        Ok(Irls {
            beta,
            mu,
            deviance,
            cov: chol.a,
            converged: false,
        })
    }
}

/// `MASS::loglik` inside `glm.nb`.
fn nb_loglik(th: f64, mu: &[f64], y: &[f64]) -> f64 {
    let lg_th = ln_gamma(th);
    let table = SmallCounts::of(y).map(|max| {
        (0..=max)
            .map(|k| ln_gamma(th + k as f64) - ln_gamma(k as f64 + 1.0))
            .collect::<Vec<f64>>()
    });
    y.iter()
        .zip(mu)
        .map(|(&y, &m)| {
            let ym = if y == 0.0 { 0.0 } else { y * m.ln() };
            let lg = match &table {
                Some(t) => t[y as usize],
                None => ln_gamma(th + y) - ln_gamma(y + 1.0),
            };
            lg - lg_th + th * th.ln() + ym - (th + y) * (th + m).ln()
        })
        .sum()
}

/// Counts are usually small whole numbers: the special functions of `theta + y` are then
/// computed once per distinct value and looked up (the same values, summed in the same
/// order), which is most of the negative binomial fit's time otherwise.
struct SmallCounts;

impl SmallCounts {
    /// The largest count when every count is a whole number no larger than the number of
    /// observations (so the table costs no more than one pass).
    fn of(y: &[f64]) -> Option<usize> {
        let max = y.iter().copied().fold(0.0f64, f64::max);
        (max <= y.len().max(64) as f64 && y.iter().all(|v| v.fract() == 0.0))
            .then_some(max as usize)
    }
}

/// `MASS::theta.ml`: Newton's method for theta from `n / Σ (y/mu - 1)²`; returns theta and
/// its standard error.
fn theta_ml(y: &[f64], mu: &[f64], n: f64, limit: usize, warnings: &mut Vec<String>) -> (f64, f64) {
    let mut t0 = n / y
        .iter()
        .zip(mu)
        .map(|(&y, &m)| (y / m - 1.0).powi(2))
        .sum::<f64>();
    let eps = f64::EPSILON.powf(0.25);
    let small = SmallCounts::of(y);
    let mut it = 0usize;
    let mut del = 1.0f64;
    let mut info = f64::NAN;
    loop {
        it += 1;
        if !(it < limit && del.abs() > eps) {
            break;
        }
        t0 = t0.abs();
        let (dg0, tg0, log_t0) = (digamma(t0), trigamma(t0), t0.ln());
        let table = small.map(|max| {
            (0..=max)
                .map(|k| (digamma(t0 + k as f64), trigamma(t0 + k as f64)))
                .collect::<Vec<(f64, f64)>>()
        });
        let (mut score, mut inf) = (0.0f64, 0.0f64);
        for (&y, &m) in y.iter().zip(mu) {
            let (dg, tg) = match &table {
                Some(t) => t[y as usize],
                None => (digamma(t0 + y), trigamma(t0 + y)),
            };
            score += dg - dg0 + log_t0 + 1.0 - (t0 + m).ln() - (y + t0) / (m + t0);
            inf += -tg + tg0 - 1.0 / t0 + 2.0 / (m + t0) - (y + t0) / ((m + t0) * (m + t0));
        }
        info = inf;
        del = score / inf;
        t0 += del;
    }
    if t0 < 0.0 {
        t0 = 0.0;
        warnings.push("estimate truncated at zero".into());
    }
    if it == limit {
        warnings.push("iteration limit reached".into());
    }
    (t0, (1.0 / info).sqrt())
}

/// The trigamma function `ψ'(x)` for `x > 0`: the recurrence `ψ'(x) = ψ'(x + 1) + 1/x²` up to
/// `x >= 12`, then the asymptotic series (error below 1e-17 there).
///
/// ```
/// let t = rrct::stats::rates::trigamma(1.0);
/// assert!((t - std::f64::consts::PI.powi(2) / 6.0).abs() < 1e-14);
/// ```
pub fn trigamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    let mut z = x;
    let mut acc = 0.0f64;
    while z < 12.0 {
        acc += 1.0 / (z * z);
        z += 1.0;
    }
    let r = 1.0 / z;
    let r2 = r * r;
    // 1/z + 1/(2z²) + Σ B_2k / z^(2k+1).
    let series = r
        + 0.5 * r2
        + r * r2
            * (1.0 / 6.0
                - r2 * (1.0 / 30.0
                    - r2 * (1.0 / 42.0
                        - r2 * (1.0 / 30.0 - r2 * (5.0 / 66.0 - r2 * 691.0 / 2730.0)))));
    acc + series
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigamma_values() {
        // R: trigamma(c(0.5, 3.7, 40)).
        let cases = [
            (0.5, 4.934_802_200_544_679),
            (3.7, 0.310_037_857_670_038_3),
            (40.0, 0.025_315_103_841_291_03),
        ];
        for (x, r) in cases {
            assert!(
                ((trigamma(x) - r) / r).abs() < 1e-13,
                "{x}: {}",
                trigamma(x)
            );
        }
    }

    #[test]
    fn bad_exposure_is_an_error() {
        let data = CountData {
            count: &[1.0, 2.0, 3.0],
            columns: vec![],
            exposure: Some(&[1.0, 0.0, 2.0]),
        };
        let err = fit_rates(&data, CountModel::Poisson, 0.95).unwrap_err();
        assert!(err.to_string().contains("observation 1"), "{err}");
    }
}
