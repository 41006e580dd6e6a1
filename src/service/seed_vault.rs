//! Trials' master seeds at rest: sealed with a key kept apart from the database, so a copy of
//! the database (a backup, a stolen file) cannot predict a single allocation.
//!
//! A seed is sealed with XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`): a random 24-byte
//! nonce per seal, the trial id as associated data (a sealed seed moved to another trial does
//! not open), and the key's id in the clear so that a wrong key is named as such. Stored:
//! `rrct-seed-v1` · key id (8 bytes) · nonce (24) · ciphertext and tag (48).
//!
//! The key is 32 random bytes written as 64 hex digits, read from the file named by
//! `--seed-key-file` or `RRCT_SEED_KEY_FILE`, or from `RRCT_SEED_KEY` itself. `rrct seeds
//! new-key` makes one; `rrct seeds rotate-key` re-seals every seed under a new one.
//!
//! Other secrets the server must use but a database copy must not reveal (webhooks' signing
//! secrets) are sealed under the same key with [`seal_secret`]: their own tag, and the
//! caller's context as associated data.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::randomise::MasterSeed;

/// Names the key file.
pub const SEED_KEY_FILE_ENV: &str = "RRCT_SEED_KEY_FILE";
/// Holds the key itself (64 hex digits).
pub const SEED_KEY_ENV: &str = "RRCT_SEED_KEY";

const MAGIC: &[u8; 12] = b"rrct-seed-v1";
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
const SEALED_LEN: usize = MAGIC.len() + KEY_ID_LEN + NONCE_LEN + 32 + 16;

/// The key seeds are sealed with.
#[derive(Clone)]
pub struct SeedKey {
    key: [u8; 32],
    id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for SeedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SeedKey({})", self.id_hex())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "no seed key: master seeds are kept encrypted with a key apart from the database; give \
         --seed-key-file FILE (or set {SEED_KEY_FILE_ENV} or {SEED_KEY_ENV}); `rrct seeds \
         new-key --out FILE` makes one"
    )]
    NoKey,
    #[error("the seed key {0}")]
    BadKey(String),
    #[error("cannot read the seed key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the master seed of `{trial}` is sealed with key {stored}, not with the key given ({given})"
    )]
    WrongKey {
        trial: String,
        stored: String,
        given: String,
    },
    #[error("the sealed master seed of `{0}` does not open: altered, or moved from another trial")]
    Tampered(String),
    #[error("the stored master seed of `{0}` is neither a sealed seed nor a 32-byte seed")]
    Unreadable(String),
    #[error("cannot draw randomness from the operating system: {0}")]
    Entropy(String),
    #[error("{what} is sealed with key {stored}, not with the key given ({given})")]
    SecretWrongKey {
        what: String,
        stored: String,
        given: String,
    },
    #[error("{0} does not open: altered, moved, or not a sealed secret")]
    SecretTampered(String),
}

impl SeedKey {
    /// A fresh key from the operating system.
    pub fn generate() -> Result<SeedKey, VaultError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| VaultError::Entropy(e.to_string()))?;
        Ok(SeedKey::from_bytes(key))
    }

    fn from_bytes(key: [u8; 32]) -> SeedKey {
        let digest = Sha256::new()
            .chain_update(b"rrct/seed-key-id/v1\0")
            .chain_update(key)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        SeedKey { key, id }
    }

    /// From 64 hex digits (surrounding whitespace ignored).
    ///
    /// ```
    /// use rrct::service::seed_vault::SeedKey;
    /// let key = SeedKey::from_hex(&"ab".repeat(32)).unwrap();
    /// assert_eq!(SeedKey::from_hex(&key.to_hex()).unwrap().id_hex(), key.id_hex());
    /// assert!(SeedKey::from_hex("abc").is_err());
    /// ```
    pub fn from_hex(text: &str) -> Result<SeedKey, VaultError> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| VaultError::BadKey("is not hexadecimal".into()))?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            VaultError::BadKey(format!(
                "has {} bytes; it must have 32 (64 hex digits)",
                b.len()
            ))
        })?;
        Ok(SeedKey::from_bytes(key))
    }

    /// From a key file.
    pub fn read_file(path: &Path) -> Result<SeedKey, VaultError> {
        let text = std::fs::read_to_string(path).map_err(|source| VaultError::KeyFile {
            path: path.display().to_string(),
            source,
        })?;
        SeedKey::from_hex(&text)
    }

    /// From `file` when given, else from [`SEED_KEY_FILE_ENV`] or [`SEED_KEY_ENV`]; `None`
    /// when none is set.
    pub fn configured(file: Option<&Path>) -> Result<Option<SeedKey>, VaultError> {
        if let Some(file) = file {
            return SeedKey::read_file(file).map(Some);
        }
        if let Some(file) = std::env::var_os(SEED_KEY_FILE_ENV).filter(|f| !f.is_empty()) {
            return SeedKey::read_file(Path::new(&file)).map(Some);
        }
        match std::env::var(SEED_KEY_ENV) {
            Ok(text) if !text.is_empty() => SeedKey::from_hex(&text).map(Some),
            _ => Ok(None),
        }
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.key)
    }

    /// The key's public id (16 hex digits), stored beside each seal and shown in messages.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// Write the key to a new file readable by its owner only.
    pub fn write_new_file(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        writeln!(file, "{}", self.to_hex())
    }
}

