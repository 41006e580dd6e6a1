//! Interim monitoring: at each look actually held, the boundary recomputed at the information
//! observed so far, whether it was crossed, conditional power and a repeated confidence
//! interval. This is what `rrct analyse` reports to a data monitoring committee.
//!
//! Boundaries at observed information: look `j` spends `alpha(t_j) - alpha(t_{j-1})` with the
//! spending function evaluated at the observed fractions, given the boundaries actually used at
//! the earlier looks; the final look (the last planned look, or any look with `t >= 1`) spends
//! all remaining alpha, whatever its information. Futility boundaries from beta spending are
//! recomputed the same way under the design drift; fixed futility bounds keep their planned
//! value look by look. Binding futility boundaries enter the efficacy boundaries as in the
//! design. Only alpha-spending designs can be monitored this way: a classical design (OF, P,
//! WT, HP) fixes its boundaries at the planned information, and is refused.
//!
//! Conditional power at look `j` is the probability, given `Z_j = z_j`, of crossing an efficacy
//! boundary at one of the remaining planned looks, whose boundaries are those the spending
//! function gives at their planned fractions after the looks observed so far. Stopping for
//! futility (when the design has futility boundaries) and, in a two-sided design, crossing the
//! lower boundary count as not rejecting — rpact's `getConditionalPower` convention.

use serde::{Deserialize, Serialize};

use super::group_sequential::{
    cumulative_alpha, rejection_probability, solve_binding_beta_spending, solve_efficacy,
    solve_futility, validate_timing,
};
use super::integration::Continuation;
use super::{invalid, DesignError, FutilityBounds, GroupSequentialDesign, Sided, SpendingFunction};
use crate::stats::normal;

/// The data of one look held.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Information so far over planned maximum information (events so far over planned events
    /// for a time-to-event endpoint, see [`information_fraction`]).
    pub information_fraction: f64,
    /// The z statistic, oriented so that positive values favour the experimental arm.
    pub z: f64,
    /// An effect estimate on a scale where it is approximately normal (log hazard ratio, risk
    /// difference, mean difference), for the repeated confidence interval.
    #[serde(default)]
    pub estimate: Option<f64>,
    /// Its standard error.
    #[serde(default)]
    pub standard_error: Option<f64>,
}

impl Observation {
    /// A look with a z statistic only.
    pub fn new(information_fraction: f64, z: f64) -> Self {
        Self {
            information_fraction,
            z,
            estimate: None,
            standard_error: None,
        }
    }
}

/// The effect under which conditional power is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// The effect the design was powered for (the design's drift).
    Design,
    /// The current trend: the drift estimated from the latest look, `z / sqrt(t)`.
    Trend,
    /// A given drift (mean of the final z statistic), e.g. from [`drift_from_hazard_ratio`].
    Drift(f64),
}

/// Where a look's statistic fell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Crossing {
    /// `z >= upper_z`: the efficacy boundary is crossed.
    Upper,
    /// Two-sided designs: `z <= lower_z`, significant in the unfavourable direction.
    Lower,
    /// One-sided designs with futility: `z <= lower_z`, the non-binding futility boundary.
    Futility,
    /// Inside the continuation region.
    None,
}

/// One monitored look.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitoredLook {
    /// 1-based look number.
    pub look: usize,
    /// Observed information fraction.
    pub information_fraction: f64,
    /// Observed z.
    pub z: f64,
    /// Efficacy boundary recomputed at the observed information.
    pub upper_z: f64,
    /// Lower boundary: `-upper_z` (two-sided) or the futility boundary (one-sided with futility,
    /// not at the final look).
    pub lower_z: Option<f64>,
    /// Nominal significance level of the look, `sides * P(Z > upper_z)`.
    pub nominal_alpha: f64,
    /// Alpha spent by this look.
    pub cumulative_alpha: f64,
    /// Whether this is the final analysis (all remaining alpha spent).
    pub is_final: bool,
    /// Where `z` fell.
    pub crossing: Crossing,
    /// Whether an efficacy boundary (upper, or lower when two-sided) is crossed.
    pub crossed: bool,
    /// Conditional power under the design effect (none at the final look).
    pub conditional_power_design: Option<f64>,
    /// Conditional power under the current trend (none at the final look).
    pub conditional_power_trend: Option<f64>,
    /// Repeated confidence interval `estimate -/+ upper_z * standard_error`, on the scale of
    /// the estimate, when both were given: level `1 - alpha` for a two-sided design,
    /// `1 - 2 alpha` (two-sided) for a one-sided design.
    pub repeated_ci: Option<[f64; 2]>,
}

