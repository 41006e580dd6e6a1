//! Enrolments through NATS JetStream request-reply against the same enrolments over HTTP, on the
//! same machine in one run: throughput and latency from the requester's side.
//!
//! `cargo bench --bench bus` (SQLite; PostgreSQL too when RRCT_TEST_POSTGRES_URL names an
//! administrative URL). Needs a NATS server with JetStream (RRCT_TEST_NATS_URL, default
//! nats://127.0.0.1:4222). Options: RRCT_BENCH_N (enrolments per transport, default 4000),
//! RRCT_BENCH_CLIENTS (concurrent requesters, default 32).
//! Target: the bus's throughput at least the HTTP throughput.
//!
//! HTTP is measured twice: on a server with the bus running (the outbox published to JetStream
//! as enrolments arrive, as on any `rrct serve --nats`), which differs from the bus run in the
//! transport alone, and on a server without the bus, which publishes nothing. The ratios are
//! given against both.
//!
//! A bus requester subscribes to its own inbox, publishes each enrolment CloudEvent to
//! `{p}.in.enrol.taste` with `Rrct-Reply-To` naming the inbox, waits for the stream's
//! acknowledgement and then for the allocation on its inbox: the latency is from publishing to
//! the allocation. An HTTP requester POSTs the plain enrolment and reads the answer.

mod support;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt;
use rrct::api::{Application, Settings, Trials};
use rrct::randomise::MasterSeed;
use rrct::service::seed_vault::SeedKey;
use rrct::service::{tokens, Clock};
use serde_json::{json, Value};

const TASTE: &str = include_str!("../protocols/taste.toml");
const SITES: [&str; 6] = ["UPP", "LKP", "SUS", "SAH", "KS", "ORE"];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn body(tag: &str, i: usize) -> Value {
    json!({
        "record_id": format!("{tag}{i}"), "subject": format!("{tag}S{i}"),
        "site": SITES[i % SITES.len()],
        "fields": {"age": 40 + i % 50, "sex": if i.is_multiple_of(3) { "F" } else { "M" },
                   "diagnosis": "STEMI", "symptom_onset_hours": 2.5}, "consent": {"kind": "oral", "taken_by": "op-1", "taken_at": "2024-01-01"}
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = if quick {
        100
    } else {
        env_usize("RRCT_BENCH_N", 4000)
    };
    let clients = env_usize("RRCT_BENCH_CLIENTS", 32);
    let nats =
        std::env::var("RRCT_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    if async_nats::connect(&nats).await.is_err() {
        println!("(bus benchmark skipped: no NATS server at {nats})");
        return Ok(());
    }
    println!("bus benchmark: {n} enrolments per transport, {clients} concurrent requesters, release build");
    println!(
        "{:<11}{:<11}{:>10}{:>10}{:>10}{:>10}{:>12}{:>12}",
        "backend", "transport", "enrol/s", "p50 ms", "p99 ms", "max ms", "/ HTTP+bus", "/ HTTP"
    );
    let dir = tempfile::tempdir()?;
    let sqlite = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let dbs = [sqlite("http.db"), sqlite("http_bus.db"), sqlite("bus.db")];
    bench("sqlite", &dbs, &nats, n, clients).await?;
    if let Ok(admin) = std::env::var(support::POSTGRES_ENV) {
        let pid = std::process::id();
        let mut fresh = Vec::new();
        for part in ["http", "http_bus", "bus"] {
            fresh.push(
                support::FreshPostgres::create(&admin, &format!("rrct_bench_{pid}_{part}")).await?,
            );
        }
        let dbs = [0, 1, 2].map(|i| fresh[i].url.clone());
        bench("postgres", &dbs, &nats, n, clients).await?;
        for db in fresh {
            db.drop_database().await?;
        }
    } else {
        println!("(PostgreSQL skipped: set RRCT_TEST_POSTGRES_URL)");
    }
    Ok(())
}

async fn app(url: &str) -> anyhow::Result<Application> {
    Ok(Application::build(Settings::local(
        url.to_string(),
        Trials::Sources {
            protocols: vec![("taste.toml".into(), TASTE.into())],
            seed: MasterSeed::from_passphrase("bench"),
        },
        Clock::system(),
        SeedKey::generate()?,
    ))
    .await?)
}

fn stats(mut latencies: Vec<Duration>, elapsed: Duration) -> (f64, f64, f64, f64) {
    latencies.sort();
    let pct =
        |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    (
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        pct(1.0),
    )
}

async fn bench(
    name: &str,
    [http_db, http_bus_db, bus_db]: &[String; 3],
    nats: &str,
    n: usize,
    clients: usize,
) -> anyhow::Result<()> {
    let prefix = format!("bench{}{name}", std::process::id());
    let mut http_rates = Vec::new();
    // The HTTP run's bus has a prefix of its own: its outbox ids must not be taken for
    // duplicates of the bus run's.
    let http_prefix = format!("{prefix}h");
    for (label, db, with_bus) in [("HTTP", http_db, false), ("HTTP+bus", http_bus_db, true)] {
        let bus = with_bus.then_some((nats, http_prefix.as_str()));
        http_rates.push(http_run(name, label, db, bus, n, clients).await?);
    }
    let (http_rate, http_bus_rate) = (http_rates[0], http_rates[1]);

    // The bus.
    let server = app(bus_db).await?;
    let state = server.state().clone();
    let mut settings = rrct::bus::BusSettings::new(nats);
    settings.prefix = prefix.clone();
    let bus = rrct::bus::start(state, settings).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let nc = async_nats::connect(nats).await?;
    let js = jetstream::new(nc.clone());
    let run = |tag: &'static str, count: usize| {
        let (nc, js, prefix) = (nc.clone(), js.clone(), prefix.clone());
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for c in 0..clients {
                let (nc, js, prefix) = (nc.clone(), js.clone(), prefix.clone());
                tasks.spawn(async move {
                    let inbox = format!("_INBOX.{prefix}.{tag}.{c}");
                    let mut replies = nc.subscribe(inbox.clone()).await?;
                    let mut out = Vec::new();
                    for i in (c..count).step_by(clients) {
                        let mut data = body(tag, i);
                        data["trial_id"] = json!("taste");
                        let event = json!({"specversion": "1.0", "id": format!("{tag}-{i}"),
                            "source": "/bench", "type": "rrct.enrolment.requested", "data": data});
                        let mut headers = async_nats::HeaderMap::new();
                        headers.insert("Rrct-Reply-To", inbox.as_str());
                        let t = Instant::now();
                        js.publish_with_headers(
                            format!("{prefix}.in.enrol.taste"),
                            headers,
                            event.to_string().into(),
                        )
                        .await?
                        .await?;
                        let reply = tokio::time::timeout(Duration::from_secs(30), replies.next())
                            .await?
                            .ok_or_else(|| anyhow::anyhow!("inbox closed"))?;
                        let status = reply
                            .headers
                            .as_ref()
                            .and_then(|h| h.get("Rrct-Status"))
                            .map(|v| v.as_str().to_string());
                        anyhow::ensure!(status.as_deref() == Some("201"), "status {status:?}");
                        out.push(t.elapsed());
                    }
                    Ok::<_, anyhow::Error>(out)
                });
            }
            let mut all = Vec::new();
            while let Some(r) = tasks.join_next().await {
                all.extend(r??);
            }
            Ok::<_, anyhow::Error>(all)
        }
    };
    run("W", 100).await?;
    let started = Instant::now();
    let latencies = run("B", n).await?;
    let (bus_rate, p50, p99, max) = stats(latencies, started.elapsed());
    println!(
        "{name:<11}{:<11}{bus_rate:>10.0}{p50:>10.2}{p99:>10.2}{max:>10.2}{:>12.2}{:>12.2}",
        "JetStream",
        bus_rate / http_bus_rate,
        bus_rate / http_rate
    );
    bus.stop().await;
    let _ = stop.send(());
    running.await??;
    for p in [&prefix, &http_prefix] {
        for kind in ["IN", "OUT", "DEAD"] {
            let _ = js
                .delete_stream(format!("{}_{kind}", p.to_ascii_uppercase()))
                .await;
        }
    }
    Ok(())
}

