//! Parsing and validation of protocol files: what parses, and where each error points.

use super::*;

mod analysis;
mod endpoints;
mod monitoring;
mod randomisation;
mod sources;

/// The shipped TASTE protocol, parsed (shared by the enrolment, eligibility and stratum tests).
pub(crate) fn taste() -> Protocol {
    parse(include_str!("../../protocols/taste.toml"), "taste.toml").unwrap()
}

/// A small valid protocol (28 lines) that tests change one piece of at a time. Sections
/// appended by [`with`] start with a blank line, so their first line is line 30.
const BASE: &str = r#"id = "t"
title = "T"
version = "1"
target_sample_size = 100
consent = "oral"

[[sites]]
code = "A"

[[arms]]
id = "a"

[[arms]]
id = "b"

[fields.age]
type = "integer"
min = 0
max = 120

[fields.sex]
type = "category"
levels = ["F", "M"]

[randomisation]
method = "permuted_blocks"
block_sizes = [2, 4]
strata = ["site", "sex"]
"#;

/// Each error as `LINE:COL: message` (the origin is checked once, in `display_format`).
fn errors(source: &str) -> Vec<String> {
    match parse(source, "t.toml") {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| format!("{}:{}: {}", e.line, e.col, e.message))
            .collect(),
    }
}

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

#[test]
fn base_is_valid() {
    assert_eq!(errors(BASE), Vec::<String>::new());
}

#[test]
fn example_from_the_specification_parses() {
    let source = r#"
id = "taste"
title = "Thrombus Aspiration in ST-Elevation myocardial infarction in Scandinavia"
version = "1.0"
status = "recruiting"
target_sample_size = 7244
consent = "oral"
ethics_approval = "Regional Ethical Review Board, Uppsala, Dnr 2010/036"

[[sites]]
code = "UPP"
name = "Uppsala University Hospital"

[[arms]]
id = "aspiration"
label = "Thrombus aspiration followed by PCI"
ratio = 1

[[arms]]
id = "pci"
label = "PCI alone"
ratio = 1

[fields.age]
type = "integer"
min = 0
max = 120

[fields.sex]
type = "category"
levels = ["F", "M"]

[fields.diagnosis]
type = "category"
levels = ["STEMI", "NSTEMI", "UA"]

[derived.age_band]
from = "age"
cuts = [65, 75]

[[inclusion]]
id = "stemi"
text = "ST-elevation myocardial infarction"
field = "diagnosis"
in = ["STEMI"]

[randomisation]
method = "permuted_blocks"
block_sizes = [2, 4, 6]
strata = ["site", "sex"]
"#;
    let p = parse(source, "example.toml").unwrap();
    assert_eq!(p.trial_id, "taste");
    assert_eq!(p.status, TrialStatus::Recruiting);
    assert_eq!(p.consent, ConsentModel::Oral);
    assert_eq!(p.target_sample_size, 7244);
    assert_eq!(p.ratios(), [1, 1]);
    assert_eq!(
        p.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["age", "sex", "diagnosis"]
    );
    assert_eq!(
        p.derived,
        [DerivedField {
            name: "age_band".into(),
            from: "age".into(),
            cuts: vec![65.0, 75.0],
            labels: vec!["<65".into(), "65-74".into(), ">=75".into()],
        }]
    );
    assert_eq!(
        p.inclusion[0].conditions,
        [Condition::In(vec![Value::Text("STEMI".into())])]
    );
    assert_eq!(
        p.randomisation,
        RandomisationSpec {
            method: Method::PermutedBlocks {
                block_sizes: vec![2, 4, 6]
            },
            strata: vec!["site".into(), "sex".into()],
            cluster: None,
            arm_eligibility: false,
        }
    );
}

