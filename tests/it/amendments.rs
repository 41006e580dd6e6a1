//! Protocol amendments on a live trial: a new version adding a site and an arm and changing the
//! target is registered and audited, allocations keep the version they were made under, and
//! changes the allocation sequence or the analysis cannot survive are refused with every
//! reason, writing nothing.

use rrct::protocol;
use rrct::randomise::MasterSeed;
use rrct::service::trials;
use rrct::store::{allocations, audit, Store};
use serde_json::{json, Value};

use crate::live_procedures::taste_with;
use crate::support::{TestApp, TestDb};

crate::on_both_backends!(
    amendments_add_sites_and_arms_and_keep_versions,
    closing_an_arm_stops_allocations_to_it,
    design_changes_after_go_live_are_refused,
);

const SEED: &str = "amendments";
const TRIAL: &str = "amend";

fn version(source: &str, v: &str) -> String {
    source.replacen("version = \"1.0\"", &format!("version = \"{v}\""), 1)
}

fn v1() -> String {
    taste_with(TRIAL, "method = \"simple\"\nstrata = [\"site\"]")
}

/// Version 1.1: a site and a third arm added (interim monitoring, which compares two arms, is
/// dropped with it), a new target.
fn v11() -> String {
    let v1 = v1();
    let without_monitoring = &v1[..v1.find("# --- Interim monitoring").unwrap()];
    version(without_monitoring, "1.1")
        .replacen(
            "[[sites]]\ncode = \"UPP\"",
            "[[sites]]\ncode = \"NEW\"\nname = \"A new site\"\n\n[[sites]]\ncode = \"UPP\"",
            1,
        )
        .replacen(
            "# --- Enrolment fields",
            "[[arms]]\nid = \"third\"\nlabel = \"A third strategy\"\nratio = 1\n\n# --- Enrolment fields",
            1,
        )
        .replacen("target_sample_size = 7244", "target_sample_size = 9000", 1)
}

fn patient(i: usize, site: &str) -> Value {
    json!({
        "record_id": format!("A{i:04}"), "subject": format!("AS{i:04}"), "site": site,
        "fields": {"age": 60, "sex": "M", "diagnosis": "STEMI", "symptom_onset_hours": 1.0}, "consent": {"kind": "oral", "taken_by": "op-1", "taken_at": "2024-01-01"}
    })
}

