//! Derivation of the per-decision random streams from a trial's master seed.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::{Digest, Sha256};

/// A trial's secret 256-bit master seed. Its `Debug` output is redacted so it cannot leak
/// through logs.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterSeed([u8; 32]);

impl MasterSeed {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterSeed(bytes)
    }

    /// Accept exactly 32 bytes, as stored.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(MasterSeed)
    }

    /// A seed fixed by a passphrase (tests, the demo, `RRCT_MASTER_SEED`):
    /// SHA-256 of a domain tag and the phrase.
    pub fn from_passphrase(phrase: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"rrct/master-seed/v1\0");
        h.update(phrase.as_bytes());
        MasterSeed(h.finalize().into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for MasterSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterSeed(<secret>)")
    }
}

/// The hash commitment published before the trial closes: hex SHA-256 of the seed bytes.
pub fn seed_commitment(seed: &MasterSeed) -> String {
    hex::encode(Sha256::digest(seed.0))
}

/// The ChaCha20 stream for one decision: keyed by SHA-256 over a domain tag, the master seed,
/// the length-prefixed trial id and stratum key, and the big-endian block or sequence number.
pub fn stream(seed: &MasterSeed, trial: &str, stratum: &str, number: u64) -> ChaCha20Rng {
    let mut h = Sha256::new();
    h.update(b"rrct/stream/v1\0");
    keyed(h, seed, trial, stratum, number)
}

/// The stream keyed by `tagged` (a hash holding the domain tag) over the rest of the key.
fn keyed(
    tagged: Sha256,
    seed: &MasterSeed,
    trial: &str,
    stratum: &str,
    number: u64,
) -> ChaCha20Rng {
    StratumStreams::keyed(tagged, seed, trial, stratum).stream(number)
}

/// The key derivation of [`stream`] for one trial and stratum, hashed up to the number: a
/// stratum's successive blocks then cost one hash of the number each, not of the whole key.
#[derive(Clone)]
pub struct StratumStreams(Sha256);

impl StratumStreams {
    /// The streams [`stream`]`(seed, trial, stratum, number)` for every `number`.
    pub fn new(seed: &MasterSeed, trial: &str, stratum: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"rrct/stream/v1\0");
        Self::keyed(h, seed, trial, stratum)
    }

    fn keyed(mut tagged: Sha256, seed: &MasterSeed, trial: &str, stratum: &str) -> Self {
        tagged.update(seed.0);
        tagged.update((trial.len() as u64).to_be_bytes());
        tagged.update(trial.as_bytes());
        tagged.update((stratum.len() as u64).to_be_bytes());
        tagged.update(stratum.as_bytes());
        StratumStreams(tagged)
    }

    /// The stream of `number`.
    pub fn stream(&self, number: u64) -> ChaCha20Rng {
        let mut h = self.0.clone();
        h.update(number.to_be_bytes());
        ChaCha20Rng::from_seed(h.finalize().into())
    }
}

impl std::fmt::Debug for StratumStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StratumStreams(<secret>)")
    }
}

/// A stream for a draw that is not part of the procedure's main sequence (a restricted
/// patient's draw within permuted blocks, synthetic covariates in an assessment): as
/// [`stream`], with `purpose` in the domain tag (`rrct/stream/v1/PURPOSE`), so it can never
/// coincide with a main stream or another purpose's.
pub fn tagged_stream(
    seed: &MasterSeed,
    purpose: &str,
    trial: &str,
    stratum: &str,
    number: u64,
) -> ChaCha20Rng {
    let mut h = Sha256::new();
    h.update(b"rrct/stream/v1/");
    h.update((purpose.len() as u64).to_be_bytes());
    h.update(purpose.as_bytes());
    h.update(b"\0");
    keyed(h, seed, trial, stratum, number)
}
