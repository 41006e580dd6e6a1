//! Newton–Raphson for the Cox partial likelihood, step for step as R's `coxfit6`.
//!
//! Matching R's iteration path (start at 0, the same step halving, the same stopping rule
//! `|1 - loglik_old / loglik_new| <= eps` and the same `cholesky2` tolerance) is what makes the
//! estimates agree with R to rounding error rather than merely to the convergence tolerance.

use super::risk_sets::{Derivatives, PartialLikelihood};
use super::Ties;
use crate::stats::linalg::{chinv2, cholesky2, chsolve2, Square};

/// What the iteration produced, on the scale of the (centred, scaled) covariates it ran on.
#[derive(Debug, Clone)]
pub(crate) struct Newton {
    pub beta: Vec<f64>,
    /// Score at `beta`.
    pub u: Vec<f64>,
    /// Inverse information at `beta` (generalised: zero rows for redundant columns).
    pub var: Square,
    pub loglik_null: f64,
    pub loglik: f64,
    /// Score test at the start.
    pub score_test: f64,
    pub iterations: usize,
    pub converged: bool,
    /// Rank of the final information (negated when not non-negative definite).
    pub rank: i64,
}

/// The options of the iteration (see [`crate::stats::CoxOptions`]).
pub(crate) struct Settings {
    pub ties: Ties,
    pub max_iter: usize,
    pub eps: f64,
    pub toler_chol: f64,
}

fn factor(d: &Derivatives, p: usize, toler: f64) -> (Square, i64) {
    let mut m = Square {
        n: p,
        a: d.imat.clone(),
    };
    let rank = cholesky2(&mut m, toler);
    (m, rank)
}

fn all_finite(d: &Derivatives) -> bool {
    d.loglik.is_finite()
        && d.u.iter().all(|v| v.is_finite())
        && d.imat.iter().all(|v| v.is_finite())
}

/// Runs `coxfit6`'s Newton–Raphson from 0 on the prepared risk sets.
pub(crate) fn iterate(rs: &impl PartialLikelihood, s: &Settings) -> Newton {
    let p = rs.p();
    let mut d = Derivatives {
        loglik: 0.0,
        u: vec![0.0; p],
        imat: vec![0.0; p * p],
    };
    let mut beta = vec![0.0f64; p];
    rs.evaluate(&beta, s.ties, &mut d);
    let loglik_null = d.loglik;
    let (chol, mut rank) = factor(&d, p, s.toler_chol);
    let mut step = d.u.clone();
    chsolve2(&chol, &mut step);
    let score_test: f64 = d.u.iter().zip(&step).map(|(a, b)| a * b).sum();

    let finish = |chol: Square, beta: Vec<f64>, d: &Derivatives| {
        let mut var = chol;
        chinv2(&mut var);
        (beta, d.u.clone(), var)
    };

    if s.max_iter == 0 || !loglik_null.is_finite() {
        let (beta, u, var) = finish(chol, beta, &d);
        return Newton {
            beta,
            u,
            var,
            loglik_null,
            loglik: loglik_null,
            score_test,
            iterations: 0,
            converged: s.max_iter == 0,
            rank,
        };
    }

    let mut best = loglik_null;
    let mut new_beta: Vec<f64> = beta.iter().zip(&step).map(|(b, a)| b + a).collect();
    let mut halving = 0u32;
    for iter in 1..=s.max_iter {
        rs.evaluate(&new_beta, s.ties, &mut d);
        let (chol, r) = factor(&d, p, s.toler_chol);
        rank = r;
        let finite = all_finite(&d);
        if finite && (1.0 - best / d.loglik).abs() <= s.eps {
            let (beta, u, var) = finish(chol, new_beta, &d);
            return Newton {
                beta,
                u,
                var,
                loglik_null,
                loglik: d.loglik,
                score_test,
                iterations: iter,
                converged: true,
                rank,
            };
        }
        if !finite || d.loglik < best {
            // Not improving: move back toward the last good point, more so each time.
            halving += 1;
            let h = f64::from(halving);
            for (nb, b) in new_beta.iter_mut().zip(&beta) {
                *nb = (*nb + h * b) / (h + 1.0);
            }
        } else {
            halving = 0;
            best = d.loglik;
            let mut u = d.u.clone();
            chsolve2(&chol, &mut u);
            beta.clone_from(&new_beta);
            for (nb, ui) in new_beta.iter_mut().zip(&u) {
                *nb += ui;
            }
        }
    }
    // Out of iterations: report the last good point. (R inverts an unfactored matrix here,
    // which amounts to 1 / diagonal; the proper inverse is given instead, with the warning.)
    rs.evaluate(&beta, s.ties, &mut d);
    let (chol, r) = factor(&d, p, s.toler_chol);
    let (beta, u, var) = finish(chol, beta, &d);
    Newton {
        beta,
        u,
        var,
        loglik_null,
        loglik: d.loglik,
        score_test,
        iterations: s.max_iter,
        converged: false,
        rank: r,
    }
}
