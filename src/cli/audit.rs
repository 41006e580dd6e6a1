//! `rrct audit verify|anchor|new-key`: the audit chain recomputed, its head signed, and a
//! database checked against anchors taken earlier (see `service::anchor`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::DatabaseArg;
use crate::service::anchor::{self, Anchor, AnchorCheck, AnchorKey};
use crate::service::audit_trail::{self, ChainStatus};
use crate::service::{connect, Clock, COMMAND_DB_TIMEOUT};

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute the hash chain: `ok: N entries`, or the first broken entry and exit 1. With
    /// `--anchor`, also prove the log extends each anchored log (exit 1 if not).
    Verify {
        #[command(flatten)]
        db: DatabaseArg,
        /// An anchor file (`rrct audit anchor`); may be given several times.
        #[arg(long)]
        anchor: Vec<PathBuf>,
        /// The public key the anchors must be signed with (hex), as published; without it each
        /// anchor's own key is used and printed.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Sign the chain's current head with an Ed25519 key kept apart from the database and
    /// write the anchor (JSON) to `--out` or stdout. Reads the database only.
    Anchor {
        #[command(flatten)]
        db: DatabaseArg,
        /// The anchor key (`rrct audit new-key`).
        #[arg(long)]
        key_file: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a new Ed25519 anchor key to a new file (mode 0600) and print its public key.
    NewKey {
        #[arg(long)]
        out: PathBuf,
    },
}

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify {
            db,
            anchor,
            public_key,
        } => {
            let store = connect(&db.database, COMMAND_DB_TIMEOUT).await?;
            let mut ok = match audit_trail::verify(&store).await? {
                ChainStatus::Intact { entries } => {
                    println!("ok: {entries} entries");
                    true
                }
                ChainStatus::Broken { seq, reason } => {
                    println!("broken: entry {seq}: {reason}");
                    false
                }
            };
            for path in &anchor {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let parsed: Result<Anchor, _> = serde_json::from_str(&text);
                let check = match parsed {
                    Ok(a) => anchor::verify(&store, &a, public_key.as_deref())
                        .await
                        .map(|c| (c, a.public_key, a.signed_at))?,
                    Err(e) => (
                        AnchorCheck::Fails(format!("not an anchor file: {e}")),
                        String::new(),
                        String::new(),
                    ),
                };
                match check {
                    (AnchorCheck::Extends { seq, .. }, key, at) => println!(
                        "anchor {}: ok: the log extends the log anchored at entry {seq} \
                         (signed {at} by key {key})",
                        path.display()
                    ),
                    (AnchorCheck::Fails(why), _, _) => {
                        ok = false;
                        println!("anchor {}: fails: {why}", path.display())
                    }
                }
            }
            store.close().await;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AuditCommand::Anchor { db, key_file, out } => {
            let key = AnchorKey::read_file(&key_file)?;
            let store = connect(&db.database, COMMAND_DB_TIMEOUT).await?;
            let anchored = anchor::anchor(&store, &key, &Clock::system().now().to_string()).await;
            store.close().await;
            let mut json = serde_json::to_string_pretty(&anchored?)?;
            json.push('\n');
            match out {
                Some(path) => std::fs::write(&path, json)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{json}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::NewKey { out } => {
            let key = AnchorKey::generate()?;
            key.write_new_file(&out)?;
            println!("{}", key.public_hex());
            Ok(ExitCode::SUCCESS)
        }
    }
}
