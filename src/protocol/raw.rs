//! Phase 1: the protocol file exactly as written, with the byte span of every value that
//! phase 2 ([`super::validate`]) may need to point at.
//!
//! Rules that keep spans working with toml 0.8:
//! - no internally tagged or untagged enums (serde buffers their content and loses spans), so
//!   keys whose meaning depends on another key (`min` on an integer vs a date field) are kept as
//!   `toml::Value` and interpreted in phase 2;
//! - no `Spanned` around a *table*: a table written with dotted keys (`randomisation.method = ..`)
//!   has no span and `Spanned` then fails with a confusing error. Tables are located through
//!   their keys or values instead.
//!
//! Keys without which a section means nothing (`id`, `type`, `method`...) are plain required
//! fields, so serde reports them missing with the span of their table.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

pub(super) type SpannedList<T> = Spanned<Vec<Spanned<T>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProtocol {
    pub id: Spanned<String>,
    pub title: Spanned<String>,
    pub version: Spanned<String>,
    pub status: Option<Spanned<String>>,
    pub target_sample_size: Spanned<i64>,
    pub consent: Spanned<String>,
    pub deferred_consent_days: Option<Spanned<i64>>,
    pub data_use_withdrawal: Option<Spanned<bool>>,
    pub masking: Option<Spanned<String>>,
    pub ethics_approval: Option<Spanned<String>>,
    pub sites: Option<Spanned<Vec<RawSite>>>,
    pub arms: Option<Spanned<Vec<RawArm>>>,
    #[serde(default)]
    pub fields: Entries<RawField>,
    #[serde(default)]
    pub derived: Entries<RawDerived>,
    #[serde(default)]
    pub inclusion: Vec<RawCriterion>,
    #[serde(default)]
    pub exclusion: Vec<RawCriterion>,
    pub randomisation: RawRandomisation,
    #[serde(default)]
    pub follow_up: RawFollowUp,
    #[serde(default)]
    pub endpoints: Entries<RawEndpoint>,
    pub monitoring: Option<RawMonitoring>,
    pub analysis: Option<RawAnalysis>,
    #[serde(default)]
    pub sources: Entries<RawSource>,
    /// `[precedence]`: event type = [source ids, first taking precedence].
    #[serde(default)]
    pub precedence: Entries<SpannedList<String>>,
}

/// One `[sources.ID]` table: a register delivering follow-up events.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub label: Spanned<String>,
    pub delivers: SpannedList<String>,
    pub reporting_lag_days: Option<Spanned<i64>>,
    pub expected_every_days: Spanned<i64>,
    pub provenance: Option<Spanned<String>>,
}

/// `[monitoring]`: the group-sequential plan for the primary endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMonitoring {
    pub alpha: Spanned<f64>,
    pub sided: Spanned<i64>,
    pub spending: Spanned<String>,
    pub planned_events: Spanned<i64>,
    pub looks: SpannedList<f64>,
    pub power: Option<Spanned<f64>>,
    pub forecast_hazard_cuts_days: Option<SpannedList<f64>>,
    pub multiplicity: Option<Spanned<String>>,
}

/// `[analysis]`: the analysis plan's defaults, and `[analysis.endpoints.ID]` overrides.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnalysis {
    // The defaults, as in [`RawEndpointPlan`] (written out: `flatten` would lose the spans).
    pub stratified: Option<Spanned<bool>>,
    pub covariates: Option<SpannedList<String>>,
    pub count_model: Option<Spanned<String>>,
    pub conf_level: Option<Spanned<f64>>,
    #[serde(default)]
    pub endpoints: Entries<RawEndpointPlan>,
}

/// The keys of `[analysis]` that an endpoint may override.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEndpointPlan {
    pub stratified: Option<Spanned<bool>>,
    pub covariates: Option<SpannedList<String>>,
    pub count_model: Option<Spanned<String>>,
    pub conf_level: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSite {
    pub code: Spanned<String>,
    pub name: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArm {
    pub id: Spanned<String>,
    pub label: Option<Spanned<String>>,
    pub ratio: Option<Spanned<i64>>,
    pub closed: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawField {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    pub label: Option<Spanned<String>>,
    pub required: Option<Spanned<bool>>,
    pub min: Option<Spanned<toml::Value>>,
    pub max: Option<Spanned<toml::Value>>,
    pub levels: Option<SpannedList<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDerived {
    pub from: Spanned<String>,
    pub cuts: SpannedList<toml::Value>,
    pub labels: Option<SpannedList<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCriterion {
    pub id: Spanned<String>,
    pub text: Option<Spanned<String>>,
    pub field: Spanned<String>,
    pub eq: Option<Spanned<toml::Value>>,
    pub ne: Option<Spanned<toml::Value>>,
    #[serde(rename = "in")]
    pub in_: Option<SpannedList<toml::Value>>,
    pub not_in: Option<SpannedList<toml::Value>>,
    pub lt: Option<Spanned<toml::Value>>,
    pub le: Option<Spanned<toml::Value>>,
    pub gt: Option<Spanned<toml::Value>>,
    pub ge: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRandomisation {
    pub method: Spanned<String>,
    pub block_sizes: Option<SpannedList<i64>>,
    pub strata: Option<SpannedList<String>>,
    /// Minimisation factors: `[{ field = "sex", weight = 1.0 }, ...]`.
    pub factors: Option<Spanned<Vec<RawFactor>>>,
    pub measure: Option<Spanned<String>>,
    /// A probability: integer or float in the file, so kept as a value.
    pub p: Option<Spanned<toml::Value>>,
    pub initial_random: Option<Spanned<i64>>,
    pub max_imbalance: Option<Spanned<i64>>,
    pub alpha: Option<Spanned<i64>>,
    pub beta: Option<Spanned<i64>>,
    pub cluster: Option<Spanned<String>>,
    pub arm_eligibility: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFactor {
    pub field: Spanned<String>,
    pub weight: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFollowUp {
    pub censor_on: Option<SpannedList<String>>,
    pub reporting_lag_days: Option<Spanned<i64>>,
}

/// One `[endpoints.ID]` table. Which of the optional keys are allowed depends on `kind`, so
/// they are all optional here and phase 2 reports the ones that do not apply.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEndpoint {
    pub label: Option<Spanned<String>>,
    pub kind: Spanned<String>,
    pub events: SpannedList<String>,
    pub codes: Option<SpannedList<String>>,
    pub horizon_days: Option<Spanned<i64>>,
    pub primary: Option<Spanned<bool>>,
    pub window: Option<SpannedList<i64>>,
    pub target_day: Option<Spanned<i64>>,
    pub competing: Option<SpannedList<String>>,
}

/// A TOML table read as `(key, value)` pairs in the order written, keys with their spans.
/// (A `BTreeMap` would sort the fields, and the protocol keeps declaration order.)
#[derive(Debug)]
pub(super) struct Entries<T>(pub Vec<(Spanned<String>, T)>);

impl<T> Default for Entries<T> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Entries<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for EntriesVisitor<T> {
            type Value = Entries<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry()? {
                    entries.push((key, value));
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}
