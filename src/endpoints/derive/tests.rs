//! Hand-computed rows for every endpoint kind and the edge cases of follow-up.

use super::*;
use crate::protocol::DayWindow;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn subject(id: &str, randomised_on: &str) -> Subject {
    Subject {
        record_id: format!("R-{id}").into(),
        subject: id.into(),
        site: "UPP".into(),
        arm: "pci".into(),
        stratum: "site=UPP;sex=F".into(),
        randomised_on: d(randomised_on),
        data_collection_ends: None,
    }
}

fn ev(id: &str, subject: &str, kind: &str, date: &str, received: &str) -> ReceivedEvent {
    ReceivedEvent {
        event: Event {
            event_id: id.into(),
            subject: subject.into(),
            event_type: kind.into(),
            date: d(date),
            code: None,
            value: None,
            source: None,
        },
        received_on: d(received),
    }
}

fn selector(types: &[&str]) -> EventSelector {
    EventSelector {
        types: types.iter().map(|s| s.to_string()).collect(),
        codes: vec![],
    }
}

fn tte(types: &[&str], horizon: Option<u32>) -> Endpoint {
    Endpoint {
        id: "tte".into(),
        label: None,
        primary: true,
        kind: EndpointKind::TimeToEvent {
            events: selector(types),
            horizon_days: horizon,
        },
        competing: Vec::new(),
    }
}

fn binary(types: &[&str], horizon: u32) -> Endpoint {
    Endpoint {
        id: "bin".into(),
        label: None,
        primary: false,
        kind: EndpointKind::Binary {
            events: selector(types),
            horizon_days: horizon,
        },
        competing: Vec::new(),
    }
}

fn follow_up(lag: u32) -> FollowUp {
    FollowUp {
        censor_on: vec!["emigration".into()],
        reporting_lag_days: lag,
        ..FollowUp::default()
    }
}

const CUTOFF: &str = "2024-12-31";

fn one(
    endpoint: &Endpoint,
    lag: u32,
    s: Subject,
    events: &[ReceivedEvent],
) -> (Outcome, Option<CensorReason>) {
    let rows = derive(
        &follow_up(lag),
        endpoint,
        &[s],
        events,
        DataCutoff(d(CUTOFF)),
    );
    assert_eq!(rows.len(), 1);
    (rows[0].outcome.clone(), rows[0].censor_reason.clone())
}

fn tte_outcome(time_days: i64, event: bool) -> Outcome {
    Outcome::TimeToEvent { time_days, event }
}

#[test]
fn event_on_the_randomisation_day_counts_at_day_zero() {
    let got = one(
        &tte(&["death"], Some(365)),
        0,
        subject("A", "2024-03-01"),
        &[ev("e1", "A", "death", "2024-03-01", "2024-03-02")],
    );
    assert_eq!(got, (tte_outcome(0, true), None));
}

#[test]
fn event_before_randomisation_is_history_not_outcome() {
    let got = one(
        &tte(&["mi"], Some(365)),
        0,
        subject("A", "2023-03-01"),
        &[ev("e1", "A", "mi", "2023-02-28", "2023-02-28")],
    );
    // Followed from 2023-03-01 to the horizon (365 days) without an MI after randomisation.
    assert_eq!(got, (tte_outcome(365, false), Some(CensorReason::Horizon)));
}

