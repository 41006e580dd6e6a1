//! The statistics against R: every case in `tests/data/r/stats_golden.json` (written by
//! `scripts/r/stats_golden.R` with R's `survival` package) is run through `rrct stats ...` on
//! the same CSV and compared at [`R_RELATIVE_TOLERANCE`]; then the CLI's input errors, and
//! property tests of two identities the issue names.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use proptest::prelude::*;
use rrct::stats::{self, Covariate, CoxData, CoxOptions, KmOptions, R_RELATIVE_TOLERANCE};
use serde_json::Value;

/// Below this magnitude an expected value counts as zero and is compared absolutely: a
/// relative comparison with an exact 0 (a clipped confidence limit, say) means nothing.
const ZERO_FLOOR: f64 = 1e-12;

/// p-values are compared relatively only above this; below it both must be below it.
const P_VALUE_FLOOR: f64 = 1e-300;

/// Agreement demanded of the identities in the property tests (pure rounding error).
const IDENTITY_TOLERANCE: f64 = 1e-9;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/r")
}

fn golden() -> Value {
    let path = data_dir().join("stats_golden.json");
    let text = std::fs::read_to_string(&path).expect("golden JSON is committed");
    serde_json::from_str(&text).expect("golden JSON parses")
}

fn rrct(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rrct"))
        .args(args)
        .output()
        .expect("the rrct binary runs")
}

/// Runs a golden case's arguments (its `--csv` value is a file in the data directory).
fn run_case(case: &Value) -> Value {
    let mut args: Vec<String> = vec!["stats".into()];
    let mut csv_next = false;
    for a in case["args"].as_array().expect("args") {
        let a = a.as_str().expect("string arg").to_string();
        if csv_next {
            args.push(data_dir().join(&a).display().to_string());
        } else {
            args.push(a.clone());
        }
        csv_next = a == "--csv";
    }
    let out = rrct(&args);
    assert!(
        out.status.success(),
        "{}: rrct {:?} failed: {}",
        case["name"],
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("rrct prints JSON")
}

fn is_p_value(key: &str) -> bool {
    key == "p" || key.ends_with("_p")
}

/// Compares every value present in `expected` with the same path in `actual`.
fn compare(path: &str, key: &str, expected: &Value, actual: &Value, failures: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Null, Value::Null) => {}
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (
                e.as_f64().unwrap_or(f64::NAN),
                a.as_f64().unwrap_or(f64::NAN),
            );
            let ok = if is_p_value(key) && e < P_VALUE_FLOOR {
                a < P_VALUE_FLOOR
            } else {
                (a - e).abs() <= R_RELATIVE_TOLERANCE * e.abs().max(ZERO_FLOOR)
            };
            if !ok {
                failures.push(format!(
                    "{path}: R {e:e}, rrct {a:e} (relative {:e})",
                    ((a - e) / e).abs()
                ));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                failures.push(format!("{path}: R has {} items, rrct {}", e.len(), a.len()));
                return;
            }
            for (i, (x, y)) in e.iter().zip(a).enumerate() {
                compare(&format!("{path}[{i}]"), key, x, y, failures);
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            for (k, x) in e {
                match a.get(k) {
                    Some(y) => compare(&format!("{path}.{k}"), k, x, y, failures),
                    None => failures.push(format!("{path}.{k}: missing in rrct's output")),
                }
            }
        }
        (e, a) if e == a => {}
        (e, a) => failures.push(format!("{path}: R {e}, rrct {a}")),
    }
}

/// The 1-based variable numbers in "Loglik converged before variable 1,2 ; ...".
fn infinite_variables(warning: &str) -> Option<Vec<usize>> {
    let rest = warning.split("Loglik converged before variable").nth(1)?;
    let list = rest.split(';').next()?;
    Some(
        list.split(',')
            .filter_map(|part| part.split_whitespace().next()?.parse().ok())
            .collect(),
    )
}

