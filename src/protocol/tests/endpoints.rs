//! `[follow_up]` and `[endpoints.ID]`: what parses, the defaults, and where each error points.
//! Sections appended to `BASE` by [`with`] start at line 30.

use super::*;

fn selector(types: &[&str], codes: &[&str]) -> EventSelector {
    EventSelector {
        types: types.iter().map(|t| t.to_string()).collect(),
        codes: codes.iter().map(|c| c.to_string()).collect(),
    }
}

#[test]
fn taste_declares_its_endpoints() {
    let taste = taste();
    assert_eq!(taste.follow_up.censor_on, ["emigration"]);
    assert_eq!(taste.follow_up.reporting_lag_days, 0);
    let sources: Vec<(&str, u32, u32)> = taste
        .follow_up
        .sources
        .iter()
        .map(|s| (s.id.as_str(), s.reporting_lag_days, s.expected_every_days))
        .collect();
    assert_eq!(
        sources,
        [
            ("swedeheart", 2, 1),
            ("population_register", 7, 7),
            ("patient_register", 45, 31)
        ]
    );
    // Deaths are complete through the population register's lag; infarctions through the
    // patient register's, which takes precedence over SWEDEHEART.
    assert_eq!(taste.follow_up.lag_of_type("death"), 7);
    assert_eq!(taste.follow_up.lag_of_type("mi"), 45);
    let _ = FollowUp::default();
    let summary: Vec<(&str, bool, &EndpointKind)> = taste
        .endpoints
        .iter()
        .map(|e| (e.id.as_str(), e.primary, &e.kind))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "death_1y",
                true,
                &EndpointKind::TimeToEvent {
                    events: selector(&["death"], &[]),
                    horizon_days: Some(365),
                }
            ),
            (
                "death_30d",
                false,
                &EndpointKind::Binary {
                    events: selector(&["death"], &[]),
                    horizon_days: 30,
                }
            ),
            (
                "death_or_mi_1y",
                false,
                &EndpointKind::TimeToEvent {
                    events: selector(&["death", "mi"], &[]),
                    horizon_days: Some(365),
                }
            ),
        ]
    );
    assert_eq!(taste.primary_endpoint().unwrap().id, "death_1y");
    assert_eq!(
        taste.endpoint("death_30d").unwrap().label.as_deref(),
        Some("All-cause death within 30 days")
    );
}

#[test]
fn dapa_hf_reg_declares_every_other_kind() {
    let dapa = parse(
        include_str!("../../../protocols/dapa-hf-reg.toml"),
        "dapa-hf-reg.toml",
    )
    .unwrap();
    assert_eq!(dapa.follow_up.censor_on, ["emigration"]);
    assert_eq!(dapa.follow_up.reporting_lag_days, 30);
    let primary = dapa.primary_endpoint().unwrap();
    assert_eq!(primary.id, "cv_death_or_hfh");
    assert_eq!(
        primary.kind,
        EndpointKind::TimeToEvent {
            events: selector(&["cv_death", "hf_hospitalisation"], &[]),
            horizon_days: None,
        }
    );
    assert_eq!(
        dapa.endpoint("hfh_count_1y").unwrap().kind,
        EndpointKind::Count {
            events: selector(&["hf_hospitalisation"], &["I50"]),
            window: DayWindow {
                from_day: 0,
                to_day: 365
            },
        }
    );
    let nt_probnp = dapa.endpoint("nt_probnp_6m").unwrap();
    assert!(!nt_probnp.primary);
    assert_eq!(
        nt_probnp.kind,
        EndpointKind::Continuous {
            events: selector(&["nt_probnp"], &[]),
            window: DayWindow {
                from_day: 150,
                to_day: 210
            },
            target_day: 180,
        }
    );
    assert_eq!(dapa.endpoints.len(), 3);
}

