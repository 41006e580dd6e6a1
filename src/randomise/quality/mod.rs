//! Measured allocation quality: balance and predictability of a procedure, computed exactly by
//! dynamic programming where the procedure's next-arm probabilities depend only on counts it
//! keeps (simple, permuted blocks, biased coin, big stick, urn), by seeded Monte Carlo through
//! the real [`super::allocate_with`] otherwise (minimisation, strata, covariates).
//!
//! # Definitions
//! - **Imbalance** after `n` allocations with counts `n_a` and ratio weights `r_a` (sum `R`):
//!   `D = Σ_a |n_a − n·r_a/R|`, the number of patients by which the arms miss their target
//!   shares. For two arms 1:1 this is `|n₁ − n₂|`, the usual definition; it is 0 exactly when
//!   every arm holds its share.
//! - **Final imbalance** `D_N`; **maximum imbalance** `max_{1≤i≤N} D_i`; **loss** `D_N²/N`.
//! - **Correct guesses** under the convergence strategy (Blackwell–Hodges): before each
//!   allocation the investigator guesses an arm with the fewest ratio-adjusted allocations so
//!   far (`n_a/r_a` least); when `t` arms tie the guess is random among them, counted as `1/t`
//!   expected correct if the allocated arm is one of them. The rate is the expected number
//!   correct divided by `N`. Overall the investigator sees the whole trial's counts; within
//!   strata only the patient's stratum's counts (what a site investigator sees under
//!   stratified blocks).
//! - **Marginal imbalance** of a factor level: `D` of the counts of patients at that level
//!   (what minimisation balances), averaged over replicates.
//!
//! Every report averages over replicates (Monte Carlo) or over all sequences weighted by their
//! probability (exact). Cluster randomisation and per-patient eligibility are not simulated.

mod exact;
mod monte_carlo;
mod observed;

use std::collections::BTreeMap;

use serde::Serialize;

pub use exact::{assess_exact, EXACT_STATE_LIMIT};
pub use monte_carlo::{assess_monte_carlo, QualityError};
pub use observed::{observed, ObservedQuality, SequenceQuality};

/// The quality of a procedure over sequences of `n` allocations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quality {
    /// `exact` or `monte_carlo`.
    pub computation: &'static str,
    pub n: u32,
    /// Sequences simulated (0 when exact).
    pub replicates: u32,
    pub mean_abs_final_imbalance: f64,
    pub mean_max_imbalance: f64,
    pub mean_loss: f64,
    pub correct_guess_rate: f64,
    /// Mean share of allocations per arm (compare with the ratios).
    pub mean_arm_proportions: Vec<f64>,
    /// Balance and predictability within strata (Monte Carlo with strata only).
    pub within_strata: Option<WithinStrata>,
    /// factor → level → mean final imbalance among patients at that level (Monte Carlo with
    /// covariates only).
    pub marginal_imbalance: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Quality as seen inside each stratum.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WithinStrata {
    /// Correct guesses by an investigator who sees only the patient's stratum.
    pub correct_guess_rate: f64,
    /// Mean over replicates of the average final imbalance of the strata that enrolled anyone.
    pub mean_abs_final_imbalance: f64,
    /// Mean number of strata that enrolled anyone.
    pub mean_strata_used: f64,
}

/// A covariate of the simulated population: equiprobable levels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CovariateFactor {
    pub name: String,
    pub levels: Vec<String>,
}

/// Who enrols in a simulation: independent covariates, each level equally likely.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Population {
    pub factors: Vec<CovariateFactor>,
}

impl Population {
    /// The synthetic covariates of `rrct randomisation assess --method minimisation:...`:
    /// `site` (S1, S2, S3), `sex` (F, M) and `age_band` (<65, 65-74, >=75), independent and
    /// equiprobable.
    pub fn synthetic() -> Self {
        let factor = |name: &str, levels: &[&str]| CovariateFactor {
            name: name.to_string(),
            levels: levels.iter().map(|l| l.to_string()).collect(),
        };
        Population {
            factors: vec![
                factor("site", &["S1", "S2", "S3"]),
                factor("sex", &["F", "M"]),
                factor("age_band", &["<65", "65-74", ">=75"]),
            ],
        }
    }

