//! `[endpoints.ID]` and `[follow_up]`: which register events are outcomes, what each endpoint
//! makes of them, and which events end a subject's follow-up.
//!
//! Only the definitions are checked here; deriving per-subject values from events belongs to
//! `crate::endpoints`. Event types are free names (the register decides them), so they are
//! checked for shape, not against a list.

use std::collections::HashSet;
use std::ops::Range;

use toml::Spanned;

use super::{is_field_name, non_empty, Checker};
use crate::protocol::model::{DayWindow, Endpoint, EndpointKind, EventSelector, FollowUp};
use crate::protocol::raw::{Entries, RawEndpoint, RawFollowUp, SpannedList};

const KINDS: &str = "time_to_event, binary, count or continuous";

/// `kind` as written, before the kind's own keys are checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    TimeToEvent,
    Binary,
    Count,
    Continuous,
}

impl Kind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "time_to_event" => Kind::TimeToEvent,
            "binary" => Kind::Binary,
            "count" => Kind::Count,
            "continuous" => Kind::Continuous,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::TimeToEvent => "time_to_event",
            Kind::Binary => "binary",
            Kind::Count => "count",
            Kind::Continuous => "continuous",
        }
    }
}

/// The declared endpoints, and every event type used as an outcome with the endpoint using it
/// (also for endpoints that are themselves invalid, so `censor_on` is checked in the same pass).
pub(super) struct Declared {
    pub endpoints: Vec<Endpoint>,
    outcomes: Vec<(String, String)>,
    /// Every event type an endpoint names, with the endpoint and where the type is written.
    pub outcome_spans: Vec<(String, String, Range<usize>)>,
}

pub(super) fn endpoints(c: &mut Checker, raw: Entries<RawEndpoint>) -> Declared {
    let first_key = raw.0.first().map(|(key, _)| key.span());
    let mut primary: Option<String> = None;
    let mut endpoints = Vec::new();
    let mut outcomes = Vec::new();
    let mut outcome_spans = Vec::new();
    for (key, raw_endpoint) in raw.0 {
        let id = key.get_ref().clone();
        if !is_field_name(&id) {
            c.error(
                key.span(),
                format!(
                    "endpoint id `{id}` must start with a lower-case letter and contain only \
                     lower-case letters, digits and `_`"
                ),
            );
        }
        if let Some(flag) = raw_endpoint.primary.as_ref().filter(|p| *p.get_ref()) {
            match &primary {
                None => primary = Some(id.clone()),
                Some(first) => c.error(
                    flag.span(),
                    format!(
                        "endpoint `{id}` is marked primary, but `{first}` already is; a trial \
                         has exactly one primary endpoint"
                    ),
                ),
            }
        }
        outcome_spans.extend(
            raw_endpoint
                .events
                .get_ref()
                .iter()
                .map(|t| (t.get_ref().clone(), id.clone(), t.span())),
        );
        let (endpoint, types) = endpoint(c, &id, raw_endpoint);
        outcomes.extend(types.into_iter().map(|t| (t, id.clone())));
        endpoints.extend(endpoint);
    }
    if let (Some(span), None) = (first_key, &primary) {
        c.error(
            span,
            "no endpoint is primary; mark exactly one endpoint with `primary = true`",
        );
    }
    Declared {
        endpoints,
        outcomes,
        outcome_spans,
    }
}

