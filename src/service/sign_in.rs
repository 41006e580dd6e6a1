//! Signing people in to the pages: the sign-in configuration file, and OpenID Connect's
//! authorisation code flow with PKCE against the configured issuer.
//!
//! The flow, and what each step guards against:
//! 1. [`RelyingParty::begin`] draws a `state`, a `nonce` and a PKCE verifier, stores them
//!    (keyed by the state's hash, with the hash of a random value the browser keeps in a
//!    short-lived cookie) and sends the browser to the issuer's authorisation endpoint.
//! 2. [`RelyingParty::finish`] takes the stored attempt by the returned `state` (once: a
//!    replayed callback finds nothing), checks that the same browser started it, exchanges the
//!    code with the PKCE verifier and the client secret, and validates the ID token with
//!    `openidconnect`: signature against the issuer's published keys (JWKS), issuer, audience,
//!    expiry and the nonce. A code the issuer already redeemed is refused by the issuer.
//! 3. The person's role, trial and site come from the configured claim ([`RoleMapping`]); a
//!    person whose claim maps to no role gets [`SignInError::NoRole`] and no session — never
//!    a default role.
//!
//! Nothing here logs or stores a token: the ID and access tokens are dropped once read.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreResponseType,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthenticationFlow, AuthorizationCode, Client, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields,
    IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadataWithLogout, RedirectUrl,
    Scope, StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth::Role;
use super::sessions::{parse_duration, random_secret, CookieSecurity, Person, SessionSettings};
use crate::identity;
use crate::store::sessions::{self as stored, AttemptRow};
use crate::store::{Store, StoreError};

/// How long a person has to sign in at the issuer once sent there.
pub const ATTEMPT_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// How long the issuer's discovery document and keys are used before they are read again
/// (the issuer may rotate its keys).
const DISCOVERY_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// The sign-in configuration file (`rrct serve --sign-in FILE`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    sessions: RawSessions,
    oidc: Option<RawOidc>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSessions {
    idle_timeout: Option<String>,
    absolute_lifetime: Option<String>,
    secure_cookie: Option<CookieSecurity>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidc {
    issuer: String,
    client_id: String,
    client_secret_file: PathBuf,
    redirect_url: String,
    post_logout_redirect_url: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    roles_claim: String,
    #[serde(default = "default_name_claim")]
    name_claim: String,
    #[serde(default)]
    roles: Vec<RawRole>,
}

fn default_name_claim() -> String {
    "name".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    value: String,
    role: String,
    trial: Option<String>,
    site: Option<String>,
}

/// The sign-in configuration: sessions' timeouts, and the issuer people sign in with. The
/// default: sessions with the default timeouts, sign-in with a token only.
#[derive(Debug, Clone, Default)]
pub struct SignInConfig {
    pub sessions: SessionSettings,
    pub oidc: Option<OidcConfig>,
}

/// The issuer and this client's registration with it.
#[derive(Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    client_secret: String,
    /// This server's `/auth/callback` as registered with the issuer.
    pub redirect_url: String,
    /// Where the issuer sends the browser back after signing out (default: this server's `/`).
    pub post_logout_redirect_url: String,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    pub roles: RoleMapping,
    /// The claim holding the person's name.
    pub name_claim: String,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("redirect_url", &self.redirect_url)
            .finish_non_exhaustive()
    }
}

/// Why the sign-in configuration was refused.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

/// What one value of the role claim grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGrant {
    pub value: String,
    pub role: Role,
    pub trial_id: Option<String>,
    pub site_code: Option<String>,
}

/// From the configured claim of an ID token to a role and scope: the first grant, in the
/// order written, whose value the claim holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleMapping {
    pub claim: String,
    pub grants: Vec<RoleGrant>,
}

impl RoleMapping {
    /// The grant for a person whose role claim holds `values`.
    pub fn grant(&self, values: &[String]) -> Option<&RoleGrant> {
        self.grants.iter().find(|g| values.contains(&g.value))
    }
}

impl SignInConfig {
    /// Read and check the configuration file; the client secret is read from its own file
    /// (relative paths from the configuration file's directory).
    pub fn load(path: &Path) -> Result<SignInConfig, ConfigError> {
        let fail = |message: String| ConfigError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let defaults = SessionSettings::default();
        let duration = |field: &str, text: &Option<String>, default: Duration| {
            match text {
            None => Ok(default),
            Some(t) => parse_duration(t).ok_or_else(|| {
                fail(format!(
                    "[sessions] {field} `{t}` must be a whole number with a unit s, m, h or d (e.g. 30m)"
                ))
            }),
        }
        };
        let sessions = SessionSettings {
            idle: duration("idle_timeout", &raw.sessions.idle_timeout, defaults.idle)?,
            absolute: duration(
                "absolute_lifetime",
                &raw.sessions.absolute_lifetime,
                defaults.absolute,
            )?,
            secure_cookie: raw.sessions.secure_cookie.unwrap_or(defaults.secure_cookie),
        };
        if sessions.idle > sessions.absolute {
            return Err(fail(
                "[sessions] idle_timeout is longer than absolute_lifetime".into(),
            ));
        }
        let oidc = match raw.oidc {
            None => None,
            Some(o) => Some(oidc_config(o, path).map_err(fail)?),
        };
        Ok(SignInConfig { sessions, oidc })
    }
}

