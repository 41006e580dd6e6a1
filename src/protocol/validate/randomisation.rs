//! `[randomisation]`: the allocation method, its block sizes and the stratification factors.

use std::collections::HashSet;

use super::{is_categorical, Checker, Scope, Source};
use crate::protocol::model::{Arm, FieldKind, Method, RandomisationSpec};
use crate::protocol::raw::{RawRandomisation, SpannedList};

/// `arms` is `None` when the arms themselves are invalid: block sizes are then not checked
/// against a ratio sum that means nothing.
pub(super) fn randomisation(
    c: &mut Checker,
    raw: RawRandomisation,
    arms: Option<&[Arm]>,
    scope: &Scope<'_>,
) -> RandomisationSpec {
    let method = match raw.method.get_ref().as_str() {
        "simple" => {
            if let Some(sizes) = &raw.block_sizes {
                c.error(
                    sizes.span(),
                    "`block_sizes` applies only to method = \"permuted_blocks\"; remove it for \
                     simple randomisation",
                );
            }
            Method::Simple
        }
        "permuted_blocks" => match &raw.block_sizes {
            Some(sizes) => Method::PermutedBlocks {
                block_sizes: block_sizes(c, sizes, arms),
            },
            None => {
                c.error(
                    raw.method.span(),
                    format!(
                        "method = \"permuted_blocks\" needs `block_sizes`, e.g. block_sizes = \
                         [{}]",
                        example_sizes(arms)
                    ),
                );
                Method::PermutedBlocks {
                    block_sizes: Vec::new(),
                }
            }
        },
        other => {
            c.error(
                raw.method.span(),
                format!(
                    "unknown randomisation method `{other}`; expected simple or permuted_blocks"
                ),
            );
            Method::Simple
        }
    };
    let strata = match &raw.strata {
        Some(strata) => stratification(c, strata, scope),
        None => Vec::new(),
    };
    RandomisationSpec { method, strata }
}

fn block_sizes(c: &mut Checker, raw: &SpannedList<i64>, arms: Option<&[Arm]>) -> Vec<u32> {
    if raw.get_ref().is_empty() {
        c.error(
            raw.span(),
            format!(
                "`block_sizes` is empty; give at least one size, e.g. [{}]",
                example_sizes(arms)
            ),
        );
    }
    let ratio_sum: Option<u64> = arms.map(|arms| arms.iter().map(|a| u64::from(a.ratio)).sum());
    let mut seen = HashSet::new();
    let mut sizes = Vec::new();
    for item in raw.get_ref() {
        let size = *item.get_ref();
        let Some(size) = u32::try_from(size).ok().filter(|&s| s > 0) else {
            c.error(
                item.span(),
                format!("block sizes must be positive whole numbers, got {size}"),
            );
            continue;
        };
        if !seen.insert(size) {
            c.error(item.span(), format!("block size {size} is listed twice"));
        }
        if let (Some(sum), Some(arms)) = (ratio_sum, arms) {
            if sum > 0 && !u64::from(size).is_multiple_of(sum) {
                c.error(
                    item.span(),
                    format!(
                        "block size {size} is not a multiple of the arms' ratio sum {sum} ({})",
                        ratio_description(arms)
                    ),
                );
            }
        }
        sizes.push(size);
    }
    sizes
}

/// `aspiration:pci = 1:1`
fn ratio_description(arms: &[Arm]) -> String {
    let ids: Vec<&str> = arms.iter().map(|a| a.id.as_str()).collect();
    let ratios: Vec<String> = arms.iter().map(|a| a.ratio.to_string()).collect();
    format!("{} = {}", ids.join(":"), ratios.join(":"))
}

fn example_sizes(arms: Option<&[Arm]>) -> String {
    let sum: u32 = arms
        .map_or(2, |arms| arms.iter().map(|a| a.ratio).sum())
        .max(1);
    format!("{}, {}", sum, sum.saturating_mul(2))
}

fn stratification(c: &mut Checker, raw: &SpannedList<String>, scope: &Scope<'_>) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut strata = Vec::new();
    for item in raw.get_ref() {
        let name = item.get_ref();
        if !seen.insert(name.clone()) {
            c.error(
                item.span(),
                format!("stratification factor `{name}` is listed twice"),
            );
        }
        if let Some(problem) = unusable_factor(c, name, scope) {
            c.error(item.span(), problem);
        }
        strata.push(name.clone());
    }
    strata
}

/// Why `name` cannot stratify, if it cannot. A stratum must be known for every enrolment, so
/// fields used (directly or through a derived band) must be required.
fn unusable_factor(c: &Checker, name: &str, scope: &Scope<'_>) -> Option<String> {
    let optional = |field: &str| {
        format!(
            "stratification factor `{name}` depends on optional field `{field}`; fields used \
             for stratification must be required (remove `required = false`)"
        )
    };
    match scope.resolve(name) {
        None if c.is_broken(name) => None,
        None => Some(format!(
            "stratification factor `{name}` is not a declared field"
        )),
        Some(Source::Site(_)) => None,
        Some(Source::Derived(d)) => scope
            .fields
            .iter()
            .find(|f| f.name == d.from)
            .filter(|f| !f.required)
            .map(|f| optional(&f.name)),
        Some(Source::Field(f)) if is_categorical(&f.kind) => {
            (!f.required).then(|| optional(&f.name))
        }
        Some(Source::Field(f)) => Some(match f.kind {
            FieldKind::Integer { .. } | FieldKind::Number { .. } => format!(
                "stratification factor `{name}` is {} field and numeric fields cannot \
                 stratify; declare a band such as [derived.{name}_band] with from = \"{name}\" \
                 and cuts, and stratify on that",
                if matches!(f.kind, FieldKind::Integer { .. }) {
                    "an integer"
                } else {
                    "a number"
                }
            ),
            _ => format!(
                "stratification factor `{name}` is a {} field; only `site`, category, boolean \
                 and derived fields can stratify",
                f.kind.type_name()
            ),
        }),
    }
}
