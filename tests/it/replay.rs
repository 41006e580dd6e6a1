//! Randomisation anyone can verify after the trial, on both backends: each procedure's trial is
//! run through the real endpoint (concurrent waves, so batches decide several enrolments
//! together), closed, its seed revealed and its log exported; `randomise::replay` (and the
//! `rrct verify replay` command, and the independent Python re-implementation when python3 is
//! there) recomputes every allocation from the seed alone. Amendments, closed arms and
//! randomised-in-error marks are replayed too, and one changed byte of the log, the seed or a
//! protocol is found and located.

use std::path::{Path, PathBuf};

use rrct::randomise::replay::{self, AllocationLog, ProtocolFile};
use rrct::randomise::MasterSeed;
use rrct::service::lifecycle::{self, By, Change};
use rrct::service::{allocation_log, randomised_in_error};
use serde_json::{json, Value};

use crate::live_procedures::{taste_with, THREE_ARM_MIN};
use crate::support::{rrct, TestApp, TestDb};

crate::on_both_backends!(
    every_procedure_replays_from_the_revealed_seed,
    amendments_closed_arms_and_marks_replay,
    a_changed_byte_of_the_log_the_seed_or_a_protocol_is_located,
);

const SEED: &str = "replay";

const SITES: [&str; 5] = ["UPP", "LKP", "SUS", "SAH", "KS"];

fn taste_body(i: usize, prefix: &str) -> Value {
    json!({
        "record_id": format!("{prefix}{i:04}"),
        "subject": format!("{prefix}S{i:04}"),
        "site": SITES[(i * 3 + i / 4) % SITES.len()],
        "fields": {"age": 30 + (i * 17) % 60, "sex": if i.is_multiple_of(3) { "F" } else { "M" },
                   "diagnosis": "STEMI", "symptom_onset_hours": 2.5}, "consent": {"kind": "oral", "taken_by": "op-1", "taken_at": "2024-01-01"}
    })
}

fn three_arm_body(i: usize, prefix: &str) -> Value {
    let site = ["UPP", "LKP", "SUS", "KS"][(i * 5 + i / 3) % 4];
    let mut body = json!({
        "record_id": format!("{prefix}{i:04}"),
        "subject": format!("{prefix}S{i:04}"),
        "site": site,
        "fields": {"age": 40 + (i * 11) % 50, "sex": if i.is_multiple_of(2) { "F" } else { "M" },
                   "diabetes": i.is_multiple_of(5), "diagnosis": "STEMI"}, "consent": {"kind": "oral", "taken_by": "op-1", "taken_at": "2024-01-01"}
    });
    if i % 6 == 3 {
        body["ineligible_arms"] = json!(["ticagrelor"]);
    }
    body
}

/// Enrol in concurrent waves of 6, each answered 201.
async fn enrol_all(app: &TestApp, trial: &str, token: &str, bodies: &[Value]) {
    for chunk in bodies.chunks(6) {
        let sent = chunk.iter().map(|b| app.enrol(trial, token, b));
        for (status, body) in futures_util::future::join_all(sent).await {
            assert_eq!(status, 201, "{trial}: {body}");
        }
    }
}

async fn mark(app: &TestApp, trial: &str, record: &str) {
    randomised_in_error::mark(
        &app.store,
        trial,
        record,
        "found ineligible on review",
        &randomised_in_error::Marking {
            actor: "test",
            at: app.clock.now(),
        },
    )
    .await
    .unwrap();
}

/// Close the trial, reveal its seed and export its log and protocol files.
async fn close_and_export(
    app: &TestApp,
    trial: &str,
) -> (AllocationLog, Vec<ProtocolFile>, MasterSeed) {
    let by = By {
        actor: "test",
        at: app.clock.now(),
    };
    lifecycle::change(&app.store, trial, Change::Close, None, "done", &by)
        .await
        .unwrap();
    let seed = MasterSeed::from_passphrase(SEED);
    let revealed = lifecycle::reveal_seed(&app.store, trial, &seed, &by)
        .await
        .unwrap();
    assert_eq!(revealed.master_seed, hex::encode(seed.as_bytes()));
    let (log, sources) = allocation_log::export(&app.store, trial, "2030-01-01T00:00:00.000000Z")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        log.revealed_seed.as_deref(),
        Some(revealed.master_seed.as_str())
    );
    let files = sources
        .into_iter()
        .map(|s| ProtocolFile {
            origin: s.file_name,
            source: s.source,
        })
        .collect();
    (log, files, seed)
}

