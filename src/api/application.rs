//! The one way a server is assembled: open the database, register the trials, bind the
//! listener, then serve until told to stop. `rrct serve`, the demo, the integration tests and
//! the benchmarks all build their server here, so what they run is what production runs.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::protocol::{self, ProtocolErrors};
use crate::randomise::MasterSeed;
use crate::service::seed_vault::SeedKey;
use crate::service::sign_in::{SignInConfig, SignInError};
use crate::service::trials::{self, LoadError};
use crate::service::webhooks::{self, DeliveryOptions};
use crate::service::{connect_pooled, AppState, Clock, TrialRegistry};

/// Where the served trials come from.
pub enum Trials {
    /// Every `*.toml` protocol in a directory; new trials get seeds from the operating system
    /// (or `RRCT_MASTER_SEED`), as `rrct serve` does.
    Directory(PathBuf),
    /// Protocol texts `(origin, source)` registered with one fixed master seed: the demo, tests
    /// and benchmarks, whose allocation lists must be repeatable.
    Sources {
        protocols: Vec<(String, String)>,
        seed: MasterSeed,
    },
}

/// Bounds that keep one client from holding the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a client may take to send a request's headers (a half-sent request is dropped).
    pub header_read_timeout: Duration,
    /// Time a request may take in all before it is answered `503 unavailable`.
    pub request_timeout: Duration,
    /// Connections served at once; further connections wait to be accepted.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// What a server is built from.
pub struct Settings {
    /// `sqlite://FILE` or `postgres://...`.
    pub database: String,
    /// How long to wait for a database connection before answering `503 unavailable`.
    pub database_timeout: Duration,
    /// Most database connections this server holds at once; `None`: the backend's default
    /// (8 for SQLite, 32 for PostgreSQL). Instances sharing one PostgreSQL server must stay,
    /// together, under its `max_connections`.
    pub database_pool: Option<u32>,
    pub trials: Trials,
    /// Port 0 picks a free port; [`Application::address`] tells which.
    pub bind: SocketAddr,
    /// The engine's clock: the system's, but for demonstrations and tests.
    pub clock: Clock,
    /// The key the trials' master seeds are sealed with (kept apart from the database).
    pub seed_key: SeedKey,
    pub limits: Limits,
    /// How webhooks are delivered (the worker runs beside the server).
    pub webhooks: DeliveryOptions,
    /// How often stale sources are looked for (and their alarm raised); `None`: never (tests and
    /// the demo, which look when they choose).
    pub stale_source_check: Option<Duration>,
    /// How people sign in to the pages: sessions' timeouts, and the OpenID Connect issuer.
    pub sign_in: SignInConfig,
}

impl Settings {
    /// Settings with the defaults for everything but the database, the trials, the clock and
    /// the seed key: a loopback port picked by the system.
    pub fn local(database: String, trials: Trials, clock: Clock, seed_key: SeedKey) -> Settings {
        Settings {
            database,
            database_timeout: Duration::from_secs(5),
            database_pool: None,
            trials,
            bind: ([127, 0, 0, 1], 0).into(),
            clock,
            seed_key,
            limits: Limits::default(),
            webhooks: DeliveryOptions::default(),
            stale_source_check: None,
            sign_in: SignInConfig::default(),
        }
    }
}

/// Why a server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot open the database {database}: {reason}")]
    Database {
        database: String,
        /// The store's error, written out (not chained, so it is said once).
        reason: String,
    },
    #[error("{origin}: {errors}")]
    Protocol {
        origin: String,
        errors: ProtocolErrors,
    },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(
        "the database {database} cannot be written ({reason}); a trial engine must not serve \
         enrolments it cannot record"
    )]
    ReadOnly { database: String, reason: String },
    #[error("cannot set up the sign-in: {0}")]
    SignIn(#[from] SignInError),
    #[error("cannot listen on {bind}: {reason}")]
    Bind {
        bind: SocketAddr,
        reason: std::io::Error,
    },
}

