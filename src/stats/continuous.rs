//! Continuous endpoints: the difference in means by ANCOVA (as R's
//! `lm(y ~ group + covariates + strata)`) and Welch's two-sample t-test (as `t.test(x, y)`),
//! with t-distribution p-values and intervals.
//!
//! The least-squares fit centres every column but the intercept before forming the normal
//! equations, so the conditioning is that of the centred design (the group contrasts and
//! slopes are unchanged by centring; the intercept is not reported). Student's t tail is the
//! regularised incomplete beta function, `P(|T| > t) = I_{ν/(ν+t²)}(ν/2, 1/2)`, computed
//! directly (never `1 - cdf`); its quantile is found by bisection to full precision.
//!
//! What it must never do: no I/O, no panics on data.

use serde::Serialize;
use statrs::function::beta::checked_beta_reg;

use super::linalg::{chinv2, cholesky2, chsolve2, Square};
use super::{StatsError, COX_TOLER_CHOL};

/// Two-sided tail `P(|T| > |t|)` of Student's t with `df` degrees of freedom (R's
/// `2 * pt(-abs(t), df)`).
///
/// ```
/// let p = rrct::stats::continuous::t_two_sided_p(2.0, 10.0);
/// assert!((p - 0.073388034770740).abs() < 1e-13);
/// ```
pub fn t_two_sided_p(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return 0.0;
    }
    let x = df / (df + t * t);
    checked_beta_reg(df / 2.0, 0.5, x).unwrap_or(f64::NAN)
}

