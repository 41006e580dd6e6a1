//! Registers as sources over real HTTP: a `source` token delivers only its source's event types,
//! for the subjects of the trials declaring its source, and every refusal writes nothing; each
//! stored event keeps its source and the token that delivered it, and ADTTE names them; a source
//! that stops delivering is flagged stale on the pages and in `rrct analyse`.

use serde_json::{json, Value};
use sqlx::Row;

use crate::support::{day, patient, row_counts, rrct, taste_variant, TestApp, TestDb, TASTE};

crate::on_both_backends!(
    source_tokens_deliver_only_their_sources_types_for_their_trials,
    a_source_that_stops_delivering_is_stale_on_the_pages_and_in_analyse,
);

fn event(id: &str, subject: &str, kind: &str, date: &str) -> Value {
    json!({"event_id": id, "subject": subject, "type": kind, "date": date})
}

/// A trial like TASTE whose quality register is another source (`riks_hia`), so SWEDEHEART's
/// feed delivers nothing for its subjects.
fn other_trial() -> String {
    taste_variant(
        "other",
        &[
            ("[sources.swedeheart]", "[sources.riks_hia]"),
            (
                "mi = [\"patient_register\", \"swedeheart\"]",
                "mi = [\"patient_register\", \"riks_hia\"]",
            ),
        ],
    )
}

/// The first 12 hex digits of a token's hash: its public id.
fn token_id(token: &str) -> String {
    rrct::service::tokens::hash_token(token)[..12].to_string()
}

