//! The command line (clap). Each command parses its arguments, calls the library and turns
//! the result into output and an exit code; nothing here decides anything about a trial.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod audit;
mod csv_table;
mod data;
mod design;
mod objection;
mod pseudonymise;
mod randomisation;
mod seeds;
mod serve;
mod simulate;
mod stats;
mod stats_competing;
mod stats_models;
mod stats_output;
mod tokens;
mod trial;
mod verify;
mod webhook;

use crate::service::COMMAND_DB_TIMEOUT;
use crate::service::{allocation_log, connect, randomised_in_error, trials, Clock};

/// Environment variable read when `--database` is not given.
pub const DATABASE_ENV: &str = "RRCT_DATABASE_URL";

#[derive(Parser, Debug)]
#[command(
    name = "rrct",
    version,
    about = "Registry-based randomised trial engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct DatabaseArg {
    /// Database URL: sqlite://FILE (created if missing) or postgres://USER@HOST/DB.
    #[arg(long, env = DATABASE_ENV)]
    pub database: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the end-to-end demonstration on a fresh embedded SQLite database.
    Demo(crate::demo::DemoArgs),
    /// Serve the HTTP API for the trials in a protocol directory.
    Serve(serve::ServeArgs),
    /// The key the trials' master seeds are sealed with: make one, or rotate to a new one.
    Seeds {
        #[command(subcommand)]
        command: seeds::SeedsCommand,
    },
    /// For the register host, before delivery: replace the personal identity numbers in one
    /// CSV column by keyed pseudonyms (`new-key` makes the key). Nothing is written if any row
    /// is bad; each is reported as `FILE:LINE: column COL: reason`.
    Pseudonymise(pseudonymise::PseudonymiseArgs),
    /// Protocol file tools.
    Protocol {
        #[command(subcommand)]
        command: ProtocolCommand,
    },
    /// Bearer tokens.
    Token {
        #[command(subcommand)]
        command: tokens::TokenCommand,
    },
    /// Webhooks: a trial's outbox records sent as signed CloudEvents, in order, at least once.
    Webhook {
        #[command(subcommand)]
        command: webhook::WebhookCommand,
    },
    /// Bring register data in (follow-up events).
    Import {
        #[command(subcommand)]
        command: data::ImportCommand,
    },
    /// The analysis as of a data cut-off: participant flow, completeness, endpoints by arm.
    Analyse(data::AnalyseArgs),
    /// Before go-live: eligible registrations per site and month in a register extract, and the
    /// projected time to the target sample size.
    Feasibility(data::FeasibilityArgs),
    /// Statistics on a CSV file, as R's `survival` computes them: km, logrank, cox, binary,
    /// rmst, subgroups (JSON on stdout).
    Stats {
        #[command(subcommand)]
        command: stats::StatsCommand,
    },
    /// Trial design and interim monitoring, as rpact computes them: gsd (group-sequential
    /// boundaries), events, subjects, rates, means (sample sizes), conditional-power (JSON on
    /// stdout).
    Design {
        #[command(subcommand)]
        command: design::DesignCommand,
    },
    /// Allocation procedures: `assess` reports a procedure's balance and predictability
    /// (JSON on stdout).
    Randomisation {
        #[command(subcommand)]
        command: randomisation::RandomisationCommand,
    },
    /// A design's operating characteristics from simulated trials run through the engine's own
    /// code: power or type I error, stopping per look, expected subjects, events and duration,
    /// balance, predictability (JSON, or HTML with charts).
    Simulate(simulate::SimulateArgs),
    /// Analysis data sets as CSV on stdout, and the randomisation log for replay.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// The audit log: verify the chain, anchor its head, check anchors.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// A trial's lifecycle: pause, resume, close, close or open a site, reveal the seed.
    Trial {
        #[command(subcommand)]
        command: trial::TrialCommand,
    },
    /// Independent checks that need no database: replay an exported randomisation log.
    Verify {
        #[command(subcommand)]
        command: verify::VerifyCommand,
    },
    /// A trial's objection (opt-out) list: subjects never to be randomised.
    Objection {
        #[command(subcommand)]
        command: objection::ObjectionCommand,
    },
    /// Enrolments already made.
    Enrolment {
        #[command(subcommand)]
        command: EnrolmentCommand,
    },
}

