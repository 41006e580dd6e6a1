//! Anchors of the audit chain: its head signed with an Ed25519 key kept apart from the database
//! (`rrct audit anchor`), and the proof that the log a database holds now extends an anchored
//! one (`rrct audit verify --anchor FILE`).
//!
//! The chain alone shows that nobody changed the log without recomputing every hash after the
//! change; whoever controls the database can recompute them. An anchor published or handed to
//! someone outside (the sponsor, the DSMB, a registry) fixes the chain's head at a moment: since
//! each entry's hash covers the one before it, an intact chain whose entry `seq` still has the
//! anchored hash holds exactly the anchored history up to `seq`. Truncating, reordering or
//! rewriting anything at or before `seq` — even with the whole chain recomputed — changes that
//! hash, and the forger cannot sign a new anchor without the key.
//!
//! The signed message is the text `rrct-audit-anchor/1\n{seq}\n{hash}\n{signed_at}\n` (UTF-8),
//! so any Ed25519 implementation can check an anchor (RFC 8032; `ed25519-dalek` here). Taking
//! an anchor only reads the database.

use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::store::audit::{self, ChainStatus};
use crate::store::{Store, StoreError};

/// The format tag of an anchor file.
pub const FORMAT: &str = "rrct-audit-anchor/1";

/// An anchor: the chain head signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub format: String,
    /// The newest entry's sequence number when signed (0: an empty log).
    pub seq: i64,
    /// Its hash.
    pub hash: String,
    pub signed_at: String,
    /// The Ed25519 public key, hex.
    pub public_key: String,
    /// The Ed25519 signature of [`Anchor::message`], hex.
    pub signature: String,
}

impl Anchor {
    /// The signed text.
    pub fn message(seq: i64, hash: &str, signed_at: &str) -> String {
        format!("{FORMAT}\n{seq}\n{hash}\n{signed_at}\n")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("cannot read the anchor key {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("the anchor key must be 64 hex digits (an Ed25519 secret key)")]
    BadKey,
    #[error("cannot create {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("no randomness from the operating system: {0}")]
    Entropy(String),
    #[error("the audit chain is broken at entry {seq}: {reason}; it cannot be anchored")]
    Broken { seq: i64, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The Ed25519 key anchors are signed with.
pub struct AnchorKey(SigningKey);

impl AnchorKey {
    /// A new random key.
    pub fn generate() -> Result<AnchorKey, AnchorError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| AnchorError::Entropy(e.to_string()))?;
        Ok(AnchorKey(SigningKey::from_bytes(&secret)))
    }

    /// From a file of 64 hex digits.
    pub fn read_file(path: &Path) -> Result<AnchorKey, AnchorError> {
        let text = std::fs::read_to_string(path).map_err(|e| AnchorError::KeyFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(AnchorError::BadKey)?;
        Ok(AnchorKey(SigningKey::from_bytes(&bytes)))
    }

    /// Write the secret key to a new file readable by its owner only.
    pub fn write_new_file(&self, path: &Path) -> Result<(), AnchorError> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let write = |options: &std::fs::OpenOptions| -> std::io::Result<()> {
            let mut file = options.open(path)?;
            writeln!(file, "{}", hex::encode(self.0.to_bytes()))
        };
        write(&options).map_err(|source| AnchorError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// The public key, hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.0.verifying_key().to_bytes())
    }
}

/// Sign the database's current chain head, after checking the whole chain.
pub async fn anchor(
    store: &Store,
    key: &AnchorKey,
    signed_at: &str,
) -> Result<Anchor, AnchorError> {
    if let ChainStatus::Broken { seq, reason } = audit::verify(store).await? {
        return Err(AnchorError::Broken { seq, reason });
    }
    let head = audit::stored_head(store).await?;
    let message = Anchor::message(head.seq, &head.hash, signed_at);
    let signature = key.0.sign(message.as_bytes());
    Ok(Anchor {
        format: FORMAT.to_string(),
        seq: head.seq,
        hash: head.hash,
        signed_at: signed_at.to_string(),
        public_key: key.public_hex(),
        signature: hex::encode(signature.to_bytes()),
    })
}

/// Whether the anchor's signature is valid for its own public key (and that key is
/// `expected`, when given).
pub fn check_signature(anchor: &Anchor, expected: Option<&str>) -> Result<(), String> {
    if anchor.format != FORMAT {
        return Err(format!("not an anchor of format {FORMAT}"));
    }
    if let Some(expected) = expected {
        if !anchor.public_key.eq_ignore_ascii_case(expected.trim()) {
            return Err(format!(
                "signed by key {}, not by the expected key {}",
                anchor.public_key,
                expected.trim()
            ));
        }
    }
    let key: [u8; 32] = hex::decode(&anchor.public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("its public key is not 32 bytes of hex")?;
    let key = VerifyingKey::from_bytes(&key).map_err(|e| format!("its public key: {e}"))?;
    let signature: [u8; 64] = hex::decode(&anchor.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("its signature is not 64 bytes of hex")?;
    key.verify(
        Anchor::message(anchor.seq, &anchor.hash, &anchor.signed_at).as_bytes(),
        &Signature::from_bytes(&signature),
    )
    .map_err(|_| {
        "its signature does not match its content (altered, or not signed by this key)".to_string()
    })
}

/// What checking a database against an anchor found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorCheck {
    /// The log extends the anchored one: the chain from the first entry through the anchored
    /// one is intact and ends in the anchored hash.
    Extends { seq: i64, entries: u64 },
    /// It does not, and why.
    Fails(String),
}

/// Check that the database's log extends the anchored log.
pub async fn verify(
    store: &Store,
    anchor: &Anchor,
    expected_key: Option<&str>,
) -> Result<AnchorCheck, StoreError> {
    if let Err(why) = check_signature(anchor, expected_key) {
        return Ok(AnchorCheck::Fails(format!(
            "the anchor is not valid: {why}"
        )));
    }
    let entries = audit::entries_through(store, anchor.seq).await?;
    let mut prev = audit::GENESIS_HASH.to_string();
    for (i, e) in entries.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        if e.seq != expected_seq {
            return Ok(AnchorCheck::Fails(format!(
                "entry {expected_seq} is missing before the anchored entry {} (found {})",
                anchor.seq, e.seq
            )));
        }
        let hash = audit::entry_hash(
            e.seq,
            &e.recorded_at,
            &e.actor,
            &e.action,
            e.trial_id.as_deref(),
            &e.payload,
            &prev,
        );
        if e.prev_hash != prev || e.hash != hash {
            return Ok(AnchorCheck::Fails(format!(
                "entry {} does not chain onto the entry before it (altered, removed or reordered \
                 history before the anchored entry {})",
                e.seq, anchor.seq
            )));
        }
        prev = hash;
    }
    if (entries.len() as i64) < anchor.seq {
        return Ok(AnchorCheck::Fails(format!(
            "the log holds {} entries up to the anchored entry {}: it was truncated",
            entries.len(),
            anchor.seq
        )));
    }
    if prev != anchor.hash {
        return Ok(AnchorCheck::Fails(format!(
            "entry {} has hash {prev}, but the anchor signed {}: the history up to it was \
             rewritten (with its chain recomputed)",
            anchor.seq, anchor.hash
        )));
    }
    Ok(AnchorCheck::Extends {
        seq: anchor.seq,
        entries: entries.len() as u64,
    })
}
