//! Consent and withdrawal as of a cut-off, for the statistician's page and `rrct analyse`:
//! consents recorded by kind, deferred consents confirmed, pending and overdue (see
//! [`super::participation`] for the rules), and withdrawals by scope. Unblinded only (it names
//! records). Pure: no I/O.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::data::TrialData;
use crate::endpoints::DataCutoff;
use crate::protocol::ConsentKind;

/// A deferred consent not confirmed by its deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverdueConsent {
    pub record_id: String,
    pub site: String,
    pub randomised_on: NaiveDate,
    pub deadline: NaiveDate,
    pub days_overdue: i64,
}

/// Consent and withdrawal as of a cut-off (unblinded: it names records).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ParticipationReport {
    /// Randomised patients by the consent kind recorded at enrolment.
    pub consent_by_kind: BTreeMap<String, u64>,
    /// Deferred consents confirmed as of the cut-off.
    pub deferred_confirmed: u64,
    /// Deferred consents neither confirmed nor settled by a withdrawal, deadline not yet passed.
    pub deferred_pending: u64,
    /// Deferred consents past their deadline, unconfirmed.
    pub deferred_overdue: Vec<OverdueConsent>,
    /// Randomised patients by the widest scope they withdrew to.
    pub withdrawn_by_scope: BTreeMap<String, u64>,
}

/// The report as of `cutoff`.
pub fn report(data: &TrialData, cutoff: DataCutoff) -> ParticipationReport {
    let p = &data.participation;
    let days = data.protocol.deferred_consent_days;
    let mut out = ParticipationReport::default();
    for a in data.randomised_by(cutoff) {
        let withdrawn = p.scope(&a.record_id);
        if let Some(widest) = withdrawn {
            *out.withdrawn_by_scope
                .entry(widest.as_str().to_string())
                .or_default() += 1;
        }
        let Some(consent) = p.consents.get(&a.record_id) else {
            continue;
        };
        *out.consent_by_kind
            .entry(consent.kind.as_str().to_string())
            .or_default() += 1;
        if consent.kind != ConsentKind::Deferred {
            continue;
        }
        let confirmed = consent.confirmed.as_ref().is_some_and(|c| {
            crate::protocol::taken_day(&c.recorded_at).is_some_and(|d| d <= cutoff.0)
        });
        if confirmed {
            out.deferred_confirmed += 1;
            continue;
        }
        if withdrawn.is_some() {
            continue;
        }
        let randomised_on = a.randomised_on();
        let deadline = randomised_on + chrono::Days::new(u64::from(days.unwrap_or(0)));
        if days.is_some() && deadline < cutoff.0 {
            out.deferred_overdue.push(OverdueConsent {
                record_id: a.record_id.clone(),
                site: a.site_code.clone(),
                randomised_on,
                deadline,
                days_overdue: (cutoff.0 - deadline).num_days(),
            });
        } else {
            out.deferred_pending += 1;
        }
    }
    out
}
