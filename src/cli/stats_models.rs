//! `rrct stats rate|ancova|ttest|mh`: count, continuous and stratified binary endpoints on a
//! CSV file with one row per subject, as JSON on stdout.
//!
//! The group column's first level (or `--control`) is the reference; every other level is
//! compared with it. Rows missing a value in a used column are dropped and counted; a count
//! below 0, an exposure not above 0 or an outcome that is not 0/1 is refused by data row.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;

use super::csv_table::{self, Labels, Table};
use super::stats_output::to_json;
use crate::stats::{
    self,
    continuous::{self, Ancova, AncovaData, MeanDifference},
    mantel_haenszel::{self, MantelHaenszel, Stratum2x2},
    rates::{self, CountData, CountModel, RateFit},
    Covariate,
};

/// The CSV file, outcome and group shared by these commands.
#[derive(Args, Debug)]
pub struct GroupColumns {
    /// CSV file with a header row.
    #[arg(long)]
    csv: PathBuf,
    /// Column of the outcome.
    #[arg(long)]
    outcome: String,
    /// Column of the randomised group.
    #[arg(long)]
    group: String,
    /// The reference level of the group column (default: its first level).
    #[arg(long)]
    control: Option<String>,
    /// Confidence level in (0, 1).
    #[arg(long, default_value_t = stats::DEFAULT_CONF_LEVEL)]
    conf_level: f64,
}

/// Group levels with the reference first.
struct Groups {
    codes: Vec<usize>,
    levels: Vec<String>,
}

impl GroupColumns {
    fn read(&self, numbers: &[&str], labels: &[&str]) -> anyhow::Result<(Table, Groups)> {
        if !(self.conf_level > 0.0 && self.conf_level < 1.0) {
            bail!(
                "--conf-level {}: expected a number in (0, 1)",
                self.conf_level
            );
        }
        let mut n = vec![self.outcome.as_str()];
        n.extend_from_slice(numbers);
        let mut l = vec![self.group.as_str()];
        l.extend_from_slice(labels);
        let table = csv_table::read_columns(&self.csv, None, None, &n, &l)?;
        let groups = relevel(
            table.labels(&self.group),
            self.control.as_deref(),
            &self.group,
        )?;
        Ok((table, groups))
    }
}

fn relevel(labels: &Labels, control: Option<&str>, column: &str) -> anyhow::Result<Groups> {
    if labels.levels.len() < 2 {
        bail!(
            "column `{column}` needs at least two groups, found {}: {}",
            labels.levels.len(),
            labels.levels.join(", ")
        );
    }
    let reference = match control {
        None => 0,
        Some(c) => labels.find(c).with_context(|| {
            format!(
                "--control `{c}` is not a value of column `{column}` ({})",
                labels.levels.join(", ")
            )
        })?,
    };
    let mut order: Vec<usize> = vec![reference];
    order.extend((0..labels.levels.len()).filter(|&l| l != reference));
    let mut rank = vec![0usize; order.len()];
    for (r, &l) in order.iter().enumerate() {
        rank[l] = r;
    }
    Ok(Groups {
        codes: labels.codes.iter().map(|&c| rank[c]).collect(),
        levels: order.iter().map(|&l| labels.levels[l].clone()).collect(),
    })
}

fn indicators(groups: &Groups) -> Vec<Vec<f64>> {
    (1..groups.levels.len())
        .map(|l| {
            groups
                .codes
                .iter()
                .map(|&c| f64::from(u8::from(c == l)))
                .collect()
        })
        .collect()
}

/// `rrct stats rate`.
#[derive(Args, Debug)]
pub struct RateArgs {
    #[command(flatten)]
    columns: GroupColumns,
    /// poisson or negbin (negative binomial, theta by maximum likelihood).
    #[arg(long, default_value = "negbin")]
    model: String,
    /// Column of follow-up time; its log is the offset, so the ratios are rate ratios.
    #[arg(long)]
    exposure: Option<String>,
    /// Numeric covariate columns, comma-separated.
    #[arg(long, value_delimiter = ',')]
    covariates: Vec<String>,
}

