#!/usr/bin/env Rscript
# Golden values for rrct's trial design module (src/design), computed with R's `rpact` package.
#
# Run from the repository root:   Rscript scripts/r/design_golden.R
# Needs base R and `rpact` (Debian: r-base-core r-cran-rpact).
#
# Writes tests/data/rpact/design_golden.json: one case per design, sample size or conditional
# power, each with the `rrct design ...` arguments that reproduce it and the expected JSON in the
# CLI's own keys (only the keys present are compared). Numbers are printed with 17 significant
# digits; NA is written as null. tests/design.rs runs every case through the CLI and compares
# boundaries, nominal levels, alpha and beta spent and inflation factors to 1e-7 relative, and
# sample sizes to 1e-6 relative (named constants there).
#
# Design types: the Lan–DeMets alpha-spending designs (asOF, asP, asHSD, asKD, given to rrct as
# --spending or --design) and the classical designs (OF, P, WT with deltaWT, HP, given as
# --design), one- and two-sided, with beta-spending or fixed futility bounds, binding or not.
# rpact rounds the alpha spent at the final look down to 8 decimals (floor(x * 1e8) / 1e8 in
# .calculateAlphaSpent); the golden values are rpact's own crossing probabilities of its
# boundaries (getGroupSequentialProbabilitiesCpp, as .calculateAlphaSpent computes them) without
# that rounding.
#
# rpact conventions used: a two-sided design spends `alpha` in total (rrct's nominal_alpha is
# `sided * stageLevels`); futility boundaries come from beta spending with
# `bindingFutility = FALSE`; the inflation factor is getDesignCharacteristics()$inflationFactor;
# sample sizes use the normal approximation; survival benefit is HR < 1 for the sample sizes
# (the formulas use log(HR)^2), and conditional power uses `directionUpper = TRUE` with HR > 1,
# which rrct's `--hr` expresses as its reciprocal (rrct's z is positive for benefit).

suppressPackageStartupMessages(library(rpact))
out_dir <- file.path("tests", "data", "rpact")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)

# A minimal JSON writer (no extra packages): named list -> object, unnamed list or I() -> array,
# length-1 atomic -> scalar.
num <- function(x) if (is.na(x) || !is.finite(x)) "null" else sprintf("%.17g", as.double(x))
to_json <- function(x) {
    if (is.null(x)) return("null")
    if (is.list(x)) {
        items <- vapply(x, to_json, "")
        if (!is.null(names(x)) && length(x) > 0) {
            return(paste0("{", paste0('"', names(x), '":', items, collapse = ","), "}"))
        }
        return(paste0("[", paste0(items, collapse = ","), "]"))
    }
    if (inherits(x, "AsIs") || length(x) != 1) {
        v <- unclass(x)
        return(paste0("[", paste0(vapply(seq_along(v), function(i) to_json(v[[i]]), ""),
                                  collapse = ","), "]"))
    }
    if (is.character(x)) return(paste0('"', x, '"'))
    if (is.logical(x)) return(if (is.na(x)) "null" else if (x) "true" else "false")
    num(x)
}
fmt <- function(x) sprintf("%.17g", x)

# rpact's root searches stop at `tolerance` (default 1e-8, which moves boundaries by up to
# 1e-8); the golden designs use the smallest it accepts, so that what remains is its integration.
RPACT_TOLERANCE <- 1e-10

cases <- list()
add <- function(name, args, expected) {
    cases[[length(cases) + 1]] <<- list(name = name, args = I(args), expected = expected)
}

# rpact's typeOfDesign / typeBetaSpending and gammaA / gammaB for an rrct spelling.
rpact_spending <- function(spelling, prefix) {
    parts <- strsplit(spelling, ":", fixed = TRUE)[[1]]
    type <- switch(parts[1], obf = "OF", pocock = "P", hsd = "HSD", kd = "KD")
    list(type = paste0(prefix, type), gamma = if (length(parts) > 1) as.numeric(parts[2]) else NA_real_)
}

