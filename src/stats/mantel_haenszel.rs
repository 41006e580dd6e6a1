//! A binary endpoint in two arms across strata: Mantel–Haenszel odds ratio (as R's
//! `mantelhaen.test`, with the Robins–Breslow–Greenland interval), risk ratio and risk
//! difference (Greenland–Robins 1985 variances), the Cochran–Mantel–Haenszel test, and the
//! conditional maximum-likelihood odds ratio with its exact interval and the exact test (as
//! `mantelhaen.test(exact = TRUE)`, or `fisher.test` for one stratum).
//!
//! The exact interval is where R finds it: `uniroot` (Brent's `zeroin` with R's default
//! tolerance `eps^0.25`) on the mean and tail of the conditional distribution of the treated
//! events, the convolution over strata of noncentral hypergeometric distributions. R's
//! tolerance leaves its limits about 1e-4 from the exact roots, so matching R means taking the
//! same Brent steps, which [`zeroin`] does.
//!
//! Each stratum is `(a, n1, c, n0)`: events `a` of `n1` treated, events `c` of `n0` controls.
//! Ratios are treated over control, differences treated minus control.

use serde::Serialize;

use super::dist::{chisq_sf, z_for_level};
use super::{StatsError, FISHER_RELATIVE_ERROR};

/// One stratum's 2×2 table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stratum2x2 {
    /// Events among the treated.
    pub a: u64,
    /// Treated.
    pub n1: u64,
    /// Events among controls.
    pub c: u64,
    /// Controls.
    pub n0: u64,
}

/// An estimate with its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// The estimate; `None` when undefined (a zero denominator).
    pub estimate: Option<f64>,
    /// Lower limit.
    pub lower: Option<f64>,
    /// Upper limit.
    pub upper: Option<f64>,
}

/// The stratified analysis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MantelHaenszel {
    /// Strata used.
    pub strata: usize,
    /// Mantel–Haenszel odds ratio with the Robins–Breslow–Greenland interval.
    pub odds_ratio: Estimate,
    /// Mantel–Haenszel risk ratio with the Greenland–Robins interval (log scale).
    pub risk_ratio: Estimate,
    /// Mantel–Haenszel risk difference with the Greenland–Robins interval.
    pub risk_difference: Estimate,
    /// Cochran–Mantel–Haenszel chi-square with continuity correction (R's default).
    pub cmh_chisq: Option<f64>,
    /// Its p-value (1 df).
    pub cmh_p: Option<f64>,
    /// Conditional maximum-likelihood odds ratio with the exact interval.
    pub exact_odds_ratio: Estimate,
    /// Exact conditional test, two-sided.
    pub exact_p: f64,
}

