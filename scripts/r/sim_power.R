#!/usr/bin/env Rscript
# Analytic power of the design in simulations/power-check.toml, for the simulator's check
# (tests/sim.rs: the simulated rejection rate must agree within 3 Monte Carlo standard errors).
#
# Run from the repository root:   Rscript scripts/r/sim_power.R
# Needs base R and `rpact` (Debian: r-base-core r-cran-rpact).
# Writes tests/data/rpact/sim_power.json.
#
# The design: two arms 1:1, O'Brien-Fleming-type alpha spending (Lan-DeMets), two-sided
# alpha 0.05, looks at 50% and 100% of 200 events of the primary endpoint (no horizon), hazard
# ratio 0.7, control median 365 days, 1,000 subjects accrued uniformly over 365 days, no
# dropout. Events-driven looks make the power depend on the events and the hazard ratio only.

suppressPackageStartupMessages(library(rpact))
out_dir <- file.path("tests", "data", "rpact")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)

design <- getDesignGroupSequential(kMax = 2, alpha = 0.05, sided = 2,
                                   typeOfDesign = "asOF", informationRates = c(0.5, 1))
p <- getPowerSurvival(design, hazardRatio = 0.7, lambda2 = log(2) / 12,
                      accrualTime = c(0, 12), maxNumberOfSubjects = 1000,
                      maxNumberOfEvents = 200)
null <- getPowerSurvival(design, hazardRatio = 1, lambda2 = log(2) / 12,
                         accrualTime = c(0, 12), maxNumberOfSubjects = 1000,
                         maxNumberOfEvents = 200)
num <- function(x) sprintf("%.17g", as.double(x))
json <- paste0(
    "{\n",
    "  \"rpact_version\": \"", as.character(packageVersion("rpact")), "\",\n",
    "  \"call\": \"getPowerSurvival(getDesignGroupSequential(kMax = 2, alpha = 0.05, sided = 2, ",
    "typeOfDesign = 'asOF', informationRates = c(0.5, 1)), hazardRatio = 0.7, lambda2 = log(2) / 12, ",
    "accrualTime = c(0, 12), maxNumberOfSubjects = 1000, maxNumberOfEvents = 200)\",\n",
    "  \"overall_reject\": ", num(p$overallReject), ",\n",
    "  \"reject_per_stage\": [", paste(vapply(p$rejectPerStage, num, ""), collapse = ", "), "],\n",
    "  \"early_stop\": ", num(p$earlyStop), ",\n",
    "  \"null_overall_reject\": ", num(null$overallReject), "\n",
    "}\n")
writeLines(json, file.path(out_dir, "sim_power.json"), sep = "")
cat(json)
