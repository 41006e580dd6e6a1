//! Group-sequential designs: Lan–DeMets efficacy boundaries from an alpha-spending function,
//! optional non-binding futility boundaries from a beta-spending function, and the inflation
//! factor, as rpact's `getDesignGroupSequential` and `getDesignCharacteristics` compute them.

use serde::Serialize;

use super::integration::{standard_grid, Continuation, GRID_R};
use super::roots::{brent, newton_bracketed};
use super::{
    invalid, DesignError, SpendingFunction, BOUNDARY_SOLVER_TOLERANCE, DRIFT_SOLVER_TOLERANCE,
    MAX_CRITICAL_VALUE, MAX_LOOKS,
};
use crate::stats::normal;

/// One- or two-sided testing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sided {
    /// Reject only for large z (benefit of the experimental arm).
    One,
    /// Symmetric two-sided: reject for large |z|; `alpha` is the total of both sides.
    Two,
}

impl Sided {
    /// 1 or 2.
    pub fn count(self) -> u8 {
        match self {
            Sided::One => 1,
            Sided::Two => 2,
        }
    }

    /// From 1 or 2.
    ///
    /// ```
    /// assert_eq!(rrct::design::Sided::from_count(2).unwrap(), rrct::design::Sided::Two);
    /// assert!(rrct::design::Sided::from_count(3).is_err());
    /// ```
    pub fn from_count(n: u8) -> Result<Self, DesignError> {
        match n {
            1 => Ok(Sided::One),
            2 => Ok(Sided::Two),
            _ => Err(invalid("sided", format!("must be 1 or 2, not {n}"))),
        }
    }
}

impl Serialize for Sided {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.count())
    }
}

/// `k` equally spaced information fractions `1/k, 2/k, ..., 1`.
///
/// ```
/// assert_eq!(rrct::design::equally_spaced(4), vec![0.25, 0.5, 0.75, 1.0]);
/// ```
pub fn equally_spaced(k: usize) -> Vec<f64> {
    (1..=k).map(|i| i as f64 / k as f64).collect()
}

/// What defines a group-sequential design.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesignSpec {
    /// Overall type I error (the total of both sides when two-sided).
    pub alpha: f64,
    /// One- or two-sided.
    pub sided: Sided,
    /// The alpha-spending function of the efficacy boundaries.
    pub spending: SpendingFunction,
    /// Planned information fractions, strictly increasing, the last equal to 1.
    pub timing: Vec<f64>,
    /// Power `1 - beta` at the design effect: sets the inflation factor and, with futility, the
    /// beta spent.
    pub power: f64,
    /// Beta-spending function of non-binding futility boundaries (one-sided designs only).
    pub futility: Option<SpendingFunction>,
}

impl DesignSpec {
    /// A design with `looks` equally spaced looks, power 0.8 and no futility boundaries.
    pub fn new(looks: usize, alpha: f64, sided: Sided, spending: SpendingFunction) -> Self {
        Self {
            alpha,
            sided,
            spending,
            timing: equally_spaced(looks),
            power: 0.8,
            futility: None,
        }
    }

    /// Checks every field; the design functions call it first.
    pub fn validate(&self) -> Result<(), DesignError> {
        validate_alpha(self.alpha, self.sided)?;
        if !(self.power > 0.0 && self.power < 1.0) || 1.0 - self.power >= 1.0 - self.alpha {
            return Err(invalid(
                "power",
                format!("must lie strictly between alpha and 1, not {}", self.power),
            ));
        }
        self.spending.validate()?;
        validate_timing(&self.timing)?;
        if (self.timing[self.timing.len() - 1] - 1.0).abs() > 1e-12 {
            return Err(invalid("timing", "the last information fraction must be 1"));
        }
        if let Some(f) = self.futility {
            f.validate()?;
            if self.sided == Sided::Two {
                return Err(invalid(
                    "futility",
                    "futility boundaries are supported for one-sided designs only",
                ));
            }
            if self.timing.len() < 2 {
                return Err(invalid(
                    "futility",
                    "a design with one look has no futility stop",
                ));
            }
        }
        Ok(())
    }

    fn beta(&self) -> f64 {
        1.0 - self.power
    }

    /// `(z_{alpha/sides} + z_beta)^2`: the squared drift a fixed design needs.
    pub fn fixed_drift_squared(&self) -> f64 {
        let z = normal::upper_quantile(self.alpha / f64::from(self.sided.count()))
            + normal::upper_quantile(self.beta());
        z * z
    }
}

fn validate_alpha(alpha: f64, sided: Sided) -> Result<(), DesignError> {
    let limit = 0.5 * f64::from(sided.count());
    if !(alpha > 0.0 && alpha < limit) {
        return Err(invalid(
            "alpha",
            format!("must lie strictly between 0 and {limit}, not {alpha}"),
        ));
    }
    Ok(())
}

