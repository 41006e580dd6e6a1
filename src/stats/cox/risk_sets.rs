//! The data of a Cox fit laid out for one linear pass per Newton–Raphson iteration, and that
//! pass: log partial likelihood, score and information for Efron or Breslow ties.
//!
//! Rows are stored row-major in processing order: stratum by stratum, tied-time groups from
//! the latest time to the earliest, and inside a group the censored rows before the events.
//! The pass keeps running risk-set sums (`sum r`, `sum r x`, `sum r x x'`) as R's `coxfit6`
//! does. Efron's correction for `d` tied events is applied in closed form: with
//! `den_j = D - (j/d) D2` for `j = 0..d`, the sums `sum 1/den_j`, `sum f_j/den_j`,
//! `sum 1/den_j²`, ... are scalars, so a tie group costs `O(d + p²)` instead of `O(d p²)` and
//! a whole iteration is `O(n p²)` — linear in the number of rows after the one sort.

use super::Ties;

/// One group of rows sharing a stratum and a time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TieGroup {
    /// One past the group's last row.
    pub end: u32,
    /// Events in the group (its last `n_dead` rows).
    pub n_dead: u32,
    /// The first group processed in its stratum: the risk-set sums restart here.
    pub new_stratum: bool,
}

/// Rows in processing order with their covariates centred and scaled.
#[derive(Debug, Clone)]
pub(crate) struct RiskSets {
    /// Number of covariates.
    pub p: usize,
    /// `n × p` covariates, row-major, processing order.
    pub x: Vec<f64>,
    /// Tie groups in processing order.
    pub groups: Vec<TieGroup>,
}

/// Log partial likelihood with its first and second derivatives at some `beta`.
#[derive(Debug, Clone)]
pub(crate) struct Derivatives {
    pub loglik: f64,
    /// Score vector.
    pub u: Vec<f64>,
    /// Information matrix, row-major `p × p`, full (symmetric).
    pub imat: Vec<f64>,
}

/// A partial likelihood the iteration can climb: right-censored risk sets or counting-process
/// (start, stop] data.
pub(crate) trait PartialLikelihood {
    /// Number of coefficients.
    fn p(&self) -> usize;
    /// Log partial likelihood, score and information at `beta`.
    fn evaluate(&self, beta: &[f64], ties: Ties, out: &mut Derivatives);
}

impl PartialLikelihood for RiskSets {
    fn p(&self) -> usize {
        self.p
    }

    fn evaluate(&self, beta: &[f64], ties: Ties, out: &mut Derivatives) {
        RiskSets::evaluate(self, beta, ties, out);
    }
}

impl RiskSets {
    /// Evaluates the log partial likelihood, score and information at `beta`.
    pub fn evaluate(&self, beta: &[f64], ties: Ties, out: &mut Derivatives) {
        match self.p {
            1 => self.pass::<1>(beta, ties, out),
            2 => self.pass::<2>(beta, ties, out),
            3 => self.pass::<3>(beta, ties, out),
            4 => self.pass::<4>(beta, ties, out),
            5 => self.pass::<5>(beta, ties, out),
            6 => self.pass::<6>(beta, ties, out),
            _ => self.pass::<0>(beta, ties, out),
        }
    }

