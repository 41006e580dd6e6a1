//! Restricted mean survival time (RMST) up to a horizon τ, as R's
//! `print(survfit(...), rmean = tau)`, and differences between groups.
//!
//! The RMST is the area under the Kaplan–Meier curve from 0 to τ (the curve extended flat past
//! its last time). Its standard error is R's (`survmean`):
//! `var = sum_j A_j² d_j / (n_j (n_j - d_j))` over the curve's times `t_j <= τ`, where `A_j` is
//! the area under the curve from `t_j` to τ; a time where everyone at risk has the event
//! contributes 0 rather than infinity. No `n / (n - 1)` correction is applied, as in R.
//! A difference between two groups is normal with the two variances added.

use serde::Serialize;

use super::dist::{normal_two_sided_p, z_for_level};
use super::km::{kaplan_meier, KaplanMeier, KmOptions};
use super::StatsError;

/// RMST of one curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RestrictedMean {
    /// Area under the curve from 0 to τ.
    pub rmst: f64,
    /// R's standard error.
    pub se: f64,
}

/// RMST of one group with a Wald interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RmstGroup {
    /// Observations.
    pub n: usize,
    /// Events.
    pub events: usize,
    /// RMST.
    pub rmst: f64,
    /// Its standard error.
    pub se: f64,
    /// Lower Wald limit.
    pub lower: f64,
    /// Upper Wald limit.
    pub upper: f64,
}

/// RMST of a group minus that of the reference group (code 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RmstDifference {
    /// The group's code.
    pub group: usize,
    /// The reference group's code.
    pub reference: usize,
    /// Difference in RMST.
    pub difference: f64,
    /// Standard error, `sqrt(se_group² + se_reference²)`.
    pub se: f64,
    /// Lower Wald limit.
    pub lower: f64,
    /// Upper Wald limit.
    pub upper: f64,
    /// Two-sided p-value of difference / se.
    pub p: f64,
}

/// RMST per group and the differences from the first group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RmstComparison {
    /// The horizon.
    pub tau: f64,
    /// Per group code.
    pub groups: Vec<RmstGroup>,
    /// Each group after the first against the first.
    pub differences: Vec<RmstDifference>,
    /// Codes of the groups whose follow-up ends before τ (their curve is extended flat to τ,
    /// as R does; a statistician will want to know).
    pub extended: Vec<usize>,
}

impl KaplanMeier {
    /// RMST up to `tau` with R's standard error (`survmean` with `rmean = tau`).
    ///
    /// ```
    /// use rrct::stats::km::{kaplan_meier, KmOptions};
    /// let time = [1.0, 2.0, 2.0, 3.0, 4.0];
    /// let event = [true, true, false, true, false];
    /// let km = &kaplan_meier(&time, &event, None, &KmOptions::default()).unwrap()[0];
    /// // 1 + 0.8 + 0.6 + 0.3: one unit of time at each level of the curve.
    /// assert!((km.restricted_mean(4.0).rmst - 2.7).abs() < 1e-12);
    /// ```
    pub fn restricted_mean(&self, tau: f64) -> RestrictedMean {
        // survmean: keep the curve's times <= tau, close with tau.
        let kept: Vec<_> = self.steps.iter().take_while(|s| s.time <= tau).collect();
        if kept.is_empty() {
            return RestrictedMean { rmst: tau, se: 0.0 };
        }
        // rectangles[i] = (t_i - t_{i-1}) * S(t_{i-1}), over the kept times then tau.
        let mut previous_time = 0.0;
        let mut previous_surv = 1.0;
        let mut rectangles = Vec::with_capacity(kept.len() + 1);
        for s in &kept {
            rectangles.push((s.time - previous_time) * previous_surv);
            previous_time = s.time;
            previous_surv = s.survival;
        }
        rectangles.push((tau - previous_time) * previous_surv);
        let rmst: f64 = rectangles.iter().sum();
        // Area after each kept time, accumulated from tau backwards.
        let mut after = 0.0;
        let mut var = 0.0;
        for (j, s) in kept.iter().enumerate().rev() {
            after += rectangles[j + 1];
            let (nr, d) = (s.n_risk as f64, s.n_event as f64);
            let h = if nr - d == 0.0 {
                0.0
            } else {
                d / (nr * (nr - d))
            };
            var += after * after * h;
        }
        RestrictedMean {
            rmst,
            se: var.sqrt(),
        }
    }
}

/// RMST up to `tau` in each group `0..levels` and the difference of each group from group 0.
///
/// Like R, `tau` before the earliest time in the data is an error.
///
/// ```
/// use rrct::stats::rmst::rmst;
/// let time = [2.0, 4.0, 6.0, 8.0, 1.0, 2.0, 3.0, 4.0];
/// let event = [true; 8];
/// let group = [0, 0, 0, 0, 1, 1, 1, 1];
/// let r = rmst(&time, &event, &group, 2, 4.0, 0.95).unwrap();
/// assert!((r.groups[0].rmst - 3.5).abs() < 1e-12);
/// assert!((r.differences[0].difference - (2.5 - 3.5)).abs() < 1e-12);
/// ```
pub fn rmst(
    time: &[f64],
    event: &[bool],
    group: &[usize],
    levels: usize,
    tau: f64,
    conf_level: f64,
) -> Result<RmstComparison, StatsError> {
    let options = KmOptions {
        conf_level,
        ..KmOptions::default()
    };
    let curves = kaplan_meier(time, event, Some((group, levels)), &options)?;
    if !tau.is_finite() {
        return Err(StatsError::InvalidArgument(format!(
            "tau {tau} is not finite"
        )));
    }
    let first = time.iter().copied().fold(f64::INFINITY, f64::min);
    if tau < first {
        return Err(StatsError::InvalidArgument(format!(
            "tau {tau} is before the earliest time {first} (R: \"Truncation point for the mean \
             is < smallest survival\")"
        )));
    }
    let z = z_for_level(conf_level);
    let mut extended = Vec::new();
    let groups: Vec<RmstGroup> = curves
        .iter()
        .enumerate()
        .map(|(g, km)| {
            if km.steps.last().is_some_and(|s| s.time < tau) {
                extended.push(g);
            }
            let r = km.restricted_mean(tau);
            RmstGroup {
                n: km.n,
                events: km.events,
                rmst: r.rmst,
                se: r.se,
                lower: r.rmst - z * r.se,
                upper: r.rmst + z * r.se,
            }
        })
        .collect();
    let differences = (1..groups.len())
        .map(|g| {
            let (a, r) = (groups[g], groups[0]);
            let difference = a.rmst - r.rmst;
            let se = (a.se * a.se + r.se * r.se).sqrt();
            RmstDifference {
                group: g,
                reference: 0,
                difference,
                se,
                lower: difference - z * se,
                upper: difference + z * se,
                p: normal_two_sided_p(difference / se),
            }
        })
        .collect();
    Ok(RmstComparison {
        tau,
        groups,
        differences,
        extended,
    })
}
