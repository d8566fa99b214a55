//! The chDB C API, loaded at run time from `libchdb.so` with `libloading`.
//!
//! Only the functions Loupe uses are bound. Signatures follow chDB's
//! `programs/local/chdb.h` (26.7). Every pointer returned here is owned by chDB
//! and released through the matching `chdb_destroy_*` / `chdb_close_conn` call;
//! the safe wrappers in `engine.rs` guarantee that pairing.

use std::ffi::{c_char, c_int, c_void};
use std::path::Path;

use libloading::Library;

/// `chdb_connection` is a pointer to an opaque struct; `chdb_connect` returns a
/// pointer to one of those.
pub type ConnHandle = *mut c_void;
pub type ResultHandle = *mut c_void;
pub type InsertHandle = *mut c_void;

pub const CHDB_SUCCESS: c_int = 0;

/// `chdb_query_analysis_v1`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct QueryAnalysis {
    pub struct_size: u32,
    pub statement_count: u32,
    pub flags: u32,
    pub query_class: u32,
}

pub const QUERY_CLASS_READ_ONLY: u32 = 0;

type ParamsFn = unsafe extern "C" fn(
    ConnHandle,
    *const c_char,
    usize,
    *const c_char,
    usize,
    *const *const c_char,
    *const usize,
    *const *const c_char,
    *const usize,
    usize,
) -> ResultHandle;

/// The resolved symbols. The library is never unloaded: `dlclose` on libchdb
/// runs the engine's static destructors under live threads and crashes the
/// process, so the handle is kept for the life of the process.
pub struct ChdbApi {
    _lib: std::mem::ManuallyDrop<Library>,
    pub version: unsafe extern "C" fn() -> *const c_char,
    pub set_signal_handlers_enabled: unsafe extern "C" fn(c_int),
    pub connect: unsafe extern "C" fn(c_int, *mut *mut c_char) -> *mut ConnHandle,
    pub close_conn: unsafe extern "C" fn(*mut ConnHandle),
    pub query_with_params_n: ParamsFn,
    pub stream_query_with_params_n: ParamsFn,
    pub stream_fetch_result: unsafe extern "C" fn(ConnHandle, ResultHandle) -> ResultHandle,
    pub stream_cancel_query: unsafe extern "C" fn(ConnHandle, ResultHandle),
    pub destroy_query_result: unsafe extern "C" fn(ResultHandle),
    pub result_buffer: unsafe extern "C" fn(ResultHandle) -> *const c_char,
    pub result_length: unsafe extern "C" fn(ResultHandle) -> usize,
    pub result_error: unsafe extern "C" fn(ResultHandle) -> *const c_char,
    pub result_rows_written: unsafe extern "C" fn(ResultHandle) -> u64,
    pub stream_insert_n: unsafe extern "C" fn(
        ConnHandle,
        *const c_char,
        usize,
        *const c_char,
        usize,
    ) -> InsertHandle,
    pub stream_append: unsafe extern "C" fn(InsertHandle, *const c_void, usize) -> c_int,
    pub stream_done: unsafe extern "C" fn(InsertHandle) -> ResultHandle,
    pub stream_insert_error: unsafe extern "C" fn(InsertHandle) -> *const c_char,
    pub destroy_insert_stream: unsafe extern "C" fn(InsertHandle),
    pub classify_query_n: unsafe extern "C" fn(
        ConnHandle,
        *const c_char,
        usize,
        *const c_char,
        usize,
        *mut QueryAnalysis,
    ) -> c_int,
    pub shutdown: unsafe extern "C" fn() -> c_int,
}

/// Why the library could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "the embedded ClickHouse library is missing at {path}: run `make chdb` (or scripts/fetch-chdb.sh) to fetch it, or set LOUPE_CHDB_LIB to its path"
    )]
    Missing { path: String },
    #[error("cannot load the embedded ClickHouse library {path}: {reason}")]
    Load { path: String, reason: String },
}

macro_rules! sym {
    ($lib:expr, $path:expr, $name:literal) => {{
        // SAFETY: the symbol's type is the one declared in chdb.h for this name.
        let s = unsafe { $lib.get($name) }.map_err(|e| LoadError::Load {
            path: $path.display().to_string(),
            reason: format!("symbol {} missing: {e}", String::from_utf8_lossy($name)),
        })?;
        *s
    }};
}

impl ChdbApi {
    /// Loads `libchdb.so` and resolves every symbol, or says which one is missing.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        if !path.is_file() {
            return Err(LoadError::Missing {
                path: path.display().to_string(),
            });
        }
        // SAFETY: loading a shared library runs its initialisers; libchdb's are
        // the ClickHouse engine's static constructors, which are sound to run once.
        let lib = unsafe { Library::new(path) }.map_err(|e| LoadError::Load {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            version: sym!(lib, path, b"chdb_version"),
            set_signal_handlers_enabled: sym!(lib, path, b"chdb_set_signal_handlers_enabled"),
            connect: sym!(lib, path, b"chdb_connect"),
            close_conn: sym!(lib, path, b"chdb_close_conn"),
            query_with_params_n: sym!(lib, path, b"chdb_query_with_params_n"),
            stream_query_with_params_n: sym!(lib, path, b"chdb_stream_query_with_params_n"),
            stream_fetch_result: sym!(lib, path, b"chdb_stream_fetch_result"),
            stream_cancel_query: sym!(lib, path, b"chdb_stream_cancel_query"),
            destroy_query_result: sym!(lib, path, b"chdb_destroy_query_result"),
            result_buffer: sym!(lib, path, b"chdb_result_buffer"),
            result_length: sym!(lib, path, b"chdb_result_length"),
            result_error: sym!(lib, path, b"chdb_result_error"),
            result_rows_written: sym!(lib, path, b"chdb_result_rows_written"),
            stream_insert_n: sym!(lib, path, b"chdb_stream_insert_n"),
            stream_append: sym!(lib, path, b"chdb_stream_append"),
            stream_done: sym!(lib, path, b"chdb_stream_done"),
            stream_insert_error: sym!(lib, path, b"chdb_stream_insert_error"),
            destroy_insert_stream: sym!(lib, path, b"chdb_destroy_insert_stream"),
            classify_query_n: sym!(lib, path, b"chdb_classify_query_n"),
            shutdown: sym!(lib, path, b"chdb_shutdown"),
            _lib: std::mem::ManuallyDrop::new(lib),
        })
    }
}
