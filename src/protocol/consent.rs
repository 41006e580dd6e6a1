//! Consent as data: what an enrolment must carry under the protocol's consent model, and the
//! confirmation of a consent that was deferred.
//!
//! The enrolment's `consent` object is `{"kind", "taken_by", "taken_at"}`:
//! - `oral` model: `kind` `oral` (or `written`, which is more than the model asks), with who took
//!   it and when;
//! - `written` model: `kind` `written`, with who and when;
//! - `deferred` model: `kind` `deferred` (nothing taken yet: no `taken_by`/`taken_at`; it is
//!   confirmed later, within the protocol's `deferred_consent_days`), or `oral`/`written` when
//!   the patient could consent at once;
//! - `opt_out` model: `kind` `opt_out_not_objected`, optional (the default when absent); who and
//!   when are optional. rrct itself checks the trial's objection list before randomising;
//! - `waiver` model: no consent object.
//!
//! `taken_by` is an id (staff code, never a personal identity number) in the canonical form of
//! [`crate::identity::canonical_id`]; `taken_at` a date `YYYY-MM-DD` or an RFC 3339 time. Every
//! problem is reported with its field (`consent`, `consent.kind`, ...). Pure: whether `taken_at`
//! is in the future is for the caller, who has the clock.

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{ConsentModel, FieldError, Protocol};

/// The enrolment body's key of the consent object.
pub const CONSENT: &str = "consent";

/// What consent an enrolment records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentKind {
    Oral,
    Written,
    /// Randomised before consent could be sought; to be confirmed.
    Deferred,
    /// Informed of the trial and did not object (opt-out model).
    OptOutNotObjected,
}

impl ConsentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentKind::Oral => "oral",
            ConsentKind::Written => "written",
            ConsentKind::Deferred => "deferred",
            ConsentKind::OptOutNotObjected => "opt_out_not_objected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "oral" => ConsentKind::Oral,
            "written" => ConsentKind::Written,
            "deferred" => ConsentKind::Deferred,
            "opt_out_not_objected" => ConsentKind::OptOutNotObjected,
            _ => return None,
        })
    }

    /// Whether the consent names who took it and when.
    fn is_taken(self) -> bool {
        matches!(self, ConsentKind::Oral | ConsentKind::Written)
    }
}

impl ConsentModel {
    /// The kinds of consent an enrolment may record under this model.
    pub fn accepts(self) -> &'static [ConsentKind] {
        match self {
            ConsentModel::Oral => &[ConsentKind::Oral, ConsentKind::Written],
            ConsentModel::Written => &[ConsentKind::Written],
            ConsentModel::Deferred => &[
                ConsentKind::Deferred,
                ConsentKind::Oral,
                ConsentKind::Written,
            ],
            ConsentModel::OptOut => &[ConsentKind::OptOutNotObjected],
            ConsentModel::Waiver => &[],
        }
    }
}

/// A consent as recorded with an enrolment (or a deferred consent's confirmation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GivenConsent {
    pub kind: ConsentKind,
    /// Who took it (canonical id), when it was taken.
    pub taken_by: Option<String>,
    /// As sent: a date or an RFC 3339 time.
    pub taken_at: Option<String>,
    /// The day of `taken_at` (UTC for a time).
    #[serde(skip)]
    pub taken_on: Option<NaiveDate>,
}

