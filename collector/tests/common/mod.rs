//! Shared helpers for the collector's integration tests: a collector on
//! loopback ports, over the real embedded engine or an in-memory writer.
//! Tests that open the embedded engine each run in their own process
//! (cargo-nextest): chDB allows one engine per process.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use collector::batch::Batch;
use collector::{BatchWriter, Bound, Collector, CollectorConfig, CollectorError, WriteError};
use schemas::pricing::PriceTable;
use store::{EmbeddedConfig, Store, StoreConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The real libchdb.so (`LOUPE_CHDB_LIB`, else where scripts/fetch-chdb.sh puts it).
pub fn lib_path() -> PathBuf {
    store::chdb::installed_lib_path().unwrap_or_else(|e| panic!("{e}"))
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// An embedded store on `dir/data`, migrated.
pub async fn store_at(dir: &Path) -> Store {
    let store = Store::open(&StoreConfig::Embedded(EmbeddedConfig {
        lib_path: lib_path(),
        data_dir: dir.join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        max_memory_bytes: 4 << 30,
        mark_cache_bytes: 64 << 20,
    }))
    .await
    .expect("embedded store starts");
    store::migrate::apply(&store, None)
        .await
        .expect("migrations apply");
    store
}

/// Test defaults: ephemeral ports, the spool in `dir`, fast batches, long
/// retention (fixtures keep their original timestamps).
pub fn test_config(dir: &Path) -> CollectorConfig {
    CollectorConfig {
        grpc_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        spool_dir: dir.join("spool"),
        batch_max_age_ms: 20,
        retention_days: 3_650,
        body_retention_days: 3_650,
        join_wait_ms: 3_000,
        default_tenant: "default-tenant".into(),
        max_concurrent_requests: 512,
        ..CollectorConfig::default()
    }
}

pub struct Running {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), CollectorError>>>,
}

impl Running {
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Shut down and wait for the drain.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("collector drains in time")
                .expect("collector task")
                .expect("collector serves without error");
        }
    }
}

fn spawn(
    bound: Bound,
    run: impl FnOnce(Bound, oneshot::Receiver<()>) -> JoinHandle<Result<(), CollectorError>>,
) -> Running {
    let http = bound.http_addr();
    let grpc = bound.grpc_addr();
    let (tx, rx) = oneshot::channel();
    let task = run(bound, rx);
    Running {
        http,
        grpc,
        stop: Some(tx),
        task: Some(task),
    }
}

pub fn prices() -> Arc<PriceTable> {
    Arc::new(PriceTable::bundled().expect("bundled prices"))
}

/// A collector writing into `store`.
pub async fn start(cfg: &CollectorConfig, store: Arc<Store>) -> Running {
    let bound = Collector::bind(cfg).await.expect("collector binds");
    spawn(bound, |b, rx| {
        tokio::spawn(b.serve(store, prices(), async move {
            let _ = rx.await;
        }))
    })
}

/// A collector writing through any writer.
pub async fn start_with<W: BatchWriter>(cfg: &CollectorConfig, writer: W) -> Running {
    let bound = Collector::bind(cfg).await.expect("collector binds");
    spawn(bound, |b, rx| {
        tokio::spawn(b.serve_with(writer, prices(), async move {
            let _ = rx.await;
        }))
    })
}

/// In-memory writer that deduplicates by token like ClickHouse, with knobs.
#[derive(Default)]
pub struct MemWriter {
    pub down: AtomicBool,
    pub delay_ms: AtomicU64,
    /// Count spans without keeping them (memory tests).
    pub discard: AtomicBool,
    pub discarded_spans: AtomicU64,
    pub batches: Mutex<HashMap<String, Batch>>,
}

impl MemWriter {
    pub fn span_count(&self) -> usize {
        self.batches
            .lock()
            .unwrap()
            .values()
            .map(|b| b.spans.len())
            .sum()
    }
}

impl BatchWriter for MemWriter {
    async fn write(&self, batch: &Batch) -> Result<(), WriteError> {
        let d = self.delay_ms.load(Relaxed);
        if d > 0 {
            tokio::time::sleep(Duration::from_millis(d)).await;
        }
        if self.down.load(Relaxed) {
            return Err(WriteError::Retryable("test: store down".into()));
        }
        if self.discard.load(Relaxed) {
            self.discarded_spans
                .fetch_add(batch.spans.len() as u64, Relaxed);
            return Ok(());
        }
        self.batches
            .lock()
            .unwrap()
            .entry(batch.token.clone())
            .or_insert_with(|| batch.clone());
        Ok(())
    }
}

/// Wraps the real writer with a switch that makes inserts fail.
pub struct Flaky<W> {
    pub inner: W,
    pub down: Arc<AtomicBool>,
}

impl<W: BatchWriter> BatchWriter for Flaky<W> {
    async fn write(&self, batch: &Batch) -> Result<(), WriteError> {
        if self.down.load(Relaxed) {
            return Err(WriteError::Retryable("test: inserts failing".into()));
        }
        self.inner.write(batch).await
    }
}

pub async fn count(store: &Store, sql: &str) -> u64 {
    store
        .reader()
        .query(sql)
        .fetch_one::<u64>()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Poll until `f` is true (or fail after `secs`).
pub async fn eventually<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {secs}s waiting for: {what}");
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

pub async fn post(
    client: &reqwest::Client,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    client
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Closes a shared store once every other holder (the collector) let go.
pub async fn close(store: Arc<Store>) {
    assert!(
        Store::close_shared(store, Duration::from_secs(10)).await,
        "the store is still shared after the collector stopped"
    );
}
