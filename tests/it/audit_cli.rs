//! The command line: protocol check, token create, audit verify (intact and tampered).

use crate::support::{rrct, TestApp, TestDb, TASTE};

crate::on_both_backends!(
    audit_verify_detects_tampering,
    token_create_prints_the_token_alone
);

async fn audit_verify_detects_tampering(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "audit").await;
    let token = app.token("register", None, None).await;
    for i in 0..5 {
        let (status, _) = app
            .enrol("taste", &token, &crate::support::patient(i, "UPP", "F"))
            .await;
        assert_eq!(status, 201);
    }
    let out = rrct(&["audit", "verify", "--database", &db.url]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}");
    // trial_created, protocol_version_registered, token_created, 5 × randomised.
    assert_eq!(stdout.trim(), "ok: 8 entries");

    // The log refuses in-place edits...
    let edit = "UPDATE audit_log SET payload = '{\"arm\":\"pci\"}' WHERE seq = 5";
    assert!(sqlx::query(edit).execute(app.store.pool()).await.is_err());
    // ...so a tamperer must first remove the guard; the chain still tells.
    let drop_guard = match db.kind {
        crate::support::Kind::Sqlite => "DROP TRIGGER audit_log_no_update",
        crate::support::Kind::Postgres => "DROP TRIGGER audit_log_no_update ON audit_log",
    };
    sqlx::query(drop_guard)
        .execute(app.store.pool())
        .await
        .unwrap();
    sqlx::query(edit).execute(app.store.pool()).await.unwrap();
    let out = rrct(&["audit", "verify", "--database", &db.url]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success());
    assert!(stdout.contains("entry 5"), "{stdout}");
    app.stop().await;
}

async fn token_create_prints_the_token_alone(db: TestDb) {
    // Tokens are scoped to trials and sites that exist.
    TestApp::spawn(&db, &[TASTE], "tokens").await.stop().await;
    let out = rrct(&[
        "token",
        "create",
        "--database",
        &db.url,
        "--role",
        "register",
        "--trial",
        "taste",
        "--site",
        "UPP",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout:?}");
    assert!(
        lines[0].starts_with("rrct_") && lines[0].len() == 69,
        "{stdout:?}"
    );
    let store = rrct::store::Store::connect(&db.url).await.unwrap();
    let who = rrct::service::tokens::authenticate(&store, lines[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(who.role, rrct::service::Role::Register);
    assert_eq!(who.site_code.as_deref(), Some("UPP"));
    // The database holds only the hash.
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM tokens")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(!stored.iter().any(|h| h == lines[0]));

    let bad = rrct(&["token", "create", "--database", &db.url, "--role", "wizard"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown role `wizard`"));
    store.close().await;
}

#[test]
fn protocol_check_accepts_shipped_files_and_locates_errors() {
    for file in ["protocols/taste.toml", "protocols/dapa-hf-reg.toml"] {
        let out = rrct(&["protocol", "check", file]);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let bad = TASTE.replacen("block_sizes = [2, 4, 6]", "block_sizes = [2, 3, 6]", 1);
    assert_ne!(
        bad, TASTE,
        "taste.toml no longer has the expected block sizes line"
    );
    std::fs::write(&path, &bad).unwrap();
    let line = bad
        .lines()
        .position(|l| l.starts_with("block_sizes"))
        .unwrap()
        + 1;
    let out = rrct(&["protocol", "check", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:{line}:", path.display());
    assert!(
        stderr.contains(&expected),
        "expected `{expected}` in {stderr}"
    );
    assert!(stderr.contains('3'), "{stderr}");
}
