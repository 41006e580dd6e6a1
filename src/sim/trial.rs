//! One simulated trial, in memory, through the engine's own code: registrations arrive at the
//! sites, the protocol's eligibility criteria and stratum (`protocol`), the protocol's
//! allocation procedure on the engine's seeded streams (`randomise::allocate_with`, with the
//! current permuted block kept rather than re-derived for every slot), register events with
//! reporting delays, the primary endpoint derived per subject as of each look's cut-off
//! (`endpoints::subject_outcome`), the look's Cox statistic (`analysis::interim`) and the
//! group-sequential boundaries (`design::efficacy_boundaries`).
//!
//! Randomness: allocations draw from the engine's ChaCha20 streams under the replicate's
//! master seed; the world (arrivals, patients, outcomes, delays) from a separate ChaCha8
//! stream of the same replicate (exponential and normal draws by rand_distr's ziggurat). Both
//! are pure functions of (scenario seed, replicate number) for a given build of rrct.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::NaiveDate;
use rand::Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::scenario::{Covariate, EffectKind, Scenario};
use crate::design::{self, Sided, SpendingFunction};
use crate::endpoints::{self, DataCutoff, KnownEvent, Outcome};
use crate::protocol::{self, Criterion, Endpoint, EndpointKind, FieldKind, Protocol, Value};
use crate::randomise::quality::{guess_score, imbalance};
use crate::randomise::{self, AllocationContext, Decision, MasterSeed, Scheme, StratumState};

/// What one simulated trial produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialOutcome {
    /// Whether an efficacy boundary was crossed (the null hypothesis rejected).
    pub rejected: bool,
    /// 0-based index of the planned look at which the trial stopped for efficacy.
    pub stopped_at: Option<usize>,
    /// Per planned look: whether it was held.
    pub looks_held: Vec<bool>,
    /// Subjects randomised by the last analysis.
    pub subjects: u64,
    /// Primary-endpoint events at the last analysis.
    pub events: u64,
    /// Days from the first registration day to the last analysis.
    pub duration_days: u32,
    /// Hazard ratio (experimental vs reference) at the last analysis, when estimable.
    pub hazard_ratio: Option<f64>,
    /// `D = Σ|n_a − n·r_a/R|` over all subjects randomised by the last analysis.
    pub final_imbalance: f64,
    /// The same within each stratum used.
    pub stratum_imbalances: Vec<f64>,
    /// Expected correct convergence guesses, trial-wide and within strata, over the subjects
    /// randomised by the last analysis.
    pub correct_guesses: f64,
    pub correct_guesses_within: f64,
    /// The looks analysed, in order (up to the one that stopped the trial).
    pub looks: Vec<SimLook>,
}

/// One analysed look of a simulated trial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimLook {
    /// 0-based index of the planned look.
    pub look: usize,
    /// Cut-off day, counted from the scenario's start date.
    pub day: u32,
    pub events: u64,
    pub information_fraction: f64,
    /// Oriented so that benefit of the experimental arm is positive; `None` when the hazard
    /// ratio is not estimable.
    pub z: Option<f64>,
    pub upper_z: Option<f64>,
}

/// Where a criterion, stratum or factor reads its value.
#[derive(Debug, Clone, Copy)]
enum Source {
    Site,
    Field(usize),
    /// Derived field `.0`, computed from field `.1`.
    Derived(usize, usize),
}

/// One drawn enrolment field.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Draw {
    Integer(i64),
    Number(f64),
    Level(usize),
    Boolean(bool),
    Absent,
}

impl Draw {
    fn as_f64(self) -> f64 {
        match self {
            Draw::Integer(i) => i as f64,
            Draw::Number(x) => x,
            Draw::Boolean(b) => f64::from(u8::from(b)),
            Draw::Level(_) | Draw::Absent => 0.0,
        }
    }
}