/// The endpoint if it is valid, and the event types it declares as outcomes in any case.
fn endpoint(c: &mut Checker, id: &str, raw: RawEndpoint) -> (Option<Endpoint>, Vec<String>) {
    let before = c.findings.len();
    let types = event_types(c, &raw.events, &format!("endpoint `{id}`"));
    if raw.events.get_ref().is_empty() {
        c.error(
            raw.events.span(),
            format!(
                "`events` of endpoint `{id}` is empty; list at least one event type, e.g. \
                 events = [\"death\"]"
            ),
        );
    }
    let codes = raw.codes.as_ref().map(|codes| code_prefixes(c, id, codes));
    let label = raw.label.map(|l| non_empty(c, l, "endpoint label"));
    let primary = raw.primary.is_some_and(|p| *p.get_ref());

    let Some(kind) = Kind::parse(raw.kind.get_ref()) else {
        c.error(
            raw.kind.span(),
            format!(
                "unknown kind `{}` for endpoint `{id}`; expected {KINDS}",
                raw.kind.get_ref()
            ),
        );
        return (None, types);
    };
    let kind_name = kind.name();
    let not_applicable = |c: &mut Checker, key: &str, span: Range<usize>, only: &str| {
        c.error(
            span,
            format!("`{key}` does not apply to {kind_name} endpoint `{id}`; only {only}"),
        );
    };
    if let (Kind::Count | Kind::Continuous, Some(h)) = (kind, &raw.horizon_days) {
        not_applicable(
            c,
            "horizon_days",
            h.span(),
            "time_to_event and binary endpoints have a horizon (the window bounds this one)",
        );
    }
    if let (Kind::TimeToEvent | Kind::Binary, Some(w)) = (kind, &raw.window) {
        not_applicable(
            c,
            "window",
            w.span(),
            "count and continuous endpoints have a window (use `horizon_days`)",
        );
    }
    if let (Kind::TimeToEvent | Kind::Binary | Kind::Count, Some(t)) = (kind, &raw.target_day) {
        not_applicable(
            c,
            "target_day",
            t.span(),
            "continuous endpoints have a target day",
        );
    }
    let competing = match (&raw.competing, kind) {
        (Some(list), Kind::TimeToEvent) => competing(c, id, list, raw.events.get_ref()),
        (Some(list), _) => {
            not_applicable(
                c,
                "competing",
                list.span(),
                "time_to_event endpoints have competing events",
            );
            Vec::new()
        }
        (None, _) => Vec::new(),
    };
    if kind == Kind::Continuous && raw.events.get_ref().len() > 1 {
        c.error(
            raw.events.span(),
            format!(
                "continuous endpoint `{id}` reads the value of one event type, but `events` \
                 lists {}; declare one endpoint per measurement",
                raw.events.get_ref().len()
            ),
        );
    }

    let horizon = match (&raw.horizon_days, kind) {
        (Some(h), Kind::TimeToEvent | Kind::Binary) => horizon(c, id, h),
        _ => None,
    };
    let needs = |c: &mut Checker, what: &str| {
        c.error(
            raw.kind.span(),
            format!("{kind_name} endpoint `{id}` needs {what}"),
        );
    };
    let window = match (&raw.window, kind) {
        (Some(w), Kind::Count | Kind::Continuous) => window(c, id, w),
        (None, Kind::Count) => {
            needs(
                c,
                "`window`, the days after randomisation it counts events in (both included), \
                 e.g. window = [0, 365]",
            );
            None
        }
        (None, Kind::Continuous) => {
            needs(
                c,
                "`window`, the days after randomisation a value may come from (both included), \
                 e.g. window = [335, 395]",
            );
            None
        }
        _ => None,
    };
    let target_day = match (&raw.target_day, kind) {
        (Some(t), Kind::Continuous) => target_day(c, id, t, window),
        (None, Kind::Continuous) => {
            needs(
                c,
                "`target_day`, the day after randomisation its value is wanted for, e.g. \
                 target_day = 365",
            );
            None
        }
        _ => None,
    };
    if kind == Kind::Binary && raw.horizon_days.is_none() {
        needs(
            c,
            "`horizon_days`, the days after randomisation within which an event counts, e.g. \
             horizon_days = 30",
        );
    }
    if c.findings.len() > before {
        return (None, types);
    }

    let events = EventSelector {
        types: types.clone(),
        codes: codes.unwrap_or_default(),
    };
    let kind = match (kind, horizon, window, target_day) {
        (Kind::TimeToEvent, horizon_days, _, _) => EndpointKind::TimeToEvent {
            events,
            horizon_days,
        },
        (Kind::Binary, Some(horizon_days), _, _) => EndpointKind::Binary {
            events,
            horizon_days,
        },
        (Kind::Count, _, Some(window), _) => EndpointKind::Count { events, window },
        (Kind::Continuous, _, Some(window), Some(target_day)) => EndpointKind::Continuous {
            events,
            window,
            target_day,
        },
        // Every missing piece was reported above.
        _ => return (None, types),
    };
    let endpoint = Endpoint {
        id: id.to_string(),
        label,
        primary,
        kind,
        competing,
    };
    (Some(endpoint), types)
}

