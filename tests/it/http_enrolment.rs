//! Every status of the enrolment hook, over a real socket, on both backends; each error
//! checks that nothing was written.

use rrct::store::allocations::{self, write_counts};
use serde_json::{json, Value};

use crate::support::{patient, taste_variant, TestApp, TestDb, TASTE};

crate::on_both_backends!(
    created_then_replayed_then_conflicts,
    not_eligible_is_recorded_once_with_reasons,
    invalid_enrolments_name_the_field_and_write_nothing,
    auth_and_scope_errors_write_nothing,
    transport_errors_use_the_error_body,
    trial_not_active_when_closed_or_without_ethics_approval,
    get_enrolment_returns_the_allocation,
    simultaneous_duplicates_are_resolved_within_one_batch,
);

const SEED: &str = "http-tests";

fn closed_trial() -> String {
    taste_variant(
        "taste_closed",
        &[("status = \"recruiting\"", "status = \"closed\"")],
    )
}

async fn app(db: &TestDb) -> TestApp {
    TestApp::spawn(db, &[TASTE, &closed_trial()], SEED).await
}

fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error without message: {body}"
    );
}

async fn created_then_replayed_then_conflicts(db: TestDb) {
    let app = app(&db).await;
    let token = app.token("register", Some("taste"), None).await;
    let body = patient(1, "UPP", "F");

    let (status, first) = app.enrol("taste", &token, &body).await;
    assert_eq!(status, 201, "{first}");
    for key in [
        "trial_id",
        "record_id",
        "subject",
        "arm",
        "arm_label",
        "randomisation_number",
        "stratum",
        "allocated_at",
        "protocol_version",
    ] {
        assert!(!first[key].is_null(), "missing {key} in {first}");
    }
    assert_eq!(first["trial_id"], "taste");
    assert_eq!(first["randomisation_number"], 1);
    assert_eq!(first["stratum"], "site=UPP;sex=F");
    assert!(["aspiration", "pci"].contains(&first["arm"].as_str().unwrap()));

    // The same body with its keys in another order is the same request.
    let reordered = json!({
        "fields": body["fields"].clone(), "site": "UPP", "consent": body["consent"].clone(),
        "subject": body["subject"].clone(), "record_id": body["record_id"].clone(),
    });
    let before = write_counts(&app.store).await.unwrap();
    let (status, replay) = app.enrol("taste", &token, &reordered).await;
    assert_eq!(status, 200, "{replay}");
    assert_eq!(replay, first);
    assert_eq!(write_counts(&app.store).await.unwrap(), before);

    // Same record id, different body.
    let mut changed = body.clone();
    changed["fields"]["age"] = json!(77);
    let (status, err) = app.enrol("taste", &token, &changed).await;
    assert_eq!(status, 409);
    assert_error(&err, "record_conflict");
    assert_eq!(write_counts(&app.store).await.unwrap(), before);

    // Same subject, another record id.
    let mut again = body.clone();
    again["record_id"] = json!("R-other");
    let (status, err) = app.enrol("taste", &token, &again).await;
    assert_eq!(status, 409);
    assert_error(&err, "already_randomised");
    assert_eq!(err["error"]["record_id"], body["record_id"]);
    assert_eq!(write_counts(&app.store).await.unwrap(), before);

    let (status, second) = app.enrol("taste", &token, &patient(2, "UPP", "F")).await;
    assert_eq!(status, 201);
    assert_eq!(second["randomisation_number"], 2);
    let after = write_counts(&app.store).await.unwrap();
    assert_eq!(after.allocations, before.allocations + 1);
    assert_eq!(after.screening, before.screening + 1);
    assert_eq!(after.audit, before.audit + 1);
    app.stop().await;
}

