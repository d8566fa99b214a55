//! Loupe's collector: OTLP receivers (gRPC `:4317`, HTTP `:4318`), the one
//! ingest path, batching, the durable spool and the ClickHouse writer.
//!
//! ```text
//! grpc ─┐                                          ┌─▶ writer ─▶ ClickHouse
//!       ├─▶ ingest (screen, normalise, join logs, ─┤        (fails/slow)
//! http ─┘    validate, price, one call one cost)   └─▶ spool ─▶ replayer ─┘
//!                          │ bounded queue + batcher
//! ```
//!
//! The binary calls [`Collector::bind`] (so a busy port is a clear error
//! before anything runs), then [`Bound::serve`] with the store, the price
//! table and a shutdown future. `serve` returns once the listeners stopped
//! and every accepted export was answered: inserted, or spooled for replay at
//! the next start.
//!
//! Invariants: an export is acknowledged only when its spans are in
//! ClickHouse or fsynced in the spool; every queue and buffer is bounded and
//! every refusal or drop is counted in `/metrics`; no request path panics.

pub mod batch;
pub mod calls;
pub mod config;
pub mod decode;
pub mod error;
pub mod grpc;
pub mod http;
pub mod ingest;
pub mod join;
pub mod limits;
pub mod metrics;
pub mod pipeline;
pub mod spool;
pub mod writer;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;

use schemas::pricing::PriceTable;
use store::Store;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};

pub use config::CollectorConfig;
pub use error::{CollectorError, IngestError};
pub use ingest::{Caller, Ingest, Outcome};
pub use writer::{BatchWriter, StoreWriter, WriteError};

use batch::BatchLimits;
use pipeline::PipelineSettings;
use spool::{Recovery, Spool, SpoolLimits};

/// HTTP/2 streams per gRPC connection: bounds decoded messages in flight per client.
const GRPC_MAX_STREAMS: u32 = 16;

/// Entry point of the collector role.
pub struct Collector;

/// Listeners bound and spool opened; nothing served yet.
pub struct Bound {
    cfg: CollectorConfig,
    grpc: TcpListener,
    http: TcpListener,
    spool: Spool,
    recovery: Recovery,
}

impl Collector {
    /// Check the config, bind both listeners and open (recover) the spool.
    pub async fn bind(cfg: &CollectorConfig) -> Result<Bound, CollectorError> {
        cfg.check().map_err(CollectorError::Config)?;
        let bind = |transport: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|e| CollectorError::Bind {
                    transport,
                    addr,
                    reason: e.to_string(),
                })
        };
        let grpc = bind("gRPC", cfg.grpc_listen).await?;
        let http = bind("HTTP", cfg.http_listen).await?;
        let limits = SpoolLimits {
            max_bytes: cfg.spool_max_bytes,
            segment_bytes: cfg.spool_segment_bytes,
        };
        let (spool, recovery) =
            Spool::open(&cfg.spool_dir, limits).map_err(|e| CollectorError::Spool {
                dir: cfg.spool_dir.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(Bound {
            cfg: cfg.clone(),
            grpc,
            http,
            spool,
            recovery,
        })
    }
}

impl Bound {
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().unwrap_or(self.cfg.grpc_listen)
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().unwrap_or(self.cfg.http_listen)
    }

    /// Serve into the store until `shutdown` resolves, then drain.
    pub async fn serve(
        self,
        store: Arc<Store>,
        prices: Arc<PriceTable>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), CollectorError> {
        self.serve_with(StoreWriter::new(store), prices, shutdown)
            .await
    }

    /// [`Bound::serve`] with any writer (tests inject failures this way).
    pub async fn serve_with<W: BatchWriter>(
        self,
        writer: W,
        prices: Arc<PriceTable>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), CollectorError> {
        let Bound {
            cfg,
            grpc,
            http,
            spool,
            recovery,
        } = self;
        if recovery.pending_bytes > 0 || recovery.cut_bytes > 0 {
            tracing::info!(
                segments = recovery.segments,
                pending_bytes = recovery.pending_bytes,
                cut_bytes = recovery.cut_bytes,
                "spool recovered; replaying"
            );
        }
        let metrics = Arc::new(metrics::Metrics::default());
        let settings = PipelineSettings {
            batch: BatchLimits {
                max_rows: cfg.batch_max_rows,
                max_bytes: cfg.batch_max_bytes,
                max_age: cfg.batch_max_age(),
            },
            queue_capacity_bytes: cfg.queue_capacity_bytes,
            queue_wait: std::time::Duration::from_millis(cfg.queue_wait_ms),
            writer_concurrency: cfg.writer_concurrency,
            insert_timeout: cfg.insert_timeout(),
            spool_max_bytes: cfg.spool_max_bytes,
        };
        let (handle, pipeline) = pipeline::pipeline(writer, spool, settings, Arc::clone(&metrics));
        let ingest =
            Arc::new(Ingest::new(&cfg, prices, handle, metrics).map_err(CollectorError::Config)?);

        let (stop_tx, stop_rx) = watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        {
            let stop_tx = Arc::clone(&stop_tx);
            tokio::spawn(async move {
                shutdown.await;
                let _ = stop_tx.send(true);
            });
        }
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|v| *v).await;
        };
        let (drain_tx, drain_rx) = oneshot::channel::<()>();
        let pipeline_task = tokio::spawn(pipeline.run(async move {
            let _ = drain_rx.await;
        }));

        let http_state = Arc::new(http::HttpState {
            ingest: Arc::clone(&ingest),
            key_header: cfg.key_header.to_ascii_lowercase(),
            slots: Arc::new(Semaphore::new(cfg.max_concurrent_requests)),
            max_body_bytes: cfg.max_body_bytes,
            max_decompressed_bytes: cfg.max_decompressed_bytes,
            retry_after_secs: cfg.retry_after_secs,
        });
        let http_server = axum::serve(http, http::router(http_state))
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future();
        let (traces, logs) = grpc::services(
            grpc::GrpcState {
                ingest: Arc::clone(&ingest),
                key_header: cfg.key_header.to_ascii_lowercase(),
                slots: Arc::new(Semaphore::new(cfg.max_concurrent_requests)),
                retry_after_secs: cfg.retry_after_secs,
            },
            cfg.max_decompressed_bytes,
        );
        let grpc_server = tonic::transport::Server::builder()
            .max_concurrent_streams(GRPC_MAX_STREAMS)
            .add_service(traces)
            .add_service(logs)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(grpc),
                stopped(stop_rx.clone()),
            );
        drop(ingest);

        // A server that fails stops the other one too.
        let http_run = {
            let stop_tx = Arc::clone(&stop_tx);
            async move {
                let r = http_server.await.map_err(|e| CollectorError::Serve {
                    transport: "HTTP",
                    reason: e.to_string(),
                });
                let _ = stop_tx.send(true);
                r
            }
        };
        let grpc_run = {
            let stop_tx = Arc::clone(&stop_tx);
            async move {
                let r = grpc_server.await.map_err(|e| CollectorError::Serve {
                    transport: "gRPC",
                    reason: e.to_string(),
                });
                let _ = stop_tx.send(true);
                r
            }
        };
        let (h, g) = tokio::join!(http_run, grpc_run);
        tracing::info!("collector listeners stopped; draining");
        let _ = drain_tx.send(());
        if let Err(e) = pipeline_task.await {
            tracing::error!(error = %e, "collector pipeline task failed");
        }
        h.and(g)
    }
}
