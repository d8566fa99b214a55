//! Loupe's configuration: `loupe.toml`, then `LOUPE_*` environment variables,
//! then command-line flags, each overriding the one before. Parsed once in
//! `main` and passed down; nothing below reads the process environment (the
//! environment arrives here as a map, so tests never touch the real one).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use store::{EmbeddedConfig, ServerConfig, StoreConfig};

/// Environment variable names, spelled once.
pub mod env {
    pub const CONFIG: &str = "LOUPE_CONFIG";
    pub const DATA_DIR: &str = "LOUPE_DATA_DIR";
    pub const CHDB_LIB: &str = "LOUPE_CHDB_LIB";
    pub const ENGINE_LISTEN: &str = "LOUPE_ENGINE_LISTEN";
    pub const ENGINE_MAX_MEMORY: &str = "LOUPE_ENGINE_MAX_MEMORY";
    pub const CLICKHOUSE_URL: &str = "LOUPE_CLICKHOUSE_URL";
    pub const CLICKHOUSE_USER: &str = "LOUPE_CLICKHOUSE_USER";
    pub const CLICKHOUSE_PASSWORD: &str = "LOUPE_CLICKHOUSE_PASSWORD";
    pub const LOG: &str = "LOUPE_LOG";
    pub const COLLECTOR_GRPC_LISTEN: &str = "LOUPE_COLLECTOR_GRPC_LISTEN";
    pub const COLLECTOR_HTTP_LISTEN: &str = "LOUPE_COLLECTOR_HTTP_LISTEN";
    pub const COLLECTOR_SPOOL_DIR: &str = "LOUPE_COLLECTOR_SPOOL_DIR";
    pub const PRICES_FILE: &str = "LOUPE_PRICES_FILE";
    pub const DASHBOARD_LISTEN: &str = "LOUPE_DASHBOARD_LISTEN";
    pub const SHIM_LISTEN: &str = "LOUPE_SHIM_LISTEN";
    pub const SHIM_OTLP_ENDPOINT: &str = "LOUPE_SHIM_OTLP_ENDPOINT";
    pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";
    pub const HOME: &str = "HOME";
}

/// The default config file, looked for in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "loupe.toml";

/// Why the configuration is unusable. One line each, naming the culprit.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("config file {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("{name}={value:?} is not valid: {reason}")]
    Env {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// `[storage]` in `loupe.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// Data directory of the embedded engine.
    pub data_dir: PathBuf,
    /// Path of `libchdb.so`; default: where scripts/fetch-chdb.sh caches it.
    pub chdb_lib: Option<PathBuf>,
    /// Loopback address of the embedded engine's ClickHouse-HTTP endpoint.
    pub engine_listen: SocketAddr,
    /// Memory cap of the embedded engine, bytes.
    pub engine_max_memory: u64,
    /// Mark cache of the embedded engine, bytes.
    pub engine_mark_cache: u64,
    /// A ClickHouse server URL; when set, the embedded engine is not used.
    pub clickhouse_url: Option<String>,
    pub clickhouse_user: String,
    pub clickhouse_password: String,
}

impl Default for StorageSection {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./loupe-data"),
            chdb_lib: None,
            engine_listen: SocketAddr::from(([127, 0, 0, 1], 8123)),
            engine_max_memory: 2 << 30,
            engine_mark_cache: 64 << 20,
            clickhouse_url: None,
            clickhouse_user: "default".to_string(),
            clickhouse_password: String::new(),
        }
    }
}

/// `[pricing]`: a user price file that overrides and extends the bundled table.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PricingSection {
    pub file: Option<PathBuf>,
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub storage: StorageSection,
    pub collector: collector::CollectorConfig,
    pub dashboard: dashboard::DashboardConfig,
    pub shim: sdk_shim::ShimConfig,
    pub alerts: alerts::AlertsConfig,
    pub pricing: PricingSection,
    /// Where the lib path default comes from (not a file key).
    #[serde(skip)]
    pub default_chdb_lib: PathBuf,
}

/// Flags that override file and environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub clickhouse_url: Option<String>,
}

