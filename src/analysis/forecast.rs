//! When will the trial reach the event counts its looks are planned at? A forecast from the
//! blinded data as of a cut-off, as event-driven trials plan their DSMB meetings (R's
//! `eventPrediction` does the same by hand).
//!
//! The model, pooled over arms (the forecast must not need the allocation):
//! - **accrual**: while fewer than the target sample size are randomised, the rest arrive as a
//!   Poisson process at the rate seen so far (randomised subjects over the days from the first
//!   randomisation to the cut-off);
//! - **events**: an exponential hazard, or a piecewise-exponential one with cut points in days
//!   from randomisation, each piece's rate the events over the days at risk in that piece;
//! - **drop-out**: an exponential hazard estimated likewise from the subjects whose follow-up
//!   ended before the cut-off without the event (emigration, loss to follow-up), competing with
//!   the event.
//!
//! The uncertainty of each rate is carried into the prediction: in every replicate each rate is
//! drawn from its posterior under Jeffreys' prior (`Gamma(count + 1/2, exposure)`), then the
//! future of the subjects still at risk (memoryless within a piece) and of the subjects still to
//! come is simulated, and the day the wanted event count is reached is read off. The median and
//! the central interval of those days over the replicates are the forecast and its prediction
//! interval. Days are counted from the cut-off (day 0); a count already reached has its day
//! (zero or negative) and no interval.

use chrono::NaiveDate;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1, Gamma};
use serde::Serialize;

use crate::endpoints::{self, CensorReason, DataCutoff, EndpointRow, Outcome};
use crate::protocol::{EndpointKind, Protocol};

/// Replicates simulated from one seeded stream (see [`forecast`]).
const REPLICATES_PER_CHUNK: usize = 64;

/// One randomised subject as of the cut-off (day 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Subject {
    /// Day of randomisation (`<= 0`).
    pub entry: f64,
    pub status: Status,
}

/// Where a subject's follow-up stands at the cut-off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Status {
    /// The event happened on this day (`entry <= at <= 0`).
    Event { at: f64 },
    /// Followed to the cut-off without the event.
    AtRisk,
    /// Follow-up ended on this day without the event (drop-out).
    Lost { at: f64 },
    /// Followed without the event to the end of the endpoint's horizon on this day: no event
    /// can come.
    Completed { at: f64 },
}

/// The event hazard's shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Hazard {
    Exponential,
    /// Constant within pieces that start at 0 and at each cut (days from randomisation,
    /// increasing, positive).
    PiecewiseExponential {
        cuts: Vec<f64>,
    },
}

/// What to forecast and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Subjects the trial will randomise in all.
    pub target_subjects: usize,
    /// Event counts to forecast (each planned look's, the final one).
    pub targets: Vec<u64>,
    pub hazard: Hazard,
    /// Whether drop-out competes with the event.
    pub drop_out: bool,
    pub replicates: usize,
    /// Coverage of the prediction interval (e.g. 0.9).
    pub level: f64,
    /// Days after the cut-off beyond which a count counts as not reached.
    pub horizon_days: f64,
    /// Days from randomisation after which an event no longer counts (the endpoint's
    /// horizon), if any.
    pub max_follow_up: Option<f64>,
    pub seed: u64,
}

impl Settings {
    /// 1,000 replicates, a 90% interval, exponential hazards with drop-out, a horizon of 20 years.
    pub fn new(target_subjects: usize, targets: Vec<u64>) -> Settings {
        Settings {
            target_subjects,
            targets,
            hazard: Hazard::Exponential,
            drop_out: true,
            replicates: 1000,
            level: 0.9,
            horizon_days: 20.0 * 365.25,
            max_follow_up: None,
            seed: 20_261_205,
        }
    }
}

/// The forecast of one event count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetForecast {
    pub events: u64,
    /// Day it was reached (`<= 0`), when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reached_on_day: Option<f64>,
    /// Median day it will be reached, when at least half the replicates reach it in the horizon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_day: Option<f64>,
    /// The prediction interval's ends, when the replicates reach it often enough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower_day: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper_day: Option<f64>,
    /// Share of replicates reaching it within the horizon.
    pub probability_reached: f64,
}

