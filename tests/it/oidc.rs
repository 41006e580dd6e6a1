//! Signing in to the pages through OpenID Connect, end to end against a real OpenID provider
//! (the `oidc-provider` package under Node.js, installed into `tests/oidc/` by `.ci/run`), with
//! the sign-in done in headless Chromium: the role, trial and site mapped from the `groups`
//! claim, a clear page for a person with no mapped role, the access log of unblinded pages,
//! sessions ending when idle and at their lifetime, sign-out ending the session on the server
//! and at the issuer, and a replayed authorisation code refused. The refusals a real provider
//! never produces (an ID token from a wrong issuer, for a wrong audience, badly signed,
//! expired, with a wrong nonce) come from `tests/oidc/rogue.mjs`, a test-only issuer that
//! signs faulty tokens with its own key. And no cookie, on any sign-in path, ever holds a
//! bearer token or an ID token.
//!
//! Without Node.js (or the provider's package, or Chromium) the tests are skipped with a
//! printed reason, unless `CI` is set: then they fail.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::browser::{artefact, find_chromium, Chromium, Page};
use crate::dashboard::seed;
use crate::support::{day, TestApp, TestDb, TASTE};
use rrct::service::sessions;
use rrct::service::sign_in::SignInConfig;

const CLIENT_ID: &str = "rrct-test";
const CLIENT_SECRET: &str = "test-only-client-secret";

crate::on_both_backends!(
    no_cookie_from_the_token_form_holds_a_token,
    oidc_refuses_id_tokens_from_a_wrong_issuer_audience_key_time_or_nonce
);

fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Whether the tests can run here; when not, why (printed), or a failure under CI.
fn ready(browser: bool) -> bool {
    let skip = |why: &str| {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but {why} (.ci/run installs them)"
        );
        eprintln!("skipping the OpenID Connect test: {why}");
        false
    };
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node {
        return skip("no Node.js (`node`) on PATH");
    }
    if !oidc_dir().join("node_modules/oidc-provider").is_dir() {
        return skip(
            "the oidc-provider package is not installed (npm install --prefix tests/oidc)",
        );
    }
    if browser && find_chromium().is_none() {
        return skip("no chromium on PATH (apt-get install chromium)");
    }
    true
}

/// A Node.js issuer; killed on drop.
struct Issuer {
    child: Child,
    url: String,
}

