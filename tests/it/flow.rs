//! Screening reports, the CONSORT-ROUTINE flow and the blinded/unblinded views of it.

use serde_json::{json, Value};

use crate::support::{patient, TestApp, TestDb, TASTE};

crate::on_both_backends!(screenings_flow_and_blinding);

async fn report(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    app.post("/api/v1/trials/taste/screenings", token, &body)
        .await
}

async fn screenings_flow_and_blinding(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "flow").await;
    let register = app.token("register", None, None).await;
    let upp_host = app.token("register", Some("taste"), Some("UPP")).await;
    let sponsor = app.token("sponsor", None, None).await;
    let statistician = app.token("statistician", None, None).await;
    for i in 0..6 {
        let site = ["UPP", "KS"][i % 2];
        let (status, _) = app.enrol("taste", &register, &patient(i, site, "M")).await;
        assert_eq!(status, 201);
    }
    let mut ineligible = patient(10, "UPP", "F");
    ineligible["fields"]["diagnosis"] = json!("UA");
    assert_eq!(app.enrol("taste", &register, &ineligible).await.0, 422);

    let mut declined = patient(20, "UPP", "F");
    declined["reason"] = json!("consent_declined");
    let (status, first) = report(&app, &register, declined.clone()).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["outcome"], "not_randomised");
    let (status, again) = report(&app, &register, declined.clone()).await;
    assert_eq!((status, &again), (200, &first));
    let mut changed = declined.clone();
    changed["reason"] = json!("clinician_decision");
    assert_eq!(report(&app, &register, changed).await.0, 409);
    let mut bad_reason = patient(21, "UPP", "F");
    bad_reason["reason"] = json!("forgot");
    let (status, err) = report(&app, &register, bad_reason).await;
    assert_eq!(status, 422);
    assert_eq!(err["error"]["fields"][0]["field"], "reason");
    let mut randomised_record = patient(0, "UPP", "M");
    randomised_record["reason"] = json!("other");
    let (status, err) = report(&app, &register, randomised_record).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("already_randomised"))
    );
    let mut by_sponsor = patient(22, "UPP", "F");
    by_sponsor["reason"] = json!("other");
    assert_eq!(report(&app, &sponsor, by_sponsor).await.0, 403);

    // Unblinded analysis: the statistician only.
    let (status, analysis) = app
        .get("/api/v1/trials/taste/analysis", &statistician)
        .await;
    assert_eq!(status, 200, "{analysis}");
    let flow = &analysis["flow"];
    assert_eq!(flow["screened"], 8);
    assert_eq!(flow["not_eligible"], 1);
    assert_eq!(flow["not_eligible_by_criterion"], json!({"stemi": 1}));
    assert_eq!(flow["eligible"], 7);
    assert_eq!(
        flow["not_randomised_by_reason"],
        json!({"consent_declined": 1})
    );
    assert_eq!(flow["randomised"], 6);
    assert!((flow["inclusion_rate"].as_f64().unwrap() - 6.0 / 7.0).abs() < 1e-12);
    let by_arm = flow["randomised_by_arm"].as_object().unwrap();
    assert_eq!(by_arm.values().map(|v| v.as_u64().unwrap()).sum::<u64>(), 6);
    assert_eq!(analysis["endpoints"].as_array().unwrap().len(), 3);
    assert_eq!(
        app.get("/api/v1/trials/taste/analysis", &sponsor).await.0,
        403
    );
    assert_eq!(
        app.get("/api/v1/trials/taste/analysis", &register).await.0,
        403
    );

    // Blinded summary: no arm anywhere.
    let (status, summary) = app.get("/api/v1/trials/taste/summary", &sponsor).await;
    assert_eq!(status, 200);
    let text = summary.to_string();
    for arm in ["aspiration", "pci", "by_arm"] {
        assert!(
            !text.contains(arm),
            "sponsor summary mentions `{arm}`: {text}"
        );
    }
    assert_eq!(summary["flow"]["randomised"], 6);
    // A site-scoped register host sees its own site only.
    let (status, own) = app.get("/api/v1/trials/taste/summary", &upp_host).await;
    assert_eq!(status, 200);
    let sites: Vec<&str> = own["flow"]["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["site"].as_str().unwrap())
        .collect();
    assert_eq!(sites, ["UPP"]);
    assert!(!own.to_string().contains("\"KS\""), "{own}");
    // Its 3 randomised are a small count: released as "<5", never the number.
    assert_eq!(own["flow"]["randomised"], "<5");
    let (status, err) = app
        .get("/api/v1/trials/taste/summary?cutoff=2024-13-01", &sponsor)
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("invalid_query"))
    );
    app.stop().await;
}

#[test]
fn feasibility_counts_an_extract_and_locates_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("extract.csv");
    std::fs::write(
        &good,
        "site,date,age,sex,diagnosis,symptom_onset_hours,smoker\n\
         UPP,2024-01-03,64,F,STEMI,3.0,yes\n\
         UPP,2024-02-11,80,M,NSTEMI,5,no\n\
         KS,2024-03-30,55,M,STEMI,30,no\n\
         KS,2024-03-31,59,M,STEMI,1.5,\n",
    )
    .unwrap();
    let out = crate::support::rrct(&[
        "feasibility",
        "--protocol",
        "protocols/taste.toml",
        "--registrations",
        good.to_str().unwrap(),
        "--inclusion-rate",
        "0.5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["eligible"], 2);
    assert_eq!(
        report["not_eligible_by_criterion"],
        json!({"early": 1, "stemi": 1})
    );
    assert_eq!(report["months"], 3);
    // 7244 / (2/3 per month × 0.5) = 21732 months.
    assert!((report["projected_months_to_target"].as_f64().unwrap() - 21732.0).abs() < 1e-6);

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "site,date,age,sex,diagnosis,symptom_onset_hours\nUPP,2024-01-03,sixty,F,STEMI,3\nUPP,2024-14-01,60,F,STEMI,3\n").unwrap();
    let out = crate::support::rrct(&[
        "feasibility",
        "--protocol",
        "protocols/taste.toml",
        "--registrations",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2:3: age:", bad.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:3:2: date:", bad.display())),
        "{stderr}"
    );
}
