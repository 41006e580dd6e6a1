//! A trial's rows read in one consistent snapshot, and afterwards only the rows written since.
//!
//! `rrct serve` keeps each trial's data in memory for its dashboards; after a write it reads
//! what is new instead of the whole trial again. This is exact because every write transaction
//! holds the writer lock (see the `store` module): randomisation numbers, screening ids and
//! event sequence numbers (the rowid on SQLite, the `seq` column on PostgreSQL) increase in
//! commit order, so within one snapshot "greater than what the previous read saw" is exactly
//! "written since". Writes other than enrolments, screening reports and event deliveries (a
//! protocol amendment, a randomised-in-error mark) change rows in place or change how they are
//! read: for those the audit chain tells the caller to read everything again. A
//! randomised-in-error mark only adds to the trial's marks, which are few: they are read again
//! whole. A protocol version registered (an amendment) changes no row, only how the rows are
//! analysed: the rows since are read as after any other write, and the caller reads the
//! protocol again.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::{allocation_errors, deliveries};
use super::{allocations, screening_log};
use super::{events, Backend, Store, StoreResult};
use crate::analysis::participation::{ConsentRecord, Withdrawal};
use crate::analysis::ErrorMark;
use crate::endpoints::flow::Screening;
use crate::endpoints::sources::Delivery;
use crate::endpoints::ReceivedEvent;
use crate::randomise::AllocationRecord;

/// How far a read went: the audit chain head and the largest randomisation number, event
/// sequence number and screening id it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marks {
    pub head: i64,
    allocation: i64,
    event: i64,
    screening: i64,
    delivery: i64,
}

/// Rows of one trial: everything (a first read) or what was written after the previous marks.
#[derive(Debug, Default)]
pub struct TrialRows {
    /// In randomisation order.
    pub allocations: Vec<AllocationRecord>,
    /// In no particular order: the caller orders them with what it already holds.
    pub events: Vec<ReceivedEvent>,
    /// In screening order.
    pub screening: Vec<Screening>,
    /// All the trial's randomised-in-error marks, when one was made since (or on a first read).
    pub in_error: Option<HashMap<String, ErrorMark>>,
    /// Sources' deliveries, in the order recorded.
    pub deliveries: Vec<Delivery>,
    /// A protocol version was registered since (for this trial or another): read the trial's
    /// protocol again.
    pub protocol_registered: bool,
    /// The consents recorded with the allocations read.
    pub consents: Vec<ConsentRecord>,
    /// All the trial's withdrawals, on a first read (a withdrawal since makes the caller read
    /// afresh, as does a deferred consent's confirmation: both change what is held).
    pub withdrawals: Option<HashMap<String, Vec<Withdrawal>>>,
}

/// What a read since earlier marks found.
#[derive(Debug)]
pub enum Since {
    /// Only rows were added; these are they, and the marks to read from next time.
    Added(Box<TrialRows>, Marks),
    /// Something else was written: read the trial afresh.
    Changed,
}

/// Audit actions that add rows to the allocations, the events or the screening log, or change
/// nothing a trial's data are made of (tokens, the trial's status and sites, unblindings, the
/// seed's reveal).
const ADDING_ONLY: [&str; 16] = [
    "objection_added",
    "objection_removed",
    "source_stale",
    "site_enrolment_changed",
    "emergency_unblinded",
    "seed_revealed",
    "webhook_added",
    "webhook_removed",
    "randomised",
    "screened_not_eligible",
    "screened_not_randomised",
    "events_received",
    "source_delivery",
    "token_created",
    "token_revoked",
    "trial_status_changed",
];

/// The audit action of a randomised-in-error mark.
const MARKED_IN_ERROR: &str = "randomised_in_error_marked";

/// The audit action of a protocol version's registration (the first or an amendment).
const PROTOCOL_REGISTERED: &str = "protocol_version_registered";

/// Every allocation, event and screening row of `trial_id`, read in one snapshot, with the
/// marks of that snapshot.
pub async fn all(store: &Store, trial_id: &str) -> StoreResult<(TrialRows, Marks)> {
    match read(store, trial_id, None).await? {
        Since::Added(rows, marks) => Ok((*rows, marks)),
        Since::Changed => Err(super::StoreError::Corrupt(
            "a first read found nothing to compare with".into(),
        )),
    }
}

