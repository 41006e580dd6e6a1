//! The adaptive procedures and the modifiers: balance, bounds, eligibility, clusters,
//! reproducibility and the audit detail.

use super::*;
use crate::randomise::minimisation::spread;

fn factor(name: &str) -> MinimisationFactor {
    MinimisationFactor {
        name: name.into(),
        weight: 1.0,
    }
}

/// Minimisation over 3 factors of 2, 3 and 2 levels, 3 arms.
fn minimisation(ratios: Vec<u32>, p: f64) -> Scheme {
    Scheme::new_minimisation(
        ratios,
        vec![factor("a"), factor("b"), factor("c")],
        ImbalanceMeasure::Range,
        p,
        0,
    )
    .unwrap()
}

const LEVELS: [usize; 3] = [2, 3, 2];

/// A trial of `n` patients in one stratum `all`, with covariates from their own stream and
/// eligibility from `eligible(i)`. Returns the decisions and each patient's levels.
fn trial(
    scheme: &Scheme,
    seed: &MasterSeed,
    n: usize,
    eligible: impl Fn(usize) -> Option<Vec<bool>>,
) -> (Vec<Decision>, Vec<Vec<usize>>) {
    let k = scheme.ratios().len();
    let mut state = StratumState::default();
    let mut counts = vec![0u64; k];
    let mut marginals: Vec<Vec<Vec<u64>>> = LEVELS.iter().map(|&l| vec![vec![0; k]; l]).collect();
    let mut decisions = Vec::new();
    let mut patients = Vec::new();
    for i in 0..n {
        let mut rng = tagged_stream(seed, "test-covariates", "trial", "all", i as u64);
        let levels: Vec<usize> = LEVELS
            .iter()
            .map(|&l| uniform_below(&mut rng, l as u64) as usize)
            .collect();
        let ctx = AllocationContext {
            eligible_arms: eligible(i),
            arm_counts: counts.clone(),
            marginals: if scheme.factors().is_empty() {
                Vec::new()
            } else {
                (0..3).map(|f| marginals[f][levels[f]].clone()).collect()
            },
            cluster_arm: None,
        };
        let d = allocate_with(scheme, seed, "trial", "all", &state, &ctx).unwrap();
        state = d.next;
        counts[d.arm] += 1;
        for f in 0..3 {
            marginals[f][levels[f]][d.arm] += 1;
        }
        decisions.push(d);
        patients.push(levels);
    }
    (decisions, patients)
}

fn schemes() -> Vec<Scheme> {
    vec![
        Scheme::new_simple(vec![1, 1]).unwrap(),
        Scheme::new_blocks(vec![1, 1], vec![2, 4]).unwrap(),
        minimisation(vec![1, 1, 1], 0.8),
        Scheme::new_biased_coin(vec![1, 1], 2.0 / 3.0).unwrap(),
        Scheme::new_big_stick(vec![1, 1], 3).unwrap(),
        Scheme::new_urn(vec![1, 1], 1, 1).unwrap(),
        Scheme::new_urn(vec![1, 1, 1], 0, 1).unwrap(),
    ]
}

fn assert_close(got: &serde_json::Value, want: &[f64]) {
    let got: Vec<f64> = serde_json::from_value(got.clone()).unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
    }
}

fn arms_of(decisions: &[Decision]) -> Vec<usize> {
    decisions.iter().map(|d| d.arm).collect()
}

#[test]
fn allocate_is_allocate_with_an_empty_context() {
    for scheme in [
        Scheme::new_simple(vec![2, 1]).unwrap(),
        Scheme::new_blocks(vec![1, 1], vec![2, 4, 6]).unwrap(),
    ] {
        let mut state = StratumState::default();
        for _ in 0..100 {
            let a = allocate(&scheme, &seed(), "t", "s", state);
            let b = allocate_with(
                &scheme,
                &seed(),
                "t",
                "s",
                &state,
                &AllocationContext::default(),
            )
            .unwrap();
            assert_eq!(a, b);
            assert_eq!(a.detail, None);
            state = a.next;
        }
    }
}

