//! Protocol amendments: what changed between two versions of a trial's protocol, and which
//! changes a trial that has started randomising may not make.
//!
//! A new version may add sites, add arms, close arms to new patients (`closed = true`; the arm
//! stays in every analysis), change the target, the status, the eligibility
//! criteria or the endpoints at any time: allocations already made keep the version they were
//! made under. What it may not change once patients are randomised is what the allocation
//! sequence depends on and an analysis must be able to rely on:
//! - the randomisation method, the stratification factors and the cluster unit;
//! - the minimisation factors (fields and weights);
//! - for permuted blocks, the arms and their ratios (adding or removing an arm changes the
//!   ratios too) and the block sizes: every stratum's stored position is a slot of a block
//!   drawn for the old ratios and sizes, and the block it is in would be redrawn differently,
//!   so it would no longer hold the ratio. (Advancing every stratum to a fresh block at the
//!   amendment would lift this; it is not done yet.) Trials that add arms as they go use simple
//!   randomisation or minimisation;
//! - an arm that has received patients can never be removed: its patients stay in every
//!   analysis, which compares the arms the protocol declares.

use std::collections::BTreeSet;

use super::model::{Method, Protocol};

/// What the store knows about a trial's randomisation so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RandomisationSoFar {
    /// Allocations made (any version).
    pub allocations: u64,
    /// Arm ids that have received at least one allocation.
    pub allocated_arms: Vec<String>,
}

