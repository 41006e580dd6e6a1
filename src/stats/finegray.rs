//! The Fine–Gray proportional subdistribution hazards model, as `cmprsk::crr` (one censoring
//! group, time-fixed covariates).
//!
//! `crr` weights a subject who failed from a competing cause before time `u` by
//! `G(u-) / G(t_i-)`, with `G` the Kaplan–Meier estimate of the censoring distribution, and
//! maximises the weighted (Breslow) partial likelihood by Newton–Raphson with backtracking;
//! its variance is the sandwich `I^-1 (Σ (η_i + ψ_i)(η_i + ψ_i)') I^-1`, where `η_i` is the
//! subject's score process and `ψ_i` the correction for the estimated censoring distribution.
//!
//! `cmprsk`'s Fortran evaluates each of these by nested loops over subjects, `O(n²)`; every sum
//! here is instead a running (forward or backward) sum over the sorted data, so each
//! likelihood evaluation and the variance cost `O(n p²)` — the same quantities, added in a
//! different order (agreement to rounding error, not bit for bit). The iteration path is
//! `crr`'s own: start at 0, the same Newton step, the same backtracking (`stepf = 0.5`, Armijo
//! constant `1e-4`, at most 20 halvings) and the same stopping rule
//! `max |score_j| max(|b_j|, 1) < max(|loglik|, 1) gtol`, `gtol = 1e-6`, at most 10 iterations.
//!
//! The loops keep index form: rows, covariates and time groups index several parallel arrays.
#![allow(clippy::needless_range_loop)]

use serde::Serialize;

use super::competing::check_competing;
use super::dist::{normal_two_sided_p, z_for_level};
use super::linalg::{lu_solve, Square};
use super::timeline::Timeline;
use super::{ChiSquareTest, StatsError, DEFAULT_CONF_LEVEL};

/// `crr`'s default `gtol`.
pub const CRR_GTOL: f64 = 1e-6;
/// `crr`'s default `maxiter`.
pub const CRR_MAX_ITER: usize = 10;

/// One coefficient of a Fine–Gray model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FineGrayCoefficient {
    /// Covariate name.
    pub name: String,
    /// Log subdistribution hazard ratio.
    pub coef: f64,
    /// Its sandwich standard error.
    pub se: f64,
    /// Wald z.
    pub z: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Subdistribution hazard ratio.
    pub shr: f64,
    /// Lower Wald limit.
    pub shr_lower: f64,
    /// Upper Wald limit.
    pub shr_upper: f64,
}

/// A fitted Fine–Gray model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FineGrayFit {
    /// Observations.
    pub n: usize,
    /// Events of the cause of interest.
    pub events: usize,
    /// Events of competing causes.
    pub competing_events: usize,
    /// Newton iterations.
    pub iterations: usize,
    /// False when `crr` would report `converged = FALSE`.
    pub converged: bool,
    /// Coefficients in covariate order.
    pub coefficients: Vec<FineGrayCoefficient>,
    /// Pseudo log-likelihood at 0.
    pub loglik_null: f64,
    /// Pseudo log-likelihood at the estimate.
    pub loglik: f64,
    /// Pseudo likelihood-ratio test.
    pub lr_test: ChiSquareTest,
}

/// The data: `status` 0 censored, `cause` the event of interest, any other code a competing
/// event.
#[derive(Debug, Clone)]
pub struct FineGrayData<'a> {
    /// Times, finite and non-negative.
    pub time: &'a [f64],
    /// Status codes `0..=causes`.
    pub status: &'a [usize],
    /// Number of causes.
    pub causes: usize,
    /// The cause of interest (1-based).
    pub cause: usize,
    /// Covariate columns (at least one).
    pub covariates: Vec<super::Covariate<'a>>,
}

/// The sorted data with centred covariates and the censoring weights.
struct Prepared {
    n: usize,
    p: usize,
    /// 0 censored, 1 the cause, 2 a competing cause.
    kind: Vec<u8>,
    /// Row-major `n × p`, centred.
    x: Vec<f64>,
    /// `G(t_i-)`.
    g_minus: Vec<f64>,
    /// Row ranges of distinct times.
    groups: Vec<(usize, usize)>,
}

