//! kill -9 during concurrent enrolments: every acknowledged allocation survives unchanged and
//! the audit chain still verifies.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::support::{protocol_dir, rrct, ServerProcess, TestDb, TASTE};

crate::on_both_backends!(kill_9_loses_no_acknowledged_allocation);

async fn kill_9_loses_no_acknowledged_allocation(db: TestDb) {
    let dir = protocol_dir(&db, &[("taste.toml", TASTE)]);
    let mut server = ServerProcess::start(&db.url, &dir, None);
    let token = {
        let out = rrct(&[
            "token",
            "create",
            "--database",
            &db.url,
            "--role",
            "register",
        ]);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let gate = Arc::new(Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    let sites = ["UPP", "LKP", "SUS", "SAH"];
    for i in 0..1500usize {
        let permit = gate.clone().acquire_owned().await.unwrap();
        let (client, token, base) = (client.clone(), token.clone(), server.base.clone());
        let body = json!({
            "record_id": format!("K{i:05}"), "subject": format!("KS{i:05}"),
            "site": sites[i % 4],
            "fields": {"age": 60, "sex": if i % 2 == 0 { "F" } else { "M" },
                       "diagnosis": "STEMI", "symptom_onset_hours": 1.0}, "consent": {"kind": "oral", "taken_by": "op-1", "taken_at": "2024-01-01"}
        });
        tasks.spawn(async move {
            let _permit = permit;
            let r = client
                .post(format!("{base}/api/v1/trials/taste/enrolments"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .ok()?;
            let status = r.status().as_u16();
            let answer: Value = r.json().await.ok()?;
            Some((status, answer))
        });
        if i == 400 {
            break;
        }
    }
    // Let some enrolments complete, then kill the server while others are in flight.
    let mut acknowledged: HashMap<String, Value> = HashMap::new();
    let mut killed = false;
    while let Some(done) = tasks.join_next().await {
        if let Some((status, answer)) = done.unwrap() {
            if status == 201 || status == 200 {
                acknowledged.insert(answer["record_id"].as_str().unwrap().to_string(), answer);
            }
        }
        if !killed && acknowledged.len() >= 150 {
            server.kill9();
            killed = true;
        }
    }
    assert!(killed, "the server was never killed");
    assert!(acknowledged.len() >= 150);
    assert!(
        acknowledged.len() < 401,
        "the kill came too late to interrupt anything"
    );

    let restarted = ServerProcess::start(&db.url, &dir, None);
    for (record, answer) in &acknowledged {
        let r = client
            .get(format!(
                "{}/api/v1/trials/taste/enrolments/{record}",
                restarted.base
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "acknowledged {record} lost");
        let stored: Value = r.json().await.unwrap();
        assert_eq!(&stored, answer, "{record} changed after the crash");
    }
    let out = rrct(&["audit", "verify", "--database", &db.url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "audit verify failed: {stdout}");
    assert!(stdout.starts_with("ok: "), "{stdout}");

    // The trial carries on where it stopped: numbers continue without duplicates.
    let r = client
        .post(format!("{}/api/v1/trials/taste/enrolments", restarted.base))
        .bearer_auth(&token)
        .json(&json!({"record_id": "after-crash", "subject": "after-crash", "site": "UPP",
                      "fields": {"age": 60, "sex": "F", "diagnosis": "STEMI", "symptom_onset_hours": 1.0}, "consent": {"kind": "oral", "taken_by": "op-1", "taken_at": "2024-01-01"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let fresh: Value = r.json().await.unwrap();
    let max_ack = acknowledged
        .values()
        .map(|a| a["randomisation_number"].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(fresh["randomisation_number"].as_i64().unwrap() > max_ack);
}
