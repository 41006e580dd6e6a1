//! The scope of a patient's withdrawal, which decides what the endpoints and the flow do with
//! them (see `analysis::participation` for the rules).

use serde::Serialize;

/// How far a withdrawal goes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawalScope {
    NoFurtherContact,
    NoFurtherDataCollection,
    DataUseWithdrawn,
}

impl WithdrawalScope {
    pub const ALL: [WithdrawalScope; 3] = [
        WithdrawalScope::NoFurtherContact,
        WithdrawalScope::NoFurtherDataCollection,
        WithdrawalScope::DataUseWithdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WithdrawalScope::NoFurtherContact => "no_further_contact",
            WithdrawalScope::NoFurtherDataCollection => "no_further_data_collection",
            WithdrawalScope::DataUseWithdrawn => "data_use_withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.as_str() == s)
    }

    /// Whether follow-up data stop being collected from the withdrawal date.
    pub fn stops_data_collection(self) -> bool {
        self >= WithdrawalScope::NoFurtherDataCollection
    }
}