impl Issuer {
    fn start(script: &str, args: &[String]) -> Issuer {
        let mut child = Command::new("node")
            .arg(script)
            .args(args)
            .current_dir(oidc_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("issuer ").map(str::to_string))
            .expect("the issuer did not say where it listens");
        // Keep reading what it says (a closed pipe would end it).
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        Issuer { child, url }
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on the loopback interface (the issuer must know rrct's callback before rrct
/// is built).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// rrct served with sign-in through `issuer` (started by `start_issuer` with the callback).
struct Fixture {
    app: TestApp,
    issuer: Issuer,
    _config: tempfile::TempDir,
}

const ROLES: &str = r#"
[[oidc.roles]]
value = "rrct-dsmb-taste"
role = "dsmb"
trial = "taste"

[[oidc.roles]]
value = "rrct-admin-taste"
role = "admin"
trial = "taste"

[[oidc.roles]]
value = "rrct-unblinder-taste"
role = "unblinder"
trial = "taste"

[[oidc.roles]]
value = "rrct-sponsor-ks"
role = "sponsor"
trial = "taste"
site = "KS"
"#;

async fn fixture(
    db: &TestDb,
    sessions: &str,
    start_issuer: impl FnOnce(&str, &str) -> Issuer,
) -> Fixture {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let callback = format!("{base}/auth/callback");
    let issuer = start_issuer(&callback, &format!("{base}/"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("client-secret"), CLIENT_SECRET).unwrap();
    let path = dir.path().join("sign-in.toml");
    std::fs::write(
        &path,
        format!(
            "[sessions]\n{sessions}\n\n[oidc]\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret_file = \"client-secret\"\nredirect_url = \"{callback}\"\n\
             scopes = [\"profile\"]\nroles_claim = \"groups\"\n{ROLES}",
            issuer.url
        ),
    )
    .unwrap();
    let config = SignInConfig::load(&path).expect("the sign-in configuration");
    let app = TestApp::spawn_with(db, &[TASTE], "oidc", |s| {
        s.bind = ([127, 0, 0, 1], port).into();
        s.sign_in = config;
    })
    .await;
    Fixture {
        app,
        issuer,
        _config: dir,
    }
}

/// The real provider, with its accounts: any password signs in.
fn provider(callback: &str, after_logout: &str) -> Issuer {
    let config = json!({
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": callback,
        "post_logout_redirect_uri": after_logout,
        "accounts": {
            "anna": {"name": "Anna Berg", "groups": ["staff", "rrct-dsmb-taste"]},
            "karin": {"name": "Karin Ek", "groups": ["rrct-sponsor-ks"]},
            "nils": {"name": "Nils Holm", "groups": ["staff"]},
            "olle": {"name": "Olle Lind", "groups": ["rrct-admin-taste"]},
            "ulla": {"name": "Ulla Sten", "groups": ["rrct-unblinder-taste"]},
        }
    });
    Issuer::start("provider.mjs", &[config.to_string()])
}

/// Sign in as `login` in the browser: from rrct's sign-in page through the provider's log-in
/// (and consent, the first time) back to rrct; the URL the browser ends on.
async fn sign_in(page: &mut Page, fx: &Fixture, login: &str) -> String {
    page.goto(&format!("{}/", fx.app.base)).await;
    page.eval("document.getElementById('sign-in-oidc').click()")
        .await;
    let issuer = fx.issuer.url.clone();
    let base = fx.app.base.clone();
    let at = page
        .wait_until(&format!(
            "(location.href.startsWith('{issuer}') && document.querySelector('input[name=login]')) \
             || location.href.startsWith('{base}/trials') || document.title.startsWith('No role')"
        ))
        .await;
    if at.starts_with(&issuer) {
        page.eval(&format!(
            "document.querySelector('input[name=login]').value = '{login}'; \
             document.querySelector('input[name=password]').value = 'any'; \
             document.querySelector('button[type=submit]').click()"
        ))
        .await;
        // The consent page, the first time this browser signs in to rrct.
        let at = page
            .wait_until(&format!(
                "(location.href.startsWith('{issuer}/interaction') && !document.querySelector('input[name=login]')) \
                 || location.href.startsWith('{base}/trials') || document.title.startsWith('No role')"
            ))
            .await;
        if at.starts_with(&issuer) {
            page.eval("document.querySelector('button[type=submit]').click()")
                .await;
        }
    }
    page.wait_until(&format!(
        "location.href.startsWith('{base}/trials') || document.title.startsWith('No role')"
    ))
    .await
}

/// Every cookie the browser holds (any site), by CDP.
async fn cookies(page: &mut Page) -> Vec<Value> {
    page.call("Network.getAllCookies", json!({})).await["cookies"]
        .as_array()
        .unwrap()
        .clone()
}

fn session_cookie(cookies: &[Value]) -> Option<String> {
    cookies
        .iter()
        .find(|c| c["name"] == "rrct_session")
        .map(|c| c["value"].as_str().unwrap().to_string())
}

/// Whether a cookie (as set, or its value) holds a credential: a JSON Web Token (three
/// base64url parts, the first a JSON header, `eyJ`) or an rrct bearer token (`rrct_` and 64
/// hex digits).
fn holds_a_token(text: &str) -> bool {
    let b64 = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let jwt = text.split([';', ' ', ',', '=', '"']).any(|v| {
        let parts: Vec<&str> = v.split('.').collect();
        parts.len() == 3 && parts[0].starts_with("eyJ") && parts.iter().all(|p| b64(p))
    });
    let bearer = text.match_indices("rrct_").any(|(i, _)| {
        let rest = &text[i + 5..];
        rest.len() >= 64 && rest[..64].bytes().all(|b| b.is_ascii_hexdigit())
    });
    jwt || bearer
}

/// GET with a session cookie and no redirects followed: status and `Location`.
async fn get_with(client: &reqwest::Client, url: &str, session: &str) -> (u16, String) {
    let r = client
        .get(url)
        .header(COOKIE, format!("rrct_session={session}"))
        .send()
        .await
        .unwrap();
    let location = r
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status().as_u16(), location)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sign_in_in_chromium_maps_roles_logs_reads_and_signs_out() {
    if !ready(true) {
        return;
    }
    let db = TestDb::sqlite();
    let fx = fixture(&db, "", provider).await;
    seed(&fx.app).await;
    let binary = find_chromium().unwrap();
    let http = no_redirects();

    // Anna's groups map to the DSMB of TASTE: the unblinded page, as herself.
    let chromium = Chromium::start(&binary);
    let mut page = Page::open(&chromium.ws_url).await;
    page.call("Network.enable", json!({})).await;
    let landed = sign_in(&mut page, &fx, "anna").await;
    assert_eq!(landed, format!("{}/trials/taste", fx.app.base));
    page.goto(&format!("{}/trials/taste?cutoff={}", fx.app.base, day(60)))
        .await;
    let text = page.eval("document.body.innerText").await;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("DSMB") && text.contains("Hazard ratio"),
        "{text}"
    );
    assert_eq!(
        page.eval("document.cookie").await,
        "",
        "HttpOnly cookies only"
    );
    page.screenshot(&artefact("oidc-dsmb.png")).await;
    let jar = cookies(&mut page).await;
    let anna_session = session_cookie(&jar).expect("a session cookie");
    let c = jar.iter().find(|c| c["name"] == "rrct_session").unwrap();
    assert_eq!(
        (&c["httpOnly"], &c["sameSite"]),
        (&json!(true), &json!("Strict"))
    );
    assert!(
        anna_session.len() == 64 && anna_session.bytes().all(|b| b.is_ascii_hexdigit()),
        "{anna_session}"
    );
    for c in &jar {
        let value = c["value"].as_str().unwrap();
        assert!(
            !holds_a_token(value),
            "cookie {} holds a token: {value}",
            c["name"]
        );
    }
    // The session on the server: the id's hash and the person, never the id or a token.
    let stored = sessions::stored(&fx.app.store).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].id_hash,
        hex::encode(Sha256::digest(anna_session.as_bytes()))
    );
    assert_eq!(
        (
            stored[0].subject.as_deref(),
            stored[0].person_name.as_deref()
        ),
        (Some("anna"), Some("Anna Berg"))
    );
    assert_eq!(
        (stored[0].role.as_str(), stored[0].trial_id.as_deref()),
        ("dsmb", Some("taste"))
    );
    assert_eq!(stored[0].issuer.as_deref(), Some(fx.issuer.url.as_str()));
    assert!(stored[0].token_hash.is_none());
    // The access log of unblinded pages names her.
    let reads = sessions::unblinded_reads(&fx.app.store, "taste")
        .await
        .unwrap();
    // Two pages: the one she landed on (today's cut-off) and the one at day 60.
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert_eq!(reads[1].cutoff, day(60));
    for read in &reads {
        assert_eq!(read.subject.as_deref(), Some("anna"));
        assert_eq!(read.person_name.as_deref(), Some("Anna Berg"));
        assert_eq!(read.actor, "person:anna (Anna Berg)");
        assert_eq!(read.role, "dsmb");
    }

    // Signing out ends the session on the server, then at the issuer (RP-initiated logout).
    page.eval("document.querySelector('form[action=\"/logout\"] button').click()")
        .await;
    let issuer = fx.issuer.url.clone();
    page.wait_until(&format!(
        "location.href.startsWith('{issuer}') && document.querySelector('button[value=yes]')"
    ))
    .await;
    assert_eq!(sessions::stored(&fx.app.store).await.unwrap().len(), 0);
    assert_eq!(
        get_with(
            &http,
            &format!("{}/trials/taste", fx.app.base),
            &anna_session
        )
        .await,
        (303, "/".to_string()),
        "the old session id opens nothing"
    );
    page.eval("document.querySelector('button[value=yes]').click()")
        .await;
    let back = page
        .wait_until("document.getElementById('sign-in-oidc') !== null")
        .await;
    assert_eq!(back, format!("{}/", fx.app.base));
    // Signed out at the issuer too: signing in again asks for the log-in.
    page.eval("document.getElementById('sign-in-oidc').click()")
        .await;
    page.wait_until(&format!(
        "location.href.startsWith('{issuer}') && document.querySelector('input[name=login]') !== null"
    ))
    .await;
    let errors: Vec<String> = page
        .errors()
        .into_iter()
        .filter(|e| e.contains(&fx.app.base))
        .collect();
    assert!(
        errors.is_empty(),
        "console errors on rrct's pages: {errors:#?}"
    );
    drop(chromium);

    // Karin's group maps to the sponsor of TASTE at site KS: blinded, her site only.
    let chromium = Chromium::start(&binary);
    let mut page = Page::open(&chromium.ws_url).await;
    let landed = sign_in(&mut page, &fx, "karin").await;
    assert_eq!(landed, format!("{}/trials/taste", fx.app.base));
    page.goto(&format!("{}/trials/taste?cutoff={}", fx.app.base, day(60)))
        .await;
    let text = page.eval("document.body.innerText").await;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("Sponsor") && text.contains("site KS"),
        "{text}"
    );
    assert!(!text.contains("Hazard ratio"), "{text}");
    assert_eq!(
        sessions::unblinded_reads(&fx.app.store, "taste")
            .await
            .unwrap()
            .len(),
        2,
        "a blinded page is not an unblinded read"
    );
    drop(chromium);

