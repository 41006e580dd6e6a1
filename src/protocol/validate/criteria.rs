//! Inclusion and exclusion criteria (`[[inclusion]]`, `[[exclusion]]`): each names one field and
//! states conditions whose values must fit that field's type.

use std::collections::HashMap;

use toml::Spanned;

use super::fields::{toml_date, toml_number};
use super::{show, Checker, Scope, Source};
use crate::protocol::model::{Condition, Criterion, FieldKind, Value};
use crate::protocol::raw::{RawCriterion, SpannedList};

const CONDITION_KEYS: &str = "eq, ne, in, not_in, lt, le, gt, ge";

pub(super) fn criteria(
    c: &mut Checker,
    raw: Vec<RawCriterion>,
    list: &'static str,
    scope: &Scope<'_>,
    ids: &mut HashMap<String, &'static str>,
) -> Vec<Criterion> {
    let mut out = Vec::new();
    for criterion in raw {
        let id = criterion.id.get_ref().clone();
        if !is_criterion_id(&id) {
            c.error(
                criterion.id.span(),
                format!("criterion id `{id}` must be letters, digits, `_` or `-`"),
            );
        } else if let Some(other) = ids.insert(id.clone(), list) {
            c.error(
                criterion.id.span(),
                format!("criterion id `{id}` is already used by an {other} criterion"),
            );
        }
        if let Some(criterion) = one(c, criterion, list, scope) {
            out.push(criterion);
        }
    }
    out
}

fn one(c: &mut Checker, raw: RawCriterion, list: &str, scope: &Scope<'_>) -> Option<Criterion> {
    let id = raw.id.get_ref().clone();
    let field = raw.field.get_ref().clone();
    let source = scope.resolve(&field);
    if source.is_none() && !c.is_broken(&field) {
        c.error(
            raw.field.span(),
            format!(
                "{list} criterion `{id}` refers to `{field}`, which is not a declared field, \
                 derived field or `site`"
            ),
        );
    }

    let singles = [
        ("eq", &raw.eq),
        ("ne", &raw.ne),
        ("lt", &raw.lt),
        ("le", &raw.le),
        ("gt", &raw.gt),
        ("ge", &raw.ge),
    ];
    let lists = [("in", &raw.in_), ("not_in", &raw.not_in)];
    let given = singles.iter().filter(|(_, v)| v.is_some()).count()
        + lists.iter().filter(|(_, v)| v.is_some()).count();
    if given == 0 {
        c.error(
            raw.id.span(),
            format!(
                "{list} criterion `{id}` has no condition; give at least one of {CONDITION_KEYS}"
            ),
        );
        return None;
    }
    let source = source?;

    let before = c.findings.len();
    let mut conditions = Vec::new();
    // Canonical order (lower bounds before upper ones, so texts read `age >= 18 and age <= 80`),
    // so generated texts do not depend on how the file orders its keys.
    for key in ["eq", "ne", "in", "not_in", "gt", "ge", "lt", "le"] {
        if let Some((_, Some(value))) = singles.iter().find(|(k, _)| *k == key) {
            if let Some(condition) = single(c, key, value, source) {
                conditions.push(condition);
            }
        } else if let Some((_, Some(values))) = lists.iter().find(|(k, _)| *k == key) {
            if let Some(condition) = many(c, key, values, source) {
                conditions.push(condition);
            }
        }
    }
    if c.findings.len() > before {
        return None;
    }

    let text = match raw.text {
        Some(text) => {
            if text.get_ref().trim().is_empty() {
                c.error(
                    text.span(),
                    format!("text of criterion `{id}` must not be empty"),
                );
            }
            text.into_inner()
        }
        None => conditions
            .iter()
            .map(|cond| cond.statement(&field))
            .collect::<Vec<_>>()
            .join(" and "),
    };
    Some(Criterion {
        id,
        text,
        field,
        conditions,
    })
}

