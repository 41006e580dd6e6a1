//! The covariate-adjusted comparisons `rrct analyse` makes, against R: a DAPA-HF-REG trial whose
//! plan adjusts every endpoint for age (a linear term), sex and NYHA class (factors), its
//! endpoint rows and enrolment fields built from `tests/data/r/adjusted/trial.csv`, compared
//! through the analysis's own path (complete cases, the plan's terms, the fit) with the values
//! `scripts/r/adjusted_golden.R` wrote from `lm`, `coxph`, `MASS::glm.nb` and `glm`.

use serde_json::{json, Value};

use super::baseline::{Baseline, Covariates};
use super::data::Concurrency;
use super::summary::{compare, Comparison};
use super::TrialData;
use crate::endpoints::{EndpointRow, Outcome, Subject};
use crate::stats::R_RELATIVE_TOLERANCE;

/// Relative agreement demanded of p-values.
const P_VALUE_TOLERANCE: f64 = 1e-5;

const GOLDEN: &str = include_str!("../../tests/data/r/adjusted/golden.json");
const TRIAL: &str = include_str!("../../tests/data/r/adjusted/trial.csv");

fn close(what: &str, got: f64, expected: &Value, tolerance: f64) {
    let e = expected
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {expected}"));
    assert!(
        (got - e).abs() <= tolerance * e.abs().max(1e-12),
        "{what}: rrct {got}, R {e}"
    );
}

