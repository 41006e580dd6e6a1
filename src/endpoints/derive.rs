//! Deriving one endpoint for every randomised subject.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use serde::Serialize;

use super::{DataCutoff, Event, Subject};
use crate::protocol::{Endpoint, EndpointKind, EventSelector, FollowUp};

/// An event together with the day it was received, which decides whether it is known as of a
/// cut-off.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReceivedEvent {
    pub event: Event,
    pub received_on: NaiveDate,
}

impl ReceivedEvent {
    /// The order events are held and derived in: by subject, event date and event id.
    pub fn order(&self) -> (&str, NaiveDate, &str) {
        (&self.event.subject, self.event.date, &self.event.event_id)
    }
}

/// Below this many events, [`sort_received`] sorts them as they are.
const SORT_BY_RANK_FROM: usize = 4096;

/// Put events in [`ReceivedEvent::order`], stably (events of equal order keep theirs).
///
/// Events in order already (SQLite reads a trial's through its subject index) are only checked.
/// Others, as PostgreSQL reads them (in the order stored, which is the order delivered), are
/// not sorted as they are: that moved every event (a dozen fields) many times over and compared
/// subjects' texts at every step, about 40 ms for a trial's 100,000 events against 1–2 ms in
/// order. Each subject is ranked once instead, small keys (rank, date, position) are sorted,
/// the event ids compared only between events of one subject and day, and each event moved
/// once into its place.
pub fn sort_received(events: &mut [ReceivedEvent]) {
    if events.is_sorted_by(|a, b| a.order() <= b.order()) {
        return;
    }
    if events.len() < SORT_BY_RANK_FROM {
        events.sort_by(|a, b| a.order().cmp(&b.order()));
        return;
    }
    let mut subjects: Vec<&str> = events.iter().map(|e| e.event.subject.as_str()).collect();
    subjects.sort_unstable();
    subjects.dedup();
    let rank: HashMap<&str, u32> = subjects
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, i as u32))
        .collect();
    let mut keys: Vec<(u32, NaiveDate, usize)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (rank[e.event.subject.as_str()], e.event.date, i))
        .collect();
    keys.sort_unstable_by(|a, b| {
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then_with(|| events[a.2].event.event_id.cmp(&events[b.2].event.event_id))
            // The position last: equal events keep their order, as a stable sort leaves them.
            .then(a.2.cmp(&b.2))
    });
    // `from[i]`: the position of the event that goes to `i`. Each cycle of that permutation is
    // followed once, every place marked done (`from[i] == i`) as it is filled.
    let mut from: Vec<usize> = keys.into_iter().map(|(_, _, i)| i).collect();
    for start in 0..from.len() {
        let mut at = start;
        while from[at] != at {
            let source = from[at];
            from[at] = at;
            if source == start {
                break;
            }
            events.swap(at, source);
            at = source;
        }
    }
}

/// Why follow-up ended without the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CensorReason {
    /// Reached the endpoint's horizon event-free.
    Horizon,
    /// Reached the data cut-off (minus the reporting lag).
    Administrative,
    /// A censoring event of this type (e.g. `emigration`).
    Event(String),
    /// The patient withdrew from further data collection.
    Withdrawal,
    /// Followed through the window but no value was recorded (continuous endpoints).
    Missing,
}

impl CensorReason {
    /// The text written to exports.
    pub fn as_text(&self) -> &str {
        match self {
            CensorReason::Horizon => "horizon",
            CensorReason::Administrative => "administrative",
            CensorReason::Event(t) => t,
            CensorReason::Withdrawal => "withdrawal",
            CensorReason::Missing => "missing",
        }
    }
}

