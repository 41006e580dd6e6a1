//! Scenario files: what a simulated trial's world looks like (accrual, patients, outcomes,
//! dropout, reporting delays) around a protocol, read in two phases like protocol files — the
//! TOML as written with spans, then checked against the protocol — so every mistake is reported
//! at once as `FILE:LINE:COL: message`.
//!
//! # Layout
//! ```toml
//! protocol = "../protocols/taste.toml"  # relative to the scenario file
//! start_date = "2010-06-01"               # first registration day (default 2025-01-01)
//!
//! [design]                    # optional what-if changes to the protocol, for this simulation only
//! target_sample_size = 7244
//! planned_events = 560        # and alpha, sided, spending, looks, power: the [monitoring] plan
//! looks = [0.33, 0.66, 1.0]
//! add_sites = true            # accrual sites the protocol does not list join the trial
//! max_duration_months = 60    # the final analysis is held then at the latest (default: accrual + 24)
//!
//! [accrual]
//! registrations_per_month = 260   # at full speed, all sites together
//! ramp_up_months = 6              # linear ramp from zero to full speed
//! eligible_share = 0.9            # share of registrations screened for the trial
//! max_months = 48                 # recruitment stops here if the target is not reached
//! [accrual.sites]                 # relative weights of the sites' registrations
//! UPP = 3
//! LKP = 2
//!
//! [covariates.age]                # one table per enrolment field the register sends
//! distribution = "normal"         # normal (mean, sd), uniform (min, max), exponential (mean)
//! mean = 67
//! sd = 12
//! [covariates.sex]
//! levels = { F = 0.26, M = 0.74 } # category probabilities (normalised); booleans: probability
//!
//! [outcomes.death]                # one table per event type the registers send
//! rate_per_year = 0.06            # hazard in the reference (last) arm; or rates_per_year with
//!                                 # from_days (piecewise), or probability with horizon_days
//! hazard_ratios = { aspiration = 0.8 }  # per arm against the reference arm (default 1)
//! effects = { age = 1.04, sex = { F = 1.2 } }  # hazard ratio per unit above the mean / per level
//! terminal = true                 # no events after it (default: true for `death`)
//! code = "I21"                    # optional code the register sends with the event
//!
//! [dropout]
//! event = "emigration"            # a `censor_on` type of the protocol
//! rate_per_year = 0.005
//!
//! [reporting]
//! mean_lag_days = 7               # exponential delay from event to the register sending it
//! ```

use std::collections::BTreeMap;
use std::ops::Range;

use chrono::NaiveDate;
use serde::Deserialize;
use toml::Spanned;

use crate::protocol::{self, FieldKind, Monitoring, Protocol, ProtocolErrors, Site};

/// A validated scenario, with the protocol as this simulation runs it (design changes applied).
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The protocol file as named in the scenario (for reports).
    pub protocol_path: String,
    pub protocol: Protocol,
    pub monitoring: Monitoring,
    pub start_date: NaiveDate,
    pub accrual: Accrual,
    /// One entry per enrolment field, in the protocol's field order.
    pub covariates: Vec<Covariate>,
    pub outcomes: Vec<OutcomeModel>,
    pub dropout: Option<Dropout>,
    /// Mean of the exponential reporting delay, days (0: events are known the day they happen).
    pub mean_lag_days: f64,
    /// Day (from `start_date`) of the final analysis at the latest.
    pub max_duration_days: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Accrual {
    pub registrations_per_day: f64,
    pub ramp_up_days: f64,
    pub eligible_share: f64,
    pub max_days: u32,
    /// Index into `protocol.sites` and the site's weight, normalised to sum 1.
    pub sites: Vec<(usize, f64)>,
}

/// How one enrolment field is drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Covariate {
    Normal {
        mean: f64,
        sd: f64,
    },
    Uniform {
        min: f64,
        max: f64,
    },
    Exponential {
        mean: f64,
    },
    /// Probabilities per level, in the field's level order, normalised.
    Levels(Vec<f64>),
    Boolean {
        probability: f64,
    },
}

impl Covariate {
    /// The population mean of a numeric covariate (where covariate effects are centred).
    pub fn mean(&self) -> f64 {
        match *self {
            Covariate::Normal { mean, .. } | Covariate::Exponential { mean } => mean,
            Covariate::Uniform { min, max } => (min + max) / 2.0,
            Covariate::Boolean { probability } => probability,
            Covariate::Levels(_) => 0.0,
        }
    }
}

