//! The trial's lifecycle (pause, resume, close; sites closed and opened), emergency unblinding
//! and the seed's reveal, on both backends: transitions and their refusals, enrolments refused
//! with their specific 409s and nothing written, every change audited and in the outbox, a
//! pause that no enrolment slips past, unblinding by role only, and the reveal only once closed.

use rrct::randomise::MasterSeed;
use rrct::store::allocations::write_counts;
use rrct::store::audit;
use serde_json::{json, Value};

use crate::support::{patient, row_counts, rrct, session, TestApp, TestDb, TASTE};

crate::on_both_backends!(
    lifecycle_transitions_and_refusals,
    no_enrolment_is_allocated_after_a_pause_commits,
    emergency_unblinding_by_role_only_and_never_changing_data,
    the_seed_is_revealed_only_once_closed_and_only_to_an_admin,
    the_command_line_changes_the_lifecycle_and_reveals_the_seed,
);

const SEED: &str = "lifecycle";

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// The trial page's HTML for a signed-in reader.
async fn page_html(app: &TestApp, token: &str) -> String {
    let cookie = session(app, token).await;
    reqwest::Client::new()
        .get(format!("{}/trials/taste", app.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn lifecycle_transitions_and_refusals(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], SEED).await;
    let register = app.token("register", Some("taste"), None).await;
    let admin = app.token("admin", Some("taste"), None).await;
    let sponsor = app.token("sponsor", Some("taste"), None).await;
    let reason = json!({"reason": "DSMB recommends a pause for review"});
    let (status, first) = app.enrol("taste", &register, &patient(1, "UPP", "F")).await;
    assert_eq!(status, 201, "{first}");

    // Only an admin of the trial may change it; a reason is required.
    for token in [&register, &sponsor] {
        let (status, body) = app.post("/api/v1/trials/taste/pause", token, &reason).await;
        assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");
    }
    for bad in [
        json!({}),
        json!({"reason": "  "}),
        json!({"reason": 3}),
        json!({"reason": "x", "why": "y"}),
    ] {
        let (status, body) = app.post("/api/v1/trials/taste/pause", &admin, &bad).await;
        assert_eq!(
            (status, code(&body)),
            (422, "invalid_request"),
            "{bad}: {body}"
        );
    }

    // Paused: enrolments refused (nothing written), a retry still answered.
    let (status, paused) = app
        .post("/api/v1/trials/taste/pause", &admin, &reason)
        .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["status"], "paused");
    assert_eq!(paused["previous_status"], "active");
    let before = write_counts(&app.store).await.unwrap();
    let (status, body) = app.enrol("taste", &register, &patient(2, "UPP", "F")).await;
    assert_eq!((status, code(&body)), (409, "trial_paused"), "{body}");
    assert_eq!(write_counts(&app.store).await.unwrap(), before);
    let (status, again) = app.enrol("taste", &register, &patient(1, "UPP", "F")).await;
    assert_eq!((status, &again), (200, &first));
    let (status, body) = app
        .post("/api/v1/trials/taste/pause", &admin, &reason)
        .await;
    assert_eq!((status, code(&body)), (409, "invalid_transition"), "{body}");

    // Resumed.
    let (status, body) = app
        .post(
            "/api/v1/trials/taste/resume",
            &admin,
            &json!({"reason": "DSMB review done"}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("active")),
        "{body}"
    );
    let (status, body) = app.enrol("taste", &register, &patient(2, "UPP", "F")).await;
    assert_eq!(status, 201, "{body}");

    // A site closed and opened again.
    let site_reason = json!({"reason": "site monitoring visit found consent problems"});
    let (status, body) = app
        .post("/api/v1/trials/taste/sites/UPP/close", &admin, &site_reason)
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("closed")),
        "{body}"
    );
    let before = write_counts(&app.store).await.unwrap();
    let (status, body) = app.enrol("taste", &register, &patient(3, "UPP", "F")).await;
    assert_eq!((status, code(&body)), (409, "site_closed"), "{body}");
    assert_eq!(write_counts(&app.store).await.unwrap(), before);
    let (status, body) = app.enrol("taste", &register, &patient(4, "LKP", "F")).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .post("/api/v1/trials/taste/sites/UPP/close", &admin, &site_reason)
        .await;
    assert_eq!((status, code(&body)), (409, "invalid_transition"), "{body}");
    let (status, body) = app
        .post(
            "/api/v1/trials/taste/sites/NOPE/close",
            &admin,
            &site_reason,
        )
        .await;
    assert_eq!((status, code(&body)), (404, "site_not_found"), "{body}");
    let (status, body) = app
        .post(
            "/api/v1/trials/taste/sites/UPP/open",
            &admin,
            &json!({"reason": "resolved"}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("open")),
        "{body}"
    );
    let (status, body) = app.enrol("taste", &register, &patient(3, "UPP", "F")).await;
    assert_eq!(status, 201, "{body}");

    // Closed, for good.
    let (status, body) = app
        .post(
            "/api/v1/trials/taste/close",
            &admin,
            &json!({"reason": "target reached"}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("closed")),
        "{body}"
    );
    let (status, body) = app.enrol("taste", &register, &patient(5, "UPP", "F")).await;
    assert_eq!((status, code(&body)), (409, "trial_closed"), "{body}");
    for path in [
        "/api/v1/trials/taste/resume",
        "/api/v1/trials/taste/pause",
        "/api/v1/trials/taste/close",
        "/api/v1/trials/taste/sites/LKP/close",
    ] {
        let (status, body) = app.post(path, &admin, &reason).await;
        assert_eq!(
            (status, code(&body)),
            (409, "invalid_transition"),
            "{path}: {body}"
        );
    }

    // The status and its history, for any reader; each change audited and in the outbox.
    let (status, overview) = app.get("/api/v1/trials/taste/status", &sponsor).await;
    assert_eq!(status, 200, "{overview}");
    assert_eq!(overview["lifecycle"], "closed");
    let changes: Vec<&str> = overview["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["change"].as_str().unwrap())
        .collect();
    assert_eq!(
        changes,
        ["pause", "resume", "site_close", "site_open", "close"]
    );
    let entries = audit::entries(&app.store, Some("taste")).await.unwrap();
    let audited: Vec<(i64, &str)> = entries
        .iter()
        .filter(|e| e.action.ends_with("_changed"))
        .map(|e| (e.seq, e.action.as_str()))
        .collect();
    assert_eq!(audited.len(), 5, "{audited:?}");
    for (h, (seq, _)) in overview["history"].as_array().unwrap().iter().zip(&audited) {
        assert_eq!(h["seq"].as_i64(), Some(*seq));
    }
    let outbox: Vec<(i64, String)> = sqlx::query_as(
        "SELECT outbox_id, event_type FROM outbox WHERE trial_id = $1 ORDER BY outbox_id",
    )
    .bind("taste")
    .fetch_all(app.store.pool())
    .await
    .unwrap();
    let types: Vec<&str> = outbox
        .iter()
        .filter(|(id, _)| audited.iter().any(|(seq, _)| seq == id))
        .map(|(_, t)| t.as_str())
        .collect();
    assert_eq!(
        types,
        [
            "rrct.trial.status_changed",
            "rrct.trial.status_changed",
            "rrct.site.enrolment_changed",
            "rrct.site.enrolment_changed",
            "rrct.trial.status_changed"
        ]
    );

    // The pages show the status and its history.
    let html = page_html(&app, &sponsor).await;
    assert!(html.contains("Trial closed"), "{html}");
    assert!(
        html.contains("DSMB recommends a pause for review"),
        "{html}"
    );
    assert!(html.contains("site monitoring visit found consent problems"));
    app.stop().await;
}

