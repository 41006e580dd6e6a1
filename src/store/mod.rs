//! Durable storage on SQLite (embedded default) or PostgreSQL (production), through sqlx.
//!
//! Owns the connection pool, migrations, write transactions and the SQL for every table. Both
//! backends share one set of queries (`$N` placeholders, text timestamps) through sqlx's `Any`
//! driver; where the dialects differ the difference sits in [`Backend`] and nowhere else.
//! It knows nothing of HTTP, and it never decides anything about a trial: the services decide,
//! the store makes the decision durable.
//!
//! # Concurrency
//! Every write transaction ([`Store::begin_write`]) takes the database's writer lock in the
//! same round trip as its `BEGIN`: on PostgreSQL a transaction-scoped advisory lock
//! ([`WRITER_LOCK_KEY`]), on SQLite `BEGIN IMMEDIATE`, its single write lock. Writers hold
//! the audit chain's head, and the chain is one sequence, so one writer at a time is what the
//! design needs anyway: whatever a transaction reads after taking the lock is current until it
//! commits, no two transactions — in this process or any other sharing the database —
//! interleave their writes, and with a single lock there is no lock order to get wrong.
//! Throughput comes from batching many decisions into one transaction, not from parallel
//! writers (see `service::enrol`).

pub mod alarms;
pub mod allocation_errors;
pub mod allocations;
pub mod audit;
pub mod balance;
pub mod batch;
pub mod deliveries;
pub mod events;
pub mod inbound;
pub mod lifecycle;
pub mod monitoring;
pub mod outbox;
pub mod participation;
pub mod screening_log;
pub mod sessions;
pub mod since;
pub mod snapshots;
pub mod subjects;
pub mod tokens;
pub mod trials;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyConnection;
use sqlx::{Any, AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL `{0}`: use sqlite://FILE or postgres://...")]
    UnsupportedUrl(String),
    #[error("cannot create the directory for the SQLite file {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// True when the error is a unique-constraint violation (a lost race the caller can resolve).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Column types for [`Backend::json_rows`]: how a JSON value becomes a column value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    Text,
    Integer,
    Real,
}

/// Which SQL engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `IN`-style membership test against the strings of the JSON array bound as parameter
    /// `$n`: `column {in_json(n)}`. Passing a batch's keys as one JSON parameter keeps the SQL
    /// text fixed whatever the batch size, so the statement is prepared once per connection.
    /// On PostgreSQL the list becomes an array (`= ANY(ARRAY(...))`), which the planner can
    /// drive an index scan with, rather than a semi-join that may scan the whole table.
    pub fn in_json(self, n: usize) -> String {
        match self {
            Backend::Sqlite => format!("IN (SELECT value FROM json_each(${n}))"),
            Backend::Postgres => {
                format!("= ANY(ARRAY(SELECT jsonb_array_elements_text(${n}::jsonb)))")
            }
        }
    }

    /// `IN (...)` over a JSON array of integers bound as parameter `n`.
    pub fn in_json_integers(self, n: usize) -> String {
        match self {
            Backend::Sqlite => format!("IN (SELECT value FROM json_each(${n}))"),
            Backend::Postgres => {
                format!("= ANY(ARRAY(SELECT jsonb_array_elements_text(${n}::jsonb)::bigint))")
            }
        }
    }

    /// One text value holding the rows of `SELECT {columns} FROM {from}` as a JSON array of
    /// arrays (`[]` when there are none), for large reads: one row crosses the driver instead
    /// of one per result row, which through sqlx `Any` costs a conversion per value and, on
    /// SQLite, a channel message per row. Row order is not guaranteed; sort after parsing.
    pub fn json_array_rows(self, columns: &[&str], from: &str) -> String {
        let cols = columns.join(", ");
        match self {
            Backend::Sqlite => format!("SELECT json_group_array(json_array({cols})) FROM {from}"),
            Backend::Postgres => format!(
                "SELECT COALESCE(json_agg(json_build_array({cols})), '[]'::json)::text FROM {from}"
            ),
        }
    }

    /// `SELECT col AS col, ... FROM` the objects of the JSON array bound as parameter `$n`, in array
    /// order: the source of a multi-row `INSERT ... SELECT` with fixed SQL text.
    pub fn json_rows(self, n: usize, columns: &[(&str, SqlType)]) -> String {
        let cols: Vec<String> = columns
            .iter()
            .map(|&(name, kind)| match (self, kind) {
                (Backend::Sqlite, _) => format!("json_extract(v, '$.{name}') AS {name}"),
                (Backend::Postgres, SqlType::Text) => format!("e.v->>'{name}' AS {name}"),
                (Backend::Postgres, SqlType::Integer) => {
                    format!("(e.v->>'{name}')::bigint AS {name}")
                }
                (Backend::Postgres, SqlType::Real) => {
                    format!("(e.v->>'{name}')::double precision AS {name}")
                }
            })
            .collect();
        // `WHERE true` lets SQLite parse a following ON CONFLICT clause. SQLite renders an
        // element's `value` as text at every mention and `json_extract` parses it again, so
        // each element is rendered once into a materialised row and read from there (half
        // the cost of a 16-row, 13-column insert).
        match self {
            Backend::Sqlite => format!(
                "WITH r AS MATERIALIZED (SELECT key AS k, value AS v FROM json_each(${n})) \
                 SELECT {} FROM r WHERE true ORDER BY k",
                cols.join(", ")
            ),
            Backend::Postgres => format!(
                "SELECT {} FROM jsonb_array_elements(${n}::jsonb) WITH ORDINALITY AS e(v, ord) \
                 WHERE true ORDER BY e.ord",
                cols.join(", ")
            ),
        }
    }
}

