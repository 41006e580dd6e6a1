//! The validated protocol: types that can only be built by [`super::parse`], so holding a
//! [`Protocol`] means every cross-reference in it (arms, fields, strata, criteria) was checked.

use std::fmt;

use serde::Serialize;

/// A trial protocol after validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Protocol {
    /// Stable trial identifier (`[a-z0-9_-]+`), used in URLs.
    pub trial_id: String,
    pub title: String,
    /// Protocol version as written by the trial team (e.g. `1.0`, `2024-03-01`).
    pub version: String,
    pub status: TrialStatus,
    pub target_sample_size: u32,
    pub consent: ConsentModel,
    /// Days within which a deferred consent must be confirmed (only, and always, with the
    /// `deferred` model): an unconfirmed patient past it is shown to the statistician.
    pub deferred_consent_days: Option<u32>,
    /// Whether a patient may withdraw the use of data already collected (the `data_use_withdrawn`
    /// scope of a withdrawal); when false, collected data stay in the analyses.
    pub data_use_withdrawal: bool,
    /// Who knows the arm while the trial runs: `open_label` (the register host treats by it, so
    /// its outbound events carry the arm) or `blinded` (they carry the allocation number only).
    pub masking: Masking,
    /// Reference of the ethics approval; a trial without one cannot recruit.
    pub ethics_approval: Option<String>,
    pub sites: Vec<Site>,
    /// Arms in declaration order; an arm's index in this list is its `ArmIndex`.
    pub arms: Vec<Arm>,
    /// Enrolment fields sent by the register, in declaration order.
    pub fields: Vec<FieldSpec>,
    /// Fields computed from enrolment fields (e.g. age bands).
    pub derived: Vec<DerivedField>,
    pub inclusion: Vec<Criterion>,
    pub exclusion: Vec<Criterion>,
    pub randomisation: RandomisationSpec,
    /// How follow-up data from the registers is cut off and censored.
    pub follow_up: FollowUp,
    /// Outcome definitions, in declaration order; exactly one is primary when any are declared.
    pub endpoints: Vec<Endpoint>,
    /// The group-sequential plan for the primary endpoint, if the trial has interim looks.
    pub monitoring: Option<Monitoring>,
    /// The statistical analysis plan's choices for the comparisons between arms (`[analysis]`).
    pub analysis: AnalysisPlan,
}

/// How the comparisons between arms are made, as the statistical analysis plan prescribes:
/// `[analysis]` sets the trial's defaults and `[analysis.endpoints.ID]` overrides them for one
/// endpoint. Validation resolves the overrides, so every endpoint has its own [`EndpointPlan`].
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct AnalysisPlan {
    /// The defaults, for endpoints without an override.
    pub default: EndpointPlan,
    /// Each endpoint with an `[analysis.endpoints.ID]` table, its defaults applied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<(String, EndpointPlan)>,
}

impl AnalysisPlan {
    /// The plan of endpoint `id` (its override, else the defaults).
    pub fn of(&self, id: &str) -> &EndpointPlan {
        self.endpoints
            .iter()
            .find(|(e, _)| e == id)
            .map_or(&self.default, |(_, p)| p)
    }
}

/// The analysis of one endpoint's primary comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointPlan {
    /// Stratified by the randomisation strata (each stratum key its own stratum): Cox and
    /// log-rank with strata, Mantel–Haenszel across strata for binary endpoints, the stratum
    /// as a factor in the count and linear models, Gray's test within strata.
    pub stratified: bool,
    /// Baseline covariates that adjust the comparison, each a factor recorded with every
    /// allocation (`site` or a stratification factor).
    pub covariates: Vec<String>,
    /// The model for count endpoints.
    pub count_model: crate::stats::rates::CountModel,
    /// Confidence level of the intervals.
    pub conf_level: f64,
}

impl Default for EndpointPlan {
    fn default() -> Self {
        EndpointPlan {
            stratified: false,
            covariates: Vec::new(),
            count_model: crate::stats::rates::CountModel::Negbin,
            conf_level: crate::stats::DEFAULT_CONF_LEVEL,
        }
    }
}