fn single(
    c: &mut Checker,
    key: &str,
    raw: &Spanned<toml::Value>,
    source: Source<'_>,
) -> Option<Condition> {
    if let toml::Value::Array(_) = raw.get_ref() {
        let list_key = if key == "ne" { "not_in" } else { "in" };
        c.error(
            raw.span(),
            format!("`{key}` takes a single value; use `{list_key}` for a list"),
        );
        return None;
    }
    let ordering = matches!(key, "lt" | "le" | "gt" | "ge");
    if ordering && !is_ordered(source) {
        c.error(
            raw.span(),
            format!(
                "`{key}` cannot be used on {}: its values have no order; use eq, ne, in or \
                 not_in",
                source.describe()
            ),
        );
        return None;
    }
    let value = typed(c, key, raw, source)?;
    Some(match key {
        "eq" => Condition::Eq(value),
        "ne" => Condition::Ne(value),
        "lt" => Condition::Lt(value),
        "le" => Condition::Le(value),
        "gt" => Condition::Gt(value),
        _ => Condition::Ge(value),
    })
}

fn many(
    c: &mut Checker,
    key: &str,
    raw: &SpannedList<toml::Value>,
    source: Source<'_>,
) -> Option<Condition> {
    if raw.get_ref().is_empty() {
        c.error(
            raw.span(),
            format!("`{key}` is empty; list at least one value"),
        );
        return None;
    }
    let mut values = Vec::new();
    let mut ok = true;
    for item in raw.get_ref() {
        match typed(c, key, item, source) {
            Some(value) => values.push(value),
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    Some(if key == "in" {
        Condition::In(values)
    } else {
        Condition::NotIn(values)
    })
}

fn is_ordered(source: Source<'_>) -> bool {
    match source {
        Source::Site(_) | Source::Derived(_) => false,
        Source::Field(f) => matches!(
            f.kind,
            FieldKind::Integer { .. } | FieldKind::Number { .. } | FieldKind::Date { .. }
        ),
    }
}

/// The criterion value as the field's type, or a finding saying why it does not fit.
fn typed(
    c: &mut Checker,
    key: &str,
    raw: &Spanned<toml::Value>,
    source: Source<'_>,
) -> Option<Value> {
    let value = raw.get_ref();
    let what = source.describe();
    let result = match source {
        Source::Site(sites) => match value {
            toml::Value::String(code) if sites.iter().any(|s| &s.code == code) => {
                Ok(Value::Text(code.clone()))
            }
            toml::Value::String(code) => Err(format!(
                "`{code}` is not a declared site code (sites: {})",
                sites
                    .iter()
                    .map(|s| s.code.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            other => Err(format!(
                "`{key}` on `site` takes site codes as strings, got {}",
                show(other)
            )),
        },
        Source::Derived(d) => label(value, &d.labels, key, &what, "band"),
        Source::Field(f) => match &f.kind {
            FieldKind::Category { levels } => label(value, levels, key, &what, "level"),
            FieldKind::Integer { .. } => match value {
                toml::Value::Integer(i) => Ok(Value::Integer(*i)),
                other => toml_number(other)
                    .map(Value::Number)
                    .ok_or_else(|| format!("`{key}` on {what} takes numbers, got {}", show(other))),
            },
            FieldKind::Number { .. } => toml_number(value)
                .map(Value::Number)
                .ok_or_else(|| format!("`{key}` on {what} takes numbers, got {}", show(value))),
            FieldKind::Boolean => match value {
                toml::Value::Boolean(b) => Ok(Value::Boolean(*b)),
                other => Err(format!(
                    "`{key}` on {what} takes true or false, got {}",
                    show(other)
                )),
            },
            FieldKind::Date { .. } => toml_date(value).map(Value::Date).ok_or_else(|| {
                format!(
                    "`{key}` on {what} takes dates written YYYY-MM-DD, got {}",
                    show(value)
                )
            }),
        },
    };
    result.map_err(|message| c.error(raw.span(), message)).ok()
}

fn label(
    value: &toml::Value,
    labels: &[String],
    key: &str,
    what: &str,
    noun: &str,
) -> Result<Value, String> {
    let listed = labels.join(", ");
    match value {
        toml::Value::String(s) if labels.contains(s) => Ok(Value::Text(s.clone())),
        toml::Value::String(s) => Err(format!(
            "`{s}` is not a {noun} of {what} ({noun}s: {listed})"
        )),
        other => Err(format!(
            "`{key}` on {what} takes one of {listed} as a string, got {}",
            show(other)
        )),
    }
}

fn is_criterion_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
}
