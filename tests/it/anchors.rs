//! Anchored audit chain, on both backends: `rrct audit anchor` signs the chain head with a key
//! kept apart from the database; `rrct audit verify --anchor` proves the log extends the
//! anchored one, and fails when history before the anchor was truncated, reordered or
//! rewritten — even with the whole chain recomputed, which the chain check alone cannot see.

use rrct::service::anchor::{self, Anchor, AnchorCheck};
use rrct::store::audit::{self, AuditEntry, GENESIS_HASH};
use rrct::store::Store;
use serde_json::Value;

use crate::support::{patient, rrct, Kind, TestApp, TestDb, TASTE};

crate::on_both_backends!(
    an_anchor_proves_the_log_extends_it,
    history_before_an_anchor_cannot_be_changed_unseen,
);

/// Take the guards off the log, as someone with the database could.
async fn drop_guards(db: &TestDb, store: &Store) {
    let statements: &[&str] = match db.kind {
        Kind::Sqlite => &[
            "DROP TRIGGER audit_log_no_update",
            "DROP TRIGGER audit_log_no_delete",
            "DROP TRIGGER audit_log_to_outbox",
        ],
        Kind::Postgres => &[
            "DROP TRIGGER audit_log_no_update ON audit_log",
            "DROP TRIGGER audit_log_to_outbox ON audit_log",
        ],
    };
    for sql in statements {
        sqlx::query(sql).execute(store.pool()).await.unwrap();
    }
}

