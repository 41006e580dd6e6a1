//! Feasibility before go-live: how many past index registrations would have been eligible,
//! per site and month, and how long the trial would take to reach its target.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::protocol::{self, FieldKind, Protocol};

/// One registration from a register extract: site, date and the enrolment fields as text.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// 1-based line in the source file, for messages.
    pub line: usize,
    pub site: String,
    pub date: NaiveDate,
    pub fields: BTreeMap<String, String>,
}

/// A registration that cannot be assessed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidRow {
    pub line: usize,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SiteFeasibility {
    pub site: String,
    pub registrations: u64,
    pub eligible: u64,
    /// Eligible registrations per month (`YYYY-MM`).
    pub eligible_by_month: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feasibility {
    pub trial_id: String,
    pub registrations: u64,
    /// Registrations at sites that are not in the protocol.
    pub other_sites: u64,
    pub invalid_rows: u64,
    pub eligible: u64,
    pub not_eligible_by_criterion: BTreeMap<String, u64>,
    pub eligible_by_month: BTreeMap<String, u64>,
    pub sites: Vec<SiteFeasibility>,
    /// Calendar months spanned by the extract (first to last registration, inclusive).
    pub months: u32,
    pub eligible_per_month: f64,
    pub inclusion_rate: f64,
    pub target_sample_size: u32,
    /// Months to randomise the target at this inclusion rate; `None` when nobody is eligible.
    pub projected_months_to_target: Option<f64>,
}

/// Turn a registration's text fields into the JSON an enrolment would carry, by field type.
pub fn enrolment_fields(
    protocol: &Protocol,
    reg: &Registration,
) -> Result<Map<String, Value>, Vec<InvalidRow>> {
    let mut out = Map::new();
    let mut errors = Vec::new();
    for (name, text) in &reg.fields {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let Some(spec) = protocol.field(name) else {
            continue; // extra register columns are ignored
        };
        let value = match &spec.kind {
            FieldKind::Integer { .. } => text.parse::<i64>().map(Value::from).ok(),
            FieldKind::Number { .. } => text
                .parse::<f64>()
                .ok()
                .and_then(|v| serde_json::Number::from_f64(v).map(Value::Number)),
            FieldKind::Boolean => match text {
                "true" | "1" | "yes" => Some(Value::Bool(true)),
                "false" | "0" | "no" => Some(Value::Bool(false)),
                _ => None,
            },
            FieldKind::Category { .. } | FieldKind::Date { .. } => {
                Some(Value::String(text.to_string()))
            }
        };
        match value {
            Some(v) => {
                out.insert(name.clone(), v);
            }
            None => errors.push(InvalidRow {
                line: reg.line,
                field: name.clone(),
                message: format!("`{text}` is not a valid {}", spec.kind.type_name()),
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Assess an extract. Rows that cannot be assessed are returned as errors unless
/// `skip_invalid`, when they are only counted.
pub fn assess(
    protocol: &Protocol,
    registrations: &[Registration],
    inclusion_rate: f64,
    skip_invalid: bool,
) -> Result<Feasibility, Vec<InvalidRow>> {
    let mut sites: BTreeMap<String, SiteFeasibility> = protocol
        .sites
        .iter()
        .map(|s| {
            (
                s.code.clone(),
                SiteFeasibility {
                    site: s.code.clone(),
                    ..Default::default()
                },
            )
        })
        .collect();
    let mut f = Feasibility {
        trial_id: protocol.trial_id.clone(),
        registrations: registrations.len() as u64,
        other_sites: 0,
        invalid_rows: 0,
        eligible: 0,
        not_eligible_by_criterion: BTreeMap::new(),
        eligible_by_month: BTreeMap::new(),
        sites: Vec::new(),
        months: 0,
        eligible_per_month: 0.0,
        inclusion_rate,
        target_sample_size: protocol.target_sample_size,
        projected_months_to_target: None,
    };
    let mut errors = Vec::new();
    for reg in registrations {
        let Some(site) = sites.get_mut(&reg.site) else {
            f.other_sites += 1;
            continue;
        };
        let values = enrolment_fields(protocol, reg).and_then(|fields| {
            protocol::parse_enrolment(protocol, &reg.site, &fields).map_err(|errs| {
                errs.into_iter()
                    .map(|e| InvalidRow {
                        line: reg.line,
                        field: e.field,
                        message: e.message,
                    })
                    .collect()
            })
        });
        let values = match values {
            Ok(v) => v,
            Err(errs) => {
                f.invalid_rows += 1;
                errors.extend(errs);
                continue;
            }
        };
        site.registrations += 1;
        let refusals = protocol::check_eligibility(protocol, &values);
        if refusals.is_empty() {
            let month = reg.date.format("%Y-%m").to_string();
            f.eligible += 1;
            site.eligible += 1;
            *site.eligible_by_month.entry(month.clone()).or_default() += 1;
            *f.eligible_by_month.entry(month).or_default() += 1;
        } else {
            for r in refusals {
                *f.not_eligible_by_criterion.entry(r.criterion).or_default() += 1;
            }
        }
    }
    if !errors.is_empty() && !skip_invalid {
        return Err(errors);
    }
    let dates = registrations.iter().map(|r| r.date);
    if let (Some(first), Some(last)) = (dates.clone().min(), dates.max()) {
        use chrono::Datelike;
        let months =
            (last.year() - first.year()) * 12 + last.month() as i32 - first.month() as i32 + 1;
        f.months = months.max(1) as u32;
        f.eligible_per_month = f.eligible as f64 / f64::from(f.months);
        let randomised_per_month = f.eligible_per_month * inclusion_rate;
        f.projected_months_to_target = (randomised_per_month > 0.0)
            .then(|| f64::from(f.target_sample_size) / randomised_per_month);
    }
    f.sites = sites.into_values().collect();
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(line: usize, site: &str, date: &str, fields: &[(&str, &str)]) -> Registration {
        Registration {
            line,
            site: site.into(),
            date: NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn taste() -> Protocol {
        protocol::parse(include_str!("../../protocols/taste.toml"), "taste.toml").unwrap()
    }

    fn stemi(line: usize, site: &str, date: &str) -> Registration {
        reg(
            line,
            site,
            date,
            &[
                ("age", "70"),
                ("sex", "F"),
                ("diagnosis", "STEMI"),
                ("symptom_onset_hours", "2.5"),
            ],
        )
    }

    #[test]
    fn counts_eligible_per_site_and_month_and_projects_duration() {
        let rows = [
            stemi(2, "UPP", "2024-01-10"),
            stemi(3, "UPP", "2024-02-10"),
            stemi(4, "KS", "2024-03-31"),
            reg(
                5,
                "KS",
                "2024-03-01",
                &[
                    ("age", "70"),
                    ("sex", "M"),
                    ("diagnosis", "NSTEMI"),
                    ("symptom_onset_hours", "2"),
                ],
            ),
            stemi(6, "XYZ", "2024-02-01"),
        ];
        let f = assess(&taste(), &rows, 0.5, false).unwrap();
        assert_eq!((f.registrations, f.other_sites, f.eligible), (5, 1, 3));
        assert_eq!(
            f.not_eligible_by_criterion,
            BTreeMap::from([("stemi".into(), 1)])
        );
        assert_eq!(f.months, 3);
        assert_eq!(f.eligible_per_month, 1.0);
        // 7244 / (1 eligible per month × 0.5).
        assert_eq!(f.projected_months_to_target, Some(14488.0));
        let upp = f.sites.iter().find(|s| s.site == "UPP").unwrap();
        assert_eq!(
            upp.eligible_by_month,
            BTreeMap::from([("2024-01".into(), 1), ("2024-02".into(), 1)])
        );
    }

    #[test]
    fn invalid_rows_name_line_and_field_or_are_counted_when_skipped() {
        let rows = [
            stemi(2, "UPP", "2024-01-10"),
            reg(
                3,
                "UPP",
                "2024-01-11",
                &[
                    ("age", "old"),
                    ("sex", "F"),
                    ("diagnosis", "STEMI"),
                    ("symptom_onset_hours", "1"),
                ],
            ),
        ];
        let errs = assess(&taste(), &rows, 0.5, false).unwrap_err();
        assert_eq!(
            errs,
            vec![InvalidRow {
                line: 3,
                field: "age".into(),
                message: "`old` is not a valid integer".into()
            }]
        );
        let f = assess(&taste(), &rows, 0.5, true).unwrap();
        assert_eq!((f.invalid_rows, f.eligible), (1, 1));
    }
}
