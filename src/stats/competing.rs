//! Competing risks: the Aalen–Johansen cumulative incidence per group, as R's
//! `survfit(Surv(time, factor(status)) ~ group)`, and Gray's test of equal cumulative
//! incidence, as `cmprsk::cuminc`.
//!
//! Why the variance is the infinitesimal jackknife: since `survival` 3.0 the standard error
//! of a multi-state curve is always the robust (IJ) one, `sqrt(sum_i U_i(t)^2)` with `U_i` the
//! derivative of the estimate with respect to subject `i`'s case weight. Computed naively that
//! is `O(n × times)`; here it is one linear pass: every subject still at risk shares one
//! influence vector, and once a subject has left the risk set its influence evolves by the same
//! linear map as everyone else's who has left, so only the second-moment matrix of the departed
//! subjects (size `causes + 1`) needs carrying.
//!
//! Gray's test follows `cmprsk`'s `crstm` Fortran step for step (the score of each group but the
//! last, its variance with the `(d - 1)/(Y - 1)` tie corrections, summed over strata), on the
//! raw times (`cuminc` applies no near-tie fix).
//!
//! What it must never do: no I/O, no panics on data. Status codes are `0` for censored and
//! `1..=causes` for the cause of the event.

use serde::Serialize;

use super::dist::z_for_level;
use super::km::{confidence_limits, ConfType, KmOptions};
use super::linalg::{lu_solve, Square};
use super::timeline::{check_codes, check_times, Timeline};
use super::{ChiSquareTest, StatsError};

/// Checks times and status codes; returns the number of observations.
pub(crate) fn check_competing(
    time: &[f64],
    status: &[usize],
    causes: usize,
) -> Result<usize, StatsError> {
    if time.is_empty() {
        return Err(StatsError::NoObservations);
    }
    if time.len() > u32::MAX as usize {
        return Err(StatsError::InvalidArgument(format!(
            "{} observations: at most {} are supported",
            time.len(),
            u32::MAX
        )));
    }
    check_times(time)?;
    if causes == 0 {
        return Err(StatsError::InvalidArgument(
            "competing risks need at least one cause".into(),
        ));
    }
    check_codes("status", status, time.len(), causes + 1)?;
    Ok(time.len())
}

/// The cumulative incidence curves of one group: one column per distinct time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CumulativeIncidence {
    /// Observations in the group.
    pub n: usize,
    /// Events of each cause (index `cause - 1`).
    pub events: Vec<usize>,
    /// Distinct times, ascending.
    pub time: Vec<f64>,
    /// Number at risk just before each time.
    pub n_risk: Vec<usize>,
    /// Probability of being free of every event just after each time.
    pub event_free: Vec<f64>,
    /// Cumulative incidence of each cause (`[cause - 1][time]`).
    pub cif: Vec<Vec<f64>>,
    /// Its infinitesimal-jackknife standard error (`[cause - 1][time]`).
    pub std_err: Vec<Vec<f64>>,
}

/// A cumulative incidence at a requested time (one row of `summary(fit, times = )`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IncidenceAt {
    /// The requested time.
    pub time: f64,
    /// The estimate; `None` beyond the group's last time (R drops such times).
    pub cif: Option<f64>,
    /// Its standard error.
    pub std_err: Option<f64>,
    /// Lower confidence limit.
    pub lower: Option<f64>,
    /// Upper confidence limit.
    pub upper: Option<f64>,
}

/// Aalen–Johansen cumulative incidence of each cause per group code `0..levels` (one group
/// when `groups` is `None`), with R's near-tie fix (`aeqSurv`) applied over all times first.
///
/// ```
/// use rrct::stats::competing::cumulative_incidence;
/// // Five subjects: cause 1 at t=1, cause 2 at t=2, censored at 3, cause 1 at 4 and 5.
/// let time = [1.0, 2.0, 3.0, 4.0, 5.0];
/// let status = [1, 2, 0, 1, 1];
/// let c = &cumulative_incidence(&time, &status, 2, None).unwrap()[0];
/// assert_eq!(c.cif[0], vec![0.2, 0.2, 0.2, 0.5, 0.8]);
/// assert_eq!(c.cif[1][4], 0.2);
/// ```
pub fn cumulative_incidence(
    time: &[f64],
    status: &[usize],
    causes: usize,
    groups: Option<(&[usize], usize)>,
) -> Result<Vec<CumulativeIncidence>, StatsError> {
    let n = check_competing(time, status, causes)?;
    if let Some((codes, levels)) = groups {
        check_codes("group", codes, n, levels)?;
    }
    let timeline = Timeline::build(time, groups);
    Ok(timeline
        .strata
        .iter()
        .map(|range| {
            aalen_johansen(
                range
                    .clone()
                    .map(|k| (timeline.time[k], status[timeline.order[k] as usize])),
                range.len(),
                causes,
            )
        })
        .collect())
}

