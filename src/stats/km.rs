//! Kaplan–Meier survival curves as R's `survfit(Surv(time, event) ~ group)`.
//!
//! Per curve: the product-limit estimate at every distinct time (event or censoring), the
//! Greenwood standard error of `-log S` (R's `std.err`), pointwise confidence limits with R's
//! `conf.type` transforms, the median with its confidence interval by R's rule (the first time
//! the curve — or its lower/upper limit — is at or below one half, with the midpoint rule when
//! it sits exactly at one half), and survival at chosen times with `summary(fit, times = )`
//! semantics.
//!
//! Where survival reaches 0 the Greenwood variance is infinite; R then reports no interval for
//! the `log` and `log-log` transforms and `NaN` for `plain`, so those limits are `None` here.

use serde::{Deserialize, Serialize};

use super::dist::z_for_level;
use super::timeline::{check_codes, check_times, Timeline};
use super::{StatsError, DEFAULT_CONF_LEVEL, SQRT_DOUBLE_EPS};

/// The transform under which pointwise confidence limits are symmetric (R's `conf.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ConfType {
    /// `log(S)`: R's default.
    #[default]
    #[serde(rename = "log")]
    Log,
    /// `log(-log(S))`.
    #[serde(rename = "log-log")]
    LogLog,
    /// `S` itself, limits clipped to `[0, 1]`.
    #[serde(rename = "plain")]
    Plain,
    /// `log(S / (1 - S))`.
    #[serde(rename = "logit")]
    Logit,
    /// `arcsin(sqrt(S))`.
    #[serde(rename = "arcsin")]
    Arcsin,
}

impl ConfType {
    /// Parses R's spelling: `log`, `log-log`, `plain`, `logit` or `arcsin`.
    ///
    /// ```
    /// use rrct::stats::ConfType;
    /// assert_eq!(ConfType::parse("log-log"), Some(ConfType::LogLog));
    /// assert_eq!(ConfType::parse("logit"), Some(ConfType::Logit));
    /// assert_eq!(ConfType::parse("none"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "log" => Some(Self::Log),
            "log-log" => Some(Self::LogLog),
            "plain" => Some(Self::Plain),
            "logit" => Some(Self::Logit),
            "arcsin" => Some(Self::Arcsin),
            _ => None,
        }
    }
}

/// How to compute the curves' confidence limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KmOptions {
    /// The transform (R's `conf.type`).
    pub conf_type: ConfType,
    /// Confidence level in `(0, 1)` (R's `conf.int`).
    pub conf_level: f64,
}

impl Default for KmOptions {
    fn default() -> Self {
        Self {
            conf_type: ConfType::Log,
            conf_level: DEFAULT_CONF_LEVEL,
        }
    }
}

/// One distinct time of a curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KmStep {
    /// The time.
    pub time: f64,
    /// Number at risk just before `time`.
    pub n_risk: usize,
    /// Events at `time`.
    pub n_event: usize,
    /// Censorings at `time`.
    pub n_censor: usize,
    /// Kaplan–Meier survival just after `time`.
    pub survival: f64,
    /// Greenwood standard error of the cumulative hazard `-log S` (R's `fit$std.err`);
    /// infinite once survival is 0.
    pub std_err_log: f64,
    /// Lower confidence limit, `None` where R gives `NA`/`NaN`.
    pub lower: Option<f64>,
    /// Upper confidence limit, `None` where R gives `NA`/`NaN`.
    pub upper: Option<f64>,
}

/// A Kaplan–Meier curve for one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KaplanMeier {
    /// Observations in the group.
    pub n: usize,
    /// Events in the group.
    pub events: usize,
    /// One step per distinct time, ascending.
    pub steps: Vec<KmStep>,
    /// The options the limits were computed with.
    #[serde(skip)]
    pub options: KmOptions,
}

/// Survival at a requested time, as one row of `summary(fit, times = )`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SurvivalAt {
    /// The requested time.
    pub time: f64,
    /// Survival; `None` beyond the group's last observed time (R drops such times).
    pub survival: Option<f64>,
    /// Standard error of survival (Greenwood, `std.err * surv` as `summary` prints it).
    pub std_err: Option<f64>,
    /// Lower confidence limit.
    pub lower: Option<f64>,
    /// Upper confidence limit.
    pub upper: Option<f64>,
    /// Number at risk at the requested time: at risk at the first curve time at or after it;
    /// 0 beyond the last observed time.
    pub n_risk: usize,
}