fn oidc_config(raw: RawOidc, path: &Path) -> Result<OidcConfig, String> {
    IssuerUrl::new(raw.issuer.clone()).map_err(|e| format!("[oidc] issuer: {e}"))?;
    RedirectUrl::new(raw.redirect_url.clone()).map_err(|e| format!("[oidc] redirect_url: {e}"))?;
    if raw.client_id.trim().is_empty() {
        return Err("[oidc] client_id is empty".into());
    }
    let secret_path = match raw.client_secret_file.is_absolute() {
        true => raw.client_secret_file.clone(),
        false => path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&raw.client_secret_file),
    };
    let client_secret = std::fs::read_to_string(&secret_path)
        .map_err(|e| format!("[oidc] client_secret_file {}: {e}", secret_path.display()))?
        .trim()
        .to_string();
    if client_secret.is_empty() {
        return Err(format!(
            "[oidc] client_secret_file {} is empty",
            secret_path.display()
        ));
    }
    let post_logout_redirect_url = match raw.post_logout_redirect_url {
        Some(u) => u,
        None => {
            let mut u = openidconnect::url::Url::parse(&raw.redirect_url)
                .map_err(|e| format!("[oidc] redirect_url: {e}"))?;
            u.set_path("/");
            u.set_query(None);
            u.to_string()
        }
    };
    if raw.roles.is_empty() {
        return Err("[oidc] no [[oidc.roles]]: nobody could sign in".into());
    }
    let mut grants = Vec::new();
    for (i, r) in raw.roles.iter().enumerate() {
        let at = format!("[[oidc.roles]] #{} (value `{}`)", i + 1, r.value);
        let role =
            Role::parse(&r.role).ok_or_else(|| format!("{at}: unknown role `{}`", r.role))?;
        if matches!(role, Role::Register | Role::Source) {
            return Err(format!(
                "{at}: a `{}` token is a machine's; people sign in as admin, sponsor, \
                 statistician, dsmb, auditor or unblinder",
                r.role
            ));
        }
        if r.site.is_some() && r.trial.is_none() {
            return Err(format!("{at}: a site needs a trial too"));
        }
        let site_code = r
            .site
            .as_deref()
            .map(|s| identity::canonical_id(s).map_err(|e| format!("{at}: site {e}")))
            .transpose()?;
        grants.push(RoleGrant {
            value: r.value.clone(),
            role,
            trial_id: r.trial.clone(),
            site_code,
        });
    }
    Ok(OidcConfig {
        issuer: raw.issuer,
        client_id: raw.client_id,
        client_secret,
        redirect_url: raw.redirect_url,
        post_logout_redirect_url,
        scopes: raw.scopes,
        roles: RoleMapping {
            claim: raw.roles_claim,
            grants,
        },
        name_claim: raw.name_claim,
    })
}

/// The ID token's claims beyond the standard ones (the role claim among them).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(transparent)]
struct OtherClaims(serde_json::Map<String, serde_json::Value>);
impl AdditionalClaims for OtherClaims {}

type IdFields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type Tokens = StandardTokenResponse<IdFields, CoreTokenType>;
type RpClient = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The issuer as discovered.
struct Discovered {
    at: Instant,
    client: RpClient,
    end_session: Option<String>,
}

/// Why a sign-in through OpenID Connect failed. Each says what the person can do; none
/// carries a token.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("this sign-in is unknown, was already used, or took too long; start again")]
    UnknownAttempt,
    #[error("this sign-in was started in another browser; start again")]
    OtherBrowser,
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    #[error("the identity provider did not accept the sign-in's code: {0}")]
    Exchange(String),
    #[error("the identity provider's ID token was refused: {0}")]
    IdToken(String),
    #[error("no role in rrct is mapped to subject {}", .0.subject)]
    NoRole(Person),
    #[error("the identity provider cannot be reached: {0}")]
    Unreachable(String),
    #[error("cannot draw a random value: {0}")]
    Entropy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A sign-in begun: where to send the browser, and the value its sign-in cookie keeps.
pub struct Begun {
    pub authorize_url: String,
    pub browser_secret: String,
}

/// A person signed in, with the grant their claims map to.
#[derive(Debug, Clone)]
pub struct SignedInPerson {
    pub person: Person,
    pub grant: RoleGrant,
}

