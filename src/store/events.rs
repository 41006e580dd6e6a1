//! Register events: idempotent bulk intake and the reads endpoint derivation needs.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;

use super::{Backend, SqlType, Store, StoreError, StoreResult, WriteTx};
use crate::endpoints::{Event, ReceivedEvent};

/// Rows per insert statement: large enough to amortise a statement, small enough for the
/// JSON parameter to stay a few megabytes.
const CHUNK: usize = 5_000;

/// Rows per SQLite insert: 10 bound values each, under SQLite's 32,766 variables.
const SQLITE_CHUNK: usize = 3_000;

/// A SQLite insert of at least this many rows, and at least as many as the table holds, drops
/// the subject index and builds it again after the rows are in: one sort instead of a random
/// B-tree insert per row. Inside the write transaction, so a failed import keeps the index.
const SQLITE_REBUILD_MIN: usize = 50_000;

/// The subject index of migration 0013 (`migrations/sqlite/0013_events_covering.sql`: every
/// column a trial's read takes, so that read finds each subject's events in the index alone),
/// as rebuilt after a large import (the test `events::a_large_import_keeps_the_subject_index_
/// and_a_refused_one_changes_nothing` checks the database holds the same definition after one).
const SQLITE_SUBJECT_INDEX: &str = "CREATE INDEX events_subject ON events (subject, event_date, event_id, event_type, code, value, source, recorded_at)";

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    pub event_id: String,
    pub subject: String,
    pub event_type: String,
    pub event_date: String,
    pub code: Option<String>,
    pub value: Option<f64>,
    /// The source it is attributed to: for a `source` token, the source the token is bound to.
    pub source: Option<String>,
    pub content_sha256: String,
    pub recorded_at: String,
    /// The token that delivered it (`None`: the operator's file import).
    pub token_id: Option<String>,
}

const COLUMNS: [(&str, SqlType); 10] = [
    ("event_id", SqlType::Text),
    ("subject", SqlType::Text),
    ("event_type", SqlType::Text),
    ("event_date", SqlType::Text),
    ("code", SqlType::Text),
    ("value", SqlType::Real),
    ("source", SqlType::Text),
    ("content_sha256", SqlType::Text),
    ("recorded_at", SqlType::Text),
    ("token_id", SqlType::Text),
];

/// What an insert did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Rows newly stored.
    pub stored: u64,
    /// Event ids already stored with different content (the caller should roll back).
    pub conflicts: Vec<String>,
}

