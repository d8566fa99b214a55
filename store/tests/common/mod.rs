//! Shared helpers for tests that run the real embedded engine.
//! Each such test runs in its own process (cargo-nextest), because chDB allows
//! one data directory per process and cannot restart after `chdb_shutdown`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use store::{EmbeddedConfig, Store, StoreConfig};

/// The real libchdb.so (`LOUPE_CHDB_LIB`, else where scripts/fetch-chdb.sh puts it).
pub fn lib_path() -> PathBuf {
    store::chdb::installed_lib_path().unwrap_or_else(|e| panic!("{e}"))
}

pub fn embedded_config(data_dir: PathBuf) -> EmbeddedConfig {
    EmbeddedConfig {
        lib_path: lib_path(),
        data_dir,
        listen: "127.0.0.1:0".parse().unwrap(),
        max_memory_bytes: 2 << 30,
        mark_cache_bytes: 64 << 20,
    }
}

/// An embedded store on a fresh directory, migrated.
pub async fn migrated_store(dir: &tempfile::TempDir) -> Store {
    let store = Store::open(&StoreConfig::Embedded(embedded_config(
        dir.path().join("data"),
    )))
    .await
    .expect("embedded store starts");
    store::migrate::apply(&store, None)
        .await
        .expect("migrations apply");
    store
}
