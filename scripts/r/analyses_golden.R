#!/usr/bin/env Rscript
# Golden values for rrct's competing-risk, count, continuous and stratified binary statistics
# (src/stats), computed with R's `survival`, `cmprsk` and `MASS` packages.
#
# Run from the repository root:   Rscript scripts/r/analyses_golden.R
# Needs R with survival, cmprsk and MASS (Debian: r-cran-survival r-cran-cmprsk r-cran-mass).
#
# Like scripts/r/stats_golden.R it writes the data sets it uses (tests/data/r/analyses/*.csv),
# reads them back so that R and rrct see the very same numbers, and writes
# tests/data/r/analyses/golden.json: one case per analysis with the `rrct stats ...` arguments
# that reproduce it and the expected JSON in the CLI's own keys (17 significant digits; NA, NaN
# and Inf as null). tests/analyses.rs runs every case and compares at 1e-6 (p-values 1e-5).
#
# Two-sided normal p-values are written as 2 * pnorm(-|z|): R's printed `2 * (1 - pnorm(|z|))`
# (crr) carries no digits below 1e-16.

suppressPackageStartupMessages({
    library(survival)
    library(cmprsk)
    library(MASS)
})
out_dir <- file.path("tests", "data", "r", "analyses")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)

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
    if (is.character(x) || is.factor(x)) {
        x <- as.character(x)
        return(if (is.na(x)) "null" else paste0('"', gsub('"', '\\\\"', x), '"'))
    }
    if (is.logical(x)) return(if (is.na(x)) "null" else if (x) "true" else "false")
    num(x)
}
export <- function(df, name) {
    path <- file.path(out_dir, name)
    write.csv(df, path, row.names = FALSE, na = "")
    read.csv(path, na.strings = c("", "NA"), stringsAsFactors = FALSE, check.names = FALSE)
}
levels_of <- function(v) {
    u <- unique(v[!is.na(v)])
    if (is.numeric(u)) sort(u) else sort(u, method = "radix")
}
p2 <- function(z) 2 * pnorm(-abs(z))
test_of <- function(stat, df) list(chisq = stat, df = df, p = pchisq(stat, df, lower.tail = FALSE))
complete <- function(d, cols) d[stats::complete.cases(d[, cols, drop = FALSE]), , drop = FALSE]

# ---------------------------------------------------------------------------------------------
# Data sets.
ds <- list()
# mgus2: progression to plasma-cell malignancy competing with death (survival's compete
# vignette), status as text.
m <- survival::mgus2
m$etime <- with(m, ifelse(pstat == 0, futime, ptime))
m$event <- with(m, ifelse(pstat == 0, c("censor", "death")[death + 1], "pcm"))
m$male <- as.integer(m$sex == "M")
ds$mgus2 <- export(m[, c("id", "age", "sex", "male", "hgb", "mspike", "etime", "event")],
                   "mgus2.csv")
# cmprsk's own examples (?cuminc, ?crr).
set.seed(2)
ss <- rexp(100)
gg <- factor(sample(1:3, 100, replace = TRUE), 1:3, c("a", "b", "c"))
cc <- sample(0:2, 100, replace = TRUE)
strt <- sample(1:2, 100, replace = TRUE)
ds$cuminc_ex <- export(data.frame(time = ss, status = cc, group = as.character(gg),
                                  strata = strt), "cuminc_example.csv")
set.seed(10)
ftime <- rexp(200)
fstatus <- sample(0:2, 200, replace = TRUE)
cov <- matrix(runif(600), nrow = 200)
ds$crr_ex <- export(data.frame(ftime = ftime, fstatus = fstatus, x1 = cov[, 1], x2 = cov[, 2],
                               x3 = cov[, 3]), "crr_example.csv")
# Heavy ties and a small case: integer times 1..12, 3 causes, two arms.
set.seed(20261205)
n <- 600
tied <- data.frame(arm = sample(c("control", "treated"), n, replace = TRUE),
                   age = round(rnorm(n, 60, 8)))
tied$time <- sample(1:12, n, replace = TRUE)
tied$status <- sample(0:3, n, replace = TRUE, prob = c(0.4, 0.3, 0.2, 0.1))
tied$treated <- as.integer(tied$arm == "treated")
ds$tied <- export(tied, "tied_competing.csv")
ds$small <- export(data.frame(time = c(1, 2, 2, 3, 4, 4, 5, 6, 7, 8),
                              status = c(1, 2, 0, 1, 1, 0, 2, 1, 0, 1),
                              arm = c(0, 1, 0, 1, 0, 1, 0, 1, 1, 0)), "small_competing.csv")

