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

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Row, Transaction};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// How many times [`all`] reads the events beside the rest before it reads everything in one
/// snapshot (writes kept committing between the two reads' starts).
const SIDE_BY_SIDE_TRIES: usize = 3;

/// Every allocation, event and screening row of `trial_id`, as of one state of the database,
/// with the marks of that state.
///
/// The events, most of a trial's rows, are read on a second connection while the rest is read
/// on the first: two snapshots, taken at their first statements. Every write transaction moves
/// the audit chain's head (the premise of [`since`] too), so two snapshots that saw the same
/// head saw the same rows. When they saw different heads (a write committed between their
/// starts) the pair is read again, and after [`SIDE_BY_SIDE_TRIES`] such pairs everything is
/// read in one snapshot.
pub async fn all(store: &Store, trial_id: &str) -> StoreResult<(TrialRows, Marks)> {
    all_after(store, trial_id, std::future::ready(())).await
}

/// [`all`], awaiting `between` after the events' snapshot has begun and before the rest's
/// does (the first time only): lets a test commit a write exactly where the two could differ.
#[doc(hidden)]
pub async fn all_after(
    store: &Store,
    trial_id: &str,
    between: impl std::future::Future<Output = ()>,
) -> StoreResult<(TrialRows, Marks)> {
    let mut between = Some(between);
    for _ in 0..SIDE_BY_SIDE_TRIES {
        match side_by_side(store, trial_id, between.take()).await? {
            SideBySide::Read(rows, marks) => return Ok((*rows, marks)),
            SideBySide::Moved => continue,
            SideBySide::NoSecondConnection => break,
        }
    }
    let conn = store.pool().acquire().await?;
    match read(conn, store.backend(), trial_id, None, EventsRead::Here).await? {
        Since::Added(rows, marks) => Ok((*rows, marks)),
        Since::Changed => Err(first_read_changed()),
    }
}

/// How long [`side_by_side`] waits for its second connection (the pool opens one in a few
/// milliseconds) before it gives up and the trial is read in one snapshot.
const SECOND_CONNECTION_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// What a [`side_by_side`] read gave.
enum SideBySide {
    /// The trial's rows, as of one state.
    Read(Box<TrialRows>, Marks),
    /// The two snapshots saw different audit heads: a write committed between their starts.
    Moved,
    /// No second connection came within [`SECOND_CONNECTION_WAIT`].
    NoSecondConnection,
}

/// The events in one snapshot beside the rest in another.
///
/// The second connection is waited for only [`SECOND_CONNECTION_WAIT`]: readers that each held
/// one connection while waiting for another could otherwise take every connection of the pool
/// and wait for each other.
async fn side_by_side(
    store: &Store,
    trial_id: &str,
    between: Option<impl std::future::Future<Output = ()>>,
) -> StoreResult<SideBySide> {
    let backend = store.backend();
    let mut tx = begin_snapshot(store.pool().acquire().await?, backend).await?;
    let events_head = audit_head(&mut tx).await?;
    if let Some(between) = between {
        between.await;
    }
    let second = match tokio::time::timeout(SECOND_CONNECTION_WAIT, store.pool().acquire()).await {
        Ok(second) => second?,
        Err(_) => {
            tx.rollback().await?;
            return Ok(SideBySide::NoSecondConnection);
        }
    };
    let (rest, events) = tokio::join!(
        read(second, backend, trial_id, None, EventsRead::Elsewhere),
        events::received_events(&mut tx, backend, events::ALL_EVENTS, trial_id, &[])
    );
    let (rest, events) = (rest?, events?);
    tx.rollback().await?;
    match rest {
        Since::Added(mut rows, marks) if marks.head == events_head => {
            rows.events = events;
            Ok(SideBySide::Read(rows, marks))
        }
        Since::Added(..) => Ok(SideBySide::Moved),
        Since::Changed => Err(first_read_changed()),
    }
}

fn first_read_changed() -> super::StoreError {
    super::StoreError::Corrupt("a first read found nothing to compare with".into())
}

