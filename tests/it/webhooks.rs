//! Webhooks against a real HTTP receiver that fails when told to: every request's Standard
//! Webhooks signature verifies, each webhook gets its trial's outbox records in order with no
//! gap however often a record is retried, a blinded trial's events carry no arm, nothing is
//! lost when servers stop, die holding a lease or share the database, and duplicates only ever
//! repeat a `webhook-id`. Registration from the command line refuses bad input, writes nothing
//! then, and never shows or audits a secret; a key rotation keeps the secrets working.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use rrct::outbound::OutboundRecord;
use rrct::service::webhooks::{self, DeliveryOptions, SigningSecret, WebhookRecord, WebhookSpec};
use rrct::store::{outbox, Store};
use serde_json::{json, Value};

use crate::support::{
    patient, row_counts, rrct, seed_key, taste_variant, TestApp, TestDb, SEED_KEY_HEX, TASTE,
};

crate::on_both_backends!(
    webhooks_are_signed_ordered_retried_and_blinded,
    nothing_is_lost_across_restarts_and_a_dead_servers_lease,
    two_servers_deliver_one_webhook_one_request_at_a_time,
    a_webhook_altered_in_the_database_sends_nothing,
    the_command_line_adds_lists_and_removes_webhooks,
);

/// Delivery paced for tests: a failed record is retried within a fraction of a second.
fn fast() -> DeliveryOptions {
    DeliveryOptions {
        poll_interval: Duration::from_millis(50),
        retry_base: Duration::from_millis(50),
        retry_cap: Duration::from_millis(300),
        request_timeout: Duration::from_secs(2),
        lease: Duration::from_secs(5),
    }
}

async fn spawn(db: &TestDb, protocols: &[&str]) -> TestApp {
    TestApp::spawn_with(db, protocols, "webhooks", |s| s.webhooks = fast()).await
}

/// One request as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
    status: u16,
    at: chrono::DateTime<chrono::Utc>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
    fn outbox_id(&self) -> i64 {
        self.json()["id"].as_str().unwrap().parse().unwrap()
    }
    fn webhook_id(&self) -> &str {
        self.headers["webhook-id"].to_str().unwrap()
    }
}

/// A webhook receiver on 127.0.0.1: answers 500 to the next `fail_next` requests and to every
/// request while `failing`, 200 otherwise, after `delay`.
#[derive(Clone, Default)]
struct Receiver {
    log: Arc<Mutex<Vec<Received>>>,
    fail_next: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    delay_ms: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
    url: String,
}

async fn hook(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let now = r.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    r.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let delay = r.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    let fail = r.failing.load(Ordering::SeqCst)
        || r.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    r.log.lock().unwrap().push(Received {
        headers,
        body: body.to_vec(),
        status: status.as_u16(),
        at: chrono::Utc::now(),
    });
    r.in_flight.fetch_sub(1, Ordering::SeqCst);
    status
}

impl Receiver {
    async fn start(fail_next: usize) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Receiver {
            url: format!("http://{}/hook", listener.local_addr().unwrap()),
            ..Receiver::default()
        };
        r.fail_next.store(fail_next, Ordering::SeqCst);
        let router = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(r.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        r
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Wait until every one of `ids` was acknowledged.
    async fn wait_for(&self, ids: &[i64]) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let got = self.received();
            let acked: Vec<i64> = got
                .iter()
                .filter(|r| r.status == 200)
                .map(Received::outbox_id)
                .collect();
            if ids.iter().all(|id| acked.contains(id)) {
                return got;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "not delivered in 30 s: wanted {ids:?}, acknowledged {acked:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A fresh secret file in the Standard Webhooks form; its path and text.
fn secret_file(dir: &Path, name: &str) -> (PathBuf, String) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    let text = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    );
    let path = dir.join(name);
    std::fs::write(&path, format!("{text}\n")).unwrap();
    (path, text)
}

/// Register a webhook through the service; its id and secret text.
async fn add(
    app: &TestApp,
    db: &TestDb,
    trial: &str,
    url: &str,
    types: Option<&[&str]>,
) -> (String, String) {
    let (path, text) = secret_file(&db.scratch(), "hook.secret");
    let types: Option<Vec<String>> = types.map(|t| t.iter().map(|s| s.to_string()).collect());
    let id = webhooks::add(
        &app.store,
        &seed_key(),
        WebhookSpec {
            trial_id: trial,
            url,
            secret: SigningSecret::read_file(&path).unwrap(),
            types: types.as_deref(),
        },
        "test",
    )
    .await
    .expect("webhook added");
    (id, text)
}

async fn listed(store: &Store, id: &str) -> WebhookRecord {
    webhooks::list(store, None)
        .await
        .unwrap()
        .into_iter()
        .find(|w| w.webhook_id == id)
        .expect("listed")
}

/// The outbox records of `trial` after `after`, of the given types (all when `None`).
async fn records(
    store: &Store,
    trial: &str,
    after: i64,
    types: Option<&[&str]>,
) -> Vec<OutboundRecord> {
    outbox::all(store)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.trial_id.as_deref() == Some(trial) && r.id > after)
        .filter(|r| types.is_none_or(|t| t.contains(&r.event_type.as_str())))
        .collect()
}