/// The rows of `from` (a `FROM` clause whose `WHERE` has the trial as `$1` and a number the
/// rows lie above as `$2`) read as one JSON text (see [`Backend::json_array_rows`]): each row
/// an array of `columns` in order, deserialised as `T`; `what` names the rows in an error. For
/// thousands of rows this is several times faster than reading them row by row through sqlx
/// `Any`. The rows come in no particular order.
pub(crate) async fn json_rows_after<T: serde::de::DeserializeOwned>(
    conn: &mut AnyConnection,
    backend: Backend,
    columns: &[&str],
    from: &str,
    (trial_id, after): (&str, i64),
    what: &str,
) -> StoreResult<Vec<T>> {
    let json: String = sqlx::query_scalar(&backend.json_array_rows(columns, from))
        .bind(trial_id)
        .bind(after)
        .fetch_one(&mut *conn)
        .await?;
    serde_json::from_str(&json)
        .map_err(|e| StoreError::Corrupt(format!("{what} of `{trial_id}` as JSON: {e}")))
}

/// The page cache every SQLite connection gets (64 MiB).
pub(crate) const SQLITE_CACHE_PRAGMA: &str = "PRAGMA cache_size = -65536";

/// Key of the PostgreSQL advisory lock every write transaction holds ("rrct" in ASCII).
pub const WRITER_LOCK_KEY: i64 = 0x7272_6374;

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite: the one connection write transactions use, behind a mutex. SQLite allows one
    /// writer at a time; queueing writers on the mutex instead of in SQLite's busy handler
    /// (which sleeps in steps of up to 100 ms) keeps enrolment latency flat, and safety still
    /// comes from the database's own lock (`BEGIN IMMEDIATE`). The connection's page cache
    /// stays warm from one write to the next (a pooled connection's is stale whenever another
    /// connection wrote since it last ran), no reader waits for it, and it is held here rather
    /// than returned to a pool after each transaction (a return costs a task and a round
    /// trip to the connection's thread, and the next writer waits for both).
    /// `None` inside once the store is closed.
    writer: Option<Arc<Mutex<Option<HeldWriter>>>>,
}

