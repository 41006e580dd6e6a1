//! The stratum an enrolment is randomised in: its level of each stratification factor.

use serde::Serialize;

use super::enrolment::EnrolmentValues;
use super::model::{Protocol, Value};

/// Level given to a factor the values do not hold. Validation makes every stratification field
/// required, so this only appears when values were parsed against a different protocol.
pub const MISSING_LEVEL: &str = "(missing)";

/// An enrolment's stratum. `key` identifies it within a trial and is stable across releases:
/// `factor=level` pairs joined by `;` in the protocol's strata order (`site=UPP;sex=F`), or `all`
/// when the trial is not stratified.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Stratum {
    pub key: String,
    /// `(factor, level)` in the protocol's strata order.
    pub levels: Vec<(String, String)>,
}

pub fn stratum(protocol: &Protocol, values: &EnrolmentValues) -> Stratum {
    let levels: Vec<(String, String)> = protocol
        .randomisation
        .strata
        .iter()
        .map(|factor| (factor.clone(), level(values, factor)))
        .collect();
    let key = if levels.is_empty() {
        "all".to_string()
    } else {
        levels
            .iter()
            .map(|(factor, level)| format!("{factor}={level}"))
            .collect::<Vec<_>>()
            .join(";")
    };
    Stratum { key, levels }
}

/// An enrolment's level of one factor (stratification or minimisation factor, or the cluster
/// field), written as stratum keys write it: text as is, other values as [`Value`] displays them.
pub fn level(values: &EnrolmentValues, factor: &str) -> String {
    match values.get(factor) {
        Some(Value::Text(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => MISSING_LEVEL.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_enrolment;
    use crate::protocol::tests::taste;
    use serde_json::json;

    fn map(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        let serde_json::Value::Object(map) = value else {
            panic!("test fields must be an object")
        };
        map
    }

    #[test]
    fn taste_strata_are_site_and_sex() {
        let p = taste();
        let f = map(json!({"age": 70, "sex": "F", "diagnosis": "STEMI",
                           "symptom_onset_hours": 2}));
        let v = parse_enrolment(&p, "UPP", &f).unwrap();
        let s = stratum(&p, &v);
        assert_eq!(s.key, "site=UPP;sex=F");
        assert_eq!(
            s.levels,
            [
                ("site".to_string(), "UPP".to_string()),
                ("sex".to_string(), "F".to_string())
            ]
        );
    }

    #[test]
    fn boolean_and_derived_levels() {
        let source = include_str!("../../protocols/dapa-hf-reg.toml").replace(
            "strata = [\"site\", \"diabetes\"]",
            "strata = [\"diabetes\", \"age_band\", \"site\"]",
        );
        let p = crate::protocol::parse(&source, "dapa-hf-reg.toml").unwrap();
        let f = map(
            json!({"age": 80, "sex": "M", "ejection_fraction": 30, "nyha_class": "II",
            "diabetes": false, "egfr": 60, "systolic_bp": 120, "type1_diabetes": false,
            "sglt2_inhibitor": false, "admission_date": "2025-01-01"}),
        );
        let v = parse_enrolment(&p, "SAH", &f).unwrap();
        assert_eq!(stratum(&p, &v).key, "diabetes=false;age_band=>=75;site=SAH");
    }

    #[test]
    fn unstratified_trial_has_one_stratum() {
        let source = include_str!("../../protocols/taste.toml")
            .replace("strata = [\"site\", \"sex\"]", "strata = []")
            .replace("stratified = true", "stratified = false");
        let p = crate::protocol::parse(&source, "taste.toml").unwrap();
        let f = map(json!({"age": 70, "sex": "F", "diagnosis": "STEMI",
                           "symptom_onset_hours": 2}));
        let v = parse_enrolment(&p, "KS", &f).unwrap();
        assert_eq!(
            stratum(&p, &v),
            Stratum {
                key: "all".into(),
                levels: vec![]
            }
        );
    }
}
