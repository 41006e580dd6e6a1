//! `rrct stats ...`: the statistics of [`crate::stats`] on a CSV file, as JSON on stdout.
//!
//! This is the interface edge: it reads the CSV (header row required; numeric columns for
//! times, events and covariates; group, strata, treatment and subgroup columns may be text),
//! drops rows with a missing value (`""`, `NA` or `NaN`) in any column the command uses and
//! counts them as `n_dropped`, and refuses a value that should be a number but is not, naming
//! the data row (1-based, header excluded), the file line and the column. Nothing here
//! computes a statistic.
//!
//! Group levels are ordered numerically when every value of the column is a number and by
//! bytes otherwise (R's factor order in the C locale); the first level is the reference.
//! Event columns follow R's `Surv`: 0/1, TRUE/FALSE, or 1/2 (2 = event) when the largest
//! value is 2.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::csv_table::{self, Table};
use super::stats_output::{parse_numbers, to_json};

use crate::stats::{
    self,
    cox::{CoxCoefficient, CoxFit},
    km::{ConfType, KmOptions, SurvivalAt},
    subgroups::{SubgroupData, TreatmentEffect},
    ChiSquareTest, Covariate, CoxData, CoxOptions, Ties,
};

/// The statistics commands.
#[derive(Subcommand, Debug)]
pub enum StatsCommand {
    /// Kaplan–Meier per group: median with CI and survival at chosen times.
    Km(KmArgs),
    /// Log-rank test of two or more groups, optionally stratified.
    Logrank(LogrankArgs),
    /// Cox proportional hazards regression.
    Cox(CoxArgs),
    /// A binary endpoint in two arms: RR, RD, OR, chi-square and Fisher's exact test.
    Binary(BinaryArgs),
    /// Restricted mean survival time at tau per group, and differences from the first group.
    Rmst(RmstArgs),
    /// Treatment hazard ratio within each level of a factor, and the interaction test.
    Subgroups(SubgroupArgs),
    /// Competing risks: Aalen–Johansen cumulative incidence of each cause per group.
    Cif(super::stats_competing::CifArgs),
    /// Competing risks: Gray's test of equal cumulative incidence across groups.
    Gray(super::stats_competing::GrayArgs),
    /// Competing risks: Fine–Gray subdistribution hazards regression.
    Finegray(super::stats_competing::FinegrayArgs),
    /// Counts: rate ratios from Poisson or negative binomial regression.
    Rate(super::stats_models::RateArgs),
    /// Continuous: difference in means by ANCOVA (lm) on covariates and strata.
    Ancova(super::stats_models::AncovaArgs),
    /// Continuous: Welch's two-sample t-test.
    Ttest(super::stats_models::TtestArgs),
    /// Binary across strata: Mantel–Haenszel OR, RR, RD and the exact conditional OR.
    Mh(super::stats_models::MhArgs),
}

/// The CSV file and its survival columns.
#[derive(Args, Debug)]
pub struct SurvivalColumns {
    /// CSV file with a header row.
    #[arg(long)]
    csv: PathBuf,
    /// Column of follow-up times (numbers >= 0).
    #[arg(long)]
    time: String,
    /// Column of event indicators: 0/1, TRUE/FALSE, or 1/2 with 2 = event.
    #[arg(long)]
    event: String,
}

impl SurvivalColumns {
    /// The complete rows of these columns and of the numeric and label columns named.
    fn read(&self, numbers: &[&str], labels: &[&str]) -> anyhow::Result<Table> {
        csv_table::read(&self.csv, &self.time, &self.event, numbers, labels)
    }
}

/// `rrct stats km`.
#[derive(Args, Debug)]
pub struct KmArgs {
    #[command(flatten)]
    columns: SurvivalColumns,
    /// Column defining the groups (one curve per level).
    #[arg(long)]
    group: Option<String>,
    /// Confidence-interval transform: log (R's default), log-log, plain, logit or arcsin.
    #[arg(long, default_value = "log")]
    conf_type: String,
    /// Confidence level in (0, 1).
    #[arg(long, default_value_t = stats::DEFAULT_CONF_LEVEL)]
    conf_level: f64,
    /// Times at which to report survival, comma-separated.
    #[arg(long, value_delimiter = ',')]
    at: Vec<String>,
}

