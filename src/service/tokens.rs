//! Bearer tokens: created with a role, a scope and an expiry, stored only as their hash,
//! listed and revoked by their public id, and verified with a short-lived cache.
//!
//! A token's public id is the first 12 hex digits of its hash: the name the audit log gives its
//! actions (`token:ID`) and the name `rrct token revoke` takes. People's tokens (admin,
//! sponsor, statistician, DSMB, auditor) expire, by default after [`PEOPLE_DEFAULT_DAYS`] days;
//! machines' tokens (register, source) do not unless told to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::auth::{Principal, Role};
use super::error::{Code, CodedError};
use crate::identity;
use crate::randomise::Timestamp;
pub use crate::store::tokens::TokenRecord;
use crate::store::tokens::{self, Revocation, TokenGrant};
use crate::store::{trials, Store, StoreError, StoreResult};

/// How long a person's token lasts unless told otherwise.
pub const PEOPLE_DEFAULT_DAYS: i64 = 30;

/// The longest a person's token may last.
pub const PEOPLE_MAX_DAYS: i64 = 366;

/// Why a token could not be created or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "unknown role `{0}`: expected one of admin, register, source, sponsor, statistician, dsmb, auditor"
    )]
    UnknownRole(String),
    #[error("a site scope needs a trial scope too (--trial), since site codes belong to a trial")]
    SiteWithoutTrial,
    #[error("no trial `{0}` in this database; register its protocol first")]
    UnknownTrial(String),
    #[error("trial `{trial}` has no site `{site}`")]
    UnknownSite { trial: String, site: String },
    #[error("site {0}")]
    InvalidSite(identity::IdError),
    #[error("a `source` token is bound to one register feed: give --source ID, a source a trial's protocol declares under [sources.ID]")]
    SourceRequired,
    #[error("--source binds a `source` token to its register; a `{0}` token takes no source")]
    SourceNotAllowed(String),
    #[error("a `source` token delivers for any site of the trials declaring its source; it takes no --site")]
    SourceWithSite,
    #[error("no trial {0} declares a source `{1}` under [sources.{1}]")]
    UnknownSource(String, String),
    #[error("{0}")]
    InvalidExpiry(String),
    #[error("no token `{0}`")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("token `{token_id}` was already revoked on {revoked_at}")]
    AlreadyRevoked {
        token_id: String,
        revoked_at: String,
    },
    #[error("cannot draw a token from the operating system's random source: {0}")]
    Entropy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CodedError for TokenError {
    fn code(&self) -> Code {
        match self {
            TokenError::NotFound(_) => Code::NotFound,
            TokenError::Forbidden(_) => Code::Forbidden,
            TokenError::AlreadyRevoked { .. } => Code::AlreadyRevoked,
            TokenError::Store(e) => e.code(),
            TokenError::Entropy(_) => Code::Internal,
            _ => Code::InvalidRequest,
        }
    }

    fn public_message(&self) -> String {
        match self {
            TokenError::Store(e) => e.public_message(),
            other => other.to_string(),
        }
    }
}

/// How long a new token lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The role's default: [`PEOPLE_DEFAULT_DAYS`] for people, none for machines.
    Default,
    Never,
    After(chrono::Duration),
}

impl Expiry {
    /// `never`, or a number with a unit: `90d`, `12h`, `30m`.
    ///
    /// ```
    /// use rrct::service::tokens::Expiry;
    /// assert_eq!(Expiry::parse("12h").unwrap(), Expiry::After(chrono::Duration::hours(12)));
    /// assert_eq!(Expiry::parse("never").unwrap(), Expiry::Never);
    /// assert!(Expiry::parse("soon").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Expiry, TokenError> {
        if text == "never" {
            return Ok(Expiry::Never);
        }
        let invalid = || {
            TokenError::InvalidExpiry(format!(
                "--expires-in `{text}` must be a whole number with a unit d, h or m (e.g. 90d), or never"
            ))
        };
        let unit = text.chars().last().ok_or_else(invalid)?;
        let n: i64 = text[..text.len() - unit.len_utf8()]
            .parse()
            .ok()
            .filter(|n| *n > 0 && *n < 100_000)
            .ok_or_else(invalid)?;
        Ok(Expiry::After(match unit {
            'd' => chrono::Duration::days(n),
            'h' => chrono::Duration::hours(n),
            'm' => chrono::Duration::minutes(n),
            _ => return Err(invalid()),
        }))
    }
}

/// Whether a role is held by people (who sign in to pages) rather than by a machine.
fn is_person(role: Role) -> bool {
    !matches!(role, Role::Register | Role::Source)
}

