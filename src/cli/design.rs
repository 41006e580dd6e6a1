//! `rrct design ...`: group-sequential designs, sample sizes and conditional power from
//! [`crate::design`], as JSON on stdout.
//!
//! This is the interface edge: it turns flags into a [`DesignSpec`] and the library's values
//! into JSON, and turns every refused argument into a message and a non-zero exit. Nothing here
//! computes anything.
//!
//! Flags shared by the sizing commands: `--alpha`, `--power`, `--sided 1|2` (default 1),
//! `--ratio` (experimental : control, default 1), and, for a group-sequential design whose
//! inflation factor multiplies the fixed-design size, `--looks K` with either
//! `--design OF|P|WT:DELTA|HP|asOF|asP|asHSD:G|asKD:R` (rpact's `typeOfDesign`) or
//! `--spending obf|pocock|hsd:G|kd:R` (the same as `--design asOF|asP|asHSD:G|asKD:R`), then
//! `[--timing T1,...,TK] [--futility SPENDING | --futility-bounds Z1,...,Z(K-1)]
//! [--binding-futility]`. rpact's classical names given to `--spending` (`of`, `p`) are refused
//! with a pointer to `--design`, never read as the spending versions.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::design::{
    self,
    sample_size::{self, ControlEventRate},
    DesignKind, DesignSpec, Effect, FutilityBounds, GroupSequentialDesign, Observation, Sided,
    SpendingFunction,
};

/// The design commands.
#[derive(Subcommand, Debug)]
pub enum DesignCommand {
    /// Group-sequential boundaries (classical OF, P, WT, HP or Lan–DeMets alpha spending),
    /// optional futility boundaries (beta spending or fixed, binding or not) and the inflation
    /// factor.
    Gsd(GsdArgs),
    /// Events needed for a hazard ratio (Schoenfeld), times the inflation factor of a
    /// group-sequential design when one is given.
    Events(EventsArgs),
    /// Subjects to recruit so that the events needed occur (uniform accrual, exponential
    /// survival, no drop-out).
    Subjects(SubjectsArgs),
    /// Sample size for two proportions (normal approximation).
    Rates(RatesArgs),
    /// Sample size for two means (normal approximation).
    Means(MeansArgs),
    /// Interim monitoring: boundaries recomputed at the observed information, crossed or not,
    /// and conditional power under the design effect and the current trend.
    ConditionalPower(ConditionalPowerArgs),
}

/// A group-sequential design (optional for the sizing commands).
#[derive(Args, Debug)]
pub struct SequentialArgs {
    /// Number of looks, the final analysis included.
    #[arg(long)]
    looks: Option<usize>,
    /// Type of design, as rpact's typeOfDesign: OF, P, WT:DELTA, HP (classical) or asOF, asP,
    /// asHSD:GAMMA, asKD:RHO (alpha spending).
    #[arg(long, conflicts_with = "spending")]
    design: Option<String>,
    /// Alpha-spending function: obf, pocock, hsd:GAMMA or kd:RHO (the same as --design asOF,
    /// asP, asHSD:GAMMA, asKD:RHO).
    #[arg(long)]
    spending: Option<String>,
    /// Information fractions of the looks, comma-separated, the last 1 (default: equally
    /// spaced).
    #[arg(long, value_delimiter = ',')]
    timing: Vec<f64>,
    /// Beta-spending function of futility boundaries (one-sided alpha-spending designs).
    #[arg(long, conflicts_with = "futility_bounds")]
    futility: Option<String>,
    /// Fixed futility boundaries (z) at looks 1 to K-1, comma-separated (one-sided designs;
    /// rpact's futilityBounds).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    futility_bounds: Vec<f64>,
    /// The futility boundaries bind: the efficacy boundaries count on a trial below them
    /// stopping (rpact's bindingFutility = TRUE).
    #[arg(long)]
    binding_futility: bool,
}

/// `rrct design gsd`.
#[derive(Args, Debug)]
pub struct GsdArgs {
    #[command(flatten)]
    sequential: SequentialArgs,
    /// Overall type I error (both sides together when two-sided).
    #[arg(long)]
    alpha: f64,
    /// 1 or 2.
    #[arg(long, default_value_t = 1)]
    sided: u8,
    /// Power at the design effect (sets the inflation factor and the beta spent).
    #[arg(long, default_value_t = 0.8)]
    power: f64,
}

