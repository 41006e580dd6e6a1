//! A trial's randomisation log as exported (`rrct export allocations`) and its replay from the
//! revealed master seed (`rrct verify replay`), with no database.
//!
//! The log is self-describing JSON ([`AllocationLog`], format [`FORMAT`]): every allocation in
//! randomisation order with the enrolment's fields as received, what the engine judged of them
//! (stratum, minimisation levels, eligible arms, cluster), the protocol version it was made
//! under, the draw (kind, block or sequence number, block size and position, the decision's
//! detail as stored) and the arm, and the randomised-in-error marks with the point in the
//! sequence from which each took effect.
//!
//! [`replay`] remakes every allocation with the engine's own decision
//! ([`super::sequence::decide`]), keeping its own counts, and compares each with the log field
//! by field, the detail's stored text byte for byte; it stops at the first allocation that
//! differs and says what differs. It also re-judges each enrolment from its fields under its
//! protocol version (the engine's own parsing), checks the protocol files against the hashes
//! the trial registered, and the seed against the trial's published commitment. The algorithms
//! are specified in `docs/VERIFY.md` for re-implementation elsewhere.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::sequence::{self, Judged, Tallies};
use super::{seed_commitment, Draw, MasterSeed, Scheme, StratumState};
use crate::protocol::{self, Protocol};

/// The format tag of an allocation log.
pub const FORMAT: &str = "rrct-allocation-log/1";

/// A trial's randomisation log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocationLog {
    /// [`FORMAT`].
    pub format: String,
    /// What this file is, for a reader who finds it alone.
    pub about: String,
    pub trial_id: String,
    pub exported_at: String,
    /// Hex SHA-256 of the 32 master-seed bytes, published in the audit log when the trial was
    /// created.
    pub seed_commitment: String,
    /// The master seed in hex once revealed (after the trial closed), else null.
    pub revealed_seed: Option<String>,
    /// The trial's lifecycle when exported: active, paused or closed.
    pub lifecycle: String,
    /// The database's audit chain head when exported: an anchor of the chain at or after it
    /// covers everything this file was read from.
    pub audit_head: AuditHead,
    /// Every protocol version the trial registered, in order.
    pub protocol_versions: Vec<LoggedProtocol>,
    /// Every allocation, in randomisation order.
    pub allocations: Vec<LoggedAllocation>,
    /// What each key of an allocation means.
    pub keys: BTreeMap<String, String>,
}

/// The audit chain's head: its newest entry's sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: i64,
    pub hash: String,
}

/// One registered protocol version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedProtocol {
    pub version: String,
    /// Hex SHA-256 of the protocol file's bytes as registered.
    pub source_sha256: String,
    pub registered_at: String,
    /// The allocation procedure (`method` in the file).
    pub method: String,
    /// The arms in protocol order (an arm's index is its position here).
    pub arms: Vec<LoggedArm>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedArm {
    pub id: String,
    pub ratio: u32,
    pub closed: bool,
}

/// One allocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedAllocation {
    pub randomisation_number: i64,
    pub record_id: String,
    pub subject: String,
    pub site: String,
    pub allocated_at: String,
    pub protocol_version: String,
    /// The sequence number of the allocation's audit entry.
    pub audit_seq: i64,
    pub input: LoggedInput,
    pub draw: LoggedDraw,
    /// The allocated arm's id.
    pub arm: String,
    pub randomised_in_error: Option<LoggedMark>,
}

/// The enrolment as received and as the engine judged it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedInput {
    /// The enrolment's fields as the register sent them.
    pub fields: Map<String, Value>,
    pub stratum: String,
    /// The level of each minimisation factor, by factor (empty for other procedures).
    pub minimisation_levels: BTreeMap<String, String>,
    /// The arm ids the patient could be given, when restricted (arms named ineligible or
    /// closed); null: every arm.
    pub eligible_arms: Option<Vec<String>>,
    pub cluster: Option<String>,
}

