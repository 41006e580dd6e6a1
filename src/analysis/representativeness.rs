//! Are the randomised like the eligible patients the registers saw? For every enrolment field
//! and the site, the randomised patients against the eligible patients who were not randomised
//! (the screening log holds their fields): counts, means and standard deviations or
//! proportions, and standardised differences (Austin, "Balance diagnostics for comparing the
//! distribution of baseline covariates", Stat Med 2009):
//!
//! - continuous (integer and number fields): `(m1 - m0) / sqrt((s1² + s0²) / 2)`, with sample
//!   standard deviations (n − 1);
//! - each level of a category, boolean or the site: `(p1 - p0) / sqrt((p1(1-p1) + p0(1-p0)) / 2)`,
//!   proportions among patients with a value.
//!
//! Group 1 is the randomised, group 0 the eligible-but-not-randomised; a positive difference
//! means the randomised have more of it. Date fields are left out (a mean date says little).
//! Randomised patients who withdrew the use of their data are left out. A difference is `None`
//! where it cannot be computed (a group without values, or no spread in either group).
//!
//! [`Representativeness::released`] is what a sponsor sees: the same table under the disclosure
//! rule of [`super::disclosure`] — level counts of 1 to 4 read "<5" (and counts that would
//! reveal them are withheld), and a mean, standard deviation, proportion or difference is shown
//! only when every count it is made of is shown (for a mean: at least 5 values in each group).
//! Pure: no I/O.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use super::data::TrialData;
use super::disclosure::{self, Disclosure, Released};
use crate::endpoints::flow::Screening;
use crate::endpoints::DataCutoff;
use crate::protocol::FieldKind;

/// The comparison for every field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Representativeness {
    /// Randomised patients compared (group 1).
    pub randomised: u64,
    /// Eligible patients not randomised (group 0).
    pub not_randomised: u64,
    pub fields: Vec<FieldComparison>,
}

/// One field (or the site).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldComparison {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(flatten)]
    pub comparison: Comparison,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Comparison {
    Continuous {
        randomised: Moments,
        not_randomised: Moments,
        standardised_difference: Option<f64>,
    },
    Categorical {
        /// Patients with a value, per group.
        randomised_n: u64,
        not_randomised_n: u64,
        levels: Vec<LevelComparison>,
    },
}

/// A continuous field in one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moments {
    /// Patients with a value.
    pub n: u64,
    pub missing: u64,
    pub mean: Option<f64>,
    pub sd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelComparison {
    pub level: String,
    pub randomised: u64,
    pub randomised_proportion: Option<f64>,
    pub not_randomised: u64,
    pub not_randomised_proportion: Option<f64>,
    pub standardised_difference: Option<f64>,
}

/// Standardised difference of two means: `(m1 - m0) / sqrt((s1² + s0²) / 2)`.
///
/// ```
/// use rrct::analysis::representativeness::standardised_mean_difference;
/// // Means 60 and 75, SDs 10 and sqrt(50): -15 / sqrt(75) = -sqrt(3).
/// let d = standardised_mean_difference(60.0, 10.0, 75.0, 50f64.sqrt()).unwrap();
/// assert!((d + 3f64.sqrt()).abs() < 1e-12);
/// ```
pub fn standardised_mean_difference(m1: f64, s1: f64, m0: f64, s0: f64) -> Option<f64> {
    let pooled = ((s1 * s1 + s0 * s0) / 2.0).sqrt();
    (pooled > 0.0 && pooled.is_finite()).then(|| (m1 - m0) / pooled)
}

/// Standardised difference of two proportions: `(p1 - p0) / sqrt((p1(1-p1) + p0(1-p0)) / 2)`.
///
/// ```
/// use rrct::analysis::representativeness::standardised_proportion_difference;
/// let d = standardised_proportion_difference(0.5, 0.25).unwrap();
/// assert!((d - 0.25 / ((0.25 + 0.1875) / 2f64).sqrt()).abs() < 1e-12);
/// ```
pub fn standardised_proportion_difference(p1: f64, p0: f64) -> Option<f64> {
    let pooled = ((p1 * (1.0 - p1) + p0 * (1.0 - p0)) / 2.0).sqrt();
    (pooled > 0.0 && pooled.is_finite()).then(|| (p1 - p0) / pooled)
}

