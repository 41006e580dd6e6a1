//! `rrct randomisation assess`: the balance and predictability of an allocation procedure, as
//! JSON on stdout (see [`crate::randomise::quality`] for the definitions).
//!
//! `--method` names a procedure on its own: `simple`, `pbr:4` (fixed blocks of 4),
//! `rpbr:2,4,6` (block sizes drawn from the list), `efron:0.667`, `bigstick:3`, `urn:1,1`
//! (Wei's UD(α, β)) or `minimisation:p=0.8` (optionally `,measure=range|variance|sd`,
//! `,initial=N`), for `--arms K` equal arms or the ratios of `--ratio 2:1` (default 1:1).
//! Minimisation balances three synthetic covariates, independent and equiprobable: `site`
//! (3 levels), `sex` (2) and `age_band` (3), all weight 1. Procedures that depend only on
//! their own counts are computed exactly when N ≤ [`EXACT_MAX_N`] (and `--monte-carlo` is not
//! given); otherwise `--replicates` trials are simulated from `--seed`.
//!
//! `--protocol FILE` assesses the protocol's own procedure, ratios and strata, by simulation:
//! every stratification and minimisation factor is drawn independently with its declared
//! levels equally likely (sites, category levels, `false`/`true`, a derived band's labels).
//! Cluster randomisation and per-patient arm eligibility are not simulated.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::protocol::ImbalanceMeasure;
use crate::randomise::quality::{assess_exact, assess_monte_carlo, Population, Quality};
use crate::randomise::{MasterSeed, MinimisationFactor, Scheme};

/// Exact computation is attempted up to this many allocations.
pub const EXACT_MAX_N: u32 = 100;

/// The randomisation commands.
#[derive(Subcommand, Debug)]
pub enum RandomisationCommand {
    /// Balance and predictability of a procedure: mean final and maximum imbalance, loss and
    /// the convergence strategy's correct-guess rate (JSON on stdout).
    Assess(AssessArgs),
}

/// `rrct randomisation assess`.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("procedure").required(true).args(["method", "protocol"])))]
pub struct AssessArgs {
    /// simple, pbr:SIZE, rpbr:S1,S2,..., efron:P, bigstick:B, urn:ALPHA,BETA or
    /// minimisation:p=P[,measure=range|variance|sd][,initial=N].
    #[arg(long)]
    method: Option<String>,
    /// Assess the procedure and strata of this protocol file instead of --method.
    #[arg(long, conflicts_with_all = ["arms", "ratio"])]
    protocol: Option<PathBuf>,
    /// Allocations per simulated trial.
    #[arg(long)]
    n: u32,
    /// Trials to simulate (reported as 0 when the result is exact).
    #[arg(long, default_value_t = 1000)]
    replicates: u32,
    /// Passphrase the simulation's master seed is derived from.
    #[arg(long, default_value = "rrct-assess")]
    seed: String,
    /// Number of arms, equal ratios (default 2).
    #[arg(long)]
    arms: Option<usize>,
    /// Allocation ratios such as 1:1 or 2:1:1.
    #[arg(long)]
    ratio: Option<String>,
    /// Simulate even when an exact computation is feasible.
    #[arg(long)]
    monte_carlo: bool,
}

