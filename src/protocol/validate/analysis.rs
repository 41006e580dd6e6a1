//! `[analysis]`: the statistical analysis plan's choices for the comparisons between arms —
//! stratified by the randomisation strata or not, the baseline covariates that adjust them, the
//! model for counts and the confidence level — as defaults, with `[analysis.endpoints.ID]`
//! overriding them for one endpoint.
//!
//! A covariate must be a value every allocation records: `site`, or a stratification factor
//! (its level is part of the stratum key). Other enrolment fields are checked on enrolment but
//! not kept, so an analysis could not read them; naming one is an error that says so.

use toml::Spanned;

use super::{Checker, Scope};
use crate::protocol::model::{AnalysisPlan, Endpoint, EndpointKind, EndpointPlan};
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
        endpoints.push((id, resolved));
    }
    AnalysisPlan { default, endpoints }
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
            Some(source) if name != "site" && !s.strata.contains(name) => c.error(
                v.span(),
                format!(
                    "{table}: covariate `{name}` ({}) is checked at enrolment but not kept with \
                     the allocation, so no analysis can read it; the covariates available are \
                     `site` and the stratification factors ({})",
                    source.describe(),
                    list_strata(s.strata)
                ),
            ),
            Some(_) => out.push(name.clone()),
        }
    }
    out
}

fn list_strata(strata: &[String]) -> String {
    list(strata.iter().map(String::as_str))
}