/// The draw as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedDraw {
    /// `slot` (a block slot or sequence number), `restricted` (a restricted patient's draw
    /// beside the block) or `inherited` (a cluster member, no draw).
    pub kind: Draw,
    pub block_number: i64,
    pub block_size: i64,
    pub block_position: i64,
    /// The decision's detail as stored (JSON text: probabilities, the uniform draw, scores), or
    /// null.
    pub detail: Option<String>,
}

/// A randomised-in-error mark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedMark {
    pub marked_at: String,
    pub reason: String,
    /// The sequence number of the mark's audit entry.
    pub audit_seq: i64,
    /// The randomisation number of the first allocation decided after the mark: from it on,
    /// the released counts no longer count.
    pub applies_from: i64,
    /// The minimisation counts released, `{factor, level, arm}`.
    pub released: Vec<Released>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    pub factor: String,
    pub level: String,
    pub arm: String,
}

/// The meaning of each key of an allocation, written into every log.
pub fn key_descriptions() -> BTreeMap<String, String> {
    [
        ("randomisation_number", "1, 2, ... in the order the engine decided (the replay order)"),
        ("record_id", "the register's id of the enrolment (its idempotency key)"),
        ("subject", "the register's pseudonym of the patient"),
        ("site", "the enrolling site"),
        ("allocated_at", "when the allocation was committed (UTC)"),
        ("protocol_version", "the protocol version the enrolment was judged and allocated under"),
        ("audit_seq", "sequence number of the allocation's audit entry"),
        ("input.fields", "the enrolment's fields as received"),
        ("input.stratum", "the stratum key the engine derived: FACTOR=LEVEL;... (or `all`)"),
        ("input.minimisation_levels", "the enrolment's level of each minimisation factor"),
        ("input.eligible_arms", "the arms the patient could receive when restricted; null: all"),
        ("input.cluster", "the randomised unit of a cluster trial, else null"),
        ("draw.kind", "slot | restricted | inherited (see docs/VERIFY.md)"),
        ("draw.block_number", "the block (permuted blocks) or the stratum's sequence number"),
        ("draw.block_size", "the block's size (1 for other procedures)"),
        ("draw.block_position", "0-based slot in the block"),
        ("draw.detail", "the decision's detail as stored: probabilities, draw u, scores (JSON text)"),
        ("arm", "the allocated arm"),
        ("randomised_in_error", "the mark, if any: when, why, from which randomisation number its released counts stop counting, and what it released"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A protocol file given to the replay: where it came from and its text.
pub struct ProtocolFile {
    pub origin: String,
    pub source: String,
}

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    pub trial_id: String,
    /// Whether SHA-256 of the seed is the trial's commitment.
    pub seed_matches_commitment: bool,
    /// Problems with the protocol files: missing versions, hashes that differ.
    pub protocol_findings: Vec<String>,
    /// Allocations in the log.
    pub allocations: usize,
    /// Allocations replayed identically before the first difference (all when none).
    pub agreed: usize,
    /// Randomised-in-error marks applied.
    pub marks: usize,
    /// The first allocation that differs, if any.
    pub first_difference: Option<Difference>,
}

impl ReplayReport {
    /// Everything checks out.
    pub fn ok(&self) -> bool {
        self.seed_matches_commitment
            && self.protocol_findings.is_empty()
            && self.first_difference.is_none()
    }
}

/// The first allocation whose replay differs from the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub randomisation_number: i64,
    pub record_id: String,
    /// `(what, as logged, as replayed)`.
    pub fields: Vec<(String, String, String)>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "allocation {} (record `{}`) differs:",
            self.randomisation_number, self.record_id
        )?;
        for (what, logged, replayed) in &self.fields {
            write!(f, "\n  {what}: logged {logged}, replayed {replayed}")?;
        }
        Ok(())
    }
}

/// A protocol version ready to replay under.
struct Version {
    protocol: Protocol,
    scheme: Scheme,
}

