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

# Counting-process (start, stop] data and cluster-robust variance: coxph(... + cluster(id)).
b2 <- survival::bladder2
ds$bladder2 <- export(b2, "bladder2.csv")
cg <- survival::cgd
cg$treated <- as.integer(cg$treat == "rIFN-g")
cg$female <- as.integer(cg$sex == "female")
ds$cgd <- export(cg[, c("id", "center", "treated", "female", "age", "tstart", "tstop", "status")],
                 "cgd.csv")
ds$rats <- export(survival::rats, "rats.csv")
ds$small_ag <- export(data.frame(id = c(1, 1, 2, 2, 2, 3, 4, 4, 5, 6),
                                 start = c(0, 2, 0, 1, 3, 0, 0, 2, 0, 0),
                                 stop = c(2, 5, 1, 3, 6, 4, 2, 6, 3, 3),
                                 event = c(1, 0, 1, 1, 0, 1, 1, 1, 0, 1),
                                 x = c(1, 1, 0, 0, 0, 1, 0, 0, 1, 1)), "small_ag.csv")
ag_case <- function(name, data, csv, start = NULL, stop, event, covariates, cluster = NULL,
                    ties = "efron", strata = NULL) {
    d <- complete(ds[[data]], c(start, stop, event, covariates, cluster, strata))
    x <- as.matrix(d[, covariates, drop = FALSE])
    y <- if (is.null(start)) Surv(d[[stop]], d[[event]]) else Surv(d[[start]], d[[stop]], d[[event]])
    fit <- if (is.null(cluster)) {
        if (is.null(strata)) coxph(y ~ x, ties = ties) else coxph(y ~ x + strata(d[[strata]]), ties = ties)
    } else {
        cl <- d[[cluster]]
        if (is.null(strata)) coxph(y ~ x + cluster(cl), ties = ties)
        else coxph(y ~ x + strata(d[[strata]]) + cluster(cl), ties = ties)
    }
    b <- unname(coef(fit)); zc <- qnorm(0.975)
    naive <- sqrt(diag(if (is.null(cluster)) fit$var else fit$naive.var))
    se <- sqrt(diag(fit$var))
    coefs <- lapply(seq_along(b), function(k) {
        e <- list(name = covariates[k], coef = b[k], se = naive[k])
        if (!is.null(cluster)) e$robust_se <- se[k]
        c(e, list(z = b[k] / se[k], p = p2(b[k] / se[k]), hr = exp(b[k]),
                  hr_lower = exp(b[k] - zc * se[k]), hr_upper = exp(b[k] + zc * se[k])))
    })
    expected <- list(n = fit$n, events = fit$nevent, coefficients = coefs,
                     loglik_null = fit$loglik[1], loglik = fit$loglik[2],
                     lr_test = test_of(2 * diff(fit$loglik), length(b)),
                     wald_test = test_of(fit$wald.test, length(b)),
                     score_test = test_of(fit$score, length(b)))
    if (!is.null(cluster)) expected$robust_score_test <- test_of(fit$rscore, length(b))
    args <- c("cox", "--csv", csv, "--time", stop, "--event", event,
              if (!is.null(start)) c("--start", start),
              "--covariates", paste(covariates, collapse = ","),
              if (!is.null(cluster)) c("--cluster", cluster),
              if (!is.null(strata)) c("--strata", strata), "--ties", ties)
    add("cox", list(name = name, args = I(args), expected = expected))
}
ag_case("bladder2_andersen_gill_robust", "bladder2", "bladder2.csv", "start", "stop", "event",
        c("rx", "size", "number"), cluster = "id")
ag_case("bladder2_counting_breslow", "bladder2", "bladder2.csv", "start", "stop", "event",
        c("rx", "number"), ties = "breslow")
ag_case("bladder2_strata_by_enum_robust", "bladder2", "bladder2.csv", "start", "stop", "event",
        c("rx", "number"), cluster = "id", strata = "enum")
ag_case("cgd_recurrent_robust", "cgd", "cgd.csv", "tstart", "tstop", "status",
        c("treated", "age", "female"), cluster = "id")
