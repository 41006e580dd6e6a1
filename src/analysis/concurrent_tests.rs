//! A platform trial whose arm `b` opened by amendment: each arm is compared with the reference
//! arm's concurrent, eligible controls only, in the analysis and in interim monitoring.

use chrono::NaiveDate;

use super::summary::{analyse, Comparison};
use super::TrialData;
use crate::endpoints::{DataCutoff, Event, ReceivedEvent};
use crate::randomise::{AllocationRecord, Draw, Timestamp};

const PROTOCOL: &str = r#"id = "platform"
title = "Platform"
version = "1.1"
target_sample_size = 100
consent = "oral"

[[sites]]
code = "A"

[[arms]]
id = "a"

[[arms]]
id = "b"

[[arms]]
id = "control"

[randomisation]
method = "simple"

[follow_up]
reporting_lag_days = 0

[endpoints.death_1y]
kind = "time_to_event"
events = ["death"]
horizon_days = 365
primary = true

[endpoints.death_30d]
kind = "binary"
events = ["death"]
horizon_days = 30

[monitoring]
alpha = 0.05
sided = 2
spending = "obf"
planned_events = 4
looks = [0.5, 1.0]
"#;

/// `(record, arm, protocol version, eligible arms, day of death)`, randomised in this order,
/// version 1.0 (arms `a` and `control`) in January 2024, version 1.1 (arm `b` opened) from
/// March 2024. Control `c5` was not eligible for `b`.
#[allow(clippy::type_complexity)]
const SUBJECTS: &[(&str, &str, &str, Option<&str>, Option<u64>)] = &[
    ("a1", "a", "1.0", None, Some(10)),
    ("a2", "a", "1.0", None, None),
    ("a3", "a", "1.0", None, None),
    ("a4", "a", "1.0", None, None),
    ("c1", "control", "1.0", None, Some(5)),
    ("c2", "control", "1.0", None, Some(12)),
    ("c3", "control", "1.0", None, Some(20)),
    ("c4", "control", "1.0", None, None),
    ("a5", "a", "1.1", None, None),
    ("a6", "a", "1.1", None, None),
    ("b1", "b", "1.1", None, Some(15)),
    ("b2", "b", "1.1", None, None),
    ("b3", "b", "1.1", None, None),
    ("b4", "b", "1.1", None, None),
    ("c5", "control", "1.1", Some(r#"["a","control"]"#), Some(8)),
    ("c6", "control", "1.1", None, Some(25)),
    ("c7", "control", "1.1", None, None),
    ("c8", "control", "1.1", None, None),
    ("c9", "control", "1.1", None, None),
];

fn platform(versions: bool) -> TrialData {
    let protocol =
        crate::protocol::parse(PROTOCOL, "platform.toml").unwrap_or_else(|e| panic!("{e}"));
    let mut allocations = Vec::new();
    let mut events = Vec::new();
    for (i, (record, arm, version, eligible, death)) in SUBJECTS.iter().enumerate() {
        let start = if *version == "1.0" {
            NaiveDate::from_ymd_opt(2024, 1, 2).unwrap()
        } else {
            NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()
        };
        let day0 = start + chrono::Days::new(i as u64);
        allocations.push(AllocationRecord {
            trial_id: "platform".into(),
            randomisation_number: i as i64 + 1,
            record_id: record.to_string(),
            subject: format!("s-{record}"),
            site_code: "A".into(),
            arm: arm.to_string(),
            stratum: "all".into(),
            block_number: 0,
            block_size: 0,
            block_position: 0,
            protocol_version: version.to_string(),
            request_sha256: String::new(),
            allocated_at: Timestamp::parse(&format!("{day0}T12:00:00Z")).unwrap(),
            detail: None,
            eligible_arms: eligible.map(str::to_string),
            cluster: None,
            draw: Draw::Slot,
        });
        if let Some(d) = death {
            let date = day0 + chrono::Days::new(*d);
            events.push(ReceivedEvent {
                event: Event {
                    event_id: format!("e-{record}"),
                    subject: format!("s-{record}"),
                    event_type: "death".into(),
                    date,
                    code: None,
                    value: None,
                    source: None,
                },
                received_on: date,
            });
        }
    }
    crate::endpoints::sort_received(&mut events);
    let open = |arms: &[&str]| arms.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    TrialData {
        protocol,
        allocations,
        events,
        in_error: Default::default(),
        deliveries: Vec::new(),
        participation: Default::default(),
        open_arms_by_version: if versions {
            [
                ("1.0".to_string(), open(&["a", "control"])),
                ("1.1".to_string(), open(&["a", "b", "control"])),
            ]
            .into()
        } else {
            Default::default()
        },
        baseline: Default::default(),
    }
}

fn cutoff() -> DataCutoff {
    DataCutoff::parse("2025-06-30").unwrap()
}

/// The binary comparisons as `(arm, concurrent controls, non-concurrent, risk difference)`.
fn risk_differences(data: &TrialData) -> Vec<(String, usize, usize, f64)> {
    let analysis = analyse(data, &[], cutoff());
    let e = analysis
        .endpoints
        .iter()
        .find(|e| e.id == "death_30d")
        .unwrap();
    let table = |c: &Comparison| match c {
        Comparison::Binary { tables, .. } => tables[0].table.rd,
        other => panic!("{other:?}"),
    };
    match e.comparison.as_ref().unwrap() {
        Comparison::PerArm { comparisons, .. } => comparisons
            .iter()
            .map(|c| {
                (
                    c.arm.clone(),
                    c.concurrent_controls,
                    c.non_concurrent_controls,
                    table(&c.comparison),
                )
            })
            .collect(),
        Comparison::Binary { tables, .. } => tables
            .iter()
            .map(|t| (t.arm.clone(), 9, 0, t.table.rd))
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_arm_opened_late_is_compared_with_concurrent_eligible_controls_only() {
    // By hand, 30-day deaths:
    // - b (opened in version 1.1): b1 of b1..b4 died, 1/4. Its concurrent, eligible controls
    //   are c6..c9 (c1..c4 were randomised before b opened; c5 was not eligible for b): c6
    //   died, 1/4. Risk difference 1/4 − 1/4 = 0.
    // - a (open throughout): a1 of six died, 1/6, against all nine controls, of whom c1, c2,
    //   c3, c5 and c6 died, 5/9: risk difference 1/6 − 5/9 = −7/18.
    let restricted = risk_differences(&platform(true));
    assert_eq!(restricted.len(), 2);
    let (arm, controls, left_out, rd) = &restricted[0];
    assert_eq!((arm.as_str(), *controls, *left_out), ("a", 9, 0));
    assert!((rd - (1.0 / 6.0 - 5.0 / 9.0)).abs() < 1e-12, "{rd}");
    let (arm, controls, left_out, rd) = &restricted[1];
    assert_eq!((arm.as_str(), *controls, *left_out), ("b", 4, 5));
    assert!(rd.abs() < 1e-12, "{rd}");

    // Without the versions' arms every control looks concurrent except c5, who was not
    // eligible for b: b is compared with the eight others, c1, c2, c3 and c6 of whom died:
    // 1/4 − 4/8 = −1/4 — the late arm would look better than it is.
    let unrestricted = risk_differences(&platform(false));
    let (arm, controls, left_out, rd) = &unrestricted[1];
    assert_eq!((arm.as_str(), *controls, *left_out), ("b", 8, 1));
    assert!((rd - (0.25 - 0.5)).abs() < 1e-12, "{rd}");
}

#[test]
fn interim_monitoring_reports_every_arm_with_its_share_of_alpha() {
    let data = platform(true);
    let report = super::interim::interim(&data, cutoff()).unwrap();
    assert_eq!(report.reference_arm, "control");
    // Bonferroni over two comparisons, as no `multiplicity` is written.
    assert!((report.alpha_per_comparison - 0.025).abs() < 1e-15);
    assert!(
        report.alpha_split.starts_with("Bonferroni"),
        "{}",
        report.alpha_split
    );
    let arms: Vec<(&str, usize, usize, u64)> = report
        .comparisons
        .iter()
        .map(|c| {
            (
                c.experimental_arm.as_str(),
                c.concurrent_controls,
                c.non_concurrent_controls,
                c.events,
            )
        })
        .collect();
    // Deaths within the year: a: a1 and the controls c1, c2, c3, c5, c6 (6); b: b1 and its
    // concurrent control c6 (2).
    assert_eq!(arms, [("a", 9, 0, 6), ("b", 4, 5, 2)]);
    // Each arm has its own boundaries, those of a design at alpha 0.025: wider than at 0.05.
    let full = crate::design::group_sequential(&crate::design::DesignSpec {
        alpha: 0.05,
        sided: crate::design::Sided::Two,
        design: data.protocol.monitoring.as_ref().unwrap().spending.into(),
        timing: vec![0.5, 1.0],
        power: 0.8,
        futility: None,
        binding_futility: false,
    })
    .unwrap();
    for c in &report.comparisons {
        assert_eq!(c.planned_upper_z.len(), 2);
        assert!(c.planned_upper_z[1] > full.looks[1].upper_z);
    }
    // b reached its first look (2 of 4 events) with its own two subjects' events.
    assert_eq!(report.comparisons[1].looks.len(), 1);
    assert_eq!(report.comparisons[1].looks[0].events, 2);

    // `multiplicity = "none"` keeps the full alpha for each.
    let mut none = data.clone();
    none.protocol = crate::protocol::parse(
        &PROTOCOL.replace(
            "looks = [0.5, 1.0]",
            "looks = [0.5, 1.0]\nmultiplicity = \"none\"",
        ),
        "platform.toml",
    )
    .unwrap();
    let report = super::interim::interim(&none, cutoff()).unwrap();
    assert_eq!(report.alpha_per_comparison, 0.05);
    assert!((report.comparisons[0].planned_upper_z[1] - full.looks[1].upper_z).abs() < 1e-12);
}

#[test]
fn the_analysis_says_which_controls_it_used() {
    let analysis = analyse(&platform(true), &[], cutoff());
    let e = analysis
        .endpoints
        .iter()
        .find(|e| e.id == "death_1y")
        .unwrap();
    let text = e.analysis.as_deref().unwrap();
    assert!(
        text.contains("concurrent, eligible controls only"),
        "{text}"
    );
    let json = serde_json::to_value(e).unwrap();
    assert_eq!(json["comparison"]["method"], "per_arm");
    assert_eq!(json["comparison"]["comparisons"][1]["arm"], "b");
    assert_eq!(
        json["comparison"]["comparisons"][1]["concurrent_controls"],
        4
    );
    assert_eq!(
        json["comparison"]["comparisons"][1]["comparison"]["method"],
        "survival"
    );
}