async fn no_enrolment_is_allocated_after_a_pause_commits(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], SEED).await;
    let register = app.token("register", Some("taste"), None).await;
    let admin = app.token("admin", Some("taste"), None).await;
    // Enrolments in flight from many clients while the pause is made.
    let enrolments = (0..120).map(|i| {
        let app = &app;
        let register = &register;
        let admin = &admin;
        async move {
            if i == 60 {
                let (status, body) = app
                    .post(
                        "/api/v1/trials/taste/pause",
                        admin,
                        &json!({"reason": "race"}),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
                (0, String::new())
            } else {
                let (status, body) = app
                    .enrol(
                        "taste",
                        register,
                        &patient(1000 + i, "UPP", if i % 2 == 0 { "F" } else { "M" }),
                    )
                    .await;
                (status, code(&body).to_string())
            }
        }
    });
    let answers = futures_util::future::join_all(enrolments).await;
    for (status, code) in &answers {
        assert!(
            matches!(
                (status, code.as_str()),
                (0, _) | (201, _) | (409, "trial_paused")
            ),
            "{status} {code}"
        );
    }
    let refused = answers.iter().filter(|(s, _)| *s == 409).count();
    let entries = audit::entries(&app.store, Some("taste")).await.unwrap();
    let pause = entries
        .iter()
        .find(|e| e.action == "trial_status_changed")
        .expect("the pause is audited")
        .seq;
    let randomised: Vec<i64> = entries
        .iter()
        .filter(|e| e.action == "randomised")
        .map(|e| e.seq)
        .collect();
    assert!(
        randomised.iter().all(|&seq| seq < pause),
        "an allocation was committed after the pause: pause {pause}, allocations {randomised:?}"
    );
    assert_eq!(randomised.len() + refused, 119);
    app.stop().await;
}

