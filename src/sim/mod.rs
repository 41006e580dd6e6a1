//! Design simulation: a protocol's operating characteristics before go-live (power, type I
//! error, stopping probabilities, expected subjects, events and duration, balance and
//! predictability), from many simulated trials that each run the engine's own protocol,
//! randomisation, endpoint, statistics and group-sequential code in memory ([`trial`]).
//!
//! Replicates run in parallel (rayon); replicate `r` draws everything from seeds derived from
//! (scenario seed, `r`) and results are summed in replicate order, so the same seed gives a
//! byte-identical report whatever the number of threads.

pub mod scenario;
pub mod trial;

use serde::Serialize;

pub use scenario::{parse as parse_scenario, Scenario, ScenarioError};
pub use trial::{Plan, PlanError, SimLook, TrialOutcome};

/// Read and validate a scenario file; the protocol it names is read relative to the scenario.
pub fn read_scenario(path: &std::path::Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let dir = path
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    parse_scenario(&text, &path.display().to_string(), |protocol| {
        let p = dir.join(protocol);
        std::fs::read_to_string(&p)
            .map(|text| (p.display().to_string(), text))
            .map_err(|e| format!("cannot read the protocol {}: {e}", p.display()))
    })
    .map_err(|e| e.to_string())
}

/// How to run a simulation.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub replicates: u64,
    pub seed: u64,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
}

/// Mean and 95th percentile (nearest rank) of a quantity over replicates or strata.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub p95: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Balance {
    /// `D = Σ|n_a − n·r_a/R|` over the whole trial at its last analysis.
    pub overall: Spread,
    /// The same per stratum, pooled over every stratum of every replicate.
    pub within_strata: Spread,
}

/// The operating characteristics of a design under a scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimulationReport {
    pub scenario: String,
    pub trial: String,
    pub protocol: String,
    pub randomisation: &'static str,
    pub seed: u64,
    pub replicates: u64,
    pub alpha: f64,
    pub sided: u8,
    pub spending: crate::design::SpendingFunction,
    pub planned_events: u32,
    pub looks: Vec<f64>,
    pub target_sample_size: u32,
    /// Probability of rejecting the null hypothesis at any look (power, or the type I error
    /// under a null scenario).
    pub rejection_rate: f64,
    /// Its Monte Carlo standard error, `sqrt(p(1 − p)/replicates)`.
    pub rejection_rate_mcse: f64,
    /// Per planned look: the probability that the trial stops for efficacy there.
    pub stop_probability: Vec<f64>,
    /// Per planned look: the probability that it is held at all.
    pub look_probability: Vec<f64>,
    pub expected_subjects: f64,
    pub expected_events: f64,
    pub expected_duration_days: f64,
    pub expected_duration_months: f64,
    /// Median over replicates of the hazard ratio at the last analysis.
    pub median_hazard_ratio: Option<f64>,
    pub balance: Balance,
    /// Expected proportion of correct guesses under the convergence strategy within strata
    /// (a site's staff guessing from the stratum's allocations so far).
    pub correct_guess_rate: f64,
    /// The same from the trial-wide allocations.
    pub correct_guess_rate_overall: f64,
    /// Each replicate's outcome, in replicate order (for the HTML report's distributions).
    #[serde(skip)]
    pub outcomes: Vec<TrialOutcome>,
}

/// Run `options.replicates` simulated trials; `progress` is called once per finished replicate
/// (from worker threads).
pub fn simulate(
    scenario: &Scenario,
    scenario_name: &str,
    options: Options,
    progress: &(dyn Fn() + Sync),
) -> Result<SimulationReport, PlanError> {
    use rayon::prelude::*;
    let plan = Plan::new(scenario)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .build()
        .map_err(|e| PlanError::Design(format!("cannot start worker threads: {e}")))?;
    let outcomes: Vec<TrialOutcome> = pool.install(|| {
        (0..options.replicates)
            .into_par_iter()
            .map(|r| {
                let o = plan.run(options.seed, r);
                progress();
                o
            })
            .collect()
    });
    Ok(summarise(scenario, scenario_name, options, &plan, outcomes))
}