#[test]
fn shipped_protocols_parse() {
    let taste = taste();
    assert_eq!(taste.trial_id, "taste");
    assert_eq!(taste.consent, ConsentModel::Oral);
    assert_eq!(taste.target_sample_size, 7244);
    assert_eq!(
        taste
            .arms
            .iter()
            .map(|a| (a.id.as_str(), a.ratio))
            .collect::<Vec<_>>(),
        [("aspiration", 1), ("pci", 1)]
    );
    for code in ["UPP", "LKP", "SUS", "SAH", "KS", "ORE"] {
        assert!(taste.site(code).is_some(), "taste lacks site {code}");
    }
    assert_eq!(taste.randomisation.strata, ["site", "sex"]);
    assert_eq!(
        taste.randomisation.method,
        Method::PermutedBlocks {
            block_sizes: vec![2, 4, 6]
        }
    );

    let dapa = parse(
        include_str!("../../protocols/dapa-hf-reg.toml"),
        "dapa-hf-reg.toml",
    )
    .unwrap();
    assert_eq!(dapa.ratios(), [2, 1]);
    assert_eq!(dapa.consent, ConsentModel::Written);
    assert_eq!(dapa.randomisation.strata, ["site", "diabetes"]);
    assert!(!dapa.field("nt_probnp").unwrap().required);
    assert_eq!(dapa.exclusion.len(), 4);
}

#[test]
fn defaults_are_filled_in() {
    let p = parse(
        &with(
            r#"
[[inclusion]]
id = "adult"
field = "age"
ge = 18
le = 99.5
"#,
        ),
        "t.toml",
    )
    .unwrap();
    assert_eq!(p.status, TrialStatus::Recruiting);
    assert_eq!(p.ethics_approval, None);
    assert_eq!(p.arms[0].label, "a");
    assert_eq!(p.arms[0].ratio, 1);
    assert!(p.fields[0].required);
    assert_eq!(p.inclusion[0].text, "age >= 18 and age <= 99.5");
    assert_eq!(
        p.inclusion[0].conditions,
        [
            Condition::Ge(Value::Integer(18)),
            Condition::Le(Value::Number(99.5))
        ]
    );
}

#[test]
fn display_format() {
    let err = parse("id = 1\n", "protocols/x.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "protocols/x.toml:1:6: invalid type: integer `1`, expected a string"
    );
}

#[test]
fn unknown_key_points_at_the_key() {
    let source = BASE.replace(
        "[[arms]]\nid = \"b\"\n",
        "[[arms]]\nid = \"b\"\nweight = 2\n",
    );
    let got = errors(&source);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("15:1: unknown field `weight`, expected one of `id`, `label`, `ratio`"),
        "{got:?}"
    );
}

#[test]
fn syntax_error_is_one_line() {
    let got = errors("id = \"t\"\ntitle = \n");
    assert_eq!(got.len(), 1);
    assert!(got[0].starts_with("2:9: "), "{got:?}");
    assert!(!got[0].contains('\n'));
}

#[test]
fn missing_key_points_at_its_table() {
    let source = BASE.replace("[[arms]]\nid = \"b\"\n", "[[arms]]\nlabel = \"B\"\n");
    assert_eq!(errors(&source), ["13:1: missing field `id`"]);
    // A missing top-level key has no table to point at.
    let source = BASE.replace("consent = \"oral\"\n", "");
    assert_eq!(errors(&source), ["1:1: missing field `consent`"]);
}

#[test]
fn block_size_not_a_multiple_of_the_ratio_sum() {
    let source = BASE
        .replace(
            "[[arms]]\nid = \"b\"\n",
            "[[arms]]\nid = \"b\"\nratio = 2\n",
        )
        .replace("block_sizes = [2, 4]", "block_sizes = [3, 4, 6]");
    assert_eq!(
        errors(&source),
        ["28:19: block size 4 is not a multiple of the arms' ratio sum 3 (a:b = 1:2)"]
    );
    let source = BASE.replace("block_sizes = [2, 4]", "block_sizes = [2, 3, 0]");
    assert_eq!(
        errors(&source),
        [
            "27:19: block size 3 is not a multiple of the arms' ratio sum 2 (a:b = 1:1)",
            "27:22: block sizes must be positive whole numbers, got 0",
        ]
    );
}

