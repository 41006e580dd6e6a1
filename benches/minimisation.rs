//! One Pocock–Simon allocation costs O(factors × arms), whatever the trial's size: the caller
//! keeps the marginal counts, and `allocate_with` never sees the history.
//!
//! `cargo bench --bench minimisation`. Times one allocation (stream derivation, scores, draw,
//! audit detail) with 5 factors and 3 arms over marginal counts of 1,000, 100,000 and
//! 10,000,000 prior allocations (the time must not grow with them), then over 1–20 factors and
//! 2–8 arms (it grows linearly in factors × arms on top of a fixed cost: SHA-256 and ChaCha20
//! set-up for the stream, and the JSON detail). Timings are printed, never asserted.

use std::hint::black_box;
use std::time::Instant;

use rrct::randomise::{
    allocate_with, AllocationContext, ImbalanceMeasure, MasterSeed, MinimisationFactor, Scheme,
    StratumState,
};

fn scheme(factors: usize, arms: usize) -> Scheme {
    Scheme::new_minimisation(
        vec![1; arms],
        (0..factors)
            .map(|f| MinimisationFactor {
                name: format!("f{f}"),
                weight: 1.0 + f as f64 / 10.0,
            })
            .collect(),
        ImbalanceMeasure::Range,
        0.8,
        0,
    )
    .expect("valid scheme")
}

/// Marginal counts as a trial of `prior` allocations might hold them: each factor level a
/// share of the trial, the arms nearly balanced.
fn context(factors: usize, arms: usize, prior: u64) -> AllocationContext {
    AllocationContext {
        marginals: (0..factors)
            .map(|f| {
                let level_total = prior / (2 + f as u64 % 3);
                (0..arms)
                    .map(|a| level_total / arms as u64 + (a as u64 * 7 + f as u64) % 5)
                    .collect()
            })
            .collect(),
        ..AllocationContext::default()
    }
}

/// Mean nanoseconds per allocation over `iterations`.
fn time(factors: usize, arms: usize, prior: u64, iterations: u64) -> f64 {
    let seed = MasterSeed::from_passphrase("bench");
    let scheme = scheme(factors, arms);
    let ctx = context(factors, arms, prior);
    let mut state = StratumState {
        allocated: prior,
        ..StratumState::default()
    };
    let start = Instant::now();
    for _ in 0..iterations {
        let d = allocate_with(&scheme, &seed, "bench", "all", &state, &ctx).expect("fits");
        state = black_box(d).next;
    }
    start.elapsed().as_nanos() as f64 / iterations as f64
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: run small then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let iterations = if quick { 2_000 } else { 200_000 };
    println!("minimisation allocation cost ({iterations} allocations per row)");
    println!(
        "{:>8}{:>6}{:>14}{:>14}",
        "factors", "arms", "prior", "ns/alloc"
    );
    for prior in [1_000u64, 100_000, 10_000_000] {
        println!(
            "{:>8}{:>6}{:>14}{:>14.0}",
            5,
            3,
            prior,
            time(5, 3, prior, iterations)
        );
    }
    println!();
    for (factors, arms) in [
        (1, 3),
        (5, 3),
        (10, 3),
        (20, 3),
        (5, 2),
        (5, 5),
        (5, 8),
        (20, 8),
    ] {
        println!(
            "{:>8}{:>6}{:>14}{:>14.0}",
            factors,
            arms,
            100_000,
            time(factors, arms, 100_000, iterations)
        );
    }
}
