//! A binary endpoint in two arms: the 2×2 table.
//!
//! Risk ratio, risk difference and sample odds ratio with Wald intervals (log scale for the
//! ratios), Pearson's chi-square with and without Yates' continuity correction (R's
//! `chisq.test`/`prop.test` for a 2×2 table) and Fisher's exact two-sided p-value as R's
//! `fisher.test`: the sum of the probabilities of all tables with the same margins that are
//! no more likely than the observed one, "no more" allowing [`FISHER_RELATIVE_ERROR`].
//! Ratios are first arm over second arm, differences first minus second.

use serde::Serialize;

use super::dist::{chisq_sf, z_for_level};
use super::{StatsError, DEFAULT_CONF_LEVEL, FISHER_RELATIVE_ERROR};

/// The analysis of a 2×2 table; `None` where a quantity is undefined (a zero cell for a ratio,
/// a zero margin for the chi-square).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TwoByTwo {
    /// Events in each arm.
    pub events: [u64; 2],
    /// Size of each arm.
    pub n: [u64; 2],
    /// Event proportion in each arm.
    pub risk: [f64; 2],
    /// Risk ratio, first arm over second.
    pub rr: Option<f64>,
    /// Lower Wald limit of the risk ratio (log scale).
    pub rr_lower: Option<f64>,
    /// Upper Wald limit of the risk ratio (log scale).
    pub rr_upper: Option<f64>,
    /// Risk difference, first arm minus second.
    pub rd: f64,
    /// Lower Wald limit of the risk difference.
    pub rd_lower: f64,
    /// Upper Wald limit of the risk difference.
    pub rd_upper: f64,
    /// Sample odds ratio, first arm over second.
    #[serde(rename = "or")]
    pub odds_ratio: Option<f64>,
    /// Lower Wald limit of the odds ratio (log scale).
    pub or_lower: Option<f64>,
    /// Upper Wald limit of the odds ratio (log scale).
    pub or_upper: Option<f64>,
    /// Pearson chi-square without continuity correction (`correct = FALSE`).
    pub chisq: Option<f64>,
    /// Its p-value (1 df).
    pub chisq_p: Option<f64>,
    /// Chi-square with Yates' continuity correction (R's default `correct = TRUE`).
    pub chisq_yates: Option<f64>,
    /// Its p-value.
    pub chisq_yates_p: Option<f64>,
    /// Fisher's exact test, two-sided.
    pub fisher_p: f64,
}

/// Analyses `events[0]` of `n[0]` against `events[1]` of `n[1]` at the 95% level.
///
/// ```
/// let t = rrct::stats::binary::two_by_two([15, 30], [100, 100]).unwrap();
/// assert!((t.rr.unwrap() - 0.5).abs() < 1e-15);
/// assert!((t.rd + 0.15).abs() < 1e-15);
/// ```
pub fn two_by_two(events: [u64; 2], n: [u64; 2]) -> Result<TwoByTwo, StatsError> {
    two_by_two_at(events, n, DEFAULT_CONF_LEVEL)
}

/// [`two_by_two`] at any confidence level in `(0, 1)`.
///
/// ```
/// let t90 = rrct::stats::binary::two_by_two_at([15, 30], [100, 100], 0.90).unwrap();
/// let t95 = rrct::stats::binary::two_by_two([15, 30], [100, 100]).unwrap();
/// assert!(t90.rd_upper < t95.rd_upper);
/// ```
pub fn two_by_two_at(events: [u64; 2], n: [u64; 2], level: f64) -> Result<TwoByTwo, StatsError> {
    for arm in 0..2 {
        if n[arm] == 0 {
            return Err(StatsError::InvalidTable(format!(
                "arm {} has no subjects",
                arm + 1
            )));
        }
        if events[arm] > n[arm] {
            return Err(StatsError::InvalidTable(format!(
                "arm {} has {} events among {} subjects",
                arm + 1,
                events[arm],
                n[arm]
            )));
        }
    }
    if !(level > 0.0 && level < 1.0) {
        return Err(StatsError::InvalidArgument(format!(
            "confidence level {level} is not in (0, 1)"
        )));
    }
    let z = z_for_level(level);
    let (a, b) = (events[0] as f64, events[1] as f64);
    let (na, nb) = (n[0] as f64, n[1] as f64);
    let (pa, pb) = (a / na, b / nb);
    // A ratio is an estimate when finite (0 included); its interval needs it positive.
    let finite = |v: f64| if v.is_finite() { Some(v) } else { None };

    let rr = pa / pb;
    let log_rr_se = (1.0 / a - 1.0 / na + 1.0 / b - 1.0 / nb).sqrt();
    let (rr_lower, rr_upper) = log_interval(rr, log_rr_se, z);

    let rd = pa - pb;
    let rd_se = (pa * (1.0 - pa) / na + pb * (1.0 - pb) / nb).sqrt();

    let odds = (a * (nb - b)) / (b * (na - a));
    let log_or_se = (1.0 / a + 1.0 / (na - a) + 1.0 / b + 1.0 / (nb - b)).sqrt();
    let (or_lower, or_upper) = log_interval(odds, log_or_se, z);

    let (chisq, chisq_yates) = pearson(a, b, na, nb);
    Ok(TwoByTwo {
        events,
        n,
        risk: [pa, pb],
        rr: finite(rr),
        rr_lower,
        rr_upper,
        rd,
        rd_lower: rd - z * rd_se,
        rd_upper: rd + z * rd_se,
        odds_ratio: finite(odds),
        or_lower,
        or_upper,
        chisq,
        chisq_p: chisq.map(|x| chisq_sf(x, 1.0)),
        chisq_yates,
        chisq_yates_p: chisq_yates.map(|x| chisq_sf(x, 1.0)),
        fisher_p: fisher_two_sided(events, n),
    })
}