fn summarise(
    sc: &Scenario,
    scenario_name: &str,
    options: Options,
    plan: &Plan<'_>,
    outcomes: Vec<TrialOutcome>,
) -> SimulationReport {
    let n = outcomes.len().max(1) as f64;
    let looks = sc.monitoring.looks.len();
    let mean = |f: &dyn Fn(&TrialOutcome) -> f64| outcomes.iter().map(f).sum::<f64>() / n;
    let rejection_rate = mean(&|o| f64::from(u8::from(o.rejected)));
    let stop_probability = (0..looks)
        .map(|k| mean(&|o| f64::from(u8::from(o.stopped_at == Some(k)))))
        .collect();
    let look_probability = (0..looks)
        .map(|k| mean(&|o| f64::from(u8::from(o.looks_held.get(k) == Some(&true)))))
        .collect();
    let expected_duration_days = mean(&|o| f64::from(o.duration_days));
    let mut hrs: Vec<f64> = outcomes.iter().filter_map(|o| o.hazard_ratio).collect();
    hrs.sort_by(f64::total_cmp);
    let median_hazard_ratio = (!hrs.is_empty()).then(|| {
        let m = hrs.len() / 2;
        if hrs.len() % 2 == 1 {
            hrs[m]
        } else {
            (hrs[m - 1] + hrs[m]) / 2.0
        }
    });
    let overall: Vec<f64> = outcomes.iter().map(|o| o.final_imbalance).collect();
    let within: Vec<f64> = outcomes
        .iter()
        .flat_map(|o| o.stratum_imbalances.iter().copied())
        .collect();
    let rate = |f: &dyn Fn(&TrialOutcome) -> f64| {
        mean(&|o| {
            if o.subjects > 0 {
                f(o) / o.subjects as f64
            } else {
                0.0
            }
        })
    };
    SimulationReport {
        scenario: scenario_name.to_string(),
        trial: sc.protocol.trial_id.clone(),
        protocol: sc.protocol_path.clone(),
        randomisation: plan.procedure(),
        seed: options.seed,
        replicates: options.replicates,
        alpha: sc.monitoring.alpha,
        sided: sc.monitoring.sided,
        spending: sc.monitoring.spending,
        planned_events: sc.monitoring.planned_events,
        looks: sc.monitoring.looks.clone(),
        target_sample_size: sc.protocol.target_sample_size,
        rejection_rate,
        rejection_rate_mcse: (rejection_rate * (1.0 - rejection_rate) / n).sqrt(),
        stop_probability,
        look_probability,
        expected_subjects: mean(&|o| o.subjects as f64),
        expected_events: mean(&|o| o.events as f64),
        expected_duration_days,
        expected_duration_months: expected_duration_days / (365.25 / 12.0),
        median_hazard_ratio,
        balance: Balance {
            overall: spread(overall),
            within_strata: spread(within),
        },
        correct_guess_rate: rate(&|o| o.correct_guesses_within),
        correct_guess_rate_overall: rate(&|o| o.correct_guesses),
        outcomes,
    }
}

/// Mean and nearest-rank 95th percentile (0 for no values).
fn spread(mut values: Vec<f64>) -> Spread {
    if values.is_empty() {
        return Spread {
            mean: 0.0,
            p95: 0.0,
        };
    }
    values.sort_by(f64::total_cmp);
    let rank = ((0.95 * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Spread {
        mean: values.iter().sum::<f64>() / values.len() as f64,
        p95: values[rank - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_nearest_rank_percentile() {
        let s = spread((1..=20).map(f64::from).collect());
        assert_eq!(s.p95, 19.0);
        assert_eq!(s.mean, 10.5);
        assert_eq!(spread(vec![]).p95, 0.0);
        assert_eq!(spread(vec![3.0]).p95, 3.0);
    }
}
