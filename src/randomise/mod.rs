//! Allocation procedures: the pure heart of randomisation.
//!
//! Owns how the next arm is chosen from the trial's secret master seed, the stored position of
//! the allocation sequence and the counts the procedure balances. It never touches storage or
//! the clock: the caller loads a [`StratumState`] (and, for the adaptive procedures, the counts
//! in an [`AllocationContext`]), asks [`allocate_with`] for a [`Decision`] and stores
//! `decision.next` in the same transaction as the allocation. Because every random draw comes
//! from a stream derived from (master seed, trial, stratum, block or sequence number), the same
//! seed and the same enrolment order give the same allocations bit for bit, and any allocation
//! can be replayed by an auditor who is given the seed after the trial closes.
//!
//! Draws use our own documented algorithms ([`uniform_below`], [`shuffle`], [`weighted_draw`],
//! [`unit_draw`] with [`select_by_probability`]) on the raw ChaCha20 output rather than
//! `rand`'s distributions, whose exact outputs may change between `rand` releases; a published
//! allocation sequence must stay replayable for decades.
//!
//! # Procedures
//! - **simple**: one weighted draw per allocation from `stream(seed, trial, stratum, allocated)`.
//! - **permuted blocks**: block `b` is shuffled from `stream(seed, trial, stratum, b)`.
//! - **minimisation** (Pocock–Simon), **biased coin** (Efron), **big stick** (Soares & Wu) and
//!   **urn** (Wei's UD(α, β)): each computes a probability per arm from the counts in the
//!   [`AllocationContext`], then takes one [`unit_draw`] `u` from
//!   `stream(seed, trial, stratum, allocated)` and picks the first arm whose cumulative
//!   probability exceeds `u` ([`select_by_probability`]). The probabilities and `u` are kept in
//!   [`Decision::detail`] so an auditor can check the choice without the seed. Minimisation
//!   balances trial-wide marginal counts and is run with stratum key `all`.
//!
//! # Modifiers that apply to every procedure
//! - **Per-patient arm eligibility** (RECOVERY-style, [`AllocationContext::eligible_arms`]):
//!   only eligible arms can be drawn, with the protocol ratios renormalised over them. Simple
//!   randomisation zeroes the weights of ineligible arms. Permuted blocks cannot skip slots
//!   without breaking the block for everyone else, so a restricted patient is given a simple
//!   weighted draw among the eligible arms from a separately tagged stream
//!   (`tagged_stream(seed, "restricted", trial, stratum, allocated)`) and the block position
//!   does not move: blocks balance the fully eligible patients, as a restricted patient is only
//!   ever compared with patients eligible for the same arms. Minimisation scores and chooses
//!   among the eligible arms only; the two-arm coins are forced to the single eligible arm.
//!   Eligibility takes precedence over the big stick's bound (an unsuitable arm is never given).
//! - **Cluster randomisation** ([`AllocationContext::cluster_arm`]): when the caller says the
//!   patient's cluster already has an arm, the patient inherits it without a draw and without
//!   taking a slot (`next` equals the input state): the sequence runs over clusters, so the
//!   caller passes the state and counts of clusters, not of patients.
//!
//! [`sequence`] turns a parsed enrolment into its decision and the counts it moves, for the live
//! engine and for [`replay`], which remakes a closed trial's exported log from the revealed seed
//! (specified for outsiders in `docs/VERIFY.md`).

mod coins;
mod minimisation;
pub mod quality;
pub mod record;
pub mod replay;
pub mod sequence;
mod stream;

pub use crate::protocol::ImbalanceMeasure;
pub use record::{AllocationRecord, Draw, Timestamp};
pub use stream::{seed_commitment, stream, tagged_stream, MasterSeed, StratumStreams};

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use serde::Serialize;

/// One minimisation factor: which enrolment field it balances and how much its imbalance
/// weighs in the total score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinimisationFactor {
    pub name: String,
    pub weight: f64,
}

