//! Binding and serving: [`Shim::bind`] opens the listener first (a port in use is
//! a clear error before anything else starts) and builds the upstream client and
//! the exporter; [`Bound::serve`] runs until `shutdown`, then drains the export
//! queue and flushes the exporter.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::ShimConfig;
use crate::error::ShimError;
use crate::export::{self, ExportWorker, Metrics};
use crate::proxy::{HttpClient, Proxy};

/// Paths the shim answers itself (everything else is proxied).
pub const METRICS_PATH: &str = "/metrics";
pub const HEALTH_PATH: &str = "/healthz";

/// Extra time given to the last export on shutdown, beyond the OTLP timeout.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

pub struct Shim;

/// A shim whose listener is open and whose exporter is built.
pub struct Bound {
    listener: TcpListener,
    proxy: Arc<Proxy>,
    worker: ExportWorker,
    drain_timeout: Duration,
}

impl Shim {
    pub async fn bind(cfg: &ShimConfig) -> Result<Bound, ShimError> {
        cfg.check()?;
        let keys = schemas::ingest_keys::IngestKeys::new(&cfg.keys)
            .map_err(|e| ShimError::Config(e.to_string()))?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| ShimError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let metrics = Arc::new(Metrics::default());
        let (queue, worker) = export::channel(cfg, metrics)?;
        let client = http_client(cfg)?;
        Ok(Bound {
            listener,
            proxy: Arc::new(Proxy {
                cfg: cfg.clone(),
                keys,
                client,
                queue,
            }),
            worker,
            drain_timeout: Duration::from_millis(cfg.otlp_timeout_ms) + DRAIN_GRACE,
        })
    }
}

impl Bound {
    pub fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serve until `shutdown` resolves; then finish in-flight calls, export what
    /// is queued and shut the exporter down.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ShimError> {
        let (stop_tx, stop_rx) = oneshot::channel();
        let worker = tokio::spawn(self.worker.run(stop_rx));
        let served = axum::serve(self.listener, router(self.proxy))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ShimError::Serve);
        let _ = stop_tx.send(());
        if tokio::time::timeout(self.drain_timeout, worker)
            .await
            .is_err()
        {
            tracing::warn!("shim span export did not finish draining before the deadline");
        }
        served
    }
}

fn router(proxy: Arc<Proxy>) -> Router {
    Router::new()
        .route(METRICS_PATH, get(metrics))
        .route(HEALTH_PATH, get(|| async { "ok" }))
        .fallback(proxied)
        .with_state(proxy)
}

async fn proxied(State(proxy): State<Arc<Proxy>>, req: Request) -> Response {
    proxy.handle(req).await
}

async fn metrics(State(proxy): State<Arc<Proxy>>) -> Response {
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        proxy.queue.metrics().render(),
    )
        .into_response()
}

fn http_client(cfg: &ShimConfig) -> Result<HttpClient, ShimError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(cfg.connect_timeout()));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| ShimError::Config(format!("tls: {e}")))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https))
}
