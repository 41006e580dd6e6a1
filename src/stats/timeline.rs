//! Observations ordered by stratum and time, with R's near-tie fix applied.
//!
//! Every survival statistic walks its data in time order within strata. Sorting is the one
//! step that is not a plain linear pass, so it is done once here, and in linear time: a
//! counting sort for whole-number times (days, months), else a stable LSD radix sort on the
//! bit patterns of the (non-negative) times.
//! R's `aeqSurv` (applied by `survfit`, `survdiff` and `coxph` by default) then merges times
//! that differ by no more than [`SQRT_DOUBLE_EPS`], absolutely or relative to the mean
//! absolute unique time, into the first time of their run, so that `0.1 + 0.2` and `0.3` tie.

use super::{StatsError, SQRT_DOUBLE_EPS};

/// Observations sorted by (stratum, time); within a tied time the original order is kept.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    /// Observation indices, sorted.
    pub order: Vec<u32>,
    /// The (tie-fixed) time of `order[k]`, by sorted position `k`.
    pub time: Vec<f64>,
    /// For each stratum code, its range of sorted positions (empty for absent codes).
    pub strata: Vec<std::ops::Range<usize>>,
}

/// Checks that every time is finite and non-negative.
pub(crate) fn check_times(time: &[f64]) -> Result<(), StatsError> {
    match time.iter().position(|t| !(t.is_finite() && *t >= 0.0)) {
        Some(index) => Err(StatsError::InvalidTime {
            index,
            value: time[index],
        }),
        None => Ok(()),
    }
}

/// Checks that `codes` has one value below `levels` per observation.
pub(crate) fn check_codes(
    what: &str,
    codes: &[usize],
    n: usize,
    levels: usize,
) -> Result<(), StatsError> {
    if codes.len() != n {
        return Err(StatsError::LengthMismatch {
            what: what.to_string(),
            expected: n,
            found: codes.len(),
        });
    }
    match codes.iter().position(|&c| c >= levels) {
        Some(index) => Err(StatsError::InvalidCode {
            what: what.to_string(),
            index,
            code: codes[index],
            levels,
        }),
        None => Ok(()),
    }
}

impl Timeline {
    /// Sorts `time` (already checked by [`check_times`]) within the strata given as codes
    /// `0..levels` (all one stratum when `None`), applying the `aeqSurv` tie fix over all
    /// times together, as R does before splitting by stratum.
    pub(crate) fn build(time: &[f64], strata: Option<(&[usize], usize)>) -> Self {
        let (by_time, mut sorted) = argsort(time);
        fix_near_ties(&mut sorted);
        match strata {
            None => Timeline {
                order: by_time,
                time: sorted,
                strata: std::iter::once(0..time.len()).collect(),
            },
            Some((codes, levels)) => {
                // Stable counting sort by stratum keeps time order inside each stratum.
                let mut start = vec![0usize; levels + 1];
                for &c in codes {
                    start[c + 1] += 1;
                }
                for s in 0..levels {
                    start[s + 1] += start[s];
                }
                let ranges = (0..levels).map(|s| start[s]..start[s + 1]).collect();
                let mut next = start;
                let mut order = vec![0u32; time.len()];
                let mut fixed = vec![0f64; time.len()];
                for (k, &i) in by_time.iter().enumerate() {
                    let s = codes[i as usize];
                    order[next[s]] = i;
                    fixed[next[s]] = sorted[k];
                    next[s] += 1;
                }
                Timeline {
                    order,
                    time: fixed,
                    strata: ranges,
                }
            }
        }
    }
}

/// Stable argsort of non-negative finite times; returns the order and the sorted times.
///
/// Whole-number times in a range no wider than the number of observations (days, months:
/// the usual register data) take a counting sort, two linear passes; anything else an LSD
/// radix sort over the bytes of the IEEE bit patterns, which order like the values for
/// non-negative doubles, skipping bytes on which all keys agree.
fn argsort(time: &[f64]) -> (Vec<u32>, Vec<f64>) {
    let n = time.len();
    let (lo, hi) = time
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &t| {
            (lo.min(t), hi.max(t))
        });
    let whole = time.iter().all(|t| t.fract() == 0.0);
    if n > 0 && whole && hi - lo < (n.max(1 << 16)) as f64 {
        return counting_argsort(time, lo, (hi - lo) as usize + 1);
    }
    radix_argsort(time)
}