/// The changes from `current` to `next`, described for the audit trail, or every reason the
/// amendment is refused.
pub fn check_amendment(
    current: &Protocol,
    next: &Protocol,
    so_far: &RandomisationSoFar,
) -> Result<Vec<String>, Vec<String>> {
    let changes = describe_changes(current, next);
    if so_far.allocations == 0 {
        return Ok(changes);
    }
    let mut refused = Vec::new();
    let (was, now) = (&current.randomisation, &next.randomisation);
    if was.method.as_str() != now.method.as_str() {
        refused.push(format!(
            "the randomisation method cannot change from {} to {} after randomisation has started",
            was.method.as_str(),
            now.method.as_str()
        ));
    }
    if was.strata != now.strata {
        refused.push(format!(
            "the stratification factors cannot change from [{}] to [{}] after randomisation has \
             started",
            was.strata.join(", "),
            now.strata.join(", ")
        ));
    }
    if was.cluster != now.cluster {
        refused.push(format!(
            "the cluster unit cannot change from {} to {} after randomisation has started",
            was.cluster.as_deref().unwrap_or("none"),
            now.cluster.as_deref().unwrap_or("none")
        ));
    }
    if let (Method::Minimisation { factors: a, .. }, Method::Minimisation { factors: b, .. }) =
        (&was.method, &now.method)
    {
        if a != b {
            let show = |fs: &[super::model::MinimisationFactorSpec]| {
                fs.iter()
                    .map(|f| format!("{} (weight {})", f.field, f.weight))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            refused.push(format!(
                "the minimisation factors cannot change from [{}] to [{}] after randomisation has \
                 started",
                show(a),
                show(b)
            ));
        }
    }
    if let (Method::PermutedBlocks { block_sizes: a }, Method::PermutedBlocks { block_sizes: b }) =
        (&was.method, &now.method)
    {
        let ratios = |p: &Protocol| -> Vec<(String, u32)> {
            p.arms.iter().map(|a| (a.id.clone(), a.ratio)).collect()
        };
        let what = match (ratios(current) != ratios(next), a != b) {
            (true, true) => Some("the arms or their ratios and the block sizes"),
            (true, false) => Some("the arms or their ratios"),
            (false, true) => Some("the block sizes"),
            (false, false) => None,
        };
        if let Some(what) = what {
            refused.push(format!(
                "{what} of permuted blocks cannot change after randomisation has started: each \
                 stratum is part-way through a block drawn for the current ratios and sizes"
            ));
        }
    }
    for arm in &so_far.allocated_arms {
        if next.arm_index(arm).is_none() {
            refused.push(format!(
                "arm `{arm}` has received patients and cannot be removed: they stay in every \
                 analysis"
            ));
        }
    }
    if refused.is_empty() {
        Ok(changes)
    } else {
        Err(refused)
    }
}

/// One line per difference, for the audit entry of the new version.
pub fn describe_changes(current: &Protocol, next: &Protocol) -> Vec<String> {
    let mut changes = Vec::new();
    let ids = |p: &Protocol, sites: bool| -> BTreeSet<String> {
        if sites {
            p.sites.iter().map(|s| s.code.clone()).collect()
        } else {
            p.arms.iter().map(|a| a.id.clone()).collect()
        }
    };
    for (what, sites) in [("site", true), ("arm", false)] {
        let (a, b) = (ids(current, sites), ids(next, sites));
        for added in b.difference(&a) {
            changes.push(format!("{what} `{added}` added"));
        }
        for removed in a.difference(&b) {
            changes.push(format!("{what} `{removed}` removed"));
        }
    }
    for arm in &next.arms {
        if let Some(before) = current.arms.iter().find(|a| a.id == arm.id) {
            if before.ratio != arm.ratio {
                changes.push(format!(
                    "arm `{}` ratio {} → {}",
                    arm.id, before.ratio, arm.ratio
                ));
            }
            if before.closed != arm.closed {
                let now = if arm.closed { "closed" } else { "reopened" };
                changes.push(format!("arm `{}` {now} to new patients", arm.id));
            }
        }
    }
    if current.target_sample_size != next.target_sample_size {
        changes.push(format!(
            "target sample size {} → {}",
            current.target_sample_size, next.target_sample_size
        ));
    }
    if current.status != next.status {
        changes.push(format!(
            "status {} → {}",
            current.status.as_str(),
            next.status.as_str()
        ));
    }
    let differs = [
        ("title", current.title != next.title),
        (
            "ethics approval",
            current.ethics_approval != next.ethics_approval,
        ),
        ("enrolment fields", current.fields != next.fields),
        ("derived fields", current.derived != next.derived),
        (
            "eligibility criteria",
            current.inclusion != next.inclusion || current.exclusion != next.exclusion,
        ),
        ("randomisation", current.randomisation != next.randomisation),
        ("follow-up rules", current.follow_up != next.follow_up),
        ("endpoints", current.endpoints != next.endpoints),
        ("interim monitoring", current.monitoring != next.monitoring),
    ];
    for (what, changed) in differs {
        if changed {
            changes.push(format!("{what} changed"));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASTE: &str = include_str!("../../protocols/taste.toml");

    fn taste(replace: &[(&str, &str)]) -> Protocol {
        let mut s = TASTE.to_string();
        for (a, b) in replace {
            assert!(s.contains(a), "{a}");
            s = s.replacen(a, b, 1);
        }
        crate::protocol::parse(&s, "taste.toml").unwrap()
    }

    fn started() -> RandomisationSoFar {
        RandomisationSoFar {
            allocations: 10,
            allocated_arms: vec!["aspiration".into(), "pci".into()],
        }
    }

    const SITE: &str = "[[sites]]\ncode = \"UPP\"";
    const NEW_SITE: &str = "[[sites]]\ncode = \"NEW\"\n\n[[sites]]\ncode = \"UPP\"";

    #[test]
    fn sites_and_target_may_change_at_any_time() {
        let next = taste(&[
            (SITE, NEW_SITE),
            ("target_sample_size = 7244", "target_sample_size = 8000"),
        ]);
        assert_eq!(
            check_amendment(&taste(&[]), &next, &started()),
            Ok(vec![
                "site `NEW` added".to_string(),
                "target sample size 7244 → 8000".to_string()
            ])
        );
    }

    #[test]
    fn design_changes_are_refused_once_randomising() {
        let current = taste(&[]);
        let cases: Vec<(Protocol, &str)> =
            vec![
            (
                taste(&[("strata = [\"site\", \"sex\"]", "strata = [\"site\"]")]),
                "stratification factors cannot change",
            ),
            (
                taste(&[(
                    "method = \"permuted_blocks\"\nblock_sizes = [2, 4, 6]",
                    "method = \"simple\"",
                )]),
                "method cannot change from permuted_blocks to simple",
            ),
            (
                taste(&[("block_sizes = [2, 4, 6]", "block_sizes = [4]")]),
                "the block sizes of permuted blocks cannot change after randomisation has started",
            ),
            (
                taste(&[("label = \"PCI alone\"\nratio = 1", "label = \"PCI alone\"\nratio = 2"),
                        ("block_sizes = [2, 4, 6]", "block_sizes = [3, 6]")]),
                "the arms or their ratios and the block sizes",
            ),
        ];
        for (next, needle) in cases {
            let refused = check_amendment(&current, &next, &started()).unwrap_err();
            assert!(refused.iter().any(|r| r.contains(needle)), "{refused:?}");
            // Before the first allocation anything goes.
            assert!(check_amendment(&current, &next, &RandomisationSoFar::default()).is_ok());
        }
    }
}