#[test]
fn every_procedure_replays_from_the_seed_and_depends_on_it() {
    for scheme in schemes() {
        let (a, _) = trial(&scheme, &seed(), 200, |_| None);
        let (b, _) = trial(&scheme, &seed(), 200, |_| None);
        assert_eq!(a, b, "{}", scheme.procedure());
        let (c, _) = trial(&scheme, &MasterSeed::from_passphrase("other"), 200, |_| {
            None
        });
        assert_ne!(arms_of(&a), arms_of(&c), "{}", scheme.procedure());
    }
}

#[test]
fn every_procedure_respects_the_ratio_in_the_long_run() {
    let cases: Vec<(Scheme, Vec<f64>)> = vec![
        (minimisation(vec![1, 1, 1], 0.8), vec![1.0 / 3.0; 3]),
        (minimisation(vec![2, 1, 1], 0.8), vec![0.5, 0.25, 0.25]),
        (
            Scheme::new_biased_coin(vec![1, 1], 0.6).unwrap(),
            vec![0.5; 2],
        ),
        (Scheme::new_big_stick(vec![1, 1], 2).unwrap(), vec![0.5; 2]),
        (
            Scheme::new_urn(vec![1, 1, 1], 1, 2).unwrap(),
            vec![1.0 / 3.0; 3],
        ),
        (Scheme::new_simple(vec![3, 1]).unwrap(), vec![0.75, 0.25]),
    ];
    let n = 3000;
    for (scheme, shares) in cases {
        let (d, _) = trial(&scheme, &seed(), n, |_| None);
        for (arm, share) in shares.iter().enumerate() {
            let got = d.iter().filter(|x| x.arm == arm).count() as f64 / n as f64;
            // Simple 3:1 has sd 0.008; the balancing procedures far less. 0.03 is > 3 sd.
            assert!(
                (got - share).abs() < 0.03,
                "{} arm {arm}: {got} vs {share}",
                scheme.procedure()
            );
        }
    }
}

#[test]
fn minimisation_balances_every_factor_level_better_than_simple() {
    let n = 600;
    let imbalance_of = |scheme: &Scheme| {
        let (d, patients) = trial(scheme, &seed(), n, |_| None);
        let mut worst = 0u64;
        for (f, &levels) in LEVELS.iter().enumerate() {
            for level in 0..levels {
                let mut counts = [0u64; 3];
                for (x, p) in d.iter().zip(&patients) {
                    if p[f] == level {
                        counts[x.arm] += 1;
                    }
                }
                worst = worst.max(counts.iter().max().unwrap() - counts.iter().min().unwrap());
            }
        }
        worst
    };
    let minimised = imbalance_of(&minimisation(vec![1, 1, 1], 0.9));
    let simple = imbalance_of(&Scheme::new_simple(vec![1, 1, 1]).unwrap());
    assert!(minimised <= 6, "minimisation worst level range {minimised}");
    assert!(
        simple > minimised,
        "simple {simple} vs minimisation {minimised}"
    );
}

/// Minimisation over three equal arms by sex (range, p = 0.8), after `initial` random ones.
fn three_arms_by_sex(initial: u32) -> Scheme {
    Scheme::new_minimisation(
        vec![1, 1, 1],
        vec![factor("sex")],
        ImbalanceMeasure::Range,
        0.8,
        initial,
    )
    .unwrap()
}