#[test]
fn withdrawal_from_data_collection_censors_at_its_date() {
    // Randomised 2024-01-01, data collection stopped 2024-01-21 (day 20): a death on day 50 is
    // not used; the subject is censored at day 20 for the reason `withdrawal`.
    let withdrawn = |on: &str| Subject {
        data_collection_ends: Some(d(on)),
        ..subject("W", "2024-01-01")
    };
    let death = ev("e1", "W", "death", "2024-02-20", "2024-02-21");
    let got = one(
        &tte(&["death"], Some(365)),
        0,
        withdrawn("2024-01-21"),
        std::slice::from_ref(&death),
    );
    assert_eq!(
        got,
        (tte_outcome(20, false), Some(CensorReason::Withdrawal))
    );
    assert_eq!(CensorReason::Withdrawal.as_text(), "withdrawal");
    // An event on the withdrawal day still counts (followed that day).
    let got = one(
        &tte(&["death"], Some(365)),
        0,
        withdrawn("2024-02-20"),
        std::slice::from_ref(&death),
    );
    assert_eq!(got, (tte_outcome(50, true), None));
    // An earlier censoring event ends follow-up first.
    let got = one(
        &tte(&["death"], Some(365)),
        0,
        withdrawn("2024-01-21"),
        &[ev("x", "W", "emigration", "2024-01-11", "2024-01-12")],
    );
    assert_eq!(
        got,
        (
            tte_outcome(10, false),
            Some(CensorReason::Event("emigration".into()))
        )
    );
    // A withdrawal after the administrative end changes nothing; a binary endpoint whose horizon
    // the withdrawal cuts short is incomplete.
    let got = one(&tte(&["death"], None), 0, withdrawn("2025-06-01"), &[]);
    assert_eq!(got.1, Some(CensorReason::Administrative));
    let got = one(&binary(&["death"], 30), 0, withdrawn("2024-01-21"), &[]);
    assert_eq!(
        got,
        (
            Outcome::Binary {
                time_days: 20,
                event: None
            },
            Some(CensorReason::Withdrawal)
        )
    );
}

#[test]
fn administrative_censoring_at_cutoff_minus_lag() {
    // Randomised 2024-10-01; cut-off 2024-12-31 with a 14-day lag ⇒ followed to 2024-12-17.
    let got = one(
        &tte(&["death"], Some(365)),
        14,
        subject("A", "2024-10-01"),
        &[],
    );
    assert_eq!(
        got,
        (tte_outcome(77, false), Some(CensorReason::Administrative))
    );
    // An event dated inside the lag period is beyond follow-up, even if already received.
    let got = one(
        &tte(&["death"], Some(365)),
        14,
        subject("A", "2024-10-01"),
        &[ev("e1", "A", "death", "2024-12-20", "2024-12-21")],
    );
    assert_eq!(
        got,
        (tte_outcome(77, false), Some(CensorReason::Administrative))
    );
}

#[test]
fn event_received_after_the_cutoff_is_not_yet_known() {
    let events = [ev("e1", "A", "death", "2024-12-01", "2025-01-05")];
    let got = one(
        &tte(&["death"], None),
        0,
        subject("A", "2024-11-01"),
        &events,
    );
    assert_eq!(
        got,
        (tte_outcome(60, false), Some(CensorReason::Administrative))
    );
    // As of a later cut-off it is known: the same inputs give the new answer.
    let rows = derive(
        &follow_up(0),
        &tte(&["death"], None),
        &[subject("A", "2024-11-01")],
        &events,
        DataCutoff(d("2025-01-31")),
    );
    assert_eq!(rows[0].outcome, tte_outcome(30, true));
}

#[test]
fn event_dated_after_the_cutoff_does_not_count() {
    let got = one(
        &tte(&["death"], None),
        0,
        subject("A", "2024-12-01"),
        &[ev("e1", "A", "death", "2025-01-02", "2024-12-31")],
    );
    assert_eq!(
        got,
        (tte_outcome(30, false), Some(CensorReason::Administrative))
    );
}

#[test]
fn censoring_event_ends_follow_up_but_same_day_outcome_counts() {
    let s = subject("A", "2024-01-01");
    let got = one(
        &tte(&["death"], Some(365)),
        0,
        s.clone(),
        &[
            ev("x", "A", "emigration", "2024-02-10", "2024-02-11"),
            ev("e", "A", "death", "2024-05-01", "2024-05-02"),
        ],
    );
    assert_eq!(
        got,
        (
            tte_outcome(40, false),
            Some(CensorReason::Event("emigration".into()))
        )
    );
    let got = one(
        &tte(&["death"], Some(365)),
        0,
        s,
        &[
            ev("x", "A", "emigration", "2024-02-10", "2024-02-11"),
            ev("e", "A", "death", "2024-02-10", "2024-02-12"),
        ],
    );
    assert_eq!(got, (tte_outcome(40, true), None));
}

