//! Follow-up events in (HTTP batches and CSV import) and analysis data sets out.

use rrct::store::events;
use serde_json::{json, Value};

use crate::support::{day, patient, rrct, source_of, start, Kind, TestApp, TestDb, TASTE};

crate::on_both_backends!(
    http_batches_are_all_or_nothing_and_idempotent,
    csv_import_reports_lines_and_stores_nothing_on_error,
    a_large_import_keeps_the_subject_index_and_a_refused_one_changes_nothing,
    a_trial_s_events_read_back_exactly_as_delivered
);

fn event(id: &str, subject: &str, kind: &str, offset: i64) -> Value {
    json!({"event_id": id, "subject": subject, "type": kind, "date": day(offset), "source": source_of(kind)})
}

async fn http_batches_are_all_or_nothing_and_idempotent(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "events").await;
    // The operator's feed (an unscoped administrator): it may send events for any subject,
    // enrolled or not.
    let token = app.token("admin", None, None).await;
    let sponsor = app.token("sponsor", None, None).await;
    let batch = json!({"events": [
        event("E1", "S000001", "death", 3),
        event("E2", "S000002", "mi", 1),
        event("E3", "NOT-ENROLLED", "death", 2),
    ]});
    let (status, report) = app.post("/api/v1/events", &token, &batch).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report,
        json!({"received": 3, "stored": 3, "already_present": 0})
    );

    // Replaying the batch changes nothing.
    let audit_before = rrct::store::audit::entries(&app.store, None)
        .await
        .unwrap()
        .len();
    let (status, report) = app.post("/api/v1/events", &token, &batch).await;
    assert_eq!(status, 200);
    assert_eq!(
        report,
        json!({"received": 3, "stored": 0, "already_present": 3})
    );
    assert_eq!(events::count(&app.store).await.unwrap(), 3);
    assert_eq!(
        rrct::store::audit::entries(&app.store, None)
            .await
            .unwrap()
            .len(),
        audit_before
    );

    // One bad row: every bad row reported, nothing stored, not even the good rows.
    let bad = json!({"events": [
        event("E4", "S000003", "death", 1),
        {"event_id": "E5", "subject": "S000004", "type": "death", "date": "2024-02-30"},
        {"event_id": "E6", "type": "Death", "date": day(1)},
    ]});
    let (status, err) = app.post("/api/v1/events", &token, &bad).await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["code"], "invalid_events");
    let rows: Vec<(u64, String)> = err["error"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().unwrap(),
                r["field"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (1, "date".to_string()),
            (2, "subject".to_string()),
            (2, "type".to_string())
        ]
    );
    assert_eq!(events::count(&app.store).await.unwrap(), 3);

    // A known id with other content is a conflict; the batch's new rows are not stored either.
    let conflict =
        json!({"events": [event("E7", "S000005", "mi", 1), event("E1", "S000001", "death", 9)]});
    let (status, err) = app.post("/api/v1/events", &token, &conflict).await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "event_conflict");
    assert_eq!(err["error"]["rows"][0]["row"], 1);
    assert_eq!(err["error"]["rows"][0]["event_id"], "E1");
    assert_eq!(events::count(&app.store).await.unwrap(), 3);

    let (status, err) = app.post("/api/v1/events", &sponsor, &batch).await;
    assert_eq!(status, 403, "{err}");
    app.stop().await;
}

async fn csv_import_reports_lines_and_stores_nothing_on_error(db: TestDb) {
    // A database holding TASTE: the event types the import may carry are TASTE's.
    TestApp::spawn(&db, &[TASTE], "import").await.stop().await;
    let store = rrct::store::Store::connect(&db.url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "event_id,subject,type,date,code,value\nA1,S1,death,2024-01-05,,\nA2,S2,death,2024-13-01,,\nA3,S3,ldl,2024-01-05,,high\n",
    )
    .unwrap();
    let out = rrct(&[
        "import",
        "events",
        "--database",
        &db.url,
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3: date:", bad.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:4: value:", bad.display())),
        "{stderr}"
    );
    assert_eq!(events::count(&store).await.unwrap(), 0);

    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "subject,event_id,date,type,code,source\nS1,A1,2024-01-05,death,I21.4,\nS2,A2,2024-01-06,mi,,swedeheart\n",
    )
    .unwrap();
    for expected in ["2 stored, 0 already present", "0 stored, 2 already present"] {
        let out = rrct(&[
            "import",
            "events",
            "--database",
            &db.url,
            good.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(expected), "{stdout}");
    }
    assert_eq!(events::count(&store).await.unwrap(), 2);
    store.close().await;
}

