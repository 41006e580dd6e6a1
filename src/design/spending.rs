//! Lan–DeMets spending functions: how much of the type I error (or, for futility, of the type II
//! error) a design has used up by information fraction `t`.
//!
//! The formulas are rpact's (`getSpendingValueCpp`), so that boundaries agree with
//! `getDesignGroupSequential(typeOfDesign = "asOF" | "asP" | "asHSD" | "asKD")` and, for beta
//! spending, `typeBetaSpending = "bsOF" | "bsP" | "bsHSD" | "bsKD"`.

use serde::Serialize;

use super::DesignError;
use crate::stats::normal;

/// A spending function family (serialised as its CLI spelling, e.g. `"hsd:-4"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpendingFunction {
    /// O'Brien–Fleming type: `2 s (1 - Phi(z_{a/(2s)} / sqrt(t)))` for `s`-sided alpha spending
    /// (rpact `asOF`); spends almost nothing early.
    OBrienFleming,
    /// Pocock type: `a log(1 + (e - 1) t)` (rpact `asP`).
    Pocock,
    /// Hwang–Shih–DeCani: `a (1 - exp(-g t)) / (1 - exp(-g))`, `a t` when `g = 0`
    /// (rpact `asHSD`, `gammaA = g`); `g = -4` resembles O'Brien–Fleming, `g = 1` Pocock.
    HwangShihDeCani { gamma: f64 },
    /// Kim–DeMets power family: `a t^rho` (rpact `asKD`, `gammaA = rho`), `rho > 0`.
    KimDeMets { rho: f64 },
}

impl Serialize for SpendingFunction {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.label())
    }
}

impl std::fmt::Display for SpendingFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