#[test]
fn undeclared_and_numeric_strata() {
    let source = BASE.replace(
        "strata = [\"site\", \"sex\"]",
        "strata = [\"site\", \"foo\", \"age\", \"site\"]",
    );
    let got = errors(&source);
    assert_eq!(
        got[0],
        "28:19: stratification factor `foo` is not a declared field"
    );
    assert!(
        got[1].starts_with(
            "28:26: stratification factor `age` is an integer field and numeric fields cannot \
             stratify; declare a band such as [derived.age_band]"
        ),
        "{got:?}"
    );
    assert_eq!(
        got[2],
        "28:33: stratification factor `site` is listed twice"
    );
    assert_eq!(got.len(), 3);
}

#[test]
fn optional_fields_cannot_stratify() {
    let source = BASE.replace(
        "levels = [\"F\", \"M\"]\n",
        "levels = [\"F\", \"M\"]\nrequired = false\n",
    );
    assert_eq!(
        errors(&source),
        [
            "29:19: stratification factor `sex` depends on optional field `sex`; fields used for \
          stratification must be required (remove `required = false`)"
        ]
    );
}

#[test]
fn unknown_level_in_criterion() {
    let got = errors(&with(
        r#"
[[inclusion]]
id = "women"
field = "sex"
in = ["F", "W"]
"#,
    ));
    assert_eq!(
        got,
        ["33:12: `W` is not a level of category field `sex` (levels: F, M)"]
    );
}

#[test]
fn empty_levels() {
    let source = BASE.replace("levels = [\"F\", \"M\"]", "levels = []");
    assert_eq!(
        errors(&source),
        ["23:10: `levels` of category field `sex` is empty; list at least one level"]
    );
}

#[test]
fn duplicate_arm_id() {
    let source = BASE.replace("id = \"b\"", "id = \"a\"");
    assert_eq!(errors(&source), ["14:6: arm id `a` is declared twice"]);
}

#[test]
fn several_errors_are_reported_together_in_source_order() {
    let source = BASE
        .replace("id = \"t\"", "id = \"T!\"")
        .replace("target_sample_size = 100", "target_sample_size = 0")
        .replace("id = \"b\"", "id = \"a\"")
        .replace("method = \"permuted_blocks\"", "method = \"adaptive\"");
    let got = errors(&source);
    assert_eq!(
        got,
        [
            "1:6: trial id `T!` must be lower-case letters, digits, `_` and `-`, starting with \
             a letter or digit",
            "4:22: target_sample_size must be a positive whole number, got 0",
            "14:6: arm id `a` is declared twice",
            "26:10: unknown randomisation method `adaptive`; expected simple, permuted_blocks, \
             minimisation, biased_coin, big_stick or urn",
        ]
    );
    let err = parse(&source, "t.toml").unwrap_err();
    assert_eq!(err.len(), 4);
    assert_eq!(err.to_string().lines().count(), 4);
}

#[test]
fn top_level_values() {
    let source = BASE
        .replace("version = \"1\"", "version = \" \"\nstatus = \"open\"")
        .replace(
            "consent = \"oral\"",
            "consent = \"verbal\"\nethics_approval = \"\"",
        );
    assert_eq!(
        errors(&source),
        [
            "3:11: version must not be empty",
            "4:10: unknown status `open`; expected planned, recruiting, paused or closed",
            "6:11: unknown consent model `verbal`; expected oral, written, deferred, opt_out or waiver",
            "7:19: ethics_approval must not be empty",
        ]
    );
}

#[test]
fn sites_and_arms() {
    let source = BASE
        .replace(
            "code = \"A\"",
            "code = \"A B\"\n\n[[sites]]\ncode = \"A B\"",
        )
        .replace("[[arms]]\nid = \"b\"\n", "");
    assert_eq!(
        errors(&source),
        [
            "8:8: site code `A B` must be letters, digits, `_` or `-`",
            "11:8: site code `A B` must be letters, digits, `_` or `-`",
            "13:1: a trial needs at least 2 arms, found 1",
        ]
    );
    let source = BASE.replace(
        "[[arms]]\nid = \"a\"\n",
        "[[arms]]\nid = \"A\"\nratio = 0\n",
    );
    assert_eq!(
        errors(&source),
        [
            "11:6: arm id `A` must be lower-case letters, digits, `_` or `-`",
            "12:9: ratio of arm `A` must be a positive whole number, got 0",
        ]
    );
}

