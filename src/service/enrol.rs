//! Enrolment: eligibility, stratified randomisation and durable allocation in one transaction.
//!
//! The order of checks is part of the contract with register hosts:
//! 1. the request must parse and its fields (and `ineligible_arms`, when the protocol has arm
//!    eligibility) fit the protocol (`invalid_enrolment`, nothing stored);
//! 2. a `record_id` seen before answers from the store: the same body replays the allocation,
//!    another body is a `record_conflict` — this works even after recruitment has closed, so a
//!    register's retry of an acknowledged enrolment never fails;
//! 3. the trial must be recruiting and have an ethics approval (`trial_not_active`);
//! 4. a subject already randomised under another record is refused (`already_randomised`);
//! 5. an ineligible patient is refused with reasons, and the refusal is recorded in the screening
//!    log (identical retries are not recorded twice);
//! 6. otherwise the patient is allocated by the protocol's procedure (a cluster member inherits
//!    its cluster's arm), and allocation, stratum position, trial counter, the counts the
//!    adaptive procedures balance, the cluster's arm, screening-log row and audit entry are
//!    committed together.
//!
//! The counts (per-stratum arm counts, trial-wide minimisation marginals, cluster arms) are
//! read for the keys a batch needs, updated in memory as the batch decides in arrival order —
//! so enrolments decided together see each other — and written back once per batch.
//!
//! Steps 2–6 run under the trial row's lock, so concurrent enrolments of one trial, from any
//! number of server processes sharing the database, are serialised by the database itself.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::{Principal, Role, TrialRegistry, TrialRuntime};
use crate::protocol::{self, FieldError, TrialStatus};
use crate::randomise::{self, AllocationContext, AllocationError, Scheme, StratumState};
use crate::store::allocations::{
    self, AllocationRow, BatchWrite, ScreeningRow, DRAW_INHERITED, DRAW_RESTRICTED, DRAW_SLOT,
};
use crate::store::audit::NewEntry;
use crate::store::balance::{unsigned, ArmCountRow, Balance, BalanceKeys, ClusterRow, MarginalRow};
use crate::store::{now_text, Store, StoreError};

/// Longest accepted `record_id`, `subject` or `site`.
pub const MAX_ID_LEN: usize = 128;

/// A parsed enrolment request.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrolmentRequest {
    /// The register's identifier of this enrolment attempt (the idempotency key).
    pub record_id: String,
    /// Pseudonymous subject identifier.
    pub subject: String,
    pub site: String,
    pub fields: Map<String, Value>,
    /// SHA-256 of the canonical JSON of the whole body, to tell a retry from a different request.
    pub request_sha256: String,
}

impl EnrolmentRequest {
    /// Check the body's shape: `{"record_id","subject","site","fields":{...}}` and nothing else.
    pub fn from_json(body: &Value) -> Result<Self, Vec<FieldError>> {
        Self::from_json_with(body, &[])
    }