#[test]
fn event_after_the_horizon_is_censored_at_the_horizon() {
    let got = one(
        &tte(&["death"], Some(30)),
        0,
        subject("A", "2024-01-01"),
        &[ev("e", "A", "death", "2024-03-01", "2024-03-01")],
    );
    assert_eq!(got, (tte_outcome(30, false), Some(CensorReason::Horizon)));
    let got = one(
        &tte(&["death"], Some(30)),
        0,
        subject("A", "2024-01-01"),
        &[ev("e", "A", "death", "2024-01-31", "2024-03-01")],
    );
    assert_eq!(
        got,
        (tte_outcome(30, true), None),
        "day 30 is inside a 30-day horizon"
    );
}

#[test]
fn two_records_of_the_same_event_first_one_counts_duplicates_ignored() {
    let events = [
        ev("pop-1", "A", "death", "2024-04-03", "2024-04-05"),
        ev("cod-7", "A", "death", "2024-04-02", "2024-06-01"),
        ev("cod-7", "A", "death", "2024-04-02", "2024-06-01"),
    ];
    let got = one(
        &tte(&["death"], Some(365)),
        0,
        subject("A", "2024-04-01"),
        &events,
    );
    assert_eq!(got, (tte_outcome(1, true), None));
    let count = Endpoint {
        id: "n".into(),
        label: None,
        primary: false,
        kind: EndpointKind::Count {
            events: selector(&["death"]),
            window: DayWindow {
                from_day: 0,
                to_day: 30,
            },
        },
        competing: Vec::new(),
    };
    let got = one(&count, 0, subject("A", "2024-04-01"), &events);
    assert_eq!(
        got,
        (
            Outcome::Count {
                time_days: 30,
                count: 2,
                complete: true
            },
            None
        )
    );
}

#[test]
fn composite_with_simultaneous_events_is_one_event_that_day() {
    let events = [
        ev("m", "A", "mi", "2024-02-01", "2024-02-02"),
        ev("d", "A", "death", "2024-02-01", "2024-02-03"),
        ev("m2", "A", "mi", "2024-03-01", "2024-03-02"),
    ];
    let got = one(
        &tte(&["death", "mi"], Some(365)),
        0,
        subject("A", "2024-01-01"),
        &events,
    );
    assert_eq!(got, (tte_outcome(31, true), None));
}

#[test]
fn binary_incomplete_is_not_a_survivor() {
    let e = binary(&["death"], 30);
    // Randomised 10 days before the cut-off, no event: incomplete.
    let got = one(&e, 0, subject("A", "2024-12-21"), &[]);
    assert_eq!(
        got,
        (
            Outcome::Binary {
                time_days: 10,
                event: None
            },
            Some(CensorReason::Administrative)
        )
    );
    // Followed for the whole 30 days: a survivor.
    let got = one(&e, 0, subject("A", "2024-11-01"), &[]);
    assert_eq!(
        got,
        (
            Outcome::Binary {
                time_days: 30,
                event: Some(false)
            },
            None
        )
    );
    // Died on day 3, even though the horizon is not over yet.
    let got = one(
        &e,
        0,
        subject("A", "2024-12-21"),
        &[ev("e", "A", "death", "2024-12-24", "2024-12-25")],
    );
    assert_eq!(
        got,
        (
            Outcome::Binary {
                time_days: 3,
                event: Some(true)
            },
            None
        )
    );
    // Emigrated on day 12: incomplete, with the reason.
    let got = one(
        &e,
        0,
        subject("A", "2024-06-01"),
        &[ev("x", "A", "emigration", "2024-06-13", "2024-06-20")],
    );
    assert_eq!(
        got,
        (
            Outcome::Binary {
                time_days: 12,
                event: None
            },
            Some(CensorReason::Event("emigration".into()))
        )
    );
}