# ---------------------------------------------------------------------------------------------
# Group-sequential designs.
gsd_case <- function(name, k, alpha, sided, spending, timing = NULL, futility = NULL, power = 0.8) {
    a <- rpact_spending(spending, "as")
    args <- list(kMax = k, alpha = alpha, sided = sided, typeOfDesign = a$type, beta = 1 - power,
                 tolerance = RPACT_TOLERANCE)
    if (!is.na(a$gamma)) args$gammaA <- a$gamma
    if (!is.null(timing)) args$informationRates <- timing
    if (!is.null(futility)) {
        b <- rpact_spending(futility, "bs")
        args$typeBetaSpending <- b$type
        if (!is.na(b$gamma)) args$gammaB <- b$gamma
        args$bindingFutility <- FALSE
    }
    d <- do.call(getDesignGroupSequential, args)
    ch <- getDesignCharacteristics(d)
    looks <- lapply(seq_len(k), function(i) {
        lower <- if (sided == 2) -d$criticalValues[i] else if (!is.null(futility) && i < k) d$futilityBounds[i] else NA
        look <- list(look = i, timing = d$informationRates[i], upper_z = d$criticalValues[i],
                     nominal_alpha = sided * d$stageLevels[i],
                     cumulative_alpha = alpha_spent(d)[i])
        if (sided == 2 || !is.null(futility)) look$lower_z <- lower
        if (!is.null(futility)) look$cumulative_beta <- d$betaSpent[i]
        look
    })
    cli <- c("design", "gsd", "--looks", k, "--alpha", fmt(alpha), "--sided", sided,
             "--spending", spending, "--power", fmt(power))
    if (!is.null(timing)) cli <- c(cli, "--timing", paste(fmt(timing), collapse = ","))
    if (!is.null(futility)) cli <- c(cli, "--futility", futility)
    add(name, cli, list(looks = looks, inflation_factor = ch$inflationFactor))
}

# rpact's alpha spent, without the rounding of the final value (see the header).
alpha_spent <- function(d) {
    k <- d$kMax
    if (k == 1) return(d$alphaSpent)
    if (d$sided == 1) {
        lower <- if (isTRUE(d$bindingFutility) && !all(is.na(d$futilityBounds)))
            c(d$futilityBounds, -6) else rep(-6, k)
        m <- matrix(c(lower, d$criticalValues), nrow = 2, byrow = TRUE)
        probs <- rpact:::.getGroupSequentialProbabilities(m, d$informationRates)
        return(cumsum(probs[3, ] - probs[2, ]))
    }
    m <- matrix(c(-d$criticalValues, d$criticalValues), nrow = 2, byrow = TRUE)
    probs <- rpact:::.getGroupSequentialProbabilities(m, d$informationRates)
    cumsum(probs[3, ] - probs[2, ] + probs[1, ])
}

# A design given as rpact's typeOfDesign (rrct --design), with optional beta spending or fixed
# futility bounds, binding or not.
design_case <- function(name, k, alpha, sided, type, delta = NULL, gamma = NULL, timing = NULL,
                        beta_spending = NULL, futility_bounds = NULL, binding = FALSE, power = 0.8) {
    args <- list(kMax = k, alpha = alpha, sided = sided, typeOfDesign = type, beta = 1 - power,
                 tolerance = RPACT_TOLERANCE)
    spelling <- type
    if (!is.null(delta)) { args$deltaWT <- delta; spelling <- paste0(type, ":", as.character(delta)) }
    if (!is.null(gamma)) { args$gammaA <- gamma; spelling <- paste0(type, ":", as.character(gamma)) }
    if (!is.null(timing)) args$informationRates <- timing
    if (!is.null(beta_spending)) {
        b <- rpact_spending(beta_spending, "bs")
        args$typeBetaSpending <- b$type
        if (!is.na(b$gamma)) args$gammaB <- b$gamma
    }
    if (!is.null(futility_bounds)) args$futilityBounds <- futility_bounds
    futility <- !is.null(beta_spending) || !is.null(futility_bounds)
    if (futility) args$bindingFutility <- binding
    d <- do.call(getDesignGroupSequential, args)
    ch <- getDesignCharacteristics(d)
    spent <- alpha_spent(d)
    looks <- lapply(seq_len(k), function(i) {
        look <- list(look = i, timing = d$informationRates[i], upper_z = d$criticalValues[i],
                     nominal_alpha = sided * d$stageLevels[i], cumulative_alpha = spent[i])
        if (sided == 2) look$lower_z <- -d$criticalValues[i]
        if (futility) look$lower_z <- if (i < k) d$futilityBounds[i] else NA
        if (!is.null(beta_spending)) look$cumulative_beta <- d$betaSpent[i]
        look
    })
    cli <- c("design", "gsd", "--looks", k, "--alpha", fmt(alpha), "--sided", sided,
             "--design", spelling, "--power", fmt(power))
    if (!is.null(timing)) cli <- c(cli, "--timing", paste(fmt(timing), collapse = ","))
    if (!is.null(beta_spending)) cli <- c(cli, "--futility", beta_spending)
    if (!is.null(futility_bounds)) cli <- c(cli, "--futility-bounds", paste(fmt(futility_bounds), collapse = ","))
    if (binding) cli <- c(cli, "--binding-futility")
    add(name, cli, list(type_of_design = spelling, binding_futility = binding, looks = looks,
                        inflation_factor = ch$inflationFactor))
}