#[test]
fn field_declarations() {
    let got = errors(&with(
        r#"
[fields.site]
type = "boolean"

[fields.Weight]
type = "number"

[fields.bmi]
type = "float"

[fields.flag]
type = "boolean"
min = 0

[fields.n]
type = "integer"
levels = ["x"]
min = 1.5
max = 0

[fields.day]
type = "date"
min = "2024-13-01"
max = 2024-01-31

[fields.when]
type = "date"
min = 2024-02-01
max = "2024-01-31"

[fields.c]
type = "category"
levels = ["x", "x", ""]

[fields.k]
type = "category"

[fields.s]
type = "category"
levels = ["a;b"]
"#,
    ));
    assert_eq!(
        got,
        [
            "30:9: `site` is reserved: every enrolment carries its site as the built-in field \
             `site`; choose another field name",
            "33:9: field name `Weight` must start with a lower-case letter and contain only \
             lower-case letters, digits and `_`",
            "37:8: unknown type `float` for field `bmi`; expected integer, number, category, \
             boolean or date",
            "41:7: `min` does not apply to boolean field `flag`; only integer, number and date \
             fields have bounds",
            "45:10: `levels` does not apply to integer field `n`; only category fields have levels",
            "46:7: `min` of integer field `n` must be a whole number, got 1.5",
            "51:7: `min` of date field `day` must be a date written YYYY-MM-DD, got \"2024-13-01\"",
            "57:7: field `when` has `min` 2024-02-01 greater than `max` 2024-01-31",
            "61:16: level of `c` `x` is listed twice",
            "61:21: a level of `c` must not be empty",
            "64:8: category field `k` needs `levels`, e.g. levels = [\"F\", \"M\"]",
            "68:11: level of `s` `a;b` must not contain `;`",
        ]
    );
}

#[test]
fn derived_fields() {
    let got = errors(&with(
        r#"
[derived.sex]
from = "age"
cuts = [1]

[derived.a]
from = "sex"
cuts = [1]

[derived.b]
from = "bmi"
cuts = [1]

[derived.c]
from = "age"
cuts = [65, 64.5, 65]
labels = ["x"]

[derived.d]
from = "age"
cuts = []

[derived.e]
from = "age"
cuts = [10, 20]
labels = ["young", "mid", "young"]
"#,
    ));
    assert_eq!(
        got,
        [
            "30:10: derived field `sex` has the same name as another field",
            "35:8: derived field `a` needs an integer or number field in `from`; `sex` is a \
             category field",
            "39:8: derived field `b` is computed from `bmi`, which is not a declared enrolment \
             field",
            "44:13: cut points of `c` must be whole numbers because its source is an integer \
             field, got 64.5",
            "44:13: cut points of `c` must be strictly increasing, but 64.5 follows 65",
            "49:8: `cuts` of derived field `d` is empty; give at least one cut point",
            "54:27: label of `e` `young` is listed twice",
        ]
    );
}

