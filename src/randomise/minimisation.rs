//! Pocock–Simon minimisation: scores per arm from the trial-wide marginal counts, and the
//! probability rule documented on [`super::Scheme::new_minimisation`].
//!
//! Each allocation costs O(factors × arms): per factor the ratio-adjusted counts are summarised
//! once (mean and squared deviations, the two largest and two smallest values), after which the
//! spread with the patient added to any one arm is a constant-time update. Nothing here looks at
//! the allocation history; the caller keeps the marginal counts.

use serde_json::{json, Value};

use super::{Checked, ImbalanceMeasure, Scheme, StratumState};

/// Relative size below which an incrementally updated sum of squares is rounding, not spread.
const SPREAD_ROUNDING: f64 = 1e-9;

/// Scores within this relative distance of the least score are tied.
pub const TIE_TOLERANCE: f64 = 1e-9;

pub(super) fn probabilities(
    scheme: &Scheme,
    state: &StratumState,
    ctx: &Checked<'_>,
) -> (Vec<f64>, Value) {
    let Scheme::Minimisation {
        ratios,
        factors,
        measure,
        p,
        initial_random,
    } = scheme
    else {
        unreachable!("only minimisation comes here")
    };
    let eligible = &ctx.eligible;
    let arms: Vec<usize> = (0..ratios.len()).filter(|&a| eligible[a]).collect();
    let weights = |set: &dyn Fn(usize) -> bool, mass: f64| -> Vec<f64> {
        let sum: f64 = arms
            .iter()
            .filter(|&&a| set(a))
            .map(|&a| f64::from(ratios[a]))
            .sum();
        (0..ratios.len())
            .map(|a| {
                if eligible[a] && set(a) && sum > 0.0 {
                    mass * f64::from(ratios[a]) / sum
                } else {
                    0.0
                }
            })
            .collect()
    };
    if state.allocated < u64::from(*initial_random) || arms.len() == 1 {
        let phase = if arms.len() == 1 {
            "forced_by_eligibility"
        } else {
            "initial_random"
        };
        return (
            weights(&|_| true, 1.0),
            json!({ "phase": phase, "initial_random": initial_random, "p": p }),
        );
    }
    let mut scores = vec![0.0; ratios.len()];
    let zeros = vec![0u64; ratios.len()];
    for (f, factor) in factors.iter().enumerate() {
        let counts = ctx.marginal(f).unwrap_or(&zeros);
        let spread = Spread::new(counts, ratios, &arms);
        for &j in &arms {
            scores[j] +=
                factor.weight * spread.with_one_more(j, 1.0 / f64::from(ratios[j]), *measure);
        }
    }
    let best = arms
        .iter()
        .map(|&a| scores[a])
        .fold(f64::INFINITY, f64::min);
    let tolerance = TIE_TOLERANCE * best.abs().max(1.0);
    let preferred: Vec<usize> = arms
        .iter()
        .copied()
        .filter(|&a| scores[a] - best <= tolerance)
        .collect();
    let probabilities = if preferred.len() == arms.len() {
        weights(&|_| true, 1.0)
    } else {
        let is_preferred = |a: usize| preferred.contains(&a);
        let mut probabilities = weights(&is_preferred, *p);
        let others = weights(&|a| !is_preferred(a), 1.0 - p);
        for (x, y) in probabilities.iter_mut().zip(others) {
            *x += y;
        }
        probabilities
    };
    let shown: Vec<Option<f64>> = (0..ratios.len())
        .map(|a| eligible[a].then_some(scores[a]))
        .collect();
    (
        probabilities,
        json!({
            "phase": "minimisation",
            "measure": measure.as_str(),
            "p": p,
            "scores": shown,
            "preferred": preferred,
        }),
    )
}

/// Summary of one factor level's ratio-adjusted counts over the eligible arms.
struct Spread<'a> {
    values: Vec<f64>,
    arms: &'a [usize],
    mean: f64,
    squared_deviations: f64,
    /// (value, arm) of the two largest and two smallest values.
    top: [(f64, usize); 2],
    bottom: [(f64, usize); 2],
}

impl<'a> Spread<'a> {
    fn new(counts: &[u64], ratios: &[u32], arms: &'a [usize]) -> Self {
        let values: Vec<f64> = counts
            .iter()
            .zip(ratios)
            .map(|(&n, &r)| n as f64 / f64::from(r))
            .collect();
        let k = arms.len() as f64;
        let mean = arms.iter().map(|&a| values[a]).sum::<f64>() / k;
        let squared_deviations = arms.iter().map(|&a| (values[a] - mean).powi(2)).sum();
        let mut top = [(f64::NEG_INFINITY, usize::MAX); 2];
        let mut bottom = [(f64::INFINITY, usize::MAX); 2];
        for &a in arms {
            let v = values[a];
            if v > top[0].0 {
                top = [(v, a), top[0]];
            } else if v > top[1].0 {
                top[1] = (v, a);
            }
            if v < bottom[0].0 {
                bottom = [(v, a), bottom[0]];
            } else if v < bottom[1].0 {
                bottom[1] = (v, a);
            }
        }
        Spread {
            values,
            arms,
            mean,
            squared_deviations,
            top,
            bottom,
        }
    }

    /// The spread after adding `delta` to arm `j`'s ratio-adjusted count.
    fn with_one_more(&self, j: usize, delta: f64, measure: ImbalanceMeasure) -> f64 {
        let k = self.arms.len() as f64;
        let xj = self.values[j] + delta;
        match measure {
            ImbalanceMeasure::Range => {
                let max_other = if self.top[0].1 == j {
                    self.top[1].0
                } else {
                    self.top[0].0
                };
                let min_other = if self.bottom[0].1 == j {
                    self.bottom[1].0
                } else {
                    self.bottom[0].0
                };
                xj.max(max_other) - xj.min(min_other)
            }
            ImbalanceMeasure::Variance | ImbalanceMeasure::Sd => {
                // Σ(x′ − x̄′)² = Σ(x − x̄)² + 2δ(x_j − x̄) + δ²(1 − 1/k), with R's k − 1 denominator.
                let cross = 2.0 * delta * (self.values[j] - self.mean);
                let square = delta * delta * (1.0 - 1.0 / k);
                let mut ss = self.squared_deviations + cross + square;
                // The update cancels when the arms end up level: a rounding residual (≈1e-16)
                // would become ≈1e-8 under the square root and break an exact tie. Counts are
                // multiples of 1/ratio, so a real spread is many orders of magnitude larger.
                if ss <= SPREAD_ROUNDING * (self.squared_deviations + cross.abs() + square) {
                    ss = 0.0;
                }
                let variance = ss / (k - 1.0);
                if measure == ImbalanceMeasure::Sd {
                    variance.sqrt()
                } else {
                    variance
                }
            }
        }
    }
}

/// The spread of ratio-adjusted counts over all arms, computed directly (for tests and the
/// incremental update).
#[cfg(test)]
pub(super) fn spread(counts: &[u64], ratios: &[u32], measure: ImbalanceMeasure) -> f64 {
    let values: Vec<f64> = counts
        .iter()
        .zip(ratios)
        .map(|(&n, &r)| n as f64 / f64::from(r))
        .collect();
    let k = values.len() as f64;
    match measure {
        ImbalanceMeasure::Range => {
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            max - min
        }
        ImbalanceMeasure::Variance | ImbalanceMeasure::Sd => {
            let mean = values.iter().sum::<f64>() / k;
            let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1.0);
            if measure == ImbalanceMeasure::Sd {
                variance.sqrt()
            } else {
                variance
            }
        }
    }
}
