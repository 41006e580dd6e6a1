//! Reading the fields a register sends with an enrolment into typed values, checked against the
//! protocol's declarations, and computing the derived fields from them.
//!
//! JSON conventions (what a register must send):
//! - integer fields take a JSON integer; a float is accepted only when it is integral (`65.0`),
//!   since some JSON encoders write every number as a float;
//! - number fields take any JSON number;
//! - category fields take one of the declared levels as a string (case-sensitive);
//! - boolean fields take `true`/`false`; date fields take a string `YYYY-MM-DD`;
//! - `null` counts as not sent.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value as Json;

use super::model::{parse_iso_date, FieldKind, FieldSpec, Protocol, Value};

/// The typed values of one enrolment: `site`, every field sent, and every derived field whose
/// source was sent. Serialises as a JSON object in that order.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrolmentValues {
    /// `site` first, then enrolment fields in declaration order, then derived fields.
    values: Vec<(String, Value)>,
}

impl EnrolmentValues {
    /// Values already typed and checked elsewhere (the design simulator builds the values of a
    /// stratum's factors this way to take its key from [`super::stratum`]).
    pub(crate) fn from_pairs(values: Vec<(String, Value)>) -> Self {
        EnrolmentValues { values }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The enrolment's site code.
    pub fn site(&self) -> &str {
        match self.get("site") {
            Some(Value::Text(code)) => code,
            _ => "",
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values.iter().map(|(n, v)| (n.as_str(), v))
    }
}

impl Serialize for EnrolmentValues {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for (name, value) in &self.values {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// A problem with one value of an enrolment. `field` is `site` or `fields.<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: String, message: String) -> Self {
        FieldError { field, message }
    }
}

/// Check an enrolment's site and fields against the protocol, reporting every problem at once.
pub fn parse_enrolment(
    protocol: &Protocol,
    site: &str,
    fields: &serde_json::Map<String, Json>,
) -> Result<EnrolmentValues, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut values = vec![("site".to_string(), Value::Text(site.to_string()))];

    if protocol.site(site).is_none() {
        let sites: Vec<&str> = protocol.sites.iter().map(|s| s.code.as_str()).collect();
        errors.push(FieldError::new(
            "site".into(),
            format!(
                "site `{site}` is not a site of trial {} (sites: {})",
                protocol.trial_id,
                sites.join(", ")
            ),
        ));
    }

    for spec in &protocol.fields {
        let path = format!("fields.{}", spec.name);
        match fields.get(&spec.name) {
            None | Some(Json::Null) => {
                if spec.required {
                    errors.push(FieldError::new(path, format!("{} is required", spec.name)));
                }
            }
            Some(json) => match typed(spec, json) {
                Ok(value) => values.push((spec.name.clone(), value)),
                Err(message) => errors.push(FieldError::new(path, message)),
            },
        }
    }

    // Sorted, so the report does not depend on the JSON map's ordering feature.
    let mut unknown: Vec<&String> = fields
        .keys()
        .filter(|name| protocol.field(name).is_none())
        .collect();
    unknown.sort();
    for name in unknown {
        let message = if name == "site" {
            "site is sent as the enrolment's site, not among its fields".to_string()
        } else {
            format!("{name} is not a field of trial {}", protocol.trial_id)
        };
        errors.push(FieldError::new(format!("fields.{name}"), message));
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    for derived in &protocol.derived {
        let source = values
            .iter()
            .find(|(n, _)| *n == derived.from)
            .and_then(|(_, v)| as_f64(v));
        if let Some(x) = source {
            let label = derived.label_for(x).to_string();
            values.push((derived.name.clone(), Value::Text(label)));
        }
    }
    Ok(EnrolmentValues { values })
}

fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(x) => Some(*x),
        _ => None,
    }
}

/// `json` as the field's type, or a message saying what was expected.
fn typed(spec: &FieldSpec, json: &Json) -> Result<Value, String> {
    let name = &spec.name;
    match &spec.kind {
        FieldKind::Integer { min, max } => {
            let i = json_integer(json)
                .ok_or_else(|| format!("{name} must be a whole number, got {}", show(json)))?;
            check_bounds(name, i, *min, *max)?;
            Ok(Value::Integer(i))
        }
        FieldKind::Number { min, max } => {
            let x = json
                .as_f64()
                .ok_or_else(|| format!("{name} must be a number, got {}", show(json)))?;
            check_bounds(name, x, *min, *max)?;
            Ok(Value::Number(x))
        }
        FieldKind::Category { levels } => match json {
            Json::String(s) if levels.contains(s) => Ok(Value::Text(s.clone())),
            other => Err(format!(
                "{name} must be one of {}, got {}",
                levels.join(", "),
                show(other)
            )),
        },
        FieldKind::Boolean => json
            .as_bool()
            .map(Value::Boolean)
            .ok_or_else(|| format!("{name} must be true or false, got {}", show(json))),
        FieldKind::Date { min, max } => {
            let date = json.as_str().and_then(parse_iso_date).ok_or_else(|| {
                format!(
                    "{name} must be a date written YYYY-MM-DD, got {}",
                    show(json)
                )
            })?;
            check_bounds(name, date, *min, *max)?;
            Ok(Value::Date(date))
        }
    }
}

/// A JSON integer, or an integral float within `i64` range (`65.0`).
fn json_integer(json: &Json) -> Option<i64> {
    if let Some(i) = json.as_i64() {
        return Some(i);
    }
    let x = json.as_f64()?;
    // ±2^63 are exact as f64; i64 holds [-2^63, 2^63).
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (x.fract() == 0.0 && (-LIMIT..LIMIT).contains(&x)).then_some(x as i64)
}

