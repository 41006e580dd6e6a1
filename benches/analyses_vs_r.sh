#!/usr/bin/env bash
# rrct against R on the same 100,000 generated subjects: Aalen-Johansen cumulative incidence by
# arm + Gray's test (survfit + cmprsk::cuminc), Fine-Gray (cmprsk::crr) and negative binomial
# regression with a log-exposure offset (MASS::glm.nb); prints both times and the ratios.
# Needs Rscript with survival, cmprsk and MASS (Debian: r-cran-survival r-cran-cmprsk
# r-cran-mass). Run from anywhere: bash benches/analyses_vs_r.sh
# RRCT_BENCH_ROWS changes the number of subjects. crr's loops are O(n^2) (about 30 s for 10,000
# subjects, so most of an hour for 100,000): R's Fine-Gray is timed on the first
# RRCT_BENCH_CRR_ROWS subjects (default 10,000), rrct's on the same subset and on all of them;
# RRCT_BENCH_SKIP_R_CRR=1 leaves R's out.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v Rscript >/dev/null || { echo "Rscript not found: apt-get install r-cran-cmprsk r-cran-mass" >&2; exit 1; }
rows=${RRCT_BENCH_ROWS:-100000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

echo "== rrct, in memory (cargo bench --bench analyses), writing the data sets to CSV"
crr_rows=${RRCT_BENCH_CRR_ROWS:-10000}
RRCT_BENCH_ROWS=$rows RRCT_BENCH_CRR_ROWS=$crr_rows RRCT_BENCH_CSV_DIR="$dir" cargo bench --quiet --bench analyses -- --bench | tee "$dir/bench.txt"

echo
echo "== R $(Rscript -e 'cat(R.version$major, R.version$minor, sep=".")') (CSV read not timed; best of 3, Fine-Gray once on the subset)"
Rscript - "$dir" "${RRCT_BENCH_SKIP_R_CRR:-0}" "$crr_rows" >"$dir/r.txt" <<'RSCRIPT'
suppressPackageStartupMessages({ library(survival); library(cmprsk); library(MASS) })
args <- commandArgs(TRUE)
cr <- read.csv(file.path(args[1], "competing.csv"))
ct <- read.csv(file.path(args[1], "counts.csv"))
best <- function(f, n = 3) min(replicate(n, system.time(f())[["elapsed"]]))
t_aj <- best(function() survfit(Surv(time, factor(status)) ~ trt, data = cr))
t_gray <- best(function() cuminc(cr$time, cr$status, cr$trt))
t_nb <- best(function() glm.nb(count ~ trt + offset(log(years)), data = ct))
nb <- glm.nb(count ~ trt + offset(log(years)), data = ct)
cat(sprintf("R_AJ %.4f\nR_GRAY %.4f\nR_AJ_GRAY %.4f\nR_NEGBIN %.4f\n", t_aj, t_gray, t_aj + t_gray, t_nb))
cat(sprintf("R glm.nb trt %.6f (se %.6f), theta %.6f\n", coef(nb)[2],
            sqrt(diag(vcov(nb)))[2], nb$theta))
g <- cuminc(cr$time, cr$status, cr$trt)$Tests
cat(sprintf("R gray cause 1 chisq %.6f\n", g[1, "stat"]))
if (args[2] != "1") {
    sub <- head(cr, as.integer(args[3]))
    t_crr <- system.time(fit <- crr(sub$time, sub$status, cbind(trt = sub$trt, age = sub$age)))[["elapsed"]]
    cat(sprintf("R_CRR %.4f\n", t_crr))
    cat(sprintf("R crr trt %.6f (se %.6f), age %.6f\n", fit$coef[1], sqrt(fit$var[1, 1]), fit$coef[2]))
}
RSCRIPT
cat "$dir/r.txt"

ms() { grep "^$1" "$dir/bench.txt" | awk '{for (i = 1; i <= NF; i++) if ($i == "ms") { print $(i-1) / 1000; exit }}'; }
r() { awk -v k="$1" '$1 == k { print $2 }' "$dir/r.txt"; }
echo
echo "== ratios (R time / rrct time)"
ratio() { awk -v label="$1" -v r="$2" -v ours="$3" \
    'BEGIN { if (r == "") { printf "%-44s R (skipped)  rrct %8.3f s\n", label, ours; exit }
             printf "%-44s R %8.3f s   rrct %8.3f s   x%7.1f\n", label, r, ours, r / ours }'; }
ratio "survfit + cuminc vs Aalen-Johansen + Gray" "$(r R_AJ_GRAY)" "$(ms "aalen-johansen")"
ratio "crr vs Fine-Gray, first $crr_rows subjects" "$(r R_CRR)" "$(ms "fine-gray subset")"
awk -v r="$(r R_CRR)" -v k="$crr_rows" -v n="$rows" -v ours="$(ms "fine-gray, trt")" \
    'BEGIN { if (r != "") printf "%-44s R ~%7.0f s   rrct %8.3f s   (R extrapolated as n^2, not run)\n", "crr vs Fine-Gray, all subjects", r * (n / k) ^ 2, ours }'
ratio "glm.nb vs negative binomial" "$(r R_NEGBIN)" "$(ms "negative binomial")"
