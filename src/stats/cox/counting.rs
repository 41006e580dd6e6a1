//! Cox regression on counting-process data — each row at risk on `(start, stop]`, as R's
//! `coxph(Surv(start, stop, event) ~ ...)` for recurrent events and time-varying covariates —
//! and the cluster-robust (sandwich) variance of `coxph(... + cluster(id))`.
//!
//! The fit climbs the same Newton–Raphson path as the right-censored fit ([`super::newton`]);
//! only the risk sets differ: event times are walked from the latest, a row joins when the walk
//! reaches its stop time and leaves when it passes its start time, so a whole evaluation is
//! `O(n p²)` after two sorts.
//!
//! The robust variance is `D'D`, with `D` the per-cluster sums of the dfbeta residuals (score
//! residuals times the model variance), the score residuals as `survival`'s `agscore2`
//! (Efron's weighting of tied events included) — computed from running sums over event times
//! rather than `agscore2`'s loop over every risk set, so in `O(n (p + log n))`. Times are
//! compared exactly (no `aeqSurv` near-tie fix for `(start, stop]` data).

use super::newton;
use super::risk_sets::{add_death_time, add_outer, DeathTime, Derivatives, PartialLikelihood};
use super::{finish, settings, validate, wald_statistic, CoxData, CoxFit, CoxOptions, Ties};
use crate::stats::dist::{normal_two_sided_p, z_for_level};
use crate::stats::linalg::{cholesky2, chsolve2, Square};
use crate::stats::timeline::check_codes;
use crate::stats::{ChiSquareTest, StatsError};

/// What a plain [`CoxData`] cannot say: entry times and clusters.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoxExtras<'a> {
    /// Start of each row's interval (the row is at risk on `(start, time]`).
    pub start: Option<&'a [f64]>,
    /// Cluster codes `0..levels` (a subject's id for recurrent events, a cluster in a
    /// cluster-randomised trial): the variance becomes the robust sandwich.
    pub cluster: Option<(&'a [usize], usize)>,
}

/// Fits a Cox model with optional `(start, stop]` intervals and cluster-robust variance.
///
/// ```
/// use rrct::stats::cox::{cox_ph_extended, CoxData, CoxExtras, CoxOptions, Covariate};
/// // Two subjects with two intervals each (a time-varying covariate), clustered by subject.
/// let start = [0.0, 2.0, 0.0, 3.0, 0.0, 0.0];
/// let stop = [2.0, 5.0, 3.0, 6.0, 4.0, 7.0];
/// let event = [true, false, true, true, false, true];
/// let x = [0.0, 1.0, 0.0, 1.0, 1.0, 0.0];
/// let id = [0, 0, 1, 1, 2, 3];
/// let data = CoxData {
///     time: &stop, event: &event,
///     covariates: vec![Covariate { name: "x", values: &x }], strata: None,
/// };
/// let extras = CoxExtras { start: Some(&start), cluster: Some((&id, 4)) };
/// let fit = cox_ph_extended(&data, &extras, &CoxOptions::default()).unwrap();
/// assert!(fit.coefficients[0].robust_se.is_some());
/// ```
pub fn cox_ph_extended(
    data: &CoxData<'_>,
    extras: &CoxExtras<'_>,
    options: &CoxOptions,
) -> Result<CoxFit, StatsError> {
    let events = validate(data, options)?;
    let n = data.time.len();
    if let Some(start) = extras.start {
        if start.len() != n {
            return Err(StatsError::LengthMismatch {
                what: "start".into(),
                expected: n,
                found: start.len(),
            });
        }
        if let Some(index) = (0..n).find(|&i| !(start[i].is_finite() && start[i] < data.time[i])) {
            return Err(StatsError::InvalidArgument(format!(
                "observation {index}: start {} is not a finite number below the stop time {}",
                start[index], data.time[index]
            )));
        }
    }
    if let Some((codes, levels)) = extras.cluster {
        check_codes("cluster", codes, n, levels)?;
    }
    let ag = Counting::new(data, extras.start);
    let mut fit = match extras.start {
        None => super::cox_ph(data, options)?,
        Some(_) => {
            let p = data.covariates.len();
            let newton = newton::iterate(&ag, &settings(options));
            finish(data, options, newton, &vec![1.0; p], events)
        }
    };
    if let Some((codes, levels)) = extras.cluster {
        robust(&mut fit, &ag, codes, levels, options);
    }
    Ok(fit)
}

