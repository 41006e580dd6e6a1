#!/usr/bin/env Rscript
# Golden values for rrct's statistics (src/stats), computed with R's `survival` package.
#
# Run from the repository root:   Rscript scripts/r/stats_golden.R
# Needs only base R and `survival` (Debian: r-base-core r-cran-survival).
#
# It writes the data sets it uses to tests/data/r/*.csv, reads them back (so R and rrct see the
# very same numbers), and writes tests/data/r/stats_golden.json: one case per analysis, each with
# the `rrct stats ...` arguments that reproduce it and the expected JSON, in the CLI's own keys.
# Numbers are printed with 17 significant digits; NA, NaN and Inf are written as null.
# tests/stats.rs runs every case through the CLI and compares at R_RELATIVE_TOLERANCE (1e-6).

suppressPackageStartupMessages(library(survival))
out_dir <- file.path("tests", "data", "r")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)

# ---------------------------------------------------------------------------------------------
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
    if (is.character(x) || is.factor(x)) {
        x <- as.character(x)
        return(if (is.na(x)) "null" else paste0('"', gsub('"', '\\\\"', x), '"'))
    }
    if (is.logical(x)) return(if (is.na(x)) "null" else if (x) "true" else "false")
    num(x)
}

# Write a data set, read it back as rrct will see it.
export <- function(df, name) {
    path <- file.path(out_dir, name)
    write.csv(df, path, row.names = FALSE, na = "")
    read.csv(path, na.strings = c("", "NA"), stringsAsFactors = FALSE, check.names = FALSE)
}

# Group levels in rrct's order: numeric columns numerically, text by bytes (C locale).
levels_of <- function(v) {
    u <- unique(v[!is.na(v)])
    if (is.numeric(u)) sort(u) else sort(u, method = "radix")
}

# Run an expression, collecting its warnings.
with_warnings <- function(expr) {
    ws <- character(0)
    value <- withCallingHandlers(expr, warning = function(w) {
        ws <<- c(ws, conditionMessage(w))
        invokeRestart("muffleWarning")
    })
    list(value = value, warnings = ws)
}

# ---------------------------------------------------------------------------------------------
# Data sets.
data_sets <- list()

# Therneau & Grambsch's 7-row example (survival's test1); one status is NA.
data_sets$tg7 <- export(data.frame(time = c(9, 3, 1, 1, 6, 6, 8),
                                   status = c(1, NA, 1, 0, 1, 1, 0),
                                   x = c(0, 2, 1, 1, 1, 0, 0)), "tg7.csv")
data_sets$lung <- export(survival::lung, "lung.csv")
aml <- survival::aml
aml$x <- as.character(aml$x)
aml$x_maintained <- as.integer(aml$x == "Maintained")
data_sets$aml <- export(aml, "aml.csv")
data_sets$veteran <- export(survival::veteran, "veteran.csv")
colon_death <- subset(survival::colon, etype == 2)
colon_death$rx <- as.character(colon_death$rx)
colon_death$rx_lev <- as.integer(colon_death$rx == "Lev")
colon_death$rx_lev5fu <- as.integer(colon_death$rx == "Lev+5FU")
# Lev+5FU against observation only; the Lev arm has no value and is dropped.
colon_death$trt <- ifelse(colon_death$rx == "Lev", NA,
                          as.integer(colon_death$rx == "Lev+5FU"))
data_sets$colon <- export(colon_death, "colon_death.csv")
rott <- survival::rotterdam
rott$size <- as.character(rott$size)
data_sets$rotterdam <- export(rott, "rotterdam.csv")

# Heavy ties: integer months 1..36, about 110 subjects per time, four centres.
set.seed(20240501)
n <- 4000
ties <- data.frame(centre = sample(c("A", "B", "C", "D"), n, replace = TRUE),
                   trt = rbinom(n, 1, 0.5),
                   age = round(rnorm(n, 65, 10), 1),
                   score = sample(0:4, n, replace = TRUE))