/// Analyses the strata at confidence level `conf_level`.
///
/// ```
/// use rrct::stats::mantel_haenszel::{mantel_haenszel, Stratum2x2};
/// let s = [Stratum2x2 { a: 10, n1: 20, c: 5, n0: 20 }, Stratum2x2 { a: 8, n1: 30, c: 4, n0: 30 }];
/// let mh = mantel_haenszel(&s, 0.95).unwrap();
/// assert!((mh.risk_ratio.estimate.unwrap() - 2.0).abs() < 1e-12);
/// ```
pub fn mantel_haenszel(
    strata: &[Stratum2x2],
    conf_level: f64,
) -> Result<MantelHaenszel, StatsError> {
    if strata.is_empty() {
        return Err(StatsError::NoObservations);
    }
    for (k, s) in strata.iter().enumerate() {
        if s.a > s.n1 || s.c > s.n0 {
            return Err(StatsError::InvalidTable(format!(
                "stratum {}: more events than subjects",
                k + 1
            )));
        }
        if s.n1 + s.n0 < 2 {
            return Err(StatsError::InvalidTable(format!(
                "stratum {}: sample size in each stratum must be > 1",
                k + 1
            )));
        }
    }
    if !(conf_level > 0.0 && conf_level < 1.0) {
        return Err(StatsError::InvalidArgument(format!(
            "confidence level {conf_level} is not in (0, 1)"
        )));
    }
    let z = z_for_level(conf_level);
    let finite = |v: f64| if v.is_finite() { Some(v) } else { None };

    // Odds ratio: R's mantelhaen.test.
    let (mut s_diag, mut s_offd) = (0.0f64, 0.0f64);
    let (mut p1, mut p2, mut p3) = (0.0f64, 0.0f64, 0.0f64);
    // Risk ratio and difference sums.
    let (mut rr_num, mut rr_den, mut rr_var) = (0.0f64, 0.0f64, 0.0f64);
    let (mut rd_num, mut rd_w, mut rd_var) = (0.0f64, 0.0f64, 0.0f64);
    // CMH.
    let (mut delta, mut cmh_var) = (0.0f64, 0.0f64);
    for s in strata {
        let (a, n1, c, n0) = (s.a as f64, s.n1 as f64, s.c as f64, s.n0 as f64);
        let (b, d) = (n1 - a, n0 - c);
        let t = n1 + n0;
        s_diag += a * d / t;
        s_offd += b * c / t;
        p1 += (a + d) * a * d / (t * t);
        p2 += ((a + d) * b * c + (b + c) * a * d) / (t * t);
        p3 += (b + c) * b * c / (t * t);
        rr_num += a * n0 / t;
        rr_den += c * n1 / t;
        rr_var += (n1 * n0 * (a + c) - a * c * t) / (t * t);
        rd_num += (a * n0 - c * n1) / t;
        let w = n1 * n0 / t;
        rd_w += w;
        if n1 > 1.0 && n0 > 1.0 {
            rd_var += w * w * (a * b / (n1 * n1 * (n1 - 1.0)) + c * d / (n0 * n0 * (n0 - 1.0)));
        } else {
            rd_var = f64::NAN;
        }
        let m = a + c;
        delta += a - m * n1 / t;
        cmh_var += m * n1 * (t - m) * (t - n1) / (t * t * (t - 1.0));
    }
    let or = s_diag / s_offd;
    let or_sd = (p1 / (2.0 * s_diag * s_diag)
        + p2 / (2.0 * s_diag * s_offd)
        + p3 / (2.0 * s_offd * s_offd))
        .sqrt();
    let odds_ratio = Estimate {
        estimate: finite(or),
        lower: finite(or * (-z * or_sd).exp()),
        upper: finite(or * (z * or_sd).exp()),
    };
    let rr = rr_num / rr_den;
    let rr_sd = (rr_var / (rr_num * rr_den)).sqrt();
    let risk_ratio = Estimate {
        estimate: finite(rr),
        lower: finite((rr.ln() - z * rr_sd).exp()).filter(|_| rr > 0.0),
        upper: finite((rr.ln() + z * rr_sd).exp()).filter(|_| rr > 0.0),
    };
    let rd = rd_num / rd_w;
    let rd_sd = rd_var.sqrt() / rd_w;
    let risk_difference = Estimate {
        estimate: finite(rd),
        lower: finite(rd - z * rd_sd),
        upper: finite(rd + z * rd_sd),
    };
    let yates = if delta.abs() >= 0.5 { 0.5 } else { 0.0 };
    let cmh = (delta.abs() - yates).powi(2) / cmh_var;
    let (cmh_chisq, cmh_p) = if cmh.is_finite() {
        (Some(cmh), Some(chisq_sf(cmh, 1.0)))
    } else {
        (None, None)
    };
    let exact = Conditional::new(strata);
    let alpha = (1.0 - conf_level) / 2.0;
    Ok(MantelHaenszel {
        strata: strata.len(),
        odds_ratio,
        risk_ratio,
        risk_difference,
        cmh_chisq,
        cmh_p,
        exact_odds_ratio: Estimate {
            estimate: finite(exact.mle()),
            lower: finite(exact.ncp_lower(alpha)),
            upper: finite(exact.ncp_upper(alpha)),
        },
        exact_p: exact.p_two_sided(),
    })
}

/// The conditional distribution of the total treated events given all margins.
struct Conditional {
    lo: f64,
    hi: f64,
    observed: f64,
    /// Density at `lo..=hi` under odds ratio 1.
    dc: Vec<f64>,
    log_dc: Vec<f64>,
}

