//! Time per simulated TASTE-sized trial: `simulations/taste.toml` (7,244 subjects at 30 sites,
//! permuted blocks within site × sex, three looks at the primary endpoint, each look's endpoint
//! derived per subject and its Cox statistic computed) on one thread, then on every core.
//!
//! `cargo bench --bench simulate` (`RRCT_BENCH_REPLICATES`, default 200). The reference is
//! `rpact::getSimulationSurvival` on a trial of the same size in the same run:
//! `benches/simulate_vs_rpact.sh` runs both. Timings are printed, never asserted.

use std::path::Path;
use std::time::Instant;

use rrct::randomise::{self, MasterSeed, StratumStreams};
use rrct::sim::{self, Options};

fn main() {
    let replicates: u64 = std::env::var("RRCT_BENCH_REPLICATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("simulations");
    let mut subjects_per_trial = 0.0;
    for name in ["taste.toml", "taste-null.toml"] {
        let scenario = sim::read_scenario(&dir.join(name)).expect("scenario is valid");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for threads in [1, cores] {
            let options = Options {
                replicates,
                seed: 1,
                threads,
            };
            let start = Instant::now();
            let report = sim::simulate(&scenario, name, options, &|| {}).expect("runs");
            let elapsed = start.elapsed().as_secs_f64();
            if name == "taste.toml" {
                subjects_per_trial = report.expected_subjects;
            }
            println!(
                "{name}: {replicates} trials on {threads} thread(s): {:.1} s, {:.3} ms per trial \
                 ({:.3} ms per trial per core); mean {:.0} subjects, {:.0} events, rejection rate {:.3}",
                elapsed,
                1e3 * elapsed / replicates as f64,
                1e3 * elapsed * threads as f64 / replicates as f64,
                report.expected_subjects,
                report.expected_events,
                report.rejection_rate
            );
        }
    }
    blocks_alone(replicates, subjects_per_trial);
}

/// A lower bound on any simulator that runs the engine's own randomisation: the time the
/// engine's permuted-block derivation alone (`randomise::block_of`: one SHA-256 finalisation
/// and one keyed ChaCha20 stream per block) takes for the mean number of subjects a TASTE
/// trial randomised above, spread over its 30 sites × 2 sexes, on one thread.
fn blocks_alone(replicates: u64, subjects: f64) {
    let (ratios, sizes) = ([1u32, 1], [2u32, 4, 6]);
    let subjects = subjects.round() as usize;
    let start = Instant::now();
    let mut slots = 0usize;
    for r in 0..replicates {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&r.to_be_bytes());
        let seed = MasterSeed::from_bytes(seed);
        let strata: Vec<StratumStreams> = (0..60)
            .map(|s| StratumStreams::new(&seed, "taste", &format!("site={s}|sex={}", s % 2)))
            .collect();
        let mut taken = 0usize;
        let mut number = 0u64;
        while taken < subjects {
            for streams in &strata {
                taken += randomise::block_of(&ratios, &sizes, streams, number).len();
            }
            number += 1;
        }
        slots += taken;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "the engine's permuted blocks alone for {subjects} subjects: {:.3} ms per trial on 1 thread \
         ({:.0} ns per slot)",
        1e3 * elapsed / replicates as f64,
        1e9 * elapsed / slots as f64
    );
}