#[test]
fn codes_filter_by_prefix() {
    let mut e = tte(&["hospitalisation"], None);
    if let EndpointKind::TimeToEvent { events, .. } = &mut e.kind {
        events.codes = vec!["I50".into()];
    }
    let mut other = ev("h1", "A", "hospitalisation", "2024-02-01", "2024-02-02");
    other.event.code = Some("J18.9".into());
    let mut hf = ev("h2", "A", "hospitalisation", "2024-03-01", "2024-03-02");
    hf.event.code = Some("I50.1".into());
    let got = one(&e, 0, subject("A", "2024-01-01"), &[other, hf]);
    assert_eq!(got, (tte_outcome(60, true), None));
}

#[test]
fn continuous_takes_the_value_closest_to_target_then_earliest() {
    let e = Endpoint {
        id: "ldl".into(),
        label: None,
        primary: false,
        kind: EndpointKind::Continuous {
            events: selector(&["ldl"]),
            window: DayWindow {
                from_day: 330,
                to_day: 400,
            },
            target_day: 365,
        },
        competing: Vec::new(),
    };
    let val = |id: &str, date: &str, v: f64| {
        let mut x = ev(id, "A", "ldl", date, date);
        x.event.value = Some(v);
        x
    };
    // Days 360 and 370 are equally close to 365: the earlier wins.
    let events = [
        val("a", "2023-12-28", 2.9),
        val("b", "2024-01-07", 3.1),
        val("c", "2023-01-02", 5.0),
    ];
    let got = one(&e, 0, subject("A", "2023-01-02"), &events);
    assert_eq!(
        got,
        (
            Outcome::Continuous {
                time_days: Some(360),
                value: Some(2.9)
            },
            None
        )
    );
    let got = one(&e, 0, subject("A", "2023-01-02"), &[]);
    assert_eq!(
        got,
        (
            Outcome::Continuous {
                time_days: None,
                value: None
            },
            Some(CensorReason::Missing)
        )
    );
}

#[test]
fn subjects_randomised_after_the_cutoff_are_left_out_and_order_is_kept() {
    let subjects = [
        subject("B", "2024-05-01"),
        subject("C", "2025-01-01"),
        subject("A", "2024-02-01"),
    ];
    let rows = derive(
        &follow_up(0),
        &tte(&["death"], None),
        &subjects,
        &[],
        DataCutoff(d(CUTOFF)),
    );
    let ids: Vec<&str> = rows.iter().map(|r| &*r.subject.subject).collect();
    assert_eq!(ids, ["B", "A"]);
}

#[test]
fn same_inputs_same_rows_whatever_the_event_order() {
    let subjects = [subject("A", "2024-01-01"), subject("B", "2024-01-05")];
    let mut events = vec![
        ev("1", "A", "mi", "2024-03-01", "2024-03-02"),
        ev("2", "B", "death", "2024-02-01", "2024-02-02"),
        ev("3", "A", "death", "2024-03-01", "2024-03-02"),
        ev("4", "B", "emigration", "2024-01-20", "2024-01-21"),
    ];
    let e = tte(&["death", "mi"], Some(365));
    let first = derive(&follow_up(0), &e, &subjects, &events, DataCutoff(d(CUTOFF)));
    events.reverse();
    let second = derive(&follow_up(0), &e, &subjects, &events, DataCutoff(d(CUTOFF)));
    assert_eq!(first, second);
    assert_eq!(first[1].outcome, tte_outcome(15, false));
}