# Classical designs: O'Brien–Fleming, Pocock, Wang–Tsiatis, Haybittle–Peto.
design_case("OF_2_one_sided", 2, 0.025, 1, "OF")
design_case("OF_3_one_sided", 3, 0.025, 1, "OF")
design_case("OF_5_one_sided_p90", 5, 0.025, 1, "OF", power = 0.9)
design_case("OF_4_one_sided_unequal", 4, 0.025, 1, "OF", timing = c(0.2, 0.45, 0.7, 1))
design_case("OF_3_two_sided", 3, 0.05, 2, "OF")
# (No first look much before t = 0.2: rpact cuts its integration at z = -6 and computes nominal
# levels as 1 - pnorm(z), both of which lose digits when a boundary lies beyond 6.)
design_case("OF_6_two_sided_unequal", 6, 0.05, 2, "OF", timing = c(0.2, 0.35, 0.5, 0.65, 0.8, 1))
design_case("P_3_one_sided", 3, 0.025, 1, "P")
design_case("P_5_one_sided_unequal", 5, 0.025, 1, "P", timing = c(0.1, 0.25, 0.5, 0.75, 1))
design_case("P_4_two_sided", 4, 0.05, 2, "P")
design_case("P_2_two_sided_alpha01", 2, 0.01, 2, "P")
design_case("WT_025_4_one_sided", 4, 0.025, 1, "WT", delta = 0.25)
design_case("WT_01_3_two_sided_unequal", 3, 0.05, 2, "WT", delta = 0.1, timing = c(0.3, 0.65, 1))
design_case("WT_m02_3_one_sided", 3, 0.025, 1, "WT", delta = -0.2)
design_case("WT_08_4_two_sided", 4, 0.05, 2, "WT", delta = 0.8)
design_case("WT_04_3_one_sided_p90", 3, 0.025, 1, "WT", delta = 0.4, power = 0.9)
design_case("HP_2_one_sided", 2, 0.025, 1, "HP")
design_case("HP_4_one_sided", 4, 0.025, 1, "HP")
design_case("HP_5_two_sided_unequal", 5, 0.05, 2, "HP", timing = c(0.2, 0.4, 0.5, 0.75, 1))
# Fixed futility bounds, binding and non-binding.
design_case("OF_3_futility_nonbinding", 3, 0.025, 1, "OF", futility_bounds = c(0, 0.5))
design_case("OF_3_futility_binding", 3, 0.025, 1, "OF", futility_bounds = c(0, 0.5), binding = TRUE)
design_case("P_4_futility_binding_unequal", 4, 0.025, 1, "P", futility_bounds = c(-0.5, 0, 0.5),
            timing = c(0.25, 0.4, 0.7, 1), binding = TRUE)
design_case("WT_03_4_futility_binding", 4, 0.025, 1, "WT", delta = 0.3,
            futility_bounds = c(0, 0.5, 1), binding = TRUE)
