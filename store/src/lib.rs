//! ClickHouse access for Loupe, embedded or server, through one client path.
//!
//! In embedded mode the process loads chDB, serves it on a loopback
//! ClickHouse-HTTP endpoint ([`endpoint`]) and talks to that endpoint with the
//! same `clickhouse` crate client used against a server. So every query,
//! migration and insert is the same text and the same code in both modes, and
//! the tests exercise that path against the real engine.
//!
//! [`Store`] is what the rest of Loupe holds: a writer client, a reader client
//! (every read runs with `readonly=1`), and, in embedded mode, the engine and
//! endpoint it owns and must shut down ([`Store::close`]).

pub mod alloc;
pub mod chdb;
pub mod credential;
pub mod endpoint;
pub mod migrate;
pub mod rows;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clickhouse::Client;

use chdb::{Engine, EngineOptions, StartError};
use endpoint::{Endpoint, EndpointHandle};

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Embedded(EmbeddedConfig),
    Server(ServerConfig),
}

#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    pub lib_path: PathBuf,
    pub data_dir: PathBuf,
    /// Address of the loopback ClickHouse-HTTP endpoint (port 0 picks one).
    pub listen: SocketAddr,
    pub max_memory_bytes: u64,
    pub mark_cache_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub url: String,
    pub user: String,
    pub password: String,
}

/// Failures of the store, closed at this boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("cannot listen for the embedded engine on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("cannot reach ClickHouse at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{0}")]
    Query(String),
    #[error("{0}")]
    Migration(String),
    #[error("{0}")]
    Credential(String),
    #[error("the query timed out after {0:?}")]
    Timeout(Duration),
}

impl From<clickhouse::error::Error> for StoreError {
    fn from(e: clickhouse::error::Error) -> Self {
        StoreError::Query(e.to_string())
    }
}

impl StoreError {
    /// Whether retrying the same operation later may succeed (the store is
    /// down or overloaded) rather than the request itself being wrong.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Unreachable { .. } | StoreError::Timeout(_) => true,
            StoreError::Query(msg) => {
                let m = msg.to_ascii_lowercase();
                m.contains("network")
                    || m.contains("connection")
                    || m.contains("timeout")
                    || m.contains("memory_limit")
                    || m.contains("too_many_parts")
                    || m.contains("code: 241")
                    || m.contains("code: 252")
                    || m.contains("shutting down")
            }
            _ => false,
        }
    }
}

struct Embedded {
    engine: Arc<Engine>,
    endpoint: EndpointHandle,
}

/// A handle on the store. Cheap to share behind an `Arc`.
pub struct Store {
    url: String,
    writer: Client,
    reader: Client,
    embedded: Option<Embedded>,
}

