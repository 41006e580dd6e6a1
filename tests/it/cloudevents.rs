//! `POST /api/v1/cloudevents` over real HTTP on both backends: each content mode, each required
//! attribute missing, a wrong `specversion`, a replay and a conflicting reuse of an id: the right
//! status, and nothing written twice.

use serde_json::{json, Value};

use crate::support::{day, patient, row_counts, TestApp, TestDb, TASTE};

crate::on_both_backends!(
    each_content_mode_takes_its_path_and_a_replay_writes_nothing,
    envelopes_breaking_the_specification_are_refused_and_write_nothing,
    one_key_sent_at_once_is_decided_once,
);

const URL: &str = "/api/v1/cloudevents";

fn enrolment(id: &str, n: usize) -> Value {
    let mut data = patient(n, "UPP", "F");
    data["trial_id"] = json!("taste");
    json!({
        "specversion": "1.0", "id": id, "source": "/registers/swedeheart/upp",
        "type": "rrct.enrolment.requested", "datacontenttype": "application/json",
        "time": "2026-12-05T10:00:00Z", "data": data,
    })
}

async fn send(app: &TestApp, token: &str, content_type: &str, body: String) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}{URL}", app.base))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn each_content_mode_takes_its_path_and_a_replay_writes_nothing(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "cloudevents").await;
    let register = app.token("register", Some("taste"), None).await;
    let sponsor = app.token("sponsor", Some("taste"), None).await;
    let structured = "application/cloudevents+json";

    // Structured: the allocation, as the enrolment endpoint gives it.
    let (status, allocation) = send(
        &app,
        &register,
        structured,
        enrolment("CE-1", 1).to_string(),
    )
    .await;
    assert_eq!(status, 201, "{allocation}");
    let (status, stored) = app
        .get("/api/v1/trials/taste/enrolments/R000001", &register)
        .await;
    assert_eq!(status, 200);
    assert_eq!(allocation, stored);

    // A replay (same source and id, same content; keys in another order): the same answer,
    // nothing written.
    let before = row_counts(&app.store).await;
    let mut again = enrolment("CE-1", 1);
    let data = again["data"].take();
    again["data"] = data;
    let (status, replayed) = send(&app, &register, structured, again.to_string()).await;
    assert_eq!((status, &replayed), (201, &allocation));
    assert_eq!(row_counts(&app.store).await, before);

    // Another sender's scope is never answered from what was kept for this one: a sponsor
    // replaying the register's event gets its own refusal, not the allocation.
    let (status, body) = send(&app, &sponsor, structured, again.to_string()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.get("arm").is_none());

    // The same id and source with other content: a conflict, nothing written.
    let (status, body) = send(
        &app,
        &register,
        structured,
        enrolment("CE-1", 2).to_string(),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "cloudevent_conflict");
    assert_eq!(row_counts(&app.store).await, before);

    // The plain endpoint's idempotency holds under a new event id: the record's allocation.
    let (status, body) = send(
        &app,
        &register,
        structured,
        enrolment("CE-1b", 1).to_string(),
    )
    .await;
    assert_eq!((status, &body), (200, &allocation));

    // Batched: an enrolment and a screening report, each answered in order.
    let mut screening = patient(3, "UPP", "M");
    screening["trial_id"] = json!("taste");
    screening["reason"] = json!("consent_declined");
    let batch = json!([
        enrolment("CE-2", 2),
        {"specversion": "1.0", "id": "CE-3", "source": "/registers/swedeheart/upp",
         "type": "rrct.screening.reported", "data": screening},
        {"specversion": "1.0", "id": "CE-4", "source": "/registers/swedeheart/upp",
         "type": "rrct.screening.reported"},
    ]);
    let (status, body) = send(
        &app,
        &register,
        "application/cloudevents-batch+json",
        batch.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let statuses: Vec<u64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 201, 400]);
    assert_eq!(
        body["results"][2]["body"]["error"]["attributes"][0]["attribute"],
        "data"
    );

    // Binary: a follow-up event from SWEDEHEART's feed, the data as the body.
    let feed = app.source_token("swedeheart").await;
    let r = app
        .client
        .post(format!("{}{URL}", app.base))
        .bearer_auth(&feed)
        .header("ce-specversion", "1.0")
        .header("ce-id", "SH-77")
        .header("ce-source", "/registers/swedeheart")
        .header("ce-type", "rrct.event.recorded")
        .header("content-type", "application/json")
        .body(
            json!({"event_id": "SH-77", "subject": "S000001", "type": "mi", "date": day(400)})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["stored"], 1, "{report}");

    // Scope holds as on the plain endpoints: a sponsor cannot enrol, and its refusal is not kept
    // (the same event from the register then succeeds).
    let (status, body) = send(&app, &sponsor, structured, enrolment("CE-5", 5).to_string()).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = send(
        &app,
        &register,
        structured,
        enrolment("CE-5", 5).to_string(),
    )
    .await;
    assert_eq!(status, 201);
    app.stop().await;
}