design_case("HP_3_futility_binding", 3, 0.025, 1, "HP", futility_bounds = c(0.2, 0.8), binding = TRUE)
design_case("HP_3_futility_nonbinding", 3, 0.025, 1, "HP", futility_bounds = c(0.2, 0.8))
design_case("asOF_4_futility_bounds_binding", 4, 0.025, 1, "asOF", futility_bounds = c(-0.5, 0.3, 1),
            binding = TRUE)
design_case("asP_3_futility_bounds_nonbinding", 3, 0.025, 1, "asP", futility_bounds = c(0, 0))
# Beta spending, binding (non-binding cases follow below in the older spelling).
design_case("asOF_3_bsOF_binding", 3, 0.025, 1, "asOF", beta_spending = "obf", binding = TRUE)
design_case("asHSD_4_bsP_binding_unequal", 4, 0.025, 1, "asHSD", gamma = -4, beta_spending = "pocock",
            timing = c(0.3, 0.5, 0.8, 1), binding = TRUE, power = 0.9)
design_case("asKD_5_bsHSD_binding", 5, 0.025, 1, "asKD", gamma = 2, beta_spending = "hsd:-2",
            binding = TRUE)
design_case("asP_3_bsKD_nonbinding", 3, 0.025, 1, "asP", beta_spending = "kd:2")
design_case("asOF_4_two_sided", 4, 0.05, 2, "asOF")

gsd_case("obf_3_one_sided", 3, 0.025, 1, "obf")
gsd_case("obf_4_one_sided", 4, 0.025, 1, "obf")
gsd_case("obf_5_one_sided", 5, 0.025, 1, "obf", power = 0.9)
gsd_case("obf_4_one_sided_unequal", 4, 0.025, 1, "obf", timing = c(0.2, 0.45, 0.7, 1))
gsd_case("obf_3_two_sided", 3, 0.05, 2, "obf")
gsd_case("obf_5_two_sided_unequal", 5, 0.05, 2, "obf", timing = c(0.15, 0.3, 0.5, 0.8, 1))
gsd_case("pocock_3_one_sided", 3, 0.025, 1, "pocock")
gsd_case("pocock_5_one_sided_unequal", 5, 0.025, 1, "pocock", timing = c(0.1, 0.25, 0.5, 0.75, 1))
gsd_case("pocock_4_two_sided", 4, 0.05, 2, "pocock")
gsd_case("pocock_3_two_sided_unequal", 3, 0.01, 2, "pocock", timing = c(0.4, 0.6, 1))
gsd_case("hsd_m4_4_one_sided", 4, 0.025, 1, "hsd:-4")
gsd_case("hsd_m2_3_one_sided", 3, 0.025, 1, "hsd:-2")
gsd_case("hsd_0_5_one_sided", 5, 0.025, 1, "hsd:0")
gsd_case("hsd_1_4_one_sided_unequal", 4, 0.025, 1, "hsd:1", timing = c(0.3, 0.5, 0.6, 1))
gsd_case("hsd_m4_5_two_sided", 5, 0.05, 2, "hsd:-4")
gsd_case("kd_1_3_one_sided", 3, 0.025, 1, "kd:1")
gsd_case("kd_2_4_one_sided", 4, 0.025, 1, "kd:2")
gsd_case("kd_3_5_two_sided_unequal", 5, 0.05, 2, "kd:3", timing = c(0.2, 0.35, 0.6, 0.85, 1))
gsd_case("obf_futility_obf_3", 3, 0.025, 1, "obf", futility = "obf")
gsd_case("obf_futility_pocock_4", 4, 0.025, 1, "obf", futility = "pocock", power = 0.9)
gsd_case("pocock_futility_hsd_3_unequal", 3, 0.025, 1, "pocock", futility = "hsd:-2",
         timing = c(0.35, 0.7, 1))
gsd_case("hsd_futility_kd_5", 5, 0.025, 1, "hsd:-4", futility = "kd:2")