fn moments(values: &[f64], missing: u64) -> Moments {
    let n = values.len();
    let mean = (n > 0).then(|| values.iter().sum::<f64>() / n as f64);
    let sd = mean
        .filter(|_| n > 1)
        .map(|m| (values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1) as f64).sqrt());
    Moments {
        n: n as u64,
        missing,
        mean,
        sd,
    }
}

/// The comparison as of `cutoff`: randomised patients (by the cut-off, whose data may be used)
/// against patients whose latest screening decision by then was `not_randomised`.
pub fn compare(
    data: &TrialData,
    screening: &[Screening],
    cutoff: DataCutoff,
) -> Representativeness {
    let randomised: HashSet<&str> = data
        .usable_by(cutoff)
        .map(|a| a.record_id.as_str())
        .collect();
    let everyone: HashSet<&str> = data
        .randomised_by(cutoff)
        .map(|a| a.record_id.as_str())
        .collect();
    // The fields of each record's randomising screening, and of each record whose latest
    // decision was not to randomise.
    let mut latest: HashMap<&str, &Screening> = HashMap::new();
    for s in screening.iter().filter(|s| s.screened_on <= cutoff.0) {
        if s.outcome == "randomised" {
            if randomised.contains(s.record_id.as_str()) {
                latest.insert(&s.record_id, s);
            }
        } else if !everyone.contains(s.record_id.as_str()) {
            latest.insert(&s.record_id, s);
        }
    }
    let mut groups: [Vec<&Screening>; 2] = [Vec::new(), Vec::new()];
    let mut ordered: Vec<&&Screening> = latest.values().collect();
    ordered.sort_by(|a, b| a.record_id.cmp(&b.record_id));
    for s in ordered {
        match s.outcome.as_str() {
            "randomised" => groups[1].push(s),
            "not_randomised" => groups[0].push(s),
            _ => {}
        }
    }
    let protocol = &data.protocol;
    let mut fields = Vec::new();
    let site_levels: Vec<String> = protocol.sites.iter().map(|s| s.code.clone()).collect();
    fields.push(FieldComparison {
        field: "site".into(),
        label: Some("Site".into()),
        comparison: categorical(&groups, &site_levels, |s| Some(s.site.clone())),
    });
    for spec in &protocol.fields {
        let name = spec.name.as_str();
        let value = |s: &Screening| s.fields.get(name).filter(|v| !v.is_null()).cloned();
        let comparison = match &spec.kind {
            FieldKind::Integer { .. } | FieldKind::Number { .. } => {
                let [g0, g1] = &groups;
                let values = |g: &[&Screening]| -> (Vec<f64>, u64) {
                    let vals: Vec<f64> = g
                        .iter()
                        .filter_map(|s| value(s).and_then(|v| v.as_f64()))
                        .collect();
                    let missing = g.len() as u64 - vals.len() as u64;
                    (vals, missing)
                };
                let (v1, miss1) = values(g1);
                let (v0, miss0) = values(g0);
                let (m1, m0) = (moments(&v1, miss1), moments(&v0, miss0));
                let d = match (m1.mean, m1.sd, m0.mean, m0.sd) {
                    (Some(a), Some(sa), Some(b), Some(sb)) => {
                        standardised_mean_difference(a, sa, b, sb)
                    }
                    _ => None,
                };
                Comparison::Continuous {
                    randomised: m1,
                    not_randomised: m0,
                    standardised_difference: d,
                }
            }
            FieldKind::Category { levels } => categorical(&groups, levels, |s| match value(s) {
                Some(Value::String(t)) => Some(t),
                _ => None,
            }),
            FieldKind::Boolean => categorical(&groups, &["true".into(), "false".into()], |s| {
                value(s).and_then(|v| v.as_bool()).map(|b| b.to_string())
            }),
            FieldKind::Date { .. } => continue,
        };
        fields.push(FieldComparison {
            field: name.to_string(),
            label: spec.label.clone(),
            comparison,
        });
    }
    Representativeness {
        randomised: groups[1].len() as u64,
        not_randomised: groups[0].len() as u64,
        fields,
    }
}