/// The SQLite write connection and whether a transaction is open on it.
pub(crate) struct HeldWriter {
    url: String,
    conn: AnyConnection,
    /// A transaction is open: set by `BEGIN IMMEDIATE`, cleared by its `COMMIT` or
    /// `ROLLBACK`. One left open (a [`WriteTx`] dropped where no runtime could roll it back)
    /// is rolled back before the next begins.
    open: bool,
}

impl HeldWriter {
    async fn connect(url: &str) -> StoreResult<HeldWriter> {
        let mut conn = <AnyConnection as sqlx::Connection>::connect(url).await?;
        sqlite_pragmas(&mut conn).await?;
        Ok(HeldWriter {
            url: url.to_string(),
            conn,
            open: false,
        })
    }

    /// Begin a write transaction, first ending one left open.
    async fn begin(&mut self) -> StoreResult<()> {
        if self.open {
            self.rollback().await?;
        }
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut self.conn)
            .await?;
        self.open = true;
        Ok(())
    }

    async fn commit(&mut self) -> StoreResult<()> {
        match sqlx::query("COMMIT").execute(&mut self.conn).await {
            Ok(_) => {
                self.open = false;
                Ok(())
            }
            Err(e) => {
                // Not committed (a full disk, an I/O error): nothing of it stays.
                let _ = self.rollback().await;
                Err(e.into())
            }
        }
    }

    /// Roll back; a connection that cannot is replaced (closing it rolls back).
    async fn rollback(&mut self) -> StoreResult<()> {
        if sqlx::query("ROLLBACK")
            .execute(&mut self.conn)
            .await
            .is_err()
        {
            let fresh = HeldWriter::connect(&self.url).await?;
            let broken = std::mem::replace(self, fresh);
            let _ = sqlx::Connection::close(broken.conn).await;
        }
        self.open = false;
        Ok(())
    }
}

/// What every SQLite connection is set to: WAL lets readers run beside the writer;
/// synchronous=FULL makes every commit durable before the allocation is acknowledged. Reads go
/// through a memory map of the file (up to SQLite's default limit of 2 GiB; writes still go
/// through the WAL): every connection then reads the pages the operating system already holds,
/// instead of copying each into a page cache of its own, which is cold on a connection the pool
/// has just opened (a trial's first read of 100,000 events, or the first requests after start).
async fn sqlite_pragmas(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    conn.execute(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
         PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA mmap_size = 2147418112;",
    )
    .await?;
    conn.execute(SQLITE_CACHE_PRAGMA).await?;
    Ok(())
}

/// A write transaction: on PostgreSQL a pooled connection's, on SQLite the held write
/// connection's (locked until the transaction ends).
pub struct WriteTx {
    inner: TxInner,
    backend: Backend,
    /// The audit chain's head as of this transaction, once read; advanced in memory as entries
    /// are chained and written back with them.
    pub(crate) head: Option<audit::ChainHead>,
}

