//! `[analysis]`: the statistical analysis plan's choices for the comparisons between arms —
//! stratified by the randomisation strata or not, the baseline covariates that adjust them, the
//! model for counts and the confidence level — as defaults, with `[analysis.endpoints.ID]`
//! overriding them for one endpoint.
//!
//! A covariate is `site`, a stratification factor (read from the allocation's stratum key), or
//! any other enrolment or derived field (read from the fields the register sent with the
//! enrolment that randomised the subject): integer and number fields enter as linear terms,
//! category, boolean and derived fields as factors. A date field cannot adjust a comparison,
//! and a numeric field cannot adjust a binary endpoint, whose adjusted estimates are
//! Mantel–Haenszel estimates across the strata the categorical covariates form (a derived band
//! of the field can); naming one is an error located where it is written.

use toml::Spanned;

use super::{Checker, Scope, Source};
use crate::protocol::model::{AnalysisPlan, Endpoint, EndpointKind, EndpointPlan, FieldKind};
use crate::protocol::raw::{RawAnalysis, RawEndpointPlan};
use crate::stats::rates::CountModel;

/// What the plan may refer to.
pub(super) struct PlanScope<'a> {
    pub scope: &'a Scope<'a>,
    pub strata: &'a [String],
    /// Valid endpoints.
    pub endpoints: &'a [Endpoint],
    /// Every endpoint id written, valid or not (an invalid one is reported where it is).
    pub written: Vec<&'a str>,
}