#[test]
fn counting_events_agrees_with_the_derived_rows_at_every_cutoff() {
    let subjects = [
        subject("a", "2024-01-01"),
        subject("b", "2024-01-10"),
        subject("c", "2024-02-01"),
        subject("d", "2024-03-01"),
    ];
    let events = [
        ev("1", "a", "death", "2024-01-20", "2024-02-15"),
        // Emigrated before dying: censored, the death does not count.
        ev("2", "b", "emigration", "2024-01-15", "2024-03-20"),
        ev("3", "b", "death", "2024-02-01", "2024-02-05"),
        // After the horizon.
        ev("4", "c", "death", "2024-04-15", "2024-04-16"),
        ev("5", "d", "mi", "2024-03-05", "2024-03-06"),
        ev("5", "d", "mi", "2024-03-05", "2024-03-09"),
        ev("6", "d", "death", "2024-03-07", "2024-03-07"),
    ];
    let grouped = EventsBySubject::new(&events);
    let mut seen = 0;
    let mut removals = 0;
    for endpoint in [tte(&["death"], Some(30)), tte(&["death", "mi"], None)] {
        for lag in [0, 3] {
            // The change days, swept, give the count on every day, also when a late censoring
            // event takes a counted event away again (subject b).
            let mut changes = event_count_changes(
                &follow_up(lag),
                &endpoint,
                &subjects,
                &grouped,
                DataCutoff(d("2024-05-01")),
            );
            changes.sort_unstable();
            removals += changes.iter().filter(|c| c.1 == -1).count();
            let mut day = d("2024-01-01");
            while day <= d("2024-05-01") {
                let swept: i64 = changes.iter().filter(|c| c.0 <= day).map(|c| c.1).sum();
                let cutoff = DataCutoff(day);
                let rows = derive(&follow_up(lag), &endpoint, &subjects, &events, cutoff);
                let expected = rows
                    .iter()
                    .filter(|r| matches!(r.outcome, Outcome::TimeToEvent { event: true, .. }))
                    .count() as u64;
                let counted = count_events(&follow_up(lag), &endpoint, &subjects, &grouped, cutoff);
                assert_eq!(counted, expected, "{} lag {lag} at {day}", endpoint.id);
                assert_eq!(swept, expected as i64, "{} lag {lag} at {day}", endpoint.id);
                seen += expected;
                day = day + chrono::Days::new(1);
            }
        }
    }
    assert!(seen > 0, "the fixture has events that count");
    assert!(
        removals > 0,
        "the fixture has an event a late censoring takes away"
    );
}

// --- Sources: each register's own lag, and precedence ---------------------------------------

fn source(id: &str, delivers: &[&str], lag: u32) -> crate::protocol::Source {
    crate::protocol::Source {
        id: id.into(),
        label: id.into(),
        delivers: delivers.iter().map(|t| t.to_string()).collect(),
        reporting_lag_days: lag,
        expected_every_days: 30,
        provenance: None,
    }
}

/// The quality register reports infarctions within 2 days; the cause-of-death register reports
/// deaths after 60 days; the population register reports emigration after 30 days and deaths
/// too, with the cause-of-death register taking precedence for deaths.
fn registers() -> FollowUp {
    FollowUp {
        censor_on: vec!["emigration".into()],
        reporting_lag_days: 0,
        sources: vec![
            source("swedeheart", &["mi"], 2),
            source("cause_of_death", &["death"], 60),
            source("population", &["emigration", "death"], 30),
        ],
        precedence: vec![crate::protocol::Precedence {
            event_type: "death".into(),
            sources: vec!["cause_of_death".into(), "population".into()],
        }],
    }
}

fn from(mut e: ReceivedEvent, source: &str) -> ReceivedEvent {
    e.event.source = Some(source.into());
    e
}

fn by_registers(endpoint: &Endpoint, s: Subject, events: &[ReceivedEvent]) -> EndpointRow {
    let rows = derive(&registers(), endpoint, &[s], events, DataCutoff(d(CUTOFF)));
    assert_eq!(rows.len(), 1);
    rows[0].clone()
}

#[test]
fn each_endpoint_is_complete_through_its_own_sources_lag() {
    let f = registers();
    let cutoff = DataCutoff(d(CUTOFF));
    // Cut-off 2024-12-31: deaths complete through 2024-11-01 (60 days), infarctions through
    // 2024-12-29 (2 days), a composite of both only through the slower, 2024-11-01.
    assert_eq!(
        complete_through(&f, &tte(&["death"], None), cutoff),
        d("2024-11-01")
    );
    assert_eq!(
        complete_through(&f, &tte(&["mi"], None), cutoff),
        d("2024-12-29")
    );
    assert_eq!(
        complete_through(&f, &tte(&["mi", "death"], None), cutoff),
        d("2024-11-01")
    );
    // A type no source delivers (none here) would take the follow-up default.
    assert_eq!(f.lag_of_type("stroke"), 0);
}