/// What a new token grants.
pub struct TokenSpec<'a> {
    pub role: &'a str,
    pub trial_id: Option<&'a str>,
    pub site_code: Option<&'a str>,
    /// The source a `source` token is bound to (required for that role, refused for others).
    pub source_id: Option<&'a str>,
    pub expires: Expiry,
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Create a token with the role's default expiry; returns the secret, shown once, never stored.
pub async fn create_token(
    store: &Store,
    role: &str,
    trial_id: Option<&str>,
    site_code: Option<&str>,
) -> Result<String, TokenError> {
    create(
        store,
        &TokenSpec {
            role,
            trial_id,
            site_code,
            source_id: None,
            expires: Expiry::Default,
        },
        "cli",
    )
    .await
}

/// Create a `source` token bound to `source` (declared by some trial's protocol), for any
/// trial declaring it; returns the secret.
pub async fn create_source_token(store: &Store, source: &str) -> Result<String, TokenError> {
    create(
        store,
        &TokenSpec {
            role: "source",
            trial_id: None,
            site_code: None,
            source_id: Some(source),
            expires: Expiry::Default,
        },
        "cli",
    )
    .await
}

/// Create a token; returns the secret, which is shown once and never stored. The trial and
/// site it is scoped to must exist.
pub async fn create(
    store: &Store,
    spec: &TokenSpec<'_>,
    actor: &str,
) -> Result<String, TokenError> {
    let role =
        Role::parse(spec.role).ok_or_else(|| TokenError::UnknownRole(spec.role.to_string()))?;
    let site = spec
        .site_code
        .map(|s| identity::canonical_id(s).map_err(TokenError::InvalidSite))
        .transpose()?;
    match (role, spec.source_id, &site) {
        (Role::Source, None, _) => return Err(TokenError::SourceRequired),
        (Role::Source, Some(_), Some(_)) => return Err(TokenError::SourceWithSite),
        (Role::Source, Some(source), None) => {
            let declared = super::trials::stored_protocols(store)
                .await?
                .iter()
                .filter(|p| spec.trial_id.is_none_or(|t| t == p.trial_id))
                .any(|p| p.follow_up.source(source).is_some());
            if !declared {
                return Err(TokenError::UnknownSource(
                    spec.trial_id
                        .map_or_else(|| "in this database".to_string(), |t| format!("`{t}`")),
                    source.to_string(),
                ));
            }
        }
        (other, Some(_), _) => return Err(TokenError::SourceNotAllowed(other.as_str().into())),
        (_, None, _) => {}
    }
    match (spec.trial_id, &site) {
        (None, Some(_)) => return Err(TokenError::SiteWithoutTrial),
        (Some(trial), site) => {
            if trials::load(store, trial).await?.is_none() {
                return Err(TokenError::UnknownTrial(trial.to_string()));
            }
            if let Some(site) = site {
                if !tokens::site_exists(store, trial, site).await? {
                    return Err(TokenError::UnknownSite {
                        trial: trial.to_string(),
                        site: site.clone(),
                    });
                }
            }
        }
        (None, None) => {}
    }
    let lasts = match (spec.expires, is_person(role)) {
        (Expiry::Default, true) => Some(chrono::Duration::days(PEOPLE_DEFAULT_DAYS)),
        (Expiry::Default, false) | (Expiry::Never, false) => None,
        (Expiry::Never, true) => {
            return Err(TokenError::InvalidExpiry(format!(
                "a `{}` token is a person's and must expire (at most {PEOPLE_MAX_DAYS}d)",
                role.as_str()
            )))
        }
        (Expiry::After(d), person) => {
            if person && d > chrono::Duration::days(PEOPLE_MAX_DAYS) {
                return Err(TokenError::InvalidExpiry(format!(
                    "a `{}` token may last at most {PEOPLE_MAX_DAYS}d",
                    role.as_str()
                )));
            }
            Some(d)
        }
    };
    let expires_at = lasts.map(|d| Timestamp::from(chrono::Utc::now() + d).to_string());
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| TokenError::Entropy(e.to_string()))?;
    let token = format!("rrct_{}", hex::encode(secret));
    let grant = TokenGrant {
        token_hash: hash_token(&token),
        role: role.as_str().to_string(),
        trial_id: spec.trial_id.map(str::to_string),
        site_code: site,
        source_id: spec.source_id.map(str::to_string),
        expires_at,
    };
    tokens::insert(store, &grant, actor).await?;
    Ok(token)
}

/// Every token (of one trial, when given), without secrets.
pub async fn list(store: &Store, trial_id: Option<&str>) -> Result<Vec<TokenRecord>, TokenError> {
    Ok(tokens::list(store, trial_id).await?)
}

/// A verified token: who it speaks for and until when.
struct Verified {
    principal: Principal,
    expires_at: Option<Timestamp>,
}