impl Conditional {
    fn new(strata: &[Stratum2x2]) -> Self {
        let mut dc = vec![1.0f64];
        let mut lo = 0u64;
        let mut observed = 0u64;
        for s in strata {
            // R's layout: m = events, n = non-events, t = treated.
            let m = s.a + s.c;
            let n = s.n1 + s.n0 - m;
            let t = s.n1;
            let l = t.saturating_sub(n);
            let h = t.min(m);
            let d = hypergeometric(m, n, t, l, h);
            let mut conv = vec![0.0f64; dc.len() + d.len() - 1];
            for (i, x) in dc.iter().enumerate() {
                for (j, y) in d.iter().enumerate() {
                    conv[i + j] += x * y;
                }
            }
            let total: f64 = conv.iter().sum();
            conv.iter_mut().for_each(|v| *v /= total);
            dc = conv;
            lo += l;
            observed += s.a;
        }
        let log_dc = dc.iter().map(|v| v.ln()).collect();
        let hi = lo + dc.len() as u64 - 1;
        Conditional {
            lo: lo as f64,
            hi: hi as f64,
            observed: observed as f64,
            dc,
            log_dc,
        }
    }

    fn density(&self, ncp: f64) -> Vec<f64> {
        if ncp == 1.0 {
            return self.dc.clone();
        }
        let l = ncp.ln();
        let d: Vec<f64> = self
            .log_dc
            .iter()
            .enumerate()
            .map(|(i, v)| v + l * (self.lo + i as f64))
            .collect();
        let max = d.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = d.iter().map(|v| (v - max).exp()).collect();
        let s: f64 = e.iter().sum();
        e.into_iter().map(|v| v / s).collect()
    }

    fn mean(&self, ncp: f64) -> f64 {
        if ncp == 0.0 {
            return self.lo;
        }
        if ncp == f64::INFINITY {
            return self.hi;
        }
        self.density(ncp)
            .iter()
            .enumerate()
            .map(|(i, d)| (self.lo + i as f64) * d)
            .sum()
    }

    /// `P(X <= q)` or, upper, `P(X >= q)`.
    fn tail(&self, q: f64, ncp: f64, upper: bool) -> f64 {
        if ncp == 0.0 {
            return f64::from(u8::from(if upper { q <= self.lo } else { q >= self.lo }));
        }
        if ncp == f64::INFINITY {
            return f64::from(u8::from(if upper { q <= self.hi } else { q >= self.hi }));
        }
        self.density(ncp)
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let x = self.lo + *i as f64;
                if upper {
                    x >= q
                } else {
                    x <= q
                }
            })
            .map(|(_, d)| d)
            .sum()
    }

    fn p_two_sided(&self) -> f64 {
        let at = self.dc[(self.observed - self.lo) as usize] * FISHER_RELATIVE_ERROR;
        self.dc.iter().filter(|&&d| d <= at).sum::<f64>().min(1.0)
    }

    fn mle(&self) -> f64 {
        let x = self.observed;
        if x == self.lo {
            return 0.0;
        }
        if x == self.hi {
            return f64::INFINITY;
        }
        let mu = self.mean(1.0);
        if mu > x {
            uniroot(|t| self.mean(t) - x, 0.0, 1.0)
        } else if mu < x {
            1.0 / uniroot(|t| self.mean(1.0 / t) - x, f64::EPSILON, 1.0)
        } else {
            1.0
        }
    }

    fn ncp_upper(&self, alpha: f64) -> f64 {
        let x = self.observed;
        if x == self.hi {
            return f64::INFINITY;
        }
        let p = self.tail(x, 1.0, false);
        if p < alpha {
            uniroot(|t| self.tail(x, t, false) - alpha, 0.0, 1.0)
        } else if p > alpha {
            1.0 / uniroot(|t| self.tail(x, 1.0 / t, false) - alpha, f64::EPSILON, 1.0)
        } else {
            1.0
        }
    }

    fn ncp_lower(&self, alpha: f64) -> f64 {
        let x = self.observed;
        if x == self.lo {
            return 0.0;
        }
        let p = self.tail(x, 1.0, true);
        if p > alpha {
            uniroot(|t| self.tail(x, t, true) - alpha, 0.0, 1.0)
        } else if p < alpha {
            1.0 / uniroot(|t| self.tail(x, 1.0 / t, true) - alpha, f64::EPSILON, 1.0)
        } else {
            1.0
        }
    }
}