/// The subject index's definition as the database holds it (SQLite), or its existence
/// (PostgreSQL), and whether a subject's events are found through it.
async fn subject_index(store: &rrct::store::Store, db: &TestDb) -> (Option<String>, bool) {
    use sqlx::Row;
    let definition = match db.kind {
        // With its root page: a rebuilt index has a new one.
        Kind::Sqlite => sqlx::query(
            "SELECT sql, rootpage FROM sqlite_master WHERE type = 'index' AND name = 'events_subject'",
        )
        .fetch_optional(store.pool())
        .await
        .unwrap()
        .map(|r| {
            let sql: String = r.try_get("sql").unwrap();
            let page: i64 = r.try_get("rootpage").unwrap();
            format!("{sql} @{page}")
        }),
        Kind::Postgres => {
            sqlx::query("SELECT indexdef FROM pg_indexes WHERE indexname = 'events_subject'")
                .fetch_optional(store.pool())
                .await
                .unwrap()
                .map(|r| r.try_get::<String, _>("indexdef").unwrap())
        }
    };
    let plan = match db.kind {
        Kind::Sqlite => {
            let rows = sqlx::query(
                "EXPLAIN QUERY PLAN SELECT * FROM events WHERE subject = 'P0000007' ORDER BY event_date",
            )
            .fetch_all(store.pool())
            .await
            .unwrap();
            rows.iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap())
                .any(|d| d.contains("events_subject"))
        }
        Kind::Postgres => definition.is_some(),
    };
    (definition, plan)
}

async fn a_large_import_keeps_the_subject_index_and_a_refused_one_changes_nothing(db: TestDb) {
    TestApp::spawn(&db, &[TASTE], "large-import")
        .await
        .stop()
        .await;
    let store = rrct::store::Store::connect(&db.url).await.unwrap();
    let (before, _) = subject_index(&store, &db).await;
    assert!(before.is_some(), "the migration made the index");
    let dir = tempfile::tempdir().unwrap();
    let csv = |name: &str, from: usize, n: usize, last_date: &str| {
        let path = dir.path().join(name);
        let mut text = String::from("event_id,subject,type,date,code,value,source\n");
        for i in from..from + n {
            let date = if i + 1 == from + n {
                last_date.to_string()
            } else {
                format!("2024-01-{:02}", 1 + i % 28)
            };
            text.push_str(&format!(
                "L{i:06},P{:07},death,{date},,,population_register\n",
                i % 7919
            ));
        }
        std::fs::write(&path, text).unwrap();
        path
    };
    let import = |path: &std::path::Path| {
        rrct(&[
            "import",
            "events",
            "--database",
            &db.url,
            path.to_str().unwrap(),
        ])
    };
    // More rows than the table holds (and than the rebuild threshold): stored, index kept.
    let first = csv("first.csv", 0, 60_000, "2024-02-01");
    let out = import(&first);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(events::count(&store).await.unwrap(), 60_000);
    let (after, used) = subject_index(&store, &db).await;
    let definition = |d: &Option<String>| {
        d.as_deref()
            .map(|d| d.split(" @").next().unwrap_or(d).to_string())
    };
    assert_eq!(
        definition(&after),
        definition(&before),
        "the index is the migration's"
    );
    if db.kind == Kind::Sqlite {
        assert_ne!(
            after, before,
            "built again (a new root page) after the rows were in"
        );
    }
    assert!(used, "a subject's events are found through the index");
    if db.kind == Kind::Sqlite {
        // A trial's read of its events finds them in the rebuilt index alone (migration 0013).
        use sqlx::Row;
        let sql = events::trial_read_statement(rrct::store::Backend::Sqlite);
        let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
            .bind("taste")
            .fetch_all(store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String, _>("detail").unwrap())
            .collect();
        assert!(
            plan.iter()
                .any(|d| d.contains("USING COVERING INDEX events_subject")),
            "a trial's events are read from the index alone: {plan:?}"
        );
    }
    // A larger import whose last row conflicts with a stored event: refused whole, and the
    // index (dropped for the rebuild inside the transaction) is still there.
    let second = csv("second.csv", 60_000, 70_000, "2024-03-01");
    let conflicting = std::fs::read_to_string(&second)
        .unwrap()
        .replacen("L129999,", "L000001,", 1);
    std::fs::write(&second, conflicting).unwrap();
    let out = import(&second);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("L000001"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        events::count(&store).await.unwrap(),
        60_000,
        "nothing stored"
    );
    assert_eq!(subject_index(&store, &db).await, (after, used));
    store.close().await;
}