/// Check what a webhook received against the records it should have had: every signature
/// verifies with its secret, the headers are as documented, the records came in order with no
/// gap (a record is repeated only until acknowledged, and only under its own `webhook-id`,
/// with the same body), and every one was acknowledged. Returns the acknowledged events in
/// order.
fn check(got: &[Received], webhook_id: &str, secret: &str, expected: &[i64]) -> Vec<Value> {
    assert!(!expected.is_empty());
    let verifier = standardwebhooks::Webhook::new(secret).unwrap();
    let mut bodies: HashMap<String, Vec<u8>> = HashMap::new();
    let mut at = 0usize;
    let mut acked = Vec::new();
    for r in got {
        verifier
            .verify(&r.body, &r.headers)
            .unwrap_or_else(|e| panic!("signature of {:?}: {e}", r.webhook_id()));
        assert_eq!(
            r.headers["content-type"].to_str().unwrap(),
            "application/cloudevents+json"
        );
        let id = r.outbox_id();
        assert_eq!(r.webhook_id(), format!("{webhook_id}_{id}"));
        let first = bodies
            .entry(r.webhook_id().to_string())
            .or_insert_with(|| r.body.clone());
        assert_eq!(first, &r.body, "a repeat carries the same event");
        // In order, no gap: the same record again (a retry or a duplicate after a restart) or the
        // next one, and the next only once the previous was acknowledged.
        if id != expected[at] {
            assert!(
                at + 1 < expected.len() && id == expected[at + 1] && acked.len() == at + 1,
                "record {id} out of order: expected {} next (acknowledged so far: {})",
                expected[at],
                acked.len()
            );
            at += 1;
        }
        if r.status == 200 && acked.len() == at {
            acked.push(r.json());
        }
    }
    let ids: Vec<i64> = acked
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, expected, "every record acknowledged, in order");
    acked
}

