//! Operational metrics for Prometheus: what the engine counts while it runs (enrolment latency
//! and outcomes, group-commit batch sizes, events ingested per source) and what is read from
//! the database when scraped (outbox backlog, webhook delivery failures, randomised count per
//! trial, the connection pool's state).
//!
//! What it must never hold: an arm, a stratum or anything per subject. Labels are trial ids,
//! stable error codes and declared source names only, so a scrape cannot unblind a trial or
//! name a patient. Who may scrape is decided by [`super::auth::may_scrape_metrics`].

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::error::{Code, CodedError};
use crate::store::{monitoring, Store, StoreError};

/// The content type of a scrape (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Longest source name used as a label as given; longer ones are counted as `other`.
const MAX_SOURCE_LABEL: usize = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrialLabel {
    trial: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    trial: String,
    /// `randomised`, `replayed`, or the stable error code of a refusal.
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabel {
    state: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 8 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// The metrics of one running engine (each server has its own, so in-process test servers do
/// not add up).
pub struct Metrics {
    registry: Registry,
    enrol_latency: HistogramFamily<TrialLabel>,
    enrol_outcomes: Family<OutcomeLabels, Counter>,
    batch_size: Histogram,
    events_ingested: Family<SourceLabel, Counter>,
    outbox_backlog: Gauge,
    webhooks_failing: Gauge,
    webhook_failed_attempts: Gauge,
    randomised: Family<TrialLabel, Gauge>,
    pool: Family<PoolLabel, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rrct");
        let enrol_latency: HistogramFamily<TrialLabel> =
            Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let enrol_outcomes = Family::<OutcomeLabels, Counter>::default();
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 9));
        let events_ingested = Family::<SourceLabel, Counter>::default();
        let outbox_backlog = Gauge::default();
        let webhooks_failing = Gauge::default();
        let webhook_failed_attempts = Gauge::default();
        let randomised = Family::<TrialLabel, Gauge>::default();
        let pool = Family::<PoolLabel, Gauge>::default();
        registry.register(
            "enrolment_duration_seconds",
            "Time from an enrolment's arrival to its answer (refusals included)",
            enrol_latency.clone(),
        );
        registry.register(
            "enrolments",
            "Enrolment requests answered, by trial and outcome (randomised, replayed or the error code)",
            enrol_outcomes.clone(),
        );
        registry.register(
            "enrolment_batch_size",
            "Enrolments decided and committed together in one group commit",
            batch_size.clone(),
        );
        registry.register(
            "events_ingested",
            "Follow-up events in accepted batches, by the source they name",
            events_ingested.clone(),
        );
        registry.register(
            "outbox_backlog",
            "Outbox records not yet published to the bus",
            outbox_backlog.clone(),
        );
        registry.register(
            "webhooks_failing",
            "Webhooks whose last delivery attempt failed",
            webhooks_failing.clone(),
        );
        registry.register(
            "webhook_failed_attempts",
            "Failed delivery attempts of the failing webhooks since their last success",
            webhook_failed_attempts.clone(),
        );
        registry.register(
            "randomised",
            "Subjects randomised so far, by trial (never by arm)",
            randomised.clone(),
        );
        registry.register(
            "database_connections",
            "Connections of the database pool: open and idle",
            pool.clone(),
        );
        Metrics {
            registry,
            enrol_latency,
            enrol_outcomes,
            batch_size,
            events_ingested,
            outbox_backlog,
            webhooks_failing,
            webhook_failed_attempts,
            randomised,
            pool,
        }
    }

    /// One enrolment answered after `took`: `outcome` is `randomised`, `replayed` or an error
    /// code.
    pub fn enrolment(&self, trial: &str, outcome: &str, took: Duration) {
        self.enrol_latency
            .get_or_create(&TrialLabel {
                trial: trial.to_string(),
            })
            .observe(took.as_secs_f64());
        self.enrol_outcomes
            .get_or_create(&OutcomeLabels {
                trial: trial.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// A group commit of `size` enrolments.
    pub fn batch(&self, size: usize) {
        self.batch_size.observe(size as f64);
    }

    /// Events of an accepted batch, by the source each names.
    pub fn events<'a>(&self, sources: impl IntoIterator<Item = Option<&'a str>>) {
        for source in sources {
            let label = match source {
                None | Some("") => "unspecified",
                Some(s) if s.len() > MAX_SOURCE_LABEL => "other",
                Some(s) => s,
            };
            self.events_ingested
                .get_or_create(&SourceLabel {
                    source: label.to_string(),
                })
                .inc();
        }
    }

    /// The scrape: the figures read from `store` now, then every metric as OpenMetrics text.
    pub async fn render(&self, store: &Store, served: &[&str]) -> Result<String, MetricsError> {
        let snapshot = monitoring::snapshot(store).await?;
        self.outbox_backlog.set(snapshot.outbox_backlog);
        self.webhooks_failing.set(snapshot.webhooks_failing);
        self.webhook_failed_attempts
            .set(snapshot.webhook_failed_attempts);
        for trial in served {
            let count = snapshot
                .randomised
                .iter()
                .find(|(t, _)| t == trial)
                .map_or(0, |(_, n)| *n);
            self.randomised
                .get_or_create(&TrialLabel {
                    trial: trial.to_string(),
                })
                .set(count);
        }
        let pool = store.pool();
        let open = i64::from(pool.size());
        let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
        for (state, value) in [("open", open), ("idle", idle), ("in_use", open - idle)] {
            self.pool
                .get_or_create(&PoolLabel {
                    state: state.to_string(),
                })
                .set(value);
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).map_err(|_| MetricsError::Encode)?;
        Ok(text)
    }
}

/// Who may scrape the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MetricsAccess {
    /// An admin token of no single trial ([`super::Principal::may_scrape_metrics`]).
    #[default]
    Token,
    /// Anyone who reaches the port (a scraper on a private network).
    Open,
}

impl MetricsAccess {
    pub fn parse(s: &str) -> Option<MetricsAccess> {
        match s {
            "token" => Some(MetricsAccess::Token),
            "open" => Some(MetricsAccess::Open),
            _ => None,
        }
    }
}

/// A handle shared by the engine's parts.
pub type SharedMetrics = Arc<Metrics>;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the metrics could not be written as text")]
    Encode,
}

impl CodedError for MetricsError {
    fn code(&self) -> Code {
        match self {
            MetricsError::Store(e) => e.code(),
            MetricsError::Encode => Code::Internal,
        }
    }
}
