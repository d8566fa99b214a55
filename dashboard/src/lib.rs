//! Loupe's dashboard: server-rendered pages (askama, htmx, SVG charts drawn in
//! Rust) over the store's rollups and span rows, each with a JSON twin under
//! `/api/v1`.
//!
//! ```text
//! request ─▶ web::pages (parse params) ─▶ report::* (shape views) ─▶ query::Queries ─▶ ClickHouse
//!                    ▲ render HTML / JSON / CSV from the same view ◀──────┘
//! ```
//!
//! The binary calls [`Dashboard::bind`] (a busy port fails before anything
//! runs), then [`Bound::serve`] with the store and a shutdown future. Tests
//! build the router with [`app`] and call it directly.
//!
//! Invariants: every request value reaches SQL as a bound parameter; tenant
//! scope is enforced in the query layer; list and chart queries never read
//! bodies; prompts and completions are untrusted and always escaped (and the
//! pages run under a strict Content-Security-Policy); money is
//! `rust_decimal` end to end.

pub mod auth;
pub use schemas::civil;
pub mod config;
pub mod error;
pub mod fmt;
pub mod params;
pub mod query;
pub mod report;
pub mod svg;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use store::Store;
use tokio::net::TcpListener;

pub use config::{ConfigError, DashboardConfig};
pub use error::DashboardError;
pub use query::{ClickHouseQueries, Queries, Scope};
pub use web::AppState;

/// The dashboard's router over the given state.
pub fn app(state: AppState) -> axum::Router {
    web::router(state)
}

/// Builds the state from configuration and a store (no IO).
pub fn state(cfg: &DashboardConfig, store: &Store) -> Result<AppState, ConfigError> {
    let budgets = cfg.validate()?;
    let queries = ClickHouseQueries::new(
        store.reader().clone(),
        Duration::from_secs(u64::from(cfg.query_timeout_secs.max(1))),
    );
    Ok(AppState {
        queries: Arc::new(queries),
        scope: if cfg.tenants.is_empty() {
            Scope::all()
        } else {
            Scope {
                tenants: Some(cfg.tenants.clone()),
            }
        },
        budgets: Arc::new(budgets),
        currency: cfg.currency.clone(),
        page_size: cfg.page_size,
        options_cache: Default::default(),
        auth: auth::guard::Auth::new(cfg.auth.clone()),
    })
}

/// Failures starting or running the dashboard.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen for the dashboard on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("dashboard server failed: {0}")]
    Serve(String),
}

/// Entry point of the dashboard role.
pub struct Dashboard;

/// The listener bound and the configuration checked; nothing served yet.
pub struct Bound {
    listener: TcpListener,
    cfg: DashboardConfig,
}

impl Dashboard {
    /// Validates the configuration and binds the listener.
    pub async fn bind(cfg: &DashboardConfig) -> Result<Bound, ServeError> {
        cfg.validate()?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| ServeError::Bind {
                addr: cfg.listen,
                reason: e.to_string(),
            })?;
        Ok(Bound {
            listener,
            cfg: cfg.clone(),
        })
    }
}

impl Bound {
    /// Where the dashboard listens (the real port when configured with 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServeError> {
        self.listener.local_addr().map_err(|e| ServeError::Bind {
            addr: self.cfg.listen,
            reason: e.to_string(),
        })
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn serve(
        self,
        store: Arc<Store>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        self.serve_with(store, axum::Router::new(), shutdown).await
    }

    /// [`Bound::serve`] with extra routes merged in (the binary adds the
    /// alert evaluator's `/metrics` this way; the dashboard knows no alerts).
    pub async fn serve_with(
        self,
        store: Arc<Store>,
        extra: axum::Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let state = state(&self.cfg, &store)?;
        let addr = self.local_addr()?;
        tracing::info!(%addr, "dashboard listening");
        axum::serve(self.listener, app(state).merge(extra))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| ServeError::Serve(e.to_string()))
    }
}