/// Strictly increasing, positive, finite, at most [`MAX_LOOKS`].
pub(crate) fn validate_timing(timing: &[f64]) -> Result<(), DesignError> {
    if timing.is_empty() || timing.len() > MAX_LOOKS {
        return Err(invalid(
            "timing",
            format!("needs 1 to {MAX_LOOKS} looks, not {}", timing.len()),
        ));
    }
    if timing.iter().any(|t| !(t.is_finite() && *t > 0.0)) {
        return Err(invalid(
            "timing",
            "information fractions must be finite and > 0",
        ));
    }
    if timing.windows(2).any(|w| w[1] <= w[0]) {
        return Err(invalid(
            "timing",
            "information fractions must strictly increase",
        ));
    }
    Ok(())
}

/// One look of a design.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Look {
    /// 1-based look number.
    pub look: usize,
    /// Information fraction.
    pub timing: f64,
    /// Efficacy boundary: reject when `z >= upper_z`.
    pub upper_z: f64,
    /// Two-sided designs: `-upper_z` (reject when `z <= lower_z`). One-sided designs with
    /// futility: the non-binding futility boundary (consider stopping when `z <= lower_z`),
    /// absent at the final look.
    pub lower_z: Option<f64>,
    /// Nominal significance level of the look: `sides * P(Z > upper_z)` (rpact's
    /// `stageLevels` times `sided`).
    pub nominal_alpha: f64,
    /// Alpha spent by this look (the spending function; `alpha` at the final look).
    pub cumulative_alpha: f64,
    /// Beta spent by this look (designs with futility).
    pub cumulative_beta: Option<f64>,
}

/// A computed group-sequential design.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSequentialDesign {
    /// What was asked for.
    #[serde(flatten)]
    pub spec: DesignSpec,
    /// Futility boundaries are never binding: the efficacy boundaries ignore them.
    pub binding_futility: bool,
    /// The looks.
    pub looks: Vec<Look>,
    /// Mean of the final z statistic at which the design has its power (`sqrt` of rpact's
    /// `shift`).
    pub drift: f64,
    /// Maximum information over that of a fixed design with the same alpha and power
    /// (rpact's `inflationFactor`); multiply fixed sample sizes by it.
    pub inflation_factor: f64,
}

impl GroupSequentialDesign {
    /// The efficacy boundaries.
    pub fn upper(&self) -> Vec<f64> {
        self.looks.iter().map(|l| l.upper_z).collect()
    }
}

/// The standard grid of the integration (computed once per design).
fn grid() -> Vec<f64> {
    standard_grid(GRID_R)
}

/// The efficacy boundaries of an alpha-spending design at the given information fractions,
/// spending all remaining alpha at the last of them whatever its value (so fractions observed at
/// interim looks, and an over- or under-running final look, are fine). This is the fast path a
/// simulation calls once per simulated trial.
///
/// ```
/// use rrct::design::{efficacy_boundaries, Sided, SpendingFunction};
/// let b = efficacy_boundaries(0.025, Sided::One, SpendingFunction::OBrienFleming,
///                             &[1.0 / 3.0, 2.0 / 3.0, 1.0]).unwrap();
/// // rpact::getDesignGroupSequential(kMax = 3, alpha = 0.025, typeOfDesign = "asOF")
/// let rpact = [3.710_302_873, 2.511_427_484, 1.993_047_483];
/// for (z, r) in b.iter().zip(rpact) { assert!((z - r).abs() < 1e-5); }
/// ```
pub fn efficacy_boundaries(
    alpha: f64,
    sided: Sided,
    spending: SpendingFunction,
    timing: &[f64],
) -> Result<Vec<f64>, DesignError> {
    validate_alpha(alpha, sided)?;
    spending.validate()?;
    validate_timing(timing)?;
    let targets = cumulative_alpha(alpha, sided, spending, timing, true);
    Ok(solve_efficacy(&targets, timing, sided, &grid()))
}

/// Spending-function values at each fraction; `alpha` at the last when `final_at_last`.
pub(crate) fn cumulative_alpha(
    alpha: f64,
    sided: Sided,
    spending: SpendingFunction,
    timing: &[f64],
    final_at_last: bool,
) -> Vec<f64> {
    let n = timing.len();
    timing
        .iter()
        .enumerate()
        .map(|(k, &t)| {
            if final_at_last && k + 1 == n {
                alpha
            } else {
                spending.spent(alpha, t, sided.count())
            }
        })
        .collect()
}