/// The curve from `(time, status)` pairs sorted by time.
fn aalen_johansen(
    sorted: impl Iterator<Item = (f64, usize)>,
    n: usize,
    causes: usize,
) -> CumulativeIncidence {
    let k1 = causes + 1;
    let mut out = CumulativeIncidence {
        n,
        events: vec![0; causes],
        time: Vec::new(),
        n_risk: Vec::new(),
        event_free: Vec::new(),
        cif: vec![Vec::new(); causes],
        std_err: vec![Vec::new(); causes],
    };
    let mut at_risk = n;
    let mut free = 1.0f64;
    let mut cif = vec![0.0f64; causes];
    // Influence shared by everyone still at risk: (event-free, cif_1..cif_K).
    let mut common = vec![0.0f64; k1];
    // Second moments of the influence of the subjects who have left.
    let mut moments = vec![0.0f64; k1 * k1];
    let mut d = vec![0usize; k1];
    let mut sorted = sorted.peekable();
    while let Some((t, s)) = sorted.next() {
        d.iter_mut().for_each(|v| *v = 0);
        d[s] += 1;
        while let Some(&(u, s2)) = sorted.peek() {
            if u != t {
                break;
            }
            d[s2] += 1;
            sorted.next();
        }
        let censored = d[0];
        let dead: usize = d[1..].iter().sum();
        let y = at_risk as f64;
        if dead > 0 {
            let h = dead as f64 / y;
            // Everyone who has left evolves by T: a' = a (1 - h), b_k' = b_k + a h_k; so
            // M <- T M T', rows first, then columns.
            for j in 0..k1 {
                let m0 = moments[j];
                moments[j] = m0 * (1.0 - h);
                for k in 1..k1 {
                    moments[k * k1 + j] += m0 * d[k] as f64 / y;
                }
            }
            for i in 0..k1 {
                let m0 = moments[i * k1];
                moments[i * k1] = m0 * (1.0 - h);
                for k in 1..k1 {
                    moments[i * k1 + k] += m0 * d[k] as f64 / y;
                }
            }
            let before = free;
            let a = common[0];
            common[0] = a * (1.0 - h) + before * h / y;
            for k in 1..k1 {
                let hk = d[k] as f64 / y;
                common[k] += a * hk - before * hk / y;
            }
            for j in 1..k1 {
                if d[j] == 0 {
                    continue;
                }
                let mut v = common.clone();
                v[0] -= before / y;
                v[j] += before / y;
                add_outer(&mut moments, &v, d[j] as f64);
            }
            free = before * (1.0 - h);
            for k in 1..k1 {
                cif[k - 1] += before * d[k] as f64 / y;
                out.events[k - 1] += d[k];
            }
        }
        if censored > 0 {
            add_outer(&mut moments, &common, censored as f64);
        }
        let remaining = (at_risk - dead - censored) as f64;
        out.time.push(t);
        out.n_risk.push(at_risk);
        out.event_free.push(free);
        for k in 1..k1 {
            out.cif[k - 1].push(cif[k - 1]);
            let var = moments[k * k1 + k] + remaining * common[k] * common[k];
            out.std_err[k - 1].push(var.max(0.0).sqrt());
        }
        at_risk -= dead + censored;
    }
    out
}

fn add_outer(m: &mut [f64], v: &[f64], w: f64) {
    let k = v.len();
    for i in 0..k {
        for j in 0..k {
            m[i * k + j] += w * v[i] * v[j];
        }
    }
}