/// `competing = [...]`: well-formed event types, at least one, none of them the endpoint's own.
fn competing(
    c: &mut Checker,
    id: &str,
    raw: &SpannedList<String>,
    events: &[Spanned<String>],
) -> Vec<String> {
    if raw.get_ref().is_empty() {
        c.error(
            raw.span(),
            format!(
                "`competing` of endpoint `{id}` is empty; list the competing event types, e.g. \
                 competing = [\"death\"], or remove it"
            ),
        );
    }
    let types = event_types(c, raw, &format!("`competing` of endpoint `{id}`"));
    for item in raw.get_ref() {
        if events.iter().any(|e| e.get_ref() == item.get_ref()) {
            c.error(
                item.span(),
                format!(
                    "event type `{}` is both an outcome and a competing event of endpoint \
                     `{id}`; an event cannot compete with itself",
                    item.get_ref()
                ),
            );
        }
    }
    types
}

/// Event type names, reporting malformed and repeated ones at their position. `place` says
/// where the list is ("endpoint `death_30d`", "`censor_on`").
pub(super) fn event_types(c: &mut Checker, raw: &SpannedList<String>, place: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut types = Vec::new();
    for item in raw.get_ref() {
        let name = item.get_ref();
        if !is_field_name(name) {
            c.error(
                item.span(),
                format!(
                    "event type `{name}` in {place} must start with a lower-case letter and \
                     contain only lower-case letters, digits and `_`"
                ),
            );
        } else if !seen.insert(name.clone()) {
            c.error(
                item.span(),
                format!("event type `{name}` is listed twice in {place}"),
            );
        }
        types.push(name.clone());
    }
    types
}

/// Code prefixes (`I21`): matched with `starts_with`, so blanks and padding would silently
/// match nothing or everything.
fn code_prefixes(c: &mut Checker, id: &str, raw: &SpannedList<String>) -> Vec<String> {
    if raw.get_ref().is_empty() {
        c.error(
            raw.span(),
            format!(
                "`codes` of endpoint `{id}` is empty; list code prefixes such as [\"I21\"], or \
                 remove `codes` to select events whatever their code"
            ),
        );
    }
    let mut seen = HashSet::new();
    let mut codes = Vec::new();
    for item in raw.get_ref() {
        let code = item.get_ref();
        if code.trim().is_empty() {
            c.error(
                item.span(),
                format!("a code of endpoint `{id}` must not be empty"),
            );
        } else if code.trim() != code {
            c.error(
                item.span(),
                format!("code `{code}` of endpoint `{id}` must not start or end with spaces"),
            );
        } else if !seen.insert(code.clone()) {
            c.error(
                item.span(),
                format!("code `{code}` is listed twice in endpoint `{id}`"),
            );
        }
        codes.push(code.clone());
    }
    codes
}

fn horizon(c: &mut Checker, id: &str, raw: &Spanned<i64>) -> Option<u32> {
    let days = u32::try_from(*raw.get_ref()).ok().filter(|&d| d > 0);
    if days.is_none() {
        c.error(
            raw.span(),
            format!(
                "`horizon_days` of endpoint `{id}` must be a positive whole number of days, \
                 got {}",
                raw.get_ref()
            ),
        );
    }
    days
}