async fn emergency_unblinding_by_role_only_and_never_changing_data(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], SEED).await;
    let register = app.token("register", Some("taste"), None).await;
    for i in 0..6 {
        let site = if i < 3 { "UPP" } else { "LKP" };
        let (status, body) = app.enrol("taste", &register, &patient(i, site, "F")).await;
        assert_eq!(status, 201, "{body}");
    }
    let arm_of_r1: String =
        sqlx::query_scalar("SELECT arm FROM allocations WHERE record_id = 'R000001'")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    let unblinder = app.token("unblinder", Some("taste"), None).await;
    let body = json!({"reason": "suspected anaphylaxis; treating physician needs the arm", "person": "Dr Anna Berg, on call"});
    let url = "/api/v1/trials/taste/enrolments/R000001/unblind";

    // Every other role is refused, and nothing is written.
    let before = row_counts(&app.store).await;
    for role in [
        "admin",
        "register",
        "sponsor",
        "statistician",
        "dsmb",
        "auditor",
    ] {
        let token = app.token(role, Some("taste"), None).await;
        let (status, answer) = app.post(url, &token, &body).await;
        assert_eq!(
            (status, code(&answer)),
            (403, "forbidden"),
            "{role}: {answer}"
        );
    }
    let source = app.source_token("swedeheart").await;
    let (status, _) = app.post(url, &source, &body).await;
    assert_eq!(status, 403);
    let tokens_made = 7;
    let mut after = row_counts(&app.store).await;
    assert_eq!(
        after.remove("tokens").unwrap() - before["tokens"],
        tokens_made
    );
    let audit_added = after["audit_log"] - before["audit_log"];
    assert_eq!(
        audit_added, tokens_made,
        "only the tokens' creation was audited"
    );

    // A reason and a name are required.
    for bad in [
        json!({"person": "Dr Berg"}),
        json!({"reason": "emergency"}),
        json!({"reason": "", "person": "Dr Berg"}),
        json!({"reason": "emergency", "person": "Dr Berg", "arm": "pci"}),
    ] {
        let (status, answer) = app.post(url, &unblinder, &bad).await;
        assert_eq!(
            (status, code(&answer)),
            (422, "invalid_request"),
            "{bad}: {answer}"
        );
    }
    let (status, answer) = app
        .post(
            "/api/v1/trials/taste/enrolments/NOPE/unblind",
            &unblinder,
            &body,
        )
        .await;
    assert_eq!(
        (status, code(&answer)),
        (404, "enrolment_not_found"),
        "{answer}"
    );

    // The unblinder gets that subject's arm; the data are unchanged but for the record of it.
    let before = row_counts(&app.store).await;
    let allocations_before: Vec<(String, String)> =
        sqlx::query_as("SELECT record_id, arm FROM allocations ORDER BY record_id")
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    let (status, answer) = app.post(url, &unblinder, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["arm"], arm_of_r1.as_str());
    assert_eq!(answer["record_id"], "R000001");
    assert_eq!(answer["person"], "Dr Anna Berg, on call");
    let mut after = row_counts(&app.store).await;
    for (table, added) in [("audit_log", 1), ("unblindings", 1)] {
        assert_eq!(
            after.remove(table).unwrap() - before[table],
            added,
            "{table}"
        );
    }
    let mut unchanged = before.clone();
    unchanged.remove("audit_log");
    unchanged.remove("unblindings");
    assert_eq!(after, unchanged, "an unblinding changes nothing else");
    let allocations_after: Vec<(String, String)> =
        sqlx::query_as("SELECT record_id, arm FROM allocations ORDER BY record_id")
            .fetch_all(app.store.pool())
            .await
            .unwrap();
    assert_eq!(allocations_before, allocations_after);
    let entry = audit::entries(&app.store, Some("taste"))
        .await
        .unwrap()
        .into_iter()
        .rev()
        .find(|e| e.action == "emergency_unblinded")
        .expect("audited");
    let payload: Value = serde_json::from_str(&entry.payload).unwrap();
    assert_eq!(payload["record_id"], "R000001");
    assert_eq!(payload["person"], "Dr Anna Berg, on call");
    assert!(
        payload.get("arm").is_none(),
        "the audit entry does not carry the arm"
    );

    // A site-scoped unblinder unblinds its own site's subjects only.
    let upp = app.token("unblinder", Some("taste"), Some("UPP")).await;
    let (status, answer) = app
        .post(
            "/api/v1/trials/taste/enrolments/R000004/unblind",
            &upp,
            &body,
        )
        .await;
    assert_eq!(
        (status, code(&answer)),
        (404, "enrolment_not_found"),
        "{answer}"
    );

    // Listed with who, when and why for the statistician, the DSMB and the auditor.
    for role in ["statistician", "dsmb", "auditor"] {
        let token = app.token(role, Some("taste"), None).await;
        let (status, list) = app.get("/api/v1/trials/taste/unblindings", &token).await;
        assert_eq!(status, 200, "{role}: {list}");
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(list[0]["person"], "Dr Anna Berg, on call");
        assert!(list[0]["reason"].as_str().unwrap().contains("anaphylaxis"));
        assert!(list[0].get("arm").is_none());
        let html = page_html(&app, &token).await;
        assert!(
            html.contains("anaphylaxis"),
            "{role} page lists the unblinding"
        );
    }
    for role in ["sponsor", "register", "admin", "unblinder"] {
        let token = app.token(role, Some("taste"), None).await;
        let (status, _) = app.get("/api/v1/trials/taste/unblindings", &token).await;
        assert_eq!(status, 403, "{role}");
    }
    // The sponsor's page counts them, and says nothing more.
    let sponsor = app.token("sponsor", Some("taste"), None).await;
    let html = page_html(&app, &sponsor).await;
    assert!(html.contains("Emergency unblindings: 1"), "{html}");
    assert!(!html.contains("anaphylaxis") && !html.contains("Anna Berg"));
    app.stop().await;
}

