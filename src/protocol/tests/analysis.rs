//! `[analysis]`: the analysis plan's defaults and per-endpoint overrides, and where its errors
//! point.

use super::*;
use crate::stats::rates::CountModel;

const ENDPOINTS: &str = r#"
[endpoints.death]
kind = "time_to_event"
events = ["death"]
primary = true

[endpoints.admissions]
kind = "count"
events = ["admission"]
window = [0, 365]
"#;

/// The 1-based line of the first line that starts with `prefix` at or after the line `after`.
fn line_of(source: &str, after: &str, prefix: &str) -> usize {
    let lines: Vec<&str> = source.lines().collect();
    let from = lines.iter().position(|l| l.starts_with(after)).unwrap();
    from + lines[from..]
        .iter()
        .position(|l| l.starts_with(prefix))
        .unwrap()
        + 1
}

#[test]
fn defaults_and_overrides_resolve_per_endpoint() {
    let source = with(&format!(
        "{ENDPOINTS}\n[analysis]\nstratified = true\nconf_level = 0.9\n\n\
         [analysis.endpoints.admissions]\nstratified = false\ncovariates = [\"sex\"]\n\
         count_model = \"poisson\"\n"
    ));
    let p = parse(&source, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    let death = p.analysis.of("death");
    assert!(death.stratified);
    assert_eq!(death.conf_level, 0.9);
    assert!(death.covariates.is_empty());
    assert_eq!(death.count_model, CountModel::Negbin);
    let admissions = p.analysis.of("admissions");
    assert!(!admissions.stratified);
    assert_eq!(admissions.covariates, ["sex"]);
    assert_eq!(admissions.count_model, CountModel::Poisson);
    // The override keeps the defaults it does not change.
    assert_eq!(admissions.conf_level, 0.9);
}

#[test]
fn without_a_section_the_comparisons_are_unadjusted() {
    let p = parse(&with(ENDPOINTS), "t.toml").unwrap();
    let plan = p.analysis.of("death");
    assert!(!plan.stratified && plan.covariates.is_empty());
    assert_eq!(plan.conf_level, 0.95);
    assert_eq!(plan.count_model, CountModel::Negbin);
}

#[test]
fn each_mistake_is_reported_where_it_is_written() {
    let source = with(&format!(
        "{ENDPOINTS}\n[analysis]\ncovariates = [\"age\", \"weight\", \"site\"]\n\
         count_model = \"zip\"\nconf_level = 95\n\n\
         [analysis.endpoints.deaths]\nstratified = true\n\n\
         [analysis.endpoints.death]\ncount_model = \"poisson\"\nstratified = true\n\
         covariates = [\"sex\"]\n\n[analysis.endpoints.admissions]\nmodel = \"negbin\"\n"
    ));
    // An unknown key is a parse error of its own: check it apart.
    let (source, unknown_key) =
        source.split_at(source.find("\n[analysis.endpoints.admissions]").unwrap());
    let found = errors(source);
    let at = |prefix: &str, after: &str, col: usize| {
        format!("{}:{col}: ", line_of(source, after, prefix))
    };
    let expect = [
        (at("covariates", "[analysis]", 22), "[analysis]: unknown covariate `weight`: it is not `site`, an enrolment field or a derived field of this protocol"),
        (at("count_model", "[analysis]", 15), "[analysis]: unknown `count_model` `zip`; expected negbin or poisson"),
        (at("conf_level", "[analysis]", 14), "[analysis]: `conf_level` must be between 0 and 1, got 95"),
        (at("[analysis.endpoints.deaths]", "[analysis.endpoints.deaths]", 21), "[analysis.endpoints.deaths]: the protocol has no endpoint `deaths`; its endpoints are: `death`, `admissions`"),
        (at("count_model", "[analysis.endpoints.death]", 15), "[analysis.endpoints.death]: `count_model` applies to count endpoints; `death` is not one"),
        (at("covariates", "[analysis.endpoints.death]", 15), "[analysis.endpoints.death]: covariate `sex` is a stratification factor and the comparison is already stratified by the randomisation strata; leave it out or set `stratified = false`"),
    ];
    for (position, message) in &expect {
        assert!(
            found.iter().any(|f| f == &format!("{position}{message}")),
            "missing {position}{message}\nfound:\n{}",
            found.join("\n")
        );
    }
    // `count_model = "poisson"` in [analysis.endpoints.death] and the bad defaults are all
    // reported, nothing else.
    assert_eq!(found.len(), expect.len(), "{found:#?}");
    let unknown = errors(&format!("{source}{unknown_key}"));
    assert!(
        unknown.iter().any(|e| e.contains("unknown field `model`")),
        "{unknown:?}"
    );
}

#[test]
fn any_enrolment_field_but_a_date_adjusts_and_numeric_ones_not_a_binary_endpoint() {
    // `age` (integer) and `sex` adjust the time-to-event and count endpoints; a date does not.
    let dated = BASE.replacen(
        "[fields.sex]",
        "[fields.admitted]\ntype = \"date\"\n\n[fields.sex]",
        1,
    );
    let source =
        format!("{dated}{ENDPOINTS}\n[analysis]\ncovariates = [\"age\", \"admitted\", \"sex\"]\n");
    let found = errors(&source);
    let line = line_of(&source, "[analysis]", "covariates");
    assert_eq!(
        found,
        [format!(
            "{line}:22: [analysis]: covariate `admitted` is a date field, and a date cannot \
             adjust a comparison; the covariates available are `site` and the integer, number, \
             category, boolean and derived fields"
        )]
    );
    let fine = format!("{BASE}{ENDPOINTS}\n[analysis]\ncovariates = [\"age\", \"sex\"]\n");
    let p = parse(&fine, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.analysis.of("admissions").covariates, ["age", "sex"]);

    // A binary endpoint takes the defaults' `age`: refused where `age` is written, naming the
    // endpoint; its own categorical covariates are fine, its own `age` refused in its table.
    let binary =
        "\n[endpoints.dead_30d]\nkind = \"binary\"\nevents = [\"death\"]\nhorizon_days = 30\n";
    let source =
        format!("{BASE}{ENDPOINTS}{binary}\n[analysis]\ncovariates = [\"sex\", \"age\"]\n");
    let line = line_of(&source, "[analysis]", "covariates");
    assert_eq!(
        errors(&source),
        [format!(
            "{line}:22: [analysis]: covariate `age` (integer field) is numeric and cannot adjust \
             binary endpoint `dead_30d`: a binary comparison is adjusted by Mantel-Haenszel \
             estimates across the strata of categorical covariates; use a derived band of `age` \
             (`[derived]`), or give the endpoint its own covariates in `[analysis.endpoints.ID]`"
        )]
    );
    let own = format!("{source}\n[analysis.endpoints.dead_30d]\ncovariates = [\"sex\"]\n");
    let p = parse(&own, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.analysis.of("dead_30d").covariates, ["sex"]);
    assert_eq!(p.analysis.of("death").covariates, ["sex", "age"]);
    let own_age = format!("{source}\n[analysis.endpoints.dead_30d]\ncovariates = [\"age\"]\n");
    let found = errors(&own_age);
    let line = line_of(&own_age, "[analysis.endpoints.dead_30d]", "covariates");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(&format!(
            "{line}:15: [analysis.endpoints.dead_30d]: covariate `age` (integer field) is numeric"
        )),
        "{found:?}"
    );
}