/// Information fraction of a time-to-event endpoint: events so far over planned events.
///
/// ```
/// assert_eq!(rrct::design::information_fraction(150.0, 600.0).unwrap(), 0.25);
/// assert!(rrct::design::information_fraction(10.0, 0.0).is_err());
/// ```
pub fn information_fraction(events: f64, planned_events: f64) -> Result<f64, DesignError> {
    if !(planned_events > 0.0 && planned_events.is_finite()) {
        return Err(invalid(
            "planned events",
            format!("must be > 0, not {planned_events}"),
        ));
    }
    if !(events > 0.0 && events.is_finite()) {
        return Err(invalid("events", format!("must be > 0, not {events}")));
    }
    Ok(events / planned_events)
}

/// The drift of a log-rank test for hazard ratio `hr` with `planned_events` in all and
/// allocation ratio `ratio` (experimental : control): `-log(hr) sqrt(D r) / (1 + r)`, positive
/// when `hr < 1` (Schoenfeld).
///
/// ```
/// let d = rrct::design::drift_from_hazard_ratio(0.75, 400.0, 1.0).unwrap();
/// assert!((d - 0.75f64.ln().abs() * 10.0).abs() < 1e-12);
/// ```
pub fn drift_from_hazard_ratio(
    hr: f64,
    planned_events: f64,
    ratio: f64,
) -> Result<f64, DesignError> {
    if !(hr > 0.0 && hr.is_finite()) {
        return Err(invalid("hazard ratio", format!("must be > 0, not {hr}")));
    }
    if !(planned_events > 0.0 && planned_events.is_finite()) {
        return Err(invalid(
            "planned events",
            format!("must be > 0, not {planned_events}"),
        ));
    }
    if !(ratio > 0.0 && ratio.is_finite()) {
        return Err(invalid("ratio", format!("must be > 0, not {ratio}")));
    }
    Ok(-hr.ln() * (planned_events * ratio).sqrt() / (1.0 + ratio))
}

/// The repeated confidence interval `estimate -/+ boundary * standard_error`.
///
/// ```
/// let [lo, hi] = rrct::design::repeated_ci(-0.2, 0.1, 2.5);
/// assert!((lo + 0.45).abs() < 1e-15 && (hi - 0.05).abs() < 1e-15);
/// ```
pub fn repeated_ci(estimate: f64, standard_error: f64, boundary: f64) -> [f64; 2] {
    [
        estimate - boundary * standard_error,
        estimate + boundary * standard_error,
    ]
}

/// Boundaries for a sequence of fractions whose last entry is final when `final_at_last`:
/// `(upper, lower for the continuation region, lower to report, cumulative alpha)`.
struct Boundaries {
    upper: Vec<f64>,
    continuation_lower: Vec<f64>,
    reported_lower: Vec<Option<f64>>,
    cumulative_alpha: Vec<f64>,
}

