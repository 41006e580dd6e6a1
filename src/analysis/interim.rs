//! Interim monitoring of the primary endpoint as of a data cut-off: each planned look that the
//! data have reached is reconstructed at the day its event count was reached (so a look's
//! numbers never change when the report is re-run later), the Cox log hazard ratio gives its z,
//! and the group-sequential design decides whether the boundary was crossed.
//!
//! With several experimental arms each is monitored against the reference arm on its own: on
//! its subjects and the reference arm's concurrent, eligible controls (randomised while both
//! arms were open, and eligible for the experimental arm), its events counted against the
//! planned events of one comparison, at its share of alpha (Bonferroni unless the protocol's
//! `[monitoring] multiplicity` says `none`).

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDate;
use serde::Serialize;

use super::data::TrialData;
use crate::design::{self, Crossing, DesignSpec, Observation, Sided};
use crate::endpoints::{self, DataCutoff, EndpointRow, Outcome};
use crate::protocol::{Endpoint, FollowUp, Monitoring};
use crate::stats;

/// One look, as held.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LookReport {
    pub look: usize,
    /// The planned information fraction of this look.
    pub planned_fraction: f64,
    /// The data cut-off at which the look's event count was reached.
    pub cutoff: NaiveDate,
    pub events: u64,
    pub information_fraction: f64,
    /// Oriented so that benefit of the experimental arm is positive: −log(HR) / SE.
    pub z: f64,
    pub hazard_ratio: f64,
    pub upper_z: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower_z: Option<f64>,
    pub nominal_alpha: f64,
    pub cumulative_alpha: f64,
    pub crossed: bool,
    pub crossing: Crossing,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditional_power_design: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditional_power_trend: Option<f64>,
    /// Repeated confidence interval of the hazard ratio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeated_ci_hr: Option<[f64; 2]>,
}

/// Interim monitoring of the primary endpoint: each experimental arm against the reference arm,
/// each at its share of alpha.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InterimReport {
    pub endpoint: String,
    pub reference_arm: String,
    pub design: Monitoring,
    /// How alpha is split between the comparisons, in words.
    pub alpha_split: String,
    /// The alpha each comparison is monitored at.
    pub alpha_per_comparison: f64,
    /// One per experimental arm, in the protocol's order.
    pub comparisons: Vec<ArmMonitoring>,
}

/// The looks of one arm against the reference arm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmMonitoring {
    pub experimental_arm: String,
    /// Reference-arm subjects in this comparison: randomised while both arms were open and
    /// eligible for the experimental arm.
    pub concurrent_controls: usize,
    /// Reference-arm subjects left out of it.
    pub non_concurrent_controls: usize,
    pub inflation_factor: f64,
    /// The planned efficacy boundaries (z) at the planned looks.
    pub planned_upper_z: Vec<f64>,
    /// Two-sided designs: the planned lower efficacy boundaries (`-planned_upper_z`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub planned_lower_z: Vec<f64>,
    /// Events in the two arms' subjects of this comparison.
    pub events: u64,
    pub information_fraction: f64,
    pub looks: Vec<LookReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What the looks of one report computed subject by subject, for a later report at the same
/// cut-off to take again ([`interim_after`]): each subject's event-count changes and the rows of
/// every look day derived, per comparison. Empty when nothing was computed.
#[derive(Debug, Clone, Default)]
pub struct KeptLooks {
    /// The cut-off and the rules the changes and rows were derived under.
    rules: Option<(DataCutoff, FollowUp, Endpoint)>,
    comparisons: Vec<KeptComparison>,
}

/// The days a subject's event count changes on, by one up or down ([`endpoints::event_count_changes`]).
type CountChanges = Vec<(NaiveDate, i64)>;

/// One comparison's part of [`KeptLooks`].
#[derive(Debug, Clone)]
struct KeptComparison {
    experimental: String,
    /// Every subject of the comparison, by record id, as derived, with its event-count changes
    /// up to the cut-off.
    changes: HashMap<Arc<str>, (endpoints::Subject, CountChanges)>,
    /// The rows derived as of each look day.
    looks: Vec<(NaiveDate, Vec<EndpointRow>)>,
}

