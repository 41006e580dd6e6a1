//! One enrolment's decision as the live engine makes it and as a replay remakes it: what the
//! engine judges of an enrolment before drawing ([`judge`]), the decision against the counts
//! kept so far ([`decide`]), the counts the allocation adds to ([`CountKeys`]) and the counts a
//! randomised-in-error mark releases ([`released_by_mark`]).
//!
//! The enrolment service (`service::enrol`), the randomised-in-error marking and the
//! independent replay (`randomise::replay`, behind `rrct verify replay`) all call these
//! functions, so a replay runs the engine's own decision, not a copy of it. Pure: the counts
//! come through [`Tallies`], kept by the caller (the database's rows under the writer lock, or
//! the replay's own tally).

use serde::{Deserialize, Serialize};

use super::{allocate_with, AllocationContext, AllocationError, Decision, Draw, MasterSeed};
use super::{Scheme, StratumState};
use crate::protocol::{self, EnrolmentValues, Protocol};

/// What the engine judged of an enrolment before its draw: the stratum, the levels the
/// minimisation balances, the arms the patient may receive and the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Judged {
    pub stratum: String,
    /// The enrolment's level of each minimisation factor, in the scheme's factor order.
    pub levels: Vec<String>,
    /// One flag per arm of the protocol version, when the enrolment named ineligible arms or an
    /// arm is closed; `None`: every arm.
    pub eligible: Option<Vec<bool>>,
    /// The enrolment's cluster, in a cluster trial.
    pub cluster: Option<String>,
}

/// The levels of the scheme's minimisation factors for an enrolment, in factor order.
pub fn levels(scheme: &Scheme, values: &EnrolmentValues) -> Vec<String> {
    scheme
        .factors()
        .iter()
        .map(|f| protocol::level(values, &f.name))
        .collect()
}

/// Judge an enrolment whose values parsed under `protocol` (eligibility flags as
/// [`protocol::parse_ineligible_arms`] read them).
pub fn judge(
    protocol: &Protocol,
    scheme: &Scheme,
    values: &EnrolmentValues,
    eligible: Option<Vec<bool>>,
) -> Judged {
    Judged {
        stratum: protocol::stratum(protocol, values).key,
        levels: levels(scheme, values),
        eligible,
        cluster: protocol
            .randomisation
            .cluster
            .as_deref()
            .map(|field| protocol::level(values, field)),
    }
}

/// The counts the adaptive procedures balance and the clusters randomised so far, arms by id.
pub trait Tallies {
    /// Units of `stratum` allocated to `arm` (biased coin, big stick, urn).
    fn arm_count(&self, stratum: &str, arm: &str) -> i64;
    /// Trial-wide units at `level` of minimisation factor `factor` allocated to `arm`.
    fn marginal(&self, factor: &str, level: &str, arm: &str) -> i64;
    /// The arm id a randomised cluster was given.
    fn cluster_arm(&self, cluster: &str) -> Option<&str>;
}

/// Why an enrolment cannot be decided.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecideError {
    #[error("cluster `{cluster}` was randomised to arm `{arm}`, which the protocol no longer has")]
    ClusterArmClosed { cluster: String, arm: String },
    #[error("cluster `{cluster}` was randomised to arm `{arm}`, which the enrolment lists as ineligible")]
    ClusterArmIneligible { cluster: String, arm: String },
    #[error("a count is negative ({0})")]
    NegativeCount(i64),
    #[error("allocation context: {0}")]
    Context(AllocationError),
}

/// The count keys one allocation adds one unit to: arms by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountKeys {
    /// (stratum, arm), for the procedures that balance per-stratum arm counts.
    pub arm_count: Option<(String, String)>,
    /// (factor, level, arm) for each minimisation factor.
    pub marginals: Vec<(String, String, String)>,
    /// (cluster, arm) when the allocation randomised a cluster.
    pub cluster: Option<(String, String)>,
}

/// One decision with what the allocation record keeps of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub decision: Decision,
    /// The allocated arm's id.
    pub arm: String,
    pub draw: Draw,
    /// The arms the patient was eligible for, when restricted.
    pub eligible_ids: Option<Vec<String>>,
    /// What the allocation adds to the counts: nothing for a member inheriting its cluster's
    /// arm (counts are of randomised units).
    pub adds: CountKeys,
}

