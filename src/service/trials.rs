//! Loading protocol files into the database and into the running server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::seed_vault::{self, SeedKey, Stored, VaultError};
use crate::protocol::{self, Protocol};
use crate::randomise::{seed_commitment, MasterSeed, Scheme, SchemeError};
use crate::store::trials::{self, NewSeed, RegisterError};
use crate::store::{Store, StoreError};

/// Environment variable that fixes the master seed of trials created while it is set
/// (tests and the demo). Production leaves it unset: seeds then come from the OS.
pub const MASTER_SEED_ENV: &str = "RRCT_MASTER_SEED";

/// A trial as the running server knows it: validated protocol, allocation scheme, secret seed.
#[derive(Debug)]
pub struct TrialRuntime {
    pub protocol: Protocol,
    pub scheme: Scheme,
    pub seed: MasterSeed,
}

/// The trials a server serves, by trial id.
#[derive(Debug, Default)]
pub struct TrialRegistry {
    trials: BTreeMap<String, Arc<TrialRuntime>>,
}

impl TrialRegistry {
    pub fn get(&self, trial_id: &str) -> Option<Arc<TrialRuntime>> {
        self.trials.get(trial_id).cloned()
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.trials.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.trials.len()
    }

    pub fn is_empty(&self) -> bool {
        self.trials.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(protocol::ProtocolErrors),
    #[error("no protocol files (*.toml) in {0}")]
    Empty(PathBuf),
    #[error("trial `{trial}` is declared by both {first} and {second}")]
    DuplicateTrial {
        trial: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{path}: {source}")]
    Scheme { path: PathBuf, source: SchemeError },
    #[error("cannot draw a master seed from the operating system: {0}")]
    Entropy(String),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Register(#[from] RegisterError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Read and validate one protocol file.
pub fn read_protocol(path: &Path) -> Result<(Protocol, String), LoadError> {
    let source = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let protocol =
        protocol::parse(&source, &path.display().to_string()).map_err(LoadError::Invalid)?;
    Ok((protocol, source))
}

/// The master seed for a new trial: from [`MASTER_SEED_ENV`] when set, else 32 bytes from the OS.
pub fn new_master_seed() -> Result<MasterSeed, LoadError> {
    if let Ok(phrase) = std::env::var(MASTER_SEED_ENV) {
        if !phrase.is_empty() {
            tracing::warn!("{MASTER_SEED_ENV} is set: new trials get a seed fixed by it");
            return Ok(MasterSeed::from_passphrase(&phrase));
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| LoadError::Entropy(e.to_string()))?;
    Ok(MasterSeed::from_bytes(bytes))
}

/// Register every `*.toml` protocol in `dir` (sorted by file name) and build the registry.
/// Any invalid file stops the load: a server must not start with a protocol it misreads.
#[tracing::instrument(skip_all, fields(dir = %dir.display()), err)]
pub async fn load_dir(
    store: &Store,
    dir: &Path,
    key: &SeedKey,
) -> Result<TrialRegistry, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(LoadError::Empty(dir.to_path_buf()));
    }
    let mut loaded: Vec<(PathBuf, Protocol, String)> = Vec::new();
    for path in paths {
        let (protocol, source) = read_protocol(&path)?;
        if let Some((first, _, _)) = loaded
            .iter()
            .find(|(_, p, _)| p.trial_id == protocol.trial_id)
        {
            return Err(LoadError::DuplicateTrial {
                trial: protocol.trial_id.clone(),
                first: first.clone(),
                second: path,
            });
        }
        loaded.push((path, protocol, source));
    }
    let mut registry = TrialRegistry::default();
    for (path, protocol, source) in loaded {
        let runtime = register(store, protocol, &source, key)
            .await
            .map_err(|e| match e {
                LoadError::Scheme { source, .. } => LoadError::Scheme {
                    path: path.clone(),
                    source,
                },
                other => other,
            })?;
        registry
            .trials
            .insert(runtime.protocol.trial_id.clone(), Arc::new(runtime));
    }
    Ok(registry)
}

/// Register one validated protocol and return its runtime; a new trial gets a seed from
/// [`new_master_seed`].
pub async fn register(
    store: &Store,
    protocol: Protocol,
    source: &str,
    key: &SeedKey,
) -> Result<TrialRuntime, LoadError> {
    register_with_seed(store, protocol, source, new_master_seed()?, key).await
}

/// Register one validated protocol; `seed` is stored, sealed with `key`, only if this call
/// creates the trial. The trial's seed is opened with `key`; a seed stored before seeds were
/// sealed is sealed now.
pub async fn register_with_seed(
    store: &Store,
    protocol: Protocol,
    source: &str,
    seed: MasterSeed,
    key: &SeedKey,
) -> Result<TrialRuntime, LoadError> {
    let new_seed = NewSeed {
        commitment: seed_commitment(&seed),
        sealed: seed_vault::seal(key, &protocol.trial_id, &seed)?,
    };
    let scheme = Scheme::from_protocol(&protocol).map_err(|source| LoadError::Scheme {
        path: PathBuf::from(&protocol.trial_id),
        source,
    })?;
    // Servers starting together are serialised by the store's writer lock: the first creates
    // the trial, the others find it.
    let outcome = trials::register(store, &protocol, source, &new_seed, |inputs| {
        judge_amendment(&protocol, inputs)
    })
    .await?;
    tracing::info!(trial = %protocol.trial_id, version = %protocol.version, ?outcome, "protocol registered");
    let stored = trials::load(store, &protocol.trial_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("trial `{}` vanished", protocol.trial_id)))?;
    let seed = match seed_vault::open(key, &protocol.trial_id, &stored.stored_seed)? {
        Stored::Sealed(seed) => seed,
        Stored::Plain(seed) => {
            let sealed = seed_vault::seal(key, &protocol.trial_id, &seed)?;
            trials::replace_seeds(
                store,
                &[(protocol.trial_id.clone(), sealed)],
                &[],
                "system",
                "seed_sealed",
                &serde_json::json!({"trial": protocol.trial_id, "key_id": key.id_hex()}),
            )
            .await?;
            tracing::warn!(trial = %protocol.trial_id, "a master seed stored in plain was sealed");
            seed
        }
    };
    Ok(TrialRuntime {
        protocol,
        scheme,
        seed,
    })
}

impl TrialRegistry {
    /// A registry from runtimes already built (tests, the demo, the simulator).
    pub fn from_runtimes(runtimes: impl IntoIterator<Item = TrialRuntime>) -> Self {
        TrialRegistry {
            trials: runtimes
                .into_iter()
                .map(|r| (r.protocol.trial_id.clone(), Arc::new(r)))
                .collect(),
        }
    }
}

/// Judge a new protocol version against the current one and the randomisation so far (see
/// [`protocol::amendment`]): the changes for the audit entry, or the reasons to refuse it.
fn judge_amendment(
    next: &Protocol,
    inputs: &trials::AmendmentInputs,
) -> Result<Vec<String>, Vec<String>> {
    let current = protocol::parse(&inputs.current_source, "the current protocol").map_err(|e| {
        vec![format!(
            "the current version {} no longer parses, so a change cannot be judged: {e}",
            inputs.current_version
        )]
    })?;
    protocol::amendment::check_amendment(
        &current,
        next,
        &protocol::amendment::RandomisationSoFar {
            allocations: u64::try_from(inputs.allocations).unwrap_or(0),
            allocated_arms: inputs.allocated_arms.clone(),
        },
    )
}

/// Seal every trial's master seed under `new` (opening each with `old`), in one transaction:
/// the key rotation. Returns how many seeds were re-sealed.
pub async fn rotate_seed_key(
    store: &Store,
    old: &SeedKey,
    new: &SeedKey,
    actor: &str,
) -> Result<usize, LoadError> {
    let mut resealed = Vec::new();
    for (trial, stored) in trials::stored_seeds(store).await? {
        let seed = match seed_vault::open(old, &trial, &stored)? {
            Stored::Sealed(seed) | Stored::Plain(seed) => seed,
        };
        resealed.push((trial.clone(), seed_vault::seal(new, &trial, &seed)?));
    }
    // Webhooks' signing secrets are sealed under the same key: re-sealed in the same transaction.
    let mut webhook_secrets = Vec::new();
    for w in crate::store::webhooks::sealed_secrets(store).await? {
        let sealed = super::webhooks::secret::reseal(old, new, &w)?;
        webhook_secrets.push((w.webhook_id, sealed));
    }
    trials::replace_seeds(
        store,
        &resealed,
        &webhook_secrets,
        actor,
        "seed_key_rotated",
        &serde_json::json!({
            "from_key_id": old.id_hex(),
            "to_key_id": new.id_hex(),
            "seeds": resealed.len(),
            "webhook_secrets": webhook_secrets.len(),
        }),
    )
    .await?;
    Ok(resealed.len())
}

/// Protocols parsed from their stored text, by the text's hash: a protocol is parsed once per
/// process however often an intake asks for it.
static PARSED: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<[u8; 32], Arc<Protocol>>>,
> = std::sync::LazyLock::new(Default::default);

/// Every trial's current protocol as registered in the database.
pub async fn stored_protocols(store: &Store) -> Result<Vec<Arc<Protocol>>, StoreError> {
    let mut conn = store.pool().acquire().await?;
    stored_protocols_on(&mut conn).await
}

/// [`stored_protocols`] on a connection (inside a transaction, say).
pub async fn stored_protocols_on(
    conn: &mut sqlx::AnyConnection,
) -> Result<Vec<Arc<Protocol>>, StoreError> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::new();
    for (trial_id, text) in trials::current_protocols(conn).await? {
        let key: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        let cached = PARSED.lock().ok().and_then(|m| m.get(&key).cloned());
        let parsed = match cached {
            Some(p) => p,
            None => {
                let p = Arc::new(
                    protocol::parse(&text, &format!("stored protocol of {trial_id}"))
                        .map_err(|e| StoreError::Corrupt(format!("{e}")))?,
                );
                if let Ok(mut m) = PARSED.lock() {
                    m.insert(key, p.clone());
                }
                p
            }
        };
        out.push(parsed);
    }
    Ok(out)
}

/// A trial's master seed, opened with `key`; `None` when there is no such trial.
pub async fn opened_seed(
    store: &Store,
    trial_id: &str,
    key: &SeedKey,
) -> Result<Option<MasterSeed>, LoadError> {
    let Some(stored) = trials::load(store, trial_id).await? else {
        return Ok(None);
    };
    Ok(Some(
        match seed_vault::open(key, trial_id, &stored.stored_seed)? {
            Stored::Sealed(seed) | Stored::Plain(seed) => seed,
        },
    ))
}
