//! Each randomised subject's baseline: the enrolment fields the register sent with the
//! enrolment that randomised it, as the screening log keeps them (its `randomised` row), and
//! their values as the analysis plan's covariates read them.
//!
//! The fields are kept as received (JSON) and typed only when read, against the current
//! protocol: a field an amendment added has no value for subjects randomised before it, and a
//! value that no longer fits its declaration (a level an amendment removed) reads as missing.
//! The analyses leave such subjects out (complete cases) and say how many.
//!
//! What it must never do: read anything, or decide how a value enters a model (that is
//! [`super::adjust`]).

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Map, Value as Json};

use crate::endpoints::flow::Screening;
use crate::endpoints::Subject;
use crate::protocol::{FieldKind, Protocol};

/// The enrolment fields of each randomised record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Baseline {
    by_record: HashMap<String, Map<String, Json>>,
}

impl Baseline {
    /// Keep the fields of every screening entry that randomised its record (entries of other
    /// outcomes hold patients who were not randomised).
    pub fn record(&mut self, screening: &[Screening]) {
        for s in screening.iter().filter(|s| s.outcome == "randomised") {
            self.by_record.insert(s.record_id.clone(), s.fields.clone());
        }
    }

    /// Set one record's fields (the design simulator and tests build baselines this way).
    pub fn insert(&mut self, record_id: impl Into<String>, fields: Map<String, Json>) {
        self.by_record.insert(record_id.into(), fields);
    }

    /// The fields of `record_id` as received, when it was randomised with any.
    pub fn fields(&self, record_id: &str) -> Option<&Map<String, Json>> {
        self.by_record.get(record_id)
    }

    pub fn len(&self) -> usize {
        self.by_record.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_record.is_empty()
    }
}

/// The level of a baseline factor for a subject: its site, or the factor's level in its
/// stratum key.
pub(crate) fn level<'a>(subject: &'a Subject, factor: &str) -> &'a str {
    if factor == "site" {
        return &subject.site;
    }
    subject
        .stratum
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .find(|(f, _)| *f == factor)
        .map_or(crate::protocol::MISSING_LEVEL, |(_, level)| level)
}

/// How a covariate enters a model: a number as a linear term (integer and number fields), or
/// a level of a factor (`site`, stratification factors, category, boolean and derived fields).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CovariateValue<'a> {
    Number(f64),
    Level(Cow<'a, str>),
}

/// Whether covariate `name` of `protocol` is numeric (a linear term) rather than a factor.
pub(crate) fn is_numeric(protocol: &Protocol, name: &str) -> bool {
    !protocol.randomisation.strata.iter().any(|s| s == name)
        && protocol
            .field(name)
            .is_some_and(|f| matches!(f.kind, FieldKind::Integer { .. } | FieldKind::Number { .. }))
}

/// Reads covariate values of subjects: from the allocation (`site` and the stratification
/// factors, whose levels are in the stratum key) or from the baseline fields.
#[derive(Clone, Copy)]
pub(crate) struct Covariates<'a> {
    pub protocol: &'a Protocol,
    pub baseline: &'a Baseline,
}