/// The replay's own counts, arms by id.
#[derive(Default)]
struct Counts {
    arm_counts: HashMap<(String, String), i64>,
    marginals: HashMap<(String, String, String), i64>,
    clusters: HashMap<String, String>,
}

impl Tallies for Counts {
    fn arm_count(&self, stratum: &str, arm: &str) -> i64 {
        self.arm_counts
            .get(&(stratum.to_string(), arm.to_string()))
            .copied()
            .unwrap_or(0)
    }

    fn marginal(&self, factor: &str, level: &str, arm: &str) -> i64 {
        self.marginals
            .get(&(factor.to_string(), level.to_string(), arm.to_string()))
            .copied()
            .unwrap_or(0)
    }

    fn cluster_arm(&self, cluster: &str) -> Option<&str> {
        self.clusters.get(cluster).map(String::as_str)
    }
}

/// Hex SHA-256 of a protocol file's text, as the trial registered it.
pub fn source_sha256(source: &str) -> String {
    hex::encode(Sha256::digest(source.as_bytes()))
}

/// Replay every allocation of `log` from `seed` under the protocol versions in `files`.
pub fn replay(log: &AllocationLog, seed: &MasterSeed, files: &[ProtocolFile]) -> ReplayReport {
    let mut report = ReplayReport {
        trial_id: log.trial_id.clone(),
        seed_matches_commitment: seed_commitment(seed) == log.seed_commitment,
        protocol_findings: Vec::new(),
        allocations: log.allocations.len(),
        agreed: 0,
        marks: 0,
        first_difference: None,
    };
    if log.format != FORMAT {
        report.protocol_findings.push(format!(
            "the log's format is `{}`, not `{FORMAT}`",
            log.format
        ));
    }
    let versions = versions(log, files, &mut report.protocol_findings);
    report.first_difference = run(log, seed, &versions, &mut report);
    report
}

/// The protocol versions the log names, from the files, each checked against its hash.
fn versions(
    log: &AllocationLog,
    files: &[ProtocolFile],
    findings: &mut Vec<String>,
) -> HashMap<String, Version> {
    let mut parsed: HashMap<String, (String, String, Protocol)> = HashMap::new();
    for file in files {
        match protocol::parse(&file.source, &file.origin) {
            Ok(p) if p.trial_id == log.trial_id => {
                let sha = source_sha256(&file.source);
                parsed.insert(p.version.clone(), (file.origin.clone(), sha, p));
            }
            Ok(_) => {}
            Err(e) => findings.push(format!("{}: does not parse: {e}", file.origin)),
        }
    }
    let mut versions = HashMap::new();
    for logged in &log.protocol_versions {
        let Some((origin, sha, protocol)) = parsed.remove(&logged.version) else {
            findings.push(format!(
                "no protocol file of trial `{}` version {} was given",
                log.trial_id, logged.version
            ));
            continue;
        };
        if sha != logged.source_sha256 {
            findings.push(format!(
                "{origin}: version {} has SHA-256 {sha}, but the trial registered {} (the file \
                 differs from the protocol the allocations were made under)",
                logged.version, logged.source_sha256
            ));
        }
        match Scheme::from_protocol(&protocol) {
            Ok(scheme) => {
                versions.insert(logged.version.clone(), Version { protocol, scheme });
            }
            Err(e) => findings.push(format!("{origin}: its randomisation cannot run: {e}")),
        }
    }
    versions
}