/// Median survival with its confidence interval (R's `print.survfit` columns).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Median {
    /// Median, `None` when the curve never falls to one half.
    pub median: Option<f64>,
    /// Lower limit: where the lower confidence curve reaches one half.
    pub lower: Option<f64>,
    /// Upper limit: where the upper confidence curve reaches one half.
    pub upper: Option<f64>,
}

/// Fits one Kaplan–Meier curve per group code `0..levels` (one curve when `groups` is `None`).
///
/// `time` must be finite and non-negative; `event` is true for an event, false for censoring.
/// Near-equal times are merged first as R's `aeqSurv` does, over all groups together.
///
/// ```
/// use rrct::stats::km::{kaplan_meier, KmOptions};
/// let time = [1.0, 2.0, 2.0, 3.0, 4.0];
/// let event = [true, true, false, true, false];
/// let curves = kaplan_meier(&time, &event, None, &KmOptions::default()).unwrap();
/// let s: Vec<f64> = curves[0].steps.iter().map(|s| s.survival).collect();
/// assert_eq!(s, vec![0.8, 0.6000000000000001, 0.30000000000000004, 0.30000000000000004]);
/// assert_eq!(curves[0].median().median, Some(3.0));
/// ```
pub fn kaplan_meier(
    time: &[f64],
    event: &[bool],
    groups: Option<(&[usize], usize)>,
    options: &KmOptions,
) -> Result<Vec<KaplanMeier>, StatsError> {
    check_inputs(time, event)?;
    if let Some((codes, levels)) = groups {
        check_codes("group", codes, time.len(), levels)?;
    }
    if !(options.conf_level > 0.0 && options.conf_level < 1.0) {
        return Err(StatsError::InvalidArgument(format!(
            "confidence level {} is not in (0, 1)",
            options.conf_level
        )));
    }
    let timeline = Timeline::build(time, groups);
    let z = z_for_level(options.conf_level);
    Ok(timeline
        .strata
        .iter()
        .map(|range| {
            let positions = range.clone();
            curve(
                positions.map(|k| (timeline.time[k], event[timeline.order[k] as usize])),
                range.len(),
                options,
                z,
            )
        })
        .collect())
}

/// Checks the survival columns: present, equally long, times finite and non-negative.
pub(crate) fn check_inputs(time: &[f64], event: &[bool]) -> Result<(), StatsError> {
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
    if event.len() != time.len() {
        return Err(StatsError::LengthMismatch {
            what: "event".into(),
            expected: time.len(),
            found: event.len(),
        });
    }
    check_times(time)
}

/// Builds the curve from `(time, event)` pairs sorted by time (the `survfitkm` loop).
fn curve(
    mut sorted: impl Iterator<Item = (f64, bool)>,
    n: usize,
    options: &KmOptions,
    z: f64,
) -> KaplanMeier {
    let mut steps = Vec::new();
    let mut at_risk = n;
    let mut survival = 1.0f64;
    let mut greenwood = 0.0f64;
    let mut events = 0usize;
    let mut pending = sorted.next();
    while let Some((t, first_event)) = pending {
        let (mut d, mut c) = if first_event {
            (1usize, 0usize)
        } else {
            (0, 1)
        };
        pending = None;
        for (u, e) in sorted.by_ref() {
            if u != t {
                pending = Some((u, e));
                break;
            }
            if e {
                d += 1;
            } else {
                c += 1;
            }
        }
        if d > 0 {
            let (nr, dd) = (at_risk as f64, d as f64);
            survival *= (nr - dd) / nr;
            greenwood += dd / (nr * (nr - dd));
        }
        let se = greenwood.sqrt();
        let (lower, upper) = confidence_limits(survival, se, options.conf_type, z);
        steps.push(KmStep {
            time: t,
            n_risk: at_risk,
            n_event: d,
            n_censor: c,
            survival,
            std_err_log: se,
            lower,
            upper,
        });
        events += d;
        at_risk -= d + c;
    }
    KaplanMeier {
        n,
        events,
        steps,
        options: *options,
    }
}