fn boundaries(
    design: &GroupSequentialDesign,
    timing: &[f64],
    final_at_last: bool,
    grid: &[f64],
) -> Boundaries {
    let spec = &design.spec;
    // check_observations refuses the classical designs.
    let spending = spec
        .design
        .spending()
        .unwrap_or(SpendingFunction::OBrienFleming);
    let cumulative = cumulative_alpha(spec.alpha, spec.sided, spending, timing, final_at_last);
    let n = timing.len();
    let report = |futility: &[f64], upper: &[f64]| -> Vec<Option<f64>> {
        futility
            .iter()
            .zip(upper)
            .enumerate()
            .map(|(k, (&f, &c))| (!(final_at_last && k + 1 == n)).then_some(f.min(c)))
            .collect()
    };
    let (upper, continuation_lower, reported_lower) = match (spec.sided, &spec.futility) {
        (Sided::Two, _) => {
            let upper = solve_efficacy(&cumulative, timing, spec.sided, None, grid);
            let lower: Vec<f64> = upper.iter().map(|c| -c).collect();
            let reported = lower.iter().copied().map(Some).collect();
            (upper, lower, reported)
        }
        (Sided::One, Some(FutilityBounds::BetaSpending(bs))) => {
            let beta = 1.0 - spec.power;
            let targets: Vec<f64> = timing.iter().map(|&t| bs.spent(beta, t, 1)).collect();
            let (upper, futility) = if spec.binding_futility {
                solve_binding_beta_spending(design.drift, &cumulative, &targets, timing, grid)
            } else {
                let upper = solve_efficacy(&cumulative, timing, spec.sided, None, grid);
                let futility = solve_futility(design.drift, &targets, timing, &upper, grid);
                (upper, futility)
            };
            let reported = report(&futility, &upper);
            (upper, futility, reported)
        }
        (Sided::One, Some(FutilityBounds::Fixed(bounds))) => {
            // Look k keeps the bound planned for look k; the final analysis has none.
            let futility: Vec<f64> = (0..n)
                .map(|k| bounds.get(k).copied().unwrap_or(f64::NEG_INFINITY))
                .collect();
            let binding = spec.binding_futility.then_some(futility.as_slice());
            let upper = solve_efficacy(&cumulative, timing, spec.sided, binding, grid);
            let reported = report(&futility, &upper)
                .into_iter()
                .map(|f| f.filter(|v| v.is_finite()))
                .collect();
            (upper, futility, reported)
        }
        (Sided::One, None) => {
            let upper = solve_efficacy(&cumulative, timing, spec.sided, None, grid);
            (upper, vec![f64::NEG_INFINITY; n], vec![None; n])
        }
    };
    Boundaries {
        upper,
        continuation_lower,
        reported_lower,
        cumulative_alpha: cumulative,
    }
}

/// Checks observed looks against the design; returns whether the last one is final.
fn check_observations(
    design: &GroupSequentialDesign,
    observed: &[Observation],
) -> Result<bool, DesignError> {
    let planned = design.looks.len();
    if design.spec.design.spending().is_none() {
        return Err(invalid(
            "design",
            format!(
                "interim monitoring recomputes the boundaries at the information observed, which \
                 needs an alpha-spending design; the classical {} design fixes its boundaries at \
                 the planned information fractions (use asOF, asP, asHSD:GAMMA or asKD:RHO)",
                design.spec.design
            ),
        ));
    }
    if observed.is_empty() {
        return Err(DesignError::InvalidObservations("no looks".into()));
    }
    if observed.len() > planned {
        return Err(DesignError::InvalidObservations(format!(
            "{} looks observed but the design plans {planned}",
            observed.len()
        )));
    }
    let timing: Vec<f64> = observed.iter().map(|o| o.information_fraction).collect();
    validate_timing(&timing).map_err(|e| DesignError::InvalidObservations(e.to_string()))?;
    for (j, o) in observed.iter().enumerate() {
        if !o.z.is_finite() {
            return Err(DesignError::InvalidObservations(format!(
                "look {}: z is {}, not a finite number",
                j + 1,
                o.z
            )));
        }
        if let Some(se) = o.standard_error {
            if !(se > 0.0 && se.is_finite()) {
                return Err(DesignError::InvalidObservations(format!(
                    "look {}: standard error must be > 0, not {se}",
                    j + 1
                )));
            }
        }
        let is_final = j + 1 == planned || o.information_fraction >= 1.0;
        if is_final && j + 1 < observed.len() {
            return Err(DesignError::InvalidObservations(format!(
                "look {} is the final analysis (information fraction {}) but more looks follow",
                j + 1,
                o.information_fraction
            )));
        }
    }
    let last = observed.len() - 1;
    Ok(last + 1 == planned || observed[last].information_fraction >= 1.0)
}

