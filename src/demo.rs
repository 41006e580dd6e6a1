//! `rrct demo`: the newcomer's first run, end to end on an embedded SQLite file.
//!
//! Loads the TASTE protocol, starts the real HTTP service in-process on a free port, plays a
//! synthetic register feed through it (eligible and ineligible patients, retries, a few double
//! registrations and malformed records), then reads back what the database holds and prints it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::api::{self, AppState};
use crate::protocol::{self, Protocol};
use crate::randomise::MasterSeed;
use crate::service::{auth, trials, TrialRegistry};
use crate::store::{allocations, audit, Store};

/// The shipped example, used when `protocols/taste.toml` is not beside the working directory.
const TASTE_PROTOCOL: &str = include_str!("../protocols/taste.toml");

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Keep serving the API after the feed (stop with Ctrl-C).
    #[arg(long)]
    serve: bool,
    /// Number of distinct registrations in the synthetic feed.
    #[arg(long, default_value_t = 3000)]
    registrations: usize,
    /// Directory for the demo database (its old database is replaced).
    #[arg(long, default_value = "rrct-demo")]
    dir: PathBuf,
    /// Enrolment requests in flight at once, like several hospitals registering at the same time.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

/// What the feed sends for one registration.
#[derive(Debug, Clone)]
struct FeedItem {
    body: Value,
    /// Send the identical request again after the answer, as a register retrying a timeout.
    retry: bool,
}

