//! `rrct stats cif|gray|finegray`: competing risks on a CSV file, as JSON on stdout.
//!
//! The status column holds one value for censored rows (`--censor`, default `0`) and one value
//! per cause of the event (text or numbers); causes are ordered as group levels are (see
//! [`super::stats`]). Rows missing a value in a used column are dropped and counted.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;

use super::csv_table::{self, Labels, Table};
use super::stats_output::{parse_numbers, to_json};
use crate::stats::{
    self,
    competing::{self, IncidenceAt},
    finegray::{self, FineGrayCoefficient},
    km::{ConfType, KmOptions},
    ChiSquareTest, Covariate,
};

/// The CSV file and its competing-risk columns.
#[derive(Args, Debug)]
pub struct CompetingColumns {
    /// CSV file with a header row.
    #[arg(long)]
    csv: PathBuf,
    /// Column of follow-up times (numbers >= 0).
    #[arg(long)]
    time: String,
    /// Column of status: the censoring value or the cause of the event.
    #[arg(long)]
    status: String,
    /// The status value of censored rows.
    #[arg(long, default_value = "0")]
    censor: String,
}

/// A status column split into censored (0) and causes `1..=K`.
pub(crate) struct Status {
    pub codes: Vec<usize>,
    pub causes: Vec<String>,
}

impl CompetingColumns {
    fn read(&self, numbers: &[&str], labels: &[&str]) -> anyhow::Result<(Table, Status)> {
        let mut all = vec![self.status.as_str()];
        all.extend_from_slice(labels);
        let table = csv_table::read_columns(&self.csv, Some(&self.time), None, numbers, &all)?;
        let status = split_status(table.labels(&self.status), &self.censor, &self.status)?;
        Ok((table, status))
    }
}

/// Codes 0 for `censor`, 1.. for the other levels in order.
pub(crate) fn split_status(labels: &Labels, censor: &str, column: &str) -> anyhow::Result<Status> {
    let censor_level = labels.find(censor);
    let mut map = vec![0usize; labels.levels.len()];
    let mut causes = Vec::new();
    for (i, level) in labels.levels.iter().enumerate() {
        if Some(i) != censor_level {
            causes.push(level.clone());
            map[i] = causes.len();
        }
    }
    if causes.is_empty() {
        bail!("column `{column}` has no events: every row has the censoring value `{censor}`");
    }
    Ok(Status {
        codes: labels.codes.iter().map(|&c| map[c]).collect(),
        causes,
    })
}

fn cause_code(status: &Status, cause: &str, column: &str) -> anyhow::Result<usize> {
    status
        .causes
        .iter()
        .position(|c| c == cause)
        .or_else(|| {
            let v = cause.trim().parse::<f64>().ok()?;
            status
                .causes
                .iter()
                .position(|c| c.parse::<f64>().ok() == Some(v))
        })
        .map(|i| i + 1)
        .with_context(|| {
            format!(
                "--cause `{cause}` is not a cause in column `{column}` ({})",
                status.causes.join(", ")
            )
        })
}

/// `rrct stats cif`.
#[derive(Args, Debug)]
pub struct CifArgs {
    #[command(flatten)]
    columns: CompetingColumns,
    /// Column defining the groups (one set of curves per level).
    #[arg(long)]
    group: Option<String>,
    /// Confidence-interval transform: log (R's default), log-log, plain, logit or arcsin.
    #[arg(long, default_value = "log")]
    conf_type: String,
    /// Confidence level in (0, 1).
    #[arg(long, default_value_t = stats::DEFAULT_CONF_LEVEL)]
    conf_level: f64,
    /// Times at which to report the cumulative incidence, comma-separated.
    #[arg(long, value_delimiter = ',')]
    at: Vec<String>,
}

#[derive(Serialize)]
struct CifOutput {
    n_dropped: usize,
    conf_type: ConfType,
    conf_level: f64,
    groups: Vec<CifGroup>,
}

#[derive(Serialize)]
struct CifGroup {
    group: Option<String>,
    n: usize,
    causes: Vec<CifCause>,
}

#[derive(Serialize)]
struct CifCause {
    cause: String,
    events: usize,
    at: Vec<IncidenceAt>,
}