    /// The factors a protocol stratifies or minimises on, with the levels the protocol
    /// declares, each level equally likely: sites' codes, a category's levels, `false`/`true`
    /// for a boolean, a derived band's labels.
    pub fn from_protocol(protocol: &crate::protocol::Protocol) -> Self {
        use crate::protocol::{FieldKind, Method};
        let mut names: Vec<String> = protocol.randomisation.strata.clone();
        if let Method::Minimisation { factors, .. } = &protocol.randomisation.method {
            for f in factors {
                if !names.contains(&f.field) {
                    names.push(f.field.clone());
                }
            }
        }
        let factors = names
            .into_iter()
            .map(|name| {
                let levels: Vec<String> = if name == "site" {
                    protocol.sites.iter().map(|s| s.code.clone()).collect()
                } else if let Some(d) = protocol.derived_field(&name) {
                    d.labels.clone()
                } else {
                    match protocol.field(&name).map(|f| &f.kind) {
                        Some(FieldKind::Category { levels }) => levels.clone(),
                        Some(FieldKind::Boolean) => vec!["false".into(), "true".into()],
                        _ => vec![crate::protocol::MISSING_LEVEL.to_string()],
                    }
                };
                CovariateFactor { name, levels }
            })
            .collect();
        Population { factors }
    }
}

/// `D = Σ_a |n_a − n·r_a/R|` (see the module docs).
pub fn imbalance(counts: &[u64], ratios: &[u32]) -> f64 {
    scaled_imbalance(counts, ratios) as f64 / ratio_sum(ratios) as f64
}

/// `R·D`, an integer: `Σ_a |R·n_a − n·r_a|`.
pub(crate) fn scaled_imbalance(counts: &[u64], ratios: &[u32]) -> u64 {
    let r = ratio_sum(ratios);
    let n: u64 = counts.iter().sum();
    counts
        .iter()
        .zip(ratios)
        .map(|(&c, &ra)| (r * c).abs_diff(n * u64::from(ra)))
        .sum()
}

fn ratio_sum(ratios: &[u32]) -> u64 {
    ratios.iter().map(|&r| u64::from(r)).sum::<u64>().max(1)
}

/// The arms the convergence strategy would guess: those with the fewest ratio-adjusted
/// allocations `n_a/r_a` (compared exactly, by cross-multiplication).
pub fn convergence_guess(counts: &[u64], ratios: &[u32]) -> Vec<usize> {
    let mut best: Vec<usize> = Vec::new();
    for a in 0..counts.len() {
        match best.first() {
            None => best.push(a),
            Some(&b) => {
                let lhs = u128::from(counts[a]) * u128::from(ratios[b]);
                let rhs = u128::from(counts[b]) * u128::from(ratios[a]);
                if lhs < rhs {
                    best.clear();
                    best.push(a);
                } else if lhs == rhs {
                    best.push(a);
                }
            }
        }
    }
    best
}

/// Expected correctness of one convergence guess when `arm` is allocated: `1/|G|` when `arm`
/// is among the guessed arms `G` of [`convergence_guess`], else 0 (computed without building
/// `G`: the simulator calls this for every allocation).
pub(crate) fn guess_score(counts: &[u64], ratios: &[u32], arm: usize) -> f64 {
    // `a` has fewer ratio-adjusted allocations than `b` when n_a·r_b < n_b·r_a.
    let key = |a: usize, b: usize| {
        (u128::from(counts[a]) * u128::from(ratios[b]))
            .cmp(&(u128::from(counts[b]) * u128::from(ratios[a])))
    };
    let mut ties = 0usize;
    for a in 0..counts.len() {
        match key(a, arm) {
            std::cmp::Ordering::Less => return 0.0,
            std::cmp::Ordering::Equal => ties += 1,
            std::cmp::Ordering::Greater => {}
        }
    }
    1.0 / ties.max(1) as f64
}

#[cfg(test)]
mod tests;
