//! A register event (death, MI, readmission, emigration, a lab value) and its validation.

use chrono::NaiveDate;
use serde::Serialize;

use crate::identity::{canonical_id, free_text};

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

/// The earliest clinical date a register event may carry.
pub const EARLIEST_EVENT_DATE: NaiveDate = match NaiveDate::from_ymd_opt(1900, 1, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};

/// Days an event may be dated after the day it is received: clocks of senders and receivers
/// may disagree by a day around midnight.
pub const CLOCK_TOLERANCE_DAYS: u64 = 1;

/// Validate one event's fields, for an event received on `received_on`; every problem is
/// reported. Ids must be in their one canonical form ([`crate::identity`]); the date must lie
/// between [`EARLIEST_EVENT_DATE`] and the day of receipt (with [`CLOCK_TOLERANCE_DAYS`]);
/// `code` and `source` are free texts (no control characters, no personal identity numbers).
pub fn parse_event(
    raw: &EventFields<'_>,
    received_on: NaiveDate,
) -> Result<Event, Vec<EventError>> {
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| {
        errors.push(EventError {
            field: field.to_string(),
            message,
        })
    };
    let mut id = |field: &str, v: Option<&str>| -> String {
        match v {
            None => {
                err(field, format!("{field} is required"));
                String::new()
            }
            Some(s) => canonical_id(s).unwrap_or_else(|e| {
                err(field, format!("{field} {e}"));
                String::new()
            }),
        }
    };
    let event_id = id("event_id", raw.event_id);
    let subject = id("subject", raw.subject);
    let mut errors_late = Vec::new();
    let mut late = |field: &str, message: String| {
        errors_late.push(EventError {
            field: field.to_string(),
            message,
        })
    };
    let event_type = match raw.event_type {
        None | Some("") => {
            late("type", "type is required".into());
            String::new()
        }
        Some(t) if !is_type_name(t) => {
            late(
                "type",
                format!(
                    "type `{}` must be lower-case letters, digits and `_`, starting with a letter",
                    t.escape_debug()
                ),
            );
            String::new()
        }
        Some(t) => t.to_string(),
    };
    let latest = received_on + chrono::Days::new(CLOCK_TOLERANCE_DAYS);
    let date = match raw.date {
        None | Some("") => {
            late("date", "date is required".into());
            None
        }
        Some(text) => {
            match parse_date(text) {
                None => {
                    late(
                        "date",
                        format!(
                            "date `{}` is not a calendar date YYYY-MM-DD",
                            text.escape_debug()
                        ),
                    );
                    None
                }
                Some(d) if d < EARLIEST_EVENT_DATE => {
                    late(
                    "date",
                    format!("date {d} is before {EARLIEST_EVENT_DATE}; no register event is that old"),
                );
                    None
                }
                Some(d) if d > latest => {
                    late(
                    "date",
                    format!(
                        "date {d} is after the day the event is received ({received_on}); an event cannot be reported before it happens"
                    ),
                );
                    None
                }
                Some(d) => Some(d),
            }
        }
    };
    let mut text = |field: &str, v: Option<&str>| -> Option<String> {
        let v = v.filter(|s| !s.is_empty())?;
        match free_text(v, MAX_TEXT_LEN, false) {
            Ok(t) if t.trim() != t => {
                late(field, format!("{field} has whitespace before or after it"));
                None
            }
            Ok(t) => Some(t),
            Err(e) => {
                late(field, format!("{field} {e}"));
                None
            }
        }
    };
    let code = text("code", raw.code);
    let source = text("source", raw.source);
    let value = match raw.value.map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                late(
                    "value",
                    format!("value `{}` is not a finite number", text.escape_debug()),
                );
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
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::try_from(digits(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(5..7)?, digits(8..10)?)
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
        let e = parse_event(&f, NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()).unwrap();
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
        let errs = parse_event(&f, NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()).unwrap_err();
        let named: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(named, ["event_id", "subject", "type", "date", "value"]);
        assert!(errs[3].message.contains("2023-02-29"));
    }

    #[test]
    fn dates_must_be_iso() {
        use chrono::Datelike;
        for bad in [
            "2024-1-05",
            "05/01/2024",
            "2024-01-05T00:00",
            "20240105",
            "2024- 1- 5",
            "+024-01-05",
            "2024-02-30",
            "2024-13-01",
            "2024-00-10",
            "２０24-01-05",
        ] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
        assert_eq!(
            parse_date("2024-02-29"),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        assert_eq!(
            parse_date("0999-12-31"),
            NaiveDate::from_ymd_opt(999, 12, 31)
        );
        // Every day of four years, as chrono writes it, reads back.
        let mut d = NaiveDate::from_ymd_opt(2023, 1, 1).unwrap();
        while d.year() < 2027 {
            assert_eq!(parse_date(&d.to_string()), Some(d));
            d = d.succ_opt().unwrap();
        }
    }
}