/// Insert events, skipping ids already stored with the same content and reporting ids stored
/// with different content, and give back every row it was given (stored now or before), in order.
///
/// The rows come from `next`, asked for at most `n` rows at a time until it gives `None`;
/// it is called while the connection inserts the chunk before, so whatever work makes the
/// rows (the caller's checks and hashes) overlaps the database's. An empty chunk is skipped.
/// `total` is the number of rows expected (it decides whether a SQLite import rebuilds the
/// subject index). `progress` is called after each chunk with the rows done so far.
pub async fn insert(
    tx: &mut WriteTx,
    total: usize,
    mut next: impl FnMut(usize) -> Option<Vec<EventRow>>,
    mut progress: impl FnMut(usize),
) -> StoreResult<(InsertOutcome, Vec<EventRow>)> {
    let mut outcome = InsertOutcome::default();
    let mut inserted: Vec<EventRow> = Vec::with_capacity(total);
    let columns = COLUMNS.map(|(c, _)| c).join(", ");
    match tx.backend() {
        // SQLite: bound multi-row VALUES with anonymous `?` parameters (SQLite looks named
        // parameters up by a linear scan, which is quadratic in a statement this size), and no
        // JSON for SQLite to parse per column.
        Backend::Sqlite => {
            let rebuild = total >= SQLITE_REBUILD_MIN && {
                let held: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM events")
                    .fetch_one(tx.conn())
                    .await?;
                total as i64 >= held
            };
            if rebuild {
                sqlx::query("DROP INDEX events_subject")
                    .execute(tx.conn())
                    .await?;
            }
            let row = format!("({})", vec!["?"; COLUMNS.len()].join(", "));
            let sql_for = |n: usize| {
                format!(
                    "INSERT INTO events ({columns}) VALUES {} ON CONFLICT (event_id) DO NOTHING",
                    vec![row.as_str(); n].join(", ")
                )
            };
            // The statement for a full chunk, made when one comes (a small delivery has none).
            let mut full: Option<String> = None;
            let mut current = next(SQLITE_CHUNK);
            while let Some(chunk) = current.take() {
                if chunk.is_empty() {
                    current = next(SQLITE_CHUNK);
                    continue;
                }
                let shorter;
                let sql = if chunk.len() == SQLITE_CHUNK {
                    full.get_or_insert_with(|| sql_for(SQLITE_CHUNK))
                } else {
                    shorter = sql_for(chunk.len());
                    &shorter
                };
                // Borrowed, not copied: the driver copies each value once on its way.
                let query = chunk.iter().fold(sqlx::query(sql), |query, r| {
                    query
                        .bind(r.event_id.as_str())
                        .bind(r.subject.as_str())
                        .bind(r.event_type.as_str())
                        .bind(r.event_date.as_str())
                        .bind(r.code.as_deref())
                        .bind(r.value)
                        .bind(r.source.as_deref())
                        .bind(r.content_sha256.as_str())
                        .bind(r.recorded_at.as_str())
                        .bind(r.token_id.as_deref())
                });
                let (affected, following) =
                    tokio::join!(query.execute(tx.conn()), async { next(SQLITE_CHUNK) });
                current = following;
                let affected = affected?.rows_affected();
                outcome.stored += affected;
                if (affected as usize) < chunk.len() {
                    outcome.conflicts.extend(conflicts(tx, &chunk).await?);
                }
                inserted.extend(chunk);
                progress(inserted.len());
            }
            if rebuild {
                let started = std::time::Instant::now();
                // The index is built by sorting every row: SQLite's sorter may share that among
                // helper threads, one per core (the rows are all in, so the cores are free).
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
                sqlx::query(&format!("PRAGMA threads = {threads}"))
                    .execute(tx.conn())
                    .await?;
                let built = sqlx::query(SQLITE_SUBJECT_INDEX).execute(tx.conn()).await;
                sqlx::query("PRAGMA threads = 0").execute(tx.conn()).await?;
                built?;
                tracing::debug!(
                    ms = started.elapsed().as_millis() as u64,
                    "events: subject index built again"
                );
            }
        }
        // PostgreSQL: the whole chunk as one jsonb parameter, fixed statement text.
        Backend::Postgres => {
            let sql = format!(
                "INSERT INTO events ({columns}) {} ON CONFLICT (event_id) DO NOTHING",
                tx.backend().json_rows(1, &COLUMNS)
            );
            let mut current = next(CHUNK);
            while let Some(chunk) = current.take() {
                if chunk.is_empty() {
                    current = next(CHUNK);
                    continue;
                }
                let json = serde_json::to_string(&chunk)
                    .map_err(|e| StoreError::Corrupt(format!("cannot encode events: {e}")))?;
                let query = sqlx::query(&sql).bind(json);
                let (affected, following) =
                    tokio::join!(query.execute(tx.conn()), async { next(CHUNK) });
                current = following;
                let affected = affected?.rows_affected();
                outcome.stored += affected;
                if (affected as usize) < chunk.len() {
                    outcome.conflicts.extend(conflicts(tx, &chunk).await?);
                }
                inserted.extend(chunk);
                progress(inserted.len());
            }
        }
    }
    Ok((outcome, inserted))
}

/// Ids in `chunk` stored with another content hash.
async fn conflicts(tx: &mut WriteTx, chunk: &[EventRow]) -> StoreResult<Vec<String>> {
    let ids: Vec<&str> = chunk.iter().map(|r| r.event_id.as_str()).collect();
    let sql = format!(
        "SELECT event_id, content_sha256 FROM events WHERE event_id {}",
        tx.backend().in_json(1)
    );
    let stored: HashMap<String, String> = sqlx::query(&sql)
        .bind(serde_json::Value::from(ids).to_string())
        .fetch_all(tx.conn())
        .await?
        .iter()
        .map(|r| Ok((r.try_get("event_id")?, r.try_get("content_sha256")?)))
        .collect::<Result<_, sqlx::Error>>()?;
    let mut found: Vec<String> = chunk
        .iter()
        .filter(|r| {
            stored
                .get(&r.event_id)
                .is_some_and(|h| *h != r.content_sha256)
        })
        .map(|r| r.event_id.clone())
        .collect();
    found.dedup();
    Ok(found)
}

/// An event row as [`for_trial`] reads it: `event_id, subject, event_type, event_date, code,
/// value, source, recorded_at`.
type EventTuple = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<f64>,
    Option<String>,
    String,
);

/// The columns [`received_events`] reads, from `events e`.
const READ_COLUMNS: [&str; 8] = [
    "e.event_id",
    "e.subject",
    "e.event_type",
    "e.event_date",
    "e.code",
    "e.value",
    "e.source",
    "e.recorded_at",
];