#[test]
fn stratifying_needs_strata() {
    let unstratified = BASE.replace("strata = [\"site\", \"sex\"]\n", "");
    let source = format!("{unstratified}{ENDPOINTS}\n[analysis]\nstratified = true\n");
    let found = errors(&source);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].ends_with(
            "[analysis]: `stratified = true`, but the randomisation has no strata to stratify by"
        ),
        "{found:?}"
    );
}

#[test]
fn the_shipped_protocols_declare_their_analysis_plans() {
    let taste = parse(include_str!("../../../protocols/taste.toml"), "taste.toml").unwrap();
    assert!(!taste.analysis.default.stratified);
    assert_eq!(taste.analysis.of("death_30d").covariates, ["site"]);
    assert_eq!(
        taste.analysis.of("death_or_mi_1y").covariates,
        ["age", "sex"]
    );
    assert!(taste.analysis.of("death_1y").covariates.is_empty());
    let dapa = parse(
        include_str!("../../../protocols/dapa-hf-reg.toml"),
        "dapa-hf-reg.toml",
    )
    .unwrap();
    assert!(dapa.analysis.default.stratified);
    assert_eq!(
        dapa.analysis.of("hfh_count_1y").count_model,
        CountModel::Negbin
    );
    let biomarker = dapa.analysis.of("nt_probnp_6m");
    assert_eq!(biomarker.covariates, ["nt_probnp", "age"]);
    assert!(
        biomarker.stratified,
        "the override keeps the stratified default"
    );
}
