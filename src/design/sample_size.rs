//! Sample sizes by the normal approximation, as rpact's `getSampleSizeSurvival`,
//! `getSampleSizeRates` and `getSampleSizeMeans` (`normalApproximation = TRUE`) compute them,
//! for a superiority test of no difference (rpact's `thetaH0` at its default).
//!
//! A group-sequential design multiplies every fixed-design size by its inflation factor
//! ([`crate::design::GroupSequentialDesign::inflation_factor`]); pass `1` for a fixed design.
//! Two-sided tests use `alpha / 2` on the side of the effect (rpact's `twoSidedPower = FALSE`).
//! The allocation ratio is experimental : control (`allocationRatioPlanned`). Nothing is
//! rounded except the fields whose names say so.

use serde::Serialize;

use super::{invalid, DesignError, Sided};
use crate::stats::normal;

fn check_error_rates(alpha: f64, power: f64, sided: Sided) -> Result<f64, DesignError> {
    let limit = 0.5 * f64::from(sided.count());
    if !(alpha > 0.0 && alpha < limit) {
        return Err(invalid(
            "alpha",
            format!("must lie strictly between 0 and {limit}, not {alpha}"),
        ));
    }
    if !(power > 0.0 && power < 1.0) {
        return Err(invalid(
            "power",
            format!("must lie strictly between 0 and 1, not {power}"),
        ));
    }
    let z = normal::upper_quantile(alpha / f64::from(sided.count()))
        + normal::upper_quantile(1.0 - power);
    Ok(z * z)
}

fn check_positive(name: &str, value: f64) -> Result<(), DesignError> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(invalid(
            name,
            format!("must be a finite number > 0, not {value}"),
        ))
    }
}

fn check_inflation(inflation: f64) -> Result<(), DesignError> {
    if inflation >= 1.0 - 1e-9 && inflation.is_finite() {
        Ok(())
    } else {
        Err(invalid(
            "inflation factor",
            format!("must be >= 1, not {inflation}"),
        ))
    }
}

/// Events needed to detect a hazard ratio with the log-rank test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EventsPlan {
    /// Events of a fixed design (Schoenfeld): `(z_a + z_b)^2 (1 + r)^2 / (r log(hr)^2)`.
    pub events_fixed: f64,
    /// The group-sequential design's inflation factor (1 for a fixed design).
    pub inflation_factor: f64,
    /// `events_fixed * inflation_factor`, not rounded (rpact's `maxNumberOfEvents`).
    pub events: f64,
    /// `events` rounded up.
    pub events_rounded: f64,
}

/// Schoenfeld's number of events for hazard ratio `hr` (any side of 1), allocation ratio `ratio`
/// (experimental : control), times `inflation`.
///
/// ```
/// use rrct::design::{sample_size::events_for_hazard_ratio, Sided};
/// let e = events_for_hazard_ratio(0.75, 0.025, 0.9, Sided::One, 1.0, 1.0).unwrap();
/// // rpact::getSampleSizeSurvival(hazardRatio = 0.75, alpha = 0.025, beta = 0.1)$eventsFixed
/// assert!((e.events / 507.844_34 - 1.0).abs() < 1e-7);
/// assert_eq!(e.events_rounded, 508.0);
/// ```
pub fn events_for_hazard_ratio(
    hr: f64,
    alpha: f64,
    power: f64,
    sided: Sided,
    ratio: f64,
    inflation: f64,
) -> Result<EventsPlan, DesignError> {
    let z2 = check_error_rates(alpha, power, sided)?;
    check_positive("hazard ratio", hr)?;
    if (hr - 1.0).abs() < 1e-12 {
        return Err(invalid("hazard ratio", "must differ from 1"));
    }
    check_positive("ratio", ratio)?;
    check_inflation(inflation)?;
    let fixed = z2 * (1.0 + ratio).powi(2) / (ratio * hr.ln().powi(2));
    let events = fixed * inflation;
    Ok(EventsPlan {
        events_fixed: fixed,
        inflation_factor: inflation,
        events,
        events_rounded: round_up(events),
    })
}

/// Rounds up, forgiving representation error just above an integer (1e-9 relative).
fn round_up(x: f64) -> f64 {
    let r = x.round();
    if (x - r).abs() <= 1e-9 * x.abs().max(1.0) {
        r
    } else {
        x.ceil()
    }
}

/// The control arm's event rate under exponential survival.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlEventRate {
    /// Constant hazard `lambda2` (events per unit time).
    Hazard(f64),
    /// Median survival `median2`: hazard `log(2) / median`.
    Median(f64),
    /// Probability `pi2` of an event by time `event_time`: hazard `-log(1 - pi2) / event_time`.
    Probability { probability: f64, event_time: f64 },
}

