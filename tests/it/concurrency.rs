//! Two `rrct serve` processes sharing one database under concurrent load: the database alone
//! must keep randomisation numbers, subjects and block slots unique and blocks exact.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rrct::store::{allocations, audit, Store};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::support::{protocol_dir, Kind, ServerProcess, TestDb, TASTE};

const SITES: [&str; 6] = ["UPP", "LKP", "SUS", "SAH", "KS", "ORE"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_postgres_2000_enrolments_64_in_flight() {
    if let Some(db) = TestDb::of(Kind::Postgres).await {
        run(db, 2000, 64).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_sqlite_share_the_file_safely() {
    run(TestDb::sqlite(), 600, 32).await;
}

async fn run(db: TestDb, n: usize, in_flight: usize) {
    let dir = protocol_dir(&db, &[("taste.toml", TASTE)]);
    // The first server creates the trial; the second finds it.
    let a = ServerProcess::start(&db.url, &dir, None);
    let b = ServerProcess::start(&db.url, &dir, None);
    let store = Store::connect(&db.url).await.unwrap();
    let token = rrct::service::tokens::create_token(&store, "register", Some("taste"), None)
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let gate = Arc::new(Semaphore::new(in_flight));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let body = json!({
            "record_id": format!("C{i:05}"),
            "subject": format!("CS{i:05}"),
            "site": SITES[i % SITES.len()],
            "fields": {"age": 50 + (i % 30), "sex": if i % 3 == 0 { "F" } else { "M" },
                       "diagnosis": "STEMI", "symptom_onset_hours": 2.0}, "consent": {"kind": "oral", "taken_by": "op-1", "taken_at": "2024-01-01"}
        });
        // Every tenth record is sent to both servers at once, as a register retrying against
        // another instance behind a load balancer.
        let targets: Vec<String> = if i % 10 == 0 {
            vec![a.base.clone(), b.base.clone()]
        } else if i % 2 == 0 {
            vec![a.base.clone()]
        } else {
            vec![b.base.clone()]
        };
        for base in targets {
            let permit = gate.clone().acquire_owned().await.unwrap();
            let (client, token, body) = (client.clone(), token.clone(), body.clone());
            tasks.spawn(async move {
                let _permit = permit;
                let r = client
                    .post(format!("{base}/api/v1/trials/taste/enrolments"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .expect("request");
                let status = r.status().as_u16();
                let answer: Value = r.json().await.expect("json");
                (
                    body["record_id"].as_str().unwrap().to_string(),
                    status,
                    answer,
                )
            });
        }
    }
    let mut answers: HashMap<String, Vec<(u16, Value)>> = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        let (record, status, answer) = done.unwrap();
        answers.entry(record).or_default().push((status, answer));
    }
    assert_eq!(answers.len(), n);
    for (record, got) in &answers {
        let created = got.iter().filter(|(s, _)| *s == 201).count();
        assert_eq!(
            created, 1,
            "{record}: exactly one 201 expected, got {got:?}"
        );
        assert!(
            got.iter().all(|(s, _)| *s == 201 || *s == 200),
            "{record}: {got:?}"
        );
        // Both answers to a doubled request carry the same allocation.
        assert!(
            got.windows(2).all(|w| w[0].1 == w[1].1),
            "{record}: {got:?}"
        );
    }

    let rows = allocations::list(&store, "taste").await.unwrap();
    assert_eq!(rows.len(), n);
    let numbers: Vec<i64> = rows.iter().map(|r| r.randomisation_number).collect();
    assert_eq!(
        numbers,
        (1..=n as i64).collect::<Vec<_>>(),
        "numbers unique, no gaps"
    );
    let mut subjects: Vec<&str> = rows.iter().map(|r| r.subject.as_str()).collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), n, "no subject allocated twice");
    for (record, got) in &answers {
        let row = rows.iter().find(|r| &r.record_id == record).unwrap();
        assert_eq!(got[0].1["arm"], row.arm.as_str());
        assert_eq!(got[0].1["randomisation_number"], row.randomisation_number);
    }

    // Blocks: positions 0..size-1 each used once; completed blocks hold exactly 1:1.
    let mut blocks: BTreeMap<(String, i64), Vec<&rrct::randomise::AllocationRecord>> =
        BTreeMap::new();
    for r in &rows {
        blocks
            .entry((r.stratum.clone(), r.block_number))
            .or_default()
            .push(r);
    }
    let mut last_block: BTreeMap<&str, i64> = BTreeMap::new();
    for (stratum, number) in blocks.keys() {
        let e = last_block.entry(stratum.as_str()).or_insert(*number);
        *e = (*e).max(*number);
    }
    let mut completed = 0;
    for ((stratum, number), members) in &blocks {
        let size = members[0].block_size;
        let mut positions: Vec<i64> = members.iter().map(|m| m.block_position).collect();
        positions.sort();
        assert_eq!(
            positions,
            (0..members.len() as i64).collect::<Vec<_>>(),
            "{stratum} block {number}"
        );
        if *number < last_block[stratum.as_str()] {
            assert_eq!(
                members.len() as i64,
                size,
                "{stratum}: block {number} left incomplete"
            );
        }
        if members.len() as i64 == size {
            completed += 1;
            let asp = members.iter().filter(|m| m.arm == "aspiration").count() as i64;
            assert_eq!(asp * 2, size, "{stratum} block {number} is not 1:1");
        }
    }
    assert!(completed > 50, "only {completed} completed blocks");
    assert_eq!(
        audit::verify(&store).await.unwrap(),
        audit::ChainStatus::Intact {
            entries: audit::entries(&store, None).await.unwrap().len() as u64
        }
    );
    // Every entry others are told of has its one outbox row, written with it (one per entry
    // also when a batch inserts many entries in one statement).
    let told: Vec<(i64, Option<String>, String, String)> = audit::entries(&store, None)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| {
            let kind = match e.action.as_str() {
                "randomised" => "rrct.allocation.created",
                "screened_not_eligible" | "screened_not_randomised" => "rrct.screening.recorded",
                _ => return None,
            };
            Some((e.seq, e.trial_id, kind.to_string(), e.recorded_at))
        })
        .collect();
    let outbox: Vec<(i64, Option<String>, String, String)> = sqlx::query_as(
        "SELECT outbox_id, trial_id, event_type, recorded_at FROM outbox ORDER BY outbox_id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(told.len() >= n, "{} entries told of", told.len());
    assert_eq!(outbox, told);
    drop((a, b));
    store.close().await;
}