fn check_category(category: &str) {
    let golden = golden();
    let cases = golden["cases"][category].as_array().expect("category");
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in cases {
        let actual = run_case(case);
        let name = case["name"].as_str().unwrap_or("?");
        compare(name, "", &case["expected"], &actual, &mut failures);
        if let Some(r_warnings) = case.get("r_warnings").and_then(Value::as_array) {
            let r: Vec<Vec<usize>> = r_warnings
                .iter()
                .filter_map(|w| infinite_variables(w.as_str()?))
                .collect();
            let ours: Vec<Vec<usize>> = actual["warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| infinite_variables(w.as_str()?))
                .collect();
            if r != ours {
                failures.push(format!(
                    "{name}: R flags infinite coefficients {r:?}, rrct {ours:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn kaplan_meier_matches_r() {
    check_category("km");
}

#[test]
fn log_rank_matches_r() {
    check_category("logrank");
}

#[test]
fn cox_matches_r() {
    check_category("cox");
}

#[test]
fn rmst_matches_r() {
    check_category("rmst");
}

#[test]
fn subgroups_match_r() {
    check_category("subgroups");
}

#[test]
fn two_by_two_matches_r() {
    check_category("binary");
}

#[test]
fn golden_covers_what_the_issue_asks() {
    let golden = golden();
    let names: Vec<String> = ["km", "logrank", "cox", "rmst", "subgroups", "binary"]
        .iter()
        .flat_map(|c| golden["cases"][*c].as_array().cloned().unwrap_or_default())
        .map(|c| format!("{} {}", c["name"], c["args"]))
        .collect();
    let all = names.join("\n");
    for needle in [
        "tg7",
        "lung",
        "aml",
        "veteran",
        "colon",
        "rotterdam",
        "ties",
        "--strata",
        "binary",
        "breslow",
    ] {
        assert!(all.contains(needle), "no golden case mentions {needle}");
    }
}

#[test]
fn textbook_cox_closed_form() {
    // Therneau & Grambsch's example: Breslow beta = log(1.5 + sqrt(33)/2) = 1.475285,
    // Efron beta = 1.676857 (R's tests/book1.R).
    let time = [9.0, 1.0, 1.0, 6.0, 6.0, 8.0];
    let event = [true, true, false, true, true, false];
    let x = [0.0, 1.0, 1.0, 1.0, 0.0, 0.0];
    let data = CoxData {
        time: &time,
        event: &event,
        covariates: vec![Covariate {
            name: "x",
            values: &x,
        }],
        strata: None,
    };
    let breslow = CoxOptions {
        ties: stats::Ties::Breslow,
        ..CoxOptions::default()
    };
    let b = stats::cox_ph(&data, &breslow).unwrap().coefficients[0]
        .coef
        .unwrap();
    assert!((b - (1.5 + 33f64.sqrt() / 2.0).ln()).abs() < 1e-9);
    assert!((b - 1.475285).abs() < 5e-7);
    let e = stats::cox_ph(&data, &CoxOptions::default())
        .unwrap()
        .coefficients[0]
        .coef
        .unwrap();
    assert!((e - 1.676857).abs() < 5e-7);
}

// ---------------------------------------------------------------------------------------------
// Input errors: a message naming row and column, a non-zero exit, never a panic.

fn write_csv(content: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    std::fs::write(file.path(), content).unwrap();
    file
}

fn stats_cmd(csv: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec![
        "stats".into(),
        extra[0].into(),
        "--csv".into(),
        csv.display().to_string(),
        "--time".into(),
        "time".into(),
        "--event".into(),
        "status".into(),
    ];
    args.extend(extra[1..].iter().map(|s| s.to_string()));
    rrct(&args)
}

#[test]
fn non_numeric_value_names_row_and_column() {
    let csv = write_csv("time,status,age\n5,1,60\n7,0,abc\n9,1,70\n");
    let out = stats_cmd(csv.path(), &["cox", "--covariates", "age"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("data row 2 (line 3)"), "{err}");
    assert!(err.contains("column `age`"), "{err}");
    assert!(err.contains("`abc`"), "{err}");
}

#[test]
fn missing_values_are_dropped_and_counted() {
    let csv = write_csv("time,status,arm\n5,1,a\n7,,b\n9,1,NA\n3,0,b\n8,1,a\n2,1,b\n");
    let out = stats_cmd(csv.path(), &["logrank", "--group", "arm"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["n_dropped"], 2);
    assert_eq!(v["groups"][0]["group"], "a");
    assert_eq!(v["groups"][0]["n"], 2);
}

#[test]
fn bad_inputs_fail_cleanly() {
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        ("time,status\n-1,1\n2,1\n", vec!["km"], "negative"),
        ("time,status\n1,3\n2,1\n", vec!["km"], "event indicator"),
        (
            "time,status\n1,1\n2,1\n",
            vec!["km", "--group", "arm"],
            "no column `arm`",
        ),
        (
            "time,status\n1,1\n2,1\n",
            vec!["km", "--conf-type", "none"],
            "--conf-type",
        ),
        ("time,status\n1,1\n2,1\n", vec!["km", "--at", "1,x"], "--at"),
        ("time,status\nNA,1\n", vec!["km"], "no complete rows"),
        (
            "time,status,arm\n1,1,a\n2,1,a\n",
            vec!["logrank", "--group", "arm"],
            "at least 2",
        ),
        (
            "time,status,x\n1,0,1\n2,0,0\n",
            vec!["cox", "--covariates", "x"],
            "no events",
        ),
        (
            "time,status,x\n1,1,1\n2,1\n",
            vec!["cox", "--covariates", "x"],
            "line 3",
        ),
        (
            "time,status,arm\n1,1,a\n2,1,b\n",
            vec!["rmst", "--group", "arm", "--tau", "0.5"],
            "tau",
        ),
        (
            "time,status,arm,g\n1,1,a,x\n2,1,b,x\n3,1,c,y\n",
            vec!["subgroups", "--treatment", "arm", "--by", "g"],
            "exactly two arms",
        ),
        (
            "time,status,x\n1,1,inf\n2,1,0\n",
            vec!["cox", "--covariates", "x"],
            "finite",
        ),
    ];
    for (content, extra, needle) in cases {
        let csv = write_csv(content);
        let out = stats_cmd(csv.path(), &extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        assert!(
            err.contains(needle),
            "{extra:?}: expected `{needle}` in: {err}"
        );
    }
    let missing = rrct(&[
        "stats".into(),
        "km".into(),
        "--csv".into(),
        "/nonexistent/file.csv".into(),
        "--time".into(),
        "t".into(),
        "--event".into(),
        "e".into(),
    ]);
    assert_eq!(missing.status.code(), Some(1));
    for bad in [["1,2", "10"], ["1,x", "10,10"], ["5,1", "4,10"]] {
        let out = rrct(&[
            "stats".into(),
            "binary".into(),
            "--events".into(),
            bad[0].into(),
            "--n".into(),
            bad[1].into(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Properties.

/// Distinct times (a shuffled 1..=n, scaled), random events (at least one) and a binary group
/// with both levels present.
fn untied_two_groups() -> impl Strategy<Value = (Vec<f64>, Vec<bool>, Vec<usize>)> {
    (4usize..60)
        .prop_flat_map(|n| {
            (
                Just((1..=n).map(|t| t as f64 * 0.5).collect::<Vec<f64>>()).prop_shuffle(),
                proptest::collection::vec(any::<bool>(), n),
                proptest::collection::vec(0usize..2, n),
            )
        })
        .prop_filter("an event and both groups", |(_, e, g)| {
            e.iter().any(|&x| x) && g.contains(&0) && g.contains(&1)
        })
}

proptest! {
    /// With one binary covariate and no tied times, Cox's score test at 0 is the log-rank
    /// statistic (Efron and Breslow coincide without ties).
    #[test]
    fn cox_score_test_is_the_log_rank_test((time, event, group) in untied_two_groups()) {
        let Ok(lr) = stats::log_rank(&time, &event, &group, 2, None) else {
            // Only one group ever at risk at the event times: no variance, nothing to test.
            return Ok(());
        };
        let x: Vec<f64> = group.iter().map(|&g| g as f64).collect();
        let data = CoxData {
            time: &time,
            event: &event,
            covariates: vec![Covariate { name: "g", values: &x }],
            strata: None,
        };
        let fit = stats::cox_ph(&data, &CoxOptions::default()).unwrap();
        let score = fit.score_test.chisq;
        prop_assert!(
            (score - lr.chisq).abs() <= IDENTITY_TOLERANCE * lr.chisq.abs().max(1.0),
            "score {} vs log-rank {}", score, lr.chisq
        );
    }

    /// Without censoring, the Kaplan–Meier estimate is the empirical survival function
    /// `#{T > t} / n`, at every observed time and between them.
    #[test]
    fn km_without_censoring_is_empirical(
        time in proptest::collection::vec((0u32..40).prop_map(f64::from), 1..80)
    ) {
        let event = vec![true; time.len()];
        let km = stats::kaplan_meier(&time, &event, None, &KmOptions::default()).unwrap();
        let n = time.len() as f64;
        let mut probes: Vec<f64> = time.clone();
        probes.extend(time.iter().map(|t| t + 0.5));
        probes.push(0.0);
        for row in km[0].survival_at(&probes) {
            let Some(s) = row.survival else { continue };
            let empirical = time.iter().filter(|&&t| t > row.time).count() as f64 / n;
            prop_assert!((s - empirical).abs() <= IDENTITY_TOLERANCE, "t={} {} vs {}", row.time, s, empirical);
        }
    }
}
