//! Analysis data sets as CSV: ADTTE (one row per subject for one endpoint) and ADSL (one row
//! per randomised subject), derived as of a data cut-off.
//!
//! Output is deterministic: rows in randomisation order, fixed columns, numbers formatted the
//! same way on every run and backend, so two exports of the same data are byte-identical.

use chrono::NaiveDate;

use super::data::{DataError, TrialData};
use crate::endpoints::{self, DataCutoff, ReceivedEvent};

/// ADTTE for one endpoint: `record_id,subject,site,arm,stratum,randomised_on,time_days,event,
/// censor_reason,source,source_event_id`: `source` is the register the row's value comes from
/// (the outcome or censoring event's source, or for administrative censoring the source whose
/// complete-through date ended follow-up), `source_event_id` the deciding event (allocations randomised in error are kept, intention to treat; their flag is
/// in ADSL, the subject-level data set, to merge by `record_id`). For binary endpoints `event` is 1/0 or empty when incomplete; for counts it
/// is the count; for continuous endpoints the value. A patient who withdrew from data
/// collection is censored at the withdrawal date (`censor_reason` `withdrawal`); one who
/// withdrew the use of their data has no row (see [`super::participation`]).
pub fn adtte(
    data: &TrialData,
    endpoint_id: &str,
    cutoff: DataCutoff,
) -> Result<Vec<u8>, DataError> {
    let endpoint = data.endpoint(endpoint_id)?;
    let rows = endpoints::derive(
        &data.protocol.follow_up,
        endpoint,
        &data.subjects(),
        &data.events,
        cutoff,
    );
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "record_id",
        "subject",
        "site",
        "arm",
        "stratum",
        "randomised_on",
        "time_days",
        "event",
        "censor_reason",
        "source",
        "source_event_id",
    ])?;
    for r in &rows {
        out.write_record([
            &*r.subject.record_id,
            &r.subject.subject,
            &r.subject.site,
            &r.subject.arm,
            &r.subject.stratum,
            &r.subject.randomised_on.to_string(),
            &r.time_days().map(|t| t.to_string()).unwrap_or_default(),
            &r.event_text(),
            r.censor_reason.as_ref().map_or("", |c| c.as_text()),
            r.source.as_deref().unwrap_or(""),
            r.source_event_id.as_deref().unwrap_or(""),
        ])?;
    }
    out.into_inner()
        .map_err(|e| DataError::Csv(e.into_error().into()))
}

/// ADSL: one row per subject randomised on or before the cut-off, with the stratification
/// factors as columns `strat_<factor>`, and `error_flag` = 1 (with `error_reason`) when the
/// register data contradict the randomisation: a death dated before the randomisation day,
/// or events dated more than a day after a recorded death; last `randomised_in_error` = 1
/// (with `randomised_in_error_reason`) for an allocation marked randomised in error, and
/// `withdrawal_scope` with `withdrawn_on` for a patient who withdrew (the widest scope, and the
/// day data collection stopped or else the first withdrawal's day). A patient who withdrew the
/// use of their data has no row.
pub fn adsl(data: &TrialData, cutoff: DataCutoff) -> Result<Vec<u8>, DataError> {
    let factors = &data.protocol.randomisation.strata;
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = [
        "record_id",
        "subject",
        "site",
        "arm",
        "arm_label",
        "stratum",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(factors.iter().map(|f| format!("strat_{f}")));
    header.extend(
        [
            "randomisation_number",
            "randomised_on",
            "protocol_version",
            "error_flag",
            "error_reason",
            "randomised_in_error",
            "randomised_in_error_reason",
            "withdrawal_scope",
            "withdrawn_on",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    out.write_record(&header)?;
    let mut by_subject: std::collections::HashMap<&str, Vec<&ReceivedEvent>> =
        std::collections::HashMap::new();
    for e in data.events.iter().filter(|e| e.received_on <= cutoff.0) {
        by_subject
            .entry(e.event.subject.as_str())
            .or_default()
            .push(e);
    }
    for a in data.usable_by(cutoff) {
        let on = a.randomised_on();
        let levels: std::collections::HashMap<&str, &str> = a
            .stratum
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let known = by_subject
            .get(a.subject.as_str())
            .map_or(&[][..], |v| v.as_slice());
        let error = data_error(known, on);
        let marked = data.in_error.get(&a.record_id);
        let mut record: Vec<String> = vec![
            a.record_id.clone(),
            a.subject.clone(),
            a.site_code.clone(),
            a.arm.clone(),
            data.protocol
                .arms
                .iter()
                .find(|x| x.id == a.arm)
                .map_or_else(|| a.arm.clone(), |x| x.label.clone()),
            a.stratum.clone(),
        ];
        record.extend(
            factors
                .iter()
                .map(|f| levels.get(f.as_str()).unwrap_or(&"").to_string()),
        );
        record.extend([
            a.randomisation_number.to_string(),
            on.to_string(),
            a.protocol_version.clone(),
            u8::from(error.is_some()).to_string(),
            error.unwrap_or_default(),
            u8::from(marked.is_some()).to_string(),
            marked.map(|m| m.reason.clone()).unwrap_or_default(),
        ]);
        let participation = &data.participation;
        let scope = participation.scope(&a.record_id);
        let withdrawn_on = participation
            .data_collection_ends(&a.record_id)
            .or_else(|| {
                participation
                    .withdrawals
                    .get(&a.record_id)
                    .and_then(|w| w.iter().map(|w| w.withdrawn_on).min())
            });
        record.extend([
            scope.map(|s| s.as_str().to_string()).unwrap_or_default(),
            withdrawn_on.map(|d| d.to_string()).unwrap_or_default(),
        ]);
        out.write_record(&record)?;
    }
    out.into_inner()
        .map_err(|e| DataError::Csv(e.into_error().into()))
}

/// A contradiction between a subject's events and its randomisation, if any.
fn data_error(known: &[&ReceivedEvent], randomised_on: NaiveDate) -> Option<String> {
    let death = known
        .iter()
        .filter(|e| e.event.event_type == "death")
        .map(|e| e.event.date)
        .min()?;
    if death < randomised_on {
        return Some(format!(
            "death on {death} before randomisation on {randomised_on}"
        ));
    }
    known
        .iter()
        .find(|e| (e.event.date - death).num_days() > 1)
        .map(|e| {
            format!(
                "event {} ({}) on {} after death on {death}",
                e.event.event_id, e.event.event_type, e.event.date
            )
        })
}