fn hash(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Printable text of at most `max` characters (names and subjects go into audit entries and
/// logs).
fn printable(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect::<String>()
        .trim()
        .to_string()
}

/// This server as an OpenID Connect relying party of the configured issuer.
pub struct RelyingParty {
    config: OidcConfig,
    http: openidconnect::reqwest::Client,
    discovered: tokio::sync::Mutex<Option<Arc<Discovered>>>,
}

impl RelyingParty {
    pub fn new(config: OidcConfig) -> Result<RelyingParty, SignInError> {
        let http = openidconnect::reqwest::ClientBuilder::new()
            // Following redirects would let a response send these requests elsewhere.
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SignInError::Unreachable(e.to_string()))?;
        Ok(RelyingParty {
            config,
            http,
            discovered: Default::default(),
        })
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The issuer's discovery document and keys, read at most every [`DISCOVERY_LIFETIME`].
    async fn discovered(&self, fresh: bool) -> Result<Arc<Discovered>, SignInError> {
        let mut slot = self.discovered.lock().await;
        if let Some(d) = slot.as_ref() {
            if !fresh && d.at.elapsed() < DISCOVERY_LIFETIME {
                return Ok(d.clone());
            }
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| SignInError::Unreachable(e.to_string()))?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| SignInError::Unreachable(error_chain(&e)))?;
        let end_session = metadata
            .additional_metadata()
            .end_session_endpoint
            .as_ref()
            .map(|u| u.url().to_string());
        let client = RpClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.config.client_secret.clone())),
        )
        .set_redirect_uri(
            RedirectUrl::new(self.config.redirect_url.clone())
                .map_err(|e| SignInError::Unreachable(e.to_string()))?,
        );
        let d = Arc::new(Discovered {
            at: Instant::now(),
            client,
            end_session,
        });
        *slot = Some(d.clone());
        Ok(d)
    }

    /// Begin a sign-in: the attempt stored, the issuer's URL to send the browser to.
    #[tracing::instrument(skip_all, err)]
    pub async fn begin(&self, store: &Store) -> Result<Begun, SignInError> {
        let d = self.discovered(false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = d
            .client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in &self.config.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        let browser_secret = random_secret().map_err(|e| SignInError::Entropy(e.to_string()))?;
        let now = now_ms();
        stored::insert_attempt(
            store,
            &AttemptRow {
                state_hash: hash(state.secret()),
                browser_hash: hash(&browser_secret),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                created_ms: now,
            },
            now - ATTEMPT_LIFETIME.as_millis() as i64,
        )
        .await?;
        Ok(Begun {
            authorize_url: url.to_string(),
            browser_secret,
        })
    }

    /// Finish a sign-in from the issuer's callback: `state` and `code` as returned, and the
    /// value of the browser's sign-in cookie.
    #[tracing::instrument(skip_all, err)]
    pub async fn finish(
        &self,
        store: &Store,
        state: &str,
        code: &str,
        browser_secret: Option<&str>,
    ) -> Result<SignedInPerson, SignInError> {
        let attempt = stored::take_attempt(store, &hash(state))
            .await?
            .ok_or(SignInError::UnknownAttempt)?;
        if now_ms() - attempt.created_ms > ATTEMPT_LIFETIME.as_millis() as i64 {
            return Err(SignInError::UnknownAttempt);
        }
        // Both are SHA-256 hex of secrets: comparing them leaks nothing of the secret.
        if browser_secret.map(hash).as_deref() != Some(attempt.browser_hash.as_str()) {
            return Err(SignInError::OtherBrowser);
        }
        let d = self.discovered(false).await?;
        let tokens = d
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| SignInError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(attempt.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| SignInError::Exchange(token_error(&e)))?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| SignInError::IdToken("the token response holds no ID token".into()))?;
        let nonce = Nonce::new(attempt.nonce);
        let verified = id_token.claims(&d.client.id_token_verifier(), &nonce);
        let claims = match verified {
            Ok(claims) => claims.clone(),
            Err(e) => {
                // The issuer may have rotated its keys since they were read: read them again
                // once, and verify again with those.
                let fresh = self.discovered(true).await?;
                let claims = id_token
                    .claims(&fresh.client.id_token_verifier(), &nonce)
                    .map_err(|_| SignInError::IdToken(error_chain(&e)))?
                    .clone();
                claims
            }
        };
        let subject = printable(claims.subject().as_str(), 255);
        let other = &claims.additional_claims().0;
        let name = match self.config.name_claim.as_str() {
            "name" => claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_string()),
            claim => other
                .get(claim)
                .and_then(|v| v.as_str())
                .map(str::to_string),
        }
        .map(|n| printable(&n, 200))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| subject.clone());
        let person = Person {
            issuer: claims.issuer().as_str().to_string(),
            subject,
            name,
        };
        let values = claim_values(other.get(&self.config.roles.claim));
        match self.config.roles.grant(&values) {
            Some(grant) => {
                tracing::info!(subject = %person.subject, role = grant.role.as_str(), "signed in through OpenID Connect");
                Ok(SignedInPerson {
                    person,
                    grant: grant.clone(),
                })
            }
            None => {
                tracing::warn!(subject = %person.subject, "signed in at the issuer, but no role is mapped");
                Err(SignInError::NoRole(person))
            }
        }
    }

    /// Where to send the browser to sign out at the issuer too, when it offers RP-initiated
    /// logout (`end_session_endpoint`).
    pub async fn logout_url(&self) -> Option<String> {
        let d = self.discovered(false).await.ok()?;
        let mut url = openidconnect::url::Url::parse(d.end_session.as_deref()?).ok()?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.config.client_id)
            .append_pair(
                "post_logout_redirect_uri",
                &self.config.post_logout_redirect_url,
            );
        Some(url.to_string())
    }
}