async fn not_eligible_is_recorded_once_with_reasons(db: TestDb) {
    let app = app(&db).await;
    let token = app.token("register", None, None).await;
    let mut body = patient(3, "LKP", "M");
    body["fields"]["diagnosis"] = json!("NSTEMI");
    body["fields"]["symptom_onset_hours"] = json!(30.0);
    let before = write_counts(&app.store).await.unwrap();

    let (status, err) = app.enrol("taste", &token, &body).await;
    assert_eq!(status, 422, "{err}");
    assert_error(&err, "not_eligible");
    let reasons = err["error"]["reasons"].as_array().expect("reasons list");
    assert_eq!(reasons.len(), 2, "{err}");
    let text = err.to_string();
    assert!(text.contains("NSTEMI") && text.contains("30"), "{text}");

    let after = write_counts(&app.store).await.unwrap();
    assert_eq!(after.allocations, before.allocations);
    assert_eq!(after.strata, before.strata);
    assert_eq!(after.screening, before.screening + 1);
    assert_eq!(after.audit, before.audit + 1);
    let log = rrct::store::screening_log::screening_log(&app.store, "taste")
        .await
        .unwrap();
    let row = log.last().unwrap();
    assert_eq!(row.outcome, "not_eligible");
    assert_eq!(row.record_id, "R000003");
    assert_eq!(
        serde_json::from_str::<Value>(&row.reasons).unwrap(),
        json!(reasons)
    );

    // An identical retry gets the same answer and is not logged twice.
    let (status, again) = app.enrol("taste", &token, &body).await;
    assert_eq!(status, 422);
    assert_eq!(again, err);
    assert_eq!(write_counts(&app.store).await.unwrap(), after);

    // Corrected data under the same record id is screened again and may be randomised.
    body["fields"]["diagnosis"] = json!("STEMI");
    body["fields"]["symptom_onset_hours"] = json!(2.0);
    let (status, ok) = app.enrol("taste", &token, &body).await;
    assert_eq!(status, 201, "{ok}");
    app.stop().await;
}

async fn invalid_enrolments_name_the_field_and_write_nothing(db: TestDb) {
    let app = app(&db).await;
    let token = app.token("register", None, None).await;
    let before = write_counts(&app.store).await.unwrap();
    let base = patient(4, "SUS", "F");
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut b = base.clone();
                b["fields"]["age"] = json!(150);
                b
            },
            "fields.age",
        ),
        (
            {
                let mut b = base.clone();
                b["fields"]["age"] = json!("sixty");
                b
            },
            "fields.age",
        ),
        (
            {
                let mut b = base.clone();
                b["fields"].as_object_mut().unwrap().remove("sex");
                b
            },
            "fields.sex",
        ),
        (
            {
                let mut b = base.clone();
                b["fields"]["sex"] = json!("X");
                b
            },
            "fields.sex",
        ),
        (
            {
                let mut b = base.clone();
                b["fields"]["colour"] = json!("blue");
                b
            },
            "fields.colour",
        ),
        (
            {
                let mut b = base.clone();
                b["site"] = json!("NOPE");
                b
            },
            "site",
        ),
        (
            {
                let mut b = base.clone();
                b.as_object_mut().unwrap().remove("record_id");
                b
            },
            "record_id",
        ),
        (
            {
                let mut b = base.clone();
                b["subject"] = json!(12);
                b
            },
            "subject",
        ),
        (
            {
                let mut b = base.clone();
                b["subject"] = json!("19121212-1212");
                b
            },
            "subject",
        ),
        (
            {
                let mut b = base.clone();
                b["extra"] = json!(true);
                b
            },
            "extra",
        ),
        (json!([1, 2, 3]), ""),
    ];
    for (body, field) in cases {
        let (status, err) = app.enrol("taste", &token, &body).await;
        assert_eq!(status, 422, "{body} -> {err}");
        assert_error(&err, "invalid_enrolment");
        let fields = err["error"]["fields"].as_array().expect("fields list");
        assert!(
            fields.iter().any(|f| f["field"] == field),
            "expected an error naming `{field}` for {body}: {err}"
        );
    }
    assert_eq!(write_counts(&app.store).await.unwrap(), before);
    app.stop().await;
}