/// Hypergeometric probabilities of `l..=h` (R's `dhyper(x, m, n, k)`), by the ratio recurrence
/// from the mode, normalised.
fn hypergeometric(m: u64, n: u64, k: u64, l: u64, h: u64) -> Vec<f64> {
    let (mf, nf, kf) = (m as f64, n as f64, k as f64);
    let ratio = |v: f64| (mf - v) * (kf - v) / ((v + 1.0) * (nf - kf + v + 1.0));
    let mode = ((((kf + 1.0) * (mf + 1.0)) / (mf + nf + 2.0)).floor() as u64).clamp(l, h);
    let mut d = vec![0.0f64; (h - l + 1) as usize];
    d[(mode - l) as usize] = 1.0;
    let mut v = mode;
    while v < h {
        d[(v + 1 - l) as usize] = d[(v - l) as usize] * ratio(v as f64);
        v += 1;
    }
    let mut v = mode;
    while v > l {
        d[(v - 1 - l) as usize] = d[(v - l) as usize] / ratio((v - 1) as f64);
        v -= 1;
    }
    let s: f64 = d.iter().sum();
    d.into_iter().map(|x| x / s).collect()
}

/// R's `uniroot(f, c(lower, upper))` with its default `tol = eps^0.25` and `maxiter = 1000`.
fn uniroot(f: impl Fn(f64) -> f64, lower: f64, upper: f64) -> f64 {
    let fa = f(lower);
    let fb = f(upper);
    zeroin(&f, lower, upper, fa, fb, f64::EPSILON.powf(0.25), 1000)
}

/// Brent's root finder as R's `R_zeroin2`: the same steps, so the same root to rounding.
fn zeroin(
    f: &impl Fn(f64) -> f64,
    ax: f64,
    bx: f64,
    fa0: f64,
    fb0: f64,
    tol: f64,
    max_iter: usize,
) -> f64 {
    let (mut a, mut b) = (ax, bx);
    let (mut fa, mut fb) = (fa0, fb0);
    let (mut c, mut fc) = (a, fa);
    if fa == 0.0 {
        return a;
    }
    if fb == 0.0 {
        return b;
    }
    for _ in 0..=max_iter {
        let prev_step = b - a;
        if fc.abs() < fb.abs() {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        let tol_act = 2.0 * f64::EPSILON * b.abs() + tol / 2.0;
        let mut new_step = (c - b) / 2.0;
        if new_step.abs() <= tol_act || fb == 0.0 {
            return b;
        }
        if prev_step.abs() >= tol_act && fa.abs() > fb.abs() {
            let cb = c - b;
            let (mut p, mut q);
            if a == c {
                let t1 = fb / fa;
                p = cb * t1;
                q = 1.0 - t1;
            } else {
                let qq = fa / fc;
                let t1 = fb / fc;
                let t2 = fb / fa;
                p = t2 * (cb * qq * (qq - t1) - (b - a) * (t1 - 1.0));
                q = (qq - 1.0) * (t1 - 1.0) * (t2 - 1.0);
            }
            if p > 0.0 {
                q = -q;
            } else {
                p = -p;
            }
            if p < (0.75 * cb * q - (tol_act * q).abs() / 2.0) && p < (prev_step * q / 2.0).abs() {
                new_step = p / q;
            }
        }
        if new_step.abs() < tol_act {
            new_step = if new_step > 0.0 { tol_act } else { -tol_act };
        }
        a = b;
        fa = fb;
        b += new_step;
        fb = f(b);
        if (fb > 0.0 && fc > 0.0) || (fb < 0.0 && fc < 0.0) {
            c = a;
            fc = fa;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_margin_stratum_is_an_error() {
        let s = [Stratum2x2 {
            a: 1,
            n1: 1,
            c: 0,
            n0: 0,
        }];
        assert!(mantel_haenszel(&s, 0.95).is_err());
    }

    #[test]
    fn zeroin_finds_a_root() {
        let r = uniroot(|x| x * x - 2.0, 0.0, 2.0);
        assert!((r - 2f64.sqrt()).abs() < 1e-4);
    }
}