/// The two-sided critical value `qt(1 - (1 - level)/2, df)`.
///
/// ```
/// let q = rrct::stats::continuous::t_quantile_two_sided(0.95, 10.0);
/// assert!((q - 2.228138851986273).abs() < 1e-12);
/// ```
pub fn t_quantile_two_sided(level: f64, df: f64) -> f64 {
    if !(level > 0.0 && level < 1.0 && df > 0.0) {
        return f64::NAN;
    }
    let alpha = 1.0 - level;
    // P(|T| > t) decreases in t: bracket, then bisect to the last bit.
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while t_two_sided_p(hi, df) > alpha {
        lo = hi;
        hi *= 2.0;
        if hi > 1e300 {
            return f64::INFINITY;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if t_two_sided_p(mid, df) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// A difference in means with its t-based inference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeanDifference {
    /// The compared level.
    pub group: String,
    /// The reference level.
    pub reference: String,
    /// Difference in (adjusted) means, group minus reference.
    pub difference: f64,
    /// Standard error.
    pub se: f64,
    /// t statistic.
    pub t: f64,
    /// Degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Lower confidence limit.
    pub lower: f64,
    /// Upper confidence limit.
    pub upper: f64,
}

/// One adjustment term's slope.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slope {
    /// Column name.
    pub name: String,
    /// Coefficient.
    pub coef: f64,
    /// Standard error.
    pub se: f64,
    /// t statistic.
    pub t: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// An ANCOVA fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ancova {
    /// Observations.
    pub n: usize,
    /// Residual degrees of freedom.
    pub df: f64,
    /// Residual standard error.
    pub sigma: f64,
    /// Each non-reference group against the reference.
    pub differences: Vec<MeanDifference>,
    /// Adjustment terms (numeric covariates, then stratum indicators).
    pub adjustments: Vec<Slope>,
}

/// The data of an ANCOVA: outcome, group codes `0..levels` with names (the first level is the
/// reference), numeric covariates and factor adjustments (each expanded to indicators of its
/// non-first levels).
#[derive(Debug, Clone)]
pub struct AncovaData<'a> {
    /// The outcome.
    pub outcome: &'a [f64],
    /// Group codes and level names.
    pub group: (&'a [usize], &'a [String]),
    /// Numeric covariates.
    pub covariates: Vec<super::Covariate<'a>>,
    /// Factors (strata): name, codes, level names.
    pub factors: Vec<(&'a str, &'a [usize], &'a [String])>,
}

/// Fits `lm(outcome ~ group + covariates + factors)` and reports the group contrasts.
///
/// ```
/// use rrct::stats::continuous::{ancova, AncovaData};
/// let y = [1.0, 2.0, 3.0, 5.0, 6.0, 7.0];
/// let g = [0, 0, 0, 1, 1, 1];
/// let levels = ["a".to_string(), "b".to_string()];
/// let fit = ancova(&AncovaData { outcome: &y, group: (&g, &levels), covariates: vec![], factors: vec![] }, 0.95).unwrap();
/// assert!((fit.differences[0].difference - 4.0).abs() < 1e-12);
/// assert_eq!(fit.df, 4.0);
/// ```
pub fn ancova(data: &AncovaData<'_>, conf_level: f64) -> Result<Ancova, StatsError> {
    let n = data.outcome.len();
    if n == 0 {
        return Err(StatsError::NoObservations);
    }
    if let Some(index) = data.outcome.iter().position(|v| !v.is_finite()) {
        return Err(StatsError::InvalidCovariate {
            name: "outcome".into(),
            index,
            value: data.outcome[index],
        });
    }
    if !(conf_level > 0.0 && conf_level < 1.0) {
        return Err(StatsError::InvalidArgument(format!(
            "confidence level {conf_level} is not in (0, 1)"
        )));
    }
    let (codes, levels) = data.group;
    super::timeline::check_codes("group", codes, n, levels.len())?;
    if levels.len() < 2 {
        return Err(StatsError::TooFewGroups {
            what: "the difference in means".into(),
            found: levels.len(),
        });
    }
    // Columns after the intercept: group indicators, covariates, factor indicators.
    let mut columns: Vec<(String, Vec<f64>)> = Vec::new();
    for (l, name) in levels.iter().enumerate().skip(1) {
        columns.push((
            name.clone(),
            codes.iter().map(|&c| f64::from(u8::from(c == l))).collect(),
        ));
    }
    for c in &data.covariates {
        c.check(n, "covariate")?;
        columns.push((c.name.to_string(), c.values.to_vec()));
    }
    for (name, fcodes, flevels) in &data.factors {
        super::timeline::check_codes(name, fcodes, n, flevels.len())?;
        for (l, level) in flevels.iter().enumerate().skip(1) {
            columns.push((
                format!("{name}{level}"),
                fcodes
                    .iter()
                    .map(|&c| f64::from(u8::from(c == l)))
                    .collect(),
            ));
        }
    }
    let p = columns.len() + 1;
    if n <= p {
        return Err(StatsError::InvalidArgument(format!(
            "{n} observations cannot estimate {p} coefficients"
        )));
    }
    // Centre the columns (and the outcome): the intercept then separates out exactly.
    let ybar = data.outcome.iter().sum::<f64>() / n as f64;
    let yc: Vec<f64> = data.outcome.iter().map(|v| v - ybar).collect();
    for (_, v) in &mut columns {
        let m = v.iter().sum::<f64>() / n as f64;
        v.iter_mut().for_each(|x| *x -= m);
    }
    let k = columns.len();
    let mut xtx = Square::zeros(k);
    let mut xty = vec![0.0f64; k];
    for a in 0..k {
        for b in 0..=a {
            let s: f64 = columns[a]
                .1
                .iter()
                .zip(&columns[b].1)
                .map(|(x, y)| x * y)
                .sum();
            xtx.set(a, b, s);
            xtx.set(b, a, s);
        }
        xty[a] = columns[a].1.iter().zip(&yc).map(|(x, y)| x * y).sum();
    }
    let mut chol = xtx.clone();
    let rank = cholesky2(&mut chol, COX_TOLER_CHOL);
    if rank < k as i64 {
        return Err(StatsError::InvalidArgument(
            "the model matrix is rank deficient (a group, covariate or stratum is constant or \
             collinear)"
                .into(),
        ));
    }
    let mut beta = xty;
    chsolve2(&chol, &mut beta);
    let rss: f64 = (0..n)
        .map(|i| {
            let fitted: f64 = (0..k).map(|a| columns[a].1[i] * beta[a]).sum();
            (yc[i] - fitted).powi(2)
        })
        .sum();
    let df = (n - p) as f64;
    let sigma2 = rss / df;
    chinv2(&mut chol);
    let q = t_quantile_two_sided(conf_level, df);
    let se = |a: usize| (sigma2 * chol.get(a, a)).sqrt();
    let differences = (1..levels.len())
        .map(|l| {
            let a = l - 1;
            let (d, s) = (beta[a], se(a));
            MeanDifference {
                group: levels[l].clone(),
                reference: levels[0].clone(),
                difference: d,
                se: s,
                t: d / s,
                df,
                p: t_two_sided_p(d / s, df),
                lower: d - q * s,
                upper: d + q * s,
            }
        })
        .collect();
    let adjustments = (levels.len() - 1..k)
        .map(|a| Slope {
            name: columns[a].0.clone(),
            coef: beta[a],
            se: se(a),
            t: beta[a] / se(a),
            p: t_two_sided_p(beta[a] / se(a), df),
        })
        .collect();
    Ok(Ancova {
        n,
        df,
        sigma: sigma2.sqrt(),
        differences,
        adjustments,
    })
}

/// Welch's two-sample t-test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WelchTest {
    /// Size of the compared group.
    pub n: usize,
    /// Size of the reference group.
    pub n_reference: usize,
    /// Mean of the compared group.
    pub mean: f64,
    /// Mean of the reference group.
    pub mean_reference: f64,
    /// Difference, t, Welch–Satterthwaite df, p and interval.
    #[serde(flatten)]
    pub difference: MeanDifference,
}