/// `rrct stats logrank`.
#[derive(Args, Debug)]
pub struct LogrankArgs {
    #[command(flatten)]
    columns: SurvivalColumns,
    /// Column defining the groups.
    #[arg(long)]
    group: String,
    /// Column defining the strata.
    #[arg(long)]
    strata: Option<String>,
}

/// `rrct stats cox`.
#[derive(Args, Debug)]
pub struct CoxArgs {
    #[command(flatten)]
    columns: SurvivalColumns,
    /// Numeric covariate columns, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    covariates: Vec<String>,
    /// Column defining the strata (separate baseline hazards).
    #[arg(long)]
    strata: Option<String>,
    /// Tie handling: efron (R's default) or breslow.
    #[arg(long, default_value = "efron")]
    ties: String,
    /// Cause-specific model: the event column holds a status and only this value is an
    /// event (other causes and censoring are censored).
    #[arg(long)]
    cause: Option<String>,
    /// Counting-process data: column of interval start times (each row is at risk on
    /// (start, time]), as for recurrent events.
    #[arg(long)]
    start: Option<String>,
    /// Column of cluster ids (the subject for recurrent events, the cluster in a
    /// cluster-randomised trial): robust (sandwich) variance.
    #[arg(long)]
    cluster: Option<String>,
}

/// `rrct stats binary`.
#[derive(Args, Debug)]
pub struct BinaryArgs {
    /// Events in the first and second arm: A,B.
    #[arg(long)]
    events: String,
    /// Size of the first and second arm: NA,NB.
    #[arg(long)]
    n: String,
}

/// `rrct stats rmst`.
#[derive(Args, Debug)]
pub struct RmstArgs {
    #[command(flatten)]
    columns: SurvivalColumns,
    /// Column defining the groups (the first level is the reference).
    #[arg(long)]
    group: String,
    /// Horizon tau.
    #[arg(long)]
    tau: f64,
}

/// `rrct stats subgroups`.
#[derive(Args, Debug)]
pub struct SubgroupArgs {
    #[command(flatten)]
    columns: SurvivalColumns,
    /// Column of the randomised arm (exactly two levels).
    #[arg(long)]
    treatment: String,
    /// The control level of the treatment column (default: its first level).
    #[arg(long)]
    control: Option<String>,
    /// Column defining the subgroups.
    #[arg(long)]
    by: String,
    /// Column defining the strata of every model.
    #[arg(long)]
    strata: Option<String>,
    /// Tie handling: efron (R's default) or breslow.
    #[arg(long, default_value = "efron")]
    ties: String,
}

