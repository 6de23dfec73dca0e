//! `kubus serve`: one service over a kubus project for the whole administration. Who asks decides what is answered:
//! a token (bearer, or the password of HTTP Basic, as Excel and Power BI send it) or the user named by the city's
//! reverse proxy after single sign-on (accepted only from the configured proxy addresses) names a user of the
//! project, whose groups act as one role of `kubus.toml`. There is no `--role` here. Every request is audited with
//! user, groups, role and client address; the library applies the role's cubes, levels, row filter and disclosure
//! control to every answer, in every format.
//!
//! The service stays up: queries run a bounded number at a time (a full queue answers 503 with `Retry-After`), each
//! within a memory limit; requests have a timeout, bodies a size limit; a panic answers 500; SIGTERM finishes the
//! requests and SQL statements in flight. SQL over the PostgreSQL wire protocol is served on a second port for roles
//! with `sql = true` (see the `sql` module). An upload is an ingest under the cube's lock, one atomic commit, shared
//! with the CLI.

mod answers;
mod api;
mod auth;
mod error;
mod openapi;
mod params;
mod report;
mod reports;
mod sql;
mod ui;

pub use error::ApiError;

use axum::Router;
use kubus::Project;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Errors of starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address cannot be listened on.
    #[error("cannot listen on {address}")]
    Listen {
        /// The address.
        address: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The folder for uploads in progress cannot be prepared.
    #[error("cannot prepare the uploads folder {path}")]
    Uploads {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving failed")]
    Serve(#[source] std::io::Error),
    /// The project cannot be used.
    #[error(transparent)]
    Kubus(#[from] kubus::Error),
}

/// How to start the server, beyond `[server]` of `kubus.toml`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Listen here instead of `[server] listen` (port 0: any free port, see [`Server::local_addr`]).
    pub listen: Option<SocketAddr>,
    /// Serve SQL over the PostgreSQL wire protocol here instead of `[server] sql_listen` (port 0: any free port,
    /// see [`Server::sql_addr`]).
    pub sql_listen: Option<SocketAddr>,
    /// Pseudonymise uploads with the project's demo key when no real key is set (synthetic sample data only).
    pub demo_key: bool,
}

/// What every request shares.
pub(crate) struct AppState {
    pub(crate) project: Project,
    pub(crate) users: auth::UserCache,
    /// The browser tool's sessions.
    pub(crate) sessions: auth::Sessions,
    /// Query slots: at most `[server] max_queries` queries, explains and uploads run at once.
    slots: tokio::sync::Semaphore,
    /// Requests waiting for a slot; beyond `[server] queue` the server answers 503.
    waiting: AtomicUsize,
    pub(crate) demo_key: bool,
    /// Answers kept to be given again (none where `[server] answer_cache_mb = 0`).
    pub(crate) answers: Option<answers::Answers>,
    /// Uploads in progress are written here, one folder each, and removed after their ingest.
    pub(crate) uploads: PathBuf,
}

/// A query slot, released when dropped.
pub(crate) type Slot<'a> = tokio::sync::SemaphorePermit<'a>;

impl AppState {
    /// Waits for a query slot, or answers 503 when too many requests wait already.
    pub(crate) async fn slot(&self) -> Result<Slot<'_>, ApiError> {
        if let Ok(slot) = self.slots.try_acquire() {
            return Ok(slot);
        }
        let queue = self.project.config().server.queue;
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::busy(queue));
        }
        let slot = self.slots.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        slot.map_err(|_| ApiError::internal("the server is shutting down".into()))
    }
}

/// A server bound to its address, not yet serving.
pub struct Server {
    listener: tokio::net::TcpListener,
    sql_listener: Option<tokio::net::TcpListener>,
    app: Router,
    state: Arc<AppState>,
}

impl Server {
    /// Binds the project's service to `[server] listen` (or `options.listen`). The uploads folder of the warehouse is
    /// emptied: whatever is in it was left by a server that stopped during an upload, and was never ingested.
    pub async fn bind(project: Project, options: Options) -> Result<Server, Error> {
        let settings = project.config().server.clone();
        let address = match options.listen {
            Some(a) => a,
            None => parse_address(&settings.listen)?,
        };
        let sql_address = match (options.sql_listen, &settings.sql_listen) {
            (Some(a), _) => Some(a),
            (None, Some(configured)) => Some(parse_address(configured)?),
            (None, None) => None,
        };
        let uploads = project.work_dir().join("uploads");
        let prepare = || -> std::io::Result<()> {
            if uploads.exists() {
                std::fs::remove_dir_all(&uploads)?;
            }
            std::fs::create_dir_all(&uploads)
        };
        prepare().map_err(|source| Error::Uploads { path: uploads.clone(), source })?;
        let project = project.with_memory_limit(usize::try_from(settings.query_memory_bytes).unwrap_or(usize::MAX));
        let state = Arc::new(AppState {
            users: auth::UserCache::new(project.users_path()),
            sessions: auth::Sessions::default(),
            project,
            slots: tokio::sync::Semaphore::new(settings.max_queries),
            waiting: AtomicUsize::new(0),
            demo_key: options.demo_key,
            answers: answers::answers(settings.answer_cache_bytes),
            uploads,
        });
        let listener = bind(address).await?;
        let sql_listener = match sql_address {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        Ok(Server { listener, sql_listener, app: api::router(state.clone(), &settings), state })
    }

    /// The address the server listens on (the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The address of SQL over the PostgreSQL wire protocol, if it is served.
    pub fn sql_addr(&self) -> Option<SocketAddr> {
        self.sql_listener.as_ref().map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// Serves until `shutdown` completes, then finishes the requests and SQL statements in flight (an upload's
    /// ingest runs to its commit or not at all) and returns.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        tracing::info!(address = %self.local_addr(), project = %self.state.project.root().display(), "kubus serve listening");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        if let Some(listener) = self.sql_listener {
            tracing::info!(address = %listener.local_addr().map_err(Error::Serve)?, "SQL over the PostgreSQL wire protocol");
            tokio::spawn(sql::serve(listener, self.state.clone(), stopped));
        }
        let shutdown = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        axum::serve(self.listener, self.app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::Serve)?;
        // Every slot free again: no SQL statement is still running.
        let all = u32::try_from(self.state.project.config().server.max_queries).unwrap_or(u32::MAX);
        let _ = self.state.slots.acquire_many(all).await;
        self.state.slots.close();
        tracing::info!("kubus serve stopped");
        Ok(())
    }
}

fn parse_address(text: &str) -> Result<SocketAddr, Error> {
    text.parse().map_err(|_| Error::Listen {
        address: text.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an address and port"),
    })
}

async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| Error::Listen { address: address.to_string(), source })
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let interrupt = async {
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
        () = interrupt => {},
        () = terminate => {},
    }
}
