//! Group-sequential designs: efficacy boundaries of the classical designs (O'Brien–Fleming,
//! Pocock, Wang–Tsiatis, Haybittle–Peto) or from a Lan–DeMets alpha-spending function, optional
//! futility boundaries (beta spending or fixed bounds, binding or not), and the inflation
//! factor, as rpact's `getDesignGroupSequential` and `getDesignCharacteristics` compute them.

use serde::Serialize;

use super::integration::{standard_grid, Continuation, DESIGN_GRID_R, GRID_R};
use super::kind::{DesignKind, HAYBITTLE_PETO_INTERIM_Z};
use super::roots::{brent, newton_bracketed};
use super::{
    invalid, DesignError, SpendingFunction, BOUNDARY_SOLVER_TOLERANCE, CLASSICAL_SOLVER_TOLERANCE,
    DRIFT_SOLVER_TOLERANCE, MAX_CRITICAL_VALUE, MAX_LOOKS,
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

/// Futility boundaries of a one-sided design.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FutilityBounds {
    /// From a beta-spending function under the design drift (rpact `typeBetaSpending`,
    /// alpha-spending designs only); serialised as the function's spelling.
    BetaSpending(SpendingFunction),
    /// Given z values at looks 1 to K - 1 (rpact `futilityBounds`); serialised as an array.
    Fixed(Vec<f64>),
}

/// What defines a group-sequential design.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesignSpec {
    /// Overall type I error (the total of both sides when two-sided).
    pub alpha: f64,
    /// One- or two-sided.
    pub sided: Sided,
    /// The family of the efficacy boundaries (rpact `typeOfDesign`).
    #[serde(rename = "type_of_design")]
    pub design: DesignKind,
    /// Planned information fractions, strictly increasing, the last equal to 1.
    pub timing: Vec<f64>,
    /// Power `1 - beta` at the design effect: sets the inflation factor and, with futility, the
    /// beta spent.
    pub power: f64,
    /// Futility boundaries (one-sided designs only).
    pub futility: Option<FutilityBounds>,
    /// Whether the futility boundaries bind: the efficacy boundaries are computed on the
    /// understanding that a trial below a futility boundary stops (rpact `bindingFutility`),
    /// which lowers them. Non-binding boundaries leave the efficacy boundaries as without them.
    pub binding_futility: bool,
}

