//! Quality measures against independent derivations: a brute-force enumeration of every
//! two-arm sequence (written here from the procedures' textbook definitions, not from the
//! code under test) and closed forms, to [`EXACT_TOLERANCE`].

use super::*;
use crate::randomise::{MasterSeed, MinimisationFactor, Scheme};

const EXACT_TOLERANCE: f64 = 1e-9;

/// Metrics of one procedure by enumerating all 2^N sequences.
#[derive(Debug, Default)]
struct Enumerated {
    final_abs: f64,
    max_abs: f64,
    loss: f64,
    guess_rate: f64,
}

/// `p_first(history)` is the probability that the next allocation is arm A (index 0).
fn enumerate(n: usize, p_first: &dyn Fn(&[usize]) -> f64) -> Enumerated {
    fn walk(
        n: usize,
        p_first: &dyn Fn(&[usize]) -> f64,
        history: &mut Vec<usize>,
        probability: f64,
        max_abs: i64,
        correct: f64,
        out: &mut Enumerated,
    ) {
        let a = history.iter().filter(|&&x| x == 0).count() as i64;
        let d = 2 * a - history.len() as i64;
        if history.len() == n {
            let nf = n as f64;
            out.final_abs += probability * d.abs() as f64;
            out.max_abs += probability * max_abs as f64;
            out.loss += probability * (d * d) as f64 / nf;
            out.guess_rate += probability * correct / nf;
            return;
        }
        let pa = p_first(history);
        for (arm, q) in [(0usize, pa), (1usize, 1.0 - pa)] {
            if q == 0.0 {
                continue;
            }
            // Guess the arm with fewer so far; a coin on ties.
            let hit = match d.signum() {
                0 => 0.5,
                1 => f64::from(u8::from(arm == 1)),
                _ => f64::from(u8::from(arm == 0)),
            };
            let next_d = d + if arm == 0 { 1 } else { -1 };
            history.push(arm);
            walk(
                n,
                p_first,
                history,
                probability * q,
                max_abs.max(next_d.abs()),
                correct + hit,
                out,
            );
            history.pop();
        }
    }
    let mut out = Enumerated::default();
    walk(n, p_first, &mut Vec::new(), 1.0, 0, 0.0, &mut out);
    out
}

fn efron(p: f64) -> impl Fn(&[usize]) -> f64 {
    move |h: &[usize]| {
        let d: i64 = h.iter().map(|&x| if x == 0 { 1 } else { -1 }).sum();
        match d.signum() {
            0 => 0.5,
            1 => 1.0 - p,
            _ => p,
        }
    }
}

fn fixed_block(b: usize) -> impl Fn(&[usize]) -> f64 {
    move |h: &[usize]| {
        let start = h.len() - h.len() % b;
        let used = h.len() - start;
        let a_used = h[start..].iter().filter(|&&x| x == 0).count();
        (b / 2 - a_used) as f64 / (b - used) as f64
    }
}

fn big_stick(bound: i64) -> impl Fn(&[usize]) -> f64 {
    move |h: &[usize]| {
        let d: i64 = h.iter().map(|&x| if x == 0 { 1 } else { -1 }).sum();
        if d >= bound {
            0.0
        } else if d <= -bound {
            1.0
        } else {
            0.5
        }
    }
}

fn close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= EXACT_TOLERANCE,
        "{what}: got {got}, want {want}"
    );
}

fn compare(label: &str, scheme: &Scheme, n: usize, p_first: &dyn Fn(&[usize]) -> f64) {
    let q = assess_exact(scheme, n as u32).expect("exact is feasible");
    let e = enumerate(n, p_first);
    let at = |m: &str| format!("{label} N={n} {m}");
    close(&at("final"), q.mean_abs_final_imbalance, e.final_abs);
    close(&at("max"), q.mean_max_imbalance, e.max_abs);
    close(&at("loss"), q.mean_loss, e.loss);
    close(&at("guess"), q.correct_guess_rate, e.guess_rate);
}

