//! A trial prepared as of a cut-off: its data with every endpoint derived and the unblinded
//! analysis computed, once, for every page, the analysis API and the closed report.

use std::sync::Arc;

use crate::analysis::derived::EarlierRows;
use crate::analysis::interim::KeptLooks;
use crate::analysis::summary::{self, Analysis};
use crate::analysis::TrialData;
use crate::endpoints::flow::Screening;
use crate::endpoints::{DataCutoff, EndpointRow};
use crate::protocol::Endpoint;

/// A trial's protocol, allocations, events and screening log, with every endpoint derived and
/// the unblinded analysis computed as of a cut-off (keeping the Kaplan–Meier curves it
/// fitted). Only readers allowed to see unblinded results are handed one; blinded readers get
/// a [`super::BlindedTrial`], which keeps it out of reach.
pub struct PreparedTrial {
    pub data: Arc<TrialData>,
    pub screening: Arc<Vec<Screening>>,
    pub cutoff: DataCutoff,
    /// Each endpoint's rows, in the protocol's order (shared with the trial view, which derives
    /// the next preparation from them).
    pub rows: Arc<Vec<Vec<EndpointRow>>>,
    /// What the interim looks computed subject by subject (the next preparation takes the
    /// unchanged subjects' part from it, as it does their rows).
    pub looks: Arc<KeptLooks>,
    pub analysis: Analysis,
}

impl PreparedTrial {
    /// Derive the endpoints and analyse (CPU work over the whole trial).
    pub fn prepare(
        data: Arc<TrialData>,
        screening: Arc<Vec<Screening>>,
        cutoff: DataCutoff,
    ) -> Self {
        Self::prepare_after(data, screening, cutoff, None)
    }

    /// [`Self::prepare`], taking the rows of the subjects unchanged since an `earlier`
    /// preparation from it (see [`crate::analysis::derived`]): the same prepared trial.
    pub fn prepare_after(
        data: Arc<TrialData>,
        screening: Arc<Vec<Screening>>,
        cutoff: DataCutoff,
        earlier: Option<&EarlierRows<'_>>,
    ) -> Self {
        let (derived, mut beside) =
            summary::derive_with_interim(&data, &screening, cutoff, earlier);
        let looks = Arc::new(std::mem::take(&mut beside.kept_looks));
        let analysis = summary::analyse_derived(&data, &screening, cutoff, &derived, beside);
        let rows = Arc::new(derived.into_iter().map(|(_, rows)| rows).collect());
        PreparedTrial {
            data,
            screening,
            cutoff,
            rows,
            looks,
            analysis,
        }
    }

    /// Each endpoint with its rows.
    pub fn derived(&self) -> impl Iterator<Item = (&Endpoint, &[EndpointRow])> {
        self.data
            .protocol
            .endpoints
            .iter()
            .zip(self.rows.iter().map(Vec::as_slice))
    }
}
