//! The pages' sessions: who a browser's session cookie speaks for, until when, and the log of
//! unblinded pages each session opened.
//!
//! The cookie holds an opaque random id (32 bytes from the operating system, hex), never a
//! credential; the database holds only that id's SHA-256, so several `rrct serve` instances
//! share the sessions and a copy of the table opens none. A session ends when it has been idle
//! longer than [`SessionSettings::idle`], at [`SessionSettings::absolute`] after sign-in
//! whatever its use, when its person signs out (the row is deleted), and, for a session from
//! the token form, as soon as that token is revoked or expires. Every sign-in makes a new id
//! and deletes the session the browser came with (no session fixation).
//!
//! This module decides those rules; `store::sessions` only keeps the rows. It never sees an
//! ID token or a bearer token's secret after the sign-in that presented it.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::auth::{Principal, Role};
use super::tokens::{hash_token, Authenticator};
use crate::store::sessions::{self, PageRead, SessionRow};
use crate::store::{Store, StoreResult};

/// When sessions end, and how their cookie is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// A session unused for this long ends.
    pub idle: Duration,
    /// A session ends this long after its sign-in, however busy.
    pub absolute: Duration,
    pub secure_cookie: CookieSecurity,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 60 * 60),
            secure_cookie: CookieSecurity::Auto,
        }
    }
}

/// Whether the session cookie carries `Secure` (sent over HTTPS only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CookieSecurity {
    /// When the TLS-terminating proxy says the request came over HTTPS (`X-Forwarded-Proto`).
    Auto,
    Always,
    /// Plain HTTP on a loopback development set-up only.
    Never,
}

/// A duration as written in the configuration: a whole number with a unit `s`, `m`, `h` or `d`.
///
/// ```
/// use rrct::service::sessions::parse_duration;
/// assert_eq!(parse_duration("30m"), Some(std::time::Duration::from_secs(1800)));
/// assert_eq!(parse_duration("2s"), Some(std::time::Duration::from_secs(2)));
/// assert_eq!(parse_duration("0h"), None);
/// assert_eq!(parse_duration("soon"), None);
/// ```
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let n: u64 = text[..text.len() - unit.len_utf8()]
        .parse()
        .ok()
        .filter(|n| *n > 0 && *n < 1_000_000)?;
    let seconds = match unit {
        's' => n,
        'm' => n * 60,
        'h' => n * 3600,
        'd' => n * 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

/// A person signed in through OpenID Connect, as the ID token named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub issuer: String,
    /// The ID token's `sub`: the issuer's stable id of the person.
    pub subject: String,
    /// The person's name (the configured claim, `name` by default), or the subject.
    pub name: String,
}

impl Person {
    /// How audit entries name the person: subject and name, e.g. `person:199001011234 (Anna Berg)`.
    pub fn actor(&self) -> String {
        format!("person:{} ({})", self.subject, self.name)
    }
}

/// What a new session grants.
pub enum Grant {
    /// A bearer token pasted into the sign-in form, already verified.
    Token { token: String, principal: Principal },
    /// A person signed in through OpenID Connect, with the role their claims map to.
    Person {
        person: Person,
        role: Role,
        trial_id: Option<String>,
        site_code: Option<String>,
    },
}

/// A live session: its reader and, when signed in through OpenID Connect, the person.
#[derive(Debug, Clone)]
pub struct PageSession {
    pub principal: Principal,
    pub person: Option<Person>,
}

/// The session's id as the browser holds it: only ever in the `Set-Cookie` of the sign-in.
pub struct SessionId(pub String);