/// Interim monitoring of the primary (time-to-event) endpoint with Lan–DeMets alpha spending.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Monitoring {
    /// Overall type I error (the total of both sides when two-sided).
    pub alpha: f64,
    /// 1 or 2.
    pub sided: u8,
    /// Parsed from `obf`, `pocock`, `hsd:GAMMA` or `kd:RHO` (serialised in that spelling).
    pub spending: crate::design::SpendingFunction,
    /// Primary-endpoint events at the final analysis; the information fraction is events so far
    /// divided by this.
    pub planned_events: u32,
    /// Planned information fractions of the looks, increasing, the last 1.
    pub looks: Vec<f64>,
    /// Power the trial was designed for (conditional power under the design effect).
    pub power: f64,
    /// How alpha is split between the comparisons of several arms with the reference arm.
    pub multiplicity: Multiplicity,
    /// Where the forecast of the looks lets the pooled event hazard change (days from
    /// randomisation, increasing): a piecewise-exponential hazard; empty, an exponential one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forecast_hazard_cuts_days: Vec<f64>,
}

/// How a trial with several experimental arms shares its alpha between their comparisons with
/// the reference arm (`[monitoring] multiplicity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Multiplicity {
    /// Each of the k comparisons is monitored at alpha / k (the default).
    #[default]
    Bonferroni,
    /// Each comparison is monitored at the full alpha: the arms answer separate questions, as
    /// in platform trials whose protocol says so.
    None,
}

impl Multiplicity {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bonferroni" => Some(Self::Bonferroni),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// The alpha of each of `comparisons` comparisons.
    pub fn alpha_per_comparison(self, alpha: f64, comparisons: usize) -> f64 {
        match self {
            Self::Bonferroni => alpha / comparisons.max(1) as f64,
            Self::None => alpha,
        }
    }
}

/// Follow-up rules shared by every endpoint, and the registers the follow-up comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct FollowUp {
    /// Event types that end follow-up (emigration, loss to follow-up): a subject is censored
    /// at the first of them.
    pub censor_on: Vec<String>,
    /// Days the registers need to report events: follow-up is administratively censored at the
    /// data cut-off minus this lag. The default lag of a declared source, and the lag of every
    /// event type when no source is declared.
    pub reporting_lag_days: u32,
    /// The registers that deliver follow-up events (`[sources.ID]`), in declaration order.
    /// Empty: one unnamed feed with `reporting_lag_days`.
    pub sources: Vec<Source>,
    /// For each event type more than one source delivers, its sources in order of precedence
    /// (`[precedence]`): a subject's events of that type are taken from the first source that
    /// delivered any, and the type is complete through that first source's lag.
    pub precedence: Vec<Precedence>,
}

/// A register that delivers follow-up events: its own delay and cadence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// Identifier (`[a-z][a-z0-9_]*`); a `source` token is bound to it.
    pub id: String,
    pub label: String,
    /// Event types this source delivers.
    pub delivers: Vec<String>,
    /// Days the register needs to report an event: its data as of cut-off C are complete
    /// through C minus this lag.
    pub reporting_lag_days: u32,
    /// How often it is expected to deliver: a source whose last delivery is older than this is
    /// stale.
    pub expected_every_days: u32,
    /// How its data are entered, extracted and interpreted, as the trial documents it.
    pub provenance: Option<String>,
}

/// Which source's events of one type count when several deliver it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Precedence {
    pub event_type: String,
    /// Source ids, the first taking precedence.
    pub sources: Vec<String>,
}

/// Why an event of a type cannot be attributed to a source of this protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceRefusal {
    #[error("event type `{0}` is not an event type of this trial's protocol")]
    UnknownType(String),
    #[error("source `{source_id}` does not deliver event type `{event_type}` in this trial's protocol; it delivers {delivers}")]
    NotDelivered {
        source_id: String,
        event_type: String,
        delivers: String,
    },
    #[error("source `{0}` is not a source of this trial's protocol")]
    UnknownSource(String),
    #[error("event type `{event_type}` is delivered by sources {sources}; name the one this event comes from in `source`")]
    Ambiguous { event_type: String, sources: String },
    #[error("this token delivers for source `{bound}`, but the event names source `{claimed}`")]
    OtherSource { bound: String, claimed: String },
}

