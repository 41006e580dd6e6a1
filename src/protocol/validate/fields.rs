//! Enrolment fields (`[fields.NAME]`) and derived fields (`[derived.NAME]`).

use std::collections::HashSet;

use toml::Spanned;

use super::{is_field_name, non_empty, show, Checker};
use crate::protocol::model::{parse_iso_date, DerivedField, FieldKind, FieldSpec};
use crate::protocol::raw::{Entries, RawDerived, RawField, SpannedList};

const FIELD_TYPES: &str = "integer, number, category, boolean or date";

pub(super) fn fields(c: &mut Checker, raw: Entries<RawField>) -> Vec<FieldSpec> {
    let mut seen = HashSet::new();
    let mut fields = Vec::new();
    for (key, raw_field) in raw.0 {
        let name = key.get_ref().clone();
        check_name(c, &key, "field");
        if !seen.insert(name.clone()) {
            c.error(key.span(), format!("field `{name}` is declared twice"));
        }
        let Some(kind) = kind(c, &name, &raw_field) else {
            c.broken.insert(name);
            continue;
        };
        let label = raw_field.label.map(|l| non_empty(c, l, "field label"));
        let required = raw_field.required.is_none_or(|r| *r.get_ref());
        fields.push(FieldSpec {
            name,
            label,
            kind,
            required,
        });
    }
    fields
}

fn check_name(c: &mut Checker, key: &Spanned<String>, what: &str) {
    let name = key.get_ref();
    if name == "site" {
        c.error(
            key.span(),
            format!(
                "`site` is reserved: every enrolment carries its site as the built-in field \
                 `site`; choose another {what} name"
            ),
        );
    } else if !is_field_name(name) {
        c.error(
            key.span(),
            format!(
                "{what} name `{name}` must start with a lower-case letter and contain only \
                 lower-case letters, digits and `_`"
            ),
        );
    }
}

/// The field's kind, or `None` (after reporting) when its type is unknown or its levels unusable.
fn kind(c: &mut Checker, name: &str, f: &RawField) -> Option<FieldKind> {
    let type_name = f.kind.get_ref().as_str();
    match type_name {
        "integer" => {
            forbid_levels(c, name, type_name, f);
            let min = f
                .min
                .as_ref()
                .and_then(|v| integer_bound(c, name, "min", v));
            let max = f
                .max
                .as_ref()
                .and_then(|v| integer_bound(c, name, "max", v));
            check_order(c, name, f, min, max);
            Some(FieldKind::Integer { min, max })
        }
        "number" => {
            forbid_levels(c, name, type_name, f);
            let min = f.min.as_ref().and_then(|v| number_bound(c, name, "min", v));
            let max = f.max.as_ref().and_then(|v| number_bound(c, name, "max", v));
            check_order(c, name, f, min, max);
            Some(FieldKind::Number { min, max })
        }
        "date" => {
            forbid_levels(c, name, type_name, f);
            let min = f.min.as_ref().and_then(|v| date_bound(c, name, "min", v));
            let max = f.max.as_ref().and_then(|v| date_bound(c, name, "max", v));
            check_order(c, name, f, min, max);
            Some(FieldKind::Date { min, max })
        }
        "category" => {
            forbid_bounds(c, name, type_name, f);
            levels(c, name, f).map(|levels| FieldKind::Category { levels })
        }
        "boolean" => {
            forbid_bounds(c, name, type_name, f);
            forbid_levels(c, name, type_name, f);
            Some(FieldKind::Boolean)
        }
        other => {
            c.error(
                f.kind.span(),
                format!("unknown type `{other}` for field `{name}`; expected {FIELD_TYPES}"),
            );
            None
        }
    }
}

fn forbid_levels(c: &mut Checker, name: &str, type_name: &str, f: &RawField) {
    if let Some(levels) = &f.levels {
        c.error(
            levels.span(),
            format!(
                "`levels` does not apply to {type_name} field `{name}`; only category fields \
                 have levels"
            ),
        );
    }
}

fn forbid_bounds(c: &mut Checker, name: &str, type_name: &str, f: &RawField) {
    for (key, value) in [("min", &f.min), ("max", &f.max)] {
        if let Some(value) = value {
            c.error(
                value.span(),
                format!(
                    "`{key}` does not apply to {type_name} field `{name}`; only integer, \
                     number and date fields have bounds"
                ),
            );
        }
    }
}

fn check_order<T: PartialOrd + std::fmt::Display>(
    c: &mut Checker,
    name: &str,
    f: &RawField,
    min: Option<T>,
    max: Option<T>,
) {
    if let (Some(min), Some(max), Some(raw_max)) = (min, max, &f.max) {
        if min > max {
            c.error(
                raw_max.span(),
                format!("field `{name}` has `min` {min} greater than `max` {max}"),
            );
        }
    }
}