/// Enrolments over HTTP against a server on `db`, with the bus running when `bus` names the
/// NATS server and prefix: the throughput.
async fn http_run(
    name: &str,
    label: &str,
    db: &str,
    bus: Option<(&str, &str)>,
    n: usize,
    clients: usize,
) -> anyhow::Result<f64> {
    let server = app(db).await?;
    let token = tokens::create_token(&server.state().store, "register", None, None).await?;
    let base = format!("http://{}", server.address());
    let bus = match bus {
        Some((nats, prefix)) => {
            let mut settings = rrct::bus::BusSettings::new(nats);
            settings.prefix = prefix.to_string();
            Some(rrct::bus::start(server.state().clone(), settings).await?)
        }
        None => None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let url = format!("{base}/api/v1/trials/taste/enrolments");
    let http = |tag: &'static str, count: usize| {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for c in 0..clients {
                let (client, url, token) = (client.clone(), url.clone(), token.clone());
                tasks.spawn(async move {
                    let mut out = Vec::new();
                    for i in (c..count).step_by(clients) {
                        let t = Instant::now();
                        let r = client
                            .post(&url)
                            .bearer_auth(&token)
                            .json(&body(tag, i))
                            .send()
                            .await?;
                        anyhow::ensure!(r.status().as_u16() == 201, "status {}", r.status());
                        r.bytes().await?;
                        out.push(t.elapsed());
                    }
                    Ok::<_, anyhow::Error>(out)
                });
            }
            let mut all = Vec::new();
            while let Some(r) = tasks.join_next().await {
                all.extend(r??);
            }
            Ok::<_, anyhow::Error>(all)
        }
    };
    http("W", 100).await?;
    let started = Instant::now();
    let latencies = http("H", n).await?;
    let (rate, p50, p99, max) = stats(latencies, started.elapsed());
    println!("{name:<11}{label:<11}{rate:>10.0}{p50:>10.2}{p99:>10.2}{max:>10.2}");
    if let Some(bus) = bus {
        bus.stop().await;
    }
    let _ = stop.send(());
    running.await??;
    Ok(rate)
}