#[test]
fn a_slow_sources_outcome_beyond_its_complete_through_date_does_not_count() {
    // Randomised 2024-10-01. A death on 2024-11-20 (after the cause-of-death register's
    // complete-through date 2024-11-01) was received early, on 2024-11-25: it does not count;
    // follow-up ends at 2024-11-01, day 31.
    let row = by_registers(
        &tte(&["death"], Some(365)),
        subject("A", "2024-10-01"),
        &[from(
            ev("d1", "A", "death", "2024-11-20", "2024-11-25"),
            "cause_of_death",
        )],
    );
    assert_eq!(row.outcome, tte_outcome(31, false));
    assert_eq!(row.censor_reason, Some(CensorReason::Administrative));
    // The same death on 2024-10-20 (day 19) is within it and counts.
    let row = by_registers(
        &tte(&["death"], Some(365)),
        subject("A", "2024-10-01"),
        &[from(
            ev("d1", "A", "death", "2024-10-20", "2024-11-25"),
            "cause_of_death",
        )],
    );
    assert_eq!(row.outcome, tte_outcome(19, true));
}

#[test]
fn a_fast_sources_outcome_beyond_the_slow_sources_date_counts() {
    // An infarction on 2024-11-20 from the quality register (complete through 2024-12-29):
    // day 50, an event.
    let row = by_registers(
        &tte(&["mi"], Some(365)),
        subject("A", "2024-10-01"),
        &[from(
            ev("m1", "A", "mi", "2024-11-20", "2024-11-21"),
            "swedeheart",
        )],
    );
    assert_eq!(row.outcome, tte_outcome(50, true));
    // Without one, followed to 2024-12-29: day 89.
    let row = by_registers(&tte(&["mi"], Some(365)), subject("A", "2024-10-01"), &[]);
    assert_eq!(row.outcome, tte_outcome(89, false));
    // Death or MI: that infarction is after the composite's complete-through date (the
    // cause-of-death register's 2024-11-01), so it waits for the deaths of those days.
    let row = by_registers(
        &tte(&["death", "mi"], Some(365)),
        subject("A", "2024-10-01"),
        &[from(
            ev("m1", "A", "mi", "2024-11-20", "2024-11-21"),
            "swedeheart",
        )],
    );
    assert_eq!(row.outcome, tte_outcome(31, false));
}

#[test]
fn precedence_decides_when_two_sources_report_one_death() {
    let endpoint = tte(&["death"], Some(365));
    // The population register reported the death on 2024-10-10 (day 9) and the cause-of-death
    // register on 2024-10-12 (day 11): the cause-of-death register's date counts.
    let both = [
        from(
            ev("p1", "A", "death", "2024-10-10", "2024-10-15"),
            "population",
        ),
        from(
            ev("c1", "A", "death", "2024-10-12", "2024-12-01"),
            "cause_of_death",
        ),
    ];
    let row = by_registers(&endpoint, subject("A", "2024-10-01"), &both);
    assert_eq!(row.outcome, tte_outcome(11, true));
    // As of 2024-12-20 (complete through 2024-10-21) both are known: day 11.
    let rows = derive(
        &registers(),
        &endpoint,
        &[subject("A", "2024-10-01")],
        &both,
        DataCutoff(d("2024-12-20")),
    );
    assert_eq!(rows[0].outcome, tte_outcome(11, true));
    let rows = derive(
        &registers(),
        &endpoint,
        &[subject("A", "2024-10-01")],
        &both,
        DataCutoff(d("2024-11-30")),
    );
    // As of 2024-11-30 (complete through 2024-10-01, day 0) neither date is within follow-up.
    assert_eq!(rows[0].outcome, tte_outcome(0, false));
    // Only the population register's report: it counts, day 9.
    let row = by_registers(&endpoint, subject("A", "2024-10-01"), &both[..1]);
    assert_eq!(row.outcome, tte_outcome(9, true));
    // Precedence is per type: an infarction from the quality register is untouched by it.
    let mut known = vec![
        KnownEvent::of(&both[0].event),
        KnownEvent::of(&both[1].event),
        KnownEvent {
            event_type: "mi",
            code: None,
            date: d("2024-10-05"),
            value: None,
            source: Some("swedeheart"),
            event_id: "m1",
        },
    ];
    apply_precedence(&registers(), d("2024-10-01"), &mut known);
    let kept: Vec<(&str, Option<&str>)> = known.iter().map(|e| (e.event_type, e.source)).collect();
    assert_eq!(
        kept,
        [
            ("death", Some("cause_of_death")),
            ("mi", Some("swedeheart"))
        ]
    );
}