/// Fits `crr(time, status, cov1, failcode = cause, cencode = 0)`.
///
/// ```
/// use rrct::stats::finegray::{fine_gray, FineGrayData};
/// use rrct::stats::Covariate;
/// let time = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
/// let status = [1, 2, 1, 0, 1, 1, 2, 0, 1, 0];
/// let x = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0];
/// let data = FineGrayData {
///     time: &time, status: &status, causes: 2, cause: 1,
///     covariates: vec![Covariate { name: "x", values: &x }],
/// };
/// let fit = fine_gray(&data, rrct::stats::DEFAULT_CONF_LEVEL).unwrap();
/// assert!(fit.converged);
/// assert_eq!(fit.events, 5);
/// ```
pub fn fine_gray(data: &FineGrayData<'_>, conf_level: f64) -> Result<FineGrayFit, StatsError> {
    let n = check_competing(data.time, data.status, data.causes)?;
    if data.cause == 0 || data.cause > data.causes {
        return Err(StatsError::InvalidArgument(format!(
            "cause {} is not one of 1..={}",
            data.cause, data.causes
        )));
    }
    if data.covariates.is_empty() {
        return Err(StatsError::NoCovariates);
    }
    for c in &data.covariates {
        c.check(n, "covariate")?;
    }
    if !(conf_level > 0.0 && conf_level < 1.0) {
        return Err(StatsError::InvalidArgument(format!(
            "confidence level {conf_level} is not in (0, 1)"
        )));
    }
    let events = data.status.iter().filter(|&&s| s == data.cause).count();
    if events == 0 {
        return Err(StatsError::NoEvents("the Fine-Gray model".into()));
    }
    let competing_events = data
        .status
        .iter()
        .filter(|&&s| s != 0 && s != data.cause)
        .count();
    let prep = prepare(data);
    let p = prep.p;

    let mut b = vec![0.0f64; p];
    let mut eval = prep.evaluate(&b, true);
    let loglik_null = -eval.lik;
    let mut converged = false;
    let mut iterations = 0usize;
    for ll in 0..=CRR_MAX_ITER {
        let crit = (0..p)
            .map(|j| eval.score[j].abs() * b[j].abs().max(1.0))
            .fold(0.0, f64::max);
        if crit < eval.lik.abs().max(1.0) * CRR_GTOL {
            converged = true;
            break;
        }
        if ll == CRR_MAX_ITER {
            break;
        }
        let mut h = Square::zeros(p);
        for i in 0..p {
            for j in 0..p {
                h.set(i, j, eval.info[i * p + j]);
            }
        }
        let Some(step) = lu_solve(h, eval.score.clone()) else {
            break;
        };
        let mut sc: Vec<f64> = step.iter().map(|v| -v).collect();
        let slope: f64 = sc.iter().zip(&eval.score).map(|(a, b)| a * b).sum();
        let mut bn: Vec<f64> = b.iter().zip(&sc).map(|(a, s)| a + s).collect();
        let mut fbn = prep.evaluate(&bn, false).lik;
        let mut halvings = 0;
        let mut slope_now = slope;
        while fbn.is_nan() || fbn > eval.lik + 1e-4 * slope_now {
            halvings += 1;
            sc.iter_mut().for_each(|v| *v *= 0.5);
            slope_now *= 0.5;
            bn = b.iter().zip(&sc).map(|(a, s)| a + s).collect();
            fbn = prep.evaluate(&bn, false).lik;
            if halvings > 20 {
                break;
            }
        }
        if halvings > 20 {
            break;
        }
        b = bn;
        iterations = ll + 1;
        eval = prep.evaluate(&b, true);
    }
    let loglik = -eval.lik;

    let mut info = Square::zeros(p);
    for i in 0..p {
        for j in 0..p {
            info.set(i, j, eval.info[i * p + j]);
        }
    }
    let meat = prep.sandwich_meat(&b);
    // var = H^-1 meat H^-1, column by column.
    let mut hinv = vec![0.0f64; p * p];
    for j in 0..p {
        let mut e = vec![0.0; p];
        e[j] = 1.0;
        let col = lu_solve(info.clone(), e).ok_or(StatsError::SingularVariance)?;
        for i in 0..p {
            hinv[i * p + j] = col[i];
        }
    }
    let mut var = vec![0.0f64; p * p];
    for i in 0..p {
        for j in 0..p {
            let mut s = 0.0;
            for k in 0..p {
                for l in 0..p {
                    s += hinv[i * p + k] * meat[k * p + l] * hinv[j * p + l];
                }
            }
            var[i * p + j] = s;
        }
    }
    let z_crit = z_for_level(conf_level);
    let coefficients = data
        .covariates
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let coef = b[k];
            let se = var[k * p + k].sqrt();
            let z = coef / se;
            FineGrayCoefficient {
                name: c.name.to_string(),
                coef,
                se,
                z,
                p: normal_two_sided_p(z),
                shr: coef.exp(),
                shr_lower: (coef - z_crit * se).exp(),
                shr_upper: (coef + z_crit * se).exp(),
            }
        })
        .collect();
    Ok(FineGrayFit {
        n,
        events,
        competing_events,
        iterations,
        converged,
        coefficients,
        loglik_null,
        loglik,
        lr_test: ChiSquareTest::new(-2.0 * (loglik_null - loglik), p),
    })
}