/// The consent an enrolment carries, checked against the protocol's model: `None` when the
/// model waives consent.
pub fn parse_enrolment_consent(
    protocol: &Protocol,
    value: Option<&Value>,
) -> Result<Option<GivenConsent>, Vec<FieldError>> {
    let model = protocol.consent;
    let err = |field: &str, message: String| {
        vec![FieldError {
            field: field.to_string(),
            message,
        }]
    };
    let value = value.filter(|v| !v.is_null());
    match (model, value) {
        (ConsentModel::Waiver, None) => Ok(None),
        (ConsentModel::Waiver, Some(_)) => Err(err(
            CONSENT,
            "the protocol waives consent (consent model `waiver`): send no consent".into(),
        )),
        (ConsentModel::OptOut, None) => Ok(Some(GivenConsent {
            kind: ConsentKind::OptOutNotObjected,
            taken_by: None,
            taken_at: None,
            taken_on: None,
        })),
        (_, None) => Err(err(
            CONSENT,
            format!(
                "consent is required: the protocol's consent model is `{}`; send \
                 {{\"kind\": {}, \"taken_by\": ..., \"taken_at\": ...}}",
                model.as_str(),
                kinds(model.accepts())
            ),
        )),
        (_, Some(v)) => {
            let obj = v.as_object().ok_or_else(|| {
                err(
                    CONSENT,
                    "consent must be an object {\"kind\", \"taken_by\", \"taken_at\"}".into(),
                )
            })?;
            let given = parse_object(obj, "consent.")?;
            if !model.accepts().contains(&given.kind) {
                return Err(err(
                    "consent.kind",
                    format!(
                        "consent `{}` does not fit the protocol's `{}` consent model; expected {}",
                        given.kind.as_str(),
                        model.as_str(),
                        kinds(model.accepts())
                    ),
                ));
            }
            Ok(Some(given))
        }
    }
}

/// The confirmation of a deferred consent: `{"kind": "oral"|"written", "taken_by", "taken_at"}`.
pub fn parse_confirmation(body: &Value) -> Result<GivenConsent, Vec<FieldError>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError {
            field: String::new(),
            message: "the body must be a JSON object {\"kind\", \"taken_by\", \"taken_at\"}".into(),
        }]);
    };
    let given = parse_object(obj, "")?;
    if !given.kind.is_taken() {
        return Err(vec![FieldError {
            field: "kind".into(),
            message: format!(
                "a deferred consent is confirmed by consent taken: kind `oral` or `written`, not `{}`",
                given.kind.as_str()
            ),
        }]);
    }
    Ok(given)
}

fn kinds(accepted: &[ConsentKind]) -> String {
    accepted
        .iter()
        .map(|k| format!("`{}`", k.as_str()))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Read `{"kind", "taken_by", "taken_at"}` (field names prefixed with `prefix` in errors).
fn parse_object(obj: &Map<String, Value>, prefix: &str) -> Result<GivenConsent, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| {
        errors.push(FieldError {
            field: format!("{prefix}{field}"),
            message,
        })
    };
    for key in obj.keys() {
        if !matches!(key.as_str(), "kind" | "taken_by" | "taken_at") {
            err(
                key,
                format!("unknown key `{key}`: expected kind, taken_by, taken_at"),
            );
        }
    }
    let text = |key: &str| obj.get(key).filter(|v| !v.is_null());
    let kind = match text("kind") {
        None => {
            err("kind", "kind is required".into());
            None
        }
        Some(Value::String(s)) => ConsentKind::parse(s).or_else(|| {
            err(
                "kind",
                format!(
                    "unknown consent kind `{s}`; expected oral, written, deferred or \
                     opt_out_not_objected"
                ),
            );
            None
        }),
        Some(_) => {
            err("kind", "kind must be a string".into());
            None
        }
    };
    let taken_by = match text("taken_by") {
        None => None,
        Some(Value::String(s)) => match crate::identity::canonical_id(s) {
            Ok(id) => Some(id),
            Err(e) => {
                err("taken_by", format!("taken_by {e}"));
                None
            }
        },
        Some(_) => {
            err("taken_by", "taken_by must be a string".into());
            None
        }
    };
    let taken_at = match text("taken_at") {
        None => None,
        Some(Value::String(s)) => match taken_day(s) {
            Some(day) => Some((s.clone(), day)),
            None => {
                err(
                    "taken_at",
                    format!("taken_at `{s}` is not a date YYYY-MM-DD or an RFC 3339 time"),
                );
                None
            }
        },
        Some(_) => {
            err("taken_at", "taken_at must be a string".into());
            None
        }
    };
    if let Some(kind) = kind {
        if kind.is_taken() {
            if text("taken_by").is_none() {
                err(
                    "taken_by",
                    format!("{} consent needs taken_by: who took it", kind.as_str()),
                );
            }
            if text("taken_at").is_none() {
                err(
                    "taken_at",
                    format!(
                        "{} consent needs taken_at: when it was taken",
                        kind.as_str()
                    ),
                );
            }
        } else if kind == ConsentKind::Deferred {
            for key in ["taken_by", "taken_at"] {
                if text(key).is_some() {
                    err(
                        key,
                        format!(
                            "a deferred consent has not been taken yet: send no {key}; confirm \
                             the consent once taken"
                        ),
                    );
                }
            }
        }
    }
    match kind {
        Some(kind) if errors.is_empty() => Ok(GivenConsent {
            kind,
            taken_by,
            taken_on: taken_at.as_ref().map(|(_, d)| *d),
            taken_at: taken_at.map(|(s, _)| s),
        }),
        _ => Err(errors),
    }
}