/// A subject's value of one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// `time_days` to the event (`event`) or to censoring.
    TimeToEvent { time_days: i64, event: bool },
    /// `event` is `None` when the subject was not followed for the whole horizon
    /// event-free (incomplete, never counted as a survivor).
    Binary { time_days: i64, event: Option<bool> },
    /// Events in the window; `time_days` is the last day of the window observed.
    Count {
        time_days: i64,
        count: u32,
        complete: bool,
    },
    /// The value closest to the target day, with the day it was measured.
    Continuous {
        time_days: Option<i64>,
        value: Option<f64>,
    },
}

/// One subject's row for one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointRow {
    #[serde(flatten)]
    pub subject: Subject,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Why follow-up ended without the outcome, when it did.
    pub censor_reason: Option<CensorReason>,
    /// Provenance: the source of the event that decided the row (the outcome event, the
    /// measurement, or the censoring event), or, when follow-up ended administratively, the
    /// source whose complete-through date ended it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Arc<str>>,
    /// The id of the event that decided the row, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_event_id: Option<Arc<str>>,
}

impl EndpointRow {
    /// `time_days` as exported (empty for a continuous endpoint with no value).
    pub fn time_days(&self) -> Option<i64> {
        match self.outcome {
            Outcome::TimeToEvent { time_days, .. }
            | Outcome::Binary { time_days, .. }
            | Outcome::Count { time_days, .. } => Some(time_days),
            Outcome::Continuous { time_days, .. } => time_days,
        }
    }

    /// The `event` column as exported: 1/0 for time-to-event and binary (empty when
    /// incomplete), the count, or the continuous value.
    pub fn event_text(&self) -> String {
        match self.outcome {
            Outcome::TimeToEvent { event, .. } => u8::from(event).to_string(),
            Outcome::Binary { event, .. } => {
                event.map(|e| u8::from(e).to_string()).unwrap_or_default()
            }
            Outcome::Count { count, .. } => count.to_string(),
            Outcome::Continuous { value, .. } => value.map(|v| v.to_string()).unwrap_or_default(),
        }
    }
}

/// Time-to-event rows as the survival statistics take them: time in days, event flag and the
/// index of the subject's arm in `arms` (rows of other kinds or other arms are left out).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SurvivalData {
    pub time: Vec<f64>,
    pub event: Vec<bool>,
    pub group: Vec<usize>,
}

impl SurvivalData {
    pub fn from_rows(rows: &[EndpointRow], arms: &[&str]) -> Self {
        let mut data = SurvivalData::default();
        for r in rows {
            if let (Outcome::TimeToEvent { time_days, event }, Some(g)) =
                (&r.outcome, arms.iter().position(|a| *a == &*r.subject.arm))
            {
                data.time.push(*time_days as f64);
                data.event.push(*event);
                data.group.push(g);
            }
        }
        data
    }
}

/// Derive `endpoint` for every subject randomised on or before the cut-off, in the order given.
pub fn derive(
    follow_up: &FollowUp,
    endpoint: &Endpoint,
    subjects: &[Subject],
    events: &[ReceivedEvent],
    cutoff: DataCutoff,
) -> Vec<EndpointRow> {
    derive_grouped(
        follow_up,
        endpoint,
        subjects,
        &EventsBySubject::new(events),
        cutoff,
    )
}

/// Events grouped by subject and ordered by date and event id, whatever their receipt day:
/// group once, then derive several endpoints or cut-offs with [`derive_grouped`].
pub struct EventsBySubject<'a> {
    /// All events, ordered by subject, date and event id.
    ordered: Vec<&'a ReceivedEvent>,
    /// Each subject's run in `ordered`, and whether an event id occurs in it more than once
    /// (the same event delivered twice; stored events never are, as ids are unique there).
    by_subject: HashMap<&'a str, SubjectEvents>,
}

#[derive(Clone, Copy)]
struct SubjectEvents {
    start: usize,
    end: usize,
    repeated_ids: bool,
}

impl<'a> EventsBySubject<'a> {
    pub fn new(events: &'a [ReceivedEvent]) -> Self {
        Self::of(events.iter())
    }