enum TxInner {
    Pooled(Transaction<'static, Any>),
    /// `None` once committed or rolled back.
    Held(Option<OwnedMappedMutexGuard<Option<HeldWriter>, HeldWriter>>),
}

impl WriteTx {
    pub fn conn(&mut self) -> &mut AnyConnection {
        match &mut self.inner {
            TxInner::Pooled(tx) => tx,
            TxInner::Held(Some(writer)) => &mut writer.conn,
            // Unreachable: commit and rollback consume the transaction.
            TxInner::Held(None) => unreachable!("a write transaction used after it ended"),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The transaction, taken out: what is left behind has ended.
    fn take(&mut self) -> TxInner {
        std::mem::replace(&mut self.inner, TxInner::Held(None))
    }

    pub async fn commit(mut self) -> StoreResult<()> {
        match self.take() {
            TxInner::Pooled(tx) => Ok(tx.commit().await?),
            TxInner::Held(Some(mut writer)) => writer.commit().await,
            TxInner::Held(None) => Ok(()),
        }
    }

    pub async fn rollback(mut self) -> StoreResult<()> {
        match self.take() {
            TxInner::Pooled(tx) => Ok(tx.rollback().await?),
            TxInner::Held(Some(mut writer)) => writer.rollback().await,
            TxInner::Held(None) => Ok(()),
        }
    }
}

impl WriteTx {
    /// The transaction was committed by a `COMMIT` ending a statement text run on it (see
    /// `batch::write_batch_and_commit`; SQLite only).
    pub(crate) fn committed(mut self) {
        if let TxInner::Held(Some(mut writer)) = self.take() {
            writer.open = false;
        }
    }
}

impl Drop for WriteTx {
    /// Dropped without commit or rollback (an error on the way, a cancelled request): rolled
    /// back at once, as sqlx does for a pooled transaction, with the write connection locked
    /// until it is. Without a runtime to do it on, the next transaction does it first.
    fn drop(&mut self) {
        // A pooled transaction taken out here is dropped as it was: sqlx rolls it back.
        if let TxInner::Held(Some(mut writer)) = self.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(e) = writer.rollback().await {
                        tracing::warn!(error = %e, "a dropped write transaction was not rolled back");
                    }
                });
            }
        }
    }
}

impl Store {
    /// Connect to `url` (`sqlite://FILE` creates the file; `postgres://...` must exist) and
    /// bring the schema up to date.
    #[tracing::instrument(skip_all, err)]
    pub async fn connect(url: &str) -> StoreResult<Store> {
        Store::connect_with(url, Duration::from_secs(30)).await
    }

    /// As [`Store::connect`], waiting at most `timeout` for a connection (then, and whenever
    /// a connection cannot be had within it later, the operation fails with
    /// `PoolTimedOut`, which the services answer as `unavailable`). A new SQLite file is
    /// created readable by its owner only.
    #[tracing::instrument(skip_all, err)]
    pub async fn connect_with(url: &str, timeout: Duration) -> StoreResult<Store> {
        Store::connect_pooled(url, timeout, None).await
    }

    /// As [`Store::connect_with`], holding at most `pool` connections at once (`None`: 8 for
    /// SQLite, 32 for PostgreSQL; at least 2, so a reader never waits behind the writer).
    #[tracing::instrument(skip_all, err)]
    pub async fn connect_pooled(
        url: &str,
        timeout: Duration,
        pool: Option<u32>,
    ) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(path) = url.strip_prefix("sqlite://") {
            let file = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(file).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                        path: file.to_string(),
                        source,
                    })?;
                }
            }
            create_private_file(file)?;
            let url = if path.contains('?') {
                url.to_string()
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };

        let sqlite_options = || {
            AnyPoolOptions::new()
                .after_connect(|conn, _meta| Box::pin(async move { sqlite_pragmas(conn).await }))
        };
        let options = match backend {
            Backend::Sqlite => sqlite_options().max_connections(pool.unwrap_or(8).max(2)),
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(pool.unwrap_or(32).max(2))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // A trial's tables start empty and grow fast; a generic plan cached
                            // while they were empty would keep scanning the whole trial long after.
                            // Custom plans see the tables as they are at each execution.
                            conn.execute("SET plan_cache_mode = force_custom_plan")
                                .await?;
                            Ok(())
                        })
                    })
            }
        };
        let pool = options.acquire_timeout(timeout).connect(&url).await?;
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        let writer = match backend {
            Backend::Sqlite => Some(Arc::new(Mutex::new(Some(HeldWriter::connect(&url).await?)))),
            Backend::Postgres => None,
        };
        Ok(Store {
            pool,
            backend,
            writer,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Whether the database can be written: a write of nothing (the audit chain head set to
    /// itself) under the writer lock, rolled back. A read-only file, a read-only server or a
    /// full disk fails here.
    pub async fn check_writable(&self) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
            .execute(tx.conn())
            .await?;
        tx.rollback().await
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Begin a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a read-then-write sequence can never fail half-way on a stale
    /// snapshot.
    pub async fn begin_write(&self) -> StoreResult<WriteTx> {
        let inner = match &self.writer {
            Some(writer) => {
                let mut writer =
                    OwnedMutexGuard::try_map(writer.clone().lock_owned().await, |w| w.as_mut())
                        .map_err(|_| sqlx::Error::PoolClosed)?;
                writer.begin().await?;
                TxInner::Held(Some(writer))
            }
            None => TxInner::Pooled(
                self.pool
                    .begin_with(format!(
                        "BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK_KEY})"
                    ))
                    .await?,
            ),
        };
        Ok(WriteTx {
            inner,
            backend: self.backend,
            head: None,
        })
    }

    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            if let Some(mut writer) = writer.lock().await.take() {
                if writer.open {
                    let _ = writer.rollback().await;
                }
                let _ = sqlx::Connection::close(writer.conn).await;
            }
        }
        self.pool.close().await;
    }
}