/// Replace the whole log by `entries`, renumbered and with the chain recomputed, and move the
/// head: a forgery the chain check cannot tell.
async fn forge(store: &Store, entries: &[AuditEntry]) {
    sqlx::query("DELETE FROM audit_log")
        .execute(store.pool())
        .await
        .unwrap();
    let mut prev = GENESIS_HASH.to_string();
    for (i, e) in entries.iter().enumerate() {
        let seq = i as i64 + 1;
        let hash = audit::entry_hash(
            seq,
            &e.recorded_at,
            &e.actor,
            &e.action,
            e.trial_id.as_deref(),
            &e.payload,
            &prev,
        );
        sqlx::query(
            "INSERT INTO audit_log (seq, recorded_at, actor, action, trial_id, payload, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(&e.recorded_at)
        .bind(&e.actor)
        .bind(&e.action)
        .bind(e.trial_id.as_deref())
        .bind(&e.payload)
        .bind(&prev)
        .bind(&hash)
        .execute(store.pool())
        .await
        .unwrap();
        prev = hash;
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(entries.len() as i64)
        .bind(&prev)
        .execute(store.pool())
        .await
        .unwrap();
    assert!(
        matches!(
            audit::verify(store).await.unwrap(),
            audit::ChainStatus::Intact { .. }
        ),
        "the forged chain is intact on its own"
    );
}

async fn enrol(app: &TestApp, from: usize, to: usize) {
    let token = app.token("register", Some("taste"), None).await;
    for i in from..to {
        let (status, body) = app.enrol("taste", &token, &patient(i, "UPP", "F")).await;
        assert_eq!(status, 201, "{body}");
    }
}

async fn an_anchor_proves_the_log_extends_it(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "anchors").await;
    enrol(&app, 0, 4).await;
    let dir = db.scratch();
    let key = dir.join("anchor.key");
    let out = rrct(&["audit", "new-key", "--out", key.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(public.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let anchor_file = dir.join("anchor-1.json");
    let out = rrct(&[
        "audit",
        "anchor",
        "--database",
        &db.url,
        "--key-file",
        key.to_str().unwrap(),
        "--out",
        anchor_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed: Anchor =
        serde_json::from_str(&std::fs::read_to_string(&anchor_file).unwrap()).unwrap();
    assert_eq!(signed.public_key, public);
    assert_eq!(
        signed.seq,
        audit::stored_head(&app.store).await.unwrap().seq
    );

    // The log grows; it still extends the anchored one.
    enrol(&app, 4, 8).await;
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "audit",
            "verify",
            "--database",
            &db.url,
            "--anchor",
            anchor_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        rrct(&args)
    };
    let out = verify(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("extends the log anchored at entry {}", signed.seq)),
        "{stdout}"
    );
    let out = verify(&["--public-key", &public]);
    assert!(out.status.success());
    // Signed by another key than the published one, or altered: refused.
    let out = verify(&["--public-key", &"ab".repeat(32)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("not by the expected key"));
    let mut altered = signed.clone();
    altered.seq -= 1;
    let altered_file = dir.join("altered.json");
    std::fs::write(&altered_file, serde_json::to_string(&altered).unwrap()).unwrap();
    let out = rrct(&[
        "audit",
        "verify",
        "--database",
        &db.url,
        "--anchor",
        altered_file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("signature does not match"));
    // Anchoring reads only.
    let head = audit::stored_head(&app.store).await.unwrap();
    let out = rrct(&[
        "audit",
        "anchor",
        "--database",
        &db.url,
        "--key-file",
        key.to_str().unwrap(),
    ]);
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["seq"], head.seq);
    assert_eq!(audit::stored_head(&app.store).await.unwrap(), head);
    app.stop().await;
}

async fn history_before_an_anchor_cannot_be_changed_unseen(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "anchors").await;
    enrol(&app, 0, 6).await;
    let key = anchor::AnchorKey::generate().unwrap();
    let signed = anchor::anchor(&app.store, &key, "2030-01-01T00:00:00.000000Z")
        .await
        .unwrap();
    enrol(&app, 6, 9).await;
    let holds = |check: AnchorCheck| match check {
        AnchorCheck::Extends { .. } => true,
        AnchorCheck::Fails(why) => {
            eprintln!("anchor fails: {why}");
            false
        }
    };
    assert!(holds(
        anchor::verify(&app.store, &signed, None).await.unwrap()
    ));
    let original = audit::entries(&app.store, None).await.unwrap();
    let at = signed.seq as usize;
    drop_guards(&db, &app.store).await;

    // Rewritten before the anchor, chain recomputed: an allocation's arm changed.
    let mut rewritten = original.clone();
    let target = rewritten[..at]
        .iter()
        .position(|e| e.action == "randomised")
        .unwrap();
    rewritten[target].payload =
        rewritten[target]
            .payload
            .replacen("\"arm\":\"pci\"", "\"arm\":\"aspiration\"", 1);
    if rewritten[target].payload == original[target].payload {
        rewritten[target].payload =
            rewritten[target]
                .payload
                .replacen("\"arm\":\"aspiration\"", "\"arm\":\"pci\"", 1);
    }
    forge(&app.store, &rewritten).await;
    let check = anchor::verify(&app.store, &signed, None).await.unwrap();
    assert!(
        matches!(&check, AnchorCheck::Fails(why) if why.contains("rewritten")),
        "{check:?}"
    );

    // Reordered before the anchor (two entries swapped), chain recomputed.
    let mut reordered = original.clone();
    reordered.swap(at - 3, at - 2);
    forge(&app.store, &reordered).await;
    assert!(!holds(
        anchor::verify(&app.store, &signed, None).await.unwrap()
    ));

    // An entry before the anchor removed, chain recomputed: everything after moves up.
    let mut removed = original.clone();
    removed.remove(at - 2);
    forge(&app.store, &removed).await;
    assert!(!holds(
        anchor::verify(&app.store, &signed, None).await.unwrap()
    ));

    // Truncated to before the anchor.
    forge(&app.store, &original[..at - 1]).await;
    let check = anchor::verify(&app.store, &signed, None).await.unwrap();
    assert!(
        matches!(&check, AnchorCheck::Fails(why) if why.contains("truncated")),
        "{check:?}"
    );

    // Reordered without recomputing: the chain itself breaks there.
    forge(&app.store, &original).await;
    assert!(
        holds(anchor::verify(&app.store, &signed, None).await.unwrap()),
        "the original again"
    );
    sqlx::query("UPDATE audit_log SET seq = -seq WHERE seq IN ($1, $2)")
        .bind(at as i64 - 1)
        .bind(at as i64 - 2)
        .execute(app.store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET seq = $1 WHERE seq = $2")
        .bind(at as i64 - 1)
        .bind(-(at as i64 - 2))
        .execute(app.store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET seq = $1 WHERE seq = $2")
        .bind(at as i64 - 2)
        .bind(-(at as i64 - 1))
        .execute(app.store.pool())
        .await
        .unwrap();
    assert!(!holds(
        anchor::verify(&app.store, &signed, None).await.unwrap()
    ));

    // Changes after the anchor do not concern it (the chain check reports them).
    forge(&app.store, &original).await;
    let mut later = original.clone();
    let last = later.len() - 1;
    later[last].payload.push(' ');
    forge(&app.store, &later).await;
    assert!(holds(
        anchor::verify(&app.store, &signed, None).await.unwrap()
    ));
    app.stop().await;
}
