//! Every accepted delivery of a source: when it came, from which token, how many events it
//! carried and stored. A delivery without events counts too: it says the register had nothing
//! new, which is how a quiet source is told from a silent one.

use sqlx::{AnyConnection, Row};

use super::{Store, StoreError, StoreResult, WriteTx};
use crate::endpoints::sources::Delivery;

/// A delivery as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub source: String,
    /// RFC 3339 UTC, the service's clock.
    pub received_at: String,
    pub token_id: Option<String>,
    pub events_received: u64,
    pub events_stored: u64,
}

/// Record one delivery (in the delivering transaction).
pub async fn record(tx: &mut WriteTx, row: &DeliveryRow) -> StoreResult<()> {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO source_deliveries (source, received_at, token_id, events_received, events_stored) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&row.source)
    .bind(&row.received_at)
    .bind(row.token_id.as_deref())
    .bind(count(row.events_received))
    .bind(count(row.events_stored))
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Deliveries recorded after `after` (a delivery id), in the order recorded, with the last id.
pub async fn after(conn: &mut AnyConnection, after: i64) -> StoreResult<(Vec<Delivery>, i64)> {
    let rows = sqlx::query(
        "SELECT delivery_id, source, received_at, events_stored FROM source_deliveries \
         WHERE delivery_id > $1 ORDER BY delivery_id",
    )
    .bind(after)
    .fetch_all(conn)
    .await?;
    let mut last = after;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        last = r.try_get("delivery_id")?;
        let at: String = r.try_get("received_at")?;
        let received_on = crate::endpoints::parse_event_date(at.get(..10).unwrap_or(&at))
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "source_deliveries.received_at `{at}` is not a date"
                ))
            })?;
        let stored: i64 = r.try_get("events_stored")?;
        out.push(Delivery {
            source: r.try_get("source")?,
            received_on,
            events_stored: u64::try_from(stored).unwrap_or(0),
        });
    }
    Ok((out, last))
}

/// Every delivery (reports and tests).
pub async fn all(store: &Store) -> StoreResult<Vec<Delivery>> {
    let mut conn = store.pool().acquire().await?;
    Ok(after(&mut conn, 0).await?.0)
}