#[derive(Debug, Default)]
struct FeedTally {
    statuses: BTreeMap<u16, usize>,
    error_codes: BTreeMap<String, usize>,
    retries: usize,
    retries_identical: usize,
    latencies: Vec<Duration>,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let db_path = args.dir.join("rrct.db");
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db_path.display()));
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    let db_path = std::fs::canonicalize(&args.dir)?.join("rrct.db");
    let url = format!("sqlite://{}", db_path.display());
    let store = Store::connect(&url).await?;

    let (protocol_path, source) = match std::fs::read_to_string("protocols/taste.toml") {
        Ok(s) => ("protocols/taste.toml".to_string(), s),
        Err(_) => (
            "built-in copy of protocols/taste.toml".to_string(),
            TASTE_PROTOCOL.to_string(),
        ),
    };
    let protocol = protocol::parse(&source, &protocol_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    // A fixed seed makes the demo's allocation lists repeatable for the same request order;
    // RRCT_MASTER_SEED overrides it.
    let phrase = std::env::var(trials::MASTER_SEED_ENV).unwrap_or_else(|_| "rrct-demo".into());
    let runtime = trials::register_with_seed(
        &store,
        protocol.clone(),
        &source,
        MasterSeed::from_passphrase(&phrase),
    )
    .await?;
    let trial_id = protocol.trial_id.clone();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let state = AppState::new(store.clone(), TrialRegistry::from_runtimes([runtime]));
    let server = tokio::spawn(api::serve(listener, state, async {
        let _ = stop_rx.await;
    }));

    let token = auth::create_token(&store, "register", Some(&trial_id), None).await?;
    let base = format!("http://{addr}");
    println!(
        "rrct demo: trial `{trial_id}` ({}) from {protocol_path}",
        protocol.title
    );
    println!(
        "  service listening on {base}; playing {} registrations, {} at a time...",
        args.registrations, args.concurrency
    );

    let feed = synthetic_feed(&protocol, args.registrations, 20131030);
    let started = Instant::now();
    let tally = play(&base, &trial_id, &token, feed, args.concurrency.max(1)).await?;
    let elapsed = started.elapsed();

    report(&store, &protocol, &tally, elapsed).await?;
    println!("  database: {}", db_path.display());

    if args.serve {
        println!();
        println!("Serving on {base} until Ctrl-C. Try:");
        println!(
            "  curl -s -X POST {base}/api/v1/trials/{trial_id}/enrolments \\\n    -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\n    -d '{{\"record_id\":\"R-1\",\"subject\":\"P-1\",\"site\":\"UPP\",\"fields\":{{\"age\":64,\"sex\":\"F\",\"diagnosis\":\"STEMI\",\"symptom_onset_hours\":3.5}}}}'"
        );
        crate::cli::shutdown_signal().await;
    }
    let _ = stop_tx.send(());
    server.await??;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// A TASTE-like stream of registrations: STEMI-dominated, a few late presenters and minors,
/// site volumes uneven, ~5% retried, ~1% double registrations, ~1% malformed.
fn synthetic_feed(protocol: &Protocol, n: usize, seed: u64) -> Vec<FeedItem> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut unit = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let sites: Vec<&str> = protocol.sites.iter().map(|s| s.code.as_str()).collect();
    // Larger centres first: weight 1/(rank+1).
    let weights: Vec<f64> = (0..sites.len()).map(|i| 1.0 / (i as f64 + 1.0)).collect();
    let total: f64 = weights.iter().sum();
    let mut feed = Vec::with_capacity(n + n / 50);
    for i in 0..n {
        let mut x = unit() * total;
        let site = sites
            .iter()
            .zip(&weights)
            .find(|(_, &w)| {
                x -= w;
                x < 0.0
            })
            .map_or(sites[0], |(s, _)| s);
        // Box–Muller for a roughly normal age around 66.
        let z =
            (-2.0 * unit().max(1e-12).ln()).sqrt() * (2.0 * std::f64::consts::PI * unit()).cos();
        let age = (66.0 + 12.0 * z).round().clamp(16.0, 99.0) as i64;
        let sex = if unit() < 0.25 { "F" } else { "M" };
        let d = unit();
        let diagnosis = if d < 0.78 {
            "STEMI"
        } else if d < 0.92 {
            "NSTEMI"
        } else {
            "UA"
        };
        let onset = (-5.0 * unit().max(1e-12).ln() * 10.0).round() / 10.0;
        let mut fields = json!({
            "age": age, "sex": sex, "diagnosis": diagnosis, "symptom_onset_hours": onset,
        });
        if unit() < 0.01 {
            // A register form bug: age typed in months.
            fields["age"] = json!(age * 12);
        }
        let body = json!({
            "record_id": format!("SCAAR-{:06}", i + 1),
            "subject": format!("P{:07}", 1_000_000 + i),
            "site": site,
            "fields": fields,
        });
        feed.push(FeedItem {
            body: body.clone(),
            retry: unit() < 0.05,
        });
        if unit() < 0.01 {
            // The same patient registered again under a new record (e.g. a transfer).
            let mut again = body;
            again["record_id"] = json!(format!("SCAAR-{:06}-T", i + 1));
            feed.push(FeedItem {
                body: again,
                retry: false,
            });
        }
    }
    feed
}