fn categorical(
    groups: &[Vec<&Screening>; 2],
    levels: &[String],
    level_of: impl Fn(&Screening) -> Option<String>,
) -> Comparison {
    let count = |g: &[&Screening]| -> (BTreeMap<String, u64>, u64) {
        let mut by: BTreeMap<String, u64> = BTreeMap::new();
        let mut n = 0;
        for s in g {
            if let Some(l) = level_of(s) {
                *by.entry(l).or_default() += 1;
                n += 1;
            }
        }
        (by, n)
    };
    let (c1, n1) = count(&groups[1]);
    let (c0, n0) = count(&groups[0]);
    let share = |k: u64, n: u64| (n > 0).then(|| k as f64 / n as f64);
    let levels = levels
        .iter()
        .map(|l| {
            let (k1, k0) = (
                c1.get(l).copied().unwrap_or(0),
                c0.get(l).copied().unwrap_or(0),
            );
            let (p1, p0) = (share(k1, n1), share(k0, n0));
            LevelComparison {
                level: l.clone(),
                randomised: k1,
                randomised_proportion: p1,
                not_randomised: k0,
                not_randomised_proportion: p0,
                standardised_difference: p1
                    .zip(p0)
                    .and_then(|(a, b)| standardised_proportion_difference(a, b)),
            }
        })
        .collect();
    Comparison::Categorical {
        randomised_n: n1,
        not_randomised_n: n0,
        levels,
    }
}