/// Fine–Gray at the default 95% level.
pub fn fine_gray_default(data: &FineGrayData<'_>) -> Result<FineGrayFit, StatsError> {
    fine_gray(data, DEFAULT_CONF_LEVEL)
}

fn prepare(data: &FineGrayData<'_>) -> Prepared {
    let n = data.time.len();
    let p = data.covariates.len();
    let timeline = Timeline::build(data.time, None);
    let order: Vec<usize> = timeline.order.iter().map(|&i| i as usize).collect();
    // cmprsk uses the raw times (no near-tie fix) for the model...
    let time: Vec<f64> = order.iter().map(|&i| data.time[i]).collect();
    let kind: Vec<u8> = order
        .iter()
        .map(|&i| match data.status[i] {
            0 => 0,
            s if s == data.cause => 1,
            _ => 2,
        })
        .collect();
    let means: Vec<f64> = data
        .covariates
        .iter()
        .map(|c| c.values.iter().sum::<f64>() / n as f64)
        .collect();
    let mut x = vec![0.0f64; n * p];
    for (r, &i) in order.iter().enumerate() {
        for (k, c) in data.covariates.iter().enumerate() {
            x[r * p + k] = c.values[i] - means[k];
        }
    }
    let mut groups = Vec::new();
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && time[end] == time[start] {
            end += 1;
        }
        groups.push((start, end));
        start = end;
    }
    // ... and survfit's Kaplan-Meier of the censoring times (which does apply it) for G.
    let mut g_minus = vec![1.0f64; n];
    let mut g = 1.0f64;
    let mut at_risk = n;
    let mut k = 0;
    while k < n {
        let t = timeline.time[k];
        let mut end = k;
        let mut censored = 0usize;
        while end < n && timeline.time[end] == t {
            if kind[end] == 0 {
                censored += 1;
            }
            end += 1;
        }
        for v in &mut g_minus[k..end] {
            *v = g;
        }
        g *= (at_risk - censored) as f64 / at_risk as f64;
        at_risk -= end - k;
        k = end;
    }
    Prepared {
        n,
        p,
        kind,
        x,
        g_minus,
        groups,
    }
}

/// Negated log pseudo-likelihood (what `crr` minimises), its gradient and Hessian.
struct Evaluation {
    lik: f64,
    score: Vec<f64>,
    info: Vec<f64>,
}

/// Risk-set sums at each distinct time of a cause-1 event.
struct FailureTime {
    group: usize,
    d: f64,
    g: f64,
    s0: f64,
    mean: Vec<f64>,
}

impl Prepared {
    fn eta(&self, b: &[f64], r: usize) -> f64 {
        let p = self.p;
        self.x[r * p..r * p + p]
            .iter()
            .zip(b)
            .map(|(a, c)| a * c)
            .sum()
    }