/// The day of a `taken_at`: a date, or the UTC day of an RFC 3339 time.
pub fn taken_day(text: &str) -> Option<NaiveDate> {
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return (text.len() == 10).then_some(d);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc).date_naive())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with(model: &str) -> Protocol {
        let extra = if model == "deferred" {
            "consent = \"deferred\"\ndeferred_consent_days = 30"
        } else {
            &format!("consent = \"{model}\"")
        };
        let source =
            include_str!("../../protocols/taste.toml").replace("consent = \"oral\"", extra);
        super::super::parse(&source, "t").unwrap()
    }

    fn fields(e: Vec<FieldError>) -> Vec<String> {
        e.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn each_model_takes_its_kinds() {
        let oral = json!({"kind": "oral", "taken_by": "nurse-7", "taken_at": "2024-03-01"});
        let given = parse_enrolment_consent(&with("oral"), Some(&oral))
            .unwrap()
            .unwrap();
        assert_eq!(given.kind, ConsentKind::Oral);
        assert_eq!(given.taken_on, NaiveDate::from_ymd_opt(2024, 3, 1));
        // Oral under a written model is inconsistent.
        let e = parse_enrolment_consent(&with("written"), Some(&oral)).unwrap_err();
        assert_eq!(fields(e), ["consent.kind"]);
        // Missing under oral, written and deferred.
        for m in ["oral", "written", "deferred"] {
            let e = parse_enrolment_consent(&with(m), None).unwrap_err();
            assert_eq!(fields(e), ["consent"], "{m}");
        }
        // Opt-out defaults; waiver refuses any.
        let given = parse_enrolment_consent(&with("opt_out"), None)
            .unwrap()
            .unwrap();
        assert_eq!(given.kind, ConsentKind::OptOutNotObjected);
        assert_eq!(
            parse_enrolment_consent(&with("waiver"), None).unwrap(),
            None
        );
        let e = parse_enrolment_consent(&with("waiver"), Some(&oral)).unwrap_err();
        assert_eq!(fields(e), ["consent"]);
    }

    #[test]
    fn deferred_consent_is_not_yet_taken() {
        let p = with("deferred");
        let ok = parse_enrolment_consent(&p, Some(&json!({"kind": "deferred"}))).unwrap();
        assert_eq!(ok.unwrap().kind, ConsentKind::Deferred);
        let e = parse_enrolment_consent(
            &p,
            Some(&json!({"kind": "deferred", "taken_at": "2024-01-01"})),
        )
        .unwrap_err();
        assert_eq!(fields(e), ["consent.taken_at"]);
    }

    #[test]
    fn every_problem_is_named() {
        let e = parse_enrolment_consent(
            &with("oral"),
            Some(&json!({"kind": "oral", "taken_at": "1 March", "colour": 1})),
        )
        .unwrap_err();
        assert_eq!(
            fields(e),
            ["consent.colour", "consent.taken_at", "consent.taken_by"]
        );
        let e = parse_confirmation(&json!({"kind": "deferred"})).unwrap_err();
        assert_eq!(fields(e), ["kind"]);
        assert!(taken_day("2024-03-01T23:30:00-02:00") == NaiveDate::from_ymd_opt(2024, 3, 2));
    }
}