    /// Group the events `events` yields (for instance only the types an endpoint reads).
    pub fn of(events: impl Iterator<Item = &'a ReceivedEvent>) -> Self {
        let mut ordered: Vec<&ReceivedEvent> = events.collect();
        // Stored events arrive in this order already: check before sorting.
        if !ordered.is_sorted_by(|a, b| a.order() <= b.order()) {
            ordered.sort_by(|a, b| a.order().cmp(&b.order()));
        }
        let mut by_subject: HashMap<&str, SubjectEvents> = HashMap::new();
        let mut ids: Vec<&str> = Vec::new();
        let mut start = 0;
        while start < ordered.len() {
            let subject = ordered[start].event.subject.as_str();
            let mut end = start + 1;
            while end < ordered.len() && ordered[end].event.subject == subject {
                end += 1;
            }
            ids.clear();
            ids.extend(
                ordered[start..end]
                    .iter()
                    .map(|e| e.event.event_id.as_str()),
            );
            ids.sort_unstable();
            let repeated_ids = ids.windows(2).any(|w| w[0] == w[1]);
            by_subject.insert(
                subject,
                SubjectEvents {
                    start,
                    end,
                    repeated_ids,
                },
            );
            start = end;
        }
        EventsBySubject {
            ordered,
            by_subject,
        }
    }

    /// Whether the subject has any event here.
    pub fn has_events(&self, subject: &str) -> bool {
        self.by_subject.contains_key(subject)
    }

    /// A subject's events in date and event id order, whatever their receipt day.
    fn of_subject(&self, subject: &str) -> &[&'a ReceivedEvent] {
        self.by_subject
            .get(subject)
            .map_or(&[], |r| &self.ordered[r.start..r.end])
    }

    /// A subject's events known as of `cutoff` (received by then), each event id once, into
    /// `known` (cleared first).
    fn known(&self, subject: &str, cutoff: DataCutoff, known: &mut Vec<&'a ReceivedEvent>) {
        known.clear();
        let Some(&range) = self.by_subject.get(subject) else {
            return;
        };
        let list = self.ordered[range.start..range.end]
            .iter()
            .filter(|e| e.received_on <= cutoff.0);
        if !range.repeated_ids {
            known.extend(list);
            return;
        }
        for e in list {
            // The same event delivered twice counts once (the first in date order). Lists are
            // a handful of events, so a linear look beats hashing.
            if !known.iter().any(|k| k.event.event_id == e.event.event_id) {
                known.push(e);
            }
        }
    }

    /// Subject `s`'s value of `endpoint` as of `cutoff` ([`subject_outcome`] on its known
    /// events); `scratch` is reused between calls.
    fn outcome(
        &self,
        follow_up: &FollowUp,
        endpoint: &Endpoint,
        s: &Subject,
        cutoff: DataCutoff,
        admin_end: NaiveDate,
        scratch: &mut Scratch<'a>,
    ) -> (Outcome, Option<CensorReason>) {
        let (outcome, reason, _) = self.decided(follow_up, endpoint, s, cutoff, admin_end, scratch);
        (outcome, reason)
    }

    /// [`Self::outcome`], with the event that decided it (see [`decided_outcome`]), which
    /// stays in `scratch.views` until the next call.
    fn decided(
        &self,
        follow_up: &FollowUp,
        endpoint: &Endpoint,
        s: &Subject,
        cutoff: DataCutoff,
        admin_end: NaiveDate,
        scratch: &mut Scratch<'a>,
    ) -> (Outcome, Option<CensorReason>, Option<usize>) {
        self.known(&s.subject, cutoff, &mut scratch.known);
        scratch.views.clear();
        // Only the types the endpoint reads can decide it, and precedence works within a
        // type: the subject's other events are left out before anything looks at them.
        let reads = Reads::of(follow_up, endpoint);
        scratch.views.extend(
            scratch
                .known
                .iter()
                .map(|e| KnownEvent::of(&e.event))
                .filter(|e| reads.reads(e.event_type)),
        );
        apply_precedence(follow_up, s.randomised_on, &mut scratch.views);
        decided_outcome_until(
            follow_up,
            endpoint,
            s.randomised_on,
            &scratch.views,
            admin_end,
            s.data_collection_ends,
        )
    }
}