async fn play(
    base: &str,
    trial_id: &str,
    token: &str,
    feed: Vec<FeedItem>,
    concurrency: usize,
) -> anyhow::Result<FeedTally> {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/trials/{trial_id}/enrolments");
    let gate = Arc::new(Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for item in feed {
        let permit = gate.clone().acquire_owned().await?;
        let (client, url, token) = (client.clone(), url.clone(), token.to_string());
        tasks.spawn(async move {
            let _permit = permit;
            let send = |body: &Value| {
                client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(body)
                    .timeout(Duration::from_secs(30))
                    .send()
            };
            let t = Instant::now();
            let first = send(&item.body).await?;
            let latency = t.elapsed();
            let status = first.status().as_u16();
            let answer: Value = first.json().await?;
            let mut retry_same = None;
            if item.retry {
                let again = send(&item.body).await?;
                let again_status = again.status().as_u16();
                let again_body: Value = again.json().await?;
                let same = match status {
                    201 => again_status == 200 && again_body == answer,
                    _ => again_status == status && again_body == answer,
                };
                retry_same = Some(same);
            }
            Ok::<_, reqwest::Error>((status, answer, latency, retry_same))
        });
    }
    let mut tally = FeedTally::default();
    while let Some(joined) = tasks.join_next().await {
        let (status, answer, latency, retry_same) = joined??;
        *tally.statuses.entry(status).or_default() += 1;
        if let Some(code) = answer["error"]["code"].as_str() {
            *tally.error_codes.entry(code.to_string()).or_default() += 1;
        }
        tally.latencies.push(latency);
        if let Some(same) = retry_same {
            tally.retries += 1;
            tally.retries_identical += usize::from(same);
        }
    }
    Ok(tally)
}

async fn report(
    store: &Store,
    protocol: &Protocol,
    tally: &FeedTally,
    elapsed: Duration,
) -> anyhow::Result<()> {
    let trial = protocol.trial_id.as_str();
    let allocations = allocations::list(store, trial).await?;
    let screening = allocations::screening_log(store, trial).await?;
    let sent: usize = tally.statuses.values().sum();
    let mut latencies = tally.latencies.clone();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!();
    println!(
        "Feed: {sent} enrolment requests in {:.1} s ({:.0}/s; latency p50 {:.1} ms, p99 {:.1} ms), plus {} retries",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64().max(1e-9),
        pct(0.5),
        pct(0.99),
        tally.retries
    );
    for (status, count) in &tally.statuses {
        println!("  HTTP {status}: {count}");
    }
    for (code, count) in &tally.error_codes {
        println!("    {code}: {count}");
    }
    println!(
        "  retries answered with the identical response: {}/{}",
        tally.retries_identical, tally.retries
    );

    println!();
    let by_arm = |rows: &mut dyn Iterator<Item = &allocations::AllocationRow>| {
        let mut counts = vec![0usize; protocol.arms.len()];
        for r in rows {
            if let Some(i) = protocol.arm_index(&r.arm) {
                counts[i] += 1;
            }
        }
        counts
    };
    let overall = by_arm(&mut allocations.iter());
    let arms: Vec<String> = protocol
        .arms
        .iter()
        .zip(&overall)
        .map(|(a, n)| format!("{} {n}", a.id))
        .collect();
    println!("Randomised: {} ({})", allocations.len(), arms.join(", "));

    let refused: Vec<_> = screening
        .iter()
        .filter(|s| s.outcome == "not_eligible")
        .collect();
    println!("Screened out (not eligible): {}", refused.len());
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for row in &refused {
        let parsed: Value = serde_json::from_str(&row.reasons).unwrap_or(Value::Null);
        for r in parsed.as_array().into_iter().flatten() {
            let key = format!(
                "{} ({})",
                r["criterion"].as_str().unwrap_or("?"),
                r["text"].as_str().unwrap_or("")
            );
            *reasons.entry(key).or_default() += 1;
        }
    }
    for (reason, count) in &reasons {
        println!("  {count:>5}  {reason}");
    }

    println!();
    println!(
        "Allocation balance per stratum (permuted blocks; difference never exceeds half a block):"
    );
    let header: Vec<String> = protocol
        .arms
        .iter()
        .map(|a| format!("{:>11}", a.id))
        .collect();
    println!(
        "  {:<22}{:>6}{}{:>6}",
        "stratum",
        "n",
        header.join(""),
        "diff"
    );
    let mut strata: BTreeMap<&str, Vec<&allocations::AllocationRow>> = BTreeMap::new();
    for a in &allocations {
        strata.entry(a.stratum.as_str()).or_default().push(a);
    }
    for (stratum, rows) in &strata {
        let counts = by_arm(&mut rows.iter().copied());
        let cells: Vec<String> = counts.iter().map(|n| format!("{n:>11}")).collect();
        let diff = counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0);
        println!(
            "  {stratum:<22}{:>6}{}{diff:>6}",
            rows.len(),
            cells.join("")
        );
    }

    println!();
    match audit::verify(store).await? {
        audit::ChainStatus::Intact { entries } => {
            println!("Audit chain: ok, {entries} entries verified")
        }
        audit::ChainStatus::Broken { seq, reason } => {
            println!("Audit chain: BROKEN at entry {seq}: {reason}")
        }
    }
    Ok(())
}