/// Error rates of a sizing command.
#[derive(Args, Debug)]
pub struct ErrorRates {
    /// Type I error (both sides together when two-sided).
    #[arg(long)]
    alpha: f64,
    /// Power.
    #[arg(long)]
    power: f64,
    /// 1 or 2 (two-sided uses alpha/2 on the side of the effect).
    #[arg(long, default_value_t = 1)]
    sided: u8,
    /// Allocation ratio experimental : control.
    #[arg(long, default_value_t = 1.0)]
    ratio: f64,
}

/// `rrct design events`.
#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Hazard ratio experimental / control.
    #[arg(long)]
    hr: f64,
    #[command(flatten)]
    rates: ErrorRates,
    #[command(flatten)]
    sequential: SequentialArgs,
}

/// `rrct design subjects`.
#[derive(Args, Debug)]
pub struct SubjectsArgs {
    #[command(flatten)]
    events: EventsArgs,
    /// Accrual period (uniform entry), in the time unit of the rates.
    #[arg(long)]
    accrual_time: f64,
    /// Follow-up after accrual closes.
    #[arg(long)]
    follow_up_time: f64,
    /// Control arm hazard (rpact `lambda2`).
    #[arg(long, group = "control")]
    control_hazard: Option<f64>,
    /// Control arm median survival (rpact `median2`).
    #[arg(long, group = "control")]
    control_median: Option<f64>,
    /// Control arm probability of an event by --event-time (rpact `pi2`).
    #[arg(long, group = "control", requires = "event_time")]
    control_probability: Option<f64>,
    /// Time at which --control-probability holds (rpact `eventTime`).
    #[arg(long)]
    event_time: Option<f64>,
}

/// `rrct design rates`.
#[derive(Args, Debug)]
pub struct RatesArgs {
    /// Event proportion in the experimental arm.
    #[arg(long)]
    pi1: f64,
    /// Event proportion in the control arm.
    #[arg(long)]
    pi2: f64,
    #[command(flatten)]
    rates: ErrorRates,
    #[command(flatten)]
    sequential: SequentialArgs,
}

/// `rrct design means`.
#[derive(Args, Debug)]
pub struct MeansArgs {
    /// Difference in means to detect (experimental minus control).
    #[arg(long, allow_hyphen_values = true)]
    difference: f64,
    /// Common standard deviation.
    #[arg(long)]
    sd: f64,
    #[command(flatten)]
    rates: ErrorRates,
    #[command(flatten)]
    sequential: SequentialArgs,
}

/// `rrct design conditional-power`.
#[derive(Args, Debug)]
pub struct ConditionalPowerArgs {
    #[command(flatten)]
    gsd: GsdArgs,
    /// z statistics of the looks held so far, comma-separated (positive favours the
    /// experimental arm).
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        required = true
    )]
    z: Vec<f64>,
    /// Observed information fractions of those looks, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "events")]
    information: Vec<f64>,
    /// Events at those looks, comma-separated (information = events / --planned-events).
    #[arg(long, value_delimiter = ',', requires = "planned_events")]
    events: Vec<f64>,
    /// Planned events at the final analysis.
    #[arg(long)]
    planned_events: Option<f64>,
    /// Also give conditional power under this hazard ratio (needs --planned-events).
    #[arg(long, requires = "planned_events")]
    hr: Option<f64>,
    /// Allocation ratio experimental : control, for --hr.
    #[arg(long, default_value_t = 1.0)]
    ratio: f64,
}