/// The strings of a claim: a list of strings, or one string.
fn claim_values(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// An error and its causes, in one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// A token endpoint's refusal, by its OAuth error code (the body is not repeated: it could
/// hold anything).
fn token_error<RE: std::error::Error + 'static>(
    e: &openidconnect::RequestTokenError<RE, StandardErrorResponse<CoreErrorResponseType>>,
) -> String {
    match e {
        openidconnect::RequestTokenError::ServerResponse(r) => r.error().as_ref().to_string(),
        other => error_chain(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_grant_written_wins_and_unmapped_get_none() {
        let mapping = RoleMapping {
            claim: "groups".into(),
            grants: vec![
                RoleGrant {
                    value: "dsmb".into(),
                    role: Role::Dsmb,
                    trial_id: Some("taste".into()),
                    site_code: None,
                },
                RoleGrant {
                    value: "sponsor".into(),
                    role: Role::Sponsor,
                    trial_id: None,
                    site_code: None,
                },
            ],
        };
        let values = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            mapping.grant(&values(&["sponsor", "dsmb"])).unwrap().role,
            Role::Dsmb
        );
        assert_eq!(
            mapping.grant(&values(&["sponsor"])).unwrap().role,
            Role::Sponsor
        );
        assert!(mapping.grant(&values(&["staff"])).is_none());
        assert!(mapping.grant(&[]).is_none());
        assert_eq!(
            claim_values(Some(&serde_json::json!("dsmb"))),
            vec!["dsmb".to_string()]
        );
        assert_eq!(
            claim_values(Some(&serde_json::json!(["a", 1, "b"]))),
            vec!["a".to_string(), "b".to_string()]
        );
    }

    #[test]
    fn configuration_errors_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "s3cret\n").unwrap();
        let write = |text: &str| {
            let path = dir.path().join("sign-in.toml");
            std::fs::write(&path, text).unwrap();
            SignInConfig::load(&path)
        };
        let oidc = |roles: &str| {
            format!(
                "[oidc]\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"rrct\"\n\
                 client_secret_file = \"secret\"\nredirect_url = \"http://127.0.0.1:8/auth/callback\"\n\
                 roles_claim = \"groups\"\n{roles}"
            )
        };
        let ok = write(&oidc(
            "[[oidc.roles]]\nvalue = \"g\"\nrole = \"dsmb\"\ntrial = \"taste\"\n",
        ))
        .unwrap();
        let o = ok.oidc.unwrap();
        assert_eq!(o.post_logout_redirect_url, "http://127.0.0.1:8/");
        assert!(!format!("{o:?}").contains("s3cret"));
        assert_eq!(ok.sessions, SessionSettings::default());
        let err = |text: &str| write(text).unwrap_err().message;
        assert!(err(&oidc("")).contains("no [[oidc.roles]]"));
        assert!(
            err(&oidc("[[oidc.roles]]\nvalue = \"g\"\nrole = \"boss\"\n"))
                .contains("unknown role `boss`")
        );
        assert!(err(&oidc(
            "[[oidc.roles]]\nvalue = \"g\"\nrole = \"register\"\n"
        ))
        .contains("machine"));
        assert!(err(&oidc(
            "[[oidc.roles]]\nvalue = \"g\"\nrole = \"sponsor\"\nsite = \"01\"\n"
        ))
        .contains("a site needs a trial"));
        assert!(err("[sessions]\nidle_timeout = \"soon\"\n").contains("idle_timeout `soon`"));
        assert!(
            err("[sessions]\nidle_timeout = \"2h\"\nabsolute_lifetime = \"1h\"\n")
                .contains("longer than absolute_lifetime")
        );
        assert!(err("[sessions]\nidel_timeout = \"2h\"\n").contains("idel_timeout"));
    }
}