/// How long a connectivity probe may take.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Opens the store: starts the embedded engine and its endpoint, or checks
    /// that the server answers.
    pub async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        match config {
            StoreConfig::Embedded(cfg) => Self::start_embedded(cfg).await,
            StoreConfig::Server(cfg) => {
                let store = Self::connect(&cfg.url, &cfg.user, &cfg.password);
                store.ping().await?;
                Ok(store)
            }
        }
    }

    async fn start_embedded(cfg: &EmbeddedConfig) -> Result<Self, StoreError> {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| StoreError::Listen {
                addr: cfg.listen,
                reason: e.to_string(),
            })?;
        let mut opts = EngineOptions::new(cfg.lib_path.clone(), cfg.data_dir.clone());
        opts.max_memory_bytes = cfg.max_memory_bytes;
        opts.mark_cache_bytes = cfg.mark_cache_bytes;
        // Loading ~560 MB and booting the engine blocks for a moment.
        let engine = tokio::task::spawn_blocking(move || Engine::start(&opts))
            .await
            .map_err(|e| StoreError::Query(format!("engine start panicked: {e}")))??;
        let key = credential::load_or_create(engine.data_dir())?;
        let endpoint = Endpoint::new(Arc::clone(&engine), key.clone())
            .serve(listener)
            .map_err(|e| StoreError::Listen {
                addr: cfg.listen,
                reason: e.to_string(),
            })?;
        let url = format!("http://{}", endpoint.addr);
        let mut store = Self::connect(&url, "default", &key);
        credential::write_url(engine.data_dir(), &url)?;
        store.embedded = Some(Embedded { engine, endpoint });
        store.ping().await?;
        Ok(store)
    }

    /// Reaches the engine of another Loupe process that holds `data_dir`
    /// (through the URL and key it recorded there). `None` when no such
    /// process answers.
    pub async fn attach(data_dir: &std::path::Path) -> Result<Option<Self>, StoreError> {
        let Some(url) = credential::read_url(data_dir) else {
            return Ok(None);
        };
        let Some(key) = credential::load(data_dir)? else {
            return Ok(None);
        };
        let store = Self::connect(&url, "default", &key);
        Ok(store.ping().await.ok().map(|_| store))
    }

    /// A client for a ClickHouse-HTTP URL (a server, or a running Loupe's
    /// embedded endpoint). Does no IO.
    pub fn connect(url: &str, user: &str, password: &str) -> Self {
        let base = Client::default()
            .with_url(url)
            .with_user(user)
            .with_password(password)
            .with_compression(clickhouse::Compression::None);
        Self {
            url: url.to_string(),
            reader: base.clone().with_setting("readonly", "1"),
            writer: base,
            embedded: None,
        }
    }

    /// The URL clients of this store use.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The writer: migrations and inserts.
    pub fn client(&self) -> &Client {
        &self.writer
    }

    /// The reader: every dashboard and `loupe sql` query; runs with `readonly=1`.
    pub fn reader(&self) -> &Client {
        &self.reader
    }

    /// Whether this process owns an embedded engine (and must `close` it).
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// The embedded engine's version, when embedded.
    pub fn engine_version(&self) -> Option<String> {
        self.embedded.as_ref().map(|e| e.engine.version())
    }

    /// Starts an insert of `T` rows into `table` (a constant of
    /// [`rows::tables`]). With a deduplication token, a retry of the same
    /// batch is stored once, in the table and in every rollup fed from it.
    pub async fn insert<T: clickhouse::Row>(
        &self,
        table: &str,
        dedup_token: Option<&str>,
    ) -> Result<clickhouse::insert::Insert<T>, StoreError> {
        let mut ins = self.writer.insert_unescaped::<T>(table).await?;
        if let Some(token) = dedup_token {
            ins = ins
                .with_setting("insert_deduplication_token", token)
                .with_setting("deduplicate_blocks_in_dependent_materialized_views", "1");
        }
        Ok(ins)
    }

    /// Runs one statement with the writer.
    pub async fn execute(&self, sql: &str) -> Result<(), StoreError> {
        self.writer
            .query(sql)
            .execute()
            .await
            .map_err(StoreError::from)
    }

    /// Checks the store answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let probe = self.reader.query("SELECT 1").fetch_one::<u8>();
        match tokio::time::timeout(PING_TIMEOUT, probe).await {
            Ok(Ok(1)) => Ok(()),
            Ok(Ok(other)) => Err(StoreError::Unreachable {
                url: self.url.clone(),
                reason: format!("SELECT 1 answered {other}"),
            }),
            Ok(Err(e)) => Err(StoreError::Unreachable {
                url: self.url.clone(),
                reason: e.to_string(),
            }),
            Err(_) => Err(StoreError::Unreachable {
                url: self.url.clone(),
                reason: format!("no answer within {PING_TIMEOUT:?}"),
            }),
        }
    }

    /// [`Store::close`] for a store shared between tasks: waits (up to
    /// `patience`) for every other holder to let go, then closes it. Returns
    /// false, leaving the engine to process exit, if a holder never did.
    pub async fn close_shared(mut store: std::sync::Arc<Self>, patience: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match std::sync::Arc::try_unwrap(store) {
                Ok(s) => {
                    s.close().await;
                    return true;
                }
                Err(shared) if tokio::time::Instant::now() < deadline => store = shared,
                Err(_) => return false,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the endpoint and shuts the embedded engine down (every connection
    /// closed, then `chdb_shutdown`). Must run before the process exits.
    pub async fn close(self) {
        if let Some(e) = self.embedded {
            credential::remove_url(e.engine.data_dir());
            e.endpoint.stop().await;
            e.engine.shutdown().await;
        }
    }
}