hazard <- 0.05 * exp(-0.3 * ties$trt + 0.02 * (ties$age - 65) + 0.1 * ties$score)
t_event <- rexp(n, hazard)
t_cens <- runif(n, 5, 36)
ties$time <- ceiling(pmin(t_event, t_cens))
ties$status <- as.integer(t_event <= t_cens)
ties$trt_plus_score <- ties$trt + ties$score  # exactly collinear with trt and score
data_sets$ties <- export(ties, "ties.csv")

# Complete separation: every x = 1 dies before every x = 0 (an infinite coefficient).
data_sets$separation <- export(data.frame(time = 1:12,
                                          status = c(1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1),
                                          x = c(1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0),
                                          z = c(0.3, -1.2, 0.8, 1.5, -0.4, 0.1,
                                                2.2, -0.7, 0.9, -1.1, 0.05, 0.6)),
                               "separation.csv")

# Event coded 1/2 as in lung; R's Surv maps 2 to death when the maximum is 2.
event_of <- function(v) if (max(v, na.rm = TRUE) == 2) v - 1 else v

# ---------------------------------------------------------------------------------------------
# Kaplan-Meier: survfit + summary(times =) + print's median table.
km_case <- function(name, data, csv, time, event, group = NULL, conf_type = "log", at) {
    d <- data_sets[[data]]
    keep <- !is.na(d[[time]]) & !is.na(d[[event]])
    if (!is.null(group)) keep <- keep & !is.na(d[[group]])
    dd <- d[keep, ]
    y <- Surv(dd[[time]], event_of(dd[[event]]))
    if (is.null(group)) {
        fit <- survfit(y ~ 1, conf.type = conf_type)
        fits <- list(fit)
        labels <- list(NULL)
    } else {
        lv <- levels_of(dd[[group]])
        g <- factor(dd[[group]], levels = lv)
        fit <- survfit(y ~ g, conf.type = conf_type)
        fits <- lapply(seq_along(lv), function(i) fit[i])
        labels <- as.list(as.character(lv))
    }
    groups <- lapply(seq_along(fits), function(i) {
        f <- fits[[i]]
        tab <- summary(f)$table
        at_sorted <- sort(at)
        within <- at_sorted[at_sorted <= max(f$time)]
        s <- if (length(within)) summary(f, times = within) else NULL
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
              if (!is.null(group)) c("--group", group),
              "--conf-type", conf_type, "--at", paste(at, collapse = ","))
    list(name = name, args = I(args),
         expected = list(n_dropped = sum(!keep), groups = groups))
}

# ---------------------------------------------------------------------------------------------
# Log-rank: survdiff.
logrank_case <- function(name, data, csv, time, event, group, strata = NULL) {
    d <- data_sets[[data]]
    keep <- !is.na(d[[time]]) & !is.na(d[[event]]) & !is.na(d[[group]])
    if (!is.null(strata)) keep <- keep & !is.na(d[[strata]])
    dd <- d[keep, ]
    lv <- levels_of(dd[[group]])
    g <- factor(dd[[group]], levels = lv)
    y <- Surv(dd[[time]], event_of(dd[[event]]))
    sd <- if (is.null(strata)) survdiff(y ~ g) else survdiff(y ~ g + strata(dd[[strata]]))
    obs <- if (is.matrix(sd$obs)) rowSums(sd$obs) else sd$obs
    expd <- if (is.matrix(sd$exp)) rowSums(sd$exp) else sd$exp
    df <- sum(expd > 0) - 1
    groups <- lapply(seq_along(lv), function(i)
        list(group = as.character(lv[i]), n = as.vector(sd$n)[i], observed = obs[i],
             expected = expd[i]))
    args <- c("logrank", "--csv", csv, "--time", time, "--event", event, "--group", group,
              if (!is.null(strata)) c("--strata", strata))
    list(name = name, args = I(args),
         expected = list(n_dropped = sum(!keep), chisq = sd$chisq, df = df,
                         p = pchisq(sd$chisq, df, lower.tail = FALSE), groups = groups))
}

# ---------------------------------------------------------------------------------------------
# Cox: coxph.
test_of <- function(stat, df) list(chisq = stat, df = df, p = pchisq(stat, df, lower.tail = FALSE))
cox_case <- function(name, data, csv, time, event, covariates, strata = NULL, ties = "efron") {
    d <- data_sets[[data]]
    rhs <- paste0("`", covariates, "`", collapse = " + ")
    if (!is.null(strata)) rhs <- paste0(rhs, " + strata(`", strata, "`)")
    f <- as.formula(paste0("Surv(`", time, "`, `", event, "`) ~ ", rhs))
    r <- with_warnings(coxph(f, data = d, ties = ties))
    fit <- r$value
    b <- coef(fit)
    se <- sqrt(diag(fit$var))
    se[is.na(b)] <- NA
    z <- b / se
    zc <- qnorm(0.975)
    coefficients <- lapply(seq_along(b), function(i)
        list(name = covariates[i], coef = b[[i]], se = se[[i]], z = z[[i]],
             p = pchisq(z[[i]]^2, 1, lower.tail = FALSE), hr = exp(b[[i]]),
             hr_lower = exp(b[[i]] - zc * se[[i]]), hr_upper = exp(b[[i]] + zc * se[[i]])))
    df <- sum(!is.na(b))
    args <- c("cox", "--csv", csv, "--time", time, "--event", event,
              "--covariates", paste(covariates, collapse = ","),
              if (!is.null(strata)) c("--strata", strata), "--ties", ties)
    list(name = name, args = I(args), r_warnings = I(r$warnings),
         expected = list(n = fit$n, events = fit$nevent, n_dropped = nrow(d) - fit$n,
                         ties = ties, iterations = fit$iter, coefficients = coefficients,
                         loglik_null = fit$loglik[1], loglik = fit$loglik[2],
                         lr_test = test_of(2 * (fit$loglik[2] - fit$loglik[1]), df),
                         wald_test = test_of(fit$wald.test, df),
                         score_test = test_of(fit$score, df)))
}

# ---------------------------------------------------------------------------------------------
# RMST: print(survfit, rmean = tau), i.e. survmean.
rmst_case <- function(name, data, csv, time, event, group, tau) {
    d <- data_sets[[data]]
    keep <- !is.na(d[[time]]) & !is.na(d[[event]]) & !is.na(d[[group]])
    dd <- d[keep, ]
    lv <- levels_of(dd[[group]])
    g <- factor(dd[[group]], levels = lv)
    fit <- survfit(Surv(dd[[time]], event_of(dd[[event]])) ~ g)
    m <- survival:::survmean(fit, rmean = tau)$matrix
    zc <- qnorm(0.975)
    groups <- lapply(seq_along(lv), function(i)
        list(group = as.character(lv[i]), n = m[i, "records"], events = m[i, "events"],
             rmst = m[i, "rmean"], se = m[i, "se(rmean)"],
             lower = m[i, "rmean"] - zc * m[i, "se(rmean)"],
             upper = m[i, "rmean"] + zc * m[i, "se(rmean)"]))
    differences <- lapply(seq_along(lv)[-1], function(i) {
        est <- m[i, "rmean"] - m[1, "rmean"]
        se <- sqrt(m[i, "se(rmean)"]^2 + m[1, "se(rmean)"]^2)
        list(group = as.character(lv[i]), reference = as.character(lv[1]), difference = est,
             se = se, lower = est - zc * se, upper = est + zc * se,
             p = pchisq((est / se)^2, 1, lower.tail = FALSE))
    })
    args <- c("rmst", "--csv", csv, "--time", time, "--event", event, "--group", group,
              "--tau", format(tau, digits = 17))
    list(name = name, args = I(args),
         expected = list(n_dropped = sum(!keep), tau = tau, groups = groups,
                         differences = differences))
}

# ---------------------------------------------------------------------------------------------
# Subgroups: coxph within each level, and the interaction likelihood-ratio test.
subgroup_case <- function(name, data, csv, time, event, treatment, control, by,
                          strata = NULL, ties = "efron") {
    d <- data_sets[[data]]
    keep <- !is.na(d[[time]]) & !is.na(d[[event]]) & !is.na(d[[treatment]]) & !is.na(d[[by]])
    if (!is.null(strata)) keep <- keep & !is.na(d[[strata]])
    dd <- d[keep, ]
    dd$.trt <- as.integer(as.character(dd[[treatment]]) != as.character(control))
    dd$.by <- factor(dd[[by]], levels = levels_of(dd[[by]]))
    dd$.ev <- event_of(dd[[event]])
    dd$.t <- dd[[time]]
    st <- if (is.null(strata)) "" else paste0(" + strata(`", strata, "`)")
    effect <- function(sub) {
        fit <- coxph(as.formula(paste0("Surv(.t, .ev) ~ .trt", st)), data = sub, ties = ties)
        b <- coef(fit)[[1]]
        se <- sqrt(fit$var[1, 1])
        zc <- qnorm(0.975)
        list(n = fit$n, events = fit$nevent, coef = b, se = se, hr = exp(b),
             hr_lower = exp(b - zc * se), hr_upper = exp(b + zc * se),
             p = pchisq((b / se)^2, 1, lower.tail = FALSE))
    }
    subgroups <- lapply(levels(dd$.by), function(l)
        c(list(level = as.character(l)), effect(dd[dd$.by == l, ])))
    reduced <- coxph(as.formula(paste0("Surv(.t, .ev) ~ .trt + .by", st)), data = dd, ties = ties)
    full <- coxph(as.formula(paste0("Surv(.t, .ev) ~ .trt * .by", st)), data = dd, ties = ties)
    a <- anova(reduced, full)
    args <- c("subgroups", "--csv", csv, "--time", time, "--event", event,
              "--treatment", treatment, "--control", as.character(control), "--by", by,
              if (!is.null(strata)) c("--strata", strata), "--ties", ties)
    list(name = name, args = I(args),
         expected = list(n_dropped = sum(!keep), overall = effect(dd), subgroups = subgroups,
                         interaction = list(chisq = a[2, "Chisq"], df = a[2, "Df"],
                                            p = a[2, "Pr(>|Chi|)"])))
}

# ---------------------------------------------------------------------------------------------
# 2x2: Wald intervals by formula, chisq.test with and without Yates, fisher.test.
binary_case <- function(name, a, b, na, nb) {
    x <- matrix(c(a, b, na - a, nb - b), 2)
    zc <- qnorm(0.975)
    pa <- a / na; pb <- b / nb
    rr <- pa / pb; se_rr <- sqrt(1 / a - 1 / na + 1 / b - 1 / nb)
    rd <- pa - pb; se_rd <- sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
    or <- (a * (nb - b)) / (b * (na - a))
    se_or <- sqrt(1 / a + 1 / (na - a) + 1 / b + 1 / (nb - b))
    plain <- suppressWarnings(chisq.test(x, correct = FALSE))
    yates <- suppressWarnings(chisq.test(x, correct = TRUE))
    ok <- function(v) if (is.finite(v)) v else NA
    # A log-scale interval exists only for a positive finite ratio with a finite SE.
    ci <- function(est, se) {
        if (is.finite(est) && est > 0 && is.finite(se)) exp(log(est) + c(-1, 1) * zc * se)
        else c(NA, NA)
    }
    rr_ci <- ci(rr, se_rr)
    or_ci <- ci(or, se_or)
    list(name = name,
         args = I(c("binary", "--events", paste(a, b, sep = ","), "--n", paste(na, nb, sep = ","))),
         expected = list(rr = ok(rr), rr_lower = rr_ci[1], rr_upper = rr_ci[2],
                         rd = rd, rd_lower = rd - zc * se_rd, rd_upper = rd + zc * se_rd,
                         or = ok(or), or_lower = or_ci[1], or_upper = or_ci[2],
                         chisq = unname(plain$statistic), chisq_p = plain$p.value,
                         chisq_yates = unname(yates$statistic), chisq_yates_p = yates$p.value,
                         fisher_p = fisher.test(x)$p.value))
}

# ---------------------------------------------------------------------------------------------
cases <- list(
    km = list(
        km_case("tg7", "tg7", "tg7.csv", "time", "status", at = c(0, 1, 5, 6, 8, 9, 10)),
        km_case("lung by sex", "lung", "lung.csv", "time", "status", "sex",
                at = c(0, 100, 365, 500, 1000, 1022, 2000)),
        km_case("lung by sex, log-log", "lung", "lung.csv", "time", "status", "sex",
                "log-log", at = c(5, 100, 365, 730)),
        km_case("aml by x, log-log", "aml", "aml.csv", "time", "status", "x", "log-log",
                at = c(4, 5, 12, 24, 45, 48, 100)),
        km_case("aml by x, plain", "aml", "aml.csv", "time", "status", "x", "plain",
                at = c(5, 12, 24, 45, 48)),
        km_case("aml, no group", "aml", "aml.csv", "time", "status", at = c(10, 20, 30)),
        km_case("veteran by trt, plain", "veteran", "veteran.csv", "time", "status", "trt",
                "plain", at = c(30, 90, 180, 365, 999)),
        km_case("veteran by celltype", "veteran", "veteran.csv", "time", "status", "celltype",
                at = c(30, 90, 180)),
        km_case("colon by rx", "colon", "colon_death.csv", "time", "status", "rx",
                at = c(365, 1826, 3000)),
        km_case("rotterdam by hormon", "rotterdam", "rotterdam.csv", "dtime", "death",
                "hormon", at = c(1000, 2000, 3650, 7000)),
        km_case("ties by trt, log-log", "ties", "ties.csv", "time", "status", "trt", "log-log",
                at = c(1, 6, 12, 24, 36))),
    logrank = list(
        logrank_case("lung by sex", "lung", "lung.csv", "time", "status", "sex"),
        logrank_case("lung by ph.ecog (4 groups)", "lung", "lung.csv", "time", "status",
                     "ph.ecog"),
        logrank_case("lung by sex, strata inst", "lung", "lung.csv", "time", "status", "sex",
                     "inst"),
        logrank_case("aml by x", "aml", "aml.csv", "time", "status", "x"),
        logrank_case("veteran by celltype", "veteran", "veteran.csv", "time", "status",
                     "celltype"),
        logrank_case("veteran by trt, strata celltype", "veteran", "veteran.csv", "time",
                     "status", "trt", "celltype"),
        logrank_case("colon by rx, strata sex", "colon", "colon_death.csv", "time", "status",
                     "rx", "sex"),
        logrank_case("rotterdam by size (tiny p)", "rotterdam", "rotterdam.csv", "dtime",
                     "death", "size"),
        logrank_case("rotterdam by hormon, strata grade", "rotterdam", "rotterdam.csv", "dtime",
                     "death", "hormon", "grade"),
        logrank_case("ties by trt, strata centre", "ties", "ties.csv", "time", "status", "trt",
                     "centre")),
    cox = list(
        cox_case("tg7 breslow", "tg7", "tg7.csv", "time", "status", "x", ties = "breslow"),
        cox_case("tg7 efron", "tg7", "tg7.csv", "time", "status", "x", ties = "efron"),
        cox_case("lung age+sex+ph.ecog", "lung", "lung.csv", "time", "status",
                 c("age", "sex", "ph.ecog")),
        cox_case("lung age+sex+ph.ecog breslow", "lung", "lung.csv", "time", "status",
                 c("age", "sex", "ph.ecog"), ties = "breslow"),
        cox_case("lung strata sex", "lung", "lung.csv", "time", "status",
                 c("age", "ph.ecog", "wt.loss"), strata = "sex"),
        cox_case("aml x", "aml", "aml.csv", "time", "status", "x_maintained"),
        cox_case("veteran, strata celltype", "veteran", "veteran.csv", "time", "status",
                 c("trt", "karno", "diagtime", "age", "prior"), strata = "celltype"),
        cox_case("colon death", "colon", "colon_death.csv", "time", "status",
                 c("rx_lev", "rx_lev5fu", "age", "sex", "nodes", "obstruct")),
        cox_case("colon death breslow, strata extent", "colon", "colon_death.csv", "time",
                 "status", c("rx_lev", "rx_lev5fu", "age", "nodes"), strata = "extent",
                 ties = "breslow"),
        cox_case("rotterdam", "rotterdam", "rotterdam.csv", "dtime", "death",
                 c("hormon", "chemo", "age", "nodes", "pgr", "er", "meno")),
        cox_case("rotterdam strata grade", "rotterdam", "rotterdam.csv", "rtime", "recur",
                 c("hormon", "age", "nodes"), strata = "grade"),
        cox_case("heavy ties efron", "ties", "ties.csv", "time", "status",
                 c("trt", "age", "score")),
        cox_case("heavy ties breslow", "ties", "ties.csv", "time", "status",
                 c("trt", "age", "score"), ties = "breslow"),
        cox_case("heavy ties strata centre", "ties", "ties.csv", "time", "status",
                 c("trt", "age", "score"), strata = "centre"),
        cox_case("collinear", "ties", "ties.csv", "time", "status",
                 c("trt", "score", "trt_plus_score", "age")),
        cox_case("infinite coefficient", "separation", "separation.csv", "time", "status",
                 c("x", "z"))),
    rmst = list(
        rmst_case("lung by sex tau 365", "lung", "lung.csv", "time", "status", "sex", 365),
        rmst_case("lung by sex tau 1000", "lung", "lung.csv", "time", "status", "sex", 1000),
        rmst_case("aml by x tau 48", "aml", "aml.csv", "time", "status", "x", 48),
        rmst_case("veteran by celltype tau 200", "veteran", "veteran.csv", "time", "status",
                  "celltype", 200),
        rmst_case("ties by trt tau 24.5", "ties", "ties.csv", "time", "status", "trt", 24.5)),
    subgroups = list(
        subgroup_case("colon Lev+5FU vs Obs by node4", "colon", "colon_death.csv", "time",
                      "status", "trt", 0, "node4"),
        subgroup_case("colon Lev+5FU vs Obs by sex, strata extent", "colon", "colon_death.csv",
                      "time", "status", "trt", 0, "sex", strata = "extent"),
        subgroup_case("veteran trt by celltype", "veteran", "veteran.csv", "time", "status",
                      "trt", 1, "celltype"),
        subgroup_case("ties trt by centre breslow", "ties", "ties.csv", "time", "status", "trt",
                      0, "centre", ties = "breslow")),
    binary = list(
        binary_case("15/100 vs 30/100", 15, 30, 100, 100),
        binary_case("tea tasting 3/4 vs 1/4", 3, 1, 4, 4),
        binary_case("large 1200/5000 vs 1350/5000", 1200, 1350, 5000, 5000),
        binary_case("unequal 7/23 vs 2/31", 7, 2, 23, 31),
        binary_case("zero cell 0/20 vs 5/20", 0, 5, 20, 20),
        binary_case("tiny p 10/1000 vs 200/1000", 10, 200, 1000, 1000))
)

golden <- list(
    r_version = R.version.string,
    survival_version = as.character(packageVersion("survival")),
    cases = cases)
writeLines(to_json(golden), file.path(out_dir, "stats_golden.json"))
cat("wrote", file.path(out_dir, "stats_golden.json"), "\n")