/// The estimates the forecast started from, and its forecasts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    pub subjects: usize,
    pub events: u64,
    pub dropped_out: u64,
    /// Randomisations per day so far (`None` once the target is reached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accrual_per_day: Option<f64>,
    /// Events per day at risk, per piece.
    pub hazard_per_day: Vec<f64>,
    #[serde(flatten)]
    pub hazard: Hazard,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_out_per_day: Option<f64>,
    pub replicates: usize,
    pub level: f64,
    pub targets: Vec<TargetForecast>,
}

/// Why no forecast can be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForecastError {
    #[error("{0}")]
    Invalid(String),
}

/// Pieces' start days (0 first) of `hazard`.
fn starts(hazard: &Hazard) -> Result<Vec<f64>, ForecastError> {
    let mut out = vec![0.0];
    if let Hazard::PiecewiseExponential { cuts } = hazard {
        for &c in cuts {
            if !(c.is_finite() && c > *out.last().unwrap_or(&0.0)) {
                return Err(ForecastError::Invalid(format!(
                    "hazard cuts must be positive, finite and increasing; got {cuts:?}"
                )));
            }
            out.push(c);
        }
    }
    Ok(out)
}

/// Days at risk in each piece of a follow-up from day 0 to `t` after randomisation.
fn add_exposure(starts: &[f64], t: f64, exposure: &mut [f64]) {
    for (j, &s) in starts.iter().enumerate() {
        let end = starts.get(j + 1).copied().unwrap_or(f64::INFINITY);
        if t <= s {
            break;
        }
        exposure[j] += t.min(end) - s;
    }
}

fn piece_of(starts: &[f64], t: f64) -> usize {
    starts.iter().rposition(|&s| t >= s).unwrap_or(0)
}

/// Time from `s` (days after randomisation) to the event under piecewise rates, given a unit
/// exponential draw `e`; infinite when every rate from there on is zero.
fn residual(starts: &[f64], rates: &[f64], s: f64, mut e: f64) -> f64 {
    let mut j = piece_of(starts, s);
    let mut t = s;
    loop {
        let end = starts.get(j + 1).copied().unwrap_or(f64::INFINITY);
        let rate = rates[j];
        if rate > 0.0 {
            let need = e / rate;
            if t + need < end {
                return t + need - s;
            }
        }
        if end.is_infinite() {
            return f64::INFINITY;
        }
        e -= rate * (end - t);
        t = end;
        j += 1;
    }
}

/// A draw from `Gamma(shape, rate)`.
fn gamma(rng: &mut ChaCha8Rng, shape: f64, rate: f64) -> f64 {
    match Gamma::new(shape, 1.0 / rate) {
        Ok(g) => g.sample(rng),
        Err(_) => 0.0,
    }
}