#[test]
fn derived_labels_count_and_number_source() {
    let got = errors(&with(
        r#"
[fields.onset]
type = "number"

[derived.onset_band]
from = "onset"
cuts = [2.5, 6]
labels = ["early", "late"]
"#,
    ));
    assert_eq!(
        got,
        ["36:10: derived field `onset_band` has 2 cut(s), so it needs 3 labels, got 2"]
    );
    let p = parse(
        &with("\n[fields.onset]\ntype = \"number\"\n\n[derived.onset_band]\nfrom = \"onset\"\ncuts = [2.5, 6]\n"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(p.derived[0].labels, ["<2.5", "2.5 to <6", ">=6"]);
    assert_eq!(p.derived[0].label_for(2.5), "2.5 to <6");
    assert_eq!(p.derived[0].label_for(6.0), ">=6");
    assert_eq!(p.derived[0].label_for(-1.0), "<2.5");
}

#[test]
fn criteria_values_fit_their_field() {
    let got = errors(&with(
        r#"
[fields.stemi]
type = "boolean"

[fields.admitted]
type = "date"

[derived.age_band]
from = "age"
cuts = [65]

[[inclusion]]
id = "c1"
field = "site"
in = ["A", "B", 3]

[[inclusion]]
id = "c2"
field = "sex"
ge = "F"
eq = ["F"]

[[inclusion]]
id = "c3"
field = "stemi"
eq = "yes"

[[exclusion]]
id = "c4"
field = "admitted"
lt = "2024-02-30"
ge = 2024-01-01

[[exclusion]]
id = "c5"
field = "age"
gt = "18"
ne = 3.5

[[exclusion]]
id = "c1"
field = "age_band"
in = ["<65", "65+"]

[[exclusion]]
id = "c6"
field = "weight"
lt = 80

[[exclusion]]
id = "c7"
field = "age"
"#,
    ));
    assert_eq!(
        got,
        [
            "43:12: `B` is not a declared site code (sites: A)",
            "43:17: `in` on `site` takes site codes as strings, got 3",
            "48:6: `ge` cannot be used on category field `sex`: its values have no order; use \
             eq, ne, in or not_in",
            "49:6: `eq` takes a single value; use `in` for a list",
            "54:6: `eq` on boolean field `stemi` takes true or false, got \"yes\"",
            "59:6: `lt` on date field `admitted` takes dates written YYYY-MM-DD, got \
             \"2024-02-30\"",
            "65:6: `gt` on integer field `age` takes numbers, got \"18\"",
            "69:6: criterion id `c1` is already used by an inclusion criterion",
            "71:14: `65+` is not a band of derived field `age_band` (bands: <65, >=65)",
            "75:9: exclusion criterion `c6` refers to `weight`, which is not a declared field, \
             derived field or `site`",
            "79:6: exclusion criterion `c7` has no condition; give at least one of eq, ne, in, \
             not_in, lt, le, gt, ge",
        ]
    );
}

#[test]
fn criteria_of_every_type_parse() {
    let p = parse(
        &with(
            r#"
[fields.stemi]
type = "boolean"

[fields.admitted]
type = "date"

[[inclusion]]
id = "site"
field = "site"
not_in = ["A"]

[[inclusion]]
id = "stemi"
field = "stemi"
eq = true

[[inclusion]]
id = "recent"
field = "admitted"
ge = "2024-01-01"
lt = 2025-01-01

[[exclusion]]
id = "men"
field = "sex"
ne = "M"
"#,
        ),
        "t.toml",
    )
    .unwrap();
    let texts: Vec<&str> = p
        .inclusion
        .iter()
        .chain(&p.exclusion)
        .map(|c| c.text.as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "site is not one of A",
            "stemi = true",
            "admitted >= 2024-01-01 and admitted < 2025-01-01",
            "sex != M",
        ]
    );
}

#[test]
fn broken_declarations_are_not_reported_again_where_used() {
    let got = errors(&with(
        r#"
[fields.bmi]
type = "float"

[derived.bmi_band]
from = "bmi"
cuts = [25]

[[inclusion]]
id = "lean"
field = "bmi_band"
eq = "<25"
"#,
    ));
    assert_eq!(
        got,
        [
            "31:8: unknown type `float` for field `bmi`; expected integer, number, category, \
          boolean or date"
        ]
    );
}

#[test]
fn method_and_block_sizes() {
    let source = BASE.replace("method = \"permuted_blocks\"", "method = \"simple\"");
    assert_eq!(
        errors(&source),
        [
            "27:15: `block_sizes` applies only to method = \"permuted_blocks\"; remove it for \
          simple randomisation"
        ]
    );
    let source = BASE.replace("block_sizes = [2, 4]\n", "");
    assert_eq!(
        errors(&source),
        ["26:10: method = \"permuted_blocks\" needs `block_sizes`, e.g. block_sizes = [2, 4]"]
    );
    let source = BASE.replace("block_sizes = [2, 4]", "block_sizes = [4, 4]");
    assert_eq!(errors(&source), ["27:19: block size 4 is listed twice"]);
}

#[test]
fn dotted_keys_and_inline_tables_work() {
    let source = r#"id = "t"
title = "T"
version = "1"
target_sample_size = 10
consent = "waiver"
sites = [{ code = "A" }]
arms = [{ id = "a" }, { id = "b", ratio = 3 }]
fields.sex.type = "category"
fields.sex.levels = ["F", "M"]
randomisation.method = "simple"
randomisation.strata = ["sex"]
"#;
    let p = parse(source, "t.toml").unwrap();
    assert_eq!(p.ratios(), [1, 3]);
    assert_eq!(p.randomisation.method, Method::Simple);
    assert_eq!(p.consent, ConsentModel::Waiver);
}

#[test]
fn closed_arms_need_an_open_one_and_a_procedure_that_can_close() {
    // Permuted blocks hold every arm in each block: an arm cannot be closed.
    let blocks = BASE.replacen(
        "[[arms]]\nid = \"b\"",
        "[[arms]]\nid = \"b\"\nclosed = true",
        1,
    );
    assert_eq!(
        errors(&blocks),
        vec![
            "15:10: permuted blocks cannot close an arm: every block holds each arm in its ratio; \
              randomise with simple randomisation or minimisation to close arms as you go"
        ]
    );
    let simple = blocks.replacen(
        "method = \"permuted_blocks\"\nblock_sizes = [2, 4]",
        "method = \"simple\"",
        1,
    );
    let p = parse(&simple, "t.toml").unwrap();
    assert_eq!(p.open_arms(), vec![true, false]);
    let all = simple.replacen(
        "[[arms]]\nid = \"a\"",
        "[[arms]]\nid = \"a\"\nclosed = true",
        1,
    );
    let e = errors(&all);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].ends_with("every arm is closed; a trial needs at least one arm open to new patients")
    );
}