ag_case("rats_litter_cluster", "rats", "rats.csv", NULL, "time", "status", c("rx"),
        cluster = "litter")
ag_case("small_counting_robust", "small_ag", "small_ag.csv", "start", "stop", "event", c("x"),
        cluster = "id")
ag_case("small_counting_breslow_robust", "small_ag", "small_ag.csv", "start", "stop", "event",
        c("x"), cluster = "id", ties = "breslow")

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
# Counts: glm(family = poisson) and MASS::glm.nb, log link, log(exposure) as offset.
q <- MASS::quine
q$female <- as.integer(q$Sex == "F")
q$slow <- as.integer(q$Lrn == "SL")
ds$quine <- export(q[, c("Eth", "Sex", "Age", "Lrn", "Days", "female", "slow")], "quine.csv")
# Bladder cancer recurrences per patient (survival::bladder2) with follow-up as exposure.
b2 <- survival::bladder2
per <- aggregate(cbind(recurrences = event, followup = stop) ~ id + rx + number + size,
                 data = b2, FUN = function(v) v[length(v)])
per$recurrences <- as.vector(tapply(b2$event, b2$id, sum)[as.character(per$id)])
per$followup <- as.vector(tapply(b2$stop, b2$id, max)[as.character(per$id)])
per$arm <- ifelse(per$rx == 1, "placebo", "thiotepa")
per <- per[per$followup > 0, ]
ds$bladder_counts <- export(per[, c("id", "arm", "number", "size", "recurrences", "followup")],
                            "bladder_counts.csv")
set.seed(17)
n <- 400
ex <- data.frame(arm = sample(c("control", "active"), n, replace = TRUE),
                 years = round(runif(n, 0.2, 3), 2), age = round(rnorm(n, 70, 9)))
ex$admissions <- rnbinom(n, size = 1.3, mu = ex$years * 0.8 *
                         ifelse(ex$arm == "active", 0.75, 1) * exp(0.01 * (ex$age - 70)))
ds$admissions <- export(ex, "admissions.csv")
ds$tiny_counts <- export(data.frame(arm = c("a", "a", "a", "a", "b", "b", "b", "b"),
                                    y = c(0, 1, 1, 3, 2, 5, 0, 7)), "tiny_counts.csv")

rate_case <- function(name, data, csv, outcome, group, model, exposure = NULL,
                      covariates = character(0), control = NULL, conf_level = 0.95) {
    d <- complete(ds[[data]], c(outcome, group, exposure, covariates))
    lv <- levels_of(d[[group]])
    if (!is.null(control)) lv <- c(control, setdiff(lv, control))
    d$.g <- factor(d[[group]], levels = lv)
    rhs <- paste(c(".g", if (length(covariates)) paste0("`", covariates, "`")), collapse = " + ")
    f <- as.formula(paste0("`", outcome, "` ~ ", rhs,
                           if (!is.null(exposure)) paste0(" + offset(log(`", exposure, "`))")))
    fit <- if (model == "poisson") glm(f, family = poisson, data = d) else glm.nb(f, data = d)
    sm <- summary(fit)$coefficients
    zc <- qnorm(1 - (1 - conf_level) / 2)
    names_r <- c("(Intercept)", paste0(group, lv[-1]), covariates)
    coefs <- lapply(seq_len(nrow(sm)), function(k) {
        b <- sm[k, 1]; se <- sm[k, 2]
        list(name = names_r[k], coef = b, se = se, z = b / se, p = p2(b / se),
             rate_ratio = exp(b), lower = exp(b - zc * se), upper = exp(b + zc * se))
    })
    expected <- list(n_dropped = nrow(ds[[data]]) - nrow(d), reference = lv[1], model = model,
                     n = nrow(d), coefficients = coefs)
    if (model == "poisson") {
        expected$deviance <- fit$deviance
        expected$two_loglik <- 2 * as.numeric(logLik(fit))
        expected$aic <- AIC(fit)
    } else {
        expected$theta <- fit$theta
        expected$theta_se <- fit$SE.theta
        expected$two_loglik <- fit$twologlik
        expected$aic <- fit$aic
    }
    args <- c("rate", "--csv", csv, "--outcome", outcome, "--group", group, "--model", model,
              if (!is.null(exposure)) c("--exposure", exposure),
              if (length(covariates)) c("--covariates", paste(covariates, collapse = ",")),
              if (!is.null(control)) c("--control", control), "--conf-level", conf_level)
    add("rate", list(name = name, args = I(args), expected = expected))
}
rate_case("quine_negbin", "quine", "quine.csv", "Days", "Eth", "negbin")
rate_case("quine_negbin_adjusted", "quine", "quine.csv", "Days", "Eth", "negbin",
          covariates = c("female", "slow"), control = "N")