/// Forecast the days the targets are reached.
pub fn forecast(subjects: &[Subject], settings: &Settings) -> Result<Forecast, ForecastError> {
    let invalid = |m: String| Err(ForecastError::Invalid(m));
    if subjects.is_empty() {
        return invalid("no subject is randomised yet: nothing to forecast from".into());
    }
    if settings.replicates == 0 || !(settings.level > 0.0 && settings.level < 1.0) {
        return invalid("replicates must be positive and the level within (0, 1)".into());
    }
    let starts = starts(&settings.hazard)?;
    let mut exposure = vec![0.0; starts.len()];
    let mut counts = vec![0u64; starts.len()];
    let mut observed: Vec<f64> = Vec::new();
    let (mut lost, mut followed) = (0u64, 0.0);
    let mut first_entry = f64::INFINITY;
    for (i, s) in subjects.iter().enumerate() {
        let end = match s.status {
            Status::Event { at } | Status::Lost { at } | Status::Completed { at } => at,
            Status::AtRisk => 0.0,
        };
        if !(s.entry.is_finite() && s.entry <= 0.0 && end >= s.entry && end <= 0.0) {
            return invalid(format!(
                "subject {i}: randomised on day {} with follow-up to day {end} (days must run \
                 from randomisation to the cut-off, day 0)",
                s.entry
            ));
        }
        first_entry = first_entry.min(s.entry);
        let t = end - s.entry;
        add_exposure(&starts, t, &mut exposure);
        followed += t;
        match s.status {
            Status::Event { at } => {
                counts[piece_of(&starts, t)] += 1;
                observed.push(at);
            }
            Status::Lost { .. } => lost += 1,
            Status::AtRisk | Status::Completed { .. } => {}
        }
    }
    observed.sort_by(f64::total_cmp);
    let events = observed.len() as u64;
    let remaining = settings.target_subjects.saturating_sub(subjects.len());
    // The accrual period: from the first randomisation to the cut-off (at least a day).
    let accrual_days = (-first_entry).max(1.0);
    let accrual = (remaining > 0).then(|| subjects.len() as f64 / accrual_days);
    let hazard_per_day: Vec<f64> = counts
        .iter()
        .zip(&exposure)
        .map(|(&d, &e)| if e > 0.0 { d as f64 / e } else { 0.0 })
        .collect();
    let drop_out = (settings.drop_out && followed > 0.0).then(|| lost as f64 / followed);

    let at_risk: Vec<f64> = subjects
        .iter()
        .filter(|s| s.status == Status::AtRisk)
        .map(|s| -s.entry)
        .collect();
    let pending: Vec<&u64> = settings.targets.iter().filter(|&&t| t > events).collect();
    let most = pending.iter().map(|&&t| t - events).max().unwrap_or(0) as usize;
    // Per target not yet reached: the day it is reached in each replicate (infinite: not in
    // the horizon).
    let mut days: Vec<Vec<f64>> = vec![Vec::with_capacity(settings.replicates); pending.len()];
    if most > 0 {
        // Replicates in chunks of their own seeded stream, run in parallel and gathered in
        // chunk order: the forecast is the same on any number of threads.
        use rayon::prelude::*;
        let chunks = settings.replicates.div_ceil(REPLICATES_PER_CHUNK);
        let by_chunk: Vec<Vec<Vec<f64>>> = (0..chunks)
            .into_par_iter()
            .map(|c| {
                let n = REPLICATES_PER_CHUNK.min(settings.replicates - c * REPLICATES_PER_CHUNK);
                let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
                rng.set_stream(c as u64);
                let mut days: Vec<Vec<f64>> = vec![Vec::with_capacity(n); pending.len()];
                let mut future: Vec<f64> = Vec::new();
                for _ in 0..n {
                    let rates: Vec<f64> = counts
                        .iter()
                        .zip(&exposure)
                        .map(|(&d, &e)| {
                            if e > 0.0 {
                                gamma(&mut rng, d as f64 + 0.5, e)
                            } else {
                                // A piece nobody reached yet: the last piece with exposure
                                // speaks for it.
                                f64::NAN
                            }
                        })
                        .collect();
                    let rates = fill_forward(rates);
                    let mu = match (settings.drop_out, followed > 0.0) {
                        (true, true) => gamma(&mut rng, lost as f64 + 0.5, followed),
                        _ => 0.0,
                    };
                    future.clear();
                    let mut outcome = |rng: &mut ChaCha8Rng, since: f64, at: f64| {
                        let e: f64 = Exp1.sample(rng);
                        let t = residual(&starts, &rates, since, e);
                        let dropped = if mu > 0.0 {
                            <Exp1 as Distribution<f64>>::sample(&Exp1, rng) / mu
                        } else {
                            f64::INFINITY
                        };
                        let counted = settings.max_follow_up.is_none_or(|h| since + t <= h);
                        if t < dropped && counted {
                            let day = at + t;
                            if day <= settings.horizon_days {
                                future.push(day);
                            }
                        }
                    };
                    for &since in &at_risk {
                        outcome(&mut rng, since, 0.0);
                    }
                    if let Some(rate) = accrual {
                        let rate =
                            gamma(&mut rng, subjects.len() as f64, accrual_days).max(rate * 1e-6);
                        let mut day = 0.0;
                        for _ in 0..remaining {
                            let step: f64 = Exp1.sample(&mut rng);
                            day += step / rate;
                            if day > settings.horizon_days {
                                break;
                            }
                            outcome(&mut rng, 0.0, day);
                        }
                    }
                    if future.len() > most {
                        future.select_nth_unstable_by(most - 1, f64::total_cmp);
                        future.truncate(most);
                    }
                    future.sort_by(f64::total_cmp);
                    for (k, &&target) in pending.iter().enumerate() {
                        let m = (target - events) as usize;
                        days[k].push(future.get(m - 1).copied().unwrap_or(f64::INFINITY));
                    }
                }
                days
            })
            .collect();
        for chunk in by_chunk {
            for (k, d) in chunk.into_iter().enumerate() {
                days[k].extend(d);
            }
        }
    }
    let tail = (1.0 - settings.level) / 2.0;
    let mut targets = Vec::with_capacity(settings.targets.len());
    let mut k = 0;
    for &target in &settings.targets {
        if target <= events {
            targets.push(TargetForecast {
                events: target,
                reached_on_day: (target > 0)
                    .then(|| observed[target as usize - 1])
                    .or(Some(first_entry)),
                median_day: None,
                lower_day: None,
                upper_day: None,
                probability_reached: 1.0,
            });
            continue;
        }
        let mut d = std::mem::take(&mut days[k]);
        k += 1;
        d.sort_by(f64::total_cmp);
        let finite = d.iter().filter(|x| x.is_finite()).count();
        let at = |p: f64| {
            let v = crate::endpoints::flow::quantile(&d, p)?;
            v.is_finite().then_some(v)
        };
        targets.push(TargetForecast {
            events: target,
            reached_on_day: None,
            median_day: at(0.5),
            lower_day: at(tail),
            upper_day: at(1.0 - tail),
            probability_reached: finite as f64 / d.len().max(1) as f64,
        });
    }
    Ok(Forecast {
        subjects: subjects.len(),
        events,
        dropped_out: lost,
        accrual_per_day: accrual,
        hazard_per_day,
        hazard: settings.hazard.clone(),
        drop_out_per_day: drop_out,
        replicates: settings.replicates,
        level: settings.level,
        targets,
    })
}