/// The event types an endpoint's value can depend on: its own (whatever their codes, since a
/// report taking precedence may replace a selected event by one of another code) and those
/// that end follow-up.
struct Reads<'p> {
    own: &'p [String],
    censor_on: &'p [String],
}

impl<'p> Reads<'p> {
    fn of(follow_up: &'p FollowUp, endpoint: &'p Endpoint) -> Self {
        Reads {
            own: &endpoint.events().types,
            censor_on: &follow_up.censor_on,
        }
    }

    fn reads(&self, event_type: &str) -> bool {
        self.own
            .iter()
            .chain(self.censor_on)
            .any(|t| t == event_type)
    }
}

/// Buffers the per-subject derivation reuses from one subject to the next.
#[derive(Default)]
struct Scratch<'a> {
    known: Vec<&'a ReceivedEvent>,
    views: Vec<KnownEvent<'a>>,
}

/// [`derive`] on events grouped in advance.
pub fn derive_grouped(
    follow_up: &FollowUp,
    endpoint: &Endpoint,
    subjects: &[Subject],
    events: &EventsBySubject<'_>,
    cutoff: DataCutoff,
) -> Vec<EndpointRow> {
    let admin_end = complete_through(follow_up, endpoint, cutoff);
    // Administrative censoring is where the slowest source's data end.
    let slowest: Option<Arc<str>> =
        slowest_source(follow_up, endpoint).map(|s| s.id.as_str().into());
    let mut known = Scratch::default();
    subjects
        .iter()
        .filter(|s| s.randomised_on <= cutoff.0)
        .map(|s| {
            let (outcome, censor_reason, by) =
                events.decided(follow_up, endpoint, s, cutoff, admin_end, &mut known);
            let decided_by = by.and_then(|i| known.views.get(i));
            let (source, source_event_id) = match (decided_by, &censor_reason) {
                (Some(e), _) => (e.source.map(Arc::from), Some(Arc::from(e.event_id))),
                (None, Some(CensorReason::Administrative)) => (slowest.clone(), None),
                (None, _) => (None, None),
            };
            EndpointRow {
                subject: s.clone(),
                outcome,
                censor_reason,
                source,
                source_event_id,
            }
        })
        .collect()
}

/// The last day of administrative follow-up as of `cutoff` when no source is named: the
/// cut-off minus the follow-up's default reporting lag.
pub fn administrative_end(follow_up: &FollowUp, cutoff: DataCutoff) -> NaiveDate {
    cutoff.0 - chrono::Days::new(u64::from(follow_up.reporting_lag_days))
}

/// The day `endpoint`'s data are complete through as of `cutoff`, where its administrative
/// follow-up ends: the cut-off minus the lag of the source its events come from (for a
/// composite, the slowest of them; see [`FollowUp::lag_of`]).
pub fn complete_through(
    follow_up: &FollowUp,
    endpoint: &Endpoint,
    cutoff: DataCutoff,
) -> NaiveDate {
    cutoff.0 - chrono::Days::new(u64::from(follow_up.lag_of(endpoint)))
}

/// The source whose complete-through date ends an endpoint's administrative follow-up: the
/// slowest of the sources its types are taken from (first in precedence per type).
pub fn slowest_source<'f>(
    follow_up: &'f FollowUp,
    endpoint: &Endpoint,
) -> Option<&'f crate::protocol::Source> {
    endpoint
        .events()
        .types
        .iter()
        .filter_map(|t| follow_up.sources_of(t).into_iter().next())
        .max_by_key(|s| s.reporting_lag_days)
}

