//! Consent and withdrawal as the analyses respect them.
//!
//! A withdrawal has a scope, widening in this order:
//! - `no_further_contact`: nobody contacts the patient again; register data still flow and are
//!   analysed (registry follow-up needs no contact);
//! - `no_further_data_collection`: follow-up ends at the withdrawal date — every endpoint is
//!   censored there (`censor_reason` `withdrawal`), events dated after it are not used;
//! - `data_use_withdrawn` (only where the protocol says `data_use_withdrawal = true`): the
//!   patient's data are used in no analysis or data set at all. The allocation stays (it is
//!   never deleted): the patient is counted as randomised in the flow, in the allocation
//!   quality and in recruitment, and counted again as withdrawn.
//!
//! A withdrawal applies by its date, whenever it was recorded, so an analysis repeated for an
//! earlier cut-off respects it too (what may no longer be used is not used again).
//!
//! Deferred consent: a patient randomised under the `deferred` model whose consent is not
//! confirmed within the protocol's `deferred_consent_days` of randomisation (and who has not
//! withdrawn, which settles the question) is *overdue* as of a cut-off and listed for the
//! statistician ([`super::participation_report`]). Pure: no I/O.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;

pub use crate::endpoints::WithdrawalScope;
use crate::protocol::ConsentKind;

/// One withdrawal as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Withdrawal {
    pub record_id: String,
    pub scope: WithdrawalScope,
    pub withdrawn_on: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub recorded_by: String,
    pub recorded_at: String,
}

/// A deferred consent's confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Confirmation {
    pub kind: ConsentKind,
    pub taken_by: String,
    pub taken_at: String,
    pub recorded_by: String,
    /// RFC 3339.
    pub recorded_at: String,
}

/// The consent an enrolment recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ConsentRecord {
    pub record_id: String,
    pub randomisation_number: i64,
    pub kind: ConsentKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<Confirmation>,
}

/// Every consent and withdrawal of a trial, by record id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Participation {
    pub consents: HashMap<String, ConsentRecord>,
    /// Each record's withdrawals, oldest first.
    pub withdrawals: HashMap<String, Vec<Withdrawal>>,
}

impl Participation {
    /// The widest scope a record has withdrawn to, if any.
    pub fn scope(&self, record_id: &str) -> Option<WithdrawalScope> {
        self.withdrawals
            .get(record_id)?
            .iter()
            .map(|w| w.scope)
            .max()
    }

    /// The day follow-up data stop being collected, if a withdrawal stopped them.
    pub fn data_collection_ends(&self, record_id: &str) -> Option<NaiveDate> {
        self.withdrawals
            .get(record_id)?
            .iter()
            .filter(|w| w.scope.stops_data_collection())
            .map(|w| w.withdrawn_on)
            .min()
    }

    /// Whether the record's data may no longer be used.
    pub fn data_use_withdrawn(&self, record_id: &str) -> bool {
        self.scope(record_id) == Some(WithdrawalScope::DataUseWithdrawn)
    }
}
