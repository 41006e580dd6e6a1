//! What a running engine holds: the store, the trials it serves, the enrolment queue, the token
//! authenticator and the trial views. Every interface of a server (the API, the pages) reaches
//! the engine through this one value, and never the store behind it.

use std::sync::Arc;

use super::auth_failures::FailedAuthentications;
use super::clock::Clock;
use super::enrol::EnrolmentQueue;
use super::tokens::Authenticator;
use super::trial_view::TrialViews;
use super::TrialRegistry;
use crate::store::{Store, StoreError};

/// The engine's shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub trials: Arc<TrialRegistry>,
    pub enrolments: EnrolmentQueue,
    pub auth: Authenticator,
    /// Trials read and prepared, keyed by the database's audit-chain head.
    pub views: Arc<TrialViews>,
    /// When things happen, and which day is today.
    pub clock: Clock,
    /// Failed authentications by client address.
    pub auth_failures: Arc<FailedAuthentications>,
    /// Answers to CloudEvents, kept in groups.
    pub kept: super::keeper::Keeper,
    /// The pages' sessions.
    pub sessions: super::sessions::Sessions,
    /// The issuer people sign in to the pages with, when one is configured.
    pub relying_party: Option<Arc<super::sign_in::RelyingParty>>,
    /// What the engine counts for Prometheus.
    pub metrics: super::metrics::SharedMetrics,
    /// Who may scrape them.
    pub metrics_access: super::metrics::MetricsAccess,
}

impl AppState {
    /// State for serving `trials` from `store`; starts the enrolment queue's task, so it must
    /// be called inside a tokio runtime.
    pub fn new(store: Store, trials: TrialRegistry, clock: Clock) -> Self {
        let metrics = super::metrics::SharedMetrics::default();
        AppState {
            enrolments: EnrolmentQueue::start_counted(
                store.clone(),
                clock.clone(),
                metrics.clone(),
            ),
            metrics,
            metrics_access: Default::default(),
            auth: Authenticator::new(store.clone()),
            kept: super::keeper::Keeper::start(store.clone()),
            sessions: super::sessions::Sessions::new(store.clone(), Default::default()),
            relying_party: None,
            views: Arc::default(),
            store,
            trials: Arc::new(trials),
            clock,
            auth_failures: Arc::default(),
        }
    }

    /// The same state with people signing in as `config` says (sessions' timeouts, the issuer).
    pub fn with_sign_in(
        mut self,
        config: super::sign_in::SignInConfig,
    ) -> Result<Self, super::sign_in::SignInError> {
        self.sessions = super::sessions::Sessions::new(self.store.clone(), config.sessions);
        self.relying_party = match config.oidc {
            Some(oidc) => Some(Arc::new(super::sign_in::RelyingParty::new(oidc)?)),
            None => None,
        };
        Ok(self)
    }

    /// Read the served trials' data for the trial views in the background and prepare each as
    /// of today, so that the first reader of a page is answered from memory (a reader
    /// meanwhile waits for the same read and preparation, not a second one). `GET /readyz`
    /// answers `503` until it is done.
    pub fn warm_in_background(&self) {
        let ids: Vec<String> = self.trials.ids().map(str::to_string).collect();
        let today = crate::endpoints::DataCutoff(self.clock.today());
        // The outcome is logged by the task.
        drop(
            self.views
                .warm_in_background(self.store.clone(), ids, today),
        );
    }
}

/// Open the database at `url` (creating and migrating an SQLite file), for the commands that
/// work on it, waiting at most `timeout` for a connection.
pub async fn connect(url: &str, timeout: std::time::Duration) -> Result<Store, StoreError> {
    Store::connect_with(url, timeout).await
}

/// As [`connect`], holding at most `pool` connections (`None`: the backend's default).
pub async fn connect_pooled(
    url: &str,
    timeout: std::time::Duration,
    pool: Option<u32>,
) -> Result<Store, StoreError> {
    Store::connect_pooled(url, timeout, pool).await
}

/// How long the commands wait for a database connection.
pub const COMMAND_DB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