/// The scenario made ready for fast replicates: every name resolved to a position once.
pub struct Plan<'a> {
    sc: &'a Scenario,
    protocol: &'a Protocol,
    scheme: Scheme,
    endpoint: &'a Endpoint,
    ratios: Vec<u32>,
    /// Each criterion with where it reads its value and its verdicts over the values that
    /// source can take, where they are few (see [`Verdicts`]).
    inclusion: Vec<(&'a Criterion, Source, Option<Verdicts>)>,
    exclusion: Vec<(&'a Criterion, Source, Option<Verdicts>)>,
    strata: Vec<(Source, usize)>,
    factors: Vec<(Source, usize)>,
    site_values: Vec<Value>,
    level_values: Vec<Vec<Value>>,
    derived_values: Vec<Vec<Value>>,
    /// Event types: the outcome models' in order, then the dropout event.
    types: Vec<&'a str>,
    codes: Vec<Option<&'a str>>,
    /// Whether an event of that type (with its code) is a primary-endpoint event.
    primary: Vec<bool>,
    horizon: Option<i64>,
    /// Event count at which each planned look is held.
    targets: Vec<u64>,
    /// Per outcome model, each covariate effect as hazard multipliers looked up by value
    /// (computed once instead of an `exp` per subject).
    multipliers: Vec<Vec<(usize, Multiplier)>>,
    experimental: usize,
    reference: usize,
    sided: Sided,
    spending: SpendingFunction,
    dates: Vec<NaiveDate>,
    /// Efficacy boundaries by the looks' information fractions (as bit patterns): replicates
    /// hold their looks at nearly the same event counts, so most need no new integration.
    boundaries: std::sync::Mutex<HashMap<Vec<u64>, Vec<f64>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the protocol's randomisation cannot be run: {0}")]
    Scheme(#[from] randomise::SchemeError),
    #[error("{0}")]
    Design(String),
}

impl<'a> Plan<'a> {
    pub fn new(sc: &'a Scenario) -> Result<Self, PlanError> {
        let protocol = &sc.protocol;
        let scheme = Scheme::from_protocol(protocol)?;
        let endpoint = protocol
            .primary_endpoint()
            .ok_or_else(|| PlanError::Design("the protocol has no primary endpoint".into()))?;
        let EndpointKind::TimeToEvent {
            events: selector,
            horizon_days,
        } = &endpoint.kind
        else {
            return Err(PlanError::Design(
                "the primary endpoint is not time-to-event".into(),
            ));
        };
        let resolve = |name: &str| -> Source {
            if name == "site" {
                return Source::Site;
            }
            if let Some(i) = protocol.fields.iter().position(|f| f.name == name) {
                return Source::Field(i);
            }
            let d = protocol
                .derived
                .iter()
                .position(|d| d.name == name)
                .unwrap_or(0);
            let from = protocol
                .fields
                .iter()
                .position(|f| f.name == protocol.derived[d].from)
                .unwrap_or(0);
            Source::Derived(d, from)
        };
        let levels_of = |src: Source| -> usize {
            match src {
                Source::Site => protocol.sites.len(),
                Source::Field(i) => match &protocol.fields[i].kind {
                    FieldKind::Category { levels } => levels.len(),
                    _ => 2,
                },
                Source::Derived(d, _) => protocol.derived[d].labels.len(),
            }
        };
        let criteria = |list: &'a [Criterion]| -> Vec<(&'a Criterion, Source, Option<Verdicts>)> {
            list.iter().map(|c| (c, resolve(&c.field), None)).collect()
        };
        let strata = protocol
            .randomisation
            .strata
            .iter()
            .map(|s| {
                let src = resolve(s);
                (src, levels_of(src))
            })
            .collect();
        let factors = scheme
            .factors()
            .iter()
            .map(|f| {
                let src = resolve(&f.name);
                (src, levels_of(src))
            })
            .collect();
        let mut types: Vec<&str> = sc.outcomes.iter().map(|o| o.event_type.as_str()).collect();
        let mut codes: Vec<Option<&str>> = sc.outcomes.iter().map(|o| o.code.as_deref()).collect();
        if let Some(d) = &sc.dropout {
            types.push(&d.event_type);
            codes.push(None);
        }
        let primary = types
            .iter()
            .zip(&codes)
            .map(|(t, c)| {
                selector.types.iter().any(|s| s == t)
                    && (selector.codes.is_empty()
                        || c.is_some_and(|c| selector.codes.iter().any(|p| c.starts_with(p))))
            })
            .collect();
        let m = &sc.monitoring;
        let planned = f64::from(m.planned_events);
        let targets = m
            .looks
            .iter()
            .map(|t| (t * planned).ceil() as u64)
            .collect();
        let spending = m.spending;
        let dates = (0..=sc.max_duration_days + 1)
            .map(|d| sc.start_date + chrono::Days::new(u64::from(d)))
            .collect();
        let mut plan = Plan {
            sc,
            protocol,
            ratios: scheme.ratios().to_vec(),
            scheme,
            endpoint,
            inclusion: criteria(&protocol.inclusion),
            exclusion: criteria(&protocol.exclusion),
            strata,
            factors,
            site_values: protocol
                .sites
                .iter()
                .map(|s| Value::Text(s.code.clone()))
                .collect(),
            level_values: protocol
                .fields
                .iter()
                .map(|f| match &f.kind {
                    FieldKind::Category { levels } => {
                        levels.iter().map(|l| Value::Text(l.clone())).collect()
                    }
                    _ => Vec::new(),
                })
                .collect(),
            derived_values: protocol
                .derived
                .iter()
                .map(|d| d.labels.iter().map(|l| Value::Text(l.clone())).collect())
                .collect(),
            types,
            codes,
            primary,
            horizon: horizon_days.map(i64::from),
            targets,
            multipliers: sc
                .outcomes
                .iter()
                .map(|m| {
                    m.effects
                        .iter()
                        .map(|e| {
                            (
                                e.field,
                                Multiplier::new(&e.kind, &protocol.fields[e.field].kind),
                            )
                        })
                        .collect()
                })
                .collect(),
            experimental: 0,
            reference: protocol.arms.len() - 1,
            sided: if m.sided == 1 { Sided::One } else { Sided::Two },
            spending,
            dates,
            boundaries: Default::default(),
        };
        for k in 0..plan.inclusion.len() {
            let (c, src, _) = plan.inclusion[k];
            plan.inclusion[k].2 = plan.tabulate(c, src);
        }
        for k in 0..plan.exclusion.len() {
            let (c, src, _) = plan.exclusion[k];
            plan.exclusion[k].2 = plan.tabulate(c, src);
        }
        Ok(plan)
    }

    /// Criterion `c`'s verdict on every value of a source with few values (a site, a level,
    /// a boolean, a bounded integer, a derived band), each from `Criterion::is_met` on the
    /// value [`Plan::value`] gives; `None` for a number, judged each time.
    fn tabulate(&self, c: &Criterion, src: Source) -> Option<Verdicts> {
        let met = |values: &[Value]| values.iter().map(|v| c.is_met(v)).collect();
        Some(match src {
            Source::Site => Verdicts::Sites(met(&self.site_values)),
            Source::Derived(d, _) => Verdicts::Bands(met(&self.derived_values[d])),
            Source::Field(i) => match self.protocol.fields[i].kind {
                FieldKind::Category { .. } => Verdicts::Levels(met(&self.level_values[i])),
                FieldKind::Boolean => {
                    Verdicts::Booleans(met(&[Value::Boolean(false), Value::Boolean(true)]))
                }
                FieldKind::Integer {
                    min: Some(lo),
                    max: Some(hi),
                } if hi >= lo && hi - lo <= Multiplier::MAX_TABLE => Verdicts::Integers {
                    offset: lo,
                    met: (lo..=hi).map(|v| c.is_met(&Value::Integer(v))).collect(),
                },
                _ => return None,
            },
        })
    }

    /// Whether criterion `c` is met by the subject's value (`None`: no value), from its
    /// verdicts where they apply to the drawn value, else from `Criterion::is_met`.
    fn verdict(
        &self,
        c: &Criterion,
        src: Source,
        verdicts: Option<&Verdicts>,
        site: usize,
        row: &[Draw],
    ) -> Option<bool> {
        let tabled = match (verdicts, src) {
            (Some(Verdicts::Sites(met)), Source::Site) => Some(met.get(site).copied()),
            (Some(Verdicts::Bands(met)), Source::Derived(d, from)) => match row[from] {
                Draw::Integer(_) | Draw::Number(_) => Some(
                    met.get(self.protocol.derived[d].band(row[from].as_f64()))
                        .copied(),
                ),
                _ => Some(None),
            },
            (Some(v), Source::Field(i)) => match (v, row[i]) {
                (_, Draw::Absent) => Some(None),
                (Verdicts::Levels(met), Draw::Level(l)) => Some(met.get(l).copied()),
                (Verdicts::Booleans(met), Draw::Boolean(b)) => {
                    Some(met.get(usize::from(b)).copied())
                }
                (Verdicts::Integers { offset, met }, Draw::Integer(x)) => {
                    usize::try_from(x - offset)
                        .ok()
                        .and_then(|k| met.get(k))
                        .map(|&m| Some(m))
                }
                _ => None,
            },
            _ => None,
        };
        tabled.unwrap_or_else(|| self.value(src, site, row).map(|v| c.is_met(&v)))
    }

    /// The allocation procedure's name.
    pub fn procedure(&self) -> &'static str {
        self.scheme.procedure()
    }

    /// The master seed of replicate `r` under scenario seed `seed`.
    pub fn replicate_seed(seed: u64, r: u64) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"rrct/simulate/v1\0");
        h.update(seed.to_be_bytes());
        h.update(r.to_be_bytes());
        h.finalize().into()
    }

    fn value<'v>(&'v self, src: Source, site: usize, row: &[Draw]) -> Option<Cow<'v, Value>> {
        match src {
            Source::Site => Some(Cow::Borrowed(&self.site_values[site])),
            Source::Field(i) => match row[i] {
                Draw::Integer(v) => Some(Cow::Owned(Value::Integer(v))),
                Draw::Number(v) => Some(Cow::Owned(Value::Number(v))),
                Draw::Boolean(b) => Some(Cow::Owned(Value::Boolean(b))),
                Draw::Level(l) => Some(Cow::Borrowed(&self.level_values[i][l])),
                Draw::Absent => None,
            },
            Source::Derived(d, from) => match row[from] {
                Draw::Integer(_) | Draw::Number(_) => {
                    let band = self.protocol.derived[d].band(row[from].as_f64());
                    self.derived_values[d].get(band).map(Cow::Borrowed)
                }
                _ => None,
            },
        }
    }

    fn level(&self, src: Source, site: usize, row: &[Draw]) -> usize {
        match src {
            Source::Site => site,
            Source::Field(i) => match row[i] {
                Draw::Level(l) => l,
                Draw::Boolean(b) => usize::from(b),
                _ => 0,
            },
            Source::Derived(d, from) => self.protocol.derived[d].band(row[from].as_f64()),
        }
    }

    /// The protocol's eligibility: every inclusion criterion met (and its field recorded), no
    /// exclusion criterion met.
    fn eligible(&self, site: usize, row: &[Draw]) -> bool {
        let judged = |(c, src, verdicts): &(&Criterion, Source, Option<Verdicts>)| {
            self.verdict(c, *src, verdicts.as_ref(), site, row)
        };
        self.inclusion.iter().all(|c| judged(c) == Some(true))
            && self.exclusion.iter().all(|c| judged(c) == Some(false))
    }

    /// The stratum key as the live engine writes it, from the factor values.
    fn stratum_key(&self, site: usize, row: &[Draw]) -> String {
        let pairs = self
            .protocol
            .randomisation
            .strata
            .iter()
            .zip(&self.strata)
            .filter_map(|(name, (src, _))| {
                self.value(*src, site, row)
                    .map(|v| (name.clone(), v.into_owned()))
            })
            .collect();
        protocol::stratum(self.protocol, &protocol::EnrolmentValues::from_pairs(pairs)).key
    }

    /// Run replicate `r` of the simulation with scenario seed `seed`.
    pub fn run(&self, seed: u64, r: u64) -> TrialOutcome {
        let world = self.world(seed, r);
        self.analyse(&world)
    }

    /// Registrations, allocations and events of replicate `r`.
    pub(crate) fn world(&self, seed: u64, r: u64) -> World {
        let bytes = Self::replicate_seed(seed, r);
        let master = MasterSeed::from_bytes(bytes);
        let mut rng = ChaCha8Rng::from_seed(bytes);
        let sc = self.sc;
        let arms = self.ratios.len();
        let trial = self.protocol.trial_id.as_str();
        let target = u64::from(self.protocol.target_sample_size);
        let site_cdf: Vec<(usize, f64)> = sc
            .accrual
            .sites
            .iter()
            .scan(0.0, |acc, &(i, w)| {
                *acc += w;
                Some((i, *acc))
            })
            .collect();
        let rate = sc.accrual.registrations_per_day * sc.accrual.eligible_share;
        let ramp = sc.accrual.ramp_up_days;
        // Λ(t) = rate·t²/(2·ramp) on the ramp, then linear: arrivals by inverting it.
        let inverse = |lambda: f64| -> f64 {
            let on_ramp = rate * ramp / 2.0;
            if ramp > 0.0 && lambda < on_ramp {
                (2.0 * lambda * ramp / rate).sqrt()
            } else {
                ramp + (lambda - on_ramp) / rate
            }
        };
        let mut world = World {
            subjects: Vec::new(),
            events: Vec::new(),
            strata: Vec::new(),
        };
        let mut strata = SlotIndex::new(self.strata.iter().map(|&(_, n)| n).product());
        let mut counts = vec![0u64; arms];
        let mut marginals: Vec<Vec<Vec<u64>>> = self
            .factors
            .iter()
            .map(|&(_, n)| vec![vec![0; arms]; n])
            .collect();
        let mut row = vec![Draw::Absent; self.protocol.fields.len()];
        let mut times = Vec::with_capacity(self.types.len());
        let mut levels: Vec<usize> = Vec::with_capacity(self.factors.len());
        let mut lambda = 0.0;
        while (world.subjects.len() as u64) < target {
            lambda += exp1(&mut rng);
            let t = inverse(lambda);
            if t.is_nan() || t >= f64::from(sc.accrual.max_days) {
                break;
            }
            let day = t as u32;
            let u = unit(&mut rng);
            let pick = site_cdf
                .partition_point(|(_, c)| *c <= u)
                .min(site_cdf.len().saturating_sub(1));
            let site = site_cdf.get(pick).map_or(0, |(i, _)| *i);
            for (i, cov) in sc.covariates.iter().enumerate() {
                row[i] = self.draw(i, cov, &mut rng);
            }
            if !self.eligible(site, &row) {
                continue;
            }
            // Stratum: mixed-radix index of the factor levels.
            let index = self.strata.iter().fold(0usize, |acc, &(src, n)| {
                acc * n + self.level(src, site, &row)
            });
            let slot = match strata.get(index) {
                Some(slot) => slot,
                None => {
                    let key = self.stratum_key(site, &row);
                    world.strata.push(StratumSlot {
                        streams: randomise::StratumStreams::new(&master, trial, &key),
                        key,
                        state: StratumState::default(),
                        counts: vec![0; arms],
                        block: Vec::new(),
                    });
                    strata.set(index, world.strata.len() - 1);
                    world.strata.len() - 1
                }
            };
            levels.clear();
            levels.extend(
                self.factors
                    .iter()
                    .map(|&(src, _)| self.level(src, site, &row)),
            );
            let s = &mut world.strata[slot];
            let decision = self.allocate(&master, trial, s, &marginals, &levels);
            let arm = decision.arm;
            let guess = guess_score(&counts, &self.ratios, arm);
            let guess_within = guess_score(&s.counts, &self.ratios, arm);
            s.state = decision.next;
            s.counts[arm] += 1;
            counts[arm] += 1;
            for (f, &l) in levels.iter().enumerate() {
                marginals[f][l][arm] += 1;
            }
            let first = world.events.len() as u32;
            self.outcomes(day, arm, &row, &mut rng, &mut times, &mut world.events);
            world.subjects.push(SimSubject {
                day,
                arm,
                stratum: slot,
                events: first..world.events.len() as u32,
                guess,
                guess_within,
            });
        }
        world
    }

    /// The engine's decision for the next patient of stratum `s`. Permuted blocks keep the
    /// stratum's current block (the list `randomise::block` derives) instead of deriving it
    /// again for every slot; `tests::blocks_match_the_engine` checks the sequence is the one
    /// `randomise::allocate` gives.
    fn allocate(
        &self,
        seed: &MasterSeed,
        trial: &str,
        s: &mut StratumSlot,
        marginals: &[Vec<Vec<u64>>],
        levels: &[usize],
    ) -> Decision {
        if let Scheme::PermutedBlocks {
            ratios,
            block_sizes,
        } = &self.scheme
        {
            let state = s.state;
            let (mut number, mut position) = (state.block_number, state.position);
            if s.block.is_empty() {
                s.block = randomise::block_of(ratios, block_sizes, &s.streams, number);
            }
            if position as usize >= s.block.len() {
                number += 1;
                position = 0;
                s.block = randomise::block_of(ratios, block_sizes, &s.streams, number);
            }
            return Decision {
                arm: s.block[position as usize],
                block_number: number,
                block_size: s.block.len() as u32,
                block_position: position,
                next: StratumState {
                    block_number: number,
                    position: position + 1,
                    allocated: state.allocated + 1,
                },
                detail: None,
            };
        }
        let open = self.protocol.open_arms();
        let ctx = AllocationContext {
            eligible_arms: open.contains(&false).then_some(open),
            arm_counts: s.counts.clone(),
            marginals: levels
                .iter()
                .enumerate()
                .map(|(f, &l)| marginals[f][l].clone())
                .collect(),
            ..AllocationContext::default()
        };
        // The context is built from the scheme's own factors and arms, so it always fits.
        randomise::allocate_with(&self.scheme, seed, trial, &s.key, &s.state, &ctx)
            .unwrap_or_else(|_| randomise::allocate(&self.scheme, seed, trial, &s.key, s.state))
    }

    fn draw(&self, field: usize, cov: &Covariate, rng: &mut ChaCha8Rng) -> Draw {
        let spec = &self.protocol.fields[field];
        let number = |x: f64| match spec.kind {
            FieldKind::Integer { min, max } => {
                let mut v = x.round() as i64;
                if let Some(m) = min {
                    v = v.max(m);
                }
                if let Some(m) = max {
                    v = v.min(m);
                }
                Draw::Integer(v)
            }
            FieldKind::Number { min, max } => {
                Draw::Number(x.max(min.unwrap_or(f64::MIN)).min(max.unwrap_or(f64::MAX)))
            }
            _ => Draw::Absent,
        };
        match cov {
            Covariate::Normal { mean, sd } => number(mean + sd * normal(rng)),
            Covariate::Uniform { min, max } => number(min + (max - min) * unit(rng)),
            Covariate::Exponential { mean } => number(mean * exp1(rng)),
            Covariate::Boolean { probability } => Draw::Boolean(unit(rng) < *probability),
            Covariate::Levels(p) if p.is_empty() => Draw::Absent,
            Covariate::Levels(p) => {
                let u = unit(rng);
                let mut acc = 0.0;
                for (i, x) in p.iter().enumerate() {
                    acc += x;
                    if u < acc {
                        return Draw::Level(i);
                    }
                }
                Draw::Level(p.len() - 1)
            }
        }
    }

    /// The subject's register events: each outcome type at most once, nothing after a terminal
    /// event or the dropout event, nothing after the simulation's last day.
    fn outcomes(
        &self,
        day: u32,
        arm: usize,
        row: &[Draw],
        rng: &mut ChaCha8Rng,
        times: &mut Vec<(f64, usize)>,
        out: &mut Vec<SimEvent>,
    ) {
        let sc = self.sc;
        let limit = f64::from(sc.max_duration_days - day);
        times.clear();
        for (k, m) in sc.outcomes.iter().enumerate() {
            let mult = self.multipliers[k]
                .iter()
                .fold(m.hazard_ratios[arm], |acc, (field, f)| {
                    acc * f.of(row[*field])
                });
            let t = piecewise_time(&m.pieces, mult, exp1(rng));
            if t < limit {
                times.push((t, k));
            }
        }
        if let Some(d) = &sc.dropout {
            if d.rate_per_day > 0.0 {
                let t = exp1(rng) / d.rate_per_day;
                if t < limit {
                    times.push((t, self.types.len() - 1));
                }
            }
        }
        times.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let dropout = sc.dropout.as_ref().map(|_| self.types.len() - 1);
        for &(t, k) in times.iter() {
            let event_day = day + t as u32;
            let lag = (sc.mean_lag_days * exp1(rng)).round() as u32;
            out.push(SimEvent {
                kind: k as u16,
                day: event_day,
                received: event_day.saturating_add(lag),
            });
            let ends = Some(k) == dropout || sc.outcomes.get(k).is_some_and(|m| m.terminal);
            if ends {
                break;
            }
        }
    }

    /// Looks, statistics and boundaries of one simulated trial.
    pub(crate) fn analyse(&self, world: &World) -> TrialOutcome {
        let sc = self.sc;
        let lag = sc.protocol.follow_up.lag_of(self.endpoint);
        // The day each subject's primary event is first known within follow-up: the earliest
        // over its primary events (within the horizon) of max(received, event day + lag).
        let mut count_days: Vec<u32> = world
            .subjects
            .iter()
            .filter_map(|s| {
                world.events[s.events.start as usize..s.events.end as usize]
                    .iter()
                    .filter(|e| {
                        self.primary[e.kind as usize]
                            && self.horizon.is_none_or(|h| i64::from(e.day - s.day) <= h)
                    })
                    .map(|e| e.received.max(e.day + lag))
                    .min()
            })
            .collect();
        count_days.sort_unstable();
        let events_by = |day: u32| count_days.partition_point(|&d| d <= day) as u64;
        let planned = f64::from(sc.monitoring.planned_events);
        let deadline = sc.max_duration_days;
        // Looks held: (planned look index, day, events).
        let mut looks: Vec<(usize, u32, u64)> = Vec::new();
        for (k, &target) in self.targets.iter().enumerate() {
            let (day, reached) = match count_days.get(target as usize - 1) {
                Some(&d) if d <= deadline => (d, true),
                _ => (deadline, false),
            };
            let events = events_by(day);
            if events > 0 && looks.last().is_none_or(|l| events > l.2) {
                looks.push((k, day, events));
            }
            if !reached {
                break;
            }
        }
        let timing: Vec<f64> = looks
            .iter()
            .map(|l| (l.2 as f64 / planned).min(1.0))
            .collect();
        let mut looks_held = vec![false; self.targets.len()];
        let mut outcome = TrialOutcome {
            rejected: false,
            stopped_at: None,
            looks_held: Vec::new(),
            subjects: 0,
            events: 0,
            duration_days: 0,
            hazard_ratio: None,
            final_imbalance: 0.0,
            stratum_imbalances: Vec::new(),
            correct_guesses: 0.0,
            correct_guesses_within: 0.0,
            looks: Vec::new(),
        };
        let bounds = self.boundaries(&timing);
        let mut end_day = deadline;
        let mut columns = Columns::default();
        for (j, &(k, day, events)) in looks.iter().enumerate() {
            looks_held[k] = true;
            end_day = day;
            outcome.events = events;
            self.columns_at(world, day, &mut columns);
            let estimate = crate::analysis::interim::look_log_hazard_ratio(
                &columns.time,
                &columns.event,
                &columns.experimental,
            );
            outcome.hazard_ratio = estimate.map(|(b, _)| b.exp());
            // Positive z favours the experimental arm, as in the live interim report.
            let z = estimate.map(|(log_hr, se)| -log_hr / se);
            outcome.looks.push(SimLook {
                look: k,
                day,
                events,
                information_fraction: timing[j],
                z,
                upper_z: bounds.get(j).copied(),
            });
            let (Some(z), Some(&upper)) = (z, bounds.get(j)) else {
                continue;
            };
            let crossed = match self.sided {
                Sided::One => z >= upper,
                Sided::Two => z.abs() >= upper,
            };
            if crossed {
                outcome.rejected = true;
                outcome.stopped_at = Some(k);
                break;
            }
        }
        outcome.looks_held = looks_held;
        outcome.duration_days = end_day;
        // Balance and predictability of the allocations made by the last analysis.
        let arms = self.ratios.len();
        let mut overall = vec![0u64; arms];
        let mut per_stratum = vec![vec![0u64; arms]; world.strata.len()];
        for s in world.subjects.iter().take_while(|s| s.day <= end_day) {
            overall[s.arm] += 1;
            per_stratum[s.stratum][s.arm] += 1;
            outcome.subjects += 1;
            outcome.correct_guesses += s.guess;
            outcome.correct_guesses_within += s.guess_within;
        }
        outcome.final_imbalance = imbalance(&overall, &self.ratios);
        outcome.stratum_imbalances = per_stratum
            .iter()
            .filter(|c| c.iter().any(|&n| n > 0))
            .map(|c| imbalance(c, &self.ratios))
            .collect();
        outcome
    }

    /// The efficacy boundaries of looks at information fractions `timing`, computed once per
    /// distinct `timing`.
    fn boundaries(&self, timing: &[f64]) -> Vec<f64> {
        let key: Vec<u64> = timing.iter().map(|t| t.to_bits()).collect();
        if let Some(b) = self
            .boundaries
            .lock()
            .ok()
            .and_then(|m| m.get(&key).cloned())
        {
            return b;
        }
        let sc = self.sc;
        let b = design::efficacy_boundaries(sc.monitoring.alpha, self.sided, self.spending, timing)
            .unwrap_or_default();
        if let Ok(mut m) = self.boundaries.lock() {
            m.insert(key, b.clone());
        }
        b
    }

    /// The primary endpoint of the compared arms as of cut-off `day`, through the engine's
    /// per-subject derivation.
    fn columns_at(&self, world: &World, day: u32, out: &mut Columns) {
        out.time.clear();
        out.event.clear();
        out.experimental.clear();
        let cutoff = DataCutoff(self.dates[day as usize]);
        let admin_end =
            endpoints::complete_through(&self.protocol.follow_up, self.endpoint, cutoff);
        let mut known: Vec<KnownEvent<'_>> = Vec::new();
        for s in world.subjects.iter().take_while(|s| s.day <= day) {
            if s.arm != self.experimental && s.arm != self.reference {
                continue;
            }
            known.clear();
            known.extend(
                world.events[s.events.start as usize..s.events.end as usize]
                    .iter()
                    .filter(|e| e.received <= day)
                    .map(|e| KnownEvent {
                        event_type: self.types[e.kind as usize],
                        code: self.codes[e.kind as usize],
                        date: self.dates[e.day as usize],
                        value: None,
                        source: None,
                        event_id: "",
                    }),
            );
            let (outcome, _) = endpoints::subject_outcome(
                &self.protocol.follow_up,
                self.endpoint,
                self.dates[s.day as usize],
                &known,
                admin_end,
            );
            if let Outcome::TimeToEvent { time_days, event } = outcome {
                out.time.push(time_days as f64);
                out.event.push(event);
                out.experimental
                    .push(f64::from(u8::from(s.arm == self.experimental)));
            }
        }
    }
}