#[test]
fn exact_matches_full_enumeration_up_to_20() {
    let simple = Scheme::new_simple(vec![1, 1]).unwrap();
    let efron_23 = Scheme::new_biased_coin(vec![1, 1], 2.0 / 3.0).unwrap();
    let block2 = Scheme::new_blocks(vec![1, 1], vec![2]).unwrap();
    let block4 = Scheme::new_blocks(vec![1, 1], vec![4]).unwrap();
    let stick = Scheme::new_big_stick(vec![1, 1], 3).unwrap();
    for n in (1..=14).chain([17, 20]) {
        compare("simple", &simple, n, &|_| 0.5);
        compare("efron 2/3", &efron_23, n, &efron(2.0 / 3.0));
        compare("block 2", &block2, n, &fixed_block(2));
        compare("block 4", &block4, n, &fixed_block(4));
        compare("big stick 3", &stick, n, &big_stick(3));
    }
}

fn binomial(n: u64, k: u64) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

#[test]
fn closed_forms() {
    let simple = Scheme::new_simple(vec![1, 1]).unwrap();
    let block2 = Scheme::new_blocks(vec![1, 1], vec![2]).unwrap();
    let block4 = Scheme::new_blocks(vec![1, 1], vec![4]).unwrap();
    for n in 1..=20u32 {
        let q = assess_exact(&simple, n).unwrap();
        // E|S_n| = n C(n−1, ⌊(n−1)/2⌋) / 2^(n−1); E S_n² = n; any guess is right half the time.
        let m = u64::from(n - 1);
        let e_abs = f64::from(n) * binomial(m, m / 2) / 2f64.powi(n as i32 - 1);
        close("simple final", q.mean_abs_final_imbalance, e_abs);
        close("simple loss", q.mean_loss, 1.0);
        close("simple guess", q.correct_guess_rate, 0.5);

        let q = assess_exact(&block2, n).unwrap();
        close(
            "block 2 final",
            q.mean_abs_final_imbalance,
            f64::from(n % 2),
        );
        close("block 2 max", q.mean_max_imbalance, 1.0);
        if n % 2 == 0 {
            // Each block: the first guess is a coin, the second is certain.
            close("block 2 guess", q.correct_guess_rate, 0.75);
        }
        if n % 4 == 0 {
            // Slots of a block of 4: 1/2, 2/3, 2/3, 1.
            let q = assess_exact(&block4, n).unwrap();
            close("block 4 guess", q.correct_guess_rate, 17.0 / 24.0);
            close("block 4 final", q.mean_abs_final_imbalance, 0.0);
        }
    }
    // Block 4, N = 2: |D| = 2 with probability 1/3.
    let q = assess_exact(&block4, 2).unwrap();
    close("block 4 N=2 final", q.mean_abs_final_imbalance, 2.0 / 3.0);
    close("block 4 N=2 loss", q.mean_loss, 4.0 / 3.0 / 2.0);
}

#[test]
fn imbalance_definition_reduces_to_the_two_arm_difference() {
    assert_eq!(imbalance(&[7, 3], &[1, 1]), 4.0);
    assert_eq!(imbalance(&[4, 2], &[2, 1]), 0.0);
    assert_eq!(imbalance(&[2, 0, 1], &[1, 1, 1]), 2.0);
    assert_eq!(convergence_guess(&[2, 1], &[2, 1]), [0, 1]);
    assert_eq!(convergence_guess(&[3, 1, 1], &[1, 1, 1]), [1, 2]);
    assert_eq!(convergence_guess(&[1, 1], &[2, 1]), [0]);
}

