//! The Spectra server: HTTP API, ingest, command queue, first-run
//! credentials and the in-process local agent, over the [`spectra_store::Store`]
//! trait.
//!
//! Layout (layers as in STYLE.md: `http` → `services` → `Store`):
//! - [`config`]: [`config::Settings`], layered defaults < TOML (`--config`)
//!   < `SPECTRA_*` environment < flags.
//! - [`http`]: routers, extractors and DTOs; [`http::app`] builds the router
//!   (tests use it without a socket), [`http::serve`] runs it on a listener
//!   with graceful shutdown; [`http::AppError`] is the one error type.
//! - [`services`]: what handlers call: [`services::ingest`] (decode with size
//!   caps, store), [`services::commands`] (queue, long-poll with in-process
//!   wake-ups, results, expiry), [`services::auth`] (secrets, hashing, token
//!   and agent-credential checks with a small cache), [`services::agents`]
//!   (registration, statuses, hostname resolution), [`services::stats`]
//!   (counters for `/metrics`).
//! - [`state`]: [`state::AppState`], shared by handlers and the local agent.
//! - [`first_run`]: the admin user, its API token and the enrollment token.
//! - [`local_agent`]: the agent runtime in-process over a transport that
//!   calls the services directly.
//! - [`ui`]: the web dashboard (askama pages, htmx fragments, uPlot
//!   charts; assets embedded).
//! - [`tls`]: HTTPS from certificate files, and `tls init` (a private CA
//!   and a server certificate).
//! - [`run`]: opens the store, prepares credentials, starts the background
//!   tasks and serves until shutdown, then drains in order.
//! - `main.rs`: parses settings, sets up tracing (stderr), binds, prints
//!   `listening on <addr>` as the first stdout line, and calls [`run`].

pub mod config;
pub mod first_run;
pub mod http;
pub mod local_agent;
pub mod services;
pub mod state;
pub mod tls;
pub mod ui;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use spectra_store::{EmbeddedConfig, EmbeddedStore, Store};
use tokio_util::sync::CancellationToken;

pub use config::Settings;
pub use http::{app, serve};
pub use state::AppState;

use config::{ConfigError, DatabaseUrl};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("opening the store: {0}")]
    Store(#[from] spectra_store::StoreError),
    #[error("preparing credentials: {0}")]
    FirstRun(#[from] first_run::FirstRunError),
    #[error("creating the data dir {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Creates `path` (and its parents) readable by the owner only when it does
/// not exist yet: the data dir holds the database and the first-run
/// credentials. An existing directory keeps the mode its owner gave it.
pub(crate) fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Longest wait for the local agent to flush at shutdown.
const LOCAL_AGENT_STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Opens the store the settings point at.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, ServerError> {
    match settings.database()? {
        DatabaseUrl::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                create_private_dir(parent).map_err(|source| ServerError::DataDir {
                    path: parent.to_owned(),
                    source,
                })?;
            }
            let mut config = EmbeddedConfig::with_path(path);
            config.retention = settings.retention();
            // Opening runs migrations and replays the unsealed log: blocking work.
            let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(config))
                .await
                .map_err(|e| {
                    spectra_store::StoreError::Backend(format!("opening task failed: {e}"))
                })??;
            Ok(Arc::new(store))
        }
        DatabaseUrl::Postgres => {
            Err(ConfigError::PostgresUnavailable("postgres://...".into()).into())
        }
    }
}

/// Runs the server on `listener` until `shutdown` is cancelled: opens the
/// store, prints the credentials (after the `listening on` line that the
/// caller printed), starts the local agent and the command expiry, serves,
/// then shuts down in order: stop accepting and drain requests, stop the
/// local agent (it flushes), close the store (group commit flushed).
pub async fn run(
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    // Certificate problems show before anything is opened or printed.
    let tls = match settings.tls_files()? {
        Some((cert, key)) => Some(tls::ServerTls::load(cert, key)?),
        None => None,
    };
    create_private_dir(&settings.data_dir).map_err(|source| ServerError::DataDir {
        path: settings.data_dir.clone(),
        source,
    })?;
    let store = open_store(&settings).await?;
    let result = run_with_store(settings, store.clone(), listener, tls, shutdown).await;
    if let Err(e) = store.close().await {
        tracing::error!(error = %e, "closing the store failed");
    }
    tracing::info!("server stopped");
    result
}

async fn run_with_store(
    settings: Settings,
    store: Arc<dyn Store>,
    listener: tokio::net::TcpListener,
    tls: Option<tls::ServerTls>,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let credentials = first_run::ensure_credentials(store.as_ref(), &settings).await?;
    {
        let mut stdout = std::io::stdout().lock();
        // Nobody reading stdout is not a reason to stop the server.
        let _ = stdout.write_all(credentials.render().as_bytes());
        if let Some(tls) = &tls {
            let _ = stdout.write_all(
                tls.render_startup(credentials.enrollment_token.expose())
                    .as_bytes(),
            );
        }
        let _ = stdout.flush();
    }
    if tls.is_none() {
        if let Ok(addr) = listener.local_addr() {
            tls::warn_if_plaintext(addr);
        }
    }
    let local_agent = settings.local_agent;
    let state = AppState::new(store, settings, shutdown.clone());

    let expiry = tokio::spawn(
        state
            .commands
            .clone()
            .run_expiry(state.expiry_interval(), shutdown.clone()),
    );
    // The overview's sparklines: the last half hour, from the store.
    {
        let store = state.store.clone();
        let trails = state.trails.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let agents = match store.list_agents().await {
                Ok(agents) => agents.into_iter().map(|a| a.id).collect::<Vec<_>>(),
                Err(e) => {
                    tracing::warn!(error = %e, "sparkline backfill: listing agents failed");
                    return;
                }
            };
            tokio::select! {
                () = trails.backfill(store.as_ref(), &agents) => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
    let agent_task = if local_agent {
        match local_agent::start_local_agent(&state, shutdown.child_token()).await {
            Ok(task) => Some(task),
            Err(e) => {
                // The API is still useful without the local agent.
                tracing::error!(error = %e, "the local agent could not start");
                None
            }
        }
    } else {
        None
    };

    let served = match &tls {
        Some(tls) => tls::serve(listener, tls, state, shutdown.clone()).await,
        None => http::serve(listener, state, shutdown.clone()).await,
    };
    // Whatever ended serving, stop the rest.
    shutdown.cancel();
    if let Some(task) = agent_task {
        if tokio::time::timeout(LOCAL_AGENT_STOP_TIMEOUT, task)
            .await
            .is_err()
        {
            tracing::warn!("the local agent did not stop in time");
        }
    }
    let _ = expiry.await;
    served.map_err(ServerError::Serve)
}

/// Cancels `shutdown` on ctrl-c or SIGTERM.
pub fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        spectra_agent::runtime::wait_for_shutdown_signal().await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
}