/// Wald limits `exp(log(est) -+ z se)`, defined only for a positive finite estimate and
/// finite standard error.
fn log_interval(est: f64, se: f64, z: f64) -> (Option<f64>, Option<f64>) {
    if est.is_finite() && est > 0.0 && se.is_finite() {
        let l = est.ln();
        (Some((l - z * se).exp()), Some((l + z * se).exp()))
    } else {
        (None, None)
    }
}

/// Pearson's statistic for the table `[[a, na - a], [b, nb - b]]`, plain and with Yates'
/// correction `sum((|O - E| - min(0.5, |O - E|))² / E)`.
fn pearson(a: f64, b: f64, na: f64, nb: f64) -> (Option<f64>, Option<f64>) {
    let total = na + nb;
    let events = a + b;
    let non_events = total - events;
    if events == 0.0 || non_events == 0.0 {
        // A zero margin: expected counts of 0, R's NaN.
        return (None, None);
    }
    let cells = [
        (a, na * events / total),
        (na - a, na * non_events / total),
        (b, nb * events / total),
        (nb - b, nb * non_events / total),
    ];
    let dev = (a - na * events / total).abs();
    let yates = dev.min(0.5);
    let plain: f64 = cells.iter().map(|(o, e)| (o - e).powi(2) / e).sum();
    let corrected: f64 = cells
        .iter()
        .map(|(o, e)| ((o - e).abs() - yates).powi(2) / e)
        .sum();
    (Some(plain), Some(corrected))
}

/// Fisher's exact two-sided p-value (R's `fisher.test` for a 2×2 table, `or = 1`).
///
/// The hypergeometric probabilities of the tables with the observed margins are computed
/// relative to the mode by the ratio recurrence `d(x+1)/d(x) = (m-x)(k-x) / ((x+1)(n-k+x+1))`,
/// which needs no factorials and keeps full relative precision. Walking out from the mode
/// stops where the probabilities underflow to 0 (they add nothing), so even tables with
/// billions of subjects cost only the width of the distribution's bulk.
fn fisher_two_sided(events: [u64; 2], n: [u64; 2]) -> f64 {
    // R's layout: m = first-column total (events), nn = second-column total, k = first-row
    // total (arm 1), x = the top-left cell.
    let m = (events[0] + events[1]) as f64;
    let nn = (n[0] + n[1]) as f64 - m;
    let k = n[0] as f64;
    let x = events[0] as f64;
    let lo = (k - nn).max(0.0);
    let hi = k.min(m);
    // d(v + 1) / d(v), positive and finite for lo <= v < hi.
    let ratio = |v: f64| (m - v) * (k - v) / ((v + 1.0) * (nn - k + v + 1.0));
    // The mode of the hypergeometric distribution, where d is largest (taken as 1).
    let mode = (((k + 1.0) * (m + 1.0)) / (m + nn + 2.0))
        .floor()
        .clamp(lo, hi);
    let mut up = vec![1.0f64]; // d(mode), d(mode + 1), ...
    let (mut v, mut d) = (mode, 1.0f64);
    while v < hi {
        d *= ratio(v);
        if d == 0.0 {
            break;
        }
        v += 1.0;
        up.push(d);
    }
    let mut down = Vec::new(); // d(mode - 1), d(mode - 2), ...
    let (mut v, mut d) = (mode, 1.0f64);
    while v > lo {
        d /= ratio(v - 1.0);
        if d == 0.0 {
            break;
        }
        v -= 1.0;
        down.push(d);
    }
    let at = |x: f64| {
        if x >= mode {
            up.get((x - mode) as usize).copied()
        } else {
            down.get((mode - x - 1.0) as usize).copied()
        }
        .unwrap_or(0.0)
    };
    let total: f64 = up.iter().chain(&down).sum();
    let observed = at(x) * FISHER_RELATIVE_ERROR;
    let tail: f64 = up.iter().chain(&down).filter(|&&v| v <= observed).sum();
    (tail / total).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fisher_tea_tasting() {
        // R: fisher.test(matrix(c(3, 1, 1, 3), 2))$p.value = 0.4857142857142857
        let p = fisher_two_sided([3, 1], [4, 4]);
        assert!((p - 0.485_714_285_714_285_7).abs() < 1e-15);
    }

    #[test]
    fn zero_cell_gives_no_ratio_interval() {
        let t = two_by_two([0, 5], [20, 20]).unwrap();
        assert_eq!(t.rr, Some(0.0));
        assert_eq!((t.rr_lower, t.rr_upper), (None, None));
        let t = two_by_two([0, 0], [20, 20]).unwrap();
        assert_eq!(t.chisq, None);
        assert_eq!(t.rr, None);
        assert!((t.fisher_p - 1.0).abs() < 1e-15);
    }

    #[test]
    fn huge_tables_are_quick() {
        let t = two_by_two([10_000_000, 10_005_000], [40_000_000, 40_000_000]);
        let p = t.unwrap().fisher_p;
        assert!(p > 0.0 && p < 1.0, "{p}");
        let far = fisher_two_sided([1_000_000, 2_000_000], [4_000_000, 4_000_000]);
        assert_eq!(far, 0.0);
    }

    #[test]
    fn invalid_tables() {
        assert!(two_by_two([3, 1], [2, 4]).is_err());
        assert!(two_by_two([0, 1], [0, 4]).is_err());
    }
}
