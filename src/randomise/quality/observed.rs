//! The quality of one trial's actual allocation sequence, with the definitions of the module
//! docs applied to the allocations as they happened rather than averaged over simulated
//! sequences: final and maximum imbalance overall and in each stratum, and the share of
//! allocations an investigator using the convergence strategy would have guessed.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{guess_score, imbalance};

/// Balance and predictability of one sequence of allocations (the trial's, or one stratum's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SequenceQuality {
    /// Allocations.
    pub n: u64,
    /// Allocations per arm, in the order of the ratios.
    pub counts: Vec<u64>,
    /// Imbalance `D` after the last allocation.
    pub final_imbalance: f64,
    /// Largest imbalance after any allocation.
    pub max_imbalance: f64,
    /// Expected correct convergence-strategy guesses over `n` (`None` when `n` is 0), the
    /// guesser seeing this sequence's counts only.
    pub correct_guess_rate: Option<f64>,
}

impl SequenceQuality {
    fn new(arms: usize) -> Self {
        SequenceQuality {
            n: 0,
            counts: vec![0; arms],
            final_imbalance: 0.0,
            max_imbalance: 0.0,
            correct_guess_rate: None,
        }
    }

    /// Guess, then record the allocation of `arm`; returns the guess's expected correctness.
    fn allocate(&mut self, arm: usize, ratios: &[u32], guessed: &mut f64) {
        *guessed += guess_score(&self.counts, ratios, arm);
        self.counts[arm] += 1;
        self.n += 1;
        self.final_imbalance = imbalance(&self.counts, ratios);
        self.max_imbalance = self.max_imbalance.max(self.final_imbalance);
    }
}

/// A trial's allocations measured as they happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservedQuality {
    /// The whole trial; the guesser sees the trial-wide counts.
    pub overall: SequenceQuality,
    /// Correct guesses over all allocations by a guesser who sees only the patient's stratum
    /// (a site investigator under stratified randomisation); `None` without allocations.
    pub within_strata_correct_guess_rate: Option<f64>,
    /// Per stratum key.
    pub strata: BTreeMap<String, SequenceQuality>,
}

/// Measure a sequence of `(stratum key, arm index)` allocations in randomisation order, for
/// arms with the given ratio weights. Arm indices outside the ratios are ignored.
///
/// ```
/// use rrct::randomise::quality::observed;
/// let seq = [("a", 0), ("a", 1), ("b", 0), ("b", 0)];
/// let q = observed(seq, &[1, 1]);
/// assert_eq!(q.overall.counts, vec![3, 1]);
/// assert_eq!((q.overall.final_imbalance, q.overall.max_imbalance), (2.0, 2.0));
/// assert_eq!(q.strata["b"].final_imbalance, 2.0);
/// // Overall: ½ (tie), 1 (arm 1 lagged), ½ (tie), 0 (arm 1 lagged, 0 given) = 2 of 4.
/// assert_eq!(q.overall.correct_guess_rate, Some(0.5));
/// ```
pub fn observed<'a>(
    sequence: impl IntoIterator<Item = (&'a str, usize)>,
    ratios: &[u32],
) -> ObservedQuality {
    let arms = ratios.len();
    let mut overall = SequenceQuality::new(arms);
    let mut overall_guessed = 0.0;
    let mut strata: BTreeMap<String, (SequenceQuality, f64)> = BTreeMap::new();
    let mut within_guessed = 0.0;
    for (stratum, arm) in sequence {
        if arm >= arms {
            continue;
        }
        overall.allocate(arm, ratios, &mut overall_guessed);
        let (s, guessed) = strata
            .entry(stratum.to_string())
            .or_insert_with(|| (SequenceQuality::new(arms), 0.0));
        let before = *guessed;
        s.allocate(arm, ratios, guessed);
        within_guessed += *guessed - before;
    }
    let rate = |guessed: f64, n: u64| (n > 0).then(|| guessed / n as f64);
    overall.correct_guess_rate = rate(overall_guessed, overall.n);
    ObservedQuality {
        within_strata_correct_guess_rate: rate(within_guessed, overall.n),
        overall,
        strata: strata
            .into_iter()
            .map(|(key, (mut s, guessed))| {
                s.correct_guess_rate = rate(guessed, s.n);
                (key, s)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permuted_blocks_of_two_are_half_guessable_and_never_off_by_more_than_one() {
        // Complete blocks AB, BA, AB in one stratum: the second of each pair is always guessed,
        // the first is a tie (½): 3 × (½ + 1) / 6 = 0.75.
        let seq = [0, 1, 1, 0, 0, 1].map(|a| ("s", a));
        let q = observed(seq, &[1, 1]);
        assert_eq!(q.overall.final_imbalance, 0.0);
        assert_eq!(q.overall.max_imbalance, 1.0);
        assert_eq!(q.overall.correct_guess_rate, Some(0.75));
        assert_eq!(q.within_strata_correct_guess_rate, Some(0.75));
        assert_eq!(q.strata["s"], q.overall);
    }

    #[test]
    fn unequal_ratios_and_empty_sequences() {
        // 2:1 with counts 2 and 1: exactly on target.
        let q = observed([("s", 0), ("s", 0), ("s", 1)], &[2, 1]);
        assert_eq!(q.overall.final_imbalance, 0.0);
        let empty = observed(std::iter::empty(), &[1, 1]);
        assert_eq!(empty.overall.correct_guess_rate, None);
        assert!(empty.strata.is_empty());
    }
}