/// [`READ_COLUMNS`] as `backend`'s JSON read takes them. SQLite writes a real into JSON with 15
/// significant digits, which rounds a value that needs 16 or 17 (1/3 came back as
/// 0.333333333333333); so its `value` is written with 17 (`%!.17g`: 17 significant digits
/// identify a double) and put in the array as that JSON number. PostgreSQL writes the shortest
/// text that reads back exactly (sqlx sets `extra_float_digits`).
fn read_columns(backend: Backend) -> [&'static str; 8] {
    let mut columns = READ_COLUMNS;
    if backend == Backend::Sqlite {
        columns[5] = "CASE WHEN e.value IS NULL THEN NULL ELSE json(printf('%!.17g', e.value)) END";
    }
    columns
}

/// Every event of the subjects randomised in a trial, with the day each was received, ordered
/// by subject, event date and event id.
///
/// The rows come back as one JSON text (see [`Backend::json_array_rows`]): for a trial with
/// 100,000 events this is several times faster than reading them row by row.
pub async fn for_trial(store: &Store, trial_id: &str) -> StoreResult<Vec<ReceivedEvent>> {
    let mut conn = store.pool().acquire().await?;
    let mut events = received_events(&mut conn, store.backend(), ALL_EVENTS, trial_id, &[]).await?;
    crate::endpoints::sort_received(&mut events);
    Ok(events)
}

/// The statement that reads every event of the trial `$1` (for tests of its plan).
#[doc(hidden)]
pub fn trial_read_statement(backend: Backend) -> String {
    backend.json_array_rows(&read_columns(backend), ALL_EVENTS)
}

/// Every event of a trial's randomised subjects (`$1`), as [`received_events`] reads them:
/// through the (trial, subject) index, which yields them nearly in order.
pub(crate) const ALL_EVENTS: &str =
    "events e JOIN allocations a ON a.subject = e.subject WHERE a.trial_id = $1";

/// The events `from` (a `FROM` clause over `events e` with a `WHERE` whose `$1` is the trial
/// and `$2`, `$3`, … are `numbers`), in no particular order.
pub(crate) async fn received_events(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    from: &str,
    trial_id: &str,
    numbers: &[i64],
) -> StoreResult<Vec<ReceivedEvent>> {
    if backend == Backend::Postgres {
        if let Some(events) = columns_joined(conn, from, trial_id, numbers).await? {
            return Ok(events);
        }
    }
    let sql = backend.json_array_rows(&read_columns(backend), from);
    let mut query = sqlx::query_scalar(&sql).bind(trial_id);
    for n in numbers {
        query = query.bind(*n);
    }
    let json: String = query.fetch_one(&mut *conn).await?;
    let rows: Vec<EventTuple> = serde_json::from_str(&json)
        .map_err(|e| StoreError::Corrupt(format!("events of `{trial_id}` as JSON: {e}")))?;
    rows.into_iter()
        .map(
            |(event_id, subject, event_type, date, code, value, source, recorded)| {
                Ok(ReceivedEvent {
                    event: Event {
                        event_id,
                        subject,
                        event_type,
                        date: stored_day(&date, "event_date")?,
                        code,
                        value,
                        source,
                    },
                    received_on: stored_day(&recorded, "recorded_at")?,
                })
            },
        )
        .collect()
}

/// The day of a stored `events.{what}` text (a date, or a timestamp starting with one).
fn stored_day(s: &str, what: &str) -> StoreResult<chrono::NaiveDate> {
    crate::endpoints::parse_event_date(s.get(..10).unwrap_or(s))
        .ok_or_else(|| StoreError::Corrupt(format!("events.{what} `{s}` is not a date")))
}

/// The separator of [`columns_joined`] (and of the events of saved rows, `store::snapshots`):
/// the unit separator, a control character no id or text accepted at intake holds (`identity`).
pub(super) const UNIT_SEPARATOR: char = '\u{1f}';

/// PostgreSQL's statement for [`columns_joined`]: the row count, then each of
/// [`READ_COLUMNS`] as one text, its values joined by [`UNIT_SEPARATOR`] in the order the
/// aggregate is fed (one order for every column of one aggregation). A nullable column's
/// values are `+` and the value, or empty for null.
fn columns_joined_statement(from: &str) -> String {
    let column = |c: &str| match c {
        "e.code" | "e.source" => format!("string_agg(COALESCE('+' || {c}, ''), E'\\x1f')"),
        "e.value" => format!("string_agg(COALESCE('+' || {c}::text, ''), E'\\x1f')"),
        _ => format!("string_agg({c}, E'\\x1f')"),
    };
    let columns: Vec<String> = READ_COLUMNS.iter().map(|c| column(c)).collect();
    format!("SELECT COUNT(*), {} FROM {from}", columns.join(", "))
}

