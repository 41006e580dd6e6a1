//! The log-rank test for two or more groups, optionally stratified, as R's
//! `survdiff(Surv(time, event) ~ group + strata(s))` with `rho = 0`.
//!
//! Observed and expected events and the variance matrix of `observed - expected` are summed
//! over strata. R's chi-square drops groups with no expected events and then the first
//! remaining group (the full variance matrix has rank `k - 1`) and solves the remaining
//! system; the statistic does not depend on which group is dropped.

use serde::Serialize;

use super::km::check_inputs;
use super::linalg::{lu_solve, Square};
use super::timeline::{check_codes, Timeline};
use super::{ChiSquareTest, StatsError};

/// Observed and expected events in one group, summed over strata.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GroupCounts {
    /// Observations in the group.
    pub n: usize,
    /// Observed events.
    pub observed: f64,
    /// Expected events under the null hypothesis.
    pub expected: f64,
}

/// The log-rank test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogRank {
    /// Chi-square statistic (0 when fewer than two groups have expected events, as R).
    pub chisq: f64,
    /// Degrees of freedom: groups with expected events minus one.
    pub df: usize,
    /// Upper-tail p-value.
    pub p: f64,
    /// Per group code `0..levels`.
    pub groups: Vec<GroupCounts>,
    /// The variance matrix of `observed - expected` (R's `fit$var`), row-major `levels²`.
    #[serde(skip)]
    pub variance: Vec<f64>,
}

/// Log-rank test of groups `0..levels`, stratified by codes `0..strata_levels` when given.
///
/// ```
/// use rrct::stats::logrank::log_rank;
/// let time = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let event = [true, true, true, true, true, true];
/// let group = [0, 0, 0, 1, 1, 1];
/// let t = log_rank(&time, &event, &group, 2, None).unwrap();
/// assert_eq!(t.df, 1);
/// assert!((t.groups[0].expected - 1.15).abs() < 1e-12);
/// ```
pub fn log_rank(
    time: &[f64],
    event: &[bool],
    group: &[usize],
    levels: usize,
    strata: Option<(&[usize], usize)>,
) -> Result<LogRank, StatsError> {
    check_inputs(time, event)?;
    check_codes("group", group, time.len(), levels)?;
    if let Some((codes, s)) = strata {
        check_codes("stratum", codes, time.len(), s)?;
    }
    let mut n = vec![0usize; levels];
    for &g in group {
        n[g] += 1;
    }
    let present = n.iter().filter(|&&c| c > 0).count();
    if present < 2 {
        return Err(StatsError::TooFewGroups {
            what: "the log-rank test".into(),
            found: present,
        });
    }
    let timeline = Timeline::build(time, strata);
    let k = levels;
    let mut observed = vec![0.0f64; k];
    let mut expected = vec![0.0f64; k];
    let mut var = vec![0.0f64; k * k];
    let mut risk = vec![0.0f64; k];
    let mut leaving = vec![0.0f64; k];
    for range in &timeline.strata {
        risk.iter_mut().for_each(|r| *r = 0.0);
        for pos in range.clone() {
            risk[group[timeline.order[pos] as usize]] += 1.0;
        }
        let mut nrisk = range.len() as f64;
        let mut pos = range.start;
        while pos < range.end {
            let t = timeline.time[pos];
            let mut deaths = 0.0;
            leaving.iter_mut().for_each(|r| *r = 0.0);
            while pos < range.end && timeline.time[pos] == t {
                let i = timeline.order[pos] as usize;
                leaving[group[i]] += 1.0;
                if event[i] {
                    deaths += 1.0;
                    observed[group[i]] += 1.0;
                }
                pos += 1;
            }
            if deaths > 0.0 {
                for g in 0..k {
                    expected[g] += deaths * risk[g] / nrisk;
                }
                if nrisk > 1.0 {
                    // survdiff2: var[j][j] += tmp; var[j][l] -= tmp * risk[l] / nrisk.
                    for j in 0..k {
                        let tmp = deaths * risk[j] * (nrisk - deaths) / (nrisk * (nrisk - 1.0));
                        var[j * k + j] += tmp;
                        for l in 0..k {
                            var[j * k + l] -= tmp * risk[l] / nrisk;
                        }
                    }
                }
            }
            for g in 0..k {
                risk[g] -= leaving[g];
                nrisk -= leaving[g];
            }
        }
    }
    let used: Vec<usize> = (0..k).filter(|&g| expected[g] > 0.0).collect();
    let df = used.len().saturating_sub(1);
    let chisq = if used.len() < 2 {
        0.0
    } else {
        let keep = &used[1..];
        let m = keep.len();
        let mut vv = Square::zeros(m);
        for (a, &ga) in keep.iter().enumerate() {
            for (b, &gb) in keep.iter().enumerate() {
                vv.set(a, b, var[ga * k + gb]);
            }
        }
        let diff: Vec<f64> = keep.iter().map(|&g| observed[g] - expected[g]).collect();
        let solved = lu_solve(vv, diff.clone()).ok_or(StatsError::SingularVariance)?;
        solved.iter().zip(&diff).map(|(s, d)| s * d).sum()
    };
    let test = ChiSquareTest::new(chisq, df);
    Ok(LogRank {
        chisq,
        df,
        p: test.p,
        groups: (0..k)
            .map(|g| GroupCounts {
                n: n[g],
                observed: observed[g],
                expected: expected[g],
            })
            .collect(),
        variance: var,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_groups_closed_form() {
        // Two groups, no ties: (O - E)^2 / V with hypergeometric variances.
        let time = [1.0, 2.0, 3.0, 4.0];
        let event = [true, true, true, true];
        let group = [0, 1, 0, 1];
        let t = log_rank(&time, &event, &group, 2, None).unwrap();
        // E0 = 2/4 + 1/3 + 1/2 + 0 = 4/3; V = 1/4 + 2/9 + 1/4 = 13/18.
        assert!((t.groups[0].expected - 4.0 / 3.0).abs() < 1e-14);
        let chi = (2.0f64 - 4.0 / 3.0).powi(2) / (13.0 / 18.0);
        assert!((t.chisq - chi).abs() < 1e-14);
    }

    #[test]
    fn one_group_is_an_error() {
        let r = log_rank(&[1.0, 2.0], &[true, true], &[0, 0], 2, None);
        assert!(matches!(r, Err(StatsError::TooFewGroups { .. })));
    }
}