#[derive(Subcommand, Debug)]
enum EnrolmentCommand {
    /// Mark an allocation randomised in error (it stays in the data and every analysis, is
    /// flagged in exports and no longer counts towards minimisation balance). Prints the mark
    /// as JSON.
    MarkError {
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(long)]
        trial: String,
        /// The enrolment's record id.
        #[arg(long)]
        record: String,
        /// Why the patient was randomised in error.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand, Debug)]
enum ProtocolCommand {
    /// Validate a protocol file: exit 0, or print `FILE:LINE:COL: message` lines and exit 1.
    Check { file: PathBuf },
}

#[derive(Subcommand, Debug)]
enum ExportCommand {
    #[command(flatten)]
    Data(data::ExportCommand),
    /// The trial's randomisation log as one self-describing JSON file (every allocation's
    /// input as judged, protocol version, draw and arm, and the randomised-in-error marks), for
    /// `rrct verify replay` or anyone's own replay (docs/VERIFY.md).
    Allocations {
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(long)]
        trial: String,
        /// Where to write the log (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write each registered protocol version's file into this directory
        /// (`TRIAL-VERSION.toml`, byte for byte as registered).
        #[arg(long)]
        protocols_dir: Option<PathBuf>,
    },
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(default_log_filter(&cli.command));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What is logged when `RUST_LOG` does not say: rrct's information, and sqlx's warnings (a
/// statement over a second, say). Not for an import: its bulk insert, index build and commit
/// take seconds by design, and their slow-statement warnings would read as faults; the import
/// reports its own progress.
fn default_log_filter(command: &Command) -> &'static str {
    match command {
        Command::Import { .. } => "info,sqlx=warn,sqlx::query=error",
        _ => "info,sqlx=warn",
    }
}

fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // `RRCT_LOG_FORMAT=json`: one JSON object a line (with the request span's id), for log
    // collectors; anything else: the human-readable lines.
    let json = std::env::var("RRCT_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Seeds { command } => seeds::run(command).await,
        Command::Pseudonymise(args) => pseudonymise::run(args),
        Command::Protocol {
            command: ProtocolCommand::Check { file },
        } => match trials::read_protocol(&file) {
            Ok((p, _)) => {
                println!(
                    "{}: ok: trial `{}` version {} ({} arms, {} sites)",
                    file.display(),
                    p.trial_id,
                    p.version,
                    p.arms.len(),
                    p.sites.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Token { command } => tokens::run(command).await,
        Command::Webhook { command } => webhook::run(command).await,
        Command::Import { command } => data::import(command).await,
        Command::Export {
            command: ExportCommand::Data(command),
        } => data::export(command).await,
        Command::Export {
            command:
                ExportCommand::Allocations {
                    db,
                    trial,
                    out,
                    protocols_dir,
                },
        } => export_allocations(&db, &trial, out, protocols_dir).await,
        Command::Trial { command } => trial::run(command).await,
        Command::Verify { command } => verify::run(command),
        Command::Analyse(args) => data::analyse(args).await,
        Command::Feasibility(args) => data::feasibility(args).await,
        Command::Stats { command } => stats::run(command),
        Command::Randomisation { command } => randomisation::run(command),
        Command::Simulate(args) => simulate::run(args),
        Command::Design { command } => design::run(command).await,
        Command::Enrolment {
            command:
                EnrolmentCommand::MarkError {
                    db,
                    trial,
                    record,
                    reason,
                },
        } => {
            let store = connect(&db.database, COMMAND_DB_TIMEOUT).await?;
            let marking = randomised_in_error::Marking {
                actor: "cli",
                at: Clock::system().now(),
            };
            let outcome =
                randomised_in_error::mark(&store, &trial, &record, &reason, &marking).await;
            store.close().await;
            match outcome {
                Ok(marked) => {
                    println!("{}", serde_json::to_string_pretty(&marked)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(randomised_in_error::MarkError::Store(e)) => Err(e.into()),
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Audit { command } => audit::run(command).await,
        Command::Objection { command } => objection::run(command).await,
    }
}

/// `rrct export allocations`.
async fn export_allocations(
    db: &DatabaseArg,
    trial: &str,
    out: Option<PathBuf>,
    protocols_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let store = connect(&db.database, COMMAND_DB_TIMEOUT).await?;
    let exported = allocation_log::export(&store, trial, &Clock::system().now().to_string()).await;
    store.close().await;
    let Some((log, sources)) = exported? else {
        eprintln!("error: no trial `{trial}` in this database");
        return Ok(ExitCode::FAILURE);
    };
    let mut json = serde_json::to_string_pretty(&log)?;
    json.push('\n');
    match &out {
        Some(path) => std::fs::write(path, json)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{json}"),
    }
    if let Some(dir) = protocols_dir {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for s in sources {
            let path = dir.join(&s.file_name);
            std::fs::write(&path, s.source)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    eprintln!(
        "{} allocations of trial `{trial}` exported (lifecycle {})",
        log.allocations.len(),
        log.lifecycle
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter_of(args: &[&str]) -> &'static str {
        let cli = Cli::try_parse_from(args).expect("the arguments parse");
        default_log_filter(&cli.command)
    }

    /// An import leaves out sqlx's slow-statement warnings (its index build and commit take
    /// seconds by design); every other command keeps them.
    #[test]
    fn only_an_import_leaves_out_slow_statement_warnings() {
        let import = filter_of(&[
            "rrct",
            "import",
            "events",
            "--database",
            "sqlite://x.db",
            "e.csv",
        ]);
        let serve = filter_of(&["rrct", "serve", "--database", "sqlite://x.db"]);
        for filter in [import, serve] {
            assert!(
                tracing_subscriber::EnvFilter::try_new(filter).is_ok(),
                "{filter}"
            );
        }
        assert!(import.contains("sqlx::query=error"), "{import}");
        assert!(!serve.contains("sqlx::query"), "{serve}");
        assert!(serve.contains("sqlx=warn"), "{serve}");
    }
}