#[test]
fn events_are_attributed_to_the_source_that_delivers_their_type() {
    use crate::protocol::SourceRefusal;
    let f = registers();
    assert_eq!(f.attribute("mi", None, None), Ok(Some("swedeheart".into())));
    assert_eq!(
        f.attribute("death", None, Some("population")),
        Ok(Some("population".into()))
    );
    assert!(matches!(
        f.attribute("death", None, None),
        Err(SourceRefusal::Ambiguous { .. })
    ));
    assert!(matches!(
        f.attribute("mi", None, Some("cause_of_death")),
        Err(SourceRefusal::NotDelivered { .. })
    ));
    assert!(matches!(
        f.attribute("mi", Some("swedeheart"), Some("population")),
        Err(SourceRefusal::OtherSource { .. })
    ));
    assert!(matches!(
        f.attribute("deth", None, None),
        Err(SourceRefusal::UnknownType(_))
    ));
    assert!(matches!(
        f.attribute("mi", Some("lab"), None),
        Err(SourceRefusal::UnknownSource(_))
    ));
}

#[test]
fn one_type_from_two_sources_counts_through_the_first_sources_date() {
    // Deaths: the cause-of-death register (60 days) takes precedence over the population
    // register (30 days), so deaths are complete through 2024-11-01 as of 2024-12-31, whichever
    // register reports them. A death on 2024-11-15 (after that date, within the population
    // register's 2024-12-01) reported by the population register does not count yet.
    let row = by_registers(
        &tte(&["death"], Some(365)),
        subject("A", "2024-10-01"),
        &[from(
            ev("p1", "A", "death", "2024-11-15", "2024-11-20"),
            "population",
        )],
    );
    assert_eq!(row.outcome, tte_outcome(31, false));
    // On 2024-10-25 (day 24) it does, by the population register until the other reports.
    let row = by_registers(
        &tte(&["death"], Some(365)),
        subject("A", "2024-10-01"),
        &[from(
            ev("p1", "A", "death", "2024-10-25", "2024-10-27"),
            "population",
        )],
    );
    assert_eq!(row.outcome, tte_outcome(24, true));
    assert_eq!(row.source.as_deref(), Some("population"));
    assert_eq!(row.source_event_id.as_deref(), Some("p1"));
}

#[test]
fn history_from_the_first_source_does_not_hide_the_others_follow_up() {
    // A death cannot be history, so take infarctions: the patient register (complete, first)
    // and the quality register. A quality-register infarction from 2020 must not hide the
    // patient register's... and the other way round: the patient register's history must not
    // hide the quality register's infarction after randomisation.
    let f = FollowUp {
        sources: vec![source("patient", &["mi"], 0), source("quality", &["mi"], 0)],
        precedence: vec![crate::protocol::Precedence {
            event_type: "mi".into(),
            sources: vec!["patient".into(), "quality".into()],
        }],
        ..FollowUp::default()
    };
    let events = [
        from(ev("old", "A", "mi", "2020-05-01", "2024-10-02"), "patient"),
        from(ev("q1", "A", "mi", "2024-10-11", "2024-10-12"), "quality"),
    ];
    let rows = derive(
        &f,
        &tte(&["mi"], Some(365)),
        &[subject("A", "2024-10-01")],
        &events,
        DataCutoff(d(CUTOFF)),
    );
    assert_eq!(rows[0].outcome, tte_outcome(10, true));
    assert_eq!(rows[0].source.as_deref(), Some("quality"));
}

