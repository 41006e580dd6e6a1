//! `rrct export allocations`: a trial's randomisation log as a self-describing file
//! ([`crate::randomise::replay::AllocationLog`]), for anyone to replay from the revealed seed
//! with `rrct verify replay` or their own code (`docs/VERIFY.md`).
//!
//! Read from the allocations, the screening log (the fields as received), the marks, the
//! registered protocol versions and the audit entries of the trial (each allocation's and
//! mark's sequence number; a mark applies from the first allocation whose audit entry comes
//! after it, since every write holds the single writer lock).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::protocol;
use crate::randomise::replay::{
    key_descriptions, AllocationLog, AuditHead, LoggedAllocation, LoggedArm, LoggedDraw,
    LoggedInput, LoggedMark, LoggedProtocol, Released, FORMAT,
};
use crate::randomise::{sequence, Scheme};
use crate::store::{allocation_errors, allocations, audit, lifecycle, screening_log, trials};
use crate::store::{Store, StoreError};

/// What `about` says in every log.
const ABOUT: &str = "The randomisation log of one rrct trial: every allocation in the order \
the engine decided it, with the enrolment as received and as judged, the protocol version, the \
draw and the arm, and the randomised-in-error marks. Replay it from the revealed master seed \
with `rrct verify replay --seed HEX --protocols DIR --allocations FILE`, or with your own code \
following docs/VERIFY.md (streams, draws and each procedure's decision rule).";

/// A protocol version's file as registered: a suggested file name and its text.
pub struct ProtocolSource {
    pub file_name: String,
    pub source: String,
}