/// Replay in order; the first difference, if any.
fn run(
    log: &AllocationLog,
    seed: &MasterSeed,
    versions: &HashMap<String, Version>,
    report: &mut ReplayReport,
) -> Option<Difference> {
    let mut counts = Counts::default();
    let mut states: HashMap<String, StratumState> = HashMap::new();
    // Marks by the randomisation number from which they apply, in audit order.
    let mut marks: Vec<(i64, i64, &LoggedAllocation, &LoggedMark)> = log
        .allocations
        .iter()
        .filter_map(|a| {
            a.randomised_in_error
                .as_ref()
                .map(|m| (m.applies_from, m.audit_seq, a, m))
        })
        .collect();
    marks.sort_by_key(|(from, seq, _, _)| (*from, *seq));
    let mut marks = marks.into_iter().peekable();
    let mut judged_of: HashMap<i64, Judged> = HashMap::new();
    for (i, logged) in log.allocations.iter().enumerate() {
        let differ = |fields: Vec<(String, String, String)>| {
            Some(Difference {
                randomisation_number: logged.randomisation_number,
                record_id: logged.record_id.clone(),
                fields,
            })
        };
        let one = |what: &str, logged: String, replayed: String| {
            differ(vec![(what.to_string(), logged, replayed)])
        };
        let expected = i as i64 + 1;
        if logged.randomisation_number != expected {
            return one(
                "randomisation_number",
                logged.randomisation_number.to_string(),
                format!("{expected} (the next in sequence)"),
            );
        }
        // Allocations are committed in randomisation order, so their audit entries are too: a
        // reordering that the draws cannot tell (two strata's sequences are independent) shows
        // here, and the audit chain fixes the entries' order.
        let previous = i.checked_sub(1).map_or(0, |p| log.allocations[p].audit_seq);
        if logged.audit_seq <= previous {
            return one(
                "audit_seq",
                logged.audit_seq.to_string(),
                format!("greater than the previous allocation's {previous}"),
            );
        }
        while let Some((from, _, marked, mark)) = marks.peek() {
            if *from > logged.randomisation_number {
                break;
            }
            if let Some(d) = apply_mark(marked, mark, &judged_of, versions, &mut counts) {
                return Some(d);
            }
            report.marks += 1;
            marks.next();
        }
        let Some(version) = versions.get(&logged.protocol_version) else {
            return one(
                "protocol_version",
                logged.protocol_version.clone(),
                "no such protocol version among the files given".into(),
            );
        };
        let judged = match judge(version, logged) {
            Ok(j) => j,
            Err(fields) => return differ(fields),
        };
        let state = states.get(&judged.stratum).copied().unwrap_or_default();
        let decided = match sequence::decide(
            &version.protocol,
            &version.scheme,
            seed,
            &judged,
            &state,
            &counts,
        ) {
            Ok(d) => d,
            Err(e) => return one("decision", "an allocation".into(), format!("refused: {e}")),
        };
        let d = &decided.decision;
        let shown = |v: Option<&String>| v.map_or_else(|| "null".to_string(), |s| s.to_string());
        let replayed_detail = d.detail.as_ref().map(Value::to_string);
        let pairs = [
            ("arm", logged.arm.clone(), decided.arm.clone()),
            (
                "draw.kind",
                logged.draw.kind.to_string(),
                decided.draw.to_string(),
            ),
            (
                "draw.block_number",
                logged.draw.block_number.to_string(),
                d.block_number.to_string(),
            ),
            (
                "draw.block_size",
                logged.draw.block_size.to_string(),
                d.block_size.to_string(),
            ),
            (
                "draw.block_position",
                logged.draw.block_position.to_string(),
                d.block_position.to_string(),
            ),
            (
                "draw.detail",
                shown(logged.draw.detail.as_ref()),
                shown(replayed_detail.as_ref()),
            ),
            (
                "input.eligible_arms",
                ids_text(logged.input.eligible_arms.as_deref()),
                ids_text(decided.eligible_ids.as_deref()),
            ),
        ];
        let fields: Vec<(String, String, String)> = pairs
            .into_iter()
            .filter(|(_, a, b)| a != b)
            .map(|(w, a, b)| (w.to_string(), a, b))
            .collect();
        if !fields.is_empty() {
            return differ(fields);
        }
        let adds = decided.adds;
        if let Some(key) = adds.arm_count {
            *counts.arm_counts.entry(key).or_default() += 1;
        }
        for key in adds.marginals {
            *counts.marginals.entry(key).or_default() += 1;
        }
        if let Some((cluster, arm)) = adds.cluster {
            counts.clusters.insert(cluster, arm);
        }
        states.insert(judged.stratum.clone(), d.next);
        judged_of.insert(logged.randomisation_number, judged);
        report.agreed += 1;
    }
    for (_, _, marked, mark) in marks {
        if let Some(d) = apply_mark(marked, mark, &judged_of, versions, &mut counts) {
            return Some(d);
        }
        report.marks += 1;
    }
    None
}

