//! What every trial page shares: the loaded trial as of a cut-off, the page header, the
//! CONSORT flow boxes and number formats.

use std::sync::Arc;

use chrono::NaiveDate;

use crate::endpoints::flow::{FlowCounts, Screening};
use crate::endpoints::{DataCutoff, EndpointRow};
use crate::protocol::Endpoint;
use crate::service::analyse::{self, Analysis};
use crate::service::export::{ExportError, TrialData};
use crate::store::Store;

/// A trial's protocol, allocations, events and screening log, with every endpoint derived and
/// the unblinded analysis computed as of a cut-off: everything any page of the trial is built
/// from (pages for blinded readers blind the analysis themselves).
pub struct TrialSnapshot {
    pub data: Arc<TrialData>,
    pub screening: Arc<Vec<Screening>>,
    pub cutoff: DataCutoff,
    /// Each endpoint's rows, in the protocol's order.
    pub rows: Vec<Vec<EndpointRow>>,
    pub analysis: Analysis,
}

impl TrialSnapshot {
    /// Read and prepare (CPU work; see [`Self::read`] and [`Self::prepare`] to split them).
    pub async fn load(
        store: &Store,
        trial_id: &str,
        cutoff: DataCutoff,
    ) -> Result<TrialSnapshot, ExportError> {
        let (data, screening) = Self::read(store, trial_id).await?;
        Ok(Self::prepare(Arc::new(data), Arc::new(screening), cutoff))
    }

    /// The trial's data and screening log.
    #[tracing::instrument(skip_all, fields(trial = %trial_id), err)]
    pub async fn read(
        store: &Store,
        trial_id: &str,
    ) -> Result<(TrialData, Vec<Screening>), ExportError> {
        Ok(tokio::try_join!(
            TrialData::load(store, trial_id),
            analyse::screening(store, trial_id)
        )?)
    }

    /// Derive the endpoints and analyse, once for every page.
    pub fn prepare(
        data: Arc<TrialData>,
        screening: Arc<Vec<Screening>>,
        cutoff: DataCutoff,
    ) -> Self {
        let (rows, analysis) = {
            let (derived, interim) = analyse::derive_with_interim(&data, cutoff);
            let analysis = analyse::analyse_derived(&data, &screening, cutoff, &derived, interim);
            (
                derived.into_iter().map(|(_, rows)| rows).collect(),
                analysis,
            )
        };
        TrialSnapshot {
            data,
            screening,
            cutoff,
            rows,
            analysis,
        }
    }

    /// Each endpoint with its rows.
    pub fn derived(&self) -> impl Iterator<Item = (&Endpoint, &[EndpointRow])> {
        self.data
            .protocol
            .endpoints
            .iter()
            .zip(self.rows.iter().map(Vec::as_slice))
    }

    /// Randomisation days on or before the cut-off, with the site (no arm).
    pub fn randomisation_days(&self) -> impl Iterator<Item = (NaiveDate, &str)> {
        let cutoff = self.cutoff.0;
        self.data.allocations.iter().filter_map(move |a| {
            let day = a
                .allocated_at
                .get(..10)
                .and_then(crate::endpoints::parse_event_date)?;
            (day <= cutoff).then_some((day, a.site_code.as_str()))
        })
    }

    pub fn site_name(&self, code: &str) -> String {
        self.data
            .protocol
            .sites
            .iter()
            .find(|s| s.code == code)
            .and_then(|s| s.name.clone())
            .unwrap_or_default()
    }

    /// The wording of an eligibility criterion, or its id when the protocol has no such one.
    pub fn criterion_text(&self, id: &str) -> String {
        let p = &self.data.protocol;
        p.inclusion
            .iter()
            .chain(&p.exclusion)
            .find(|c| c.id == id)
            .map_or_else(|| id.to_string(), |c| format!("{} ({id})", c.text))
    }
}

/// The header of a trial page.
pub struct Chrome {
    pub trial_id: String,
    pub title: String,
    pub protocol_version: String,
    /// The reader's role as shown.
    pub role: String,
    /// "all sites", or the site a register host is scoped to.
    pub scope: String,
    /// The data cut-off (empty where it does not apply).
    pub cutoff: String,
    /// Served pages have the cut-off form and sign-out; a written report has neither.
    pub interactive: bool,
}

