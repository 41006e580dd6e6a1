//! `rrct pseudonymise`: the register host's tool, run where the key is kept, before a register
//! extract is delivered. It replaces every personal identity number in one CSV column by its
//! keyed pseudonym ([`crate::pseudonym`]) and keeps every other field as it is; `rrct
//! pseudonymise new-key` makes the key.
//!
//! All rows are checked before anything is written: a file with any bad row gives no output at
//! all, and every bad row is named by its line, never by its value (it may be a real person's
//! number). The key is never printed, logged or put in an error; only its public id is.
//! Ten-digit numbers' centuries are resolved against today's date (UTC), read here at the edge.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};

use crate::pseudonym::{self, PseudonymKey, NEW_KEY_BYTES};
use crate::service::Clock;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PseudonymiseArgs {
    #[command(subcommand)]
    command: Option<PseudonymiseCommand>,
    /// The key: a file holding at least 64 hex digits (made by `rrct pseudonymise new-key`).
    #[arg(long, required = true)]
    key_file: Option<PathBuf>,
    /// The header of the column holding the personal identity numbers.
    #[arg(long, required = true)]
    column: Option<String>,
    /// Write the CSV to this file (created with mode 0600; an existing one is replaced whole)
    /// instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The register extract: CSV with a header row.
    #[arg(required = true, value_name = "IN.csv")]
    file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum PseudonymiseCommand {
    /// Write a new random key to a new file readable by its owner only (mode 0600); an
    /// existing file is never overwritten.
    NewKey {
        /// The key file to create.
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(args: PseudonymiseArgs) -> anyhow::Result<ExitCode> {
    match (args.command, args.key_file, args.column, args.file) {
        (Some(PseudonymiseCommand::NewKey { out }), ..) => new_key(&out),
        (None, Some(key_file), Some(column), Some(file)) => {
            let request = Request {
                key_file: &key_file,
                column: &column,
                file: &file,
                out: args.out.as_deref(),
            };
            pseudonymise(&request)
        }
        // clap requires all three when no subcommand is given.
        _ => Err(anyhow!("give --key-file, --column and the CSV file")),
    }
}

fn new_key(out: &Path) -> anyhow::Result<ExitCode> {
    let mut bytes = [0u8; NEW_KEY_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow!("cannot draw randomness from the operating system: {e}"))?;
    let key = PseudonymKey::from_bytes(&bytes)?;
    let mut file =
        create_private(out).with_context(|| format!("cannot create {}", out.display()))?;
    if let Err(e) = writeln!(file, "{}", key.to_hex()).and_then(|()| file.sync_all()) {
        // A key file cut short is no key; leave none behind.
        let _ = std::fs::remove_file(out);
        return Err(anyhow!("cannot write {}: {e}", out.display()));
    }
    println!(
        "pseudonym key {} written to {}",
        key.id_hex(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

struct Request<'a> {
    key_file: &'a Path,
    column: &'a str,
    file: &'a Path,
    out: Option<&'a Path>,
}

#[tracing::instrument(
    skip_all,
    fields(file = %request.file.display(), column = %request.column),
    err(level = tracing::Level::DEBUG)
)]
fn pseudonymise(request: &Request) -> anyhow::Result<ExitCode> {
    let Request {
        key_file,
        column,
        file,
        out,
    } = *request;
    // A key file given as the extract would have its key printed as a header, and one given as
    // the output would be replaced by the extract.
    if same_file(file, key_file) {
        anyhow::bail!("{} is the key file, not a register extract", file.display());
    }
    if out.is_some_and(|out| same_file(out, key_file)) {
        anyhow::bail!("--out names the key file; the key would be overwritten");
    }
    let key_text = std::fs::read_to_string(key_file)
        .with_context(|| format!("cannot read the key file {}", key_file.display()))?;
    let key =
        PseudonymKey::from_hex(&key_text).map_err(|e| anyhow!("{}: {e}", key_file.display()))?;
    drop(key_text);
    let reference = Clock::system().today();

    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_path(file)
        .with_context(|| format!("cannot open {}", file.display()))?;
    let header = reader
        .byte_headers()
        .with_context(|| format!("{}: cannot read the header row", file.display()))?
        .clone();
    let names: Vec<String> = header
        .iter()
        .map(|h| {
            String::from_utf8_lossy(h)
                .trim_start_matches('\u{feff}')
                .trim()
                .to_string()
        })
        .collect();
    let col = match names
        .iter()
        .enumerate()
        .filter(|(_, name)| *name == column)
        .map(|(i, _)| i)
        .collect::<Vec<_>>()[..]
    {
        [col] => col,
        [] if names.iter().all(String::is_empty) => {
            eprintln!("{}:1: no header row", file.display());
            return Ok(ExitCode::FAILURE);
        }
        [] => {
            eprintln!(
                "{}:1: no column `{column}` in the header; its columns are: {}",
                file.display(),
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return Ok(ExitCode::FAILURE);
        }
        [..] => {
            eprintln!(
                "{}:1: the header names column `{column}` more than once",
                file.display()
            );
            return Ok(ExitCode::FAILURE);
        }
    };

    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_byte_record(&header)?;
    let mut bad = Vec::new();
    let mut rows = 0usize;
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                rows += 1;
                // The csv crate's message names the position and the field counts, no value.
                let line = e.position().map_or(0, |p| p.line());
                bad.push(format!("{}:{line}: unreadable CSV: {e}", file.display()));
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        rows += 1;
        let line = record.position().map_or(0, |p| p.line());
        let at = || format!("{}:{line}: column {column}", file.display());
        let value = record.get(col).unwrap_or(b"");
        let Ok(value) = std::str::from_utf8(value) else {
            bad.push(format!("{}: the value is not UTF-8 text", at()));
            continue;
        };
        match pseudonym::pseudonymise(&key, value, reference) {
            Ok(pseudonym) if bad.is_empty() => {
                let replaced: csv::ByteRecord = record
                    .iter()
                    .enumerate()
                    .map(|(i, field)| {
                        if i == col {
                            pseudonym.as_bytes()
                        } else {
                            field
                        }
                    })
                    .collect();
                writer.write_byte_record(&replaced)?;
            }
            // After a bad row nothing is written, so the rest are only checked.
            Ok(_) => {}
            Err(e) => bad.push(format!("{}: the value {e}", at())),
        }
    }
    if !bad.is_empty() {
        for line in &bad {
            eprintln!("{line}");
        }
        eprintln!(
            "{}: {} bad row(s) of {rows}; nothing was written",
            file.display(),
            bad.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    let csv = writer
        .into_inner()
        .map_err(|e| anyhow!("cannot write the CSV: {}", e.error()))?;
    match out {
        Some(out) => replace_private(out, &csv)?,
        None => std::io::stdout().lock().write_all(&csv)?,
    }
    tracing::debug!(rows, key = %key.id_hex(), "pseudonymised");
    eprintln!(
        "{}: {rows} row(s) pseudonymised in column {column} with key {}",
        file.display(),
        key.id_hex()
    );
    Ok(ExitCode::SUCCESS)
}

/// Whether two paths name one existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// A new file readable by its owner only; never an existing one.
fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Write `bytes` to `path` whole or not at all: into a new private file beside it, then renamed
/// over it.
fn replace_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("--out {} names no file", path.display()))?;
    let mut temporary = name.to_os_string();
    temporary.push(format!(".rrct-partial-{}", std::process::id()));
    let temporary = path.with_file_name(temporary);
    let written = create_private(&temporary)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(anyhow!("cannot write {}: {e}", path.display()));
    }
    Ok(())
}