#[test]
fn an_event_under_a_source_not_delivering_its_type_here_is_ignored() {
    // Stored for another trial by a register this protocol does not read deaths from.
    let row = by_registers(
        &tte(&["death"], Some(365)),
        subject("A", "2024-10-01"),
        &[from(
            ev("x1", "A", "death", "2024-10-05", "2024-10-06"),
            "swedeheart",
        )],
    );
    assert_eq!(row.outcome, tte_outcome(31, false));
}

#[test]
fn counting_events_agrees_with_the_derived_rows_under_precedence() {
    // Subject a: the population register's death on day 9 is counted, then the cause-of-death
    // register's report dated day 200 replaces it (after the horizon of 100 days: no event).
    // Subject b: the cause-of-death register's death arrives first; a population report later
    // changes nothing. Subject c: only the population register reports.
    let subjects = [
        subject("a", "2024-01-01"),
        subject("b", "2024-01-01"),
        subject("c", "2024-01-01"),
    ];
    let events = [
        from(
            ev("p-a", "a", "death", "2024-01-10", "2024-01-12"),
            "population",
        ),
        from(
            ev("c-a", "a", "death", "2024-07-19", "2024-07-25"),
            "cause_of_death",
        ),
        from(
            ev("c-b", "b", "death", "2024-02-01", "2024-02-03"),
            "cause_of_death",
        ),
        from(
            ev("p-b", "b", "death", "2024-01-20", "2024-03-01"),
            "population",
        ),
        from(
            ev("p-c", "c", "death", "2024-03-01", "2024-03-02"),
            "population",
        ),
    ];
    let grouped = EventsBySubject::new(&events);
    let f = registers();
    let mut removals = 0;
    for endpoint in [tte(&["death"], Some(100)), tte(&["death"], None)] {
        let mut changes = event_count_changes(
            &f,
            &endpoint,
            &subjects,
            &grouped,
            DataCutoff(d("2024-12-31")),
        );
        changes.sort_unstable();
        removals += changes.iter().filter(|c| c.1 == -1).count();
        let mut day = d("2024-01-01");
        while day <= d("2024-12-31") {
            let swept: i64 = changes.iter().filter(|c| c.0 <= day).map(|c| c.1).sum();
            let cutoff = DataCutoff(day);
            let rows = derive(&f, &endpoint, &subjects, &events, cutoff);
            let expected = rows
                .iter()
                .filter(|r| matches!(r.outcome, Outcome::TimeToEvent { event: true, .. }))
                .count() as i64;
            assert_eq!(swept, expected, "{} at {day}", endpoint.id);
            day = day + chrono::Days::new(1);
        }
    }
    assert!(
        removals > 0,
        "a report taking precedence takes a counted death away"
    );
}

/// `sort_received` puts events in the order a stable sort by [`ReceivedEvent::order`] gives:
/// shuffled, in reverse, in order, and with events of equal order (kept in their order), above
/// and below the size from which it ranks subjects.
#[test]
fn received_events_sort_as_a_stable_sort_does() {
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(19);
    for n in [0, 1, 7, 1000, 20_000] {
        let events: Vec<ReceivedEvent> = (0..n)
            .map(|i| ReceivedEvent {
                event: Event {
                    // Few subjects, days and ids: many ties at every level, and many events
                    // of equal order.
                    event_id: format!("E{}", rng.random_range(0..5)),
                    subject: format!("S{}", rng.random_range(0..(n / 500).max(2))),
                    event_type: "mi".into(),
                    date: d("2024-01-01") + chrono::Days::new(rng.random_range(0..5)),
                    code: None,
                    value: None,
                    source: None,
                },
                // Tells events of equal order apart.
                received_on: d("2020-01-01") + chrono::Days::new(i as u64),
            })
            .collect();
        let mut shuffled = events.clone();
        shuffled.shuffle(&mut rng);
        let mut reversed = events.clone();
        reversed.reverse();
        for input in [events, shuffled, reversed] {
            let mut expected = input.clone();
            expected.sort_by(|a, b| a.order().cmp(&b.order()));
            let mut sorted = input.clone();
            sort_received(&mut sorted);
            assert_eq!(sorted, expected, "{n} events");
            // Sorted again: unchanged.
            sort_received(&mut sorted);
            assert_eq!(sorted, expected, "{n} events in order");
        }
    }
}