/// A criterion's verdicts by the value of its source, computed once per plan: by site, by
/// level, by boolean, by integer (from `offset`), by derived band.
enum Verdicts {
    Sites(Vec<bool>),
    Levels(Vec<bool>),
    Booleans(Vec<bool>),
    Integers { offset: i64, met: Vec<bool> },
    Bands(Vec<bool>),
}

/// One covariate effect on a hazard as a multiplier: tabulated for levels, booleans and bounded
/// integers, computed for numbers.
#[derive(Debug, Clone)]
enum Multiplier {
    Table { offset: i64, values: Vec<f64> },
    PerUnit { log_hr: f64, centre: f64 },
}

impl Multiplier {
    /// Integer fields with bounds this wide or narrower are tabulated.
    const MAX_TABLE: i64 = 100_000;

    fn new(effect: &EffectKind, field: &FieldKind) -> Self {
        match (effect, field) {
            (EffectKind::PerLevel(per), _) => Multiplier::Table {
                offset: 0,
                values: per.iter().map(|l| l.exp()).collect(),
            },
            (&EffectKind::PerUnit { log_hr, centre }, FieldKind::Boolean) => Multiplier::Table {
                offset: 0,
                values: vec![(-log_hr * centre).exp(), (log_hr * (1.0 - centre)).exp()],
            },
            (
                &EffectKind::PerUnit { log_hr, centre },
                &FieldKind::Integer {
                    min: Some(lo),
                    max: Some(hi),
                },
            ) if hi >= lo && hi - lo <= Self::MAX_TABLE => Multiplier::Table {
                offset: lo,
                values: (lo..=hi)
                    .map(|v| (log_hr * (v as f64 - centre)).exp())
                    .collect(),
            },
            (&EffectKind::PerUnit { log_hr, centre }, _) => Multiplier::PerUnit { log_hr, centre },
        }
    }

