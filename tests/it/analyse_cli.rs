//! `rrct analyse` (the real binary, JSON) on a database holding the shipped protocols' trials
//! with enrolments and a year of register follow-up: every endpoint of TASTE and DAPA-HF-REG
//! (and of a TASTE variant with reinfarction against the competing risk of death) gets a
//! comparison of its kind with finite estimates, and the sentence saying how it was analysed
//! names the covariates the plan adjusts for, read from the enrolments' fields.

use serde_json::{json, Value};

use crate::support::{self, day, patient, rrct, taste_variant, TestApp, TestDb, TASTE};

crate::on_both_backends!(every_endpoint_of_the_shipped_protocols_is_compared_by_rrct_analyse);

const DAPA: &str = include_str!("../../protocols/dapa-hf-reg.toml");

/// Subjects per trial.
const N: usize = 72;

/// TASTE with reinfarction as an endpoint of its own, death competing, adjusted for age.
fn taste_competing() -> String {
    taste_variant("taste-cr", &[]).replacen(
        "\n[analysis]\n",
        "\n[endpoints.mi_1y]\nlabel = \"Myocardial infarction within 1 year\"\n\
         kind = \"time_to_event\"\nevents = [\"mi\"]\ncompeting = [\"death\"]\n\
         horizon_days = 365\n\n[analysis]\n",
        1,
    ) + "\n[analysis.endpoints.mi_1y]\ncovariates = [\"age\"]\n"
}

/// A DAPA-HF-REG enrolment; every tenth patient (from the fourth) without a baseline NT-proBNP.
fn dapa_patient(i: usize, on: &str) -> Value {
    let (sex, nyha, site) = (
        ["F", "M"][i % 2],
        ["II", "III", "IV"][i % 3],
        ["KS", "SAH", "UPP"][i % 3],
    );
    let mut fields = json!({
        "age": 52 + (i * 7) % 36, "sex": sex, "admission_date": on,
        "ejection_fraction": 20 + (i % 4) * 5, "nyha_class": nyha,
        "diabetes": i.is_multiple_of(3), "type1_diabetes": false, "egfr": 45.0 + (i % 9) as f64 * 5.0,
        "systolic_bp": 115, "sglt2_inhibitor": false,
    });
    if i % 10 != 3 {
        fields["nt_probnp"] = json!(900.0 + ((i * 37) % 23) as f64 * 60.0);
    }
    json!({
        "record_id": format!("D-R{i:04}"), "subject": format!("D{i:04}"),
        "site": site, "fields": fields,
        "consent": {"kind": "written", "taken_by": "nurse-1", "taken_at": on},
    })
}

/// The event a subject has, if any: `(type, day after randomisation, code, value)`.
fn events_of(trial: &str, i: usize, on: i64, subject: &str) -> Vec<Value> {
    let mut out: Vec<(&str, i64, Option<&str>, Option<f64>)> = Vec::new();
    match trial {
        "dapa-hf-reg" => {
            if i % 5 == 1 {
                out.push(("cv_death", 40 + ((i * 29) % 300) as i64, None, None));
            }
            for k in 0..(i % 4) {
                out.push((
                    "hf_hospitalisation",
                    10 + ((i * 11 + k * 53) % 150) as i64,
                    Some("I50.1"),
                    None,
                ));
            }
            if i % 7 != 2 {
                let value = 700.0 + ((i * 31) % 41) as f64 * 25.0;
                out.push(("nt_probnp", 170 + (i % 20) as i64, None, Some(value)));
            }
        }
        _ => {
            // Deaths, a few in the first month; infarctions (from the patient register).
            if i.is_multiple_of(4) {
                let d = if i.is_multiple_of(8) {
                    2 + (i % 25)
                } else {
                    40 + (i * 13) % 300
                };
                out.push(("death", d as i64, None, None));
            }
            if i % 3 == 1 {
                out.push(("mi", 20 + ((i * 17) % 320) as i64, Some("I21.0"), None));
            }
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(k, (kind, d, code, value))| {
            let source = match kind {
                "cv_death" => "cause_of_death_register",
                "hf_hospitalisation" | "mi" => "patient_register",
                "nt_probnp" => "laboratory",
                _ => "population_register",
            };
            let mut e = json!({"event_id": format!("{subject}-{k}"), "subject": subject,
                               "type": kind, "date": day(on + d), "source": source});
            if let Some(c) = code {
                e["code"] = json!(c);
            }
            if let Some(v) = value {
                e["value"] = json!(v);
            }
            e
        })
        .collect()
}

/// A finite number at `path` of `v`.
fn finite(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = match p.parse::<usize>() {
            Ok(i) => &x[i],
            Err(_) => &x[*p],
        };
    }
    let f = x
        .as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {v}"));
    assert!(f.is_finite(), "{path:?} = {f}");
    f
}