/// Which allocation procedure to run, with its parameters, for arms with the given ratio weights.
#[derive(Debug, Clone, PartialEq)]
pub enum Scheme {
    /// Independent weighted draw per allocation.
    Simple { ratios: Vec<u32> },
    /// Permuted blocks; each block's size drawn uniformly from `block_sizes`, every size a
    /// multiple of the ratio sum (checked by the protocol loader and again by [`Scheme::new_blocks`]).
    PermutedBlocks {
        ratios: Vec<u32>,
        block_sizes: Vec<u32>,
    },
    /// Pocock–Simon minimisation over trial-wide marginal counts (the rule is documented
    /// in [`Scheme::new_minimisation`]); the first `initial_random` allocations of the trial are
    /// simple weighted draws.
    Minimisation {
        ratios: Vec<u32>,
        factors: Vec<MinimisationFactor>,
        measure: ImbalanceMeasure,
        /// Probability given to the preferred arm(s).
        p: f64,
        initial_random: u32,
    },
    /// Efron's biased coin: the lagging arm with probability `p`, a fair coin when balanced.
    /// Two arms with equal ratios.
    BiasedCoin { ratios: Vec<u32>, p: f64 },
    /// Soares & Wu's big stick: a fair coin while |n₁ − n₂| < `max_imbalance`, the lagging arm
    /// for certain at the bound. Two arms with equal ratios.
    BigStick {
        ratios: Vec<u32>,
        max_imbalance: u32,
    },
    /// Wei's urn UD(α, β), generalised to k arms with equal ratios: the urn starts with α balls
    /// per arm and every allocation adds β balls to each *other* arm, so arm `a` holds
    /// α + β (n − n_a) balls and is drawn with probability proportional to that.
    Urn {
        ratios: Vec<u32>,
        alpha: u32,
        beta: u32,
    },
}