async fn auth_and_scope_errors_write_nothing(db: TestDb) {
    let app = app(&db).await;
    let register_upp = app.token("register", Some("taste"), Some("UPP")).await;
    let register_other_trial = app.token("register", Some("taste_closed"), None).await;
    let sponsor = app.token("sponsor", None, None).await;
    let before = write_counts(&app.store).await.unwrap();
    let body = patient(5, "LKP", "M");
    let url = app.enrolments_url("taste");

    let r = app.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_error(&r.json().await.unwrap(), "unauthenticated");

    let (status, err) = app.enrol("taste", "rrct_not-a-real-token", &body).await;
    assert_eq!(status, 401);
    assert_error(&err, "unauthenticated");

    let (status, err) = app.enrol("taste", &sponsor, &body).await;
    assert_eq!(status, 403);
    assert_error(&err, "forbidden");

    let (status, err) = app.enrol("taste", &register_upp, &body).await;
    assert_eq!(
        status, 403,
        "site-scoped token used for another site: {err}"
    );
    assert_error(&err, "forbidden");

    let (status, err) = app.enrol("taste", &register_other_trial, &body).await;
    assert_eq!(status, 403);
    assert_error(&err, "forbidden");

    let (status, err) = app.enrol("no_such_trial", &register_upp, &body).await;
    assert_eq!(status, 404);
    assert_error(&err, "trial_not_found");

    assert_eq!(write_counts(&app.store).await.unwrap(), before);

    // The site-scoped token works for its own site.
    let (status, _) = app
        .enrol("taste", &register_upp, &patient(6, "UPP", "M"))
        .await;
    assert_eq!(status, 201);
    app.stop().await;
}

async fn transport_errors_use_the_error_body(db: TestDb) {
    let app = app(&db).await;
    let token = app.token("register", None, None).await;
    let before = write_counts(&app.store).await.unwrap();
    let url = app.enrolments_url("taste");

    let r = app
        .client
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"record_id\": \"R1\", ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_error(&r.json().await.unwrap(), "malformed_json");

    let r = app
        .client
        .post(&url)
        .bearer_auth(&token)
        .body(patient(7, "UPP", "F").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    assert_error(&r.json().await.unwrap(), "unsupported_media_type");

    let mut big = patient(8, "UPP", "F");
    big["subject"] = json!("x".repeat(rrct::api::BODY_LIMIT_BYTES + 1));
    let (status, err) = app.enrol("taste", &token, &big).await;
    assert_eq!(status, 413);
    assert_error(&err, "payload_too_large");

    let r = app
        .client
        .get(format!("{}/api/v1/nowhere", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_error(&r.json().await.unwrap(), "not_found");

    let r = app
        .client
        .delete(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_error(&r.json().await.unwrap(), "method_not_allowed");

    let r = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let health: Value = r.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["trials"], json!(["taste", "taste_closed"]));

    assert_eq!(write_counts(&app.store).await.unwrap(), before);
    app.stop().await;
}

async fn trial_not_active_when_closed_or_without_ethics_approval(db: TestDb) {
    let no_ethics = taste_variant(
        "taste_no_ethics",
        &[("ethics_approval = ", "# ethics_approval = ")],
    );
    let app = TestApp::spawn(&db, &[TASTE, &closed_trial(), &no_ethics], SEED).await;
    let token = app.token("register", None, None).await;
    let before = write_counts(&app.store).await.unwrap();
    for trial in ["taste_closed", "taste_no_ethics"] {
        let (status, err) = app.enrol(trial, &token, &patient(9, "UPP", "F")).await;
        assert_eq!(status, 409, "{trial}: {err}");
        assert_error(&err, "trial_not_active");
    }
    assert_eq!(write_counts(&app.store).await.unwrap(), before);

    // Closing a trial after an allocation: the register's retry still gets its allocation.
    let (status, first) = app.enrol("taste", &token, &patient(10, "UPP", "F")).await;
    assert_eq!(status, 201);
    rrct::service::lifecycle::change(
        &app.store,
        "taste",
        rrct::service::lifecycle::Change::Close,
        None,
        "target reached",
        &rrct::service::lifecycle::By {
            actor: "test",
            at: app.clock.now(),
        },
    )
    .await
    .unwrap();
    let (status, replay) = app.enrol("taste", &token, &patient(10, "UPP", "F")).await;
    assert_eq!(status, 200);
    assert_eq!(replay, first);
    let (status, err) = app.enrol("taste", &token, &patient(11, "UPP", "F")).await;
    assert_eq!(status, 409);
    assert_error(&err, "trial_closed");
    app.stop().await;
}

async fn get_enrolment_returns_the_allocation(db: TestDb) {
    let app = app(&db).await;
    let token = app.token("register", None, None).await;
    let upp_only = app.token("register", Some("taste"), Some("UPP")).await;
    let auditor = app.token("auditor", None, None).await;
    let (status, created) = app.enrol("taste", &token, &patient(12, "LKP", "F")).await;
    assert_eq!(status, 201);
    let url = format!("{}/R000012", app.enrolments_url("taste"));

    let r = app
        .client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), created);

    // Another site's token cannot even learn that the record exists.
    let r = app
        .client
        .get(&url)
        .bearer_auth(&upp_only)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_error(&r.json().await.unwrap(), "enrolment_not_found");

    let r = app
        .client
        .get(&url)
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    let r = app
        .client
        .get(format!("{}/unknown", app.enrolments_url("taste")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_error(&r.json().await.unwrap(), "enrolment_not_found");
    app.stop().await;
}

/// Copies of one request, and one subject under several records, arriving together: they land
/// in the same group-commit batch and must still get one allocation.
async fn simultaneous_duplicates_are_resolved_within_one_batch(db: TestDb) {
    let app = app(&db).await;
    let token = app.token("register", None, None).await;
    let same = patient(20, "KS", "F");
    let mut sends = Vec::new();
    for i in 0..24 {
        let body = if i % 2 == 0 {
            same.clone()
        } else {
            let mut b = patient(21, "KS", "M");
            b["record_id"] = json!(format!("R-subject-21-{i}"));
            b
        };
        let (client, url, token) = (
            app.client.clone(),
            app.enrolments_url("taste"),
            token.clone(),
        );
        sends.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap(), body)
        }));
    }
    let mut same_answers = Vec::new();
    let mut subject_statuses = Vec::new();
    for s in sends {
        let (status, answer, body) = s.await.unwrap();
        if body == same {
            same_answers.push((status, answer));
        } else {
            subject_statuses.push((status, answer));
        }
    }
    assert_eq!(
        same_answers.iter().filter(|(s, _)| *s == 201).count(),
        1,
        "{same_answers:?}"
    );
    assert!(same_answers
        .iter()
        .all(|(s, a)| (*s == 201 || *s == 200) && a == &same_answers[0].1));
    assert_eq!(
        subject_statuses.iter().filter(|(s, _)| *s == 201).count(),
        1,
        "{subject_statuses:?}"
    );
    for (status, answer) in &subject_statuses {
        assert!(
            *status == 201 || (*status == 409 && answer["error"]["code"] == "already_randomised")
        );
    }
    let rows = allocations::list(&app.store, "taste").await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows.iter()
            .map(|r| r.randomisation_number)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    app.stop().await;
}

