//! Roles, bearer tokens and what each role may do: the one place that decides who may read a
//! trial, who may see unblinded results and who may administer a trial. Every interface (the
//! API, the pages) asks here rather than looking at roles itself.

use std::sync::Arc;

use super::error::{Code, CodedError};
use super::{TrialRegistry, TrialRuntime};

/// Who a token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    /// A quality register: enrols patients and sends follow-up events for the subjects it
    /// randomised (of its trial, of its site, when scoped).
    Register,
    /// A register feed bound to one declared source (cause of death, patient, drug register):
    /// sends that source's event types for the subjects of any trial declaring the source;
    /// reads nothing.
    Source,
    /// Blinded aggregates only.
    Sponsor,
    Statistician,
    Dsmb,
    Auditor,
    /// The on-call unblinder: may break the code of one subject in an emergency (with a reason
    /// and their name, audited); otherwise reads what a sponsor reads.
    Unblinder,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Admin,
        Role::Register,
        Role::Source,
        Role::Sponsor,
        Role::Statistician,
        Role::Dsmb,
        Role::Auditor,
        Role::Unblinder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Register => "register",
            Role::Source => "source",
            Role::Sponsor => "sponsor",
            Role::Statistician => "statistician",
            Role::Dsmb => "dsmb",
            Role::Auditor => "auditor",
            Role::Unblinder => "unblinder",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// An authenticated caller and the scope of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    /// When set, the token only works for this trial.
    pub trial_id: Option<String>,
    /// When set, the token only works for this site.
    pub site_code: Option<String>,
    /// The declared source a `source` token delivers for.
    pub source_id: Option<String>,
    /// Short, non-secret identifier for audit entries: `token:` + 12 hex of the hash.
    pub actor: String,
}

/// Which page of a trial a reader is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    /// Recruitment, sites and pooled counts under disclosure control.
    Blinded,
    /// The comparisons between arms.
    Unblinded,
    /// The trial's audit trail.
    AuditTrail,
}

impl Principal {
    pub fn may_access_trial(&self, trial_id: &str) -> bool {
        self.trial_id.as_deref().is_none_or(|t| t == trial_id)
    }

    pub fn may_access_site(&self, site: &str) -> bool {
        self.site_code.as_deref().is_none_or(|s| s == site)
    }

    /// May read the trial at all (its blinded summary and pages): any role but a register
    /// feed, within its trial scope.
    pub fn may_read(&self, trial_id: &str) -> bool {
        self.role != Role::Source && self.may_access_trial(trial_id)
    }

    /// May see results by arm while the trial runs: the trial statistician and the DSMB only.
    pub fn may_see_unblinded(&self) -> bool {
        matches!(self.role, Role::Statistician | Role::Dsmb)
    }

    /// May see the arm of individual subjects (the FHIR `ResearchSubject`'s arms): those who
    /// see individual allocations already (the register that randomised them and admins, as
    /// an enrolment's lookup answers) and the unblinded roles. Never a sponsor, an auditor or
    /// the unblinder outside a code-break.
    pub fn may_see_subject_arms(&self) -> bool {
        matches!(
            self.role,
            Role::Register | Role::Admin | Role::Statistician | Role::Dsmb
        )
    }

    /// May scrape the metrics when they are not served openly: an admin token of no single
    /// trial (the metrics count every trial served).
    pub fn may_scrape_metrics(&self) -> bool {
        self.role == Role::Admin && self.trial_id.is_none()
    }

    /// May administer the trial (mark an allocation randomised in error): an admin token for it.
    pub fn may_administer(&self, trial_id: &str) -> bool {
        self.role == Role::Admin && self.may_access_trial(trial_id)
    }

    /// May record a patient's consent or withdrawal at `site`: the trial's register (of that
    /// site, when the token is site-scoped) or the trial's admin.
    pub fn may_record_participation(&self, trial_id: &str, site: &str) -> bool {
        match self.role {
            Role::Admin => self.may_access_trial(trial_id),
            Role::Register => self.may_access_trial(trial_id) && self.may_access_site(site),
            _ => false,
        }
    }

    /// May break the blind of one subject in an emergency: the on-call unblinder of the trial
    /// (of the subject's site, when the token is site-scoped).
    pub fn may_unblind(&self, trial_id: &str) -> bool {
        self.role == Role::Unblinder && self.may_access_trial(trial_id)
    }

    /// May read the list of emergency unblindings (who, when, why): the trial statistician,
    /// the DSMB and the auditor.
    pub fn may_list_unblindings(&self, trial_id: &str) -> bool {
        matches!(self.role, Role::Statistician | Role::Dsmb | Role::Auditor)
            && self.may_access_trial(trial_id)
    }

    /// The page this reader is shown for a trial.
    pub fn page(&self) -> PageKind {
        if self.role == Role::Auditor {
            PageKind::AuditTrail
        } else if self.may_see_unblinded() {
            PageKind::Unblinded
        } else {
            PageKind::Blinded
        }
    }
}

/// Why a reader cannot have a trial.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("no trial `{0}` is served here")]
    TrialNotFound(String),
    #[error("{0}")]
    Forbidden(String),
}

impl CodedError for AccessError {
    fn code(&self) -> Code {
        match self {
            AccessError::TrialNotFound(_) => Code::TrialNotFound,
            AccessError::Forbidden(_) => Code::Forbidden,
        }
    }
}

/// The trial a reader asks for, when it is served here and the reader may read it: the one
/// trial lookup and access check.
pub fn served_trial(
    registry: &TrialRegistry,
    principal: &Principal,
    trial_id: &str,
) -> Result<Arc<TrialRuntime>, AccessError> {
    let runtime = registry
        .get(trial_id)
        .ok_or_else(|| AccessError::TrialNotFound(trial_id.to_string()))?;
    if !principal.may_read(trial_id) {
        return Err(AccessError::Forbidden(if principal.role == Role::Source {
            "a `source` token delivers register events and reads nothing".to_string()
        } else {
            format!("this token is not valid for trial `{trial_id}`")
        }));
    }
    Ok(runtime)
}

/// Refuse a reader who may not see unblinded results.
pub fn require_unblinded(principal: &Principal) -> Result<(), AccessError> {
    if principal.may_see_unblinded() {
        Ok(())
    } else {
        Err(AccessError::Forbidden(format!(
            "role `{}` may not see unblinded results",
            principal.role.as_str()
        )))
    }
}