async fn the_seed_is_revealed_only_once_closed_and_only_to_an_admin(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], SEED).await;
    let admin = app.token("admin", Some("taste"), None).await;
    let url = "/api/v1/trials/taste/reveal-seed";
    for role in [
        "sponsor",
        "statistician",
        "dsmb",
        "auditor",
        "register",
        "unblinder",
    ] {
        let token = app.token(role, Some("taste"), None).await;
        let (status, body) = app.post(url, &token, &json!({})).await;
        assert_eq!((status, code(&body)), (403, "forbidden"), "{role}: {body}");
    }
    let before = row_counts(&app.store).await;
    let (status, body) = app.post(url, &admin, &json!({})).await;
    assert_eq!((status, code(&body)), (409, "trial_not_closed"), "{body}");
    app.post(
        "/api/v1/trials/taste/pause",
        &admin,
        &json!({"reason": "a pause"}),
    )
    .await;
    let (status, body) = app.post(url, &admin, &json!({})).await;
    assert_eq!((status, code(&body)), (409, "trial_not_closed"), "{body}");
    let mut after = row_counts(&app.store).await;
    // Only the pause was written.
    for table in ["audit_log", "lifecycle_changes", "outbox"] {
        assert_eq!(after.remove(table).unwrap(), before[table] + 1, "{table}");
    }

    app.post(
        "/api/v1/trials/taste/close",
        &admin,
        &json!({"reason": "stopped"}),
    )
    .await;
    let seed = MasterSeed::from_passphrase(SEED);
    let (status, revealed) = app.post(url, &admin, &json!({})).await;
    assert_eq!(status, 200, "{revealed}");
    assert_eq!(revealed["master_seed"], hex::encode(seed.as_bytes()));
    assert_eq!(
        revealed["seed_commitment"],
        rrct::randomise::seed_commitment(&seed)
    );
    let (status, again) = app.post(url, &admin, &json!({})).await;
    assert_eq!(
        (status, &again),
        (200, &revealed),
        "a second reveal returns the first"
    );
    let reveals: Vec<_> = audit::entries(&app.store, Some("taste"))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "seed_revealed")
        .collect();
    assert_eq!(reveals.len(), 1);
    assert_eq!(reveals[0].seq, revealed["audit_seq"].as_i64().unwrap());
    let payload: Value = serde_json::from_str(&reveals[0].payload).unwrap();
    assert_eq!(payload["master_seed"], hex::encode(seed.as_bytes()));
    app.stop().await;
}