/// The events `from` on PostgreSQL, each column read as one text of values joined by a
/// separator: PostgreSQL builds that text in about half the time of the JSON
/// ([`Backend::json_array_rows`]) it spends most of a large read on, and splitting it needs no
/// unescaping. `None` when some value holds the separator (a column then splits into more
/// parts than there are rows, which is how it is found): the caller reads them as JSON.
async fn columns_joined(
    conn: &mut sqlx::AnyConnection,
    from: &str,
    trial_id: &str,
    numbers: &[i64],
) -> StoreResult<Option<Vec<ReceivedEvent>>> {
    let sql = columns_joined_statement(from);
    let mut query = sqlx::query(&sql).bind(trial_id);
    for n in numbers {
        query = query.bind(*n);
    }
    let row = query.fetch_one(&mut *conn).await?;
    let rows = usize::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0);
    if rows == 0 {
        return Ok(Some(Vec::new()));
    }
    let texts: Vec<String> = (1..=READ_COLUMNS.len())
        .map(|i| row.try_get::<String, _>(i))
        .collect::<Result<_, _>>()?;
    from_columns(&texts, rows, trial_id)
}

/// `rows` events from the texts of [`READ_COLUMNS`], each column's values joined by the unit
/// separator, a nullable one's as empty (null) or `+` and the value, a day as a date or a
/// timestamp starting with one; `None` when a column does not split into `rows` values.
pub(super) fn from_columns(
    texts: &[impl AsRef<str>],
    rows: usize,
    trial_id: &str,
) -> StoreResult<Option<Vec<ReceivedEvent>>> {
    if rows == 0 {
        return Ok(Some(Vec::new()));
    }
    let mut columns: Vec<Vec<&str>> = Vec::with_capacity(READ_COLUMNS.len());
    for text in texts {
        let parts: Vec<&str> = text.as_ref().split(UNIT_SEPARATOR).collect();
        if parts.len() != rows {
            return Ok(None);
        }
        columns.push(parts);
    }
    if columns.len() != READ_COLUMNS.len() {
        return Ok(None);
    }
    // A nullable column's part: empty for null, else `+` and the value.
    fn nullable(s: &str) -> Option<&str> {
        s.strip_prefix('+')
    }
    (0..rows)
        .map(|i| {
            let value = match nullable(columns[5][i]) {
                None => None,
                Some(v) => Some(v.parse::<f64>().map_err(|_| {
                    StoreError::Corrupt(format!("events.value `{v}` of `{trial_id}`"))
                })?),
            };
            Ok(ReceivedEvent {
                event: Event {
                    event_id: columns[0][i].to_owned(),
                    subject: columns[1][i].to_owned(),
                    event_type: columns[2][i].to_owned(),
                    date: stored_day(columns[3][i], "event_date")?,
                    code: nullable(columns[4][i]).map(str::to_owned),
                    value,
                    source: nullable(columns[6][i]).map(str::to_owned),
                },
                received_on: stored_day(columns[7][i], "recorded_at")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()
        .map(Some)
}

/// `events` as [`from_columns`] reads them (a day as its date); `None` when a text holds the
/// unit separator, which intake never accepts.
pub(super) fn to_columns(events: &[ReceivedEvent]) -> Option<Vec<String>> {
    use std::fmt::Write;
    let mut columns = vec![String::new(); READ_COLUMNS.len()];
    for (i, received) in events.iter().enumerate() {
        let e = &received.event;
        let texts = [
            Some(e.event_id.as_str()),
            Some(e.subject.as_str()),
            Some(e.event_type.as_str()),
            e.code.as_deref(),
            e.source.as_deref(),
        ];
        if texts.iter().flatten().any(|t| t.contains(UNIT_SEPARATOR)) {
            return None;
        }
        if i > 0 {
            for c in &mut columns {
                c.push(UNIT_SEPARATOR);
            }
        }
        columns[0].push_str(&e.event_id);
        columns[1].push_str(&e.subject);
        columns[2].push_str(&e.event_type);
        // Writing to a String cannot fail.
        let _ = write!(columns[3], "{}", e.date);
        if let Some(code) = &e.code {
            columns[4].push('+');
            columns[4].push_str(code);
        }
        if let Some(value) = e.value {
            // The shortest text that reads back as the same double.
            let _ = write!(columns[5], "+{value}");
        }
        if let Some(source) = &e.source {
            columns[6].push('+');
            columns[6].push_str(source);
        }
        let _ = write!(columns[7], "{}", received.received_on);
    }
    Some(columns)
}

/// Number of stored events (tests and reports).
pub async fn count(store: &Store) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(store.pool())
        .await?)
}
