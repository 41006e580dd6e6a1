//! `[sources.ID]` and `[precedence]`: what parses, and where each error points. Sections
//! appended to `BASE` by [`with`] start at line 30.

use super::*;

const ENDPOINTS: &str = r#"
[follow_up]
censor_on = ["emigration"]
reporting_lag_days = 5

[endpoints.death_or_mi]
kind = "time_to_event"
events = ["death", "mi"]
primary = true
"#;

#[test]
fn sources_take_their_lag_or_the_default() {
    let p = parse(
        &with(&format!(
            "{ENDPOINTS}
[sources.quality]
label = \"Quality register\"
delivers = [\"mi\", \"emigration\"]
reporting_lag_days = 1
expected_every_days = 1

[sources.deaths]
label = \"Cause of death register\"
delivers = [\"death\"]
expected_every_days = 30
provenance = \"Death certificates\"
"
        )),
        "p.toml",
    )
    .unwrap();
    let s = &p.follow_up.sources;
    assert_eq!(s.len(), 2);
    assert_eq!((s[0].reporting_lag_days, s[0].expected_every_days), (1, 1));
    // No lag of its own: the follow-up default (5).
    assert_eq!((s[1].reporting_lag_days, s[1].expected_every_days), (5, 30));
    assert_eq!(s[1].provenance.as_deref(), Some("Death certificates"));
    assert_eq!(p.follow_up.lag_of(&p.endpoints[0]), 5);
    assert!(p.knows_event_type("emigration"));
    assert!(!p.knows_event_type("deth"));
}

#[test]
fn a_type_read_by_the_trial_must_come_from_a_source() {
    let got = errors(&with(&format!(
        "{ENDPOINTS}
[sources.quality]
label = \"Quality register\"
delivers = [\"mi\"]
expected_every_days = 1
"
    )));
    assert_eq!(
        got,
        [
            "31:14: event type `emigration` in `censor_on` is delivered by no source; add it to \
             the `delivers` of the source that reports it",
            "36:11: event type `death` of endpoint `death_or_mi` is delivered by no source; add \
             it to the `delivers` of the source that reports it",
        ]
    );
}

#[test]
fn two_sources_of_one_type_need_a_precedence_rule() {
    let two = format!(
        "{ENDPOINTS}
[sources.quality]
label = \"Quality register\"
delivers = [\"mi\", \"death\", \"emigration\"]
expected_every_days = 1

[sources.deaths]
label = \"Cause of death register\"
delivers = [\"death\"]
expected_every_days = 30
"
    );
    let got = errors(&with(&two));
    assert_eq!(
        got,
        [
            "46:13: event type `death` is delivered by both `quality` and `deaths`; add `death = \
             [\"quality\", \"deaths\"]` (first the source whose events count) under \
             `[precedence]`"
        ]
    );
    let ruled = format!("{two}\n[precedence]\ndeath = [\"deaths\", \"quality\"]\n");
    let p = parse(&with(&ruled), "p.toml").unwrap();
    assert_eq!(p.follow_up.precedence[0].sources, ["deaths", "quality"]);
    assert_eq!(p.follow_up.lag_of_type("death"), 5);

    let bad = format!(
        "{two}\n[precedence]\ndeath = [\"deaths\", \"lab\", \"deaths\"]\nmi = [\"quality\"]\n"
    );
    let got = errors(&with(&bad));
    assert_eq!(
        got,
        [
            "50:20: source `lab` in the precedence of `death` does not deliver it; its sources \
             are `quality`, `deaths`",
            "50:27: source `deaths` is listed twice in the precedence of `death`",
            "51:1: `[precedence]` orders the sources of event type `mi`, but only `quality` \
             delivers it; precedence is for a type two or more sources deliver",
        ]
    );
    let short = format!("{two}\n[precedence]\ndeath = [\"deaths\"]\n");
    assert_eq!(
        errors(&with(&short)),
        [
            "50:9: the precedence of `death` leaves out `quality`; list every source that \
             delivers it, first the one whose events count"
        ]
    );
}

#[test]
fn source_keys_are_checked_where_written() {
    let got = errors(&with(&format!(
        "{ENDPOINTS}
[sources.Quality]
label = \" \"
delivers = []
reporting_lag_days = -2
expected_every_days = 0

[sources.all]
label = \"All\"
delivers = [\"death\", \"mi\", \"emigration\", \"Mi\"]
expected_every_days = 99999
"
    )));
    assert_eq!(
        got,
        [
            "39:10: source id `Quality` must start with a lower-case letter and contain only \
             lower-case letters, digits and `_`",
            "40:9: label of source `Quality` must not be empty",
            "41:12: `delivers` of source `Quality` is empty; list the event types it sends, \
             e.g. delivers = [\"death\"]",
            "42:22: `reporting_lag_days` of source `Quality` must be a whole number of days \
             from 0 to 3660, got -2",
            "43:23: `expected_every_days` of source `Quality` must be a whole number of days \
             from 1 to 3660, got 0",
            "47:42: event type `Mi` in source `all` must start with a lower-case letter and \
             contain only lower-case letters, digits and `_`",
            "48:23: `expected_every_days` of source `all` must be a whole number of days from \
             1 to 3660, got 99999",
        ]
    );
    assert_eq!(
        errors(&with("\n[precedence]\ndeath = [\"a\", \"b\"]\n")),
        ["31:1: `[precedence]` orders sources, but no `[sources.ID]` is declared"]
    );
}
