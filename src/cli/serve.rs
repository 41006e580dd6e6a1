//! `rrct serve`: the HTTP service for the trials of a protocol directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::DatabaseArg;
use crate::api::application::{self, Application, Limits, Settings, Trials};
use crate::service::metrics::MetricsAccess;
use crate::service::seed_vault::{SeedKey, VaultError};
use crate::service::sign_in::SignInConfig;
use crate::service::Clock;

/// How long a shutdown waits for the enrolments still queued to be decided (a batch that
/// cannot reach the database fails within the pool's own timeout first).
const SHUTDOWN_DECIDING: Duration = Duration::from_secs(30);

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    db: DatabaseArg,
    /// Directory of protocol files (*.toml), registered at start.
    #[arg(long, default_value = "protocols")]
    protocols: PathBuf,
    /// Address to listen on; port 0 picks a free port (the bound address is logged).
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// File holding the key the trials' master seeds are sealed with (64 hex digits; also
    /// RRCT_SEED_KEY_FILE, or the key itself in RRCT_SEED_KEY). Keep it apart from the database.
    #[arg(long)]
    seed_key_file: Option<PathBuf>,
    /// Seconds to wait for a database connection before answering 503 unavailable.
    #[arg(long, env = "RRCT_DB_TIMEOUT_SECS", default_value_t = 5)]
    db_timeout_secs: u64,
    /// Most database connections held at once (default 8 for SQLite, 32 for PostgreSQL).
    /// Instances sharing one PostgreSQL server must together stay under its max_connections.
    #[arg(long, env = "RRCT_DB_POOL_SIZE")]
    db_pool_size: Option<u32>,
    /// Seconds a client may take to send a request's headers.
    #[arg(long, default_value_t = 10)]
    header_timeout_secs: u64,
    /// Seconds a request may take in all before it is answered 503.
    #[arg(long, default_value_t = 60)]
    request_timeout_secs: u64,
    /// Connections served at once; more wait to be accepted.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// NATS server to consume enrolments, screenings and events from (JetStream stream
    /// `RRCT_IN`) and publish the outbox to (`RRCT_OUT`), e.g. nats://127.0.0.1:4222.
    #[arg(long, env = "RRCT_NATS_URL")]
    nats: Option<String>,
    /// Subject prefix on the bus (`rrct`: subjects rrct.in.>, rrct.out.>, rrct.dead.>; streams
    /// RRCT_IN, RRCT_OUT, RRCT_DEAD).
    #[arg(long, env = "RRCT_NATS_PREFIX", default_value = "rrct")]
    nats_prefix: String,
    /// Seconds a message taken by this instance may stay unacknowledged before the bus hands it
    /// to another instance.
    #[arg(long, env = "RRCT_NATS_ACK_WAIT_SECS", default_value_t = 30)]
    nats_ack_wait_secs: u64,
    /// The pages' sign-in configuration (TOML): sessions' idle timeout and lifetime, and the
    /// OpenID Connect issuer people sign in with (see the README). Without it people sign in
    /// with a token, in sessions of the default timeouts.
    #[arg(long, env = "RRCT_SIGN_IN_CONFIG")]
    sign_in: Option<PathBuf>,
    /// Who may scrape GET /metrics: `token` (an admin token of no single trial) or `open`
    /// (anyone who reaches the port; for a scraper on a private network).
    #[arg(long, env = "RRCT_METRICS_ACCESS", default_value = "token", value_parser = ["token", "open"])]
    metrics_access: String,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let sign_in = match &args.sign_in {
        Some(path) => SignInConfig::load(path)?,
        None => SignInConfig::default(),
    };
    let seed_key = SeedKey::configured(args.seed_key_file.as_deref())?.ok_or(VaultError::NoKey)?;
    let app = Application::build(Settings {
        database: args.db.database,
        database_timeout: Duration::from_secs(args.db_timeout_secs.max(1)),
        database_pool: args.db_pool_size,
        trials: Trials::Directory(args.protocols),
        bind: args.bind,
        clock: Clock::system(),
        seed_key,
        limits: Limits {
            header_read_timeout: Duration::from_secs(args.header_timeout_secs.max(1)),
            request_timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
            max_connections: args.max_connections.max(1),
        },
        webhooks: Default::default(),
        stale_source_check: Some(crate::service::alarms::CHECK_EVERY),
        sign_in,
    })
    .await
    .context("rrct serve cannot start")?
    .with_metrics_access(MetricsAccess::parse(&args.metrics_access).unwrap_or_default());
    let addr = app.address();
    let store = app.state().store.clone();
    let bus = match &args.nats {
        Some(url) => {
            let mut settings = crate::bus::BusSettings::new(url);
            settings.prefix = args.nats_prefix.clone();
            settings.ack_wait = Duration::from_secs(args.nats_ack_wait_secs.max(1));
            let bus = crate::bus::start(app.state().clone(), settings)
                .await
                .context("rrct serve cannot start the bus")?;
            tracing::info!(nats = %application::redact(url), "consuming the bus");
            Some(bus)
        }
        None => None,
    };
    tracing::info!(%addr, trials = app.state().trials.len(), "serving");
    // Scripts and tests read the bound address from this line (the bus, when configured, is
    // consumed by then).
    println!("listening on {addr}");
    let enrolments = app.state().enrolments.clone();
    app.run_until(application::shutdown_signal()).await?;
    if let Some(bus) = bus {
        bus.stop().await;
    }
    // Nothing submits any more. Enrolments queued by requests whose client went away before
    // the answer are decided before the store closes, as they would have been while serving.
    if tokio::time::timeout(SHUTDOWN_DECIDING, enrolments.until_decided())
        .await
        .is_err()
    {
        tracing::warn!(
            undecided = enrolments.undecided(),
            "enrolments still undecided at shutdown; their requesters were told nothing and may send them again"
        );
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