    /// The hazard multiplier of one drawn value (1 for a value not sent).
    fn of(&self, d: Draw) -> f64 {
        match (self, d) {
            (_, Draw::Absent) => 1.0,
            (Multiplier::Table { offset, values }, Draw::Integer(v)) => usize::try_from(v - offset)
                .ok()
                .and_then(|i| values.get(i))
                .copied()
                .unwrap_or(1.0),
            (Multiplier::Table { values, .. }, Draw::Level(l)) => {
                values.get(l).copied().unwrap_or(1.0)
            }
            (Multiplier::Table { values, .. }, Draw::Boolean(b)) => {
                values.get(usize::from(b)).copied().unwrap_or(1.0)
            }
            (Multiplier::PerUnit { log_hr, centre }, d) => (log_hr * (d.as_f64() - centre)).exp(),
            (Multiplier::Table { .. }, Draw::Number(_)) => 1.0,
        }
    }
}

#[derive(Default)]
struct Columns {
    time: Vec<f64>,
    event: Vec<bool>,
    experimental: Vec<f64>,
}

/// A simulated trial's subjects and events (days count from the scenario's start date).
pub(crate) struct World {
    pub subjects: Vec<SimSubject>,
    pub events: Vec<SimEvent>,
    pub strata: Vec<StratumSlot>,
}

