//! Shared test fixtures: fresh databases per test, an in-process app on a real socket, and
//! `rrct serve` child processes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rrct::api::{Application, Settings, Trials};
use rrct::randomise::MasterSeed;
use rrct::service::seed_vault::SeedKey;
use rrct::service::{tokens, Clock};
use rrct::store::Store;
use serde_json::Value;
use sqlx::Connection;

/// Environment variable naming an administrative PostgreSQL URL; tests create their own
/// databases through it. Unset: PostgreSQL cases are skipped with a message.
pub const POSTGRES_ENV: &str = "RRCT_TEST_POSTGRES_URL";

pub const TASTE: &str = include_str!("../../protocols/taste.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, empty database for one test.
pub struct TestDb {
    pub kind: Kind,
    pub url: String,
    /// Keeps the SQLite directory alive for the test's duration.
    pub _dir: Option<tempfile::TempDir>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("rrct.db").display());
        TestDb {
            kind: Kind::Sqlite,
            url,
            _dir: Some(dir),
        }
    }

    /// A new PostgreSQL database, or `None` (with a message) when the suite is not switched on.
    pub async fn postgres() -> Option<TestDb> {
        let Ok(admin) = std::env::var(POSTGRES_ENV) else {
            eprintln!("skipping PostgreSQL case: {POSTGRES_ENV} is not set");
            return None;
        };
        let name = format!(
            "rrct_t{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand_suffix()
        );
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_ENV} is set but PostgreSQL is unreachable: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Some(TestDb {
            kind: Kind::Postgres,
            url: format!("{base}/{name}"),
            _dir: None,
        })
    }

    pub async fn of(kind: Kind) -> Option<TestDb> {
        match kind {
            Kind::Sqlite => Some(TestDb::sqlite()),
            Kind::Postgres => TestDb::postgres().await,
        }
    }

    /// A scratch directory for files the test writes (protocol dirs, logs).
    pub fn scratch(&self) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "rrct-test-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }
}

fn rand_suffix() -> String {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("entropy");
    hex::encode(b)
}

/// Generate `#[tokio::test]` functions running one async case on each backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::support::TestDb::of($crate::support::Kind::Sqlite).await.unwrap();
                    super::$name(db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = $crate::support::TestDb::of($crate::support::Kind::Postgres).await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

/// The TASTE protocol with another trial id and extra top-level settings replaced.
pub fn taste_variant(trial_id: &str, replace: &[(&str, &str)]) -> String {
    let mut s = TASTE.replacen("id = \"taste\"", &format!("id = \"{trial_id}\""), 1);
    for (from, to) in replace {
        assert!(s.contains(from), "taste.toml no longer contains `{from}`");
        s = s.replacen(from, to, 1);
    }
    s
}

/// The key the tests' master seeds are sealed with (the servers they start are given it too).
pub const SEED_KEY_HEX: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

pub fn seed_key() -> SeedKey {
    SeedKey::from_hex(SEED_KEY_HEX).expect("the test key")
}

/// The day the tests' trials start enrolling: long enough ago for a year of follow-up (and
/// more) to have been received by today, since no register can report the future.
pub fn start() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive() - chrono::Days::new(500)
}

/// `offset` days after [`start`], as `YYYY-MM-DD`.
pub fn day(offset: i64) -> String {
    (start() + chrono::Duration::days(offset)).to_string()
}

/// `n` days before today, as `YYYY-MM-DD`.
pub fn days_ago(n: i64) -> String {
    (chrono::Utc::now().date_naive() - chrono::Duration::days(n)).to_string()
}

/// An app served in-process on a real socket.
pub struct TestApp {
    pub base: String,
    pub store: Store,
    /// The engine's clock (the system's until a test sets its calendar).
    pub clock: Clock,
    pub client: reqwest::Client,
    /// The engine behind the server (to start the bus beside it, say).
    pub state: rrct::service::AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// Register the given protocol sources with a fixed seed and serve them on 127.0.0.1:0.
    pub async fn spawn(db: &TestDb, protocols: &[&str], seed: &str) -> TestApp {
        TestApp::spawn_with(db, protocols, seed, |_| {}).await
    }

    /// As [`TestApp::spawn`], with the settings changed by `configure` first.
    pub async fn spawn_with(
        db: &TestDb,
        protocols: &[&str],
        seed: &str,
        configure: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let mut settings = Settings::local(
            db.url.clone(),
            Trials::Sources {
                protocols: protocols
                    .iter()
                    .map(|source| ("test.toml".to_string(), source.to_string()))
                    .collect(),
                seed: MasterSeed::from_passphrase(seed),
            },
            Clock::system(),
            seed_key(),
        );
        configure(&mut settings);
        let app = Application::build(settings).await.expect("build the app");
        let clock = app.state().clock.clone();
        let base = format!("http://{}", app.address());
        let store = app.state().store.clone();
        let state = app.state().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        TestApp {
            base,
            store,
            clock,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            state,
            stop: Some(tx),
            server: Some(server),
        }
    }