/// Decide an enrolment judged under `protocol` (the version it is allocated under), with the
/// stratum's stored position and the counts kept so far.
pub fn decide(
    protocol: &Protocol,
    scheme: &Scheme,
    seed: &MasterSeed,
    judged: &Judged,
    state: &StratumState,
    tallies: &impl Tallies,
) -> Result<Decided, DecideError> {
    let arms = &protocol.arms;
    let cluster = judged
        .cluster
        .as_deref()
        .and_then(|c| tallies.cluster_arm(c).map(|arm| (c, arm.to_string())));
    let cluster_arm = match &cluster {
        Some((c, arm)) => {
            Some(
                protocol
                    .arm_index(arm)
                    .ok_or_else(|| DecideError::ClusterArmClosed {
                        cluster: c.to_string(),
                        arm: arm.clone(),
                    })?,
            )
        }
        None => None,
    };
    let unsigned = |n: i64| u64::try_from(n).map_err(|_| DecideError::NegativeCount(n));
    let counts = |f: &dyn Fn(&str) -> i64| -> Result<Vec<u64>, DecideError> {
        arms.iter().map(|a| unsigned(f(&a.id))).collect()
    };
    let ctx = AllocationContext {
        eligible_arms: judged.eligible.clone(),
        arm_counts: if scheme.keeps_arm_counts() {
            counts(&|arm| tallies.arm_count(&judged.stratum, arm))?
        } else {
            Vec::new()
        },
        marginals: scheme
            .factors()
            .iter()
            .zip(&judged.levels)
            .map(|(f, level)| counts(&|arm| tallies.marginal(&f.name, level, arm)))
            .collect::<Result<_, _>>()?,
        cluster_arm,
    };
    let decision = allocate_with(
        scheme,
        seed,
        &protocol.trial_id,
        &judged.stratum,
        state,
        &ctx,
    )
    .map_err(|e| match (e, &cluster) {
        (AllocationError::ClusterArmIneligible { .. }, Some((c, arm))) => {
            DecideError::ClusterArmIneligible {
                cluster: c.to_string(),
                arm: arm.clone(),
            }
        }
        (e, _) => DecideError::Context(e),
    })?;
    let arm = arms
        .get(decision.arm)
        .ok_or(DecideError::Context(
            AllocationError::ClusterArmOutOfRange {
                arm: decision.arm,
                arms: arms.len(),
            },
        ))?
        .id
        .clone();
    let restricted = judged.eligible.as_ref().is_some_and(|e| e.contains(&false));
    let draw = if cluster_arm.is_some() {
        Draw::Inherited
    } else if restricted && matches!(scheme, Scheme::PermutedBlocks { .. }) {
        Draw::Restricted
    } else {
        Draw::Slot
    };
    let eligible_ids = restricted.then(|| {
        arms.iter()
            .zip(judged.eligible.iter().flatten())
            .filter(|(_, &e)| e)
            .map(|(a, _)| a.id.clone())
            .collect()
    });
    let adds = if cluster_arm.is_some() {
        CountKeys::default()
    } else {
        CountKeys {
            arm_count: scheme
                .keeps_arm_counts()
                .then(|| (judged.stratum.clone(), arm.clone())),
            marginals: scheme
                .factors()
                .iter()
                .zip(&judged.levels)
                .map(|(f, level)| (f.name.clone(), level.clone(), arm.clone()))
                .collect(),
            cluster: judged.cluster.clone().map(|c| (c, arm.clone())),
        }
    };
    Ok(Decided {
        decision,
        arm,
        draw,
        eligible_ids,
        adds,
    })
}

/// The marginal counts a randomised-in-error mark releases: the allocation's minimisation
/// levels (of the protocol version it was made under) on its arm, `(factor, level, arm)`.
/// Nothing in a cluster trial, whose randomised unit, the cluster, stays randomised.
pub fn released_by_mark(
    scheme: &Scheme,
    levels: &[String],
    arm: &str,
    draw: Draw,
    cluster: Option<&str>,
) -> Vec<(String, String, String)> {
    if draw == Draw::Inherited || cluster.is_some() {
        return Vec::new();
    }
    scheme
        .factors()
        .iter()
        .zip(levels)
        .map(|(f, level)| (f.name.clone(), level.clone(), arm.to_string()))
        .collect()
}
