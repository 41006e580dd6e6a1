//! The count-driven procedures: Efron's biased coin, the big stick and Wei's urn. Each turns the
//! stratum's allocations per arm into a probability per arm; the caller draws.

use serde_json::{json, Value};

use super::Scheme;

/// Probabilities per arm and the audit detail, for the biased coin, big stick and urn.
/// `counts` has one entry per arm; ineligible arms get probability 0.
pub(super) fn probabilities(
    scheme: &Scheme,
    counts: &[u64],
    eligible: &[bool],
) -> (Vec<f64>, Value) {
    let only: Vec<usize> = (0..eligible.len()).filter(|&a| eligible[a]).collect();
    if let ([arm], Scheme::BiasedCoin { .. } | Scheme::BigStick { .. }) = (only.as_slice(), scheme)
    {
        let mut probabilities = vec![0.0; eligible.len()];
        probabilities[*arm] = 1.0;
        return (probabilities, json!({ "forced_by_eligibility": true }));
    }
    // Signed difference n₁ − n₂ of the two-arm designs.
    let difference = counts[0] as i64 - counts.get(1).copied().unwrap_or(0) as i64;
    match scheme {
        Scheme::BiasedCoin { p, .. } => {
            let probabilities = match difference {
                0 => vec![0.5, 0.5],
                d if d > 0 => vec![1.0 - p, *p],
                _ => vec![*p, 1.0 - p],
            };
            (probabilities, json!({ "difference": difference, "p": p }))
        }
        Scheme::BigStick { max_imbalance, .. } => {
            let bound = i64::from(*max_imbalance);
            let probabilities = if difference >= bound {
                vec![0.0, 1.0]
            } else if difference <= -bound {
                vec![1.0, 0.0]
            } else {
                vec![0.5, 0.5]
            };
            (
                probabilities,
                json!({ "difference": difference, "max_imbalance": max_imbalance }),
            )
        }
        Scheme::Urn { alpha, beta, .. } => {
            let total: u64 = counts.iter().sum();
            let balls: Vec<u64> = counts
                .iter()
                .zip(eligible)
                .map(|(&n, &e)| {
                    if e {
                        u64::from(*alpha).saturating_add(u64::from(*beta).saturating_mul(total - n))
                    } else {
                        0
                    }
                })
                .collect();
            let in_urn: u64 = balls.iter().sum();
            let probabilities: Vec<f64> = if in_urn == 0 {
                // UD(0, β) before its first allocation: the urn is empty, draw uniformly.
                let k = only.len() as f64;
                eligible
                    .iter()
                    .map(|&e| if e { 1.0 / k } else { 0.0 })
                    .collect()
            } else {
                balls.iter().map(|&b| b as f64 / in_urn as f64).collect()
            };
            (
                probabilities,
                json!({ "balls": balls, "alpha": alpha, "beta": beta }),
            )
        }
        Scheme::Simple { .. } | Scheme::PermutedBlocks { .. } | Scheme::Minimisation { .. } => {
            unreachable!("only the count-driven procedures come here")
        }
    }
}