impl ControlEventRate {
    /// The control hazard.
    pub fn hazard(&self) -> Result<f64, DesignError> {
        match *self {
            ControlEventRate::Hazard(l) => {
                check_positive("control hazard", l)?;
                Ok(l)
            }
            ControlEventRate::Median(m) => {
                check_positive("control median", m)?;
                Ok(std::f64::consts::LN_2 / m)
            }
            ControlEventRate::Probability {
                probability,
                event_time,
            } => {
                if !(probability > 0.0 && probability < 1.0) {
                    return Err(invalid(
                        "control event probability",
                        format!("must lie strictly between 0 and 1, not {probability}"),
                    ));
                }
                check_positive("event time", event_time)?;
                Ok(-(-probability).ln_1p() / event_time)
            }
        }
    }
}

/// Subjects needed to observe a number of events.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SubjectsPlan {
    /// Events to observe.
    pub events: f64,
    /// Subjects to recruit, not rounded (rpact's `maxNumberOfSubjects`).
    pub subjects: f64,
    /// `subjects` rounded up.
    pub subjects_rounded: f64,
    /// Control hazard.
    pub hazard_control: f64,
    /// Experimental hazard, `hr * hazard_control`.
    pub hazard_experimental: f64,
    /// Probability that a control subject has had an event by the end of the study.
    pub event_probability_control: f64,
    /// The same for an experimental subject.
    pub event_probability_experimental: f64,
    /// Subjects per unit time during accrual.
    pub accrual_intensity: f64,
    /// Accrual time plus follow-up time.
    pub study_duration: f64,
}

/// Subjects to recruit uniformly over `accrual_time` so that `events` occur by the end of
/// `follow_up_time` after accrual closes, with exponential survival (no drop-out); as rpact's
/// `getSampleSizeSurvival(accrualTime = c(0, accrual_time), followUpTime = follow_up_time)`.
///
/// ```
/// use rrct::design::sample_size::{subjects_for_events, ControlEventRate};
/// let s = subjects_for_events(507.844_34, 0.75, ControlEventRate::Median(12.0),
///                             24.0, 12.0, 1.0).unwrap();
/// // rpact: maxNumberOfSubjects 746.93986 for these inputs
/// assert!((s.subjects / 746.939_86 - 1.0).abs() < 1e-7);
/// ```
pub fn subjects_for_events(
    events: f64,
    hr: f64,
    control: ControlEventRate,
    accrual_time: f64,
    follow_up_time: f64,
    ratio: f64,
) -> Result<SubjectsPlan, DesignError> {
    check_positive("events", events)?;
    check_positive("hazard ratio", hr)?;
    check_positive("ratio", ratio)?;
    if !(accrual_time >= 0.0 && accrual_time.is_finite()) {
        return Err(invalid(
            "accrual time",
            format!("must be >= 0, not {accrual_time}"),
        ));
    }
    if !(follow_up_time >= 0.0 && follow_up_time.is_finite()) {
        return Err(invalid(
            "follow-up time",
            format!("must be >= 0, not {follow_up_time}"),
        ));
    }
    if accrual_time + follow_up_time <= 0.0 {
        return Err(invalid(
            "accrual time",
            "accrual plus follow-up must be > 0",
        ));
    }
    let lambda2 = control.hazard()?;
    let lambda1 = hr * lambda2;
    let p2 = event_probability(lambda2, accrual_time, follow_up_time);
    let p1 = event_probability(lambda1, accrual_time, follow_up_time);
    let overall = (ratio * p1 + p2) / (1.0 + ratio);
    let subjects = events / overall;
    Ok(SubjectsPlan {
        events,
        subjects,
        subjects_rounded: round_up(subjects),
        hazard_control: lambda2,
        hazard_experimental: lambda1,
        event_probability_control: p2,
        event_probability_experimental: p1,
        accrual_intensity: if accrual_time > 0.0 {
            subjects / accrual_time
        } else {
            f64::INFINITY
        },
        study_duration: accrual_time + follow_up_time,
    })
}

/// `P(event by the end)` for uniform entry over `[0, a]` and analysis at `a + f`.
fn event_probability(lambda: f64, a: f64, f: f64) -> f64 {
    if a == 0.0 {
        return -(-lambda * f).exp_m1();
    }
    // 1 - (exp(-l f) - exp(-l (a + f))) / (l a), with the difference formed without cancellation.
    1.0 - (-lambda * f).exp() * (-(-lambda * a).exp_m1()) / (lambda * a)
}

/// A two-group sample size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TwoGroupPlan {
    /// Fixed-design total (rpact's `nFixed`).
    pub n_fixed: f64,
    /// The group-sequential design's inflation factor (1 for a fixed design).
    pub inflation_factor: f64,
    /// `n_fixed * inflation_factor`, not rounded.
    pub n: f64,
    /// Experimental arm, `n r / (1 + r)`.
    pub n1: f64,
    /// Control arm, `n / (1 + r)`.
    pub n2: f64,
    /// `n` rounded up.
    pub n_rounded: f64,
}