# getDesignGroupSequential arguments and rrct flags for a sizing command's design: `spending` in
# rrct's spelling (--spending) or `design` in rpact's typeOfDesign spelling (--design, e.g.
# "OF", "WT:0.25", "HP").
sizing_design <- function(spending, design) {
    if (!is.null(design)) {
        parts <- strsplit(design, ":", fixed = TRUE)[[1]]
        args <- list(typeOfDesign = parts[1])
        if (length(parts) > 1) {
            if (parts[1] == "WT") args$deltaWT <- as.numeric(parts[2]) else args$gammaA <- as.numeric(parts[2])
        }
        return(list(args = args, cli = c("--design", design)))
    }
    a <- rpact_spending(spending, "as")
    args <- list(typeOfDesign = a$type)
    if (!is.na(a$gamma)) args$gammaA <- a$gamma
    list(args = args, cli = c("--spending", spending))
}

# ---------------------------------------------------------------------------------------------
# Events for a hazard ratio (Schoenfeld), fixed and group-sequential.
events_case <- function(name, hr, alpha, power, sided = 1, ratio = 1, k = NULL, spending = NULL,
                        design = NULL) {
    args <- list(hazardRatio = hr, alpha = alpha, beta = 1 - power, sided = sided,
                 allocationRatioPlanned = ratio, lambda2 = log(2) / 12,
                 accrualTime = c(0, 24), followUpTime = 12)
    cli <- c("design", "events", "--hr", fmt(hr), "--alpha", fmt(alpha), "--power", fmt(power),
             "--sided", sided, "--ratio", fmt(ratio))
    if (!is.null(k)) {
        sd <- sizing_design(spending, design)
        dargs <- c(list(kMax = k, alpha = alpha, beta = 1 - power, sided = sided), sd$args)
        args$design <- do.call(getDesignGroupSequential, dargs)
        args$alpha <- NULL; args$beta <- NULL; args$sided <- NULL
        cli <- c(cli, "--looks", k, sd$cli)
    }
    s <- suppressWarnings(do.call(getSampleSizeSurvival, args))
    add(name, cli, list(events_fixed = s$eventsFixed, events = s$maxNumberOfEvents,
                        events_rounded = ceiling(s$maxNumberOfEvents - 1e-9)))
}

events_case("events_hr075_p90", 0.75, 0.025, 0.9)
events_case("events_hr06_p80", 0.6, 0.025, 0.8)
events_case("events_hr08_p90_ratio2", 0.8, 0.025, 0.9, ratio = 2)
events_case("events_hr07_p85_ratio05_two_sided", 0.7, 0.05, 0.85, sided = 2, ratio = 0.5)
events_case("events_hr125_p80", 1.25, 0.025, 0.8)
events_case("events_hr09_p90_ratio3", 0.9, 0.01, 0.9, ratio = 3)
events_case("events_gsd_obf3_hr075", 0.75, 0.025, 0.9, k = 3, spending = "obf")
events_case("events_gsd_pocock4_hr08_two_sided", 0.8, 0.05, 0.8, sided = 2, k = 4, spending = "pocock")
events_case("events_OF3_hr075", 0.75, 0.025, 0.9, k = 3, design = "OF")
events_case("events_P4_hr08_two_sided", 0.8, 0.05, 0.8, sided = 2, k = 4, design = "P")
events_case("events_WT025_5_hr07", 0.7, 0.025, 0.85, k = 5, design = "WT:0.25")
events_case("events_HP3_hr08", 0.8, 0.025, 0.9, k = 3, design = "HP")

