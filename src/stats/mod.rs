//! Survival and binary-endpoint statistics that reproduce R's `survival` package.
//!
//! This module owns the numbers a trial statistician reads in an analysis report: Kaplan–Meier
//! curves with Greenwood standard errors, medians and survival at chosen times ([`km`]), the
//! (stratified) log-rank test ([`logrank`]), Cox proportional hazards regression ([`cox`]),
//! restricted mean survival time ([`rmst`]), subgroup effects with the interaction test
//! ([`subgroups`]) and the 2×2 table of a binary endpoint ([`binary`]).
//!
//! Why it follows R so closely: statisticians check an engine against R before they trust it,
//! so every estimate, confidence interval and test statistic is computed the way R `survival`
//! 3.x computes it — the same tie handling (`aeqSurv`), the same Newton–Raphson path with step
//! halving and the same convergence rule as `coxfit6`, the same generalised inverse in
//! `survdiff`, the same confidence-interval transforms and median rule as `survfit` — and the
//! golden tests in `tests/stats.rs` hold them to [`R_RELATIVE_TOLERANCE`] of the values written
//! by `scripts/r/stats_golden.R`. Tail probabilities always come from survival functions
//! ([`dist`]), never from `1 - cdf`, so tiny p-values keep their digits.
//!
//! What it must never do: no I/O of any kind (no files, databases, network, clocks, threads or
//! global state) and no panics on data: callers pass plain slices and get a value or a
//! [`StatsError`]. That is what lets the simulation engine run the same code millions of times
//! and lets the CLI and the analysis service share it.

pub mod binary;
pub mod competing;
pub mod continuous;
pub mod cox;
pub mod dist;
pub mod finegray;
pub mod km;
mod linalg;
pub mod logrank;
pub mod mantel_haenszel;
pub mod normal;
pub mod rates;
pub mod rmst;
pub mod subgroups;
mod timeline;

pub use binary::{two_by_two, TwoByTwo};
pub use cox::{cox_ph, Covariate, CoxData, CoxFit, CoxOptions, Ties};
pub use km::{kaplan_meier, ConfType, KaplanMeier, KmOptions};
pub use logrank::{log_rank, LogRank};
pub use rmst::{rmst, RmstComparison};
pub use subgroups::{subgroup_analysis, SubgroupAnalysis};

/// Relative agreement with R that the golden tests demand (the issue's "sixth significant digit").
pub const R_RELATIVE_TOLERANCE: f64 = 1e-6;

/// Default confidence level for every interval (R's `conf.int = 0.95`).
pub const DEFAULT_CONF_LEVEL: f64 = 0.95;

/// R's `sqrt(.Machine$double.eps)`: the tolerance of `aeqSurv` (times this close are one time)
/// and of `survfit`'s median rule (a survival this close to 0.5 counts as equal to it).
pub const SQRT_DOUBLE_EPS: f64 = 1.490_116_119_384_765_6e-8;

/// Cox convergence: stop when `|1 - loglik_old / loglik_new| <= COX_EPS` (R's
/// `coxph.control(eps = 1e-9)`).
pub const COX_EPS: f64 = 1e-9;

/// Cox: most Newton–Raphson iterations (R's `coxph.control(iter.max = 20)`).
pub const COX_ITER_MAX: usize = 20;

/// Cox: a Cholesky pivot below this fraction of the largest diagonal marks a covariate as
/// redundant (R's `toler.chol = .Machine$double.eps^0.75`, exactly `2^-39`).
pub const COX_TOLER_CHOL: f64 = 1.818_989_403_545_856_5e-12;

/// Cox: a coefficient is flagged as possibly infinite when the next Newton step for it exceeds
/// both [`COX_EPS`] and this fraction of the coefficient (R's `toler.inf = sqrt(eps)`).
pub const COX_TOLER_INF: f64 = 3.162_277_660_168_379_5e-5;

/// Fisher's exact test: tables whose probability is at most the observed one times this
/// factor count as "as or more extreme" (R's `relErr <- 1 + 10^(-7)` in `fisher.test`).
pub const FISHER_RELATIVE_ERROR: f64 = 1.0 + 1e-7;

/// A test statistic with its degrees of freedom and upper-tail p-value.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ChiSquareTest {
    /// The statistic.
    pub chisq: f64,
    /// Degrees of freedom.
    pub df: usize,
    /// `P(X > chisq)` for a chi-square with `df` degrees of freedom.
    pub p: f64,
}

impl ChiSquareTest {
    /// The statistic with its p-value from [`dist::chisq_sf`].
    ///
    /// ```
    /// let t = rrct::stats::ChiSquareTest::new(3.841458820694124, 1);
    /// assert!((t.p - 0.05).abs() < 1e-15);
    /// ```
    pub fn new(chisq: f64, df: usize) -> Self {
        Self {
            chisq,
            df,
            p: dist::chisq_sf(chisq, df as f64),
        }
    }
}

/// Why a statistic could not be computed. Each variant is something the caller can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// Two inputs that must describe the same observations have different lengths.
    #[error("{what} has {found} values but there are {expected} observations")]
    LengthMismatch {
        what: String,
        expected: usize,
        found: usize,
    },
    /// Nothing to analyse.
    #[error("no observations")]
    NoObservations,
    /// A follow-up time that is negative, infinite or NaN (0-based observation index).
    #[error("observation {index}: time {value} is not a finite number >= 0")]
    InvalidTime { index: usize, value: f64 },
    /// A covariate value that is infinite or NaN (0-based observation index).
    #[error("observation {index}: covariate `{name}` is {value}, not a finite number")]
    InvalidCovariate {
        name: String,
        index: usize,
        value: f64,
    },
    /// A group or stratum code outside `0..count`.
    #[error("observation {index}: {what} code {code} is not below the number of levels {levels}")]
    InvalidCode {
        what: String,
        index: usize,
        code: usize,
        levels: usize,
    },
    /// A comparison needs at least two groups with observations.
    #[error("{what} needs at least 2 groups, found {found}")]
    TooFewGroups { what: String, found: usize },
    /// A model or test that needs events got none.
    #[error("{0}: there are no events")]
    NoEvents(String),
    /// A model without covariates.
    #[error("the Cox model needs at least one covariate")]
    NoCovariates,
    /// The log-rank variance matrix cannot be inverted (R: "system is computationally singular").
    #[error("the variance matrix of observed minus expected is singular")]
    SingularVariance,
    /// Counts that cannot form a 2×2 table.
    #[error("invalid 2x2 table: {0}")]
    InvalidTable(String),
    /// An argument outside its domain (confidence level, tau, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}