pub(crate) struct SimSubject {
    pub day: u32,
    pub arm: usize,
    pub stratum: usize,
    pub events: std::ops::Range<u32>,
    guess: f64,
    guess_within: f64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct SimEvent {
    /// Index into the plan's event types.
    pub kind: u16,
    pub day: u32,
    pub received: u32,
}

pub(crate) struct StratumSlot {
    pub key: String,
    /// The stratum's key derivation, hashed once for all its blocks.
    streams: randomise::StratumStreams,
    state: StratumState,
    counts: Vec<u64>,
    block: Vec<usize>,
}

/// Stratum slots by the mixed-radix index of the factor levels: a table when the strata are
/// few enough, a map otherwise.
enum SlotIndex {
    Dense(Vec<u32>),
    Sparse(HashMap<usize, usize>),
}

impl SlotIndex {
    const DENSE_LIMIT: usize = 1 << 16;

    fn new(strata: usize) -> Self {
        if strata <= Self::DENSE_LIMIT {
            SlotIndex::Dense(vec![u32::MAX; strata.max(1)])
        } else {
            SlotIndex::Sparse(HashMap::new())
        }
    }

    fn get(&self, index: usize) -> Option<usize> {
        match self {
            SlotIndex::Dense(v) => v
                .get(index)
                .filter(|&&s| s != u32::MAX)
                .map(|&s| s as usize),
            SlotIndex::Sparse(m) => m.get(&index).copied(),
        }
    }