#[test]
fn minimisation_detail_shows_scores_preference_and_draw() {
    // Three arms, one factor, this patient's level has counts 2, 0, 1 (equal ratios, range):
    // adding to arm 0 gives (3,0,1) → 3; arm 1 gives (2,1,1) → 1; arm 2 gives (2,0,2) → 2.
    let scheme = three_arms_by_sex(0);
    let ctx = AllocationContext {
        marginals: vec![vec![2, 0, 1]],
        ..Default::default()
    };
    let state = StratumState {
        allocated: 3,
        ..Default::default()
    };
    let d = allocate_with(&scheme, &seed(), "t", "all", &state, &ctx).unwrap();
    let detail = d.detail.unwrap();
    assert_eq!(detail["scores"], serde_json::json!([3.0, 1.0, 2.0]));
    assert_eq!(detail["preferred"], serde_json::json!([1]));
    assert_close(&detail["probabilities"], &[0.1, 0.8, 0.1]);
    assert_eq!(detail["phase"], "minimisation");
    let u = detail["draw"].as_f64().unwrap();
    assert_eq!(d.arm, select_by_probability(&[0.1, 0.8, 0.1], u));
    assert_eq!(d.next.allocated, 4);

    // Variance (n − 1 denominator): arm 1 → var(2,1,1) = 1/3.
    let scheme = Scheme::new_minimisation(
        vec![1, 1, 1],
        vec![factor("sex")],
        ImbalanceMeasure::Variance,
        0.8,
        0,
    )
    .unwrap();
    let d = allocate_with(&scheme, &seed(), "t", "all", &state, &ctx).unwrap();
    let scores = d.detail.unwrap()["scores"].clone();
    let scores: Vec<f64> = serde_json::from_value(scores).unwrap();
    for (got, want) in scores.iter().zip([7.0 / 3.0, 1.0 / 3.0, 4.0 / 3.0]) {
        assert!((got - want).abs() < 1e-12, "{scores:?}");
    }
}

#[test]
fn minimisation_ties_split_p_and_initial_allocations_are_random() {
    let scheme = three_arms_by_sex(5);
    let ctx = AllocationContext {
        marginals: vec![vec![1, 0, 0]],
        ..Default::default()
    };
    let early = allocate_with(&scheme, &seed(), "t", "all", &StratumState::default(), &ctx)
        .unwrap()
        .detail
        .unwrap();
    assert_eq!(early["phase"], "initial_random");
    let third = 1.0 / 3.0;
    assert_close(&early["probabilities"], &[third, third, third]);
    let state = StratumState {
        allocated: 5,
        ..Default::default()
    };
    let d = allocate_with(&scheme, &seed(), "t", "all", &state, &ctx)
        .unwrap()
        .detail
        .unwrap();
    assert_eq!(d["preferred"], serde_json::json!([1, 2]));
    assert_close(&d["probabilities"], &[0.2, 0.4, 0.4]);
}

#[test]
fn efron_takes_the_lagging_arm_with_probability_p() {
    let scheme = Scheme::new_biased_coin(vec![1, 1], 2.0 / 3.0).unwrap();
    let mut lagging = 0;
    let trials = 6000;
    for i in 0..trials {
        let ctx = AllocationContext {
            arm_counts: vec![5, 3],
            ..Default::default()
        };
        let state = StratumState {
            allocated: 8,
            ..Default::default()
        };
        let d = allocate_with(&scheme, &seed(), &format!("t{i}"), "s", &state, &ctx).unwrap();
        lagging += usize::from(d.arm == 1);
        assert_eq!(d.detail.as_ref().unwrap()["difference"], 2);
    }
    let share = lagging as f64 / f64::from(trials);
    // sd ≈ 0.006.
    assert!((share - 2.0 / 3.0).abs() < 0.025, "{share}");
}

#[test]
fn cluster_members_inherit_the_arm_without_taking_a_slot() {
    for scheme in schemes() {
        let k = scheme.ratios().len();
        let state = StratumState {
            block_number: 3,
            position: 1,
            allocated: 7,
        };
        for arm in 0..k {
            let ctx = AllocationContext {
                cluster_arm: Some(arm),
                marginals: Vec::new(),
                ..Default::default()
            };
            let d = allocate_with(&scheme, &seed(), "t", "s", &state, &ctx).unwrap();
            assert_eq!(d.arm, arm);
            assert_eq!(d.next, state);
            assert_eq!(d.detail.unwrap()["cluster"], "inherited");
        }
    }
}

