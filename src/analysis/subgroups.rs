//! Subgroup analyses of the primary endpoint for the unblinded report: the hazard ratio of the
//! experimental arm (the first declared) against the reference arm (the last declared) within
//! each level of every stratification factor, with the overall effect and the interaction
//! test — the data of the report's forest plots.
//!
//! Stratification factors are the subgroups: they were fixed before randomisation and every
//! allocation carries them in its stratum key, so no further baseline data are needed. Levels
//! that enrolled nobody are left out.

use serde::Serialize;

use crate::endpoints::{EndpointRow, Outcome};
use crate::protocol::{EndpointKind, Protocol};
use crate::randomise::quality::Population;
use crate::stats::subgroups::{subgroup_analysis, SubgroupData, TreatmentEffect};
use crate::stats::{ChiSquareTest, CoxOptions};

/// One factor's forest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubgroupForest {
    pub endpoint: String,
    pub factor: String,
    pub experimental_arm: String,
    pub reference_arm: String,
    pub overall: TreatmentEffect,
    pub levels: Vec<SubgroupLevel>,
    /// Likelihood-ratio test of the treatment-by-factor interaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interaction: Option<ChiSquareTest>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubgroupLevel {
    pub level: String,
    #[serde(flatten)]
    pub effect: TreatmentEffect,
}

/// The level of `factor` in a stratum key such as `site=UPP;sex=F`.
fn level_of<'a>(stratum: &'a str, factor: &str) -> Option<&'a str> {
    stratum
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .find(|(f, _)| *f == factor)
        .map(|(_, level)| level)
}

/// Forests for the primary endpoint's rows, one per stratification factor with at least two
/// levels enrolled; empty when the primary endpoint is not time-to-event, the protocol has
/// fewer than two arms, or there are no events yet.
pub fn primary_subgroups(protocol: &Protocol, primary: &[EndpointRow]) -> Vec<SubgroupForest> {
    let Some(endpoint) = protocol.primary_endpoint() else {
        return vec![];
    };
    if !matches!(endpoint.kind, EndpointKind::TimeToEvent { .. }) || protocol.arms.len() < 2 {
        return vec![];
    }
    let (Some(experimental), Some(reference)) = (protocol.arms.first(), protocol.arms.last())
    else {
        return vec![];
    };
    // Rows of the two compared arms.
    let rows: Vec<(&EndpointRow, i64, bool, bool)> = primary
        .iter()
        .filter_map(|r| match r.outcome {
            Outcome::TimeToEvent { time_days, event } => {
                let treated = *r.subject.arm == *experimental.id;
                (treated || *r.subject.arm == *reference.id)
                    .then_some((r, time_days, event, treated))
            }
            _ => None,
        })
        .collect();
    if !rows.iter().any(|(_, _, event, _)| *event) {
        return vec![];
    }
    let time: Vec<f64> = rows.iter().map(|(_, t, _, _)| *t as f64).collect();
    let event: Vec<bool> = rows.iter().map(|(_, _, e, _)| *e).collect();
    let treatment: Vec<bool> = rows.iter().map(|(_, _, _, t)| *t).collect();
    let population = Population::from_protocol(protocol);
    let options = CoxOptions::default();
    protocol
        .randomisation
        .strata
        .iter()
        .filter_map(|factor| {
            // Declared levels first, in the protocol's order, then any other level seen.
            let mut levels: Vec<String> = population
                .factors
                .iter()
                .find(|f| &f.name == factor)
                .map(|f| f.levels.clone())
                .unwrap_or_default();
            let seen: Vec<&str> = rows
                .iter()
                .map(|(r, ..)| level_of(&r.subject.stratum, factor).unwrap_or("(missing)"))
                .collect();
            for s in &seen {
                if !levels.iter().any(|l| l == s) {
                    levels.push(s.to_string());
                }
            }
            levels.retain(|l| seen.contains(&l.as_str()));
            if levels.len() < 2 {
                return None;
            }
            let codes: Vec<usize> = seen
                .iter()
                .map(|s| levels.iter().position(|l| l == s).unwrap_or(0))
                .collect();
            let analysis = subgroup_analysis(
                &SubgroupData {
                    time: &time,
                    event: &event,
                    treatment: &treatment,
                    factor: (&codes, levels.len()),
                    strata: None,
                },
                &options,
            )
            .ok()?;
            Some(SubgroupForest {
                endpoint: endpoint.id.clone(),
                factor: factor.clone(),
                experimental_arm: experimental.id.clone(),
                reference_arm: reference.id.clone(),
                overall: analysis.overall,
                levels: levels
                    .into_iter()
                    .zip(analysis.subgroups)
                    .map(|(level, effect)| SubgroupLevel { level, effect })
                    .collect(),
                interaction: analysis.interaction,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn levels_come_from_the_stratum_key() {
        assert_eq!(super::level_of("site=UPP;sex=F", "sex"), Some("F"));
        assert_eq!(super::level_of("all", "sex"), None);
    }
}