/// The looks kept by an earlier report on the same trial, and the subjects whose events have
/// been added since (events are never changed in place without the trial being read afresh).
#[derive(Clone, Copy)]
pub struct EarlierLooks<'a> {
    pub kept: &'a KeptLooks,
    /// Pseudonymous subject ids with events added since the looks were kept.
    pub events_added_for: &'a HashSet<String>,
}

/// The interim report, when the protocol plans interim monitoring.
pub fn interim(data: &TrialData, cutoff: DataCutoff) -> Option<InterimReport> {
    interim_after(data, cutoff, None).0
}

/// [`interim`], taking from `earlier` what each unchanged subject contributes to the looks (its
/// event-count changes and its rows as of each look day) and deriving only the others: new
/// subjects, subjects whose [`endpoints::Subject`] differs and subjects with events added
/// since. A subject's changes and rows depend only on the follow-up rules, the endpoint, the
/// cut-off (or look day), the subject and its own events, so the report is the one [`interim`]
/// gives; with `earlier` kept at another cut-off or under other rules, everything is derived.
/// Also what this report computed, for the next.
pub fn interim_after(
    data: &TrialData,
    cutoff: DataCutoff,
    earlier: Option<EarlierLooks<'_>>,
) -> (Option<InterimReport>, KeptLooks) {
    match interim_with(data, cutoff, earlier) {
        Some((report, kept)) => (Some(report), kept),
        None => (None, KeptLooks::default()),
    }
}

fn interim_with(
    data: &TrialData,
    cutoff: DataCutoff,
    earlier: Option<EarlierLooks<'_>>,
) -> Option<(InterimReport, KeptLooks)> {
    let plan = data.protocol.monitoring.as_ref()?;
    let endpoint = data.protocol.primary_endpoint()?;
    let arms = &data.protocol.arms;
    let reference = arms.len().checked_sub(1).filter(|&r| r > 0)?;
    let follow_up = &data.protocol.follow_up;
    // Taken again only under the rules and at the cut-off they were derived for.
    let earlier = earlier.filter(|e| {
        e.kept
            .rules
            .as_ref()
            .is_some_and(|(c, f, p)| *c == cutoff && f == follow_up && p == endpoint)
    });
    let alpha = plan
        .multiplicity
        .alpha_per_comparison(plan.alpha, reference);
    let alpha_split = match (plan.multiplicity, reference) {
        (_, 1) => format!("one comparison, at the full alpha {}", plan.alpha),
        (crate::protocol::Multiplicity::Bonferroni, k) => format!(
            "Bonferroni: alpha {} split equally between the {k} comparisons with the reference \
             arm, {alpha} each",
            plan.alpha
        ),
        (crate::protocol::Multiplicity::None, k) => format!(
            "none: each of the {k} comparisons with the reference arm at the full alpha {} \
             (the protocol's `multiplicity = \"none\"`)",
            plan.alpha
        ),
    };
    let concurrency = super::data::Concurrency::of(data);
    let subjects = data.subjects();
    let (comparisons, kept): (Vec<ArmMonitoring>, Vec<KeptComparison>) = (0..reference)
        .map(|a| {
            let (mut controls, mut non_concurrent) = (0, 0);
            let kept: Vec<endpoints::Subject> = subjects
                .iter()
                .filter(|s| {
                    let arm = arms.iter().position(|x| *x.id == *s.arm);
                    if arm != Some(a) && arm != Some(reference) {
                        return false;
                    }
                    let keep = concurrency.keeps(&s.record_id, a, reference);
                    if arm == Some(reference) {
                        if keep {
                            controls += 1;
                        } else {
                            non_concurrent += 1;
                        }
                    }
                    keep
                })
                .cloned()
                .collect();
            let before = earlier.and_then(|e| {
                e.kept
                    .comparisons
                    .iter()
                    .find(|c| c.experimental == arms[a].id)
                    .map(|c| (c, e.events_added_for))
            });
            let (mut report, kept) = monitor_arm(
                data,
                cutoff,
                (endpoint, plan),
                alpha,
                &kept,
                (&arms[a].id, &arms[reference].id),
                before,
            );
            report.concurrent_controls = controls;
            report.non_concurrent_controls = non_concurrent;
            (report, kept)
        })
        .unzip();
    Some((
        InterimReport {
            endpoint: endpoint.id.clone(),
            reference_arm: arms[reference].id.clone(),
            design: plan.clone(),
            alpha_split,
            alpha_per_comparison: alpha,
            comparisons,
        },
        KeptLooks {
            rules: Some((cutoff, follow_up.clone(), endpoint.clone())),
            comparisons: kept,
        },
    ))
}