/// No protocol can make the engine allocate without bound: sizes and counts are limited, each
/// refused at its place in the file.
#[test]
fn limits_are_located_errors() {
    let huge_block = BASE.replace("block_sizes = [2, 4]", "block_sizes = [4000000000]");
    let found = errors(&huge_block);
    assert!(found.iter().any(|e| e.contains("4000000000")), "{found:?}");
    let big_block = BASE.replace("block_sizes = [2, 4]", "block_sizes = [2000]");
    assert!(
        errors(&big_block)
            .iter()
            .any(|e| e.contains("block size 2000 is larger than 1000")),
        "{:?}",
        errors(&big_block)
    );
    let many_arms: String = (0..21)
        .map(|i| format!("\n[[arms]]\nid = \"x{i}\"\n"))
        .collect();
    assert!(errors(&with(&many_arms))
        .iter()
        .any(|e| e.contains("at most 20 arms")));
    let heavy = BASE.replacen("id = \"a\"", "id = \"a\"\nratio = 1000", 1);
    assert!(errors(&heavy)
        .iter()
        .any(|e| e.contains("ratio of arm `a` must be at most 100")));
    let levels: Vec<String> = (0..201).map(|i| format!("\"l{i}\"")).collect();
    let wide = with(&format!(
        "\n[fields.wide]\ntype = \"category\"\nlevels = [{}]\n",
        levels.join(", ")
    ));
    assert!(errors(&wide)
        .iter()
        .any(|e| e.contains("201 levels; at most 200")));
    let version = BASE.replace("version = \"1\"", "version = \"1.0-beta\"");
    assert!(errors(&version)
        .iter()
        .any(|e| e.starts_with("3:11: version `1.0-beta` must be whole numbers")));
    let padded = format!("{BASE}\n#{}\n", "x".repeat(1024 * 1024));
    assert!(errors(&padded)
        .iter()
        .any(|e| e.starts_with("1:1: the protocol is") && e.contains("at most 1048576")));
    let spaced_level = with("\n[fields.s]\ntype = \"category\"\nlevels = [\"F \", \"M\"]\n");
    assert!(errors(&spaced_level)
        .iter()
        .any(|e| e.contains("whitespace before or after")));
}