/// Keep, among a subject's follow-up events (dated on or after `randomised_on`) of each type
/// several sources deliver, only those of the source first in precedence among the sources that
/// reported any: when the cause-of-death register and the population register both report a
/// death, the death counts as the register taking precedence reports it (its date, its code);
/// until that register reports, the other's report counts. History before randomisation is
/// left as it is (it is never an outcome, and one register's history must not hide another's
/// follow-up). An event stored under a source that does not deliver its type in this protocol
/// (written for another trial, or before the protocol declared sources) is dropped. `known` is
/// one subject's events.
pub fn apply_precedence(
    follow_up: &FollowUp,
    randomised_on: NaiveDate,
    known: &mut Vec<KnownEvent<'_>>,
) {
    if follow_up.sources.is_empty() {
        return;
    }
    let declared = |e: &KnownEvent<'_>| match e.source {
        Some(s) => follow_up
            .source(s)
            .is_some_and(|src| src.delivers.iter().any(|t| t == e.event_type)),
        None => true,
    };
    if !known.iter().all(declared) {
        known.retain(declared);
    }
    if !follow_up.has_precedence() || known.len() < 2 {
        return;
    }
    // Each follow-up event of a ruled type with its rank, and the best rank reported per
    // ruled type (ruled types are few: a short list beats a map).
    let follow = |e: &KnownEvent<'_>| e.date >= randomised_on;
    let ranked: Vec<Option<usize>> = known
        .iter()
        .map(|e| {
            (follow(e)
                && follow_up
                    .precedence
                    .iter()
                    .any(|p| p.event_type == e.event_type))
            .then(|| follow_up.rank(e.event_type, e.source))
        })
        .collect();
    let mut best: Vec<(&str, usize)> = Vec::new();
    for (e, rank) in known.iter().zip(&ranked) {
        let Some(rank) = *rank else { continue };
        match best.iter_mut().find(|(t, _)| *t == e.event_type) {
            Some((_, b)) => *b = (*b).min(rank),
            None => best.push((e.event_type, rank)),
        }
    }
    let mut ranks = ranked.into_iter();
    known.retain(|e| match ranks.next().flatten() {
        None => true,
        Some(rank) => best.iter().any(|(t, b)| *t == e.event_type && *b == rank),
    });
}

/// An event known as of the cut-off, as the per-subject derivation reads it (borrowed, so a
/// caller holding events in another shape — the simulator — builds these without allocating).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnownEvent<'a> {
    pub event_type: &'a str,
    pub code: Option<&'a str>,
    pub date: NaiveDate,
    pub value: Option<f64>,
    /// The source it is stored under (decides precedence).
    pub source: Option<&'a str>,
    /// The sender's id of the event (provenance of a derived value).
    pub event_id: &'a str,
}

impl<'a> KnownEvent<'a> {
    pub fn of(e: &'a Event) -> Self {
        KnownEvent {
            event_type: &e.event_type,
            code: e.code.as_deref(),
            date: e.date,
            value: e.value,
            source: e.source.as_deref(),
            event_id: &e.event_id,
        }
    }
}

/// How many subjects have a time-to-event endpoint's event as of `cutoff`: the number of
/// [`derive_grouped`] rows with `event: true`, without building the rows (interim monitoring
/// asks this for many cut-offs). 0 for other kinds of endpoint.
pub fn count_events(
    follow_up: &FollowUp,
    endpoint: &Endpoint,
    subjects: &[Subject],
    events: &EventsBySubject<'_>,
    cutoff: DataCutoff,
) -> u64 {
    if !matches!(endpoint.kind, EndpointKind::TimeToEvent { .. }) {
        return 0;
    }
    let admin_end = complete_through(follow_up, endpoint, cutoff);
    let mut known = Scratch::default();
    subjects
        .iter()
        .filter(|s| s.randomised_on <= cutoff.0)
        .filter(|s| {
            let (outcome, _) =
                events.outcome(follow_up, endpoint, s, cutoff, admin_end, &mut known);
            matches!(outcome, Outcome::TimeToEvent { event: true, .. })
        })
        .count() as u64
}