fn integer_bound(
    c: &mut Checker,
    name: &str,
    key: &str,
    value: &Spanned<toml::Value>,
) -> Option<i64> {
    match value.get_ref() {
        toml::Value::Integer(i) => Some(*i),
        other => {
            c.error(
                value.span(),
                format!(
                    "`{key}` of integer field `{name}` must be a whole number, got {}",
                    show(other)
                ),
            );
            None
        }
    }
}

fn number_bound(
    c: &mut Checker,
    name: &str,
    key: &str,
    value: &Spanned<toml::Value>,
) -> Option<f64> {
    let number = toml_number(value.get_ref());
    if number.is_none() {
        c.error(
            value.span(),
            format!(
                "`{key}` of number field `{name}` must be a number, got {}",
                show(value.get_ref())
            ),
        );
    }
    number
}

fn date_bound(
    c: &mut Checker,
    name: &str,
    key: &str,
    value: &Spanned<toml::Value>,
) -> Option<chrono::NaiveDate> {
    let date = toml_date(value.get_ref());
    if date.is_none() {
        c.error(
            value.span(),
            format!(
                "`{key}` of date field `{name}` must be a date written YYYY-MM-DD, got {}",
                show(value.get_ref())
            ),
        );
    }
    date
}

/// A finite number from a TOML integer or float.
pub(super) fn toml_number(value: &toml::Value) -> Option<f64> {
    match value {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(x) if x.is_finite() => Some(*x),
        _ => None,
    }
}

/// A date from a `"YYYY-MM-DD"` string or a bare TOML local date (`2024-01-31`).
pub(super) fn toml_date(value: &toml::Value) -> Option<chrono::NaiveDate> {
    match value {
        toml::Value::String(s) => parse_iso_date(s),
        toml::Value::Datetime(dt) => match (&dt.date, &dt.time, &dt.offset) {
            (Some(d), None, None) => chrono::NaiveDate::from_ymd_opt(
                i32::from(d.year),
                u32::from(d.month),
                u32::from(d.day),
            ),
            _ => None,
        },
        _ => None,
    }
}

fn levels(c: &mut Checker, name: &str, f: &RawField) -> Option<Vec<String>> {
    let Some(raw) = &f.levels else {
        c.error(
            f.kind.span(),
            format!("category field `{name}` needs `levels`, e.g. levels = [\"F\", \"M\"]"),
        );
        return None;
    };
    if raw.get_ref().is_empty() {
        c.error(
            raw.span(),
            format!("`levels` of category field `{name}` is empty; list at least one level"),
        );
        return None;
    }
    if raw.get_ref().len() > super::limits::MAX_LEVELS {
        c.error(
            raw.span(),
            format!(
                "category field `{name}` has {} levels; at most {} are allowed",
                raw.get_ref().len(),
                super::limits::MAX_LEVELS
            ),
        );
        return None;
    }
    Some(unique_labels(c, raw, &format!("level of `{name}`")))
}

/// The strings of a list, reporting empty and repeated ones at their position.
fn unique_labels(c: &mut Checker, raw: &SpannedList<String>, what: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for item in raw.get_ref() {
        let text = item.get_ref();
        if text.trim().is_empty() {
            c.error(item.span(), format!("a {what} must not be empty"));
        } else if let Err(e) = crate::identity::canonical_id(text) {
            // Levels are compared with what registers send: one spelling each.
            c.error(item.span(), format!("{what} `{}` {e}", text.escape_debug()));
        } else if text.contains(';') {
            // `;` separates the parts of a stratum key (`site=UPP;sex=F`).
            c.error(item.span(), format!("{what} `{text}` must not contain `;`"));
        } else if !seen.insert(text.clone()) {
            c.error(item.span(), format!("{what} `{text}` is listed twice"));
        }
        out.push(text.clone());
    }
    out
}

pub(super) fn derived(
    c: &mut Checker,
    raw: Entries<RawDerived>,
    fields: &[FieldSpec],
) -> Vec<DerivedField> {
    let mut taken: HashSet<String> = fields.iter().map(|f| f.name.clone()).collect();
    taken.extend(c.broken.iter().cloned());
    let mut derived = Vec::new();
    for (key, raw_derived) in raw.0 {
        let name = key.get_ref().clone();
        check_name(c, &key, "derived field");
        if !taken.insert(name.clone()) {
            c.error(
                key.span(),
                format!("derived field `{name}` has the same name as another field"),
            );
        }
        match derived_field(c, &name, raw_derived, fields) {
            Some(d) => derived.push(d),
            None => {
                c.broken.insert(name);
            }
        }
    }
    derived
}