/// Replaces the variance by the sandwich and z, p, limits and the Wald test with it.
fn robust(fit: &mut CoxFit, ag: &Counting, cluster: &[usize], levels: usize, options: &CoxOptions) {
    let p = ag.p;
    let beta: Vec<f64> = fit
        .coefficients
        .iter()
        .map(|c| c.coef.unwrap_or(0.0))
        .collect();
    let redundant: Vec<bool> = fit.coefficients.iter().map(|c| c.coef.is_none()).collect();
    let resid = ag.score_residuals(&beta, options.ties);
    let var = &fit.variance;
    let mut d = vec![0.0f64; levels * p];
    for (i, &g) in cluster.iter().enumerate() {
        let r = &resid[i * p..i * p + p];
        for k in 0..p {
            d[g * p + k] += (0..p).map(|j| r[j] * var[j * p + k]).sum::<f64>();
        }
    }
    let mut rvar = vec![0.0f64; p * p];
    for g in 0..levels {
        for a in 0..p {
            for b in 0..p {
                rvar[a * p + b] += d[g * p + a] * d[g * p + b];
            }
        }
    }
    let z_crit = z_for_level(options.conf_level);
    for (k, c) in fit.coefficients.iter_mut().enumerate() {
        let Some(b) = c.coef else { continue };
        let se = rvar[k * p + k].sqrt();
        let z = b / se;
        c.robust_se = Some(se);
        c.z = Some(z);
        c.p = Some(normal_two_sided_p(z));
        c.hr_lower = Some((b - z_crit * se).exp());
        c.hr_upper = Some((b + z_crit * se).exp());
    }
    let df = redundant.iter().filter(|r| !**r).count();
    fit.wald_test = ChiSquareTest::new(
        wald_statistic(&beta, &rvar, &redundant, options.toler_chol),
        df,
    );
    // R's rscore: the score at 0 against the cluster sums of the score residuals at 0.
    let resid0 = ag.score_residuals(&vec![0.0; p], options.ties);
    let mut s = vec![0.0f64; levels * p];
    for (i, &g) in cluster.iter().enumerate() {
        for k in 0..p {
            s[g * p + k] += resid0[i * p + k];
        }
    }
    let keep: Vec<usize> = (0..p).filter(|&k| !redundant[k]).collect();
    let m = keep.len();
    let mut ss = Square::zeros(m);
    let mut u = vec![0.0f64; m];
    for (a, &i) in keep.iter().enumerate() {
        u[a] = (0..levels).map(|g| s[g * p + i]).sum();
        for (b, &j) in keep.iter().enumerate() {
            ss.set(a, b, (0..levels).map(|g| s[g * p + i] * s[g * p + j]).sum());
        }
    }
    cholesky2(&mut ss, options.toler_chol);
    let mut solved = u.clone();
    chsolve2(&ss, &mut solved);
    let rscore: f64 = u.iter().zip(&solved).map(|(a, b)| a * b).sum();
    fit.robust_score_test = Some(ChiSquareTest::new(rscore, df));
    fit.variance = rvar;
}

/// Rows with centred covariates, ordered for the walk over event times.
struct Counting {
    p: usize,
    /// `n × p`, centred, in the caller's row order.
    x: Vec<f64>,
    start: Vec<f64>,
    stop: Vec<f64>,
    event: Vec<bool>,
    /// Per stratum: rows by descending stop, and by descending start.
    strata: Vec<(Vec<u32>, Vec<u32>)>,
}

/// Risk-set sums at one event time, handed to the visitor.
struct AtEvent<'a> {
    stratum: usize,
    time: f64,
    denom: f64,
    a: &'a [f64],
    c: &'a [f64],
    denom2: f64,
    a2: &'a [f64],
    c2: &'a [f64],
    /// Rows with an event at this time.
    deaths: &'a [u32],
}