impl<'a> Covariates<'a> {
    /// The value of covariate `name` for `subject`, or `None` when it has none.
    pub fn value(&self, subject: &'a Subject, name: &str) -> Option<CovariateValue<'a>> {
        if name == "site" || self.protocol.randomisation.strata.iter().any(|s| s == name) {
            return Some(CovariateValue::Level(Cow::Borrowed(level(subject, name))));
        }
        let fields = self.baseline.fields(&subject.record_id)?;
        let json = |field: &str| fields.get(field).filter(|v| !v.is_null());
        if let Some(spec) = self.protocol.field(name) {
            let v = json(name)?;
            return match &spec.kind {
                FieldKind::Integer { .. } | FieldKind::Number { .. } => v
                    .as_f64()
                    .filter(|x| x.is_finite())
                    .map(CovariateValue::Number),
                FieldKind::Category { levels } => v
                    .as_str()
                    .filter(|s| levels.iter().any(|l| l == s))
                    .map(|s| CovariateValue::Level(Cow::Owned(s.to_string()))),
                FieldKind::Boolean => v.as_bool().map(|b| {
                    CovariateValue::Level(Cow::Borrowed(if b { "true" } else { "false" }))
                }),
                // Validation refuses dates as covariates.
                FieldKind::Date { .. } => None,
            };
        }
        let derived = self.protocol.derived.iter().find(|d| d.name == name)?;
        let x = json(&derived.from)?.as_f64().filter(|x| x.is_finite())?;
        Some(CovariateValue::Level(Cow::Owned(
            derived.label_for(x).to_string(),
        )))
    }

    /// Whether `subject` has a value of every covariate in `names`.
    pub fn complete(&self, subject: &'a Subject, names: &[String]) -> bool {
        names.iter().all(|n| self.value(subject, n).is_some())
    }
}

/// Whether any of covariates `names` is read from the baseline fields (and so may be missing):
/// anything but `site` and the stratification factors.
pub(crate) fn any_from_fields(protocol: &Protocol, names: &[String]) -> bool {
    names
        .iter()
        .any(|n| n != "site" && !protocol.randomisation.strata.iter().any(|s| s == n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn subject(record: &str) -> Subject {
        Subject {
            record_id: record.into(),
            subject: record.into(),
            site: "UPP".into(),
            arm: "pci".into(),
            stratum: "site=UPP;sex=F".into(),
            randomised_on: chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
            data_collection_ends: None,
        }
    }

    fn fields(v: Json) -> Map<String, Json> {
        match v {
            Json::Object(m) => m,
            _ => unreachable!("an object"),
        }
    }

    #[test]
    fn values_are_typed_by_the_protocol_and_missing_when_they_do_not_fit() {
        let protocol =
            crate::protocol::parse(include_str!("../../protocols/taste.toml"), "taste.toml")
                .unwrap();
        let mut baseline = Baseline::default();
        let screening = |record: &str, outcome: &str, f: Json| Screening {
            record_id: record.into(),
            site: "UPP".into(),
            outcome: outcome.into(),
            reasons: vec![],
            screened_on: chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
            fields: fields(f),
        };
        baseline.record(&[
            screening("A", "not_eligible", json!({"age": 12})),
            screening(
                "A",
                "randomised",
                json!({"age": 70, "sex": "F", "diagnosis": "STEMI"}),
            ),
            screening(
                "B",
                "randomised",
                json!({"age": null, "diagnosis": "other"}),
            ),
            screening("C", "not_randomised", json!({"age": 50})),
        ]);
        assert_eq!(baseline.len(), 2);
        let c = Covariates {
            protocol: &protocol,
            baseline: &baseline,
        };
        let (a, b, none) = (subject("A"), subject("B"), subject("C"));
        assert_eq!(c.value(&a, "age"), Some(CovariateValue::Number(70.0)));
        assert_eq!(
            c.value(&a, "age_band"),
            Some(CovariateValue::Level("65-74".into()))
        );
        assert_eq!(
            c.value(&a, "diagnosis"),
            Some(CovariateValue::Level("STEMI".into()))
        );
        // Null, a level not declared, and a record without a randomising screening.
        assert_eq!(c.value(&b, "age"), None);
        assert_eq!(c.value(&b, "age_band"), None);
        assert_eq!(c.value(&b, "diagnosis"), None);
        assert_eq!(c.value(&none, "age"), None);
        // Site and stratification factors come from the allocation, fields or not.
        assert_eq!(
            c.value(&none, "sex"),
            Some(CovariateValue::Level("F".into()))
        );
        assert!(c.complete(&a, &["age".into(), "site".into()]));
        assert!(!c.complete(&b, &["age".into()]));
        assert!(is_numeric(&protocol, "symptom_onset_hours"));
        assert!(!is_numeric(&protocol, "sex") && !is_numeric(&protocol, "age_band"));
    }
}
