//! Consent as data, the objection list, withdrawal and the representativeness of the
//! randomised (issue 22), over HTTP and the CLI, on both backends: each consent model takes its
//! consent and refuses the rest with the field named (nothing written); a deferred consent
//! overdue shows on the statistician's page and in `rrct analyse`; a patient on the objection
//! list is refused and counted in the flow, never randomised; each withdrawal scope's effect on
//! ADTTE, ADSL, the flow and the analysis, against rows computed by hand; and the sponsor's
//! copy of the representativeness table with its small cells suppressed.

use serde_json::{json, Value};

use crate::support::{day, rrct, start, taste_variant, TestApp, TestDb};

crate::on_both_backends!(
    each_consent_model_takes_its_consent,
    deferred_consent_overdue_and_confirmed,
    objection_list_refuses_and_counts,
    withdrawal_scopes_shape_exports_flow_and_analysis,
    representativeness_is_suppressed_for_the_sponsor,
);

const SEED: &str = "participation";

/// TASTE as `trial` under consent model `model` (`extra` lines after it).
fn with_model(trial: &str, model: &str, extra: &str) -> String {
    taste_variant(
        trial,
        &[
            (
                "consent = \"oral\"",
                &format!("consent = \"{model}\"\n{extra}"),
            ),
            ("data_use_withdrawal = false", ""),
        ],
    )
}

fn body(record: &str, site: &str, age: i64, sex: &str, consent: Option<Value>) -> Value {
    let mut b = json!({
        "record_id": record, "subject": format!("S-{record}"), "site": site,
        "fields": {"age": age, "sex": sex, "diagnosis": "STEMI", "symptom_onset_hours": 2.0}
    });
    if let Some(c) = consent {
        b["consent"] = c;
    }
    b
}

fn oral(on: &str) -> Value {
    json!({"kind": "oral", "taken_by": "op-1", "taken_at": on})
}

/// Rows a refused request must not have added to.
async fn written(app: &TestApp) -> Vec<i64> {
    let mut out = Vec::new();
    for table in [
        "allocations",
        "screening_log",
        "audit_log",
        "enrolment_consents",
        "withdrawals",
        "objections",
    ] {
        out.push(
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(app.store.pool())
                .await
                .unwrap(),
        );
    }
    out
}

async fn outbox_count(app: &TestApp, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(app.store.pool())
        .await
        .unwrap()
}