/// The comparison as a sponsor sees it (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleasedRepresentativeness {
    pub randomised: Released,
    pub not_randomised: Released,
    pub fields: Vec<ReleasedField>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleasedField {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(flatten)]
    pub comparison: ReleasedComparison,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReleasedComparison {
    Continuous {
        randomised: ReleasedMoments,
        not_randomised: ReleasedMoments,
        standardised_difference: Option<f64>,
    },
    Categorical {
        randomised_n: Released,
        not_randomised_n: Released,
        levels: Vec<ReleasedLevel>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleasedMoments {
    pub n: Released,
    pub missing: Released,
    pub mean: Option<f64>,
    pub sd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleasedLevel {
    pub level: String,
    pub randomised: Released,
    pub randomised_proportion: Option<f64>,
    pub not_randomised: Released,
    pub not_randomised_proportion: Option<f64>,
    pub standardised_difference: Option<f64>,
}

impl Representativeness {
    /// Under disclosure control: each field's counts are tied by the sums a reader sees (the
    /// levels add up to the patients with a value, those and the missing to the group).
    pub fn released(&self) -> ReleasedRepresentativeness {
        let mut d = Disclosure::new();
        let g1 = d.cell(self.randomised);
        let g0 = d.cell(self.not_randomised);
        enum Cells {
            Continuous([disclosure::Cell; 4]),
            Categorical(
                disclosure::Cell,
                disclosure::Cell,
                Vec<(disclosure::Cell, disclosure::Cell)>,
            ),
        }
        let cells: Vec<Cells> = self
            .fields
            .iter()
            .map(|f| match &f.comparison {
                Comparison::Continuous {
                    randomised,
                    not_randomised,
                    ..
                } => {
                    let c = [
                        d.cell(randomised.n),
                        d.cell(randomised.missing),
                        d.cell(not_randomised.n),
                        d.cell(not_randomised.missing),
                    ];
                    d.sum(g1, &[c[0], c[1]]);
                    d.sum(g0, &[c[2], c[3]]);
                    Cells::Continuous(c)
                }
                Comparison::Categorical {
                    randomised_n,
                    not_randomised_n,
                    levels,
                } => {
                    let n1 = d.cell(*randomised_n);
                    let n0 = d.cell(*not_randomised_n);
                    let lv: Vec<_> = levels
                        .iter()
                        .map(|l| (d.cell(l.randomised), d.cell(l.not_randomised)))
                        .collect();
                    d.sum(n1, &lv.iter().map(|c| c.0).collect::<Vec<_>>());
                    d.sum(n0, &lv.iter().map(|c| c.1).collect::<Vec<_>>());
                    Cells::Categorical(n1, n0, lv)
                }
            })
            .collect();
        let r = d.solve();
        let get = |c: disclosure::Cell| r[c.index()];
        let enough =
            |n: u64, released: Released| released.is_shown() && n > disclosure::SMALL_COUNT_LIMIT;
        let fields = self
            .fields
            .iter()
            .zip(cells)
            .map(|(f, cells)| {
                let comparison = match (&f.comparison, cells) {
                    (
                        Comparison::Continuous {
                            randomised,
                            not_randomised,
                            standardised_difference,
                        },
                        Cells::Continuous(c),
                    ) => {
                        let ok1 = enough(randomised.n, get(c[0]));
                        let ok0 = enough(not_randomised.n, get(c[2]));
                        let moments = |m: &Moments, ok: bool, n, missing| ReleasedMoments {
                            n,
                            missing,
                            mean: m.mean.filter(|_| ok),
                            sd: m.sd.filter(|_| ok),
                        };
                        ReleasedComparison::Continuous {
                            randomised: moments(randomised, ok1, get(c[0]), get(c[1])),
                            not_randomised: moments(not_randomised, ok0, get(c[2]), get(c[3])),
                            standardised_difference: standardised_difference.filter(|_| ok1 && ok0),
                        }
                    }
                    (
                        Comparison::Categorical {
                            randomised_n,
                            not_randomised_n,
                            levels,
                        },
                        Cells::Categorical(n1, n0, lv),
                    ) => {
                        let (rn1, rn0) = (get(n1), get(n0));
                        let levels = levels
                            .iter()
                            .zip(lv)
                            .map(|(l, (c1, c0))| {
                                let (k1, k0) = (get(c1), get(c0));
                                let ok1 = k1.is_shown() && rn1.is_shown() && *randomised_n > 0;
                                let ok0 = k0.is_shown() && rn0.is_shown() && *not_randomised_n > 0;
                                ReleasedLevel {
                                    level: l.level.clone(),
                                    randomised: k1,
                                    randomised_proportion: l.randomised_proportion.filter(|_| ok1),
                                    not_randomised: k0,
                                    not_randomised_proportion: l
                                        .not_randomised_proportion
                                        .filter(|_| ok0),
                                    standardised_difference: l
                                        .standardised_difference
                                        .filter(|_| ok1 && ok0),
                                }
                            })
                            .collect();
                        ReleasedComparison::Categorical {
                            randomised_n: rn1,
                            not_randomised_n: rn0,
                            levels,
                        }
                    }
                    // Cells are made from the comparison's own kind.
                    _ => ReleasedComparison::Categorical {
                        randomised_n: Released::Withheld,
                        not_randomised_n: Released::Withheld,
                        levels: Vec::new(),
                    },
                };
                ReleasedField {
                    field: f.field.clone(),
                    label: f.label.clone(),
                    comparison,
                }
            })
            .collect();
        ReleasedRepresentativeness {
            randomised: get(g1),
            not_randomised: get(g0),
            fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::randomise::{AllocationRecord, Draw, Timestamp};
    use chrono::NaiveDate;

    fn taste() -> crate::protocol::Protocol {
        crate::protocol::parse(include_str!("../../protocols/taste.toml"), "taste").unwrap()
    }

    fn screened(record: &str, outcome: &str, site: &str, age: i64, sex: &str) -> Screening {
        Screening {
            record_id: record.into(),
            site: site.into(),
            outcome: outcome.into(),
            reasons: Vec::new(),
            screened_on: NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
            fields: serde_json::json!({"age": age, "sex": sex, "diagnosis": "STEMI",
                                       "symptom_onset_hours": 2.0})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        }
    }

    fn allocation(record: &str, n: i64) -> AllocationRecord {
        AllocationRecord {
            trial_id: "taste".into(),
            randomisation_number: n,
            record_id: record.into(),
            subject: format!("S-{record}"),
            site_code: "UPP".into(),
            arm: "pci".into(),
            stratum: "all".into(),
            block_number: 0,
            block_size: 2,
            block_position: 0,
            protocol_version: "1.0".into(),
            request_sha256: String::new(),
            allocated_at: Timestamp::parse("2024-01-02T10:00:00Z").unwrap(),
            detail: None,
            eligible_arms: None,
            cluster: None,
            draw: Draw::Slot,
        }
    }

    /// Randomised ages 50, 60, 70 (mean 60, SD 10), not randomised 70, 80 (mean 75, SD √50):
    /// d = -15 / √((100 + 50) / 2) = -√3. Women 1 of 3 against 1 of 2:
    /// d = (1/3 - 1/2) / √((2/9 + 1/4) / 2) = -(1/6) / √(17/72).
    #[test]
    fn standardised_differences_by_hand() {
        let data = TrialData {
            allocations: vec![
                allocation("r1", 1),
                allocation("r2", 2),
                allocation("r3", 3),
            ],
            ..TrialData::of(taste())
        };
        let screening = [
            screened("r1", "randomised", "UPP", 50, "F"),
            screened("r2", "randomised", "UPP", 60, "M"),
            screened("r3", "randomised", "KS", 70, "M"),
            screened("n1", "not_randomised", "UPP", 70, "F"),
            screened("n2", "not_randomised", "KS", 80, "M"),
            // Not eligible: in neither group.
            screened("x1", "not_eligible", "KS", 17, "F"),
        ];
        let cutoff = DataCutoff(NaiveDate::from_ymd_opt(2024, 2, 1).unwrap());
        let r = compare(&data, &screening, cutoff);
        assert_eq!((r.randomised, r.not_randomised), (3, 2));
        let age = r.fields.iter().find(|f| f.field == "age").unwrap();
        let Comparison::Continuous {
            randomised,
            not_randomised,
            standardised_difference,
        } = &age.comparison
        else {
            panic!("age is continuous")
        };
        assert_eq!(randomised.mean, Some(60.0));
        assert!((randomised.sd.unwrap() - 10.0).abs() < 1e-12);
        assert!((not_randomised.sd.unwrap() - 50f64.sqrt()).abs() < 1e-12);
        assert!((standardised_difference.unwrap() + 3f64.sqrt()).abs() < 1e-12);
        let sex = r.fields.iter().find(|f| f.field == "sex").unwrap();
        let Comparison::Categorical { levels, .. } = &sex.comparison else {
            panic!("sex is categorical")
        };
        let f = &levels[0];
        assert_eq!(
            (f.level.as_str(), f.randomised, f.not_randomised),
            ("F", 1, 1)
        );
        let expected = -(1.0 / 6.0) / (17.0f64 / 72.0).sqrt();
        assert!((f.standardised_difference.unwrap() - expected).abs() < 1e-12);
        assert!((expected + 0.342_997_170_285_018_1).abs() < 1e-12);

        // The sponsor's copy: every count here is 1 to 4, so no count, mean or difference
        // is shown.
        let released = r.released();
        let json = serde_json::to_value(&released).unwrap();
        assert_eq!(json["randomised"], "<5");
        let age = &json["fields"][1];
        assert_eq!(age["field"], "age");
        assert_eq!(age["randomised"]["mean"], Value::Null);
        assert_eq!(age["standardised_difference"], Value::Null);
        assert!(!json.to_string().contains("-1.73"), "{json}");
    }
}
