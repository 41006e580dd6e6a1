//! A register event (death, MI, readmission, emigration, a lab value) and its validation.

use chrono::NaiveDate;
use serde::Serialize;

/// Longest accepted identifier or text field of an event.
pub const MAX_TEXT_LEN: usize = 128;

/// A validated event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The sender's identifier; the idempotency key.
    pub event_id: String,
    /// Pseudonymous subject identifier, as in enrolments.
    pub subject: String,
    /// Event type, e.g. `death`, `mi`, `emigration` (`[a-z][a-z0-9_]*`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// Clinical date of the event.
    pub date: NaiveDate,
    /// Optional classification code, e.g. an ICD-10 code `I21.4`.
    pub code: Option<String>,
    /// Optional measured value (for continuous endpoints).
    pub value: Option<f64>,
    /// Which register sent it, e.g. `cause_of_death_register`.
    pub source: Option<String>,
}

/// The raw text fields of one event, as read from JSON or CSV.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFields<'a> {
    pub event_id: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub date: Option<&'a str>,
    pub code: Option<&'a str>,
    pub value: Option<&'a str>,
    pub source: Option<&'a str>,
}

/// A problem with one field of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventError {
    pub field: String,
    pub message: String,
}

/// Validate one event's fields; every problem is reported.
pub fn parse_event(raw: &EventFields<'_>) -> Result<Event, Vec<EventError>> {
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| {
        errors.push(EventError {
            field: field.to_string(),
            message,
        })
    };
    let mut required = |field: &str, v: Option<&str>| -> String {
        match v.map(str::trim) {
            None | Some("") => {
                err(field, format!("{field} is required"));
                String::new()
            }
            Some(s) if s.chars().count() > MAX_TEXT_LEN => {
                err(
                    field,
                    format!("{field} is longer than {MAX_TEXT_LEN} characters"),
                );
                String::new()
            }
            Some(s) if s.chars().any(char::is_control) => {
                err(field, format!("{field} contains control characters"));
                String::new()
            }
            Some(s) => s.to_string(),
        }
    };
    let event_id = required("event_id", raw.event_id);
    let subject = required("subject", raw.subject);
    let event_type = required("type", raw.event_type);
    let date_text = required("date", raw.date);
    let mut errors_late = Vec::new();
    if !event_type.is_empty() && !is_type_name(&event_type) {
        errors_late.push(EventError {
            field: "type".into(),
            message: format!(
                "type `{event_type}` must be lower-case letters, digits and `_`, starting with a letter"
            ),
        });
    }
    let date = if date_text.is_empty() {
        None
    } else {
        match parse_date(&date_text) {
            Some(d) => Some(d),
            None => {
                errors_late.push(EventError {
                    field: "date".into(),
                    message: format!("date `{date_text}` is not a calendar date YYYY-MM-DD"),
                });
                None
            }
        }
    };
    let optional = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let code = optional(raw.code);
    let source = optional(raw.source);
    for (field, v) in [("code", &code), ("source", &source)] {
        if v.as_ref().is_some_and(|s| s.chars().count() > MAX_TEXT_LEN) {
            errors_late.push(EventError {
                field: field.into(),
                message: format!("{field} is longer than {MAX_TEXT_LEN} characters"),
            });
        }
    }
    let value = match optional(raw.value) {
        None => None,
        Some(text) => match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                errors_late.push(EventError {
                    field: "value".into(),
                    message: format!("value `{text}` is not a finite number"),
                });
                None
            }
        },
    };
    errors.extend(errors_late);
    match (errors.is_empty(), date) {
        (true, Some(date)) => Ok(Event {
            event_id,
            subject,
            event_type,
            date,
            code,
            value,
            source,
        }),
        _ => Err(errors),
    }
}

/// `[a-z][a-z0-9_]*`, as protocol event types.
pub fn is_type_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Exactly `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    if s.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(id: &'a str, date: &'a str) -> EventFields<'a> {
        EventFields {
            event_id: Some(id),
            subject: Some("S1"),
            event_type: Some("death"),
            date: Some(date),
            ..Default::default()
        }
    }

    #[test]
    fn valid_event_parses() {
        let mut f = fields("E1", "2024-02-29");
        f.code = Some("I21.4");
        f.value = Some(" 3.5 ");
        let e = parse_event(&f).unwrap();
        assert_eq!(e.date, NaiveDate::from_ymd_opt(2024, 2, 29).unwrap());
        assert_eq!(e.value, Some(3.5));
        assert_eq!(e.code.as_deref(), Some("I21.4"));
    }

    #[test]
    fn every_problem_is_reported() {
        let f = EventFields {
            event_id: Some(""),
            subject: None,
            event_type: Some("Death!"),
            date: Some("2023-02-29"),
            value: Some("abc"),
            ..Default::default()
        };
        let errs = parse_event(&f).unwrap_err();
        let named: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(named, ["event_id", "subject", "type", "date", "value"]);
        assert!(errs[3].message.contains("2023-02-29"));
    }

    #[test]
    fn dates_must_be_iso() {
        for bad in ["2024-1-05", "05/01/2024", "2024-01-05T00:00", "20240105"] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }
}