/// When the trial's planned looks will be reached: the forecast for the primary endpoint, in
/// dates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialForecast {
    pub endpoint: String,
    /// Day 0 of the forecast: the primary endpoint's complete-through date (the cut-off minus
    /// its sources' reporting lag).
    pub complete_through: NaiveDate,
    /// Each planned look's event count (the last is the final analysis's), in dates.
    pub looks: Vec<LookForecast>,
    /// The estimates and the day-based forecast they came from (left out where counts are
    /// released under disclosure control: they hold the pooled event and drop-out counts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<Forecast>,
}

impl Outlook {
    /// As released to blinded readers under disclosure control: the dates and intervals, not
    /// the counts and rates they came from.
    pub fn released(&self) -> Outlook {
        match self {
            Outlook::Forecast(f) => Outlook::Forecast(Box::new(TrialForecast {
                model: None,
                ..(**f).clone()
            })),
            other => other.clone(),
        }
    }
}

/// One look's event count: reached on a date, or expected on a date within an interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LookForecast {
    pub look: usize,
    pub events: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reached_on: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_on: Option<NaiveDate>,
    /// The prediction interval (at the model's level), when the replicates reach the count
    /// often enough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<[NaiveDate; 2]>,
    pub probability_reached: f64,
}

fn date_at(day0: NaiveDate, day: f64) -> Option<NaiveDate> {
    let days = day.round();
    if !days.is_finite() || days.abs() > 1e6 {
        return None;
    }
    day0.checked_add_signed(chrono::Duration::days(days as i64))
}

