//! Webhooks: HTTP endpoints a trial's outbox records are sent to, as CloudEvents signed the
//! Standard Webhooks way.
//!
//! This module owns registration (`rrct webhook add|list|remove`): a webhook belongs to one
//! existing trial, posts to an `http`/`https` URL (no credentials in it: the signature is the
//! authentication), and optionally takes only some of the outbound types. Its secret is sealed
//! under the server's seed key (see [`secret`]), and no audit entry, listing, log line or error
//! ever carries it. [`delivery`] sends the records. Blinding is not decided here: every event
//! is built by [`crate::outbound::cloud_event`] with the trial's masking, as for the bus.

pub mod delivery;
pub mod secret;

pub use delivery::{spawn_delivery, DeliveryOptions};
pub use secret::{SecretError, SigningSecret};

use super::error::{Code, CodedError};
use super::seed_vault::{SeedKey, VaultError};
use crate::outbound;
pub use crate::store::webhooks::WebhookRecord;
use crate::store::webhooks::{self as stored, NewWebhook, Removal};
use crate::store::{trials, Store, StoreError};

/// Why a webhook could not be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no trial `{0}` in this database; register its protocol first")]
    UnknownTrial(String),
    #[error("the URL `{url}` {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("unknown event type `{0}`: expected one of {types}", types = outbound::TYPES.join(", "))]
    UnknownType(String),
    #[error("--types names no type: give one or more of {types}, or leave it out for all", types = outbound::TYPES.join(", "))]
    NoTypes,
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("no webhook `{0}`")]
    NotFound(String),
    #[error("webhook `{webhook_id}` was already removed on {removed_at}")]
    AlreadyRemoved {
        webhook_id: String,
        removed_at: String,
    },
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CodedError for WebhookError {
    fn code(&self) -> Code {
        match self {
            WebhookError::UnknownTrial(_) => Code::TrialNotFound,
            WebhookError::NotFound(_) => Code::NotFound,
            WebhookError::Store(e) => e.code(),
            WebhookError::Vault(_) => Code::Internal,
            _ => Code::InvalidRequest,
        }
    }

    fn public_message(&self) -> String {
        match self {
            WebhookError::Store(e) => e.public_message(),
            other => other.to_string(),
        }
    }
}

/// A webhook to register.
pub struct WebhookSpec<'a> {
    pub trial_id: &'a str,
    pub url: &'a str,
    pub secret: SigningSecret,
    /// Outbound types to send; `None` for all.
    pub types: Option<&'a [String]>,
}

/// A webhook URL: `http` or `https`, with a host, without credentials or a fragment.
///
/// ```
/// use rrct::service::webhooks::parse_url;
/// assert_eq!(parse_url("https://register.example/rrct").unwrap(), "https://register.example/rrct");
/// assert!(parse_url("ftp://register.example/").is_err());
/// assert!(parse_url("https://user:pw@register.example/").is_err());
/// ```
pub fn parse_url(text: &str) -> Result<String, WebhookError> {
    let invalid = |reason: &str| WebhookError::InvalidUrl {
        url: text.escape_debug().to_string(),
        reason: reason.to_string(),
    };
    if text.trim() != text || text.is_empty() {
        return Err(invalid("must be given without surrounding whitespace"));
    }
    let url = reqwest::Url::parse(text).map_err(|e| invalid(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "carries credentials; a webhook is authenticated by its signature, so leave them out",
        ));
    }
    if url.fragment().is_some() {
        return Err(invalid("has a fragment (#...), which is never sent"));
    }
    Ok(url.to_string())
}

/// The outbound types of a `--types` list (comma-separated), each checked, in
/// [`outbound::TYPES`] order without repeats.
///
/// ```
/// use rrct::service::webhooks::parse_types;
/// assert_eq!(
///     parse_types("rrct.trial.status_changed, rrct.allocation.created").unwrap(),
///     ["rrct.allocation.created", "rrct.trial.status_changed"]
/// );
/// assert!(parse_types("rrct.allocation.made").is_err());
/// ```
pub fn parse_types(text: &str) -> Result<Vec<String>, WebhookError> {
    let named: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if named.is_empty() {
        return Err(WebhookError::NoTypes);
    }
    if let Some(unknown) = named.iter().find(|t| !outbound::TYPES.contains(t)) {
        return Err(WebhookError::UnknownType(
            unknown.escape_debug().to_string(),
        ));
    }
    Ok(outbound::TYPES
        .iter()
        .filter(|t| named.contains(t))
        .map(|t| t.to_string())
        .collect())
}

/// Register a webhook; returns its id. It receives the trial's records committed from now on.
#[tracing::instrument(skip_all, fields(trial = %spec.trial_id), err)]
pub async fn add(
    store: &Store,
    key: &SeedKey,
    spec: WebhookSpec<'_>,
    actor: &str,
) -> Result<String, WebhookError> {
    let url = parse_url(spec.url)?;
    let event_types = match spec.types {
        None => None,
        Some(types) => {
            let checked = parse_types(&types.join(","))?;
            Some(serde_json::Value::from(checked).to_string())
        }
    };
    if trials::load(store, spec.trial_id).await?.is_none() {
        return Err(WebhookError::UnknownTrial(
            spec.trial_id.escape_debug().to_string(),
        ));
    }
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| VaultError::Entropy(e.to_string()))?;
    let webhook_id = format!("wh_{}", hex::encode(random));
    let sealed_secret = secret::seal(
        key,
        &secret::Binding {
            webhook_id: &webhook_id,
            trial_id: spec.trial_id,
            url: &url,
            event_types: event_types.as_deref(),
        },
        &spec.secret,
    )?;
    stored::insert(
        store,
        &NewWebhook {
            webhook_id: webhook_id.clone(),
            trial_id: spec.trial_id.to_string(),
            url,
            sealed_secret,
            event_types,
        },
        actor,
    )
    .await?;
    Ok(webhook_id)
}

/// Every webhook (of one trial, when given), removed ones too, with its delivery state; never
/// a secret.
pub async fn list(
    store: &Store,
    trial_id: Option<&str>,
) -> Result<Vec<WebhookRecord>, WebhookError> {
    Ok(stored::list(store, trial_id).await?)
}

/// Remove a webhook: nothing more is sent to it and its secret is erased.
pub async fn remove(
    store: &Store,
    webhook_id: &str,
    actor: &str,
) -> Result<WebhookRecord, WebhookError> {
    match stored::remove(store, webhook_id, actor).await? {
        Removal::Removed(record) => Ok(record),
        Removal::AlreadyRemoved(record) => Err(WebhookError::AlreadyRemoved {
            webhook_id: record.webhook_id,
            removed_at: record.removed_at.unwrap_or_default(),
        }),
        Removal::NotFound => Err(WebhookError::NotFound(
            webhook_id.escape_debug().to_string(),
        )),
    }
}
