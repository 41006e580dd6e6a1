//! Exact quality by dynamic programming over the procedure's state: the arm counts, the
//! current block (size and slots used) for permuted blocks, and the running maximum
//! imbalance. Sequences reaching the same state are merged, so the cost grows with the number
//! of distinct states, not with the 2^N sequences (N = 20 with two arms stays below a thousand
//! states for every procedure here).

use std::collections::HashMap;

use super::{guess_score, ratio_sum, scaled_imbalance, Quality};
use crate::randomise::Scheme;

/// Above this many distinct states at one step, [`assess_exact`] gives up (use Monte Carlo).
pub const EXACT_STATE_LIMIT: usize = 20_000;

/// Where a sequence stands: arm counts, current block (size, slots used per arm; size 0 before
/// the first block and for procedures without blocks) and the largest `R·D` so far.
#[derive(Clone, PartialEq, Eq, Hash)]
struct State {
    counts: Vec<u64>,
    block_size: u32,
    block_used: Vec<u32>,
    max_scaled: u64,
}

/// The exact quality of `scheme` over all sequences of `n` allocations, or `None` when the
/// procedure depends on covariates (minimisation) or the state space passes
/// [`EXACT_STATE_LIMIT`].
pub fn assess_exact(scheme: &Scheme, n: u32) -> Option<Quality> {
    if matches!(scheme, Scheme::Minimisation { .. }) {
        return None;
    }
    let ratios = scheme.ratios();
    let k = ratios.len();
    let r = ratio_sum(ratios) as f64;
    let mut states: HashMap<State, f64> = HashMap::new();
    states.insert(
        State {
            counts: vec![0; k],
            block_size: 0,
            block_used: vec![0; k],
            max_scaled: 0,
        },
        1.0,
    );
    let mut expected_correct = 0.0;
    for _ in 0..n {
        let mut next: HashMap<State, f64> = HashMap::with_capacity(states.len() * 2);
        for (state, probability) in &states {
            for (arm, q, block_size, block_used) in transitions(scheme, state) {
                if q <= 0.0 {
                    continue;
                }
                let weight = probability * q;
                expected_correct += weight * guess_score(&state.counts, ratios, arm);
                let mut counts = state.counts.clone();
                counts[arm] += 1;
                let scaled = scaled_imbalance(&counts, ratios);
                let to = State {
                    counts,
                    block_size,
                    block_used,
                    max_scaled: state.max_scaled.max(scaled),
                };
                *next.entry(to).or_insert(0.0) += weight;
            }
        }
        if next.len() > EXACT_STATE_LIMIT {
            return None;
        }
        states = next;
    }
    let nf = f64::from(n.max(1));
    let (mut final_abs, mut max_abs, mut loss) = (0.0, 0.0, 0.0);
    let mut proportions = vec![0.0; k];
    for (state, probability) in &states {
        let d = scaled_imbalance(&state.counts, ratios) as f64 / r;
        final_abs += probability * d;
        max_abs += probability * state.max_scaled as f64 / r;
        loss += probability * d * d / nf;
        for (p, &c) in proportions.iter_mut().zip(&state.counts) {
            *p += probability * c as f64 / nf;
        }
    }
    Some(Quality {
        computation: "exact",
        n,
        replicates: 0,
        mean_abs_final_imbalance: final_abs,
        mean_max_imbalance: max_abs,
        mean_loss: loss,
        correct_guess_rate: if n == 0 { 0.0 } else { expected_correct / nf },
        mean_arm_proportions: proportions,
        within_strata: None,
        marginal_imbalance: Default::default(),
    })
}

/// The possible next allocations from `state`: (arm, probability, new block size, new block
/// slots used). Probabilities are the procedure's own, as in [`crate::randomise::allocate_with`].
fn transitions(scheme: &Scheme, state: &State) -> Vec<(usize, f64, u32, Vec<u32>)> {
    let ratios = scheme.ratios();
    let k = ratios.len();
    let same_block = |arm: usize, p: f64| (arm, p, 0, vec![0; k]);
    match scheme {
        Scheme::Simple { ratios } => {
            let total: f64 = ratios.iter().map(|&r| f64::from(r)).sum();
            (0..k)
                .map(|a| same_block(a, f64::from(ratios[a]) / total))
                .collect()
        }
        Scheme::PermutedBlocks {
            ratios,
            block_sizes,
        } => {
            let sum: u32 = ratios.iter().sum();
            let used: u32 = state.block_used.iter().sum();
            let mut out = Vec::new();
            if state.block_size == 0 || used >= state.block_size {
                // A new block: its size is drawn first, then its first slot.
                let share = 1.0 / block_sizes.len() as f64;
                for &size in block_sizes {
                    for (a, &r) in ratios.iter().enumerate() {
                        let mut block_used = vec![0; k];
                        block_used[a] = 1;
                        out.push((
                            a,
                            share * f64::from(r * size / sum) / f64::from(size),
                            size,
                            block_used,
                        ));
                    }
                }
            } else {
                let size = state.block_size;
                let left = f64::from(size - used);
                for (a, &r) in ratios.iter().enumerate() {
                    let remaining = r * size / sum - state.block_used[a];
                    let mut block_used = state.block_used.clone();
                    block_used[a] += 1;
                    out.push((a, f64::from(remaining) / left, size, block_used));
                }
            }
            out
        }
        Scheme::BiasedCoin { .. } | Scheme::BigStick { .. } | Scheme::Urn { .. } => {
            let (probabilities, _) =
                crate::randomise::coins::probabilities(scheme, &state.counts, &vec![true; k]);
            probabilities
                .into_iter()
                .enumerate()
                .map(|(a, p)| same_block(a, p))
                .collect()
        }
        Scheme::Minimisation { .. } => Vec::new(),
    }
}
