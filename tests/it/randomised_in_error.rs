//! Allocations randomised in error, the intention-to-treat way: marked by an admin over HTTP or
//! the CLI, kept in the data and the audit chain, released from minimisation balance and
//! flagged in ADSL; every refusal writes nothing.

use std::collections::HashMap;

use rrct::protocol;
use rrct::store::allocations::{self, write_counts};
use rrct::store::{audit, balance, Store};
use serde_json::{json, Value};

use crate::live_procedures::taste_with;
use crate::support::{rrct, TestApp, TestDb};

crate::on_both_backends!(
    http_marking_keeps_the_allocation_and_releases_balance,
    cli_marking_is_flagged_in_adsl,
);

const SEED: &str = "randomised-in-error";
const TRIAL: &str = "err_min";

fn minimised() -> String {
    taste_with(
        TRIAL,
        "method = \"minimisation\"\nfactors = [{ field = \"site\" }, { field = \"sex\" }, \
         { field = \"age_band\" }]\np = 0.9",
    )
}

fn patient(i: usize) -> Value {
    let site = ["UPP", "LKP", "SUS"][i % 3];
    json!({
        "record_id": format!("E{i:04}"),
        "subject": format!("ES{i:04}"),
        "site": site,
        "fields": {"age": 50 + (i * 7) % 40, "sex": if i % 4 == 1 { "F" } else { "M" },
                   "diagnosis": "STEMI", "symptom_onset_hours": 2.0}, "consent": {"kind": "oral", "taken_by": "op-1", "taken_at": "2024-01-01"}
    })
}

/// The marginal counts recomputed from the allocations, leaving out `excluded` records.
async fn recomputed_marginals(
    store: &Store,
    bodies: &HashMap<String, Value>,
    excluded: &[&str],
) -> HashMap<(String, String, String), i64> {
    let p = protocol::parse(&minimised(), "t").unwrap();
    let mut counts = HashMap::new();
    for row in allocations::list(store, TRIAL).await.unwrap() {
        if excluded.contains(&row.record_id.as_str()) {
            continue;
        }
        let body = &bodies[&row.record_id];
        let values = protocol::parse_enrolment(
            &p,
            body["site"].as_str().unwrap(),
            body["fields"].as_object().unwrap(),
        )
        .unwrap();
        for factor in ["site", "sex", "age_band"] {
            *counts
                .entry((
                    factor.to_string(),
                    protocol::level(&values, factor),
                    row.arm.clone(),
                ))
                .or_insert(0) += 1;
        }
    }
    counts
}

/// Stored marginal counts without the zeros a release leaves behind.
async fn stored_marginals(store: &Store) -> HashMap<(String, String, String), i64> {
    let mut m = balance::of_trial(store, TRIAL).await.unwrap().marginals;
    m.retain(|_, n| *n > 0);
    m
}

async fn mark_count(store: &Store) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM allocation_errors")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