/// Why a scheme cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemeError {
    #[error("at least two arms are needed, got {0}")]
    TooFewArms(usize),
    #[error("allocation ratios must be positive")]
    ZeroRatio,
    #[error("at least one block size is needed")]
    NoBlockSizes,
    #[error("block size {size} is not a positive multiple of the ratio sum {ratio_sum}")]
    BlockNotMultiple { size: u32, ratio_sum: u32 },
    #[error("{procedure} needs exactly 2 arms with equal ratios")]
    TwoEqualArmsOnly { procedure: &'static str },
    #[error("{procedure} needs equal allocation ratios")]
    EqualRatiosOnly { procedure: &'static str },
    #[error("{name} must be between {min} and {max}, got {value}")]
    ProbabilityOutOfRange {
        name: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
    #[error("minimisation needs at least one factor")]
    NoFactors,
    #[error("weight of minimisation factor `{factor}` must be a positive number, got {weight}")]
    BadWeight { factor: String, weight: f64 },
    #[error("minimisation factor `{0}` is listed twice")]
    DuplicateFactor(String),
    #[error("the big stick's maximum tolerated imbalance must be at least 1")]
    ZeroMaxImbalance,
    #[error("an urn with alpha = 0 and beta = 0 never holds a ball")]
    EmptyUrn,
}

impl Scheme {
    pub fn new_simple(ratios: Vec<u32>) -> Result<Self, SchemeError> {
        check_ratios(&ratios)?;
        Ok(Scheme::Simple { ratios })
    }

    pub fn new_blocks(ratios: Vec<u32>, block_sizes: Vec<u32>) -> Result<Self, SchemeError> {
        check_ratios(&ratios)?;
        if block_sizes.is_empty() {
            return Err(SchemeError::NoBlockSizes);
        }
        let ratio_sum: u32 = ratios.iter().sum();
        if let Some(&size) = block_sizes.iter().find(|&&s| s == 0 || s % ratio_sum != 0) {
            return Err(SchemeError::BlockNotMultiple { size, ratio_sum });
        }
        Ok(Scheme::PermutedBlocks {
            ratios,
            block_sizes,
        })
    }

    /// Pocock–Simon minimisation, any number of arms and any ratios.
    ///
    /// The rule, for a patient whose level of factor `f` has marginal counts `m[f][a]`:
    /// for each eligible arm `j`, add the patient to `j` hypothetically, divide every arm's count
    /// by its ratio weight, measure the spread of these ratio-adjusted counts over the eligible
    /// arms (`range` = max − min, `variance` and `sd` with R's n − 1 denominator) and sum the
    /// factors' spreads times their weights: the score `G_j`. The preferred arms `P` are those
    /// with the least score (scores within 1e-9 relative are tied). Then the preferred arms
    /// share probability `p` and the others share `1 − p`, each group in proportion to the
    /// ratios; when every eligible arm is preferred, the probabilities are the ratios. With
    /// equal ratios this is the common rule: a single preferred arm with probability `p`, each of
    /// the other `k − 1` arms with `(1 − p)/(k − 1)`; tied preferred arms split `p` equally.
    /// `p` must be at least 1/k (k arms) and at most 1.
    pub fn new_minimisation(
        ratios: Vec<u32>,
        factors: Vec<MinimisationFactor>,
        measure: ImbalanceMeasure,
        p: f64,
        initial_random: u32,
    ) -> Result<Self, SchemeError> {
        check_ratios(&ratios)?;
        if factors.is_empty() {
            return Err(SchemeError::NoFactors);
        }
        let mut seen = std::collections::HashSet::new();
        for f in &factors {
            if !(f.weight.is_finite() && f.weight > 0.0) {
                return Err(SchemeError::BadWeight {
                    factor: f.name.clone(),
                    weight: f.weight,
                });
            }
            if !seen.insert(f.name.as_str()) {
                return Err(SchemeError::DuplicateFactor(f.name.clone()));
            }
        }
        check_probability("minimisation p", p, 1.0 / ratios.len() as f64)?;
        Ok(Scheme::Minimisation {
            ratios,
            factors,
            measure,
            p,
            initial_random,
        })
    }

    /// Efron's biased coin with probability `p` (0.5 ≤ p ≤ 1) for the lagging arm.
    pub fn new_biased_coin(ratios: Vec<u32>, p: f64) -> Result<Self, SchemeError> {
        check_two_equal(&ratios, "the biased coin")?;
        check_probability("biased coin p", p, 0.5)?;
        Ok(Scheme::BiasedCoin { ratios, p })
    }

    /// Big stick design with maximum tolerated imbalance `max_imbalance` ≥ 1.
    pub fn new_big_stick(ratios: Vec<u32>, max_imbalance: u32) -> Result<Self, SchemeError> {
        check_two_equal(&ratios, "the big stick design")?;
        if max_imbalance == 0 {
            return Err(SchemeError::ZeroMaxImbalance);
        }
        Ok(Scheme::BigStick {
            ratios,
            max_imbalance,
        })
    }

    /// Wei's urn UD(α, β) for any number of arms with equal ratios.
    pub fn new_urn(ratios: Vec<u32>, alpha: u32, beta: u32) -> Result<Self, SchemeError> {
        check_ratios(&ratios)?;
        if ratios.iter().any(|&r| r != ratios[0]) {
            return Err(SchemeError::EqualRatiosOnly {
                procedure: "the urn design",
            });
        }
        if alpha == 0 && beta == 0 {
            return Err(SchemeError::EmptyUrn);
        }
        Ok(Scheme::Urn {
            ratios,
            alpha,
            beta,
        })
    }

    /// Build the scheme a validated protocol declares.
    pub fn from_protocol(protocol: &crate::protocol::Protocol) -> Result<Self, SchemeError> {
        use crate::protocol::Method;
        let ratios = protocol.ratios();
        match &protocol.randomisation.method {
            Method::Simple => Scheme::new_simple(ratios),
            Method::PermutedBlocks { block_sizes } => {
                Scheme::new_blocks(ratios, block_sizes.clone())
            }
            Method::Minimisation {
                factors,
                measure,
                p,
                initial_random,
            } => Scheme::new_minimisation(
                ratios,
                factors
                    .iter()
                    .map(|f| MinimisationFactor {
                        name: f.field.clone(),
                        weight: f.weight,
                    })
                    .collect(),
                *measure,
                *p,
                *initial_random,
            ),
            Method::BiasedCoin { p } => Scheme::new_biased_coin(ratios, *p),
            Method::BigStick { max_imbalance } => Scheme::new_big_stick(ratios, *max_imbalance),
            Method::Urn { alpha, beta } => Scheme::new_urn(ratios, *alpha, *beta),
        }
    }

    pub fn ratios(&self) -> &[u32] {
        match self {
            Scheme::Simple { ratios }
            | Scheme::PermutedBlocks { ratios, .. }
            | Scheme::Minimisation { ratios, .. }
            | Scheme::BiasedCoin { ratios, .. }
            | Scheme::BigStick { ratios, .. }
            | Scheme::Urn { ratios, .. } => ratios,
        }
    }

    /// The procedure's name as protocol files and audit details write it.
    pub fn procedure(&self) -> &'static str {
        match self {
            Scheme::Simple { .. } => "simple",
            Scheme::PermutedBlocks { .. } => "permuted_blocks",
            Scheme::Minimisation { .. } => "minimisation",
            Scheme::BiasedCoin { .. } => "biased_coin",
            Scheme::BigStick { .. } => "big_stick",
            Scheme::Urn { .. } => "urn",
        }
    }

    /// Whether the procedure balances per-stratum arm counts (biased coin, big stick, urn).
    pub fn keeps_arm_counts(&self) -> bool {
        matches!(
            self,
            Scheme::BiasedCoin { .. } | Scheme::BigStick { .. } | Scheme::Urn { .. }
        )
    }

    /// The minimisation factors, in order (empty for the other procedures).
    pub fn factors(&self) -> &[MinimisationFactor] {
        match self {
            Scheme::Minimisation { factors, .. } => factors,
            _ => &[],
        }
    }
}

fn check_ratios(ratios: &[u32]) -> Result<(), SchemeError> {
    if ratios.len() < 2 {
        return Err(SchemeError::TooFewArms(ratios.len()));
    }
    if ratios.contains(&0) {
        return Err(SchemeError::ZeroRatio);
    }
    Ok(())
}

fn check_two_equal(ratios: &[u32], procedure: &'static str) -> Result<(), SchemeError> {
    check_ratios(ratios)?;
    if ratios.len() != 2 || ratios[0] != ratios[1] {
        return Err(SchemeError::TwoEqualArmsOnly { procedure });
    }
    Ok(())
}

fn check_probability(name: &'static str, value: f64, min: f64) -> Result<(), SchemeError> {
    if !(value.is_finite() && value >= min && value <= 1.0) {
        return Err(SchemeError::ProbabilityOutOfRange {
            name,
            value,
            min,
            max: 1.0,
        });
    }
    Ok(())
}

/// Where a stratum stands in its allocation sequence; stored per (trial, stratum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct StratumState {
    /// Number of the current block (0-based); for the other procedures unused (stays 0).
    pub block_number: u64,
    /// Slots of the current block already used; 0 means the block has not started.
    pub position: u32,
    /// Allocations made in this stratum so far (the sequence number of the next draw).
    pub allocated: u64,
}