impl Config {
    /// Loads the file (the given one, `LOUPE_CONFIG`, or `./loupe.toml` when it
    /// exists), applies the environment, then the flags.
    pub fn load(
        file: Option<&Path>,
        env: &HashMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let explicit = file
            .map(Path::to_path_buf)
            .or_else(|| env.get(env::CONFIG).map(PathBuf::from));
        let mut cfg = match explicit {
            Some(path) => Self::from_file(&path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                Self::from_file(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => Self::default(),
        };
        cfg.apply_env(env)?;
        if let Some(d) = &overrides.data_dir {
            cfg.storage.data_dir = d.clone();
        }
        if let Some(u) = &overrides.clickhouse_url {
            cfg.storage.clickhouse_url = Some(u.clone());
        }
        // Budgets are configured once, for the cost page and the budget alerts.
        cfg.alerts.currency = cfg.dashboard.currency.clone();
        for (tenant, amount) in &cfg.dashboard.budgets {
            let value = amount.parse().map_err(|e| ConfigError::Parse {
                path: "dashboard.budgets".into(),
                reason: format!("budget of {tenant:?} ({amount:?}) is not a decimal: {e}"),
            })?;
            cfg.alerts.budgets.insert(tenant.clone(), value);
        }
        // The spool lives with the data unless placed elsewhere.
        if cfg.collector.spool_dir == collector::CollectorConfig::default().spool_dir {
            cfg.collector.spool_dir = cfg.storage.data_dir.join("spool");
        }
        cfg.default_chdb_lib = store::chdb::default_lib_path(
            env.get(env::XDG_CACHE_HOME).map(String::as_str),
            env.get(env::HOME).map(String::as_str),
        );
        Ok(cfg)
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses config text; errors name the line.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            ConfigError::Parse {
                path: origin.to_string(),
                reason: match line {
                    Some(l) => format!("line {l}: {}", e.message()),
                    None => e.message().to_string(),
                },
            }
        })
    }

    fn apply_env(&mut self, env: &HashMap<String, String>) -> Result<(), ConfigError> {
        let s = &mut self.storage;
        if let Some(v) = env.get(env::DATA_DIR) {
            s.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env.get(env::CHDB_LIB) {
            s.chdb_lib = Some(PathBuf::from(v));
        }
        if let Some(v) = env.get(env::ENGINE_LISTEN) {
            s.engine_listen =
                v.parse()
                    .map_err(|e: std::net::AddrParseError| ConfigError::Env {
                        name: env::ENGINE_LISTEN,
                        value: v.clone(),
                        reason: e.to_string(),
                    })?;
        }
        if let Some(v) = env.get(env::ENGINE_MAX_MEMORY) {
            s.engine_max_memory =
                v.parse()
                    .map_err(|e: std::num::ParseIntError| ConfigError::Env {
                        name: env::ENGINE_MAX_MEMORY,
                        value: v.clone(),
                        reason: format!("{e} (bytes expected)"),
                    })?;
        }
        let addr = |name: &'static str, v: &String| -> Result<SocketAddr, ConfigError> {
            v.parse()
                .map_err(|e: std::net::AddrParseError| ConfigError::Env {
                    name,
                    value: v.clone(),
                    reason: e.to_string(),
                })
        };
        if let Some(v) = env.get(env::COLLECTOR_GRPC_LISTEN) {
            self.collector.grpc_listen = addr(env::COLLECTOR_GRPC_LISTEN, v)?;
        }
        if let Some(v) = env.get(env::COLLECTOR_HTTP_LISTEN) {
            self.collector.http_listen = addr(env::COLLECTOR_HTTP_LISTEN, v)?;
        }
        if let Some(v) = env.get(env::COLLECTOR_SPOOL_DIR) {
            self.collector.spool_dir = PathBuf::from(v);
        }
        if let Some(v) = env.get(env::DASHBOARD_LISTEN) {
            self.dashboard.listen = addr(env::DASHBOARD_LISTEN, v)?;
        }
        if let Some(v) = env.get(env::SHIM_LISTEN) {
            self.shim.listen = addr(env::SHIM_LISTEN, v)?;
        }
        if let Some(v) = env.get(env::SHIM_OTLP_ENDPOINT) {
            self.shim.otlp_endpoint = v.clone();
        }
        self.shim = std::mem::take(&mut self.shim).with_env(env);
        if let Some(v) = env.get(env::PRICES_FILE) {
            self.pricing.file = Some(PathBuf::from(v));
        }
        let s = &mut self.storage;
        if let Some(v) = env.get(env::CLICKHOUSE_URL).filter(|v| !v.is_empty()) {
            s.clickhouse_url = Some(v.clone());
        }
        if let Some(v) = env.get(env::CLICKHOUSE_USER) {
            s.clickhouse_user = v.clone();
        }
        if let Some(v) = env.get(env::CLICKHOUSE_PASSWORD) {
            s.clickhouse_password = v.clone();
        }
        Ok(())
    }

