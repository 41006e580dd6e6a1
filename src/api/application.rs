//! The one way a server is assembled: open the database, register the trials, bind the
//! listener, then serve until told to stop. `rrct serve`, the demo, the integration tests and
//! the benchmarks all build their server here, so what they run is what production runs.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;

use crate::protocol::{self, ProtocolErrors};
use crate::randomise::MasterSeed;
use crate::service::trials::{self, LoadError};
use crate::service::{connect, AppState, Clock, TrialRegistry};

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

/// What a server is built from.
pub struct Settings {
    /// `sqlite://FILE` or `postgres://...`.
    pub database: String,
    pub trials: Trials,
    /// Port 0 picks a free port; [`Application::address`] tells which.
    pub bind: SocketAddr,
    /// The engine's clock: the system's, but for demonstrations and tests.
    pub clock: Clock,
}

/// Why a server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot open the database {database}: {source}")]
    Database {
        database: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{origin}: {errors}")]
    Protocol {
        origin: String,
        errors: ProtocolErrors,
    },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        bind: SocketAddr,
        source: std::io::Error,
    },
}

/// A server, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    state: AppState,
}

impl Application {
    /// Open the database, register the trials and bind; nothing is served until
    /// [`Application::run_until`].
    #[tracing::instrument(skip_all, err)]
    pub async fn build(settings: Settings) -> Result<Application, BuildError> {
        let store = connect(&settings.database)
            .await
            .map_err(|source| BuildError::Database {
                database: redact(&settings.database),
                source: source.into(),
            })?;
        let registry = match settings.trials {
            Trials::Directory(dir) => trials::load_dir(&store, &dir).await?,
            Trials::Sources { protocols, seed } => {
                let mut runtimes = Vec::new();
                for (origin, source) in protocols {
                    let protocol = protocol::parse(&source, &origin)
                        .map_err(|errors| BuildError::Protocol { origin, errors })?;
                    runtimes.push(
                        trials::register_with_seed(&store, protocol, &source, seed.clone()).await?,
                    );
                }
                TrialRegistry::from_runtimes(runtimes)
            }
        };
        let listener =
            TcpListener::bind(settings.bind)
                .await
                .map_err(|source| BuildError::Bind {
                    bind: settings.bind,
                    source,
                })?;
        let address = listener.local_addr().map_err(|source| BuildError::Bind {
            bind: settings.bind,
            source,
        })?;
        Ok(Application {
            listener,
            address,
            state: AppState::new(store, registry, settings.clock),
        })
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
    /// data are read for the trial views meanwhile.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.state.warm_in_background();
        super::serve(self.listener, self.state, shutdown).await
    }
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