impl FollowUp {
    pub fn source(&self, id: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.id == id)
    }

    /// The sources delivering `event_type`, in order of precedence.
    pub fn sources_of<'a>(&'a self, event_type: &str) -> Vec<&'a Source> {
        if let Some(p) = self.precedence.iter().find(|p| p.event_type == event_type) {
            return p.sources.iter().filter_map(|id| self.source(id)).collect();
        }
        self.sources
            .iter()
            .filter(|s| s.delivers.iter().any(|t| t == event_type))
            .collect()
    }

    /// Rank of `source` among the sources of `event_type` (0 first); sources not listed (and
    /// events without a source) come after every listed one.
    pub fn rank(&self, event_type: &str, source: Option<&str>) -> usize {
        match self.precedence.iter().find(|p| p.event_type == event_type) {
            Some(p) => source
                .and_then(|s| p.sources.iter().position(|id| id == s))
                .unwrap_or(p.sources.len()),
            None => 0,
        }
    }

    /// Whether any event type has more than one source (so precedence may drop events).
    pub fn has_precedence(&self) -> bool {
        !self.precedence.is_empty()
    }

    /// The reporting lag of `event_type`: that of the source whose events of the type count
    /// (the first in precedence), or the follow-up default when no source delivers it.
    pub fn lag_of_type(&self, event_type: &str) -> u32 {
        self.sources_of(event_type)
            .first()
            .map_or(self.reporting_lag_days, |s| s.reporting_lag_days)
    }

    /// The reporting lag of an endpoint: the longest of its event types' lags, since a
    /// composite is complete only as far as its slowest source.
    pub fn lag_of(&self, endpoint: &Endpoint) -> u32 {
        endpoint
            .events()
            .types
            .iter()
            .map(|t| self.lag_of_type(t))
            .max()
            .unwrap_or(self.reporting_lag_days)
    }

    /// The source an event of `event_type` is attributed to. `bound` is the source the sender
    /// is bound to (a `source` token), `claimed` the source the event names. With no source
    /// declared, the event keeps the source it names.
    pub fn attribute(
        &self,
        event_type: &str,
        claimed: Option<&str>,
        bound: Option<&str>,
    ) -> Result<Option<String>, SourceRefusal> {
        if let (Some(bound), Some(claimed)) = (bound, claimed) {
            if bound != claimed {
                return Err(SourceRefusal::OtherSource {
                    bound: bound.to_string(),
                    claimed: claimed.to_string(),
                });
            }
        }
        if self.sources.is_empty() {
            if let Some(bound) = bound {
                return Err(SourceRefusal::UnknownSource(bound.to_string()));
            }
            return Ok(claimed.map(str::to_string));
        }
        let delivering = self.sources_of(event_type);
        if delivering.is_empty() {
            return Err(SourceRefusal::UnknownType(event_type.to_string()));
        }
        match bound.or(claimed) {
            Some(id) => {
                let Some(source) = self.source(id) else {
                    return Err(SourceRefusal::UnknownSource(id.to_string()));
                };
                if !source.delivers.iter().any(|t| t == event_type) {
                    return Err(SourceRefusal::NotDelivered {
                        source_id: id.to_string(),
                        event_type: event_type.to_string(),
                        delivers: quoted(&source.delivers),
                    });
                }
                Ok(Some(id.to_string()))
            }
            None => match delivering.as_slice() {
                [only] => Ok(Some(only.id.clone())),
                many => Err(SourceRefusal::Ambiguous {
                    event_type: event_type.to_string(),
                    sources: quoted(&many.iter().map(|s| s.id.clone()).collect::<Vec<_>>()),
                }),
            },
        }
    }
}

/// "`a`, `b`".
fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One outcome, derived per subject from register events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Endpoint {
    /// Identifier used on the command line and in exports (`[a-z][a-z0-9_]*`).
    pub id: String,
    pub label: Option<String>,
    pub primary: bool,
    pub kind: EndpointKind,
    /// Time to event only: event types that compete with it (death, usually). Their first
    /// occurrence before the endpoint's event ends follow-up for it as a competing event, and
    /// the analysis reports cumulative incidence, Gray's test and Fine–Gray and cause-specific
    /// hazard ratios.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub competing: Vec<String>,
}

