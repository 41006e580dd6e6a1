//! `rrct simulate SCENARIO`: a design's operating characteristics from simulated trials.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::data::ReportFormat;
use crate::sim;

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// The scenario file (TOML; see simulations/).
    scenario: PathBuf,
    /// Simulated trials.
    #[arg(long, default_value_t = 1000)]
    replicates: u64,
    /// Seed of the whole simulation: the same seed gives the same report.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads (default: one per core). The report does not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Write to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "json")]
    format: ReportFormat,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let scenario = match sim::read_scenario(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.replicates == 0 {
        anyhow::bail!("--replicates must be at least 1");
    }
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(args.replicates)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let options = sim::Options {
        replicates: args.replicates,
        seed: args.seed,
        threads: args.threads.unwrap_or(0),
    };
    let name = args.scenario.display().to_string();
    let report = sim::simulate(&scenario, &name, options, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let body = match args.format {
        ReportFormat::Json => {
            let mut json = serde_json::to_vec_pretty(&report)?;
            json.push(b'\n');
            json
        }
        ReportFormat::Html => crate::dashboard::simulation::report(&report)?.into_bytes(),
    };
    match &args.out {
        Some(path) => std::fs::write(path, &body)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(&body)?,
    }
    Ok(ExitCode::SUCCESS)
}