/// R's `survfit_confint` for a survival `p` whose `-log` has standard error `se`.
pub(crate) fn confidence_limits(
    p: f64,
    se: f64,
    conf_type: ConfType,
    z: f64,
) -> (Option<f64>, Option<f64>) {
    let finite = |v: f64| if v.is_nan() { None } else { Some(v) };
    match conf_type {
        ConfType::Plain => {
            let se2 = se * p * z;
            let lower = p - se2;
            let upper = p + se2;
            (
                finite(lower).map(|v| v.max(0.0)),
                finite(upper).map(|v| v.min(1.0)),
            )
        }
        ConfType::Log => {
            if p == 0.0 || p.is_nan() {
                return (None, None);
            }
            let se2 = z * se;
            (
                finite((p.ln() - se2).exp()),
                finite((p.ln() + se2).exp()).map(|v| v.min(1.0)),
            )
        }
        ConfType::LogLog => {
            if p == 0.0 || p == 1.0 || p.is_nan() {
                return (None, None);
            }
            let se2 = z * se / p.ln();
            let ll = (-p.ln()).ln();
            (
                finite((-(ll - se2).exp()).exp()),
                finite((-(ll + se2).exp()).exp()),
            )
        }
        ConfType::Logit => {
            if p == 0.0 || p.is_nan() {
                return (None, None);
            }
            let se2 = z * se * (1.0 + p / (1.0 - p));
            let logit = (p / (1.0 - p)).ln();
            (
                finite(1.0 - 1.0 / (1.0 + (logit - se2).exp())),
                finite(1.0 - 1.0 / (1.0 + (logit + se2).exp())),
            )
        }
        ConfType::Arcsin => {
            if p == 0.0 || p.is_nan() {
                return (None, None);
            }
            let se2 = 0.5 * z * se * (p / (1.0 - p)).sqrt();
            if se2.is_nan() {
                // p = 1 with se = 0: R's NaN (f64::max would drop it).
                return (None, None);
            }
            let angle = p.sqrt().asin();
            (
                finite((0.0f64.max(angle - se2)).sin().powi(2)),
                finite((std::f64::consts::FRAC_PI_2.min(angle + se2)).sin().powi(2)),
            )
        }
    }
}

/// R's `minmin` inside `survmean`: the first time at which `y` is below one half (within
/// [`SQRT_DOUBLE_EPS`]); if that first value is one half and the curve later falls below it,
/// the midpoint between that time and the time it falls.
fn first_below_half(points: impl Iterator<Item = (f64, Option<f64>)>) -> Option<f64> {
    let tol = SQRT_DOUBLE_EPS;
    let mut kept = points.filter_map(|(x, y)| match y {
        Some(y) if y < 0.5 + tol => Some((x, y)),
        _ => None,
    });
    let (x1, y1) = kept.next()?;
    if (y1 - 0.5).abs() < tol {
        if let Some((x2, _)) = kept.find(|&(_, y)| y < y1) {
            return Some((x1 + x2) / 2.0);
        }
    }
    Some(x1)
}

impl KaplanMeier {
    /// Median survival and its confidence interval, as printed by `print(survfit(...))`.
    ///
    /// ```
    /// use rrct::stats::km::{kaplan_meier, KmOptions};
    /// let time = [1.0, 2.0, 4.0, 5.0];
    /// let km = &kaplan_meier(&time, &[true; 4], None, &KmOptions::default()).unwrap()[0];
    /// // Survival is exactly 1/2 from 2 to 4: R takes the midpoint.
    /// assert_eq!(km.median().median, Some(3.0));
    /// ```
    pub fn median(&self) -> Median {
        let steps = || self.steps.iter();
        Median {
            median: first_below_half(steps().map(|s| (s.time, Some(s.survival)))),
            lower: first_below_half(steps().map(|s| (s.time, s.lower))),
            upper: first_below_half(steps().map(|s| (s.time, s.upper))),
        }
    }

