//! What the analysis plan (`[analysis]`) asks of one comparison, turned into model inputs: the
//! randomisation stratum of each subject as stratum codes (for stratified Cox, log-rank, Gray
//! and Mantel–Haenszel) or as a factor (for the count and linear models), and each baseline
//! covariate as a term — a numeric field (integer or number) as a linear term, anything else
//! as a factor (R's treatment contrasts) — and the sentence that tells the reader what was
//! done.
//!
//! `site` and the stratification factors are read from the allocation (its site and stratum
//! key); every other covariate from the subject's enrolment fields ([`super::baseline`]). A
//! subject without a value of a covariate is left out of the comparison (complete cases), and
//! the sentence says how many were.
//!
//! What it must never do: read anything, or decide a method — it only adapts the plan.

use std::borrow::Cow;

use super::baseline::{CovariateValue, Covariates};
use crate::endpoints::{EndpointRow, Subject};
use crate::protocol::EndpointPlan;

/// A categorical variable over the analysed subjects: a code per subject into `levels`
/// (sorted, so the first level is the reference of its dummy columns).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Factor {
    pub name: String,
    pub codes: Vec<usize>,
    pub levels: Vec<String>,
}

impl Factor {
    fn of<'a>(name: &str, values: impl Iterator<Item = &'a str>) -> Factor {
        let values: Vec<&str> = values.collect();
        let mut levels: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        levels.sort();
        levels.dedup();
        let codes = values
            .iter()
            .map(|v| levels.binary_search_by(|l| l.as_str().cmp(v)).unwrap_or(0))
            .collect();
        Factor {
            name: name.to_string(),
            codes,
            levels,
        }
    }

    /// Indicator columns of every level but the first, named `factor=level` (R's treatment
    /// contrasts).
    pub fn dummies(&self) -> Vec<(String, Vec<f64>)> {
        (1..self.levels.len())
            .map(|l| {
                (
                    format!("{}={}", self.name, self.levels[l]),
                    self.codes
                        .iter()
                        .map(|&c| f64::from(u8::from(c == l)))
                        .collect(),
                )
            })
            .collect()
    }
}

/// One covariate over the analysed subjects.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Term {
    /// A numeric field, entering as a linear term.
    Linear { name: String, values: Vec<f64> },
    /// Anything else, entering as factor dummies.
    Factor(Factor),
}

impl Term {
    fn columns(&self) -> Vec<(String, Vec<f64>)> {
        match self {
            Term::Linear { name, values } => vec![(name.clone(), values.clone())],
            Term::Factor(f) => f.dummies(),
        }
    }
}

/// The model inputs for the subjects analysed, in their order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Adjustment {
    /// The randomisation stratum, when the plan stratifies.
    pub stratum: Option<Factor>,
    /// One term per covariate, in the plan's order.
    pub covariates: Vec<Term>,
}

impl Adjustment {
    /// The plan's terms over `subjects`, each of whom has a value of every covariate (see
    /// [`complete_cases`]; a value missing all the same is read as a level `(missing)`, or 0).
    pub fn new(plan: &EndpointPlan, subjects: &[&Subject], values: &Covariates<'_>) -> Adjustment {
        Adjustment {
            stratum: plan
                .stratified
                .then(|| Factor::of("stratum", subjects.iter().map(|s| &*s.stratum))),
            covariates: plan
                .covariates
                .iter()
                .map(|c| {
                    let read: Vec<Option<CovariateValue>> =
                        subjects.iter().map(|s| values.value(s, c)).collect();
                    if super::baseline::is_numeric(values.protocol, c) {
                        Term::Linear {
                            name: c.clone(),
                            values: read
                                .into_iter()
                                .map(|v| match v {
                                    Some(CovariateValue::Number(x)) => x,
                                    _ => 0.0,
                                })
                                .collect(),
                        }
                    } else {
                        let levels: Vec<Cow<str>> = read
                            .into_iter()
                            .map(|v| match v {
                                Some(CovariateValue::Level(l)) => l,
                                Some(CovariateValue::Number(x)) => Cow::Owned(x.to_string()),
                                None => Cow::Borrowed(crate::protocol::MISSING_LEVEL),
                            })
                            .collect();
                        Term::Factor(Factor::of(c, levels.iter().map(|l| l.as_ref())))
                    }
                })
                .collect(),
        }
    }

    /// Stratum codes and their count, for the methods with strata.
    pub fn strata(&self) -> Option<(&[usize], usize)> {
        self.stratum
            .as_ref()
            .filter(|f| f.levels.len() > 1)
            .map(|f| (f.codes.as_slice(), f.levels.len()))
    }

    /// The covariates' columns: numeric ones as they are, factors as dummies.
    pub fn covariate_columns(&self) -> Vec<(String, Vec<f64>)> {
        self.covariates.iter().flat_map(Term::columns).collect()
    }

