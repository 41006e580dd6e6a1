#!/usr/bin/env bash
# rrct's design simulator against rpact::getSimulationSurvival on TASTE-sized trials: 7,244
# subjects, three looks (one third, two thirds and all of 420 events), log-rank in rpact (one-sided 0.025:
# rpact simulates one-sided survival designs only); in rrct
# simulations/taste.toml (the engine's stratified permuted blocks, per-subject endpoint derivation
# and a Cox fit at each look). Prints milliseconds per simulated trial per core for both and the
# ratio, and the engine's permuted-block derivation alone for the same subjects against rpact (the
# least a simulator running the engine's randomisation can take). Needs Rscript with rpact (Debian:
# r-base-core r-cran-rpact).
# Run from anywhere: bash benches/simulate_vs_rpact.sh   (RRCT_BENCH_REPLICATES, default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v Rscript >/dev/null || { echo "Rscript not found: apt-get install r-base-core r-cran-rpact" >&2; exit 1; }
export RRCT_BENCH_REPLICATES=${RRCT_BENCH_REPLICATES:-200}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

echo "== rrct (cargo bench --bench simulate)"
cargo bench --quiet --bench simulate -- --bench | tee "$dir/bench.txt"

echo
echo "== rpact $(Rscript -e 'cat(format(packageVersion("rpact")))'), one core"
Rscript - >"$dir/r.txt" <<'RSCRIPT'
suppressPackageStartupMessages(library(rpact))
n <- as.integer(Sys.getenv("RRCT_BENCH_REPLICATES"))
# rpact simulates one-sided survival designs only: alpha 0.025 one-sided, benefit = HR < 1.
design <- getDesignGroupSequential(kMax = 3, alpha = 0.025, sided = 1, typeOfDesign = "asOF",
                                   informationRates = c(0.33, 0.66, 1))
sim <- function(iterations) getSimulationSurvival(design, pi2 = 0.056, hazardRatio = 0.75,
    directionUpper = FALSE, eventTime = 12, accrualTime = 32, maxNumberOfSubjects = 7244,
    plannedEvents = c(139, 278, 420), maxNumberOfIterations = iterations, seed = 1)
invisible(sim(10))
run <- function() sim(n)
elapsed <- system.time(s <- run())[["elapsed"]]
cat(sprintf("%.6f %.4f\n", 1000 * elapsed / n, s$overallReject))
RSCRIPT
read -r r_ms r_power <"$dir/r.txt"
echo "rpact getSimulationSurvival: ${r_ms} ms per trial (power ${r_power})"
rrct_ms=$(awk '/^taste.toml: .* on 1 thread/ { for (i = 1; i <= NF; i++) if ($(i+1) == "ms" && $(i+2) == "per" && $(i+3) == "trial") { print $i; exit } }' "$dir/bench.txt")
echo
echo "rrct ${rrct_ms} ms per trial on one core; rpact ${r_ms} ms: rrct takes $(awk -v a="$rrct_ms" -v b="$r_ms" 'BEGIN { printf "%.3f", a / b }') of rpact's time (target: at most 0.1)"
blocks_ms=$(awk '/^the engine.s permuted blocks alone/ { for (i = 1; i <= NF; i++) if ($(i+1) == "ms" && $(i+2) == "per" && $(i+3) == "trial") { print $i; exit } }' "$dir/bench.txt")
echo "the engine's permuted blocks alone: ${blocks_ms} ms per trial, $(awk -v a="$blocks_ms" -v b="$r_ms" 'BEGIN { printf "%.3f", a / b }') of rpact's time"