# ---------------------------------------------------------------------------------------------
# Subjects from events (uniform accrual, exponential survival).
subjects_case <- function(name, hr, power, control, accrual, follow, ratio = 1, k = NULL, spending = NULL,
                          design = NULL) {
    args <- list(hazardRatio = hr, alpha = 0.025, beta = 1 - power, sided = 1,
                 allocationRatioPlanned = ratio, accrualTime = c(0, accrual), followUpTime = follow)
    cli <- c("design", "subjects", "--hr", fmt(hr), "--alpha", "0.025", "--power", fmt(power),
             "--ratio", fmt(ratio), "--accrual-time", fmt(accrual), "--follow-up-time", fmt(follow))
    if (!is.null(control$lambda2)) {
        args$lambda2 <- control$lambda2
        cli <- c(cli, "--control-hazard", fmt(control$lambda2))
    } else if (!is.null(control$median2)) {
        args$median2 <- control$median2
        cli <- c(cli, "--control-median", fmt(control$median2))
    } else {
        args$pi2 <- control$pi2
        args$eventTime <- control$eventTime
        cli <- c(cli, "--control-probability", fmt(control$pi2), "--event-time", fmt(control$eventTime))
    }
    if (!is.null(k)) {
        sd <- sizing_design(spending, design)
        args$design <- do.call(getDesignGroupSequential,
                                c(list(kMax = k, alpha = 0.025, beta = 1 - power), sd$args))
        args$alpha <- NULL; args$beta <- NULL; args$sided <- NULL
        cli <- c(cli, "--looks", k, sd$cli)
    }
    s <- suppressWarnings(do.call(getSampleSizeSurvival, args))
    add(name, cli, list(events = s$maxNumberOfEvents, subjects = s$maxNumberOfSubjects,
                        hazard_control = s$lambda2, accrual_intensity = s$accrualIntensity))
}

subjects_case("subjects_lambda2", 0.75, 0.9, list(lambda2 = log(2) / 12), 24, 12)
subjects_case("subjects_median2_ratio2", 0.7, 0.8, list(median2 = 30), 36, 18, ratio = 2)
subjects_case("subjects_pi2", 0.8, 0.8, list(pi2 = 0.3, eventTime = 24), 24, 12)
subjects_case("subjects_gsd_obf3", 0.75, 0.9, list(lambda2 = 0.04), 24, 12, k = 3, spending = "obf")
subjects_case("subjects_OF3", 0.75, 0.9, list(lambda2 = 0.04), 24, 12, k = 3, design = "OF")
subjects_case("subjects_HP4_median", 0.7, 0.8, list(median2 = 30), 36, 18, k = 4, design = "HP")

# ---------------------------------------------------------------------------------------------
# Two proportions and two means (normal approximation).
rates_case <- function(name, pi1, pi2, alpha, power, sided = 1, ratio = 1, k = NULL, spending = NULL,
                       design = NULL) {
    args <- list(pi1 = pi1, pi2 = pi2, alpha = alpha, beta = 1 - power, sided = sided,
                 allocationRatioPlanned = ratio, normalApproximation = TRUE)
    cli <- c("design", "rates", "--pi1", fmt(pi1), "--pi2", fmt(pi2), "--alpha", fmt(alpha),
             "--power", fmt(power), "--sided", sided, "--ratio", fmt(ratio))
    if (!is.null(k)) {
        sd <- sizing_design(spending, design)
        args$design <- do.call(getDesignGroupSequential,
                                c(list(kMax = k, alpha = alpha, beta = 1 - power, sided = sided), sd$args))
        args$alpha <- NULL; args$beta <- NULL; args$sided <- NULL
        cli <- c(cli, "--looks", k, sd$cli)
        s <- do.call(getSampleSizeRates, args)
        add(name, cli, list(n = s$maxNumberOfSubjects, n1 = s$maxNumberOfSubjects1,
                            n2 = s$maxNumberOfSubjects2))
    } else {
        s <- do.call(getSampleSizeRates, args)
        add(name, cli, list(n_fixed = s$nFixed, n = s$nFixed, n1 = s$nFixed1, n2 = s$nFixed2))
    }
}
rates_case("rates_03_04_ratio15", 0.3, 0.4, 0.025, 0.8, ratio = 1.5)
rates_case("rates_012_02_two_sided", 0.12, 0.2, 0.05, 0.9, sided = 2)
rates_case("rates_gsd_obf4", 0.25, 0.35, 0.025, 0.9, k = 4, spending = "obf")
rates_case("rates_P3_two_sided", 0.25, 0.35, 0.05, 0.8, sided = 2, k = 3, design = "P")