/// Conditional power at the latest observed look (`None` when it is the final analysis).
///
/// ```
/// use rrct::design::{conditional_power, group_sequential, DesignSpec, Effect, Observation,
///                    Sided, SpendingFunction};
/// let design = group_sequential(&DesignSpec::new(
///     3, 0.025, Sided::One, SpendingFunction::OBrienFleming)).unwrap();
/// let looks = [Observation::new(1.0 / 3.0, 1.0)];
/// let cp = conditional_power(&design, &looks, Effect::Drift(0.0)).unwrap().unwrap();
/// assert!(cp > 0.0 && cp < 0.05);
/// ```
pub fn conditional_power(
    design: &GroupSequentialDesign,
    observed: &[Observation],
    effect: Effect,
) -> Result<Option<f64>, DesignError> {
    let is_final = check_observations(design, observed)?;
    if is_final {
        return Ok(None);
    }
    let grid = super::group_sequential::design_grid();
    Ok(Some(conditional_power_at(design, observed, effect, &grid)?))
}

fn conditional_power_at(
    design: &GroupSequentialDesign,
    observed: &[Observation],
    effect: Effect,
    grid: &[f64],
) -> Result<f64, DesignError> {
    let j = observed.len() - 1;
    let now = observed[j];
    let mut timing: Vec<f64> = observed.iter().map(|o| o.information_fraction).collect();
    timing.extend(
        design.spec.timing[j + 1..]
            .iter()
            .copied()
            .filter(|&t| t > now.information_fraction),
    );
    let b = boundaries(design, &timing, true, grid);
    let drift = match effect {
        Effect::Design => design.drift,
        Effect::Trend => now.z / now.information_fraction.sqrt(),
        Effect::Drift(d) if d.is_finite() => d,
        Effect::Drift(d) => return Err(invalid("drift", format!("must be finite, not {d}"))),
    };
    Ok(rejection_probability(
        drift,
        &timing[j + 1..],
        &b.upper[j + 1..],
        &b.continuation_lower[j + 1..],
        grid,
        Continuation::at(now.z, now.information_fraction),
    ))
}

