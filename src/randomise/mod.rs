//! Allocation procedures: the pure heart of randomisation.
//!
//! Owns how the next arm is chosen for a stratum from the trial's secret master seed and the
//! stratum's stored position. It never touches storage or the clock: the caller loads a
//! [`StratumState`], asks [`allocate`] for a [`Decision`] and stores `decision.next` in the same
//! transaction as the allocation. Because every random draw comes from a stream derived from
//! (master seed, trial, stratum, block or sequence number), the same seed and the same enrolment
//! order give the same allocations bit for bit, and any allocation can be replayed by an auditor
//! who is given the seed after the trial closes.
//!
//! Draws use our own documented algorithms ([`uniform_below`], [`shuffle`]) on the raw ChaCha20
//! output rather than `rand`'s distributions, whose exact outputs may change between `rand`
//! releases; a published allocation sequence must stay replayable for decades.

mod stream;

pub use stream::{seed_commitment, stream, MasterSeed};

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use serde::Serialize;

/// Which allocation procedure to run, with its parameters, for arms with the given ratio weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// Independent weighted draw per allocation.
    Simple { ratios: Vec<u32> },
    /// Permuted blocks; each block's size drawn uniformly from `block_sizes`, every size a
    /// multiple of the ratio sum (checked by the protocol loader and again by [`Scheme::new_blocks`]).
    PermutedBlocks {
        ratios: Vec<u32>,
        block_sizes: Vec<u32>,
    },
}

/// Why a scheme cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemeError {
    #[error("at least two arms are needed, got {0}")]
    TooFewArms(usize),
    #[error("allocation ratios must be positive")]
    ZeroRatio,
    #[error("at least one block size is needed")]
    NoBlockSizes,
    #[error("block size {size} is not a positive multiple of the ratio sum {ratio_sum}")]
    BlockNotMultiple { size: u32, ratio_sum: u32 },
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

    /// Build the scheme a validated protocol declares.
    pub fn from_protocol(protocol: &crate::protocol::Protocol) -> Result<Self, SchemeError> {
        match &protocol.randomisation.method {
            crate::protocol::Method::Simple => Scheme::new_simple(protocol.ratios()),
            crate::protocol::Method::PermutedBlocks { block_sizes } => {
                Scheme::new_blocks(protocol.ratios(), block_sizes.clone())
            }
        }
    }

    pub fn ratios(&self) -> &[u32] {
        match self {
            Scheme::Simple { ratios } | Scheme::PermutedBlocks { ratios, .. } => ratios,
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

/// Where a stratum stands in its allocation sequence; stored per (trial, stratum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct StratumState {
    /// Number of the current block (0-based); for simple randomisation unused (stays 0).
    pub block_number: u64,
    /// Slots of the current block already used; 0 means the block has not started.
    pub position: u32,
    /// Allocations made in this stratum so far.
    pub allocated: u64,
}

/// One allocation decision and what is needed to audit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Index of the allocated arm in protocol order.
    pub arm: usize,
    /// Block the slot belongs to (sequence number for simple randomisation).
    pub block_number: u64,
    /// Size of that block (1 for simple randomisation).
    pub block_size: u32,
    /// 0-based slot within the block.
    pub block_position: u32,
    /// State to store for the stratum's next allocation.
    pub next: StratumState,
}

/// Choose the next arm for `stratum` of `trial`, given the stratum's stored state.
pub fn allocate(
    scheme: &Scheme,
    seed: &MasterSeed,
    trial: &str,
    stratum: &str,
    state: StratumState,
) -> Decision {
    match scheme {
        Scheme::Simple { ratios } => {
            let mut rng = stream(seed, trial, stratum, state.allocated);
            let arm = weighted_draw(ratios, &mut rng);
            Decision {
                arm,
                block_number: state.allocated,
                block_size: 1,
                block_position: 0,
                next: StratumState {
                    block_number: 0,
                    position: 0,
                    allocated: state.allocated + 1,
                },
            }
        }
        Scheme::PermutedBlocks {
            ratios,
            block_sizes,
        } => {
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
            }
        }
    }
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
    let mut rng = stream(seed, trial, stratum, block_number);
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

/// Draw an arm index with probability proportional to its ratio weight.
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

#[cfg(test)]
mod tests;
