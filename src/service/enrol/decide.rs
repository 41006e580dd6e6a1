//! One batch of enrolments decided in one transaction, in arrival order: the batch reads what it
//! needs in one round trip, decides each enrolment against its trial's slice (so enrolments
//! decided together see each other) and writes everything in one more.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::request::EnrolmentRequest;
use super::{Allocation, EnrolError, EnrolOutcome};
use crate::protocol::{self, FieldError, TrialStatus};
use crate::randomise::sequence::{self, DecideError, Judged, Tallies};
use crate::randomise::{AllocationRecord, StratumState, Timestamp};
use crate::service::answer::Answer;
use crate::service::TrialRuntime;
use crate::store::audit::NewEntry;
use crate::store::balance::{ArmCountRow, Balance, BalanceKeys, ClusterRow, MarginalRow};
use crate::store::batch::{self, BatchWrite};
use crate::store::inbound;
use crate::store::lifecycle::Lifecycle;
use crate::store::participation::ConsentRow;
use crate::store::screening_log::{self, ScreeningRow};
use crate::store::{Store, StoreError};

/// An enrolment that passed every check that needs no database, waiting for its decision.
pub(super) struct Pending {
    pub(super) runtime: Arc<TrialRuntime>,
    pub(super) actor: String,
    pub(super) request: EnrolmentRequest,
    pub(super) values: protocol::EnrolmentValues,
    pub(super) refusals: Vec<protocol::Ineligibility>,
    /// The stratum, minimisation levels, eligible arms and cluster, as judged from the fields.
    pub(super) judged: Judged,
    /// The consent the enrolment records (`None` under a waiver).
    pub(super) consent: Option<protocol::GivenConsent>,
    /// The site the caller's token is scoped to, if any: it is not told about other sites.
    pub(super) site_scope: Option<String>,
    /// The key its answer is kept under, when it came as a CloudEvent.
    pub(super) cloud_event: Option<super::CloudEventKey>,
}

/// The record id a caller may be told: not another site's, for a site-scoped caller.
pub(crate) fn visible_record(
    record_id: &str,
    site: Option<&str>,
    scope: Option<&str>,
) -> Option<String> {
    match scope {
        Some(own) if site != Some(own) => None,
        _ => Some(record_id.to_string()),
    }
}

/// What one trial's part of a batch knows: the trial's status, lifecycle, closed sites and
/// randomisation counter (read under the writer lock, so a pause or a site closed by another
/// transaction is either committed before this batch and seen here, or ordered after it) and
/// everything already stored or decided earlier in the batch for the batch's records, subjects
/// and strata.
struct TrialSlice {
    status: TrialStatus,
    lifecycle: Lifecycle,
    closed_sites: BTreeSet<String>,
    next_number: i64,
    by_record: HashMap<String, AllocationRecord>,
    /// subject → record id of its allocation.
    by_subject: HashMap<String, String>,
    /// (record id, request hash) → reasons JSON of an earlier refusal (not eligible, or
    /// objected).
    refusals: HashMap<(String, String), String>,
    /// The batch's subjects on the trial's objection list.
    objecting: HashSet<String>,
    strata: HashMap<String, StratumState>,
    touched_strata: BTreeSet<String>,
    /// Counts and clusters as stored, updated in memory as the batch decides.
    balance: Balance,
    touched_arm_counts: BTreeSet<(String, String)>,
    touched_marginals: BTreeSet<(String, String, String)>,
}

/// The counts as the batch holds them, for the engine's decision.
impl Tallies for Balance {
    fn arm_count(&self, stratum: &str, arm: &str) -> i64 {
        Balance::arm_count(self, stratum, arm)
    }

    fn marginal(&self, factor: &str, level: &str, arm: &str) -> i64 {
        Balance::marginal(self, factor, level, arm)
    }

    fn cluster_arm(&self, cluster: &str) -> Option<&str> {
        self.clusters.get(cluster).map(|c| c.arm.as_str())
    }
}

