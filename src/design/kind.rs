//! Which family of efficacy boundaries a design has, in rpact's `typeOfDesign` terms: the
//! classical designs whose boundaries have a fixed shape (`OF`, `P`, `WT`, `HP`) and the
//! Lan–DeMets alpha-spending designs (`asOF`, `asP`, `asHSD`, `asKD`).
//!
//! The two families answer different questions and give different boundaries (the classical
//! O'Brien–Fleming design of three looks rejects at 3.47, 2.45, 2.00 one-sided at 2.5%, its
//! spending version at 3.71, 2.51, 1.99), so a spelling of one is never taken for the other:
//! every rpact type that is not built here is refused by name.

use serde::Serialize;

use super::{invalid, DesignError, SpendingFunction};

/// Haybittle–Peto: the interim boundary (rpact's `constantBoundsHP` default).
pub const HAYBITTLE_PETO_INTERIM_Z: f64 = 3.0;

/// rpact's range for the Wang–Tsiatis `deltaWT`.
pub const WANG_TSIATIS_DELTA_RANGE: (f64, f64) = (-0.5, 1.0);

/// The boundary family of a group-sequential design (serialised as its spelling, e.g. `"WT:0.25"`
/// or `"asHSD:-4"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DesignKind {
    /// Classical O'Brien–Fleming (rpact `OF`): `c_k = C / sqrt(t_k)`, `C` chosen so that the
    /// design's type I error is alpha.
    OBrienFleming,
    /// Classical Pocock (rpact `P`): the same boundary `C` at every look.
    Pocock,
    /// Wang–Tsiatis Δ-class (rpact `WT`, `deltaWT = delta`): `c_k = C t_k^(delta - 1/2)`;
    /// `delta = 0` is O'Brien–Fleming, `delta = 0.5` Pocock.
    WangTsiatis { delta: f64 },
    /// Haybittle–Peto (rpact `HP`): z = 3 at every interim look, the final boundary chosen so
    /// that the type I error is alpha.
    HaybittlePeto,
    /// Lan–DeMets alpha spending (rpact `asOF`, `asP`, `asHSD`, `asKD`).
    AlphaSpending(SpendingFunction),
}

impl Serialize for DesignKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.label())
    }
}

impl std::fmt::Display for DesignKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

const EXPECTED: &str = "expected OF, P, WT:DELTA, HP, asOF, asP, asHSD:GAMMA or asKD:RHO";

impl DesignKind {
    /// Parses rpact's `typeOfDesign` spelling (case-insensitive), with the parameter after a
    /// colon: `OF`, `P`, `WT:DELTA`, `HP`, `asOF`, `asP`, `asHSD:GAMMA`, `asKD:RHO`. rpact types
    /// that are not built (`PT`, `WToptimum`, `asUser`, `noEarlyEfficacy`) are refused by name.
    ///
    /// ```
    /// use rrct::design::{DesignKind, SpendingFunction};
    /// assert_eq!(DesignKind::parse("OF").unwrap(), DesignKind::OBrienFleming);
    /// assert_eq!(DesignKind::parse("wt:0.25").unwrap(), DesignKind::WangTsiatis { delta: 0.25 });
    /// assert_eq!(DesignKind::parse("asOF").unwrap(),
    ///            DesignKind::AlphaSpending(SpendingFunction::OBrienFleming));
    /// assert!(DesignKind::parse("PT").unwrap_err().to_string().contains("Pampallona"));
    /// ```
    pub fn parse(text: &str) -> Result<Self, DesignError> {
        let fail = |why: String| invalid("design", format!("`{text}`: {why}; {EXPECTED}"));
        let (name, parameter) = match text.trim().split_once(':') {
            Some((n, p)) => (n.trim(), Some(p.trim())),
            None => (text.trim(), None),
        };
        let lower = name.to_ascii_lowercase();
        let no_parameter = |kind: DesignKind| match parameter {
            Some(_) => Err(fail(format!("{name} takes no parameter"))),
            None => Ok(kind),
        };
        let kind =
            match lower.as_str() {
                "of" => no_parameter(DesignKind::OBrienFleming)?,
                "p" => no_parameter(DesignKind::Pocock)?,
                "hp" => no_parameter(DesignKind::HaybittlePeto)?,
                "wt" => {
                    let p = parameter.ok_or_else(|| {
                        fail("WT needs its delta, e.g. WT:0.25 (rpact's deltaWT)".into())
                    })?;
                    let delta: f64 = p
                        .parse()
                        .map_err(|_| fail(format!("delta `{p}` is not a number")))?;
                    DesignKind::WangTsiatis { delta }
                }
                "asof" | "asp" | "ashsd" | "askd" => {
                    // The spending function's own parser reads "asOF", "asHSD:-4", ...
                    DesignKind::AlphaSpending(
                        SpendingFunction::parse(text.trim()).map_err(|e| fail(e.to_string()))?,
                    )
                }
                "pt" => {
                    return Err(fail(
                        "rpact's Pampallona–Tsiatis design (PT) is not supported".into(),
                    ))
                }
                "wtoptimum" => return Err(fail(
                    "rpact's optimum Wang–Tsiatis design (WToptimum) is not supported; give WT \
                     with its delta"
                        .into(),
                )),
                "asuser" => {
                    return Err(fail(
                        "user-defined alpha spending (asUser) is not supported".into(),
                    ))
                }
                "noearlyefficacy" => {
                    return Err(fail(
                        "rpact's noEarlyEfficacy design is not supported".into(),
                    ))
                }
                "obf" | "pocock" | "hsd" | "kd" => {
                    return Err(fail(format!(
                        "`{name}` names a spending function: give it with --spending, or as as{} \
                     here",
                        match lower.as_str() {
                            "obf" => "OF",
                            "pocock" => "P",
                            "hsd" => "HSD:GAMMA",
                            _ => "KD:RHO",
                        }
                    )))
                }
                _ => return Err(fail("unknown type of design".into())),
            };
        kind.validate()?;
        Ok(kind)
    }