/// `t.test(x, reference)`: Welch's test of `x` against `reference`.
///
/// ```
/// use rrct::stats::continuous::welch_t_test;
/// let t = welch_t_test(&[5.0, 6.0, 7.0], &[1.0, 2.0, 3.0], 0.95).unwrap();
/// assert!((t.difference.difference - 4.0).abs() < 1e-12);
/// assert!((t.difference.df - 4.0).abs() < 1e-12);
/// ```
pub fn welch_t_test(
    x: &[f64],
    reference: &[f64],
    conf_level: f64,
) -> Result<WelchTest, StatsError> {
    for (what, v) in [("group", x), ("reference", reference)] {
        if v.len() < 2 {
            return Err(StatsError::InvalidArgument(format!(
                "the {what} needs at least 2 observations, found {}",
                v.len()
            )));
        }
        if let Some(index) = v.iter().position(|a| !a.is_finite()) {
            return Err(StatsError::InvalidCovariate {
                name: what.into(),
                index,
                value: v[index],
            });
        }
    }
    if !(conf_level > 0.0 && conf_level < 1.0) {
        return Err(StatsError::InvalidArgument(format!(
            "confidence level {conf_level} is not in (0, 1)"
        )));
    }
    let stats = |v: &[f64]| {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (n - 1.0);
        (n, m, var)
    };
    let (nx, mx, vx) = stats(x);
    let (ny, my, vy) = stats(reference);
    let sx = vx / nx;
    let sy = vy / ny;
    let se2 = sx + sy;
    if se2 == 0.0 {
        return Err(StatsError::InvalidArgument(
            "both groups are constant: the data are essentially constant".into(),
        ));
    }
    let se = se2.sqrt();
    let df = se2 * se2 / (sx * sx / (nx - 1.0) + sy * sy / (ny - 1.0));
    let d = mx - my;
    let t = d / se;
    let q = t_quantile_two_sided(conf_level, df);
    Ok(WelchTest {
        n: x.len(),
        n_reference: reference.len(),
        mean: mx,
        mean_reference: my,
        difference: MeanDifference {
            group: String::new(),
            reference: String::new(),
            difference: d,
            se,
            t,
            df,
            p: t_two_sided_p(t, df),
            lower: d - q * se,
            upper: d + q * se,
        },
    })
}