/// Which events count for an endpoint: any of `types`, and when `codes` is not empty only
/// events whose code starts with one of them (ICD-10 prefixes such as `I21`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventSelector {
    pub types: Vec<String>,
    pub codes: Vec<String>,
}

/// Days after randomisation, both ends included (day 0 is the randomisation day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DayWindow {
    pub from_day: u32,
    pub to_day: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EndpointKind {
    /// Time to the first selected event (several types make a composite), censored at the
    /// horizon, at a censoring event or at the cut-off minus the reporting lag.
    TimeToEvent {
        events: EventSelector,
        horizon_days: Option<u32>,
    },
    /// Whether a selected event happened within `horizon_days`; subjects not followed for the
    /// whole horizon without an event are incomplete, not event-free.
    Binary {
        events: EventSelector,
        horizon_days: u32,
    },
    /// Number of selected events within the window.
    Count {
        events: EventSelector,
        window: DayWindow,
    },
    /// The `value` of the selected event within the window closest to `target_day` (earliest
    /// on a tie), e.g. LDL cholesterol at the one-year visit.
    Continuous {
        events: EventSelector,
        window: DayWindow,
        target_day: u32,
    },
}

impl Endpoint {
    pub fn events(&self) -> &EventSelector {
        match &self.kind {
            EndpointKind::TimeToEvent { events, .. }
            | EndpointKind::Binary { events, .. }
            | EndpointKind::Count { events, .. }
            | EndpointKind::Continuous { events, .. } => events,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialStatus {
    /// Not yet open for enrolment.
    Planned,
    Recruiting,
    Paused,
    Closed,
}

impl TrialStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialStatus::Planned => "planned",
            TrialStatus::Recruiting => "recruiting",
            TrialStatus::Paused => "paused",
            TrialStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "planned" => TrialStatus::Planned,
            "recruiting" => TrialStatus::Recruiting,
            "paused" => TrialStatus::Paused,
            "closed" => TrialStatus::Closed,
            _ => return None,
        })
    }
}

/// Whether the arm may leave rrct with an allocation (the trial's masking).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Masking {
    /// Open label: the register host and clinicians know the arm (they treat by it).
    OpenLabel,
    /// Blinded: outside the unblinded roles only the allocation number is known.
    Blinded,
}

impl Masking {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open_label" => Some(Masking::OpenLabel),
            "blinded" => Some(Masking::Blinded),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentModel {
    Oral,
    Written,
    /// Randomised first (an emergency), consent sought from the patient or next of kin later.
    Deferred,
    OptOut,
    Waiver,
}

impl ConsentModel {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentModel::Oral => "oral",
            ConsentModel::Written => "written",
            ConsentModel::Deferred => "deferred",
            ConsentModel::OptOut => "opt_out",
            ConsentModel::Waiver => "waiver",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "oral" => ConsentModel::Oral,
            "written" => ConsentModel::Written,
            "deferred" => ConsentModel::Deferred,
            "opt_out" => ConsentModel::OptOut,
            "waiver" => ConsentModel::Waiver,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    /// Short site code, as the register sends it (e.g. `UPP`).
    pub code: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arm {
    pub id: String,
    pub label: String,
    /// Allocation ratio weight (positive integer).
    pub ratio: u32,
    /// Closed to new patients by an amendment (`closed = true`): the arm stays in the protocol
    /// and in every analysis, but no one is allocated to it any more.
    pub closed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldSpec {
    pub name: String,
    pub label: Option<String>,
    pub kind: FieldKind,
    /// When false the register may omit the field.
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldKind {
    Integer {
        min: Option<i64>,
        max: Option<i64>,
    },
    Number {
        min: Option<f64>,
        max: Option<f64>,
    },
    Category {
        levels: Vec<String>,
    },
    Boolean,
    /// A calendar date `YYYY-MM-DD`, optionally bounded.
    Date {
        min: Option<chrono::NaiveDate>,
        max: Option<chrono::NaiveDate>,
    },
}

impl FieldKind {
    /// The `type` name used in protocol files.
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldKind::Integer { .. } => "integer",
            FieldKind::Number { .. } => "number",
            FieldKind::Category { .. } => "category",
            FieldKind::Boolean => "boolean",
            FieldKind::Date { .. } => "date",
        }
    }
}

/// A categorical field computed from a numeric field by cut points:
/// band `i` holds values in `[cuts[i-1], cuts[i])`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DerivedField {
    pub name: String,
    /// The integer or number field it is computed from.
    pub from: String,
    /// Strictly increasing cut points.
    pub cuts: Vec<f64>,
    /// One label per band: `cuts.len() + 1` labels.
    pub labels: Vec<String>,
}

impl DerivedField {
    /// The label of the band holding `x`.
    pub fn label_for(&self, x: f64) -> &str {
        self.labels.get(self.band(x)).map_or("", String::as_str)
    }

