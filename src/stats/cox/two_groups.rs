//! The Cox model with one 0/1 covariate and no strata (the two-arm comparison of every interim
//! look and every simulated trial) as counts per distinct time.
//!
//! With `x ∈ {0, 1}` every row of a group has the same risk score (1 or `exp(beta)`), so the
//! risk-set sums `sum r`, `sum r x` and `sum r x²` of [`super::risk_sets::RiskSets`] are
//! `n0 + n1·r`, `n1·r` and `n1·r` for the `n0`, `n1` rows at risk in each group. One pass then
//! costs one `exp` and one step per distinct time instead of one `exp` per row, and the
//! Newton–Raphson of [`super::newton`] runs unchanged on it: the same start, step halving and
//! stopping rule, so the estimates agree with the row-by-row pass to rounding error (checked
//! in the tests below and by every R golden value with a two-group Cox fit).

use super::risk_sets::{add_death_time, DeathTime, Derivatives, PartialLikelihood};
use super::Ties;
use crate::stats::timeline::Timeline;

/// Rows entering the risk set at one distinct time, latest time first.
#[derive(Debug, Clone, Copy)]
struct AtTime {
    /// Rows with `x = 0` and `x = 1` at this time (censored and dead).
    rows: [u32; 2],
    /// Deaths with `x = 0` and `x = 1` at this time.
    dead: [u32; 2],
}

/// A right-censored, unstratified data set with one 0/1 covariate, as counts.
#[derive(Debug, Clone)]
pub(crate) struct TwoGroups {
    times: Vec<AtTime>,
}

impl TwoGroups {
    /// The counts of `time`/`event`/`x`, or `None` when `x` holds anything but 0 and 1.
    pub(crate) fn of(time: &[f64], event: &[bool], x: &[f64]) -> Option<Self> {
        if x.iter().any(|&v| v != 0.0 && v != 1.0) {
            return None;
        }
        let timeline = Timeline::build(time, None);
        let mut times: Vec<AtTime> = Vec::new();
        let mut end = timeline.order.len();
        while end > 0 {
            let t = timeline.time[end - 1];
            let mut at = AtTime {
                rows: [0; 2],
                dead: [0; 2],
            };
            while end > 0 && timeline.time[end - 1] == t {
                let i = timeline.order[end - 1] as usize;
                let g = usize::from(x[i] == 1.0);
                at.rows[g] += 1;
                at.dead[g] += u32::from(event[i]);
                end -= 1;
            }
            times.push(at);
        }
        Some(TwoGroups { times })
    }
}

impl PartialLikelihood for TwoGroups {
    fn p(&self) -> usize {
        1
    }

    fn evaluate(&self, beta: &[f64], ties: Ties, out: &mut Derivatives) {
        let b = beta[0];
        // exp(0) is 1 exactly, as in the row-by-row pass.
        let r = if b == 0.0 { 1.0 } else { b.exp() };
        let (mut loglik, mut u, mut imat) = (0.0f64, [0.0f64], [0.0f64]);
        let (mut n0, mut n1) = (0.0f64, 0.0f64);
        for at in &self.times {
            n0 += f64::from(at.rows[0]);
            n1 += f64::from(at.rows[1]);
            let n_dead = (at.dead[0] + at.dead[1]) as usize;
            if n_dead == 0 {
                continue;
            }
            let d1 = f64::from(at.dead[1]);
            loglik += d1 * b;
            u[0] += d1;
            let a = [n1 * r];
            let a2 = [d1 * r];
            add_death_time(
                1,
                &DeathTime {
                    n_dead,
                    denom: n0 + a[0],
                    denom2: f64::from(at.dead[0]) + a2[0],
                    a: &a,
                    c: &a,
                    a2: &a2,
                    c2: &a2,
                },
                ties,
                &mut loglik,
                &mut u,
                &mut imat,
            );
        }
        out.loglik = loglik;
        out.u[0] = u[0];
        out.imat[0] = imat[0];
    }
}

#[cfg(test)]
mod tests {
    use super::super::newton::{iterate, Settings};
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn settings(ties: Ties) -> Settings {
        Settings {
            ties,
            max_iter: crate::stats::COX_ITER_MAX,
            eps: crate::stats::COX_EPS,
            toler_chol: crate::stats::COX_TOLER_CHOL,
        }
    }

    /// Random two-group data with many ties (whole days up to `days`).
    fn data(seed: u64, n: usize, days: u32) -> (Vec<f64>, Vec<bool>, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut time = Vec::with_capacity(n);
        let mut event = Vec::with_capacity(n);
        let mut x = Vec::with_capacity(n);
        for _ in 0..n {
            let g = rng.random_bool(0.5);
            time.push(f64::from(rng.random_range(0..days)));
            event.push(rng.random_bool(if g { 0.25 } else { 0.35 }));
            x.push(f64::from(u8::from(g)));
        }
        (time, event, x)
    }

    #[test]
    fn counts_give_the_row_by_row_fit() {
        for (seed, n, days) in [(1, 40, 5), (2, 500, 30), (3, 7000, 365), (4, 3, 2)] {
            let (time, event, x) = data(seed, n, days);
            let counts = TwoGroups::of(&time, &event, &x).expect("0/1 covariate");
            let (rows, _) = super::super::prepare(&super::super::CoxData {
                time: &time,
                event: &event,
                covariates: vec![super::super::Covariate {
                    name: "x",
                    values: &x,
                }],
                strata: None,
            });
            for ties in [Ties::Efron, Ties::Breslow] {
                let a = iterate(&counts, &settings(ties));
                let b = iterate(&rows, &settings(ties));
                assert_eq!(a.iterations, b.iterations, "seed {seed} {ties:?}");
                let close = |p: f64, q: f64| (p - q).abs() <= 1e-12 * (1.0 + q.abs());
                assert!(
                    close(a.beta[0], b.beta[0]),
                    "{} vs {}",
                    a.beta[0],
                    b.beta[0]
                );
                assert!(close(a.loglik, b.loglik), "{} vs {}", a.loglik, b.loglik);
                assert!(close(a.loglik_null, b.loglik_null));
                assert!(close(a.score_test, b.score_test));
                assert!(close(a.var.get(0, 0), b.var.get(0, 0)));
            }
        }
    }

    #[test]
    fn other_covariates_are_left_to_the_row_by_row_fit() {
        assert!(TwoGroups::of(&[1.0, 2.0], &[true, false], &[0.0, 2.0]).is_none());
        assert!(TwoGroups::of(&[1.0, 2.0], &[true, false], &[-1.0, 1.0]).is_none());
    }
}
