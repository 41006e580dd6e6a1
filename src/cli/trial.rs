//! `rrct trial pause|resume|close|site-close|site-open|status|reveal-seed`: a trial's
//! lifecycle from the command line (see `service::lifecycle`), audited as the operator (`cli`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::DatabaseArg;
use crate::service::lifecycle::{self, By, Change, LifecycleError};
use crate::service::seed_vault::{SeedKey, VaultError};
use crate::service::{connect, trials, Clock, COMMAND_DB_TIMEOUT};

#[derive(Subcommand, Debug)]
pub enum TrialCommand {
    /// Pause enrolment (e.g. on the DSMB's recommendation): enrolments are refused with
    /// `409 trial_paused` until the trial is resumed.
    Pause(TrialChange),
    /// Resume a paused trial.
    Resume(TrialChange),
    /// Close the trial for good: enrolments are refused with `409 trial_closed`, and the master
    /// seed may then be revealed.
    Close(TrialChange),
    /// Close one site to enrolment (`409 site_closed`).
    SiteClose(SiteChange),
    /// Open a closed site again.
    SiteOpen(SiteChange),
    /// The trial's lifecycle, closed sites and history (JSON).
    Status {
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(long)]
        trial: String,
    },
    /// Once the trial is closed: publish its master seed in the audit log (checked against the
    /// commitment published when the trial was created) and print it (JSON).
    RevealSeed {
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(long)]
        trial: String,
        /// The key the seeds are sealed with (or RRCT_SEED_KEY_FILE, or RRCT_SEED_KEY).
        #[arg(long)]
        seed_key_file: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
pub struct TrialChange {
    #[command(flatten)]
    db: DatabaseArg,
    #[arg(long)]
    trial: String,
    /// Why (kept in the audit log and the trial's history).
    #[arg(long)]
    reason: String,
}

#[derive(clap::Args, Debug)]
pub struct SiteChange {
    #[command(flatten)]
    db: DatabaseArg,
    #[arg(long)]
    trial: String,
    #[arg(long)]
    site: String,
    /// Why (kept in the audit log and the trial's history).
    #[arg(long)]
    reason: String,
}

pub async fn run(command: TrialCommand) -> anyhow::Result<ExitCode> {
    let by = By {
        actor: "cli",
        at: Clock::system().now(),
    };
    let (db, trial, change, site, reason) = match command {
        TrialCommand::Pause(c) => (c.db, c.trial, Change::Pause, None, c.reason),
        TrialCommand::Resume(c) => (c.db, c.trial, Change::Resume, None, c.reason),
        TrialCommand::Close(c) => (c.db, c.trial, Change::Close, None, c.reason),
        TrialCommand::SiteClose(c) => (c.db, c.trial, Change::SiteClose, Some(c.site), c.reason),
        TrialCommand::SiteOpen(c) => (c.db, c.trial, Change::SiteOpen, Some(c.site), c.reason),
        TrialCommand::Status { db, trial } => {
            let store = connect(&db.database, COMMAND_DB_TIMEOUT).await?;
            let overview = lifecycle::overview(&store, &trial).await;
            store.close().await;
            return answer(overview);
        }
        TrialCommand::RevealSeed {
            db,
            trial,
            seed_key_file,
        } => {
            let key = SeedKey::configured(seed_key_file.as_deref())?.ok_or(VaultError::NoKey)?;
            let store = connect(&db.database, COMMAND_DB_TIMEOUT).await?;
            let revealed = match trials::opened_seed(&store, &trial, &key).await? {
                Some(seed) => lifecycle::reveal_seed(&store, &trial, &seed, &by).await,
                None => Err(LifecycleError::TrialNotFound(trial.clone())),
            };
            store.close().await;
            return answer(revealed);
        }
    };
    let store = connect(&db.database, COMMAND_DB_TIMEOUT).await?;
    let changed = lifecycle::change(&store, &trial, change, site.as_deref(), &reason, &by).await;
    store.close().await;
    answer(changed)
}

/// Print the answer as JSON, or the refusal; a database fault is an error.
fn answer<T: serde::Serialize>(outcome: Result<T, LifecycleError>) -> anyhow::Result<ExitCode> {
    match outcome {
        Ok(value) => {
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(LifecycleError::Store(e)) => Err(e.into()),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