impl Counting {
    fn new(data: &CoxData<'_>, start: Option<&[f64]>) -> Self {
        let n = data.time.len();
        let p = data.covariates.len();
        let mut x = vec![0.0f64; n * p];
        for (k, c) in data.covariates.iter().enumerate() {
            let mean = c.values.iter().sum::<f64>() / n as f64;
            for i in 0..n {
                x[i * p + k] = c.values[i] - mean;
            }
        }
        let start: Vec<f64> = start.map_or_else(|| vec![f64::NEG_INFINITY; n], <[f64]>::to_vec);
        let levels = data.strata.map_or(1, |(_, l)| l);
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); levels];
        for i in 0..n {
            let s = data.strata.map_or(0, |(codes, _)| codes[i]);
            members[s].push(i as u32);
        }
        let strata = members
            .into_iter()
            .map(|rows| {
                let mut by_stop = rows.clone();
                by_stop.sort_by(|&a, &b| data.time[b as usize].total_cmp(&data.time[a as usize]));
                let mut by_start = rows;
                by_start.sort_by(|&a, &b| start[b as usize].total_cmp(&start[a as usize]));
                (by_stop, by_start)
            })
            .collect();
        Counting {
            p,
            x,
            start,
            stop: data.time.to_vec(),
            event: data.event.to_vec(),
            strata,
        }
    }

    /// Walks every stratum's event times from the latest, keeping the risk-set sums of
    /// `r = exp(x'beta)`, `r x` and `r x x'` (lower triangle).
    fn walk(&self, beta: &[f64], mut visit: impl FnMut(&AtEvent<'_>)) {
        let p = self.p;
        let risk = |i: usize| -> f64 {
            let xi = &self.x[i * p..i * p + p];
            xi.iter().zip(beta).map(|(a, b)| a * b).sum::<f64>().exp()
        };
        let mut a = vec![0.0f64; p];
        let mut c = vec![0.0f64; p * p];
        let mut a2 = vec![0.0f64; p];
        let mut c2 = vec![0.0f64; p * p];
        let mut deaths: Vec<u32> = Vec::new();
        for (stratum, (by_stop, by_start)) in self.strata.iter().enumerate() {
            let mut denom = 0.0f64;
            a.iter_mut().for_each(|v| *v = 0.0);
            c.iter_mut().for_each(|v| *v = 0.0);
            let (mut i_stop, mut i_start) = (0usize, 0usize);
            let mut next = 0usize;
            while next < by_stop.len() {
                // The next event time at or before the rows not yet added.
                let Some(pos) = (next..by_stop.len()).find(|&k| self.event[by_stop[k] as usize])
                else {
                    break;
                };
                let t = self.stop[by_stop[pos] as usize];
                deaths.clear();
                let mut denom2 = 0.0f64;
                a2.iter_mut().for_each(|v| *v = 0.0);
                c2.iter_mut().for_each(|v| *v = 0.0);
                while i_stop < by_stop.len() && self.stop[by_stop[i_stop] as usize] >= t {
                    let i = by_stop[i_stop] as usize;
                    let r = risk(i);
                    let xi = &self.x[i * p..i * p + p];
                    denom += r;
                    add_outer(r, xi, &mut a, &mut c);
                    if self.event[i] && self.stop[i] == t {
                        deaths.push(i as u32);
                        denom2 += r;
                        add_outer(r, xi, &mut a2, &mut c2);
                    }
                    i_stop += 1;
                }
                while i_start < by_start.len() && self.start[by_start[i_start] as usize] >= t {
                    let i = by_start[i_start] as usize;
                    let r = risk(i);
                    let xi = &self.x[i * p..i * p + p];
                    denom -= r;
                    add_outer(-r, xi, &mut a, &mut c);
                    i_start += 1;
                }
                visit(&AtEvent {
                    stratum,
                    time: t,
                    denom,
                    a: &a,
                    c: &c,
                    denom2,
                    a2: &a2,
                    c2: &c2,
                    deaths: &deaths,
                });
                next = i_stop;
            }
        }
    }

    /// `agscore2`: score residuals `n × p` at `beta` (on the covariates' own scale).
    fn score_residuals(&self, beta: &[f64], ties: Ties) -> Vec<f64> {
        let p = self.p;
        let n = self.stop.len();
        let mut resid = vec![0.0f64; n * p];
        // Per stratum, event times ascending with temp1, temp2, mh1, mh2, mh3.
        struct Step {
            time: f64,
            temp1: f64,
            temp2: f64,
            mh: Vec<f64>,
        }
        let mut steps_of_stratum: Vec<Vec<Step>> =
            (0..self.strata.len()).map(|_| Vec::new()).collect();
        self.walk(beta, |e| {
            let d = e.deaths.len() as f64;
            let (mut temp1, mut temp2) = (0.0f64, 0.0f64);
            let mut mh = vec![0.0f64; 3 * p];
            if e.deaths.len() < 2 || ties == Ties::Breslow {
                let hazard = d / e.denom;
                temp1 = hazard;
                temp2 = hazard;
                for i in 0..p {
                    let mean = e.a[i] / e.denom;
                    mh[i] = mean * hazard;
                    mh[p + i] = mean * hazard;
                    mh[2 * p + i] = mean;
                }
            } else {
                for dd in 0..e.deaths.len() {
                    let downwt = dd as f64 / d;
                    let d2 = e.denom - downwt * e.denom2;
                    let hazard = 1.0 / d2;
                    temp1 += hazard;
                    temp2 += (1.0 - downwt) * hazard;
                    for i in 0..p {
                        let mean = (e.a[i] - downwt * e.a2[i]) / d2;
                        mh[i] += mean * hazard;
                        mh[p + i] += mean * (1.0 - downwt) * hazard;
                        mh[2 * p + i] += mean / d;
                    }
                }
            }
            steps_of_stratum[e.stratum].push(Step {
                time: e.time,
                temp1,
                temp2,
                mh,
            });
        });
        for steps in &mut steps_of_stratum {
            steps.reverse();
        }
        for ((by_stop, _), steps) in self.strata.iter().zip(&steps_of_stratum) {
            let m = steps.len();
            let times: Vec<f64> = steps.iter().map(|s| s.time).collect();
            let mut t1 = vec![0.0f64; m + 1];
            let mut m1 = vec![0.0f64; (m + 1) * p];
            for (j, s) in steps.iter().enumerate() {
                t1[j + 1] = t1[j] + s.temp1;
                for i in 0..p {
                    m1[(j + 1) * p + i] = m1[j * p + i] + s.mh[i];
                }
            }
            for &row in by_stop {
                let k = row as usize;
                let xk = &self.x[k * p..k * p + p];
                let r = xk.iter().zip(beta).map(|(a, b)| a * b).sum::<f64>().exp();
                let hi = times.partition_point(|&t| t <= self.stop[k]);
                let lo = times.partition_point(|&t| t <= self.start[k]);
                let out = &mut resid[k * p..k * p + p];
                for i in 0..p {
                    out[i] = -r * (xk[i] * (t1[hi] - t1[lo]) - (m1[hi * p + i] - m1[lo * p + i]));
                }
                if self.event[k] && hi > 0 && times[hi - 1] == self.stop[k] {
                    let s = &steps[hi - 1];
                    for i in 0..p {
                        out[i] += xk[i] - s.mh[2 * p + i] - r * (xk[i] * s.temp2 - s.mh[p + i])
                            + r * (xk[i] * s.temp1 - s.mh[i]);
                    }
                }
            }
        }
        resid
    }
}

impl PartialLikelihood for Counting {
    fn p(&self) -> usize {
        self.p
    }

    fn evaluate(&self, beta: &[f64], ties: Ties, out: &mut Derivatives) {
        let p = self.p;
        let mut loglik = 0.0f64;
        let mut u = vec![0.0f64; p];
        let mut imat = vec![0.0f64; p * p];
        self.walk(beta, |e| {
            for &row in e.deaths {
                let i = row as usize;
                let xi = &self.x[i * p..i * p + p];
                loglik += xi.iter().zip(beta).map(|(a, b)| a * b).sum::<f64>();
                for k in 0..p {
                    u[k] += xi[k];
                }
            }
            add_death_time(
                p,
                &DeathTime {
                    n_dead: e.deaths.len(),
                    denom: e.denom,
                    denom2: e.denom2,
                    a: e.a,
                    c: e.c,
                    a2: e.a2,
                    c2: e.c2,
                },
                ties,
                &mut loglik,
                &mut u,
                &mut imat,
            );
        });
        for i in 0..p {
            for j in 0..i {
                imat[j * p + i] = imat[i * p + j];
            }
        }
        out.loglik = loglik;
        out.u.copy_from_slice(&u);
        out.imat.copy_from_slice(&imat);
    }
}