    /// The index of the band holding `x` (the index of its label).
    pub fn band(&self, x: f64) -> usize {
        self.cuts.iter().take_while(|&&cut| cut <= x).count()
    }
}

/// A declarative eligibility criterion over one field (enrolment field, derived field or `site`).
/// Every condition present must hold for the criterion to be met.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Criterion {
    pub id: String,
    /// Human-readable statement of the criterion, shown in refusal reasons.
    pub text: String,
    pub field: String,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Lt(Value),
    Le(Value),
    Gt(Value),
    Ge(Value),
}

impl Condition {
    /// What the condition asks of a value, without the field name: `>= 18`, `one of STEMI, NSTEMI`.
    pub fn requirement(&self) -> String {
        match self {
            Condition::Eq(v) => v.to_string(),
            Condition::Ne(v) => format!("not {v}"),
            Condition::In(vs) => format!("one of {}", join(vs)),
            Condition::NotIn(vs) => format!("not one of {}", join(vs)),
            Condition::Lt(v) => format!("< {v}"),
            Condition::Le(v) => format!("<= {v}"),
            Condition::Gt(v) => format!("> {v}"),
            Condition::Ge(v) => format!(">= {v}"),
        }
    }

    /// The condition as a statement about `field`: `age >= 18`, `diagnosis is one of STEMI`.
    pub fn statement(&self, field: &str) -> String {
        match self {
            Condition::Eq(v) => format!("{field} = {v}"),
            Condition::Ne(v) => format!("{field} != {v}"),
            Condition::In(_) | Condition::NotIn(_) => format!("{field} is {}", self.requirement()),
            _ => format!("{field} {}", self.requirement()),
        }
    }
}

fn join(values: &[Value]) -> String {
    values
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A typed value of an enrolment, derived or site field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Integer(i64),
    Number(f64),
    Text(String),
    Boolean(bool),
    Date(chrono::NaiveDate),
}

/// Values print as a clinician would write them: `18`, `24.5`, `STEMI`, `true`, `2024-03-01`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Integer(i) => write!(f, "{i}"),
            Value::Number(x) => write!(f, "{x}"),
            Value::Text(s) => f.write_str(s),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
        }
    }
}