    /// The bundled price table, extended by the user's price file.
    pub fn prices(&self) -> Result<schemas::pricing::PriceTable, ConfigError> {
        let bundled = schemas::pricing::PriceTable::bundled().map_err(|e| ConfigError::Parse {
            path: "bundled price table".into(),
            reason: e.to_string(),
        })?;
        let Some(path) = &self.pricing.file else {
            return Ok(bundled);
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        bundled
            .with_user_file(&text, &path.display().to_string())
            .map_err(|e| ConfigError::Parse {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
    }

    /// The store this configuration points at.
    pub fn store_config(&self) -> StoreConfig {
        let s = &self.storage;
        match &s.clickhouse_url {
            Some(url) => StoreConfig::Server(ServerConfig {
                url: url.clone(),
                user: s.clickhouse_user.clone(),
                password: s.clickhouse_password.clone(),
            }),
            None => StoreConfig::Embedded(EmbeddedConfig {
                lib_path: s
                    .chdb_lib
                    .clone()
                    .unwrap_or_else(|| self.default_chdb_lib.clone()),
                data_dir: s.data_dir.clone(),
                listen: s.engine_listen,
                max_memory_bytes: s.engine_max_memory,
                mark_cache_bytes: s.engine_mark_cache,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_embedded_on_loopback() {
        let cfg = Config::load(None, &env(&[("HOME", "/h")]), &Overrides::default()).unwrap();
        match cfg.store_config() {
            StoreConfig::Embedded(e) => {
                assert_eq!(e.listen.to_string(), "127.0.0.1:8123");
                assert_eq!(
                    e.lib_path,
                    PathBuf::from("/h/.cache/loupe/chdb/26.7.3-stable.1/libchdb.so")
                );
            }
            StoreConfig::Server(_) => panic!("default must be embedded"),
        }
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("loupe.toml");
        std::fs::write(
            &file,
            "[storage]\ndata_dir = \"/from-file\"\nclickhouse_user = \"filer\"\n",
        )
        .unwrap();
        let e = env(&[
            ("LOUPE_DATA_DIR", "/from-env"),
            ("LOUPE_CLICKHOUSE_URL", "http://ch:8123"),
        ]);
        let cfg = Config::load(Some(&file), &e, &Overrides::default()).unwrap();
        assert_eq!(cfg.storage.data_dir, PathBuf::from("/from-env"));
        assert_eq!(cfg.storage.clickhouse_user, "filer");
        let flags = Overrides {
            data_dir: Some("/from-flag".into()),
            clickhouse_url: Some("http://other:8123".into()),
        };
        let cfg = Config::load(Some(&file), &e, &flags).unwrap();
        assert_eq!(cfg.storage.data_dir, PathBuf::from("/from-flag"));
        match cfg.store_config() {
            StoreConfig::Server(s) => assert_eq!(s.url, "http://other:8123"),
            StoreConfig::Embedded(_) => panic!("url given: server mode"),
        }
    }

    #[test]
    fn bad_file_names_the_line() {
        let err = Config::from_toml("[storage]\n\ndata_dri = \"x\"\n", "loupe.toml").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("loupe.toml") && msg.contains("line 3"),
            "{msg}"
        );
        assert!(msg.contains("data_dri"), "{msg}");
    }

    #[test]
    fn bad_env_names_the_variable() {
        let err = Config::load(
            None,
            &env(&[("LOUPE_ENGINE_LISTEN", "nowhere")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("LOUPE_ENGINE_LISTEN=\"nowhere\""),
            "{err}"
        );
    }

    #[test]
    fn missing_file_is_an_error() {
        let err = Config::load(
            Some(Path::new("/nonexistent/loupe.toml")),
            &HashMap::new(),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/loupe.toml"));
    }
}