    pub async fn token(&self, role: &str, trial: Option<&str>, site: Option<&str>) -> String {
        tokens::create_token(&self.store, role, trial, site)
            .await
            .expect("token")
    }

    /// A `source` token bound to one declared source.
    pub async fn source_token(&self, source: &str) -> String {
        tokens::create_source_token(&self.store, source)
            .await
            .expect("source token")
    }

    pub fn enrolments_url(&self, trial: &str) -> String {
        format!("{}/api/v1/trials/{trial}/enrolments", self.base)
    }

    /// POST JSON to a path of the API; returns status and JSON body (null when none).
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// GET a path of the API; returns status and JSON body (null when none).
    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Deliver register events as the registers would: each on the day it happened (the
    /// engine's calendar is set to each event's date in turn, then back to today), so that an
    /// event counts as of any cut-off from its date on.
    pub async fn deliver_on_their_days(&self, token: &str, events: &[Value]) {
        let mut by_day: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
        for e in events {
            by_day
                .entry(e["date"].as_str().expect("dated").to_string())
                .or_default()
                .push(e.clone());
        }
        for (date, batch) in by_day {
            self.clock
                .set_today(date.parse().expect("a date YYYY-MM-DD"));
            let (status, body) = self
                .post(
                    "/api/v1/events",
                    token,
                    &serde_json::json!({ "events": batch }),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
        self.clock.set_today(chrono::Utc::now().date_naive());
    }

    /// POST an enrolment; returns status and JSON body.
    pub async fn enrol(&self, trial: &str, token: &str, body: &Value) -> (u16, Value) {
        self.post(&format!("/api/v1/trials/{trial}/enrolments"), token, body)
            .await
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.unwrap().unwrap();
        }
        self.store.close().await;
    }
}

/// A TASTE enrolment body for patient `i` (eligible unless the fields say otherwise).
pub fn patient(i: usize, site: &str, sex: &str) -> Value {
    serde_json::json!({
        "record_id": format!("R{i:06}"),
        "subject": format!("S{i:06}"),
        "site": site,
        "fields": {"age": 40 + (i % 50) as i64, "sex": sex, "diagnosis": "STEMI", "symptom_onset_hours": 3.5}, "consent": {"kind": "oral", "taken_by": "op-1", "taken_at": "2024-01-01"}
    })
}

/// A running `rrct serve` child process.
pub struct ServerProcess {
    pub child: Child,
    pub base: String,
}

impl ServerProcess {
    /// Start `rrct serve` on a free port and wait until it says where it listens.
    pub fn start(db_url: &str, protocols: &Path, seed: Option<&str>) -> ServerProcess {
        ServerProcess::start_with(db_url, protocols, seed, &[], false)
    }

    /// As [`ServerProcess::start`], with more arguments, and its log kept for the test to read
    /// ([`ServerProcess::log`]) when `keep_log`.
    pub fn start_with(
        db_url: &str,
        protocols: &Path,
        seed: Option<&str>,
        extra: &[&str],
        keep_log: bool,
    ) -> ServerProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rrct"));
        cmd.args([
            "serve",
            "--database",
            db_url,
            "--bind",
            "127.0.0.1:0",
            "--protocols",
        ])
        .arg(protocols)
        .args(extra)
        .env("RUST_LOG", "warn")
        .env("RRCT_SEED_KEY", SEED_KEY_HEX)
        // Two tests run at once, some with two servers each: together they must stay under
        // the test PostgreSQL's 100 connections (the store's default is 32 per server).
        .env("RRCT_DB_POOL_SIZE", "10")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if keep_log {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
        match seed {
            Some(s) => cmd.env("RRCT_MASTER_SEED", s),
            None => cmd.env_remove("RRCT_MASTER_SEED"),
        };
        let mut child = cmd.spawn().expect("spawn rrct serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read serve output");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from rrct serve: {line:?}"))
            .to_string();
        ServerProcess {
            child,
            base: format!("http://{addr}"),
        }
    }

    /// Stop the server and return what it logged (started with `keep_log`).
    pub fn log(mut self) -> String {
        use std::io::Read;
        self.kill9();
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut log);
        }
        log
    }