async fn webhooks_are_signed_ordered_retried_and_blinded(db: TestDb) {
    let blind = taste_variant(
        "blind",
        &[("masking = \"open_label\"", "masking = \"blinded\"")],
    );
    let app = spawn(&db, &[TASTE, &blind]).await;
    let (open_receiver, blind_receiver) = (Receiver::start(3).await, Receiver::start(1).await);
    let (open_hook, open_secret) = add(&app, &db, "taste", &open_receiver.url, None).await;
    let blind_types = ["rrct.allocation.created", "rrct.allocation.marked_in_error"];
    let (blind_hook, blind_secret) =
        add(&app, &db, "blind", &blind_receiver.url, Some(&blind_types)).await;
    let open_from = listed(&app.store, &open_hook).await.delivered_through;
    let blind_from = listed(&app.store, &blind_hook).await.delivered_through;

    // Allocations and a screening in each trial, and a mark in error in the blinded one.
    let mut replies: BTreeMap<(String, String), Value> = BTreeMap::new();
    for trial in ["taste", "blind"] {
        let register = app.token("register", Some(trial), None).await;
        for i in 0..6 {
            let (status, body) = app
                .enrol(trial, &register, &patient(i, "UPP", ["F", "M"][i % 2]))
                .await;
            assert_eq!(status, 201, "{body}");
            replies.insert(
                (
                    trial.to_string(),
                    body["record_id"].as_str().unwrap().into(),
                ),
                body,
            );
        }
        let mut ineligible = patient(99, "UPP", "F");
        ineligible["fields"]["diagnosis"] = json!("NSTEMI");
        assert_eq!(app.enrol(trial, &register, &ineligible).await.0, 422);
    }
    let admin = app.token("admin", None, None).await;
    let (status, body) = app
        .post(
            "/api/v1/trials/blind/enrolments/R000002/error",
            &admin,
            &json!({"reason": "found ineligible on review"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // The open-label trial: everything, through three failed attempts at the first record.
    let expected: Vec<i64> = records(&app.store, "taste", open_from, None)
        .await
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(expected.len(), 7, "six allocations and a screening");
    let got = open_receiver.wait_for(&expected).await;
    let events = check(&got, &open_hook, &open_secret, &expected);
    assert!(got[..4].iter().all(|r| r.outbox_id() == expected[0]));
    assert_eq!(
        got[..4].iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 500, 200]
    );
    for e in &events {
        assert_eq!(e["source"], "/rrct/trials/taste");
        if e["type"] == "rrct.allocation.created" {
            let reply = &replies[&("taste".to_string(), e["subject"].as_str().unwrap().into())];
            assert_eq!(
                e["data"]["arm"], reply["arm"],
                "the register treats by the arm"
            );
            assert_eq!(
                e["data"]["randomisation_number"],
                reply["randomisation_number"]
            );
            assert!(e["data"].get("stratum").is_none());
        }
    }
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "rrct.screening.recorded")
            .count(),
        1
    );

    // The blinded trial: only the types asked for, and never an arm.
    let expected: Vec<i64> = records(&app.store, "blind", blind_from, Some(&blind_types))
        .await
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(expected.len(), 7, "six allocations and a mark in error");
    let got = blind_receiver.wait_for(&expected).await;
    let events = check(&got, &blind_hook, &blind_secret, &expected);
    for r in &got {
        let text = String::from_utf8(r.body.clone()).unwrap();
        for arm in ["\"arm\"", "aspiration", "\"pci\"", "PCI alone"] {
            assert!(
                !text.contains(arm),
                "a blinded trial's event names {arm}: {text}"
            );
        }
    }
    for e in &events {
        let reply = &replies[&("blind".to_string(), e["subject"].as_str().unwrap().into())];
        assert_eq!(
            e["data"]["randomisation_number"],
            reply["randomisation_number"]
        );
    }
    assert_eq!(
        events.last().unwrap()["type"],
        "rrct.allocation.marked_in_error"
    );

    // The delivery state says so.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (hook, delivered) in [(&open_hook, 7), (&blind_hook, 7)] {
        let w = listed(&app.store, hook).await;
        assert_eq!(w.delivered, delivered, "{w:?}");
        assert_eq!((w.attempts, w.last_error.as_deref()), (0, None), "{w:?}");
    }
    let w = listed(&app.store, &blind_hook).await;
    assert_eq!(
        w.delivered_through,
        outbox::all(&app.store)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.trial_id.as_deref() == Some("blind"))
            .map(|r| r.id)
            .max()
            .unwrap(),
        "the screening the filter passed over is behind the cursor too"
    );
    app.stop().await;
}