/// What the adaptive procedures and the modifiers need besides the stratum's position.
/// `AllocationContext::default()` is an unrestricted, unclustered patient with all counts zero.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AllocationContext {
    /// RECOVERY-style eligibility, one flag per arm in protocol order; `None` means every arm.
    pub eligible_arms: Option<Vec<bool>>,
    /// Allocations per arm so far in the stratum (biased coin, big stick, urn); empty means
    /// zeros. For a cluster trial these are counts of clusters.
    pub arm_counts: Vec<u64>,
    /// Minimisation: for each factor of the scheme, in order, the trial-wide counts per arm of
    /// patients at this patient's level of the factor; empty means zeros.
    pub marginals: Vec<Vec<u64>>,
    /// The arm of the patient's cluster when the cluster is already randomised.
    pub cluster_arm: Option<usize>,
}

/// Why a context cannot be used with a scheme (input from the register or the store).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("eligibility lists {got} arms but the trial has {arms}")]
    EligibilityLength { got: usize, arms: usize },
    #[error("the patient is eligible for none of the arms")]
    NoEligibleArm,
    #[error("the cluster's arm {arm} does not exist (the trial has {arms} arms)")]
    ClusterArmOutOfRange { arm: usize, arms: usize },
    #[error("the cluster's arm {arm} is not eligible for this patient")]
    ClusterArmIneligible { arm: usize },
    #[error("arm counts list {got} arms but the trial has {arms}")]
    CountsLength { got: usize, arms: usize },
    #[error("marginal counts are given for {got} factors but the scheme has {factors}")]
    MarginalsLength { got: usize, factors: usize },
    #[error("marginal counts of factor {factor} list {got} arms but the trial has {arms}")]
    MarginalArms {
        factor: usize,
        got: usize,
        arms: usize,
    },
}