/// The shipped DAPA-HF-REG protocol with its `[analysis]` replaced by `plan`.
fn protocol(plan: &str) -> crate::protocol::Protocol {
    let text = include_str!("../../protocols/dapa-hf-reg.toml");
    let at = text.find("\n[analysis]").expect("an [analysis] section");
    crate::protocol::parse(&format!("{}\n{plan}", &text[..at]), "dapa-hf-reg.toml")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Each endpoint's rows from the CSV, and every subject's enrolment fields (a value left
/// empty in the CSV was not sent).
fn rows() -> (Vec<(String, Vec<EndpointRow>)>, Baseline) {
    let mut reader = csv::Reader::from_reader(TRIAL.as_bytes());
    let mut baseline = Baseline::default();
    let (mut tte, mut count, mut continuous) = (Vec::new(), Vec::new(), Vec::new());
    for record in reader.deserialize::<std::collections::HashMap<String, String>>() {
        let r = record.expect("a CSV row");
        let number = |k: &str| r[k].parse::<f64>().ok();
        let mut fields = json!({"egfr": 60.0, "diabetes": false});
        if let Some(age) = number("age") {
            fields["age"] = json!(age as i64);
        }
        for k in ["sex", "nyha_class"] {
            if !r[k].is_empty() {
                fields[k] = json!(r[k]);
            }
        }
        let Value::Object(fields) = fields else {
            unreachable!("an object")
        };
        baseline.insert(r["record"].clone(), fields);
        let subject = Subject {
            record_id: r["record"].as_str().into(),
            subject: r["record"].as_str().into(),
            site: "KS".into(),
            arm: r["arm"].as_str().into(),
            stratum: "site=KS;diabetes=false".into(),
            randomised_on: chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
            data_collection_ends: None,
        };
        let row = |outcome| EndpointRow {
            subject: subject.clone(),
            outcome,
            censor_reason: None,
            source: None,
            source_event_id: None,
        };
        let whole = |k: &str| number(k).expect(k) as i64;
        tte.push(row(Outcome::TimeToEvent {
            time_days: whole("time_days"),
            event: whole("event") == 1,
        }));
        // The window is days 0-365: a subject observed for `days` days was followed to day
        // `days - 1`.
        count.push(row(Outcome::Count {
            time_days: whole("days_observed") - 1,
            count: whole("count") as u32,
            complete: true,
        }));
        continuous.push(row(Outcome::Continuous {
            time_days: Some(180),
            value: number("value"),
        }));
    }
    (
        vec![
            ("cv_death_or_hfh".into(), tte),
            ("hfh_count_1y".into(), count),
            ("nt_probnp_6m".into(), continuous),
        ],
        baseline,
    )
}

/// Compare each endpoint as `plan` says; with the analysis sentence.
fn analysed(plan: &str) -> Vec<(String, Comparison, String)> {
    let protocol = protocol(plan);
    let (rows, baseline) = rows();
    let data = TrialData::of(protocol.clone());
    let values = Covariates {
        protocol: &protocol,
        baseline: &baseline,
    };
    rows.iter()
        .map(|(id, rows)| {
            let endpoint = protocol.endpoint(id).unwrap();
            let (c, text) = compare(
                &protocol,
                endpoint,
                rows,
                None,
                &Concurrency::of(&data),
                &values,
            );
            (id.clone(), c.unwrap(), text.unwrap())
        })
        .collect()
}

const PLAN: &str =
    "[analysis]\nstratified = false\ncovariates = [\"age\", \"sex\", \"nyha_class\"]\n";

#[test]
fn adjusted_comparisons_match_r_on_the_complete_cases() {
    let golden: Value = serde_json::from_str(GOLDEN).unwrap();
    let tol = R_RELATIVE_TOLERANCE;
    for (id, comparison, text) in analysed(PLAN) {
        // Three subjects lack age or NYHA class: left out, and said so.
        assert!(
            text.contains(
                "adjusted for age (linear), sex (factor), nyha_class (factor); complete cases \
                 (3 subjects without a covariate value left out); 95% confidence intervals"
            ),
            "{id}: {text}"
        );
        match comparison {
            Comparison::MeanDifference(m) => {
                let g = &golden["ancova"];
                assert_eq!(json!(m.subjects), g["subjects"]);
                let d = &m.differences[0];
                assert_eq!(
                    (d.group.as_str(), d.reference.as_str()),
                    ("active", "usual_care")
                );
                close("ancova difference", d.difference, &g["difference"], tol);
                close("ancova se", d.se, &g["se"], tol);
                close("ancova t", d.t, &g["t"], tol);
                close("ancova df", d.df, &g["df"], tol);
                close("ancova p", d.p, &g["p"], P_VALUE_TOLERANCE);
                close("ancova lower", d.lower, &g["lower"], tol);
                close("ancova upper", d.upper, &g["upper"], tol);
                assert!(m.model.starts_with("ANCOVA"), "{}", m.model);
            }
            Comparison::Survival {
                hazard_ratios,
                curves,
                ..
            } => {
                let g = &golden["cox"];
                let n: usize = curves.iter().map(|c| c.n).sum();
                let events: usize = curves.iter().map(|c| c.events).sum();
                assert_eq!(
                    (json!(n), json!(events)),
                    (g["subjects"].clone(), g["events"].clone())
                );
                let h = &hazard_ratios[0];
                assert_eq!(h.name, "active vs usual_care");
                close("cox coef", h.coef.unwrap(), &g["coef"], tol);
                close("cox hr", h.hr.unwrap(), &g["hr"], tol);
                close("cox se", h.se.unwrap(), &g["se"], tol);
                close("cox z", h.z.unwrap(), &g["z"], tol);
                close("cox p", h.p.unwrap(), &g["p"], P_VALUE_TOLERANCE);
                close("cox lower", h.hr_lower.unwrap(), &g["lower"], tol);
                close("cox upper", h.hr_upper.unwrap(), &g["upper"], tol);
            }
            Comparison::Rates(r) => {
                let g = &golden["negbin"];
                assert_eq!(r.model, crate::stats::rates::CountModel::Negbin);
                assert!(r.warnings.is_empty(), "{:?}", r.warnings);
                assert_eq!(json!(r.subjects), g["subjects"]);
                close("negbin theta", r.theta.unwrap(), &g["theta"], tol);
                rate("negbin", &r.rate_ratios[0], g);
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    // The same count model as Poisson regression.
    let poisson = analysed(&format!("{PLAN}count_model = \"poisson\"\n"));
    let Some((_, Comparison::Rates(r), _)) = poisson.iter().find(|(id, ..)| id == "hfh_count_1y")
    else {
        panic!("no rates");
    };
    assert_eq!(json!(r.subjects), golden["poisson"]["subjects"]);
    rate("poisson", &r.rate_ratios[0], &golden["poisson"]);
}

fn rate(what: &str, r: &crate::stats::rates::RateCoefficient, g: &Value) {
    let tol = R_RELATIVE_TOLERANCE;
    close(&format!("{what} coef"), r.coef, &g["coef"], tol);
    close(&format!("{what} se"), r.se, &g["se"], tol);
    close(&format!("{what} z"), r.z, &g["z"], tol);
    close(&format!("{what} p"), r.p, &g["p"], P_VALUE_TOLERANCE);
    close(
        &format!("{what} rate ratio"),
        r.rate_ratio,
        &g["rate_ratio"],
        tol,
    );
    close(&format!("{what} lower"), r.lower, &g["lower"], tol);
    close(&format!("{what} upper"), r.upper, &g["upper"], tol);
}

/// Without the covariates the same rows give other estimates: the adjustment is what the
/// golden values test.
#[test]
fn the_unadjusted_comparison_differs() {
    let golden: Value = serde_json::from_str(GOLDEN).unwrap();
    let plain = analysed("[analysis]\nstratified = false\n");
    let Some((_, Comparison::MeanDifference(m), text)) =
        plain.iter().find(|(id, ..)| id == "nt_probnp_6m")
    else {
        panic!("no mean difference");
    };
    assert!(
        !text.contains("adjusted") && !text.contains("complete cases"),
        "{text}"
    );
    // Everyone with a value: 88, not the 85 complete cases.
    assert_eq!(m.subjects, 88);
    let adjusted = golden["ancova"]["difference"].as_f64().unwrap();
    assert!((m.differences[0].difference - adjusted).abs() > 1.0);
}