rate_case("quine_poisson", "quine", "quine.csv", "Days", "Eth", "poisson",
          covariates = c("female"))
rate_case("bladder_negbin_exposure", "bladder_counts", "bladder_counts.csv", "recurrences",
          "arm", "negbin", exposure = "followup", covariates = c("number", "size"))
rate_case("bladder_poisson_exposure", "bladder_counts", "bladder_counts.csv", "recurrences",
          "arm", "poisson", exposure = "followup")
rate_case("admissions_negbin", "admissions", "admissions.csv", "admissions", "arm", "negbin",
          exposure = "years", covariates = "age", control = "control", conf_level = 0.9)
rate_case("tiny_poisson", "tiny_counts", "tiny_counts.csv", "y", "arm", "poisson")
rate_case("tiny_negbin", "tiny_counts", "tiny_counts.csv", "y", "arm", "negbin")

# ---------------------------------------------------------------------------------------------
# Continuous: lm (ANCOVA) and t.test (Welch).
an <- MASS::anorexia
an$Treat <- as.character(an$Treat)
ds$anorexia <- export(an, "anorexia.csv")
set.seed(5)
n <- 300
trial <- data.frame(arm = sample(c("usual", "new"), n, replace = TRUE),
                    centre = sample(c("north", "south", "east"), n, replace = TRUE),
                    sex = sample(c("F", "M"), n, replace = TRUE),
                    baseline = round(rnorm(n, 50, 10), 1))
trial$score <- round(10 + 0.6 * trial$baseline + 3 * (trial$arm == "new") +
                     2 * (trial$centre == "south") + rnorm(n, 0, 8), 1)
trial$score[c(3, 40)] <- NA
ds$prom <- export(trial, "prom.csv")
ds$sleep <- export(data.frame(extra = datasets::sleep$extra,
                              group = paste0("drug", datasets::sleep$group)), "sleep.csv")

ancova_case <- function(name, data, csv, outcome, group, covariates = character(0),
                        strata = character(0), control = NULL, conf_level = 0.95) {
    d <- complete(ds[[data]], c(outcome, group, covariates, strata))
    lv <- levels_of(d[[group]])
    if (!is.null(control)) lv <- c(control, setdiff(lv, control))
    d$.g <- factor(d[[group]], levels = lv)
    for (s in strata) d[[s]] <- factor(d[[s]], levels = levels_of(d[[s]]))
    adj <- c(covariates, strata)
    rhs <- paste(c(".g", if (length(adj)) paste0("`", adj, "`")), collapse = " + ")
    fit <- lm(as.formula(paste0("`", outcome, "` ~ ", rhs)), data = d)
    sm <- summary(fit)$coefficients
    ci <- confint(fit, level = conf_level)
    df <- fit$df.residual
    diffs <- lapply(seq_along(lv)[-1], function(i) {
        k <- i   # row i of the table: the intercept is row 1
        list(group = lv[i], reference = lv[1], difference = sm[k, 1], se = sm[k, 2],
             t = sm[k, 3], df = df, p = sm[k, 4], lower = ci[k, 1], upper = ci[k, 2])
    })
    adj_rows <- seq_len(nrow(sm))[-seq_along(lv)]
    adj_names <- c(covariates, unlist(lapply(strata, function(s)
        paste0(s, levels(d[[s]])[-1]))))
    adjustments <- lapply(seq_along(adj_rows), function(j) {
        k <- adj_rows[j]
        list(name = adj_names[j], coef = sm[k, 1], se = sm[k, 2], t = sm[k, 3], p = sm[k, 4])
    })
    args <- c("ancova", "--csv", csv, "--outcome", outcome, "--group", group,
              if (length(covariates)) c("--covariates", paste(covariates, collapse = ",")),
              if (length(strata)) c("--strata", paste(strata, collapse = ",")),
              if (!is.null(control)) c("--control", control), "--conf-level", conf_level)
    add("ancova", list(name = name, args = I(args),
        expected = list(n_dropped = nrow(ds[[data]]) - nrow(d), n = nrow(d), df = df,
                        sigma = summary(fit)$sigma, differences = diffs,
                        adjustments = adjustments)))
}
ancova_case("anorexia", "anorexia", "anorexia.csv", "Postwt", "Treat", "Prewt", control = "Cont")
ancova_case("anorexia_unadjusted_90", "anorexia", "anorexia.csv", "Postwt", "Treat",
            control = "Cont", conf_level = 0.9)