/// Efficacy boundaries whose cumulative crossing probability under the null equals `targets`.
pub(crate) fn solve_efficacy(
    targets: &[f64],
    timing: &[f64],
    sided: Sided,
    grid: &[f64],
) -> Vec<f64> {
    let mut running = Continuation::start();
    let mut crossed = 0.0;
    let mut upper = Vec::with_capacity(timing.len());
    for (k, (&target, &t)) in targets.iter().zip(timing).enumerate() {
        let increment = (target - crossed).max(0.0);
        let crossing = |c: f64| {
            let (p, dp) = running.upper(t, 0.0, c);
            match sided {
                Sided::One => (p, dp),
                Sided::Two => {
                    let (q, dq) = running.lower(t, 0.0, -c);
                    (p + q, dp - dq)
                }
            }
        };
        let start = if increment > 0.0 {
            normal::upper_quantile(increment / f64::from(sided.count()))
        } else {
            MAX_CRITICAL_VALUE
        };
        let c = newton_bracketed(
            |c| {
                let (p, dp) = crossing(c);
                (p - increment, dp)
            },
            0.0,
            MAX_CRITICAL_VALUE,
            start,
            BOUNDARY_SOLVER_TOLERANCE,
        );
        crossed += crossing(c).0;
        if k + 1 < timing.len() {
            let lower = match sided {
                Sided::One => f64::NEG_INFINITY,
                Sided::Two => -c,
            };
            running = running.advance(grid, t, 0.0, lower, c);
        }
        upper.push(c);
    }
    upper
}

/// Futility boundaries from beta spending under `drift` (one-sided, non-binding): at each look
/// the probability of falling below the boundary without having stopped before equals the beta
/// spent. The value at the last look is where all of beta is spent (it meets the efficacy
/// boundary when `drift` is the design's). Boundaries are capped at the efficacy boundary.
pub(crate) fn solve_futility(
    drift: f64,
    beta_targets: &[f64],
    timing: &[f64],
    upper: &[f64],
    grid: &[f64],
) -> Vec<f64> {
    let mut running = Continuation::start();
    let mut spent = 0.0;
    let mut lower = Vec::with_capacity(timing.len());
    let span = MAX_CRITICAL_VALUE + drift.abs();
    for (k, (&target, &t)) in beta_targets.iter().zip(timing).enumerate() {
        let increment = (target - spent).max(0.0);
        let start = normal::quantile(increment.max(1e-300)) + drift * t.sqrt();
        let mut f = newton_bracketed(
            |a| {
                let (p, dp) = running.lower(t, drift, a);
                (p - increment, dp)
            },
            -span,
            span,
            start,
            BOUNDARY_SOLVER_TOLERANCE,
        );
        if k + 1 < timing.len() {
            f = f.min(upper[k]);
            spent += running.lower(t, drift, f).0;
            running = running.advance(grid, t, drift, f, upper[k]);
        }
        lower.push(f);
    }
    lower
}

/// `P(reject at some look)` under `drift`, with continuation regions `(lower[k], upper[k])`
/// (a path below `lower` stops without rejecting).
pub(crate) fn rejection_probability(
    drift: f64,
    timing: &[f64],
    upper: &[f64],
    lower: &[f64],
    grid: &[f64],
    start: Continuation,
) -> f64 {
    let mut running = start;
    let mut power = 0.0;
    for (k, &t) in timing.iter().enumerate() {
        power += running.upper(t, drift, upper[k]).0;
        if k + 1 < timing.len() {
            running = running.advance(grid, t, drift, lower[k], upper[k]);
        }
    }
    // The integration's error (about 1e-7) must not carry a probability outside [0, 1].
    power.clamp(0.0, 1.0)
}