/// One allocation decision and what is needed to audit it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Index of the allocated arm in protocol order.
    pub arm: usize,
    /// Block the slot belongs to (sequence number for the other procedures).
    pub block_number: u64,
    /// Size of that block (1 for the other procedures).
    pub block_size: u32,
    /// 0-based slot within the block.
    pub block_position: u32,
    /// State to store for the stratum's next allocation.
    pub next: StratumState,
    /// What an auditor needs beyond the block fields: for the adaptive procedures the
    /// probabilities per arm and the uniform draw (minimisation adds the score per arm and the
    /// preferred arms), the eligible arms when restricted, `"cluster": "inherited"` for an
    /// inherited arm. `None` for unrestricted simple and block allocations.
    pub detail: Option<serde_json::Value>,
}

/// Choose the next arm for `stratum` of `trial`, given the stratum's stored state, for an
/// unrestricted, unclustered patient with all counts zero (see [`allocate_with`]).
pub fn allocate(
    scheme: &Scheme,
    seed: &MasterSeed,
    trial: &str,
    stratum: &str,
    state: StratumState,
) -> Decision {
    let arms = scheme.ratios().len();
    run(
        scheme,
        seed,
        trial,
        stratum,
        &state,
        &Checked::unrestricted(arms),
    )
}

/// Choose the next arm, with eligibility, counts and cluster taken from `ctx`. An error means
/// the context does not fit the scheme (wrong lengths, no eligible arm, a cluster arm the
/// patient may not have); nothing is drawn then.
pub fn allocate_with(
    scheme: &Scheme,
    seed: &MasterSeed,
    trial: &str,
    stratum: &str,
    state: &StratumState,
    ctx: &AllocationContext,
) -> Result<Decision, AllocationError> {
    let checked = Checked::new(scheme, ctx)?;
    if let Some(arm) = ctx.cluster_arm {
        let mut detail = serde_json::json!({ "cluster": "inherited", "arm": arm });
        if checked.restricted {
            detail["eligible_arms"] = serde_json::json!(checked.eligible);
        }
        return Ok(Decision {
            arm,
            block_number: state.allocated,
            block_size: 1,
            block_position: 0,
            next: *state,
            detail: Some(detail),
        });
    }
    Ok(run(scheme, seed, trial, stratum, state, &checked))
}

/// A context checked against a scheme, with the defaults filled in.
struct Checked<'a> {
    eligible: Vec<bool>,
    restricted: bool,
    counts: Vec<u64>,
    marginals: Vec<&'a [u64]>,
}

impl<'a> Checked<'a> {
    fn unrestricted(arms: usize) -> Self {
        Checked {
            eligible: vec![true; arms],
            restricted: false,
            counts: vec![0; arms],
            marginals: Vec::new(),
        }
    }