async fn envelopes_breaking_the_specification_are_refused_and_write_nothing(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "cloudevents").await;
    let register = app.token("register", Some("taste"), None).await;
    let before = row_counts(&app.store).await;
    let structured = "application/cloudevents+json";
    for attribute in ["id", "source", "specversion", "type"] {
        let mut e = enrolment("BAD", 9);
        e.as_object_mut().unwrap().remove(attribute);
        let (status, body) = send(&app, &register, structured, e.to_string()).await;
        assert_eq!(status, 400, "{attribute}: {body}");
        assert_eq!(body["error"]["code"], "invalid_cloudevent");
        assert_eq!(
            body["error"]["attributes"][0]["attribute"], attribute,
            "{body}"
        );
    }
    let mut e = enrolment("BAD", 9);
    e["specversion"] = json!("0.3");
    let (status, body) = send(&app, &register, structured, e.to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["attributes"][0]["attribute"], "specversion");
    // Binary mode without its required headers.
    let r = app
        .client
        .post(format!("{}{URL}", app.base))
        .bearer_auth(&register)
        .header("ce-specversion", "1.0")
        .header("content-type", "application/json")
        .body(enrolment("X", 9)["data"].to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    let named: Vec<&str> = body["error"]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attribute"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["id", "source", "type"]);
    // Not JSON, not a CloudEvent content type, no token.
    let (status, body) = send(&app, &register, structured, "{".into()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );
    let (status, body) = send(
        &app,
        &register,
        "application/json",
        enrolment("X", 9).to_string(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let (status, _) = send(&app, "nobody", structured, enrolment("X", 9).to_string()).await;
    assert_eq!(status, 401);
    // An invalid enrolment inside a valid envelope: the enrolment endpoint's 422.
    let mut e = enrolment("BAD-FIELDS", 9);
    e["data"]["fields"]["age"] = json!("old");
    let (status, body) = send(&app, &register, structured, e.to_string()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_enrolment"))
    );
    // Consent as the protocol asks is checked on this path too (the one enrolment service).
    let mut e = enrolment("NO-CONSENT", 10);
    e["data"].as_object_mut().unwrap().remove("consent");
    let (status, body) = send(&app, &register, structured, e.to_string()).await;
    assert_eq!(
        (status, body["error"]["fields"][0]["field"].as_str()),
        (422, Some("consent")),
        "{body}"
    );
    let after = row_counts(&app.store).await;
    // Only the kept answers of the invalid enrolments were written.
    let mut expected = before.clone();
    *expected.get_mut("inbound_events").unwrap() += 2;
    assert_eq!(after, expected);
    app.stop().await;
}

/// Deliveries of one CloudEvent key arriving together (a register retrying against two
/// instances, or a producer reusing an id): the answer is looked up and kept in the enrolment
/// batch's own transaction, so exactly one is decided. Same content: every delivery gets that
/// answer. Other content: one is allocated, the others are conflicts, and no second
/// allocation is made.
async fn one_key_sent_at_once_is_decided_once(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "cloudevents-race").await;
    let register = app.token("register", Some("taste"), None).await;
    let structured = "application/cloudevents+json";
    for round in 0..10 {
        let id = format!("RACE-{round}");
        // Same content, eight times at once.
        let same = enrolment(&id, 100 + round);
        let answers = futures_util::future::join_all(
            (0..8).map(|_| send(&app, &register, structured, same.to_string())),
        )
        .await;
        let first = &answers[0];
        assert_eq!(first.0, 201, "{}", first.1);
        for a in &answers {
            assert_eq!(a, first, "every delivery of one event gets one answer");
        }
        // Other content under another key's id, eight variants at once: one allocation.
        let id = format!("CLASH-{round}");
        let variants: Vec<Value> = (0..8)
            .map(|k| enrolment(&id, 1000 + 10 * round + k))
            .collect();
        let answers = futures_util::future::join_all(
            variants
                .iter()
                .map(|v| send(&app, &register, structured, v.to_string())),
        )
        .await;
        let created: Vec<&(u16, Value)> = answers.iter().filter(|a| a.0 == 201).collect();
        assert_eq!(created.len(), 1, "{answers:?}");
        for a in answers.iter().filter(|a| a.0 != 201) {
            assert_eq!(a.0, 409, "{}", a.1);
            assert_eq!(a.1["error"]["code"], "cloudevent_conflict", "{}", a.1);
        }
    }
    let allocations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM allocations")
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(allocations, 20);
    assert_eq!(rrct::store::inbound::count(&app.store).await.unwrap(), 20);
}