    fn set(&mut self, index: usize, slot: usize) {
        match self {
            SlotIndex::Dense(v) => {
                if let Some(s) = v.get_mut(index) {
                    *s = slot as u32;
                }
            }
            SlotIndex::Sparse(m) => {
                m.insert(index, slot);
            }
        }
    }
}

/// A uniform draw in [0, 1) with 53 random bits.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A standard exponential draw (rand_distr's ziggurat).
fn exp1(rng: &mut ChaCha8Rng) -> f64 {
    rng.sample(rand_distr::Exp1)
}

/// A standard normal draw (rand_distr's ziggurat).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    rng.sample(rand_distr::StandardNormal)
}

/// The time at which cumulative hazard `mult × Σ rate·duration` over the pieces reaches `e`
/// (infinite when it never does).
fn piecewise_time(pieces: &[(f64, f64)], mult: f64, e: f64) -> f64 {
    let mut remaining = e;
    for (i, &(from, rate)) in pieces.iter().enumerate() {
        let h = rate * mult;
        let to = pieces.get(i + 1).map_or(f64::INFINITY, |p| p.0);
        if h > 0.0 {
            let t = from + remaining / h;
            if t < to {
                return t;
            }
            remaining -= h * (to - from);
        }
    }
    f64::INFINITY
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::TrialData;
    use crate::endpoints::{Event, ReceivedEvent};
    use crate::randomise::{AllocationRecord, Draw, Timestamp};

    fn scenario(name: &str) -> Scenario {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("simulations")
            .join(name);
        super::super::read_scenario(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The simulated trial as the live engine would hold it in its database.
    fn trial_data(plan: &Plan<'_>, world: &World) -> TrialData {
        let mut protocol = plan.protocol.clone();
        protocol.monitoring = Some(plan.sc.monitoring.clone());
        let allocations = world
            .subjects
            .iter()
            .enumerate()
            .map(|(i, s)| AllocationRecord {
                trial_id: protocol.trial_id.clone(),
                randomisation_number: i as i64 + 1,
                record_id: format!("r{i}"),
                subject: format!("s{i}"),
                site_code: String::new(),
                arm: protocol.arms[s.arm].id.clone(),
                stratum: world.strata[s.stratum].key.clone(),
                block_number: 0,
                block_size: 0,
                block_position: 0,
                protocol_version: protocol.version.clone(),
                request_sha256: String::new(),
                allocated_at: Timestamp::parse(&format!(
                    "{}T12:00:00.000000Z",
                    plan.dates[s.day as usize]
                ))
                .unwrap(),
                detail: None,
                eligible_arms: None,
                cluster: None,
                draw: Draw::Slot,
            })
            .collect();
        let mut events = Vec::new();
        for (i, s) in world.subjects.iter().enumerate() {
            for (j, e) in world.events[s.events.start as usize..s.events.end as usize]
                .iter()
                .enumerate()
            {
                events.push(ReceivedEvent {
                    event: Event {
                        event_id: format!("e{i}-{j}"),
                        subject: format!("s{i}"),
                        event_type: plan.types[e.kind as usize].to_string(),
                        date: plan.dates[e.day as usize],
                        code: plan.codes[e.kind as usize].map(str::to_string),
                        value: None,
                        source: None,
                    },
                    received_on: plan.sc.start_date + chrono::Days::new(u64::from(e.received)),
                });
            }
        }
        TrialData {
            allocations,
            events,
            ..TrialData::of(protocol)
        }
    }

    /// The looks a simulated trial holds are the ones the live interim report reconstructs from
    /// the same subjects and events: same cut-off days, events, z and boundaries.
    #[test]
    fn looks_match_the_live_interim_report() {
        for (name, replicates) in [("power-check.toml", 6), ("taste.toml", 1)] {
            let sc = scenario(name);
            let plan = Plan::new(&sc).unwrap();
            for r in 0..replicates {
                let world = plan.world(7, r);
                let outcome = plan.analyse(&world);
                assert!(
                    !outcome.looks.is_empty(),
                    "{name} replicate {r} held no look"
                );
                let last = outcome.looks.last().unwrap();
                let data = trial_data(&plan, &world);
                let report = crate::analysis::interim::interim(
                    &data,
                    DataCutoff(plan.dates[last.day as usize]),
                )
                .unwrap();
                let reached: Vec<&SimLook> = outcome
                    .looks
                    .iter()
                    .filter(|l| l.events >= plan.targets[l.look])
                    .collect();
                assert_eq!(
                    report.comparisons[0].looks.len(),
                    reached.len(),
                    "{name} replicate {r}"
                );
                for (live, sim) in report.comparisons[0].looks.iter().zip(reached) {
                    assert_eq!(live.look, sim.look + 1);
                    assert_eq!(live.cutoff, plan.dates[sim.day as usize], "{name} {r}");
                    assert_eq!(live.events, sim.events);
                    assert_eq!(live.information_fraction, sim.information_fraction);
                    let z = sim.z.unwrap();
                    assert!((live.z - z).abs() < 1e-12, "{} vs {z}", live.z);
                    // The simulator integrates on the coarser grid (design::GRID_R), the live
                    // report on design::DESIGN_GRID_R: their boundaries agree to about 2e-6.
                    let upper = sim.upper_z.unwrap();
                    assert!(
                        (live.upper_z - upper).abs() < 1e-5,
                        "{} vs {upper}",
                        live.upper_z
                    );
                }
            }
        }
    }

    /// Permuted blocks in the simulator keep the current block instead of deriving it per slot;
    /// the allocations are still exactly the engine's.
    #[test]
    fn blocks_match_the_engine() {
        let sc = scenario("taste.toml");
        let plan = Plan::new(&sc).unwrap();
        let world = plan.world(3, 0);
        let seed = MasterSeed::from_bytes(Plan::replicate_seed(3, 0));
        let mut states = vec![StratumState::default(); world.strata.len()];
        for s in &world.subjects {
            let key = &world.strata[s.stratum].key;
            let d = randomise::allocate(
                &plan.scheme,
                &seed,
                &plan.protocol.trial_id,
                key,
                states[s.stratum],
            );
            assert_eq!(d.arm, s.arm);
            states[s.stratum] = d.next;
        }
        assert!(world.subjects.len() > 7000);
        assert!(world.strata.len() > 30);
    }

    /// The simulator's eligibility (criteria tabulated by value where values are few) is the
    /// engine's `check_eligibility` on the same values, for every kind of source: sites,
    /// levels, booleans, bounded integers in and out of bounds, numbers, derived bands, and
    /// values not sent; inclusion and exclusion.
    #[test]
    fn eligibility_is_the_engine_s() {
        use super::Draw as Drawn;
        use crate::protocol::{check_eligibility, Condition, EnrolmentValues};
        let criterion = |field: &str, conditions: Vec<Condition>| Criterion {
            id: field.into(),
            text: field.into(),
            field: field.into(),
            conditions,
        };
        let mut taste = scenario("taste.toml");
        let sites: Vec<Value> = taste.protocol.sites[..5]
            .iter()
            .map(|s| Value::Text(s.code.clone()))
            .collect();
        taste
            .protocol
            .inclusion
            .push(criterion("site", vec![Condition::In(sites)]));
        let band = Value::Text(taste.protocol.derived[0].labels[2].clone());
        taste
            .protocol
            .exclusion
            .push(criterion("age_band", vec![Condition::Eq(band)]));
        // Every other kind of source: booleans, numbers, exclusions.
        let protocol = r#"
id = "kinds"
title = "Criteria of every kind"
version = "1.0"
status = "planned"
target_sample_size = 100
consent = "waiver"
sites = [{ code = "A", name = "A" }, { code = "B", name = "B" }, { code = "C", name = "C" }]
arms = [{ id = "e", label = "E", ratio = 1 }, { id = "c", label = "C", ratio = 1 }]
[fields.age]
type = "integer"
min = 0
max = 120
[fields.sex]
type = "category"
levels = ["F", "M"]
[fields.diabetes]
type = "boolean"
[fields.egfr]
type = "number"
min = 0
[fields.sbp]
type = "integer"
[derived.age_band]
from = "age"
cuts = [65, 75]
[[inclusion]]
id = "adult"
text = "adult"
field = "age"
ge = 18
[[inclusion]]
id = "sites"
text = "sites"
field = "site"
in = ["A", "B"]
[[exclusion]]
id = "diabetes"
text = "diabetes"
field = "diabetes"
eq = true
[[exclusion]]
id = "renal"
text = "renal"
field = "egfr"
lt = 25
[[exclusion]]
id = "hypotension"
text = "hypotension"
field = "sbp"
lt = 95
[[exclusion]]
id = "women"
text = "women"
field = "sex"
eq = "F"
[randomisation]
method = "permuted_blocks"
block_sizes = [2]
[endpoints.death]
label = "death"
kind = "time_to_event"
events = ["death"]
primary = true
[monitoring]
alpha = 0.05
sided = 2
spending = "obf"
planned_events = 20
looks = [1.0]
"#;
        let kinds = super::super::parse_scenario(
            "protocol = \"kinds.toml\"\nstart_date = \"2025-01-01\"\n\
             [accrual]\nregistrations_per_month = 100\n\
             [covariates.age]\ndistribution = \"normal\"\nmean = 60\nsd = 10\n\
             [covariates.sex]\nlevels = { F = 0.5, M = 0.5 }\n\
             [covariates.diabetes]\nprobability = 0.2\n\
             [covariates.egfr]\ndistribution = \"normal\"\nmean = 60\nsd = 20\n\
             [covariates.sbp]\ndistribution = \"normal\"\nmean = 120\nsd = 20\n\
             [outcomes.death]\nrate_per_year = 0.1\n",
            "kinds-scenario.toml",
            |_| Ok(("kinds.toml".to_string(), protocol.to_string())),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for sc in [&taste, &kinds] {
            let plan = Plan::new(sc).unwrap();
            let p = plan.protocol;
            // Candidate draws per field: not sent, and values on and around every bound and
            // every criterion's threshold.
            let candidates: Vec<Vec<Drawn>> = p
                .fields
                .iter()
                .map(|f| {
                    let mut c = vec![Drawn::Absent];
                    match &f.kind {
                        FieldKind::Category { levels } => {
                            c.extend((0..levels.len()).map(Drawn::Level))
                        }
                        FieldKind::Boolean => {
                            c.extend([Drawn::Boolean(false), Drawn::Boolean(true)])
                        }
                        FieldKind::Integer { min, max } => c.extend(
                            [min.unwrap_or(0), max.unwrap_or(100), 18, 25, 40, 65, 75, 95]
                                .into_iter()
                                .flat_map(|v| [v - 1, v, v + 1])
                                .map(Drawn::Integer),
                        ),
                        FieldKind::Number { .. } => c.extend(
                            [0.0, 23.9, 24.0, 24.1, 24.9, 25.0, 25.1, 94.5, 1e3].map(Drawn::Number),
                        ),
                        _ => {}
                    }
                    c
                })
                .collect();
            let mut state = 0x2545f4914f6cdd1du64;
            let (mut eligible, mut refused) = (0, 0);
            for k in 0..20_000 {
                let site = k % p.sites.len();
                let row: Vec<Drawn> = candidates
                    .iter()
                    .map(|c| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        c[(state % c.len() as u64) as usize]
                    })
                    .collect();
                let mut values = vec![("site".to_string(), plan.site_values[site].clone())];
                for (i, f) in p.fields.iter().enumerate() {
                    if let Some(v) = plan.value(Source::Field(i), site, &row) {
                        values.push((f.name.clone(), v.into_owned()));
                    }
                }
                for (d, derived) in p.derived.iter().enumerate() {
                    let from = p
                        .fields
                        .iter()
                        .position(|f| f.name == derived.from)
                        .unwrap();
                    if let Some(v) = plan.value(Source::Derived(d, from), site, &row) {
                        values.push((derived.name.clone(), v.into_owned()));
                    }
                }
                let engine =
                    check_eligibility(p, &EnrolmentValues::from_pairs(values.clone())).is_empty();
                assert_eq!(plan.eligible(site, &row), engine, "{values:?}");
                if engine {
                    eligible += 1;
                } else {
                    refused += 1;
                }
            }
            assert!(
                eligible >= 50 && refused >= 50,
                "{eligible} eligible, {refused} refused"
            );
        }
    }

    /// Stratum keys are the live engine's: `site=CODE;sex=LEVEL` for TASTE.
    #[test]
    fn stratum_keys_are_the_engine_s() {
        let sc = scenario("taste.toml");
        let plan = Plan::new(&sc).unwrap();
        let world = plan.world(3, 0);
        let mut keys: Vec<&str> = world.strata.iter().map(|s| s.key.as_str()).collect();
        keys.sort_unstable();
        assert!(keys.contains(&"site=UPP;sex=F"), "{keys:?}");
        assert!(keys.contains(&"site=VIS;sex=M"), "{keys:?}");
        let before = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), before, "one slot per stratum");
    }

    #[test]
    fn piecewise_time_inverts_the_cumulative_hazard() {
        // One piece: t = e / rate.
        assert!((piecewise_time(&[(0.0, 0.5)], 1.0, 1.0) - 2.0).abs() < 1e-12);
        // Two pieces: 0.1/day for 10 days uses 1.0, then 0.5/day.
        let p = [(0.0, 0.1), (10.0, 0.5)];
        assert!((piecewise_time(&p, 1.0, 0.5) - 5.0).abs() < 1e-12);
        assert!((piecewise_time(&p, 1.0, 2.0) - 12.0).abs() < 1e-12);
        // A multiplier scales the hazard.
        assert!((piecewise_time(&p, 2.0, 1.0) - 5.0).abs() < 1e-12);
        assert_eq!(piecewise_time(&[(0.0, 0.0)], 1.0, 1.0), f64::INFINITY);
    }
}
