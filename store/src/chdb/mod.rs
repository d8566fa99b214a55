//! The embedded ClickHouse engine (chDB), loaded at run time.

pub mod engine;
pub mod error;
pub mod ffi;

pub use engine::{Access, Engine, EngineOptions, InsertStream, Lease, StartError};
pub use error::EngineError;

use std::path::PathBuf;

/// The chDB package version Loupe is built and tested against.
pub const CHDB_VERSION: &str = "26.7.3-stable.1";

/// Where `scripts/fetch-chdb.sh` caches the library, given the environment's
/// `XDG_CACHE_HOME` and `HOME` (passed in so callers choose the environment).
pub fn default_lib_path(xdg_cache_home: Option<&str>, home: Option<&str>) -> PathBuf {
    let base = match (xdg_cache_home, home) {
        (Some(x), _) if !x.is_empty() => PathBuf::from(x),
        (_, Some(h)) if !h.is_empty() => PathBuf::from(h).join(".cache"),
        _ => PathBuf::from(".cache"),
    };
    base.join("loupe/chdb")
        .join(CHDB_VERSION)
        .join("libchdb.so")
}

/// For tests and benchmarks, which read the process environment directly
/// (the binary reads its environment through its config): `LOUPE_CHDB_LIB`,
/// else [`default_lib_path`]; an error naming the path and the fix when the
/// library is not there.
pub fn installed_lib_path() -> Result<PathBuf, String> {
    let p = std::env::var_os("LOUPE_CHDB_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            default_lib_path(
                std::env::var("XDG_CACHE_HOME").ok().as_deref(),
                std::env::var("HOME").ok().as_deref(),
            )
        });
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "libchdb.so not found at {}: run scripts/fetch-chdb.sh (make test does)",
            p.display()
        ))
    }
}