fn counting_argsort(time: &[f64], lo: f64, width: usize) -> (Vec<u32>, Vec<f64>) {
    let bucket = |t: f64| (t - lo) as usize;
    let mut start = vec![0usize; width + 1];
    for &t in time {
        start[bucket(t) + 1] += 1;
    }
    for b in 0..width {
        start[b + 1] += start[b];
    }
    let mut sorted = vec![0f64; time.len()];
    for b in 0..width {
        sorted[start[b]..start[b + 1]].fill(lo + b as f64);
    }
    let mut order = vec![0u32; time.len()];
    for (i, &t) in time.iter().enumerate() {
        let b = bucket(t);
        order[start[b]] = i as u32;
        start[b] += 1;
    }
    (order, sorted)
}

fn radix_argsort(time: &[f64]) -> (Vec<u32>, Vec<f64>) {
    // -0.0 has the sign bit set: map it to +0.0 so that it sorts first.
    let key = |t: f64| if t == 0.0 { 0u64 } else { t.to_bits() };
    let mut items: Vec<(u64, u32)> = time
        .iter()
        .enumerate()
        .map(|(i, &t)| (key(t), i as u32))
        .collect();
    let n = items.len();
    let mut counts = vec![[0usize; 256]; 8];
    for &(k, _) in &items {
        for (b, c) in counts.iter_mut().enumerate() {
            c[((k >> (8 * b)) & 0xff) as usize] += 1;
        }
    }
    let mut buffer = vec![(0u64, 0u32); n];
    for (b, c) in counts.iter().enumerate() {
        if c.contains(&n) {
            continue;
        }
        let mut offset = [0usize; 256];
        let mut sum = 0;
        for d in 0..256 {
            offset[d] = sum;
            sum += c[d];
        }
        for &item in &items {
            let d = ((item.0 >> (8 * b)) & 0xff) as usize;
            buffer[offset[d]] = item;
            offset[d] += 1;
        }
        std::mem::swap(&mut items, &mut buffer);
    }
    items
        .into_iter()
        .map(|(k, i)| (i, f64::from_bits(k)))
        .unzip()
}

/// R's `aeqSurv` on sorted times: consecutive unique times `y[i] < y[i+1]` are tied when
/// `y[i+1] - y[i] <= tol` or `(y[i+1] - y[i]) / mean(|y|) <= tol` (mean over unique times),
/// and every time is replaced by the first time of its run of ties.
fn fix_near_ties(sorted: &mut [f64]) {
    if sorted.len() < 2 {
        return;
    }
    let mut unique_sum = 0.0;
    let mut unique_count = 0usize;
    let mut previous = f64::NAN;
    for &t in sorted.iter() {
        if t != previous {
            unique_sum += t.abs();
            unique_count += 1;
            previous = t;
        }
    }
    let mean = unique_sum / unique_count as f64;
    let tied = |a: f64, b: f64| {
        let dy = b - a;
        dy <= SQRT_DOUBLE_EPS || dy / mean <= SQRT_DOUBLE_EPS
    };
    if !sorted.windows(2).any(|w| w[0] != w[1] && tied(w[0], w[1])) {
        return;
    }
    let mut cut = sorted[0];
    let mut previous_unique = sorted[0];
    for t in sorted.iter_mut() {
        if *t != previous_unique {
            if !tied(previous_unique, *t) {
                cut = *t;
            }
            previous_unique = *t;
        }
        *t = cut;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_are_stable_and_ordered() {
        let t = [3.0, 1.0, 2.5, 1.0, 0.0, 1e9, 2.5, -0.0];
        let (order, sorted) = argsort(&t);
        assert_eq!(order, vec![4, 7, 1, 3, 2, 6, 0, 5]);
        assert_eq!(sorted, vec![0.0, 0.0, 1.0, 1.0, 2.5, 2.5, 3.0, 1e9]);
        let days = [3.0, 1.0, 7.0, 1.0, 0.0, 3.0];
        let (order, sorted) = argsort(&days);
        assert_eq!(order, vec![4, 1, 3, 0, 5, 2]);
        assert_eq!(sorted, vec![0.0, 1.0, 1.0, 3.0, 3.0, 7.0]);
        assert_eq!(radix_argsort(&days).0, order);
    }

    #[test]
    fn near_ties_merge_into_first_of_run() {
        let mut t = vec![0.1 + 0.2, 0.3, 1.0, 2.0];
        t.sort_by(f64::total_cmp);
        fix_near_ties(&mut t);
        assert_eq!(t, vec![0.3, 0.3, 1.0, 2.0]);
    }

    #[test]
    fn strata_keep_time_order() {
        let t = [5.0, 1.0, 4.0, 2.0, 3.0];
        let s = [1, 0, 1, 0, 2];
        let tl = Timeline::build(&t, Some((&s, 4)));
        assert_eq!(tl.order, vec![1, 3, 2, 0, 4]);
        assert_eq!(tl.time, vec![1.0, 2.0, 4.0, 5.0, 3.0]);
        assert_eq!(tl.strata, vec![0..2, 2..4, 4..5, 5..5]);
    }
}