#[test]
fn follow_up_and_endpoints_are_optional() {
    let p = parse(BASE, "t.toml").unwrap();
    assert_eq!(p.follow_up, FollowUp::default());
    assert_eq!(p.follow_up.censor_on, Vec::<String>::new());
    assert_eq!(p.follow_up.reporting_lag_days, 0);
    assert!(p.endpoints.is_empty());
    assert_eq!(p.primary_endpoint(), None);

    let p = parse(
        &with(
            r#"
[follow_up]

[endpoints.stroke]
kind = "time_to_event"
events = ["stroke"]
primary = true

[endpoints.stroke_30d]
kind = "binary"
events = ["stroke"]
codes = ["I63", "I64"]
horizon_days = 30
"#,
        ),
        "t.toml",
    )
    .unwrap();
    assert_eq!(p.follow_up, FollowUp::default());
    assert_eq!(
        p.endpoints,
        [
            Endpoint {
                id: "stroke".into(),
                label: None,
                primary: true,
                kind: EndpointKind::TimeToEvent {
                    events: selector(&["stroke"], &[]),
                    horizon_days: None,
                },
                competing: Vec::new(),
            },
            Endpoint {
                id: "stroke_30d".into(),
                label: None,
                primary: false,
                kind: EndpointKind::Binary {
                    events: selector(&["stroke"], &["I63", "I64"]),
                    horizon_days: 30,
                },
                competing: Vec::new(),
            },
        ]
    );
    assert_eq!(p.endpoints[1].events().codes, ["I63", "I64"]);
}

#[test]
fn dotted_keys_and_inline_tables_work() {
    let source = r#"id = "t"
title = "T"
version = "1"
target_sample_size = 10
consent = "waiver"
sites = [{ code = "A" }]
arms = [{ id = "a" }, { id = "b" }]
randomisation.method = "simple"
follow_up.reporting_lag_days = 14
endpoints.death = { kind = "time_to_event", events = ["death"], primary = true }
endpoints.mi.kind = "count"
endpoints.mi.events = ["mi"]
endpoints.mi.window = [0, 30]
"#;
    let p = parse(source, "t.toml").unwrap();
    assert_eq!(p.follow_up.reporting_lag_days, 14);
    assert_eq!(
        p.endpoints
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["death", "mi"]
    );
    // Without a primary the error points at the first endpoint's name, wherever it is written.
    let got = errors(&source.replace(", primary = true", ""));
    assert_eq!(
        got,
        ["10:11: no endpoint is primary; mark exactly one endpoint with `primary = true`"]
    );
}

#[test]
fn endpoint_ids_and_event_types() {
    let got = errors(&with(
        r#"
[endpoints.Death]
kind = "binary"
events = ["Death", "mi", "mi"]
horizon_days = 30
primary = true

[endpoints.d]
kind = "survival"
events = []
"#,
    ));
    assert_eq!(
        got,
        [
            "30:12: endpoint id `Death` must start with a lower-case letter and contain only \
             lower-case letters, digits and `_`",
            "32:11: event type `Death` in endpoint `Death` must start with a lower-case letter \
             and contain only lower-case letters, digits and `_`",
            "32:26: event type `mi` is listed twice in endpoint `Death`",
            "37:8: unknown kind `survival` for endpoint `d`; expected time_to_event, binary, \
             count or continuous",
            "38:10: `events` of endpoint `d` is empty; list at least one event type, e.g. \
             events = [\"death\"]",
        ]
    );
}

#[test]
fn keys_that_do_not_apply_to_the_kind() {
    let got = errors(&with(
        r#"
[endpoints.a]
kind = "binary"
events = ["death"]
horizon_days = 30
window = [0, 30]
target_day = 10
primary = true

[endpoints.b]
kind = "count"
events = ["mi"]
horizon_days = 30
window = [0, 365]

[endpoints.c]
kind = "time_to_event"
events = ["death"]
target_day = 1
"#,
    ));
    assert_eq!(
        got,
        [
            "34:10: `window` does not apply to binary endpoint `a`; only count and continuous \
             endpoints have a window (use `horizon_days`)",
            "35:14: `target_day` does not apply to binary endpoint `a`; only continuous \
             endpoints have a target day",
            "41:16: `horizon_days` does not apply to count endpoint `b`; only time_to_event and \
             binary endpoints have a horizon (the window bounds this one)",
            "47:14: `target_day` does not apply to time_to_event endpoint `c`; only continuous \
             endpoints have a target day",
        ]
    );
}