/// The days up to `until` on which the number of subjects with a time-to-event endpoint's event
/// (as [`count_events`] counts them) changes: `(day, +1 or -1)` per change, in no particular
/// order; empty for other kinds of endpoint. A subject's value as of cut-off C depends on C
/// only through the events received by C and the administrative end C − lag. It can become an
/// event only when one of its endpoint events is received or comes within follow-up (on its
/// date plus the lag), and stop being one only when a censoring event is received or comes
/// within follow-up (the day after its date plus the lag, as follow-up then ends at it), or
/// when a report of a type under a precedence rule is received or comes within follow-up (a
/// register taking precedence replaces the events of the others); it is derived on those days
/// only.
pub fn event_count_changes(
    follow_up: &FollowUp,
    endpoint: &Endpoint,
    subjects: &[Subject],
    events: &EventsBySubject<'_>,
    until: DataCutoff,
) -> Vec<(NaiveDate, i64)> {
    let mut changes = Vec::new();
    let mut counting = EventCountChanges::new(follow_up, endpoint, until);
    for s in subjects {
        counting.of_subject(s, events, &mut changes);
    }
    changes
}

/// [`event_count_changes`] one subject at a time (a subject's changes depend only on the
/// rules, the endpoint, `until`, the subject and its own events).
pub struct EventCountChanges<'r, 'e> {
    follow_up: &'r FollowUp,
    endpoint: &'r Endpoint,
    /// The endpoint's selector; `None` for an endpoint that is not time-to-event (no changes).
    selector: Option<&'r EventSelector>,
    lag: chrono::Days,
    until: DataCutoff,
    scratch: Scratch<'e>,
    /// (day, whether the day can end an event: from a censoring event).
    days: Vec<(NaiveDate, bool)>,
}

impl<'r, 'e> EventCountChanges<'r, 'e> {
    pub fn new(follow_up: &'r FollowUp, endpoint: &'r Endpoint, until: DataCutoff) -> Self {
        let selector = match &endpoint.kind {
            EndpointKind::TimeToEvent {
                events: selector, ..
            } => Some(selector),
            _ => None,
        };
        EventCountChanges {
            follow_up,
            endpoint,
            selector,
            lag: chrono::Days::new(u64::from(follow_up.lag_of(endpoint))),
            until,
            scratch: Scratch::default(),
            days: Vec::new(),
        }
    }

    /// Append `s`'s changes up to `until` to `changes` (none when `s` was randomised after it).
    pub fn of_subject(
        &mut self,
        s: &Subject,
        events: &EventsBySubject<'e>,
        changes: &mut Vec<(NaiveDate, i64)>,
    ) {
        let Some(selector) = self.selector else {
            return;
        };
        if s.randomised_on > self.until.0 {
            return;
        }
        let (follow_up, endpoint, lag, until) =
            (self.follow_up, self.endpoint, self.lag, self.until);
        let next = chrono::Days::new(1);
        let days = &mut self.days;
        days.clear();
        for e in events.of_subject(&s.subject) {
            let view = KnownEvent::of(&e.event);
            let ruled = follow_up
                .precedence
                .iter()
                .any(|p| p.event_type == e.event.event_type);
            if selects(selector, &view) {
                days.push((e.received_on, false));
                days.push((e.event.date + lag, false));
            } else if follow_up.censor_on.contains(&e.event.event_type) {
                days.push((e.received_on, true));
                days.push((e.event.date + lag + next, true));
            }
            if ruled {
                // A report from a register taking precedence can replace a counted event by a
                // later one, or by one the endpoint does not select: its receipt can end an
                // event too, and its coming within follow-up can start one.
                days.push((e.received_on, true));
                days.push((e.received_on, false));
                days.push((e.event.date + lag, false));
                days.push((e.event.date + lag + next, true));
            }
        }
        if !days.iter().any(|d| !d.1) {
            return;
        }
        days.retain(|d| d.0 >= s.randomised_on && d.0 <= until.0);
        days.sort_unstable();
        days.dedup();
        let mut counted = false;
        for &(day, ends) in days.iter() {
            // Only what can change the current status is looked at.
            if ends != counted {
                continue;
            }
            let cutoff = DataCutoff(day);
            let admin_end = complete_through(follow_up, endpoint, cutoff);
            let (outcome, _) =
                events.outcome(follow_up, endpoint, s, cutoff, admin_end, &mut self.scratch);
            let now = matches!(outcome, Outcome::TimeToEvent { event: true, .. });
            if now != counted {
                changes.push((day, if now { 1 } else { -1 }));
                counted = now;
            }
        }
    }
}