pub(super) fn analysis(
    c: &mut Checker,
    raw: Option<RawAnalysis>,
    s: &PlanScope<'_>,
) -> AnalysisPlan {
    let Some(raw) = raw else {
        return AnalysisPlan::default();
    };
    let defaults = RawEndpointPlan {
        stratified: raw.stratified,
        covariates: raw.covariates,
        count_model: raw.count_model,
        conf_level: raw.conf_level,
    };
    let default = plan(c, &defaults, &EndpointPlan::default(), s, None);
    let mut endpoints: Vec<(String, EndpointPlan)> = Vec::new();
    // Where each endpoint's covariates were written: its own table's list, else the defaults'.
    let mut written_at: Vec<(String, Option<Vec<Spanned<String>>>)> = Vec::new();
    for (key, over) in raw.endpoints.0 {
        let id = key.get_ref().clone();
        let endpoint = s.endpoints.iter().find(|e| e.id == id);
        if endpoint.is_none() {
            if !s.written.contains(&id.as_str()) {
                c.error(
                    key.span(),
                    format!(
                        "[analysis.endpoints.{id}]: the protocol has no endpoint `{id}`; its \
                         endpoints are: {}",
                        list(s.written.iter().copied())
                    ),
                );
            }
            continue;
        }
        if endpoints.iter().any(|(e, _)| *e == id) {
            c.error(
                key.span(),
                format!("[analysis.endpoints.{id}] is written twice"),
            );
            continue;
        }
        let resolved = plan(c, &over, &default, s, endpoint);
        written_at.push((id.clone(), over.covariates.map(Spanned::into_inner)));
        endpoints.push((id, resolved));
    }
    let plans = AnalysisPlan { default, endpoints };
    // A numeric covariate cannot form the Mantel–Haenszel strata of a binary comparison:
    // reported once per place it is written, naming the endpoints it would adjust.
    let default_list: Vec<Spanned<String>> = defaults
        .covariates
        .map(Spanned::into_inner)
        .unwrap_or_default();
    // (where, table, covariate, its type, the binary endpoints it would adjust)
    let mut found: Vec<(std::ops::Range<usize>, String, String, &str, String)> = Vec::new();
    for e in s.endpoints {
        if !matches!(e.kind, EndpointKind::Binary { .. }) {
            continue;
        }
        let own = written_at.iter().find(|(id, _)| *id == e.id);
        let (list, table) = match own {
            Some((_, Some(list))) => (list, format!("[analysis.endpoints.{}]", e.id)),
            _ => (&default_list, "[analysis]".to_string()),
        };
        for name in &plans.of(&e.id).covariates {
            let Some(Source::Field(field)) = s.scope.resolve(name) else {
                continue;
            };
            if s.strata.contains(name)
                || !matches!(
                    field.kind,
                    FieldKind::Integer { .. } | FieldKind::Number { .. }
                )
            {
                continue;
            }
            let Some(at) = list.iter().find(|v| v.get_ref() == name) else {
                continue;
            };
            match found.iter_mut().find(|f| f.0 == at.span()) {
                Some(f) => f.4.push_str(&format!(", `{}`", e.id)),
                None => found.push((
                    at.span(),
                    table.clone(),
                    name.clone(),
                    field.kind.type_name(),
                    format!("`{}`", e.id),
                )),
            }
        }
    }
    for (span, table, name, kind, binary) in found {
        c.error(
            span,
            format!(
                "{table}: covariate `{name}` ({kind} field) is numeric and cannot adjust binary \
                 endpoint {binary}: a binary comparison is adjusted by Mantel-Haenszel \
                 estimates across the strata of categorical covariates; use a derived band \
                 of `{name}` (`[derived]`), or give the endpoint its own covariates in \
                 `[analysis.endpoints.ID]`"
            ),
        );
    }
    plans
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// One table's keys over `base` (the built-in defaults, or `[analysis]` for an endpoint's
/// override); `endpoint` is the overridden endpoint.
fn plan(
    c: &mut Checker,
    raw: &RawEndpointPlan,
    base: &EndpointPlan,
    s: &PlanScope<'_>,
    endpoint: Option<&Endpoint>,
) -> EndpointPlan {
    let mut out = base.clone();
    let table = endpoint.map_or_else(
        || "[analysis]".to_string(),
        |e| format!("[analysis.endpoints.{}]", e.id),
    );
    if let Some(v) = &raw.stratified {
        out.stratified = *v.get_ref();
        if out.stratified && s.strata.is_empty() {
            c.error(
                v.span(),
                format!(
                    "{table}: `stratified = true`, but the randomisation has no strata to \
                     stratify by"
                ),
            );
        }
    }
    if let Some(v) = &raw.count_model {
        match CountModel::parse(v.get_ref()) {
            Some(m) => out.count_model = m,
            None => c.error(
                v.span(),
                format!(
                    "{table}: unknown `count_model` `{}`; expected negbin or poisson",
                    v.get_ref()
                ),
            ),
        }
        if let Some(e) = endpoint {
            if !matches!(e.kind, EndpointKind::Count { .. }) {
                c.error(
                    v.span(),
                    format!(
                        "{table}: `count_model` applies to count endpoints; `{}` is not one",
                        e.id
                    ),
                );
            }
        }
    }
    if let Some(v) = &raw.conf_level {
        let level = *v.get_ref();
        if level > 0.0 && level < 1.0 {
            out.conf_level = level;
        } else {
            c.error(
                v.span(),
                format!("{table}: `conf_level` must be between 0 and 1, got {level}"),
            );
        }
    }
    if let Some(list) = &raw.covariates {
        out.covariates = covariates(c, list.get_ref(), &table, s);
    }
    // A covariate that is a stratification factor says nothing more once the comparison is
    // stratified by the strata it is part of.
    if out.stratified {
        for name in &out.covariates {
            if s.strata.contains(name) {
                let span = raw
                    .covariates
                    .as_ref()
                    .and_then(|l| l.get_ref().iter().find(|x| x.get_ref() == name))
                    .map(Spanned::span)
                    .or_else(|| raw.stratified.as_ref().map(Spanned::span));
                if let Some(span) = span {
                    c.error(
                        span,
                        format!(
                            "{table}: covariate `{name}` is a stratification factor and the \
                             comparison is already stratified by the randomisation strata; \
                             leave it out or set `stratified = false`"
                        ),
                    );
                }
            }
        }
    }
    out
}

fn covariates(
    c: &mut Checker,
    list: &[Spanned<String>],
    table: &str,
    s: &PlanScope<'_>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in list {
        let name = v.get_ref();
        if out.contains(name) {
            c.error(
                v.span(),
                format!("{table}: covariate `{name}` is listed twice"),
            );
            continue;
        }
        match s.scope.resolve(name) {
            None => c.error(
                v.span(),
                format!(
                    "{table}: unknown covariate `{name}`: it is not `site`, an enrolment field \
                     or a derived field of this protocol"
                ),
            ),
            Some(Source::Field(f)) if matches!(f.kind, FieldKind::Date { .. }) => c.error(
                v.span(),
                format!(
                    "{table}: covariate `{name}` is a date field, and a date cannot adjust a \
                     comparison; the covariates available are `site` and the integer, number, \
                     category, boolean and derived fields"
                ),
            ),
            Some(_) => out.push(name.clone()),
        }
    }
    out
}
