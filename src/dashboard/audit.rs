//! The auditor's page: the trial's audit entries, newest first, a page at a time, under the
//! result of recomputing the whole hash chain.

use askama::Template;

use super::page::Chrome;
pub use crate::service::audit_trail::PAGE_SIZE;
use crate::service::audit_trail::{AuditTrailPage, ChainStatus};

/// Longest payload shown in a row; the full entry stays in the database and in `rrct audit`.
const PAYLOAD_CHARS: usize = 240;

#[derive(Template)]
#[template(path = "dashboard/audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    pub intact: bool,
    pub chain_status: String,
    pub entries: Vec<AuditRow>,
    pub total: i64,
    pub range: String,
    pub newer: Option<i64>,
    pub older: Option<i64>,
}

pub struct AuditRow {
    pub seq: i64,
    pub recorded_at: String,
    pub actor: String,
    pub action: String,
    pub payload: String,
    pub hash: String,
    pub hash_short: String,
}

impl AuditPage {
    /// The page for one page of a trial's audit trail.
    pub fn build(trail: AuditTrailPage, chrome: Chrome) -> AuditPage {
        let page = trail.page;
        let withheld = if trail.withheld > 0 {
            format!(
                " {} of the entries below show neither arm nor block position: their permuted \
                 block is still open.",
                trail.withheld
            )
        } else {
            String::new()
        };
        let (intact, chain_status) = match trail.chain {
            ChainStatus::Intact { entries } => (
                true,
                format!(
                    "Chain intact: all {entries} entries verified, each hash recomputed.{withheld}"
                ),
            ),
            ChainStatus::Broken { seq, reason } => {
                (false, format!("Chain BROKEN at entry {seq}: {reason}"))
            }
        };
        let first = (page - 1) * PAGE_SIZE + 1;
        let entries = trail.entries;
        AuditPage {
            chrome,
            intact,
            chain_status,
            range: if entries.is_empty() {
                "0".into()
            } else {
                format!("{first}–{}", first + entries.len() as i64 - 1)
            },
            newer: (page > 1).then_some(page - 1),
            older: (page * PAGE_SIZE < trail.total).then_some(page + 1),
            total: trail.total,
            entries: entries
                .into_iter()
                .map(|e| AuditRow {
                    seq: e.seq,
                    recorded_at: e.recorded_at,
                    actor: e.actor,
                    action: e.action,
                    payload: if e.payload.chars().count() > PAYLOAD_CHARS {
                        format!(
                            "{}…",
                            e.payload.chars().take(PAYLOAD_CHARS).collect::<String>()
                        )
                    } else {
                        e.payload
                    },
                    hash_short: e.hash.chars().take(12).collect(),
                    hash: e.hash,
                })
                .collect(),
        }
    }
}