impl SpendingFunction {
    /// Parses `obf`, `pocock`, `hsd:GAMMA` or `kd:RHO` (the CLI's spelling).
    ///
    /// ```
    /// use rrct::design::SpendingFunction;
    /// assert_eq!(SpendingFunction::parse("hsd:-4").unwrap(),
    ///            SpendingFunction::HwangShihDeCani { gamma: -4.0 });
    /// assert!(SpendingFunction::parse("kd:0").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, DesignError> {
        let invalid = |why: &str| DesignError::InvalidArgument {
            name: "spending".into(),
            message: format!("`{text}`: {why}; expected obf, pocock, hsd:GAMMA or kd:RHO"),
        };
        let (name, parameter) = match text.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (text, None),
        };
        let value = |p: Option<&str>| -> Result<f64, DesignError> {
            let p = p.ok_or_else(|| invalid("a parameter is missing"))?;
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| invalid("the parameter is not a number"))?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(invalid("the parameter is not finite"))
            }
        };
        let lower = name.trim().to_ascii_lowercase();
        if let Some((classical, spending)) = match lower.as_str() {
            "of" => Some((
                "O'Brien–Fleming design (rpact typeOfDesign OF)",
                "`obf` (rpact asOF)",
            )),
            "p" => Some((
                "Pocock design (rpact typeOfDesign P)",
                "`pocock` (rpact asP)",
            )),
            "wt" => Some((
                "Wang–Tsiatis design (rpact typeOfDesign WT)",
                "`hsd:GAMMA` or `kd:RHO`",
            )),
            "hp" => Some((
                "Haybittle–Peto design (rpact typeOfDesign HP)",
                "`hsd:GAMMA` or `kd:RHO`",
            )),
            _ => None,
        } {
            return Err(DesignError::InvalidArgument {
                name: "spending".into(),
                message: format!(
                    "`{text}` is the classical {classical}, not a spending function; the \
                     spending function closest to it is {spending}, and `rrct design` takes the \
                     classical design as `--design {}`",
                    name.trim().to_ascii_uppercase()
                ),
            });
        }
        let function = match lower.as_str() {
            "obf" | "asof" | "bsof" => SpendingFunction::OBrienFleming,
            "pocock" | "asp" | "bsp" => SpendingFunction::Pocock,
            "hsd" | "ashsd" | "bshsd" => SpendingFunction::HwangShihDeCani {
                gamma: value(parameter)?,
            },
            "kd" | "askd" | "bskd" => SpendingFunction::KimDeMets {
                rho: value(parameter)?,
            },
            _ => return Err(invalid("unknown spending function")),
        };
        if matches!(
            function,
            SpendingFunction::OBrienFleming | SpendingFunction::Pocock
        ) && parameter.is_some()
        {
            return Err(invalid("this family takes no parameter"));
        }
        function.validate()?;
        Ok(function)
    }

    /// Checks the family's parameter.
    pub fn validate(&self) -> Result<(), DesignError> {
        match *self {
            SpendingFunction::KimDeMets { rho } if !(rho > 0.0 && rho.is_finite()) => {
                Err(DesignError::InvalidArgument {
                    name: "spending".into(),
                    message: format!("Kim–DeMets rho must be a finite number > 0, not {rho}"),
                })
            }
            SpendingFunction::HwangShihDeCani { gamma } if !gamma.is_finite() => {
                Err(DesignError::InvalidArgument {
                    name: "spending".into(),
                    message: format!("Hwang–Shih–DeCani gamma must be finite, not {gamma}"),
                })
            }
            _ => Ok(()),
        }
    }

    /// The CLI spelling (`obf`, `pocock`, `hsd:-4`, `kd:3`).
    pub fn label(&self) -> String {
        match *self {
            SpendingFunction::OBrienFleming => "obf".into(),
            SpendingFunction::Pocock => "pocock".into(),
            SpendingFunction::HwangShihDeCani { gamma } => format!("hsd:{gamma}"),
            SpendingFunction::KimDeMets { rho } => format!("kd:{rho}"),
        }
    }

    /// Cumulative error spent by information fraction `t` out of `total` (`sides` = 1 or 2
    /// matters only for the O'Brien–Fleming type, as in rpact). Fractions at or beyond 1 spend
    /// everything; 0 spends nothing.
    ///
    /// ```
    /// use rrct::design::SpendingFunction;
    /// let a = SpendingFunction::OBrienFleming.spent(0.025, 0.5, 1);
    /// assert!((a - 0.001_525_322_757_988_916).abs() < 1e-15);
    /// let p = SpendingFunction::Pocock.spent(0.025, 0.5, 1);
    /// assert!((p - 0.025 * (1.0 + (std::f64::consts::E - 1.0) * 0.5).ln()).abs() < 1e-17);
    /// ```
    pub fn spent(&self, total: f64, t: f64, sides: u8) -> f64 {
        if t >= 1.0 {
            return total;
        }
        if t <= 0.0 {
            return 0.0;
        }
        let value = match *self {
            SpendingFunction::OBrienFleming => {
                let s = f64::from(sides);
                2.0 * s * normal::upper_tail(normal::upper_quantile(total / (2.0 * s)) / t.sqrt())
            }
            SpendingFunction::Pocock => total * (1.0 + (std::f64::consts::E - 1.0) * t).ln(),
            SpendingFunction::HwangShihDeCani { gamma } => {
                if gamma == 0.0 {
                    total * t
                } else {
                    total * (-(-gamma * t).exp_m1()) / (-(-gamma).exp_m1())
                }
            }
            SpendingFunction::KimDeMets { rho } => total * t.powf(rho),
        };
        value.clamp(0.0, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_spends_all_at_one_and_nothing_at_zero() {
        for f in [
            SpendingFunction::OBrienFleming,
            SpendingFunction::Pocock,
            SpendingFunction::HwangShihDeCani { gamma: -4.0 },
            SpendingFunction::HwangShihDeCani { gamma: 0.0 },
            SpendingFunction::KimDeMets { rho: 2.0 },
        ] {
            for sides in [1, 2] {
                assert_eq!(f.spent(0.05, 1.0, sides), 0.05);
                assert_eq!(f.spent(0.05, 0.0, sides), 0.0);
                let mut last = 0.0;
                for i in 1..100 {
                    let v = f.spent(0.05, f64::from(i) / 100.0, sides);
                    assert!(v >= last && v <= 0.05, "{f:?} at {i}");
                    last = v;
                }
                assert!((f.spent(0.05, 1.0 - 1e-12, sides) - 0.05).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn parse_errors_are_clear() {
        assert!(SpendingFunction::parse("obf:2").is_err());
        assert!(SpendingFunction::parse("hsd").is_err());
        assert!(SpendingFunction::parse("hsd:x").is_err());
        assert!(SpendingFunction::parse("wt").is_err());
        // rpact's classical design names are never taken for the spending versions.
        for classical in ["of", "OF", "p", "P", "hp", "WT"] {
            let e = SpendingFunction::parse(classical).unwrap_err().to_string();
            assert!(e.contains("classical") && e.contains("--design"), "{e}");
        }
        assert_eq!(
            SpendingFunction::parse("kd:3").unwrap(),
            SpendingFunction::KimDeMets { rho: 3.0 }
        );
    }
}
