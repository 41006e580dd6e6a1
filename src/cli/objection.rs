//! `rrct objection add|remove|list`: a trial's objection (opt-out) list, managed by the
//! operator on the database. A subject on it is never randomised: the enrolment refuses it
//! (`objected`) and records the screening. Subjects are read in the canonical id form the
//! enrolment uses, so two spellings of one pseudonym are one entry.

use std::process::ExitCode;

use clap::Subcommand;

use super::DatabaseArg;
use crate::service::participation::{self, ParticipationError, Recording};
use crate::service::{connect, Clock};

#[derive(Subcommand, Debug)]
pub enum ObjectionCommand {
    /// Put a subject on the trial's objection list (prints the change as JSON).
    Add {
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(long)]
        trial: String,
        /// The subject's pseudonym, as the register sends it in enrolments.
        subject: String,
    },
    /// Take a subject off the list (prints the change as JSON).
    Remove {
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(long)]
        trial: String,
        subject: String,
    },
    /// The list as JSON.
    List {
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(long)]
        trial: String,
    },
}

pub async fn run(command: ObjectionCommand) -> anyhow::Result<ExitCode> {
    let (db, trial, change) = match &command {
        ObjectionCommand::Add { db, trial, subject } => (db, trial, Some((subject, true))),
        ObjectionCommand::Remove { db, trial, subject } => (db, trial, Some((subject, false))),
        ObjectionCommand::List { db, trial } => (db, trial, None),
    };
    let store = connect(&db.database, crate::service::COMMAND_DB_TIMEOUT).await?;
    let outcome: Result<serde_json::Value, ParticipationError> = match change {
        Some((subject, add)) => {
            let recording = Recording {
                actor: "cli",
                at: Clock::system().now(),
            };
            participation::change_objection(&store, trial, subject, add, &recording)
                .await
                .map(|c| serde_json::json!(c))
        }
        None => participation::objections(&store, trial)
            .await
            .map(|list| serde_json::json!({ "trial_id": trial, "objections": list })),
    };
    store.close().await;
    match outcome {
        Ok(json) => {
            println!("{}", serde_json::to_string_pretty(&json)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(ParticipationError::Store(e)) => Err(e.into()),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