    /// SIGKILL: no graceful shutdown, no flushing.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Write protocol sources into a fresh directory for `rrct serve --protocols`.
pub fn protocol_dir(db: &TestDb, files: &[(&str, &str)]) -> PathBuf {
    let dir = db.scratch();
    for (name, source) in files {
        std::fs::write(dir.join(name), source).unwrap();
    }
    dir
}

/// `rrct serve` on `db_url` and the protocols in `dir`, when it is expected not to start.
pub fn serve_once(db_url: &str, dir: &Path) -> std::process::Output {
    let dir = dir.to_str().expect("a UTF-8 path");
    rrct(&[
        "serve",
        "--database",
        db_url,
        "--bind",
        "127.0.0.1:0",
        "--protocols",
        dir,
    ])
}

/// Run the `rrct` binary to completion.
pub fn rrct(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rrct"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("RRCT_SEED_KEY", SEED_KEY_HEX)
        .stdin(Stdio::null())
        .output()
        .expect("run rrct")
}

/// The trial as the operator of the database reads it (everything, unblinded) as of `cutoff`,
/// through the trial view every interface uses.
pub async fn prepared(
    store: &Store,
    trial: &str,
    cutoff: rrct::endpoints::DataCutoff,
) -> std::sync::Arc<rrct::service::trial_view::PreparedTrial> {
    prepared_by(
        &rrct::service::trial_view::TrialViews::default(),
        store,
        trial,
        cutoff,
    )
    .await
}

/// [`prepared`] through a given set of trial views (whose held data it uses and keeps).
pub async fn prepared_by(
    views: &rrct::service::trial_view::TrialViews,
    store: &Store,
    trial: &str,
    cutoff: rrct::endpoints::DataCutoff,
) -> std::sync::Arc<rrct::service::trial_view::PreparedTrial> {
    use rrct::service::trial_view::{Ask, Reader, TrialView, ViewRequest};
    let opened = views
        .open(
            store,
            ViewRequest {
                trial,
                cutoff: Ok(cutoff),
                reader: Reader::Operator,
                ask: Ask::Unblinded,
            },
        )
        .await
        .expect("the trial view");
    match opened.view {
        TrialView::Unblinded(prepared) => prepared,
        TrialView::Blinded(_) => panic!("the operator was given a blinded view"),
    }
}

/// The number of rows of every table (but the migrations' own, and the saved copies of held
/// rows, which a server writes in the background after its start-up and its preparations,
/// whatever a request did), to show that nothing was written.
pub async fn row_counts(store: &Store) -> std::collections::BTreeMap<String, i64> {
    let tables: Vec<String> = match store.backend() {
        rrct::store::Backend::Sqlite => sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name NOT LIKE '_sqlx%' AND name <> 'trial_snapshots'",
        ),
        rrct::store::Backend::Postgres => sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' \
             AND table_name NOT LIKE '\\_sqlx%' AND table_name <> 'trial_snapshots'",
        ),
    }
    .fetch_all(store.pool())
    .await
    .expect("tables");
    let mut counts = std::collections::BTreeMap::new();
    for table in tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(store.pool())
            .await
            .expect("count");
        counts.insert(table, n);
    }
    assert!(counts.len() >= 10, "every table: {counts:?}");
    counts
}

/// A pool on the administrative PostgreSQL URL of the suite.
pub async fn postgres_admin() -> sqlx::PgPool {
    let url = std::env::var(POSTGRES_ENV).expect("the PostgreSQL suite is on");
    sqlx::PgPool::connect(&url).await.expect("admin connection")
}

/// A TCP proxy to a database server that a test can cut (every connection dropped, none
/// accepted) and restore on the same address: a database outage on demand.
pub struct Proxy {
    pub address: String,
    target: String,
    running: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Proxy {
    pub async fn start(target: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let proxy = Proxy {
            address,
            target: target.to_string(),
            running: tokio::sync::Mutex::new(None),
        };
        *proxy.running.lock().await = Some(Proxy::serve(listener, proxy.target.clone()));
        proxy
    }

    fn serve(listener: tokio::net::TcpListener, target: String) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        })
    }

    /// Drop every connection and stop accepting.
    pub async fn cut(&self) {
        if let Some(task) = self.running.lock().await.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Accept again, on the same address.
    pub async fn restore(&self) {
        let listener = tokio::net::TcpListener::bind(&self.address).await.unwrap();
        *self.running.lock().await = Some(Proxy::serve(listener, self.target.clone()));
    }
}

/// The source TASTE's protocol declares for an event type (the quality register's for an
/// infarction, which two sources deliver).
pub fn source_of(kind: &str) -> &'static str {
    match kind {
        "mi" => "swedeheart",
        _ => "population_register",
    }
}

/// Sign in to the pages with `token`; the session cookie (`name=value`).
pub async fn session(app: &TestApp, token: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(format!("{}/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    r.headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .unwrap_or("")
        .to_string()
}
