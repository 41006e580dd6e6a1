//! `rrct seeds new-key|rotate-key`: the key the trials' master seeds are sealed with.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::DatabaseArg;
use crate::service::seed_vault::SeedKey;
use crate::service::{connect, trials, COMMAND_DB_TIMEOUT};

#[derive(Subcommand, Debug)]
pub enum SeedsCommand {
    /// Write a new random key to a new file readable by its owner only (mode 0600).
    NewKey {
        #[arg(long)]
        out: PathBuf,
    },
    /// Seal every trial's master seed under a new key, in one transaction (audited). Stop the
    /// servers first, then start them with the new key.
    RotateKey {
        #[command(flatten)]
        db: DatabaseArg,
        /// The key the seeds are sealed with now.
        #[arg(long)]
        key_file: PathBuf,
        /// The key to seal them with from now on (e.g. made by `rrct seeds new-key`).
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

pub async fn run(command: SeedsCommand) -> anyhow::Result<ExitCode> {
    match command {
        SeedsCommand::NewKey { out } => {
            let key = SeedKey::generate()?;
            key.write_new_file(&out)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
            println!("key {} written to {}", key.id_hex(), out.display());
            Ok(ExitCode::SUCCESS)
        }
        SeedsCommand::RotateKey {
            db,
            key_file,
            new_key_file,
        } => {
            let (old, new) = (
                SeedKey::read_file(&key_file)?,
                SeedKey::read_file(&new_key_file)?,
            );
            let store = connect(&db.database, COMMAND_DB_TIMEOUT).await?;
            let rotated = trials::rotate_seed_key(&store, &old, &new, "cli").await;
            store.close().await;
            println!(
                "{} master seed(s) sealed under key {} (was {})",
                rotated?,
                new.id_hex(),
                old.id_hex()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
