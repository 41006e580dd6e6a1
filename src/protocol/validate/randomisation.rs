//! `[randomisation]`: the allocation method and its parameters, the stratification factors,
//! the minimisation factors, cluster randomisation and per-patient arm eligibility.
//!
//! Parameters belong to methods: `block_sizes` to permuted_blocks; `factors`, `measure`,
//! `initial_random` to minimisation; `p` to minimisation and biased_coin; `max_imbalance` to
//! big_stick; `alpha`, `beta` to urn. A parameter given to another method is an error, so a
//! file never says more than the engine does.

use std::collections::HashSet;
use std::ops::Range;

use toml::Spanned;

use super::{is_categorical, show, Checker, Scope, Source};
use crate::protocol::model::{
    Arm, FieldKind, ImbalanceMeasure, Method, MinimisationFactorSpec, RandomisationSpec,
};
use crate::protocol::raw::{RawFactor, RawRandomisation, SpannedList};

/// A method parameter as written (its key and span, if given) and the methods that take it.
type Parameter<'a> = (&'a str, Option<Range<usize>>, &'a [&'a str]);

const METHODS: &str = "simple, permuted_blocks, minimisation, biased_coin, big_stick or urn";

/// `arms` is `None` when the arms themselves are invalid: block sizes and ratio conditions
/// are then not checked against ratios that mean nothing.
pub(super) fn randomisation(
    c: &mut Checker,
    raw: RawRandomisation,
    arms: Option<&[Arm]>,
    scope: &Scope<'_>,
) -> RandomisationSpec {
    let name = raw.method.get_ref().as_str();
    let method_span = raw.method.span();
    // Parameters the method does not take.
    let applies: &[Parameter<'_>] = &[
        (
            "block_sizes",
            raw.block_sizes.as_ref().map(|x| x.span()),
            &["permuted_blocks"],
        ),
        (
            "factors",
            raw.factors.as_ref().map(|x| x.span()),
            &["minimisation"],
        ),
        (
            "measure",
            raw.measure.as_ref().map(|x| x.span()),
            &["minimisation"],
        ),
        (
            "initial_random",
            raw.initial_random.as_ref().map(|x| x.span()),
            &["minimisation"],
        ),
        (
            "p",
            raw.p.as_ref().map(|x| x.span()),
            &["minimisation", "biased_coin"],
        ),
        (
            "max_imbalance",
            raw.max_imbalance.as_ref().map(|x| x.span()),
            &["big_stick"],
        ),
        ("alpha", raw.alpha.as_ref().map(|x| x.span()), &["urn"]),
        ("beta", raw.beta.as_ref().map(|x| x.span()), &["urn"]),
    ];
    let known = matches!(
        name,
        "simple" | "permuted_blocks" | "minimisation" | "biased_coin" | "big_stick" | "urn"
    );
    if known {
        for (key, span, methods) in applies {
            if let Some(span) = span {
                if !methods.contains(&name) {
                    let list: Vec<String> = methods.iter().map(|m| format!("\"{m}\"")).collect();
                    let this = if name == "simple" {
                        "simple randomisation".to_string()
                    } else {
                        format!("method = \"{name}\"")
                    };
                    c.error(
                        span.clone(),
                        format!(
                            "`{key}` applies only to method = {}; remove it for {this}",
                            list.join(" or ")
                        ),
                    );
                }
            }
        }
    }
    let arm_count = arms.map(<[Arm]>::len);
    let method = match name {
        "simple" => Method::Simple,
        "permuted_blocks" => match &raw.block_sizes {
            Some(sizes) => Method::PermutedBlocks {
                block_sizes: block_sizes(c, sizes, arms),
            },
            None => {
                c.error(
                    method_span.clone(),
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
        "minimisation" => {
            let factors = match &raw.factors {
                Some(factors) => minimisation_factors(c, factors, scope),
                None => {
                    c.error(
                        method_span.clone(),
                        "method = \"minimisation\" needs `factors`, e.g. factors = \
                         [{ field = \"site\" }, { field = \"sex\", weight = 1.0 }]",
                    );
                    Vec::new()
                }
            };
            let measure = match &raw.measure {
                None => ImbalanceMeasure::Range,
                Some(m) => ImbalanceMeasure::parse(m.get_ref()).unwrap_or_else(|| {
                    c.error(
                        m.span(),
                        format!(
                            "unknown imbalance measure `{}`; expected range, variance or sd",
                            m.get_ref()
                        ),
                    );
                    ImbalanceMeasure::Range
                }),
            };
            // The preferred arm must be at least as likely as under simple randomisation.
            let least = arm_count.map_or(0.0, |k| 1.0 / k.max(1) as f64);
            let p = probability(c, &raw.p, &method_span, "minimisation", least, "0.8");
            let initial_random = match &raw.initial_random {
                None => 0,
                Some(n) => whole(c, n, "initial_random", 0),
            };
            if let Some(strata) = &raw.strata {
                if !strata.get_ref().is_empty() {
                    c.error(
                        strata.span(),
                        "minimisation balances its `factors` over the whole trial and takes no \
                         `strata`; list `site` and the other factors under `factors` instead",
                    );
                }
            }
            Method::Minimisation {
                factors,
                measure,
                p,
                initial_random,
            }
        }
        "biased_coin" => {
            two_equal_arms(c, &method_span, arms, "biased_coin");
            let p = probability(c, &raw.p, &method_span, "biased_coin", 0.5, "0.667");
            Method::BiasedCoin { p }
        }
        "big_stick" => {
            two_equal_arms(c, &method_span, arms, "big_stick");
            let max_imbalance = match &raw.max_imbalance {
                Some(n) => whole(c, n, "max_imbalance", 1),
                None => {
                    c.error(
                        method_span.clone(),
                        "method = \"big_stick\" needs `max_imbalance`, the largest tolerated \
                         difference between the arms, e.g. max_imbalance = 3",
                    );
                    1
                }
            };
            Method::BigStick { max_imbalance }
        }
        "urn" => {
            if let Some(arms) = arms {
                if arms.iter().any(|a| a.ratio != arms[0].ratio) {
                    c.error(
                        method_span.clone(),
                        format!(
                            "method = \"urn\" needs equal ratios, got {}",
                            ratio_description(arms)
                        ),
                    );
                }
            }
            let mut get = |key: &str, value: &Option<Spanned<i64>>| match value {
                Some(n) => whole(c, n, key, 0),
                None => {
                    c.error(
                        method_span.clone(),
                        format!(
                            "method = \"urn\" needs `alpha` and `beta` (Wei's UD(alpha, beta)), \
                             e.g. alpha = 1 and beta = 1; `{key}` is missing"
                        ),
                    );
                    1
                }
            };
            let alpha = get("alpha", &raw.alpha);
            let beta = get("beta", &raw.beta);
            if alpha == 0 && beta == 0 {
                c.error(
                    method_span.clone(),
                    "an urn with alpha = 0 and beta = 0 never holds a ball; make one positive",
                );
            }
            Method::Urn { alpha, beta }
        }
        other => {
            c.error(
                method_span.clone(),
                format!("unknown randomisation method `{other}`; expected {METHODS}"),
            );
            Method::Simple
        }
    };
    let strata = match &raw.strata {
        Some(strata) => stratification(c, strata, scope),
        None => Vec::new(),
    };
    let cluster = raw.cluster.as_ref().map(|cluster| {
        let field = cluster.get_ref();
        let problem = match scope.resolve(field) {
            None if c.is_broken(field) => None,
            None => Some(format!("cluster `{field}` is not a declared field")),
            Some(Source::Site(_)) => None,
            Some(Source::Field(f)) if matches!(f.kind, FieldKind::Category { .. }) => (!f.required)
                .then(|| {
                    format!(
                        "cluster field `{field}` must be required: every enrolment needs its \
                         cluster (remove `required = false`)"
                    )
                }),
            Some(source) => Some(format!(
                "cluster `{field}` is {}; a cluster is `site` or a category field (such as a \
                 household code)",
                source.describe()
            )),
        };
        if let Some(problem) = problem {
            c.error(cluster.span(), problem);
        }
        field.clone()
    });
    let arm_eligibility = raw.arm_eligibility.as_ref().is_some_and(|b| *b.get_ref());
    RandomisationSpec {
        method,
        strata,
        cluster,
        arm_eligibility,
    }
}

/// A probability parameter in `[least, 1]`, required by `method`.
fn probability(
    c: &mut Checker,
    raw: &Option<Spanned<toml::Value>>,
    method_span: &Range<usize>,
    method: &str,
    least: f64,
    example: &str,
) -> f64 {
    let Some(raw) = raw else {
        c.error(
            method_span.clone(),
            format!("method = \"{method}\" needs `p`, e.g. p = {example}"),
        );
        return 1.0;
    };
    match number(raw.get_ref()) {
        Some(p) if p >= least && p <= 1.0 => p,
        _ => {
            c.error(
                raw.span(),
                format!(
                    "`p` must be a number from {} to 1, got {}",
                    trim_number(least),
                    show(raw.get_ref())
                ),
            );
            1.0
        }
    }
}

/// Integers and floats as numbers (TOML keeps them apart; `weight = 1` means 1.0).
fn number(value: &toml::Value) -> Option<f64> {
    match value {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(x) if x.is_finite() => Some(*x),
        _ => None,
    }
}

/// `0.5`, `0.333`: a bound as a message shows it.
fn trim_number(x: f64) -> String {
    let text = format!("{x:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A whole number of at least `least` that fits a `u32`.
fn whole(c: &mut Checker, raw: &Spanned<i64>, key: &str, least: u32) -> u32 {
    match u32::try_from(*raw.get_ref()) {
        Ok(n) if n >= least => n,
        _ => {
            let what = if least == 0 {
                "a whole number >= 0".to_string()
            } else {
                format!("a whole number >= {least}")
            };
            c.error(
                raw.span(),
                format!("`{key}` must be {what}, got {}", raw.get_ref()),
            );
            least
        }
    }
}

fn two_equal_arms(c: &mut Checker, span: &Range<usize>, arms: Option<&[Arm]>, method: &str) {
    if let Some(arms) = arms {
        if arms.len() != 2 || arms[0].ratio != arms[1].ratio {
            c.error(
                span.clone(),
                format!(
                    "method = \"{method}\" needs exactly 2 arms with equal ratios, got {}",
                    ratio_description(arms)
                ),
            );
        }
    }
}

fn minimisation_factors(
    c: &mut Checker,
    raw: &Spanned<Vec<RawFactor>>,
    scope: &Scope<'_>,
) -> Vec<MinimisationFactorSpec> {
    if raw.get_ref().is_empty() {
        c.error(
            raw.span(),
            "`factors` is empty; give at least one, e.g. [{ field = \"site\" }]",
        );
    }
    let mut seen = HashSet::new();
    let mut factors = Vec::new();
    for item in raw.get_ref() {
        let name = item.field.get_ref();
        if !seen.insert(name.clone()) {
            c.error(
                item.field.span(),
                format!("minimisation factor `{name}` is listed twice"),
            );
        }
        if let Some(problem) = unusable_factor(c, name, scope, "minimisation factor") {
            c.error(item.field.span(), problem);
        }
        let weight = match &item.weight {
            None => 1.0,
            Some(w) => match number(w.get_ref()) {
                Some(x) if x > 0.0 => x,
                _ => {
                    c.error(
                        w.span(),
                        format!(
                            "weight of minimisation factor `{name}` must be a positive number, \
                             got {}",
                            show(w.get_ref())
                        ),
                    );
                    1.0
                }
            },
        };
        factors.push(MinimisationFactorSpec {
            field: name.clone(),
            weight,
        });
    }
    factors
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
        if size > super::limits::MAX_BLOCK_SIZE {
            c.error(
                item.span(),
                format!(
                    "block size {size} is larger than {}: a block is drawn and held whole",
                    super::limits::MAX_BLOCK_SIZE
                ),
            );
            continue;
        }
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
    if raw.get_ref().len() > super::limits::MAX_STRATA_FACTORS {
        c.error(
            raw.span(),
            format!(
                "at most {} stratification factors are allowed, found {}",
                super::limits::MAX_STRATA_FACTORS,
                raw.get_ref().len()
            ),
        );
    }
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
        if let Some(problem) = unusable_factor(c, name, scope, "stratification factor") {
            c.error(item.span(), problem);
        }
        strata.push(name.clone());
    }
    strata
}

/// Why `name` cannot stratify (or be minimised on), if it cannot. A factor's level must be
/// known for every enrolment, so fields used (directly or through a derived band) must be
/// required. `role` names the use in messages: "stratification factor", "minimisation factor".
fn unusable_factor(c: &Checker, name: &str, scope: &Scope<'_>, role: &str) -> Option<String> {
    let optional = |field: &str| {
        format!(
            "{role} `{name}` depends on optional field `{field}`; fields used \
             for {} must be required (remove `required = false`)",
            if role.starts_with("strat") {
                "stratification"
            } else {
                "minimisation"
            }
        )
    };
    let (verb, use_band) = if role.starts_with("strat") {
        ("stratify", "stratify on")
    } else {
        ("be minimised on", "minimise on")
    };
    match scope.resolve(name) {
        None if c.is_broken(name) => None,
        None => Some(format!("{role} `{name}` is not a declared field")),
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
                "{role} `{name}` is {} field and numeric fields cannot \
                 {verb}; declare a band such as [derived.{name}_band] with from = \"{name}\" \
                 and cuts, and {use_band} that",
                if matches!(f.kind, FieldKind::Integer { .. }) {
                    "an integer"
                } else {
                    "a number"
                }
            ),
            _ => format!(
                "{role} `{name}` is a {} field; only `site`, category, boolean \
                 and derived fields can {verb}",
                f.kind.type_name()
            ),
        }),
    }
}