    /// Sums over each failure time's risk set: subjects still event-free (weight `e^η`) and
    /// those failed from a competing cause earlier (weight `e^η G(u-)/G(t-)`). With
    /// `second` the `Σ w x x'` sums too.
    fn risk_sums(&self, b: &[f64], second: bool) -> (Vec<FailureTime>, Vec<f64>) {
        let p = self.p;
        let n = self.n;
        let risk: Vec<f64> = (0..n).map(|r| self.eta(b, r).exp()).collect();
        // Backward sums of those with t >= u, group by group.
        let (mut r0, mut r1, mut r2) = (0.0f64, vec![0.0f64; p], vec![0.0f64; p * p]);
        let mut back = Vec::with_capacity(self.groups.len());
        for &(s, e) in self.groups.iter().rev() {
            for r in s..e {
                let w = risk[r];
                let xr = &self.x[r * p..r * p + p];
                r0 += w;
                for i in 0..p {
                    r1[i] += w * xr[i];
                    if second {
                        for j in 0..=i {
                            r2[i * p + j] += w * xr[i] * xr[j];
                        }
                    }
                }
            }
            let failures = self.kind[s..e].iter().filter(|&&k| k == 1).count();
            if failures > 0 {
                back.push((
                    s,
                    failures,
                    r0,
                    r1.clone(),
                    if second { r2.clone() } else { Vec::new() },
                ));
            }
        }
        back.reverse();
        // Forward sums of competing failures before u.
        let (mut c0, mut c1, mut c2) = (0.0f64, vec![0.0f64; p], vec![0.0f64; p * p]);
        let mut out = Vec::with_capacity(back.len());
        let mut second_sums = Vec::with_capacity(if second { back.len() * p * p } else { 0 });
        let mut gi = 0usize;
        for (s, failures, r0, r1, r2) in back {
            while self.groups[gi].0 < s {
                let (gs, ge) = self.groups[gi];
                for r in gs..ge {
                    if self.kind[r] == 2 {
                        let w = risk[r] / self.g_minus[r];
                        let xr = &self.x[r * p..r * p + p];
                        c0 += w;
                        for i in 0..p {
                            c1[i] += w * xr[i];
                            if second {
                                for j in 0..=i {
                                    c2[i * p + j] += w * xr[i] * xr[j];
                                }
                            }
                        }
                    }
                }
                gi += 1;
            }
            let g = self.g_minus[s];
            let s0 = r0 + g * c0;
            let mean: Vec<f64> = (0..p).map(|i| (r1[i] + g * c1[i]) / s0).collect();
            if second {
                for i in 0..p {
                    for j in 0..p {
                        let (a, bb) = if j <= i { (i, j) } else { (j, i) };
                        second_sums.push((r2[a * p + bb] + g * c2[a * p + bb]) / s0);
                    }
                }
            }
            out.push(FailureTime {
                group: gi,
                d: failures as f64,
                g,
                s0,
                mean,
            });
        }
        (out, second_sums)
    }

    fn evaluate(&self, b: &[f64], derivatives: bool) -> Evaluation {
        let p = self.p;
        let (failures, second) = self.risk_sums(b, derivatives);
        let mut lik = 0.0f64;
        let mut score = vec![0.0f64; p];
        let mut info = vec![0.0f64; p * p];
        for (k, f) in failures.iter().enumerate() {
            let (s, e) = self.groups[f.group];
            for r in s..e {
                if self.kind[r] == 1 {
                    lik -= self.eta(b, r);
                    for i in 0..p {
                        score[i] -= self.x[r * p + i];
                    }
                }
            }
            lik += f.d * f.s0.ln();
            if derivatives {
                for i in 0..p {
                    score[i] += f.d * f.mean[i];
                    for j in 0..p {
                        info[i * p + j] +=
                            f.d * (second[k * p * p + i * p + j] - f.mean[i] * f.mean[j]);
                    }
                }
            }
        }
        Evaluation { lik, score, info }
    }

