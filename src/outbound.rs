//! What rrct tells others, as CloudEvents 1.0: each outbox record (an audit entry of a change
//! others are told of) made into a structured-mode event, blinded as the trial's masking says.
//!
//! Types: `rrct.allocation.created`, `rrct.screening.recorded`,
//! `rrct.allocation.marked_in_error`, `rrct.trial.status_changed` (the trial paused, resumed or
//! closed), `rrct.site.enrolment_changed` (a site closed or opened), `rrct.source.stale`,
//! `rrct.enrolment.withdrawn` (a patient's withdrawal: scope and date, never the reason given)
//! and `rrct.consent.confirmed` (a deferred consent confirmed: its kind, never who took it). The
//! event's `id` is the outbox id (the audit sequence number, unique and increasing in commit
//! order), its `source` `/rrct/trials/{trial}`, its `subject` the record id (or the source id of
//! a stale-source alarm, the site of a site's change). The reason given for a status change
//! stays in the audit log: it may say more than a register should read. Blinding holds here too: the arm leaves rrct only for an open-label
//! trial, whose register treats by it; a blinded trial's events carry the allocation
//! (randomisation) number only. Stratum and block are never sent: they would let a reader
//! predict the next allocation. Pure: no I/O.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::protocol::Masking;

/// One outbox record with its audit entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboundRecord {
    /// The outbox id: the audit entry's sequence number.
    pub id: i64,
    pub trial_id: Option<String>,
    pub event_type: String,
    /// When the change was recorded (RFC 3339 UTC).
    pub time: String,
    /// The audit action behind it.
    pub action: String,
    /// The audit entry's payload.
    pub payload: Value,
}

/// Every outbound type, for documentation, filters and checks.
pub const TYPES: [&str; 8] = [
    "rrct.allocation.created",
    "rrct.screening.recorded",
    "rrct.allocation.marked_in_error",
    "rrct.trial.status_changed",
    "rrct.site.enrolment_changed",
    "rrct.source.stale",
    "rrct.enrolment.withdrawn",
    "rrct.consent.confirmed",
];

/// The CloudEvents `source` of a trial's events.
pub fn source_of(trial_id: &str) -> String {
    format!("/rrct/trials/{trial_id}")
}