    // Nils holds no mapped group: a clear page, no session, no default role.
    let chromium = Chromium::start(&binary);
    let mut page = Page::open(&chromium.ws_url).await;
    sign_in(&mut page, &fx, "nils").await;
    let text = page.eval("document.body.innerText").await;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("No role in rrct") && text.contains("Nils Holm (nils)"),
        "{text}"
    );
    page.screenshot(&artefact("oidc-no-role.png")).await;
    assert!(session_cookie(&cookies(&mut page).await).is_none());
    assert_eq!(
        sessions::stored(&fx.app.store).await.unwrap().len(),
        1,
        "Karin's only"
    );
    drop(chromium);
    fx.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sessions_end_when_idle_and_at_their_lifetime() {
    if !ready(true) {
        return;
    }
    let db = TestDb::sqlite();
    let fx = fixture(
        &db,
        "idle_timeout = \"2s\"\nabsolute_lifetime = \"5s\"",
        provider,
    )
    .await;
    let chromium = Chromium::start(&find_chromium().unwrap());
    let mut page = Page::open(&chromium.ws_url).await;
    let http = no_redirects();
    // The list of trials sends a reader of one trial on to it, and anyone else to sign in.
    let trials = format!("{}/trials", fx.app.base);

    // Idle: used at once, then left alone past the idle timeout.
    sign_in(&mut page, &fx, "anna").await;
    let session = session_cookie(&cookies(&mut page).await).unwrap();
    let alive = (303, "/trials/taste".to_string());
    assert_eq!(get_with(&http, &trials, &session).await, alive);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(get_with(&http, &trials, &session).await, (303, "/".into()));
    assert_eq!(sessions::stored(&fx.app.store).await.unwrap().len(), 0);

    // Lifetime: used every half second, it still ends five seconds after sign-in.
    let signed_in = Instant::now();
    sign_in(&mut page, &fx, "anna").await;
    let again = session_cookie(&cookies(&mut page).await).unwrap();
    assert_ne!(again, session, "a new sign-in, a new id");
    let mut ended_after = None;
    while signed_in.elapsed() < Duration::from_secs(9) {
        let answer = get_with(&http, &trials, &again).await;
        if answer != alive {
            assert_eq!(answer, (303, "/".into()));
            ended_after = Some(signed_in.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ended_after = ended_after.expect("the session outlived its lifetime");
    assert!(
        ended_after >= Duration::from_secs(5) - Duration::from_millis(600),
        "ended early: {ended_after:?}"
    );
    // In the browser too: back to the sign-in page.
    page.goto(&trials).await;
    assert_eq!(page.eval("location.pathname").await, "/");
    drop(chromium);
    fx.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_refuses_a_replayed_authorisation_code() {
    if !ready(true) {
        return;
    }
    let db = TestDb::sqlite();
    let fx = fixture(&db, "", provider).await;
    let chromium = Chromium::start(&find_chromium().unwrap());
    let mut page = Page::open(&chromium.ws_url).await;
    page.call("Network.enable", json!({})).await;
    sign_in(&mut page, &fx, "anna").await;
    let callback = page
        .events
        .iter()
        .filter(|e| e["method"] == "Network.requestWillBeSent")
        .filter_map(|e| e["params"]["request"]["url"].as_str())
        .find(|u| u.starts_with(&format!("{}/auth/callback", fx.app.base)))
        .expect("the browser came back through the callback")
        .to_string();
    let query: std::collections::HashMap<String, String> = reqwest::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let code = &query["code"];

    // The same callback again: its state was used up.
    let (status, body) = get_text(&page_client(), &callback, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("already used"), "{body}");

    // The code under a fresh sign-in's state and cookie: the provider refuses to redeem it twice.
    let http = no_redirects();
    let r = http
        .get(format!("{}/auth/sign-in", fx.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let sign_in_cookie = r.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let to = reqwest::Url::parse(r.headers()[LOCATION].to_str().unwrap()).unwrap();
    let state = to
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let mut replay = reqwest::Url::parse(&format!("{}/auth/callback", fx.app.base)).unwrap();
    replay
        .query_pairs_mut()
        .append_pair("code", code)
        .append_pair("state", &state);
    let (status, body) = get_text(&http, replay.as_str(), Some(&sign_in_cookie)).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("did not accept the sign-in") && body.contains("invalid_grant"),
        "{body}"
    );
    assert_eq!(
        sessions::stored(&fx.app.store).await.unwrap().len(),
        1,
        "the first sign-in's only"
    );
    drop(chromium);
    fx.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_page_actions_record_the_person_and_refuse_cross_site_posts() {
    if !ready(true) {
        return;
    }
    let db = TestDb::sqlite();
    let fx = fixture(&db, "", provider).await;
    seed(&fx.app).await;
    let chromium = Chromium::start(&find_chromium().unwrap());
    let mut page = Page::open(&chromium.ws_url).await;
    let landed = sign_in(&mut page, &fx, "olle").await;
    assert_eq!(landed, format!("{}/trials/taste", fx.app.base));
    // The trial's admin pauses enrolment from the page, with a reason.
    page.eval(
        "document.getElementById('lifecycle-change-kind').value = 'pause'; \
         document.getElementById('lifecycle-reason').value = 'DSMB asked for a pause'; \
         document.querySelector('#lifecycle-change button').click()",
    )
    .await;
    page.wait_until(
        "document.getElementById('lifecycle-status') && \
         document.getElementById('lifecycle-status').innerText === 'Trial paused'",
    )
    .await;
    let overview = rrct::service::lifecycle::overview(&fx.app.store, "taste")
        .await
        .unwrap();
    assert_eq!(overview.lifecycle, "paused");
    let change = overview.history.last().unwrap();
    assert_eq!(
        (change.reason.as_str(), change.actor.as_str()),
        ("DSMB asked for a pause", "person:olle (Olle Lind)")
    );
    let entries = rrct::store::audit::entries(&fx.app.store, Some("taste"))
        .await
        .unwrap();
    let last = entries.last().unwrap();
    assert_eq!(last.actor, "person:olle (Olle Lind)", "{last:?}");
    // The page's status history names her too (its table is folded: textContent).
    let text = page
        .eval("document.getElementById('lifecycle-history').textContent")
        .await;
    assert!(
        text.as_str().unwrap().contains("person:olle (Olle Lind)"),
        "{text}"
    );

    // The same form posted from another site is refused, and nothing changes.
    let session = session_cookie(&cookies(&mut page).await).unwrap();
    let r = no_redirects()
        .post(format!("{}/trials/taste/lifecycle", fx.app.base))
        .header(COOKIE, format!("rrct_session={session}"))
        .header("sec-fetch-site", "cross-site")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("change=resume&reason=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let overview = rrct::service::lifecycle::overview(&fx.app.store, "taste")
        .await
        .unwrap();
    assert_eq!(overview.lifecycle, "paused");
    assert_eq!(overview.history.len(), 1);

    // She marks an allocation randomised in error from the page.
    page.goto(&format!("{}/trials/taste", fx.app.base)).await;
    page.eval(
        "document.getElementById('mark-record').value = 'R000003'; \
         document.getElementById('mark-reason').value = 'enrolled twice'; \
         document.querySelector('#mark-in-error button').click()",
    )
    .await;
    page.wait_until("document.title.startsWith('Marked randomised in error')")
        .await;
    let last = audit_entries(&fx).await.pop().unwrap();
    assert_eq!(
        (last.action.as_str(), last.actor.as_str()),
        ("randomised_in_error_marked", "person:olle (Olle Lind)"),
        "{last:?}"
    );
    drop(chromium);

    // The on-call unblinder breaks the blind of one subject from the page: the person asking
    // is the one signed in, whatever the form says.
    let chromium = Chromium::start(&find_chromium().unwrap());
    let mut page = Page::open(&chromium.ws_url).await;
    sign_in(&mut page, &fx, "ulla").await;
    page.eval(
        "document.getElementById('unblind-record').value = 'R000005'; \
         document.getElementById('unblind-reason').value = 'anaphylaxis, treating physician asks'; \
         document.getElementById('unblind-person').value = 'Somebody Else'; \
         document.querySelector('#unblind button').click()",
    )
    .await;
    page.wait_until("document.getElementById('unblinded-arm') !== null")
        .await;
    let text = page.eval("document.body.innerText").await;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("R000005") && text.contains("for Ulla Sten"),
        "{text}"
    );
    let last = audit_entries(&fx).await.pop().unwrap();
    assert_eq!(
        (last.action.as_str(), last.actor.as_str()),
        ("emergency_unblinded", "person:ulla (Ulla Sten)"),
        "{last:?}"
    );
    let unblindings = rrct::service::unblinding::of_trial(&fx.app.store, "taste")
        .await
        .unwrap();
    assert_eq!(unblindings.len(), 1);
    assert_eq!(
        (
            unblindings[0].person.as_str(),
            unblindings[0].actor.as_str()
        ),
        ("Ulla Sten", "person:ulla (Ulla Sten)")
    );
    drop(chromium);
    fx.app.stop().await;
}

async fn audit_entries(fx: &Fixture) -> Vec<rrct::store::audit::AuditEntry> {
    rrct::store::audit::entries(&fx.app.store, Some("taste"))
        .await
        .unwrap()
}

fn page_client() -> reqwest::Client {
    no_redirects()
}

async fn get_text(client: &reqwest::Client, url: &str, cookie: Option<&str>) -> (u16, String) {
    let mut r = client.get(url);
    if let Some(c) = cookie {
        r = r.header(COOKIE, c);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The rogue issuer: a sign-in through it with its tokens in `mode`.
fn rogue(_: &str, _: &str) -> Issuer {
    Issuer::start("rogue.mjs", &["good".into(), CLIENT_ID.into()])
}

/// One sign-in through the rogue issuer without a browser (it signs everyone in at once):
/// the callback's status, its page and its `Set-Cookie` headers.
async fn rogue_sign_in(fx: &Fixture) -> (u16, String, Vec<String>) {
    let http = no_redirects();
    let r = http
        .get(format!("{}/auth/sign-in", fx.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let sign_in_cookie = r.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let at_issuer = r.headers()[LOCATION].to_str().unwrap().to_string();
    let r = http.get(&at_issuer).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let callback = r.headers()[LOCATION].to_str().unwrap().to_string();
    let r = http
        .get(&callback)
        .header(COOKIE, sign_in_cookie)
        .send()
        .await
        .unwrap();
    let set_cookies = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    (r.status().as_u16(), r.text().await.unwrap(), set_cookies)
}

async fn oidc_refuses_id_tokens_from_a_wrong_issuer_audience_key_time_or_nonce(db: TestDb) {
    if !ready(false) {
        return;
    }
    let fx = fixture(&db, "", rogue).await;
    let http = no_redirects();
    let with_session = |cookies: &[String]| {
        cookies
            .iter()
            .any(|c| c.starts_with("rrct_session=") && !c.starts_with("rrct_session=;"))
    };
    for (mode, reason) in [
        ("wrong-issuer", "Invalid issuer"),
        ("wrong-audience", "Invalid audiences"),
        ("bad-signature", "Signature verification failed"),
        ("expired", "Expired"),
        ("wrong-nonce", "Invalid nonce"),
    ] {
        let r = http
            .get(format!("{}/mode/{mode}", fx.issuer.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
        let (status, body, cookies) = rogue_sign_in(&fx).await;
        assert_eq!(status, 401, "{mode}: {body}");
        assert!(
            body.contains("ID token was refused") && body.contains(reason),
            "{mode}: {body}"
        );
        assert!(!with_session(&cookies), "{mode}: {cookies:?}");
    }
    assert_eq!(sessions::stored(&fx.app.store).await.unwrap().len(), 0);
    // The control: the same issuer's sound token signs the person in.
    http.get(format!("{}/mode/good", fx.issuer.url))
        .send()
        .await
        .unwrap();
    let (status, body, cookies) = rogue_sign_in(&fx).await;
    assert_eq!(status, 200, "{body}");
    assert!(with_session(&cookies), "{cookies:?}");
    for c in &cookies {
        assert!(!holds_a_token(c), "{c}");
    }
    assert_eq!(sessions::stored(&fx.app.store).await.unwrap().len(), 1);
    fx.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cookie_from_an_oidc_sign_in_holds_a_token() {
    if !ready(true) {
        return;
    }
    let db = TestDb::sqlite();
    let fx = fixture(&db, "", provider).await;
    let chromium = Chromium::start(&find_chromium().unwrap());
    let mut page = Page::open(&chromium.ws_url).await;
    page.call("Network.enable", json!({})).await;
    sign_in(&mut page, &fx, "anna").await;
    // Every Set-Cookie the browser received, from rrct and from the issuer, as sent.
    let set_cookies: Vec<String> = page
        .events
        .iter()
        .filter(|e| e["method"] == "Network.responseReceivedExtraInfo")
        .filter_map(|e| {
            let headers = e["params"]["headers"].as_object()?;
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
                .map(|(_, v)| v.as_str().unwrap_or("").to_string())
        })
        .flat_map(|v| v.split('\n').map(str::to_string).collect::<Vec<_>>())
        .collect();
    assert!(
        set_cookies.iter().any(|c| c.starts_with("rrct_session=")),
        "the callback's cookies were seen: {set_cookies:#?}"
    );
    assert!(set_cookies.iter().any(|c| c.starts_with("rrct_sign_in=")));
    for c in &set_cookies {
        assert!(!holds_a_token(c), "a cookie holds a token: {c}");
    }
    for c in cookies(&mut page).await {
        let value = c["value"].as_str().unwrap();
        assert!(!holds_a_token(value), "{}: {value}", c["name"]);
    }
    drop(chromium);
    fx.app.stop().await;
}

/// The token form: the cookie holds a fresh random id, not the token; the server keeps only
/// its hash; each sign-in gets a new id and ends the one presented; revoking the token ends
/// the session; sign-out ends it on the server.
async fn no_cookie_from_the_token_form_holds_a_token(db: TestDb) {
    let app = TestApp::spawn(&db, &[TASTE], "token-cookie").await;
    let http = no_redirects();
    let token = app.token("statistician", Some("taste"), None).await;
    let sign_in = |presented: Option<String>| {
        let mut r = http
            .post(format!("{}/login", app.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("token={token}"));
        if let Some(id) = presented {
            r = r.header(COOKIE, format!("rrct_session={id}"));
        }
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 303);
            let set: Vec<String> = r
                .headers()
                .get_all(SET_COOKIE)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect();
            assert_eq!(set.len(), 1, "{set:?}");
            set[0].clone()
        }
    };
    let first = sign_in(None).await;
    assert!(!first.contains(&token) && !holds_a_token(&first), "{first}");
    let id = first
        .strip_prefix("rrct_session=")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert!(
        first.contains("HttpOnly") && first.contains("SameSite=Strict"),
        "{first}"
    );
    let trial = format!("{}/trials/taste", app.base);
    assert_eq!(get_with(&http, &trial, &id).await.0, 200);
    let stored = sessions::stored(&app.store).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].id_hash,
        hex::encode(Sha256::digest(id.as_bytes()))
    );
    assert_eq!(
        stored[0].token_hash.as_deref(),
        Some(hex::encode(Sha256::digest(token.as_bytes())).as_str())
    );
    assert!(stored[0].subject.is_none());

    // Signing in again from the same browser: a new id, the old one ended.
    let second = sign_in(Some(id.clone())).await;
    let id2 = second
        .strip_prefix("rrct_session=")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    assert_ne!(id2, id);
    assert_eq!(get_with(&http, &trial, &id).await, (303, "/".into()));
    assert_eq!(get_with(&http, &trial, &id2).await.0, 200);

    // Revoking the token ends the session it rests on.
    let token_id = &hex::encode(Sha256::digest(token.as_bytes()))[..12];
    rrct::service::tokens::revoke(&app.store, token_id, "test")
        .await
        .unwrap();
    // The authenticator trusts a verified token for a few seconds; then the session is gone.
    tokio::time::sleep(rrct::service::tokens::TOKEN_CACHE_TTL + Duration::from_millis(200)).await;
    assert_eq!(get_with(&http, &trial, &id2).await, (303, "/".into()));

    // Sign-out ends the session on the server, not only in the browser.
    let token = app.token("sponsor", Some("taste"), None).await;
    let r = http
        .post(format!("{}/login", app.base))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    let id3 = r.headers()[SET_COOKIE].to_str().unwrap()["rrct_session=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(!id3.contains(&token));
    let r = http
        .post(format!("{}/logout", app.base))
        .header(COOKIE, format!("rrct_session={id3}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(get_with(&http, &trial, &id3).await, (303, "/".into()));
    assert_eq!(sessions::stored(&app.store).await.unwrap().len(), 0);
    app.stop().await;
}
