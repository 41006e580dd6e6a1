//! Whether an enrolment meets the protocol's inclusion criteria and none of its exclusion
//! criteria, with a reason for each criterion that stands in the way (for the screening log).

use std::cmp::Ordering;

use serde::Serialize;

use super::enrolment::EnrolmentValues;
use super::model::{Condition, Criterion, Protocol, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CriterionKind {
    Inclusion,
    Exclusion,
}

/// One criterion that makes an enrolment ineligible: an inclusion criterion not met, an
/// exclusion criterion met, or either one over a field that was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ineligibility {
    /// The criterion's id.
    pub criterion: String,
    pub kind: CriterionKind,
    /// The criterion's text from the protocol.
    pub text: String,
    /// What about this enrolment fails it, e.g. `diagnosis is NSTEMI; required: one of STEMI`.
    pub message: String,
}

/// Every criterion that stands in the way of enrolment; empty means eligible.
pub fn check_eligibility(protocol: &Protocol, values: &EnrolmentValues) -> Vec<Ineligibility> {
    let mut out = Vec::new();
    for criterion in &protocol.inclusion {
        let message = match values.get(&criterion.field) {
            None => Some(format!(
                "{} was not recorded, so `{}` cannot be confirmed",
                criterion.field,
                statements(criterion)
            )),
            Some(value) if !is_met(criterion, value) => Some(format!(
                "{} is {value}; required: {}",
                criterion.field,
                criterion
                    .conditions
                    .iter()
                    .map(Condition::requirement)
                    .collect::<Vec<_>>()
                    .join(" and ")
            )),
            Some(_) => None,
        };
        if let Some(message) = message {
            out.push(entry(criterion, CriterionKind::Inclusion, message));
        }
    }
    for criterion in &protocol.exclusion {
        let message = match values.get(&criterion.field) {
            None => Some(format!(
                "{} was not recorded, so `{}` cannot be ruled out",
                criterion.field,
                statements(criterion)
            )),
            Some(value) if is_met(criterion, value) => Some(format!(
                "{} is {value}; excluded when {}",
                criterion.field,
                statements(criterion)
            )),
            Some(_) => None,
        };
        if let Some(message) = message {
            out.push(entry(criterion, CriterionKind::Exclusion, message));
        }
    }
    out
}

fn entry(criterion: &Criterion, kind: CriterionKind, message: String) -> Ineligibility {
    Ineligibility {
        criterion: criterion.id.clone(),
        kind,
        text: criterion.text.clone(),
        message,
    }
}

