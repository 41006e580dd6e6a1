//! Seeded Monte Carlo quality: replicate trials run through the real
//! [`allocate_with`](crate::randomise::allocate_with), so what is measured is exactly what the
//! live path would allocate. Replicate `r` is trial `assess-r` under the given master seed;
//! patient `i`'s covariates come from `tagged_stream(seed, "covariates", "assess-r", "all", i)`,
//! one [`uniform_below`](crate::randomise::uniform_below) per factor in order.

use std::collections::{BTreeMap, HashMap};

use super::{guess_score, imbalance, scaled_imbalance, Population, Quality, WithinStrata};
use crate::randomise::{
    allocate_with, tagged_stream, uniform_below, AllocationContext, AllocationError, MasterSeed,
    Scheme, StratumState,
};

/// Why a simulation cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QualityError {
    #[error("factor `{0}` is used by the procedure but the population does not describe it")]
    UnknownFactor(String),
    #[error("factor `{0}` has no levels")]
    NoLevels(String),
    #[error("at least one replicate is needed")]
    NoReplicates,
    #[error(transparent)]
    Allocation(#[from] AllocationError),
}

/// Quality of `scheme` over `replicates` simulated trials of `n` patients drawn from
/// `population`, stratified by the factors named in `strata` (in order; stratum keys as the
/// protocol writes them, `site=S1;sex=F`, or `all`). Minimisation runs with stratum `all` and
/// takes its factors' levels from the population.
pub fn assess_monte_carlo(
    scheme: &Scheme,
    strata: &[String],
    population: &Population,
    n: u32,
    replicates: u32,
    seed: &MasterSeed,
) -> Result<Quality, QualityError> {
    if replicates == 0 {
        return Err(QualityError::NoReplicates);
    }
    let find = |name: &str| {
        population
            .factors
            .iter()
            .position(|f| f.name == name)
            .ok_or_else(|| QualityError::UnknownFactor(name.to_string()))
    };
    let strata_idx: Vec<usize> = strata.iter().map(|s| find(s)).collect::<Result<_, _>>()?;
    let minimised: Vec<usize> = scheme
        .factors()
        .iter()
        .map(|f| find(&f.name))
        .collect::<Result<_, _>>()?;
    if let Some(f) = population.factors.iter().find(|f| f.levels.is_empty()) {
        return Err(QualityError::NoLevels(f.name.clone()));
    }
    let ratios = scheme.ratios();
    let k = ratios.len();
    let nf = f64::from(n.max(1));
    let mut sums = Sums::default();
    let mut proportions = vec![0.0; k];
    let mut marginal_sums: Vec<Vec<f64>> = population
        .factors
        .iter()
        .map(|f| vec![0.0; f.levels.len()])
        .collect();
    for r in 0..replicates {
        let trial = format!("assess-{r}");
        let mut counts = vec![0u64; k];
        let mut strata_state: HashMap<String, (StratumState, Vec<u64>)> = HashMap::new();
        // factor → level → counts per arm.
        let mut marginals: Vec<Vec<Vec<u64>>> = population
            .factors
            .iter()
            .map(|f| vec![vec![0; k]; f.levels.len()])
            .collect();
        let mut max_scaled = 0u64;
        let (mut correct, mut correct_within) = (0.0, 0.0);
        for i in 0..u64::from(n) {
            let mut rng = tagged_stream(seed, "covariates", &trial, "all", i);
            let levels: Vec<usize> = population
                .factors
                .iter()
                .map(|f| uniform_below(&mut rng, f.levels.len() as u64) as usize)
                .collect();
            let key = if strata_idx.is_empty() {
                "all".to_string()
            } else {
                strata_idx
                    .iter()
                    .map(|&f| {
                        let factor = &population.factors[f];
                        format!("{}={}", factor.name, factor.levels[levels[f]])
                    })
                    .collect::<Vec<_>>()
                    .join(";")
            };
            let (state, stratum_counts) = strata_state
                .entry(key.clone())
                .or_insert_with(|| (StratumState::default(), vec![0; k]));
            let ctx = AllocationContext {
                arm_counts: stratum_counts.clone(),
                marginals: minimised
                    .iter()
                    .map(|&f| marginals[f][levels[f]].clone())
                    .collect(),
                ..AllocationContext::default()
            };
            let decision = allocate_with(scheme, seed, &trial, &key, state, &ctx)?;
            let arm = decision.arm;
            correct += guess_score(&counts, ratios, arm);
            correct_within += guess_score(stratum_counts, ratios, arm);
            *state = decision.next;
            stratum_counts[arm] += 1;
            counts[arm] += 1;
            for (f, &level) in levels.iter().enumerate() {
                marginals[f][level][arm] += 1;
            }
            max_scaled = max_scaled.max(scaled_imbalance(&counts, ratios));
        }
        let d = imbalance(&counts, ratios);
        sums.final_abs += d;
        sums.max_abs += max_scaled as f64 / super::ratio_sum(ratios) as f64;
        sums.loss += d * d / nf;
        sums.correct += correct / nf;
        sums.correct_within += correct_within / nf;
        let used = strata_state.len() as f64;
        sums.strata_used += used;
        sums.within_final += strata_state
            .values()
            .map(|(_, c)| imbalance(c, ratios))
            .sum::<f64>()
            / used.max(1.0);
        for (p, &c) in proportions.iter_mut().zip(&counts) {
            *p += c as f64 / nf;
        }
        for (f, levels) in marginals.iter().enumerate() {
            for (l, c) in levels.iter().enumerate() {
                marginal_sums[f][l] += imbalance(c, ratios);
            }
        }
    }
    let reps = f64::from(replicates);
    let marginal_imbalance = population
        .factors
        .iter()
        .zip(&marginal_sums)
        .map(|(f, sums)| {
            let levels = f
                .levels
                .iter()
                .zip(sums)
                .map(|(l, s)| (l.clone(), s / reps))
                .collect();
            (f.name.clone(), levels)
        })
        .collect::<BTreeMap<_, _>>();
    Ok(Quality {
        computation: "monte_carlo",
        n,
        replicates,
        mean_abs_final_imbalance: sums.final_abs / reps,
        mean_max_imbalance: sums.max_abs / reps,
        mean_loss: sums.loss / reps,
        correct_guess_rate: sums.correct / reps,
        mean_arm_proportions: proportions.iter().map(|p| p / reps).collect(),
        within_strata: (!strata.is_empty()).then(|| WithinStrata {
            correct_guess_rate: sums.correct_within / reps,
            mean_abs_final_imbalance: sums.within_final / reps,
            mean_strata_used: sums.strata_used / reps,
        }),
        marginal_imbalance,
    })
}

#[derive(Default)]
struct Sums {
    final_abs: f64,
    max_abs: f64,
    loss: f64,
    correct: f64,
    correct_within: f64,
    within_final: f64,
    strata_used: f64,
}