/// R's `survfit_confint(p, se, logse = FALSE, ...)`: limits for a probability `p` with
/// standard error `se` (not on the log scale).
pub fn probability_limits(
    p: f64,
    se: f64,
    conf_type: ConfType,
    conf_level: f64,
) -> (Option<f64>, Option<f64>) {
    let se_log = if se == 0.0 { 0.0 } else { se / p };
    confidence_limits(p, se_log, conf_type, z_for_level(conf_level))
}

impl CumulativeIncidence {
    /// The incidence of `cause` (1-based) at each requested time, ascending (non-finite times
    /// skipped), as `summary(fit, times = )`: 0 before the first time, the last step at or
    /// before the requested time, `None` beyond the group's last time.
    pub fn at(&self, cause: usize, times: &[f64], options: &KmOptions) -> Vec<IncidenceAt> {
        let mut times: Vec<f64> = times.iter().copied().filter(|t| t.is_finite()).collect();
        times.sort_by(f64::total_cmp);
        let (Some(cif), Some(se)) = (self.cif.get(cause - 1), self.std_err.get(cause - 1)) else {
            return Vec::new();
        };
        times
            .into_iter()
            .map(|t| {
                let last = self.time.last().copied().unwrap_or(f64::NEG_INFINITY);
                if t > last {
                    return IncidenceAt {
                        time: t,
                        cif: None,
                        std_err: None,
                        lower: None,
                        upper: None,
                    };
                }
                let k = self.time.partition_point(|&s| s <= t);
                let (p, e, (lower, upper)) = if k == 0 {
                    // Before the first time R's summary reports the starting state, limits
                    // included: an incidence of 0 with interval [0, 0].
                    (0.0, 0.0, (Some(0.0), Some(0.0)))
                } else {
                    let (p, e) = (cif[k - 1], se[k - 1]);
                    (
                        p,
                        e,
                        probability_limits(p, e, options.conf_type, options.conf_level),
                    )
                };
                IncidenceAt {
                    time: t,
                    cif: Some(p),
                    std_err: Some(e),
                    lower,
                    upper,
                }
            })
            .collect()
    }
}

/// Gray's test for one cause.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GrayTest {
    /// The cause tested (1-based).
    pub cause: usize,
    /// The chi-square statistic with `groups - 1` degrees of freedom and its p-value.
    #[serde(flatten)]
    pub test: ChiSquareTest,
}

/// Gray's test of equal cumulative incidence of each cause across group codes `0..levels`,
/// optionally stratified, with weight power `rho` (`cmprsk::cuminc(..., rho = 0)`).
///
/// ```
/// use rrct::stats::competing::gray_test;
/// let time = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
/// let status = [1, 2, 1, 0, 1, 2, 0, 1];
/// let group = [0, 0, 0, 0, 1, 1, 1, 1];
/// let tests = gray_test(&time, &status, 2, (&group, 2), None, 0.0).unwrap();
/// assert_eq!(tests.len(), 2);
/// assert!(tests[0].test.p > 0.0 && tests[0].test.p <= 1.0);
/// ```
pub fn gray_test(
    time: &[f64],
    status: &[usize],
    causes: usize,
    groups: (&[usize], usize),
    strata: Option<(&[usize], usize)>,
    rho: f64,
) -> Result<Vec<GrayTest>, StatsError> {
    let n = check_competing(time, status, causes)?;
    check_codes("group", groups.0, n, groups.1)?;
    if let Some((codes, levels)) = strata {
        check_codes("stratum", codes, n, levels)?;
    }
    if !rho.is_finite() {
        return Err(StatsError::InvalidArgument(format!(
            "rho {rho} is not finite"
        )));
    }
    // Groups without observations are dropped, as `cuminc` does.
    let mut present = vec![false; groups.1];
    for &g in groups.0 {
        present[g] = true;
    }
    let mut renumber = vec![usize::MAX; groups.1];
    let mut ng = 0usize;
    for (g, &p) in present.iter().enumerate() {
        if p {
            renumber[g] = ng;
            ng += 1;
        }
    }
    if ng < 2 {
        return Err(StatsError::TooFewGroups {
            what: "Gray's test".into(),
            found: ng,
        });
    }
    let timeline = Timeline::build(time, strata);
    let mut out = Vec::new();
    for cause in 1..=causes {
        if !status.contains(&cause) {
            continue;
        }
        let mut score = vec![0.0f64; ng - 1];
        let mut var = vec![0.0f64; (ng - 1) * (ng - 1)];
        for range in &timeline.strata {
            if range.is_empty() {
                continue;
            }
            let rows: Vec<(f64, u8, usize)> = timeline.order[range.clone()]
                .iter()
                .map(|&i| {
                    let i = i as usize;
                    let m = match status[i] {
                        0 => 0u8,
                        s if s == cause => 1,
                        _ => 2,
                    };
                    (time[i], m, renumber[groups.0[i]])
                })
                .collect();
            crst(&rows, ng, rho, &mut score, &mut var);
        }
        let k = ng - 1;
        let mut m = Square::zeros(k);
        for i in 0..k {
            for j in 0..k {
                m.set(i, j, var[i * k + j]);
            }
        }
        let solved = lu_solve(m, score.clone()).ok_or(StatsError::SingularVariance)?;
        let stat: f64 = score.iter().zip(&solved).map(|(a, b)| a * b).sum();
        out.push(GrayTest {
            cause,
            test: ChiSquareTest::new(stat, k),
        });
    }
    if out.is_empty() {
        return Err(StatsError::NoEvents("Gray's test".into()));
    }
    Ok(out)
}

