//! A webhook's signing secret: read in the Standard Webhooks form (`whsec_` + base64 of 24 to
//! 64 random bytes), sealed under the server's seed key at rest, opened only to sign.
//!
//! The sealed form is bound (associated data) to the webhook's id, trial, URL and types, so a
//! stored webhook altered to send a trial's events elsewhere, or other events, no longer opens
//! and delivers nothing. The secret's bytes are never formatted: `Debug` says only how long it
//! is, and no error names it.

use std::path::Path;

use base64::Engine;

use crate::service::seed_vault::{self, SeedKey, VaultError};
use crate::store::webhooks::SealedWebhook;

/// The prefix of a Standard Webhooks secret.
pub const PREFIX: &str = "whsec_";
/// The shortest and longest secret accepted, in bytes (the specification's recommended range).
pub const MIN_BYTES: usize = 24;
pub const MAX_BYTES: usize = 64;

/// A webhook's HMAC key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningSecret({} bytes)", self.0.len())
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the secret file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("the secret file {path} {reason}; it must hold one Standard Webhooks secret, `whsec_` followed by the base64 of {MIN_BYTES} to {MAX_BYTES} random bytes")]
    Malformed { path: String, reason: String },
}

impl SigningSecret {
    /// From the text of a secret file: `whsec_` + standard base64 (padded), surrounding
    /// whitespace ignored.
    ///
    /// ```
    /// use rrct::service::webhooks::SigningSecret;
    /// let s = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").unwrap();
    /// assert_eq!(s.as_bytes().len(), 24);
    /// assert!(SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
    /// assert!(SigningSecret::parse("whsec_c2hvcnQ=").is_err()); // 5 bytes
    /// ```
    pub fn parse(text: &str) -> Result<SigningSecret, String> {
        let text = text.trim();
        let encoded = text
            .strip_prefix(PREFIX)
            .ok_or_else(|| "does not start with `whsec_`".to_string())?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| "is not base64 after `whsec_`".to_string())?;
        if !(MIN_BYTES..=MAX_BYTES).contains(&bytes.len()) {
            return Err(format!("holds a {}-byte key", bytes.len()));
        }
        Ok(SigningSecret(bytes))
    }

    /// From a secret file.
    pub fn read_file(path: &Path) -> Result<SigningSecret, SecretError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| SecretError::File {
            path: shown.clone(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|_| SecretError::Malformed {
            path: shown.clone(),
            reason: "is not text".into(),
        })?;
        SigningSecret::parse(&text).map_err(|reason| SecretError::Malformed {
            path: shown,
            reason,
        })
    }

    /// The HMAC key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// What a sealed secret is bound to.
pub(crate) struct Binding<'a> {
    pub webhook_id: &'a str,
    pub trial_id: &'a str,
    pub url: &'a str,
    /// The stored JSON array of types, or `None`.
    pub event_types: Option<&'a str>,
}

impl Binding<'_> {
    fn context(&self) -> Vec<u8> {
        serde_json::json!([
            "rrct/webhook-secret/v1",
            self.webhook_id,
            self.trial_id,
            self.url,
            self.event_types
        ])
        .to_string()
        .into_bytes()
    }

    fn what(&self) -> String {
        format!("the secret of webhook {}", self.webhook_id)
    }
}

/// Seal `secret` for the webhook `binding` describes.
pub(crate) fn seal(
    key: &SeedKey,
    binding: &Binding<'_>,
    secret: &SigningSecret,
) -> Result<Vec<u8>, VaultError> {
    seed_vault::seal_secret(key, &binding.context(), secret.as_bytes())
}

/// Open the sealed secret of the webhook `binding` describes.
pub(crate) fn open(
    key: &SeedKey,
    binding: &Binding<'_>,
    sealed: &[u8],
) -> Result<SigningSecret, VaultError> {
    seed_vault::open_secret(key, &binding.what(), &binding.context(), sealed).map(SigningSecret)
}

/// A stored webhook's secret, opened with `old` and sealed anew under `new` (a key rotation).
pub fn reseal(old: &SeedKey, new: &SeedKey, w: &SealedWebhook) -> Result<Vec<u8>, VaultError> {
    let binding = Binding {
        webhook_id: &w.webhook_id,
        trial_id: &w.trial_id,
        url: &w.url,
        event_types: w.event_types.as_deref(),
    };
    seal(new, &binding, &open(old, &binding, &w.sealed_secret)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn only_the_standard_form_of_a_long_enough_key_is_read() {
        assert_eq!(SigningSecret::parse(SPEC_EXAMPLE).unwrap().0.len(), 24);
        for (text, reason) in [
            ("", "does not start"),
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "does not start"),
            ("whsec_not base64!", "not base64"),
            ("whsec_c2hvcnQ=", "5-byte"),
            (&format!("whsec_{}", "A".repeat(88)), "66-byte"),
        ] {
            let e = SigningSecret::parse(text).unwrap_err();
            assert!(e.contains(reason), "{text}: {e}");
        }
        let s = SigningSecret::parse(SPEC_EXAMPLE).unwrap();
        assert_eq!(format!("{s:?}"), "SigningSecret(24 bytes)");
    }

    #[test]
    fn a_sealed_secret_is_bound_to_its_webhook() {
        let key = SeedKey::generate().unwrap();
        let secret = SigningSecret::parse(SPEC_EXAMPLE).unwrap();
        let b = Binding {
            webhook_id: "wh_1",
            trial_id: "taste",
            url: "https://register.example/hook",
            event_types: None,
        };
        let sealed = seal(&key, &b, &secret).unwrap();
        assert_eq!(open(&key, &b, &sealed).unwrap(), secret);
        let moved = Binding {
            url: "https://elsewhere.example/hook",
            ..b
        };
        assert!(matches!(
            open(&key, &moved, &sealed),
            Err(VaultError::SecretTampered(_))
        ));
        let widened = Binding {
            event_types: Some("[\"rrct.allocation.created\"]"),
            ..moved
        };
        assert!(open(&key, &widened, &sealed).is_err());
    }
}