/// Whether [`read`] reads a first read's events itself or leaves them to [`side_by_side`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum EventsRead {
    Here,
    Elsewhere,
}

/// A read-only transaction on `conn` whose snapshot is fixed at its first statement: SQLite's
/// read transaction (WAL) and PostgreSQL's repeatable read.
async fn begin_snapshot(
    conn: PoolConnection<Any>,
    backend: Backend,
) -> StoreResult<Transaction<'static, Any>> {
    let statement = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY".into()),
    };
    Ok(Transaction::begin(conn, statement).await?)
}

async fn audit_head(conn: &mut AnyConnection) -> StoreResult<i64> {
    Ok(sqlx::query("SELECT seq FROM audit_head WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?
        .try_get("seq")?)
}

/// The rows of `trial_id` written since `marks`, read in one snapshot.
pub async fn since(store: &Store, trial_id: &str, marks: &Marks) -> StoreResult<Since> {
    let conn = store.pool().acquire().await?;
    read(
        conn,
        store.backend(),
        trial_id,
        Some(marks),
        EventsRead::Here,
    )
    .await
}

/// The rows of `trial_id` (since `since`, or all) read on `conn` in one snapshot.
async fn read(
    conn: PoolConnection<Any>,
    backend: Backend,
    trial_id: &str,
    since: Option<&Marks>,
    events_read: EventsRead,
) -> StoreResult<Since> {
    // One snapshot for every statement below.
    let mut tx = begin_snapshot(conn, backend).await?;
    let conn: &mut AnyConnection = &mut tx;
    let head = audit_head(conn).await?;
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
    // The ranges are closed above by what this snapshot holds: on PostgreSQL a table without
    // statistics yet (a new trial's first minutes, or autovacuum off) otherwise has its
    // open range estimated at a third of the table and read whole.
    let last_added = added.last().map(|a| a.randomisation_number);
    let mut new_events = match (since, last_added) {
        (Some(_), Some(last_added)) => {
            events::received_events(
                conn,
                backend,
                "events e JOIN allocations a ON a.subject = e.subject \
                 WHERE a.trial_id = $1 AND a.randomisation_number > $2 \
                 AND a.randomisation_number <= $3",
                trial_id,
                &[allocation, last_added],
            )
            .await?
        }
        (Some(_), None) => Vec::new(),
        // All of them, unless [`side_by_side`] reads them beside this.
        (None, _) if events_read == EventsRead::Elsewhere => Vec::new(),
        (None, _) => {
            events::received_events(conn, backend, events::ALL_EVENTS, trial_id, &[]).await?
        }
    };
    // ... and the new events of those randomised before.
    if since.is_some() && last_event > event {
        // PostgreSQL: `OFFSET 0` keeps the subquery a probe of the (trial, subject) index per
        // new event; as a semi-join, a planner without statistics hashes the trial's every
        // allocation instead (8 ms for 10,000, whatever the number of new events).
        let probe = match backend {
            Backend::Sqlite => "",
            Backend::Postgres => " OFFSET 0",
        };
        new_events.extend(
            events::received_events(
                conn,
                backend,
                // Driven by the sequence range (a join would let SQLite start from the
                // trial's allocations and probe every subject's events).
                &format!(
                    "events e WHERE {seq} > $2 AND {seq} <= $4 AND EXISTS (SELECT 1 \
                     FROM allocations a WHERE a.subject = e.subject AND a.trial_id = $1 \
                     AND a.randomisation_number <= $3{probe})"
                ),
                trial_id,
                &[event, allocation, last_event],
            )
            .await?,
        );
    }
    let (screening, last_screening) =
        screening_log::screening_outcomes_after(conn, backend, trial_id, screening).await?;
    let (deliveries, last_delivery) = deliveries::after(conn, delivery).await?;
    let in_error = match marked {
        true => Some(allocation_errors::of_trial_on(conn, trial_id).await?),
        false => None,
    };
    let consents =
        super::participation::consents_after(conn, backend, trial_id, allocation).await?;
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