/// Runs one design command, printing its JSON on stdout.
pub async fn run(command: DesignCommand) -> anyhow::Result<ExitCode> {
    let json = match command {
        DesignCommand::Gsd(args) => to_json(&gsd(&args)?)?,
        DesignCommand::Events(args) => to_json(&events(&args)?)?,
        DesignCommand::Subjects(args) => to_json(&subjects(&args)?)?,
        DesignCommand::Rates(args) => rates(&args)?,
        DesignCommand::Means(args) => means(&args)?,
        DesignCommand::ConditionalPower(args) => conditional_power(&args)?,
    };
    // A reader that goes away early (`| head`) is not an error worth a panic.
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{json}").and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}

fn to_json<T: Serialize>(value: &T) -> anyhow::Result<String> {
    serde_json::to_string_pretty(value).context("cannot write the result as JSON")
}

fn spending(flag: &str, text: &str) -> anyhow::Result<SpendingFunction> {
    SpendingFunction::parse(text).with_context(|| format!("--{flag}"))
}

/// The design of `--looks/--spending/...`, or `None` when no `--looks` was given and a design is
/// optional.
fn design_spec(
    sequential: &SequentialArgs,
    alpha: f64,
    sided: u8,
    power: f64,
    required: bool,
) -> anyhow::Result<Option<DesignSpec>> {
    let Some(looks) = sequential.looks else {
        if required {
            bail!("--looks is required");
        }
        if sequential.design.is_some()
            || sequential.spending.is_some()
            || !sequential.timing.is_empty()
            || sequential.futility.is_some()
            || !sequential.futility_bounds.is_empty()
            || sequential.binding_futility
        {
            bail!(
                "--design, --spending, --timing, --futility, --futility-bounds and \
                 --binding-futility describe a group-sequential design: give --looks too"
            );
        }
        return Ok(None);
    };
    if looks == 0 || looks > design::MAX_LOOKS {
        bail!(
            "--looks must be between 1 and {}, not {looks}",
            design::MAX_LOOKS
        );
    }
    let kind = match (sequential.design.as_deref(), sequential.spending.as_deref()) {
        (Some(text), _) => DesignKind::parse(text).context("--design")?,
        (None, Some(text)) => spending("spending", text)?.into(),
        (None, None) => bail!(
            "--looks needs --design (OF, P, WT:DELTA, HP, asOF, asP, asHSD:GAMMA or asKD:RHO) \
             or --spending (obf, pocock, hsd:GAMMA or kd:RHO)"
        ),
    };
    let sided = Sided::from_count(sided).context("--sided")?;
    let mut spec = DesignSpec::new(looks, alpha, sided, kind);
    if !sequential.timing.is_empty() {
        if sequential.timing.len() != looks {
            bail!(
                "--timing has {} values but --looks is {looks}",
                sequential.timing.len()
            );
        }
        spec.timing = sequential.timing.clone();
    }
    spec.power = power;
    spec.futility = match (sequential.futility.as_deref(), &sequential.futility_bounds) {
        (Some(text), _) => Some(FutilityBounds::BetaSpending(spending("futility", text)?)),
        (None, bounds) if !bounds.is_empty() => {
            if bounds.len() + 1 != looks {
                bail!(
                    "--futility-bounds has {} values but a design of {looks} looks needs {} \
                     (one per interim look)",
                    bounds.len(),
                    looks - 1
                );
            }
            Some(FutilityBounds::Fixed(bounds.clone()))
        }
        _ => None,
    };
    if sequential.binding_futility && spec.futility.is_none() {
        bail!("--binding-futility needs futility boundaries: give --futility or --futility-bounds");
    }
    spec.binding_futility = sequential.binding_futility;
    spec.validate()?;
    Ok(Some(spec))
}

fn gsd(args: &GsdArgs) -> anyhow::Result<GroupSequentialDesign> {
    let spec = design_spec(&args.sequential, args.alpha, args.sided, args.power, true)?
        .context("--looks is required")?;
    Ok(design::group_sequential(&spec)?)
}

/// The inflation factor of the optional design (1 without one).
fn inflation(sequential: &SequentialArgs, rates: &ErrorRates) -> anyhow::Result<f64> {
    Ok(
        match design_spec(sequential, rates.alpha, rates.sided, rates.power, false)? {
            Some(spec) => design::group_sequential(&spec)?.inflation_factor,
            None => 1.0,
        },
    )
}

#[derive(Serialize)]
struct EventsOutput {
    hr: f64,
    alpha: f64,
    power: f64,
    sided: u8,
    ratio: f64,
    #[serde(flatten)]
    plan: sample_size::EventsPlan,
}

fn events(args: &EventsArgs) -> anyhow::Result<EventsOutput> {
    let r = &args.rates;
    let sided = Sided::from_count(r.sided).context("--sided")?;
    let inflation = inflation(&args.sequential, r)?;
    let plan =
        sample_size::events_for_hazard_ratio(args.hr, r.alpha, r.power, sided, r.ratio, inflation)?;
    Ok(EventsOutput {
        hr: args.hr,
        alpha: r.alpha,
        power: r.power,
        sided: r.sided,
        ratio: r.ratio,
        plan,
    })
}

#[derive(Serialize)]
struct SubjectsOutput {
    #[serde(flatten)]
    events: EventsOutput,
    accrual_time: f64,
    follow_up_time: f64,
    #[serde(flatten)]
    plan: sample_size::SubjectsPlan,
}

fn subjects(args: &SubjectsArgs) -> anyhow::Result<SubjectsOutput> {
    let control = match (
        args.control_hazard,
        args.control_median,
        args.control_probability,
    ) {
        (Some(h), None, None) => ControlEventRate::Hazard(h),
        (None, Some(m), None) => ControlEventRate::Median(m),
        (None, None, Some(p)) => ControlEventRate::Probability {
            probability: p,
            event_time: args
                .event_time
                .context("--control-probability needs --event-time")?,
        },
        _ => {
            bail!("give exactly one of --control-hazard, --control-median or --control-probability")
        }
    };
    let events = events(&args.events)?;
    let plan = sample_size::subjects_for_events(
        events.plan.events,
        args.events.hr,
        control,
        args.accrual_time,
        args.follow_up_time,
        args.events.rates.ratio,
    )?;
    Ok(SubjectsOutput {
        events,
        accrual_time: args.accrual_time,
        follow_up_time: args.follow_up_time,
        plan,
    })
}

#[derive(Serialize)]
struct TwoGroupOutput<'a> {
    #[serde(flatten)]
    inputs: &'a serde_json::Value,
    alpha: f64,
    power: f64,
    sided: u8,
    ratio: f64,
    #[serde(flatten)]
    plan: sample_size::TwoGroupPlan,
}