async fn http_marking_keeps_the_allocation_and_releases_balance(db: TestDb) {
    let source = minimised();
    let app = TestApp::spawn(&db, &[&source], SEED).await;
    let register = app.token("register", None, None).await;
    let admin = app.token("admin", Some(TRIAL), None).await;
    let mut bodies = HashMap::new();
    for i in 0..12 {
        let body = patient(i);
        let (status, answer) = app.enrol(TRIAL, &register, &body).await;
        assert_eq!(status, 201, "{answer}");
        bodies.insert(body["record_id"].as_str().unwrap().to_string(), body);
    }
    assert_eq!(
        stored_marginals(&app.store).await,
        recomputed_marginals(&app.store, &bodies, &[]).await
    );
    let path = |record: &str| format!("/api/v1/trials/{TRIAL}/enrolments/{record}/error");

    // Refusals first: each writes nothing.
    let before = (
        write_counts(&app.store).await.unwrap(),
        mark_count(&app.store).await,
    );
    let refusals: Vec<(String, &str, Value, u16, &str)> = vec![
        (
            path("E0004"),
            register.as_str(),
            json!({"reason": "x"}),
            403,
            "forbidden",
        ),
        (
            path("E0004"),
            admin.as_str(),
            json!({"reason": "  "}),
            422,
            "invalid_request",
        ),
        (
            path("E0004"),
            admin.as_str(),
            json!({}),
            422,
            "invalid_request",
        ),
        (
            path("E0004"),
            admin.as_str(),
            json!({"reason": 3}),
            422,
            "invalid_request",
        ),
        (
            path("E0004"),
            admin.as_str(),
            json!({"reason": "x", "by": "me"}),
            422,
            "invalid_request",
        ),
        (
            path("NOPE"),
            admin.as_str(),
            json!({"reason": "x"}),
            404,
            "enrolment_not_found",
        ),
        (
            "/api/v1/trials/nope/enrolments/E0004/error".to_string(),
            admin.as_str(),
            json!({"reason": "x"}),
            404,
            "trial_not_found",
        ),
    ];
    for (url, token, body, status, code) in refusals {
        let (got, err) = app.post(&url, token, &body).await;
        assert_eq!(
            (got, err["error"]["code"].as_str()),
            (status, Some(code)),
            "{url} {body} → {err}"
        );
    }
    let (_, err) = app
        .post(&path("E0004"), &admin, &json!({"reason": " "}))
        .await;
    assert_eq!(err["error"]["fields"][0]["field"], "reason", "{err}");
    assert_eq!(
        (
            write_counts(&app.store).await.unwrap(),
            mark_count(&app.store).await
        ),
        before
    );

    // The mark.
    let reason = "found to have NSTEMI on review of the angiogram";
    let (status, marked) = app
        .post(&path("E0004"), &admin, &json!({ "reason": reason }))
        .await;
    assert_eq!(status, 201, "{marked}");
    assert_eq!(marked["record_id"], "E0004");
    assert_eq!(marked["reason"], reason);
    assert_eq!(marked["randomised_in_error"], true);
    let rows = allocations::list(&app.store, TRIAL).await.unwrap();
    assert_eq!(rows.len(), 12, "the allocation must stay");
    let row = rows.iter().find(|r| r.record_id == "E0004").unwrap();
    assert_eq!(marked["arm"], row.arm.as_str());
    assert_eq!(
        stored_marginals(&app.store).await,
        recomputed_marginals(&app.store, &bodies, &["E0004"]).await,
        "the marked allocation must leave minimisation balance"
    );
    let entries = audit::entries(&app.store, Some(TRIAL)).await.unwrap();
    let last = entries.last().unwrap();
    assert_eq!(last.action, "randomised_in_error_marked");
    let payload: Value = serde_json::from_str(&last.payload).unwrap();
    assert_eq!(payload["record_id"], "E0004");
    assert_eq!(
        payload["released_marginal_counts"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(matches!(
        audit::verify(&app.store).await.unwrap(),
        audit::ChainStatus::Intact { .. }
    ));

    // Marking twice is a conflict and writes nothing.
    let before = (
        write_counts(&app.store).await.unwrap(),
        mark_count(&app.store).await,
    );
    let (status, err) = app
        .post(&path("E0004"), &admin, &json!({"reason": "again"}))
        .await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(err["error"]["code"], "already_marked_in_error");
    assert_eq!(
        (
            write_counts(&app.store).await.unwrap(),
            mark_count(&app.store).await
        ),
        before
    );

    // Later patients are balanced against the released counts, which the batches carry on from.
    for i in 12..20 {
        let body = patient(i);
        let (status, answer) = app.enrol(TRIAL, &register, &body).await;
        assert_eq!(status, 201, "{answer}");
        bodies.insert(body["record_id"].as_str().unwrap().to_string(), body);
    }
    assert_eq!(
        stored_marginals(&app.store).await,
        recomputed_marginals(&app.store, &bodies, &["E0004"]).await
    );
    // The register's retry of the marked enrolment still replays its allocation.
    let (status, again) = app.enrol(TRIAL, &register, &bodies["E0004"]).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["arm"], row.arm.as_str());
    app.stop().await;
}

async fn cli_marking_is_flagged_in_adsl(db: TestDb) {
    let source = minimised();
    let app = TestApp::spawn(&db, &[&source], SEED).await;
    let register = app.token("register", None, None).await;
    for i in 0..6 {
        let (status, answer) = app.enrol(TRIAL, &register, &patient(i)).await;
        assert_eq!(status, 201, "{answer}");
    }
    let mark = |record: &str, reason: &str| {
        rrct(&[
            "enrolment",
            "mark-error",
            "--database",
            &db.url,
            "--trial",
            TRIAL,
            "--record",
            record,
            "--reason",
            reason,
        ])
    };
    let out = mark("E0002", "randomised twice: also enrolled as E0001");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["record_id"], "E0002");
    assert_eq!(printed["marked_by"], "cli");

    let before = (
        write_counts(&app.store).await.unwrap(),
        mark_count(&app.store).await,
    );
    for (record, reason, message) in [
        ("E0002", "again", "already marked"),
        ("E9999", "x", "no enrolment `E9999`"),
        ("E0003", "   ", "reason must not be empty"),
    ] {
        let out = mark(record, reason);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
    assert_eq!(
        (
            write_counts(&app.store).await.unwrap(),
            mark_count(&app.store).await
        ),
        before
    );

    let out = rrct(&["export", "adsl", "--database", &db.url, "--trial", TRIAL]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let flag = header
        .iter()
        .position(|c| *c == "randomised_in_error")
        .expect("randomised_in_error column");
    assert_eq!(header[flag + 1], "randomised_in_error_reason");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 6, "every randomised subject stays in ADSL");
    for row in &rows {
        let marked = row[0] == "E0002";
        assert_eq!(row[flag], if marked { "1" } else { "0" }, "{row:?}");
        if marked {
            assert!(row[flag + 1].starts_with("randomised twice"), "{row:?}");
        }
    }
    app.stop().await;
}
