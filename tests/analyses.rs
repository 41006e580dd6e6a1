//! Competing risks, counts, continuous and stratified binary statistics against R: every case
//! in `tests/data/r/analyses/golden.json` (written by `scripts/r/analyses_golden.R` with R's
//! `survival`, `cmprsk` and `MASS`) is run through `rrct stats ...` on the same CSV and every
//! value R wrote is compared: relative [`R_RELATIVE_TOLERANCE`] (1e-6), p-values
//! [`P_VALUE_TOLERANCE`] (1e-5).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rrct::stats::R_RELATIVE_TOLERANCE;
use serde_json::Value;

/// Relative agreement demanded of p-values.
const P_VALUE_TOLERANCE: f64 = 1e-5;

/// Below this magnitude an expected value counts as zero and is compared absolutely.
const ZERO_FLOOR: f64 = 1e-12;

/// p-values below this are only required to be below it too.
const P_VALUE_FLOOR: f64 = 1e-300;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/r/analyses")
}

fn golden() -> Value {
    let text = std::fs::read_to_string(data_dir().join("golden.json")).expect("golden JSON");
    serde_json::from_str(&text).expect("golden JSON parses")
}

fn rrct(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rrct"))
        .args(args)
        .output()
        .expect("the rrct binary runs")
}

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

fn compare(path: &str, key: &str, expected: &Value, actual: &Value, failures: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Null, Value::Null) => {}
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (
                e.as_f64().unwrap_or(f64::NAN),
                a.as_f64().unwrap_or(f64::NAN),
            );
            let ok = if is_p_value(key) {
                if e < P_VALUE_FLOOR {
                    a < P_VALUE_FLOOR
                } else {
                    (a - e).abs() <= P_VALUE_TOLERANCE * e.abs()
                }
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

fn check_category(category: &str) {
    let golden = golden();
    let cases = golden["cases"][category].as_array().expect("category");
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in cases {
        let actual = run_case(case);
        let name = case["name"].as_str().unwrap_or("?");
        compare(name, "", &case["expected"], &actual, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn cumulative_incidence_matches_survfit() {
    check_category("cif");
}

#[test]
fn gray_test_matches_cuminc() {
    check_category("gray");
}

#[test]
fn fine_gray_matches_crr() {
    check_category("finegray");
}

#[test]
fn cause_specific_and_counting_process_cox_match_coxph() {
    check_category("cox");
}

#[test]
fn kaplan_meier_logit_arcsin_and_levels_match_survfit() {
    check_category("km");
}

#[test]
fn rate_ratios_match_glm_and_glm_nb() {
    check_category("rate");
}

#[test]
fn ancova_matches_lm() {
    check_category("ancova");
}

#[test]
fn welch_matches_t_test() {
    check_category("ttest");
}

#[test]
fn mantel_haenszel_matches_mantelhaen_and_fisher() {
    check_category("mh");
}

#[test]
fn golden_covers_what_the_issue_asks() {
    let golden = golden();
    let mut all = String::new();
    for (category, cases) in golden["cases"].as_object().expect("cases") {
        for c in cases.as_array().expect("list") {
            all.push_str(&format!("{category} {} {}\n", c["name"], c["args"]));
        }
    }
    for needle in [
        "mgus2",
        "cuminc_example",
        "crr_example",
        "quine",
        "bladder",
        "cgd",
        "tied",
        "small",
        "--cluster",
        "--start",
        "--exposure",
        "negbin",
        "poisson",
        "--strata",
        "logit",
        "arcsin",
        "--conf-level",
        "--cause",
    ] {
        assert!(all.contains(needle), "no golden case mentions {needle}");
    }
}

// ---------------------------------------------------------------------------------------------
// Input errors: a message naming the row or argument, exit status 1, never a panic.

fn write_csv(content: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    std::fs::write(file.path(), content).unwrap();
    file
}

#[test]
fn bad_inputs_fail_cleanly() {
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "time,status,g\n1,1,a\n-2,2,b\n",
            vec!["cif", "--time", "time", "--status", "status"],
            "data row 2",
        ),
        (
            "time,status,g\n1,0,a\n2,0,b\n",
            vec![
                "gray", "--time", "time", "--status", "status", "--group", "g",
            ],
            "no events",
        ),
        (
            "time,status,x\n1,1,0\n2,2,1\n3,0,1\n",
            vec![
                "finegray",
                "--time",
                "time",
                "--status",
                "status",
                "--cause",
                "3",
                "--covariates",
                "x",
            ],
            "--cause `3`",
        ),
        (
            "y,g,e\n1,a,1\n2,b,0\n3,a,2\n",
            vec!["rate", "--outcome", "y", "--group", "g", "--exposure", "e"],
            "data row 2, column `e`",
        ),
        (
            "y,g\n1,a\n-2,b\n3,a\n",
            vec![
                "rate",
                "--outcome",
                "y",
                "--group",
                "g",
                "--model",
                "poisson",
            ],
            "data row 2",
        ),
        (
            "y,g\n1,a\n2,b\n",
            vec!["rate", "--outcome", "y", "--group", "g", "--model", "zip"],
            "--model",
        ),
        (
            "y,g\n1,a\n2,b\n3,c\n",
            vec!["ttest", "--outcome", "y", "--group", "g"],
            "exactly two groups",
        ),
        (
            "y,g,s\n1,a,x\n2,b,x\n",
            vec!["mh", "--outcome", "y", "--group", "g", "--strata", "s"],
            "data row 2, column `y`",
        ),
        (
            "y,g\n1,a\nzz,b\n",
            vec!["ancova", "--outcome", "y", "--group", "g"],
            "data row 2 (line 3), column `y`",
        ),
        (
            "y,g\n1,a\n2,b\n",
            vec!["ancova", "--outcome", "y", "--group", "g", "--control", "c"],
            "--control `c`",
        ),
        (
            "start,stop,ev,x,id\n0,2,1,1,1\n3,3,0,0,2\n",
            vec![
                "cox",
                "--time",
                "stop",
                "--event",
                "ev",
                "--start",
                "start",
                "--covariates",
                "x",
            ],
            "data row 2, column `start`",
        ),
    ];
    for (content, extra, needle) in cases {
        let csv = write_csv(content);
        let mut args: Vec<String> = vec!["stats".into(), extra[0].into()];
        args.push("--csv".into());
        args.push(csv.path().display().to_string());
        args.extend(extra[1..].iter().map(|s| s.to_string()));
        let out = rrct(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        assert!(
            err.contains(needle),
            "{extra:?}: expected `{needle}` in: {err}"
        );
    }
}
