use super::*;
use proptest::prelude::*;

fn seed() -> MasterSeed {
    MasterSeed::from_passphrase("unit-test")
}

/// Run `n` allocations in one stratum and return the arm sequence with each decision.
fn run(scheme: &Scheme, stratum: &str, n: usize) -> Vec<Decision> {
    let mut state = StratumState::default();
    (0..n)
        .map(|_| {
            let d = allocate(scheme, &seed(), "trial", stratum, state);
            state = d.next;
            d
        })
        .collect()
}

#[test]
fn same_seed_same_sequence_and_other_seed_differs() {
    let scheme = Scheme::new_blocks(vec![1, 1], vec![2, 4, 6]).unwrap();
    let a: Vec<usize> = run(&scheme, "site=UPP;sex=F", 200)
        .iter()
        .map(|d| d.arm)
        .collect();
    let b: Vec<usize> = run(&scheme, "site=UPP;sex=F", 200)
        .iter()
        .map(|d| d.arm)
        .collect();
    assert_eq!(a, b);
    let other = MasterSeed::from_passphrase("other");
    let mut state = StratumState::default();
    let c: Vec<usize> = (0..200)
        .map(|_| {
            let d = allocate(&scheme, &other, "trial", "site=UPP;sex=F", state);
            state = d.next;
            d.arm
        })
        .collect();
    assert_ne!(a, c);
    // Strata draw from independent streams.
    let d: Vec<usize> = run(&scheme, "site=UPP;sex=M", 200)
        .iter()
        .map(|d| d.arm)
        .collect();
    assert_ne!(a, d);
}

#[test]
fn known_answer_pins_the_algorithm() {
    // A change here means published allocation sequences can no longer be replayed:
    // never update these values without a new stream version tag.
    let scheme = Scheme::new_blocks(vec![1, 1], vec![2, 4, 6]).unwrap();
    let arms: String = run(&scheme, "site=UPP;sex=F", 24)
        .iter()
        .map(|d| char::from(b'A' + d.arm as u8))
        .collect();
    let sizes: Vec<u32> = run(&scheme, "site=UPP;sex=F", 24)
        .iter()
        .map(|d| d.block_size)
        .collect();
    assert_eq!(arms.len(), 24);
    assert_eq!(
        (arms.as_str(), sizes.as_slice()),
        (KNOWN_ARMS, KNOWN_SIZES.as_slice())
    );
}

const KNOWN_ARMS: &str = "ABAABBABBABAABABBABABAAB";
const KNOWN_SIZES: [u32; 24] = [
    2, 2, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 2, 2, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
];

#[test]
fn seed_commitment_is_sha256_of_the_seed() {
    let s = MasterSeed::from_bytes([0u8; 32]);
    assert_eq!(
        seed_commitment(&s),
        "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
    );
    assert_eq!(format!("{s:?}"), "MasterSeed(<secret>)");
}

#[test]
fn uniform_below_covers_range_without_bias() {
    let mut rng = stream(&seed(), "t", "s", 0);
    let mut counts = [0u32; 6];
    for _ in 0..60_000 {
        counts[uniform_below(&mut rng, 6) as usize] += 1;
    }
    // Each count ~ Binomial(60000, 1/6): mean 10000, sd ~91; 6 sd bounds.
    for c in counts {
        assert!((9_450..=10_550).contains(&c), "{counts:?}");
    }
}

#[test]
fn simple_randomisation_follows_the_ratio() {
    let scheme = Scheme::new_simple(vec![2, 1]).unwrap();
    let arms = run(&scheme, "all", 30_000);
    let active = arms.iter().filter(|d| d.arm == 0).count() as f64 / 30_000.0;
    // sd of the proportion ~0.0027; allow 5 sd.
    assert!((active - 2.0 / 3.0).abs() < 0.014, "{active}");
}