/// Decide a batch of enrolments in one transaction, in arrival order, and commit.
#[tracing::instrument(skip_all, fields(size = items.len()), err)]
pub(super) async fn decide_batch(
    store: &Store,
    items: &[Pending],
    now: Timestamp,
) -> Result<Vec<Result<EnrolOutcome, EnrolError>>, StoreError> {
    // Holds the chain head's lock, so everything read below is current until commit.
    let mut tx = store.begin_write().await?;
    let trial_ids: BTreeSet<&str> = items
        .iter()
        .map(|p| p.runtime.protocol.trial_id.as_str())
        .collect();
    let trial_ids: Vec<&str> = trial_ids.into_iter().collect();
    let mut slices: HashMap<&str, TrialSlice> = HashMap::new();
    // Answers kept for the batch's CloudEvents, read under the writer lock.
    let mut kept: HashMap<inbound::Key, inbound::Kept> = HashMap::new();
    for &trial in &trial_ids {
        let mine: Vec<&Pending> = items
            .iter()
            .filter(|p| p.runtime.protocol.trial_id == trial)
            .collect();
        let records: Vec<&str> = mine.iter().map(|p| p.request.record_id.as_str()).collect();
        let subjects: Vec<&str> = mine.iter().map(|p| p.request.subject.as_str()).collect();
        let strata: BTreeSet<&str> = mine.iter().map(|p| p.judged.stratum.as_str()).collect();
        let strata: Vec<&str> = strata.into_iter().collect();
        let keys = balance_keys(&mine);
        // The answers kept for the trial's CloudEvents, read with the rest.
        let kept_keys: Vec<inbound::Key> = mine
            .iter()
            .filter_map(|p| p.cloud_event.as_ref())
            .map(|k| (k.scope.clone(), k.source.clone(), k.id.clone()))
            .collect();
        let context = batch::batch_context(
            &mut tx, trial, &records, &subjects, &strata, &keys, &kept_keys,
        )
        .await?;
        kept.extend(context.kept);
        let objecting = context.objecting;
        let refused: Vec<&str> = mine
            .iter()
            .filter(|p| !p.refusals.is_empty() || objecting.contains(&p.request.subject))
            .map(|p| p.request.record_id.as_str())
            .collect();
        let Some((status, next_number)) = context.trial else {
            continue;
        };
        let (existing, strata) = (context.allocations, context.strata);
        let lifecycle = context.lifecycle.as_deref().unwrap_or_default();
        slices.insert(
            trial,
            TrialSlice {
                status: TrialStatus::parse(&status).ok_or_else(|| {
                    StoreError::Corrupt(format!("unknown trial status `{status}`"))
                })?,
                lifecycle: Lifecycle::parse(lifecycle).ok_or_else(|| {
                    StoreError::Corrupt(format!("unknown trial lifecycle `{lifecycle}`"))
                })?,
                closed_sites: context.closed_sites.into_iter().collect(),
                next_number,
                by_subject: existing
                    .iter()
                    .map(|a| (a.subject.clone(), a.record_id.clone()))
                    .collect(),
                by_record: existing
                    .into_iter()
                    .map(|a| (a.record_id.clone(), a))
                    .collect(),
                refusals: screening_log::refusals(&mut tx, trial, &refused).await?,
                objecting,
                strata,
                touched_strata: BTreeSet::new(),
                balance: context.balance,
                touched_arm_counts: BTreeSet::new(),
                touched_marginals: BTreeSet::new(),
            },
        );
    }

    let mut outcomes = Vec::with_capacity(items.len());
    let mut writes = BatchWrite::default();
    for item in items {
        let trial = item.runtime.protocol.trial_id.as_str();
        let key = item
            .cloud_event
            .as_ref()
            .map(|k| (k, (k.scope.clone(), k.source.clone(), k.id.clone())));
        if let Some((event, key)) = &key {
            if let Some(earlier) = kept.get(key) {
                outcomes.push(if earlier.content_sha256 == event.content_sha256 {
                    Ok(EnrolOutcome::Kept(Answer {
                        status: earlier.status,
                        body: earlier.answer.clone(),
                    }))
                } else {
                    Err(EnrolError::CloudEventConflict {
                        ce_source: event.source.clone(),
                        id: event.id.clone(),
                    })
                });
                continue;
            }
        }
        let outcome = match slices.get_mut(trial) {
            None => Err(EnrolError::TrialNotFound(trial.to_string())),
            Some(slice) => decide_one(item, slice, now, &mut writes),
        };
        if let Some((event, key)) = key {
            let answer = super::answer(&outcome);
            if answer.is_final() {
                writes.kept.push(inbound::KeptRow {
                    scope: event.scope.clone(),
                    ce_source: event.source.clone(),
                    ce_id: event.id.clone(),
                    ce_type: event.ce_type.clone(),
                    content_sha256: event.content_sha256.clone(),
                    status: i64::from(answer.status),
                    answer: answer.body.to_string(),
                    received_at: now.to_string(),
                });
                kept.insert(
                    key,
                    inbound::Kept {
                        ce_type: event.ce_type.clone(),
                        content_sha256: event.content_sha256.clone(),
                        status: answer.status,
                        answer: answer.body,
                    },
                );
            }
        }
        outcomes.push(outcome);
    }
    for (&trial, slice) in &slices {
        for stratum in &slice.touched_strata {
            if let Some(state) = slice.strata.get(stratum) {
                writes
                    .strata
                    .push((trial.to_string(), stratum.clone(), *state));
            }
        }
        if !slice.touched_strata.is_empty() {
            writes
                .next_numbers
                .push((trial.to_string(), slice.next_number));
        }
        for (stratum, arm) in &slice.touched_arm_counts {
            writes.arm_counts.push(ArmCountRow {
                trial_id: trial.to_string(),
                stratum: stratum.clone(),
                arm: arm.clone(),
                n: slice.balance.arm_count(stratum, arm),
            });
        }
        for (factor, level, arm) in &slice.touched_marginals {
            writes.marginals.push(MarginalRow {
                trial_id: trial.to_string(),
                factor: factor.clone(),
                level: level.clone(),
                arm: arm.clone(),
                n: slice.balance.marginal(factor, level, arm),
            });
        }
    }
    batch::write_batch_and_commit(tx, &writes).await?;
    Ok(outcomes)
}