/// A server, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    state: AppState,
    limits: Limits,
    seed_key: SeedKey,
    webhooks: DeliveryOptions,
    stale_source_check: Option<Duration>,
}

impl Application {
    /// Open the database, register the trials and bind; nothing is served until
    /// [`Application::run_until`].
    #[tracing::instrument(skip_all, err)]
    pub async fn build(settings: Settings) -> Result<Application, BuildError> {
        let store = connect_pooled(
            &settings.database,
            settings.database_timeout,
            settings.database_pool,
        )
        .await
        .map_err(|e| BuildError::Database {
            database: redact(&settings.database),
            reason: e.to_string(),
        })?;
        store
            .check_writable()
            .await
            .map_err(|e| BuildError::ReadOnly {
                database: redact(&settings.database),
                reason: e.to_string(),
            })?;
        let registry = match settings.trials {
            Trials::Directory(dir) => trials::load_dir(&store, &dir, &settings.seed_key).await?,
            Trials::Sources { protocols, seed } => {
                let mut runtimes = Vec::new();
                for (origin, source) in protocols {
                    let protocol = protocol::parse(&source, &origin)
                        .map_err(|errors| BuildError::Protocol { origin, errors })?;
                    runtimes.push(
                        trials::register_with_seed(
                            &store,
                            protocol,
                            &source,
                            seed.clone(),
                            &settings.seed_key,
                        )
                        .await?,
                    );
                }
                TrialRegistry::from_runtimes(runtimes)
            }
        };
        let listener =
            TcpListener::bind(settings.bind)
                .await
                .map_err(|reason| BuildError::Bind {
                    bind: settings.bind,
                    reason,
                })?;
        let address = listener.local_addr().map_err(|reason| BuildError::Bind {
            bind: settings.bind,
            reason,
        })?;
        Ok(Application {
            listener,
            address,
            state: AppState::new(store, registry, settings.clock).with_sign_in(settings.sign_in)?,
            limits: settings.limits,
            seed_key: settings.seed_key,
            webhooks: settings.webhooks,
            stale_source_check: settings.stale_source_check,
        })
    }

    /// Who may scrape `GET /metrics` (an admin token by default).
    pub fn with_metrics_access(mut self, access: crate::service::metrics::MetricsAccess) -> Self {
        self.state.metrics_access = access;
        self
    }

    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The engine behind the server (tokens, direct checks in tests).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` resolves, then finish in-flight requests. The served trials'
    /// data are read for the trial views meanwhile, and webhooks are delivered until the server
    /// stops (their requests in flight finish too).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.state.warm_in_background();
        let (stop_webhooks, webhooks_stopped) = tokio::sync::oneshot::channel::<()>();
        let store = self.state.store.clone();
        let delivery = webhooks::spawn_delivery(store, self.seed_key, self.webhooks, async {
            let _ = webhooks_stopped.await;
        });
        let (stop_alarms, alarms_stopped) = tokio::sync::oneshot::channel::<()>();
        let alarms = self.stale_source_check.map(|every| {
            tokio::spawn(crate::service::alarms::watch(
                self.state.store.clone(),
                self.state.clock.clone(),
                every,
                async {
                    let _ = alarms_stopped.await;
                },
            ))
        });
        let served = serve_with_limits(self.listener, self.state, self.limits, shutdown).await;
        let _ = stop_webhooks.send(());
        let _ = stop_alarms.send(());
        let _ = delivery.await;
        if let Some(alarms) = alarms {
            let _ = alarms.await;
        }
        served
    }
}

/// The accept loop: HTTP/1.1 with a header-read timeout, at most `max_connections` at once,
/// each request's client address in its extensions (for the failed-authentication limit), and
/// a graceful end: on `shutdown` no new connection is taken and those open finish their
/// requests.
pub async fn serve_with_limits(
    listener: TcpListener,
    state: AppState,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    let router = super::app(state, limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service =
            router
                .clone()
                .map_request(move |request: hyper::Request<hyper::body::Incoming>| {
                    let mut request = request.map(axum::body::Body::new);
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    request
                });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