pub fn cif(args: CifArgs) -> anyhow::Result<String> {
    let conf_type = ConfType::parse(&args.conf_type).with_context(|| {
        format!(
            "--conf-type `{}`: expected log, log-log, plain, logit or arcsin",
            args.conf_type
        )
    })?;
    let options = KmOptions {
        conf_type,
        conf_level: args.conf_level,
    };
    if !(args.conf_level > 0.0 && args.conf_level < 1.0) {
        bail!(
            "--conf-level {}: expected a number in (0, 1)",
            args.conf_level
        );
    }
    let at = parse_numbers("--at", &args.at)?;
    let labels: Vec<&str> = args.group.iter().map(String::as_str).collect();
    let (table, status) = args.columns.read(&[], &labels)?;
    let group = args.group.as_deref().map(|g| table.labels(g));
    let curves = competing::cumulative_incidence(
        &table.time,
        &status.codes,
        status.causes.len(),
        group.map(|g| (g.codes.as_slice(), g.levels.len())),
    )?;
    let groups = curves
        .iter()
        .enumerate()
        .map(|(i, c)| CifGroup {
            group: group.map(|g| g.levels[i].clone()),
            n: c.n,
            causes: status
                .causes
                .iter()
                .enumerate()
                .map(|(k, name)| CifCause {
                    cause: name.clone(),
                    events: c.events[k],
                    at: c.at(k + 1, &at, &options),
                })
                .collect(),
        })
        .collect();
    to_json(&CifOutput {
        n_dropped: table.n_dropped,
        conf_type,
        conf_level: args.conf_level,
        groups,
    })
}

/// `rrct stats gray`.
#[derive(Args, Debug)]
pub struct GrayArgs {
    #[command(flatten)]
    columns: CompetingColumns,
    /// Column defining the groups compared.
    #[arg(long)]
    group: String,
    /// Column defining strata.
    #[arg(long)]
    strata: Option<String>,
    /// Power of the weight function (cuminc's `rho`; 0 is the log-rank-like default).
    #[arg(long, default_value_t = 0.0)]
    rho: f64,
}

#[derive(Serialize)]
struct GrayOutput {
    n_dropped: usize,
    tests: Vec<GrayRow>,
}

#[derive(Serialize)]
struct GrayRow {
    cause: String,
    #[serde(flatten)]
    test: ChiSquareTest,
}

pub fn gray(args: GrayArgs) -> anyhow::Result<String> {
    let mut labels = vec![args.group.as_str()];
    labels.extend(args.strata.as_deref());
    let (table, status) = args.columns.read(&[], &labels)?;
    let group = table.labels(&args.group);
    let strata = args.strata.as_deref().map(|s| table.labels(s));
    let tests = competing::gray_test(
        &table.time,
        &status.codes,
        status.causes.len(),
        (&group.codes, group.levels.len()),
        strata.map(|s| (s.codes.as_slice(), s.levels.len())),
        args.rho,
    )?;
    to_json(&GrayOutput {
        n_dropped: table.n_dropped,
        tests: tests
            .into_iter()
            .map(|t| GrayRow {
                cause: status.causes[t.cause - 1].clone(),
                test: t.test,
            })
            .collect(),
    })
}

/// `rrct stats finegray`.
#[derive(Args, Debug)]
pub struct FinegrayArgs {
    #[command(flatten)]
    columns: CompetingColumns,
    /// The status value of the event of interest.
    #[arg(long)]
    cause: String,
    /// Numeric covariate columns, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    covariates: Vec<String>,
}

#[derive(Serialize)]
struct FinegrayOutput<'a> {
    n: usize,
    n_dropped: usize,
    cause: &'a str,
    events: usize,
    competing_events: usize,
    iterations: usize,
    converged: bool,
    coefficients: &'a [FineGrayCoefficient],
    loglik_null: f64,
    loglik: f64,
    lr_test: ChiSquareTest,
}

pub fn finegray(args: FinegrayArgs) -> anyhow::Result<String> {
    let numbers: Vec<&str> = args.covariates.iter().map(String::as_str).collect();
    let (table, status) = args.columns.read(&numbers, &[])?;
    let cause = cause_code(&status, &args.cause, &args.columns.status)?;
    let fit = finegray::fine_gray(
        &finegray::FineGrayData {
            time: &table.time,
            status: &status.codes,
            causes: status.causes.len(),
            cause,
            covariates: args
                .covariates
                .iter()
                .map(|name| Covariate {
                    name,
                    values: table.numbers(name),
                })
                .collect(),
        },
        stats::DEFAULT_CONF_LEVEL,
    )?;
    to_json(&FinegrayOutput {
        n: fit.n,
        n_dropped: table.n_dropped,
        cause: &status.causes[cause - 1],
        events: fit.events,
        competing_events: fit.competing_events,
        iterations: fit.iterations,
        converged: fit.converged,
        coefficients: &fit.coefficients,
        loglik_null: fit.loglik_null,
        loglik: fit.loglik,
        lr_test: fit.lr_test,
    })
}

/// The event indicator of `--cause` for a cause-specific Cox model.
pub(crate) fn cause_events(
    labels: &Labels,
    cause: &str,
    column: &str,
) -> anyhow::Result<Vec<bool>> {
    let code = labels.find(cause).with_context(|| {
        format!(
            "--cause `{cause}` is not a value of column `{column}` ({})",
            labels.levels.join(", ")
        )
    })?;
    Ok(labels.codes.iter().map(|&c| c == code).collect())
}
