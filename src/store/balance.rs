//! The counts the adaptive procedures balance and the cluster → arm table (migration 0003).
//!
//! They are kept current by every enrolment batch (see [`super::batch::write_batch_and_commit`]),
//! so a decision reads a handful of rows instead of the allocation history. Rows are written
//! with absolute values computed under the writer lock, never incremented blindly, so a batch
//! that several enrolments of one stratum pass through writes each count once.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError, StoreResult};

/// One stratum's allocations to one arm (clusters in a cluster trial).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArmCountRow {
    pub trial_id: String,
    pub stratum: String,
    pub arm: String,
    pub n: i64,
}

/// Trial-wide units at one level of a minimisation factor allocated to one arm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarginalRow {
    pub trial_id: String,
    pub factor: String,
    pub level: String,
    pub arm: String,
    pub n: i64,
}

/// A randomised cluster and the allocation that randomised it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterRow {
    pub trial_id: String,
    pub cluster: String,
    pub arm: String,
    pub stratum: String,
    pub randomisation_number: i64,
}

/// The counts and clusters a batch loaded, keyed for lookups; arms by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Balance {
    /// (stratum, arm) → n.
    pub arm_counts: HashMap<(String, String), i64>,
    /// (factor, level, arm) → n.
    pub marginals: HashMap<(String, String, String), i64>,
    /// cluster → its row.
    pub clusters: HashMap<String, ClusterRow>,
}

impl Balance {
    pub fn arm_count(&self, stratum: &str, arm: &str) -> i64 {
        self.arm_counts
            .get(&(stratum.to_string(), arm.to_string()))
            .copied()
            .unwrap_or(0)
    }

    pub fn marginal(&self, factor: &str, level: &str, arm: &str) -> i64 {
        self.marginals
            .get(&(factor.to_string(), level.to_string(), arm.to_string()))
            .copied()
            .unwrap_or(0)
    }
}

/// Which counts a batch needs: the strata whose arm counts it reads, the factors and levels of
/// the marginal counts (every stored (factor, level) pair of these lists is loaded), and the
/// clusters.
#[derive(Debug, Clone, Default)]
pub struct BalanceKeys<'a> {
    pub strata: Vec<&'a str>,
    pub factors: Vec<&'a str>,
    pub levels: Vec<&'a str>,
    pub clusters: Vec<&'a str>,
}

/// Every stored count and cluster of a trial, for reports and tests.
#[tracing::instrument(skip_all, fields(trial = %trial_id), err)]
pub async fn of_trial(store: &Store, trial_id: &str) -> StoreResult<Balance> {
    let pool = store.pool();
    let mut balance = Balance::default();
    for row in sqlx::query("SELECT stratum, arm, n FROM arm_counts WHERE trial_id = $1")
        .bind(trial_id)
        .fetch_all(pool)
        .await?
    {
        balance.arm_counts.insert(
            (row.try_get("stratum")?, row.try_get("arm")?),
            row.try_get("n")?,
        );
    }
    for row in sqlx::query("SELECT factor, level, arm, n FROM marginal_counts WHERE trial_id = $1")
        .bind(trial_id)
        .fetch_all(pool)
        .await?
    {
        balance.marginals.insert(
            (
                row.try_get("factor")?,
                row.try_get("level")?,
                row.try_get("arm")?,
            ),
            row.try_get("n")?,
        );
    }
    for row in sqlx::query(
        "SELECT cluster, arm, stratum, randomisation_number FROM clusters WHERE trial_id = $1",
    )
    .bind(trial_id)
    .fetch_all(pool)
    .await?
    {
        balance.insert_cluster(&row, trial_id, "cluster")?;
    }
    Ok(balance)
}

impl Balance {
    /// Keep the cluster of a row that has `arm`, `stratum` and `randomisation_number` columns
    /// and the cluster in `cluster_column`.
    pub(super) fn insert_cluster(
        &mut self,
        row: &sqlx::any::AnyRow,
        trial_id: &str,
        cluster_column: &str,
    ) -> StoreResult<()> {
        let cluster: String = row.try_get(cluster_column)?;
        self.clusters.insert(
            cluster.clone(),
            ClusterRow {
                trial_id: trial_id.to_string(),
                cluster,
                arm: row.try_get("arm")?,
                stratum: row.try_get("stratum")?,
                randomisation_number: row.try_get("randomisation_number")?,
            },
        );
        Ok(())
    }
}

/// A count read from the database as the procedures take it.
pub fn unsigned(n: i64) -> StoreResult<u64> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("a stored count is negative ({n})")))
}