/// Resolve a bearer token to its principal; `None` when unknown, revoked or expired.
pub async fn authenticate(store: &Store, token: &str) -> StoreResult<Option<Principal>> {
    Ok(verify(store, token).await?.map(|v| v.principal))
}

async fn verify(store: &Store, token: &str) -> StoreResult<Option<Verified>> {
    verify_hash(store, &hash_token(token)).await
}

async fn verify_hash(store: &Store, hash: &str) -> StoreResult<Option<Verified>> {
    let Some(grant) = tokens::find(store, hash).await? else {
        return Ok(None);
    };
    let Some(role) = Role::parse(&grant.role) else {
        return Ok(None);
    };
    Ok(Some(Verified {
        expires_at: grant.expires_at.as_deref().and_then(Timestamp::parse),
        principal: Principal {
            role,
            trial_id: grant.trial_id,
            site_code: grant.site_code,
            source_id: grant.source_id,
            actor: format!("token:{}", &hash[..12]),
        },
    }))
}

/// How long a verified token is trusted without asking the database again: a token revoked
/// through another instance (or the command line) stops working at most this long after;
/// one revoked through this instance stops at once.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(10);

/// A verified token as cached: who, when it was verified, until when it is valid.
type Known = (Principal, Instant, Option<Timestamp>);

/// Token verification with a short-lived cache of known tokens, so the enrolment hot path does
/// not read the tokens table on every request. Unknown tokens are never cached: a token
/// created a moment ago works at once.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    known: Arc<Mutex<HashMap<String, Known>>>,
}

impl Authenticator {
    pub fn new(store: Store) -> Self {
        Authenticator {
            store,
            known: Default::default(),
        }
    }

    pub async fn authenticate(&self, token: &str) -> StoreResult<Option<Principal>> {
        self.authenticate_hash(&hash_token(token)).await
    }

    /// As [`Authenticator::authenticate`], for a token known by its hash only (the token a
    /// page session rests on: the session keeps the hash, never the secret).
    pub async fn authenticate_hash(&self, hash: &str) -> StoreResult<Option<Principal>> {
        let hash = hash.to_string();
        let now = Timestamp::now();
        if let Ok(known) = self.known.lock() {
            if let Some((principal, at, expires)) = known.get(&hash) {
                if at.elapsed() < TOKEN_CACHE_TTL && expires.is_none_or(|e| now < e) {
                    return Ok(Some(principal.clone()));
                }
            }
        }
        let found = verify_hash(&self.store, &hash).await?;
        if let (Some(v), Ok(mut known)) = (&found, self.known.lock()) {
            if known.len() > 10_000 {
                known.retain(|_, (_, at, _)| at.elapsed() < TOKEN_CACHE_TTL);
            }
            known.insert(hash, (v.principal.clone(), Instant::now(), v.expires_at));
        }
        Ok(found.map(|v| v.principal))
    }

    /// Forget a token this instance may have cached (after its revocation).
    fn forget(&self, token_hash: &str) {
        if let Ok(mut known) = self.known.lock() {
            known.remove(token_hash);
        }
    }

    /// Revoke a token by its public id: an unscoped administrator any token, a trial-scoped
    /// one only its trial's. It stops working on this instance at once.
    pub async fn revoke(&self, by: &Principal, token_id: &str) -> Result<TokenRecord, TokenError> {
        if by.role != Role::Admin {
            return Err(TokenError::Forbidden(
                "an `admin` token is needed to revoke tokens".into(),
            ));
        }
        revoke_as(&self.store, token_id, by.trial_id.as_deref(), &by.actor)
            .await
            .inspect(|(hash, _)| self.forget(hash))
            .map(|(_, record)| record)
    }
}

/// Revoke the token with this id (of `within_trial` only, when given), recorded as `actor`.
pub async fn revoke(store: &Store, token_id: &str, actor: &str) -> Result<TokenRecord, TokenError> {
    revoke_as(store, token_id, None, actor)
        .await
        .map(|(_, r)| r)
}

async fn revoke_as(
    store: &Store,
    token_id: &str,
    within_trial: Option<&str>,
    actor: &str,
) -> Result<(String, TokenRecord), TokenError> {
    // A token id is 12 lower-case hex digits; nothing else can name one.
    if token_id.len() != 12
        || !token_id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(TokenError::NotFound(token_id.escape_debug().to_string()));
    }
    match tokens::revoke(store, token_id, within_trial, actor).await? {
        Revocation::Revoked { token_hash, record } => Ok((token_hash, record)),
        Revocation::AlreadyRevoked(record) => Err(TokenError::AlreadyRevoked {
            token_id: record.token_id,
            revoked_at: record.revoked_at.unwrap_or_default(),
        }),
        Revocation::NotFound => Err(TokenError::NotFound(token_id.to_string())),
    }
}