fn derived_field(
    c: &mut Checker,
    name: &str,
    raw: RawDerived,
    fields: &[FieldSpec],
) -> Option<DerivedField> {
    let from = raw.from.get_ref().clone();
    let integer_source = match fields.iter().find(|f| f.name == from) {
        Some(FieldSpec {
            kind: FieldKind::Integer { .. },
            ..
        }) => Some(true),
        Some(FieldSpec {
            kind: FieldKind::Number { .. },
            ..
        }) => Some(false),
        Some(other) => {
            c.error(
                raw.from.span(),
                format!(
                    "derived field `{name}` needs an integer or number field in `from`; \
                     `{from}` is a {} field",
                    other.kind.type_name()
                ),
            );
            None
        }
        None if c.is_broken(&from) => None,
        None => {
            c.error(
                raw.from.span(),
                format!(
                    "derived field `{name}` is computed from `{from}`, which is not a declared \
                     enrolment field"
                ),
            );
            None
        }
    };
    let cuts = cuts(c, name, &raw.cuts, integer_source.unwrap_or(false));
    let (Some(integer_source), Some(cuts)) = (integer_source, cuts) else {
        return None;
    };
    let labels = match &raw.labels {
        None => default_labels(&cuts, integer_source),
        Some(labels) => {
            let needed = cuts.len() + 1;
            let given = labels.get_ref().len();
            if given != needed {
                c.error(
                    labels.span(),
                    format!(
                        "derived field `{name}` has {} cut(s), so it needs {needed} labels, \
                         got {given}",
                        cuts.len()
                    ),
                );
                return None;
            }
            let before = c.findings.len();
            let labels = unique_labels(c, labels, &format!("label of `{name}`"));
            if c.findings.len() > before {
                return None;
            }
            labels
        }
    };
    Some(DerivedField {
        name: name.to_string(),
        from,
        cuts,
        labels,
    })
}

fn cuts(
    c: &mut Checker,
    name: &str,
    raw: &SpannedList<toml::Value>,
    integer_source: bool,
) -> Option<Vec<f64>> {
    if raw.get_ref().is_empty() {
        c.error(
            raw.span(),
            format!("`cuts` of derived field `{name}` is empty; give at least one cut point"),
        );
        return None;
    }
    let mut ok = true;
    let mut cuts: Vec<f64> = Vec::new();
    for item in raw.get_ref() {
        let Some(cut) = toml_number(item.get_ref()) else {
            c.error(
                item.span(),
                format!(
                    "cut points of `{name}` must be numbers, got {}",
                    show(item.get_ref())
                ),
            );
            ok = false;
            continue;
        };
        if integer_source && cut.fract() != 0.0 {
            c.error(
                item.span(),
                format!(
                    "cut points of `{name}` must be whole numbers because its source is an \
                     integer field, got {cut}"
                ),
            );
            ok = false;
        }
        if let Some(&previous) = cuts.last() {
            if cut <= previous {
                c.error(
                    item.span(),
                    format!(
                        "cut points of `{name}` must be strictly increasing, but {cut} follows \
                         {previous}"
                    ),
                );
                ok = false;
            }
        }
        cuts.push(cut);
    }
    ok.then_some(cuts)
}

/// Band labels when a protocol gives none. Band `i` holds `[cuts[i-1], cuts[i])`.
/// Over an integer field the bands are written as the whole numbers they hold:
/// cuts `[65, 75]` give `<65`, `65-74`, `>=75` (a one-value band is just `65`).
/// Over a number field: `<65`, `65 to <75`, `>=75`.
fn default_labels(cuts: &[f64], integer_source: bool) -> Vec<String> {
    let mut labels = Vec::with_capacity(cuts.len() + 1);
    if let Some(first) = cuts.first() {
        labels.push(format!("<{first}"));
    }
    for pair in cuts.windows(2) {
        let (low, high) = (pair[0], pair[1]);
        labels.push(if !integer_source {
            format!("{low} to <{high}")
        } else if high - 1.0 == low {
            format!("{low}")
        } else {
            format!("{low}-{}", high - 1.0)
        });
    }
    if let Some(last) = cuts.last() {
        labels.push(format!(">={last}"));
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::default_labels;

    #[test]
    fn default_labels_read_naturally() {
        assert_eq!(
            default_labels(&[65.0, 75.0], true),
            ["<65", "65-74", ">=75"]
        );
        assert_eq!(default_labels(&[65.0, 66.0], true), ["<65", "65", ">=66"]);
        assert_eq!(default_labels(&[40.0], true), ["<40", ">=40"]);
        assert_eq!(
            default_labels(&[2.5, 6.0], false),
            ["<2.5", "2.5 to <6", ">=6"]
        );
    }
}