#[derive(Serialize)]
struct RateOutput<'a> {
    n_dropped: usize,
    reference: &'a str,
    #[serde(flatten)]
    fit: &'a RateFit,
}

pub fn rate(args: RateArgs) -> anyhow::Result<String> {
    let model = CountModel::parse(&args.model)
        .with_context(|| format!("--model `{}`: expected poisson or negbin", args.model))?;
    let mut numbers: Vec<&str> = args.covariates.iter().map(String::as_str).collect();
    numbers.extend(args.exposure.as_deref());
    let (table, groups) = args.columns.read(&numbers, &[])?;
    let count = table.numbers(&args.columns.outcome);
    let at = |i: usize| {
        format!(
            "{}: data row {}",
            args.columns.csv.display(),
            table.rows.get(i).copied().unwrap_or(0)
        )
    };
    if let Some(i) = count.iter().position(|&y| y < 0.0) {
        bail!(
            "{}, column `{}`: the count {} is negative",
            at(i),
            args.columns.outcome,
            count[i]
        );
    }
    let exposure = args.exposure.as_deref().map(|e| table.numbers(e));
    if let (Some(e), Some(name)) = (exposure, args.exposure.as_deref()) {
        if let Some(i) = e.iter().position(|&v| v <= 0.0) {
            bail!(
                "{}, column `{name}`: the exposure {} is not above 0",
                at(i),
                e[i]
            );
        }
    }
    let dummies = indicators(&groups);
    let names: Vec<String> = groups.levels[1..]
        .iter()
        .map(|l| format!("{}{l}", args.columns.group))
        .collect();
    let mut columns: Vec<Covariate> = dummies
        .iter()
        .zip(&names)
        .map(|(values, name)| Covariate { name, values })
        .collect();
    for c in &args.covariates {
        columns.push(Covariate {
            name: c,
            values: table.numbers(c),
        });
    }
    let fit = rates::fit_rates(
        &CountData {
            count,
            columns,
            exposure,
        },
        model,
        args.columns.conf_level,
    )?;
    to_json(&RateOutput {
        n_dropped: table.n_dropped,
        reference: &groups.levels[0],
        fit: &fit,
    })
}

/// `rrct stats ancova`.
#[derive(Args, Debug)]
pub struct AncovaArgs {
    #[command(flatten)]
    columns: GroupColumns,
    /// Numeric baseline covariate columns, comma-separated.
    #[arg(long, value_delimiter = ',')]
    covariates: Vec<String>,
    /// Factor columns adjusted for (e.g. the randomisation strata), comma-separated.
    #[arg(long, value_delimiter = ',')]
    strata: Vec<String>,
}

#[derive(Serialize)]
struct AncovaOutput<'a> {
    n_dropped: usize,
    #[serde(flatten)]
    fit: &'a Ancova,
}

pub fn ancova(args: AncovaArgs) -> anyhow::Result<String> {
    let numbers: Vec<&str> = args.covariates.iter().map(String::as_str).collect();
    let labels: Vec<&str> = args.strata.iter().map(String::as_str).collect();
    let (table, groups) = args.columns.read(&numbers, &labels)?;
    let names: Vec<String> = groups
        .levels
        .iter()
        .map(|l| format!("{}{l}", args.columns.group))
        .collect();
    let mut fit = continuous::ancova(
        &AncovaData {
            outcome: table.numbers(&args.columns.outcome),
            group: (&groups.codes, &names),
            covariates: args
                .covariates
                .iter()
                .map(|name| Covariate {
                    name,
                    values: table.numbers(name),
                })
                .collect(),
            factors: args
                .strata
                .iter()
                .map(|s| {
                    let l = table.labels(s);
                    (s.as_str(), l.codes.as_slice(), l.levels.as_slice())
                })
                .collect(),
        },
        args.columns.conf_level,
    )?;
    for d in &mut fit.differences {
        d.group = strip(&d.group, &args.columns.group);
        d.reference = groups.levels[0].clone();
    }
    to_json(&AncovaOutput {
        n_dropped: table.n_dropped,
        fit: &fit,
    })
}

fn strip(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_string()
}

/// `rrct stats ttest`.
#[derive(Args, Debug)]
pub struct TtestArgs {
    #[command(flatten)]
    columns: GroupColumns,
}

