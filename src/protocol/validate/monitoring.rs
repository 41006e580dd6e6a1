//! `[monitoring]`: the interim-analysis plan of the primary endpoint.

use super::Checker;
use crate::protocol::model::{Endpoint, EndpointKind, Monitoring};
use crate::protocol::raw::RawMonitoring;

pub(super) fn monitoring(
    c: &mut Checker,
    raw: RawMonitoring,
    endpoints: &[Endpoint],
    arms: usize,
) -> Monitoring {
    let alpha = *raw.alpha.get_ref();
    if !(alpha > 0.0 && alpha < 0.5) {
        c.error(
            raw.alpha.span(),
            format!("`alpha` must be between 0 and 0.5, got {alpha}"),
        );
    }
    let sided = match *raw.sided.get_ref() {
        1 => 1,
        2 => 2,
        other => {
            c.error(
                raw.sided.span(),
                format!("`sided` must be 1 or 2, got {other}"),
            );
            2
        }
    };
    let spending = crate::design::SpendingFunction::parse(raw.spending.get_ref().trim())
        .unwrap_or_else(|e| {
            let mut message = e.to_string();
            if message.contains("classical") {
                // Interim monitoring recomputes the boundaries at the information observed at
                // each look, which only a spending function can do without inflating alpha.
                message.push_str(
                    "; [monitoring] needs a spending function because the boundaries are \
                     recomputed at the information observed at each look, which a classical \
                     design (fixed at the planned information) cannot do",
                );
            }
            c.error(raw.spending.span(), message);
            // Never used: a protocol with an error is not returned.
            crate::design::SpendingFunction::OBrienFleming
        });
    let planned_events = u32::try_from(*raw.planned_events.get_ref())
        .ok()
        .filter(|&e| e > 0)
        .unwrap_or_else(|| {
            c.error(
                raw.planned_events.span(),
                format!(
                    "`planned_events` must be a positive whole number, got {}",
                    raw.planned_events.get_ref()
                ),
            );
            1
        });
    let looks: Vec<f64> = raw.looks.get_ref().iter().map(|t| *t.get_ref()).collect();
    if looks.is_empty() {
        c.error(
            raw.looks.span(),
            "`looks` is empty; list the information fractions of the looks, e.g. [0.5, 1.0]",
        );
    }
    let mut previous = 0.0;
    for t in raw.looks.get_ref() {
        let v = *t.get_ref();
        if !(v > previous && v <= 1.0) {
            c.error(
                t.span(),
                format!(
                    "look at information fraction {v} must be after the previous one ({previous}) \
                     and at most 1"
                ),
            );
        }
        previous = v;
    }
    if looks.last().is_some_and(|&t| t != 1.0) {
        c.error(
            raw.looks.span(),
            "the last look must be the final analysis at information fraction 1.0",
        );
    }
    let power = match &raw.power {
        None => 0.8,
        Some(p) => {
            let v = *p.get_ref();
            if !(v > alpha && v < 1.0) {
                c.error(
                    p.span(),
                    format!("`power` must be between alpha and 1, got {v}"),
                );
            }
            v
        }
    };
    match endpoints.iter().find(|e| e.primary) {
        Some(e) if matches!(e.kind, EndpointKind::TimeToEvent { .. }) => {}
        Some(e) => c.error(
            raw.planned_events.span(),
            format!(
                "interim monitoring needs a time-to-event primary endpoint; `{}` is not one",
                e.id
            ),
        ),
        None => c.error(
            raw.planned_events.span(),
            "interim monitoring needs a primary endpoint; declare one with `primary = true`",
        ),
    }
    if arms < 2 {
        c.error(
            raw.sided.span(),
            format!(
                "interim monitoring compares each arm with the reference arm; this protocol has \
                 {arms}"
            ),
        );
    }
    let multiplicity = match &raw.multiplicity {
        None => crate::protocol::model::Multiplicity::default(),
        Some(m) => crate::protocol::model::Multiplicity::parse(m.get_ref()).unwrap_or_else(|| {
            c.error(
                m.span(),
                format!(
                    "unknown `multiplicity` `{}`; expected bonferroni (alpha split equally \
                     between the comparisons with the reference arm) or none (each at the full \
                     alpha)",
                    m.get_ref()
                ),
            );
            crate::protocol::model::Multiplicity::default()
        }),
    };
    let mut forecast_hazard_cuts_days = Vec::new();
    if let Some(cuts) = &raw.forecast_hazard_cuts_days {
        let mut previous = 0.0;
        for t in cuts.get_ref() {
            let v = *t.get_ref();
            if !(v.is_finite() && v > previous) {
                c.error(
                    t.span(),
                    format!(
                        "forecast hazard cut at day {v} must be after the previous one \
                         ({previous}) and finite"
                    ),
                );
            }
            previous = v;
            forecast_hazard_cuts_days.push(v);
        }
        if forecast_hazard_cuts_days.is_empty() {
            c.error(
                cuts.span(),
                "`forecast_hazard_cuts_days` is empty; leave it out for an exponential hazard",
            );
        }
    }
    Monitoring {
        alpha,
        sided,
        spending,
        planned_events,
        looks,
        power,
        multiplicity,
        forecast_hazard_cuts_days,
    }
}