async fn register(store: &Store, source: &str) -> Result<(), String> {
    let p = protocol::parse(source, "amendment.toml").map_err(|e| e.to_string())?;
    trials::register_with_seed(
        store,
        p,
        source,
        MasterSeed::from_passphrase(SEED),
        &crate::support::seed_key(),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

async fn versions(store: &Store, trial: &str) -> (Vec<String>, String) {
    let all = sqlx::query_scalar(
        "SELECT version FROM protocol_versions WHERE trial_id = $1 ORDER BY version",
    )
    .bind(trial)
    .fetch_all(store.pool())
    .await
    .unwrap();
    let current = sqlx::query_scalar("SELECT current_version FROM trials WHERE trial_id = $1")
        .bind(trial)
        .fetch_one(store.pool())
        .await
        .unwrap();
    (all, current)
}

async fn amendments_add_sites_and_arms_and_keep_versions(db: TestDb) {
    let app = TestApp::spawn(&db, &[&v1()], SEED).await;
    let token = app.token("register", None, None).await;
    for i in 0..6 {
        let (status, a) = app.enrol(TRIAL, &token, &patient(i, "UPP")).await;
        assert_eq!(
            (status, a["protocol_version"].as_str()),
            (201, Some("1.0")),
            "{a}"
        );
    }
    // The new site is not part of version 1.0.
    let (status, err) = app.enrol(TRIAL, &token, &patient(99, "NEW")).await;
    assert_eq!(status, 422, "{err}");
    app.stop().await;

    let app = TestApp::spawn(&db, &[&v11()], SEED).await;
    let token = app.token("register", None, None).await;
    let mut arms = std::collections::BTreeSet::new();
    for i in 6..40 {
        let site = if i % 2 == 0 { "NEW" } else { "UPP" };
        let (status, a) = app.enrol(TRIAL, &token, &patient(i, site)).await;
        assert_eq!(
            (status, a["protocol_version"].as_str()),
            (201, Some("1.1")),
            "{a}"
        );
        arms.insert(a["arm"].as_str().unwrap().to_string());
    }
    assert!(
        arms.contains("third"),
        "the added arm is allocated: {arms:?}"
    );
    let rows = allocations::list(&app.store, TRIAL).await.unwrap();
    for r in &rows {
        let expected = if r.randomisation_number <= 6 {
            "1.0"
        } else {
            "1.1"
        };
        assert_eq!(r.protocol_version, expected, "{}", r.record_id);
    }
    assert_eq!(
        versions(&app.store, TRIAL).await,
        (
            vec!["1.0".to_string(), "1.1".to_string()],
            "1.1".to_string()
        )
    );
    let entry = audit::entries(&app.store, Some(TRIAL))
        .await
        .unwrap()
        .into_iter()
        .rev()
        .find(|e| e.action == "protocol_version_registered")
        .unwrap();
    let payload: Value = serde_json::from_str(&entry.payload).unwrap();
    assert_eq!(payload["version"], "1.1");
    assert_eq!(payload["amendment"]["amends"], "1.0");
    assert_eq!(payload["amendment"]["allocations_so_far"], 6);
    let changes: Vec<&str> = payload["amendment"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for expected in [
        "site `NEW` added",
        "arm `third` added",
        "target sample size 7244 → 9000",
        "interim monitoring changed",
    ] {
        assert!(changes.contains(&expected), "{changes:?}");
    }
    app.stop().await;
}

async fn design_changes_after_go_live_are_refused(db: TestDb) {
    let blocks = taste_with(
        "amend_blocks",
        "method = \"permuted_blocks\"\nblock_sizes = [2, 4, 6]\nstrata = [\"site\", \"sex\"]",
    );
    let app = TestApp::spawn(&db, &[&v1(), &blocks], SEED).await;
    let token = app.token("register", None, None).await;
    // Before the first allocation a design change is allowed (versions only move forward).
    let early = version(&blocks, "1.1").replacen("block_sizes = [2, 4, 6]", "block_sizes = [4]", 1);
    register(&app.store, &early)
        .await
        .expect("no allocation yet");
    register(&app.store, &version(&blocks, "1.2"))
        .await
        .expect("back to the design");
    for i in 0..4 {
        for trial in [TRIAL, "amend_blocks"] {
            let (status, a) = app.enrol(trial, &token, &patient(i, "UPP")).await;
            assert_eq!(status, 201, "{a}");
        }
    }
    let store = app.store.clone();
    let before = (
        versions(&store, TRIAL).await,
        versions(&store, "amend_blocks").await,
        audit::entries(&store, None).await.unwrap().len(),
    );
    let allocated_arm = allocations::list(&store, TRIAL).await.unwrap()[0]
        .arm
        .clone();
    let removed = version(&v1(), "2.0").replacen(
        if allocated_arm == "pci" {
            "[[arms]]\nid = \"pci\"\nlabel = \"PCI alone\"\nratio = 1\n"
        } else {
            "[[arms]]\nid = \"aspiration\"\nlabel = \"Thrombus aspiration followed by PCI\"\nratio = 1\n"
        },
        "[[arms]]\nid = \"other\"\nlabel = \"Another\"\nratio = 1\n",
        1,
    );
    let cases = [
        (
            TRIAL,
            version(&v1(), "2.0").replacen("strata = [\"site\"]", "strata = [\"sex\"]", 1),
            vec!["stratification factors cannot change from [site] to [sex]".to_string()],
        ),
        (
            TRIAL,
            removed,
            vec![format!(
                "arm `{allocated_arm}` has received patients and cannot be removed"
            )],
        ),
        (
            "amend_blocks",
            version(&blocks, "2.0").replacen("block_sizes = [2, 4, 6]", "block_sizes = [2]", 1),
            vec![
                "block sizes of permuted blocks cannot change after randomisation has started"
                    .to_string(),
            ],
        ),
        (
            "amend_blocks",
            version(&blocks, "2.0")
                .replacen(
                    "method = \"permuted_blocks\"\nblock_sizes = [2, 4, 6]",
                    "method = \"simple\"",
                    1,
                )
                .replacen("strata = [\"site\", \"sex\"]", "strata = [\"site\"]", 1),
            vec![
                "method cannot change from permuted_blocks to simple".to_string(),
                "stratification factors cannot change".to_string(),
            ],
        ),
    ];
    for (trial, source, needles) in cases {
        let message = register(&store, &source).await.expect_err(trial);
        assert!(message.contains("cannot amend version"), "{message}");
        for needle in needles {
            assert!(message.contains(&needle), "{needle}: {message}");
        }
    }
    assert_eq!(
        (
            versions(&store, TRIAL).await,
            versions(&store, "amend_blocks").await,
            audit::entries(&store, None).await.unwrap().len(),
        ),
        before,
        "a refused amendment writes nothing"
    );
    // A change that is allowed still goes through.
    let target =
        version(&v1(), "1.2").replacen("target_sample_size = 7244", "target_sample_size = 100", 1);
    register(&store, &target).await.expect("target change");
    app.stop().await;
}

/// Version 1.2 closes the arm 1.1 added: later patients are allocated among the open arms only,
/// the arm's earlier patients stay, and the audit entry says what changed.
async fn closing_an_arm_stops_allocations_to_it(db: TestDb) {
    let app = TestApp::spawn(&db, &[&v1()], SEED).await;
    let token = app.token("register", None, None).await;
    let (status, a) = app.enrol(TRIAL, &token, &patient(0, "UPP")).await;
    assert_eq!(status, 201, "{a}");
    app.stop().await;

    let app = TestApp::spawn(&db, &[&v11()], SEED).await;
    let token = app.token("register", None, None).await;
    let mut third_before = 0;
    for i in 1..30 {
        let (status, a) = app.enrol(TRIAL, &token, &patient(i, "UPP")).await;
        assert_eq!(status, 201, "{a}");
        third_before += usize::from(a["arm"] == "third");
    }
    assert!(third_before > 0, "the third arm was allocated under 1.1");
    app.stop().await;

    let v12 = v11()
        .replacen("version = \"1.1\"", "version = \"1.2\"", 1)
        .replacen(
            "id = \"third\"\nlabel = \"A third strategy\"\nratio = 1",
            "id = \"third\"\nlabel = \"A third strategy\"\nratio = 1\nclosed = true",
            1,
        );
    assert!(v12.contains("closed = true"));
    let app = TestApp::spawn(&db, &[&v12], SEED).await;
    let token = app.token("register", None, None).await;
    for i in 30..80 {
        let (status, a) = app.enrol(TRIAL, &token, &patient(i, "UPP")).await;
        assert_eq!(
            (status, a["protocol_version"].as_str()),
            (201, Some("1.2")),
            "{a}"
        );
        assert_ne!(a["arm"], "third", "{a}");
        assert_eq!(a["eligible_arms"], json!(["aspiration", "pci"]), "{a}");
    }
    let rows = allocations::list(&app.store, TRIAL).await.unwrap();
    assert_eq!(
        rows.iter().filter(|r| r.arm == "third").count(),
        third_before,
        "the closed arm's patients stay"
    );
    let entry = audit::entries(&app.store, Some(TRIAL))
        .await
        .unwrap()
        .into_iter()
        .rev()
        .find(|e| e.action == "protocol_version_registered")
        .unwrap();
    let payload: Value = serde_json::from_str(&entry.payload).unwrap();
    assert_eq!(payload["version"], "1.2");
    let changes = payload["amendment"]["changes"].to_string();
    assert!(
        changes.contains("arm `third` closed to new patients"),
        "{changes}"
    );
    app.stop().await;
}