/// On PostgreSQL a batch finds the answers kept for its CloudEvents by one probe of the primary
/// key per event, with or without statistics. Three `= ANY` lists (scopes, sources, ids) were
/// planned as their cross product: a scan of every answer kept for the sender before the table
/// had statistics, of the whole table after, growing with every CloudEvent answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kept_cloudevent_answers_are_probed_by_key_with_or_without_statistics() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = TestApp::spawn_with(&db, &[TASTE], SEED, |s| s.database_pool = Some(2)).await;
    let token = app.token("register", Some("taste"), None).await;
    let pool = app.store.pool();
    // Thousands of kept answers of one sender, and no statistics yet.
    for sql in [
        "ALTER TABLE inbound_events SET (autovacuum_enabled = false)",
        "INSERT INTO inbound_events (scope, ce_source, ce_id, ce_type, content_sha256, status, \
         answer, received_at) SELECT 'register|taste', '/register', 'ev-' || g, \
         'rrct.enrolment.requested', 'x', 201, '{}', '2024-01-01' \
         FROM generate_series(1, 3000) g",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
    // Real enrolments prepare the batch's context read on the pool's connections: a plain one
    // without the kept answers' part, one sent as a CloudEvent with it.
    let (status, answer) = app.enrol("taste", &token, &patient(1, "UPP", "F")).await;
    assert_eq!(status, 201, "{answer}");
    let mut data = patient(2, "UPP", "M");
    data["trial_id"] = json!("taste");
    let event = json!({"specversion": "1.0", "id": "ev-new", "source": "/register",
        "type": "rrct.enrolment.requested", "data": data});
    let r = app
        .client
        .post(format!("{}/api/v1/cloudevents", app.base))
        .bearer_auth(&token)
        .header("content-type", "application/cloudevents+json")
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    let mut held = vec![pool.acquire().await.unwrap(), pool.acquire().await.unwrap()];
    let (mut plain, mut found) = (0, None);
    for (i, conn) in held.iter_mut().enumerate() {
        let names: Vec<(String, bool)> = sqlx::query_as(
            "SELECT name, statement LIKE '%inbound_events%' FROM pg_prepared_statements \
             WHERE statement LIKE 'SELECT ''a'' AS kind%'",
        )
        .fetch_all(&mut **conn)
        .await
        .unwrap();
        for (name, kept) in names {
            if kept {
                found = Some((i, name));
            } else {
                plain += 1;
            }
        }
    }
    assert!(
        plain > 0,
        "a plain batch's context read does not look for kept answers"
    );
    let (i, name) = found.expect("a CloudEvent batch's context read is prepared on the pool");
    let conn = &mut held[i];
    // Two of the sender's events, one of another sender.
    let params = "'taste', '[\"R1\"]', '[\"S1\"]', '[]', '[]', '[]', '[]', '[]', \
                  '[\"register|taste\", \"register|taste\", \"register|taste\"]', \
                  '[\"/other\", \"/register\", \"/register\"]', \
                  '[\"ev-1\", \"ev-5\", \"ev-9\"]'";
    let depth = |l: &str| l.len() - l.trim_start().len();
    for statistics in [false, true] {
        if statistics {
            sqlx::query("ANALYZE inbound_events")
                .execute(&mut **conn)
                .await
                .unwrap();
        }
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN EXECUTE {name}({params})"))
            .fetch_all(&mut **conn)
            .await
            .unwrap();
        let text = plan.join("\n");
        // Each scan of inbound_events with the lines under it (its conditions); the table's name
        // ends there (an index named after it goes on with `_`).
        let scans: Vec<(String, Vec<String>)> = plan
            .iter()
            .enumerate()
            .filter_map(|(n, line)| {
                let at = line.find(" on inbound_events ")?;
                let under = plan[n + 1..]
                    .iter()
                    .take_while(|l| depth(l) > depth(line) && !l.trim_start().starts_with("->"))
                    .map(|l| l.trim().to_string())
                    .collect();
                let node = line[..at].trim_start().trim_start_matches("->").trim();
                Some((node.to_string(), under))
            })
            .collect();
        let at = format!("statistics: {statistics}\n{text}");
        assert_eq!(scans.len(), 1, "{at}");
        let (node, under) = &scans[0];
        assert!(
            node.starts_with("Index Scan using inbound_events_pkey"),
            "`{node}` is not a probe of the key: {at}"
        );
        let cond = under
            .iter()
            .find(|l| l.starts_with("Index Cond:"))
            .unwrap_or_else(|| panic!("no index condition: {at}"));
        for column in ["scope", "ce_source", "ce_id"] {
            assert!(
                cond.contains(column),
                "the probe does not fix {column}: {at}"
            );
        }
        assert!(!under.iter().any(|l| l.starts_with("Filter:")), "{at}");
    }
    drop(held);
    app.stop().await;
}

