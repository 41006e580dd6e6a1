//! `rrct serve` registering protocol files: a new trial, an unchanged restart, a new version, and
//! a changed file that kept its version (refused).

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{patient, protocol_dir, ServerProcess, TestApp, TestDb, TASTE};

crate::on_both_backends!(
    protocol_versions_are_registered_and_silent_edits_refused,
    enrolments_of_requesters_gone_are_decided_before_the_store_closes,
);

async fn protocol_versions_are_registered_and_silent_edits_refused(db: TestDb) {
    let dir = protocol_dir(&db, &[("taste.toml", TASTE)]);
    let store = rrct::store::Store::connect(&db.url).await.unwrap();
    let versions = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT version FROM protocol_versions WHERE trial_id = 'taste' ORDER BY version",
        )
        .fetch_all(store.pool())
        .await
        .unwrap()
    };
    drop(ServerProcess::start(&db.url, &dir, None));
    drop(ServerProcess::start(&db.url, &dir, None));
    assert_eq!(
        versions().await,
        ["1.0"],
        "a restart must not register again"
    );

    // Changing the file without a new version is refused, and the server does not start.
    let edited = TASTE.replacen("target_sample_size = 7244", "target_sample_size = 8000", 1);
    assert_ne!(edited, TASTE);
    std::fs::write(dir.join("taste.toml"), &edited).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rrct"))
        .args([
            "serve",
            "--database",
            &db.url,
            "--bind",
            "127.0.0.1:0",
            "--protocols",
        ])
        .arg(&dir)
        .env("RRCT_SEED_KEY", crate::support::SEED_KEY_HEX)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("version 1.0 is already registered with different content"),
        "{stderr}"
    );

    // With a new version it is registered and becomes current.
    std::fs::write(
        dir.join("taste.toml"),
        edited.replacen("version = \"1.0\"", "version = \"1.1\"", 1),
    )
    .unwrap();
    drop(ServerProcess::start(&db.url, &dir, None));
    assert_eq!(versions().await, ["1.0", "1.1"]);
    let current: String =
        sqlx::query_scalar("SELECT current_version FROM trials WHERE trial_id = 'taste'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(current, "1.1");
    let actions: Vec<String> = rrct::store::audit::entries(&store, Some("taste"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "trial_created",
            "protocol_version_registered",
            "protocol_version_registered"
        ]
    );
    store.close().await;
}

/// `rrct serve` runs the design protocols too: minimisation with per-patient arm eligibility
/// is live, over the real process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_minimisation_with_arm_eligibility() {
    let db = TestDb::sqlite();
    let server = ServerProcess::start(
        &db.url,
        std::path::Path::new("protocols/design"),
        Some("serve-design"),
    );
    let store = rrct::store::Store::connect(&db.url).await.unwrap();
    let token = rrct::service::tokens::create_token(&store, "register", None, None)
        .await
        .unwrap();
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/trials/three-arm-min/enrolments",
            server.base
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "record_id": "D1", "subject": "DS1", "site": "UPP",
            "fields": {"age": 70, "sex": "F", "diabetes": true, "diagnosis": "STEMI"}, "consent": {"kind": "oral", "taken_by": "op-1", "taken_at": "2024-01-01"},
            "ineligible_arms": ["prasugrel"]
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["eligible_arms"],
        serde_json::json!(["ticagrelor", "clopidogrel"]),
        "{answer}"
    );
    assert_ne!(answer["arm"], "prasugrel");
    store.close().await;
}

/// Enrolments whose requesters went away before the answer are still decided, and
/// `until_decided` waits for them: what `rrct serve` waits for at shutdown before it closes the
/// store (they had failed against a closed pool or a runtime shutting down).
async fn enrolments_of_requesters_gone_are_decided_before_the_store_closes(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "gone").await;
    let token = app.token("register", Some("taste"), None).await;
    // The writers' lock held: the queue's first batch waits for it.
    let writer = app.store.begin_write().await.unwrap();
    let url = format!("{}/api/v1/trials/taste/enrolments", app.base);
    let requests: Vec<_> = (0..10)
        .map(|i| {
            let (client, url, token) = (app.client.clone(), url.clone(), token.clone());
            tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(token)
                    .json(&patient(i, "UPP", "F"))
                    .send()
                    .await
            })
        })
        .collect();
    let queue = app.state.enrolments.clone();
    tokio::time::timeout(Duration::from_secs(10), async {
        while queue.undecided() < 10 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("all ten submitted");
    // The requesters go away; their enrolments stay queued.
    for request in &requests {
        request.abort();
    }
    let decided = tokio::spawn(async move { queue.until_decided().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!decided.is_finished(), "waits while they are undecided");
    assert_eq!(app.state.enrolments.undecided(), 10);
    writer.rollback().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), decided)
        .await
        .expect("decided once the lock is free")
        .unwrap();
    assert_eq!(app.state.enrolments.undecided(), 0);
    let stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM allocations WHERE trial_id = 'taste'")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(stored, 10, "every enrolment queued is decided and written");
    app.stop().await;
}