    /// Checks the parameter.
    pub fn validate(&self) -> Result<(), DesignError> {
        match *self {
            DesignKind::WangTsiatis { delta } => {
                let (lo, hi) = WANG_TSIATIS_DELTA_RANGE;
                if delta.is_finite() && (lo..=hi).contains(&delta) {
                    Ok(())
                } else {
                    Err(invalid(
                        "design",
                        format!("Wang–Tsiatis delta must lie in [{lo}, {hi}] (as rpact's deltaWT), not {delta}"),
                    ))
                }
            }
            DesignKind::AlphaSpending(f) => f.validate(),
            _ => Ok(()),
        }
    }

    /// rpact's spelling: `OF`, `P`, `WT:0.25`, `HP`, `asOF`, `asP`, `asHSD:-4`, `asKD:3`.
    pub fn label(&self) -> String {
        match *self {
            DesignKind::OBrienFleming => "OF".into(),
            DesignKind::Pocock => "P".into(),
            DesignKind::WangTsiatis { delta } => format!("WT:{delta}"),
            DesignKind::HaybittlePeto => "HP".into(),
            DesignKind::AlphaSpending(f) => match f {
                SpendingFunction::OBrienFleming => "asOF".into(),
                SpendingFunction::Pocock => "asP".into(),
                SpendingFunction::HwangShihDeCani { gamma } => format!("asHSD:{gamma}"),
                SpendingFunction::KimDeMets { rho } => format!("asKD:{rho}"),
            },
        }
    }

    /// The spending function of an alpha-spending design.
    pub fn spending(&self) -> Option<SpendingFunction> {
        match *self {
            DesignKind::AlphaSpending(f) => Some(f),
            _ => None,
        }
    }

    /// The Wang–Tsiatis delta of a classical design with boundaries `C t^(delta - 1/2)`.
    pub(crate) fn wang_tsiatis_delta(&self) -> Option<f64> {
        match *self {
            DesignKind::OBrienFleming => Some(0.0),
            DesignKind::Pocock => Some(0.5),
            DesignKind::WangTsiatis { delta } => Some(delta),
            _ => None,
        }
    }
}

impl From<SpendingFunction> for DesignKind {
    fn from(f: SpendingFunction) -> Self {
        DesignKind::AlphaSpending(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_round_trips() {
        for text in [
            "OF", "P", "WT:0.25", "WT:-0.5", "HP", "asOF", "asP", "asHSD:-4", "asKD:3",
        ] {
            let kind = DesignKind::parse(text).unwrap();
            assert_eq!(kind.label(), text);
            assert_eq!(DesignKind::parse(&kind.label()).unwrap(), kind);
        }
    }

    #[test]
    fn unsupported_and_ambiguous_spellings_are_refused_by_name() {
        let message = |t: &str| DesignKind::parse(t).unwrap_err().to_string();
        assert!(message("PT").contains("Pampallona–Tsiatis"));
        assert!(message("WToptimum").contains("WToptimum"));
        assert!(message("asUser").contains("asUser"));
        assert!(message("noEarlyEfficacy").contains("noEarlyEfficacy"));
        assert!(message("obf").contains("--spending"));
        assert!(message("WT").contains("delta"));
        assert!(message("WT:1.5").contains("[-0.5, 1]"));
        assert!(message("OF:1").contains("no parameter"));
        assert!(message("asHSD").contains("parameter"));
        assert!(message("xyz").contains("unknown"));
    }
}