cases <- list()
add <- function(category, case) cases[[category]] <<- c(cases[[category]], list(case))

# ---------------------------------------------------------------------------------------------
# Cumulative incidence: survfit with a factor status, summary(times =).
cif_case <- function(name, data, csv, time, status, censor, group = NULL, at,
                     conf_type = "log", conf_level = 0.95) {
    d <- complete(ds[[data]], c(time, status, group))
    st_levels <- levels_of(d[[status]])
    causes <- as.character(st_levels[as.character(st_levels) != censor])
    fs <- factor(as.character(d[[status]]), levels = c(censor, causes))
    y <- Surv(d[[time]], fs)
    if (is.null(group)) {
        fits <- list(survfit(y ~ 1, conf.type = conf_type, conf.int = conf_level))
        labels <- list(NULL)
    } else {
        lv <- levels_of(d[[group]])
        g <- factor(d[[group]], levels = lv)
        fit <- survfit(y ~ g, conf.type = conf_type, conf.int = conf_level)
        fits <- lapply(seq_along(lv), function(i) fit[i, ])
        labels <- as.list(as.character(lv))
    }
    groups <- lapply(seq_along(fits), function(i) {
        f <- fits[[i]]
        at_sorted <- sort(at)
        within <- at_sorted[at_sorted <= max(f$time)]
        s <- summary(f, times = within)
        ns <- length(f$states)
        cols <- function(v) matrix(v, ncol = ns)
        per_cause <- lapply(causes, function(cause) {
            k <- match(cause, f$states)
            rows <- lapply(at_sorted, function(t) {
                j <- match(t, within)
                if (is.na(j)) {
                    list(time = t, cif = NA, std_err = NA, lower = NA, upper = NA)
                } else {
                    list(time = t, cif = cols(s$pstate)[j, k], std_err = cols(s$std.err)[j, k],
                         lower = cols(s$lower)[j, k], upper = cols(s$upper)[j, k])
                }
            })
            list(cause = cause, events = sum(f$n.event[, k]), at = rows)
        })
        list(group = labels[[i]], n = f$n, causes = per_cause)
    })
    args <- c("cif", "--csv", csv, "--time", time, "--status", status, "--censor", censor,
              if (!is.null(group)) c("--group", group), "--conf-type", conf_type,
              "--conf-level", conf_level, "--at", paste(at, collapse = ","))
    add("cif", list(name = name, args = I(args),
                    expected = list(n_dropped = nrow(ds[[data]]) - nrow(d), groups = groups)))
}
cif_case("mgus2_by_sex", "mgus2", "mgus2.csv", "etime", "event", "censor", "sex",
         at = c(0, 12, 60, 120, 240, 360, 500))
cif_case("mgus2_all_loglog", "mgus2", "mgus2.csv", "etime", "event", "censor",
         at = c(24, 120, 300), conf_type = "log-log", conf_level = 0.9)
cif_case("cuminc_example", "cuminc_ex", "cuminc_example.csv", "time", "status", "0", "group",
         at = c(0.1, 0.5, 1, 2, 3))
cif_case("tied_plain", "tied", "tied_competing.csv", "time", "status", "0", "arm",
         at = c(1, 3, 6, 12), conf_type = "plain")
cif_case("tied_logit", "tied", "tied_competing.csv", "time", "status", "0", "arm",
         at = c(2, 7, 11), conf_type = "logit")
# (Not arcsin: R's survfit_confint drops the matrix shape of multi-state arcsin limits.)
cif_case("small_logit_90", "small", "small_competing.csv", "time", "status", "0", NULL,
         at = c(0.5, 1, 2, 4.5, 8, 9), conf_type = "logit", conf_level = 0.9)