fn two_groups(n_fixed: f64, ratio: f64, inflation: f64) -> TwoGroupPlan {
    let n = n_fixed * inflation;
    TwoGroupPlan {
        n_fixed,
        inflation_factor: inflation,
        n,
        n1: n * ratio / (1.0 + ratio),
        n2: n / (1.0 + ratio),
        n_rounded: round_up(n),
    }
}

/// Two proportions (`pi1` experimental, `pi2` control), the test of `pi1 = pi2` with the pooled
/// variance under the null (rpact's Farrington–Manning restricted estimate at `thetaH0 = 0`).
///
/// ```
/// use rrct::design::{sample_size::two_proportions, Sided};
/// let n = two_proportions(0.3, 0.4, 0.025, 0.8, Sided::One, 1.5, 1.0).unwrap();
/// // rpact::getSampleSizeRates(pi1 = 0.3, pi2 = 0.4, allocationRatioPlanned = 1.5)$nFixed
/// assert!((n.n / 737.397_2 - 1.0).abs() < 1e-6);
/// ```
pub fn two_proportions(
    pi1: f64,
    pi2: f64,
    alpha: f64,
    power: f64,
    sided: Sided,
    ratio: f64,
    inflation: f64,
) -> Result<TwoGroupPlan, DesignError> {
    check_error_rates(alpha, power, sided)?;
    for (name, p) in [("pi1", pi1), ("pi2", pi2)] {
        if !(p > 0.0 && p < 1.0) {
            return Err(invalid(
                name,
                format!("must lie strictly between 0 and 1, not {p}"),
            ));
        }
    }
    if (pi1 - pi2).abs() < 1e-12 {
        return Err(invalid("pi1", "must differ from pi2"));
    }
    check_positive("ratio", ratio)?;
    check_inflation(inflation)?;
    let za = normal::upper_quantile(alpha / f64::from(sided.count()));
    let zb = normal::upper_quantile(1.0 - power);
    let pooled = (ratio * pi1 + pi2) / (1.0 + ratio);
    let null_sd = (pooled * (1.0 - pooled) * (1.0 + ratio)).sqrt();
    let alt_sd = (pi1 * (1.0 - pi1) + pi2 * (1.0 - pi2) * ratio).sqrt();
    let n1 = (za * null_sd + zb * alt_sd).powi(2) / (pi1 - pi2).powi(2);
    Ok(two_groups(n1 * (1.0 + ratio) / ratio, ratio, inflation))
}

/// Two means with common standard deviation `sd`, normal approximation:
/// `n = (1 + r)^2 / r (z_a + z_b)^2 sd^2 / difference^2`.
///
/// ```
/// use rrct::design::{sample_size::two_means, Sided};
/// let n = two_means(0.5, 1.3, 0.025, 0.8, Sided::One, 2.0, 1.0).unwrap();
/// // rpact::getSampleSizeMeans(alternative = 0.5, stDev = 1.3, normalApproximation = TRUE,
/// //   allocationRatioPlanned = 2)$nFixed
/// assert!((n.n / 238.762_9 - 1.0).abs() < 1e-6);
/// ```
pub fn two_means(
    difference: f64,
    sd: f64,
    alpha: f64,
    power: f64,
    sided: Sided,
    ratio: f64,
    inflation: f64,
) -> Result<TwoGroupPlan, DesignError> {
    let z2 = check_error_rates(alpha, power, sided)?;
    if !(difference.is_finite() && difference != 0.0) {
        return Err(invalid(
            "difference",
            format!("must be finite and not 0, not {difference}"),
        ));
    }
    check_positive("standard deviation", sd)?;
    check_positive("ratio", ratio)?;
    check_inflation(inflation)?;
    let n = (1.0 + ratio).powi(2) / ratio * z2 * (sd / difference).powi(2);
    Ok(two_groups(n, ratio, inflation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_probability_without_accrual_is_exponential() {
        let p = event_probability(0.1, 0.0, 5.0);
        assert!((p - (1.0 - (-0.5f64).exp())).abs() < 1e-15);
        // Tiny accrual tends to the same.
        let q = event_probability(0.1, 1e-9, 5.0);
        assert!((p - q).abs() < 1e-9);
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert!(events_for_hazard_ratio(1.0, 0.025, 0.8, Sided::One, 1.0, 1.0).is_err());
        assert!(events_for_hazard_ratio(0.7, 0.025, 1.2, Sided::One, 1.0, 1.0).is_err());
        assert!(events_for_hazard_ratio(0.7, 0.025, 0.8, Sided::One, 0.0, 1.0).is_err());
        assert!(two_proportions(0.3, 0.3, 0.025, 0.8, Sided::One, 1.0, 1.0).is_err());
        assert!(two_means(0.0, 1.0, 0.025, 0.8, Sided::One, 1.0, 1.0).is_err());
        let c = ControlEventRate::Probability {
            probability: 1.0,
            event_time: 12.0,
        };
        assert!(subjects_for_events(100.0, 0.7, c, 12.0, 12.0, 1.0).is_err());
    }
}