/// Parse a calendar date written exactly as `YYYY-MM-DD` (chrono alone would also take `2024-3-1`).
pub(crate) fn parse_iso_date(s: &str) -> Option<chrono::NaiveDate> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RandomisationSpec {
    pub method: Method,
    /// Stratification factors: `site`, category/boolean fields or derived fields, in order.
    pub strata: Vec<String>,
    /// Cluster randomisation: the `site` or category field whose value is the unit randomised;
    /// the first enrolment of a cluster randomises it and later ones inherit its arm.
    pub cluster: Option<String>,
    /// Whether enrolments may name arms unsuitable for the patient (`"ineligible_arms"`);
    /// allocation is then among the remaining arms with the protocol ratios.
    pub arm_eligibility: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Method {
    /// Each allocation an independent draw with the arms' ratio weights.
    Simple,
    /// Permuted blocks within strata; each block's size drawn at random from `block_sizes`,
    /// every size a multiple of the sum of the arm ratios.
    PermutedBlocks { block_sizes: Vec<u32> },
    /// Pocock–Simon minimisation over trial-wide marginal counts of `factors`, the preferred
    /// arm taken with probability `p`, after `initial_random` simple random allocations.
    Minimisation {
        factors: Vec<MinimisationFactorSpec>,
        measure: ImbalanceMeasure,
        p: f64,
        initial_random: u32,
    },
    /// Efron's biased coin: the lagging arm with probability `p` (two arms, equal ratios).
    BiasedCoin { p: f64 },
    /// Big stick design: fair coin until the imbalance reaches `max_imbalance`.
    BigStick { max_imbalance: u32 },
    /// Wei's urn UD(alpha, beta) (equal ratios).
    Urn { alpha: u32, beta: u32 },
}

/// One minimisation factor of a protocol: a `site`, category, boolean or derived field, and
/// the weight of its imbalance in the score (default 1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinimisationFactorSpec {
    pub field: String,
    pub weight: f64,
}

/// How minimisation measures the imbalance of a factor level's ratio-adjusted counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ImbalanceMeasure {
    /// Largest minus smallest (Pocock–Simon's default).
    #[default]
    Range,
    /// Sample variance (denominator k − 1, as R's `var`).
    Variance,
    /// Sample standard deviation (as R's `sd`).
    Sd,
}

impl ImbalanceMeasure {
    pub fn as_str(self) -> &'static str {
        match self {
            ImbalanceMeasure::Range => "range",
            ImbalanceMeasure::Variance => "variance",
            ImbalanceMeasure::Sd => "sd",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "range" => ImbalanceMeasure::Range,
            "variance" => ImbalanceMeasure::Variance,
            "sd" => ImbalanceMeasure::Sd,
            _ => return None,
        })
    }
}

impl Method {
    /// The `method` name used in protocol files.
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Simple => "simple",
            Method::PermutedBlocks { .. } => "permuted_blocks",
            Method::Minimisation { .. } => "minimisation",
            Method::BiasedCoin { .. } => "biased_coin",
            Method::BigStick { .. } => "big_stick",
            Method::Urn { .. } => "urn",
        }
    }
}

impl Protocol {
    pub fn arm_index(&self, id: &str) -> Option<usize> {
        self.arms.iter().position(|a| a.id == id)
    }

    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn site(&self, code: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.code == code)
    }

    pub fn derived_field(&self, name: &str) -> Option<&DerivedField> {
        self.derived.iter().find(|d| d.name == name)
    }

    pub fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.id == id)
    }

    pub fn primary_endpoint(&self) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.primary)
    }

    /// Whether the trial reads events of this type: one a declared source delivers, or (with no
    /// source declared) one an endpoint or `censor_on` names.
    pub fn knows_event_type(&self, event_type: &str) -> bool {
        if !self.follow_up.sources.is_empty() {
            return self
                .follow_up
                .sources
                .iter()
                .any(|s| s.delivers.iter().any(|t| t == event_type));
        }
        self.follow_up.censor_on.iter().any(|t| t == event_type)
            || self
                .endpoints
                .iter()
                .any(|e| e.events().types.iter().any(|t| t == event_type))
    }

    /// The source an event of `event_type` is stored under in this trial (see
    /// [`FollowUp::attribute`]), refusing a type the trial does not know.
    pub fn attribute_event(
        &self,
        event_type: &str,
        claimed: Option<&str>,
        bound: Option<&str>,
    ) -> Result<Option<String>, SourceRefusal> {
        if !self.knows_event_type(event_type) {
            return Err(SourceRefusal::UnknownType(event_type.to_string()));
        }
        self.follow_up.attribute(event_type, claimed, bound)
    }

    /// Arm ratio weights in arm order.
    /// One flag per arm: open to new patients (not closed).
    pub fn open_arms(&self) -> Vec<bool> {
        self.arms.iter().map(|a| !a.closed).collect()
    }

    pub fn ratios(&self) -> Vec<u32> {
        self.arms.iter().map(|a| a.ratio).collect()
    }
}