fn check_bounds<T: PartialOrd + std::fmt::Display>(
    name: &str,
    value: T,
    min: Option<T>,
    max: Option<T>,
) -> Result<(), String> {
    let below = min.as_ref().is_some_and(|m| value < *m);
    let above = max.as_ref().is_some_and(|m| value > *m);
    if !below && !above {
        return Ok(());
    }
    Err(match (min, max) {
        (Some(min), Some(max)) => format!("{name} must be between {min} and {max}, got {value}"),
        (Some(min), None) => format!("{name} must be at least {min}, got {value}"),
        (None, Some(max)) => format!("{name} must be at most {max}, got {value}"),
        (None, None) => format!("{name} is out of bounds, got {value}"),
    })
}

/// A JSON value as it appears in a message: scalars as JSON, containers by kind.
fn show(json: &Json) -> String {
    match json {
        Json::Array(_) => "a list".to_string(),
        Json::Object(_) => "an object".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::tests::taste;
    use serde_json::json;

    fn fields(value: Json) -> serde_json::Map<String, Json> {
        match value {
            Json::Object(map) => map,
            _ => panic!("test fields must be a JSON object"),
        }
    }

    fn ok_fields() -> Json {
        json!({"age": 70, "sex": "F", "diagnosis": "STEMI", "symptom_onset_hours": 3.5})
    }

    #[test]
    fn valid_enrolment_gives_typed_and_derived_values() {
        let p = taste();
        let v = parse_enrolment(&p, "UPP", &fields(ok_fields())).unwrap();
        assert_eq!(v.site(), "UPP");
        assert_eq!(v.get("site"), Some(&Value::Text("UPP".into())));
        assert_eq!(v.get("age"), Some(&Value::Integer(70)));
        assert_eq!(v.get("symptom_onset_hours"), Some(&Value::Number(3.5)));
        assert_eq!(v.get("age_band"), Some(&Value::Text("65-74".into())));
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            json!({"site": "UPP", "age": 70, "sex": "F", "diagnosis": "STEMI",
                   "symptom_onset_hours": 3.5, "age_band": "65-74"})
        );
    }

    #[test]
    fn integral_float_is_accepted_for_integer_field() {
        let p = taste();
        let mut f = fields(ok_fields());
        f.insert("age".into(), json!(65.0));
        let v = parse_enrolment(&p, "UPP", &f).unwrap();
        assert_eq!(v.get("age"), Some(&Value::Integer(65)));
        assert_eq!(v.get("age_band"), Some(&Value::Text("65-74".into())));
    }

    #[test]
    fn every_problem_is_reported() {
        let p = taste();
        let f = fields(json!({
            "age": 150,
            "sex": "X",
            "symptom_onset_hours": "soon",
            "weight": 80,
            "site": "UPP",
        }));
        let errors = parse_enrolment(&p, "XYZ", &f).unwrap_err();
        let got: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "site",
                    "site `XYZ` is not a site of trial taste \
                     (sites: UPP, LKP, SUS, SAH, KS, ORE, UMEA, VAS, DAN, SOS, ICE)"
                ),
                ("fields.age", "age must be between 0 and 120, got 150"),
                ("fields.sex", "sex must be one of F, M, got \"X\""),
                ("fields.diagnosis", "diagnosis is required"),
                (
                    "fields.symptom_onset_hours",
                    "symptom_onset_hours must be a number, got \"soon\""
                ),
                (
                    "fields.site",
                    "site is sent as the enrolment's site, not among its fields"
                ),
                ("fields.weight", "weight is not a field of trial taste"),
            ]
        );
    }

    #[test]
    fn wrong_json_types_and_null() {
        let p = taste();
        let f = fields(json!({"age": 65.5, "sex": null, "diagnosis": ["STEMI"],
                              "symptom_onset_hours": -1}));
        let errors = parse_enrolment(&p, "UPP", &f).unwrap_err();
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "age must be a whole number, got 65.5",
                "sex is required",
                "diagnosis must be one of STEMI, NSTEMI, UA, got a list",
                "symptom_onset_hours must be between 0 and 720, got -1",
            ]
        );
    }

    #[test]
    fn dates_booleans_and_optional_fields() {
        let p = crate::protocol::parse(
            include_str!("../../protocols/dapa-hf-reg.toml"),
            "dapa-hf-reg.toml",
        )
        .unwrap();
        let base = json!({"age": 71, "sex": "M", "ejection_fraction": 30, "nyha_class": "III",
            "diabetes": true, "egfr": 55.0, "systolic_bp": 118, "type1_diabetes": false,
            "sglt2_inhibitor": false, "admission_date": "2025-02-03"});
        let v = parse_enrolment(&p, "KS", &fields(base.clone())).unwrap();
        assert_eq!(v.get("diabetes"), Some(&Value::Boolean(true)));
        assert_eq!(
            v.get("admission_date"),
            Some(&Value::Date(
                chrono::NaiveDate::from_ymd_opt(2025, 2, 3).unwrap()
            ))
        );
        // nt_probnp is optional and was not sent.
        assert_eq!(v.get("nt_probnp"), None);

        let mut bad = fields(base);
        bad.insert("admission_date".into(), json!("2025-2-3"));
        bad.insert("diabetes".into(), json!("yes"));
        let errors = parse_enrolment(&p, "KS", &bad).unwrap_err();
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "admission_date must be a date written YYYY-MM-DD, got \"2025-2-3\"",
                "diabetes must be true or false, got \"yes\"",
            ]
        );

        bad.insert("diabetes".into(), json!(false));
        bad.insert("admission_date".into(), json!("2023-12-31"));
        let errors = parse_enrolment(&p, "KS", &bad).unwrap_err();
        assert_eq!(
            errors[0].message,
            "admission_date must be at least 2024-01-01, got 2023-12-31"
        );
    }
}
