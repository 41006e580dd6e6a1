//! `rrct webhook add|list|remove`: the endpoints a trial's outbox records are sent to, managed
//! by whoever runs the database. `rrct serve` delivers them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::DatabaseArg;
use crate::service::seed_vault::{SeedKey, VaultError};
use crate::service::webhooks::{self, SigningSecret, WebhookSpec};
use crate::service::{connect, COMMAND_DB_TIMEOUT};

#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// Register a webhook for one trial's records from now on; prints its id alone.
    Add {
        #[command(flatten)]
        db: DatabaseArg,
        /// The trial whose records are sent (it must exist).
        #[arg(long)]
        trial: String,
        /// Where to POST them: http:// or https://, no credentials.
        #[arg(long)]
        url: String,
        /// File holding the signing secret shared with the receiver, in the Standard Webhooks
        /// form `whsec_` + base64 of 24 to 64 random bytes.
        #[arg(long)]
        secret_file: PathBuf,
        /// Only these outbound types (comma-separated); default all.
        #[arg(long)]
        types: Option<String>,
        /// File holding the server's seed key, which the secret is sealed with (also
        /// RRCT_SEED_KEY_FILE, or the key itself in RRCT_SEED_KEY).
        #[arg(long)]
        seed_key_file: Option<PathBuf>,
    },
    /// List webhooks (never their secrets): id, trial, URL, types, created, removed, and
    /// delivery: the outbox id delivered through, records delivered, failed attempts at the
    /// next record, the next attempt and the last error.
    List {
        #[command(flatten)]
        db: DatabaseArg,
        /// Only this trial's webhooks.
        #[arg(long)]
        trial: Option<String>,
    },
    /// Remove a webhook by its id: nothing more is sent to it, and its secret is erased.
    Remove {
        #[command(flatten)]
        db: DatabaseArg,
        /// The webhook's id, as `webhook add` printed it.
        id: String,
    },
}

pub async fn run(command: WebhookCommand) -> anyhow::Result<ExitCode> {
    match command {
        WebhookCommand::Add {
            db,
            trial,
            url,
            secret_file,
            types,
            seed_key_file,
        } => {
            // Everything that can be checked without the database is, before it is opened.
            let secret = SigningSecret::read_file(&secret_file)?;
            let url = webhooks::parse_url(&url)?;
            let types = types.as_deref().map(webhooks::parse_types).transpose()?;
            let key = SeedKey::configured(seed_key_file.as_deref())?.ok_or(VaultError::NoKey)?;
            let store = connect(&db.database, COMMAND_DB_TIMEOUT).await?;
            let added = webhooks::add(
                &store,
                &key,
                WebhookSpec {
                    trial_id: &trial,
                    url: &url,
                    secret,
                    types: types.as_deref(),
                },
                "cli",
            )
            .await;
            store.close().await;
            println!("{}", added?);
            Ok(ExitCode::SUCCESS)
        }
        WebhookCommand::List { db, trial } => {
            let store = connect(&db.database, COMMAND_DB_TIMEOUT).await?;
            let listed = webhooks::list(&store, trial.as_deref()).await;
            store.close().await;
            let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            println!(
                "id\ttrial\turl\ttypes\tcreated\tremoved\tdelivered_through\tdelivered\tattempts\tnext_attempt\tlast_error"
            );
            for w in listed? {
                let types = w
                    .event_types
                    .as_deref()
                    .and_then(|t| serde_json::from_str::<Vec<String>>(t).ok())
                    .map_or_else(|| "all".to_string(), |t| t.join(","));
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    w.webhook_id,
                    w.trial_id,
                    w.url,
                    types,
                    w.created_at,
                    dash(&w.removed_at),
                    w.delivered_through,
                    w.delivered,
                    w.attempts,
                    if w.removed_at.is_some() {
                        "-".to_string()
                    } else {
                        w.next_attempt_at
                    },
                    dash(&w.last_error)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        WebhookCommand::Remove { db, id } => {
            let store = connect(&db.database, COMMAND_DB_TIMEOUT).await?;
            let removed = webhooks::remove(&store, &id, "cli").await;
            store.close().await;
            let w = removed?;
            println!(
                "removed {} (trial {}, {}) at {}; delivered through outbox id {}",
                w.webhook_id,
                w.trial_id,
                w.url,
                w.removed_at.unwrap_or_default(),
                w.delivered_through
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