/// Enrol the same patients and import the same events into a fresh database; export.
async fn exports(db: &TestDb) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let app = TestApp::spawn(db, &[TASTE], "exports").await;
    app.clock.set_today(start());
    let token = app.token("register", None, None).await;
    for i in 0..40 {
        let (status, _) = app
            .enrol(
                "taste",
                &token,
                &patient(i, ["UPP", "KS"][i % 2], ["F", "M"][i % 3 % 2]),
            )
            .await;
        assert_eq!(status, 201);
    }
    let mut csv = String::from("event_id,subject,type,date,source\n");
    for i in 0..40usize {
        match i % 5 {
            0 => csv += &format!("D{i},S{i:06},death,{},\n", day(10 + i as i64)),
            1 => {
                csv += &format!("M{i},S{i:06},mi,{},swedeheart\n", day(3));
                csv += &format!("D{i},S{i:06},death,{},\n", day(3));
            }
            2 => csv += &format!("X{i},S{i:06},emigration,{},\n", day(20)),
            3 if i == 3 => csv += &format!("D{i},S{i:06},death,{},\n", day(-2)),
            _ => {}
        }
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), csv).unwrap();
    let out = rrct(&[
        "import",
        "events",
        "--database",
        &db.url,
        file.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.stop().await;
    // The events were imported today: the data are complete as of today.
    let cutoff = chrono::Utc::now().date_naive().to_string();
    let run = |args: &[&str]| {
        let out = rrct(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let base = [
        "export",
        "adtte",
        "--database",
        &db.url,
        "--trial",
        "taste",
        "--cutoff",
        &cutoff,
    ];
    let primary = run(&[&base[..], &["--endpoint", "death_1y"]].concat());
    let composite = run(&[&base[..], &["--endpoint", "death_or_mi_1y"]].concat());
    let adsl = run(&[
        "export",
        "adsl",
        "--database",
        &db.url,
        "--trial",
        "taste",
        "--cutoff",
        &cutoff,
    ]);
    (primary, composite, adsl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_byte_identical_across_runs_and_backends() {
    let first = exports(&TestDb::sqlite()).await;
    let second = exports(&TestDb::sqlite()).await;
    assert_eq!(first, second, "two runs differ");
    let text = String::from_utf8(first.0.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "record_id,subject,site,arm,stratum,randomised_on,time_days,event,censor_reason,source,\
         source_event_id"
    );
    assert_eq!(lines.len(), 41);
    // Patient 0 died on day 10; patient 2 emigrated on day 20; patient 4 is followed to the
    // horizon. Each row names the register and the event it comes from.
    assert!(
        lines[1].starts_with("R000000,S000000,UPP,")
            && lines[1].ends_with(",10,1,,population_register,D0"),
        "{}",
        lines[1]
    );
    assert!(
        lines[3].ends_with(",20,0,emigration,population_register,X2"),
        "{}",
        lines[3]
    );
    assert!(lines[5].ends_with(",365,0,horizon,,"), "{}", lines[5]);
    // Patient 1: MI and death the same day count once in the composite (the death, first by
    // event id), and the MI stands in the quality register's name.
    let composite = String::from_utf8(first.1.clone()).unwrap();
    assert!(
        composite
            .lines()
            .nth(2)
            .unwrap()
            .ends_with(",3,1,,population_register,D1"),
        "{composite}"
    );
    // Patient 3 died before randomisation: flagged in ADSL, not an outcome.
    let adsl = String::from_utf8(first.2.clone()).unwrap();
    assert!(
        adsl.lines()
            .next()
            .unwrap()
            .contains("strat_site,strat_sex,"),
        "{adsl}"
    );
    let row3 = adsl.lines().find(|l| l.starts_with("R000003,")).unwrap();
    assert!(row3.contains(",1,death on "), "{row3}");
    assert!(lines[4].ends_with(",365,0,horizon,,"), "{}", lines[4]);
    if let Some(pg) = TestDb::of(Kind::Postgres).await {
        let on_postgres = exports(&pg).await;
        assert_eq!(first, on_postgres, "SQLite and PostgreSQL exports differ");
    }
}

/// The unblinded analysis compares arms with the statistics core on the same rows the ADTTE
/// export holds: refitting from the exported CSV gives the same hazard ratio and log-rank test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_matches_a_refit_of_the_exported_adtte() {
    let db = TestDb::sqlite();
    let (primary, _, _) = exports(&db).await;
    let cutoff = chrono::Utc::now().date_naive().to_string();
    let analysis = analyse_json(&db, &cutoff);
    let death = analysis["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "death_1y")
        .unwrap();
    let cmp = &death["comparison"];
    assert_eq!(cmp["method"], "survival", "{cmp}");
    assert_eq!(cmp["reference_arm"], "pci");

    let text = String::from_utf8(primary).unwrap();
    let (time, event, aspiration) = adtte_columns(&text);
    let fit = refit(&time, &event, &aspiration);
    let hr = cmp["hazard_ratios"][0]["hr"].as_f64().unwrap();
    assert!(
        (hr - fit.coefficients[0].hr.unwrap()).abs() < 1e-12,
        "{hr} vs {:?}",
        fit.coefficients[0]
    );
    let groups: Vec<usize> = aspiration
        .iter()
        .map(|a| if *a == 1.0 { 0 } else { 1 })
        .collect();
    let lr = rrct::stats::logrank::log_rank(&time, &event, &groups, 2, None).unwrap();
    assert!((cmp["logrank"]["chisq"].as_f64().unwrap() - lr.chisq).abs() < 1e-12);
    let events: u64 = death["groups"]
        .as_object()
        .unwrap()
        .values()
        .map(|g| g["events"].as_u64().unwrap())
        .sum();
    assert_eq!(events as usize, fit.events);
}

/// Interim looks are reconstructed at the day their event count was reached, z comes from the
/// Cox fit at that cut-off, and a later report shows the same first look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_looks_are_held_at_their_event_counts() {
    let db = TestDb::sqlite();
    let protocol = crate::support::taste_variant(
        "taste",
        &[
            ("planned_events = 400", "planned_events = 10"),
            ("looks = [0.66, 1.0]", "looks = [0.5, 1.0]"),
            // Deaths reported on the day they happen, as the looks below count.
            ("reporting_lag_days = 7", "reporting_lag_days = 0"),
        ],
    );
    let app = TestApp::spawn(&db, &[&protocol], "interim").await;
    app.clock.set_today(start());
    let token = app.token("register", None, None).await;
    for i in 0..40 {
        let (status, _) = app
            .enrol("taste", &token, &patient(i, "UPP", ["F", "M"][i % 2]))
            .await;
        assert_eq!(status, 201);
    }
    // Twelve deaths on days 10, 20, ..., 120.
    let events: Vec<Value> = (0..12)
        .map(|k| {
            event(
                &format!("D{k}"),
                &format!("S{:06}", k * 3),
                "death",
                10 * (k as i64 + 1),
            )
        })
        .collect();
    app.deliver_on_their_days(&token, &events).await;
    app.stop().await;
    let analyse = |cutoff: &str| analyse_json(&db, cutoff);
    let early = analyse(&day(70));
    let interim = &early["interim"]["comparisons"][0];
    assert_eq!(interim["events"], 7);
    let looks = interim["looks"].as_array().unwrap();
    assert_eq!(looks.len(), 1, "{interim}");
    assert_eq!(looks[0]["events"], 5);
    assert_eq!(looks[0]["cutoff"], day(50));
    assert!(looks[0]["conditional_power_trend"].is_number());
    // z at the look is the Cox Wald z of a refit on the ADTTE exported as of the look's cut-off,
    // oriented so that benefit of the experimental arm is positive.
    let out = rrct(&[
        "export",
        "adtte",
        "--database",
        &db.url,
        "--trial",
        "taste",
        "--endpoint",
        "death_1y",
        "--cutoff",
        &day(50),
    ]);
    let (time, died, aspiration) = adtte_columns(&String::from_utf8(out.stdout).unwrap());
    let fit = refit(&time, &died, &aspiration);
    let c = &fit.coefficients[0];
    let z = looks[0]["z"].as_f64().unwrap();
    assert!(
        (z + c.coef.unwrap() / c.se.unwrap()).abs() < 1e-9,
        "{z} vs {c:?}"
    );
    assert!((looks[0]["hazard_ratio"].as_f64().unwrap() - c.hr.unwrap()).abs() < 1e-9);

    let later = analyse(&day(300));
    let looks_later = later["interim"]["comparisons"][0]["looks"]
        .as_array()
        .unwrap();
    assert_eq!(looks_later.len(), 2, "{}", later["interim"]);
    assert_eq!(looks_later[0], looks[0], "a held look must not change");
    assert_eq!(looks_later[1]["events"], 10);
    assert_eq!(looks_later[1]["cutoff"], day(100));
    let crossed = looks_later[1]["crossed"].as_bool().unwrap();
    let z2 = looks_later[1]["z"].as_f64().unwrap().abs();
    assert_eq!(crossed, z2 >= looks_later[1]["upper_z"].as_f64().unwrap());
    // The sponsor's summary never carries it.
    let blinded = serde_json::to_value(
        crate::support::prepared(
            &rrct::store::Store::connect(&db.url).await.unwrap(),
            "taste",
            rrct::endpoints::DataCutoff(start() + chrono::Days::new(300)),
        )
        .await
        .analysis
        .clone()
        .blinded(),
    )
    .unwrap();
    assert!(blinded.get("interim").is_none());
}

/// Time, event and an aspiration-arm indicator from an ADTTE export.
fn adtte_columns(adtte: &str) -> (Vec<f64>, Vec<bool>, Vec<f64>) {
    let (mut time, mut event, mut aspiration) = (vec![], vec![], vec![]);
    for line in adtte.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        time.push(cols[6].parse::<f64>().unwrap());
        event.push(cols[7] == "1");
        aspiration.push(if cols[3] == "aspiration" { 1.0 } else { 0.0 });
    }
    (time, event, aspiration)
}

/// A Cox fit of the aspiration indicator, independent of the analysis under test.
fn refit(time: &[f64], event: &[bool], aspiration: &[f64]) -> rrct::stats::cox::CoxFit {
    rrct::stats::cox::cox_ph(
        &rrct::stats::cox::CoxData {
            time,
            event,
            covariates: vec![rrct::stats::cox::Covariate {
                name: "aspiration",
                values: aspiration,
            }],
            strata: None,
        },
        &Default::default(),
    )
    .unwrap()
}

/// `rrct analyse` as of `cutoff`, parsed.
fn analyse_json(db: &TestDb, cutoff: &str) -> Value {
    let out = rrct(&[
        "analyse",
        "--database",
        &db.url,
        "--trial",
        "taste",
        "--cutoff",
        cutoff,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An event's id, code, value and source.
type ReadBack = (String, Option<String>, Option<f64>, Option<String>);

/// A trial's events read back (`events::for_trial`, the read every held-data and plain read
/// of a trial uses) exactly as delivered: codes with the characters a text may hold, values
/// that need every digit, absent codes and values. On PostgreSQL the columns are read as
/// joined texts; a value holding the separator (written past the intake, which refuses it)
/// is still read back exactly.
async fn a_trial_s_events_read_back_exactly_as_delivered(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "read-back").await;
    let register = app.token("register", Some("taste"), None).await;
    for i in 1..=2 {
        let (status, body) = app.enrol("taste", &register, &patient(i, "UPP", "F")).await;
        assert_eq!(status, 201, "{body}");
    }
    let token = app.token("admin", None, None).await;
    let codes = [
        None,
        Some("+"),
        Some("I21.4"),
        Some("a \"quoted\", back\\slash"),
        Some("Åland ö 東京 😀"),
        Some("+I21"),
    ];
    let values = [
        None,
        Some(0.1),
        Some(-2.5e-300),
        Some(9_007_199_254_740_993.0),
        Some(f64::MAX),
        Some(1.0 / 3.0),
    ];
    let mut sent = Vec::new();
    for (i, (code, value)) in codes.iter().zip(values).enumerate() {
        let mut e = event(
            &format!("X{i}"),
            &format!("S{:06}", 1 + i % 2),
            "mi",
            i as i64,
        );
        e["code"] = json!(code);
        e["value"] = json!(value);
        sent.push(e);
    }
    // And doubles of every kind: random bit patterns (subnormals, every exponent, 17 digits).
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    while sent.len() < 400 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let value = f64::from_bits(z ^ (z >> 31));
        if value.is_finite() {
            let i = sent.len();
            let mut e = event(&format!("X{i}"), &format!("S{:06}", 1 + i % 2), "mi", 0);
            e["value"] = json!(value);
            sent.push(e);
        }
    }
    let (status, report) = app
        .post("/api/v1/events", &token, &json!({ "events": sent }))
        .await;
    assert_eq!(status, 200, "{report}");
    let read = |store: rrct::store::Store| async move {
        let mut read: Vec<ReadBack> = events::for_trial(&store, "taste")
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.event.event_id,
                    r.event.code,
                    r.event.value,
                    r.event.source,
                )
            })
            .collect();
        read.sort_by(|a, b| a.0.cmp(&b.0));
        read
    };
    let mut expected: Vec<ReadBack> = sent
        .iter()
        .map(|e| {
            (
                e["event_id"].as_str().unwrap().to_string(),
                e["code"].as_str().map(str::to_string),
                e["value"].as_f64(),
                e["source"].as_str().map(str::to_string),
            )
        })
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let equal = |got: &[ReadBack], expected: &[ReadBack]| {
        assert_eq!(got.len(), expected.len());
        for (got, want) in got.iter().zip(expected) {
            assert_eq!(got, want);
        }
    };
    let got = read(app.store.clone()).await;
    equal(&got, &expected);
    for ((id, _, got, _), (_, _, want, _)) in got.iter().zip(&expected) {
        assert_eq!(
            got.map(f64::to_bits),
            want.map(f64::to_bits),
            "{id}: every bit of {want:?}"
        );
    }
    // A code holding the separator and an event with no source, written past the intake
    // (which refuses both here).
    sqlx::query("UPDATE events SET code = $1 WHERE event_id = $2")
        .bind("in\u{1f}between")
        .bind("X2")
        .execute(app.store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE events SET source = NULL WHERE event_id = $1")
        .bind("X5")
        .execute(app.store.pool())
        .await
        .unwrap();
    let at = |id: &str| expected.iter().position(|e| e.0 == id).unwrap();
    let (two, five) = (at("X2"), at("X5"));
    expected[two].1 = Some("in\u{1f}between".to_string());
    expected[five].3 = None;
    equal(&read(app.store.clone()).await, &expected);
    app.stop().await;
}