async fn stored(app: &TestApp, event_id: &str) -> (Option<String>, Option<String>) {
    let row = sqlx::query("SELECT source, token_id FROM events WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(app.store.pool())
        .await
        .expect("stored event");
    (row.get("source"), row.get("token_id"))
}

async fn source_tokens_deliver_only_their_sources_types_for_their_trials(db: TestDb) {
    let other = other_trial();
    let app = TestApp::spawn(&db, &[TASTE, &other], "sources").await;
    app.clock
        .set_today(chrono::NaiveDate::parse_from_str(&day(0), "%Y-%m-%d").unwrap());
    let register = app.token("register", Some("taste"), None).await;
    let other_register = app.token("register", Some("other"), None).await;
    assert_eq!(
        app.enrol("taste", &register, &patient(1, "UPP", "F"))
            .await
            .0,
        201
    );
    assert_eq!(
        app.enrol("other", &other_register, &patient(2, "UPP", "M"))
            .await
            .0,
        201
    );
    app.clock.set_today(chrono::Utc::now().date_naive());
    let swedeheart = app.source_token("swedeheart").await;
    let taste_subject = "S000001";
    let other_subject = "S000002";
    let on = day(30);

    // Accepted: the quality register's infarction for a TASTE subject, stored under its source
    // and the token that delivered it.
    let (status, body) = app
        .post(
            "/api/v1/events",
            &swedeheart,
            &json!({"events": [event("SH-1", taste_subject, "mi", &on)]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        stored(&app, "SH-1").await,
        (Some("swedeheart".into()), Some(token_id(&swedeheart)))
    );

    // Each refusal, with nothing written.
    let before = row_counts(&app.store).await;
    let refusals: [(&str, Value, u16, &str, &str); 5] = [
        (
            "another source's event type",
            json!({"events": [event("SH-2", taste_subject, "mi", &on), event("SH-3", taste_subject, "death", &on)]}),
            422,
            "source",
            "does not deliver event type `death`",
        ),
        (
            "a misspelled type",
            json!({"events": [event("SH-4", taste_subject, "deth", &on)]}),
            422,
            "type",
            "event type `deth` is not an event type of trial `taste`",
        ),
        (
            "another source named in the event",
            json!({"events": [{"event_id": "SH-5", "subject": taste_subject, "type": "mi", "date": on, "source": "patient_register"}]}),
            422,
            "source",
            "delivers for source `swedeheart`, but the event names source `patient_register`",
        ),
        (
            "a subject of a trial not declaring the source",
            json!({"events": [event("SH-6", other_subject, "mi", &on)]}),
            403,
            "subject",
            "not randomised in any trial that declares source `swedeheart`",
        ),
        (
            "a subject of no trial",
            json!({"events": [event("SH-7", "NOT-ENROLLED", "mi", &on)]}),
            403,
            "subject",
            "not randomised in any trial that declares source `swedeheart`",
        ),
    ];
    for (what, batch, expected, field, message) in refusals {
        let (status, body) = app.post("/api/v1/events", &swedeheart, &batch).await;
        assert_eq!(status, expected, "{what}: {body}");
        let rows = body["error"]["rows"].as_array().expect("rows");
        let last = rows.last().unwrap();
        assert_eq!(last["field"], field, "{what}: {body}");
        assert!(
            last["message"].as_str().unwrap().contains(message),
            "{what}: {body}"
        );
        // The row is named: the position of the offending event in the batch.
        assert_eq!(
            last["row"].as_u64(),
            Some(batch["events"].as_array().unwrap().len() as u64 - 1),
            "{what}"
        );
        assert_eq!(
            row_counts(&app.store).await,
            before,
            "{what} wrote something"
        );
    }

    // A register token names the source of a type two sources deliver, or is refused.
    let (status, body) = app
        .post(
            "/api/v1/events",
            &register,
            &json!({"events": [event("R-1", taste_subject, "mi", &on)]}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["rows"][0]["message"]
        .as_str()
        .unwrap()
        .contains("delivered by sources `patient_register`, `swedeheart`"));
    assert_eq!(row_counts(&app.store).await, before);
    let (status, body) = app
        .post(
            "/api/v1/events",
            &register,
            &json!({"events": [
                {"event_id": "R-1", "subject": taste_subject, "type": "mi", "date": day(40), "source": "patient_register"},
                event("R-2", taste_subject, "death", &day(60)),
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        stored(&app, "R-1").await,
        (Some("patient_register".into()), Some(token_id(&register)))
    );
    // A type one source delivers is attributed to it.
    assert_eq!(
        stored(&app, "R-2").await,
        (
            Some("population_register".into()),
            Some(token_id(&register))
        )
    );

    // A source's delivery with nothing new is recorded: the register is alive.
    let deliveries = rrct::store::deliveries::all(&app.store).await.unwrap();
    let (status, body) = app
        .post("/api/v1/events", &swedeheart, &json!({"events": []}))
        .await;
    assert_eq!(status, 200, "{body}");
    let after = rrct::store::deliveries::all(&app.store).await.unwrap();
    assert_eq!(after.len(), deliveries.len() + 1);
    assert_eq!(after.last().unwrap().source, "swedeheart");

    // Source tokens are bound at creation to a declared source.
    let refused = rrct::service::tokens::create_source_token(&app.store, "cause_of_death").await;
    assert!(refused
        .unwrap_err()
        .to_string()
        .contains("declares a source `cause_of_death`"),);
    let out = rrct(&["token", "create", "--database", &db.url, "--role", "source"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--source"));
    app.stop().await;

    // Provenance in ADTTE: the infarction the patient register reported, which takes precedence
    // over SWEDEHEART's, by its event id.
    let out = rrct(&[
        "export",
        "adtte",
        "--database",
        &db.url,
        "--trial",
        "taste",
        "--endpoint",
        "death_or_mi_1y",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let row = csv
        .lines()
        .find(|l| l.contains(taste_subject))
        .expect("the subject's row");
    // Randomised on day 0: once the patient register reported its infarction (day 40), it
    // replaces SWEDEHEART's (day 30).
    assert!(row.ends_with(",40,1,,patient_register,R-1"), "{csv}");
}

async fn a_source_that_stops_delivering_is_stale_on_the_pages_and_in_analyse(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "stale").await;
    let date = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    app.clock.set_today(date(&day(0)));
    let register = app.token("register", Some("taste"), None).await;
    for i in 0..6 {
        assert_eq!(
            app.enrol("taste", &register, &patient(i, ["UPP", "KS"][i % 2], "F"))
                .await
                .0,
            201
        );
    }
    let population = app.source_token("population_register").await;
    let swedeheart = app.source_token("swedeheart").await;
    // The population register delivers weekly for three weeks, then falls silent; SWEDEHEART
    // keeps delivering; the patient register never delivers.
    for week in 1..=3 {
        app.clock.set_today(date(&day(7 * week)));
        let batch = match week {
            2 => json!({"events": [event("POP-1", "S000001", "death", &day(9))]}),
            _ => json!({"events": []}),
        };
        let (status, body) = app.post("/api/v1/events", &population, &batch).await;
        assert_eq!(status, 200, "{body}");
    }
    for d in [100, 200, 299] {
        app.clock.set_today(date(&day(d)));
        let (status, body) = app
            .post("/api/v1/events", &swedeheart, &json!({"events": []}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    app.clock.set_today(chrono::Utc::now().date_naive());
    let cutoff = day(300);

    // The statistician's API, `rrct analyse` and the pages all say it.
    let statistician = app.token("statistician", Some("taste"), None).await;
    let sponsor = app.token("sponsor", Some("taste"), None).await;
    let (status, analysis) = app
        .get(
            &format!("/api/v1/trials/taste/analysis?cutoff={cutoff}"),
            &statistician,
        )
        .await;
    assert_eq!(status, 200, "{analysis}");
    let pages: Vec<String> = {
        let mut out = Vec::new();
        for token in [&sponsor, &statistician] {
            out.push(page(&app, token, &cutoff).await);
        }
        out
    };
    app.stop().await;
    let out = rrct(&[
        "analyse",
        "--database",
        &db.url,
        "--trial",
        "taste",
        "--cutoff",
        &cutoff,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let analysed: Value = serde_json::from_slice(&out.stdout).unwrap();
    for a in [&analysis, &analysed] {
        let sources = a["sources"].as_array().expect("sources");
        let by_id = |id: &str| sources.iter().find(|s| s["id"] == id).unwrap().clone();
        let swedeheart = by_id("swedeheart");
        assert_eq!(swedeheart["stale"], false, "{swedeheart}");
        assert_eq!(swedeheart["last_delivery"], day(299));
        assert_eq!(swedeheart["complete_through"], day(298));
        let population = by_id("population_register");
        assert_eq!(population["stale"], true, "{population}");
        assert_eq!(population["last_delivery"], day(21));
        assert_eq!(population["days_since_last_delivery"], 279);
        assert_eq!(population["complete_through"], day(293));
        assert_eq!(population["events_received"], 1);
        assert_eq!(population["event_lag_days_median"], 5.0);
        let patient_register = by_id("patient_register");
        assert_eq!(patient_register["stale"], true);
        assert_eq!(patient_register["last_delivery"], Value::Null);
        // Each endpoint is complete through its slowest source's date.
        let endpoint = |id: &str| {
            a["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["id"] == id)
                .unwrap()
                .clone()
        };
        assert_eq!(endpoint("death_1y")["complete_through"], day(293));
        // Death or infarction: as far as the patient register (45 days), the slowest.
        assert_eq!(endpoint("death_or_mi_1y")["complete_through"], day(255));
    }
    for html in &pages {
        assert!(html.contains("Register sources"), "{html}");
        assert_eq!(html.matches("badge stale").count(), 2, "two stale sources");
        assert!(html.contains("last delivery 279 days before the cut-off"));
        assert!(html.contains(&format!("{} (1 d ago)", day(299))));
    }

    // The alarm others are told of: once per silence, through the outbox.
    let store = rrct::store::Store::connect(&db.url).await.unwrap();
    let raise = |on: i64| rrct::service::alarms::raise_stale_sources(&store, date(&day(on)));
    assert_eq!(
        raise(300).await.unwrap(),
        2,
        "population and patient registers"
    );
    assert_eq!(raise(300).await.unwrap(), 0, "raised once");
    // A day later SWEDEHEART (expected daily) is silent too; the others' silence is the same.
    assert_eq!(
        raise(301).await.unwrap(),
        1,
        "only SWEDEHEART's new silence"
    );
    let alarms: Vec<Value> = rrct::service::outbox::after(&store, 0, Some("taste"), 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "rrct.source.stale")
        .map(|e| e.event)
        .collect();
    let named: Vec<(&str, &str)> = alarms
        .iter()
        .map(|a| {
            (
                a["subject"].as_str().unwrap(),
                a["data"]["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            (
                "population_register",
                "last delivery 279 days ago; expected every 7 days"
            ),
            (
                "patient_register",
                &*format!(
                    "no delivery since the first randomisation ({}); expected every 31 days",
                    day(0)
                )
            ),
            (
                "swedeheart",
                "last delivery 2 days ago; expected every 1 days"
            ),
        ]
    );
    store.close().await;
}

/// A reader's trial page as of `cutoff`, signed in with `token`.
async fn page(app: &TestApp, token: &str, cutoff: &str) -> String {
    let cookie = crate::support::session(app, token).await;
    let r = app
        .client
        .get(format!("{}/trials/taste?cutoff={cutoff}", app.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.text().await.unwrap()
}