    /// As [`Self::from_json`], also allowing the top-level keys in `extra` (checked by the
    /// caller).
    pub fn from_json_with(body: &Value, extra: &[&str]) -> Result<Self, Vec<FieldError>> {
        let err = |field: &str, message: String| FieldError {
            field: field.to_string(),
            message,
        };
        let Some(obj) = body.as_object() else {
            return Err(vec![err(
                "",
                "the body must be a JSON object with record_id, subject, site and fields".into(),
            )]);
        };
        let mut errors = Vec::new();
        for key in obj.keys() {
            if !matches!(key.as_str(), "record_id" | "subject" | "site" | "fields")
                && !extra.contains(&key.as_str())
            {
                let mut expected = vec!["record_id", "subject", "site", "fields"];
                expected.extend_from_slice(extra);
                errors.push(err(
                    key,
                    format!("unknown key `{key}`: expected {}", expected.join(", ")),
                ));
            }
        }
        let mut text = |name: &str| -> String {
            match obj.get(name) {
                None | Some(Value::Null) => {
                    errors.push(err(name, format!("{name} is required")));
                    String::new()
                }
                Some(Value::String(s)) if s.trim().is_empty() => {
                    errors.push(err(name, format!("{name} must not be empty")));
                    String::new()
                }
                Some(Value::String(s)) if s.chars().count() > MAX_ID_LEN => {
                    errors.push(err(
                        name,
                        format!("{name} is longer than {MAX_ID_LEN} characters"),
                    ));
                    String::new()
                }
                Some(Value::String(s)) if s.chars().any(char::is_control) => {
                    errors.push(err(name, format!("{name} contains control characters")));
                    String::new()
                }
                Some(Value::String(s)) => s.clone(),
                Some(other) => {
                    errors.push(err(
                        name,
                        format!("{name} must be a string, got {}", json_type(other)),
                    ));
                    String::new()
                }
            }
        };
        let record_id = text("record_id");
        let subject = text("subject");
        let site = text("site");
        if protocol::looks_like_personal_identity_number(&subject) {
            errors.push(err(
                "subject",
                "subject looks like a personal identity number; send the register's pseudonym"
                    .into(),
            ));
        }
        let fields = match obj.get("fields") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                errors.push(err(
                    "fields",
                    format!("fields must be an object, got {}", json_type(other)),
                ));
                Map::new()
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(EnrolmentRequest {
            record_id,
            subject,
            site,
            fields,
            request_sha256: hex::encode(Sha256::digest(canonical_json(body).as_bytes())),
        })
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// JSON with object keys sorted at every level, so the same request hashes the same whatever
/// key order the register's JSON library writes.
pub fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&m[k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

/// The allocation as returned to the register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Allocation {
    pub trial_id: String,
    pub record_id: String,
    pub subject: String,
    pub arm: String,
    pub arm_label: String,
    pub randomisation_number: i64,
    pub stratum: String,
    pub allocated_at: String,
    pub protocol_version: String,
    /// The arms the patient was eligible for, when the enrolment named ineligible arms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eligible_arms: Option<Vec<String>>,
}

impl Allocation {
    pub fn from_row(row: AllocationRow, runtime: &TrialRuntime) -> Self {
        let arm_label = runtime
            .protocol
            .arms
            .iter()
            .find(|a| a.id == row.arm)
            .map_or_else(|| row.arm.clone(), |a| a.label.clone());
        // Written by `decide_one` as a JSON array of arm ids; anything else is not shown.
        let eligible_arms = row
            .eligible_arms
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok());
        Allocation {
            eligible_arms,
            trial_id: row.trial_id,
            record_id: row.record_id,
            subject: row.subject,
            arm: row.arm,
            arm_label,
            randomisation_number: row.randomisation_number,
            stratum: row.stratum,
            allocated_at: row.allocated_at,
            protocol_version: row.protocol_version,
        }
    }
}

/// A successful enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrolOutcome {
    /// Newly randomised.
    Created(Allocation),
    /// The same request was seen before: its allocation, unchanged.
    Replayed(Allocation),
}

/// Why an enrolment was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error("no trial `{0}` is served here")]
    TrialNotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the enrolment is invalid: {}", describe(.0))]
    Invalid(Vec<FieldError>),
    #[error("the patient is not eligible")]
    NotEligible {
        /// The unmet criteria, as recorded in the screening log.
        reasons: Value,
    },
    #[error("subject `{subject}` is already randomised in this trial (record `{record_id}`)")]
    AlreadyRandomised { subject: String, record_id: String },
    #[error("record `{0}` was already submitted with a different body")]
    RecordConflict(String),
    #[error("trial `{trial}` is not recruiting: {reason}")]
    TrialNotActive { trial: String, reason: String },
    #[error(
        "cluster `{cluster}` was randomised to arm `{arm}`, which the current protocol no longer \
         has; its members cannot be enrolled"
    )]
    ClusterArmClosed { cluster: String, arm: String },
    #[error("the enrolment service is shutting down")]
    Unavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Largest number of enrolments decided and committed together.
pub const MAX_BATCH: usize = 256;

/// An enrolment that passed every check that needs no database, waiting for its decision.
struct Pending {
    runtime: Arc<TrialRuntime>,
    actor: String,
    request: EnrolmentRequest,
    values: protocol::EnrolmentValues,
    refusals: Vec<protocol::Ineligibility>,
    stratum: String,
    /// One flag per arm when the enrolment named ineligible arms.
    eligible: Option<Vec<bool>>,
    /// The enrolment's level of each minimisation factor, in the scheme's factor order.
    levels: Vec<String>,
    /// The enrolment's cluster, in a cluster trial.
    cluster: Option<String>,
}