    /// Survival at each requested time, in ascending order of time (non-finite times are
    /// skipped), with `summary(fit, times = , extend = FALSE)` semantics: before the first
    /// observed time survival is 1 with the whole group at risk; beyond the group's last
    /// observed time R drops the row, and it is returned with `None` values and nobody at risk.
    ///
    /// ```
    /// use rrct::stats::km::{kaplan_meier, KmOptions};
    /// let time = [1.0, 2.0, 2.0, 3.0, 4.0];
    /// let event = [true, true, false, true, false];
    /// let km = &kaplan_meier(&time, &event, None, &KmOptions::default()).unwrap()[0];
    /// let at = km.survival_at(&[2.5, 10.0]);
    /// assert_eq!((at[0].survival, at[0].n_risk), (Some(0.6000000000000001), 2));
    /// assert_eq!((at[1].survival, at[1].n_risk), (None, 0));
    /// ```
    pub fn survival_at(&self, times: &[f64]) -> Vec<SurvivalAt> {
        let mut times: Vec<f64> = times.iter().copied().filter(|t| t.is_finite()).collect();
        times.sort_by(f64::total_cmp);
        let start = Start::of(self);
        times
            .into_iter()
            .map(|t| {
                let beyond = SurvivalAt {
                    time: t,
                    survival: None,
                    std_err: None,
                    lower: None,
                    upper: None,
                    n_risk: 0,
                };
                let Some(last) = self.steps.last() else {
                    return beyond;
                };
                if t > last.time {
                    return beyond;
                }
                // survfit0 rows: an added row at time 0 (unless a step is at 0), then the steps.
                let at_or_before = self.steps.partition_point(|s| s.time <= t);
                let before = self.steps.partition_point(|s| s.time < t);
                let row = if at_or_before == 0 {
                    start.row
                } else {
                    let s = &self.steps[at_or_before - 1];
                    (s.survival, s.std_err_log, s.lower, s.upper)
                };
                let n_risk = if start.added && t <= 0.0 {
                    start.n_risk
                } else {
                    self.steps.get(before).map_or(0, |s| s.n_risk)
                };
                let (survival, se, lower, upper) = row;
                let std_err = se * survival;
                SurvivalAt {
                    time: t,
                    survival: Some(survival),
                    std_err: if std_err.is_nan() {
                        None
                    } else {
                        Some(std_err)
                    },
                    lower,
                    upper,
                    n_risk,
                }
            })
            .collect()
    }
}

/// The row `survfit0` puts at time 0 in front of a curve whose first time is later.
struct Start {
    added: bool,
    n_risk: usize,
    row: (f64, f64, Option<f64>, Option<f64>),
}

impl Start {
    fn of(km: &KaplanMeier) -> Self {
        let first = km.steps.first();
        Start {
            added: first.is_some_and(|s| s.time != 0.0),
            n_risk: first.map_or(km.n, |s| s.n_risk),
            row: match first {
                Some(s) if s.time == 0.0 => (s.survival, s.std_err_log, s.lower, s.upper),
                _ => (1.0, 0.0, Some(1.0), Some(1.0)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(time: &[f64], event: &[bool], conf_type: ConfType) -> KaplanMeier {
        let options = KmOptions {
            conf_type,
            ..KmOptions::default()
        };
        kaplan_meier(time, event, None, &options).unwrap().remove(0)
    }

    #[test]
    fn greenwood_and_log_limits() {
        let km = fit(
            &[1.0, 2.0, 2.0, 3.0, 4.0],
            &[true, true, false, true, false],
            ConfType::Log,
        );
        let s = &km.steps[0];
        assert_eq!((s.n_risk, s.n_event, s.n_censor), (5, 1, 0));
        assert!((s.std_err_log - (1.0f64 / 20.0).sqrt()).abs() < 1e-15);
        let z = z_for_level(0.95);
        let lower = (0.8f64.ln() - z * s.std_err_log).exp();
        assert!((s.lower.unwrap() - lower).abs() < 1e-15);
        assert_eq!(s.upper, Some(1.0));
    }

    #[test]
    fn zero_survival_has_no_interval() {
        let km = fit(&[1.0, 2.0], &[true, true], ConfType::Log);
        let last = km.steps.last().unwrap();
        assert_eq!(last.survival, 0.0);
        assert!(last.std_err_log.is_infinite());
        assert_eq!((last.lower, last.upper), (None, None));
        let at = km.survival_at(&[2.0]);
        assert_eq!(at[0].std_err, None);
        let plain = fit(&[1.0, 2.0], &[true, true], ConfType::Plain);
        assert_eq!(plain.steps[1].lower, None);
    }

    #[test]
    fn median_midpoint_rule() {
        // Survival is exactly 0.5 from t=2 until t=4.
        let km = fit(
            &[1.0, 2.0, 4.0, 5.0],
            &[true, true, true, true],
            ConfType::Log,
        );
        assert_eq!(km.median().median, Some(3.0));
    }

    #[test]
    fn survival_at_follows_summary() {
        let km = fit(
            &[1.0, 2.0, 2.0, 3.0, 4.0],
            &[true, true, false, true, false],
            ConfType::Log,
        );
        let at = km.survival_at(&[0.5, 2.0, 2.5, 10.0]);
        assert_eq!(at[0].survival, Some(1.0));
        assert_eq!(at[0].n_risk, 5);
        assert_eq!(at[1].survival, Some(0.6000000000000001));
        assert_eq!(at[1].n_risk, 4);
        assert_eq!(at[2].n_risk, 2);
        assert_eq!(at[3].survival, None);
        assert_eq!(at[3].n_risk, 0);
    }
}