/// The forecast of the looks, or why none can be made yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Outlook {
    Forecast(Box<TrialForecast>),
    NotYet { note: String },
}

/// [`of_trial`] as an [`Outlook`].
pub fn outlook(protocol: &Protocol, rows: &[EndpointRow], cutoff: DataCutoff) -> Option<Outlook> {
    of_trial(protocol, rows, cutoff).map(|r| match r {
        Ok(f) => Outlook::Forecast(Box::new(f)),
        Err(note) => Outlook::NotYet { note },
    })
}

/// The forecast of the planned looks of `protocol`'s primary endpoint from its rows as of
/// `cutoff` (blinded: arms are not used). `None` when the protocol plans no looks or its primary
/// endpoint is not time-to-event; a note when no forecast can be made yet.
pub fn of_trial(
    protocol: &Protocol,
    rows: &[EndpointRow],
    cutoff: DataCutoff,
) -> Option<Result<TrialForecast, String>> {
    let plan = protocol.monitoring.as_ref()?;
    let endpoint = protocol.primary_endpoint()?;
    let EndpointKind::TimeToEvent { horizon_days, .. } = &endpoint.kind else {
        return None;
    };
    let day0 = endpoints::complete_through(&protocol.follow_up, endpoint, cutoff);
    let planned = f64::from(plan.planned_events);
    let targets: Vec<u64> = plan
        .looks
        .iter()
        .map(|t| (t * planned).ceil() as u64)
        .collect();
    let subjects: Vec<Subject> = rows
        .iter()
        .filter_map(|r| {
            let Outcome::TimeToEvent { time_days, event } = r.outcome else {
                return None;
            };
            let entry = ((r.subject.randomised_on - day0).num_days() as f64).min(0.0);
            let end = entry + time_days as f64;
            let status = match (&r.censor_reason, event) {
                (_, true) => Status::Event { at: end },
                (Some(CensorReason::Event(_)), false) => Status::Lost { at: end },
                (Some(CensorReason::Horizon), false) => Status::Completed { at: end },
                _ => Status::AtRisk,
            };
            Some(Subject { entry, status })
        })
        .collect();
    // A thousand replicates: the interval's ends to about a day or two, in the time a page
    // may take.
    let settings = Settings {
        max_follow_up: horizon_days.map(f64::from),
        hazard: if plan.forecast_hazard_cuts_days.is_empty() {
            Hazard::Exponential
        } else {
            Hazard::PiecewiseExponential {
                cuts: plan.forecast_hazard_cuts_days.clone(),
            }
        },
        replicates: 1000,
        ..Settings::new(protocol.target_sample_size as usize, targets.clone())
    };
    Some(
        forecast(&subjects, &settings)
            .map_err(|e| e.to_string())
            .map(|model| TrialForecast {
                endpoint: endpoint.id.clone(),
                complete_through: day0,
                looks: model
                    .targets
                    .iter()
                    .enumerate()
                    .map(|(k, t)| LookForecast {
                        look: k + 1,
                        events: t.events,
                        reached_on: t.reached_on_day.and_then(|d| date_at(day0, d)),
                        expected_on: t.median_day.and_then(|d| date_at(day0, d)),
                        interval: match (t.lower_day, t.upper_day) {
                            (Some(lo), Some(hi)) => date_at(day0, lo)
                                .zip(date_at(day0, hi))
                                .map(|(a, b)| [a, b]),
                            _ => None,
                        },
                        probability_reached: t.probability_reached,
                    })
                    .collect(),
                model: Some(model),
            }),
    )
}

