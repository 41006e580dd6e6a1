//! The design module against rpact: every case in `tests/data/rpact/design_golden.json`
//! (written by `scripts/r/design_golden.R` with R's `rpact`) is run through `rrct design ...` and
//! compared key by key; then the CLI's input errors, a seeded Monte Carlo check of the type I
//! error of one design, and property tests of the design's invariants.

use std::path::Path;
use std::process::{Command, Output};

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rrct::design::{
    self, efficacy_boundaries, group_sequential, DesignSpec, Observation, Sided, SpendingFunction,
    RPACT_DESIGN_TOLERANCE, RPACT_LEVEL_TOLERANCE, RPACT_RELATIVE_TOLERANCE,
};
use serde_json::Value;

/// Conditional power, absolute.
const CONDITIONAL_POWER_TOLERANCE: f64 = 1e-5;

fn golden() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rpact/design_golden.json");
    let text = std::fs::read_to_string(&path).expect("golden JSON is committed");
    serde_json::from_str(&text).expect("golden JSON parses")
}

fn rrct(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rrct"))
        .args(args)
        .output()
        .expect("the rrct binary runs")
}

fn rrct_json(args: &[String]) -> Value {
    let out = rrct(args);
    assert!(
        out.status.success(),
        "rrct {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("rrct prints JSON")
}

/// How a key is compared.
enum Tolerance {
    Absolute(f64),
    /// `|rrct - rpact| <= tolerance * max(|rpact|, floor)`: relative, except that values
    /// smaller than `floor` in size (z values near 0) are held to `tolerance * floor`.
    Relative {
        tolerance: f64,
        floor: f64,
    },
}

/// The design's boundaries, beta spent and inflation factor to [`RPACT_DESIGN_TOLERANCE`]
/// relative (a z boundary near 0, a futility bound, to that tolerance absolute); nominal levels
/// and alpha spent to [`RPACT_LEVEL_TOLERANCE`] relative (see there why). Cumulative alpha and beta: rrct reports the spending function's value
/// for a spending design, rpact the crossing probability its integration reached.
fn tolerance(key: &str, expected: f64) -> Tolerance {
    match key {
        "upper_z" | "lower_z" => Tolerance::Relative {
            tolerance: RPACT_DESIGN_TOLERANCE,
            floor: 1.0,
        },
        "cumulative_beta" | "inflation_factor" => Tolerance::Relative {
            tolerance: RPACT_DESIGN_TOLERANCE,
            floor: 0.0,
        },
        "nominal_alpha" | "cumulative_alpha" => Tolerance::Relative {
            tolerance: RPACT_LEVEL_TOLERANCE,
            floor: 0.0,
        },
        "conditional_power_hr" => Tolerance::Absolute(CONDITIONAL_POWER_TOLERANCE),
        _ if expected.abs() < 1e-12 => Tolerance::Absolute(1e-12),
        _ => Tolerance::Relative {
            tolerance: RPACT_RELATIVE_TOLERANCE,
            floor: 0.0,
        },
    }
}

fn compare(path: &str, key: &str, expected: &Value, actual: &Value, failures: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(_)) => {
            for (k, v) in e {
                compare(&format!("{path}.{k}"), k, v, &actual[k], failures);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                failures.push(format!("{path}: rpact {} items, rrct {}", e.len(), a.len()));
                return;
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                compare(&format!("{path}[{i}]"), key, ev, av, failures);
            }
        }
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (
                e.as_f64().unwrap_or(f64::NAN),
                a.as_f64().unwrap_or(f64::NAN),
            );
            let (ok, relative) = match tolerance(key, e) {
                Tolerance::Absolute(t) => ((e - a).abs() <= t, (e - a).abs()),
                Tolerance::Relative { tolerance, floor } => {
                    let r = (e - a).abs() / e.abs().max(floor);
                    (r <= tolerance, r)
                }
            };
            if !ok {
                failures.push(format!(
                    "{path}: rpact {e}, rrct {a} (diff {:.2e}, measured {relative:.2e})",
                    a - e
                ));
            }
        }
        (e, a) if e == a => {}
        (e, a) => failures.push(format!("{path}: rpact {e}, rrct {a}")),
    }
}