pub fn run(command: RandomisationCommand) -> anyhow::Result<ExitCode> {
    match command {
        RandomisationCommand::Assess(args) => {
            println!("{}", assess(&args)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn assess(args: &AssessArgs) -> anyhow::Result<Value> {
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    if args.replicates == 0 {
        bail!("--replicates must be at least 1");
    }
    let seed = MasterSeed::from_passphrase(&args.seed);
    let (label, scheme, strata, population, notes) = if let Some(path) = &args.protocol {
        let (protocol, _) = crate::service::trials::read_protocol(path)
            .with_context(|| format!("--protocol {}", path.display()))?;
        let scheme = Scheme::from_protocol(&protocol)
            .with_context(|| format!("--protocol {}", path.display()))?;
        let mut notes = Vec::new();
        if let Some(cluster) = &protocol.randomisation.cluster {
            notes.push(format!(
                "cluster randomisation by `{cluster}` is not simulated: patients are allocated individually"
            ));
        }
        if protocol.randomisation.arm_eligibility {
            notes
                .push("per-patient arm eligibility is not simulated: every arm is eligible".into());
        }
        (
            format!("protocol:{}", protocol.trial_id),
            scheme,
            protocol.randomisation.strata.clone(),
            Population::from_protocol(&protocol),
            notes,
        )
    } else {
        let method = args.method.as_deref().unwrap_or_default();
        let ratios = ratios(args.arms, args.ratio.as_deref())?;
        let scheme = parse_method(method, ratios)?;
        let population = if matches!(scheme, Scheme::Minimisation { .. }) {
            Population::synthetic()
        } else {
            Population::default()
        };
        (
            method.to_string(),
            scheme,
            Vec::new(),
            population,
            Vec::new(),
        )
    };
    let exact = (args.protocol.is_none() && !args.monte_carlo && args.n <= EXACT_MAX_N)
        .then(|| assess_exact(&scheme, args.n))
        .flatten();
    let quality: Quality = match exact {
        Some(q) => q,
        None => assess_monte_carlo(
            &scheme,
            &strata,
            &population,
            args.n,
            args.replicates,
            &seed,
        )?,
    };
    let ratio_text: Vec<String> = scheme.ratios().iter().map(u32::to_string).collect();
    let mut out = json!({
        "method": label,
        "procedure": scheme.procedure(),
        "n": quality.n,
        "replicates": quality.replicates,
        "computation": quality.computation,
        "arms": scheme.ratios().len(),
        "ratio": ratio_text.join(":"),
        "mean_abs_final_imbalance": quality.mean_abs_final_imbalance,
        "mean_max_imbalance": quality.mean_max_imbalance,
        "mean_loss": quality.mean_loss,
        "correct_guess_rate": quality.correct_guess_rate,
        "mean_arm_proportions": quality.mean_arm_proportions,
    });
    if quality.computation == "monte_carlo" {
        out["seed"] = json!(args.seed);
    }
    if !strata.is_empty() {
        out["strata"] = json!(strata);
    }
    if let Some(within) = &quality.within_strata {
        out["within_strata"] = json!(within);
    }
    if !population.factors.is_empty() {
        out["covariates"] = json!(population.factors);
        out["marginal_imbalance"] = json!(quality.marginal_imbalance);
    }
    if !notes.is_empty() {
        out["notes"] = json!(notes);
    }
    Ok(out)
}

/// Ratios from `--arms` and `--ratio` (default 1:1).
fn ratios(arms: Option<usize>, ratio: Option<&str>) -> anyhow::Result<Vec<u32>> {
    let ratios = match ratio {
        Some(text) => text
            .split(':')
            .map(|part| part.trim().parse::<u32>().ok().filter(|&r| r > 0))
            .collect::<Option<Vec<u32>>>()
            .filter(|r| r.len() >= 2)
            .with_context(|| {
                format!("--ratio `{text}`: expected at least two positive whole numbers joined by `:`, such as 1:1 or 2:1:1")
            })?,
        None => vec![1; arms.unwrap_or(2)],
    };
    if let Some(k) = arms {
        if k < 2 {
            bail!("--arms must be at least 2, got {k}");
        }
        if k != ratios.len() {
            bail!(
                "--arms {k} disagrees with --ratio {} ({} arms)",
                ratio.unwrap_or_default(),
                ratios.len()
            );
        }
    }
    Ok(ratios)
}

/// A `--method` value as a scheme for `ratios`.
fn parse_method(method: &str, ratios: Vec<u32>) -> anyhow::Result<Scheme> {
    let (name, params) = method.split_once(':').unwrap_or((method, ""));
    let bad = |why: &str| anyhow::anyhow!("--method `{method}`: {why}");
    let numbers = |what: &str| -> anyhow::Result<Vec<u32>> {
        params
            .split(',')
            .map(|p| p.trim().parse::<u32>().ok())
            .collect::<Option<Vec<u32>>>()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad(&format!("expected {what}")))
    };
    let scheme = match name {
        "simple" if params.is_empty() => Scheme::new_simple(ratios),
        "pbr" => {
            let sizes = numbers("one block size, such as pbr:4")?;
            if sizes.len() != 1 {
                return Err(bad(
                    "pbr takes one block size; use rpbr:2,4,6 for random sizes",
                ));
            }
            Scheme::new_blocks(ratios, sizes)
        }
        "rpbr" => Scheme::new_blocks(ratios, numbers("block sizes, such as rpbr:2,4,6")?),
        "efron" => {
            let p: f64 = params
                .parse()
                .map_err(|_| bad("expected the lagging arm's probability, such as efron:0.667"))?;
            Scheme::new_biased_coin(ratios, p)
        }
        "bigstick" => {
            let b = numbers("the maximum tolerated imbalance, such as bigstick:3")?;
            if b.len() != 1 {
                return Err(bad("bigstick takes one number"));
            }
            Scheme::new_big_stick(ratios, b[0])
        }
        "urn" => {
            let ab = numbers("alpha and beta, such as urn:1,1")?;
            if ab.len() != 2 {
                return Err(bad("urn takes alpha and beta, such as urn:1,1"));
            }
            Scheme::new_urn(ratios, ab[0], ab[1])
        }
        "minimisation" | "minimization" => {
            let mut p = None;
            let mut measure = ImbalanceMeasure::Range;
            let mut initial = 0;
            for part in params.split(',').filter(|s| !s.is_empty()) {
                let (key, value) = part
                    .split_once('=')
                    .ok_or_else(|| bad(&format!("`{part}` is not key=value")))?;
                match key.trim() {
                    "p" => {
                        p = Some(
                            value
                                .trim()
                                .parse::<f64>()
                                .map_err(|_| bad(&format!("p `{value}` is not a number")))?,
                        )
                    }
                    "measure" => {
                        measure = ImbalanceMeasure::parse(value.trim()).ok_or_else(|| {
                            bad(&format!(
                                "measure `{value}`: expected range, variance or sd"
                            ))
                        })?
                    }
                    "initial" | "initial_random" => {
                        initial = value
                            .trim()
                            .parse()
                            .map_err(|_| bad(&format!("initial `{value}` is not a whole number")))?
                    }
                    other => {
                        return Err(bad(&format!(
                            "unknown parameter `{other}`; expected p, measure or initial"
                        )))
                    }
                }
            }
            let p = p.ok_or_else(|| bad("expected p, such as minimisation:p=0.8"))?;
            let factors = Population::synthetic()
                .factors
                .into_iter()
                .map(|f| MinimisationFactor {
                    name: f.name,
                    weight: 1.0,
                })
                .collect();
            Scheme::new_minimisation(ratios, factors, measure, p, initial)
        }
        _ => {
            return Err(bad(
                "expected simple, pbr:SIZE, rpbr:S1,S2,..., efron:P, bigstick:B, urn:A,B or \
                 minimisation:p=P",
            ))
        }
    };
    scheme.map_err(|e| bad(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(method: &str, n: u32) -> AssessArgs {
        AssessArgs {
            method: Some(method.into()),
            protocol: None,
            n,
            replicates: 50,
            seed: "t".into(),
            arms: None,
            ratio: None,
            monte_carlo: false,
        }
    }

    #[test]
    fn every_documented_method_runs() {
        for m in [
            "simple",
            "pbr:4",
            "rpbr:2,4,6",
            "efron:0.667",
            "bigstick:3",
            "urn:1,1",
            "minimisation:p=0.8",
            "minimisation:p=0.9,measure=sd,initial=4",
        ] {
            let out = assess(&args(m, 20)).unwrap();
            for key in [
                "method",
                "n",
                "replicates",
                "mean_abs_final_imbalance",
                "mean_max_imbalance",
                "mean_loss",
                "correct_guess_rate",
            ] {
                assert!(out.get(key).is_some(), "{m} lacks {key}");
            }
        }
        let out = assess(&args("pbr:2", 20)).unwrap();
        assert_eq!(out["computation"], "exact");
        assert!((out["correct_guess_rate"].as_f64().unwrap() - 0.75).abs() < 1e-12);
        let out = assess(&args("minimisation:p=0.8", 20)).unwrap();
        assert_eq!(out["computation"], "monte_carlo");
        assert_eq!(out["replicates"], 50);
    }

    #[test]
    fn bad_arguments_name_themselves() {
        let err = |a: AssessArgs| assess(&a).unwrap_err().to_string();
        assert!(err(args("efron:2", 10)).starts_with("--method `efron:2`"));
        assert!(err(args("pbr:3", 10)).contains("--method `pbr:3`"));
        assert!(err(args("coin", 10)).contains("expected simple"));
        assert!(err(args("simple", 0)).starts_with("--n"));
        let mut a = args("simple", 10);
        a.ratio = Some("2:x".into());
        assert!(err(a).starts_with("--ratio"));
        let mut a = args("simple", 10);
        a.arms = Some(3);
        a.ratio = Some("1:1".into());
        assert!(err(a).starts_with("--arms 3"));
        let mut a = args("efron:0.7", 10);
        a.arms = Some(3);
        assert!(err(a).contains("exactly 2 arms"));
    }
}
