//! Same master seed and same enrolment order ⇒ the same allocations, on any backend.

use rrct::store::allocations;
use serde_json::json;

use crate::support::{Kind, TestApp, TestDb, TASTE};

async fn allocate_in_order(
    db: &TestDb,
    seed: &str,
) -> Vec<(String, String, i64, String, i64, i64)> {
    let app = TestApp::spawn(db, &[TASTE], seed).await;
    let token = app.token("register", None, None).await;
    let sites = ["UPP", "LKP", "SUS"];
    for i in 0..150usize {
        let body = json!({
            "record_id": format!("Q{i:04}"), "subject": format!("QS{i:04}"),
            "site": sites[i % 3],
            "fields": {"age": 30 + i % 60, "sex": if i % 4 == 0 { "F" } else { "M" },
                       "diagnosis": "STEMI", "symptom_onset_hours": 4.0}, "consent": {"kind": "oral", "taken_by": "op-1", "taken_at": "2024-01-01"}
        });
        let (status, answer) = app.enrol("taste", &token, &body).await;
        assert_eq!(status, 201, "{answer}");
    }
    let rows = allocations::list(&app.store, "taste").await.unwrap();
    app.stop().await;
    rows.into_iter()
        .map(|r| {
            (
                r.record_id,
                r.arm,
                r.randomisation_number,
                r.stratum,
                r.block_number,
                r.block_position,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fresh_databases_same_seed_same_allocations() {
    let first = allocate_in_order(&TestDb::sqlite(), "reproducible").await;
    let second = allocate_in_order(&TestDb::sqlite(), "reproducible").await;
    assert_eq!(first.len(), 150);
    assert_eq!(first, second);
    let other = allocate_in_order(&TestDb::sqlite(), "another seed").await;
    assert_ne!(
        first, other,
        "a different seed must give a different sequence"
    );
    if let Some(pg) = TestDb::of(Kind::Postgres).await {
        let on_postgres = allocate_in_order(&pg, "reproducible").await;
        assert_eq!(first, on_postgres, "SQLite and PostgreSQL disagree");
    }
}