/// One stratum of `crstm`: adds the score of the first `ng - 1` groups and its variance.
/// `rows` are `(time, m, group)` sorted by time, `m` 0 censored, 1 the cause, 2 another cause.
fn crst(rows: &[(f64, u8, usize)], ng: usize, rho: f64, score: &mut [f64], var: &mut [f64]) {
    let ng1 = ng - 1;
    let mut rs = vec![0.0f64; ng];
    for r in rows {
        rs[r.2] += 1.0;
    }
    let mut s = vec![0.0f64; ng1];
    let mut v = vec![0.0f64; ng1 * ng1];
    let mut f1m = vec![0.0f64; ng];
    let mut f1 = vec![0.0f64; ng];
    let mut skmm = vec![1.0f64; ng];
    let mut skm = vec![1.0f64; ng];
    let mut v3 = vec![0.0f64; ng];
    let mut v2 = vec![0.0f64; ng1 * ng];
    let mut c = vec![0.0f64; ng * ng];
    let mut a = vec![0.0f64; ng * ng];
    let mut fm = 0.0f64;
    let mut f = 0.0f64;
    let mut d = vec![[0.0f64; 3]; ng];
    let n = rows.len();
    let mut ll = 0usize;
    while ll < n {
        let t = rows[ll].0;
        let mut lu = ll;
        while lu + 1 < n && rows[lu + 1].0 <= t {
            lu += 1;
        }
        d.iter_mut().for_each(|x| *x = [0.0; 3]);
        for r in &rows[ll..=lu] {
            d[r.2][r.1 as usize] += 1.0;
        }
        let nd1: f64 = d.iter().map(|x| x[1]).sum();
        let nd2: f64 = d.iter().map(|x| x[2]).sum();
        if nd1 > 0.0 || nd2 > 0.0 {
            let mut tr = 0.0f64;
            let mut tq = 0.0f64;
            for i in 0..ng {
                if rs[i] <= 0.0 {
                    continue;
                }
                let td = d[i][1] + d[i][2];
                skm[i] = skmm[i] * (rs[i] - td) / rs[i];
                f1[i] = f1m[i] + (skmm[i] * d[i][1]) / rs[i];
                tr += rs[i] / skmm[i];
                tq += rs[i] * (1.0 - f1m[i]) / skmm[i];
            }
            f = fm + nd1 / tr;
            let fb = (1.0 - fm).powf(rho);
            for i in 0..ng {
                for j in i..ng {
                    a[i * ng + j] = 0.0;
                }
                if rs[i] <= 0.0 {
                    continue;
                }
                let t1 = rs[i] / skmm[i];
                a[i * ng + i] = fb * t1 * (1.0 - t1 / tr);
                if a[i * ng + i] != 0.0 {
                    c[i * ng + i] += a[i * ng + i] * nd1 / (tr * (1.0 - fm));
                }
                for j in (i + 1)..ng {
                    if rs[j] <= 0.0 {
                        continue;
                    }
                    a[i * ng + j] = -fb * t1 * rs[j] / (skmm[j] * tr);
                    if a[i * ng + j] != 0.0 {
                        c[i * ng + j] += a[i * ng + j] * nd1 / (tr * (1.0 - fm));
                    }
                }
            }
            for i in 1..ng {
                for j in 0..i {
                    a[i * ng + j] = a[j * ng + i];
                    c[i * ng + j] = c[j * ng + i];
                }
            }
            for i in 0..ng1 {
                if rs[i] <= 0.0 {
                    continue;
                }
                s[i] += fb * (d[i][1] - nd1 * rs[i] * (1.0 - f1m[i]) / (skmm[i] * tq));
            }
            if nd1 > 0.0 {
                for k in 0..ng {
                    if rs[k] <= 0.0 {
                        continue;
                    }
                    let t4 = if skm[k] > 0.0 {
                        1.0 - (1.0 - f) / skm[k]
                    } else {
                        1.0
                    };
                    let t5 = if nd1 > 1.0 {
                        1.0 - (nd1 - 1.0) / (tr * skmm[k] - 1.0)
                    } else {
                        1.0
                    };
                    let t3 = t5 * skmm[k] * nd1 / (tr * rs[k]);
                    v3[k] += t4 * t4 * t3;
                    for i in 0..ng1 {
                        let t1 = a[i * ng + k] - t4 * c[i * ng + k];
                        v2[i * ng + k] += t1 * t4 * t3;
                        for j in 0..=i {
                            let t2 = a[j * ng + k] - t4 * c[j * ng + k];
                            v[i * ng1 + j] += t1 * t2 * t3;
                        }
                    }
                }
            }
            if nd2 > 0.0 {
                for k in 0..ng {
                    if skm[k] <= 0.0 || d[k][2] <= 0.0 {
                        continue;
                    }
                    let t4 = (1.0 - f) / skm[k];
                    let t5 = if d[k][2] > 1.0 {
                        1.0 - (d[k][2] - 1.0) / (rs[k] - 1.0)
                    } else {
                        1.0
                    };
                    let t3 = t5 * (skmm[k] * skmm[k] * d[k][2]) / (rs[k] * rs[k]);
                    v3[k] += t4 * t4 * t3;
                    for i in 0..ng1 {
                        let t1 = t4 * c[i * ng + k];
                        v2[i * ng + k] -= t1 * t4 * t3;
                        for j in 0..=i {
                            let t2 = t4 * c[j * ng + k];
                            v[i * ng1 + j] += t1 * t2 * t3;
                        }
                    }
                }
            }
        }
        if lu + 1 >= n {
            break;
        }
        for r in &rows[ll..=lu] {
            rs[r.2] -= 1.0;
        }
        fm = f;
        f1m.copy_from_slice(&f1);
        skmm.copy_from_slice(&skm);
        ll = lu + 1;
    }
    for i in 0..ng1 {
        for j in 0..=i {
            let mut add = 0.0;
            for k in 0..ng {
                add += c[i * ng + k] * c[j * ng + k] * v3[k];
                add += c[i * ng + k] * v2[j * ng + k];
                add += c[j * ng + k] * v2[i * ng + k];
            }
            v[i * ng1 + j] += add;
        }
    }
    for i in 0..ng1 {
        score[i] += s[i];
        for j in 0..=i {
            var[i * ng1 + j] += v[i * ng1 + j];
            if i != j {
                var[j * ng1 + i] += v[i * ng1 + j];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_cause_is_one_minus_kaplan_meier() {
        let time = [1.0, 2.0, 2.0, 3.0, 4.0, 6.0];
        let status = [1, 1, 0, 1, 0, 1];
        let c = &cumulative_incidence(&time, &status, 1, None).unwrap()[0];
        let km = &super::super::kaplan_meier(
            &time,
            &status.map(|s| s == 1),
            None,
            &KmOptions::default(),
        )
        .unwrap()[0];
        for (k, step) in km.steps.iter().enumerate() {
            assert!((c.cif[0][k] - (1.0 - step.survival)).abs() < 1e-15);
        }
    }

    #[test]
    fn no_group_with_observations_is_an_error() {
        let r = gray_test(&[1.0, 2.0], &[1, 0], 1, (&[0, 0], 2), None, 0.0);
        assert!(matches!(r, Err(StatsError::TooFewGroups { .. })));
        let r = cumulative_incidence(&[1.0], &[3], 2, None);
        assert!(matches!(r, Err(StatsError::InvalidCode { .. })));
    }
}