#[test]
fn keys_each_kind_needs() {
    let got = errors(&with(
        r#"
[endpoints.a]
kind = "binary"
events = ["death"]
primary = true

[endpoints.b]
kind = "count"
events = ["mi"]

[endpoints.c]
kind = "continuous"
events = ["ldl", "hdl"]
"#,
    ));
    // `a` is invalid but still counts as the primary: no "no endpoint is primary" on top.
    assert_eq!(
        got,
        [
            "31:8: binary endpoint `a` needs `horizon_days`, the days after randomisation \
             within which an event counts, e.g. horizon_days = 30",
            "36:8: count endpoint `b` needs `window`, the days after randomisation it counts \
             events in (both included), e.g. window = [0, 365]",
            "40:8: continuous endpoint `c` needs `window`, the days after randomisation a value \
             may come from (both included), e.g. window = [335, 395]",
            "40:8: continuous endpoint `c` needs `target_day`, the day after randomisation its \
             value is wanted for, e.g. target_day = 365",
            "41:10: continuous endpoint `c` reads the value of one event type, but `events` \
             lists 2; declare one endpoint per measurement",
        ]
    );
}

#[test]
fn horizons_windows_and_target_days() {
    let got = errors(&with(
        r#"
[endpoints.a]
kind = "time_to_event"
events = ["death"]
horizon_days = 0
primary = true

[endpoints.b]
kind = "count"
events = ["mi"]
window = [30, 0]

[endpoints.c]
kind = "count"
events = ["mi"]
window = [-1, 30, 60]

[endpoints.d]
kind = "continuous"
events = ["ldl"]
window = [-7, -1]
target_day = -3

[endpoints.e]
kind = "continuous"
events = ["ldl"]
window = [335, 395]
target_day = 400

[endpoints.f]
kind = "count"
events = ["mi"]
window = [0]
"#,
    ));
    assert_eq!(
        got,
        [
            "33:16: `horizon_days` of endpoint `a` must be a positive whole number of days, got 0",
            "39:15: `window` of endpoint `b` starts at day 30, after it ends at day 0",
            "44:10: `window` of endpoint `c` must be two days after randomisation, [from, to], \
             got 3 values",
            "49:11: days in `window` of endpoint `d` count from randomisation (day 0) and cannot \
             be negative, got -7",
            "49:15: days in `window` of endpoint `d` count from randomisation (day 0) and cannot \
             be negative, got -1",
            "50:14: `target_day` of endpoint `d` must be a whole number of days after \
             randomisation (0 or more), got -3",
            "56:14: `target_day` 400 of endpoint `e` is outside its window [335, 395]",
            "61:10: `window` of endpoint `f` must be two days after randomisation, [from, to], \
             got 1 value",
        ]
    );
    // Both ends of the window are included; a one-day window is fine.
    let p = parse(
        &with(
            r#"
[endpoints.ldl]
kind = "continuous"
events = ["ldl"]
window = [365, 365]
target_day = 365
primary = true
"#,
        ),
        "t.toml",
    )
    .unwrap();
    assert_eq!(
        p.endpoints[0].kind,
        EndpointKind::Continuous {
            events: selector(&["ldl"], &[]),
            window: DayWindow {
                from_day: 365,
                to_day: 365
            },
            target_day: 365,
        }
    );
}