fn two_group_json(
    inputs: serde_json::Value,
    r: &ErrorRates,
    plan: sample_size::TwoGroupPlan,
) -> anyhow::Result<String> {
    to_json(&TwoGroupOutput {
        inputs: &inputs,
        alpha: r.alpha,
        power: r.power,
        sided: r.sided,
        ratio: r.ratio,
        plan,
    })
}

fn rates(args: &RatesArgs) -> anyhow::Result<String> {
    let r = &args.rates;
    let sided = Sided::from_count(r.sided).context("--sided")?;
    let inflation = inflation(&args.sequential, r)?;
    let plan = sample_size::two_proportions(
        args.pi1, args.pi2, r.alpha, r.power, sided, r.ratio, inflation,
    )?;
    two_group_json(
        serde_json::json!({"pi1": args.pi1, "pi2": args.pi2}),
        r,
        plan,
    )
}

fn means(args: &MeansArgs) -> anyhow::Result<String> {
    let r = &args.rates;
    let sided = Sided::from_count(r.sided).context("--sided")?;
    let inflation = inflation(&args.sequential, r)?;
    let plan = sample_size::two_means(
        args.difference,
        args.sd,
        r.alpha,
        r.power,
        sided,
        r.ratio,
        inflation,
    )?;
    two_group_json(
        serde_json::json!({"difference": args.difference, "sd": args.sd}),
        r,
        plan,
    )
}

#[derive(Serialize)]
struct ConditionalPowerOutput {
    design: GroupSequentialDesign,
    looks: Vec<design::MonitoredLook>,
    /// Conditional power at the latest look under the hypothesised hazard ratio (`--hr`).
    conditional_power_hr: Option<f64>,
}

fn conditional_power(args: &ConditionalPowerArgs) -> anyhow::Result<String> {
    let design = gsd(&args.gsd)?;
    let information: Vec<f64> = if !args.events.is_empty() {
        let planned = args
            .planned_events
            .context("--events needs --planned-events")?;
        args.events
            .iter()
            .map(|&e| design::information_fraction(e, planned))
            .collect::<Result<_, _>>()?
    } else {
        args.information.clone()
    };
    if information.len() != args.z.len() {
        bail!(
            "--z has {} values but there are {} information fractions (--information or --events)",
            args.z.len(),
            information.len()
        );
    }
    let observed: Vec<Observation> = information
        .iter()
        .zip(&args.z)
        .map(|(&t, &z)| Observation::new(t, z))
        .collect();
    let looks = design::monitor(&design, &observed)?;
    let conditional_power_hr = match (args.hr, args.planned_events) {
        (Some(hr), Some(planned)) => {
            let drift = design::drift_from_hazard_ratio(hr, planned, args.ratio)?;
            design::conditional_power(&design, &observed, Effect::Drift(drift))?
        }
        _ => None,
    };
    to_json(&ConditionalPowerOutput {
        design,
        looks,
        conditional_power_hr,
    })
}