fn selects(selector: &EventSelector, e: &KnownEvent<'_>) -> bool {
    selector.types.iter().any(|t| t == e.event_type)
        && (selector.codes.is_empty()
            || e.code
                .is_some_and(|c| selector.codes.iter().any(|p| c.starts_with(p.as_str()))))
}

/// The events `selector` picks on or after randomisation, in date order, with their day.
fn selected<'k, 'e>(
    known: &'k [KnownEvent<'e>],
    rand: NaiveDate,
    selector: &'k EventSelector,
) -> impl Iterator<Item = (i64, &'k KnownEvent<'e>)> {
    known
        .iter()
        .filter(move |e| e.date >= rand && selects(selector, e))
        .map(move |e| (days(rand, e.date), e))
}

fn days(from: NaiveDate, to: NaiveDate) -> i64 {
    (to - from).num_days()
}

/// Where follow-up ends for a subject (without a horizon), and why: the first of the
/// administrative end, the day data collection stopped (`withdrawn`) and a censoring event.
fn follow_up_end<'k, 'e>(
    follow_up: &FollowUp,
    randomised_on: NaiveDate,
    known: &'k [KnownEvent<'e>],
    admin_end: NaiveDate,
    withdrawn: Option<NaiveDate>,
) -> (NaiveDate, CensorReason, Option<&'k KnownEvent<'e>>) {
    let censoring = known
        .iter()
        .find(|e| e.date >= randomised_on && follow_up.censor_on.iter().any(|t| t == e.event_type));
    let end = match withdrawn {
        Some(w) if w < admin_end => (w, CensorReason::Withdrawal),
        _ => (admin_end, CensorReason::Administrative),
    };
    match censoring {
        Some(e) if e.date < end.0 => (
            e.date,
            CensorReason::Event(e.event_type.to_string()),
            Some(e),
        ),
        _ => (end.0, end.1, None),
    }
}