    fn new(scheme: &Scheme, ctx: &'a AllocationContext) -> Result<Self, AllocationError> {
        let arms = scheme.ratios().len();
        let mut checked = Checked::unrestricted(arms);
        if let Some(eligible) = &ctx.eligible_arms {
            if eligible.len() != arms {
                return Err(AllocationError::EligibilityLength {
                    got: eligible.len(),
                    arms,
                });
            }
            if !eligible.contains(&true) {
                return Err(AllocationError::NoEligibleArm);
            }
            checked.restricted = eligible.contains(&false);
            checked.eligible = eligible.clone();
        }
        if let Some(arm) = ctx.cluster_arm {
            if arm >= arms {
                return Err(AllocationError::ClusterArmOutOfRange { arm, arms });
            }
            if !checked.eligible[arm] {
                return Err(AllocationError::ClusterArmIneligible { arm });
            }
        }
        if !ctx.arm_counts.is_empty() {
            if ctx.arm_counts.len() != arms {
                return Err(AllocationError::CountsLength {
                    got: ctx.arm_counts.len(),
                    arms,
                });
            }
            checked.counts = ctx.arm_counts.clone();
        }
        let factors = scheme.factors().len();
        if !ctx.marginals.is_empty() && ctx.marginals.len() != factors {
            return Err(AllocationError::MarginalsLength {
                got: ctx.marginals.len(),
                factors,
            });
        }
        for (factor, m) in ctx.marginals.iter().enumerate() {
            if m.len() != arms {
                return Err(AllocationError::MarginalArms {
                    factor,
                    got: m.len(),
                    arms,
                });
            }
            checked.marginals.push(m);
        }
        Ok(checked)
    }

    fn marginal(&self, factor: usize) -> Option<&[u64]> {
        self.marginals.get(factor).copied()
    }
}

/// The procedures proper, on a context already checked.
fn run(
    scheme: &Scheme,
    seed: &MasterSeed,
    trial: &str,
    stratum: &str,
    state: &StratumState,
    ctx: &Checked<'_>,
) -> Decision {
    let sequence = |arm, detail| Decision {
        arm,
        block_number: state.allocated,
        block_size: 1,
        block_position: 0,
        next: StratumState {
            block_number: 0,
            position: 0,
            allocated: state.allocated + 1,
        },
        detail,
    };
    let eligible_json = || serde_json::json!(ctx.eligible);
    match scheme {
        Scheme::Simple { ratios } => {
            let mut rng = stream(seed, trial, stratum, state.allocated);
            if ctx.restricted {
                let weights = restrict(ratios, &ctx.eligible);
                let arm = weighted_draw(&weights, &mut rng);
                let detail = serde_json::json!({
                    "procedure": "simple",
                    "eligible_arms": eligible_json(),
                    "weights": weights,
                });
                sequence(arm, Some(detail))
            } else {
                sequence(weighted_draw(ratios, &mut rng), None)
            }
        }
        Scheme::PermutedBlocks {
            ratios,
            block_sizes,
        } => {
            if ctx.restricted {
                let mut rng = tagged_stream(seed, "restricted", trial, stratum, state.allocated);
                let weights = restrict(ratios, &ctx.eligible);
                let arm = weighted_draw(&weights, &mut rng);
                let detail = serde_json::json!({
                    "procedure": "permuted_blocks",
                    "restricted_draw": true,
                    "eligible_arms": eligible_json(),
                    "weights": weights,
                });
                // The block position stays: the next fully eligible patient takes the slot.
                return Decision {
                    arm,
                    block_number: state.block_number,
                    block_size: 1,
                    block_position: 0,
                    next: StratumState {
                        allocated: state.allocated + 1,
                        ..*state
                    },
                    detail: Some(detail),
                };
            }
            let mut block_number = state.block_number;
            let mut position = state.position;
            let mut list = block(ratios, block_sizes, seed, trial, stratum, block_number);
            if position as usize >= list.len() {
                block_number += 1;
                position = 0;
                list = block(ratios, block_sizes, seed, trial, stratum, block_number);
            }
            let arm = list[position as usize];
            Decision {
                arm,
                block_number,
                block_size: list.len() as u32,
                block_position: position,
                next: StratumState {
                    block_number,
                    position: position + 1,
                    allocated: state.allocated + 1,
                },
                detail: None,
            }
        }
        Scheme::Minimisation { .. }
        | Scheme::BiasedCoin { .. }
        | Scheme::BigStick { .. }
        | Scheme::Urn { .. } => {
            let mut rng = stream(seed, trial, stratum, state.allocated);
            let u = unit_draw(&mut rng);
            let (probabilities, mut detail) = match scheme {
                Scheme::Minimisation { .. } => minimisation::probabilities(scheme, state, ctx),
                _ => coins::probabilities(scheme, &ctx.counts, &ctx.eligible),
            };
            let arm = select_by_probability(&probabilities, u);
            detail["procedure"] = serde_json::json!(scheme.procedure());
            detail["probabilities"] = serde_json::json!(probabilities);
            detail["draw"] = serde_json::json!(u);
            if ctx.restricted {
                detail["eligible_arms"] = eligible_json();
            }
            sequence(arm, Some(detail))
        }
    }
}

