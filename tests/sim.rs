//! The design simulator (`rrct simulate`): its rejection rate under the null is the design's
//! alpha, its power agrees with rpact's analytic power (`tests/data/rpact/sim_power.json`,
//! written by `scripts/r/sim_power.R`), the report does not depend on the thread count, and bad
//! scenarios are reported with their file, line and column.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rrct::sim::{self, Options, Scenario};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scenario_text(path: &Path, text: &str) -> Result<Scenario, sim::ScenarioError> {
    let dir = path.parent().unwrap().to_path_buf();
    sim::parse_scenario(text, &path.display().to_string(), |p| {
        let p = dir.join(p);
        std::fs::read_to_string(&p)
            .map(|t| (p.display().to_string(), t))
            .map_err(|e| e.to_string())
    })
}

fn scenario(name: &str) -> Scenario {
    sim::read_scenario(&root().join("simulations").join(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn run(name: &str, replicates: u64, seed: u64) -> sim::SimulationReport {
    let options = Options {
        replicates,
        seed,
        threads: 0,
    };
    sim::simulate(&scenario(name), name, options, &|| {}).unwrap()
}

fn rrct(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rrct"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the rrct binary runs")
}

/// Replicates for the two Monte Carlo checks: a standard error of about 0.005 at alpha 0.05 and
/// 0.01 at power 0.71, so "within 3 standard errors" is a check that a biased test, a wrong
/// boundary or a mis-scaled hazard would fail.
const REPLICATES: u64 = 2000;

#[test]
fn under_the_null_the_rejection_rate_is_alpha() {
    let r = run("power-check-null.toml", REPLICATES, 20261122);
    let mcse = (r.alpha * (1.0 - r.alpha) / REPLICATES as f64).sqrt();
    assert!(
        (r.rejection_rate - r.alpha).abs() <= 3.0 * mcse,
        "rejection rate {} vs alpha {} (3 MCSE = {})",
        r.rejection_rate,
        r.alpha,
        3.0 * mcse
    );
    assert_eq!(r.replicates, REPLICATES);
    // Events-driven looks: every trial reaches its planned events.
    assert!(r.look_probability.iter().all(|&p| p > 0.9));
    assert!(
        (r.expected_events - 200.0).abs() < 5.0,
        "{}",
        r.expected_events
    );
    let hr = r.median_hazard_ratio.unwrap();
    assert!((hr - 1.0).abs() < 0.05, "median HR {hr}");
}

#[test]
fn power_agrees_with_rpact() {
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/data/rpact/sim_power.json")).unwrap(),
    )
    .unwrap();
    let power = golden["overall_reject"].as_f64().unwrap();
    let early = golden["early_stop"].as_f64().unwrap();
    let r = run("power-check.toml", REPLICATES, 7);
    let mcse = (power * (1.0 - power) / REPLICATES as f64).sqrt();
    assert!(
        (r.rejection_rate - power).abs() <= 3.0 * mcse,
        "simulated power {} vs rpact {power} (3 MCSE = {})",
        r.rejection_rate,
        3.0 * mcse
    );
    let mcse_early = (early * (1.0 - early) / REPLICATES as f64).sqrt();
    assert!(
        (r.stop_probability[0] - early).abs() <= 3.0 * mcse_early,
        "stop at look 1: {} vs rpact {early}",
        r.stop_probability[0]
    );
    let hr = r.median_hazard_ratio.unwrap();
    assert!((hr - 0.7).abs() < 0.05, "median HR {hr}");
    // 1:1 blocks of 2 and 4: the trial is never more than 2 out of balance.
    assert!(r.balance.overall.p95 <= 2.0);
}

#[test]
fn the_same_seed_gives_the_same_bytes_whatever_the_thread_count() {
    let args = |threads: &str, seed: &str| {
        let out = rrct(&[
            "simulate",
            "simulations/taste.toml",
            "--replicates",
            "6",
            "--seed",
            seed,
            "--threads",
            threads,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let one = args("1", "11");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let many = args(&cores.to_string(), "11");
    assert_eq!(one, many);
    let other = args("2", "12");
    assert_ne!(one, other, "another seed gives another report");
    let json: Value = serde_json::from_slice(&one).unwrap();
    for key in [
        "replicates",
        "alpha",
        "rejection_rate",
        "rejection_rate_mcse",
        "stop_probability",
        "expected_subjects",
        "expected_events",
        "expected_duration_days",
        "balance",
        "correct_guess_rate",
    ] {
        assert!(json.get(key).is_some(), "no `{key}` in {json}");
    }
    assert_eq!(json["stop_probability"].as_array().unwrap().len(), 3);
    assert_eq!(json["replicates"], 6);
    // Permuted blocks of 2-6 within site x sex: strata stay within 3 of balance.
    assert!(json["balance"]["within_strata"]["p95"].as_f64().unwrap() <= 3.0);
}

#[test]
fn the_html_report_has_its_charts() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("sim.html");
    let out = rrct(&[
        "simulate",
        "simulations/three-arm-minimisation.toml",
        "--replicates",
        "4",
        "--format",
        "html",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&out_path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg").count(), 3, "three charts");
    assert!(html.contains("minimisation randomisation"));
    assert!(!html.contains("<script"), "self-contained, no scripts");
}

#[test]
fn scenario_mistakes_are_reported_with_line_and_column() {
    let path = root().join("simulations/bad.toml");
    let text = r#"protocol = "../protocols/taste.toml"

[accrual]
registrations_per_month = -5

[accrual.sites]
NOWHERE = 1

[covariates.age]
distribution = "normal"
mean = 66
sd = 12

[covariates.sex]
levels = { F = 0.5, X = 0.5 }

[covariates.diagnosis]
levels = { STEMI = 1 }

[covariates.symptom_onset_hours]
distribution = "gamma"

[outcomes.death]
rate_per_year = 0.05
hazard_ratios = { aspirin = 0.8 }
"#;
    let e = scenario_text(&path, text).unwrap_err().to_string();
    let origin = path.display().to_string();
    for (line, col, what) in [
        (4, 27, "`registrations_per_month` must be > 0"),
        (7, 1, "site `NOWHERE` is not a site of trial taste"),
        (15, 21, "`X` is not a level of `sex`"),
        (21, 16, "unknown distribution `gamma`"),
        (25, 19, "`aspirin` is not an arm of trial taste"),
    ] {
        let expected = format!("{origin}:{line}:{col}: {what}");
        assert!(e.contains(&expected), "missing `{expected}` in:\n{e}");
    }
    // The CLI prints them and fails.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "protocol = \"nowhere.toml\"\n[accrual]\nregistrations_per_month = 10\n",
    )
    .unwrap();
    let out = rrct(&["simulate", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read the protocol"), "{stderr}");
    let out = rrct(&["simulate", "simulations/taste.toml", "--replicates", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--replicates"));
}