#[test]
fn contexts_that_do_not_fit_are_refused() {
    let scheme = minimisation(vec![1, 1, 1], 0.8);
    let state = StratumState::default();
    let go = |ctx: AllocationContext| allocate_with(&scheme, &seed(), "t", "all", &state, &ctx);
    assert_eq!(
        go(AllocationContext {
            eligible_arms: Some(vec![true, false]),
            ..Default::default()
        }),
        Err(AllocationError::EligibilityLength { got: 2, arms: 3 })
    );
    assert_eq!(
        go(AllocationContext {
            eligible_arms: Some(vec![false; 3]),
            ..Default::default()
        }),
        Err(AllocationError::NoEligibleArm)
    );
    assert_eq!(
        go(AllocationContext {
            eligible_arms: Some(vec![true, false, true]),
            cluster_arm: Some(1),
            ..Default::default()
        }),
        Err(AllocationError::ClusterArmIneligible { arm: 1 })
    );
    assert_eq!(
        go(AllocationContext {
            cluster_arm: Some(3),
            ..Default::default()
        }),
        Err(AllocationError::ClusterArmOutOfRange { arm: 3, arms: 3 })
    );
    assert_eq!(
        go(AllocationContext {
            marginals: vec![vec![0; 3]],
            ..Default::default()
        }),
        Err(AllocationError::MarginalsLength { got: 1, factors: 3 })
    );
    assert_eq!(
        go(AllocationContext {
            arm_counts: vec![1, 2],
            ..Default::default()
        }),
        Err(AllocationError::CountsLength { got: 2, arms: 3 })
    );
}

#[test]
fn new_procedures_reject_bad_parameters() {
    assert_eq!(
        Scheme::new_biased_coin(vec![1, 1, 1], 0.7),
        Err(SchemeError::TwoEqualArmsOnly {
            procedure: "the biased coin"
        })
    );
    assert!(matches!(
        Scheme::new_biased_coin(vec![1, 1], 0.4),
        Err(SchemeError::ProbabilityOutOfRange { .. })
    ));
    assert_eq!(
        Scheme::new_big_stick(vec![1, 1], 0),
        Err(SchemeError::ZeroMaxImbalance)
    );
    assert_eq!(
        Scheme::new_big_stick(vec![2, 1], 3),
        Err(SchemeError::TwoEqualArmsOnly {
            procedure: "the big stick design"
        })
    );
    assert_eq!(
        Scheme::new_urn(vec![1, 1], 0, 0),
        Err(SchemeError::EmptyUrn)
    );
    assert_eq!(
        Scheme::new_urn(vec![1, 2], 1, 1),
        Err(SchemeError::EqualRatiosOnly {
            procedure: "the urn design"
        })
    );
    assert!(matches!(
        Scheme::new_minimisation(
            vec![1, 1, 1],
            vec![factor("a")],
            ImbalanceMeasure::Sd,
            0.3,
            0
        ),
        Err(SchemeError::ProbabilityOutOfRange { .. })
    ));
    assert_eq!(
        Scheme::new_minimisation(vec![1, 1], vec![], ImbalanceMeasure::Sd, 0.8, 0),
        Err(SchemeError::NoFactors)
    );
    assert_eq!(
        Scheme::new_minimisation(
            vec![1, 1],
            vec![factor("a"), factor("a")],
            ImbalanceMeasure::Sd,
            0.8,
            0
        ),
        Err(SchemeError::DuplicateFactor("a".into()))
    );
}