/// Monitors the looks held so far: per look the information fraction, the boundary recomputed
/// at the observed information, crossed or not, conditional power under the design effect and
/// the current trend, and the repeated confidence interval when an estimate is given.
///
/// ```
/// use rrct::design::{group_sequential, monitor, Crossing, DesignSpec, Observation, Sided,
///                    SpendingFunction};
/// let design = group_sequential(&DesignSpec::new(
///     3, 0.025, Sided::One, SpendingFunction::OBrienFleming)).unwrap();
/// let looks = monitor(&design, &[Observation::new(0.3, 1.2), Observation::new(0.7, 2.9)]).unwrap();
/// assert_eq!(looks[0].crossing, Crossing::None);
/// assert!(looks[1].crossed && looks[1].upper_z < 2.9);
/// assert!(looks[0].conditional_power_design.unwrap() > looks[0].conditional_power_trend.unwrap());
/// ```
pub fn monitor(
    design: &GroupSequentialDesign,
    observed: &[Observation],
) -> Result<Vec<MonitoredLook>, DesignError> {
    let last_is_final = check_observations(design, observed)?;
    let grid = super::group_sequential::design_grid();
    let timing: Vec<f64> = observed.iter().map(|o| o.information_fraction).collect();
    let b = boundaries(design, &timing, last_is_final, &grid);
    let sides = f64::from(design.spec.sided.count());
    let mut looks = Vec::with_capacity(observed.len());
    for (j, o) in observed.iter().enumerate() {
        let is_final = last_is_final && j + 1 == observed.len();
        let upper = b.upper[j];
        let lower = b.reported_lower[j];
        let crossing = if o.z >= upper {
            Crossing::Upper
        } else if lower.is_some_and(|l| o.z <= l) {
            match design.spec.sided {
                Sided::Two => Crossing::Lower,
                Sided::One => Crossing::Futility,
            }
        } else {
            Crossing::None
        };
        let (cp_design, cp_trend) = if is_final {
            (None, None)
        } else {
            let history = &observed[..=j];
            (
                Some(conditional_power_at(
                    design,
                    history,
                    Effect::Design,
                    &grid,
                )?),
                Some(conditional_power_at(design, history, Effect::Trend, &grid)?),
            )
        };
        looks.push(MonitoredLook {
            look: j + 1,
            information_fraction: o.information_fraction,
            z: o.z,
            upper_z: upper,
            lower_z: lower,
            nominal_alpha: sides * normal::upper_tail(upper),
            cumulative_alpha: b.cumulative_alpha[j],
            is_final,
            crossing,
            crossed: matches!(crossing, Crossing::Upper | Crossing::Lower),
            conditional_power_design: cp_design,
            conditional_power_trend: cp_trend,
            repeated_ci: match (o.estimate, o.standard_error) {
                (Some(e), Some(se)) if e.is_finite() => Some(repeated_ci(e, se, upper)),
                _ => None,
            },
        });
    }
    Ok(looks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::design::{group_sequential, DesignSpec, SpendingFunction};

    fn obf3() -> GroupSequentialDesign {
        group_sequential(&DesignSpec::new(
            3,
            0.025,
            Sided::One,
            SpendingFunction::OBrienFleming,
        ))
        .unwrap()
    }

    #[test]
    fn at_planned_information_the_boundaries_are_the_design_s() {
        let d = obf3();
        let looks = monitor(
            &d,
            &[
                Observation::new(1.0 / 3.0, 0.5),
                Observation::new(2.0 / 3.0, 0.5),
                Observation::new(1.0, 0.5),
            ],
        )
        .unwrap();
        for (m, l) in looks.iter().zip(&d.looks) {
            assert!((m.upper_z - l.upper_z).abs() < 1e-12);
        }
        assert!(looks[2].is_final && looks[2].conditional_power_design.is_none());
    }

    #[test]
    fn final_look_spends_everything_even_when_under_running() {
        let d = obf3();
        let looks = monitor(
            &d,
            &[Observation::new(0.3, 0.0), Observation::new(0.6, 0.0)],
        )
        .unwrap();
        assert!(!looks[1].is_final);
        let early_final = monitor(
            &d,
            &[
                Observation::new(0.3, 0.0),
                Observation::new(0.6, 0.0),
                Observation::new(0.9, 0.0),
            ],
        )
        .unwrap();
        assert_eq!(early_final[2].cumulative_alpha, 0.025);
        assert!(early_final[2].is_final);
    }

    #[test]
    fn conditional_power_without_remaining_looks_between_is_the_closed_form() {
        // Two looks: CP at look 1 = P(Z_2 >= c_2 | Z_1 = z) in closed form.
        let d = group_sequential(&DesignSpec::new(
            2,
            0.025,
            Sided::One,
            SpendingFunction::Pocock,
        ))
        .unwrap();
        let (z, t, theta) = (1.1, 0.5, 2.3);
        let cp = conditional_power(&d, &[Observation::new(t, z)], Effect::Drift(theta))
            .unwrap()
            .unwrap();
        let c2 = d.looks[1].upper_z;
        let exact = normal::upper_tail((c2 - z * t.sqrt() - theta * (1.0 - t)) / (1.0 - t).sqrt());
        assert!((cp - exact).abs() < 1e-12, "{cp} vs {exact}");
    }

    #[test]
    fn bad_observations_are_refused() {
        let d = obf3();
        assert!(monitor(&d, &[]).is_err());
        assert!(monitor(
            &d,
            &[Observation::new(0.5, 1.0), Observation::new(0.4, 1.0)]
        )
        .is_err());
        assert!(monitor(
            &d,
            &[Observation::new(1.0, 1.0), Observation::new(1.2, 1.0)]
        )
        .is_err());
        assert!(monitor(&d, &[Observation::new(0.5, f64::NAN)]).is_err());
        let four = [0.2, 0.4, 0.6, 0.8].map(|t| Observation::new(t, 0.0));
        assert!(monitor(&d, &four).is_err());
    }
}
