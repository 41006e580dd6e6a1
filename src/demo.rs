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

use crate::api::application::{shutdown_signal, Application, Settings, Trials};
use crate::protocol::{self, Protocol};
use crate::randomise::{AllocationRecord, MasterSeed};
use crate::service::audit_trail::{self, ChainStatus};
use crate::service::seed_vault::SeedKey;
use crate::service::trial_view::{Ask, PreparedTrial, Reader, TrialView, ViewRequest};
use crate::service::{tokens, trials, AppState, Clock};

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
    /// Enrolment body; with `screening_reason` set, a report of an eligible patient who was
    /// not randomised (sent to the screenings endpoint instead).
    body: Value,
    screening_reason: Option<&'static str>,
    /// Send the identical request again after the answer, as a register retrying a timeout.
    retry: bool,
}

#[derive(Debug, Default)]
struct FeedTally {
    /// Subjects randomised (answered 201), as the register sent them.
    randomised: Vec<String>,
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
    let key_path = args.dir.join("seed.key");
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db_path.display()));
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    let db_path = std::fs::canonicalize(&args.dir)?.join("rrct.db");
    let url = format!("sqlite://{}", db_path.display());
    // The key the master seed is sealed with. In production it lives apart from the database
    // (another volume, a secrets manager); the demo keeps a fresh one beside it.
    if key_path.exists() {
        std::fs::remove_file(&key_path)
            .with_context(|| format!("cannot remove {}", key_path.display()))?;
    }
    let seed_key = SeedKey::generate()?;
    seed_key
        .write_new_file(&key_path)
        .with_context(|| format!("cannot write {}", key_path.display()))?;

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
    let trial_id = protocol.trial_id.clone();
    // The engine's calendar starts TRIAL_DAYS ago: registrations arrive day by day over the
    // first RECRUITMENT_DAYS, and each register delivers its follow-up on its own cadence and
    // delay until today (no register can report the future).
    let real_today = chrono::Utc::now().date_naive();
    let first_day = real_today - chrono::Days::new(TRIAL_DAYS);
    let app = Application::build(Settings::local(
        url,
        Trials::Sources {
            protocols: vec![(protocol_path.clone(), source)],
            seed: MasterSeed::from_passphrase(&phrase),
        },
        Clock::on(first_day),
        seed_key,
    ))
    .await?;
    let addr = app.address();
    let state = app.state().clone();
    let store = state.store.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stop_rx.await;
    }));

    let token = tokens::create_token(&store, "register", Some(&trial_id), None).await?;
    let base = format!("http://{addr}");
    println!(
        "rrct demo: trial `{trial_id}` ({}) from {protocol_path}",
        protocol.title
    );
    println!(
        "  service listening on {base}; playing {} registrations over {RECRUITMENT_DAYS} days from \
         {first_day}, and the registers' follow-up to today, each source on its own cadence \
         (the engine's calendar runs from {first_day})...",
        args.registrations
    );

    let feed = synthetic_feed(&protocol, args.registrations, 20131030);
    let started = Instant::now();
    let (tally, deliveries) = play_calendar(
        &base,
        &state,
        &protocol,
        &token,
        feed,
        first_day,
        real_today,
        args.concurrency.max(1),
    )
    .await?;
    let elapsed = started.elapsed();
    state.clock.set_today(real_today);

    report(&state, &protocol, &tally, elapsed).await?;
    let dir = std::fs::canonicalize(&args.dir)?;
    follow_up(&state, &protocol, &deliveries, &dir).await?;
    println!();
    println!("Database: {}", db_path.display());

    if args.serve {
        println!();
        let sponsor = tokens::create_token(&store, "sponsor", Some(&trial_id), None).await?;
        let statistician =
            tokens::create_token(&store, "statistician", Some(&trial_id), None).await?;
        println!();
        println!("Dashboards: open {base}/ in a browser and sign in with");
        println!("  sponsor (blinded):        {sponsor}");
        println!("  statistician (unblinded): {statistician}");
        println!("Serving on {base} until Ctrl-C. Try:");
        println!(
            "  curl -s -X POST {base}/api/v1/trials/{trial_id}/enrolments \\\n    -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\n    -d '{{\"record_id\":\"R-1\",\"subject\":\"P-1\",\"site\":\"UPP\",\"fields\":{{\"age\":64,\"sex\":\"F\",\"diagnosis\":\"STEMI\",\"symptom_onset_hours\":3.5}}}}'"
        );
        shutdown_signal().await;
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
        // About a third of eligible patients are not randomised (TASTE reached about two
        // thirds); the register reports them with a reason.
        let eligible = diagnosis == "STEMI" && onset <= 24.0 && (18..=120).contains(&age);
        let screening_reason = (eligible && unit() < 0.33).then(|| {
            let r = unit();
            if r < 0.45 {
                "clinician_decision"
            } else if r < 0.75 {
                "system_not_used"
            } else if r < 0.9 {
                "consent_declined"
            } else {
                "other"
            }
        });
        let mut body = body;
        if let Some(reason) = screening_reason {
            body["reason"] = json!(reason);
        }
        feed.push(FeedItem {
            body: body.clone(),
            screening_reason,
            retry: unit() < 0.05,
        });
        if screening_reason.is_some() {
            continue;
        }
        if unit() < 0.01 {
            // The same patient registered again under a new record (e.g. a transfer).
            let mut again = body;
            again["record_id"] = json!(format!("SCAAR-{:06}-T", i + 1));
            feed.push(FeedItem {
                body: again,
                screening_reason: None,
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
    let enrolments = format!("{base}/api/v1/trials/{trial_id}/enrolments");
    let screenings = format!("{base}/api/v1/trials/{trial_id}/screenings");
    let gate = Arc::new(Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for item in feed {
        let permit = gate.clone().acquire_owned().await?;
        let url = if item.screening_reason.is_some() {
            screenings.clone()
        } else {
            enrolments.clone()
        };
        let (client, token) = (client.clone(), token.to_string());
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
            let subject = (status == 201 && item.screening_reason.is_none())
                .then(|| item.body["subject"].as_str().map(str::to_string))
                .flatten();
            Ok::<_, reqwest::Error>((status, answer, latency, retry_same, subject))
        });
    }
    let mut tally = FeedTally::default();
    while let Some(joined) = tasks.join_next().await {
        let (status, answer, latency, retry_same, subject) = joined??;
        tally.randomised.extend(subject);
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

/// The trial as its operator sees it (everything, unblinded), as of `cutoff`.
async fn prepared(
    state: &AppState,
    trial: &str,
    cutoff: crate::endpoints::DataCutoff,
) -> anyhow::Result<std::sync::Arc<PreparedTrial>> {
    let opened = state
        .views
        .open(
            &state.store,
            ViewRequest {
                trial,
                cutoff: Ok(cutoff),
                reader: Reader::Operator,
                ask: Ask::Unblinded,
            },
        )
        .await?;
    match opened.view {
        TrialView::Unblinded(prepared) => Ok(prepared),
        TrialView::Blinded(_) => anyhow::bail!("the operator was given a blinded view"),
    }
}

async fn report(
    state: &AppState,
    protocol: &Protocol,
    tally: &FeedTally,
    elapsed: Duration,
) -> anyhow::Result<()> {
    let trial = protocol.trial_id.as_str();
    let now = prepared(
        state,
        trial,
        crate::endpoints::DataCutoff(state.clock.today()),
    )
    .await?;
    let allocations = &now.data.allocations;
    let screening = &now.screening;
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
        "Feed: {sent} enrolment requests over {RECRUITMENT_DAYS} simulated days, played with the \
         registers' deliveries in {:.1} s (latency p50 {:.1} ms, p99 {:.1} ms), plus {} retries",
        elapsed.as_secs_f64(),
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
    let by_arm = |rows: &mut dyn Iterator<Item = &AllocationRecord>| {
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
        for criterion in &row.reasons {
            let text = protocol
                .inclusion
                .iter()
                .chain(&protocol.exclusion)
                .find(|c| &c.id == criterion)
                .map_or("", |c| c.text.as_str());
            *reasons.entry(format!("{criterion} ({text})")).or_default() += 1;
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
    let mut strata: BTreeMap<&str, Vec<&AllocationRecord>> = BTreeMap::new();
    for a in allocations {
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
    match audit_trail::verify(&state.store).await? {
        ChainStatus::Intact { entries } => {
            println!("Audit chain: ok, {entries} entries verified")
        }
        ChainStatus::Broken { seq, reason } => {
            println!("Audit chain: BROKEN at entry {seq}: {reason}")
        }
    }
    Ok(())
}

/// Days the demo's trial has run by today.
const TRIAL_DAYS: u64 = 400;
/// Days over which registrations arrive, from the trial's first day.
const RECRUITMENT_DAYS: u64 = 300;
/// The slowest register stops delivering this many days before today, so that the pages show
/// what a silent source looks like.
const SILENT_FOR_DAYS: u64 = 70;

/// A register event the demo's registers will deliver: on the first delivery day of its source
/// on or after `available_on` (the day the register has it).
struct Pending {
    source: String,
    available_on: chrono::NaiveDate,
    event: Value,
}

/// What the registers delivered, for the summary.
#[derive(Default)]
struct Deliveries {
    /// By source: deliveries made and events sent.
    by_source: BTreeMap<String, (usize, usize)>,
    /// The source that fell silent, and its last delivery day.
    silent: Option<(String, chrono::NaiveDate)>,
}

/// A randomised patient's register history and follow-up, each event dated when it happened and
/// available to its register after that register's plausible delay: deaths and emigrations to
/// the population register after a few days, infarctions to SWEDEHEART within two days and to
/// the patient register after three to six weeks, earlier infarctions (history, before
/// randomisation) to the patient register when it links the new patient.
fn follow_up_events(
    protocol: &Protocol,
    subject: &str,
    n: usize,
    randomised_on: chrono::NaiveDate,
    unit: &mut dyn FnMut() -> f64,
) -> Vec<Pending> {
    let declared = |id: &str| protocol.follow_up.source(id).is_some();
    let mut out = Vec::new();
    let mut push = |source: &str, id: String, kind: &str, day: i64, delay: i64| {
        let date = randomised_on + chrono::Duration::days(day);
        if declared(source) {
            out.push(Pending {
                source: source.to_string(),
                available_on: date + chrono::Duration::days(delay.max(1)),
                event: json!({"event_id": id, "subject": subject, "type": kind,
                              "date": date.to_string()}),
            });
        }
    };
    let exp = |unit: &mut dyn FnMut() -> f64, mean: f64| -(unit().max(1e-12).ln()) * mean;
    // About 5.5% die within a year (half of them within 30 days), 3% have a new infarction,
    // 0.5% emigrate; 3% had an infarction before (history, never an outcome).
    if unit() < 0.055 {
        let day = if unit() < 0.5 {
            unit() * 30.0
        } else {
            30.0 + unit() * 335.0
        };
        let delay = 1.0 + exp(unit, 3.0);
        push(
            "population_register",
            format!("POP-D-{n}"),
            "death",
            day as i64,
            delay as i64,
        );
    }
    if unit() < 0.03 {
        let day = (unit() * 365.0) as i64;
        if unit() < 0.9 {
            push(
                "swedeheart",
                format!("SH-MI-{n}"),
                "mi",
                day,
                1 + (unit() * 2.0) as i64,
            );
        }
        if unit() < 0.7 {
            // The same infarction in the patient register, weeks later.
            let delay = 20 + (unit() * 25.0) as i64;
            push("patient_register", format!("NPR-MI-{n}"), "mi", day, delay);
        }
    }
    if unit() < 0.005 {
        let day = (unit() * 365.0) as i64;
        let delay = 1.0 + exp(unit, 7.0);
        push(
            "population_register",
            format!("POP-E-{n}"),
            "emigration",
            day,
            delay as i64,
        );
    }
    if unit() < 0.03 {
        let before = 1 + (unit() * 3000.0) as i64;
        // Linked when the patient is enrolled.
        push(
            "patient_register",
            format!("NPR-OLD-{n}"),
            "mi",
            -before,
            before + 1,
        );
    }
    out
}

/// Play the trial day by day from `first_day` to `today`: each day's registrations (the
/// engine's calendar set to that day), then each register's delivery if it is one of its days
/// (every `expected_every_days`; the slowest register falls silent [`SILENT_FOR_DAYS`] before
/// today), carrying what it has by then (an empty delivery when nothing is new), through a
/// `source` token bound to it.
#[allow(clippy::too_many_arguments)]
async fn play_calendar(
    base: &str,
    state: &AppState,
    protocol: &Protocol,
    token: &str,
    feed: Vec<FeedItem>,
    first_day: chrono::NaiveDate,
    today: chrono::NaiveDate,
    concurrency: usize,
) -> anyhow::Result<(FeedTally, Deliveries)> {
    let trial = protocol.trial_id.as_str();
    let mut rng = ChaCha20Rng::seed_from_u64(7244);
    let mut unit = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    // Arrival days: uniform over the recruitment period, in feed order.
    let mut days: Vec<u64> = (0..feed.len())
        .map(|_| (unit() * RECRUITMENT_DAYS as f64) as u64)
        .collect();
    days.sort_unstable();
    let mut by_day: BTreeMap<u64, Vec<FeedItem>> = BTreeMap::new();
    for (mut item, day) in feed.into_iter().zip(days) {
        // Oral consent taken in the cath lab on the day of the registration (TASTE), by the
        // site's operator; screenings of patients not randomised carry none.
        if item.screening_reason.is_none() {
            let site = item.body["site"].as_str().unwrap_or("site").to_string();
            item.body["consent"] = serde_json::json!({
                "kind": "oral",
                "taken_by": format!("{site}-operator"),
                "taken_at": (first_day + chrono::Days::new(day)).to_string(),
            });
        }
        by_day.entry(day).or_default().push(item);
    }
    let mut tokens = BTreeMap::new();
    for s in &protocol.follow_up.sources {
        tokens.insert(
            s.id.clone(),
            tokens::create_source_token(&state.store, &s.id).await?,
        );
    }
    let silent = protocol
        .follow_up
        .sources
        .iter()
        .max_by_key(|s| s.expected_every_days)
        .map(|s| s.id.clone());
    let client = reqwest::Client::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut tally = FeedTally::default();
    let mut deliveries = Deliveries::default();
    let mut n = 0usize;
    let total_days = (today - first_day).num_days().max(0) as u64;
    for d in 0..=total_days {
        let on = first_day + chrono::Days::new(d);
        state.clock.set_today(on);
        if let Some(items) = by_day.remove(&d) {
            let mut day_tally = play(base, trial, token, items, concurrency).await?;
            // In feed order, whatever order the answers came in: the same follow-up each run.
            day_tally.randomised.sort_unstable();
            for subject in &day_tally.randomised {
                pending.extend(follow_up_events(protocol, subject, n, on, &mut unit));
                n += 1;
            }
            tally.randomised.extend(day_tally.randomised);
            for (k, v) in day_tally.statuses {
                *tally.statuses.entry(k).or_default() += v;
            }
            for (k, v) in day_tally.error_codes {
                *tally.error_codes.entry(k).or_default() += v;
            }
            tally.retries += day_tally.retries;
            tally.retries_identical += day_tally.retries_identical;
            tally.latencies.extend(day_tally.latencies);
        }
        for source in &protocol.follow_up.sources {
            let every = u64::from(source.expected_every_days.max(1));
            // Each register has its own weekday or day of the month, after its first cycle.
            let offset = source.id.len() as u64 % every;
            let stopped =
                silent.as_deref() == Some(source.id.as_str()) && d + SILENT_FOR_DAYS > total_days;
            if d < every || d % every != offset || stopped {
                continue;
            }
            let (due, rest): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut pending)
                .into_iter()
                .partition(|p| p.source == source.id && p.available_on <= on);
            pending = rest;
            let batch: Vec<Value> = due.into_iter().map(|p| p.event).collect();
            let r = client
                .post(format!("{base}/api/v1/events"))
                .bearer_auth(&tokens[&source.id])
                .json(&json!({ "events": batch }))
                .send()
                .await?;
            anyhow::ensure!(
                r.status().is_success(),
                "{}'s delivery refused: {}",
                source.id,
                r.text().await?
            );
            let entry = deliveries.by_source.entry(source.id.clone()).or_default();
            entry.0 += 1;
            entry.1 += batch.len();
            if silent.as_deref() == Some(source.id.as_str()) {
                deliveries.silent = Some((source.id.clone(), on));
            }
        }
    }
    Ok((tally, deliveries))
}

/// Print the analysis as of today, with each register's state, and write the ADTTE, the
/// analysis JSON and the DSMB's closed report beside the database.
async fn follow_up(
    state: &AppState,
    protocol: &Protocol,
    deliveries: &Deliveries,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let trial = protocol.trial_id.as_str();
    let real_today = state.clock.today();
    let cutoff = crate::endpoints::DataCutoff(real_today);
    let sent: usize = deliveries.by_source.values().map(|v| v.1).sum();
    let made: usize = deliveries.by_source.values().map(|v| v.0).sum();
    println!();
    println!(
        "Follow-up: {sent} register events (deaths, infarctions, emigrations, earlier history) in \
         {made} deliveries from {} registers through /api/v1/events, each with its own token; \
         analysis as of cut-off {}",
        deliveries.by_source.len(),
        cutoff.0
    );
    let analysed = prepared(state, trial, cutoff).await?;
    let analysis = &analysed.analysis;
    let flow = &analysis.flow;
    println!(
        "  CONSORT-ROUTINE flow: {} screened, {} not eligible, {} eligible, {} not randomised, {} randomised \
         (inclusion rate {:.0}%), {} lost to follow-up, {} analysed",
        flow.total.screened,
        flow.total.not_eligible,
        flow.total.eligible,
        flow.total.not_randomised,
        flow.total.randomised,
        100.0 * flow.total.inclusion_rate.unwrap_or(0.0),
        flow.total.lost_to_follow_up,
        flow.total.analysed
    );
    let reasons: Vec<String> = flow
        .total
        .not_randomised_by_reason
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    println!("  not randomised: {}", reasons.join(", "));
    println!("  inclusion rate per site (randomised / eligible):");
    for site in &flow.sites {
        println!(
            "    {:<6}{:>5} /{:>5}  {:>5.1}%",
            site.site,
            site.counts.randomised,
            site.counts.eligible,
            100.0 * site.counts.inclusion_rate.unwrap_or(0.0)
        );
    }
    println!("  registers (each complete through the cut-off minus its reporting lag):");
    for source in &analysis.sources {
        println!(
            "    {:<20} lag {:>2} d, every {:>2} d: complete through {}, last delivery {}, {} events \
             (median {} days from event to receipt){}",
            source.id,
            source.reporting_lag_days,
            source.expected_every_days,
            source.complete_through,
            source
                .last_delivery
                .map_or_else(|| "never".to_string(), |d| d.to_string()),
            source.events_received.unwrap_or(0),
            source
                .event_lag_days_median
                .map_or_else(|| "-".to_string(), |m| format!("{m:.0}")),
            source
                .stale_reason
                .as_ref()
                .map_or_else(String::new, |r| format!("  STALE: {r}"))
        );
    }
    if let Some((source, last)) = &deliveries.silent {
        println!(
            "    ({source} was made to fall silent after {last}, so the pages show a stale source)"
        );
    }
    println!("  timeliness per site (days from event to receipt, median):");
    for site in &flow.sites {
        println!(
            "    {:<6}{:>5} events, median {}",
            site.site,
            site.events_received,
            site.event_lag_days_median
                .map_or_else(|| "-".to_string(), |m| format!("{m:.0} days"))
        );
    }
    println!("  endpoints by arm (unblinded: this is the statistician's view):");
    for e in &analysis.endpoints {
        let groups: Vec<String> = e
            .groups
            .iter()
            .map(|(arm, g)| {
                format!(
                    "{arm} {}/{} events{}",
                    g.events,
                    g.subjects,
                    if g.incomplete > 0 {
                        format!(", {} incomplete", g.incomplete)
                    } else {
                        String::new()
                    }
                )
            })
            .collect();
        println!(
            "    {:<16}{}{}",
            e.id,
            groups.join("; "),
            if e.primary { "  (primary)" } else { "" }
        );
    }
    if let Some(primary) = analysis.endpoints.iter().find(|e| e.primary) {
        use crate::analysis::Comparison;
        match &primary.comparison {
            Some(Comparison::Survival {
                reference_arm,
                hazard_ratios,
                logrank,
                ..
            }) => {
                for hr in hazard_ratios {
                    if let (Some(h), Some(lo), Some(hi)) = (hr.hr, hr.hr_lower, hr.hr_upper) {
                        println!(
                            "  primary analysis ({}): hazard ratio {} {h:.2} (95% CI {lo:.2}-{hi:.2}), \
                             log-rank p = {:.3}; reference arm {reference_arm}",
                            primary.id, hr.name, logrank.p
                        );
                    }
                }
            }
            Some(Comparison::NotEstimable { reason }) => {
                println!(
                    "  primary analysis ({}): not estimable: {reason}",
                    primary.id
                )
            }
            _ => {}
        }
    }
    for arm in analysis.interim.iter().flat_map(|i| &i.comparisons) {
        let Some(interim) = &analysis.interim else {
            break;
        };
        let next = interim
            .design
            .looks
            .get(arm.looks.len())
            .map_or_else(String::new, |t| {
                format!("; the next look is at {:.0}%", 100.0 * t)
            });
        println!(
            "  interim monitoring of {} against {} ({} spending, {}-sided alpha {}): {} of {} \
             planned events, information {:.0}%, {} look(s) held{next}",
            arm.experimental_arm,
            interim.reference_arm,
            interim.design.spending,
            interim.design.sided,
            interim.alpha_per_comparison,
            arm.events,
            interim.design.planned_events,
            100.0 * arm.information_fraction,
            arm.looks.len()
        );
    }
    let data = &analysed.data;
    if let Some(primary) = data.protocol.primary_endpoint() {
        let csv = crate::analysis::datasets::adtte(data, &primary.id, cutoff)?;
        let path = dir.join(format!("adtte_{}.csv", primary.id));
        std::fs::write(&path, csv)?;
        println!("  ADTTE of the primary endpoint: {}", path.display());
    }
    let path = dir.join("analysis.json");
    std::fs::write(&path, serde_json::to_vec_pretty(analysis)?)?;
    println!("  analysis (JSON): {}", path.display());
    let path = dir.join("report.html");
    std::fs::write(&path, crate::dashboard::closed_report(&analysed)?)?;
    println!(
        "  closed report for the DSMB (HTML, unblinded): {}",
        path.display()
    );
    Ok(())
}