fn statements(criterion: &Criterion) -> String {
    criterion
        .conditions
        .iter()
        .map(|c| c.statement(&criterion.field))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// A criterion is met when every one of its conditions holds.
fn is_met(criterion: &Criterion, value: &Value) -> bool {
    criterion.conditions.iter().all(|c| holds(c, value))
}

impl Criterion {
    /// Whether `value` (of the criterion's field) meets every condition: the test
    /// [`check_eligibility`] applies, for callers that hold values by position rather than in
    /// [`EnrolmentValues`] (the design simulator).
    pub fn is_met(&self, value: &Value) -> bool {
        is_met(self, value)
    }
}

fn holds(condition: &Condition, value: &Value) -> bool {
    let cmp = |other: &Value| compare(value, other);
    match condition {
        Condition::Eq(v) => cmp(v) == Some(Ordering::Equal),
        Condition::Ne(v) => cmp(v) != Some(Ordering::Equal),
        Condition::In(vs) => vs.iter().any(|v| cmp(v) == Some(Ordering::Equal)),
        Condition::NotIn(vs) => vs.iter().all(|v| cmp(v) != Some(Ordering::Equal)),
        Condition::Lt(v) => cmp(v) == Some(Ordering::Less),
        Condition::Le(v) => matches!(cmp(v), Some(Ordering::Less | Ordering::Equal)),
        Condition::Gt(v) => cmp(v) == Some(Ordering::Greater),
        Condition::Ge(v) => matches!(cmp(v), Some(Ordering::Greater | Ordering::Equal)),
    }
}

/// Compare values of one type; integers and numbers compare numerically with each other.
/// Text and booleans only compare for equality (validation keeps `lt`... off them).
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => Some(x.cmp(y)),
        (Value::Integer(x), Value::Number(y)) => (*x as f64).partial_cmp(y),
        (Value::Number(x), Value::Integer(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Number(x), Value::Number(y)) => x.partial_cmp(y),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::Text(x), Value::Text(y)) => (x == y).then_some(Ordering::Equal),
        (Value::Boolean(x), Value::Boolean(y)) => (x == y).then_some(Ordering::Equal),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_enrolment;
    use crate::protocol::tests::taste;
    use serde_json::json;

    fn values(p: &Protocol, fields: serde_json::Value) -> EnrolmentValues {
        let serde_json::Value::Object(map) = fields else {
            panic!("test fields must be an object")
        };
        parse_enrolment(p, "UPP", &map).unwrap()
    }

    #[test]
    fn eligible_patient_has_no_ineligibilities() {
        let p = taste();
        let v = values(
            &p,
            json!({"age": 18, "sex": "M", "diagnosis": "STEMI", "symptom_onset_hours": 24}),
        );
        assert_eq!(check_eligibility(&p, &v), []);
    }

    #[test]
    fn each_failed_inclusion_criterion_is_reported() {
        let p = taste();
        let v = values(
            &p,
            json!({"age": 17, "sex": "M", "diagnosis": "NSTEMI", "symptom_onset_hours": 24.5}),
        );
        let got = check_eligibility(&p, &v);
        assert_eq!(
            got,
            [
                Ineligibility {
                    criterion: "stemi".into(),
                    kind: CriterionKind::Inclusion,
                    text: "ST-elevation myocardial infarction".into(),
                    message: "diagnosis is NSTEMI; required: one of STEMI".into(),
                },
                Ineligibility {
                    criterion: "adult".into(),
                    kind: CriterionKind::Inclusion,
                    text: "Age 18 years or older".into(),
                    message: "age is 17; required: >= 18".into(),
                },
                Ineligibility {
                    criterion: "early".into(),
                    kind: CriterionKind::Inclusion,
                    text: "Symptom onset within 24 hours".into(),
                    message: "symptom_onset_hours is 24.5; required: <= 24".into(),
                },
            ]
        );
        assert_eq!(
            serde_json::to_value(&got[0]).unwrap(),
            json!({"criterion": "stemi", "kind": "inclusion",
                   "text": "ST-elevation myocardial infarction",
                   "message": "diagnosis is NSTEMI; required: one of STEMI"})
        );
    }

    #[test]
    fn exclusions_and_unrecorded_fields() {
        let p = crate::protocol::parse(
            include_str!("../../protocols/dapa-hf-reg.toml"),
            "dapa-hf-reg.toml",
        )
        .unwrap();
        let serde_json::Value::Object(map) = json!({"age": 71, "sex": "M",
            "ejection_fraction": 30, "nyha_class": "III", "diabetes": true, "egfr": 20,
            "systolic_bp": 118, "type1_diabetes": false, "sglt2_inhibitor": true,
            "admission_date": "2025-02-03"})
        else {
            unreachable!()
        };
        let v = parse_enrolment(&p, "KS", &map).unwrap();
        let got: Vec<(String, CriterionKind, String)> = check_eligibility(&p, &v)
            .into_iter()
            .map(|i| (i.criterion, i.kind, i.message))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "severe_renal_impairment".into(),
                    CriterionKind::Exclusion,
                    "egfr is 20; excluded when egfr < 25".into()
                ),
                (
                    "on_sglt2_inhibitor".into(),
                    CriterionKind::Exclusion,
                    "sglt2_inhibitor is true; excluded when sglt2_inhibitor = true".into()
                ),
            ]
        );
    }

    #[test]
    fn criterion_over_an_unrecorded_field_is_not_confirmed() {
        let source = include_str!("../../protocols/taste.toml").replace(
            "[fields.symptom_onset_hours]\n",
            "[fields.symptom_onset_hours]\nrequired = false\n",
        );
        let p = crate::protocol::parse(&source, "taste.toml").unwrap();
        let v = values(&p, json!({"age": 60, "sex": "F", "diagnosis": "STEMI"}));
        let got = check_eligibility(&p, &v);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].criterion, "early");
        assert_eq!(
            got[0].message,
            "symptom_onset_hours was not recorded, so `symptom_onset_hours <= 24` cannot be \
             confirmed"
        );
    }

    #[test]
    fn comparisons_mix_integers_and_numbers() {
        assert!(holds(
            &Condition::Ge(Value::Number(17.5)),
            &Value::Integer(18)
        ));
        assert!(holds(
            &Condition::Eq(Value::Integer(2)),
            &Value::Number(2.0)
        ));
        assert!(holds(
            &Condition::NotIn(vec![Value::Text("UA".into())]),
            &Value::Text("STEMI".into())
        ));
        assert!(!holds(
            &Condition::Lt(Value::Integer(1)),
            &Value::Text("a".into())
        ));
    }
}
