//! Time per simulated TASTE-sized trial: `simulations/taste.toml` (7,244 subjects at 30 sites,
//! permuted blocks within site × sex, three looks at the primary endpoint, each look's endpoint
//! derived per subject and its Cox statistic computed) on one thread, then on every core.
//!
//! `cargo bench --bench simulate` (`RRCT_BENCH_REPLICATES`, default 200). The reference is
//! `rpact::getSimulationSurvival` on a trial of the same size in the same run:
//! `benches/simulate_vs_rpact.sh` runs both. Timings are printed, never asserted.

use std::path::Path;
use std::time::Instant;

use rrct::sim::{self, Options};

fn main() {
    let replicates: u64 = std::env::var("RRCT_BENCH_REPLICATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("simulations");
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
}
