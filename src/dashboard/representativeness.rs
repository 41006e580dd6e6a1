//! The representativeness table (randomised against eligible-but-not-randomised) as the pages
//! show it — in full on the statistician's page, as released (small cells suppressed) on the
//! sponsor's — and the consent and withdrawal section of the statistician's page.

use crate::analysis::disclosure::Released;
use crate::analysis::participation_report::ParticipationReport;
use crate::analysis::representativeness::{
    Comparison, ReleasedComparison, ReleasedRepresentativeness, Representativeness,
};

/// One row: a field's mean or one of its levels, in both groups, and the standardised
/// difference.
pub struct RepresentativenessRow {
    pub field: String,
    pub what: String,
    pub randomised: String,
    pub not_randomised: String,
    pub difference: String,
}

pub struct RepresentativenessView {
    pub randomised: String,
    pub not_randomised: String,
    pub rows: Vec<RepresentativenessRow>,
}

const NOT_SHOWN: &str = "–";

fn mean_sd(n: &str, mean: Option<f64>, sd: Option<f64>) -> String {
    match (mean, sd) {
        (Some(m), Some(s)) => format!("{m:.1} ({s:.1}), n = {n}"),
        (Some(m), None) => format!("{m:.1}, n = {n}"),
        _ => format!("{NOT_SHOWN}, n = {n}"),
    }
}

fn share(k: &str, p: Option<f64>) -> String {
    match p {
        Some(p) => format!("{k} ({:.1}%)", 100.0 * p),
        None => k.to_string(),
    }
}

fn difference(d: Option<f64>) -> String {
    d.map_or_else(|| NOT_SHOWN.to_string(), |d| format!("{d:+.2}"))
}

fn name(field: &str, label: Option<&String>) -> String {
    label.cloned().unwrap_or_else(|| field.to_string())
}

/// The full table (statistician, DSMB).
pub fn full(r: &Representativeness) -> RepresentativenessView {
    let mut rows = Vec::new();
    for f in &r.fields {
        let field = name(&f.field, f.label.as_ref());
        match &f.comparison {
            Comparison::Continuous {
                randomised,
                not_randomised,
                standardised_difference,
            } => rows.push(RepresentativenessRow {
                field,
                what: "mean (SD)".into(),
                randomised: mean_sd(&randomised.n.to_string(), randomised.mean, randomised.sd),
                not_randomised: mean_sd(
                    &not_randomised.n.to_string(),
                    not_randomised.mean,
                    not_randomised.sd,
                ),
                difference: difference(*standardised_difference),
            }),
            Comparison::Categorical { levels, .. } => {
                for l in levels {
                    rows.push(RepresentativenessRow {
                        field: field.clone(),
                        what: l.level.clone(),
                        randomised: share(&l.randomised.to_string(), l.randomised_proportion),
                        not_randomised: share(
                            &l.not_randomised.to_string(),
                            l.not_randomised_proportion,
                        ),
                        difference: difference(l.standardised_difference),
                    })
                }
            }
        }
    }
    RepresentativenessView {
        randomised: r.randomised.to_string(),
        not_randomised: r.not_randomised.to_string(),
        rows,
    }
}

/// The released table (sponsor): counts of 1 to 4 read "<5", and what they make is not shown.
pub fn released(r: &ReleasedRepresentativeness) -> RepresentativenessView {
    let text = |c: Released| c.to_string();
    let mut rows = Vec::new();
    for f in &r.fields {
        let field = name(&f.field, f.label.as_ref());
        match &f.comparison {
            ReleasedComparison::Continuous {
                randomised,
                not_randomised,
                standardised_difference,
            } => rows.push(RepresentativenessRow {
                field,
                what: "mean (SD)".into(),
                randomised: mean_sd(&text(randomised.n), randomised.mean, randomised.sd),
                not_randomised: mean_sd(
                    &text(not_randomised.n),
                    not_randomised.mean,
                    not_randomised.sd,
                ),
                difference: difference(*standardised_difference),
            }),
            ReleasedComparison::Categorical { levels, .. } => {
                for l in levels {
                    rows.push(RepresentativenessRow {
                        field: field.clone(),
                        what: l.level.clone(),
                        randomised: share(&text(l.randomised), l.randomised_proportion),
                        not_randomised: share(&text(l.not_randomised), l.not_randomised_proportion),
                        difference: difference(l.standardised_difference),
                    })
                }
            }
        }
    }
    RepresentativenessView {
        randomised: text(r.randomised),
        not_randomised: text(r.not_randomised),
        rows,
    }
}

/// Consent and withdrawal on the statistician's page.
pub struct ParticipationView {
    /// `(kind, randomised)`.
    pub consent: Vec<(String, u64)>,
    pub deferred_confirmed: u64,
    pub deferred_pending: u64,
    /// `(record, site, randomised on, deadline, days overdue)`.
    pub overdue: Vec<(String, String, String, String, i64)>,
    /// `(scope, randomised)`.
    pub withdrawn: Vec<(String, u64)>,
}

pub fn participation(p: &ParticipationReport) -> ParticipationView {
    ParticipationView {
        consent: p
            .consent_by_kind
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect(),
        deferred_confirmed: p.deferred_confirmed,
        deferred_pending: p.deferred_pending,
        overdue: p
            .deferred_overdue
            .iter()
            .map(|o| {
                (
                    o.record_id.clone(),
                    o.site.clone(),
                    o.randomised_on.to_string(),
                    o.deadline.to_string(),
                    o.days_overdue,
                )
            })
            .collect(),
        withdrawn: p
            .withdrawn_by_scope
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect(),
    }
}