/// The counts and clusters one trial's enrolments of a batch need, by their schemes.
fn balance_keys<'a>(mine: &[&'a Pending]) -> BalanceKeys<'a> {
    let mut strata = BTreeSet::new();
    let mut factors = BTreeSet::new();
    let mut levels = BTreeSet::new();
    let mut clusters = BTreeSet::new();
    for p in mine {
        if p.runtime.scheme.keeps_arm_counts() {
            strata.insert(p.judged.stratum.as_str());
        }
        for (factor, level) in p.runtime.scheme.factors().iter().zip(&p.judged.levels) {
            factors.insert(factor.name.as_str());
            levels.insert(level.as_str());
        }
        if let Some(cluster) = &p.judged.cluster {
            clusters.insert(cluster.as_str());
        }
    }
    BalanceKeys {
        strata: strata.into_iter().collect(),
        factors: factors.into_iter().collect(),
        levels: levels.into_iter().collect(),
        clusters: clusters.into_iter().collect(),
    }
}

/// Decide one enrolment against its trial's slice, queueing the rows to write.
fn decide_one(
    item: &Pending,
    slice: &mut TrialSlice,
    now: Timestamp,
    writes: &mut BatchWrite,
) -> Result<EnrolOutcome, EnrolError> {
    let runtime = &item.runtime;
    let protocol = &runtime.protocol;
    let trial_id = protocol.trial_id.as_str();
    let request = &item.request;

    // Consent cannot be taken on a day that has not come (the one check of the consent
    // that needs the clock).
    if let Some(on) = item.consent.as_ref().and_then(|c| c.taken_on) {
        if on > now.date() {
            return Err(EnrolError::Invalid(vec![FieldError {
                field: "consent.taken_at".into(),
                message: format!(
                    "consent.taken_at {on} is after today ({}): consent is taken before \
                     randomisation",
                    now.date()
                ),
            }]));
        }
    }

    if let Some(existing) = slice.by_record.get(&request.record_id) {
        return if existing.request_sha256 == request.request_sha256 {
            Ok(EnrolOutcome::Replayed(Allocation::from_row(
                existing.clone(),
                runtime,
            )))
        } else {
            Err(EnrolError::RecordConflict(request.record_id.clone()))
        };
    }

    // The lifecycle first: a closed trial is closed for good, a paused one until resumed.
    match slice.lifecycle {
        Lifecycle::Closed => return Err(EnrolError::TrialClosed(trial_id.to_string())),
        Lifecycle::Paused => return Err(EnrolError::TrialPaused(trial_id.to_string())),
        Lifecycle::Active => {}
    }
    let not_active = if slice.status != TrialStatus::Recruiting {
        Some(format!("its status is `{}`", slice.status.as_str()))
    } else if protocol.ethics_approval.is_none() {
        Some("no ethics approval is recorded in its protocol".to_string())
    } else {
        None
    };
    if let Some(reason) = not_active {
        return Err(EnrolError::TrialNotActive {
            trial: trial_id.to_string(),
            reason,
        });
    }
    if slice.closed_sites.contains(&request.site) {
        return Err(EnrolError::SiteClosed {
            trial: trial_id.to_string(),
            site: request.site.clone(),
        });
    }

    if let Some(record_id) = slice.by_subject.get(&request.subject) {
        let site = slice.by_record.get(record_id).map(|a| a.site_code.as_str());
        return Err(EnrolError::AlreadyRandomised {
            subject: request.subject.clone(),
            record_id: visible_record(record_id, site, item.site_scope.as_deref()),
        });
    }

    let fields_json = Value::Object(request.fields.clone()).to_string();
    if !item.refusals.is_empty() {
        let key = (request.record_id.clone(), request.request_sha256.clone());
        if let Some(earlier) = slice.refusals.get(&key) {
            let reasons = serde_json::from_str(earlier).map_err(|e| {
                StoreError::Corrupt(format!("stored refusal reasons are not JSON: {e}"))
            })?;
            return Err(EnrolError::NotEligible { reasons });
        }
        let reasons = serde_json::to_value(&item.refusals)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode reasons: {e}")))?;
        slice.refusals.insert(key, reasons.to_string());
        writes.screening.push(ScreeningRow {
            trial_id: trial_id.to_string(),
            record_id: request.record_id.clone(),
            subject: request.subject.clone(),
            site_code: request.site.clone(),
            outcome: "not_eligible".into(),
            reasons: reasons.to_string(),
            fields: fields_json,
            request_sha256: request.request_sha256.clone(),
            protocol_version: protocol.version.clone(),
            randomisation_number: None,
            screened_at: now.to_string(),
        });
        writes.audit.push(NewEntry {
            actor: item.actor.clone(),
            action: "screened_not_eligible".into(),
            trial_id: Some(trial_id.to_string()),
            payload: serde_json::json!({
                "record_id": request.record_id,
                "subject": request.subject,
                "site": request.site,
                "criteria": item.refusals.iter().map(|r| r.criterion.as_str()).collect::<Vec<_>>(),
                "request_sha256": request.request_sha256,
            }),
        });
        return Err(EnrolError::NotEligible { reasons });
    }

    if slice.objecting.contains(&request.subject) {
        let key = (request.record_id.clone(), request.request_sha256.clone());
        if slice.refusals.contains_key(&key) {
            return Err(EnrolError::Objected(request.subject.clone()));
        }
        let reasons = serde_json::json!([{ "reason": "objected" }]).to_string();
        slice.refusals.insert(key, reasons.clone());
        writes.screening.push(ScreeningRow {
            trial_id: trial_id.to_string(),
            record_id: request.record_id.clone(),
            subject: request.subject.clone(),
            site_code: request.site.clone(),
            outcome: "not_randomised".into(),
            reasons,
            fields: fields_json,
            request_sha256: request.request_sha256.clone(),
            protocol_version: protocol.version.clone(),
            randomisation_number: None,
            screened_at: now.to_string(),
        });
        writes.audit.push(NewEntry {
            actor: item.actor.clone(),
            action: "screened_not_randomised".into(),
            trial_id: Some(trial_id.to_string()),
            payload: serde_json::json!({
                "record_id": request.record_id,
                "subject": request.subject,
                "site": request.site,
                "reason": "objected",
                "request_sha256": request.request_sha256,
            }),
        });
        return Err(EnrolError::Objected(request.subject.clone()));
    }

    let judged = &item.judged;
    let state = slice
        .strata
        .get(&judged.stratum)
        .copied()
        .unwrap_or_default();
    let decided = sequence::decide(
        protocol,
        &runtime.scheme,
        &runtime.seed,
        judged,
        &state,
        &slice.balance,
    )
    .map_err(|e| match e {
        DecideError::ClusterArmClosed { cluster, arm } => {
            EnrolError::ClusterArmClosed { cluster, arm }
        }
        DecideError::ClusterArmIneligible { cluster, arm } => {
            EnrolError::Invalid(vec![FieldError {
                field: protocol::INELIGIBLE_ARMS.to_string(),
                message: format!(
                    "cluster `{cluster}` is already randomised to arm `{arm}`, which this \
                     enrolment lists as ineligible"
                ),
            }])
        }
        e => StoreError::Corrupt(e.to_string()).into(),
    })?;
    let decision = &decided.decision;
    let eligible_ids = decided.eligible_ids.clone();
    let eligible_arms = eligible_ids
        .as_ref()
        .map(|ids| Value::from(ids.clone()).to_string());
    let row = AllocationRecord {
        trial_id: trial_id.to_string(),
        randomisation_number: slice.next_number,
        record_id: request.record_id.clone(),
        subject: request.subject.clone(),
        site_code: request.site.clone(),
        arm: decided.arm.clone(),
        stratum: judged.stratum.clone(),
        block_number: i64::try_from(decision.block_number)
            .map_err(|_| StoreError::Corrupt("block number overflow".into()))?,
        block_size: i64::from(decision.block_size),
        block_position: i64::from(decision.block_position),
        protocol_version: protocol.version.clone(),
        request_sha256: request.request_sha256.clone(),
        allocated_at: now,
        detail: decision.detail.as_ref().map(Value::to_string),
        eligible_arms,
        cluster: judged.cluster.clone(),
        draw: decided.draw,
    };
    // Counts are of randomised units: an inherited cluster member changes none of them.
    let adds = decided.adds;
    if let Some(key) = adds.arm_count {
        *slice.balance.arm_counts.entry(key.clone()).or_default() += 1;
        slice.touched_arm_counts.insert(key);
    }
    for key in adds.marginals {
        *slice.balance.marginals.entry(key.clone()).or_default() += 1;
        slice.touched_marginals.insert(key);
    }
    if let Some((cluster, arm)) = adds.cluster {
        let randomised = ClusterRow {
            trial_id: trial_id.to_string(),
            cluster: cluster.clone(),
            arm,
            stratum: judged.stratum.clone(),
            randomisation_number: row.randomisation_number,
        };
        slice.balance.clusters.insert(cluster, randomised.clone());
        writes.clusters.push(randomised);
    }
    slice.next_number += 1;
    slice.strata.insert(judged.stratum.clone(), decision.next);
    slice.touched_strata.insert(judged.stratum.clone());
    slice
        .by_subject
        .insert(request.subject.clone(), request.record_id.clone());
    slice
        .by_record
        .insert(request.record_id.clone(), row.clone());
    writes.screening.push(ScreeningRow {
        trial_id: trial_id.to_string(),
        record_id: request.record_id.clone(),
        subject: request.subject.clone(),
        site_code: request.site.clone(),
        outcome: "randomised".into(),
        reasons: "[]".into(),
        fields: fields_json,
        request_sha256: request.request_sha256.clone(),
        protocol_version: protocol.version.clone(),
        randomisation_number: Some(row.randomisation_number),
        screened_at: now.to_string(),
    });
    writes.audit.push(NewEntry {
        actor: item.actor.clone(),
        action: "randomised".into(),
        trial_id: Some(trial_id.to_string()),
        payload: serde_json::json!({
            "record_id": row.record_id,
            "subject": row.subject,
            "site": row.site_code,
            "randomisation_number": row.randomisation_number,
            "arm": row.arm,
            "stratum": row.stratum,
            "block_number": row.block_number,
            "block_size": row.block_size,
            "block_position": row.block_position,
            "derived": item.values,
            "request_sha256": row.request_sha256,
            "protocol_version": row.protocol_version,
            "draw": row.draw,
            "cluster": row.cluster,
            "eligible_arms": eligible_ids,
            "detail": decision.detail,
            "consent": item.consent,
        }),
    });
    if let Some(consent) = &item.consent {
        writes.consents.push(ConsentRow {
            trial_id: trial_id.to_string(),
            record_id: row.record_id.clone(),
            randomisation_number: row.randomisation_number,
            kind: consent.kind.as_str().to_string(),
            taken_by: consent.taken_by.clone(),
            taken_at: consent.taken_at.clone(),
        });
    }
    writes.allocations.push(row.clone());
    Ok(EnrolOutcome::Created(Allocation::from_row(row, runtime)))
}
