//! Trial protocols: reading a protocol file into a validated [`Protocol`], and applying it to
//! an enrolment (typed field values, eligibility, stratum).
//!
//! Parsing runs in two phases, as ripgrep does with its configuration: `raw` deserialises the
//! TOML exactly as written, keeping the span of every value; `validate` then checks names,
//! types and cross-references (arms, fields, criteria, strata) and reports *every* problem as
//! `FILE:LINE:COL: message`, so a trial statistician fixes a file in one pass. Once a
//! [`Protocol`] exists its references are known to resolve, and the enrolment functions rely
//! on that.
//!
//! This module owns the protocol file format (see `protocols/taste.toml` for a commented
//! example) and the meaning of enrolment fields. It never does I/O: callers pass the file's
//! text and a name for it, which is what lets the simulator and tests use it freely.
//!
//! # File layout
//! Top level: `id`, `title`, `version`, `status` (default `recruiting`), `target_sample_size`,
//! `consent` (`oral`, `written`, `deferred`, `opt_out`, `waiver`: what an enrolment's `consent`
//! object must say, see [`consent`]), `deferred_consent_days` (with `deferred` only),
//! `data_use_withdrawal` (default false: may a withdrawal take back the use of collected data), `masking` (`open_label` or `blinded`, the default), `ethics_approval` (optional); then `[[sites]]` (`code`, `name`), `[[arms]]`
//! (`id`, `label`, `ratio`), `[fields.NAME]` (`type`, `label`, `required`, `min`, `max`,
//! `levels`), `[derived.NAME]` (`from`, `cuts`, `labels`), `[[inclusion]]` and `[[exclusion]]`
//! (`id`, `text`, `field`, and conditions `eq`, `ne`, `in`, `not_in`, `lt`, `le`, `gt`, `ge`),
//! `[randomisation]` (`method` = simple, permuted_blocks, minimisation, biased_coin, big_stick
//! or urn, with `block_sizes`, `strata`, `factors`, `measure`, `p`, `initial_random`,
//! `max_imbalance`, `alpha`, `beta`, `cluster`, `arm_eligibility`), `[follow_up]` (`censor_on`, default
//! `[]`; `reporting_lag_days`, default 0), `[endpoints.ID]` (`label`, `kind`, `events`,
//! `codes`, `horizon_days`, `primary`, `window`, `target_day`), `[sources.ID]` (`label`,
//! `delivers`, `reporting_lag_days` defaulting to `[follow_up]`'s, `expected_every_days`,
//! `provenance`) and `[precedence]` (event type = source ids, first taking precedence).
//! When sources are declared, every event type an endpoint or `censor_on` reads must be delivered
//! by one, and a type two sources deliver needs a precedence rule naming exactly them.
//!
//! An endpoint's `kind` decides which keys it takes: `time_to_event` (`horizon_days`
//! optional), `binary` (`horizon_days` required), `count` (`window = [from, to]` required) and
//! `continuous` (`window` and a `target_day` inside it required, exactly one event type).
//! `events` lists event types (several make a composite: the first counts); `codes`, when
//! given, keeps only events whose code starts with one of its prefixes, for every listed type.
//! Days count from randomisation (day 0). When endpoints are declared exactly one has
//! `primary = true`, and no `censor_on` type may also be an endpoint's event type.

pub mod amendment;
mod arm_eligibility;
mod consent;
mod eligibility;
mod enrolment;
mod error;
pub mod model;
mod personal_identity;
mod raw;
mod stratum;
mod validate;
mod version;

pub use arm_eligibility::{parse_ineligible_arms, INELIGIBLE_ARMS};
pub use consent::{
    parse_confirmation, parse_enrolment_consent, taken_day, ConsentKind, GivenConsent, CONSENT,
};
pub use eligibility::*;
pub use enrolment::*;
pub(crate) use error::{from_toml, locate, Finding};
pub use error::{ProtocolError, ProtocolErrors};
pub use model::*;
pub use personal_identity::{
    looks_like_personal_identity_number, PersonalIdentityNumber, PersonalIdentityNumberError,
};
pub use stratum::*;
pub use version::ProtocolVersion;

/// Parse and validate a protocol file. `origin` names the source in error messages (usually
/// the file path). On failure every problem found is returned, in source order.
pub fn parse(source: &str, origin: &str) -> Result<Protocol, ProtocolErrors> {
    let limit = validate::limits::MAX_FILE_BYTES;
    if source.len() > limit {
        return Err(error::locate(
            source,
            origin,
            vec![(
                0..0,
                format!(
                    "the protocol is {} bytes; a protocol file may hold at most {limit}",
                    source.len()
                ),
            )],
        ));
    }
    let raw: raw::RawProtocol =
        toml::from_str(source).map_err(|e| error::from_toml(source, origin, &e))?;
    validate::validate(raw).map_err(|findings| error::locate(source, origin, findings))
}

#[cfg(test)]
pub(crate) mod tests;