#[derive(Serialize)]
struct TtestOutput {
    n_dropped: usize,
    n: usize,
    n_reference: usize,
    mean: f64,
    mean_reference: f64,
    #[serde(flatten)]
    difference: MeanDifference,
}

pub fn ttest(args: TtestArgs) -> anyhow::Result<String> {
    let (table, groups) = args.columns.read(&[], &[])?;
    if groups.levels.len() != 2 {
        bail!(
            "column `{}` must have exactly two groups for Welch's t-test, found {}: {}",
            args.columns.group,
            groups.levels.len(),
            groups.levels.join(", ")
        );
    }
    let y = table.numbers(&args.columns.outcome);
    let pick = |g: usize| -> Vec<f64> {
        y.iter()
            .zip(&groups.codes)
            .filter(|(_, &c)| c == g)
            .map(|(v, _)| *v)
            .collect()
    };
    let t = continuous::welch_t_test(&pick(1), &pick(0), args.columns.conf_level)?;
    let mut difference = t.difference;
    difference.group = groups.levels[1].clone();
    difference.reference = groups.levels[0].clone();
    to_json(&TtestOutput {
        n_dropped: table.n_dropped,
        n: t.n,
        n_reference: t.n_reference,
        mean: t.mean,
        mean_reference: t.mean_reference,
        difference,
    })
}

/// `rrct stats mh`.
#[derive(Args, Debug)]
pub struct MhArgs {
    #[command(flatten)]
    columns: GroupColumns,
    /// Column defining the strata (omit for a single 2x2 table).
    #[arg(long)]
    strata: Option<String>,
}

#[derive(Serialize)]
struct MhOutput<'a> {
    n_dropped: usize,
    group: &'a str,
    reference: &'a str,
    tables: Vec<MhTable>,
    #[serde(flatten)]
    analysis: &'a MantelHaenszel,
}

#[derive(Serialize)]
struct MhTable {
    stratum: Option<String>,
    #[serde(flatten)]
    counts: Stratum2x2,
}

pub fn mh(args: MhArgs) -> anyhow::Result<String> {
    let labels: Vec<&str> = args.strata.iter().map(String::as_str).collect();
    let (table, groups) = args.columns.read(&[], &labels)?;
    if groups.levels.len() != 2 {
        bail!(
            "column `{}` must have exactly two groups, found {}: {}",
            args.columns.group,
            groups.levels.len(),
            groups.levels.join(", ")
        );
    }
    let y = table.numbers(&args.columns.outcome);
    if let Some(i) = y.iter().position(|&v| v != 0.0 && v != 1.0) {
        bail!(
            "{}: data row {}, column `{}`: `{}` is not a binary outcome (0/1)",
            args.columns.csv.display(),
            table.rows.get(i).copied().unwrap_or(0),
            args.columns.outcome,
            y[i]
        );
    }
    let strata = args.strata.as_deref().map(|s| table.labels(s));
    let k = strata.map_or(1, |s| s.levels.len());
    let mut tables = vec![
        Stratum2x2 {
            a: 0,
            n1: 0,
            c: 0,
            n0: 0
        };
        k
    ];
    for (i, (&g, &v)) in groups.codes.iter().zip(y).enumerate() {
        let s = strata.map_or(0, |s| s.codes[i]);
        let t = &mut tables[s];
        let event = u64::from(v == 1.0);
        if g == 1 {
            t.n1 += 1;
            t.a += event;
        } else {
            t.n0 += 1;
            t.c += event;
        }
    }
    let analysis = mantel_haenszel::mantel_haenszel(&tables, args.columns.conf_level).map_err(
        |e| match strata {
            Some(s) => anyhow::anyhow!("{e} (strata in the order {})", s.levels.join(", ")),
            None => e.into(),
        },
    )?;
    to_json(&MhOutput {
        n_dropped: table.n_dropped,
        group: &groups.levels[1],
        reference: &groups.levels[0],
        tables: tables
            .iter()
            .enumerate()
            .map(|(i, t)| MhTable {
                stratum: strata.map(|s| s.levels[i].clone()),
                counts: *t,
            })
            .collect(),
        analysis: &analysis,
    })
}
