//! What the analysis plan (`[analysis]`) asks of one comparison, turned into model inputs: the
//! randomisation stratum of each subject as stratum codes (for stratified Cox, log-rank, Gray
//! and Mantel–Haenszel) or as a factor (for the count and linear models), and each baseline
//! covariate as a factor — and the sentence that tells the reader what was done.
//!
//! Baseline values come from what every allocation records: its site and its stratum key
//! (`site=UPP;sex=F`), which holds each stratification factor's level. Validation allows no
//! other covariate.
//!
//! What it must never do: read anything, or decide a method — it only adapts the plan.

use crate::endpoints::Subject;
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

/// The model inputs for the subjects analysed, in their order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Adjustment {
    /// The randomisation stratum, when the plan stratifies.
    pub stratum: Option<Factor>,
    /// One factor per covariate, in the plan's order.
    pub covariates: Vec<Factor>,
}

impl Adjustment {
    pub fn new(plan: &EndpointPlan, subjects: &[&Subject]) -> Adjustment {
        Adjustment {
            stratum: plan
                .stratified
                .then(|| Factor::of("stratum", subjects.iter().map(|s| &*s.stratum))),
            covariates: plan
                .covariates
                .iter()
                .map(|c| Factor::of(c, subjects.iter().map(|s| level(s, c))))
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

    /// The covariates' dummy columns.
    pub fn covariate_columns(&self) -> Vec<(String, Vec<f64>)> {
        self.covariates.iter().flat_map(Factor::dummies).collect()
    }

    /// The covariates' and the stratum's dummy columns, for models without strata (the
    /// stratum enters as a factor).
    pub fn all_columns(&self) -> Vec<(String, Vec<f64>)> {
        let mut columns = self.covariate_columns();
        if let Some(s) = &self.stratum {
            columns.extend(s.dummies());
        }
        columns
    }
}

/// ` stratified by the randomisation strata (site × sex), adjusted for age_band`, or nothing.
/// `how` says how the strata enter (`as strata`, `as a factor`).
pub(crate) fn described(plan: &EndpointPlan, strata: &[String], how: &str) -> String {
    let mut out = String::new();
    if plan.stratified {
        out.push_str(&format!(
            ", stratified by the randomisation strata ({}) {how}",
            strata.join(" × ")
        ));
    }
    if !plan.covariates.is_empty() {
        out.push_str(&format!(", adjusted for {}", plan.covariates.join(", ")));
    }
    out.push_str(&format!(
        "; {}% confidence intervals",
        (plan.conf_level * 1e6).round() / 1e4
    ));
    out
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
        let a = Adjustment::new(&plan, &refs);
        assert_eq!(a.covariates[0].codes, [1, 0, 0]);
        assert_eq!(a.covariates[1].levels, ["KS", "UPP"]);
        assert_eq!(a.strata().unwrap().1, 3);
        assert_eq!(
            a.covariate_columns(),
            vec![
                ("sex=M".to_string(), vec![1.0, 0.0, 0.0]),
                ("site=UPP".to_string(), vec![1.0, 0.0, 1.0])
            ]
        );
        assert_eq!(level(&s[0], "diabetes"), crate::protocol::MISSING_LEVEL);
    }
}
