//! A trial and its randomised subjects as an interoperability reader sees them (the FHIR
//! `ResearchStudy` and `ResearchSubject` of `api::fhir`): who may read them, which subjects a
//! site-scoped token sees, and whether arms are shown are decided here, with the policy of
//! [`super::auth`]. Shaping FHIR resources is the interface's business, not this module's.

use super::auth::{served_trial, AccessError};
use super::error::{Code, CodedError};
use super::lifecycle::{self, LifecycleError};
use super::{AppState, Principal};
use crate::randomise::AllocationRecord;
use crate::store::{subjects, StoreError};

/// Most subjects on one page.
pub const MAX_PAGE: i64 = 500;

/// An arm as shown to a reader allowed to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownArm {
    pub id: String,
    pub label: String,
}

/// A site of the trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudySite {
    pub code: String,
    pub name: Option<String>,
}

/// A trial as an interoperability reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Study {
    pub trial_id: String,
    pub title: String,
    pub protocol_version: String,
    /// The protocol's declared status (`planned`, `recruiting`, `paused`, `closed`).
    pub protocol_status: String,
    /// The lifecycle set by the admins (`active`, `paused`, `closed`).
    pub lifecycle: String,
    /// When the first subject was randomised (RFC 3339), if any was.
    pub first_randomised: Option<String>,
    /// When the trial was closed (RFC 3339), if it was.
    pub closed_at: Option<String>,
    /// The sites the reader may see (its own only, for a site-scoped token).
    pub sites: Vec<StudySite>,
    /// The arms, for a reader allowed to see subjects' arms; empty otherwise.
    pub arms: Vec<ShownArm>,
    pub target_sample_size: u32,
}

/// One randomised subject as a reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub trial_id: String,
    pub randomisation_number: i64,
    /// The pseudonymous subject id the register sent.
    pub subject: String,
    pub site_code: String,
    pub allocated_at: String,
    /// `None` unless the reader may see subjects' arms.
    pub arm: Option<ShownArm>,
}

/// A page of subjects in randomisation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPage {
    pub subjects: Vec<Subject>,
    /// The subjects the reader may see in all.
    pub total: i64,
    /// The randomisation number to continue after, when there are more.
    pub next_after: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SubjectsError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("{0}")]
    InvalidQuery(String),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CodedError for SubjectsError {
    fn code(&self) -> Code {
        match self {
            SubjectsError::Access(e) => e.code(),
            SubjectsError::InvalidQuery(_) => Code::InvalidQuery,
            SubjectsError::Lifecycle(e) => e.code(),
            SubjectsError::Store(e) => e.code(),
        }
    }
}

fn arms_of(runtime: &super::TrialRuntime) -> Vec<ShownArm> {
    runtime
        .protocol
        .arms
        .iter()
        .map(|a| ShownArm {
            id: a.id.clone(),
            label: a.label.clone(),
        })
        .collect()
}

fn subject_of(row: AllocationRecord, arms: Option<&[ShownArm]>) -> Subject {
    let arm = arms.map(|arms| {
        arms.iter()
            .find(|a| a.id == row.arm)
            .cloned()
            .unwrap_or_else(|| ShownArm {
                id: row.arm.clone(),
                label: row.arm.clone(),
            })
    });
    Subject {
        trial_id: row.trial_id,
        randomisation_number: row.randomisation_number,
        subject: row.subject,
        site_code: row.site_code,
        allocated_at: row.allocated_at.to_string(),
        arm,
    }
}

/// The trial `trial_id` for a reader of it.
pub async fn study(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
) -> Result<Study, SubjectsError> {
    let runtime = served_trial(&state.trials, principal, trial_id)?;
    let overview = lifecycle::overview(&state.store, trial_id).await?;
    let first = subjects::page(&state.store, trial_id, None, 0, 1).await?;
    let protocol = &runtime.protocol;
    Ok(Study {
        trial_id: trial_id.to_string(),
        title: protocol.title.clone(),
        protocol_version: protocol.version.clone(),
        protocol_status: protocol.status.as_str().to_string(),
        first_randomised: first.first().map(|a| a.allocated_at.to_string()),
        closed_at: overview
            .history
            .iter()
            .rev()
            .find(|c| c.change == "close" && c.site_code.is_none())
            .map(|c| c.changed_at.clone()),
        lifecycle: overview.lifecycle,
        sites: protocol
            .sites
            .iter()
            .filter(|s| principal.may_access_site(&s.code))
            .map(|s| StudySite {
                code: s.code.clone(),
                name: s.name.clone(),
            })
            .collect(),
        arms: if principal.may_see_subject_arms() {
            arms_of(&runtime)
        } else {
            Vec::new()
        },
        target_sample_size: protocol.target_sample_size,
    })
}

/// Up to `count` subjects of `trial_id` randomised after number `after`, of the reader's site
/// only when its token is site-scoped.
pub async fn page(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
    after: i64,
    count: i64,
) -> Result<SubjectPage, SubjectsError> {
    let runtime = served_trial(&state.trials, principal, trial_id)?;
    if !(1..=MAX_PAGE).contains(&count) {
        return Err(SubjectsError::InvalidQuery(format!(
            "_count must be between 1 and {MAX_PAGE}, got {count}"
        )));
    }
    if after < 0 {
        return Err(SubjectsError::InvalidQuery(format!(
            "the page cursor must not be negative, got {after}"
        )));
    }
    let site = principal.site_code.as_deref();
    // One more than asked tells whether another page follows.
    let mut rows = subjects::page(&state.store, trial_id, site, after, count + 1).await?;
    let more = rows.len() as i64 > count;
    rows.truncate(count as usize);
    let next_after = more
        .then(|| rows.last().map(|r| r.randomisation_number))
        .flatten();
    let total = subjects::count(&state.store, trial_id, site).await?;
    let arms = principal.may_see_subject_arms().then(|| arms_of(&runtime));
    Ok(SubjectPage {
        subjects: rows
            .into_iter()
            .map(|r| subject_of(r, arms.as_deref()))
            .collect(),
        total,
        next_after,
    })
}

/// The subject randomised as number `number` of `trial_id`; `None` when there is none the
/// reader may see (another site's subject is not revealed to a site-scoped token).
pub async fn one(
    state: &AppState,
    principal: &Principal,
    trial_id: &str,
    number: i64,
) -> Result<Option<Subject>, SubjectsError> {
    let runtime = served_trial(&state.trials, principal, trial_id)?;
    let Some(row) = subjects::by_number(&state.store, trial_id, number).await? else {
        return Ok(None);
    };
    if !principal.may_access_site(&row.site_code) {
        return Ok(None);
    }
    let arms = principal.may_see_subject_arms().then(|| arms_of(&runtime));
    Ok(Some(subject_of(row, arms.as_deref())))
}