type Reply = oneshot::Sender<Result<EnrolOutcome, EnrolError>>;

/// The write path of enrolments: a task that decides queued enrolments in batches, each batch
/// one transaction and one commit (group commit).
///
/// Under load a commit's fsync, not the decision, is what costs; deciding the enrolments that
/// arrived while the previous commit was running together and acknowledging them after one
/// commit keeps latency flat and lets throughput exceed one commit per enrolment. Nothing is
/// acknowledged before its commit, and a batch that fails is retried one enrolment per
/// transaction, so one bad enrolment cannot fail its neighbours.
#[derive(Clone)]
pub struct EnrolmentQueue {
    sender: mpsc::Sender<(Pending, Reply)>,
}

impl EnrolmentQueue {
    /// Start the deciding task on the current tokio runtime; it ends when every handle is dropped.
    pub fn start(store: Store) -> Self {
        let (sender, mut receiver) = mpsc::channel::<(Pending, Reply)>(4 * MAX_BATCH);
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match receiver.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let (items, replies): (Vec<Pending>, Vec<Reply>) = batch.into_iter().unzip();
                let started = std::time::Instant::now();
                let decided = decide_batch(&store, &items).await;
                tracing::debug!(
                    size = items.len(),
                    micros = started.elapsed().as_micros() as u64,
                    "enrolment batch decided"
                );
                match decided {
                    Ok(outcomes) => {
                        for (reply, outcome) in replies.into_iter().zip(outcomes) {
                            let _ = reply.send(outcome);
                        }
                    }
                    Err(e) if items.len() == 1 => {
                        if let Some(reply) = replies.into_iter().next() {
                            let _ = reply.send(Err(EnrolError::from(e)));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, size = items.len(), "batch failed; deciding one by one");
                        for (item, reply) in items.into_iter().zip(replies) {
                            let outcome =
                                match decide_batch(&store, std::slice::from_ref(&item)).await {
                                    Ok(mut o) => o.pop().unwrap_or_else(|| {
                                        Err(StoreError::Corrupt("no outcome".into()).into())
                                    }),
                                    Err(e) => Err(e.into()),
                                };
                            let _ = reply.send(outcome);
                        }
                    }
                }
            }
        });
        EnrolmentQueue { sender }
    }

    async fn submit(&self, pending: Pending) -> Result<EnrolOutcome, EnrolError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send((pending, reply))
            .await
            .map_err(|_| EnrolError::Unavailable)?;
        answer.await.map_err(|_| EnrolError::Unavailable)?
    }
}

/// Enrol one patient: see the module documentation for the order of checks.
#[tracing::instrument(skip_all, fields(trial = %trial_id), err(level = tracing::Level::DEBUG))]
pub async fn enrol(
    queue: &EnrolmentQueue,
    registry: &TrialRegistry,
    principal: &Principal,
    trial_id: &str,
    body: &Value,
) -> Result<EnrolOutcome, EnrolError> {
    let runtime = registry
        .get(trial_id)
        .ok_or_else(|| EnrolError::TrialNotFound(trial_id.to_string()))?;
    if principal.role != Role::Register {
        return Err(EnrolError::Forbidden(format!(
            "role `{}` cannot enrol patients; a `register` token is needed",
            principal.role.as_str()
        )));
    }
    if !principal.may_access_trial(trial_id) {
        return Err(EnrolError::Forbidden(format!(
            "this token is not valid for trial `{trial_id}`"
        )));
    }
    let request = EnrolmentRequest::from_json_with(body, &[protocol::INELIGIBLE_ARMS])
        .map_err(EnrolError::Invalid)?;
    if !principal.may_access_site(&request.site) {
        return Err(EnrolError::Forbidden(format!(
            "this token may not enrol at site `{}`",
            request.site
        )));
    }
    let protocol = &runtime.protocol;
    // Every problem at once: the arm list's and the fields'.
    let eligible = protocol::parse_ineligible_arms(protocol, body.get(protocol::INELIGIBLE_ARMS));
    let values = protocol::parse_enrolment(protocol, &request.site, &request.fields);
    let (eligible, values) = match (eligible, values) {
        (Ok(eligible), Ok(values)) => (eligible, values),
        (eligible, values) => {
            let mut errors: Vec<FieldError> = eligible.err().into_iter().collect();
            errors.extend(values.err().unwrap_or_default());
            return Err(EnrolError::Invalid(errors));
        }
    };
    let refusals = protocol::check_eligibility(protocol, &values);
    let stratum = protocol::stratum(protocol, &values).key;
    let levels = runtime
        .scheme
        .factors()
        .iter()
        .map(|f| protocol::level(&values, &f.name))
        .collect();
    let cluster = protocol
        .randomisation
        .cluster
        .as_deref()
        .map(|field| protocol::level(&values, field));
    queue
        .submit(Pending {
            runtime,
            actor: principal.actor.clone(),
            request,
            values,
            refusals,
            stratum,
            eligible,
            levels,
            cluster,
        })
        .await
}