/// Computes a group-sequential design: boundaries, futility (if asked for), drift and
/// inflation factor.
///
/// ```
/// use rrct::design::{group_sequential, DesignSpec, Sided, SpendingFunction};
/// let spec = DesignSpec::new(3, 0.05, Sided::Two, SpendingFunction::OBrienFleming);
/// let d = group_sequential(&spec).unwrap();
/// // rpact: getDesignCharacteristics(getDesignGroupSequential(kMax = 3, alpha = 0.05,
/// //   sided = 2))$inflationFactor
/// assert!((d.inflation_factor - 1.012_795).abs() < 1e-6);
/// assert_eq!(d.looks[0].lower_z, Some(-d.looks[0].upper_z));
/// ```
pub fn group_sequential(spec: &DesignSpec) -> Result<GroupSequentialDesign, DesignError> {
    spec.validate()?;
    let grid = grid();
    let timing = &spec.timing;
    let n = timing.len();
    let targets = cumulative_alpha(spec.alpha, spec.sided, spec.spending, timing, true);
    let upper = solve_efficacy(&targets, timing, spec.sided, &grid);
    let beta = spec.beta();
    let fixed = spec.fixed_drift_squared();

    let (drift, futility, beta_targets) = match spec.futility {
        Some(bs) => {
            let beta_targets: Vec<f64> = timing
                .iter()
                .enumerate()
                .map(|(k, &t)| {
                    if k + 1 == n {
                        beta
                    } else {
                        bs.spent(beta, t, 1)
                    }
                })
                .collect();
            let gap = |drift: f64| {
                let f = solve_futility(drift, &beta_targets, timing, &upper, &grid);
                f[n - 1] - upper[n - 1]
            };
            let drift = brent(gap, -4.0, 10.0, DRIFT_SOLVER_TOLERANCE).ok_or_else(|| {
                DesignError::NoSolution(
                    "no drift in [-4, 10] makes the futility and efficacy boundaries meet".into(),
                )
            })?;
            let futility = solve_futility(drift, &beta_targets, timing, &upper, &grid);
            (drift, Some(futility), Some(beta_targets))
        }
        None => {
            let lower: Vec<f64> = match spec.sided {
                Sided::One => vec![f64::NEG_INFINITY; n],
                Sided::Two => upper.iter().map(|c| -c).collect(),
            };
            let power_gap = |drift: f64| {
                rejection_probability(drift, timing, &upper, &lower, &grid, Continuation::start())
                    - spec.power
            };
            let drift = brent(power_gap, 0.0, 2.0 * fixed.sqrt(), DRIFT_SOLVER_TOLERANCE)
                .ok_or_else(|| {
                    DesignError::NoSolution(format!(
                        "no drift up to {} gives power {}",
                        2.0 * fixed.sqrt(),
                        spec.power
                    ))
                })?;
            (drift, None, None)
        }
    };

    let sides = f64::from(spec.sided.count());
    let looks = (0..n)
        .map(|k| Look {
            look: k + 1,
            timing: timing[k],
            upper_z: upper[k],
            lower_z: match (&futility, spec.sided) {
                (_, Sided::Two) => Some(-upper[k]),
                (Some(f), Sided::One) if k + 1 < n => Some(f[k]),
                _ => None,
            },
            nominal_alpha: sides * normal::upper_tail(upper[k]),
            cumulative_alpha: targets[k],
            cumulative_beta: beta_targets.as_ref().map(|b| b[k]),
        })
        .collect();
    Ok(GroupSequentialDesign {
        spec: spec.clone(),
        binding_futility: false,
        looks,
        drift,
        inflation_factor: drift * drift / fixed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_look_is_the_fixed_design() {
        let b = efficacy_boundaries(0.05, Sided::Two, SpendingFunction::Pocock, &[1.0]).unwrap();
        assert!((b[0] - 1.959_963_984_540_054).abs() < 1e-10);
        let spec = DesignSpec::new(1, 0.025, Sided::One, SpendingFunction::Pocock);
        let d = group_sequential(&spec).unwrap();
        assert!(
            (d.inflation_factor - 1.0).abs() < 1e-9,
            "{}",
            d.inflation_factor
        );
    }

    #[test]
    fn grid_is_fine_enough() {
        // The boundaries with the working grid against a grid four times finer.
        let timing = [0.15, 0.4, 0.55, 0.8, 1.0];
        for spending in [
            SpendingFunction::OBrienFleming,
            SpendingFunction::Pocock,
            SpendingFunction::HwangShihDeCani { gamma: -4.0 },
        ] {
            for sided in [Sided::One, Sided::Two] {
                let alpha = 0.025 * f64::from(sided.count());
                let targets = cumulative_alpha(alpha, sided, spending, &timing, true);
                let coarse = solve_efficacy(&targets, &timing, sided, &standard_grid(GRID_R));
                let fine = solve_efficacy(&targets, &timing, sided, &standard_grid(64));
                for (a, b) in coarse.iter().zip(&fine) {
                    assert!((a - b).abs() < 1e-6, "{spending:?} {sided:?}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut spec = DesignSpec::new(3, 0.025, Sided::One, SpendingFunction::OBrienFleming);
        spec.timing = vec![0.5, 0.4, 1.0];
        assert!(group_sequential(&spec).is_err());
        spec.timing = vec![0.5, 0.9];
        assert!(group_sequential(&spec).is_err());
        let mut spec = DesignSpec::new(3, 0.6, Sided::One, SpendingFunction::Pocock);
        assert!(group_sequential(&spec).is_err());
        spec.alpha = 0.05;
        spec.sided = Sided::Two;
        spec.futility = Some(SpendingFunction::Pocock);
        assert!(group_sequential(&spec).is_err());
    }
}