async fn nothing_is_lost_across_restarts_and_a_dead_servers_lease(db: TestDb) {
    let receiver = Receiver::start(0).await;
    receiver.failing.store(true, Ordering::SeqCst);
    let app = spawn(&db, &[TASTE]).await;
    let (hook, secret) = add(&app, &db, "taste", &receiver.url, None).await;
    let from = listed(&app.store, &hook).await.delivered_through;
    let register = app.token("register", Some("taste"), None).await;
    for i in 0..4 {
        assert_eq!(
            app.enrol("taste", &register, &patient(i, "UPP", "F"))
                .await
                .0,
            201
        );
    }
    // Stopped while the receiver fails.
    let started = Instant::now();
    while receiver.received().len() < 3 {
        assert!(started.elapsed() < Duration::from_secs(20), "no attempts");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
    let store = rrct::service::connect(&db.url, Duration::from_secs(5))
        .await
        .unwrap();
    let w = listed(&store, &hook).await;
    assert_eq!(
        w.delivered_through, from,
        "nothing acknowledged, nothing skipped"
    );
    assert!(w.attempts >= 3, "{w:?}");
    assert_eq!(
        w.last_error.as_deref(),
        Some("HTTP 500 Internal Server Error")
    );

    // A server died holding the webhook's lease: the next server waits it out, then carries on.
    let lease_until = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    sqlx::query(
        "UPDATE webhook_deliveries SET lease_owner = 'dead-server', lease_until = $1, \
         next_attempt_at = $2 WHERE webhook_id = $3",
    )
    .bind(lease_until.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    .bind(rrct::store::now_text())
    .bind(&hook)
    .execute(store.pool())
    .await
    .unwrap();
    store.close().await;
    receiver.failing.store(false, Ordering::SeqCst);
    receiver.delay_ms.store(150, Ordering::SeqCst);
    let attempts_before = receiver.received().len();
    let app = spawn(&db, &[TASTE]).await;
    let register = app.token("register", Some("taste"), None).await;
    for i in 4..12 {
        assert_eq!(
            app.enrol("taste", &register, &patient(i, "UPP", "M"))
                .await
                .0,
            201
        );
    }
    // Stopped while records are waiting (each answer takes 150 ms).
    let started = Instant::now();
    while receiver
        .received()
        .iter()
        .filter(|r| r.status == 200)
        .count()
        < 2
    {
        assert!(started.elapsed() < Duration::from_secs(20), "no deliveries");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after_lease = receiver.received()[attempts_before..].to_vec();
    assert!(
        after_lease.iter().all(|r| r.at >= lease_until),
        "nothing sent while the dead server's lease held"
    );
    app.stop().await;
    let expected: Vec<i64> = {
        let store = rrct::service::connect(&db.url, Duration::from_secs(5))
            .await
            .unwrap();
        let ids = records(&store, "taste", from, None)
            .await
            .iter()
            .map(|r| r.id)
            .collect();
        let w = listed(&store, &hook).await;
        assert!(w.delivered >= 2, "{w:?}");
        store.close().await;
        ids
    };
    assert_eq!(expected.len(), 12);
    assert!(
        receiver
            .received()
            .iter()
            .filter(|r| r.status == 200)
            .count()
            < 12,
        "stopped with records waiting"
    );

    // The next start delivers the rest.
    receiver.delay_ms.store(0, Ordering::SeqCst);
    let app = spawn(&db, &[TASTE]).await;
    let got = receiver.wait_for(&expected).await;
    check(&got, &hook, &secret, &expected);
    app.stop().await;
}

async fn two_servers_deliver_one_webhook_one_request_at_a_time(db: TestDb) {
    let receiver = Receiver::start(2).await;
    receiver.delay_ms.store(20, Ordering::SeqCst);
    let first = spawn(&db, &[TASTE]).await;
    let second = spawn(&db, &[TASTE]).await;
    let (hook, secret) = add(&first, &db, "taste", &receiver.url, None).await;
    let from = listed(&first.store, &hook).await.delivered_through;
    let register = first.token("register", Some("taste"), None).await;
    for i in 0..12 {
        let app = if i % 2 == 0 { &first } else { &second };
        assert_eq!(
            app.enrol("taste", &register, &patient(i, "LKP", "F"))
                .await
                .0,
            201
        );
    }
    let expected: Vec<i64> = records(&first.store, "taste", from, None)
        .await
        .iter()
        .map(|r| r.id)
        .collect();
    let got = receiver.wait_for(&expected).await;
    check(&got, &hook, &secret, &expected);
    assert_eq!(
        receiver.most_in_flight.load(Ordering::SeqCst),
        1,
        "one request at a time for one webhook"
    );
    first.stop().await;
    second.stop().await;
}

async fn a_webhook_altered_in_the_database_sends_nothing(db: TestDb) {
    let (registered, elsewhere) = (Receiver::start(0).await, Receiver::start(0).await);
    let app = spawn(&db, &[TASTE]).await;
    let (hook, _) = add(&app, &db, "taste", &registered.url, None).await;
    sqlx::query("UPDATE webhooks SET url = $1 WHERE webhook_id = $2")
        .bind(&elsewhere.url)
        .bind(&hook)
        .execute(app.store.pool())
        .await
        .unwrap();
    let register = app.token("register", Some("taste"), None).await;
    assert_eq!(
        app.enrol("taste", &register, &patient(1, "UPP", "F"))
            .await
            .0,
        201
    );
    let started = Instant::now();
    let w = loop {
        let w = listed(&app.store, &hook).await;
        if w.attempts >= 2 {
            break w;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{w:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        w.last_error
            .as_deref()
            .unwrap_or("")
            .contains("does not open"),
        "{w:?}"
    );
    assert!(registered.received().is_empty() && elsewhere.received().is_empty());
    app.stop().await;
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

async fn the_command_line_adds_lists_and_removes_webhooks(db: TestDb) {
    let app = spawn(&db, &[TASTE]).await;
    let dir = db.scratch();
    let (secret, secret_text) = secret_file(&dir, "good.secret");
    let secret = secret.to_str().unwrap();
    let receiver = Receiver::start(0).await;
    let url = receiver.url.as_str();
    let base = ["webhook", "add", "--database", db.url.as_str()];

    // Bad input: each refused with its reason, nothing written.
    let before = row_counts(&app.store).await;
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let not_whsec = write("plain.secret", "hunter2\n");
    let short = write("short.secret", "whsec_c2hvcnQ=\n");
    let not_base64 = write("garbled.secret", "whsec_***\n");
    let missing = dir.join("missing.secret").to_str().unwrap().to_string();
    let (not_whsec, short, not_base64, missing) = (
        not_whsec.as_str(),
        short.as_str(),
        not_base64.as_str(),
        missing.as_str(),
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--trial", "nosuch", "--url", url, "--secret-file", secret],
            "no trial `nosuch`",
        ),
        (
            vec![
                "--trial",
                "taste",
                "--url",
                "ftp://register.example/",
                "--secret-file",
                secret,
            ],
            "must start with http:// or https://",
        ),
        (
            vec![
                "--trial",
                "taste",
                "--url",
                "register.example/hook",
                "--secret-file",
                secret,
            ],
            "is not a URL",
        ),
        (
            vec![
                "--trial",
                "taste",
                "--url",
                "https://me:pw@register.example/",
                "--secret-file",
                secret,
            ],
            "carries credentials",
        ),
        (
            vec![
                "--trial",
                "taste",
                "--url",
                url,
                "--secret-file",
                secret,
                "--types",
                "rrct.allocation.made",
            ],
            "unknown event type `rrct.allocation.made`",
        ),
        (
            vec![
                "--trial",
                "taste",
                "--url",
                url,
                "--secret-file",
                secret,
                "--types",
                ",",
            ],
            "--types names no type",
        ),
        (
            vec!["--trial", "taste", "--url", url, "--secret-file", missing],
            "cannot read the secret file",
        ),
        (
            vec!["--trial", "taste", "--url", url, "--secret-file", not_whsec],
            "does not start with `whsec_`",
        ),
        (
            vec!["--trial", "taste", "--url", url, "--secret-file", short],
            "holds a 5-byte key",
        ),
        (
            vec![
                "--trial",
                "taste",
                "--url",
                url,
                "--secret-file",
                not_base64,
            ],
            "is not base64",
        ),
    ];
    for (args, message) in cases {
        let full: Vec<&str> = base.iter().copied().chain(args).collect();
        let out = rrct(&full);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{full:?}");
        assert!(stderr.contains(message), "{full:?}: {stderr}");
        assert!(
            !stderr.contains("hunter2"),
            "a secret file's text is never shown"
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rrct"))
        .args(base)
        .args(["--trial", "taste", "--url", url, "--secret-file", secret])
        .env_remove("RRCT_SEED_KEY")
        .env_remove("RRCT_SEED_KEY_FILE")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no seed key"));
    assert_eq!(row_counts(&app.store).await, before, "nothing written");

    // Added: the id alone on stdout; listed without the secret; audited without it either.
    let id = ok(&rrct(
        &base
            .iter()
            .copied()
            .chain([
                "--trial",
                "taste",
                "--url",
                url,
                "--secret-file",
                secret,
                "--types",
                "rrct.allocation.created",
            ])
            .collect::<Vec<_>>(),
    ))
    .trim()
    .to_string();
    assert!(
        id.len() == 19 && id.starts_with("wh_") && id[3..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let key_b64 = secret_text.trim_start_matches("whsec_");
    let key_bytes = base64::engine::general_purpose::STANDARD
        .decode(key_b64)
        .unwrap();
    let list = ok(&rrct(&[
        "webhook",
        "list",
        "--database",
        &db.url,
        "--trial",
        "taste",
    ]));
    let row = list.lines().find(|l| l.starts_with(&id)).expect("listed");
    let cols: Vec<&str> = row.split('\t').collect();
    assert_eq!(
        &cols[1..4],
        ["taste", receiver.url.as_str(), "rrct.allocation.created"]
    );
    assert!(!list.contains(key_b64));
    let audit = rrct::store::audit::entries(&app.store, Some("taste"))
        .await
        .unwrap();
    let added = audit
        .iter()
        .find(|e| e.action == "webhook_added")
        .expect("audited");
    assert!(added.payload.contains(&id) && added.payload.contains(url));
    assert!(audit
        .iter()
        .all(|e| !e.payload.contains(key_b64) && !e.payload.contains(&hex::encode(&key_bytes))));
    let sealed: Vec<u8> =
        sqlx::query_scalar("SELECT sealed_secret FROM webhooks WHERE webhook_id = $1")
            .bind(&id)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert!(sealed.starts_with(b"rrct-secret1"));
    assert!(!sealed
        .windows(key_bytes.len())
        .any(|w| w == key_bytes.as_slice()));
    app.stop().await;

    // A key rotation re-seals the secret: a server with the new key signs with it still.
    let old = dir.join("old.key");
    let new = dir.join("new.key");
    std::fs::write(&old, SEED_KEY_HEX).unwrap();
    ok(&rrct(&["seeds", "new-key", "--out", new.to_str().unwrap()]));
    ok(&rrct(&[
        "seeds",
        "rotate-key",
        "--database",
        &db.url,
        "--key-file",
        old.to_str().unwrap(),
        "--new-key-file",
        new.to_str().unwrap(),
    ]));
    let new_key = rrct::service::seed_vault::SeedKey::read_file(&new).unwrap();
    let app = TestApp::spawn_with(&db, &[TASTE], "webhooks", |s| {
        s.webhooks = fast();
        s.seed_key = new_key;
    })
    .await;
    let from = listed(&app.store, &id).await.delivered_through;
    let register = app.token("register", Some("taste"), None).await;
    assert_eq!(
        app.enrol("taste", &register, &patient(1, "UPP", "F"))
            .await
            .0,
        201
    );
    let expected: Vec<i64> = records(
        &app.store,
        "taste",
        from,
        Some(&["rrct.allocation.created"]),
    )
    .await
    .iter()
    .map(|r| r.id)
    .collect();
    let got = receiver.wait_for(&expected).await;
    check(&got, &id, &secret_text, &expected);

    // Removed: nothing more is sent, the secret is erased, and it is said once.
    let out = ok(&rrct(&["webhook", "remove", "--database", &db.url, &id]));
    assert!(
        out.starts_with(&format!("removed {id} (trial taste")),
        "{out}"
    );
    let out = rrct(&["webhook", "remove", "--database", &db.url, &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already removed"));
    let out = rrct(&[
        "webhook",
        "remove",
        "--database",
        &db.url,
        "wh_0000000000000000",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no webhook `wh_0000000000000000`"));
    let sealed: Vec<u8> =
        sqlx::query_scalar("SELECT sealed_secret FROM webhooks WHERE webhook_id = $1")
            .bind(&id)
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert!(
        sealed.is_empty(),
        "the secret of a removed webhook is erased"
    );
    let received = receiver.received().len();
    assert_eq!(
        app.enrol("taste", &register, &patient(2, "UPP", "F"))
            .await
            .0,
        201
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), received, "nothing after removal");
    let list = ok(&rrct(&["webhook", "list", "--database", &db.url]));
    let row = list
        .lines()
        .find(|l| l.starts_with(&id))
        .expect("still listed");
    assert_ne!(row.split('\t').nth(5), Some("-"), "shown removed: {row}");
    app.stop().await;
}
