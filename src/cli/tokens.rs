//! `rrct token create|list|revoke`: bearer tokens, managed by whoever runs the database.

use std::process::ExitCode;

use clap::Subcommand;

use super::DatabaseArg;
use crate::service::tokens::{self, Expiry, TokenSpec};
use crate::service::{connect, COMMAND_DB_TIMEOUT};

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token and print it alone on stdout (it is stored only as a hash).
    Create {
        #[command(flatten)]
        db: DatabaseArg,
        /// admin, register, source, sponsor, statistician, dsmb or auditor.
        #[arg(long)]
        role: String,
        /// Restrict the token to one trial (which must exist).
        #[arg(long)]
        trial: Option<String>,
        /// Restrict the token to one site of that trial (needs --trial).
        #[arg(long)]
        site: Option<String>,
        /// The register feed a `source` token delivers for: a source declared under
        /// [sources.ID] in a trial's protocol (required for, and only for, role source).
        #[arg(long)]
        source: Option<String>,
        /// How long the token lasts: e.g. 90d, 12h, 30m, or never (machines' roles only).
        /// Default: 30d for people's roles, never for register and source.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List tokens (never their secrets): id, role, trial, site, created, expires, revoked.
    List {
        #[command(flatten)]
        db: DatabaseArg,
        /// Only this trial's tokens.
        #[arg(long)]
        trial: Option<String>,
    },
    /// Revoke a token by its id (as `token list` shows it and the audit log names it).
    Revoke {
        #[command(flatten)]
        db: DatabaseArg,
        /// The token's id: the first 12 hex digits of its hash.
        id: String,
    },
}

pub async fn run(command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Create {
            db,
            role,
            trial,
            site,
            source,
            expires_in,
        } => {
            let expires = match expires_in.as_deref() {
                None => Expiry::Default,
                Some(text) => Expiry::parse(text)?,
            };
            let store = connect(&db.database, COMMAND_DB_TIMEOUT).await?;
            let created = tokens::create(
                &store,
                &TokenSpec {
                    role: &role,
                    trial_id: trial.as_deref(),
                    site_code: site.as_deref(),
                    source_id: source.as_deref(),
                    expires,
                },
                "cli",
            )
            .await;
            store.close().await;
            println!("{}", created?);
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::List { db, trial } => {
            let store = connect(&db.database, COMMAND_DB_TIMEOUT).await?;
            let listed = tokens::list(&store, trial.as_deref()).await;
            store.close().await;
            let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            println!("id\trole\ttrial\tsite\tsource\tcreated\texpires\trevoked");
            for t in listed? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    t.token_id,
                    t.role,
                    dash(&t.trial_id),
                    dash(&t.site_code),
                    dash(&t.source_id),
                    t.created_at,
                    dash(&t.expires_at),
                    dash(&t.revoked_at)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke { db, id } => {
            let store = connect(&db.database, COMMAND_DB_TIMEOUT).await?;
            let revoked = tokens::revoke(&store, &id, "cli").await;
            store.close().await;
            let record = revoked?;
            println!(
                "revoked {} ({}{}) at {}; other servers stop accepting it within {} s",
                record.token_id,
                record.role,
                record
                    .trial_id
                    .as_ref()
                    .map_or_else(String::new, |t| format!(", trial {t}")),
                record.revoked_at.unwrap_or_default(),
                tokens::TOKEN_CACHE_TTL.as_secs()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