#[test]
fn monte_carlo_agrees_with_exact_and_replays() {
    let seed = MasterSeed::from_passphrase("quality");
    for scheme in [
        Scheme::new_biased_coin(vec![1, 1], 2.0 / 3.0).unwrap(),
        Scheme::new_blocks(vec![1, 1], vec![2, 4, 6]).unwrap(),
        Scheme::new_urn(vec![1, 1, 1], 1, 1).unwrap(),
    ] {
        let exact = assess_exact(&scheme, 20).unwrap();
        let mc = assess_monte_carlo(&scheme, &[], &Population::default(), 20, 3000, &seed).unwrap();
        let again =
            assess_monte_carlo(&scheme, &[], &Population::default(), 20, 3000, &seed).unwrap();
        assert_eq!(mc, again);
        assert_eq!(mc.computation, "monte_carlo");
        // Standard errors here are below 0.03; allow about 4 of them.
        for (what, a, b) in [
            (
                "final",
                mc.mean_abs_final_imbalance,
                exact.mean_abs_final_imbalance,
            ),
            ("max", mc.mean_max_imbalance, exact.mean_max_imbalance),
            ("guess", mc.correct_guess_rate, exact.correct_guess_rate),
        ] {
            assert!(
                (a - b).abs() < 0.12,
                "{} {what}: mc {a} exact {b}",
                scheme.procedure()
            );
        }
    }
}

#[test]
fn minimisation_reports_marginal_imbalance_and_beats_simple_on_it() {
    let seed = MasterSeed::from_passphrase("quality");
    let factors = ["site", "sex", "age_band"]
        .map(|name| MinimisationFactor {
            name: name.into(),
            weight: 1.0,
        })
        .to_vec();
    let minimisation = Scheme::new_minimisation(
        vec![1, 1],
        factors,
        crate::protocol::ImbalanceMeasure::Range,
        0.8,
        0,
    )
    .unwrap();
    assert!(assess_exact(&minimisation, 10).is_none());
    let population = Population::synthetic();
    let m = assess_monte_carlo(&minimisation, &[], &population, 100, 200, &seed).unwrap();
    let s = assess_monte_carlo(
        &Scheme::new_simple(vec![1, 1]).unwrap(),
        &[],
        &population,
        100,
        200,
        &seed,
    )
    .unwrap();
    assert_eq!(m.marginal_imbalance["sex"].len(), 2);
    assert_eq!(m.marginal_imbalance["site"].len(), 3);
    for (factor, levels) in &m.marginal_imbalance {
        for (level, d) in levels {
            let simple = s.marginal_imbalance[factor][level];
            assert!(
                *d < simple,
                "{factor}={level}: minimisation {d} vs simple {simple}"
            );
        }
    }
    assert!(m.mean_abs_final_imbalance < s.mean_abs_final_imbalance);
}

#[test]
fn stratified_blocks_are_more_predictable_within_strata() {
    let seed = MasterSeed::from_passphrase("quality");
    let scheme = Scheme::new_blocks(vec![1, 1], vec![4]).unwrap();
    let strata = vec!["site".to_string(), "sex".to_string()];
    let q = assess_monte_carlo(&scheme, &strata, &Population::synthetic(), 60, 300, &seed).unwrap();
    let within = q.within_strata.unwrap();
    assert!(within.correct_guess_rate > q.correct_guess_rate);
    assert!(within.mean_strata_used > 5.0 && within.mean_strata_used <= 6.0);
    assert_eq!(
        assess_monte_carlo(
            &scheme,
            &["nope".into()],
            &Population::synthetic(),
            5,
            1,
            &seed
        ),
        Err(QualityError::UnknownFactor("nope".into()))
    );
}

/// The allocation-free score equals its definition through `convergence_guess`.
#[test]
fn guess_score_is_one_over_the_guessed_set_when_the_arm_is_in_it() {
    for ratios in [vec![1, 1], vec![1, 2, 1], vec![2, 3, 1]] {
        let k = ratios.len();
        for code in 0..5u64.pow(k as u32) {
            let counts: Vec<u64> = (0..k).map(|a| code / 5u64.pow(a as u32) % 5).collect();
            let guess = convergence_guess(&counts, &ratios);
            for arm in 0..k {
                let expected = if guess.contains(&arm) {
                    1.0 / guess.len() as f64
                } else {
                    0.0
                };
                assert_eq!(
                    guess_score(&counts, &ratios, arm),
                    expected,
                    "{counts:?} {arm}"
                );
            }
        }
    }
}
