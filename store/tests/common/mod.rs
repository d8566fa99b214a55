//! Shared helpers for tests that run the real embedded engine.
//! Each such test runs in its own process (cargo-nextest), because chDB allows
//! one data directory per process and cannot restart after `chdb_shutdown`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use store::{EmbeddedConfig, Store, StoreConfig};

/// The real libchdb.so: `LOUPE_CHDB_LIB`, else where scripts/fetch-chdb.sh puts it.
pub fn lib_path() -> PathBuf {
    let p = std::env::var_os("LOUPE_CHDB_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            store::chdb::default_lib_path(
                std::env::var("XDG_CACHE_HOME").ok().as_deref(),
                std::env::var("HOME").ok().as_deref(),
            )
        });
    assert!(
        p.is_file(),
        "libchdb.so not found at {}: run scripts/fetch-chdb.sh (make test does)",
        p.display()
    );
    p
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