/// The structured-mode CloudEvent of a record. `masking` is the trial's (`Blinded` when the
/// trial is not known: nothing is revealed by default).
pub fn cloud_event(record: &OutboundRecord, masking: Masking) -> Value {
    let trial = record.trial_id.as_deref().unwrap_or("");
    let p = &record.payload;
    let pick = |keys: &[&str]| -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("trial_id".into(), json!(trial));
        for k in keys {
            if let Some(v) = p.get(*k).filter(|v| !v.is_null()) {
                m.insert((*k).to_string(), v.clone());
            }
        }
        m
    };
    let open = masking == Masking::OpenLabel;
    let (subject, data) = match record.action.as_str() {
        "randomised" => {
            let mut d = pick(&[
                "record_id",
                "subject",
                "site",
                "randomisation_number",
                "protocol_version",
            ]);
            d.insert("allocated_at".into(), json!(record.time));
            if open {
                d.extend(pick(&["arm"]).into_iter().filter(|(k, _)| k == "arm"));
            }
            (p.get("record_id").cloned(), d)
        }
        "screened_not_eligible" | "screened_not_randomised" => {
            let mut d = pick(&["record_id", "subject", "site", "criteria", "reason"]);
            d.insert(
                "outcome".into(),
                json!(if record.action == "screened_not_eligible" {
                    "not_eligible"
                } else {
                    "not_randomised"
                }),
            );
            (p.get("record_id").cloned(), d)
        }
        "randomised_in_error_marked" => {
            let mut d = pick(&["record_id", "subject", "randomisation_number", "reason"]);
            if open {
                d.extend(pick(&["arm"]).into_iter().filter(|(k, _)| k == "arm"));
            }
            (p.get("record_id").cloned(), d)
        }
        "trial_status_changed" => (None, pick(&["status", "previous_status", "change"])),
        "withdrawal_recorded" => (
            p.get("record_id").cloned(),
            pick(&[
                "record_id",
                "subject",
                "site",
                "randomisation_number",
                "scope",
                "withdrawn_on",
            ]),
        ),
        "consent_confirmed" => (
            p.get("record_id").cloned(),
            pick(&[
                "record_id",
                "subject",
                "site",
                "randomisation_number",
                "kind",
                "within_deadline",
            ]),
        ),
        "site_enrolment_changed" => (
            p.get("site").cloned(),
            pick(&["site", "enrolment", "previous_enrolment", "change"]),
        ),
        _ => {
            let d = pick(&[
                "source",
                "last_delivery",
                "days_since_last_delivery",
                "expected_every_days",
                "reason",
            ]);
            (p.get("source").cloned(), d)
        }
    };
    let mut event = json!({
        "specversion": "1.0",
        "id": record.id.to_string(),
        "source": source_of(trial),
        "type": record.event_type,
        "time": record.time,
        "datacontenttype": "application/json",
        "data": Value::Object(data),
    });
    if let Some(s) = subject.filter(|s| !s.is_null()) {
        event["subject"] = s;
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocation() -> OutboundRecord {
        OutboundRecord {
            id: 42,
            trial_id: Some("taste".into()),
            event_type: "rrct.allocation.created".into(),
            time: "2026-12-05T10:00:00.000000Z".into(),
            action: "randomised".into(),
            payload: json!({"record_id": "R1", "subject": "S1", "site": "UPP",
                "randomisation_number": 7, "arm": "pci", "stratum": "site=UPP;sex=F",
                "block_number": 3, "block_size": 4, "block_position": 2,
                "protocol_version": "1.0", "request_sha256": "ab"}),
        }
    }

    #[test]
    fn an_open_label_allocation_carries_the_arm_and_never_the_block() {
        let e = cloud_event(&allocation(), Masking::OpenLabel);
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["id"], "42");
        assert_eq!(e["source"], "/rrct/trials/taste");
        assert_eq!(e["subject"], "R1");
        assert_eq!(e["data"]["arm"], "pci");
        assert_eq!(e["data"]["randomisation_number"], 7);
        for hidden in ["stratum", "block_number", "block_size", "block_position"] {
            assert!(e["data"].get(hidden).is_none(), "{hidden}");
        }
    }

    #[test]
    fn a_blinded_allocation_carries_the_number_not_the_arm() {
        let e = cloud_event(&allocation(), Masking::Blinded);
        assert!(e["data"].get("arm").is_none());
        assert!(!e.to_string().contains("pci"));
        assert_eq!(e["data"]["randomisation_number"], 7);
        let mut mark = allocation();
        mark.action = "randomised_in_error_marked".into();
        mark.event_type = "rrct.allocation.marked_in_error".into();
        mark.payload["reason"] = json!("found ineligible");
        let e = cloud_event(&mark, Masking::Blinded);
        assert!(!e.to_string().contains("pci"));
        assert_eq!(e["data"]["reason"], "found ineligible");
    }

    #[test]
    fn a_withdrawal_carries_its_scope_and_never_the_reason_or_the_arm() {
        let record = OutboundRecord {
            id: 60,
            trial_id: Some("taste".into()),
            event_type: "rrct.enrolment.withdrawn".into(),
            time: "2026-12-05T10:00:00.000000Z".into(),
            action: "withdrawal_recorded".into(),
            payload: json!({"record_id": "R1", "subject": "S1", "site": "UPP",
                "randomisation_number": 7, "scope": "no_further_data_collection",
                "withdrawn_on": "2026-11-30", "reason": "moved abroad, tired of calls"}),
        };
        let e = cloud_event(&record, Masking::OpenLabel);
        assert_eq!(e["subject"], "R1");
        assert_eq!(e["data"]["scope"], "no_further_data_collection");
        assert_eq!(e["data"]["withdrawn_on"], "2026-11-30");
        assert!(!e.to_string().contains("tired"));
        let mut confirmed = record;
        confirmed.action = "consent_confirmed".into();
        confirmed.event_type = "rrct.consent.confirmed".into();
        confirmed.payload = json!({"record_id": "R1", "kind": "written", "taken_by": "nurse-2",
            "within_deadline": true});
        let e = cloud_event(&confirmed, Masking::Blinded);
        assert_eq!(e["data"]["kind"], "written");
        assert!(!e.to_string().contains("nurse-2"));
    }

    #[test]
    fn a_status_change_carries_the_status_and_never_the_reason() {
        let record = OutboundRecord {
            id: 50,
            trial_id: Some("taste".into()),
            event_type: "rrct.site.enrolment_changed".into(),
            time: "2026-12-05T10:00:00.000000Z".into(),
            action: "site_enrolment_changed".into(),
            payload: json!({"change": "site_close", "site": "UPP", "enrolment": "closed",
                "previous_enrolment": "open", "reason": "consent problems found"}),
        };
        let e = cloud_event(&record, Masking::Blinded);
        assert_eq!(e["subject"], "UPP");
        assert_eq!(e["data"]["enrolment"], "closed");
        assert!(!e.to_string().contains("consent problems"));
        let mut trial = record;
        trial.action = "trial_status_changed".into();
        trial.event_type = "rrct.trial.status_changed".into();
        trial.payload = json!({"change": "pause", "status": "paused", "previous_status": "active",
            "reason": "DSMB recommends a pause"});
        let e = cloud_event(&trial, Masking::Blinded);
        assert_eq!(e["data"]["status"], "paused");
        assert_eq!(e["data"]["previous_status"], "active");
        assert!(e.get("subject").is_none());
        assert!(!e.to_string().contains("DSMB"));
    }
}