/// The looks of `experimental` against `reference` on `subjects` (theirs only), monitored at
/// `alpha`.
fn monitor_arm(
    data: &TrialData,
    cutoff: DataCutoff,
    (endpoint, plan): (&crate::protocol::Endpoint, &Monitoring),
    alpha: f64,
    subjects: &[endpoints::Subject],
    (experimental, reference): (&str, &str),
    earlier: Option<(&KeptComparison, &HashSet<String>)>,
) -> (ArmMonitoring, KeptComparison) {
    let mut kept = KeptComparison {
        experimental: experimental.to_string(),
        changes: HashMap::new(),
        looks: Vec::new(),
    };
    let spending = plan.spending;
    let spec = DesignSpec {
        alpha,
        sided: if plan.sided == 1 {
            Sided::One
        } else {
            Sided::Two
        },
        design: spending.into(),
        timing: plan.looks.clone(),
        power: plan.power,
        futility: None,
        binding_futility: false,
    };
    let mut report = ArmMonitoring {
        experimental_arm: experimental.to_string(),
        concurrent_controls: 0,
        non_concurrent_controls: 0,
        inflation_factor: f64::NAN,
        planned_upper_z: Vec::new(),
        planned_lower_z: Vec::new(),
        events: 0,
        information_fraction: 0.0,
        looks: Vec::new(),
        note: None,
    };
    let design = match design::group_sequential(&spec) {
        Ok(d) => d,
        Err(e) => {
            report.note = Some(format!("the monitoring plan cannot be computed: {e}"));
            return (report, kept);
        }
    };
    report.inflation_factor = design.inflation_factor;
    report.planned_upper_z = design.looks.iter().map(|l| l.upper_z).collect();
    if spec.sided == Sided::Two {
        report.planned_lower_z = design.looks.iter().filter_map(|l| l.lower_z).collect();
    }
    // The look search derives the endpoint many times: only events of the endpoint's types and
    // the censoring types can change its rows, so leave the others out once.
    let relevant = |e: &&endpoints::ReceivedEvent| match &endpoint.kind {
        crate::protocol::EndpointKind::TimeToEvent { events, .. } => {
            events.types.contains(&e.event.event_type)
                || data
                    .protocol
                    .follow_up
                    .censor_on
                    .contains(&e.event.event_type)
        }
        _ => true,
    };
    // A subject's changes and rows are taken from `earlier` when it is the same subject there
    // and has had no events added since: its earlier changes, looked up once per subject.
    let taken: Vec<Option<&CountChanges>> = subjects
        .iter()
        .map(|s| {
            let (before, added) = earlier?;
            before
                .changes
                .get(&s.record_id)
                .filter(|(was, _)| was == s && !added.contains(&*s.subject))
                .map(|(_, own)| own)
        })
        .collect();
    let again: HashSet<&str> = subjects
        .iter()
        .zip(&taken)
        .filter(|(_, t)| t.is_none())
        .map(|(s, _)| &*s.subject)
        .collect();
    // The relevant events of the subjects derived again; of every subject when a look has to
    // be derived whole (only then are they grouped).
    let grouped = match earlier {
        None => endpoints::EventsBySubject::of(data.events.iter().filter(relevant)),
        // The held data keep their events in subject order (checked by comparing neighbours):
        // each subject's are found by search, without hashing and grouping every event.
        Some(_) if data.events.is_sorted_by_key(|e| e.event.subject.as_str()) => {
            endpoints::EventsBySubject::of(
                again
                    .iter()
                    .flat_map(|s| {
                        let from = data
                            .events
                            .partition_point(|e| e.event.subject.as_str() < *s);
                        let to = data
                            .events
                            .partition_point(|e| e.event.subject.as_str() <= *s);
                        &data.events[from..to]
                    })
                    .filter(relevant),
            )
        }
        Some(_) => endpoints::EventsBySubject::of(
            data.events
                .iter()
                .filter(relevant)
                .filter(|e| again.contains(e.event.subject.as_str())),
        ),
    };
    // Every subject's relevant events, for a look derived whole: `grouped` already, unless it
    // holds only the subjects derived again.
    let all_grouped = OnceCell::new();
    let every = || match earlier {
        None => &grouped,
        Some(_) => all_grouped
            .get_or_init(|| endpoints::EventsBySubject::of(data.events.iter().filter(relevant))),
    };
    let rows_at = |d: NaiveDate| -> Vec<EndpointRow> {
        let whole = || {
            endpoints::derive_grouped(
                &data.protocol.follow_up,
                endpoint,
                subjects,
                every(),
                DataCutoff(d),
            )
        };
        let Some(before) = earlier.and_then(|(b, _)| b.looks.iter().find(|(day, _)| *day == d))
        else {
            return whole();
        };
        let index: HashMap<&str, &EndpointRow> = before
            .1
            .iter()
            .map(|r| (&*r.subject.record_id, r))
            .collect();
        // As `derive_grouped` takes them: the subjects randomised by the day, in order.
        let by_day: Vec<(&endpoints::Subject, bool)> = subjects
            .iter()
            .zip(&taken)
            .filter(|(s, _)| s.randomised_on <= d)
            .map(|(s, t)| (s, t.is_some()))
            .collect();
        let plan: Vec<Option<&EndpointRow>> = by_day
            .iter()
            .map(|(s, t)| t.then(|| index.get(&*s.record_id).copied()).flatten())
            .collect();
        if by_day
            .iter()
            .zip(&plan)
            .any(|((_, t), p)| p.is_none() && *t)
        {
            // A subject taken again without a row for this day: derive the day whole.
            return whole();
        }
        let fresh_subjects: Vec<endpoints::Subject> = by_day
            .iter()
            .zip(&plan)
            .filter(|(_, p)| p.is_none())
            .map(|((s, _), _)| (*s).clone())
            .collect();
        let mut fresh = endpoints::derive_grouped(
            &data.protocol.follow_up,
            endpoint,
            &fresh_subjects,
            &grouped,
            DataCutoff(d),
        )
        .into_iter();
        plan.into_iter()
            .filter_map(|p| match p {
                Some(row) => Some(row.clone()),
                None => fresh.next(),
            })
            .collect()
    };
    let events_in = |rows: &[EndpointRow]| {
        rows.iter()
            .filter(|r| matches!(r.outcome, Outcome::TimeToEvent { event: true, .. }))
            .count() as u64
    };
    // How the event count as of a cut-off moves with the cut-off: the days it changes on,
    // swept in order, give the count as of the cut-off and the first day each look's count is
    // held.
    let mut counting =
        endpoints::EventCountChanges::new(&data.protocol.follow_up, endpoint, cutoff);
    let mut changes = Vec::new();
    for (s, t) in subjects.iter().zip(&taken) {
        let own = match t {
            Some(own) => (*own).clone(),
            None => {
                let mut own = Vec::new();
                counting.of_subject(s, &grouped, &mut own);
                own
            }
        };
        changes.extend_from_slice(&own);
        kept.changes.insert(s.record_id.clone(), (s.clone(), own));
    }
    changes.sort_unstable();
    let first_day_with = |target: u64| {
        let mut count = 0i64;
        changes.iter().find_map(|&(day, delta)| {
            count += delta;
            (count >= target as i64).then_some(day)
        })
    };
    let planned = f64::from(plan.planned_events);
    report.events = changes.iter().map(|c| c.1).sum::<i64>().max(0) as u64;
    report.information_fraction = report.events as f64 / planned;
    if subjects.is_empty() {
        return (report, kept);
    }

    let mut observations = Vec::new();
    let mut held = Vec::new();
    for (k, &t) in plan.looks.iter().enumerate() {
        let target = (t * planned).ceil() as u64;
        if report.events < target {
            break;
        }
        // The first day on which the data as of that day hold the look's events.
        let Some(lo) = first_day_with(target) else {
            break;
        };
        let rows = rows_at(lo);
        let events = events_in(&rows);
        let estimate = log_hazard_ratio(&rows, experimental, reference);
        kept.looks.push((lo, rows));
        let Some((log_hr, se)) = estimate else {
            report.note = Some(format!("look {} is not estimable yet", k + 1));
            break;
        };
        let fraction = (events as f64 / planned).min(1.0);
        if observations
            .last()
            .is_some_and(|o: &Observation| fraction <= o.information_fraction)
        {
            continue;
        }
        observations.push(Observation {
            information_fraction: fraction,
            z: -log_hr / se,
            estimate: Some(-log_hr),
            standard_error: Some(se),
        });
        held.push((k + 1, t, lo, events, log_hr));
        if fraction >= 1.0 {
            break;
        }
    }
    match design::monitor(&design, &observations) {
        Ok(monitored) => {
            report.looks = monitored
                .into_iter()
                .zip(held)
                .map(
                    |(m, (look, planned_fraction, day, events, log_hr))| LookReport {
                        look,
                        planned_fraction,
                        cutoff: day,
                        events,
                        information_fraction: m.information_fraction,
                        z: m.z,
                        hazard_ratio: log_hr.exp(),
                        upper_z: m.upper_z,
                        lower_z: m.lower_z,
                        nominal_alpha: m.nominal_alpha,
                        cumulative_alpha: m.cumulative_alpha,
                        crossed: m.crossed,
                        crossing: m.crossing,
                        conditional_power_design: m.conditional_power_design,
                        conditional_power_trend: m.conditional_power_trend,
                        // The CI is on the benefit scale −log HR: map it back to the HR.
                        repeated_ci_hr: m.repeated_ci.map(|[lo, hi]| [(-hi).exp(), (-lo).exp()]),
                    },
                )
                .collect();
        }
        Err(e) if !observations.is_empty() => {
            report.note = Some(format!("the looks cannot be monitored: {e}"));
        }
        Err(_) => {}
    }
    (report, kept)
}