/// On PostgreSQL a batch writes under cached generic plans (planned once per connection, not at
/// every batch), and the connection is back on custom plans for the reads that follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_batches_write_under_generic_plans_and_reads_stay_custom() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = TestApp::spawn_with(&db, &[TASTE], SEED, |s| s.database_pool = Some(2)).await;
    let token = app.token("register", Some("taste"), None).await;
    let batches = 6;
    for i in 0..batches {
        let sex = if i % 2 == 0 { "F" } else { "M" };
        let (status, answer) = app.enrol("taste", &token, &patient(i, "UPP", sex)).await;
        assert_eq!(status, 201, "{answer}");
    }
    // Both of the pool's connections, held at once: every statement it prepared is on them.
    let pool = app.store.pool();
    let mut held = vec![pool.acquire().await.unwrap(), pool.acquire().await.unwrap()];
    let (mut generic, mut custom) = (0i64, 0i64);
    for conn in held.iter_mut() {
        let mode: String = sqlx::query_scalar("SELECT current_setting('plan_cache_mode')")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        assert_eq!(mode, "force_custom_plan", "a batch's setting outlived it");
        let (g, c): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(generic_plans), 0)::BIGINT, COALESCE(SUM(custom_plans), 0)::BIGINT \
             FROM pg_prepared_statements WHERE statement LIKE 'WITH w0 AS (INSERT INTO allocations%'",
        )
        .fetch_one(&mut **conn)
        .await
        .unwrap();
        generic += g;
        custom += c;
    }
    assert_eq!(
        (generic, custom),
        (batches as i64, 0),
        "(generic, custom) plans of the write"
    );
    drop(held);
    app.stop().await;
}