#[test]
fn codes_and_labels() {
    let got = errors(&with(
        r#"
[endpoints.a]
kind = "time_to_event"
events = ["mi"]
codes = []
primary = true

[endpoints.b]
kind = "time_to_event"
events = ["mi"]
codes = ["I21", "", " I22", "I21"]
label = " "
"#,
    ));
    assert_eq!(
        got,
        [
            "33:9: `codes` of endpoint `a` is empty; list code prefixes such as [\"I21\"], or \
             remove `codes` to select events whatever their code",
            "39:17: a code of endpoint `b` must not be empty",
            "39:21: code ` I22` of endpoint `b` must not start or end with spaces",
            "39:29: code `I21` is listed twice in endpoint `b`",
            "40:9: endpoint label must not be empty",
        ]
    );
}

#[test]
fn exactly_one_primary() {
    let got = errors(&with(
        r#"
[endpoints.a]
kind = "time_to_event"
events = ["death"]
primary = false

[endpoints.b]
kind = "binary"
events = ["death"]
horizon_days = 30
"#,
    ));
    assert_eq!(
        got,
        ["30:12: no endpoint is primary; mark exactly one endpoint with `primary = true`"]
    );

    let got = errors(&with(
        r#"
[endpoints.a]
kind = "time_to_event"
events = ["death"]
primary = true

[endpoints.b]
kind = "time_to_event"
events = ["mi"]
primary = true

[endpoints.c]
kind = "time_to_event"
events = ["stroke"]
primary = true
"#,
    ));
    assert_eq!(
        got,
        [
            "38:11: endpoint `b` is marked primary, but `a` already is; a trial has exactly one \
             primary endpoint",
            "43:11: endpoint `c` is marked primary, but `a` already is; a trial has exactly one \
             primary endpoint",
        ]
    );
}

#[test]
fn censoring_events_are_not_outcomes() {
    let got = errors(&with(
        r#"
[follow_up]
censor_on = ["emigration", "death", "Lost", "emigration"]
reporting_lag_days = -1

[endpoints.a]
kind = "binary"
events = ["death"]
horizon_days = 30
primary = true

[endpoints.b]
kind = "survival"
events = ["death", "mi"]
"#,
    ));
    // `b` is invalid, yet its outcomes are still checked against `censor_on`.
    assert_eq!(
        got,
        [
            "31:28: event type `death` is in `censor_on` but is an outcome of endpoints `a` and \
             `b`; an event cannot both end follow-up and count as an outcome",
            "31:37: event type `Lost` in `censor_on` must start with a lower-case letter and \
             contain only lower-case letters, digits and `_`",
            "31:45: event type `emigration` is listed twice in `censor_on`",
            "32:22: `reporting_lag_days` must be a whole number of days, 0 or more, got -1",
            "41:8: unknown kind `survival` for endpoint `b`; expected time_to_event, binary, \
             count or continuous",
        ]
    );
    let got = errors(&with(
        r#"
[follow_up]
censor_on = ["mi"]

[endpoints.a]
kind = "time_to_event"
events = ["death", "mi"]
primary = true
"#,
    ));
    assert_eq!(
        got,
        [
            "31:14: event type `mi` is in `censor_on` but is an outcome of endpoint `a`; an \
             event cannot both end follow-up and count as an outcome"
        ]
    );
}

#[test]
fn unknown_and_missing_keys() {
    let got = errors(&with(
        "\n[endpoints.a]\nkind = \"binary\"\nevents = [\"death\"]\nhorizon = 30\n",
    ));
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with(
            "33:1: unknown field `horizon`, expected one of `label`, `kind`, `events`, `codes`, \
             `horizon_days`, `primary`, `window`, `target_day`"
        ),
        "{got:?}"
    );
    let got = errors(&with("\n[follow_up]\nlag = 3\n"));
    assert_eq!(got.len(), 1);
    assert!(
        got[0]
            .starts_with("31:1: unknown field `lag`, expected `censor_on` or `reporting_lag_days`"),
        "{got:?}"
    );
    assert_eq!(
        errors(&with("\n[endpoints.a]\nevents = [\"death\"]\n")),
        ["30:1: missing field `kind`"]
    );
    assert_eq!(
        errors(&with(
            "\n[endpoints.a]\nkind = \"binary\"\nhorizon_days = 30\n"
        )),
        ["30:1: missing field `events`"]
    );
}