#[test]
fn scheme_rejects_bad_parameters() {
    assert_eq!(
        Scheme::new_blocks(vec![1, 1], vec![3]),
        Err(SchemeError::BlockNotMultiple {
            size: 3,
            ratio_sum: 2
        })
    );
    assert_eq!(Scheme::new_simple(vec![1]), Err(SchemeError::TooFewArms(1)));
    assert_eq!(Scheme::new_simple(vec![1, 0]), Err(SchemeError::ZeroRatio));
    assert_eq!(
        Scheme::new_blocks(vec![1, 1], vec![]),
        Err(SchemeError::NoBlockSizes)
    );
}

fn ratios_and_sizes() -> impl Strategy<Value = (Vec<u32>, Vec<u32>)> {
    prop::collection::vec(1u32..=3, 2..=4).prop_flat_map(|ratios| {
        let sum: u32 = ratios.iter().sum();
        let sizes = prop::collection::vec((1u32..=3).prop_map(move |m| m * sum), 1..=3);
        (Just(ratios), sizes)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn completed_blocks_hold_the_exact_ratio(
        (ratios, sizes) in ratios_and_sizes(),
        n in 1usize..300,
        stratum in "[a-z]{1,8}",
    ) {
        let scheme = Scheme::new_blocks(ratios.clone(), sizes).unwrap();
        let decisions = run(&scheme, &stratum, n);
        let sum: u32 = ratios.iter().sum();
        let mut i = 0;
        while i < decisions.len() {
            let d = &decisions[i];
            prop_assert_eq!(d.block_position, 0);
            let size = d.block_size as usize;
            let end = i + size;
            if end > decisions.len() { break; }
            let mut counts = vec![0u32; ratios.len()];
            for x in &decisions[i..end] {
                prop_assert_eq!(x.block_number, d.block_number);
                counts[x.arm] += 1;
            }
            for (arm, &r) in ratios.iter().enumerate() {
                prop_assert_eq!(counts[arm], r * d.block_size / sum);
            }
            i = end;
        }
    }

    #[test]
    fn imbalance_never_exceeds_half_the_largest_block(
        sizes in prop::collection::vec((1u32..=4).prop_map(|m| 2 * m), 1..=3),
        n in 1usize..400,
    ) {
        let largest = *sizes.iter().max().unwrap() as i64;
        let scheme = Scheme::new_blocks(vec![1, 1], sizes).unwrap();
        let mut diff = 0i64;
        for d in run(&scheme, "s", n) {
            diff += if d.arm == 0 { 1 } else { -1 };
            prop_assert!(diff.abs() <= largest / 2, "imbalance {} > {}", diff, largest / 2);
        }
    }

    #[test]
    fn unequal_ratio_deviation_bounded_by_a_block(
        (ratios, sizes) in ratios_and_sizes(),
        n in 1usize..300,
    ) {
        let largest = f64::from(*sizes.iter().max().unwrap());
        let sum = f64::from(ratios.iter().sum::<u32>());
        let scheme = Scheme::new_blocks(ratios.clone(), sizes).unwrap();
        let mut counts = vec![0f64; ratios.len()];
        for (k, d) in run(&scheme, "s", n).iter().enumerate() {
            counts[d.arm] += 1.0;
            let total = (k + 1) as f64;
            for (arm, &r) in ratios.iter().enumerate() {
                let expected = total * f64::from(r) / sum;
                prop_assert!((counts[arm] - expected).abs() <= largest * f64::from(r) / sum);
            }
        }
    }

    #[test]
    fn replay_from_any_stored_state_continues_the_same_sequence(
        n in 1usize..100, cut in 0usize..100,
    ) {
        let scheme = Scheme::new_blocks(vec![2, 1], vec![3, 6]).unwrap();
        let full = run(&scheme, "s", n);
        let cut = cut.min(n - 1);
        let resumed = allocate(&scheme, &seed(), "trial", "s", if cut == 0 { StratumState::default() } else { full[cut - 1].next });
        prop_assert_eq!(&resumed, &full[cut]);
    }
}

mod procedures;
