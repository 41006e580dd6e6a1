//! The trust boundary beyond single requests: who may do what (every cell of the role ×
//! endpoint matrix the README documents), protocol versions that only move forward, tokens
//! that expire and are revoked, seeds sealed at rest, an auditor who cannot read open blocks,
//! health under a read-only database and an outage, HTTP timeouts and limits, and one patient
//! sent under many spellings to two servers at once.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use rrct::service::tokens::{self, Expiry, TokenSpec};
use rrct::store::Store;
use serde_json::{json, Value};

use crate::support::{
    patient, protocol_dir, row_counts, rrct, serve_once, session, Kind, ServerProcess, TestApp,
    TestDb, TASTE,
};

crate::on_both_backends!(
    every_role_gets_what_the_matrix_says,
    an_older_protocol_never_comes_back,
    tokens_expire_are_revoked_and_need_a_real_scope,
    master_seeds_are_sealed_and_the_key_is_needed,
    the_auditor_sees_no_arm_of_an_open_block,
    a_read_only_database_is_unhealthy_and_refused_at_start,
    one_patient_under_64_spellings_on_two_servers_is_randomised_once,
);

/// The trial page for a signed-in reader: status and which page it is.
async fn page(app: &TestApp, token: &str) -> (u16, &'static str) {
    let cookie = session(app, token).await;
    let r = reqwest::Client::new()
        .get(format!("{}/trials/taste", app.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    let kind = if body.contains("Audit trail") || body.contains("Chain intact") {
        "audit"
    } else if body.contains("Hazard ratio") || body.contains("Kaplan") {
        "unblinded"
    } else if body.contains("Recruitment over time") {
        "blinded"
    } else {
        "refused"
    };
    (status, kind)
}

async fn every_role_gets_what_the_matrix_says(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "matrix").await;
    let register = app.token("register", Some("taste"), None).await;
    // Allocations to read, mark and send events for (one each per row of the matrix).
    for i in 0..9 {
        let (status, body) = app.enrol("taste", &register, &patient(i, "UPP", "F")).await;
        assert_eq!(status, 201, "{body}");
    }
    // role, enrol, read, mark, screen, events, summary, analysis, revoke, unblind, unblindings,
    // status, site-close, reveal-seed; page
    type Row = (&'static str, [u16; 13], &'static str);
    let matrix: [Row; 9] = [
        (
            "admin",
            [
                403, 200, 201, 403, 200, 200, 403, 200, 403, 403, 200, 200, 409,
            ],
            "blinded",
        ),
        (
            "register@taste",
            [
                201, 200, 403, 201, 200, 200, 403, 403, 403, 403, 200, 403, 403,
            ],
            "blinded",
        ),
        (
            "register@taste/UPP",
            [
                201, 200, 403, 201, 200, 200, 403, 403, 403, 403, 200, 403, 403,
            ],
            "blinded",
        ),
        (
            "source",
            [
                403, 403, 403, 403, 200, 403, 403, 403, 403, 403, 403, 403, 403,
            ],
            "refused",
        ),
        (
            "sponsor@taste",
            [
                403, 403, 403, 403, 403, 200, 403, 403, 403, 403, 200, 403, 403,
            ],
            "blinded",
        ),
        (
            "statistician@taste",
            [
                403, 403, 403, 403, 403, 200, 200, 403, 403, 200, 200, 403, 403,
            ],
            "unblinded",
        ),
        (
            "dsmb@taste",
            [
                403, 403, 403, 403, 403, 200, 200, 403, 403, 200, 200, 403, 403,
            ],
            "unblinded",
        ),
        (
            "auditor@taste",
            [
                403, 403, 403, 403, 403, 200, 403, 403, 403, 200, 200, 403, 403,
            ],
            "audit",
        ),
        (
            "unblinder@taste",
            [
                403, 403, 403, 403, 403, 200, 403, 403, 200, 403, 200, 403, 403,
            ],
            "blinded",
        ),
    ];
    let mut wrong = Vec::new();
    for (row, (spec, expected, expected_page)) in matrix.iter().enumerate() {
        let (role, scope) = spec.split_once('@').unwrap_or((spec, ""));
        let (trial, site) = scope.split_once('/').unwrap_or((scope, ""));
        let token = match role {
            // A register feed is bound to the source whose events it sends.
            "source" => app.source_token("swedeheart").await,
            _ => {
                app.token(
                    role,
                    Some(trial).filter(|t| !t.is_empty()),
                    Some(site).filter(|s| !s.is_empty()),
                )
                .await
            }
        };
        let n = 100 + row;
        let mut screened = patient(n + 50, "UPP", "M");
        screened["reason"] = json!("consent_declined");
        let throwaway = app.token("sponsor", Some("taste"), None).await;
        let throwaway_id = {
            let list = tokens::list(&app.store, None).await.unwrap();
            list.last().unwrap().token_id.clone()
        };
        let event = json!({"events": [{"event_id": format!("M{row}"), "subject": format!("S{row:06}"),
                           "type": "mi", "date": crate::support::days_ago(1), "source": "swedeheart"}]});
        let got = [
            app.enrol("taste", &token, &patient(n, "UPP", "F")).await.0,
            app.get(
                &format!("/api/v1/trials/taste/enrolments/R{row:06}"),
                &token,
            )
            .await
            .0,
            app.post(
                &format!("/api/v1/trials/taste/enrolments/R{row:06}/error"),
                &token,
                &json!({"reason": "found ineligible on review"}),
            )
            .await
            .0,
            app.post("/api/v1/trials/taste/screenings", &token, &screened)
                .await
                .0,
            app.post("/api/v1/events", &token, &event).await.0,
            app.get("/api/v1/trials/taste/summary", &token).await.0,
            app.get("/api/v1/trials/taste/analysis", &token).await.0,
            app.post(
                &format!("/api/v1/tokens/{throwaway_id}/revoke"),
                &token,
                &json!({}),
            )
            .await
            .0,
            app.post(
                &format!("/api/v1/trials/taste/enrolments/R{row:06}/unblind"),
                &token,
                &json!({"reason": "emergency", "person": "Dr On Call"}),
            )
            .await
            .0,
            app.get("/api/v1/trials/taste/unblindings", &token).await.0,
            app.get("/api/v1/trials/taste/status", &token).await.0,
            app.post(
                "/api/v1/trials/taste/sites/SUS/close",
                &token,
                &json!({"reason": "matrix"}),
            )
            .await
            .0,
            app.post("/api/v1/trials/taste/reveal-seed", &token, &json!({}))
                .await
                .0,
        ];
        let _ = throwaway;
        let endpoints = [
            "enrol",
            "read",
            "mark",
            "screen",
            "events",
            "summary",
            "analysis",
            "revoke",
            "unblind",
            "unblindings",
            "status",
            "site-close",
            "reveal-seed",
        ];
        for ((endpoint, got), want) in endpoints.iter().zip(got).zip(expected) {
            if got != *want {
                wrong.push(format!("{spec} {endpoint}: {got}, expected {want}"));
            }
        }
        let (status, kind) = page(&app, &token).await;
        let want_status = if *expected_page == "refused" {
            403
        } else {
            200
        };
        if (status, kind) != (want_status, *expected_page) {
            wrong.push(format!(
                "{spec} page: {status} {kind}, expected {want_status} {expected_page}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "matrix cells wrong:\n{}",
        wrong.join("\n")
    );
    app.stop().await;
}

async fn an_older_protocol_never_comes_back(db: TestDb) {
    let amended = TASTE
        .replacen("version = \"1.0\"", "version = \"1.1\"", 1)
        .replacen("target_sample_size = 7244", "target_sample_size = 8000", 1);
    let dir = protocol_dir(&db, &[("taste.toml", &amended)]);
    // The trial starts at 1.0, then the amendment 1.1 is served.
    TestApp::spawn(&db, &[TASTE], "versions").await.stop().await;
    {
        let server = ServerProcess::start(&db.url, &dir, None);
        let store = Store::connect(&db.url).await.unwrap();
        let token = tokens::create_token(&store, "register", Some("taste"), None)
            .await
            .unwrap();
        let r: Value = reqwest::Client::new()
            .post(format!("{}/api/v1/trials/taste/enrolments", server.base))
            .bearer_auth(&token)
            .json(&patient(1, "UPP", "F"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["protocol_version"], "1.1", "{r}");
        store.close().await;
    }
    // The old file again: refused, the server does not start, nothing is written.
    std::fs::write(dir.join("taste.toml"), TASTE).unwrap();
    let store = Store::connect(&db.url).await.unwrap();
    let before = row_counts(&store).await;
    let out = serve_once(&db.url, &dir);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("version 1.0 is older than the trial's current version 1.1"),
        "{stderr}"
    );
    // A lower version as an amendment, and a version that is not numbers, are refused too.
    for (version, message) in [
        ("0.9", "is older than the trial's current version 1.1"),
        ("1.0.9", "is older than the trial's current version 1.1"),
    ] {
        let older = TASTE.replacen("version = \"1.0\"", &format!("version = \"{version}\""), 1);
        std::fs::write(dir.join("taste.toml"), older).unwrap();
        let out = serve_once(&db.url, &dir);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(message),
            "{version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let unordered = TASTE.replacen("version = \"1.0\"", "version = \"2.0-rc\"", 1);
    std::fs::write(dir.join("taste.toml"), unordered).unwrap();
    let out = rrct(&[
        "protocol",
        "check",
        dir.join("taste.toml").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must be whole numbers separated by dots"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(row_counts(&store).await, before, "nothing was written");
    store.close().await;
}

async fn tokens_expire_are_revoked_and_need_a_real_scope(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "tokens").await;
    let before = row_counts(&app.store).await;
    // Creation for a trial or site that does not exist is refused, and writes nothing.
    for (args, message) in [
        (vec!["--trial", "nosuch"], "no trial `nosuch`"),
        (
            vec!["--trial", "taste", "--site", "NOSUCH"],
            "has no site `NOSUCH`",
        ),
        (vec!["--site", "UPP"], "needs a trial scope"),
        (
            vec!["--trial", "taste", "--expires-in", "soon"],
            "--expires-in `soon`",
        ),
    ] {
        let mut full = vec![
            "token",
            "create",
            "--database",
            &db.url,
            "--role",
            "register",
        ];
        full.extend(args);
        let out = rrct(&full);
        assert!(!out.status.success(), "{full:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(message),
            "{full:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = rrct(&[
        "token",
        "create",
        "--database",
        &db.url,
        "--role",
        "sponsor",
        "--expires-in",
        "never",
    ]);
    assert!(!out.status.success(), "a person's token must expire");
    assert_eq!(row_counts(&app.store).await, before);

    // A person's token expires by default; `token list` shows it and never the secret.
    let out = rrct(&[
        "token",
        "create",
        "--database",
        &db.url,
        "--role",
        "sponsor",
        "--trial",
        "taste",
    ]);
    assert!(out.status.success());
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let listed = String::from_utf8(
        rrct(&["token", "list", "--database", &db.url, "--trial", "taste"]).stdout,
    )
    .unwrap();
    assert!(!listed.contains(&secret[5..]), "no secret in the list");
    let row = listed.lines().find(|l| l.contains("sponsor")).unwrap();
    let expires = row.split('\t').nth(6).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(expires).unwrap();
    let days = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_days();
    assert!((29..=30).contains(&days), "{row}");

    // An expired token is refused.
    let short = tokens::create(
        &app.store,
        &TokenSpec {
            role: "sponsor",
            trial_id: Some("taste"),
            site_code: None,
            expires: Expiry::After(chrono::Duration::seconds(2)),
            source_id: None,
        },
        "test",
    )
    .await
    .unwrap();
    assert_eq!(app.get("/api/v1/trials/taste/summary", &short).await.0, 200);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (status, body) = app.get("/api/v1/trials/taste/summary", &short).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated");

    // Revoked through this server: refused at once (it was cached a moment ago).
    let admin = app.token("admin", None, None).await;
    let victim = app.token("register", Some("taste"), None).await;
    assert_eq!(
        app.get("/api/v1/trials/taste/summary", &victim).await.0,
        200
    );
    let id = tokens::list(&app.store, Some("taste"))
        .await
        .unwrap()
        .last()
        .unwrap()
        .token_id
        .clone();
    let (status, revoked) = app
        .post(&format!("/api/v1/tokens/{id}/revoke"), &admin, &json!({}))
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["token_id"], id);
    assert!(revoked["revoked_at"].is_string());
    assert_eq!(
        app.get("/api/v1/trials/taste/summary", &victim).await.0,
        401
    );
    let (status, again) = app
        .post(&format!("/api/v1/tokens/{id}/revoke"), &admin, &json!({}))
        .await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("already_revoked"))
    );
    let (status, _) = app
        .post("/api/v1/tokens/000000000000/revoke", &admin, &json!({}))
        .await;
    assert_eq!(status, 404);

    // Revoked by the command line: another server stops accepting it within the cache period.
    let other = app.token("register", Some("taste"), None).await;
    assert_eq!(app.get("/api/v1/trials/taste/summary", &other).await.0, 200);
    let other_id = tokens::list(&app.store, Some("taste"))
        .await
        .unwrap()
        .last()
        .unwrap()
        .token_id
        .clone();
    let out = rrct(&["token", "revoke", "--database", &db.url, &other_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let waited = Instant::now();
    loop {
        if app.get("/api/v1/trials/taste/summary", &other).await.0 == 401 {
            break;
        }
        assert!(
            waited.elapsed() < tokens::TOKEN_CACHE_TTL + Duration::from_secs(2),
            "still accepted after the cache period"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    app.stop().await;
}

async fn master_seeds_are_sealed_and_the_key_is_needed(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "sealed-seed").await;
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT master_seed FROM trial_secrets WHERE trial_id = 'taste'")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    let seed = rrct::randomise::MasterSeed::from_passphrase("sealed-seed");
    assert!(stored.len() > 32 && stored.starts_with(b"rrct-seed-v1"));
    assert!(
        !stored.windows(32).any(|w| w == seed.as_bytes()),
        "the seed is not stored in the clear"
    );
    app.stop().await;
    if db.kind == Kind::Sqlite {
        use std::os::unix::fs::PermissionsExt;
        let path = db.url.trim_start_matches("sqlite://");
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the SQLite file is its owner's only");
    }
    let dir = protocol_dir(&db, &[("taste.toml", TASTE)]);
    let serve = |key: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rrct"));
        cmd.args([
            "serve",
            "--database",
            &db.url,
            "--bind",
            "127.0.0.1:0",
            "--protocols",
        ])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .env_remove("RRCT_SEED_KEY")
        .env_remove("RRCT_SEED_KEY_FILE")
        .stdin(std::process::Stdio::null());
        if let Some(k) = key {
            cmd.env("RRCT_SEED_KEY", k);
        }
        cmd.output().unwrap()
    };
    let out = serve(None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no seed key"));
    let out = serve(Some(&"ab".repeat(32)));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is sealed with key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Rotation: the seeds are sealed under the new key; the old one no longer opens them.
    let keys = db.scratch();
    let (old, new) = (keys.join("old.key"), keys.join("new.key"));
    std::fs::write(&old, crate::support::SEED_KEY_HEX).unwrap();
    let out = rrct(&["seeds", "new-key", "--out", new.to_str().unwrap()]);
    assert!(out.status.success());
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&new).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let out = rrct(&[
        "seeds",
        "rotate-key",
        "--database",
        &db.url,
        "--key-file",
        old.to_str().unwrap(),
        "--new-key-file",
        new.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_key = std::fs::read_to_string(&new).unwrap();
    let started = ServerProcess::start_with(
        &db.url,
        &dir,
        None,
        &["--seed-key-file", new.to_str().unwrap()],
        false,
    );
    let r = reqwest::get(format!("{}/healthz", started.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(started);
    assert!(!serve(Some(crate::support::SEED_KEY_HEX)).status.success());
    assert!(!new_key.trim().is_empty());
}

async fn the_auditor_sees_no_arm_of_an_open_block(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "open-blocks").await;
    let register = app.token("register", Some("taste"), None).await;
    let auditor = app.token("auditor", Some("taste"), None).await;
    let (status, first) = app.enrol("taste", &register, &patient(0, "UPP", "F")).await;
    assert_eq!(status, 201, "{first}");
    let arm = first["arm"].as_str().unwrap().to_string();
    let cookie = session(&app, &auditor).await;
    let audit_page = || async {
        reqwest::Client::new()
            .get(format!("{}/trials/taste", app.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // The first allocation's entry: the oldest `randomised` row (entries are newest first).
    let row_of = |page: &str| -> String {
        let at = page
            .rfind("<td>randomised</td>")
            .expect("the allocation's entry");
        page[at..at + page[at..].find("</tr>").unwrap()].to_string()
    };
    let open = audit_page().await;
    let row = row_of(&open);
    assert!(row.contains("withheld while its block is open"), "{row}");
    assert!(
        !row.contains(&format!("&quot;arm&quot;:&quot;{arm}")),
        "{row}"
    );
    assert!(open.contains("block is still open"));
    // Fill the block (same stratum: UPP, women): the first allocation's arm is shown.
    let size: i64 = rrct::store::allocations::list(&app.store, "taste")
        .await
        .unwrap()[0]
        .block_size;
    for i in 1..size as usize {
        let (status, body) = app.enrol("taste", &register, &patient(i, "UPP", "F")).await;
        assert_eq!(status, 201, "{body}");
    }
    let complete = audit_page().await;
    let row = row_of(&complete);
    assert!(!row.contains("withheld"), "{row}");
    assert!(row.contains(&arm), "{row}");
    app.stop().await;
}

async fn a_read_only_database_is_unhealthy_and_refused_at_start(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "read-only").await;
    let admin_url = db.url.clone();
    assert_eq!(
        reqwest::get(format!("{}/healthz", app.base))
            .await
            .unwrap()
            .status(),
        200
    );
    let register = app.token("register", Some("taste"), None).await;
    match db.kind {
        Kind::Sqlite => {
            app.stop().await;
            // Opened read-only (as a file without write permission is): `rrct serve` refuses.
            let ro = format!("{admin_url}?mode=ro");
            let dir = protocol_dir(&db, &[("taste.toml", TASTE)]);
            let out = serve_once(&ro, &dir);
            assert!(!out.status.success());
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("cannot be written"),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            // A server whose database turns read-only answers 503 on /healthz and on writes.
            let store = Store::connect(&ro).await.unwrap();
            let state = rrct::service::AppState::new(
                store.clone(),
                rrct::service::TrialRegistry::from_runtimes([
                    rrct::service::trials::register_with_seed(
                        &Store::connect(&admin_url).await.unwrap(),
                        rrct::protocol::parse(TASTE, "taste.toml").unwrap(),
                        TASTE,
                        rrct::randomise::MasterSeed::from_passphrase("read-only"),
                        &crate::support::seed_key(),
                    )
                    .await
                    .unwrap(),
                ]),
                rrct::service::Clock::system(),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(rrct::api::serve(listener, state, async {
                let _ = stopped.await;
            }));
            let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
            assert_eq!(r.status(), 503);
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unavailable");
            let r = reqwest::Client::new()
                .post(format!("{base}/api/v1/trials/taste/enrolments"))
                .bearer_auth(&register)
                .json(&patient(7, "UPP", "F"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 503);
            let _ = stop.send(());
            server.await.unwrap().unwrap();
            store.close().await;
        }
        Kind::Postgres => {
            // The server turns read-only under a running engine.
            let name = admin_url.rsplit('/').next().unwrap().to_string();
            let admin = crate::support::postgres_admin().await;
            sqlx::query(&format!(
                "ALTER DATABASE {name} SET default_transaction_read_only = on"
            ))
            .execute(&admin)
            .await
            .unwrap();
            sqlx::query(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            ))
            .execute(&admin)
            .await
            .unwrap();
            let mut status = 0;
            for _ in 0..20 {
                status = reqwest::get(format!("{}/healthz", app.base))
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                if status == 503 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert_eq!(status, 503, "a read-only server is not healthy");
            let (status, body) = app.enrol("taste", &register, &patient(7, "UPP", "F")).await;
            assert_eq!(status, 503, "{body}");
            assert_eq!(body["error"]["code"], "unavailable");
            // And a server does not start on it (its migrations are refused first).
            let dir = protocol_dir(&db, &[("taste.toml", TASTE)]);
            let out = serve_once(&admin_url, &dir);
            assert!(!out.status.success());
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("cannot be written") || stderr.contains("read-only transaction"),
                "{stderr}"
            );
            sqlx::query(&format!(
                "ALTER DATABASE {name} SET default_transaction_read_only = off"
            ))
            .execute(&admin)
            .await
            .unwrap();
            sqlx::query(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            ))
            .execute(&admin)
            .await
            .unwrap();
            let mut healthy = false;
            for _ in 0..30 {
                if reqwest::get(format!("{}/healthz", app.base))
                    .await
                    .unwrap()
                    .status()
                    == 200
                {
                    healthy = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(healthy, "healthy again once writable");
            app.stop().await;
        }
    }
}

async fn one_patient_under_64_spellings_on_two_servers_is_randomised_once(db: TestDb) {
    let dir = protocol_dir(&db, &[("taste.toml", TASTE)]);
    let a = ServerProcess::start(&db.url, &dir, None);
    let b = ServerProcess::start(&db.url, &dir, None);
    let store = Store::connect(&db.url).await.unwrap();
    let token = tokens::create_token(&store, "register", Some("taste"), None)
        .await
        .unwrap();
    // One patient, Åsa-Öberg-7, in NFC and NFD spellings of each letter.
    let spellings: Vec<String> = (0..64u32)
        .map(|k| {
            let aa = if k & 1 == 0 { "\u{c5}" } else { "A\u{30a}" };
            let oo = if k & 2 == 0 { "\u{d6}" } else { "O\u{308}" };
            format!("{aa}sa-{oo}berg-7")
        })
        .collect();
    let client = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (k, subject) in spellings.into_iter().enumerate() {
        let base = if k % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        let (client, token) = (client.clone(), token.clone());
        tasks.spawn(async move {
            let mut body = patient(1000 + k, "UPP", "F");
            body["subject"] = json!(subject);
            let r = client
                .post(format!("{base}/api/v1/trials/taste/enrolments"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (status, body)
        });
    }
    let mut created = 0;
    while let Some(done) = tasks.join_next().await {
        let (status, body) = done.unwrap();
        match status {
            201 => created += 1,
            409 => assert_eq!(body["error"]["code"], "already_randomised", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created, 1, "exactly one allocation");
    let rows = rrct::store::allocations::list(&store, "taste")
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].subject, "\u{c5}sa-\u{d6}berg-7", "stored in NFC");
    store.close().await;
    drop((a, b));
}

/// A database outage: through a TCP proxy to PostgreSQL that is cut and restored, the engine
/// answers 503 quickly (not after 30 s), the pages show an outage page (not the sign-in page),
/// and everything recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_answers_503_quickly_and_recovers() {
    let Some(db) = TestDb::of(Kind::Postgres).await else {
        return;
    };
    let proxy = crate::support::Proxy::start("127.0.0.1:5432").await;
    let through = db.url.replacen("127.0.0.1:5432", &proxy.address, 1);
    // The trial is registered, tokens made, directly.
    TestApp::spawn(&db, &[TASTE], "outage").await.stop().await;
    let store = Store::connect(&db.url).await.unwrap();
    let register = tokens::create_token(&store, "register", Some("taste"), None)
        .await
        .unwrap();
    let sponsor = tokens::create_token(&store, "sponsor", Some("taste"), None)
        .await
        .unwrap();
    let dir = protocol_dir(&db, &[("taste.toml", TASTE)]);
    let server =
        ServerProcess::start_with(&through, &dir, None, &["--db-timeout-secs", "1"], false);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let enrol = |i: usize| {
        client
            .post(format!("{}/api/v1/trials/taste/enrolments", server.base))
            .bearer_auth(&register)
            .json(&patient(i, "UPP", "F"))
            .send()
    };
    assert_eq!(enrol(1).await.unwrap().status(), 201);
    let sign_in = client
        .post(format!("{}/login", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={sponsor}"))
        .send()
        .await
        .unwrap();
    let cookie = sign_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();

    proxy.cut().await;
    for what in ["healthz", "enrol", "page"] {
        let started = Instant::now();
        let r = match what {
            "healthz" => client.get(format!("{}/healthz", server.base)).send().await,
            "enrol" => enrol(2).await,
            _ => {
                // A reader signed in before: the outage page, not the sign-in page.
                client
                    .get(format!("{}/trials/taste", server.base))
                    .header("cookie", &cookie)
                    .send()
                    .await
            }
        }
        .unwrap();
        assert_eq!(r.status(), 503, "{what}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what} answered after {:?}",
            started.elapsed()
        );
        let body = r.text().await.unwrap();
        if what == "page" {
            assert!(body.contains("unreachable"), "{body}");
        } else {
            assert!(body.contains("\"unavailable\""), "{body}");
        }
    }
    proxy.restore().await;
    let mut recovered = false;
    for _ in 0..50 {
        if client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "healthy again after the outage");
    assert_eq!(enrol(3).await.unwrap().status(), 201);
    drop(server);
    store.close().await;
}

/// A client that sends half its headers is dropped after the header-read timeout; a body sent
/// too slowly is answered 408; connections beyond the limit wait; failed authentications are
/// logged with the address and never the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_and_token_guessers_cannot_hold_the_server() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(&db, &[TASTE], "http-limits").await;
    let register = app.token("register", Some("taste"), None).await;
    app.stop().await;
    let dir = protocol_dir(&db, &[("taste.toml", TASTE)]);
    let server = ServerProcess::start_with(
        &db.url,
        &dir,
        None,
        &[
            "--header-timeout-secs",
            "1",
            "--request-timeout-secs",
            "2",
            "--max-connections",
            "2",
        ],
        true,
    );
    let address = server.base.trim_start_matches("http://").to_string();
    // Half the headers, then silence: the server closes the connection.
    let started = Instant::now();
    let mut half = std::net::TcpStream::connect(&address).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    half.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = half.read(&mut buf).unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        n == 0 || answer.starts_with("HTTP/1.1 408"),
        "closed or 408: {answer:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(half);

    // A body promised and not sent: 408 request_timeout after the request limit (2 s).
    let started = Instant::now();
    let mut slow = std::net::TcpStream::connect(&address).unwrap();
    slow.write_all(
        format!(
            "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {register}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let n = slow.read(&mut buf).unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("request_timeout"), "{answer:?}");
    assert!(
        (Duration::from_millis(1900)..Duration::from_secs(6)).contains(&started.elapsed()),
        "{:?}",
        started.elapsed()
    );
    drop(slow);

    // Two idle connections hold both slots: a third request waits until one goes.
    let hold_a = std::net::TcpStream::connect(&address).unwrap();
    let hold_b = std::net::TcpStream::connect(&address).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = tokio::spawn({
        let base = server.base.clone();
        async move {
            let started = Instant::now();
            let status = reqwest::get(format!("{base}/healthz"))
                .await
                .unwrap()
                .status();
            (status, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "the third connection waits for a slot"
    );
    drop(hold_a);
    drop(hold_b);
    let (status, waited) = waiting.await.unwrap();
    assert_eq!(status, 200);
    assert!(waited >= Duration::from_millis(400), "{waited:?}");

    // Guessing: refused after the limit, and the log names the address, not the token.
    let guess = format!("rrct_{}", "7".repeat(64));
    let client = reqwest::Client::new();
    let mut last = 0;
    for _ in 0..25 {
        last = client
            .get(format!("{}/api/v1/trials/taste/summary", server.base))
            .bearer_auth(&guess)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
    }
    assert_eq!(last, 429);
    let log = server.log();
    assert!(log.contains("authentication failed"), "{log}");
    assert!(log.contains("127.0.0.1"), "{log}");
    assert!(!log.contains(&guess[5..]), "the token is never logged");
}