# Gray's test: cuminc()$Tests.
gray_case <- function(name, data, csv, time, status, censor, group, strata = NULL, rho = 0) {
    d <- complete(ds[[data]], c(time, status, group, strata))
    r <- if (is.null(strata)) {
        cuminc(d[[time]], d[[status]], d[[group]], rho = rho, cencode = censor)
    } else {
        cuminc(d[[time]], d[[status]], d[[group]], d[[strata]], rho = rho, cencode = censor)
    }
    tests <- r$Tests
    causes <- rownames(tests)
    rows <- lapply(seq_along(causes), function(i)
        c(list(cause = causes[i]), test_of(tests[i, "stat"], tests[i, "df"])))
    args <- c("gray", "--csv", csv, "--time", time, "--status", status, "--censor", censor,
              "--group", group, if (!is.null(strata)) c("--strata", strata),
              "--rho", rho)
    add("gray", list(name = name, args = I(args),
                     expected = list(n_dropped = nrow(ds[[data]]) - nrow(d), tests = rows)))
}
gray_case("mgus2_by_sex", "mgus2", "mgus2.csv", "etime", "event", "censor", "sex")
gray_case("cuminc_example_strata", "cuminc_ex", "cuminc_example.csv", "time", "status", "0",
          "group", "strata")
gray_case("cuminc_example_rho", "cuminc_ex", "cuminc_example.csv", "time", "status", "0",
          "group", rho = 1)
gray_case("tied", "tied", "tied_competing.csv", "time", "status", "0", "arm")
gray_case("small", "small", "small_competing.csv", "time", "status", "0", "arm")

# Fine-Gray: crr.
finegray_case <- function(name, data, csv, time, status, censor, cause, covariates) {
    d <- complete(ds[[data]], c(time, status, covariates))
    cov1 <- as.matrix(d[, covariates, drop = FALSE])
    fit <- crr(d[[time]], d[[status]], cov1, failcode = cause, cencode = censor)
    b <- fit$coef
    se <- sqrt(diag(fit$var))
    z <- b / se
    zc <- qnorm(0.975)
    coefs <- lapply(seq_along(b), function(k)
        list(name = covariates[k], coef = b[[k]], se = se[[k]], z = z[[k]], p = p2(z[[k]]),
             shr = exp(b[[k]]), shr_lower = exp(b[[k]] - zc * se[[k]]),
             shr_upper = exp(b[[k]] + zc * se[[k]])))
    st <- as.character(d[[status]])
    args <- c("finegray", "--csv", csv, "--time", time, "--status", status, "--censor", censor,
              "--cause", cause, "--covariates", paste(covariates, collapse = ","))
    add("finegray", list(name = name, args = I(args),
        expected = list(n = fit$n, n_dropped = nrow(ds[[data]]) - nrow(d),
                        events = sum(st == as.character(cause)),
                        competing_events = sum(st != as.character(cause) & st != censor),
                        converged = fit$converged, coefficients = coefs,
                        loglik_null = fit$loglik.null, loglik = fit$loglik,
                        lr_test = test_of(-2 * (fit$loglik.null - fit$loglik), length(b)))))
}
finegray_case("mgus2_pcm", "mgus2", "mgus2.csv", "etime", "event", "censor", "pcm",
              c("male", "age"))
finegray_case("mgus2_death", "mgus2", "mgus2.csv", "etime", "event", "censor", "death",
              c("male", "age", "hgb"))
finegray_case("crr_example", "crr_ex", "crr_example.csv", "ftime", "fstatus", "0", "1",
              c("x1", "x2", "x3"))
finegray_case("crr_example_cause2", "crr_ex", "crr_example.csv", "ftime", "fstatus", "0", "2",
              c("x1"))
finegray_case("tied", "tied", "tied_competing.csv", "time", "status", "0", "2",
              c("treated", "age"))
finegray_case("small", "small", "small_competing.csv", "time", "status", "0", "1", c("arm"))

# Cause-specific Cox: coxph on the cause's own events, others censored.
cs_case <- function(name, data, csv, time, status, cause, covariates, ties = "efron") {
    d <- complete(ds[[data]], c(time, status, covariates))
    ev <- as.integer(as.character(d[[status]]) == cause)
    x <- as.matrix(d[, covariates, drop = FALSE])
    fit <- coxph(Surv(d[[time]], ev) ~ x, ties = ties)
    b <- unname(coef(fit)); se <- sqrt(diag(fit$var)); z <- b / se; zc <- qnorm(0.975)
    coefs <- lapply(seq_along(b), function(k)
        list(name = covariates[k], coef = b[k], se = se[k], z = z[k], p = p2(z[k]),
             hr = exp(b[k]), hr_lower = exp(b[k] - zc * se[k]), hr_upper = exp(b[k] + zc * se[k])))
    args <- c("cox", "--csv", csv, "--time", time, "--event", status, "--cause", cause,
              "--covariates", paste(covariates, collapse = ","), "--ties", ties)
    add("cox", list(name = name, args = I(args),
        expected = list(n = fit$n, events = fit$nevent, coefficients = coefs,
                        loglik_null = fit$loglik[1], loglik = fit$loglik[2],
                        lr_test = test_of(2 * diff(fit$loglik), length(b)))))
}
cs_case("mgus2_cause_specific_pcm", "mgus2", "mgus2.csv", "etime", "event", "pcm",
        c("male", "age"))