/// The hazard of one event type.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeModel {
    pub event_type: String,
    pub code: Option<String>,
    /// Piecewise-constant hazard per day in the reference arm: `(from_day, rate)`, ascending,
    /// the first from day 0.
    pub pieces: Vec<(f64, f64)>,
    /// Hazard ratio per arm (protocol order) against the reference arm.
    pub hazard_ratios: Vec<f64>,
    /// Log hazard ratio per covariate: per unit above the mean for numbers and booleans, per
    /// level for categories.
    pub effects: Vec<Effect>,
    pub terminal: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    /// Index into the protocol's fields.
    pub field: usize,
    pub kind: EffectKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EffectKind {
    /// Log hazard ratio per unit, and the centre.
    PerUnit { log_hr: f64, centre: f64 },
    /// Log hazard ratio per level (0 for levels not named).
    PerLevel(Vec<f64>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dropout {
    pub event_type: String,
    pub rate_per_day: f64,
}

const DAYS_PER_YEAR: f64 = 365.25;
const DAYS_PER_MONTH: f64 = DAYS_PER_YEAR / 12.0;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    protocol: Spanned<String>,
    start_date: Option<Spanned<String>>,
    #[serde(default)]
    design: RawDesign,
    accrual: RawAccrual,
    #[serde(default)]
    covariates: BTreeMap<Spanned<String>, RawCovariate>,
    #[serde(default)]
    outcomes: BTreeMap<Spanned<String>, RawOutcome>,
    dropout: Option<RawDropout>,
    #[serde(default)]
    reporting: RawReporting,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDesign {
    target_sample_size: Option<Spanned<i64>>,
    alpha: Option<Spanned<f64>>,
    sided: Option<Spanned<i64>>,
    spending: Option<Spanned<String>>,
    planned_events: Option<Spanned<i64>>,
    looks: Option<Spanned<Vec<Spanned<f64>>>>,
    power: Option<Spanned<f64>>,
    add_sites: Option<bool>,
    max_duration_months: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccrual {
    registrations_per_month: Spanned<f64>,
    #[serde(default)]
    ramp_up_months: Option<Spanned<f64>>,
    eligible_share: Option<Spanned<f64>>,
    max_months: Option<Spanned<f64>>,
    #[serde(default)]
    sites: BTreeMap<Spanned<String>, Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCovariate {
    distribution: Option<Spanned<String>>,
    mean: Option<Spanned<f64>>,
    sd: Option<Spanned<f64>>,
    min: Option<Spanned<f64>>,
    max: Option<Spanned<f64>>,
    levels: Option<BTreeMap<Spanned<String>, Spanned<f64>>>,
    probability: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutcome {
    rate_per_year: Option<Spanned<f64>>,
    rates_per_year: Option<Spanned<Vec<Spanned<f64>>>>,
    from_days: Option<Spanned<Vec<Spanned<f64>>>>,
    probability: Option<Spanned<f64>>,
    horizon_days: Option<Spanned<f64>>,
    #[serde(default)]
    hazard_ratios: BTreeMap<Spanned<String>, Spanned<f64>>,
    #[serde(default)]
    effects: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    terminal: Option<bool>,
    code: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDropout {
    event: Spanned<String>,
    rate_per_year: Spanned<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReporting {
    mean_lag_days: Option<Spanned<f64>>,
}

/// Why a scenario cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{0}")]
    Scenario(ProtocolErrors),
    #[error("{path}: {message}")]
    Protocol { path: String, message: String },
}

/// Parse a scenario. `origin` names it in messages; `read_protocol` reads the protocol file the
/// scenario names (the caller resolves it relative to the scenario and does the I/O).
pub fn parse(
    source: &str,
    origin: &str,
    read_protocol: impl FnOnce(&str) -> Result<(String, String), String>,
) -> Result<Scenario, ScenarioError> {
    let raw: RawScenario = toml::from_str(source)
        .map_err(|e| ScenarioError::Scenario(protocol::from_toml(source, origin, &e)))?;
    let (protocol_origin, protocol_text) =
        read_protocol(raw.protocol.get_ref()).map_err(|message| ScenarioError::Protocol {
            path: raw.protocol.get_ref().clone(),
            message,
        })?;
    let protocol =
        protocol::parse(&protocol_text, &protocol_origin).map_err(|e| ScenarioError::Protocol {
            path: protocol_origin.clone(),
            message: e.to_string(),
        })?;
    let mut c = Check::default();
    let scenario = validate(&mut c, raw, protocol);
    if c.findings.is_empty() {
        Ok(scenario)
    } else {
        Err(ScenarioError::Scenario(protocol::locate(
            source, origin, c.findings,
        )))
    }
}

#[derive(Default)]
struct Check {
    findings: Vec<protocol::Finding>,
}

impl Check {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.findings.push((span, message.into()));
    }

    /// A number that must lie in `range` (inclusive bounds described in `what`).
    fn number(&mut self, v: &Spanned<f64>, ok: impl Fn(f64) -> bool, what: &str) -> f64 {
        let x = *v.get_ref();
        if !(x.is_finite() && ok(x)) {
            self.error(v.span(), format!("{what}, got {x}"));
        }
        x
    }

    fn positive(&mut self, v: &Spanned<f64>, name: &str) -> f64 {
        self.number(v, |x| x > 0.0, &format!("`{name}` must be > 0"))
    }

    fn non_negative(&mut self, v: &Spanned<f64>, name: &str) -> f64 {
        self.number(v, |x| x >= 0.0, &format!("`{name}` must be >= 0"))
    }
}

fn validate(c: &mut Check, raw: RawScenario, mut protocol: Protocol) -> Scenario {
    let start_date = match &raw.start_date {
        Some(s) => crate::endpoints::parse_event_date(s.get_ref()).unwrap_or_else(|| {
            c.error(
                s.span(),
                format!(
                    "`start_date` must be a date YYYY-MM-DD, got `{}`",
                    s.get_ref()
                ),
            );
            NaiveDate::MIN
        }),
        None => NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or(NaiveDate::MIN),
    };

    // Design changes.
    let d = &raw.design;
    if let Some(n) = &d.target_sample_size {
        match u32::try_from(*n.get_ref()) {
            Ok(v) if v > 0 => protocol.target_sample_size = v,
            _ => c.error(
                n.span(),
                format!(
                    "`target_sample_size` must be a positive whole number, got {}",
                    n.get_ref()
                ),
            ),
        }
    }
    let monitoring = design_monitoring(c, d, &protocol);
    if let Some(endpoint) = protocol.primary_endpoint() {
        if !matches!(
            endpoint.kind,
            crate::protocol::EndpointKind::TimeToEvent { .. }
        ) {
            c.error(
                raw.protocol.span(),
                format!(
                    "the primary endpoint `{}` is not time-to-event; the simulator runs the \
                     group-sequential time-to-event analysis the live interim monitoring runs",
                    endpoint.id
                ),
            );
        }
    } else {
        c.error(
            raw.protocol.span(),
            "the protocol declares no primary endpoint to simulate",
        );
    }
    if protocol.arms.len() < 2 {
        c.error(raw.protocol.span(), "the protocol needs at least two arms");
    }

    // Accrual.
    let a = &raw.accrual;
    let per_month = c.positive(&a.registrations_per_month, "registrations_per_month");
    let ramp = a
        .ramp_up_months
        .as_ref()
        .map_or(0.0, |v| c.non_negative(v, "ramp_up_months"));
    let eligible_share = a.eligible_share.as_ref().map_or(1.0, |v| {
        c.number(
            v,
            |x| x > 0.0 && x <= 1.0,
            "`eligible_share` must be in (0, 1]",
        )
    });
    let max_months = a
        .max_months
        .as_ref()
        .map_or(120.0, |v| c.positive(v, "max_months"));
    let mut sites = Vec::new();
    if a.sites.is_empty() {
        sites.extend((0..protocol.sites.len()).map(|i| (i, 1.0)));
    }
    for (code, weight) in &a.sites {
        let w = c.positive(weight, "site weight");
        let index = match protocol.site(code.get_ref()) {
            Some(_) => protocol
                .sites
                .iter()
                .position(|s| s.code == *code.get_ref()),
            None if d.add_sites == Some(true) => {
                protocol.sites.push(Site {
                    code: code.get_ref().clone(),
                    name: None,
                });
                Some(protocol.sites.len() - 1)
            }
            None => {
                c.error(
                    code.span(),
                    format!(
                        "site `{}` is not a site of trial {}; add it to the protocol, or set \
                         `add_sites = true` under [design] to simulate it joining",
                        code.get_ref(),
                        protocol.trial_id
                    ),
                );
                None
            }
        };
        if let Some(i) = index {
            sites.push((i, w));
        }
    }
    let total: f64 = sites.iter().map(|(_, w)| w).sum();
    for s in &mut sites {
        s.1 /= total.max(f64::MIN_POSITIVE);
    }
    let accrual = Accrual {
        registrations_per_day: per_month / DAYS_PER_MONTH,
        ramp_up_days: ramp * DAYS_PER_MONTH,
        eligible_share,
        max_days: (max_months * DAYS_PER_MONTH).round() as u32,
        sites,
    };
    let max_duration_days = match &d.max_duration_months {
        Some(v) => (c.positive(v, "max_duration_months") * DAYS_PER_MONTH).round() as u32,
        None => accrual.max_days + (24.0 * DAYS_PER_MONTH).round() as u32,
    };

    let covariates = covariates(c, &raw.covariates, &protocol);
    let outcomes = outcomes(c, &raw.outcomes, &protocol, &covariates);
    if outcomes.is_empty() {
        c.error(
            raw.protocol.span(),
            "the scenario declares no [outcomes.TYPE]: nothing would ever happen to a patient",
        );
    }
    let dropout = raw.dropout.as_ref().map(|r| {
        if !protocol.follow_up.censor_on.contains(r.event.get_ref()) {
            c.error(
                r.event.span(),
                format!(
                    "`{}` is not a censoring event of the protocol (censor_on: [{}])",
                    r.event.get_ref(),
                    protocol.follow_up.censor_on.join(", ")
                ),
            );
        }
        Dropout {
            event_type: r.event.get_ref().clone(),
            rate_per_day: c.non_negative(&r.rate_per_year, "rate_per_year") / DAYS_PER_YEAR,
        }
    });
    let mean_lag_days = raw
        .reporting
        .mean_lag_days
        .as_ref()
        .map_or(0.0, |v| c.non_negative(v, "mean_lag_days"));
    Scenario {
        protocol_path: raw.protocol.get_ref().clone(),
        protocol,
        monitoring,
        start_date,
        accrual,
        covariates,
        outcomes,
        dropout,
        mean_lag_days,
        max_duration_days,
    }
}

/// The monitoring plan: the protocol's, with the scenario's changes.
fn design_monitoring(c: &mut Check, d: &RawDesign, protocol: &Protocol) -> Monitoring {
    let base = protocol.monitoring.clone();
    let mut missing = Vec::new();
    let alpha = d
        .alpha
        .as_ref()
        .map(|v| c.number(v, |x| x > 0.0 && x < 0.5, "`alpha` must be in (0, 0.5)"))
        .or(base.as_ref().map(|m| m.alpha));
    let sided = match (&d.sided, &base) {
        (Some(s), _) => match *s.get_ref() {
            1 => Some(1),
            2 => Some(2),
            other => {
                c.error(s.span(), format!("`sided` must be 1 or 2, got {other}"));
                Some(2)
            }
        },
        (None, Some(m)) => Some(m.sided),
        (None, None) => None,
    };
    let spending = match (&d.spending, &base) {
        (Some(s), _) => Some(
            crate::design::SpendingFunction::parse(s.get_ref()).unwrap_or_else(|e| {
                c.error(s.span(), e.to_string());
                crate::design::SpendingFunction::OBrienFleming
            }),
        ),
        (None, Some(m)) => Some(m.spending),
        (None, None) => None,
    };
    let planned_events = match (&d.planned_events, &base) {
        (Some(n), _) => match u32::try_from(*n.get_ref()) {
            Ok(v) if v > 0 => Some(v),
            _ => {
                c.error(
                    n.span(),
                    format!(
                        "`planned_events` must be a positive whole number, got {}",
                        n.get_ref()
                    ),
                );
                Some(1)
            }
        },
        (None, Some(m)) => Some(m.planned_events),
        (None, None) => None,
    };
    let looks = match (&d.looks, &base) {
        (Some(list), _) => {
            let mut previous = 0.0;
            for t in list.get_ref() {
                let v = *t.get_ref();
                if !(v > previous && v <= 1.0) {
                    c.error(
                        t.span(),
                        format!(
                            "looks must increase strictly within (0, 1], got {v} after {previous}"
                        ),
                    );
                }
                previous = v;
            }
            if list.get_ref().last().map(|t| *t.get_ref()) != Some(1.0) {
                c.error(
                    list.span(),
                    "the last look must be at 1.0 (the final analysis)",
                );
            }
            list.get_ref().iter().map(|t| *t.get_ref()).collect()
        }
        (None, Some(m)) => m.looks.clone(),
        (None, None) => vec![1.0],
    };
    let power = d
        .power
        .as_ref()
        .map(|v| c.number(v, |x| x > 0.0 && x < 1.0, "`power` must be in (0, 1)"))
        .or(base.as_ref().map(|m| m.power))
        .unwrap_or(0.8);
    if alpha.is_none() {
        missing.push("alpha");
    }
    if sided.is_none() {
        missing.push("sided");
    }
    if spending.is_none() {
        missing.push("spending");
    }
    if planned_events.is_none() {
        missing.push("planned_events");
    }
    if !missing.is_empty() {
        c.error(
            0..0,
            format!(
                "the protocol has no [monitoring] plan, so [design] must give {}",
                missing.join(", ")
            ),
        );
    }
    Monitoring {
        alpha: alpha.unwrap_or(0.05),
        sided: sided.unwrap_or(2),
        spending: spending.unwrap_or(crate::design::SpendingFunction::OBrienFleming),
        planned_events: planned_events.unwrap_or(1),
        looks,
        power,
        multiplicity: base.as_ref().map(|m| m.multiplicity).unwrap_or_default(),
        forecast_hazard_cuts_days: Vec::new(),
    }
}

fn covariates(
    c: &mut Check,
    raw: &BTreeMap<Spanned<String>, RawCovariate>,
    protocol: &Protocol,
) -> Vec<Covariate> {
    for name in raw.keys() {
        if protocol.field(name.get_ref()).is_none() {
            c.error(
                name.span(),
                format!(
                    "`{}` is not an enrolment field of trial {}",
                    name.get_ref(),
                    protocol.trial_id
                ),
            );
        }
    }
    let mut out = Vec::new();
    for field in &protocol.fields {
        let entry = raw.iter().find(|(k, _)| *k.get_ref() == field.name);
        let Some((key, r)) = entry else {
            // A field the scenario does not describe: required ones are an error, optional ones
            // are never sent.
            if field.required {
                c.error(
                    0..0,
                    format!(
                        "enrolment field `{}` is required by the protocol; describe it under \
                         [covariates.{}]",
                        field.name, field.name
                    ),
                );
            }
            out.push(Covariate::Levels(Vec::new()));
            continue;
        };
        let covariate = match &field.kind {
            FieldKind::Integer { .. } | FieldKind::Number { .. } => numeric_covariate(c, key, r),
            FieldKind::Category { levels } => match &r.levels {
                Some(given) => {
                    let mut p = vec![0.0; levels.len()];
                    for (level, prob) in given {
                        let x = c.non_negative(prob, "a level's probability");
                        match levels.iter().position(|l| l == level.get_ref()) {
                            Some(i) => p[i] = x,
                            None => c.error(
                                level.span(),
                                format!(
                                    "`{}` is not a level of `{}` (levels: {})",
                                    level.get_ref(),
                                    field.name,
                                    levels.join(", ")
                                ),
                            ),
                        }
                    }
                    let total: f64 = p.iter().sum();
                    if total <= 0.0 {
                        c.error(key.span(), "the levels' probabilities sum to 0");
                    }
                    Covariate::Levels(p.iter().map(|x| x / total.max(f64::MIN_POSITIVE)).collect())
                }
                None => {
                    c.error(
                        key.span(),
                        format!(
                            "category field `{}` needs `levels = {{ LEVEL = p, ... }}`",
                            field.name
                        ),
                    );
                    Covariate::Levels(Vec::new())
                }
            },
            FieldKind::Boolean => match &r.probability {
                Some(p) => Covariate::Boolean {
                    probability: c.number(
                        p,
                        |x| (0.0..=1.0).contains(&x),
                        "`probability` must be in [0, 1]",
                    ),
                },
                None => {
                    c.error(
                        key.span(),
                        format!("boolean field `{}` needs `probability`", field.name),
                    );
                    Covariate::Boolean { probability: 0.5 }
                }
            },
            FieldKind::Date { .. } => {
                c.error(
                    key.span(),
                    format!("date field `{}` cannot be simulated yet", field.name),
                );
                Covariate::Levels(Vec::new())
            }
        };
        out.push(covariate);
    }
    out
}

fn numeric_covariate(c: &mut Check, key: &Spanned<String>, r: &RawCovariate) -> Covariate {
    let Some(dist) = &r.distribution else {
        c.error(
            key.span(),
            "numeric covariates need `distribution` = normal, uniform or exponential",
        );
        return Covariate::Exponential { mean: 1.0 };
    };
    let need = |c: &mut Check, v: &Option<Spanned<f64>>, name: &str| match v {
        Some(v) => Some(*v.get_ref()),
        None => {
            c.error(
                dist.span(),
                format!("distribution `{}` needs `{name}`", dist.get_ref()),
            );
            None
        }
    };
    match dist.get_ref().as_str() {
        "normal" => {
            let mean = need(c, &r.mean, "mean").unwrap_or(0.0);
            let sd = match &r.sd {
                Some(v) => c.non_negative(v, "sd"),
                None => need(c, &r.sd, "sd").unwrap_or(1.0),
            };
            Covariate::Normal { mean, sd }
        }
        "uniform" => {
            let min = need(c, &r.min, "min").unwrap_or(0.0);
            let max = need(c, &r.max, "max").unwrap_or(1.0);
            if let (Some(m), true) = (&r.max, max < min) {
                c.error(m.span(), format!("`max` {max} is below `min` {min}"));
            }
            Covariate::Uniform { min, max }
        }
        "exponential" => Covariate::Exponential {
            mean: match &r.mean {
                Some(v) => c.positive(v, "mean"),
                None => need(c, &r.mean, "mean").unwrap_or(1.0),
            },
        },
        other => {
            c.error(
                dist.span(),
                format!("unknown distribution `{other}`; use normal, uniform or exponential"),
            );
            Covariate::Exponential { mean: 1.0 }
        }
    }
}

fn outcomes(
    c: &mut Check,
    raw: &BTreeMap<Spanned<String>, RawOutcome>,
    protocol: &Protocol,
    covariates: &[Covariate],
) -> Vec<OutcomeModel> {
    let reference = protocol.arms.len().saturating_sub(1);
    let mut out = Vec::new();
    for (name, r) in raw {
        let event_type = name.get_ref().clone();
        if !crate::endpoints::is_type_name(&event_type) {
            c.error(
                name.span(),
                format!("`{event_type}` is not an event type name ([a-z][a-z0-9_]*)"),
            );
        }
        let pieces = hazard_pieces(c, name, r);
        let mut hazard_ratios = vec![1.0; protocol.arms.len()];
        for (arm, hr) in &r.hazard_ratios {
            let x = c.positive(hr, "hazard ratio");
            match protocol.arm_index(arm.get_ref()) {
                Some(i) if i == reference && x != 1.0 => c.error(
                    hr.span(),
                    format!(
                        "`{}` is the reference arm (the last in the protocol); hazard ratios \
                         are against it",
                        arm.get_ref()
                    ),
                ),
                Some(i) => hazard_ratios[i] = x,
                None => c.error(
                    arm.span(),
                    format!(
                        "`{}` is not an arm of trial {}",
                        arm.get_ref(),
                        protocol.trial_id
                    ),
                ),
            }
        }
        let mut effects = Vec::new();
        for (field_name, value) in &r.effects {
            let Some(field) = protocol
                .fields
                .iter()
                .position(|f| f.name == *field_name.get_ref())
            else {
                c.error(
                    field_name.span(),
                    format!("`{}` is not an enrolment field", field_name.get_ref()),
                );
                continue;
            };
            let spec = &protocol.fields[field];
            let kind = match (&spec.kind, value.get_ref()) {
                (FieldKind::Category { levels }, toml::Value::Table(t)) => {
                    let mut per = vec![0.0; levels.len()];
                    for (level, hr) in t {
                        let hr = hr.as_float().or(hr.as_integer().map(|i| i as f64));
                        match (levels.iter().position(|l| l == level), hr) {
                            (Some(i), Some(h)) if h > 0.0 => per[i] = h.ln(),
                            (None, _) => c.error(
                                value.span(),
                                format!("`{level}` is not a level of `{}`", spec.name),
                            ),
                            _ => c.error(
                                value.span(),
                                format!("the hazard ratio of level `{level}` must be a number > 0"),
                            ),
                        }
                    }
                    EffectKind::PerLevel(per)
                }
                (FieldKind::Integer { .. } | FieldKind::Number { .. } | FieldKind::Boolean, v) => {
                    match v.as_float().or(v.as_integer().map(|i| i as f64)) {
                        Some(h) if h > 0.0 => EffectKind::PerUnit {
                            log_hr: h.ln(),
                            centre: covariates.get(field).map_or(0.0, Covariate::mean),
                        },
                        _ => {
                            c.error(
                            value.span(),
                            "a numeric or boolean effect is a hazard ratio per unit, a number > 0",
                        );
                            continue;
                        }
                    }
                }
                _ => {
                    c.error(
                        value.span(),
                        format!(
                            "the effect of category `{}` is a table of hazard ratios per level",
                            spec.name
                        ),
                    );
                    continue;
                }
            };
            effects.push(Effect { field, kind });
        }
        out.push(OutcomeModel {
            terminal: r.terminal.unwrap_or(event_type == "death"),
            code: r.code.as_ref().map(|s| s.get_ref().clone()),
            event_type,
            pieces,
            hazard_ratios,
            effects,
        });
    }
    out
}

/// The reference arm's hazard per day as pieces `(from_day, rate)`.
fn hazard_pieces(c: &mut Check, name: &Spanned<String>, r: &RawOutcome) -> Vec<(f64, f64)> {
    let given = [
        r.rate_per_year.is_some(),
        r.rates_per_year.is_some(),
        r.probability.is_some(),
    ]
    .iter()
    .filter(|&&g| g)
    .count();
    if given != 1 {
        c.error(
            name.span(),
            "give exactly one of `rate_per_year`, `rates_per_year` (with `from_days`) or \
             `probability` (with `horizon_days`)",
        );
        return vec![(0.0, 0.0)];
    }
    if let Some(rate) = &r.rate_per_year {
        return vec![(0.0, c.non_negative(rate, "rate_per_year") / DAYS_PER_YEAR)];
    }
    if let Some(p) = &r.probability {
        let prob = c.number(
            p,
            |x| (0.0..1.0).contains(&x),
            "`probability` must be in [0, 1)",
        );
        let Some(h) = &r.horizon_days else {
            c.error(p.span(), "`probability` needs `horizon_days`");
            return vec![(0.0, 0.0)];
        };
        let days = c.positive(h, "horizon_days");
        return vec![(0.0, -(1.0 - prob).ln() / days)];
    }
    let Some(rates) = &r.rates_per_year else {
        return vec![(0.0, 0.0)];
    };
    let Some(from) = &r.from_days else {
        c.error(
            rates.span(),
            "`rates_per_year` needs `from_days` (one per rate, from 0)",
        );
        return vec![(0.0, 0.0)];
    };
    if rates.get_ref().len() != from.get_ref().len() || rates.get_ref().is_empty() {
        c.error(
            from.span(),
            format!(
                "`from_days` has {} entries but `rates_per_year` has {}",
                from.get_ref().len(),
                rates.get_ref().len()
            ),
        );
        return vec![(0.0, 0.0)];
    }
    let mut previous = -1.0;
    let mut pieces = Vec::new();
    for (i, (f, rate)) in from.get_ref().iter().zip(rates.get_ref()).enumerate() {
        let day = *f.get_ref();
        if i == 0 && day != 0.0 {
            c.error(f.span(), "the first piece must start at day 0");
        } else if day <= previous {
            c.error(
                f.span(),
                format!("`from_days` must increase, got {day} after {previous}"),
            );
        }
        previous = day;
        pieces.push((day, c.non_negative(rate, "rate_per_year") / DAYS_PER_YEAR));
    }
    pieces
}