/// `INSERT INTO table (columns) SELECT ... FROM json` with all `rows` as one JSON parameter.
pub(crate) async fn insert_json_rows<T: Serialize>(
    tx: &mut WriteTx,
    table: &str,
    columns: &[(&str, SqlType)],
    rows: &[T],
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let sql = format!(
        "INSERT INTO {table} ({}) {}",
        names.join(", "),
        tx.backend().json_rows(1, columns)
    );
    let json = serde_json::to_string(rows)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode {table} rows: {e}")))?;
    sqlx::query(&sql).bind(json).execute(tx.conn()).await?;
    Ok(())
}

/// Create an SQLite database file that does not exist yet with mode 0600 (the database holds
/// what identifies patients' allocations); an existing file is left as it is. SQLite gives its
/// journal files the database file's mode.
fn create_private_file(file: &str) -> StoreResult<()> {
    if file.is_empty() || file == ":memory:" || std::path::Path::new(file).exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(file) {
        Ok(_) => Ok(()),
        // Created meanwhile by another process: theirs to have made.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::CreateDir {
            path: file.to_string(),
            source,
        }),
    }
}

/// Current time as stored: UTC RFC 3339 with microseconds.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn head_seq(store: &Store) -> i64 {
        sqlx::query_scalar("SELECT seq FROM audit_head WHERE id = 1")
            .fetch_one(store.pool())
            .await
            .unwrap()
    }

    /// SQLite's write connection is held, not pooled: a write transaction dropped without
    /// commit or rollback (an error on the way, a cancelled request) must leave nothing, must
    /// not keep the database's write lock from another process until this store writes again,
    /// and must not stop this store's next write.
    #[tokio::test]
    async fn a_dropped_sqlite_write_is_rolled_back_and_lets_the_next_writer_in() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let store = Store::connect(&url).await.unwrap();
        let before = head_seq(&store).await;
        {
            let mut tx = store.begin_write().await.unwrap();
            sqlx::query("UPDATE audit_head SET seq = seq + 100 WHERE id = 1")
                .execute(tx.conn())
                .await
                .unwrap();
        }
        // Another store on the file, as another process: it gets SQLite's own write lock
        // (waiting at most its busy timeout), so the dropped transaction has ended.
        let other = Store::connect(&url).await.unwrap();
        let mut tx = other.begin_write().await.unwrap();
        sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1")
            .execute(tx.conn())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        other.close().await;
        assert_eq!(
            head_seq(&store).await,
            before + 1,
            "the dropped write left nothing"
        );
        // This store writes again, and a rollback leaves nothing either.
        let mut tx = store.begin_write().await.unwrap();
        sqlx::query("UPDATE audit_head SET seq = seq + 10 WHERE id = 1")
            .execute(tx.conn())
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        let mut tx = store.begin_write().await.unwrap();
        sqlx::query("UPDATE audit_head SET seq = seq + 2 WHERE id = 1")
            .execute(tx.conn())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(head_seq(&store).await, before + 3);
        // Closed: no more writes.
        store.close().await;
        assert!(store.begin_write().await.is_err());
    }
}