/// One subject's value of `endpoint`: `known` are the subject's events known as of the cut-off,
/// in (date, event id) order without duplicates (and, where sources overlap, after
/// [`apply_precedence`]); `admin_end` is [`complete_through`].
/// [`derive`] calls this for every subject; so does the design simulator.
pub fn subject_outcome(
    follow_up: &FollowUp,
    endpoint: &Endpoint,
    randomised_on: NaiveDate,
    known: &[KnownEvent<'_>],
    admin_end: NaiveDate,
) -> (Outcome, Option<CensorReason>) {
    let (outcome, reason, _) =
        decided_outcome(follow_up, endpoint, randomised_on, known, admin_end);
    (outcome, reason)
}

/// [`subject_outcome`], with the index in `known` of the event that decided it: the outcome
/// event, the value's measurement, or the censoring event that ended follow-up (`None` when
/// none did: censored at the horizon or administratively).
pub fn decided_outcome(
    follow_up: &FollowUp,
    endpoint: &Endpoint,
    randomised_on: NaiveDate,
    known: &[KnownEvent<'_>],
    admin_end: NaiveDate,
) -> (Outcome, Option<CensorReason>, Option<usize>) {
    decided_outcome_until(follow_up, endpoint, randomised_on, known, admin_end, None)
}

/// [`decided_outcome`] for a subject whose follow-up data stop being collected on `withdrawn`
/// (a withdrawal), if that comes before the administrative end.
pub fn decided_outcome_until(
    follow_up: &FollowUp,
    endpoint: &Endpoint,
    randomised_on: NaiveDate,
    known: &[KnownEvent<'_>],
    admin_end: NaiveDate,
    withdrawn: Option<NaiveDate>,
) -> (Outcome, Option<CensorReason>, Option<usize>) {
    let index = |e: &KnownEvent<'_>| known.iter().position(|k| std::ptr::eq(k, e));
    let rand = randomised_on;
    let (end, end_reason, censoring) = follow_up_end(follow_up, rand, known, admin_end, withdrawn);
    let by_censoring = censoring.and_then(index);
    // Days of follow-up available (negative when randomised after the administrative end).
    let followed = days(rand, end);
    let outcomes = |selector| selected(known, rand, selector);
    match &endpoint.kind {
        EndpointKind::TimeToEvent {
            events,
            horizon_days,
        } => {
            let limit = horizon_days.map(i64::from);
            let (stop, reason) = match limit {
                Some(h) if h <= followed => (h, CensorReason::Horizon),
                _ => (followed.max(0), end_reason),
            };
            match outcomes(events).find(|(d, _)| *d <= stop) {
                Some((d, e)) => (
                    Outcome::TimeToEvent {
                        time_days: d,
                        event: true,
                    },
                    None,
                    index(e),
                ),
                None => {
                    let by = by_censoring.filter(|_| matches!(reason, CensorReason::Event(_)));
                    (
                        Outcome::TimeToEvent {
                            time_days: stop,
                            event: false,
                        },
                        Some(reason),
                        by,
                    )
                }
            }
        }
        EndpointKind::Binary {
            events,
            horizon_days,
        } => {
            let h = i64::from(*horizon_days);
            let stop = h.min(followed.max(0));
            match outcomes(events).find(|(d, _)| *d <= stop) {
                Some((d, e)) => (
                    Outcome::Binary {
                        time_days: d,
                        event: Some(true),
                    },
                    None,
                    index(e),
                ),
                None if followed >= h => (
                    Outcome::Binary {
                        time_days: h,
                        event: Some(false),
                    },
                    None,
                    None,
                ),
                None => (
                    Outcome::Binary {
                        time_days: stop,
                        event: None,
                    },
                    Some(end_reason),
                    by_censoring,
                ),
            }
        }
        EndpointKind::Count { events, window } => {
            let (from, to) = (i64::from(window.from_day), i64::from(window.to_day));
            let observed_to = to.min(followed);
            let count = outcomes(events)
                .filter(|(d, _)| *d >= from && *d <= observed_to)
                .count();
            let complete = observed_to >= to;
            (
                Outcome::Count {
                    time_days: observed_to.max(0),
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                    complete,
                },
                (!complete).then_some(end_reason),
                by_censoring.filter(|_| !complete),
            )
        }
        EndpointKind::Continuous {
            events,
            window,
            target_day,
        } => {
            let (from, to) = (i64::from(window.from_day), i64::from(window.to_day));
            let target = i64::from(*target_day);
            let observed_to = to.min(followed);
            let best = outcomes(events)
                .filter(|(d, e)| *d >= from && *d <= observed_to && e.value.is_some())
                .min_by_key(|(d, _)| ((d - target).abs(), *d));
            match best {
                Some((d, e)) => (
                    Outcome::Continuous {
                        time_days: Some(d),
                        value: e.value,
                    },
                    None,
                    index(e),
                ),
                None => (
                    Outcome::Continuous {
                        time_days: None,
                        value: None,
                    },
                    Some(if observed_to >= to {
                        CensorReason::Missing
                    } else {
                        end_reason
                    }),
                    by_censoring.filter(|_| observed_to < to),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests;