cs_case("tied_cause_specific_3", "tied", "tied_competing.csv", "time", "status", "3",
        c("treated"), ties = "breslow")

# ---------------------------------------------------------------------------------------------
# Kaplan-Meier with the logit and arcsin intervals and other confidence levels.
km_case <- function(name, data, csv, time, event, group = NULL, conf_type, conf_level, at) {
    d <- complete(ds[[data]], c(time, event, group))
    y <- Surv(d[[time]], d[[event]])
    if (is.null(group)) {
        fits <- list(survfit(y ~ 1, conf.type = conf_type, conf.int = conf_level))
        labels <- list(NULL)
    } else {
        lv <- levels_of(d[[group]])
        g <- factor(d[[group]], levels = lv)
        fit <- survfit(y ~ g, conf.type = conf_type, conf.int = conf_level)
        fits <- lapply(seq_along(lv), function(i) fit[i])
        labels <- as.list(as.character(lv))
    }
    groups <- lapply(seq_along(fits), function(i) {
        f <- fits[[i]]
        tab <- summary(f)$table
        at_sorted <- sort(at)
        within <- at_sorted[at_sorted <= max(f$time)]
        s <- summary(f, times = within)
        rows <- lapply(at_sorted, function(t) {
            j <- match(t, within)
            if (is.na(j)) {
                list(time = t, survival = NA, std_err = NA, lower = NA, upper = NA, n_risk = 0)
            } else {
                list(time = t, survival = s$surv[j], std_err = s$std.err[j],
                     lower = s$lower[j], upper = s$upper[j], n_risk = s$n.risk[j])
            }
        })
        list(group = labels[[i]], n = tab[["records"]], events = tab[["events"]],
             median = tab[["median"]], median_lower = tab[[paste0(f$conf.int, "LCL")]],
             median_upper = tab[[paste0(f$conf.int, "UCL")]], at = rows)
    })
    args <- c("km", "--csv", csv, "--time", time, "--event", event,
              if (!is.null(group)) c("--group", group), "--conf-type", conf_type,
              "--conf-level", conf_level, "--at", paste(at, collapse = ","))
    add("km", list(name = name, args = I(args),
                   expected = list(n_dropped = nrow(ds[[data]]) - nrow(d), conf_type = conf_type,
                                   conf_level = conf_level, groups = groups)))
}
ds$lung <- export(survival::lung[, c("time", "status", "sex", "age", "ph.ecog")], "lung.csv")
km_case("lung_logit", "lung", "lung.csv", "time", "status", "sex", "logit", 0.95,
        at = c(0, 5, 100, 365, 700, 2000))
km_case("lung_arcsin_90", "lung", "lung.csv", "time", "status", "sex", "arcsin", 0.9,
        at = c(0, 11, 200, 500, 1000))
km_case("lung_log_99", "lung", "lung.csv", "time", "status", NULL, "log", 0.99,
        at = c(30, 365, 730))
ds$small_km <- export(data.frame(time = c(1, 2, 2, 3, 4, 4, 5, 6, 7, 8),
                                 status = c(1, 1, 0, 1, 1, 0, 1, 1, 0, 1)), "small_km.csv")
km_case("small_logit_80", "small_km", "small_km.csv", "time", "status", NULL, "logit", 0.8,
        at = c(0.5, 1, 2, 4.5, 8))
km_case("small_arcsin", "small_km", "small_km.csv", "time", "status", NULL, "arcsin", 0.95,
        at = c(0.5, 1, 2, 4.5, 8))

# ---------------------------------------------------------------------------------------------
golden <- list(r_version = R.version.string,
               survival_version = as.character(packageVersion("survival")),
               cmprsk_version = as.character(packageVersion("cmprsk")),
               mass_version = as.character(packageVersion("MASS")),
               cases = cases)
writeLines(to_json(golden), file.path(out_dir, "golden.json"))
cat("wrote", file.path(out_dir, "golden.json"), "\n")
