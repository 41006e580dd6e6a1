//! `[monitoring]`: the interim-analysis plan and where its errors point.

use super::*;

const ENDPOINT: &str = r#"
[endpoints.death]
kind = "time_to_event"
events = ["death"]
primary = true
"#;

#[test]
fn taste_plans_one_interim_look() {
    let source = include_str!("../../../protocols/taste.toml");
    let taste = parse(source, "taste.toml").unwrap();
    let m = taste.monitoring.expect("taste plans monitoring");
    assert_eq!(
        (m.alpha, m.sided, m.spending.label().as_str()),
        (0.05, 2, "obf")
    );
    assert_eq!(
        (m.planned_events, m.looks.clone(), m.power),
        (400, vec![0.66, 1.0], 0.8)
    );
    assert_eq!(m.forecast_hazard_cuts_days, vec![30.0]);
}

#[test]
fn forecast_cuts_must_increase_where_they_stand() {
    let source = with(&format!(
        "{ENDPOINT}\n[monitoring]\nalpha = 0.05\nsided = 2\nspending = \"obf\"\nplanned_events = 100\nlooks = [1.0]\nforecast_hazard_cuts_days = [30, 30, -1]\n"
    ));
    let found = errors(&source);
    let line = source
        .lines()
        .position(|l| l.starts_with("forecast_hazard_cuts_days"))
        .unwrap()
        + 1;
    assert!(
        found.iter().any(|e| e.starts_with(&format!("{line}:34: "))
            && e.contains("forecast hazard cut at day 30 must be after the previous one (30)")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|e| e.contains("forecast hazard cut at day -1 must be after")),
        "{found:?}"
    );
    let empty = with(&format!(
        "{ENDPOINT}\n[monitoring]\nalpha = 0.05\nsided = 2\nspending = \"obf\"\nplanned_events = 100\nlooks = [1.0]\nforecast_hazard_cuts_days = []\n"
    ));
    assert!(errors(&empty)
        .iter()
        .any(|e| e.contains("`forecast_hazard_cuts_days` is empty")));
}

#[test]
fn plan_errors_point_at_their_values() {
    let source = with(&format!(
        "{ENDPOINT}\n[monitoring]\nalpha = 0.7\nsided = 3\nspending = \"linear\"\nplanned_events = 0\nlooks = [0.5, 0.4, 0.9]\n"
    ));
    let found = errors(&source);
    let has = |needle: &str| found.iter().any(|e| e.contains(needle));
    assert!(
        has("`alpha` must be between 0 and 0.5, got 0.7"),
        "{found:?}"
    );
    assert!(has("`sided` must be 1 or 2, got 3"), "{found:?}");
    assert!(has("spending"), "{found:?}");
    assert!(
        has("`planned_events` must be a positive whole number, got 0"),
        "{found:?}"
    );
    assert!(
        has("look at information fraction 0.4 must be after the previous one (0.5)"),
        "{found:?}"
    );
    assert!(has("the last look must be the final analysis"), "{found:?}");
    let line = source
        .lines()
        .position(|l| l.starts_with("alpha = 0.7"))
        .unwrap()
        + 1;
    assert!(
        found
            .iter()
            .any(|e| e.starts_with(&format!("{line}:9: `alpha`"))),
        "{found:?}"
    );
}

#[test]
fn monitoring_needs_a_time_to_event_primary_endpoint() {
    let source = with("\n[monitoring]\nalpha = 0.05\nsided = 2\nspending = \"obf\"\nplanned_events = 100\nlooks = [1.0]\n");
    assert!(
        errors(&source)
            .iter()
            .any(|e| e.contains("interim monitoring needs a primary endpoint")),
        "{:?}",
        errors(&source)
    );
}

#[test]
fn a_classical_design_name_is_refused_where_it_stands() {
    // rpact's `OF` is the classical design, not O'Brien–Fleming-type spending: never a silent
    // substitute, and the error says why monitoring needs a spending function.
    let source = with(&format!(
        "{ENDPOINT}\n[monitoring]\nalpha = 0.05\nsided = 2\nspending = \"OF\"\nplanned_events = 100\nlooks = [0.5, 1.0]\n"
    ));
    let found = errors(&source);
    let line = source
        .lines()
        .position(|l| l.starts_with("spending = \"OF\""))
        .unwrap()
        + 1;
    assert!(
        found.iter().any(|e| e.starts_with(&format!("{line}:"))
            && e.contains("classical")
            && e.contains("`obf`")
            && e.contains("recomputed at the information observed")),
        "{found:?}"
    );
}