/// Runs one statistics command, printing its JSON on stdout.
pub fn run(command: StatsCommand) -> anyhow::Result<ExitCode> {
    let json = match command {
        StatsCommand::Km(args) => km(args)?,
        StatsCommand::Logrank(args) => logrank(args)?,
        StatsCommand::Cox(args) => cox(args)?,
        StatsCommand::Binary(args) => binary(args)?,
        StatsCommand::Rmst(args) => rmst(args)?,
        StatsCommand::Subgroups(args) => subgroups(args)?,
        StatsCommand::Cif(args) => super::stats_competing::cif(args)?,
        StatsCommand::Gray(args) => super::stats_competing::gray(args)?,
        StatsCommand::Finegray(args) => super::stats_competing::finegray(args)?,
        StatsCommand::Rate(args) => super::stats_models::rate(args)?,
        StatsCommand::Ancova(args) => super::stats_models::ancova(args)?,
        StatsCommand::Ttest(args) => super::stats_models::ttest(args)?,
        StatsCommand::Mh(args) => super::stats_models::mh(args)?,
    };
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------
// Commands.

#[derive(Serialize)]
struct KmOutput {
    n_dropped: usize,
    conf_type: ConfType,
    conf_level: f64,
    groups: Vec<KmGroup>,
}

#[derive(Serialize)]
struct KmGroup {
    group: Option<String>,
    n: usize,
    events: usize,
    median: Option<f64>,
    median_lower: Option<f64>,
    median_upper: Option<f64>,
    at: Vec<SurvivalAt>,
}

fn km(args: KmArgs) -> anyhow::Result<String> {
    let conf_type = ConfType::parse(&args.conf_type).with_context(|| {
        format!(
            "--conf-type `{}`: expected log, log-log, plain, logit or arcsin",
            args.conf_type
        )
    })?;
    let at = parse_numbers("--at", &args.at)?;
    let table = args.columns.read(
        &[],
        &args.group.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let options = KmOptions {
        conf_type,
        conf_level: args.conf_level,
    };
    let group = args.group.as_deref().map(|g| table.labels(g));
    let curves = stats::kaplan_meier(
        &table.time,
        &table.event,
        group.map(|g| (g.codes.as_slice(), g.levels.len())),
        &options,
    )?;
    let groups = curves
        .iter()
        .enumerate()
        .map(|(i, curve)| {
            let median = curve.median();
            KmGroup {
                group: group.map(|g| g.levels[i].clone()),
                n: curve.n,
                events: curve.events,
                median: median.median,
                median_lower: median.lower,
                median_upper: median.upper,
                at: curve.survival_at(&at),
            }
        })
        .collect();
    to_json(&KmOutput {
        n_dropped: table.n_dropped,
        conf_type,
        conf_level: options.conf_level,
        groups,
    })
}

#[derive(Serialize)]
struct LogrankOutput {
    n_dropped: usize,
    chisq: f64,
    df: usize,
    p: f64,
    groups: Vec<LogrankGroup>,
}

#[derive(Serialize)]
struct LogrankGroup {
    group: String,
    n: usize,
    observed: f64,
    expected: f64,
}

fn logrank(args: LogrankArgs) -> anyhow::Result<String> {
    let mut labels = vec![args.group.as_str()];
    labels.extend(args.strata.as_deref());
    let table = args.columns.read(&[], &labels)?;
    let group = table.labels(&args.group);
    let strata = args.strata.as_deref().map(|s| table.labels(s));
    let test = stats::log_rank(
        &table.time,
        &table.event,
        &group.codes,
        group.levels.len(),
        strata.map(|s| (s.codes.as_slice(), s.levels.len())),
    )?;
    to_json(&LogrankOutput {
        n_dropped: table.n_dropped,
        chisq: test.chisq,
        df: test.df,
        p: test.p,
        groups: test
            .groups
            .iter()
            .zip(&group.levels)
            .map(|(g, label)| LogrankGroup {
                group: label.clone(),
                n: g.n,
                observed: g.observed,
                expected: g.expected,
            })
            .collect(),
    })
}

#[derive(Serialize)]
struct CoxOutput<'a> {
    n: usize,
    events: usize,
    n_dropped: usize,
    ties: Ties,
    iterations: usize,
    converged: bool,
    coefficients: &'a [CoxCoefficient],
    loglik_null: f64,
    loglik: f64,
    lr_test: ChiSquareTest,
    wald_test: ChiSquareTest,
    score_test: ChiSquareTest,
    #[serde(skip_serializing_if = "Option::is_none")]
    robust_score_test: Option<ChiSquareTest>,
    warnings: &'a [String],
}

fn cox(args: CoxArgs) -> anyhow::Result<String> {
    let ties = parse_ties(&args.ties)?;
    let mut numbers: Vec<&str> = args.covariates.iter().map(String::as_str).collect();
    numbers.extend(args.start.as_deref());
    let mut labels: Vec<&str> = args.strata.iter().map(String::as_str).collect();
    labels.extend(args.cluster.as_deref());
    let started = Instant::now();
    let table = match &args.cause {
        None => args.columns.read(&numbers, &labels)?,
        Some(_) => {
            labels.push(&args.columns.event);
            csv_table::read_columns(
                &args.columns.csv,
                Some(&args.columns.time),
                None,
                &numbers,
                &labels,
            )?
        }
    };
    let cause_event = match &args.cause {
        None => None,
        Some(cause) => Some(super::stats_competing::cause_events(
            table.labels(&args.columns.event),
            cause,
            &args.columns.event,
        )?),
    };
    let read_done = Instant::now();
    let strata = args.strata.as_deref().map(|s| table.labels(s));
    let data = CoxData {
        time: &table.time,
        event: cause_event.as_deref().unwrap_or(&table.event),
        covariates: args
            .covariates
            .iter()
            .map(|name| Covariate {
                name,
                values: table.numbers(name),
            })
            .collect(),
        strata: strata.map(|s| (s.codes.as_slice(), s.levels.len())),
    };
    let options = CoxOptions {
        ties,
        ..CoxOptions::default()
    };
    let start = args.start.as_deref().map(|s| table.numbers(s));
    if let (Some(start), Some(name)) = (start, args.start.as_deref()) {
        if let Some(i) = (0..start.len()).find(|&i| start[i] >= table.time[i]) {
            bail!(
                "{}: data row {}, column `{name}`: start {} is not before the time {}",
                args.columns.csv.display(),
                table.rows.get(i).copied().unwrap_or(0),
                start[i],
                table.time[i]
            );
        }
    }
    let cluster = args.cluster.as_deref().map(|c| table.labels(c));
    let fit: CoxFit = if start.is_some() || cluster.is_some() {
        stats::cox::cox_ph_extended(
            &data,
            &stats::cox::CoxExtras {
                start,
                cluster: cluster.map(|c| (c.codes.as_slice(), c.levels.len())),
            },
            &options,
        )?
    } else {
        stats::cox_ph(&data, &options)?
    };
    tracing::debug!(
        rows = table.time.len(),
        read_seconds = (read_done - started).as_secs_f64(),
        fit_seconds = read_done.elapsed().as_secs_f64(),
        "stats cox"
    );
    to_json(&CoxOutput {
        n: fit.n,
        events: fit.events,
        n_dropped: table.n_dropped,
        ties: fit.ties,
        iterations: fit.iterations,
        converged: fit.converged,
        coefficients: &fit.coefficients,
        loglik_null: fit.loglik_null,
        loglik: fit.loglik,
        lr_test: fit.lr_test,
        wald_test: fit.wald_test,
        score_test: fit.score_test,
        robust_score_test: fit.robust_score_test,
        warnings: &fit.warnings,
    })
}

fn binary(args: BinaryArgs) -> anyhow::Result<String> {
    let events = parse_pair("--events", &args.events)?;
    let n = parse_pair("--n", &args.n)?;
    to_json(&stats::two_by_two(events, n)?)
}

#[derive(Serialize)]
struct RmstOutput {
    n_dropped: usize,
    tau: f64,
    groups: Vec<RmstGroupOutput>,
    differences: Vec<RmstDifferenceOutput>,
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct RmstGroupOutput {
    group: String,
    #[serde(flatten)]
    value: stats::rmst::RmstGroup,
}

#[derive(Serialize)]
struct RmstDifferenceOutput {
    group: String,
    reference: String,
    difference: f64,
    se: f64,
    lower: f64,
    upper: f64,
    p: f64,
}

fn rmst(args: RmstArgs) -> anyhow::Result<String> {
    let table = args.columns.read(&[], &[args.group.as_str()])?;
    let group = table.labels(&args.group);
    let r = stats::rmst(
        &table.time,
        &table.event,
        &group.codes,
        group.levels.len(),
        args.tau,
        stats::DEFAULT_CONF_LEVEL,
    )?;
    let label = |code: usize| group.levels.get(code).cloned().unwrap_or_default();
    to_json(&RmstOutput {
        n_dropped: table.n_dropped,
        tau: r.tau,
        groups: r
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| RmstGroupOutput {
                group: label(i),
                value: *g,
            })
            .collect(),
        differences: r
            .differences
            .iter()
            .map(|d| RmstDifferenceOutput {
                group: label(d.group),
                reference: label(d.reference),
                difference: d.difference,
                se: d.se,
                lower: d.lower,
                upper: d.upper,
                p: d.p,
            })
            .collect(),
        warnings: r
            .extended
            .iter()
            .map(|&g| {
                format!(
                    "group `{}`: follow-up ends before tau; its curve is extended flat to tau",
                    label(g)
                )
            })
            .collect(),
    })
}

#[derive(Serialize)]
struct SubgroupOutput {
    n_dropped: usize,
    treatment: TreatmentColumn,
    by: String,
    overall: TreatmentEffect,
    subgroups: Vec<SubgroupLevel>,
    interaction: Option<ChiSquareTest>,
}

#[derive(Serialize)]
struct TreatmentColumn {
    column: String,
    control: String,
    experimental: String,
}

#[derive(Serialize)]
struct SubgroupLevel {
    level: String,
    #[serde(flatten)]
    effect: TreatmentEffect,
}

fn subgroups(args: SubgroupArgs) -> anyhow::Result<String> {
    let ties = parse_ties(&args.ties)?;
    let mut labels = vec![args.treatment.as_str(), args.by.as_str()];
    labels.extend(args.strata.as_deref());
    let table = args.columns.read(&[], &labels)?;
    let arm = table.labels(&args.treatment);
    if arm.levels.len() != 2 {
        bail!(
            "column `{}` must have exactly two arms, found {}: {}",
            args.treatment,
            arm.levels.len(),
            arm.levels.join(", ")
        );
    }
    let control = match &args.control {
        None => 0,
        Some(c) => arm.find(c).with_context(|| {
            format!(
                "--control `{c}` is not a value of column `{}` ({})",
                args.treatment,
                arm.levels.join(", ")
            )
        })?,
    };
    let treatment: Vec<bool> = arm.codes.iter().map(|&c| c != control).collect();
    let by = table.labels(&args.by);
    let strata = args.strata.as_deref().map(|s| table.labels(s));
    let analysis = stats::subgroup_analysis(
        &SubgroupData {
            time: &table.time,
            event: &table.event,
            treatment: &treatment,
            factor: (&by.codes, by.levels.len()),
            strata: strata.map(|s| (s.codes.as_slice(), s.levels.len())),
        },
        &CoxOptions {
            ties,
            ..CoxOptions::default()
        },
    )?;
    to_json(&SubgroupOutput {
        n_dropped: table.n_dropped,
        treatment: TreatmentColumn {
            column: args.treatment.clone(),
            control: arm.levels[control].clone(),
            experimental: arm.levels[1 - control].clone(),
        },
        by: args.by.clone(),
        overall: analysis.overall,
        subgroups: analysis
            .subgroups
            .into_iter()
            .zip(&by.levels)
            .map(|(effect, level)| SubgroupLevel {
                level: level.clone(),
                effect,
            })
            .collect(),
        interaction: analysis.interaction,
    })
}

// ---------------------------------------------------------------------------------------------
// Arguments.

fn parse_ties(s: &str) -> anyhow::Result<Ties> {
    Ties::parse(s).with_context(|| format!("--ties `{s}`: expected efron or breslow"))
}

fn parse_pair(flag: &str, value: &str) -> anyhow::Result<[u64; 2]> {
    let parts: Vec<&str> = value.split(',').map(str::trim).collect();
    let [a, b] = parts.as_slice() else {
        bail!("{flag} `{value}`: expected two counts separated by a comma");
    };
    let count = |s: &str| {
        s.parse::<u64>()
            .with_context(|| format!("{flag} `{value}`: `{s}` is not a non-negative integer"))
    };
    Ok([count(a)?, count(b)?])
}