fn assert_replays(log: &AllocationLog, files: &[ProtocolFile], seed: &MasterSeed, marks: usize) {
    let report = replay::replay(log, seed, files);
    assert!(report.ok(), "{}: {report:?}", log.trial_id);
    assert_eq!(report.agreed, log.allocations.len());
    assert_eq!(report.marks, marks, "{}", log.trial_id);
}

/// Write the log and the protocol files to a directory for the command-line tools.
fn write_out(dir: &Path, log: &AllocationLog, files: &[ProtocolFile]) -> (PathBuf, PathBuf) {
    let protocols = dir.join(format!("{}-protocols", log.trial_id));
    std::fs::create_dir_all(&protocols).unwrap();
    for f in files {
        std::fs::write(protocols.join(&f.origin), &f.source).unwrap();
    }
    let file = dir.join(format!("{}.json", log.trial_id));
    std::fs::write(&file, serde_json::to_string_pretty(log).unwrap()).unwrap();
    (file, protocols)
}

/// The independent Python re-implementation on a log, when python3 is there.
fn python_agrees(file: &Path, protocols: &Path, seed: &MasterSeed) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/verify/replay.py");
    let out = match std::process::Command::new("python3")
        .arg(&script)
        .args(["--seed", &hex::encode(seed.as_bytes()), "--protocols"])
        .arg(protocols)
        .arg("--allocations")
        .arg(file)
        .output()
    {
        Ok(out) => out,
        Err(_) => {
            eprintln!("skipping the Python replay: no python3");
            return;
        }
    };
    assert!(
        out.status.success(),
        "{}: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn every_procedure_replays_from_the_revealed_seed(db: TestDb) {
    let trials: Vec<(&str, String)> = vec![
        ("r_simple", taste_with("r_simple", "method = \"simple\"\nstrata = [\"site\"]")),
        (
            "r_blocks",
            taste_with(
                "r_blocks",
                "method = \"permuted_blocks\"\nblock_sizes = [2, 4]\nstrata = [\"sex\"]\narm_eligibility = true",
            ),
        ),
        ("three-arm-min", THREE_ARM_MIN.to_string()),
        (
            "r_coin",
            taste_with("r_coin", "method = \"biased_coin\"\np = 0.75\nstrata = [\"site\"]"),
        ),
        (
            "r_stick",
            taste_with("r_stick", "method = \"big_stick\"\nmax_imbalance = 2\nstrata = [\"sex\"]"),
        ),
        (
            "r_urn",
            taste_with("r_urn", "method = \"urn\"\nalpha = 1\nbeta = 2\nstrata = [\"site\"]"),
        ),
        (
            "r_cluster",
            taste_with("r_cluster", "method = \"biased_coin\"\np = 0.75\ncluster = \"site\""),
        ),
    ];
    let sources: Vec<&str> = trials.iter().map(|(_, s)| s.as_str()).collect();
    let app = TestApp::spawn(&db, &sources, SEED).await;
    let token = app.token("register", None, None).await;
    let scratch = db.scratch();
    for (trial, _) in &trials {
        let bodies: Vec<Value> = (0..36)
            .map(|i| match *trial {
                "three-arm-min" => three_arm_body(i, "M"),
                "r_blocks" if i % 5 == 1 => {
                    let mut b = taste_body(i, "B");
                    b["ineligible_arms"] = json!(["aspiration"]);
                    b
                }
                _ => taste_body(i, "T"),
            })
            .collect();
        let (first, second) = bodies.split_at(18);
        enrol_all(&app, trial, &token, first).await;
        // Marks between the waves: minimisation balances later patients without them.
        let marked = [&first[2], &first[9]];
        for body in marked {
            mark(&app, trial, body["record_id"].as_str().unwrap()).await;
        }
        enrol_all(&app, trial, &token, second).await;
        let (log, files, seed) = close_and_export(&app, trial).await;
        assert_eq!(log.allocations.len(), 36);
        assert_replays(&log, &files, &seed, 2);
        if *trial == "three-arm-min" {
            let m = log
                .allocations
                .iter()
                .find(|a| a.record_id == "M0002")
                .and_then(|a| a.randomised_in_error.as_ref())
                .unwrap();
            assert_eq!(m.applies_from, 19);
            assert_eq!(m.released.len(), 4, "{m:?}");
        }
        let (file, protocols) = write_out(&scratch, &log, &files);
        python_agrees(&file, &protocols, &seed);
    }

    // The command line: export, then replay with no database.
    let dir = db.scratch();
    let out_file = dir.join("log.json");
    let protocols = dir.join("protocols");
    let out = rrct(&[
        "export",
        "allocations",
        "--database",
        &db.url,
        "--trial",
        "three-arm-min",
        "--out",
        out_file.to_str().unwrap(),
        "--protocols-dir",
        protocols.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seed = hex::encode(MasterSeed::from_passphrase(SEED).as_bytes());
    let out = rrct(&[
        "verify",
        "replay",
        "--seed",
        &seed,
        "--protocols",
        protocols.to_str().unwrap(),
        "--allocations",
        out_file.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("replayed 36 of 36 allocations"), "{stdout}");
    app.stop().await;
}

async fn amendments_closed_arms_and_marks_replay(db: TestDb) {
    let v1 = THREE_ARM_MIN.to_string();
    // 1.1 closes an arm that has patients and adds a site.
    let v11 = v1
        .replacen("version = \"1.0\"", "version = \"1.1\"", 1)
        .replacen(
            "id = \"prasugrel\"\nlabel = \"Prasugrel 10 mg once daily\"",
            "id = \"prasugrel\"\nlabel = \"Prasugrel 10 mg once daily\"\nclosed = true",
            1,
        );
    // 1.2 adds a fourth arm.
    let v12 = v11
        .replacen("version = \"1.1\"", "version = \"1.2\"", 1)
        .replacen(
            "# --- Enrolment fields",
            "[[arms]]\nid = \"cangrelor\"\nlabel = \"Cangrelor\"\n\n# --- Enrolment fields",
            1,
        );
    // A simple trial amended to a third arm too, with blocks elsewhere staying as they were.
    let simple = taste_with("r_amended", "method = \"simple\"\nstrata = [\"site\"]");
    let simple11 = simple.replacen("version = \"1.0\"", "version = \"1.1\"", 1).replacen(
        "# --- Enrolment fields",
        "[[arms]]\nid = \"third\"\nlabel = \"A third strategy\"\nratio = 2\n\n# --- Enrolment fields",
        1,
    );
    let simple11 = {
        let cut = simple11
            .find("# --- Interim monitoring")
            .unwrap_or(simple11.len());
        simple11[..cut].to_string()
    };
    let mut n = 0;
    for (sources, marks) in [
        (vec![v1.as_str(), simple.as_str()], vec![3usize]),
        (vec![v11.as_str(), simple11.as_str()], vec![14]),
        (vec![v12.as_str(), simple11.as_str()], vec![]),
    ] {
        let app = TestApp::spawn(&db, &sources, SEED).await;
        let token = app.token("register", None, None).await;
        let bodies: Vec<Value> = (n..n + 12).map(|i| three_arm_body(i, "A")).collect();
        enrol_all(&app, "three-arm-min", &token, &bodies).await;
        let bodies: Vec<Value> = (n..n + 12).map(|i| taste_body(i, "S")).collect();
        enrol_all(&app, "r_amended", &token, &bodies).await;
        for i in marks {
            mark(&app, "three-arm-min", &format!("A{i:04}")).await;
        }
        n += 12;
        app.stop().await;
    }
    let app = TestApp::spawn(&db, &[&v12, &simple11], SEED).await;
    let (log, files, seed) = close_and_export(&app, "three-arm-min").await;
    let versions: Vec<&str> = log
        .protocol_versions
        .iter()
        .map(|v| v.version.as_str())
        .collect();
    assert_eq!(versions, ["1.0", "1.1", "1.2"]);
    assert!(log
        .allocations
        .iter()
        .skip(12)
        .all(|a| a.arm != "prasugrel"));
    assert!(log.allocations.iter().skip(12).all(|a| a
        .input
        .eligible_arms
        .as_ref()
        .is_some_and(|e| !e.contains(&"prasugrel".to_string()))));
    assert!(log.allocations.iter().any(|a| a.arm == "cangrelor"));
    assert_replays(&log, &files, &seed, 2);
    let dir = db.scratch();
    let (file, protocols) = write_out(&dir, &log, &files);
    python_agrees(&file, &protocols, &seed);

    let (log, files, seed) = close_and_export(&app, "r_amended").await;
    assert!(log.allocations.iter().any(|a| a.arm == "third"));
    assert_replays(&log, &files, &seed, 0);
    let (file, protocols) = write_out(&dir, &log, &files);
    python_agrees(&file, &protocols, &seed);
    app.stop().await;
}

async fn a_changed_byte_of_the_log_the_seed_or_a_protocol_is_located(db: TestDb) {
    let blocks = taste_with(
        "r_tamper",
        "method = \"permuted_blocks\"\nblock_sizes = [2, 4, 6]\nstrata = [\"site\", \"sex\"]",
    );
    let app = TestApp::spawn(&db, &[&blocks, THREE_ARM_MIN], SEED).await;
    let token = app.token("register", None, None).await;
    let bodies: Vec<Value> = (0..30).map(|i| taste_body(i, "X")).collect();
    enrol_all(&app, "r_tamper", &token, &bodies).await;
    let bodies: Vec<Value> = (0..30).map(|i| three_arm_body(i, "Y")).collect();
    enrol_all(&app, "three-arm-min", &token, &bodies).await;
    let (log, files, seed) = close_and_export(&app, "r_tamper").await;
    let (min_log, min_files, _) = close_and_export(&app, "three-arm-min").await;
    app.stop().await;
    assert_replays(&log, &files, &seed, 0);

    let located = |log: &AllocationLog, files: &[ProtocolFile], seed: &MasterSeed| {
        let report = replay::replay(log, seed, files);
        assert!(!report.ok());
        report
    };
    // The arm of allocation 17.
    let mut changed = log.clone();
    let other = if changed.allocations[16].arm == "pci" {
        "aspiration"
    } else {
        "pci"
    };
    changed.allocations[16].arm = other.into();
    let d = located(&changed, &files, &seed).first_difference.unwrap();
    assert_eq!(d.randomisation_number, 17);
    assert_eq!(d.fields[0].0, "arm", "{d}");

    // A field of allocation 9 as received: another stratum.
    let mut changed = log.clone();
    let sex = &mut changed.allocations[8].input.fields["sex"];
    *sex = json!(if sex == "F" { "M" } else { "F" });
    let d = located(&changed, &files, &seed).first_difference.unwrap();
    assert_eq!(d.randomisation_number, 9);
    assert_eq!(d.fields[0].0, "input.stratum", "{d}");

    // One digit of a minimisation decision's detail.
    let mut changed = min_log.clone();
    let a = changed
        .allocations
        .iter_mut()
        .find(|a| {
            a.draw
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("\"draw\":0."))
        })
        .unwrap();
    let number = a.randomisation_number;
    let detail = a.draw.detail.clone().unwrap();
    let at = detail.find("\"draw\":0.").unwrap() + "\"draw\":0.".len();
    let digit = detail.as_bytes()[at];
    let mut bytes = detail.into_bytes();
    bytes[at] = if digit == b'9' { b'8' } else { digit + 1 };
    a.draw.detail = Some(String::from_utf8(bytes).unwrap());
    let d = located(&changed, &min_files, &seed)
        .first_difference
        .unwrap();
    assert_eq!(d.randomisation_number, number);
    assert_eq!(d.fields[0].0, "draw.detail", "{d}");

    // Two allocations swapped in the order.
    let mut changed = log.clone();
    changed.allocations.swap(4, 5);
    changed.allocations[4].randomisation_number = 5;
    changed.allocations[5].randomisation_number = 6;
    let report = located(&changed, &files, &seed);
    let d = report.first_difference.unwrap();
    assert!(d.randomisation_number <= 6, "{d}");

    // One bit of the seed.
    let mut bytes = *seed.as_bytes();
    bytes[31] ^= 1;
    let report = located(&log, &files, &MasterSeed::from_bytes(bytes));
    assert!(!report.seed_matches_commitment);
    let d = report
        .first_difference
        .expect("another seed, other allocations");
    assert!(d.randomisation_number <= 5, "{d}");

    // One byte of the protocol: named by its file, and the replay goes on with it.
    let mut changed_files: Vec<ProtocolFile> = files
        .iter()
        .map(|f| ProtocolFile {
            origin: f.origin.clone(),
            source: f
                .source
                .replacen("block_sizes = [2, 4, 6]", "block_sizes = [2, 4, 8]", 1),
        })
        .collect();
    let report = located(&log, &changed_files, &seed);
    assert_eq!(report.protocol_findings.len(), 1, "{report:?}");
    assert!(
        report.protocol_findings[0].contains("r_tamper-1.0.toml"),
        "{report:?}"
    );
    assert!(
        report.protocol_findings[0].contains("differs"),
        "{report:?}"
    );
    // A changed comment alone is still a changed protocol.
    changed_files[0].source = format!("{} ", files[0].source);
    let report = located(&log, &changed_files, &seed);
    assert_eq!(report.protocol_findings.len(), 1);
    assert!(
        report.first_difference.is_none(),
        "the allocations still replay"
    );

    // The command line says where.
    let dir = db.scratch();
    let mut changed = log.clone();
    changed.allocations[16].arm = other.into();
    let (file, protocols) = write_out(&dir, &changed, &files);
    let out = rrct(&[
        "verify",
        "replay",
        "--seed",
        &hex::encode(seed.as_bytes()),
        "--protocols",
        protocols.to_str().unwrap(),
        "--allocations",
        file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("allocation 17 (record"), "{stdout}");
    assert!(stdout.contains(&format!("arm: logged {other}")), "{stdout}");
}