/// What one trial's part of a batch knows: the locked trial row and everything already stored
/// or decided earlier in the batch for the batch's records, subjects and strata.
struct TrialSlice {
    status: TrialStatus,
    next_number: i64,
    by_record: HashMap<String, AllocationRow>,
    /// subject → record id of its allocation.
    by_subject: HashMap<String, String>,
    /// (record id, request hash) → reasons JSON of an earlier refusal.
    refusals: HashMap<(String, String), String>,
    strata: HashMap<String, StratumState>,
    touched_strata: BTreeSet<String>,
    /// Counts and clusters as stored, updated in memory as the batch decides.
    balance: Balance,
    touched_arm_counts: BTreeSet<(String, String)>,
    touched_marginals: BTreeSet<(String, String, String)>,
}

/// Whether a scheme balances per-stratum arm counts.
fn keeps_arm_counts(scheme: &Scheme) -> bool {
    matches!(
        scheme,
        Scheme::BiasedCoin { .. } | Scheme::BigStick { .. } | Scheme::Urn { .. }
    )
}

/// Decide a batch of enrolments in one transaction, in arrival order, and commit.
#[tracing::instrument(skip_all, fields(size = items.len()), err)]
async fn decide_batch(
    store: &Store,
    items: &[Pending],
) -> Result<Vec<Result<EnrolOutcome, EnrolError>>, StoreError> {
    // Holds the chain head's lock, so everything read below is current until commit.
    let mut tx = store.begin_write().await?;
    let trial_ids: BTreeSet<&str> = items
        .iter()
        .map(|p| p.runtime.protocol.trial_id.as_str())
        .collect();
    let trial_ids: Vec<&str> = trial_ids.into_iter().collect();
    let mut slices: HashMap<&str, TrialSlice> = HashMap::new();
    for &trial in &trial_ids {
        let mine: Vec<&Pending> = items
            .iter()
            .filter(|p| p.runtime.protocol.trial_id == trial)
            .collect();
        let records: Vec<&str> = mine.iter().map(|p| p.request.record_id.as_str()).collect();
        let subjects: Vec<&str> = mine.iter().map(|p| p.request.subject.as_str()).collect();
        let strata: BTreeSet<&str> = mine.iter().map(|p| p.stratum.as_str()).collect();
        let strata: Vec<&str> = strata.into_iter().collect();
        let refused: Vec<&str> = mine
            .iter()
            .filter(|p| !p.refusals.is_empty())
            .map(|p| p.request.record_id.as_str())
            .collect();
        let keys = balance_keys(&mine);
        let context =
            allocations::batch_context(&mut tx, trial, &records, &subjects, &strata, &keys).await?;
        let Some((status, next_number)) = context.trial else {
            continue;
        };
        let (existing, strata) = (context.allocations, context.strata);
        slices.insert(
            trial,
            TrialSlice {
                status: TrialStatus::parse(&status).ok_or_else(|| {
                    StoreError::Corrupt(format!("unknown trial status `{status}`"))
                })?,
                next_number,
                by_subject: existing
                    .iter()
                    .map(|a| (a.subject.clone(), a.record_id.clone()))
                    .collect(),
                by_record: existing
                    .into_iter()
                    .map(|a| (a.record_id.clone(), a))
                    .collect(),
                refusals: allocations::refusals(&mut tx, trial, &refused).await?,
                strata,
                touched_strata: BTreeSet::new(),
                balance: context.balance,
                touched_arm_counts: BTreeSet::new(),
                touched_marginals: BTreeSet::new(),
            },
        );
    }

    let now = now_text();
    let mut outcomes = Vec::with_capacity(items.len());
    let mut writes = BatchWrite::default();
    for item in items {
        let trial = item.runtime.protocol.trial_id.as_str();
        let outcome = match slices.get_mut(trial) {
            None => Err(EnrolError::TrialNotFound(trial.to_string())),
            Some(slice) => decide_one(item, slice, &now, &mut writes),
        };
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
    allocations::write_batch(&mut tx, &writes).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// The counts and clusters one trial's enrolments of a batch need, by their schemes.
fn balance_keys<'a>(mine: &[&'a Pending]) -> BalanceKeys<'a> {
    let mut strata = BTreeSet::new();
    let mut factors = BTreeSet::new();
    let mut levels = BTreeSet::new();
    let mut clusters = BTreeSet::new();
    for p in mine {
        if keeps_arm_counts(&p.runtime.scheme) {
            strata.insert(p.stratum.as_str());
        }
        for (factor, level) in p.runtime.scheme.factors().iter().zip(&p.levels) {
            factors.insert(factor.name.as_str());
            levels.insert(level.as_str());
        }
        if let Some(cluster) = &p.cluster {
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
    now: &str,
    writes: &mut BatchWrite,
) -> Result<EnrolOutcome, EnrolError> {
    let runtime = &item.runtime;
    let protocol = &runtime.protocol;
    let trial_id = protocol.trial_id.as_str();
    let request = &item.request;

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

    if let Some(record_id) = slice.by_subject.get(&request.subject) {
        return Err(EnrolError::AlreadyRandomised {
            subject: request.subject.clone(),
            record_id: record_id.clone(),
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

    let state = slice.strata.get(&item.stratum).copied().unwrap_or_default();
    let scheme = &runtime.scheme;
    let arms = &protocol.arms;
    let cluster = item
        .cluster
        .as_ref()
        .and_then(|c| slice.balance.clusters.get(c));
    let cluster_arm = match cluster {
        Some(c) => {
            Some(
                protocol
                    .arm_index(&c.arm)
                    .ok_or_else(|| EnrolError::ClusterArmClosed {
                        cluster: c.cluster.clone(),
                        arm: c.arm.clone(),
                    })?,
            )
        }
        None => None,
    };
    let counts = |f: &dyn Fn(&str) -> i64| -> Result<Vec<u64>, StoreError> {
        arms.iter().map(|a| unsigned(f(&a.id))).collect()
    };
    let ctx = AllocationContext {
        eligible_arms: item.eligible.clone(),
        arm_counts: if keeps_arm_counts(scheme) {
            counts(&|arm| slice.balance.arm_count(&item.stratum, arm))?
        } else {
            Vec::new()
        },
        marginals: scheme
            .factors()
            .iter()
            .zip(&item.levels)
            .map(|(f, level)| counts(&|arm| slice.balance.marginal(&f.name, level, arm)))
            .collect::<Result<_, _>>()?,
        cluster_arm,
    };
    let decision =
        randomise::allocate_with(scheme, &runtime.seed, trial_id, &item.stratum, &state, &ctx)
            .map_err(|e| match (e, cluster) {
                (AllocationError::ClusterArmIneligible { .. }, Some(c)) => {
                    EnrolError::Invalid(vec![FieldError {
                        field: protocol::INELIGIBLE_ARMS.to_string(),
                        message: format!(
                    "cluster `{}` is already randomised to arm `{}`, which this enrolment lists \
                     as ineligible",
                    c.cluster, c.arm
                ),
                    }])
                }
                (e, _) => StoreError::Corrupt(format!("allocation context: {e}")).into(),
            })?;
    let arm = arms
        .get(decision.arm)
        .ok_or_else(|| StoreError::Corrupt(format!("arm index {} out of range", decision.arm)))?;
    let restricted = item.eligible.as_ref().is_some_and(|e| e.contains(&false));
    let draw = if cluster_arm.is_some() {
        DRAW_INHERITED
    } else if restricted && matches!(scheme, Scheme::PermutedBlocks { .. }) {
        DRAW_RESTRICTED
    } else {
        DRAW_SLOT
    };
    let eligible_ids: Option<Vec<String>> = restricted.then(|| {
        arms.iter()
            .zip(item.eligible.iter().flatten())
            .filter(|(_, &e)| e)
            .map(|(a, _)| a.id.clone())
            .collect()
    });
    let eligible_arms = eligible_ids
        .as_ref()
        .map(|ids| Value::from(ids.clone()).to_string());
    let row = AllocationRow {
        trial_id: trial_id.to_string(),
        randomisation_number: slice.next_number,
        record_id: request.record_id.clone(),
        subject: request.subject.clone(),
        site_code: request.site.clone(),
        arm: arm.id.clone(),
        stratum: item.stratum.clone(),
        block_number: i64::try_from(decision.block_number)
            .map_err(|_| StoreError::Corrupt("block number overflow".into()))?,
        block_size: i64::from(decision.block_size),
        block_position: i64::from(decision.block_position),
        protocol_version: protocol.version.clone(),
        request_sha256: request.request_sha256.clone(),
        allocated_at: now.to_string(),
        detail: decision.detail.as_ref().map(Value::to_string),
        eligible_arms,
        cluster: item.cluster.clone(),
        draw: draw.to_string(),
    };
    // Counts are of randomised units: an inherited cluster member changes none of them.
    if cluster_arm.is_none() {
        if keeps_arm_counts(scheme) {
            let key = (item.stratum.clone(), arm.id.clone());
            *slice.balance.arm_counts.entry(key.clone()).or_default() += 1;
            slice.touched_arm_counts.insert(key);
        }
        for (factor, level) in scheme.factors().iter().zip(&item.levels) {
            let key = (factor.name.clone(), level.clone(), arm.id.clone());
            *slice.balance.marginals.entry(key.clone()).or_default() += 1;
            slice.touched_marginals.insert(key);
        }
        if let Some(cluster) = &item.cluster {
            let randomised = ClusterRow {
                trial_id: trial_id.to_string(),
                cluster: cluster.clone(),
                arm: arm.id.clone(),
                stratum: item.stratum.clone(),
                randomisation_number: row.randomisation_number,
            };
            slice
                .balance
                .clusters
                .insert(cluster.clone(), randomised.clone());
            writes.clusters.push(randomised);
        }
    }
    slice.next_number += 1;
    slice.strata.insert(item.stratum.clone(), decision.next);
    slice.touched_strata.insert(item.stratum.clone());
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
        }),
    });
    writes.allocations.push(row.clone());
    Ok(EnrolOutcome::Created(Allocation::from_row(row, runtime)))
}

/// Look up an enrolment's allocation for a caller allowed to see it.
pub async fn lookup(
    store: &Store,
    registry: &TrialRegistry,
    principal: &Principal,
    trial_id: &str,
    record_id: &str,
) -> Result<Option<Allocation>, EnrolError> {
    let runtime = registry
        .get(trial_id)
        .ok_or_else(|| EnrolError::TrialNotFound(trial_id.to_string()))?;
    if !matches!(principal.role, Role::Register | Role::Admin) {
        return Err(EnrolError::Forbidden(format!(
            "role `{}` may not see individual allocations",
            principal.role.as_str()
        )));
    }
    if !principal.may_access_trial(trial_id) {
        return Err(EnrolError::Forbidden(format!(
            "this token is not valid for trial `{trial_id}`"
        )));
    }
    let Some(row) = allocations::get(store, trial_id, record_id).await? else {
        return Ok(None);
    };
    if !principal.may_access_site(&row.site_code) {
        // Do not reveal that the record exists at another site.
        return Ok(None);
    }
    Ok(Some(Allocation::from_row(row, &runtime)))
}