ancova_case("prom_strata", "prom", "prom.csv", "score", "arm", "baseline",
            c("centre", "sex"), control = "usual")

ttest_case <- function(name, data, csv, outcome, group, control, conf_level = 0.95) {
    d <- complete(ds[[data]], c(outcome, group))
    lv <- levels_of(d[[group]])
    other <- setdiff(lv, control)
    x <- d[[outcome]][d[[group]] == other]
    y <- d[[outcome]][d[[group]] == control]
    t <- t.test(x, y, conf.level = conf_level)
    args <- c("ttest", "--csv", csv, "--outcome", outcome, "--group", group,
              "--control", control, "--conf-level", conf_level)
    add("ttest", list(name = name, args = I(args),
        expected = list(n_dropped = nrow(ds[[data]]) - nrow(d), n = length(x),
                        n_reference = length(y), mean = unname(t$estimate[1]),
                        mean_reference = unname(t$estimate[2]), group = other,
                        reference = control, difference = unname(t$estimate[1] - t$estimate[2]),
                        se = t$stderr, t = unname(t$statistic), df = unname(t$parameter),
                        p = t$p.value, lower = t$conf.int[1], upper = t$conf.int[2])))
}
ttest_case("sleep", "sleep", "sleep.csv", "extra", "group", "drug1")
ttest_case("anorexia_ft", "prom", "prom.csv", "score", "arm", "usual", conf_level = 0.99)

# ---------------------------------------------------------------------------------------------
# Stratified binary: mantelhaen.test (and exact = TRUE), fisher.test for one table; the
# Mantel-Haenszel risk ratio and difference with Greenland-Robins (1985) variances, written out
# (no R package computes them by these formulas).
ucb <- as.data.frame(datasets::UCBAdmissions)
rows <- ucb[rep(seq_len(nrow(ucb)), ucb$Freq), c("Admit", "Gender", "Dept")]
rows$admitted <- as.integer(rows$Admit == "Admitted")
rows$gender <- as.character(rows$Gender)
rows$dept <- as.character(rows$Dept)
ds$ucb <- export(rows[, c("gender", "dept", "admitted")], "ucb_admissions.csv")
set.seed(31)
n <- 500
bt <- data.frame(arm = sample(c("control", "treated"), n, replace = TRUE),
                 site = sample(c("s1", "s2", "s3", "s4"), n, replace = TRUE,
                               prob = c(0.4, 0.3, 0.2, 0.1)))
bt$death <- rbinom(n, 1, ifelse(bt$arm == "treated", 0.12, 0.2) *
                   ifelse(bt$site == "s4", 2, 1))
ds$deaths <- export(bt, "deaths.csv")
ds$small_table <- export(data.frame(arm = c(rep("a", 9), rep("b", 9)),
                                    y = c(1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0)),
                         "small_table.csv")