    /// The covariates' and the stratum's columns, for models without strata (the stratum
    /// enters as a factor).
    pub fn all_columns(&self) -> Vec<(String, Vec<f64>)> {
        let mut columns = self.covariate_columns();
        if let Some(s) = &self.stratum {
            columns.extend(s.dummies());
        }
        columns
    }
}

/// The rows whose subjects have a value of every covariate of the plan, and how many of the
/// rows were left out for lacking one. Borrowed as they are when no covariate can be missing.
pub(crate) fn complete_cases<'r>(
    rows: &'r [EndpointRow],
    plan: &EndpointPlan,
    values: &Covariates<'_>,
) -> (Cow<'r, [EndpointRow]>, usize) {
    if !super::baseline::any_from_fields(values.protocol, &plan.covariates) {
        return (Cow::Borrowed(rows), 0);
    }
    let kept: Vec<EndpointRow> = rows
        .iter()
        .filter(|r| values.complete(&r.subject, &plan.covariates))
        .cloned()
        .collect();
    let left_out = rows.len() - kept.len();
    (Cow::Owned(kept), left_out)
}

/// ` stratified by the randomisation strata (site × sex) as strata, adjusted for age (linear),
/// diabetes (factor); complete cases (3 subjects without a covariate value left out); 95%
/// confidence intervals`. `how` says how the strata enter (`as strata`, `as a factor`);
/// `left_out` is the count [`complete_cases`] gave.
pub(crate) fn described(
    plan: &EndpointPlan,
    protocol: &crate::protocol::Protocol,
    how: &str,
    left_out: usize,
) -> String {
    let mut out = String::new();
    if plan.stratified {
        out.push_str(&format!(
            ", stratified by the randomisation strata ({}) {how}",
            protocol.randomisation.strata.join(" × ")
        ));
    }
    if !plan.covariates.is_empty() {
        let terms: Vec<String> = plan
            .covariates
            .iter()
            .map(|c| {
                let kind = if super::baseline::is_numeric(protocol, c) {
                    "linear"
                } else {
                    "factor"
                };
                format!("{c} ({kind})")
            })
            .collect();
        out.push_str(&format!(", adjusted for {}", terms.join(", ")));
        out.push_str(&complete_cases_said(plan, protocol, left_out));
    }
    out.push_str(&format!(
        "; {}% confidence intervals",
        (plan.conf_level * 1e6).round() / 1e4
    ));
    out
}

/// `; complete cases (3 subjects without a covariate value left out)` when a covariate of the
/// plan is read from the enrolment fields (and so may be missing), else nothing.
pub(crate) fn complete_cases_said(
    plan: &EndpointPlan,
    protocol: &crate::protocol::Protocol,
    left_out: usize,
) -> String {
    if !super::baseline::any_from_fields(protocol, &plan.covariates) {
        return String::new();
    }
    format!(
        "; complete cases ({left_out} subject{} without a covariate value left out)",
        if left_out == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(site: &str, stratum: &str) -> Subject {
        Subject {
            record_id: "r".into(),
            subject: "s".into(),
            site: site.into(),
            arm: "a".into(),
            stratum: stratum.into(),
            randomised_on: chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
            data_collection_ends: None,
        }
    }

    #[test]
    fn levels_come_from_the_site_and_the_stratum_key() {
        let s = [
            subject("UPP", "site=UPP;sex=M"),
            subject("KS", "site=KS;sex=F"),
            subject("UPP", "site=UPP;sex=F"),
        ];
        let refs: Vec<&Subject> = s.iter().collect();
        let plan = EndpointPlan {
            stratified: true,
            covariates: vec!["sex".into(), "site".into()],
            ..EndpointPlan::default()
        };
        let protocol =
            crate::protocol::parse(include_str!("../../protocols/taste.toml"), "taste.toml")
                .unwrap();
        let baseline = super::super::baseline::Baseline::default();
        let values = Covariates {
            protocol: &protocol,
            baseline: &baseline,
        };
        let a = Adjustment::new(&plan, &refs, &values);
        let factor = |i: usize| match &a.covariates[i] {
            Term::Factor(f) => f.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(factor(0).codes, [1, 0, 0]);
        assert_eq!(factor(1).levels, ["KS", "UPP"]);
        assert_eq!(a.strata().unwrap().1, 3);
        assert_eq!(
            a.covariate_columns(),
            vec![
                ("sex=M".to_string(), vec![1.0, 0.0, 0.0]),
                ("site=UPP".to_string(), vec![1.0, 0.0, 1.0])
            ]
        );
        assert_eq!(
            super::super::baseline::level(&s[0], "diabetes"),
            crate::protocol::MISSING_LEVEL
        );
    }
}
