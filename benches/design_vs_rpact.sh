#!/usr/bin/env bash
# rrct against rpact on the same designs: 5 equally spaced looks, O'Brien-Fleming-, Pocock- and
# Hwang-Shih-DeCani(-4)-type alpha spending, one-sided (alpha 0.025) and two-sided (0.05).
# Times rpact's getDesignGroupSequential (boundaries) and getDesignCharacteristics (inflation
# factor), runs `cargo bench --bench design`, and prints the ratios. Needs Rscript with rpact
# (Debian: r-base-core r-cran-rpact). Run from anywhere: bash benches/design_vs_rpact.sh
# RRCT_RPACT_REPEAT sets the number of timed rpact calls per design (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v Rscript >/dev/null || { echo "Rscript not found: apt-get install r-base-core r-cran-rpact" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

echo "== rrct (cargo bench --bench design)"
cargo bench --quiet --bench design -- --bench | tee "$dir/bench.txt"

echo
echo "== R $(Rscript -e 'cat(R.version$major, R.version$minor, sep=".")'), rpact $(Rscript -e 'cat(format(packageVersion("rpact")))')"
RRCT_RPACT_REPEAT=${RRCT_RPACT_REPEAT:-20} Rscript - >"$dir/r.txt" <<'RSCRIPT'
suppressPackageStartupMessages(library(rpact))
n <- as.integer(Sys.getenv("RRCT_RPACT_REPEAT"))
per_call <- function(f) { f(); system.time(for (i in seq_len(n)) f())[["elapsed"]] / n }
designs <- list(obf = list("asOF", NA), pocock = list("asP", NA), "hsd:-4" = list("asHSD", -4))
for (name in names(designs)) {
    for (sided in 1:2) {
        alpha <- 0.025 * sided
        make <- function() {
            args <- list(kMax = 5, alpha = alpha, sided = sided, typeOfDesign = designs[[name]][[1]])
            if (!is.na(designs[[name]][[2]])) args$gammaA <- designs[[name]][[2]]
            do.call(getDesignGroupSequential, args)
        }
        d <- make()
        t_design <- per_call(make)
        t_char <- per_call(function() getDesignCharacteristics(d))
        cat(sprintf("R %s %d %.6f %.6f %.4f %.4f\n", name, sided, t_design, t_char,
                    d$criticalValues[1], d$criticalValues[5]))
    }
}
RSCRIPT
awk '{ printf "rpact %-8s sided=%s getDesignGroupSequential %8.1f ms   + getDesignCharacteristics %8.1f ms   (z %s .. %s)\n", $2, $3, $4 * 1000, $5 * 1000, $6, $7 }' "$dir/r.txt"

echo
echo "== ratios (rpact time / rrct time)"
while read -r _ name sided t_design t_char _ _; do
    line=$(grep -E "^$name +sided=$sided " "$dir/bench.txt")
    ours=$(echo "$line" | awk '{ for (i = 1; i <= NF; i++) if ($i == "boundaries") { print $(i + 1); exit } }')
    ours_full=$(echo "$line" | awk '{ for (i = 1; i <= NF; i++) if ($i == "factor") { print $(i + 1); exit } }')
    awk -v n="$name" -v s="$sided" -v rd="$t_design" -v rc="$t_char" -v o="$ours" -v of="$ours_full" \
        'BEGIN { printf "%-8s sided=%s  boundaries: rpact %8.2f ms  rrct %7.3f ms  x%7.0f   with inflation factor: rpact %8.2f ms  rrct %7.3f ms  x%7.0f\n",
                 n, s, rd * 1e3, o / 1e3, rd * 1e6 / o, (rd + rc) * 1e3, of / 1e3, (rd + rc) * 1e6 / of }'
done <"$dir/r.txt"