/// The arm-id list as the allocation record stores it (JSON text), or `null`.
fn ids_text(ids: Option<&[String]>) -> String {
    ids.map_or_else(
        || "null".to_string(),
        |ids| Value::from(ids.to_vec()).to_string(),
    )
}

/// Judge the logged enrolment again from its fields under its protocol version, with the
/// engine's own parsing, and check the judgement the log records.
fn judge(
    version: &Version,
    logged: &LoggedAllocation,
) -> Result<Judged, Vec<(String, String, String)>> {
    let protocol = &version.protocol;
    let input = &logged.input;
    let values = protocol::parse_enrolment(protocol, &logged.site, &input.fields).map_err(|e| {
        let why: Vec<String> = e
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect();
        vec![(
            "input.fields".to_string(),
            Value::Object(input.fields.clone()).to_string(),
            format!(
                "refused under version {}: {}",
                protocol.version,
                why.join("; ")
            ),
        )]
    })?;
    // The patient's own list of ineligible arms, as far as the log tells it: the open arms
    // missing from the eligible list (closed arms are ineligible for everyone).
    let raw = input.eligible_arms.as_ref().and_then(|eligible| {
        let listed: Vec<Value> = protocol
            .arms
            .iter()
            .filter(|a| !a.closed && !eligible.contains(&a.id))
            .map(|a| Value::from(a.id.clone()))
            .collect();
        (!listed.is_empty()).then_some(Value::Array(listed))
    });
    let eligible = protocol::parse_ineligible_arms(protocol, raw.as_ref()).map_err(|e| {
        vec![(
            "input.eligible_arms".to_string(),
            ids_text(input.eligible_arms.as_deref()),
            format!("refused: {}", e.message),
        )]
    })?;
    let judged = sequence::judge(protocol, &version.scheme, &values, eligible);
    let levels: BTreeMap<String, String> = version
        .scheme
        .factors()
        .iter()
        .zip(&judged.levels)
        .map(|(f, l)| (f.name.clone(), l.clone()))
        .collect();
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "null".into());
    let pairs = [
        (
            "input.stratum",
            input.stratum.clone(),
            judged.stratum.clone(),
        ),
        (
            "input.minimisation_levels",
            format!("{:?}", input.minimisation_levels),
            format!("{levels:?}"),
        ),
        ("input.cluster", text(&input.cluster), text(&judged.cluster)),
    ];
    let fields: Vec<(String, String, String)> = pairs
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(w, a, b)| (w.to_string(), a, b))
        .collect();
    if fields.is_empty() {
        Ok(judged)
    } else {
        Err(fields)
    }
}