/// Seal `seed` for `trial`.
pub fn seal(key: &SeedKey, trial: &str, seed: &MasterSeed) -> Result<Vec<u8>, VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| VaultError::Entropy(e.to_string()))?;
    let cipher = XChaCha20Poly1305::new((&key.key).into());
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: seed.as_bytes(),
                aad: trial.as_bytes(),
            },
        )
        .map_err(|_| VaultError::Tampered(trial.to_string()))?;
    let mut out = Vec::with_capacity(SEALED_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&key.id);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// What a stored seed is.
pub enum Stored {
    Sealed(MasterSeed),
    /// Written before seeds were sealed: 32 plain bytes, to be sealed now.
    Plain(MasterSeed),
}

/// Open a stored seed of `trial`.
pub fn open(key: &SeedKey, trial: &str, stored: &[u8]) -> Result<Stored, VaultError> {
    if stored.len() == 32 {
        return MasterSeed::from_slice(stored)
            .map(Stored::Plain)
            .ok_or_else(|| VaultError::Unreadable(trial.to_string()));
    }
    if stored.len() != SEALED_LEN || !stored.starts_with(MAGIC) {
        return Err(VaultError::Unreadable(trial.to_string()));
    }
    let (id, rest) = stored[MAGIC.len()..].split_at(KEY_ID_LEN);
    if id != key.id {
        return Err(VaultError::WrongKey {
            trial: trial.to_string(),
            stored: hex::encode(id),
            given: key.id_hex(),
        });
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let plain = XChaCha20Poly1305::new((&key.key).into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: trial.as_bytes(),
            },
        )
        .map_err(|_| VaultError::Tampered(trial.to_string()))?;
    MasterSeed::from_slice(&plain)
        .map(Stored::Sealed)
        .ok_or_else(|| VaultError::Unreadable(trial.to_string()))
}

/// Tag of a sealed secret other than a seed.
const SECRET_MAGIC: &[u8; 12] = b"rrct-secret1";

/// Seal a secret other than a seed (`context`, the associated data, says whose it is and
/// what it is bound to). Stored: tag · key id · nonce · ciphertext and tag.
pub fn seal_secret(key: &SeedKey, context: &[u8], secret: &[u8]) -> Result<Vec<u8>, VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| VaultError::Entropy(e.to_string()))?;
    let sealed = XChaCha20Poly1305::new((&key.key).into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: context,
            },
        )
        .map_err(|_| VaultError::Entropy("sealing failed".into()))?;
    let mut out = Vec::with_capacity(SECRET_MAGIC.len() + KEY_ID_LEN + NONCE_LEN + sealed.len());
    out.extend_from_slice(SECRET_MAGIC);
    out.extend_from_slice(&key.id);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Open a secret sealed by [`seal_secret`] with the same `context`; `what` names it in errors.
pub fn open_secret(
    key: &SeedKey,
    what: &str,
    context: &[u8],
    stored: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let header = SECRET_MAGIC.len() + KEY_ID_LEN + NONCE_LEN;
    if stored.len() < header + 16 || !stored.starts_with(SECRET_MAGIC) {
        return Err(VaultError::SecretTampered(what.to_string()));
    }
    let (id, rest) = stored[SECRET_MAGIC.len()..].split_at(KEY_ID_LEN);
    if id != key.id {
        return Err(VaultError::SecretWrongKey {
            what: what.to_string(),
            stored: hex::encode(id),
            given: key.id_hex(),
        });
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    XChaCha20Poly1305::new((&key.key).into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: context,
            },
        )
        .map_err(|_| VaultError::SecretTampered(what.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_seed_opens_with_its_key_and_trial_only() {
        let key = SeedKey::generate().unwrap();
        let seed = MasterSeed::from_passphrase("s");
        let sealed = seal(&key, "taste", &seed).unwrap();
        assert_eq!(sealed.len(), SEALED_LEN);
        assert!(
            !sealed.windows(32).any(|w| w == seed.as_bytes()),
            "the seed's bytes are not in the sealed form"
        );
        assert!(matches!(open(&key, "taste", &sealed), Ok(Stored::Sealed(s)) if s == seed));
        assert!(matches!(
            open(&key, "other", &sealed),
            Err(VaultError::Tampered(_))
        ));
        let other = SeedKey::generate().unwrap();
        assert!(matches!(
            open(&other, "taste", &sealed),
            Err(VaultError::WrongKey { .. })
        ));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            open(&key, "taste", &flipped),
            Err(VaultError::Tampered(_))
        ));
        assert!(matches!(
            open(&key, "taste", seed.as_bytes()),
            Ok(Stored::Plain(s)) if s == seed
        ));
        // Two seals of one seed differ (fresh nonces).
        assert_ne!(sealed, seal(&key, "taste", &seed).unwrap());
    }

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_context_only() {
        let key = SeedKey::generate().unwrap();
        let sealed = seal_secret(&key, b"ctx", b"the secret").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"the secret"));
        assert_eq!(
            open_secret(&key, "it", b"ctx", &sealed).unwrap(),
            b"the secret"
        );
        assert!(matches!(
            open_secret(&key, "it", b"other", &sealed),
            Err(VaultError::SecretTampered(_))
        ));
        assert!(matches!(
            open_secret(&SeedKey::generate().unwrap(), "it", b"ctx", &sealed),
            Err(VaultError::SecretWrongKey { .. })
        ));
        assert!(matches!(
            open_secret(&key, "it", b"ctx", b""),
            Err(VaultError::SecretTampered(_))
        ));
    }
}
