//! Shared helpers for tests (and the seeded example) that run the real
//! embedded engine. Each such test runs in its own process (cargo-nextest):
//! chDB allows one engine per process and cannot restart after shutdown.
#![allow(dead_code)]
// Test support: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod http;
pub mod seed;

use std::path::PathBuf;

use store::{EmbeddedConfig, Store, StoreConfig};

/// The real libchdb.so (`LOUPE_CHDB_LIB`, else where scripts/fetch-chdb.sh puts it).
pub fn lib_path() -> PathBuf {
    store::chdb::installed_lib_path().unwrap_or_else(|e| panic!("{e}"))
}

/// An embedded store in `dir`, migrated (2 GiB memory cap).
pub async fn migrated_store(dir: &std::path::Path) -> Store {
    migrated_store_with(dir, 2 << 30).await
}

/// An embedded store in `dir`, migrated, with the engine's memory cap.
pub async fn migrated_store_with(dir: &std::path::Path, max_memory_bytes: u64) -> Store {
    let cfg = EmbeddedConfig {
        lib_path: lib_path(),
        data_dir: dir.join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        max_memory_bytes,
        mark_cache_bytes: 64 << 20,
    };
    let store = Store::open(&StoreConfig::Embedded(cfg))
        .await
        .expect("embedded store starts");
    store::migrate::apply(&store, None)
        .await
        .expect("migrations apply");
    store
}
