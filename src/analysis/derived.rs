//! Each endpoint's rows for every subject as of a cut-off: derived whole, or again after a
//! write. A subject's row depends only on the protocol's follow-up rules and endpoint, the
//! cut-off, the subject as the derivation sees it ([`Subject`]: record, arm, randomisation day,
//! end of data collection) and the subject's own events. So when those are unchanged since an
//! earlier derivation at the same cut-off, its row is that derivation's row, and only the
//! subjects that changed are derived again.

use std::collections::{HashMap, HashSet};

use super::TrialData;
use crate::endpoints::{self, DataCutoff, EndpointRow, Subject};
use crate::protocol::{Endpoint, FollowUp};

/// Each endpoint of the protocol with its per-subject rows as of `cutoff` (the endpoints side
/// by side on the available cores).
pub fn derive_endpoints(
    data: &TrialData,
    cutoff: DataCutoff,
) -> Vec<(&Endpoint, Vec<EndpointRow>)> {
    use rayon::prelude::*;
    let subjects = data.subjects();
    let events = endpoints::EventsBySubject::new(&data.events);
    data.protocol
        .endpoints
        .par_iter()
        .map(|e| {
            (
                e,
                endpoints::derive_grouped(&data.protocol.follow_up, e, &subjects, &events, cutoff),
            )
        })
        .collect()
}

/// Rows derived earlier from the same trial, and the subjects whose events have been added
/// since (the caller knows them from the rows written since; events are never changed in
/// place without the trial being read afresh).
pub struct EarlierRows<'a> {
    pub cutoff: DataCutoff,
    /// The follow-up rules and endpoints the rows were derived under.
    pub follow_up: &'a FollowUp,
    pub endpoints: &'a [Endpoint],
    /// Each endpoint's rows, in the order of `endpoints`.
    pub rows: &'a [Vec<EndpointRow>],
    /// Pseudonymous subject ids with events added since the rows were derived.
    pub events_added_for: &'a HashSet<String>,
    /// What the interim looks of the same preparation kept, if it is known.
    pub looks: Option<&'a super::interim::KeptLooks>,
}

impl EarlierRows<'_> {
    /// Whether these rows were derived under the rules `data` and `cutoff` derive under.
    fn apply_to(&self, data: &TrialData, cutoff: DataCutoff) -> bool {
        self.cutoff == cutoff
            && *self.follow_up == data.protocol.follow_up
            && self.endpoints == data.protocol.endpoints.as_slice()
            && self.rows.len() == self.endpoints.len()
            // Every endpoint has a row per subject, the same subjects in the same order.
            && self.rows.iter().all(|r| r.len() == self.rows[0].len())
    }
}