impl DesignSpec {
    /// A design with `looks` equally spaced looks, power 0.8 and no futility boundaries.
    pub fn new(looks: usize, alpha: f64, sided: Sided, design: impl Into<DesignKind>) -> Self {
        Self {
            alpha,
            sided,
            design: design.into(),
            timing: equally_spaced(looks),
            power: 0.8,
            futility: None,
            binding_futility: false,
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
        self.design.validate()?;
        validate_timing(&self.timing)?;
        if (self.timing[self.timing.len() - 1] - 1.0).abs() > 1e-12 {
            return Err(invalid("timing", "the last information fraction must be 1"));
        }
        match &self.futility {
            None if self.binding_futility => {
                return Err(invalid(
                    "binding futility",
                    "there are no futility boundaries to bind: give beta spending or fixed \
                     futility bounds",
                ))
            }
            None => {}
            Some(f) => {
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
                match f {
                    FutilityBounds::BetaSpending(bs) => {
                        bs.validate()?;
                        if self.design.spending().is_none() {
                            return Err(invalid(
                                "futility",
                                format!(
                                    "beta spending needs an alpha-spending design (as rpact's \
                                     typeBetaSpending), not {}; give fixed futility bounds \
                                     instead",
                                    self.design
                                ),
                            ));
                        }
                    }
                    FutilityBounds::Fixed(bounds) => {
                        let k = self.timing.len();
                        if bounds.len() != k - 1 {
                            return Err(invalid(
                                "futility bounds",
                                format!(
                                    "a design of {k} looks needs {} futility bounds (one per \
                                     interim look), not {}",
                                    k - 1,
                                    bounds.len()
                                ),
                            ));
                        }
                        if let Some(b) = bounds.iter().find(|b| !b.is_finite()) {
                            return Err(invalid(
                                "futility bounds",
                                format!("must be finite z values, not {b}"),
                            ));
                        }
                    }
                }
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
    /// futility: the futility boundary (stop when `z <= lower_z`; binding or not as the
    /// design says), absent at the final look.
    pub lower_z: Option<f64>,
    /// Nominal significance level of the look: `sides * P(Z > upper_z)` (rpact's
    /// `stageLevels` times `sided`).
    pub nominal_alpha: f64,
    /// Alpha spent by this look: the spending function's value for an alpha-spending design
    /// (`alpha` at the final look), the probability under the null of having rejected by this
    /// look for a classical design (with binding futility boundaries in force when they bind),
    /// as rpact's `alphaSpent`.
    pub cumulative_alpha: f64,
    /// Beta spent by this look (designs with beta-spending futility).
    pub cumulative_beta: Option<f64>,
}

/// A computed group-sequential design.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSequentialDesign {
    /// What was asked for.
    #[serde(flatten)]
    pub spec: DesignSpec,
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

/// The grid of [`efficacy_boundaries`], the simulator's fast path.
fn fast_grid() -> Vec<f64> {
    standard_grid(GRID_R)
}

/// The grid of [`group_sequential`] and interim monitoring: fine enough for rpact's digits.
pub(crate) fn design_grid() -> Vec<f64> {
    standard_grid(DESIGN_GRID_R)
}

/// The efficacy boundaries of an alpha-spending design at the given information fractions,
/// spending all remaining alpha at the last of them whatever its value (so fractions observed at
/// interim looks, and an over- or under-running final look, are fine). This is the fast path a
/// simulation calls once per simulated trial: it integrates on the coarser grid [`GRID_R`]
/// (boundaries within about 2e-6 of [`group_sequential`]'s).
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
    Ok(solve_efficacy(&targets, timing, sided, None, &fast_grid()))
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

/// The lower end of the continuation region at look `k` when nothing else stops a trial:
/// `-upper` for a two-sided design, `-inf` for a one-sided one.
fn open_lower(sided: Sided, upper: f64) -> f64 {
    match sided {
        Sided::One => f64::NEG_INFINITY,
        Sided::Two => -upper,
    }
}

/// Probability under the null, given the running paths, of rejecting at the next look with
/// boundary `c` (both sides when two-sided), and its derivative in `c`.
fn null_crossing(running: &Continuation, t: f64, sided: Sided, c: f64) -> (f64, f64) {
    let (p, dp) = running.upper(t, 0.0, c);
    match sided {
        Sided::One => (p, dp),
        Sided::Two => {
            let (q, dq) = running.lower(t, 0.0, -c);
            (p + q, dp - dq)
        }
    }
}

/// The boundary at which the null crossing probability of the next look is `increment`.
fn solve_look(running: &Continuation, t: f64, sided: Sided, increment: f64) -> f64 {
    let start = if increment > 0.0 {
        normal::upper_quantile(increment / f64::from(sided.count()))
    } else {
        MAX_CRITICAL_VALUE
    };
    newton_bracketed(
        |c| {
            let (p, dp) = null_crossing(running, t, sided, c);
            (p - increment, dp)
        },
        0.0,
        MAX_CRITICAL_VALUE,
        start,
        BOUNDARY_SOLVER_TOLERANCE,
    )
}

/// Efficacy boundaries whose cumulative crossing probability under the null equals `targets`.
/// `binding` holds futility boundaries at the interim looks that stop a trial (one-sided
/// designs with binding futility), `None` otherwise.
pub(crate) fn solve_efficacy(
    targets: &[f64],
    timing: &[f64],
    sided: Sided,
    binding: Option<&[f64]>,
    grid: &[f64],
) -> Vec<f64> {
    let mut running = Continuation::start();
    let mut crossed = 0.0;
    let mut upper = Vec::with_capacity(timing.len());
    for (k, (&target, &t)) in targets.iter().zip(timing).enumerate() {
        let increment = (target - crossed).max(0.0);
        let c = solve_look(&running, t, sided, increment);
        crossed += null_crossing(&running, t, sided, c).0;
        if k + 1 < timing.len() {
            let lower = match binding.and_then(|b| b.get(k)) {
                Some(&f) => f.min(c),
                None => open_lower(sided, c),
            };
            running = running.advance(grid, t, 0.0, lower, c);
        }
        upper.push(c);
    }
    upper
}

/// Cumulative probability under the null of rejecting by each look, with continuation regions
/// `(lower[k], upper[k])` at the interim looks.
fn null_rejection(
    timing: &[f64],
    upper: &[f64],
    lower: &[f64],
    sided: Sided,
    grid: &[f64],
) -> Vec<f64> {
    let mut running = Continuation::start();
    let mut crossed = 0.0;
    let mut cumulative = Vec::with_capacity(timing.len());
    for (k, &t) in timing.iter().enumerate() {
        crossed += null_crossing(&running, t, sided, upper[k]).0;
        cumulative.push(crossed);
        if k + 1 < timing.len() {
            running = running.advance(grid, t, 0.0, lower[k], upper[k]);
        }
    }
    cumulative
}

/// The continuation region's lower ends at the interim looks under the null: binding futility
/// bounds, `-upper` (two-sided) or `-inf`.
fn null_lower(sided: Sided, upper: &[f64], binding: Option<&[f64]>) -> Vec<f64> {
    upper
        .iter()
        .enumerate()
        .map(|(k, &c)| match binding.and_then(|b| b.get(k)) {
            Some(&f) => f.min(c),
            None => open_lower(sided, c),
        })
        .collect()
}

/// The classical boundaries: Wang–Tsiatis `C t^(delta - 1/2)` with `C` such that the type I
/// error is alpha, or Haybittle–Peto's 3 at the interim looks with the final boundary such that
/// it is. Returns the boundaries and the cumulative null rejection probabilities.
fn classical(
    spec: &DesignSpec,
    binding: Option<&[f64]>,
    grid: &[f64],
) -> Result<(Vec<f64>, Vec<f64>), DesignError> {
    let timing = &spec.timing;
    let n = timing.len();
    let sided = spec.sided;
    let upper = match spec.design.wang_tsiatis_delta() {
        Some(delta) => {
            let shape: Vec<f64> = timing.iter().map(|t| t.powf(delta - 0.5)).collect();
            let scaled = |c: f64| -> Vec<f64> { shape.iter().map(|s| c * s).collect() };
            let gap = |c: f64| {
                let upper = scaled(c);
                let lower = null_lower(sided, &upper, binding);
                null_rejection(timing, &upper, &lower, sided, grid)[n - 1] - spec.alpha
            };
            // rpact searches the scale in [0, 8]; the final boundary is the scale itself.
            let c = brent(gap, 0.0, MAX_CRITICAL_VALUE, CLASSICAL_SOLVER_TOLERANCE).ok_or_else(
                || {
                    DesignError::NoSolution(format!(
                        "no {} design has type I error {}",
                        spec.design, spec.alpha
                    ))
                },
            )?;
            scaled(c)
        }
        None => {
            // Haybittle–Peto: 3 at the interim looks; the final look spends what is left.
            let mut upper = vec![HAYBITTLE_PETO_INTERIM_Z; n - 1];
            let lower = null_lower(sided, &upper, binding);
            let mut running = Continuation::start();
            let mut crossed = 0.0;
            for k in 0..n - 1 {
                crossed += null_crossing(&running, timing[k], sided, upper[k]).0;
                running = running.advance(grid, timing[k], 0.0, lower[k], upper[k]);
            }
            if crossed >= spec.alpha {
                return Err(DesignError::NoSolution(format!(
                    "the Haybittle–Peto interim boundaries (z = {HAYBITTLE_PETO_INTERIM_Z}) \
                     alone spend {crossed:.3e}, more than alpha = {}",
                    spec.alpha
                )));
            }
            upper.push(solve_look(
                &running,
                timing[n - 1],
                sided,
                spec.alpha - crossed,
            ));
            upper
        }
    };
    let lower = null_lower(sided, &upper, binding);
    let cumulative = null_rejection(timing, &upper, &lower, sided, grid);
    Ok((upper, cumulative))
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
    for (k, (&target, &t)) in beta_targets.iter().zip(timing).enumerate() {
        let mut f = solve_futility_look(&running, t, drift, (target - spent).max(0.0));
        if k + 1 < timing.len() {
            f = f.min(upper[k]);
            spent += running.lower(t, drift, f).0;
            running = running.advance(grid, t, drift, f, upper[k]);
        }
        lower.push(f);
    }
    lower
}

/// The futility boundary at which the probability under `drift` of falling below it at the next
/// look is `increment`.
fn solve_futility_look(running: &Continuation, t: f64, drift: f64, increment: f64) -> f64 {
    let span = MAX_CRITICAL_VALUE + drift.abs();
    let start = normal::quantile(increment.max(1e-300)) + drift * t.sqrt();
    newton_bracketed(
        |a| {
            let (p, dp) = running.lower(t, drift, a);
            (p - increment, dp)
        },
        -span,
        span,
        start,
        BOUNDARY_SOLVER_TOLERANCE,
    )
}

/// Binding beta spending (one-sided): at each look the efficacy boundary spends its alpha under
/// the null with the earlier futility boundaries in force, and the futility boundary spends its
/// beta under `drift` (rpact's `bindingFutility = TRUE` with `typeBetaSpending`). Returns
/// `(upper, futility)`, the futility value at the last look being where all beta is spent.
pub(crate) fn solve_binding_beta_spending(
    drift: f64,
    alpha_targets: &[f64],
    beta_targets: &[f64],
    timing: &[f64],
    grid: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let n = timing.len();
    let mut null = Continuation::start();
    let mut alternative = Continuation::start();
    let (mut crossed, mut spent) = (0.0, 0.0);
    let mut upper = Vec::with_capacity(n);
    let mut futility = Vec::with_capacity(n);
    for k in 0..n {
        let t = timing[k];
        let c = solve_look(&null, t, Sided::One, (alpha_targets[k] - crossed).max(0.0));
        let mut f = solve_futility_look(&alternative, t, drift, (beta_targets[k] - spent).max(0.0));
        if k + 1 < n {
            f = f.min(c);
            crossed += null.upper(t, 0.0, c).0;
            spent += alternative.lower(t, drift, f).0;
            null = null.advance(grid, t, 0.0, f, c);
            alternative = alternative.advance(grid, t, drift, f, c);
        }
        upper.push(c);
        futility.push(f);
    }
    (upper, futility)
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
    // The integration's error must not carry a probability outside [0, 1].
    power.clamp(0.0, 1.0)
}

/// Beta spent by each look, `beta` at the last.
fn beta_targets(spec: &DesignSpec, bs: SpendingFunction) -> Vec<f64> {
    let n = spec.timing.len();
    let beta = spec.beta();
    spec.timing
        .iter()
        .enumerate()
        .map(|(k, &t)| {
            if k + 1 == n {
                beta
            } else {
                bs.spent(beta, t, 1)
            }
        })
        .collect()
}

/// The drift at which a design with continuation regions `(lower[k], upper[k])` has its power.
fn drift_for_power(
    spec: &DesignSpec,
    upper: &[f64],
    lower: &[f64],
    grid: &[f64],
) -> Result<f64, DesignError> {
    let limit = 2.0 * spec.fixed_drift_squared().sqrt();
    let power_gap = |drift: f64| {
        rejection_probability(
            drift,
            &spec.timing,
            upper,
            lower,
            grid,
            Continuation::start(),
        ) - spec.power
    };
    brent(power_gap, 0.0, limit, DRIFT_SOLVER_TOLERANCE).ok_or_else(|| {
        DesignError::NoSolution(format!("no drift up to {limit} gives power {}", spec.power))
    })
}

/// Computes a group-sequential design: boundaries, futility (if asked for), drift and
/// inflation factor.
///
/// ```
/// use rrct::design::{group_sequential, DesignKind, DesignSpec, Sided, SpendingFunction};
/// let spec = DesignSpec::new(3, 0.05, Sided::Two, SpendingFunction::OBrienFleming);
/// let d = group_sequential(&spec).unwrap();
/// // rpact: getDesignCharacteristics(getDesignGroupSequential(kMax = 3, alpha = 0.05,
/// //   sided = 2, typeOfDesign = "asOF"))$inflationFactor
/// assert!((d.inflation_factor / 1.012_794_808_978 - 1.0).abs() < 1e-7);
/// assert_eq!(d.looks[0].lower_z, Some(-d.looks[0].upper_z));
/// // The classical O'Brien–Fleming design (rpact typeOfDesign = "OF").
/// let of = group_sequential(&DesignSpec::new(3, 0.025, Sided::One, DesignKind::OBrienFleming))
///     .unwrap();
/// assert!((of.looks[0].upper_z / 3.471_091_444_654 - 1.0).abs() < 1e-7);
/// ```
pub fn group_sequential(spec: &DesignSpec) -> Result<GroupSequentialDesign, DesignError> {
    spec.validate()?;
    let grid = design_grid();
    let timing = &spec.timing;
    let n = timing.len();
    let fixed = spec.fixed_drift_squared();
    let fixed_bounds = match &spec.futility {
        Some(FutilityBounds::Fixed(b)) => Some(b.as_slice()),
        _ => None,
    };
    let binding = if spec.binding_futility {
        fixed_bounds
    } else {
        None
    };

    // Efficacy boundaries, alpha spent, futility boundaries, beta spent, drift.
    let (upper, alpha_spent, futility, beta_spent, drift) = match (spec.design, &spec.futility) {
        (DesignKind::AlphaSpending(spending), Some(FutilityBounds::BetaSpending(bs))) => {
            let targets = cumulative_alpha(spec.alpha, spec.sided, spending, timing, true);
            let betas = beta_targets(spec, *bs);
            let (upper, futility, drift) = if spec.binding_futility {
                let gap = |drift: f64| {
                    let (u, f) =
                        solve_binding_beta_spending(drift, &targets, &betas, timing, &grid);
                    f[n - 1] - u[n - 1]
                };
                let drift = brent(gap, -4.0, 10.0, DRIFT_SOLVER_TOLERANCE).ok_or_else(|| {
                    DesignError::NoSolution(
                        "no drift in [-4, 10] makes the futility and efficacy boundaries meet"
                            .into(),
                    )
                })?;
                let (u, f) = solve_binding_beta_spending(drift, &targets, &betas, timing, &grid);
                (u, f, drift)
            } else {
                let upper = solve_efficacy(&targets, timing, spec.sided, None, &grid);
                let gap = |drift: f64| {
                    let f = solve_futility(drift, &betas, timing, &upper, &grid);
                    f[n - 1] - upper[n - 1]
                };
                let drift = brent(gap, -4.0, 10.0, DRIFT_SOLVER_TOLERANCE).ok_or_else(|| {
                    DesignError::NoSolution(
                        "no drift in [-4, 10] makes the futility and efficacy boundaries meet"
                            .into(),
                    )
                })?;
                let futility = solve_futility(drift, &betas, timing, &upper, &grid);
                (upper, futility, drift)
            };
            (upper, targets, Some(futility), Some(betas), drift)
        }
        (design, futility) => {
            let (upper, alpha_spent) = match design {
                DesignKind::AlphaSpending(spending) => {
                    let targets = cumulative_alpha(spec.alpha, spec.sided, spending, timing, true);
                    let upper = solve_efficacy(&targets, timing, spec.sided, binding, &grid);
                    (upper, targets)
                }
                _ => classical(spec, binding, &grid)?,
            };
            if let Some(bounds) = fixed_bounds {
                if let Some(k) = (0..n - 1).find(|&k| bounds[k] > upper[k]) {
                    return Err(invalid(
                        "futility bounds",
                        format!(
                            "the futility bound of look {} ({}) lies above its efficacy \
                             boundary ({:.6})",
                            k + 1,
                            bounds[k],
                            upper[k]
                        ),
                    ));
                }
            }
            // Power counts futility stops, binding or not (rpact's design characteristics).
            let lower = null_lower(spec.sided, &upper, fixed_bounds);
            let drift = drift_for_power(spec, &upper, &lower, &grid)?;
            let futility = futility.as_ref().map(|_| {
                let mut f = fixed_bounds.map(<[f64]>::to_vec).unwrap_or_default();
                f.push(upper[n - 1]);
                f
            });
            (upper, alpha_spent, futility, None, drift)
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
            cumulative_alpha: alpha_spent[k],
            cumulative_beta: beta_spent.as_ref().map(|b| b[k]),
        })
        .collect();
    Ok(GroupSequentialDesign {
        spec: spec.clone(),
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
    fn fast_grid_is_fine_enough() {
        // The simulator's boundaries against those of the design grid.
        let timing = [0.15, 0.4, 0.55, 0.8, 1.0];
        for spending in [
            SpendingFunction::OBrienFleming,
            SpendingFunction::Pocock,
            SpendingFunction::HwangShihDeCani { gamma: -4.0 },
        ] {
            for sided in [Sided::One, Sided::Two] {
                let alpha = 0.025 * f64::from(sided.count());
                let targets = cumulative_alpha(alpha, sided, spending, &timing, true);
                let coarse = solve_efficacy(&targets, &timing, sided, None, &fast_grid());
                let fine = solve_efficacy(&targets, &timing, sided, None, &design_grid());
                for (a, b) in coarse.iter().zip(&fine) {
                    assert!((a - b).abs() < 1e-5, "{spending:?} {sided:?}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn design_grid_has_converged() {
        // Every design type at the design grid against a grid of r = 128: boundaries within
        // 3e-8 and nominal levels within 1e-7 relative even with a first look at 0.15.
        let timing = vec![0.15, 0.4, 0.55, 0.8, 1.0];
        let kinds = [
            DesignKind::OBrienFleming,
            DesignKind::Pocock,
            DesignKind::WangTsiatis { delta: 0.25 },
            DesignKind::HaybittlePeto,
            DesignKind::AlphaSpending(SpendingFunction::OBrienFleming),
            DesignKind::AlphaSpending(SpendingFunction::HwangShihDeCani { gamma: 0.0 }),
        ];
        let fine = standard_grid(128);
        for kind in kinds {
            for sided in [Sided::One, Sided::Two] {
                let mut spec = DesignSpec::new(5, 0.025 * f64::from(sided.count()), sided, kind);
                spec.timing = timing.clone();
                let (upper, reference) = match kind {
                    DesignKind::AlphaSpending(f) => {
                        let t = cumulative_alpha(spec.alpha, sided, f, &timing, true);
                        (
                            solve_efficacy(&t, &timing, sided, None, &design_grid()),
                            solve_efficacy(&t, &timing, sided, None, &fine),
                        )
                    }
                    _ => (
                        classical(&spec, None, &design_grid()).unwrap().0,
                        classical(&spec, None, &fine).unwrap().0,
                    ),
                };
                for (a, b) in upper.iter().zip(&reference) {
                    assert!((a - b).abs() < 3e-8, "{kind} {sided:?}: {a} vs {b}");
                    let (pa, pb) = (normal::upper_tail(*a), normal::upper_tail(*b));
                    assert!(
                        ((pa - pb) / pb).abs() < 1e-7,
                        "{kind} {sided:?}: {pa} vs {pb}"
                    );
                }
            }
        }
    }

    #[test]
    fn classical_designs_have_their_shape_and_spend_alpha() {
        let mut spec = DesignSpec::new(4, 0.025, Sided::One, DesignKind::Pocock);
        let p = group_sequential(&spec).unwrap();
        assert!(p
            .looks
            .windows(2)
            .all(|w| (w[0].upper_z - w[1].upper_z).abs() < 1e-12));
        assert!((p.looks[3].cumulative_alpha - 0.025).abs() < 1e-10);
        spec.design = DesignKind::WangTsiatis { delta: 0.0 };
        let wt = group_sequential(&spec).unwrap();
        spec.design = DesignKind::OBrienFleming;
        let of = group_sequential(&spec).unwrap();
        assert_eq!(wt.upper(), of.upper());
        for l in &of.looks {
            assert!((l.upper_z * l.timing.sqrt() - of.looks[3].upper_z).abs() < 1e-12);
        }
        spec.design = DesignKind::HaybittlePeto;
        let hp = group_sequential(&spec).unwrap();
        assert!(hp.looks[..3].iter().all(|l| l.upper_z == 3.0));
        // Binding futility lowers the efficacy boundaries.
        spec.design = DesignKind::OBrienFleming;
        spec.futility = Some(FutilityBounds::Fixed(vec![0.0, 0.5, 1.0]));
        let non_binding = group_sequential(&spec).unwrap();
        assert_eq!(non_binding.upper(), of.upper());
        spec.binding_futility = true;
        let binding = group_sequential(&spec).unwrap();
        assert!(binding.upper().iter().zip(of.upper()).all(|(b, o)| *b < o));
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
        spec.futility = Some(FutilityBounds::BetaSpending(SpendingFunction::Pocock));
        assert!(group_sequential(&spec).is_err());
        // Beta spending needs an alpha-spending design; binding needs bounds; bounds above the
        // efficacy boundary, or of the wrong number, are refused.
        let mut spec = DesignSpec::new(3, 0.025, Sided::One, DesignKind::OBrienFleming);
        spec.futility = Some(FutilityBounds::BetaSpending(SpendingFunction::Pocock));
        assert!(group_sequential(&spec)
            .unwrap_err()
            .to_string()
            .contains("alpha-spending"));
        spec.futility = None;
        spec.binding_futility = true;
        assert!(group_sequential(&spec).is_err());
        spec.futility = Some(FutilityBounds::Fixed(vec![0.0]));
        assert!(group_sequential(&spec)
            .unwrap_err()
            .to_string()
            .contains("needs 2"));
        spec.futility = Some(FutilityBounds::Fixed(vec![4.0, 0.0]));
        assert!(group_sequential(&spec)
            .unwrap_err()
            .to_string()
            .contains("above"));
        // Haybittle–Peto cannot spend less than its interim looks do.
        let spec = DesignSpec::new(4, 0.002, Sided::One, DesignKind::HaybittlePeto);
        assert!(group_sequential(&spec)
            .unwrap_err()
            .to_string()
            .contains("Haybittle"));
    }
}