mh_case <- function(name, data, csv, outcome, group, control, strata = NULL, conf_level = 0.95) {
    d <- complete(ds[[data]], c(outcome, group, strata))
    other <- setdiff(levels_of(d[[group]]), control)
    sl <- if (is.null(strata)) "all" else levels_of(d[[strata]])
    sv <- if (is.null(strata)) rep("all", nrow(d)) else d[[strata]]
    x <- array(0, c(2, 2, length(sl)))
    for (k in seq_along(sl)) {
        in_k <- sv == sl[k]
        tr <- d[[group]] == other
        x[1, 1, k] <- sum(in_k & tr & d[[outcome]] == 1)
        x[1, 2, k] <- sum(in_k & tr & d[[outcome]] == 0)
        x[2, 1, k] <- sum(in_k & !tr & d[[outcome]] == 1)
        x[2, 2, k] <- sum(in_k & !tr & d[[outcome]] == 0)
    }
    a <- x[1, 1, ]; b <- x[1, 2, ]; c <- x[2, 1, ]; dd <- x[2, 2, ]
    n1 <- a + b; n0 <- c + dd; t <- n1 + n0
    z <- qnorm(1 - (1 - conf_level) / 2)
    rr <- sum(a * n0 / t) / sum(c * n1 / t)
    rr_sd <- sqrt(sum((n1 * n0 * (a + c) - a * c * t) / t^2) / (sum(a * n0 / t) * sum(c * n1 / t)))
    w <- n1 * n0 / t
    rd <- sum((a * n0 - c * n1) / t) / sum(w)
    rd_sd <- sqrt(sum(w^2 * (a * b / (n1^2 * (n1 - 1)) + c * dd / (n0^2 * (n0 - 1))))) / sum(w)
    if (length(sl) > 1) {
        m <- mantelhaen.test(x, conf.level = conf_level)
        e <- mantelhaen.test(x, exact = TRUE, conf.level = conf_level)
        or <- list(estimate = unname(m$estimate), lower = m$conf.int[1], upper = m$conf.int[2])
        cmh <- list(cmh_chisq = unname(m$statistic), cmh_p = m$p.value)
    } else {
        e <- fisher.test(x[, , 1], conf.level = conf_level)
        s_diag <- a * dd / t; s_offd <- b * c / t
        or <- list(estimate = s_diag / s_offd)
        cmh <- list()
    }
    tables <- lapply(seq_along(sl), function(k)
        list(stratum = if (is.null(strata)) NULL else sl[k], a = a[k], n1 = n1[k], c = c[k],
             n0 = n0[k]))
    args <- c("mh", "--csv", csv, "--outcome", outcome, "--group", group, "--control", control,
              if (!is.null(strata)) c("--strata", strata), "--conf-level", conf_level)
    add("mh", list(name = name, args = I(args),
        expected = c(list(n_dropped = nrow(ds[[data]]) - nrow(d), group = other,
                          reference = control, tables = tables, strata = length(sl),
                          odds_ratio = or,
                          risk_ratio = list(estimate = rr, lower = exp(log(rr) - z * rr_sd),
                                            upper = exp(log(rr) + z * rr_sd)),
                          risk_difference = list(estimate = rd, lower = rd - z * rd_sd,
                                                 upper = rd + z * rd_sd),
                          exact_odds_ratio = list(estimate = unname(e$estimate),
                                                  lower = e$conf.int[1], upper = e$conf.int[2]),
                          exact_p = e$p.value), cmh)))
}
mh_case("ucb_admissions", "ucb", "ucb_admissions.csv", "admitted", "gender", "Male", "dept")
mh_case("deaths_by_site", "deaths", "deaths.csv", "death", "arm", "control", "site")
mh_case("deaths_90", "deaths", "deaths.csv", "death", "arm", "control", "site", conf_level = 0.9)
mh_case("small_single_table", "small_table", "small_table.csv", "y", "arm", "b")

# ---------------------------------------------------------------------------------------------
golden <- list(r_version = R.version.string,
               survival_version = as.character(packageVersion("survival")),
               cmprsk_version = as.character(packageVersion("cmprsk")),
               mass_version = as.character(packageVersion("MASS")),
               cases = cases)
writeLines(to_json(golden), file.path(out_dir, "golden.json"))
cat("wrote", file.path(out_dir, "golden.json"), "\n")
