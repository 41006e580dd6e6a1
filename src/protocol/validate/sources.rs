//! `[sources.ID]` and `[precedence]`: the registers the follow-up comes from, each with its own
//! reporting lag and cadence, and which source's events of a type count when several deliver it.
//!
//! Checked here: every event type an endpoint or `censor_on` reads is delivered by a declared
//! source (when any is declared), and a type delivered by two or more sources has a precedence
//! rule naming exactly those sources.

use std::collections::HashSet;
use std::ops::Range;

use toml::Spanned;

use super::endpoints::event_types;
use super::{is_field_name, non_empty, Checker};
use crate::protocol::model::{Precedence, Source};
use crate::protocol::raw::{Entries, RawSource, SpannedList};

/// Longest reporting lag or delivery interval a source may declare: ten years.
const MAX_DAYS: i64 = 3660;

pub(super) fn sources(
    c: &mut Checker,
    raw: Entries<RawSource>,
    raw_precedence: Entries<SpannedList<String>>,
    default_lag: u32,
    outcomes: &[(String, String, Range<usize>)],
    censor_on: &[(String, Range<usize>)],
) -> (Vec<Source>, Vec<Precedence>) {
    if raw.0.is_empty() {
        if let Some((key, _)) = raw_precedence.0.first() {
            c.error(
                key.span(),
                "`[precedence]` orders sources, but no `[sources.ID]` is declared",
            );
        }
        return (Vec::new(), Vec::new());
    }
    let mut sources = Vec::new();
    // Where each source lists each type, to point at the second source of a type.
    let mut delivered_at: Vec<(String, String, Range<usize>)> = Vec::new();
    for (key, source) in raw.0 {
        let id = key.get_ref().clone();
        if !is_field_name(&id) {
            c.error(
                key.span(),
                format!(
                    "source id `{id}` must start with a lower-case letter and contain only \
                     lower-case letters, digits and `_`"
                ),
            );
        }
        let label = non_empty(c, source.label, &format!("label of source `{id}`"));
        if source.delivers.get_ref().is_empty() {
            c.error(
                source.delivers.span(),
                format!(
                    "`delivers` of source `{id}` is empty; list the event types it sends, e.g. \
                     delivers = [\"death\"]"
                ),
            );
        }
        let delivers = event_types(c, &source.delivers, &format!("source `{id}`"));
        delivered_at.extend(
            source
                .delivers
                .get_ref()
                .iter()
                .map(|t| (t.get_ref().clone(), id.clone(), t.span())),
        );
        let days = |c: &mut Checker, v: &Spanned<i64>, what: &str, min: i64| {
            let n = *v.get_ref();
            if n < min || n > MAX_DAYS {
                c.error(
                    v.span(),
                    format!(
                        "`{what}` of source `{id}` must be a whole number of days from {min} to \
                         {MAX_DAYS}, got {n}"
                    ),
                );
                None
            } else {
                u32::try_from(n).ok()
            }
        };
        let reporting_lag_days = match &source.reporting_lag_days {
            Some(v) => days(c, v, "reporting_lag_days", 0).unwrap_or(default_lag),
            None => default_lag,
        };
        let expected_every_days =
            days(c, &source.expected_every_days, "expected_every_days", 1).unwrap_or(1);
        let provenance = source
            .provenance
            .map(|p| non_empty(c, p, &format!("provenance of source `{id}`")));
        sources.push(Source {
            id,
            label,
            delivers,
            reporting_lag_days,
            expected_every_days,
            provenance,
        });
    }

    // Every type read is delivered by some source.
    let delivered: HashSet<&str> = sources
        .iter()
        .flat_map(|s| s.delivers.iter().map(String::as_str))
        .collect();
    for (event_type, endpoint, span) in outcomes {
        if !delivered.contains(event_type.as_str()) {
            c.error(
                span.clone(),
                format!(
                    "event type `{event_type}` of endpoint `{endpoint}` is delivered by no \
                     source; add it to the `delivers` of the source that reports it"
                ),
            );
        }
    }
    for (event_type, span) in censor_on {
        if !delivered.contains(event_type.as_str()) {
            c.error(
                span.clone(),
                format!(
                    "event type `{event_type}` in `censor_on` is delivered by no source; add \
                     it to the `delivers` of the source that reports it"
                ),
            );
        }
    }

    // Precedence rules: each names a type with several sources, and exactly those sources.
    let mut precedence = Vec::new();
    let mut ruled = HashSet::new();
    for (key, list) in raw_precedence.0 {
        let event_type = key.get_ref().clone();
        let delivering: Vec<&str> = sources
            .iter()
            .filter(|s| s.delivers.contains(&event_type))
            .map(|s| s.id.as_str())
            .collect();
        if delivering.len() < 2 {
            c.error(
                key.span(),
                format!(
                    "`[precedence]` orders the sources of event type `{event_type}`, but {}; \
                     precedence is for a type two or more sources deliver",
                    match delivering.as_slice() {
                        [] => "no source delivers it".to_string(),
                        [one] => format!("only `{one}` delivers it"),
                        _ => unreachable!("fewer than two"),
                    }
                ),
            );
            continue;
        }
        ruled.insert(event_type.clone());
        let mut seen = HashSet::new();
        let mut ok = true;
        for item in list.get_ref() {
            let id = item.get_ref();
            if !delivering.contains(&id.as_str()) {
                ok = false;
                c.error(
                    item.span(),
                    format!(
                        "source `{id}` in the precedence of `{event_type}` does not deliver it; \
                         its sources are {}",
                        quoted(&delivering)
                    ),
                );
            } else if !seen.insert(id.clone()) {
                ok = false;
                c.error(
                    item.span(),
                    format!("source `{id}` is listed twice in the precedence of `{event_type}`"),
                );
            }
        }
        let missing: Vec<&str> = delivering
            .iter()
            .copied()
            .filter(|s| !seen.contains(*s))
            .collect();
        if ok && !missing.is_empty() {
            ok = false;
            c.error(
                list.span(),
                format!(
                    "the precedence of `{event_type}` leaves out {}; list every source that \
                     delivers it, first the one whose events count",
                    quoted(&missing)
                ),
            );
        }
        if ok {
            precedence.push(Precedence {
                event_type,
                sources: list.get_ref().iter().map(|i| i.get_ref().clone()).collect(),
            });
        }
    }
    // A type delivered twice needs a rule: reported at its second source.
    let mut first_source: Vec<(&str, &str)> = Vec::new();
    for (event_type, source, span) in &delivered_at {
        match first_source.iter().find(|(t, _)| t == event_type) {
            None => first_source.push((event_type, source)),
            Some((_, first)) if *first != source && !ruled.contains(event_type) => {
                c.error(
                    span.clone(),
                    format!(
                        "event type `{event_type}` is delivered by both `{first}` and \
                         `{source}`; add `{event_type} = [\"{first}\", \"{source}\"]` (first the \
                         source whose events count) under `[precedence]`"
                    ),
                );
                ruled.insert(event_type.clone());
            }
            Some(_) => {}
        }
    }
    (sources, precedence)
}

fn quoted(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