fn eligibility_pattern() -> impl Strategy<Value = Vec<Vec<bool>>> {
    prop::collection::vec(prop::collection::vec(any::<bool>(), 3), 1..60)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn big_stick_never_exceeds_its_bound(bound in 1u32..5, n in 1usize..300, phrase in "[a-z]{4}") {
        let scheme = Scheme::new_big_stick(vec![1, 1], bound).unwrap();
        let (d, _) = trial(&scheme, &MasterSeed::from_passphrase(&phrase), n, |_| None);
        let mut diff = 0i64;
        for x in d {
            diff += if x.arm == 0 { 1 } else { -1 };
            prop_assert!(diff.abs() <= i64::from(bound), "imbalance {} > {}", diff, bound);
        }
    }

    #[test]
    fn ineligible_arms_are_never_allocated(pattern in eligibility_pattern(), phrase in "[a-z]{4}") {
        let seed = MasterSeed::from_passphrase(&phrase);
        // Patterns with no eligible arm are refused (tested above); make arm 2 eligible then.
        let pattern: Vec<Vec<bool>> = pattern
            .into_iter()
            .map(|mut e| { if !e.contains(&true) { e[2] = true; } e })
            .collect();
        let three = |e: &Vec<bool>| e.clone();
        let two = |e: &Vec<bool>| {
            let mut e = e[..2].to_vec();
            if !e.contains(&true) { e[1] = true; }
            e
        };
        for scheme in schemes() {
            let k = scheme.ratios().len();
            let pick = |i: usize| {
                let e = &pattern[i % pattern.len()];
                Some(if k == 3 { three(e) } else { two(e) })
            };
            let (d, _) = trial(&scheme, &seed, 2 * pattern.len(), pick);
            for (i, x) in d.iter().enumerate() {
                let allowed = pick(i).unwrap();
                prop_assert!(allowed[x.arm], "{} gave arm {} to {:?}", scheme.procedure(), x.arm, allowed);
            }
        }
    }

    #[test]
    fn restricted_patients_leave_the_blocks_to_the_others(pattern in eligibility_pattern()) {
        // Fully eligible patients still fill exact blocks.
        let scheme = Scheme::new_blocks(vec![1, 1, 1], vec![3, 6]).unwrap();
        let pick = |i: usize| Some(pattern[i % pattern.len()].clone()).filter(|e| e.contains(&true));
        let (d, _) = trial(&scheme, &seed(), 3 * pattern.len(), pick);
        let full: Vec<&Decision> = d.iter().filter(|x| x.detail.is_none()).collect();
        let mut counts = [0usize; 3];
        let mut used = 0;
        for x in &full {
            counts[x.arm] += 1;
            used += 1;
            if x.block_position + 1 == x.block_size {
                prop_assert_eq!(counts[0], counts[1]);
                prop_assert_eq!(counts[1], counts[2]);
                used = 0;
            }
        }
        let _ = used;
    }

    #[test]
    fn incremental_spread_matches_the_direct_one(
        counts in prop::collection::vec(0u64..50, 2..6),
        ratios_seed in prop::collection::vec(1u32..4, 6),
        measure in prop_oneof![Just(ImbalanceMeasure::Range), Just(ImbalanceMeasure::Variance), Just(ImbalanceMeasure::Sd)],
    ) {
        let k = counts.len();
        let ratios = ratios_seed[..k].to_vec();
        let scheme = Scheme::new_minimisation(ratios.clone(), vec![factor("x")], measure, 1.0, 0).unwrap();
        let ctx = AllocationContext { marginals: vec![counts.clone()], ..Default::default() };
        let state = StratumState { allocated: 1, ..Default::default() };
        let d = allocate_with(&scheme, &seed(), "t", "all", &state, &ctx).unwrap();
        let scores: Vec<f64> = serde_json::from_value(d.detail.unwrap()["scores"].clone()).unwrap();
        for j in 0..k {
            let mut plus = counts.clone();
            plus[j] += 1;
            let direct = spread(&plus, &ratios, measure);
            prop_assert!((scores[j] - direct).abs() <= 1e-9 * direct.max(1.0), "{} vs {}", scores[j], direct);
        }
    }
}

/// Found by the property test above: levelling two arms must score exactly 0 with the SD
/// measure, or an exact tie between arms is broken by rounding.
#[test]
fn levelling_the_arms_scores_exactly_zero() {
    let scheme =
        Scheme::new_minimisation(vec![3, 3], vec![factor("x")], ImbalanceMeasure::Sd, 1.0, 0)
            .unwrap();
    let ctx = AllocationContext {
        marginals: vec![vec![33, 32]],
        ..Default::default()
    };
    let state = StratumState {
        allocated: 1,
        ..Default::default()
    };
    let d = allocate_with(&scheme, &seed(), "t", "all", &state, &ctx).unwrap();
    let scores: Vec<f64> = serde_json::from_value(d.detail.unwrap()["scores"].clone()).unwrap();
    assert_eq!(scores[1], 0.0);
    assert_eq!(d.arm, 1);
}