/// Release the counts a mark released, checking the log's list.
fn apply_mark(
    marked: &LoggedAllocation,
    mark: &LoggedMark,
    judged_of: &HashMap<i64, Judged>,
    versions: &HashMap<String, Version>,
    counts: &mut Counts,
) -> Option<Difference> {
    let differ = |logged: String, replayed: String| {
        Some(Difference {
            randomisation_number: marked.randomisation_number,
            record_id: marked.record_id.clone(),
            fields: vec![("randomised_in_error".into(), logged, replayed)],
        })
    };
    let (Some(judged), Some(version)) = (
        judged_of.get(&marked.randomisation_number),
        versions.get(&marked.protocol_version),
    ) else {
        return differ(
            format!("a mark applying from allocation {}", mark.applies_from),
            "a mark of an allocation not made before it".into(),
        );
    };
    let released = sequence::released_by_mark(
        &version.scheme,
        &judged.levels,
        &marked.arm,
        marked.draw.kind,
        judged.cluster.as_deref(),
    );
    let replayed: Vec<Released> = released
        .iter()
        .map(|(factor, level, arm)| Released {
            factor: factor.clone(),
            level: level.clone(),
            arm: arm.clone(),
        })
        .collect();
    if replayed != mark.released {
        return differ(
            format!("released {:?}", mark.released),
            format!("released {replayed:?}"),
        );
    }
    for key in released {
        let n = counts.marginals.entry(key.clone()).or_default();
        if *n < 1 {
            return differ(
                format!("released {} = {} on {}", key.0, key.1, key.2),
                "no such count to release".into(),
            );
        }
        *n -= 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::{block, shuffle, stream, tagged_stream, uniform_below, unit_draw};
    use super::*;
    use rand_core::RngCore;

    /// The test vectors of docs/VERIFY.md (scripts/verify/replay.py checks the same numbers).
    #[test]
    fn the_documented_test_vectors_hold() {
        let seed = MasterSeed::from_bytes(
            hex::decode("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
                .unwrap()
                .try_into()
                .unwrap(),
        );
        let mut out = String::new();
        out += &format!("commitment {}\n", seed_commitment(&seed));
        let mut key = Sha256::new();
        key.update(b"rrct/stream/v1\0");
        key.update(seed.as_bytes());
        for part in ["taste", "site=UPP;sex=F"] {
            key.update((part.len() as u64).to_be_bytes());
            key.update(part.as_bytes());
        }
        key.update(0u64.to_be_bytes());
        out += &format!("key0 {}\n", hex::encode(key.finalize()));
        let mut rng = stream(&seed, "taste", "site=UPP;sex=F", 0);
        let words: Vec<String> = (0..3).map(|_| format!("{:016x}", rng.next_u64())).collect();
        out += &format!("stream0 {}\n", words.join(" "));
        let mut rng = tagged_stream(&seed, "restricted", "taste", "site=UPP;sex=F", 7);
        out += &format!("restricted7 {:016x}\n", rng.next_u64());
        let mut rng = stream(&seed, "taste", "all", 3);
        let draws: Vec<u64> = (0..5).map(|_| uniform_below(&mut rng, 6)).collect();
        out += &format!("uniform6 {draws:?}\n");
        let mut rng = stream(&seed, "taste", "all", 4);
        out += &format!("unit {:?}\n", unit_draw(&mut rng));
        let mut list: Vec<usize> = (0..8).collect();
        shuffle(&mut list, &mut stream(&seed, "taste", "all", 5));
        out += &format!("shuffle8 {list:?}\n");
        for b in 0..3 {
            let l = block(&[1, 1], &[2, 4, 6], &seed, "taste", "site=UPP;sex=F", b);
            out += &format!("block{b} {l:?}\n");
        }
        let l = block(&[2, 1], &[3, 6], &seed, "taste", "site=LKP;sex=M", 0);
        out += &format!("block21 {l:?}\n");
        println!("{out}");
        assert_eq!(out, EXPECTED);
    }

    const EXPECTED: &str = "\
commitment 630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd
key0 0b482d46008d9d04d0b49aabfd14038bb99184c6a602ade1b26d598f5696b288
stream0 692bc738077bbb71 6561ac197ef36a58 5e44a97a215d9da5
restricted7 718bc4ef0d27409b
uniform6 [2, 5, 5, 3, 2]
unit 0.28451981075989485
shuffle8 [4, 3, 0, 5, 2, 1, 7, 6]
block0 [0, 1, 0, 1, 0, 1]
block1 [0, 1]
block2 [0, 0, 1, 1, 0, 1]
block21 [0, 0, 1, 0, 1, 0]
";
}
