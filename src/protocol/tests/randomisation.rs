//! `[randomisation]` methods beyond blocks: minimisation, biased coin, big stick, urn, cluster
//! and per-patient arm eligibility.

use super::{errors, BASE};
use crate::protocol::{parse, ImbalanceMeasure, Method, MinimisationFactorSpec};

/// BASE with its `[randomisation]` body (from line 26) replaced.
fn randomisation(body: &str) -> String {
    let head = BASE.split("method = \"permuted_blocks\"").next().unwrap();
    format!("{head}{body}")
}

#[test]
fn minimisation_with_factors_and_defaults() {
    let source = randomisation(
        "method = \"minimisation\"\nfactors = [{ field = \"site\" }, { field = \"sex\", weight = 2 }]\np = 0.8\n",
    );
    let p = parse(&source, "t.toml").unwrap();
    assert_eq!(
        p.randomisation.method,
        Method::Minimisation {
            factors: vec![
                MinimisationFactorSpec {
                    field: "site".into(),
                    weight: 1.0
                },
                MinimisationFactorSpec {
                    field: "sex".into(),
                    weight: 2.0
                },
            ],
            measure: ImbalanceMeasure::Range,
            p: 0.8,
            initial_random: 0,
        }
    );
    assert!(p.randomisation.strata.is_empty());
    assert_eq!(p.randomisation.cluster, None);
    assert!(!p.randomisation.arm_eligibility);
    let scheme = crate::randomise::Scheme::from_protocol(&p).unwrap();
    assert_eq!(scheme.procedure(), "minimisation");
    assert_eq!(scheme.factors().len(), 2);
}

#[test]
fn minimisation_mistakes_point_at_their_values() {
    let source = randomisation(
        "method = \"minimisation\"\nfactors = [{ field = \"age\" }, { field = \"sex\" }, { field = \"sex\", weight = -1 }, { field = \"nope\" }]\nmeasure = \"max\"\np = 1.5\ninitial_random = -2\nstrata = [\"sex\"]\nblock_sizes = [2]\n",
    );
    assert_eq!(
        errors(&source),
        [
            "27:22: minimisation factor `age` is an integer field and numeric fields cannot be \
             minimised on; declare a band such as [derived.age_band] with from = \"age\" and \
             cuts, and minimise on that",
            "27:60: minimisation factor `sex` is listed twice",
            "27:76: weight of minimisation factor `sex` must be a positive number, got -1",
            "27:92: minimisation factor `nope` is not a declared field",
            "28:11: unknown imbalance measure `max`; expected range, variance or sd",
            "29:5: `p` must be a number from 0.5 to 1, got 1.5",
            "30:18: `initial_random` must be a whole number >= 0, got -2",
            "31:10: minimisation balances its `factors` over the whole trial and takes no \
             `strata`; list `site` and the other factors under `factors` instead",
            "32:15: `block_sizes` applies only to method = \"permuted_blocks\"; remove it for \
             method = \"minimisation\"",
        ]
    );
    assert_eq!(
        errors(&randomisation("method = \"minimisation\"\n")),
        [
            "26:10: method = \"minimisation\" needs `factors`, e.g. factors = [{ field = \
             \"site\" }, { field = \"sex\", weight = 1.0 }]",
            "26:10: method = \"minimisation\" needs `p`, e.g. p = 0.8",
        ]
    );
}

#[test]
fn coins_and_urn() {
    let p = parse(
        &randomisation("method = \"biased_coin\"\np = 0.667\n"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(p.randomisation.method, Method::BiasedCoin { p: 0.667 });
    let p = parse(
        &randomisation("method = \"big_stick\"\nmax_imbalance = 3\nstrata = [\"site\"]\n"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(
        p.randomisation.method,
        Method::BigStick { max_imbalance: 3 }
    );
    let p = parse(
        &randomisation("method = \"urn\"\nalpha = 0\nbeta = 1\n"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(p.randomisation.method, Method::Urn { alpha: 0, beta: 1 });
    for method in ["biased_coin", "big_stick", "urn"] {
        let p = parse(
            &randomisation(&format!(
                "method = \"{method}\"\np = 0.7\nmax_imbalance = 2\nalpha = 1\nbeta = 1\n"
            )),
            "t.toml",
        );
        assert!(p.is_err(), "{method} accepted parameters of other methods");
    }
    assert_eq!(
        errors(&randomisation(
            "method = \"big_stick\"\nmax_imbalance = 0\n"
        )),
        ["27:17: `max_imbalance` must be a whole number >= 1, got 0"]
    );
    assert_eq!(
        errors(&randomisation("method = \"urn\"\nalpha = 1\n")),
        [
            "26:10: method = \"urn\" needs `alpha` and `beta` (Wei's UD(alpha, beta)), e.g. \
             alpha = 1 and beta = 1; `beta` is missing"
        ]
    );
    let unequal = BASE.replace("id = \"b\"\n", "id = \"b\"\nratio = 2\n");
    let unequal = unequal.replace(
        "method = \"permuted_blocks\"\nblock_sizes = [2, 4]",
        "method = \"biased_coin\"\np = 0.6",
    );
    assert_eq!(
        errors(&unequal),
        ["27:10: method = \"biased_coin\" needs exactly 2 arms with equal ratios, got a:b = 1:2"]
    );
    assert_eq!(
        errors(&randomisation("method = \"coin\"\n")),
        [
            "26:10: unknown randomisation method `coin`; expected simple, permuted_blocks, \
             minimisation, biased_coin, big_stick or urn"
        ]
    );
}

#[test]
fn cluster_and_arm_eligibility() {
    let source = randomisation("method = \"simple\"\ncluster = \"site\"\narm_eligibility = true\n");
    let p = parse(&source, "t.toml").unwrap();
    assert_eq!(p.randomisation.cluster.as_deref(), Some("site"));
    assert!(p.randomisation.arm_eligibility);
    assert_eq!(
        errors(&randomisation("method = \"simple\"\ncluster = \"age\"\n")),
        [
            "27:11: cluster `age` is integer field `age`; a cluster is `site` or a category \
             field (such as a household code)"
        ]
    );
    assert_eq!(
        errors(&randomisation(
            "method = \"simple\"\ncluster = \"household\"\n"
        )),
        ["27:11: cluster `household` is not a declared field"]
    );
}

#[test]
fn shipped_three_arm_minimisation_protocol() {
    let p = parse(
        include_str!("../../../protocols/design/three-arm-minimisation.toml"),
        "three-arm-minimisation.toml",
    )
    .unwrap();
    assert_eq!(p.arms.len(), 3);
    let Method::Minimisation {
        factors,
        measure,
        p: prob,
        initial_random,
    } = &p.randomisation.method
    else {
        panic!("not minimisation: {:?}", p.randomisation.method)
    };
    let names: Vec<&str> = factors.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(names, ["site", "sex", "age_band", "diabetes"]);
    assert_eq!(
        (*measure, *prob, *initial_random),
        (ImbalanceMeasure::Range, 0.8, 30)
    );
    assert!(p.randomisation.arm_eligibility);
    assert_eq!(
        crate::randomise::Scheme::from_protocol(&p)
            .unwrap()
            .ratios(),
        [1, 1, 1]
    );
}