    /// The pass; `P` is the number of covariates known at compile time (so the inner loops
    /// unroll), or 0 for "read it from `self.p`".
    #[inline(always)]
    fn pass<const P: usize>(&self, beta: &[f64], ties: Ties, out: &mut Derivatives) {
        let p = if P == 0 { self.p } else { P };
        let beta = &beta[..p];
        let mut loglik = 0.0f64;
        let u = &mut out.u[..p];
        let imat = &mut out.imat[..p * p];
        u.iter_mut().for_each(|v| *v = 0.0);
        imat.iter_mut().for_each(|v| *v = 0.0);
        // Running risk-set sums and the sums over the current group's events. Only the lower
        // triangle (j <= i) of the p×p sums is used.
        let mut denom = 0.0f64;
        let mut a = vec![0.0f64; p];
        let mut c = vec![0.0f64; p * p];
        let mut a2 = vec![0.0f64; p];
        let mut c2 = vec![0.0f64; p * p];
        let x = &self.x;
        // At the start (beta = 0) every risk score is exp(0) = 1 exactly: skip the exp calls.
        let at_zero = beta.iter().all(|&b| b == 0.0);
        let eta_of = |xr: &[f64]| if at_zero { 0.0 } else { dot(xr, beta) };
        let risk_of = |eta: f64| if at_zero { 1.0 } else { eta.exp() };
        let mut row = 0usize;
        for g in &self.groups {
            if g.new_stratum {
                denom = 0.0;
                a.iter_mut().for_each(|v| *v = 0.0);
                c.iter_mut().for_each(|v| *v = 0.0);
            }
            let end = g.end as usize;
            let censored_end = end - g.n_dead as usize;
            for r in row..censored_end {
                let xr = &x[r * p..r * p + p];
                let risk = risk_of(eta_of(xr));
                denom += risk;
                add_outer(risk, xr, &mut a, &mut c);
            }
            if g.n_dead > 0 {
                let mut denom2 = 0.0f64;
                a2.iter_mut().for_each(|v| *v = 0.0);
                c2.iter_mut().for_each(|v| *v = 0.0);
                for r in censored_end..end {
                    let xr = &x[r * p..r * p + p];
                    let eta = eta_of(xr);
                    let risk = risk_of(eta);
                    loglik += eta;
                    for i in 0..p {
                        u[i] += xr[i];
                    }
                    denom2 += risk;
                    add_outer(risk, xr, &mut a2, &mut c2);
                }
                denom += denom2;
                for i in 0..p {
                    a[i] += a2[i];
                    for j in 0..=i {
                        c[i * p + j] += c2[i * p + j];
                    }
                }
                add_death_time(
                    p,
                    &DeathTime {
                        n_dead: g.n_dead as usize,
                        denom,
                        denom2,
                        a: &a,
                        c: &c,
                        a2: &a2,
                        c2: &c2,
                    },
                    ties,
                    &mut loglik,
                    u,
                    imat,
                );
            }
            row = end;
        }
        for i in 0..p {
            for j in 0..i {
                imat[j * p + i] = imat[i * p + j];
            }
        }
        out.loglik = loglik;
    }
}

#[inline(always)]
fn dot(x: &[f64], beta: &[f64]) -> f64 {
    x.iter().zip(beta).map(|(a, b)| a * b).sum()
}

/// The sums at one event time: the risk set's weighted sums (`denom`, `a`, the lower triangle of
/// `c`) and those of the `n_dead` tied deaths among it (`denom2`, `a2`, `c2`).
pub(super) struct DeathTime<'a> {
    pub n_dead: usize,
    pub denom: f64,
    pub denom2: f64,
    pub a: &'a [f64],
    pub c: &'a [f64],
    pub a2: &'a [f64],
    pub c2: &'a [f64],
}

/// Add one event time to the log partial likelihood, the score and the information's lower
/// triangle, ties handled by Breslow's or Efron's approximation (as `survival`'s coxfit6 and
/// agfit4).
#[inline(always)]
/// `p` is the number of covariates (a constant where the caller unrolls by it).
pub(super) fn add_death_time(
    p: usize,
    t: &DeathTime,
    ties: Ties,
    loglik: &mut f64,
    u: &mut [f64],
    imat: &mut [f64],
) {
    let (a, c, a2, c2) = (t.a, t.c, t.a2, t.c2);
    let d = t.n_dead as f64;
    if ties == Ties::Breslow || t.n_dead == 1 {
        *loglik -= d * t.denom.ln();
        for i in 0..p {
            let mean = a[i] / t.denom;
            u[i] -= d * mean;
            for j in 0..=i {
                imat[i * p + j] += d * (c[i * p + j] - mean * a[j]) / t.denom;
            }
        }
    } else {
        // Efron: den_j = denom - f_j * denom2 with f_j = j / d, j = 0..d.
        let (mut log_sum, mut s1, mut sf1, mut s2, mut sf2, mut sff2) =
            (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for j in 0..t.n_dead {
            let f = j as f64 / d;
            let den = t.denom - f * t.denom2;
            let inv = 1.0 / den;
            let inv2 = inv * inv;
            log_sum += den.ln();
            s1 += inv;
            sf1 += f * inv;
            s2 += inv2;
            sf2 += f * inv2;
            sff2 += f * f * inv2;
        }
        *loglik -= log_sum;
        for i in 0..p {
            u[i] -= a[i] * s1 - a2[i] * sf1;
            for j in 0..=i {
                let first = c[i * p + j] * s1 - c2[i * p + j] * sf1;
                let second =
                    a[i] * a[j] * s2 - (a[i] * a2[j] + a2[i] * a[j]) * sf2 + a2[i] * a2[j] * sff2;
                imat[i * p + j] += first - second;
            }
        }
    }
}

#[inline(always)]
pub(super) fn add_outer(risk: f64, x: &[f64], a: &mut [f64], c: &mut [f64]) {
    let p = x.len();
    for i in 0..p {
        let rx = risk * x[i];
        a[i] += rx;
        for j in 0..=i {
            c[i * p + j] += rx * x[j];
        }
    }
}
