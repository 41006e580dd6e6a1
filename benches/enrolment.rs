//! Enrolment latency and throughput over real HTTP, against a bare durable insert + commit on
//! the same database in the same run.
//!
//! `cargo bench --bench enrolment` (SQLite; PostgreSQL too when RRCT_TEST_POSTGRES_URL names an
//! administrative URL). Options through the environment: RRCT_BENCH_N (enrolments per backend,
//! default 4000), RRCT_BENCH_CLIENTS (concurrent clients, default 32).
//! Target: p99 latency under 10 ms at 32 clients; throughput at least half the bare insert's.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rrct::api::{Application, Settings, Trials};
use rrct::randomise::MasterSeed;
use rrct::service::seed_vault::SeedKey;
use rrct::service::{tokens, Clock};
use rrct::store::{Backend, Store};
use serde_json::json;

const TASTE: &str = include_str!("../protocols/taste.toml");
const SITES: [&str; 6] = ["UPP", "LKP", "SUS", "SAH", "KS", "ORE"];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful: run small.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = if quick {
        200
    } else {
        env_usize("RRCT_BENCH_N", 4000)
    };
    let clients = env_usize("RRCT_BENCH_CLIENTS", 32);
    println!("enrolment benchmark: {n} enrolments, {clients} concurrent clients, release build");
    println!(
        "{:<11}{:>12}{:>10}{:>10}{:>10}{:>12}{:>14}{:>8}",
        "backend", "enrol/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "bare insert/s", "ratio"
    );
    let dir = tempfile::tempdir()?;
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    bench("sqlite", &sqlite, n, clients).await?;
    if let Ok(admin) = std::env::var(support::POSTGRES_ENV) {
        let name = format!("rrct_bench_{}", std::process::id());
        let db = support::FreshPostgres::create(&admin, &name).await?;
        bench("postgres", &db.url, n, clients).await?;
        db.drop_database().await?;
    } else {
        println!("(PostgreSQL skipped: set RRCT_TEST_POSTGRES_URL)");
    }
    Ok(())
}

/// What the server thread reports once it is listening.
struct Serving {
    base: String,
    token: String,
    stop: tokio::sync::oneshot::Sender<()>,
}

/// Run the server on its own runtime and OS threads, as a separate server process would, so
/// the load generator's tasks do not queue in front of the server's. After the load it
/// measures the bare-insert reference on the same database and returns that rate.
fn spawn_server(
    url: String,
    n: usize,
    clients: usize,
    ready: std::sync::mpsc::Sender<anyhow::Result<Serving>>,
) -> std::thread::JoinHandle<anyhow::Result<f64>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let setup = async {
                let app = Application::build(Settings::local(
                    url,
                    Trials::Sources {
                        protocols: vec![("taste.toml".into(), TASTE.into())],
                        seed: MasterSeed::from_passphrase("bench"),
                    },
                    Clock::system(),
                    SeedKey::generate()?,
                ))
                .await?;
                let store = app.state().store.clone();
                let token = tokens::create_token(&store, "register", None, None).await?;
                Ok::<_, anyhow::Error>((store, app, token))
            };
            let (store, app, token) = match setup.await {
                Ok(x) => x,
                Err(e) => {
                    let _ = ready.send(Err(anyhow::anyhow!("{e:#}")));
                    return Err(e);
                }
            };
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let _ = ready.send(Ok(Serving {
                base: format!("http://{}", app.address()),
                token,
                stop,
            }));
            app.run_until(async {
                let _ = stopped.await;
            })
            .await?;
            let bare = bare_insert(&store, n, clients).await?;
            store.close().await;
            Ok(bare)
        })
    })
}

async fn bench(name: &str, url: &str, n: usize, clients: usize) -> anyhow::Result<()> {
    let (ready, serving) = std::sync::mpsc::channel();
    let server = spawn_server(url.to_string(), n, clients, ready);
    let Serving { base, token, stop } = serving.recv()??;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let url = format!("{base}/api/v1/trials/taste/enrolments");

    // Warm-up: connections, prepared statements, page cache.
    run_clients(&client, &url, &token, "W", 100, clients).await?;
    let started = Instant::now();
    let mut latencies = run_clients(&client, &url, &token, "B", n, clients).await?;
    let elapsed = started.elapsed();
    latencies.sort();
    let pct =
        |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    let enrol_rate = n as f64 / elapsed.as_secs_f64();
    let _ = stop.send(());
    let bare_rate = server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))??;
    println!(
        "{name:<11}{enrol_rate:>12.0}{:>10.2}{:>10.2}{:>10.2}{:>12.2}{bare_rate:>14.0}{:>8.2}",
        pct(0.50),
        pct(0.95),
        pct(0.99),
        pct(1.0),
        enrol_rate / bare_rate
    );
    Ok(())
}

/// `n` enrolments from `clients` concurrent clients; returns each request's latency.
async fn run_clients(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    prefix: &str,
    n: usize,
    clients: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (client, url, token, prefix) = (
            client.clone(),
            url.to_string(),
            token.to_string(),
            prefix.to_string(),
        );
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            for i in (c..n).step_by(clients) {
                let body = json!({
                    "record_id": format!("{prefix}{i}"), "subject": format!("{prefix}S{i}"),
                    "site": SITES[i % SITES.len()],
                    "fields": {"age": 40 + i % 50, "sex": if i % 3 == 0 { "F" } else { "M" },
                               "diagnosis": "STEMI", "symptom_onset_hours": 2.5}, "consent": {"kind": "oral", "taken_by": "op-1", "taken_at": "2024-01-01"}
                });
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await?;
                anyhow::ensure!(
                    r.status().as_u16() == 201,
                    "unexpected status {}",
                    r.status()
                );
                r.bytes().await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    Ok(all)
}

/// The reference: single-row INSERT + COMMIT transactions from the same number of concurrent
/// tasks on the same pool (same durability settings), with no application locking: on
/// PostgreSQL plain concurrent transactions (which the server group-commits); on SQLite, whose
/// single writer makes concurrent writers spin in its busy handler, the writers queue on an
/// in-process mutex, as the store's own write path does.
async fn bare_insert(store: &Store, n: usize, clients: usize) -> anyhow::Result<f64> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_insert (id BIGINT PRIMARY KEY, payload TEXT NOT NULL)",
    )
    .execute(store.pool())
    .await?;
    let sqlite = store.backend() == Backend::Sqlite;
    let gate = Arc::new(tokio::sync::Mutex::new(()));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (pool, gate) = (store.pool().clone(), gate.clone());
        tasks.spawn(async move {
            for i in (c..n).step_by(clients) {
                let _turn = if sqlite {
                    Some(gate.lock().await)
                } else {
                    None
                };
                let mut tx = if sqlite {
                    pool.begin_with("BEGIN IMMEDIATE").await?
                } else {
                    pool.begin().await?
                };
                sqlx::query("INSERT INTO bench_insert (id, payload) VALUES ($1, $2)")
                    .bind(i as i64)
                    .bind("x".repeat(200))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}