fn window(c: &mut Checker, id: &str, raw: &SpannedList<i64>) -> Option<DayWindow> {
    let [from, to] = raw.get_ref().as_slice() else {
        let n = raw.get_ref().len();
        c.error(
            raw.span(),
            format!(
                "`window` of endpoint `{id}` must be two days after randomisation, \
                 [from, to], got {n} value{}",
                if n == 1 { "" } else { "s" }
            ),
        );
        return None;
    };
    let day = |c: &mut Checker, d: &Spanned<i64>| {
        let day = u32::try_from(*d.get_ref()).ok();
        if day.is_none() {
            c.error(
                d.span(),
                format!(
                    "days in `window` of endpoint `{id}` count from randomisation (day 0) and \
                     cannot be negative, got {}",
                    d.get_ref()
                ),
            );
        }
        day
    };
    let (from_day, to_day) = (day(c, from), day(c, to));
    let (from_day, to_day) = (from_day?, to_day?);
    if from_day > to_day {
        c.error(
            to.span(),
            format!(
                "`window` of endpoint `{id}` starts at day {from_day}, after it ends at day \
                 {to_day}"
            ),
        );
        return None;
    }
    Some(DayWindow { from_day, to_day })
}

fn target_day(
    c: &mut Checker,
    id: &str,
    raw: &Spanned<i64>,
    window: Option<DayWindow>,
) -> Option<u32> {
    let Ok(day) = u32::try_from(*raw.get_ref()) else {
        c.error(
            raw.span(),
            format!(
                "`target_day` of endpoint `{id}` must be a whole number of days after \
                 randomisation (0 or more), got {}",
                raw.get_ref()
            ),
        );
        return None;
    };
    if let Some(w) = window {
        if !(w.from_day..=w.to_day).contains(&day) {
            c.error(
                raw.span(),
                format!(
                    "`target_day` {day} of endpoint `{id}` is outside its window [{}, {}]",
                    w.from_day, w.to_day
                ),
            );
            return None;
        }
    }
    Some(day)
}

/// `[follow_up]`, checked against the endpoints: an event type cannot both end follow-up and
/// be an outcome, or the same event would censor the subject and count as their event.
pub(super) fn follow_up(c: &mut Checker, raw: RawFollowUp, declared: &Declared) -> FollowUp {
    let censor_on = match &raw.censor_on {
        Some(list) => {
            let types = event_types(c, list, "`censor_on`");
            for item in list.get_ref() {
                let name = item.get_ref();
                let users: Vec<&str> = declared
                    .outcomes
                    .iter()
                    .filter(|(t, _)| t == name)
                    .map(|(_, endpoint)| endpoint.as_str())
                    .collect();
                if let Some(users) = describe_endpoints(&users) {
                    c.error(
                        item.span(),
                        format!(
                            "event type `{name}` is in `censor_on` but is an outcome of {users}; \
                             an event cannot both end follow-up and count as an outcome"
                        ),
                    );
                }
            }
            types
        }
        None => Vec::new(),
    };
    let reporting_lag_days = match &raw.reporting_lag_days {
        None => 0,
        Some(lag) => u32::try_from(*lag.get_ref()).unwrap_or_else(|_| {
            c.error(
                lag.span(),
                format!(
                    "`reporting_lag_days` must be a whole number of days, 0 or more, got {}",
                    lag.get_ref()
                ),
            );
            0
        }),
    };
    FollowUp {
        censor_on,
        reporting_lag_days,
        sources: Vec::new(),
        precedence: Vec::new(),
    }
}

/// "endpoint `a`", "endpoints `a` and `b`", "endpoints `a`, `b` and `c`"; `None` for none.
fn describe_endpoints(ids: &[&str]) -> Option<String> {
    let quoted: Vec<String> = ids.iter().map(|id| format!("`{id}`")).collect();
    match quoted.as_slice() {
        [] => None,
        [one] => Some(format!("endpoint {one}")),
        [init @ .., last] => Some(format!("endpoints {} and {last}", init.join(", "))),
    }
}