/// Why a session could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot draw a session id from the operating system's random source: {0}")]
    Entropy(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Who a session is for, as the log names them: the person's subject, or the token's actor.
fn who(row: &SessionRow) -> &str {
    row.subject.as_deref().unwrap_or(&row.actor)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// 32 random bytes from the operating system, hex.
pub fn random_secret() -> Result<String, SessionError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| SessionError::Entropy(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// The sessions of the pages, on the store; cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    store: Store,
    settings: SessionSettings,
}

impl Sessions {
    pub fn new(store: Store, settings: SessionSettings) -> Self {
        Sessions { store, settings }
    }

    pub fn settings(&self) -> SessionSettings {
        self.settings
    }

    /// Start a session for `grant`, ending the one the browser came with (`replacing`, the
    /// value of its session cookie): a sign-in always gets a new id.
    #[tracing::instrument(skip_all, err)]
    pub async fn start(
        &self,
        grant: Grant,
        replacing: Option<&str>,
    ) -> Result<SessionId, SessionError> {
        let id = random_secret()?;
        let now = now_ms();
        let (role, trial_id, site_code, actor, token_hash, person) = match grant {
            Grant::Token { token, principal } => (
                principal.role,
                principal.trial_id,
                principal.site_code,
                principal.actor,
                Some(hash_token(&token)),
                None,
            ),
            Grant::Person {
                person,
                role,
                trial_id,
                site_code,
            } => (
                role,
                trial_id,
                site_code,
                person.actor(),
                None,
                Some(person),
            ),
        };
        let row = SessionRow {
            id_hash: hash(&id),
            role: role.as_str().to_string(),
            trial_id,
            site_code,
            actor,
            token_hash,
            issuer: person.as_ref().map(|p| p.issuer.clone()),
            subject: person.as_ref().map(|p| p.subject.clone()),
            person_name: person.map(|p| p.name),
            created_ms: now,
            last_seen_ms: now,
            expires_ms: now.saturating_add(millis(self.settings.absolute)),
        };
        let replacing = replacing.map(hash);
        sessions::insert(
            &self.store,
            &row,
            replacing.as_deref(),
            now - millis(self.settings.idle),
        )
        .await?;
        // The log names a person by subject only (their name stays in the database).
        tracing::info!(who = %who(&row), role = %row.role, "page session started");
        Ok(SessionId(id))
    }

    /// The live session a cookie value names, marked as used now; `None` when there is none
    /// (never was, signed out, idle too long, past its lifetime, or its token revoked). An
    /// ended session is deleted as it is found.
    pub async fn resolve(
        &self,
        auth: &Authenticator,
        cookie: &str,
    ) -> StoreResult<Option<PageSession>> {
        let id_hash = hash(cookie);
        let Some(row) = sessions::find(&self.store, &id_hash).await? else {
            return Ok(None);
        };
        let now = now_ms();
        let idle = now - row.last_seen_ms > millis(self.settings.idle);
        if idle || now >= row.expires_ms {
            sessions::delete(&self.store, &id_hash).await?;
            tracing::info!(
                who = %who(&row),
                reason = if idle { "idle" } else { "lifetime" },
                "page session ended"
            );
            return Ok(None);
        }
        let principal = match &row.token_hash {
            Some(token_hash) => match auth.authenticate_hash(token_hash).await? {
                Some(p) => p,
                None => {
                    sessions::delete(&self.store, &id_hash).await?;
                    return Ok(None);
                }
            },
            None => {
                let Some(role) = Role::parse(&row.role) else {
                    return Ok(None);
                };
                Principal {
                    role,
                    trial_id: row.trial_id.clone(),
                    site_code: row.site_code.clone(),
                    source_id: None,
                    actor: row.actor.clone(),
                }
            }
        };
        sessions::touch(&self.store, &id_hash, now).await?;
        let person = match (row.issuer, row.subject) {
            (Some(issuer), Some(subject)) => Some(Person {
                name: row.person_name.unwrap_or_else(|| subject.clone()),
                issuer,
                subject,
            }),
            _ => None,
        };
        Ok(Some(PageSession { principal, person }))
    }

    /// End the session a cookie value names; the person it was for, when there was one.
    pub async fn end(&self, cookie: &str) -> StoreResult<Option<SessionRow>> {
        let id_hash = hash(cookie);
        let found = sessions::find(&self.store, &id_hash).await?;
        if found.is_some() && sessions::delete(&self.store, &id_hash).await? {
            if let Some(row) = &found {
                tracing::info!(who = %who(row), "page session signed out");
            }
        }
        Ok(found)
    }

    /// Log that this session opened the trial's unblinded page at `cutoff`. The page must not
    /// be shown when this fails.
    pub async fn log_unblinded_read(
        &self,
        session: &PageSession,
        trial_id: &str,
        cutoff: &str,
    ) -> StoreResult<()> {
        sessions::log_read(
            &self.store,
            &PageRead {
                read_at: String::new(),
                trial_id: trial_id.to_string(),
                cutoff: cutoff.to_string(),
                role: session.principal.role.as_str().to_string(),
                actor: session.principal.actor.clone(),
                subject: session.person.as_ref().map(|p| p.subject.clone()),
                person_name: session.person.as_ref().map(|p| p.name.clone()),
            },
        )
        .await
    }
}

/// Who opened a trial's unblinded pages, oldest first.
pub async fn unblinded_reads(store: &Store, trial_id: &str) -> StoreResult<Vec<PageRead>> {
    sessions::reads(store, trial_id).await
}

/// Every stored session (what the database keeps of them: hashes and grants, no secrets).
pub async fn stored(store: &Store) -> StoreResult<Vec<SessionRow>> {
    sessions::all(store).await
}
