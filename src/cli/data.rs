//! `rrct import events` and `rrct export adtte|adsl`: moving register data in and analysis
//! data sets out.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use super::DatabaseArg;
use crate::analysis::datasets;
use crate::endpoints::{parse_event, DataCutoff, EventFields};
use crate::service::events::{self, IngestError, RowError};
use crate::service::trial_view::{Ask, PreparedTrial, Reader, TrialView, TrialViews, ViewRequest};
use crate::service::{connect, Clock, COMMAND_DB_TIMEOUT};

#[derive(Subcommand, Debug)]
pub enum ImportCommand {
    /// Import follow-up events from CSV (header: event_id,subject,type,date[,code,value,source]);
    /// all rows or none; idempotent by event_id.
    Events {
        #[command(flatten)]
        db: DatabaseArg,
        /// Import as this register's delivery (a source a trial's protocol declares): only its
        /// event types, only for subjects of the trials declaring it, each event stored under
        /// it; the delivery counts for the source's timeliness.
        #[arg(long)]
        source: Option<String>,
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// One row per randomised subject for one endpoint, as CSV on stdout.
    Adtte {
        #[command(flatten)]
        at: TrialAsOf,
        #[arg(long)]
        endpoint: String,
    },
    /// One row per randomised subject with stratification factors and data-error flags.
    Adsl {
        #[command(flatten)]
        at: TrialAsOf,
    },
}

/// Which trial, in which database, as of which data cut-off.
#[derive(clap::Args, Debug)]
pub struct TrialAsOf {
    #[command(flatten)]
    db: DatabaseArg,
    #[arg(long)]
    trial: String,
    /// Data cut-off YYYY-MM-DD (default: today, UTC).
    #[arg(long, value_parser = parse_cutoff)]
    cutoff: Option<DataCutoff>,
}

impl TrialAsOf {
    /// The trial prepared as of the cut-off, read by the operator of the database (who sees
    /// everything it holds, unblinded).
    async fn prepared(&self) -> anyhow::Result<Arc<PreparedTrial>> {
        let store = connect(&self.db.database, COMMAND_DB_TIMEOUT).await?;
        let opened = TrialViews::default()
            .open(
                &store,
                ViewRequest {
                    trial: &self.trial,
                    cutoff: {
                        let today = Clock::system().today();
                        self.cutoff.unwrap_or(DataCutoff(today)).not_after(today)
                    },
                    reader: Reader::Operator,
                    ask: Ask::Unblinded,
                },
            )
            .await;
        store.close().await;
        match opened?.view {
            TrialView::Unblinded(prepared) => Ok(prepared),
            TrialView::Blinded(_) => anyhow::bail!("the operator was given a blinded view"),
        }
    }
}

/// Parse `--cutoff`.
pub fn parse_cutoff(s: &str) -> Result<DataCutoff, String> {
    DataCutoff::parse(s).map_err(|e| e.to_string())
}

pub async fn import(command: ImportCommand) -> anyhow::Result<ExitCode> {
    let ImportCommand::Events { db, source, file } = command;
    let received_at = Clock::system().now();
    let started = std::time::Instant::now();
    let read = read_events_csv(&file, received_at.date())?;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "import: file read and checked"
    );
    let (events, lines) = match read {
        Ok(parsed) => parsed,
        Err(errors) => {
            report_rows(&file, &errors, "nothing was imported");
            return Ok(ExitCode::FAILURE);
        }
    };
    let store = connect(&db.database, COMMAND_DB_TIMEOUT).await?;
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(events.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // The operator imports for any subject, or as one register.
    let delivery = events::Delivery {
        actor: "cli",
        scope: match source {
            Some(source) => events::EventScope::Source {
                source,
                trial: None,
            },
            None => events::EventScope::AnySubject,
        },
        received_at,
    };
    let outcome = events::ingest(&store, &events, &lines, &delivery, |done| {
        bar.set_position(done as u64)
    })
    .await;
    bar.finish_and_clear();
    store.close().await;
    match outcome {
        Ok(report) => {
            println!(
                "{}: {} events read, {} stored, {} already present",
                file.display(),
                report.received,
                report.stored,
                report.already_present
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(IngestError::Conflict(errors)) | Err(IngestError::Invalid(errors)) => {
            report_rows(&file, &errors, "nothing was imported");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

/// Print row errors as `FILE:LINE: field: message`, at most 50, then how many more.
fn report_rows(file: &Path, errors: &[RowError], tail: &str) {
    const SHOWN: usize = 50;
    for e in errors.iter().take(SHOWN) {
        match &e.field {
            Some(field) => eprintln!("{}:{}: {field}: {}", file.display(), e.row, e.message),
            None => eprintln!("{}:{}: {}", file.display(), e.row, e.message),
        }
    }
    if errors.len() > SHOWN {
        eprintln!("... and {} more", errors.len() - SHOWN);
    }
    eprintln!("{} error(s); {tail}", errors.len());
}

type ParsedCsv = (Vec<crate::endpoints::Event>, Vec<usize>);

/// Read and validate every row; errors carry the file line.
/// CSV records parsed together on the available cores.
const PARSE_CHUNK: usize = 1 << 15;

fn read_events_csv(
    path: &Path,
    received_on: chrono::NaiveDate,
) -> anyhow::Result<Result<ParsedCsv, Vec<RowError>>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(std::io::BufReader::with_capacity(1 << 20, file));
    let header = reader
        .headers()
        .with_context(|| format!("cannot read the header of {}", path.display()))?
        .clone();
    let column = |name: &str| header.iter().position(|h| h.trim() == name);
    let mut errors = Vec::new();
    let known = [
        "event_id", "subject", "type", "date", "code", "value", "source",
    ];
    for (i, h) in header.iter().enumerate() {
        if !known.contains(&h.trim()) {
            errors.push(RowError {
                row: 1,
                event_id: None,
                field: Some(h.to_string()),
                message: format!(
                    "unknown column `{h}` (column {}): expected {}",
                    i + 1,
                    known.join(", ")
                ),
            });
        }
    }
    for required in ["event_id", "subject", "type", "date"] {
        if column(required).is_none() {
            errors.push(RowError {
                row: 1,
                event_id: None,
                field: Some(required.into()),
                message: format!("the header has no `{required}` column"),
            });
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let idx: Vec<Option<usize>> = known.iter().map(|k| column(k)).collect();
    let mut events = Vec::new();
    let mut lines = Vec::new();
    // Records are read in order and parsed a chunk at a time on the available cores; results
    // and errors keep the file's order.
    let mut chunk: Vec<csv::StringRecord> = Vec::with_capacity(PARSE_CHUNK);
    let parse_chunk = |chunk: &mut Vec<csv::StringRecord>,
                       events: &mut Vec<crate::endpoints::Event>,
                       lines: &mut Vec<usize>,
                       errors: &mut Vec<RowError>| {
        use rayon::prelude::*;
        let parsed: Vec<(usize, Result<crate::endpoints::Event, Vec<RowError>>)> = chunk
            .par_iter()
            .with_min_len(1024)
            .map(|record| {
                let line = record.position().map_or(0, |p| p.line() as usize);
                let get = |k: usize| idx[k].and_then(|i| record.get(i));
                let fields = EventFields {
                    event_id: get(0),
                    subject: get(1),
                    event_type: get(2),
                    date: get(3),
                    code: get(4),
                    value: get(5),
                    source: get(6),
                };
                let parsed = parse_event(&fields, received_on).map_err(|errs| {
                    errs.into_iter()
                        .map(|e| RowError {
                            row: line,
                            event_id: get(0).map(str::to_string),
                            field: Some(e.field),
                            message: e.message,
                        })
                        .collect()
                });
                (line, parsed)
            })
            .collect();
        chunk.clear();
        for (line, parsed) in parsed {
            match parsed {
                Ok(e) => {
                    events.push(e);
                    lines.push(line);
                }
                Err(errs) => errors.extend(errs),
            }
        }
    };
    loop {
        let mut record = csv::StringRecord::new();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                chunk.push(record);
                if chunk.len() == PARSE_CHUNK {
                    parse_chunk(&mut chunk, &mut events, &mut lines, &mut errors);
                }
            }
            Err(e) => {
                parse_chunk(&mut chunk, &mut events, &mut lines, &mut errors);
                let line = e.position().map_or(0, |p| p.line() as usize);
                errors.push(RowError {
                    row: line,
                    event_id: None,
                    field: None,
                    message: format!("unreadable CSV: {e}"),
                });
                if errors.len() > 10_000 {
                    break;
                }
            }
        }
    }
    parse_chunk(&mut chunk, &mut events, &mut lines, &mut errors);
    Ok(if errors.is_empty() {
        Ok((events, lines))
    } else {
        Err(errors)
    })
}

pub async fn export(command: ExportCommand) -> anyhow::Result<ExitCode> {
    let (ExportCommand::Adtte { at, .. } | ExportCommand::Adsl { at }) = &command;
    let prepared = at.prepared().await?;
    let (data, cutoff) = (&prepared.data, prepared.cutoff);
    let csv = match &command {
        ExportCommand::Adtte { endpoint, .. } => datasets::adtte(data, endpoint, cutoff)?,
        ExportCommand::Adsl { .. } => datasets::adsl(data, cutoff)?,
    };
    std::io::stdout().lock().write_all(&csv)?;
    Ok(ExitCode::SUCCESS)
}

/// Output formats of `rrct analyse`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Html,
}

#[derive(clap::Args, Debug)]
pub struct AnalyseArgs {
    #[command(flatten)]
    at: TrialAsOf,
    #[arg(long, value_enum, default_value = "json")]
    format: ReportFormat,
    /// Write to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `rrct analyse`: the unblinded analysis (whoever can open the database sees everything), as
/// JSON or as the DSMB's closed report: one self-contained HTML file.
pub async fn analyse(args: AnalyseArgs) -> anyhow::Result<ExitCode> {
    let prepared = args.at.prepared().await?;
    let body = match args.format {
        ReportFormat::Json => {
            let mut json = serde_json::to_vec_pretty(&prepared.analysis)?;
            json.push(b'\n');
            json
        }
        ReportFormat::Html => crate::dashboard::closed_report(&prepared)?.into_bytes(),
    };
    match &args.out {
        Some(path) => std::fs::write(path, &body)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(&body)?,
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Debug)]
pub struct FeasibilityArgs {
    /// The protocol file to assess.
    #[arg(long)]
    protocol: PathBuf,
    /// Register extract of past index registrations: columns `site`, `date` (YYYY-MM-DD) and
    /// the protocol's enrolment fields by name.
    #[arg(long)]
    registrations: PathBuf,
    /// Share of eligible patients expected to be randomised (TASTE reached about 0.6).
    #[arg(long, default_value_t = 0.6)]
    inclusion_rate: f64,
    /// Count rows with unusable values instead of stopping at them.
    #[arg(long)]
    skip_invalid: bool,
}

/// `rrct feasibility`: eligible registrations per site and month, and time to target.
pub async fn feasibility(args: FeasibilityArgs) -> anyhow::Result<ExitCode> {
    use crate::service::feasibility::{self, Registration};
    if !(args.inclusion_rate > 0.0 && args.inclusion_rate <= 1.0) {
        anyhow::bail!(
            "--inclusion-rate must be in (0, 1], got {}",
            args.inclusion_rate
        );
    }
    let (protocol, _) = crate::service::trials::read_protocol(&args.protocol)?;
    let path = &args.registrations;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = csv::Reader::from_reader(std::io::BufReader::new(file));
    let header = reader.headers()?.clone();
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let (Some(site_col), Some(date_col)) = (col("site"), col("date")) else {
        eprintln!(
            "{}:1: the header needs `site` and `date` columns",
            path.display()
        );
        return Ok(ExitCode::FAILURE);
    };
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                bad.push(format!("{}:{line}: unreadable CSV: {e}", path.display()));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        let date_text = record.get(date_col).unwrap_or("").trim();
        let Some(date) = crate::endpoints::parse_event_date(date_text) else {
            bad.push(format!(
                "{}:{line}:{}: date: `{date_text}` is not a date YYYY-MM-DD",
                path.display(),
                date_col + 1
            ));
            continue;
        };
        rows.push(Registration {
            line,
            site: record.get(site_col).unwrap_or("").trim().to_string(),
            date,
            fields: header
                .iter()
                .zip(record.iter())
                .enumerate()
                .filter(|(i, _)| *i != site_col && *i != date_col)
                .map(|(_, (h, v))| (h.trim().to_string(), v.to_string()))
                .collect(),
        });
    }
    let column_of = |field: &str| {
        header
            .iter()
            .position(|h| h.trim() == field.trim_start_matches("fields."))
            .map_or_else(String::new, |i| format!("{}:", i + 1))
    };
    let result = feasibility::assess(&protocol, &rows, args.inclusion_rate, args.skip_invalid);
    match result {
        Ok(report) if bad.is_empty() || args.skip_invalid => {
            let mut json = serde_json::to_value(&report)?;
            json["unreadable_rows"] = serde_json::json!(bad.len());
            println!("{}", serde_json::to_string_pretty(&json)?);
            Ok(ExitCode::SUCCESS)
        }
        result => {
            for line in &bad {
                eprintln!("{line}");
            }
            for e in result.err().unwrap_or_default() {
                eprintln!(
                    "{}:{}:{} {}: {}",
                    path.display(),
                    e.line,
                    column_of(&e.field),
                    e.field,
                    e.message
                );
            }
            eprintln!("rows with unusable values; fix them or pass --skip-invalid to count them");
            Ok(ExitCode::FAILURE)
        }
    }
}