/// One box of the CONSORT flow.
pub struct FlowStep {
    pub label: String,
    pub total: String,
    /// Per-arm counts (unblinded) or reasons (exclusion boxes).
    pub split: Vec<(String, String)>,
    /// An exclusion box, drawn to the side of the main flow.
    pub side: bool,
}

/// The flow boxes; `count` formats numbers (suppressing small ones on blinded pages) and
/// `arms` lists `(arm id, shown name)` for the per-arm split, empty when blinded.
pub fn consort(
    total: &FlowCounts,
    snapshot: &TrialSnapshot,
    arms: &[(String, String)],
    count: fn(u64) -> String,
) -> Vec<FlowStep> {
    let by_arm = |m: &Option<std::collections::BTreeMap<String, u64>>| -> Vec<(String, String)> {
        arms.iter()
            .map(|(id, name)| {
                (
                    name.clone(),
                    count(m.as_ref().and_then(|m| m.get(id)).copied().unwrap_or(0)),
                )
            })
            .collect()
    };
    let reasons = |m: &std::collections::BTreeMap<String, u64>, text: &dyn Fn(&str) -> String| {
        m.iter()
            .map(|(r, n)| (text(r), count(*n)))
            .collect::<Vec<_>>()
    };
    vec![
        FlowStep {
            label: "Screened in the register".into(),
            total: count(total.screened),
            split: vec![],
            side: false,
        },
        FlowStep {
            label: "Not eligible".into(),
            total: count(total.not_eligible),
            split: reasons(&total.not_eligible_by_criterion, &|r| {
                snapshot.criterion_text(r)
            }),
            side: true,
        },
        FlowStep {
            label: "Eligible".into(),
            total: count(total.eligible),
            split: vec![],
            side: false,
        },
        FlowStep {
            label: "Eligible, not randomised".into(),
            total: count(total.not_randomised),
            split: reasons(&total.not_randomised_by_reason, &|r| r.replace('_', " ")),
            side: true,
        },
        FlowStep {
            label: "Randomised".into(),
            total: count(total.randomised),
            split: by_arm(&total.randomised_by_arm),
            side: false,
        },
        FlowStep {
            label: "Lost to follow-up".into(),
            total: count(total.lost_to_follow_up),
            split: by_arm(&total.lost_to_follow_up_by_arm),
            side: true,
        },
        FlowStep {
            label: "Analysed (primary endpoint)".into(),
            total: count(total.analysed),
            split: by_arm(&total.analysed_by_arm),
            side: false,
        },
    ]
}

/// A p-value as a report prints it.
pub fn p_value(p: f64) -> String {
    if p.is_nan() {
        "–".into()
    } else if p < 0.001 {
        "<0.001".into()
    } else {
        format!("{p:.3}")
    }
}

pub fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "–".to_string(), f)
}

/// Cumulative counts at the end of each week (spans up to half a year) or month.
pub fn cumulative_by_period(mut days: Vec<NaiveDate>) -> (Vec<(NaiveDate, u64)>, &'static str) {
    use chrono::Datelike;
    days.sort_unstable();
    let (Some(&first), Some(&last)) = (days.first(), days.last()) else {
        return (vec![], "week");
    };
    let weekly = (last - first).num_days() <= 183;
    let period_end = |d: NaiveDate| -> NaiveDate {
        if weekly {
            d + chrono::Duration::days(6 - i64::from(d.weekday().num_days_from_monday()))
        } else {
            let (y, m) = if d.month() == 12 {
                (d.year() + 1, 1)
            } else {
                (d.year(), d.month() + 1)
            };
            NaiveDate::from_ymd_opt(y, m, 1).map_or(d, |n| n - chrono::Duration::days(1))
        }
    };
    let mut out: Vec<(NaiveDate, u64)> = Vec::new();
    let mut n = 0u64;
    for d in days {
        n += 1;
        let end = period_end(d);
        match out.last_mut() {
            Some(last) if last.0 == end => last.1 = n,
            _ => out.push((end, n)),
        }
    }
    (out, if weekly { "week" } else { "month" })
}

/// An unblinded report's count format.
pub fn plain(n: u64) -> String {
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekly_cumulative_counts() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        // 2024-01-01 is a Monday.
        let (points, unit) =
            cumulative_by_period(vec![d("2024-01-03"), d("2024-01-01"), d("2024-01-08")]);
        assert_eq!(unit, "week");
        assert_eq!(points, vec![(d("2024-01-07"), 2), (d("2024-01-14"), 3)]);
        assert_eq!(p_value(0.0004), "<0.001");
    }
}