/// Sign in with a token and read the trial's page (`&#60;` spelt `&lt;`).
async fn page(app: &TestApp, token: &str, trial: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(format!("{}/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    let r = client
        .get(format!("{}/trials/{trial}", app.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.text().await.unwrap().replace("&#60;", "&lt;")
}

/// The kind stored (`None`: none, under a waiver), or the field a refusal names.
type Expected = Result<Option<&'static str>, &'static str>;

async fn each_consent_model_takes_its_consent(db: TestDb) {
    let sources = [
        with_model("m_oral", "oral", ""),
        with_model("m_written", "written", ""),
        with_model("m_deferred", "deferred", "deferred_consent_days = 30"),
        with_model("m_opt_out", "opt_out", ""),
        with_model("m_waiver", "waiver", ""),
    ];
    let app = TestApp::spawn(
        &db,
        &sources.iter().map(String::as_str).collect::<Vec<_>>(),
        SEED,
    )
    .await;
    let register = app.token("register", None, None).await;
    let today = chrono::Utc::now().date_naive();
    let tomorrow = (today + chrono::Days::new(1)).to_string();
    let today = today.to_string();
    let written_consent = json!({"kind": "written", "taken_by": "dr-2", "taken_at": today});
    // (trial, consent sent, the field a refusal names; None: accepted, with the kind stored)
    let cases: Vec<(&str, Option<Value>, Expected)> = vec![
        ("m_oral", None, Err("consent")),
        (
            "m_oral",
            Some(json!({"kind": "deferred"})),
            Err("consent.kind"),
        ),
        (
            "m_oral",
            Some(json!({"kind": "oral", "taken_by": "op-1"})),
            Err("consent.taken_at"),
        ),
        ("m_oral", Some(oral(&tomorrow)), Err("consent.taken_at")),
        (
            "m_oral",
            Some(json!({"kind": "oral", "taken_by": "19121212-1212", "taken_at": today})),
            Err("consent.taken_by"),
        ),
        ("m_oral", Some(json!("oral")), Err("consent")),
        ("m_oral", Some(oral(&today)), Ok(Some("oral"))),
        ("m_oral", Some(written_consent.clone()), Ok(Some("written"))),
        ("m_written", Some(oral(&today)), Err("consent.kind")),
        ("m_written", None, Err("consent")),
        (
            "m_written",
            Some(written_consent.clone()),
            Ok(Some("written")),
        ),
        ("m_deferred", None, Err("consent")),
        (
            "m_deferred",
            Some(json!({"kind": "deferred", "taken_by": "op-1"})),
            Err("consent.taken_by"),
        ),
        (
            "m_deferred",
            Some(json!({"kind": "deferred"})),
            Ok(Some("deferred")),
        ),
        ("m_deferred", Some(oral(&today)), Ok(Some("oral"))),
        ("m_opt_out", Some(oral(&today)), Err("consent.kind")),
        ("m_opt_out", None, Ok(Some("opt_out_not_objected"))),
        (
            "m_opt_out",
            Some(json!({"kind": "opt_out_not_objected"})),
            Ok(Some("opt_out_not_objected")),
        ),
        ("m_waiver", Some(oral(&today)), Err("consent")),
        ("m_waiver", None, Ok(None)),
    ];
    for (i, (trial, consent, expected)) in cases.into_iter().enumerate() {
        let record = format!("C{i:02}");
        let b = body(&record, "UPP", 60, "M", consent.clone());
        let before = written(&app).await;
        let (status, answer) = app.enrol(trial, &register, &b).await;
        match expected {
            Err(field) => {
                assert_eq!(status, 422, "{trial} {consent:?}: {answer}");
                assert_eq!(answer["error"]["code"], "invalid_enrolment", "{answer}");
                let fields: Vec<&str> = answer["error"]["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["field"].as_str().unwrap())
                    .collect();
                assert_eq!(fields, [field], "{trial} {consent:?}: {answer}");
                assert_eq!(written(&app).await, before, "{trial}: a refusal wrote");
            }
            Ok(kind) => {
                assert_eq!(status, 201, "{trial} {consent:?}: {answer}");
                let stored: Option<String> = sqlx::query_scalar(
                    "SELECT kind FROM enrolment_consents WHERE trial_id = $1 AND record_id = $2",
                )
                .bind(trial)
                .bind(&record)
                .fetch_optional(app.store.pool())
                .await
                .unwrap();
                assert_eq!(stored.as_deref(), kind, "{trial} {consent:?}");
                // A retry of the same body replays the allocation.
                assert_eq!(app.enrol(trial, &register, &b).await.0, 200);
            }
        }
    }
    app.stop().await;
}

async fn deferred_consent_overdue_and_confirmed(db: TestDb) {
    let trial = "d_deferred";
    let source = with_model(trial, "deferred", "deferred_consent_days = 30");
    let app = TestApp::spawn(&db, &[&source], SEED).await;
    let register = app.token("register", None, None).await;
    let statistician = app.token("statistician", Some(trial), None).await;
    app.clock.set_today(start());
    for (record, consent) in [
        ("D1", json!({"kind": "deferred"})),
        ("D2", json!({"kind": "deferred"})),
        ("D3", json!({"kind": "deferred"})),
        ("D4", oral(&day(0))),
    ] {
        let (status, answer) = app
            .enrol(
                trial,
                &register,
                &body(record, "UPP", 70, "F", Some(consent)),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    app.clock.set_today(start() + chrono::Days::new(10));
    let path = |record: &str| format!("/api/v1/trials/{trial}/enrolments/{record}/consent");
    let confirmation = json!({"kind": "written", "taken_by": "nurse-2", "taken_at": day(10)});
    let (status, answer) = app.post(&path("D1"), &register, &confirmation).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["deadline"], day(30));
    assert_eq!(answer["within_deadline"], true);
    // Refusals write nothing.
    let before = written(&app).await;
    for (record, body, status, code) in [
        ("D1", confirmation.clone(), 409, "consent_already_confirmed"),
        ("D4", confirmation.clone(), 409, "consent_not_deferred"),
        ("D2", json!({"kind": "deferred"}), 422, "invalid_request"),
        (
            "D2",
            json!({"kind": "oral", "taken_by": "n", "taken_at": day(-1)}),
            422,
            "invalid_request",
        ),
        ("D9", confirmation.clone(), 404, "enrolment_not_found"),
    ] {
        let (s, answer) = app.post(&path(record), &register, &body).await;
        assert_eq!(
            (s, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{answer}"
        );
    }
    let (s, _) = app.post(&path("D2"), &statistician, &confirmation).await;
    assert_eq!(s, 403);
    assert_eq!(written(&app).await, before);
    // D3 withdrew (the relatives declined): no longer awaited.
    let (s, answer) = app
        .post(
            &format!("/api/v1/trials/{trial}/enrolments/D3/withdrawal"),
            &register,
            &json!({"withdrawn_on": day(5), "scope": "no_further_contact"}),
        )
        .await;
    assert_eq!(s, 201, "{answer}");

    // Forty days on, D2 is ten days past its deadline (randomised on day 0, 30 days allowed).
    app.clock.set_today(start() + chrono::Days::new(40));
    let (s, analysis) = app
        .get(&format!("/api/v1/trials/{trial}/analysis"), &statistician)
        .await;
    assert_eq!(s, 200, "{analysis}");
    let p = &analysis["participation"];
    assert_eq!(
        p["deferred_overdue"],
        json!([{"record_id": "D2", "site": "UPP", "randomised_on": day(0),
                "deadline": day(30), "days_overdue": 10}]),
        "{p}"
    );
    assert_eq!(p["deferred_confirmed"], 1);
    assert_eq!(p["deferred_pending"], 0);
    assert_eq!(p["consent_by_kind"], json!({"deferred": 3, "oral": 1}));
    let html = page(&app, &statistician, trial).await;
    let table = &html[html.find("id=\"overdue-consents\"").expect("overdue table")..];
    assert!(table.contains("<td>D2</td>") && !table.contains("<td>D1</td>"));

    // `rrct analyse` as of the same day says the same.
    let out = rrct(&[
        "analyse",
        "--database",
        &db.url,
        "--trial",
        trial,
        "--cutoff",
        &day(40),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["participation"], *p);
    // As of day 20 nothing is overdue yet.
    let out = rrct(&[
        "analyse",
        "--database",
        &db.url,
        "--trial",
        trial,
        "--cutoff",
        &day(20),
    ]);
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["participation"]["deferred_overdue"], json!([]));
    assert_eq!(cli["participation"]["deferred_pending"], 1);

    assert_eq!(outbox_count(&app, "rrct.consent.confirmed").await, 1);
    let audited: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'consent_confirmed'")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(audited, 1);
    app.stop().await;
}

async fn objection_list_refuses_and_counts(db: TestDb) {
    let trial = "o_opt_out";
    let source = with_model(trial, "opt_out", "");
    let app = TestApp::spawn(&db, &[&source], SEED).await;
    let register = app.token("register", None, None).await;
    let admin = app.token("admin", Some(trial), None).await;
    let statistician = app.token("statistician", Some(trial), None).await;
    let objections = format!("/api/v1/trials/{trial}/objections");
    // The list takes ids in their canonical form: "Å" written as A + combining ring is one
    // subject with "Å" (NFC), as the enrolment reads it.
    let (s, _) = app
        .post(&objections, &register, &json!({"subject": "A\u{030A}S1"}))
        .await;
    assert_eq!(s, 403);
    let (s, answer) = app
        .post(&objections, &admin, &json!({"subject": "A\u{030A}S1"}))
        .await;
    assert_eq!(
        (s, answer["changed"].as_bool()),
        (201, Some(true)),
        "{answer}"
    );
    assert_eq!(answer["subject"], "\u{00C5}S1");
    let (s, answer) = app
        .post(&objections, &admin, &json!({"subject": "\u{00C5}S1"}))
        .await;
    assert_eq!((s, answer["changed"].as_bool()), (200, Some(false)));
    let (s, answer) = app
        .post(&objections, &admin, &json!({"subject": " S2"}))
        .await;
    assert_eq!(
        (s, answer["error"]["fields"][0]["field"].as_str()),
        (422, Some("subject"))
    );
    // The operator's CLI.
    let out = rrct(&[
        "objection",
        "add",
        "--database",
        &db.url,
        "--trial",
        trial,
        "OS2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = rrct(&["objection", "list", "--database", &db.url, "--trial", trial]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let subjects: Vec<&str> = listed["objections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["OS2", "\u{00C5}S1"]);

    let mut objecting = body("O1", "UPP", 60, "M", None);
    objecting["subject"] = json!("\u{00C5}S1");
    let (s, answer) = app.enrol(trial, &register, &objecting).await;
    assert_eq!(
        (s, answer["error"]["code"].as_str()),
        (422, Some("objected")),
        "{answer}"
    );
    // A retry is refused again and not recorded twice.
    let before = written(&app).await;
    assert_eq!(app.enrol(trial, &register, &objecting).await.0, 422);
    assert_eq!(written(&app).await, before);
    let mut second = body("O2", "KS", 70, "F", None);
    second["subject"] = json!("OS2");
    assert_eq!(app.enrol(trial, &register, &second).await.0, 422);
    // An ineligible patient on the list is refused as not eligible (counted there).
    let mut ineligible = body("O3", "KS", 12, "F", None);
    ineligible["subject"] = json!("OS2");
    let (s, answer) = app.enrol(trial, &register, &ineligible).await;
    assert_eq!(
        (s, answer["error"]["code"].as_str()),
        (422, Some("not_eligible"))
    );
    assert_eq!(
        app.enrol(trial, &register, &body("O4", "UPP", 50, "M", None))
            .await
            .0,
        201
    );
    let allocated: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM allocations WHERE subject IN ('\u{00C5}S1', 'OS2')",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!(allocated, 0, "never randomised");

    let (_, analysis) = app
        .get(&format!("/api/v1/trials/{trial}/analysis"), &statistician)
        .await;
    let flow = &analysis["flow"];
    assert_eq!(flow["screened"], 4, "{flow}");
    assert_eq!(flow["not_eligible"], 1);
    assert_eq!(flow["not_randomised"], 2);
    assert_eq!(flow["not_randomised_by_reason"], json!({"objected": 2}));
    assert_eq!(flow["randomised"], 1);
    assert_eq!(outbox_count(&app, "rrct.screening.recorded").await, 3);

    // Taken off the list, the patient can be randomised (the same request).
    let (s, answer) = app.get(&objections, &admin).await;
    assert_eq!(
        (s, answer["objections"].as_array().map(Vec::len)),
        (200, Some(2))
    );
    let r = app
        .client
        .delete(format!("{}{objections}/OS2", app.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (s, answer) = app.enrol(trial, &register, &second).await;
    assert_eq!(s, 201, "{answer}");
    app.stop().await;
}

async fn withdrawal_scopes_shape_exports_flow_and_analysis(db: TestDb) {
    let trial = "w_data";
    let source = taste_variant(
        trial,
        &[("data_use_withdrawal = false", "data_use_withdrawal = true")],
    );
    let keep = taste_variant("w_keep", &[]);
    let app = TestApp::spawn(&db, &[&source, &keep], SEED).await;
    let register = app.token("register", None, None).await;
    let ks_register = app.token("register", Some(trial), Some("KS")).await;
    let sponsor = app.token("sponsor", Some(trial), None).await;
    let statistician = app.token("statistician", Some(trial), None).await;
    app.clock.set_today(start());
    for i in 1..=6 {
        let record = format!("W{i}");
        let (s, answer) = app
            .enrol(
                trial,
                &register,
                &body(&record, "UPP", 50 + i, "M", Some(oral(&day(0)))),
            )
            .await;
        assert_eq!(s, 201, "{answer}");
    }
    let (s, _) = app
        .enrol(
            "w_keep",
            &register,
            &body("K1", "UPP", 60, "F", Some(oral(&day(0)))),
        )
        .await;
    assert_eq!(s, 201);
    // Deaths of W1 on day 40 and W2 on day 50.
    let events: Vec<Value> = [("W1", 40), ("W2", 50)]
        .iter()
        .map(|(r, d)| {
            json!({"event_id": format!("death-{r}"), "subject": format!("S-{r}"), "type": "death",
                   "date": day(*d), "source": "population_register"})
        })
        .collect();
    app.deliver_on_their_days(&register, &events).await;

    let path = |trial: &str, record: &str| {
        format!("/api/v1/trials/{trial}/enrolments/{record}/withdrawal")
    };
    for (record, scope, on) in [
        ("W1", "no_further_contact", 10),
        ("W2", "no_further_data_collection", 20),
        ("W3", "data_use_withdrawn", 30),
    ] {
        let (s, answer) = app
            .post(
                &path(trial, record),
                &register,
                &json!({"withdrawn_on": day(on), "scope": scope, "reason": "patient's wish"}),
            )
            .await;
        assert_eq!(s, 201, "{answer}");
        assert_eq!(answer["scope"], scope);
    }
    // Refusals write nothing.
    let before = written(&app).await;
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Days::new(1)).to_string();
    let cases: Vec<(String, &str, Value, u16, &str)> = vec![
        (
            path("w_keep", "K1"),
            &register,
            json!({"withdrawn_on": day(5), "scope": "data_use_withdrawn"}),
            422,
            "data_use_withdrawal_not_allowed",
        ),
        (
            path(trial, "W2"),
            &register,
            json!({"withdrawn_on": day(25), "scope": "no_further_contact"}),
            409,
            "already_withdrawn",
        ),
        (
            path(trial, "W4"),
            &register,
            json!({"withdrawn_on": day(-1), "scope": "no_further_contact"}),
            422,
            "invalid_request",
        ),
        (
            path(trial, "W4"),
            &register,
            json!({"withdrawn_on": tomorrow, "scope": "no_further_contact"}),
            422,
            "invalid_request",
        ),
        (
            path(trial, "W4"),
            &register,
            json!({"withdrawn_on": day(5), "scope": "everything"}),
            422,
            "invalid_request",
        ),
        (
            path(trial, "W4"),
            &ks_register,
            json!({"withdrawn_on": day(5), "scope": "no_further_contact"}),
            404,
            "enrolment_not_found",
        ),
        (
            path(trial, "W4"),
            &sponsor,
            json!({"withdrawn_on": day(5), "scope": "no_further_contact"}),
            403,
            "forbidden",
        ),
    ];
    for (p, token, b, status, code) in cases {
        let (s, answer) = app.post(&p, token, &b).await;
        assert_eq!(
            (s, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{p} {b}: {answer}"
        );
    }
    assert_eq!(written(&app).await, before);
    assert_eq!(outbox_count(&app, "rrct.enrolment.withdrawn").await, 3);

    // ADTTE of the primary endpoint (1-year death), computed by hand: W1 withdrew from contact
    // only, so its death on day 40 counts; W2 stopped data collection on day 20, so it is
    // censored there and its death on day 50 is not used; W3 withdrew the use of its data and
    // has no row; the others are followed to the 365-day horizon event-free (the cut-off,
    // today, is 500 days after randomisation).
    let out = rrct(&[
        "export",
        "adtte",
        "--database",
        &db.url,
        "--trial",
        trial,
        "--endpoint",
        "death_1y",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<(String, String, String, String)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[0].into(), c[6].into(), c[7].into(), c[8].into())
        })
        .collect();
    let expected: Vec<(String, String, String, String)> = [
        ("W1", "40", "1", ""),
        ("W2", "20", "0", "withdrawal"),
        ("W4", "365", "0", "horizon"),
        ("W5", "365", "0", "horizon"),
        ("W6", "365", "0", "horizon"),
    ]
    .iter()
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
    .collect();
    assert_eq!(rows, expected, "{csv}");
    // The 30-day binary endpoint: W2 was not followed for 30 days, so it is incomplete.
    let out = rrct(&[
        "export",
        "adtte",
        "--database",
        &db.url,
        "--trial",
        trial,
        "--endpoint",
        "death_30d",
    ]);
    let csv = String::from_utf8(out.stdout).unwrap();
    let w2 = csv.lines().find(|l| l.starts_with("W2,")).unwrap();
    let c: Vec<&str> = w2.split(',').collect();
    assert_eq!((c[6], c[7], c[8]), ("20", "", "withdrawal"), "{w2}");

    // ADSL: W3 absent, the withdrawals flagged.
    let out = rrct(&["export", "adsl", "--database", &db.url, "--trial", trial]);
    let csv = String::from_utf8(out.stdout).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let scope = header
        .iter()
        .position(|c| *c == "withdrawal_scope")
        .unwrap();
    assert_eq!(header[scope + 1], "withdrawn_on");
    let adsl: Vec<(String, String, String)> = lines
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[0].into(), c[scope].into(), c[scope + 1].into())
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("W1", "no_further_contact", day(10)),
        ("W2", "no_further_data_collection", day(20)),
        ("W4", "", String::new()),
        ("W5", "", String::new()),
        ("W6", "", String::new()),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c))
    .collect();
    assert_eq!(adsl, expected, "{csv}");

    // The flow counts both kinds of withdrawal; the analysis uses five patients, one event.
    let (_, analysis) = app
        .get(&format!("/api/v1/trials/{trial}/analysis"), &statistician)
        .await;
    let flow = &analysis["flow"];
    assert_eq!(flow["randomised"], 6, "{flow}");
    assert_eq!(flow["withdrew_contact_only"], 1);
    assert_eq!(flow["withdrew_from_follow_up"], 2);
    assert_eq!(flow["withdrew_data_use"], 1);
    assert_eq!(flow["analysed"], 5);
    let primary = analysis["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["primary"] == true)
        .unwrap();
    let (subjects, events) =
        primary["groups"]
            .as_object()
            .unwrap()
            .values()
            .fold((0, 0), |(s, e), g| {
                (
                    s + g["subjects"].as_u64().unwrap(),
                    e + g["events"].as_u64().unwrap(),
                )
            });
    assert_eq!((subjects, events), (5, 1));
    assert_eq!(
        analysis["participation"]["withdrawn_by_scope"],
        json!({"no_further_contact": 1, "no_further_data_collection": 1, "data_use_withdrawn": 1})
    );
    // The sponsor sees the counts under disclosure control (1 and 2 are small), not by arm.
    let (_, summary) = app
        .get(&format!("/api/v1/trials/{trial}/summary"), &sponsor)
        .await;
    let released = &summary["flow"];
    assert_eq!(released["withdrew_from_follow_up"], "<5", "{released}");
    assert_eq!(released["withdrew_data_use"], "<5", "{released}");
    assert!(!summary.to_string().contains("_by_arm"));
    let html = page(&app, &statistician, trial).await;
    assert!(html.contains("Withdrew use of data (not analysed)"));
    let html = page(&app, &sponsor, trial).await;
    assert!(html.contains("Withdrew from data collection"));
    // No allocation is ever deleted.
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM allocations WHERE trial_id = $1")
        .bind(trial)
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(kept, 6);
    let out = rrct(&["audit", "verify", "--database", &db.url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.stop().await;
}

async fn representativeness_is_suppressed_for_the_sponsor(db: TestDb) {
    let trial = "r_taste";
    let source = taste_variant(trial, &[]);
    let app = TestApp::spawn(&db, &[&source], SEED).await;
    let register = app.token("register", None, None).await;
    let sponsor = app.token("sponsor", Some(trial), None).await;
    let statistician = app.token("statistician", Some(trial), None).await;
    app.clock.set_today(start());
    let randomised = [
        (50, "F"),
        (55, "M"),
        (60, "M"),
        (62, "F"),
        (70, "M"),
        (71, "M"),
        (80, "M"),
    ];
    let declined = [
        (65, "F"),
        (72, "M"),
        (78, "F"),
        (81, "M"),
        (85, "F"),
        (90, "M"),
    ];
    for (i, (age, sex)) in randomised.iter().enumerate() {
        let b = body(&format!("R{i}"), "UPP", *age, sex, Some(oral(&day(0))));
        assert_eq!(app.enrol(trial, &register, &b).await.0, 201);
    }
    for (i, (age, sex)) in declined.iter().enumerate() {
        let mut b = body(&format!("N{i}"), "UPP", *age, sex, None);
        b["reason"] = json!("consent_declined");
        let (s, answer) = app
            .post(&format!("/api/v1/trials/{trial}/screenings"), &register, &b)
            .await;
        assert_eq!(s, 201, "{answer}");
    }
    // By hand: means and sample SDs of the ages, and the standardised difference.
    let stats = |xs: &[f64]| {
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
        (m, v.sqrt())
    };
    let (m1, s1) = stats(&randomised.map(|(a, _)| a as f64));
    let (m0, s0) = stats(&declined.map(|(a, _)| a as f64));
    let d = (m1 - m0) / ((s1 * s1 + s0 * s0) / 2.0).sqrt();

    let (_, analysis) = app
        .get(&format!("/api/v1/trials/{trial}/analysis"), &statistician)
        .await;
    let r = &analysis["representativeness"];
    assert_eq!(
        (r["randomised"].as_u64(), r["not_randomised"].as_u64()),
        (Some(7), Some(6))
    );
    let field = |r: &Value, name: &str| -> Value {
        r["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == name)
            .cloned()
            .unwrap()
    };
    let age = field(r, "age");
    assert!((age["randomised"]["mean"].as_f64().unwrap() - m1).abs() < 1e-9);
    assert!(
        (age["standardised_difference"].as_f64().unwrap() - d).abs() < 1e-9,
        "{age}"
    );
    let sex = field(r, "sex");
    assert_eq!(sex["levels"][0]["randomised"], 2, "{sex}");
    assert!(sex["levels"][0]["standardised_difference"]
        .as_f64()
        .is_some());

    // The sponsor: the ages (7 and 6 values) are shown; the women (2 and 3) are not, nor
    // anything made of them.
    let (_, summary) = app
        .get(&format!("/api/v1/trials/{trial}/summary"), &sponsor)
        .await;
    let r = &summary["representativeness"];
    assert_eq!(
        (r["randomised"].as_u64(), r["not_randomised"].as_u64()),
        (Some(7), Some(6))
    );
    let age = field(r, "age");
    assert!(
        (age["standardised_difference"].as_f64().unwrap() - d).abs() < 1e-9,
        "{age}"
    );
    let sex = field(r, "sex");
    let women = &sex["levels"][0];
    assert_eq!(
        (
            women["randomised"].as_str(),
            women["not_randomised"].as_str()
        ),
        (Some("<5"), Some("<5")),
        "{sex}"
    );
    for level in sex["levels"].as_array().unwrap() {
        assert_eq!(level["standardised_difference"], Value::Null, "{sex}");
        assert_eq!(level["randomised_proportion"], Value::Null, "{sex}");
    }
    // Men: 5 of 7 randomised would give the women away: withheld.
    assert_eq!(sex["levels"][1]["randomised"], "withheld", "{sex}");

    let html = page(&app, &sponsor, trial).await;
    let section = &html[html
        .find("id=\"representativeness\"")
        .expect("table on the page")..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(section.contains("&lt;5"), "{section}");
    assert!(section.contains(&format!("{d:+.2}")), "{section}");
    let women_row = &section[section.find("<td>F</td>").unwrap()..];
    let women_row = &women_row[..women_row.find("</tr>").unwrap()];
    assert!(!women_row.contains('%'), "{women_row}");
    // The statistician's page shows it all.
    let html = page(&app, &statistician, trial).await;
    let section = &html[html.find("id=\"representativeness\"").unwrap()..];
    assert!(section.contains("2 (28.6%)"), "{section}");
    app.stop().await;
}