    /// `Σ_i (η_i + ψ_i)(η_i + ψ_i)'`, `crrvv`'s `v2`.
    fn sandwich_meat(&self, b: &[f64]) -> Vec<f64> {
        let p = self.p;
        let n = self.n;
        let (failures, _) = self.risk_sums(b, false);
        let risk: Vec<f64> = (0..n).map(|r| self.eta(b, r).exp()).collect();
        let nf = failures.len();
        // Per failure time: d/S0, d m/S0, d G/S0, d G m/S0.
        let term = |f: &FailureTime| f.d / f.s0;
        // Cumulative from the start (u_k <= t) and from the end (u_k >= t).
        let mut a0 = vec![0.0f64; nf + 1];
        let mut a1 = vec![0.0f64; (nf + 1) * p];
        for (k, f) in failures.iter().enumerate() {
            a0[k + 1] = a0[k] + term(f);
            for i in 0..p {
                a1[(k + 1) * p + i] = a1[k * p + i] + term(f) * f.mean[i];
            }
        }
        let mut q0 = vec![0.0f64; nf + 1];
        let mut q1 = vec![0.0f64; (nf + 1) * p];
        for k in (0..nf).rev() {
            let f = &failures[k];
            q0[k] = q0[k + 1] + term(f) * f.g;
            for i in 0..p {
                q1[k * p + i] = q1[(k + 1) * p + i] + term(f) * f.g * f.mean[i];
            }
        }
        // Index of the first failure time at or after each distinct time group.
        let mut meat = vec![0.0f64; p * p];
        let mut psi_cum = vec![0.0f64; p];
        let (mut c0, mut c1) = (0.0f64, vec![0.0f64; p]);
        let mut fk = 0usize; // failures with group index < current group
        let mut st = vec![0.0f64; p];
        let mut qu = vec![0.0f64; p];
        let mut at_risk = n as f64;
        for (gidx, &(s, e)) in self.groups.iter().enumerate() {
            while fk < nf && failures[fk].group < gidx {
                fk += 1;
            }
            let here = fk < nf && failures[fk].group == gidx;
            // Failure times <= t: 0..fk (+1 if one is here); > t: the rest.
            let le = if here { fk + 1 } else { fk };
            let censored = self.kind[s..e].iter().filter(|&&k| k == 0).count();
            if censored > 0 {
                // q(t): failure times >= t (from fk), competing failures before t.
                for i in 0..p {
                    qu[i] = c1[i] * q0[fk] - c0 * q1[fk * p + i];
                }
                for i in 0..p {
                    psi_cum[i] -= censored as f64 * qu[i] / (at_risk * at_risk);
                }
            }
            for r in s..e {
                let xr = &self.x[r * p..r * p + p];
                let w = risk[r];
                for i in 0..p {
                    // dΛ part over failure times u <= t.
                    st[i] = -w * (xr[i] * a0[le] - a1[le * p + i]);
                }
                match self.kind[r] {
                    1 => {
                        let m = &failures[fk].mean;
                        for i in 0..p {
                            st[i] += xr[i] - m[i];
                        }
                    }
                    2 => {
                        // Failure times after t, weighted back to this subject's time.
                        let scale = w / self.g_minus[r];
                        for i in 0..p {
                            st[i] -= scale * (xr[i] * q0[le] - q1[le * p + i]);
                        }
                    }
                    _ => {}
                }
                for i in 0..p {
                    st[i] += psi_cum[i];
                    if self.kind[r] == 0 {
                        st[i] += qu[i] / at_risk;
                    }
                }
                for i in 0..p {
                    for j in 0..p {
                        meat[i * p + j] += st[i] * st[j];
                    }
                }
            }
            // Competing failures at this time count from the next time on.
            for r in s..e {
                if self.kind[r] == 2 {
                    let wgt = risk[r] / self.g_minus[r];
                    c0 += wgt;
                    for i in 0..p {
                        c1[i] += wgt * self.x[r * p + i];
                    }
                }
            }
            at_risk -= (e - s) as f64;
        }
        meat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Covariate;

    #[test]
    fn without_competing_events_it_is_a_breslow_cox_model() {
        let time = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let status = [1, 1, 0, 1, 0, 1, 1, 0];
        let x = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0];
        let fg = fine_gray_default(&FineGrayData {
            time: &time,
            status: &status,
            causes: 1,
            cause: 1,
            covariates: vec![Covariate {
                name: "x",
                values: &x,
            }],
        })
        .unwrap();
        let event: Vec<bool> = status.iter().map(|&s| s == 1).collect();
        let cox = crate::stats::cox_ph(
            &crate::stats::CoxData {
                time: &time,
                event: &event,
                covariates: vec![Covariate {
                    name: "x",
                    values: &x,
                }],
                strata: None,
            },
            &crate::stats::CoxOptions {
                ties: crate::stats::Ties::Breslow,
                ..Default::default()
            },
        )
        .unwrap();
        let b = cox.coefficients[0].coef.unwrap();
        assert!((fg.coefficients[0].coef - b).abs() < 1e-5, "{fg:?} {b}");
        assert!((fg.loglik - cox.loglik).abs() < 1e-8);
    }
}
