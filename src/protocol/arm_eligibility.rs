//! Per-patient arm eligibility (RECOVERY-style): the enrolment's `"ineligible_arms"` list read
//! into one flag per arm, checked against the protocol.

use serde_json::Value as Json;

use super::enrolment::FieldError;
use super::model::Protocol;

/// The enrolment key naming arms unsuitable for the patient.
pub const INELIGIBLE_ARMS: &str = "ineligible_arms";

/// Read `"ineligible_arms": ["arm_id", ...]` (`raw` is the key's value, `None` when absent):
/// `Ok(None)` when not sent (or `null`), else one eligibility flag per arm in protocol order.
/// Refused, naming the key: the key for a trial whose protocol has no `arm_eligibility`,
/// anything but an array of arm ids, an unknown arm id, and a list leaving no arm.
///
/// Arms the protocol has closed (`closed = true`) are ineligible for every patient: with a
/// closed arm the flags are always returned, and a patient eligible only for closed arms is
/// refused the same way.
pub fn parse_ineligible_arms(
    protocol: &Protocol,
    raw: Option<&Json>,
) -> Result<Option<Vec<bool>>, FieldError> {
    let open = protocol.open_arms();
    let listed = patient_arms(protocol, raw)?;
    if !open.contains(&false) {
        return Ok(listed);
    }
    let eligible: Vec<bool> = match listed {
        Some(flags) => flags.iter().zip(&open).map(|(&e, &o)| e && o).collect(),
        None => open,
    };
    if !eligible.contains(&true) {
        return Err(FieldError {
            field: INELIGIBLE_ARMS.to_string(),
            message: format!(
                "every arm of trial {} this patient is eligible for is closed to new patients",
                protocol.trial_id
            ),
        });
    }
    Ok(Some(eligible))
}

/// The patient's own list, as [`parse_ineligible_arms`] describes it, closed arms aside.
fn patient_arms(protocol: &Protocol, raw: Option<&Json>) -> Result<Option<Vec<bool>>, FieldError> {
    let error = |message: String| FieldError {
        field: INELIGIBLE_ARMS.to_string(),
        message,
    };
    let list = match raw {
        None | Some(Json::Null) => return Ok(None),
        Some(_) if !protocol.randomisation.arm_eligibility => {
            return Err(error(format!(
                "trial {} does not take {INELIGIBLE_ARMS}: its protocol does not declare \
                 arm_eligibility = true",
                protocol.trial_id
            )))
        }
        Some(Json::Array(list)) => list,
        Some(other) => {
            return Err(error(format!(
                "{INELIGIBLE_ARMS} must be an array of arm ids, got {}",
                describe(other)
            )))
        }
    };
    let arms = || {
        protocol
            .arms
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut eligible = vec![true; protocol.arms.len()];
    for (i, item) in list.iter().enumerate() {
        let Json::String(id) = item else {
            return Err(error(format!(
                "{INELIGIBLE_ARMS}[{i}] must be an arm id (a string), got {}",
                describe(item)
            )));
        };
        match protocol.arm_index(id) {
            Some(arm) => eligible[arm] = false,
            None => {
                return Err(error(format!(
                    "`{id}` is not an arm of trial {} (arms: {})",
                    protocol.trial_id,
                    arms()
                )))
            }
        }
    }
    if !eligible.contains(&true) {
        return Err(error(format!(
            "every arm of trial {} is listed as ineligible; at least one must remain (arms: {})",
            protocol.trial_id,
            arms()
        )));
    }
    Ok(Some(eligible))
}

fn describe(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn three_arms() -> Protocol {
        crate::protocol::parse(
            include_str!("../../protocols/design/three-arm-minimisation.toml"),
            "three-arm-minimisation.toml",
        )
        .unwrap()
    }

    #[test]
    fn flags_follow_protocol_order() {
        let p = three_arms();
        assert_eq!(parse_ineligible_arms(&p, None), Ok(None));
        assert_eq!(parse_ineligible_arms(&p, Some(&Json::Null)), Ok(None));
        assert_eq!(
            parse_ineligible_arms(&p, Some(&json!([]))),
            Ok(Some(vec![true, true, true]))
        );
        assert_eq!(
            parse_ineligible_arms(&p, Some(&json!(["clopidogrel", "ticagrelor"]))),
            Ok(Some(vec![false, true, false]))
        );
    }

    #[test]
    fn bad_lists_name_the_key() {
        let p = three_arms();
        for (raw, needle) in [
            (json!("prasugrel"), "must be an array"),
            (json!([1]), "ineligible_arms[0] must be an arm id"),
            (json!(["aspirin"]), "`aspirin` is not an arm"),
            (
                json!(["ticagrelor", "prasugrel", "clopidogrel"]),
                "at least one must remain",
            ),
        ] {
            let e = parse_ineligible_arms(&p, Some(&raw)).unwrap_err();
            assert_eq!(e.field, INELIGIBLE_ARMS);
            assert!(e.message.contains(needle), "{}", e.message);
        }
        let taste =
            crate::protocol::parse(include_str!("../../protocols/taste.toml"), "taste.toml")
                .unwrap();
        let e = parse_ineligible_arms(&taste, Some(&json!(["pci"]))).unwrap_err();
        assert!(
            e.message.contains("arm_eligibility = true"),
            "{}",
            e.message
        );
    }
}
