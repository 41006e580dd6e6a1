//! Speed of group-sequential boundaries: 5-look O'Brien–Fleming-, Pocock- and
//! Hwang–Shih–DeCani(-4)-type designs, one- and two-sided, as a simulation calls them (the
//! boundaries alone, [`efficacy_boundaries`]) and as `rrct design gsd` does (boundaries, drift
//! and inflation factor, [`group_sequential`]), plus a design with non-binding futility.
//!
//! `cargo bench --bench design` (release build). Target from issue 6: boundaries for 5 looks
//! under 1 ms. RRCT_BENCH_REPEAT sets the number of timed calls (default 2,000). Without
//! `--bench` (as `cargo test --benches` runs it) it runs a few calls only.
//! `benches/design_vs_rpact.sh` times rpact's `getDesignGroupSequential` on the same designs.

use std::time::Instant;

use rrct::design::{
    efficacy_boundaries, equally_spaced, group_sequential, DesignSpec, FutilityBounds, Sided,
    SpendingFunction,
};

fn time_per_call<T>(repeat: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut last = f();
    let start = Instant::now();
    for _ in 0..repeat {
        last = f();
    }
    (start.elapsed().as_secs_f64() / repeat as f64, last)
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let repeat = if quick {
        3
    } else {
        std::env::var("RRCT_BENCH_REPEAT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000)
    };
    let timing = equally_spaced(5);
    println!("design benchmark: 5 equally spaced looks, mean of {repeat} calls");
    for (name, spending) in [
        ("obf", SpendingFunction::OBrienFleming),
        ("pocock", SpendingFunction::Pocock),
        ("hsd:-4", SpendingFunction::HwangShihDeCani { gamma: -4.0 }),
    ] {
        for sided in [Sided::One, Sided::Two] {
            let alpha = 0.025 * f64::from(sided.count());
            let (boundaries, b) = time_per_call(repeat, || {
                efficacy_boundaries(alpha, sided, spending, &timing)
            });
            let spec = DesignSpec::new(5, alpha, sided, spending);
            let (full, d) = time_per_call(repeat.div_ceil(5), || group_sequential(&spec));
            let b = b.expect("valid design");
            let d = d.expect("valid design");
            println!(
                "{:<8} sided={} boundaries {:>8.1} us   with inflation factor {:>8.1} us   \
                 target 1000 us   (z {:.4} .. {:.4}, IF {:.6})",
                name,
                sided.count(),
                boundaries * 1e6,
                full * 1e6,
                b[0],
                b[4],
                d.inflation_factor
            );
        }
    }
    let mut spec = DesignSpec::new(5, 0.025, Sided::One, SpendingFunction::OBrienFleming);
    spec.futility = Some(FutilityBounds::BetaSpending(
        SpendingFunction::OBrienFleming,
    ));
    let (full, d) = time_per_call(repeat.div_ceil(20), || group_sequential(&spec));
    let d = d.expect("valid design");
    println!(
        "obf + obf beta-spending futility (non-binding), design {:>8.1} us   (IF {:.6})",
        full * 1e6,
        d.inflation_factor
    );
}