/// Pieces without exposure take the rate of the last piece before them that has one (or, at
/// the start, the first after).
fn fill_forward(mut rates: Vec<f64>) -> Vec<f64> {
    let first = rates.iter().copied().find(|r| !r.is_nan()).unwrap_or(0.0);
    let mut last = first;
    for r in &mut rates {
        if r.is_nan() {
            *r = last;
        } else {
            last = *r;
        }
    }
    rates
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trial with known truth: accrual at `rate` per day of `n` subjects, exponential events
    /// at `lambda` per day, no drop-out. Returns the subjects as of `cutoff` (days from the
    /// first randomisation) and every event day in the full trial, shifted so the cut-off is
    /// day 0.
    fn trial(seed: u64, n: usize, rate: f64, lambda: f64, cutoff: f64) -> (Vec<Subject>, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut day = 0.0;
        let mut subjects = Vec::new();
        let mut all = Vec::new();
        for _ in 0..n {
            let step: f64 = Exp1.sample(&mut rng);
            day += step / rate;
            let t: f64 = Exp1.sample(&mut rng);
            let event = day + t / lambda;
            all.push(event - cutoff);
            if day <= cutoff {
                subjects.push(Subject {
                    entry: day - cutoff,
                    status: if event <= cutoff {
                        Status::Event { at: event - cutoff }
                    } else {
                        Status::AtRisk
                    },
                });
            }
        }
        all.sort_by(f64::total_cmp);
        (subjects, all)
    }

    #[test]
    fn counts_reached_are_read_off_the_data() {
        let subjects = [
            Subject {
                entry: -100.0,
                status: Status::Event { at: -50.0 },
            },
            Subject {
                entry: -90.0,
                status: Status::Event { at: -10.0 },
            },
            Subject {
                entry: -80.0,
                status: Status::AtRisk,
            },
            Subject {
                entry: -70.0,
                status: Status::Lost { at: -20.0 },
            },
        ];
        let f = forecast(&subjects, &Settings::new(4, vec![1, 2, 3])).unwrap();
        assert_eq!(f.events, 2);
        assert_eq!(f.targets[0].reached_on_day, Some(-50.0));
        assert_eq!(f.targets[1].reached_on_day, Some(-10.0));
        assert!(f.targets[2].reached_on_day.is_none());
        // Hand-computed: 2 events over 50 + 80 + 80 + 50 = 260 days at risk.
        assert!((f.hazard_per_day[0] - 2.0 / 260.0).abs() < 1e-15);
        assert!((f.drop_out_per_day.unwrap() - 1.0 / 260.0).abs() < 1e-15);
        // Everyone randomised: no accrual.
        assert!(f.accrual_per_day.is_none());
        // Only one subject is still at risk: the third event needs it, and it may drop out.
        let p = f.targets[2].probability_reached;
        assert!(p > 0.3 && p < 0.9, "{p}");
    }

    #[test]
    fn piecewise_rates_and_residuals_follow_the_pieces() {
        let starts = [0.0, 10.0];
        let rates = [0.1, 1.0];
        // A unit draw of 0.5 from day 0: 5 days in the first piece.
        assert!((residual(&starts, &rates, 0.0, 0.5) - 5.0).abs() < 1e-12);
        // A unit draw of 1.5 from day 0: 10 days spend 1.0, the rest 0.5 at rate 1.
        assert!((residual(&starts, &rates, 0.0, 1.5) - 10.5).abs() < 1e-12);
        // From day 12, all in the second piece.
        assert!((residual(&starts, &rates, 12.0, 2.0) - 2.0).abs() < 1e-12);
        assert!(residual(&[0.0], &[0.0], 0.0, 1.0).is_infinite());
        let mut exposure = [0.0, 0.0];
        add_exposure(&starts, 25.0, &mut exposure);
        assert_eq!(exposure, [10.0, 15.0]);
        assert!(forecast(
            &[Subject {
                entry: -1.0,
                status: Status::AtRisk
            }],
            &Settings {
                hazard: Hazard::PiecewiseExponential {
                    cuts: vec![5.0, 5.0]
                },
                ..Settings::new(1, vec![1])
            }
        )
        .is_err());
    }

    #[test]
    fn bad_input_is_refused_with_the_subject() {
        let e = forecast(
            &[
                Subject {
                    entry: -5.0,
                    status: Status::AtRisk,
                },
                Subject {
                    entry: -5.0,
                    status: Status::Event { at: -6.0 },
                },
            ],
            &Settings::new(2, vec![1]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("subject 1"), "{e}");
        assert!(forecast(&[], &Settings::new(2, vec![1])).is_err());
    }

    /// Trials whose true dates are known: the 90% interval covers the true day of the wanted
    /// count in about 90% of them.
    #[test]
    fn the_interval_covers_the_true_day_about_as_often_as_it_says() {
        let (trials, mut covered) = (300, 0);
        let mut widths = Vec::new();
        for seed in 0..trials {
            let (subjects, all) = trial(seed, 600, 4.0, 1.0 / 400.0, 120.0);
            let events = subjects
                .iter()
                .filter(|s| matches!(s.status, Status::Event { .. }))
                .count() as u64;
            let target = events + 60;
            let truth = all[target as usize - 1];
            let settings = Settings {
                drop_out: false,
                replicates: 300,
                seed: 1000 + seed,
                ..Settings::new(600, vec![target])
            };
            let f = forecast(&subjects, &settings).unwrap();
            let t = &f.targets[0];
            let (lo, hi) = (t.lower_day.unwrap(), t.upper_day.unwrap());
            widths.push(hi - lo);
            if lo <= truth && truth <= hi {
                covered += 1;
            }
        }
        let coverage = f64::from(covered) / trials as f64;
        eprintln!("exponential: 90% interval covered the true day in {coverage:.3} of {trials}");
        // 300 trials: a binomial standard error of about 1.7 points around 90%.
        assert!((0.85..=0.95).contains(&coverage), "coverage {coverage}");
        assert!(widths.iter().all(|w| *w > 0.0));
    }

    /// As above with a hazard that falls after 60 days and drop-out competing: the
    /// piecewise model with drop-out covers the truth about as often as it says.
    #[test]
    fn piecewise_hazards_with_drop_out_are_covered_too() {
        let (trials, mut covered) = (400, 0);
        for seed in 0..trials {
            let mut rng = ChaCha8Rng::seed_from_u64(500 + seed);
            let (n, rate, cutoff) = (600, 4.0, 120.0);
            let (starts, rates, mu) = ([0.0, 60.0], [1.0 / 150.0, 1.0 / 900.0], 1.0 / 1500.0);
            let mut day = 0.0;
            let (mut subjects, mut all) = (Vec::new(), Vec::new());
            for _ in 0..n {
                let step: f64 = Exp1.sample(&mut rng);
                day += step / rate;
                let e: f64 = Exp1.sample(&mut rng);
                let t = residual(&starts, &rates, 0.0, e);
                let d: f64 = Exp1.sample(&mut rng);
                let lost = day + d / mu;
                let event = day + t;
                if event < lost {
                    all.push(event - cutoff);
                }
                if day <= cutoff {
                    let status = if event.min(lost) > cutoff {
                        Status::AtRisk
                    } else if event < lost {
                        Status::Event { at: event - cutoff }
                    } else {
                        Status::Lost { at: lost - cutoff }
                    };
                    subjects.push(Subject {
                        entry: day - cutoff,
                        status,
                    });
                }
            }
            all.sort_by(f64::total_cmp);
            let events = subjects
                .iter()
                .filter(|s| matches!(s.status, Status::Event { .. }))
                .count() as u64;
            let target = events + 50;
            let truth = all[target as usize - 1];
            let settings = Settings {
                hazard: Hazard::PiecewiseExponential { cuts: vec![60.0] },
                replicates: 300,
                seed: 9000 + seed,
                ..Settings::new(n, vec![target])
            };
            let f = forecast(&subjects, &settings).unwrap();
            let t = &f.targets[0];
            if t.lower_day.unwrap() <= truth && truth <= t.upper_day.unwrap() {
                covered += 1;
            }
        }
        let coverage = f64::from(covered) / trials as f64;
        eprintln!("piecewise with drop-out: covered in {coverage:.3} of {trials}");
        // 400 trials: a binomial standard error of 1.5 points around 90%.
        assert!((0.85..=0.95).contains(&coverage), "coverage {coverage}");
    }
}