/// Ratios with ineligible arms' weights set to zero.
fn restrict(ratios: &[u32], eligible: &[bool]) -> Vec<u32> {
    ratios
        .iter()
        .zip(eligible)
        .map(|(&r, &e)| if e { r } else { 0 })
        .collect()
}

/// The arm sequence of block `block_number` in a stratum: size drawn uniformly from
/// `block_sizes`, each arm repeated `ratio × size / ratio_sum` times, then shuffled.
pub fn block(
    ratios: &[u32],
    block_sizes: &[u32],
    seed: &MasterSeed,
    trial: &str,
    stratum: &str,
    block_number: u64,
) -> Vec<usize> {
    block_of(
        ratios,
        block_sizes,
        &StratumStreams::new(seed, trial, stratum),
        block_number,
    )
}

/// [`block`] with the stratum's key derivation done once by the caller (a simulation deriving
/// a stratum's blocks one after another).
pub fn block_of(
    ratios: &[u32],
    block_sizes: &[u32],
    streams: &StratumStreams,
    block_number: u64,
) -> Vec<usize> {
    let mut rng = streams.stream(block_number);
    let size = block_sizes[uniform_below(&mut rng, block_sizes.len() as u64) as usize];
    let ratio_sum: u32 = ratios.iter().sum();
    let multiple = size / ratio_sum.max(1);
    let mut list: Vec<usize> = ratios
        .iter()
        .enumerate()
        .flat_map(|(arm, &r)| std::iter::repeat_n(arm, (r * multiple) as usize))
        .collect();
    shuffle(&mut list, &mut rng);
    list
}

/// Uniform integer in `0..n` (n ≥ 1) by rejection sampling on 64-bit outputs: draw `x`, accept
/// when `x < n × ⌊2⁶⁴ / n⌋`, return `x mod n`. Unbiased, and simple enough to re-implement in
/// any language when an auditor replays a sequence.
pub fn uniform_below(rng: &mut ChaCha20Rng, n: u64) -> u64 {
    debug_assert!(n > 0);
    let n = n.max(1);
    let zone = u64::MAX - (u64::MAX % n + 1) % n;
    loop {
        let x = rng.next_u64();
        if x <= zone {
            return x % n;
        }
    }
}

/// Fisher–Yates shuffle from the last position down, using [`uniform_below`].
pub fn shuffle<T>(items: &mut [T], rng: &mut ChaCha20Rng) {
    for i in (1..items.len()).rev() {
        let j = uniform_below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// Draw an arm index with probability proportional to its ratio weight (zero weights are never
/// drawn).
pub fn weighted_draw(ratios: &[u32], rng: &mut ChaCha20Rng) -> usize {
    let total: u64 = ratios.iter().map(|&r| u64::from(r)).sum();
    let mut x = uniform_below(rng, total.max(1));
    for (arm, &r) in ratios.iter().enumerate() {
        if x < u64::from(r) {
            return arm;
        }
        x -= u64::from(r);
    }
    ratios.len().saturating_sub(1)
}

/// A uniform number in [0, 1) with 53 random bits: the top 53 bits of one 64-bit output,
/// times 2⁻⁵³. Every value is exactly representable, so the draw prints and replays exactly.
pub fn unit_draw(rng: &mut ChaCha20Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The first arm whose cumulative probability (summed in arm order) exceeds `u`; if rounding
/// leaves `u` beyond the total, the last arm with a positive probability.
pub fn select_by_probability(probabilities: &[f64], u: f64) -> usize {
    let mut cumulative = 0.0;
    for (arm, &p) in probabilities.iter().enumerate() {
        cumulative += p;
        if p > 0.0 && u < cumulative {
            return arm;
        }
    }
    probabilities.iter().rposition(|&p| p > 0.0).unwrap_or(0)
}

#[cfg(test)]
mod tests;
