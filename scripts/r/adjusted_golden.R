#!/usr/bin/env Rscript
# Golden values for the covariate-adjusted comparisons `rrct analyse` makes when a protocol's
# `[analysis]` names baseline covariates (src/analysis/adjusted_golden_tests.rs): ANCOVA of a
# continuous endpoint, the Cox model of a time-to-event endpoint and the negative binomial and
# Poisson models of a count endpoint, each with the arm, a numeric covariate (age, a linear
# term) and two categorical ones (sex; NYHA class, three levels) — as R's `lm`, `coxph`,
# `MASS::glm.nb` and `glm` fit them on the complete cases.
#
# Run from the repository root:   Rscript scripts/r/adjusted_golden.R
# Needs R with survival and MASS (Debian: r-cran-survival r-cran-mass).
#
# Writes tests/data/r/adjusted/trial.csv (one row per randomised subject: arm, baseline fields,
# the three endpoints' outcomes; an empty cell is a value not sent or not measured) and
# tests/data/r/adjusted/golden.json (17 significant digits). The test builds the endpoint rows
# and the enrolment fields from the CSV and compares every value at 1e-6 (p-values 1e-5).

suppressPackageStartupMessages({
    library(survival)
    library(MASS)
})
out_dir <- file.path("tests", "data", "r", "adjusted")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
num <- function(x) if (is.na(x) || !is.finite(x)) "null" else sprintf("%.17g", as.double(x))
obj <- function(...) {
    x <- list(...)
    paste0("{", paste0('"', names(x), '":', unlist(x), collapse = ","), "}")
}

set.seed(17)
n <- 90
arm <- rep(c("active", "usual_care"), length.out = n)
active <- as.integer(arm == "active")
age <- sample(45:88, n, replace = TRUE)
sex <- sample(c("F", "M"), n, replace = TRUE, prob = c(0.35, 0.65))
nyha <- sample(c("II", "III", "IV"), n, replace = TRUE, prob = c(0.5, 0.35, 0.15))
# Two subjects whose register sent no age (the field is then left out of the enrolment) and
# one without an NYHA class: the adjusted analyses leave all three out.
age[c(7, 40)] <- NA
nyha[23] <- NA
lin <- 0.03 * (ifelse(is.na(age), 70, age) - 70) + 0.4 * (sex == "M") +
    c(II = 0, III = 0.5, IV = 1.1)[ifelse(is.na(nyha), "II", nyha)] - 0.35 * active
# Continuous: NT-proBNP at 6 months; a few not measured.
value <- round(1100 + 350 * lin + rnorm(n, 0, 220), 1)
value[c(5, 61)] <- NA
# Time to event in whole days, with ties, censored at the end of follow-up (day 400).
t_event <- ceiling(rexp(n, exp(lin) / 500))
time_days <- pmin(t_event, 400)
event <- as.integer(t_event <= 400)
# Counts over the days observed (some subjects followed less than the year).
days_observed <- ifelse(runif(n) < 0.2, sample(120:365, n, replace = TRUE), 366)
count <- rnbinom(n, mu = exp(lin) * 1.2 * days_observed / 365.25, size = 1.6)

d <- data.frame(record = sprintf("R%03d", seq_len(n)), arm, age, sex, nyha_class = nyha,
                value, time_days, event, days_observed, count)
path <- file.path(out_dir, "trial.csv")
write.csv(d, path, row.names = FALSE, na = "")
d <- read.csv(path, na.strings = "", stringsAsFactors = FALSE)
d$arm <- factor(d$arm, levels = c("usual_care", "active"))
cc <- d[complete.cases(d[, c("age", "sex", "nyha_class")]), ]
p2 <- function(z) 2 * pnorm(-abs(z))

# ANCOVA: the difference in means of the arm, t interval.
fit_lm <- lm(value ~ arm + age + sex + nyha_class, data = cc)
s <- summary(fit_lm)$coefficients["armactive", ]
ci <- confint(fit_lm)["armactive", ]
ancova <- obj(subjects = num(nobs(fit_lm)), difference = num(s[1]), se = num(s[2]),
              t = num(s[3]), df = num(fit_lm$df.residual), p = num(s[4]),
              lower = num(ci[1]), upper = num(ci[2]))

# Cox, Efron ties: the hazard ratio of the arm.
fit_cox <- coxph(Surv(time_days, event) ~ arm + age + sex + nyha_class, data = cc,
                 ties = "efron")
s <- summary(fit_cox)$coefficients["armactive", ]
ci <- summary(fit_cox)$conf.int["armactive", ]
cox <- obj(subjects = num(fit_cox$n), events = num(fit_cox$nevent), coef = num(s[1]),
           hr = num(s[2]), se = num(s[3]), z = num(s[4]), p = num(p2(s[4])),
           lower = num(ci[3]), upper = num(ci[4]))

# Counts: log years observed as offset; Wald intervals (confint.default).
rate_of <- function(fit) {
    s <- summary(fit)$coefficients["armactive", ]
    ci <- confint.default(fit)["armactive", ]
    list(coef = num(s[1]), se = num(s[2]), z = num(s[3]), p = num(p2(s[3])),
         rate_ratio = num(exp(s[1])), lower = num(exp(ci[1])), upper = num(exp(ci[2])))
}
cc$years <- cc$days_observed / 365.25
fit_nb <- glm.nb(count ~ arm + age + sex + nyha_class + offset(log(years)), data = cc)
fit_pois <- glm(count ~ arm + age + sex + nyha_class + offset(log(years)), data = cc,
                family = poisson)
negbin <- do.call(obj, c(list(subjects = num(nobs(fit_nb)), theta = num(fit_nb$theta)),
                         rate_of(fit_nb)))
poisson <- do.call(obj, c(list(subjects = num(nobs(fit_pois))), rate_of(fit_pois)))

json <- obj(
    note = '"scripts/r/adjusted_golden.R: value ~ arm + age + sex + nyha_class on complete cases"',
    left_out = num(n - nrow(cc)),
    ancova = ancova, cox = cox, negbin = negbin, poisson = poisson
)
writeLines(json, file.path(out_dir, "golden.json"))
cat("wrote", file.path(out_dir, "golden.json"), "\n")
