//! Analysis of a trial as of a data cut-off: the pure part of what statisticians, the DSMB and
//! sponsors are shown.
//!
//! Owns the comparisons between arms ([`summary`]; [`effects`] for counts, continuous values
//! and competing risks), interim monitoring against the group-sequential design
//! ([`interim`]), subgroup forests ([`subgroups`]), the blinded summary
//! and its disclosure control ([`release`], [`disclosure`]) and the analysis data sets
//! ([`datasets`]), all computed from a [`TrialData`] that someone else has read. It never does
//! I/O and never decides who may see what: the trial view in the service layer reads the data,
//! checks the reader and hands out either the unblinded analysis or the released summary. That
//! is what lets the design simulator run the very same code in memory.

mod adjust;
pub mod baseline;
pub mod data;
pub mod datasets;
pub mod derived;
pub mod disclosure;
pub mod effects;
pub mod forecast;
pub mod interim;
pub mod participation;
pub mod participation_report;
pub mod release;
pub mod representativeness;
pub mod subgroups;
pub mod summary;

#[cfg(test)]
mod adjusted_golden_tests;
#[cfg(test)]
mod concurrent_tests;

pub use data::{DataError, ErrorMark, TrialData};
pub use summary::{Analysis, Comparison};