means_case <- function(name, difference, sd, alpha, power, sided = 1, ratio = 1, k = NULL, spending = NULL,
                       design = NULL) {
    args <- list(alternative = difference, stDev = sd, alpha = alpha, beta = 1 - power, sided = sided,
                 allocationRatioPlanned = ratio, normalApproximation = TRUE)
    cli <- c("design", "means", "--difference", fmt(difference), "--sd", fmt(sd), "--alpha", fmt(alpha),
             "--power", fmt(power), "--sided", sided, "--ratio", fmt(ratio))
    if (!is.null(k)) {
        sd <- sizing_design(spending, design)
        args$design <- do.call(getDesignGroupSequential,
                                c(list(kMax = k, alpha = alpha, beta = 1 - power, sided = sided), sd$args))
        args$alpha <- NULL; args$beta <- NULL; args$sided <- NULL
        cli <- c(cli, "--looks", k, sd$cli)
        s <- do.call(getSampleSizeMeans, args)
        add(name, cli, list(n = s$maxNumberOfSubjects, n1 = s$maxNumberOfSubjects1,
                            n2 = s$maxNumberOfSubjects2))
    } else {
        s <- do.call(getSampleSizeMeans, args)
        add(name, cli, list(n_fixed = s$nFixed, n = s$nFixed, n1 = s$nFixed1, n2 = s$nFixed2))
    }
}
means_case("means_05_13_ratio2", 0.5, 1.3, 0.025, 0.8, ratio = 2)
means_case("means_3_10_two_sided", 3, 10, 0.05, 0.9, sided = 2)
means_case("means_gsd_pocock3", 0.4, 1, 0.025, 0.8, k = 3, spending = "pocock")
means_case("means_WT04_4", 0.4, 1, 0.025, 0.8, k = 4, design = "WT:0.4")

# ---------------------------------------------------------------------------------------------
# Conditional power (survival, group-sequential) at looks held exactly at the planned
# information, under a hypothesised hazard ratio with the remaining planned events.
cp_case <- function(name, k, spending, events, logranks, max_events, hr_benefit, futility = NULL) {
    a <- rpact_spending(spending, "as")
    dargs <- list(kMax = k, alpha = 0.025, sided = 1, typeOfDesign = a$type, beta = 0.2)
    if (!is.null(futility)) {
        b <- rpact_spending(futility, "bs")
        dargs$typeBetaSpending <- b$type
        dargs$bindingFutility <- FALSE
    }
    d <- do.call(getDesignGroupSequential, dargs)
    stopifnot(isTRUE(all.equal(d$informationRates[seq_along(events)], events / max_events)))
    data <- getDataset(overallEvents = events, overallLogRanks = logranks,
                       overallAllocationRatios = rep(1, length(events)))
    stage <- length(events)
    sr <- getStageResults(d, dataInput = data, stage = stage, directionUpper = TRUE)
    planned <- diff(d$informationRates * max_events)[stage:(k - 1)]
    cp <- getConditionalPower(sr, nPlanned = planned, thetaH1 = hr_benefit)
    cli <- c("design", "conditional-power", "--looks", k, "--alpha", "0.025", "--spending", spending,
             "--z", paste(fmt(logranks), collapse = ","), "--events", paste(fmt(events), collapse = ","),
             "--planned-events", fmt(max_events), "--hr", fmt(1 / hr_benefit))
    if (!is.null(futility)) cli <- c(cli, "--futility", futility)
    add(name, cli, list(conditional_power_hr = cp$conditionalPower[k]))
}
cp_case("cp_obf3_stage1", 3, "obf", 100, 1.2, 300, 1.5)
cp_case("cp_obf3_stage2", 3, "obf", c(100, 200), c(1.2, 1.8), 300, 1.4)
cp_case("cp_pocock4_stage2_negative_trend", 4, "pocock", c(50, 100), c(0.4, -0.3), 200, 1.6)
cp_case("cp_obf3_futility_stage1", 3, "obf", 120, 0.9, 360, 1.35, futility = "obf")

json <- to_json(list(rpact_version = format(packageVersion("rpact")), cases = cases))
writeLines(json, file.path(out_dir, "design_golden.json"))
cat("wrote", length(cases), "cases to", file.path(out_dir, "design_golden.json"), "\n")
