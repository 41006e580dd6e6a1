//! The randomised subjects of a trial read a page at a time, in randomisation order, within a
//! reader's site scope (the FHIR `ResearchSubject` search), and one subject by randomisation
//! number.

use super::allocations::ALLOCATION_COLUMNS;
use super::{Store, StoreResult};
use crate::randomise::AllocationRecord;

/// Up to `limit` allocations of `trial_id` with a randomisation number above `after`, of
/// `site` only when given, in randomisation order.
pub async fn page(
    store: &Store,
    trial_id: &str,
    site: Option<&str>,
    after: i64,
    limit: i64,
) -> StoreResult<Vec<AllocationRecord>> {
    let sql = format!(
        "SELECT {ALLOCATION_COLUMNS} FROM allocations WHERE trial_id = $1 \
         AND randomisation_number > $2 AND ($3 = '' OR site_code = $3) \
         ORDER BY randomisation_number LIMIT $4"
    );
    Ok(sqlx::query_as(&sql)
        .bind(trial_id)
        .bind(after)
        .bind(site.unwrap_or(""))
        .bind(limit)
        .fetch_all(store.pool())
        .await?)
}

/// How many allocations `trial_id` has (of `site` only, when given).
pub async fn count(store: &Store, trial_id: &str, site: Option<&str>) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM allocations WHERE trial_id = $1 AND ($2 = '' OR site_code = $2)",
    )
    .bind(trial_id)
    .bind(site.unwrap_or(""))
    .fetch_one(store.pool())
    .await?)
}

/// One allocation by randomisation number.
pub async fn by_number(
    store: &Store,
    trial_id: &str,
    number: i64,
) -> StoreResult<Option<AllocationRecord>> {
    let sql = format!(
        "SELECT {ALLOCATION_COLUMNS} FROM allocations WHERE trial_id = $1 \
         AND randomisation_number = $2"
    );
    Ok(sqlx::query_as(&sql)
        .bind(trial_id)
        .bind(number)
        .fetch_optional(store.pool())
        .await?)
}