async fn every_endpoint_of_the_shipped_protocols_is_compared_by_rrct_analyse(db: TestDb) {
    let variant = taste_competing();
    let app = TestApp::spawn(&db, &[TASTE, DAPA, &variant], "analyse-every-kind").await;
    let register = app.token("register", None, None).await;
    let admin = app.token("admin", None, None).await;
    let mut events = Vec::new();
    for i in 0..N {
        // Randomised on their own days over the first five months, so a year of follow-up is
        // complete through every register's lag by today.
        let on = (i * 2) as i64;
        app.clock
            .set_today(support::start() + chrono::Days::new(on as u64));
        for (trial, body) in [
            (
                "taste",
                patient(i, ["UPP", "KS", "LKP"][i % 3], ["F", "M"][i % 2]),
            ),
            ("dapa-hf-reg", dapa_patient(i, &day(on))),
            (
                "taste-cr",
                patient(1000 + i, ["UPP", "KS", "LKP"][i % 3], ["F", "M"][i % 2]),
            ),
        ] {
            let (status, reply) = app.enrol(trial, &register, &body).await;
            assert_eq!(status, 201, "{trial} {i}: {reply}");
            let subject = body["subject"].as_str().unwrap();
            events.extend(events_of(trial, i, on, subject));
        }
    }
    app.clock.set_today(chrono::Utc::now().date_naive());
    app.deliver_on_their_days(&admin, &events).await;

    let analyse = |trial: &str| -> Value {
        let out = rrct(&["analyse", "--database", &db.url, "--trial", trial]);
        assert!(
            out.status.success(),
            "{trial}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("rrct analyse prints JSON")
    };
    let mut seen = Vec::new();
    for (trial, source) in [
        ("taste", TASTE),
        ("dapa-hf-reg", DAPA),
        ("taste-cr", &variant),
    ] {
        let protocol = rrct::protocol::parse(source, trial).unwrap();
        let analysis = analyse(trial);
        let endpoints = analysis["endpoints"].as_array().expect("endpoints");
        assert_eq!(endpoints.len(), protocol.endpoints.len(), "{trial}");
        for e in endpoints {
            let id = e["id"].as_str().unwrap();
            let c = &e["comparison"];
            let text = e["analysis"].as_str().unwrap_or_default();
            let method = c["method"].as_str().unwrap_or_default();
            let what = format!("{trial} {id} ({method}): {c}\n{text}");
            match (e["kind"].as_str().unwrap(), method) {
                ("time_to_event", "survival") => {
                    let hr = finite(c, &["hazard_ratios", "0", "hr"]);
                    assert!(hr > 0.0, "{what}");
                    finite(c, &["hazard_ratios", "0", "hr_lower"]);
                    finite(c, &["hazard_ratios", "0", "hr_upper"]);
                    finite(c, &["logrank", "p"]);
                    assert!(text.starts_with("Kaplan-Meier per arm"), "{what}");
                }
                ("time_to_event", "competing_risks") => {
                    for arm in c["incidence"].as_array().unwrap() {
                        finite(arm, &["incidence", "cif"]);
                        finite(arm, &["competing_incidence", "cif"]);
                    }
                    assert_eq!(c["gray"].as_array().unwrap().len(), 2, "{what}");
                    finite(c, &["gray", "0", "p"]);
                    finite(c, &["subdistribution_hazard_ratios", "0", "shr"]);
                    finite(c, &["cause_specific_hazard_ratios", "0", "hr"]);
                    assert!(
                        text.starts_with("Aalen-Johansen cumulative incidence"),
                        "{what}"
                    );
                }
                ("binary", "binary") => {
                    finite(c, &["tables", "0", "rd"]);
                    finite(c, &["tables", "0", "rd_lower"]);
                    finite(c, &["tables", "0", "or"]);
                    finite(c, &["tables", "0", "fisher_p"]);
                    assert!(
                        text.starts_with("risk difference, risk ratio and odds ratio"),
                        "{what}"
                    );
                }
                ("count", "rates") => {
                    let rr = finite(c, &["rate_ratios", "0", "rate_ratio"]);
                    assert!(rr > 0.0, "{what}");
                    finite(c, &["rate_ratios", "0", "lower"]);
                    finite(c, &["rate_ratios", "0", "upper"]);
                    assert!(
                        text.starts_with("negative binomial regression")
                            || text.starts_with("Poisson regression"),
                        "{what}"
                    );
                }
                ("continuous", "mean_difference") => {
                    finite(c, &["differences", "0", "difference"]);
                    finite(c, &["differences", "0", "lower"]);
                    finite(c, &["differences", "0", "upper"]);
                    assert!(text.starts_with("difference in means by"), "{what}");
                }
                _ => panic!("no comparison of the endpoint's kind: {what}"),
            }
            // The sentence names what the plan adjusts for, as the protocol says.
            let plan = protocol.analysis.of(id);
            if plan.covariates.is_empty() {
                assert!(!text.contains("adjusted for"), "{what}");
            }
            for c in &plan.covariates {
                // `age (linear)` in a model; `` `site` `` among Mantel-Haenszel's strata.
                assert!(
                    text.contains(&format!("{c} (")) || text.contains(&format!("`{c}`")),
                    "{what}"
                );
            }
            if method == "binary" && !plan.covariates.is_empty() {
                finite(c, &["mantel_haenszel", "0", "odds_ratio", "estimate"]);
                finite(c, &["mantel_haenszel", "0", "risk_difference", "estimate"]);
            }
            assert!(text.ends_with("95% confidence intervals"), "{what}");
            seen.push((trial, id.to_string(), method.to_string(), text.to_string()));
        }
    }
    let sentence = |trial: &str, id: &str| {
        seen.iter()
            .find(|s| s.0 == trial && s.1 == id)
            .map(|s| s.3.clone())
            .unwrap_or_else(|| panic!("{trial} {id} not analysed"))
    };
    // TASTE adjusts death or reinfarction for age (linear) and sex (factor), both sent by
    // every enrolment; DAPA-HF-REG's NT-proBNP for its baseline value (left out of every
    // tenth enrolment: those patients are not in the ANCOVA) and age.
    assert!(
        sentence("taste", "death_or_mi_1y").contains(
            "adjusted for age (linear), sex (factor); complete cases (0 subjects without a \
             covariate value left out)"
        ),
        "{seen:?}"
    );
    let missing = (0..N).filter(|i| i % 10 == 3).count();
    assert!(
        sentence("dapa-hf-reg", "nt_probnp_6m").contains(&format!(
            "difference in means by ANCOVA (lm), stratified by the randomisation strata (site × \
             diabetes) as a factor, adjusted for nt_probnp (linear), age (linear); complete cases \
             ({missing} subjects without a covariate value left out)"
        )),
        "{seen:?}"
    );
    assert!(
        sentence("taste-cr", "mi_1y").contains("adjusted for age (linear)"),
        "{seen:?}"
    );
    // Every kind was seen.
    let methods: std::collections::BTreeSet<&str> = seen.iter().map(|s| s.2.as_str()).collect();
    assert_eq!(
        methods.into_iter().collect::<Vec<_>>(),
        [
            "binary",
            "competing_risks",
            "mean_difference",
            "rates",
            "survival"
        ]
    );

    // The DSMB's closed report draws NT-proBNP's differences in means by diabetes (the
    // stratification factor with two levels enrolled); the sponsor's page, blinded, does not.
    let out = rrct(&[
        "analyse",
        "--database",
        &db.url,
        "--trial",
        "dapa-hf-reg",
        "--format",
        "html",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "Differences in means by subgroup",
        "Difference in means of NT-proBNP at 6 months (ng/L) by diabetes",
        "diabetes = true",
    ] {
        assert!(report.contains(expected), "the report lacks `{expected}`");
    }
    let sponsor = app.token("sponsor", Some("dapa-hf-reg"), None).await;
    let cookie = support::session(&app, &sponsor).await;
    let page = app
        .client
        .get(format!("{}/trials/dapa-hf-reg", app.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("NT-proBNP at 6 months"), "{page}");
    assert!(
        !page.contains("Differences in means") && !page.contains("Difference in means"),
        "the sponsor's page shows a mean-difference forest"
    );
    app.stop().await;
}