/// The rows of `trial_id` written since `marks`, read in one snapshot.
pub async fn since(store: &Store, trial_id: &str, marks: &Marks) -> StoreResult<Since> {
    read(store, trial_id, Some(marks)).await
}

async fn read(store: &Store, trial_id: &str, since: Option<&Marks>) -> StoreResult<Since> {
    let backend = store.backend();
    // One snapshot for every statement below: SQLite's read transaction (WAL) and PostgreSQL's
    // repeatable read both fix it at the first statement.
    let mut tx = match backend {
        Backend::Sqlite => store.pool().begin().await?,
        Backend::Postgres => {
            store
                .pool()
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?
        }
    };
    let conn: &mut AnyConnection = &mut tx;
    let head: i64 = sqlx::query("SELECT seq FROM audit_head WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?
        .try_get("seq")?;
    let mut marked = since.is_none();
    let mut protocol_registered = false;
    if let Some(m) = since {
        if head == m.head {
            return Ok(Since::Added(Box::default(), *m));
        }
        let actions: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT action FROM audit_log WHERE seq > $1 AND seq <= $2",
        )
        .bind(m.head)
        .bind(head)
        .fetch_all(&mut *conn)
        .await?;
        if actions.iter().any(|a| {
            !ADDING_ONLY.contains(&a.as_str()) && a != MARKED_IN_ERROR && a != PROTOCOL_REGISTERED
        }) {
            return Ok(Since::Changed);
        }
        marked = actions.iter().any(|a| a == MARKED_IN_ERROR);
        protocol_registered = actions.iter().any(|a| a == PROTOCOL_REGISTERED);
    }
    let (allocation, event, screening, delivery) = since.map_or((0, 0, 0, 0), |m| {
        (m.allocation, m.event, m.screening, m.delivery)
    });
    let seq = match backend {
        Backend::Sqlite => "e.rowid",
        Backend::Postgres => "e.seq",
    };
    let added = allocations::after(conn, backend, trial_id, allocation).await?;
    let last_event: i64 =
        sqlx::query_scalar(&format!("SELECT COALESCE(MAX({seq}), 0) FROM events e"))
            .fetch_one(&mut *conn)
            .await?;
    // Every event of the newly randomised (some may be older than their randomisation) ...
    let mut new_events = match since {
        Some(_) => {
            events::received_events(
                conn,
                backend,
                "events e JOIN allocations a ON a.subject = e.subject \
                 WHERE a.trial_id = $1 AND a.randomisation_number > $2",
                trial_id,
                &[allocation],
            )
            .await?
        }
        // All of them: through the (trial, subject) index, which yields them nearly in order.
        None => {
            events::received_events(
                conn,
                backend,
                "events e JOIN allocations a ON a.subject = e.subject WHERE a.trial_id = $1",
                trial_id,
                &[],
            )
            .await?
        }
    };
    // ... and the new events of those randomised before.
    if since.is_some() && last_event > event {
        new_events.extend(
            events::received_events(
                conn,
                backend,
                // Driven by the sequence range (a join would let SQLite start from the
                // trial's allocations and probe every subject's events).
                &format!(
                    "events e WHERE {seq} > $2 AND EXISTS (SELECT 1 FROM allocations a \
                     WHERE a.subject = e.subject AND a.trial_id = $1 \
                     AND a.randomisation_number <= $3)"
                ),
                trial_id,
                &[event, allocation],
            )
            .await?,
        );
    }
    let (screening, last_screening) =
        screening_log::screening_outcomes_after(conn, trial_id, screening).await?;
    let (deliveries, last_delivery) = deliveries::after(conn, delivery).await?;
    let in_error = match marked {
        true => Some(allocation_errors::of_trial_on(conn, trial_id).await?),
        false => None,
    };
    let consents = super::participation::consents_after(conn, trial_id, allocation).await?;
    let withdrawals = match since {
        None => Some(super::participation::withdrawals(conn, trial_id).await?),
        Some(_) => None,
    };
    tx.rollback().await?;
    let marks = Marks {
        head,
        allocation: added.last().map_or(allocation, |a| a.randomisation_number),
        event: last_event.max(event),
        screening: last_screening,
        delivery: last_delivery,
    };
    Ok(Since::Added(
        Box::new(TrialRows {
            allocations: added,
            events: new_events,
            screening,
            in_error,
            deliveries,
            protocol_registered,
            consents,
            withdrawals,
        }),
        marks,
    ))
}
