//! `rrct verify replay`: recompute every allocation of an exported randomisation log from the
//! revealed master seed and the protocol files, with no database (see
//! `randomise::replay` and `docs/VERIFY.md`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::randomise::replay::{self, AllocationLog, ProtocolFile};
use crate::randomise::MasterSeed;

#[derive(Subcommand, Debug)]
pub enum VerifyCommand {
    /// Replay an exported randomisation log (`rrct export allocations`) from the revealed
    /// master seed: every allocation is recomputed and compared byte for byte; the first that
    /// differs is reported. Exit 0 when all agree, 1 otherwise.
    Replay {
        /// The master seed, 64 hex digits (`rrct trial reveal-seed`).
        #[arg(long)]
        seed: String,
        /// A directory of the trial's protocol files, one per version (`*.toml`).
        #[arg(long)]
        protocols: PathBuf,
        /// The exported log.
        #[arg(long)]
        allocations: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: VerifyCommand) -> anyhow::Result<ExitCode> {
    let VerifyCommand::Replay {
        seed,
        protocols,
        allocations,
        json,
    } = command;
    let seed: [u8; 32] = hex::decode(seed.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("--seed must be 64 hex digits (the 32 bytes of the master seed)")?;
    let seed = MasterSeed::from_bytes(seed);
    let text = std::fs::read_to_string(&allocations)
        .with_context(|| format!("cannot read {}", allocations.display()))?;
    let log: AllocationLog = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an allocation log", allocations.display()))?;
    let files = protocol_files(&protocols)?;
    let report = replay::replay(&log, &seed, &files);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if !report.seed_matches_commitment {
            println!(
                "seed: SHA-256 of the seed is not the trial's commitment {}",
                log.seed_commitment
            );
        }
        for finding in &report.protocol_findings {
            println!("protocol: {finding}");
        }
        match &report.first_difference {
            Some(d) => println!("{d}"),
            None => println!(
                "replayed {} of {} allocations of trial `{}` identically ({} randomised-in-error marks applied)",
                report.agreed, report.allocations, report.trial_id, report.marks
            ),
        }
        if report.ok() {
            println!("ok");
        }
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Every `*.toml` in `dir`, sorted by name.
fn protocol_files(dir: &Path) -> anyhow::Result<Vec<ProtocolFile>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let source = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok(ProtocolFile {
                origin: path.display().to_string(),
                source,
            })
        })
        .collect()
}