/// The log of a trial, and its protocol versions' texts; `None` when there is no such trial.
#[tracing::instrument(skip_all, fields(trial = %trial_id), err)]
pub async fn export(
    store: &Store,
    trial_id: &str,
    exported_at: &str,
) -> Result<Option<(AllocationLog, Vec<ProtocolSource>)>, StoreError> {
    let Some(commitment) = trials::seed_commitment(store, trial_id).await? else {
        return Ok(None);
    };
    let corrupt = |what: String| StoreError::Corrupt(what);
    let head = audit::stored_head(store).await?;
    let state = lifecycle::of_trial(store, trial_id)
        .await?
        .ok_or_else(|| corrupt(format!("trial {trial_id} vanished")))?;
    let revealed_seed = lifecycle::revealed_seed(store, trial_id).await?;
    let mut versions = HashMap::new();
    let mut logged_versions = Vec::new();
    let mut sources = Vec::new();
    for v in trials::protocol_versions(store, trial_id).await? {
        let p = protocol::parse(&v.source, "stored protocol").map_err(|e| {
            corrupt(format!(
                "stored protocol {} no longer parses: {e}",
                v.version
            ))
        })?;
        let scheme = Scheme::from_protocol(&p)
            .map_err(|e| corrupt(format!("stored protocol {}: {e}", v.version)))?;
        logged_versions.push(LoggedProtocol {
            version: v.version.clone(),
            source_sha256: v.source_sha256.clone(),
            registered_at: v.loaded_at.clone(),
            method: p.randomisation.method.as_str().to_string(),
            arms: p
                .arms
                .iter()
                .map(|a| LoggedArm {
                    id: a.id.clone(),
                    ratio: a.ratio,
                    closed: a.closed,
                })
                .collect(),
        });
        sources.push(ProtocolSource {
            file_name: format!("{trial_id}-{}.toml", v.version),
            source: v.source,
        });
        versions.insert(v.version, (p, scheme));
    }

    let rows = allocations::list(store, trial_id).await?;
    let fields: HashMap<i64, (String, String)> = screening_log::screening_log(store, trial_id)
        .await?
        .into_iter()
        .filter(|r| r.outcome == "randomised")
        .filter_map(|r| r.randomisation_number.map(|n| (n, (r.site_code, r.fields))))
        .collect();
    let marks = allocation_errors::of_trial(store, trial_id).await?;
    // Audit sequence numbers of each allocation and mark, and what each mark released.
    let mut allocation_seq: HashMap<String, i64> = HashMap::new();
    let mut mark_entries: HashMap<String, (i64, Vec<Released>)> = HashMap::new();
    for e in audit::entries(store, Some(trial_id)).await? {
        let payload: Value = serde_json::from_str(&e.payload).unwrap_or(Value::Null);
        let record = payload["record_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match e.action.as_str() {
            "randomised" => {
                allocation_seq.insert(record, e.seq);
            }
            "randomised_in_error_marked" => {
                let released = payload["released_marginal_counts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| Released {
                        factor: r["factor"].as_str().unwrap_or_default().to_string(),
                        level: r["level"].as_str().unwrap_or_default().to_string(),
                        arm: r["arm"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect();
                mark_entries.insert(record, (e.seq, released));
            }
            _ => {}
        }
    }
    let mut seqs: Vec<i64> = allocation_seq.values().copied().collect();
    seqs.sort_unstable();

    let mut logged = Vec::with_capacity(rows.len());
    for row in rows {
        let n = row.randomisation_number;
        let (site, fields_text) = fields
            .get(&n)
            .cloned()
            .ok_or_else(|| corrupt(format!("no screening-log row for allocation {n}")))?;
        let fields: Map<String, Value> = serde_json::from_str(&fields_text)
            .map_err(|e| corrupt(format!("stored fields of allocation {n}: {e}")))?;
        let (p, scheme) = versions.get(&row.protocol_version).ok_or_else(|| {
            corrupt(format!(
                "protocol version {} is not stored",
                row.protocol_version
            ))
        })?;
        // The minimisation levels as the engine took them from these fields.
        let levels: BTreeMap<String, String> = match protocol::parse_enrolment(p, &site, &fields) {
            Ok(values) => scheme
                .factors()
                .iter()
                .map(|f| f.name.clone())
                .zip(sequence::levels(scheme, &values))
                .collect(),
            Err(e) => return Err(corrupt(format!("stored fields of allocation {n}: {e:?}"))),
        };
        let eligible_arms: Option<Vec<String>> = match &row.eligible_arms {
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|e| corrupt(format!("eligible arms of allocation {n}: {e}")))?,
            ),
            None => None,
        };
        let randomised_in_error = match marks.get(&row.record_id) {
            None => None,
            Some(mark) => {
                let (seq, released) =
                    mark_entries.get(&row.record_id).cloned().ok_or_else(|| {
                        corrupt(format!("no audit entry of the mark of {}", row.record_id))
                    })?;
                let before = seqs.partition_point(|&s| s < seq) as i64;
                Some(LoggedMark {
                    marked_at: mark.marked_at.clone(),
                    reason: mark.reason.clone(),
                    audit_seq: seq,
                    applies_from: before + 1,
                    released,
                })
            }
        };
        logged.push(LoggedAllocation {
            randomisation_number: n,
            audit_seq: allocation_seq.get(&row.record_id).copied().unwrap_or(0),
            record_id: row.record_id,
            subject: row.subject,
            site: row.site_code,
            allocated_at: row.allocated_at.to_string(),
            protocol_version: row.protocol_version,
            input: LoggedInput {
                fields,
                stratum: row.stratum,
                minimisation_levels: levels,
                eligible_arms,
                cluster: row.cluster,
            },
            draw: LoggedDraw {
                kind: row.draw,
                block_number: row.block_number,
                block_size: row.block_size,
                block_position: row.block_position,
                detail: row.detail,
            },
            arm: row.arm,
            randomised_in_error,
        });
    }
    Ok(Some((
        AllocationLog {
            format: FORMAT.to_string(),
            about: ABOUT.to_string(),
            trial_id: trial_id.to_string(),
            exported_at: exported_at.to_string(),
            seed_commitment: commitment,
            revealed_seed,
            lifecycle: state.lifecycle,
            audit_head: AuditHead {
                seq: head.seq,
                hash: head.hash,
            },
            protocol_versions: logged_versions,
            allocations: logged,
            keys: key_descriptions(),
        },
        sources,
    )))
}