/// [`derive_endpoints`], taking each unchanged subject's rows from `earlier` and deriving only
/// the others: new subjects, subjects whose [`Subject`] differs (a withdrawal, say) and
/// subjects with events added since. Equal to [`derive_endpoints`] on `data`; when `earlier`
/// was derived under other rules or another cut-off, that is what it runs.
pub fn derive_endpoints_after<'p>(
    data: &'p TrialData,
    cutoff: DataCutoff,
    earlier: &EarlierRows<'_>,
) -> Vec<(&'p Endpoint, Vec<EndpointRow>)> {
    use rayon::prelude::*;
    if !earlier.apply_to(data, cutoff) {
        return derive_endpoints(data, cutoff);
    }
    let first = earlier.rows.first().map_or(&[][..], Vec::as_slice);
    let index: HashMap<&str, usize> = first
        .iter()
        .enumerate()
        .map(|(k, r)| (&*r.subject.record_id, k))
        .collect();
    // As `derive_grouped` takes them: the subjects randomised by the cut-off, in order.
    let subjects: Vec<Subject> = data
        .subjects()
        .into_iter()
        .filter(|s| s.randomised_on <= cutoff.0)
        .collect();
    // For each subject, the index of its earlier row if it can be taken as it is.
    let plan: Vec<Option<usize>> = subjects
        .iter()
        .map(|s| {
            index.get(&*s.record_id).copied().filter(|&k| {
                first[k].subject == *s && !earlier.events_added_for.contains(&*s.subject)
            })
        })
        .collect();
    let again: Vec<Subject> = subjects
        .iter()
        .zip(&plan)
        .filter(|(_, p)| p.is_none())
        .map(|(s, _)| s.clone())
        .collect();
    let theirs: HashSet<&str> = again.iter().map(|s| &*s.subject).collect();
    let events = endpoints::EventsBySubject::of(
        data.events
            .iter()
            .filter(|e| theirs.contains(e.event.subject.as_str())),
    );
    data.protocol
        .endpoints
        .par_iter()
        .zip(earlier.rows)
        .map(|(e, before)| {
            let mut fresh =
                endpoints::derive_grouped(&data.protocol.follow_up, e, &again, &events, cutoff)
                    .into_iter();
            let rows = plan
                .iter()
                .filter_map(|p| match p {
                    Some(k) => before.get(*k).cloned(),
                    None => fresh.next(),
                })
                .collect();
            (e, rows)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::participation::Withdrawal;
    use crate::endpoints::{Event, ReceivedEvent, WithdrawalScope};
    use crate::randomise::{AllocationRecord, Draw, Timestamp};
    use chrono::NaiveDate;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const TASTE: &str = include_str!("../../protocols/taste.toml");
    /// TASTE's event types, each from a source TASTE declares for it (and one it does not).
    const TYPES: [(&str, &str); 6] = [
        ("death", "population_register"),
        ("mi", "swedeheart"),
        ("mi", "patient_register"),
        ("emigration", "population_register"),
        ("stroke", "patient_register"),
        ("mi", "population_register"),
    ];

    fn day(d: u64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Days::new(d)
    }

    fn allocation(i: usize, on: u64) -> AllocationRecord {
        AllocationRecord {
            trial_id: "taste".into(),
            randomisation_number: i as i64 + 1,
            record_id: format!("r{i}"),
            subject: format!("s{i}"),
            site_code: "UPP".into(),
            arm: ["aspiration", "pci"][i % 2].into(),
            stratum: "UPP|F".into(),
            block_number: 0,
            block_size: 0,
            block_position: 0,
            protocol_version: "1.0".into(),
            request_sha256: String::new(),
            allocated_at: Timestamp::parse(&format!("{}T12:00:00Z", day(on))).unwrap(),
            detail: None,
            eligible_arms: None,
            cluster: None,
            draw: Draw::Slot,
        }
    }

    /// A few events of subject `i` (randomised on day `on`), some before randomisation, some
    /// received late, now and then one id delivered twice.
    fn events_of(rng: &mut ChaCha8Rng, i: usize, on: u64, tag: &str) -> Vec<ReceivedEvent> {
        let mut out: Vec<ReceivedEvent> = (0..rng.random_range(0..5))
            .map(|k| {
                let (kind, source) = TYPES[rng.random_range(0..TYPES.len())];
                let date = on + rng.random_range(0..300) - 20;
                ReceivedEvent {
                    event: Event {
                        event_id: format!("e{i}-{tag}{k}"),
                        subject: format!("s{i}"),
                        event_type: kind.into(),
                        date: day(date),
                        code: None,
                        value: None,
                        source: Some(source.into()),
                    },
                    received_on: day(date + rng.random_range(0..90)),
                }
            })
            .collect();
        if let Some(first) = out.first().filter(|_| rng.random_bool(0.1)) {
            out.push(first.clone());
        }
        out
    }

    /// A trial of 80 subjects as first read, and the data after a round of writes: 12 new
    /// subjects (with earlier events of their own), events added for existing subjects and
    /// three withdrawals. Gives the data before and after, and the subjects with events added.
    fn before_and_after(seed: u64) -> (TrialData, TrialData, HashSet<String>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let protocol = crate::protocol::parse(TASTE, "taste.toml").unwrap();
        let on = |i: usize| 30 + 3 * i as u64;
        let mut events = Vec::new();
        for i in 0..80 {
            events.extend(events_of(&mut rng, i, on(i), "a"));
        }
        let mut before = TrialData::of(protocol);
        before.add((0..80).map(|i| allocation(i, on(i))).collect(), events);
        let mut after = before.clone();
        let mut added = Vec::new();
        for _ in 0..10 {
            let i = rng.random_range(0..92);
            added.extend(events_of(&mut rng, i, on(i), "b"));
        }
        let subjects = added.iter().map(|e| e.event.subject.clone()).collect();
        after.add((80..92).map(|i| allocation(i, on(i))).collect(), added);
        for scope in [
            WithdrawalScope::NoFurtherDataCollection,
            WithdrawalScope::DataUseWithdrawn,
            WithdrawalScope::NoFurtherContact,
        ] {
            let record = format!("r{}", rng.random_range(0..80));
            after
                .participation
                .withdrawals
                .entry(record.clone())
                .or_default()
                .push(Withdrawal {
                    record_id: record,
                    scope,
                    withdrawn_on: day(200),
                    reason: None,
                    recorded_by: "test".into(),
                    recorded_at: "2024-07-19T00:00:00Z".into(),
                });
        }
        (before, after, subjects)
    }

    fn rows_of(derived: Vec<(&Endpoint, Vec<EndpointRow>)>) -> Vec<Vec<EndpointRow>> {
        derived.into_iter().map(|(_, rows)| rows).collect()
    }

    fn earlier<'a>(
        data: &'a TrialData,
        cutoff: DataCutoff,
        rows: &'a [Vec<EndpointRow>],
        events_added_for: &'a HashSet<String>,
    ) -> EarlierRows<'a> {
        EarlierRows {
            cutoff,
            follow_up: &data.protocol.follow_up,
            endpoints: &data.protocol.endpoints,
            rows,
            events_added_for,
            looks: None,
        }
    }

    /// After writes of every kind the held data take, the rows taken again and derived again
    /// equal a whole derivation, at cut-offs inside and after the period written to; and the
    /// subjects with events added are what makes them so (taken as they were, the earlier
    /// rows would be wrong for some of these trials).
    #[test]
    fn rows_taken_again_equal_a_whole_derivation() {
        let none = HashSet::new();
        let mut stale = 0;
        for seed in 0..60 {
            let (before, after, added) = before_and_after(seed);
            for cutoff in [DataCutoff(day(250)), DataCutoff(day(500))] {
                let rows = rows_of(derive_endpoints(&before, cutoff));
                let whole = rows_of(derive_endpoints(&after, cutoff));
                let again = rows_of(derive_endpoints_after(
                    &after,
                    cutoff,
                    &earlier(&before, cutoff, &rows, &added),
                ));
                assert_eq!(again, whole, "seed {seed}, cut-off {}", cutoff.0);
                let unaware = rows_of(derive_endpoints_after(
                    &after,
                    cutoff,
                    &earlier(&before, cutoff, &rows, &none),
                ));
                stale += usize::from(unaware != whole);
            }
        }
        assert!(
            stale > 60,
            "only {stale} of 120 derivations saw added events"
        );
    }

    /// Rows derived at another cut-off, or under other rules, are not taken.
    #[test]
    fn rows_of_another_cutoff_or_other_rules_are_not_taken() {
        let (before, after, added) = before_and_after(7);
        let at = DataCutoff(day(500));
        let other_day = rows_of(derive_endpoints(&before, DataCutoff(day(250))));
        assert_eq!(
            rows_of(derive_endpoints_after(
                &after,
                at,
                &earlier(&before, DataCutoff(day(250)), &other_day, &added)
            )),
            rows_of(derive_endpoints(&after, at))
        );
        let mut amended = before.clone();
        amended.protocol.follow_up.censor_on.clear();
        let other_rules = rows_of(derive_endpoints(&amended, at));
        assert_ne!(other_rules, rows_of(derive_endpoints(&before, at)));
        assert_eq!(
            rows_of(derive_endpoints_after(
                &after,
                at,
                &earlier(&amended, at, &other_rules, &added)
            )),
            rows_of(derive_endpoints(&after, at))
        );
    }

    /// TASTE's data of [`before_and_after`] with few enough planned events for its looks to be
    /// reached by 80 subjects.
    fn with_looks_reached(mut data: TrialData) -> TrialData {
        let toml = TASTE.replace("planned_events = 400", "planned_events = 12");
        data.protocol = crate::protocol::parse(&toml, "taste.toml").unwrap();
        data
    }

    /// After writes of every kind, the interim report that takes the unchanged subjects' part
    /// of the looks from an earlier report equals the report made whole: at cut-offs inside
    /// and after the period written to, with looks reached on the same day as before and on
    /// other days. The subjects with events added are what makes it so.
    #[test]
    fn looks_taken_again_equal_a_whole_report() {
        use crate::analysis::interim::{interim, interim_after, EarlierLooks};
        let none = HashSet::new();
        let (mut stale, mut looks_taken) = (0, 0);
        for seed in 0..60 {
            let (before, after, added) = before_and_after(seed);
            let (before, after) = (with_looks_reached(before), with_looks_reached(after));
            for cutoff in [DataCutoff(day(250)), DataCutoff(day(500))] {
                let (first, kept) = interim_after(&before, cutoff, None);
                let whole = format!("{:?}", interim(&after, cutoff));
                let earlier = |events_added_for| EarlierLooks {
                    kept: &kept,
                    events_added_for,
                };
                let (again, _) = interim_after(&after, cutoff, Some(earlier(&added)));
                assert_eq!(
                    format!("{again:?}"),
                    whole,
                    "seed {seed}, cut-off {}",
                    cutoff.0
                );
                let (unaware, _) = interim_after(&after, cutoff, Some(earlier(&none)));
                stale += usize::from(format!("{unaware:?}") != whole);
                // Looks held on the same day before and after the writes: their rows were
                // taken from the earlier report.
                let days = |r: &Option<crate::analysis::interim::InterimReport>| -> Vec<NaiveDate> {
                    r.iter()
                        .flat_map(|r| &r.comparisons)
                        .flat_map(|c| c.looks.iter().map(|l| l.cutoff))
                        .collect()
                };
                looks_taken += days(&again)
                    .iter()
                    .filter(|d| days(&first).contains(d))
                    .count();
            }
        }
        assert!(stale > 30, "only {stale} of 120 reports saw added events");
        assert!(
            looks_taken > 30,
            "only {looks_taken} looks were held on the same day"
        );
    }

    /// Looks kept at another cut-off, or under other rules, are not taken.
    #[test]
    fn looks_of_another_cutoff_or_other_rules_are_not_taken() {
        use crate::analysis::interim::{interim, interim_after, EarlierLooks};
        let (before, after, added) = before_and_after(7);
        let (before, after) = (with_looks_reached(before), with_looks_reached(after));
        let at = DataCutoff(day(500));
        let whole = format!("{:?}", interim(&after, at));
        let (_, other_day) = interim_after(&before, DataCutoff(day(250)), None);
        let taken = |kept| {
            let earlier = EarlierLooks {
                kept,
                events_added_for: &added,
            };
            format!("{:?}", interim_after(&after, at, Some(earlier)).0)
        };
        assert_eq!(taken(&other_day), whole);
        let mut amended = before.clone();
        amended.protocol.follow_up.censor_on.clear();
        let (other, other_rules) = interim_after(&amended, at, None);
        assert_ne!(format!("{other:?}"), format!("{:?}", interim(&before, at)));
        assert_eq!(taken(&other_rules), whole);
    }
}