async fn the_command_line_changes_the_lifecycle_and_reveals_the_seed(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], SEED).await;
    let register = app.token("register", Some("taste"), None).await;
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--database", &db.url]);
        rrct(&all)
    };
    let out = run(&["trial", "reveal-seed", "--trial", "taste"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only once the trial is closed"));
    let out = run(&[
        "trial",
        "site-close",
        "--trial",
        "taste",
        "--site",
        "UPP",
        "--reason",
        "audit",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = app.enrol("taste", &register, &patient(1, "UPP", "F")).await;
    assert_eq!((status, code(&body)), (409, "site_closed"));
    let out = run(&["trial", "pause", "--trial", "taste", "--reason", "DSMB"]);
    assert!(out.status.success());
    let (status, body) = app.enrol("taste", &register, &patient(1, "LKP", "F")).await;
    assert_eq!((status, code(&body)), (409, "trial_paused"));
    let out = run(&["trial", "pause", "--trial", "taste", "--reason", "again"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only an active trial can be paused"));
    for args in [
        ["trial", "resume", "--trial", "taste", "--reason", "ok"],
        ["trial", "close", "--trial", "taste", "--reason", "end"],
    ] {
        let out = run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = run(&["trial", "status", "--trial", "taste"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["lifecycle"], "closed");
    assert_eq!(status["history"].as_array().unwrap().len(), 4);
    let out = run(&["trial", "reveal-seed", "--trial", "taste"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let revealed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        revealed["master_seed"],
        hex::encode(MasterSeed::from_passphrase(SEED).as_bytes())
    );
    assert_eq!(revealed["revealed_by"], "cli");
    app.stop().await;
}
