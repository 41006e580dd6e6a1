#!/usr/bin/env bash
# rrct against R `survival` on the same 1,000,000 generated rows (3 covariates, integer days):
# Efron Cox (R's coxph end to end and its Newton-Raphson core coxph.fit), log-rank and
# Kaplan-Meier; prints the times and the ratios. Needs Rscript with `survival`
# (Debian: r-base-core r-cran-survival). Run from anywhere: bash benches/stats_vs_r.sh
# RRCT_BENCH_ROWS changes the number of rows.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v Rscript >/dev/null || { echo "Rscript not found: apt-get install r-base-core r-cran-survival" >&2; exit 1; }
rows=${RRCT_BENCH_ROWS:-1000000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
csv="$dir/trial.csv"

echo "== rrct, in memory (cargo bench --bench stats), writing the data set to CSV"
RRCT_BENCH_ROWS=$rows RRCT_BENCH_CSV="$csv" cargo bench --quiet --bench stats -- --bench | tee "$dir/bench.txt"
cargo build --quiet --release --bin rrct

echo
echo "== rrct stats cox on the CSV (release binary, end to end: process start, CSV parse, fit, JSON)"
best_cli=""
for _ in 1 2 3; do
    start=$(date +%s.%N)
    RUST_LOG=rrct=debug target/release/rrct stats cox --csv "$csv" --time time --event status \
        --covariates trt,age,score >"$dir/cox.json" 2>"$dir/cox.log"
    end=$(date +%s.%N)
    best_cli=$(awk -v a="$start" -v b="$end" -v best="$best_cli" \
        'BEGIN { t = b - a; print (best == "" || t < best) ? t : best }')
done
sed 's/\x1b\[[0-9;]*m//g' "$dir/cox.log" | grep -o 'read_seconds=[0-9.e-]* fit_seconds=[0-9.e-]*' | tail -1 || true
printf 'rrct stats cox end to end: %.3f s (best of 3)\n' "$best_cli"
grep -A1 '"name"' "$dir/cox.json" | grep -E '"name"|"coef"' | paste - - | sed 's/^ *//'

echo
echo "== R $(Rscript -e 'cat(R.version$major, R.version$minor, sep=".")'), survival $(Rscript -e 'cat(format(packageVersion("survival")))') (CSV read not timed)"
Rscript - "$csv" >"$dir/r.txt" <<'RSCRIPT'
suppressPackageStartupMessages(library(survival))
d <- read.csv(commandArgs(TRUE)[1])
best <- function(f, n = 3) min(replicate(n, system.time(f())[["elapsed"]]))
t_coxph <- best(function() coxph(Surv(time, status) ~ trt + age + score, data = d))
x <- as.matrix(d[, c("trt", "age", "score")])
y <- Surv(d$time, d$status)
t_fit <- best(function() coxph.fit(x, y, strata = NULL, offset = NULL, init = NULL,
                                   control = coxph.control(), weights = NULL, method = "efron",
                                   rownames = NULL, resid = FALSE, nocenter = c(-1, 0, 1)))
t_lr <- best(function() survdiff(Surv(time, status) ~ trt, data = d))
t_km <- best(function() survfit(Surv(time, status) ~ trt, data = d))
fit <- coxph(Surv(time, status) ~ trt + age + score, data = d)
cat(sprintf("R_COXPH %.4f\nR_COXPH_FIT %.4f\nR_SURVDIFF %.4f\nR_SURVFIT %.4f\n", t_coxph, t_fit, t_lr, t_km))
cat("R coefficients:", sprintf("%s=%.6f", names(coef(fit)), coef(fit)), "\n")
RSCRIPT
cat "$dir/r.txt"

ms() { grep "^$1" "$dir/bench.txt" | awk '{for (i = 1; i <= NF; i++) if ($i == "ms") { print $(i-1) / 1000; exit }}'; }
r() { awk -v k="$1" '$1 == k { print $2 }' "$dir/r.txt"; }
rrct_cox=$(ms "cox efron"); rrct_lr=$(ms "log-rank"); rrct_km=$(ms "kaplan-meier")
echo
echo "== ratios (R time / rrct time)"
ratio() { awk -v label="$1" -v r="$2" -v ours="$3" \
    'BEGIN { printf "%-46s R %8.3f s   rrct %8.3f s   x%6.1f\n", label, r, ours, r / ours }'; }
ratio "coxph end to end vs rrct fit (in memory)" "$(r R_COXPH)" "$rrct_cox"
ratio "coxph.fit vs rrct fit (in memory)" "$(r R_COXPH_FIT)" "$rrct_cox"
ratio "coxph vs rrct stats cox CLI (incl. CSV read)" "$(r R_COXPH)" "$best_cli"
ratio "survdiff vs rrct log-rank" "$(r R_SURVDIFF)" "$rrct_lr"
ratio "survfit vs rrct Kaplan-Meier" "$(r R_SURVFIT)" "$rrct_km"