#[test]
fn every_golden_case_matches_rpact() {
    let golden = golden();
    let cases = golden["cases"].as_array().expect("cases");
    assert!(cases.len() >= 80, "only {} golden cases", cases.len());
    // Every rpact type of design is among them.
    for design in ["OF", "P", "WT:", "HP", "asOF", "asP", "asHSD:", "asKD:"] {
        assert!(
            cases.iter().any(|c| c["expected"]["type_of_design"]
                .as_str()
                .is_some_and(|t| t.starts_with(design))),
            "no golden case of type {design}"
        );
    }
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let args: Vec<String> = case["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| match a {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let actual = rrct_json(&args);
        compare(name, "", &case["expected"], &actual, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The CLI refuses bad arguments with a message and a non-zero exit, never a panic.

fn assert_refused(args: &[&str], needle: &str) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = rrct(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rrct {args:?} should fail");
    assert!(
        !stderr.contains("panicked"),
        "rrct {args:?} panicked: {stderr}"
    );
    assert!(
        stderr.contains(needle),
        "rrct {args:?}: expected `{needle}` in: {stderr}"
    );
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let gsd = ["design", "gsd", "--looks", "3", "--alpha", "0.025"];
    assert_refused(
        &[&gsd[..], &["--spending", "hsd"]].concat(),
        "parameter is missing",
    );
    assert_refused(
        &[&gsd[..], &["--spending", "wang"]].concat(),
        "unknown spending",
    );
    assert_refused(&[&gsd[..], &["--spending", "kd:-1"]].concat(), "rho");
    // rpact's classical design names are never read as the spending versions.
    assert_refused(&[&gsd[..], &["--spending", "of"]].concat(), "--design OF");
    assert_refused(&[&gsd[..], &["--spending", "P"]].concat(), "--design P");
    assert_refused(&[&gsd[..], &["--design", "PT"]].concat(), "Pampallona");
    assert_refused(
        &[&gsd[..], &["--design", "WToptimum"]].concat(),
        "WToptimum",
    );
    assert_refused(&[&gsd[..], &["--design", "WT"]].concat(), "delta");
    assert_refused(&[&gsd[..], &["--design", "WT:2"]].concat(), "[-0.5, 1]");
    assert_refused(&[&gsd[..], &["--design", "obf"]].concat(), "--spending");
    assert_refused(
        &[&gsd[..], &["--design", "OF", "--spending", "obf"]].concat(),
        "cannot be used with",
    );
    assert_refused(
        &[&gsd[..], &["--design", "OF", "--futility", "obf"]].concat(),
        "alpha-spending",
    );
    assert_refused(
        &[&gsd[..], &["--design", "OF", "--futility-bounds", "0"]].concat(),
        "--futility-bounds has 1 values",
    );
    assert_refused(
        &[&gsd[..], &["--design", "OF", "--binding-futility"]].concat(),
        "--binding-futility needs",
    );
    assert_refused(
        &[
            "design",
            "conditional-power",
            "--looks",
            "3",
            "--alpha",
            "0.025",
            "--design",
            "OF",
            "--z",
            "1",
            "--information",
            "0.3",
        ],
        "alpha-spending design",
    );
    assert_refused(
        &[&gsd[..], &["--spending", "obf", "--timing", "0.5,0.4,1"]].concat(),
        "strictly increase",
    );
    assert_refused(
        &[&gsd[..], &["--spending", "obf", "--timing", "0.5,1"]].concat(),
        "--timing has 2 values",
    );
    assert_refused(
        &[&gsd[..], &["--spending", "obf", "--timing", "0.3,0.6,0.9"]].concat(),
        "must be 1",
    );
    assert_refused(
        &[&gsd[..], &["--spending", "obf", "--sided", "3"]].concat(),
        "1 or 2",
    );
    assert_refused(
        &[
            "design",
            "gsd",
            "--looks",
            "3",
            "--alpha",
            "0.7",
            "--spending",
            "obf",
        ],
        "alpha",
    );
    assert_refused(
        &[
            &gsd[..],
            &["--spending", "obf", "--sided", "2", "--futility", "obf"],
        ]
        .concat(),
        "one-sided",
    );
    assert_refused(
        &[
            "design",
            "gsd",
            "--looks",
            "0",
            "--alpha",
            "0.025",
            "--spending",
            "obf",
        ],
        "--looks",
    );
    assert_refused(
        &[
            "design", "events", "--hr", "1", "--alpha", "0.025", "--power", "0.8",
        ],
        "differ from 1",
    );
    assert_refused(
        &[
            "design", "events", "--hr", "0", "--alpha", "0.025", "--power", "0.8",
        ],
        "hazard ratio",
    );
    assert_refused(
        &[
            "design", "events", "--hr", "0.7", "--alpha", "0.025", "--power", "1.5",
        ],
        "power",
    );
    assert_refused(
        &[
            "design",
            "events",
            "--hr",
            "0.7",
            "--alpha",
            "0.025",
            "--power",
            "0.8",
            "--spending",
            "obf",
        ],
        "--looks",
    );
    assert_refused(
        &[
            "design",
            "subjects",
            "--hr",
            "0.7",
            "--alpha",
            "0.025",
            "--power",
            "0.8",
            "--accrual-time",
            "12",
            "--follow-up-time",
            "12",
        ],
        "exactly one of",
    );
    assert_refused(
        &[
            "design", "rates", "--pi1", "0.3", "--pi2", "1.2", "--alpha", "0.025", "--power", "0.8",
        ],
        "pi2",
    );
    let cp = [
        "design",
        "conditional-power",
        "--looks",
        "3",
        "--alpha",
        "0.025",
        "--spending",
        "obf",
    ];
    assert_refused(
        &[&cp[..], &["--z", "1,2", "--information", "0.3"]].concat(),
        "--z has 2 values",
    );
    assert_refused(
        &[&cp[..], &["--z", "1,2", "--information", "0.6,0.3"]].concat(),
        "strictly increase",
    );
    assert_refused(
        &[
            &cp[..],
            &["--z", "1,2,3,4", "--information", "0.2,0.4,0.6,0.8"],
        ]
        .concat(),
        "plans 3",
    );
    assert_refused(
        &[&cp[..], &["--z", "nan", "--information", "0.3"]].concat(),
        "finite",
    );
}

#[test]
fn conditional_power_prints_boundaries_and_both_conditional_powers() {
    let args: Vec<String> = [
        "design",
        "conditional-power",
        "--looks",
        "3",
        "--alpha",
        "0.05",
        "--sided",
        "2",
        "--spending",
        "obf",
        "--z",
        "-0.4,2.9",
        "--events",
        "110,205",
        "--planned-events",
        "300",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let v = rrct_json(&args);
    let looks = v["looks"].as_array().expect("looks");
    assert_eq!(looks.len(), 2);
    assert!((looks[0]["information_fraction"].as_f64().unwrap() - 110.0 / 300.0).abs() < 1e-15);
    assert_eq!(looks[0]["crossing"], "none");
    assert_eq!(looks[1]["crossing"], "upper");
    assert_eq!(looks[1]["crossed"], true);
    assert_eq!(
        looks[1]["lower_z"].as_f64().unwrap(),
        -looks[1]["upper_z"].as_f64().unwrap()
    );
    for l in looks {
        let cp = l["conditional_power_design"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&cp));
    }
}

// ---------------------------------------------------------------------------------------------
// Monte Carlo: the null crossing probability of a design is alpha.

/// One standard normal by Box–Muller from the generator (the RNG is passed in, never global).
fn standard_normal(rng: &mut ChaCha20Rng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

#[test]
fn null_crossing_probability_is_alpha_within_three_standard_errors() {
    // Two-sided Pocock-type, 4 unequally spaced looks: every look spends a fair share, and
    // crossing either side counts.
    let timing = [0.2, 0.45, 0.7, 1.0];
    let alpha = 0.05;
    let bounds =
        efficacy_boundaries(alpha, Sided::Two, SpendingFunction::Pocock, &timing).expect("design");
    let mut rng = ChaCha20Rng::seed_from_u64(20_250_601);
    let trials = 400_000;
    let mut crossed = 0u32;
    for _ in 0..trials {
        let (mut score, mut t_prev) = (0.0, 0.0);
        for (k, &t) in timing.iter().enumerate() {
            score += (t - t_prev).sqrt() * standard_normal(&mut rng);
            t_prev = t;
            if (score / t.sqrt()).abs() >= bounds[k] {
                crossed += 1;
                break;
            }
        }
    }
    let p = f64::from(crossed) / trials as f64;
    let se = (alpha * (1.0 - alpha) / trials as f64).sqrt();
    assert!(
        (p - alpha).abs() < 3.0 * se,
        "null crossing probability {p} vs alpha {alpha} (se {se:.2e})"
    );
}

// ---------------------------------------------------------------------------------------------
// Properties.

fn spending_strategy() -> impl Strategy<Value = SpendingFunction> {
    prop_oneof![
        Just(SpendingFunction::OBrienFleming),
        Just(SpendingFunction::Pocock),
        (-6.0f64..3.0).prop_map(|gamma| SpendingFunction::HwangShihDeCani { gamma }),
        (0.5f64..4.0).prop_map(|rho| SpendingFunction::KimDeMets { rho }),
    ]
}

/// 2 to 6 strictly increasing fractions ending at 1, no two closer than 0.05.
fn timing_strategy() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(0.05f64..1.0, 1..6).prop_map(|mut v| {
        v.sort_by(f64::total_cmp);
        let mut out: Vec<f64> = Vec::new();
        for t in v {
            if t <= 0.95 && out.last().is_none_or(|&l| t - l >= 0.05) {
                out.push(t);
            }
        }
        out.push(1.0);
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn cumulative_alpha_increases_to_alpha(
        spending in spending_strategy(),
        timing in timing_strategy(),
        two_sided in any::<bool>(),
    ) {
        let sided = if two_sided { Sided::Two } else { Sided::One };
        let mut spec = DesignSpec::new(timing.len(), 0.025 * f64::from(sided.count()), sided, spending);
        spec.timing = timing;
        let d = group_sequential(&spec).unwrap();
        let cumulative: Vec<f64> = d.looks.iter().map(|l| l.cumulative_alpha).collect();
        prop_assert!(cumulative.windows(2).all(|w| w[1] >= w[0]));
        prop_assert_eq!(*cumulative.last().unwrap(), spec.alpha);
        // Up to the integration's error the inflation factor is at least 1. The error is
        // largest where the first looks spend almost nothing: O'Brien–Fleming one-sided at
        // 0.05 and 0.13 gives 0.99999893 (the regression file keeps that case), and the worst
        // of a sweep over early, closely spaced looks (0.05, 0.10, 0.15) 0.99999844; the check
        // allows 3e-6.
        prop_assert!(d.inflation_factor >= 1.0 - 3e-6);
        for l in &d.looks {
            // Nominal level never exceeds what was spent by then.
            prop_assert!(l.nominal_alpha <= l.cumulative_alpha * (1.0 + 1e-6) + 1e-12);
            if sided == Sided::Two {
                prop_assert_eq!(l.lower_z, Some(-l.upper_z));
            }
        }
    }

    #[test]
    fn two_sided_boundaries_are_the_one_sided_ones_at_half_alpha_when_lower_crossing_is_rare(
        timing in timing_strategy(),
    ) {
        // O'Brien–Fleming type: crossing the lower boundary and then the upper one is so rare
        // that the two-sided design at 2 alpha and the one-sided at alpha nearly coincide.
        let one = efficacy_boundaries(0.025, Sided::One, SpendingFunction::OBrienFleming, &timing).unwrap();
        let two = efficacy_boundaries(0.05, Sided::Two, SpendingFunction::OBrienFleming, &timing).unwrap();
        for (a, b) in one.iter().zip(&two) {
            prop_assert!((a - b).abs() < 1e-3, "{} vs {}", a, b);
            prop_assert!(*b <= a + 1e-6);
        }
    }

    #[test]
    fn monitoring_at_planned_information_reproduces_the_design(
        spending in spending_strategy(),
        timing in timing_strategy(),
        z in -3.0f64..5.0,
    ) {
        let mut spec = DesignSpec::new(timing.len(), 0.025, Sided::One, spending);
        spec.timing = timing.clone();
        let d = group_sequential(&spec).unwrap();
        let observed: Vec<Observation> = timing.iter().map(|&t| Observation::new(t, z)).collect();
        let looks = design::monitor(&d, &observed).unwrap();
        for (m, l) in looks.iter().zip(&d.looks) {
            prop_assert!((m.upper_z - l.upper_z).abs() < 1e-12);
            prop_assert_eq!(m.crossed, z >= l.upper_z);
            if let Some(cp) = m.conditional_power_trend {
                prop_assert!((-1e-9..=1.0 + 1e-9).contains(&cp));
            }
        }
    }
}