/// Cox log hazard ratio of the experimental arm against the reference arm, with its standard
/// error.
fn log_hazard_ratio(
    rows: &[EndpointRow],
    experimental: &str,
    reference: &str,
) -> Option<(f64, f64)> {
    let data = endpoints::SurvivalData::from_rows(rows, &[experimental, reference]);
    let arm: Vec<f64> = data
        .group
        .iter()
        .map(|&g| f64::from(u8::from(g == 0)))
        .collect();
    look_log_hazard_ratio(&data.time, &data.event, &arm)
}

/// The statistic of a look: the Cox log hazard ratio of `experimental` (1 = experimental arm,
/// 0 = reference arm) and its standard error, when estimable. The live interim report and the
/// design simulator both call this.
pub fn look_log_hazard_ratio(
    time: &[f64],
    event: &[bool],
    experimental: &[f64],
) -> Option<(f64, f64)> {
    let fit = stats::cox::cox_ph(
        &stats::cox::CoxData {
            time,
            event,
            covariates: vec![stats::cox::Covariate {
                name: "arm",
                values: experimental,
            }],
            strata: None,
        },
        &stats::cox::CoxOptions::default(),
    )
    .ok()?;
    let c = fit.coefficients.first()?;
    Some((c.coef?, c.se?)).filter(|(b, se)| b.is_finite() && se.is_finite() && *se > 0.0)
}
