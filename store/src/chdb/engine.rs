//! The embedded ClickHouse engine: one data directory, a small pool of chDB
//! connections, and the few operations the loopback endpoint needs.
//!
//! Invariants (each one a measured chDB fact, each guarded by a test):
//! - A data directory belongs to one process: an advisory lock file enforces it
//!   and names the holder when a second process tries.
//! - Bulk inserts go through the stream-insert API, never an inline
//!   `INSERT … FORMAT x <data>` (which silently stores only part of the rows).
//! - A connection runs one statement at a time; the pool hands each out to one
//!   caller. After any error the connection runs and discards a `SELECT 1`,
//!   because the next result on it otherwise carries the failed query's output.
//! - Before the process exits every connection is closed and `chdb_shutdown`
//!   is called ([`Engine::shutdown`]); `Drop` does the same as a last resort.
//! - chDB's crash-signal handlers are disabled before the first connect, so
//!   signals stay Rust's.

use std::ffi::{CStr, CString, c_char};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::EngineError;
use super::ffi::{self, ChdbApi, ConnHandle, LoadError, QueryAnalysis};

/// How to start the engine. Defaults keep an idle instance small.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub lib_path: PathBuf,
    pub data_dir: PathBuf,
    /// `max_server_memory_usage` in bytes (chDB's default is ~0.9 × RAM).
    pub max_memory_bytes: u64,
    /// `mark_cache_size` in bytes (chDB's default is 5 GiB).
    pub mark_cache_bytes: u64,
    /// Connections that may write (migrations, inserts).
    pub writers: usize,
    /// Connections opened with `--readonly=1` (dashboard, `loupe sql`).
    pub readers: usize,
    /// `max_execution_time` in seconds for read-only connections.
    pub read_timeout_secs: u32,
}

impl EngineOptions {
    pub fn new(lib_path: PathBuf, data_dir: PathBuf) -> Self {
        Self {
            lib_path,
            data_dir,
            max_memory_bytes: 2 << 30,
            mark_cache_bytes: 64 << 20,
            writers: 2,
            readers: 2,
            read_timeout_secs: 60,
        }
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("data directory {path} is not usable: {reason}")]
    DataDir { path: String, reason: String },
    #[error("data directory {path} is in use by another Loupe process{holder}")]
    Locked { path: String, holder: String },
    #[error("the embedded ClickHouse engine refused to start on {path}: {reason}")]
    Connect { path: String, reason: String },
}

/// One chDB connection. Only ever used by one thread at a time (the pool
/// guarantees it), which is the contract chDB documents.
struct Conn {
    handle: *mut ConnHandle,
}

// SAFETY: a chDB connection may be used from any thread as long as calls on it
// are serialised; the pool hands a `Conn` to exactly one holder at a time.
unsafe impl Send for Conn {}

/// Which pool a caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    Write,
}

struct Pool {
    size: u32,
    permits: Arc<Semaphore>,
    conns: Mutex<Vec<Conn>>,
}

impl Pool {
    fn new(conns: Vec<Conn>) -> Self {
        Self {
            size: u32::try_from(conns.len()).unwrap_or(u32::MAX),
            permits: Arc::new(Semaphore::new(conns.len())),
            conns: Mutex::new(conns),
        }
    }
}

pub struct Engine {
    api: Arc<ChdbApi>,
    writers: Pool,
    readers: Pool,
    data_dir: PathBuf,
    closed: AtomicBool,
    clean_shutdown: AtomicBool,
    _lock: File,
}

/// A connection checked out of the pool; returned on drop.
pub struct Lease {
    engine: Arc<Engine>,
    access: Access,
    conn: Option<Conn>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let pool = self.engine.pool(self.access);
            if let Ok(mut conns) = pool.conns.lock() {
                conns.push(conn);
            }
        }
    }
}

impl Engine {
    /// Loads the library, locks the data directory and opens the pools.
    pub fn start(opts: &EngineOptions) -> Result<Arc<Self>, StartError> {
        let api = Arc::new(ChdbApi::load(&opts.lib_path)?);
        let data_dir = prepare_data_dir(&opts.data_dir)?;
        let lock = lock_data_dir(&data_dir)?;

        // SAFETY: plain setter, called before any connection exists.
        unsafe { (api.set_signal_handlers_enabled)(0) };

        let path_arg = format!("--path={}", data_dir.join("clickhouse").display());
        let mut common = vec![
            "loupe".to_string(),
            path_arg,
            format!("--max_server_memory_usage={}", opts.max_memory_bytes),
            format!("--mark_cache_size={}", opts.mark_cache_bytes),
            format!("--index_mark_cache_size={}", opts.mark_cache_bytes / 4),
            format!("--uncompressed_cache_size={}", opts.mark_cache_bytes),
            format!("--primary_index_cache_size={}", opts.mark_cache_bytes),
            "--max_threads=2".to_string(),
        ];
        let mut writers = Vec::new();
        for _ in 0..opts.writers.max(1) {
            writers.push(connect(&api, &common, &data_dir)?);
        }
        common.push("--readonly=1".to_string());
        common.push(format!("--max_execution_time={}", opts.read_timeout_secs));
        let mut readers = Vec::new();
        for _ in 0..opts.readers.max(1) {
            readers.push(connect(&api, &common, &data_dir)?);
        }
        Ok(Arc::new(Self {
            api,
            writers: Pool::new(writers),
            readers: Pool::new(readers),
            data_dir,
            closed: AtomicBool::new(false),
            clean_shutdown: AtomicBool::new(false),
            _lock: lock,
        }))
    }

    /// Whether `chdb_shutdown` confirmed every engine thread stopped.
    pub fn shut_down_cleanly(&self) -> bool {
        self.clean_shutdown.load(Ordering::SeqCst)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The engine's version string, e.g. `26.7.2.1`.
    pub fn version(&self) -> String {
        // SAFETY: returns a static NUL-terminated string owned by the library.
        let p = unsafe { (self.api.version)() };
        cstr_lossy(p)
    }

    fn pool(&self, access: Access) -> &Pool {
        match access {
            Access::ReadOnly => &self.readers,
            Access::Write => &self.writers,
        }
    }

    /// Waits for a free connection of the given kind.
    pub async fn lease(self: &Arc<Self>, access: Access) -> Result<Lease, EngineError> {
        let pool = self.pool(access);
        let permit = Arc::clone(&pool.permits)
            .acquire_owned()
            .await
            .map_err(|_| EngineError::closed())?;
        let conn = pool
            .conns
            .lock()
            .map_err(|_| EngineError::closed())?
            .pop()
            .ok_or_else(EngineError::closed)?;
        Ok(Lease {
            engine: Arc::clone(self),
            access,
            conn: Some(conn),
            _permit: permit,
        })
    }

    /// Closes every connection and stops the engine's threads. Idempotent.
    /// Waits for leased connections to come back first.
    pub async fn shutdown(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        for pool in [&self.writers, &self.readers] {
            // Take every permit: once we hold them all, nothing is leased.
            let _all = pool.permits.acquire_many(pool.size).await;
            pool.permits.close();
        }
        self.close_all();
    }

    fn close_all(&self) {
        for pool in [&self.writers, &self.readers] {
            if let Ok(mut conns) = pool.conns.lock() {
                for conn in conns.drain(..) {
                    // SAFETY: the handle came from chdb_connect and is closed once.
                    unsafe { (self.api.close_conn)(conn.handle) };
                }
            }
        }
        // chdb_shutdown may report threads it could not stop yet and retries
        // when called again. With MergeTree tables it keeps reporting some
        // background thread (chDB 26.7); the connections are closed, which is
        // what a clean exit needs, so that is logged, not fatal.
        for _ in 0..3 {
            // SAFETY: all connections are closed; shutdown joins the engine threads.
            if unsafe { (self.api.shutdown)() } == ffi::CHDB_SUCCESS {
                self.clean_shutdown.store(true, Ordering::SeqCst);
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        tracing::debug!("embedded engine left background threads running at shutdown");
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            self.close_all();
        }
    }
}

impl Lease {
    fn conn(&self) -> Result<ConnHandle, EngineError> {
        let conn = self.conn.as_ref().ok_or_else(EngineError::closed)?;
        // SAFETY: `handle` points to the chdb_connection chdb_connect returned.
        Ok(unsafe { *conn.handle })
    }

    fn api(&self) -> &ChdbApi {
        &self.engine.api
    }

    /// Runs one statement and returns its whole output in `format`.
    pub fn query(
        &mut self,
        sql: &str,
        format: &str,
        params: &[(String, String)],
    ) -> Result<Vec<u8>, EngineError> {
        let conn = self.conn()?;
        let p = Params::new(params);
        // SAFETY: all buffers outlive the call; lengths match the buffers.
        let res = unsafe {
            (self.api().query_with_params_n)(
                conn,
                sql.as_ptr().cast(),
                sql.len(),
                format.as_ptr().cast(),
                format.len(),
                p.names.as_ptr(),
                p.name_lens.as_ptr(),
                p.values.as_ptr(),
                p.value_lens.as_ptr(),
                p.len(),
            )
        };
        let out = self.take_result(res);
        if out.is_err() {
            self.recover();
        }
        out
    }

    /// Runs one statement and hands its output to `sink` chunk by chunk. The
    /// first error before any chunk is returned as `Err`; a later one as
    /// `Ok(Some(err))` (the caller has already sent part of the output).
    /// `sink` returns false to cancel (the client went away).
    pub fn stream_query(
        &mut self,
        sql: &str,
        format: &str,
        params: &[(String, String)],
        mut sink: impl FnMut(Vec<u8>) -> bool,
    ) -> Result<Option<EngineError>, EngineError> {
        let conn = self.conn()?;
        let p = Params::new(params);
        // SAFETY: as in `query`.
        let handle = unsafe {
            (self.api().stream_query_with_params_n)(
                conn,
                sql.as_ptr().cast(),
                sql.len(),
                format.as_ptr().cast(),
                format.len(),
                p.names.as_ptr(),
                p.name_lens.as_ptr(),
                p.values.as_ptr(),
                p.value_lens.as_ptr(),
                p.len(),
            )
        };
        if handle.is_null() {
            self.recover();
            return Err(EngineError::internal("stream query returned no handle"));
        }
        // SAFETY: handle is a live result until destroyed below.
        if let Some(err) = unsafe { self.result_error(handle) } {
            unsafe { (self.api().destroy_query_result)(handle) };
            self.recover();
            return Err(err);
        }
        let mut sent_any = false;
        let mut late_error = None;
        loop {
            // SAFETY: conn and handle are live; one caller per connection.
            let chunk = unsafe { (self.api().stream_fetch_result)(conn, handle) };
            match self.take_result(chunk) {
                Ok(bytes) if bytes.is_empty() => break,
                Ok(bytes) => {
                    sent_any = true;
                    if !sink(bytes) {
                        // SAFETY: cancelling a live stream on its own connection.
                        unsafe { (self.api().stream_cancel_query)(conn, handle) };
                        break;
                    }
                }
                Err(e) => {
                    late_error = Some(e);
                    break;
                }
            }
        }
        // SAFETY: the stream handle is destroyed exactly once.
        unsafe { (self.api().destroy_query_result)(handle) };
        match late_error {
            Some(e) => {
                self.recover();
                if sent_any { Ok(Some(e)) } else { Err(e) }
            }
            None => Ok(None),
        }
    }

    /// Starts a streaming insert. `sql` is `INSERT INTO t (cols) [SETTINGS …]`
    /// without a FORMAT clause; `format` names the data's format.
    pub fn insert(&mut self, sql: &str, format: &str) -> Result<InsertStream<'_>, EngineError> {
        let conn = self.conn()?;
        // SAFETY: buffers outlive the call.
        let handle = unsafe {
            (self.api().stream_insert_n)(
                conn,
                sql.as_ptr().cast(),
                sql.len(),
                format.as_ptr().cast(),
                format.len(),
            )
        };
        if handle.is_null() {
            self.recover();
            return Err(EngineError::internal("stream insert returned no handle"));
        }
        // SAFETY: handle is live.
        let err = unsafe { (self.api().stream_insert_error)(handle) };
        if !err.is_null() {
            let e = EngineError::parse(&cstr_lossy(err));
            // SAFETY: destroyed once, on this error path.
            unsafe { (self.api().destroy_insert_stream)(handle) };
            self.recover();
            return Err(e);
        }
        Ok(InsertStream {
            lease: self,
            handle,
            finished: false,
        })
    }

    /// Whether `sql` would only read, judged by the engine's own parser.
    pub fn is_read_only(&mut self, sql: &str) -> Result<bool, EngineError> {
        let conn = self.conn()?;
        let mut out = QueryAnalysis {
            struct_size: std::mem::size_of::<QueryAnalysis>() as u32,
            ..Default::default()
        };
        // SAFETY: out is a properly sized, writable struct; sql outlives the call.
        let rc = unsafe {
            (self.api().classify_query_n)(
                conn,
                sql.as_ptr().cast(),
                sql.len(),
                std::ptr::null(),
                0,
                &mut out,
            )
        };
        if rc != ffi::CHDB_SUCCESS {
            return Err(EngineError::internal("could not classify the statement"));
        }
        Ok(out.statement_count >= 1 && out.query_class == ffi::QUERY_CLASS_READ_ONLY)
    }

    /// After an error, chDB's next result on the same connection carries the
    /// failed query's leftovers: run and discard one query to flush them.
    fn recover(&mut self) {
        let Ok(conn) = self.conn() else { return };
        let sql = "SELECT 1";
        // SAFETY: as in `query`, with no parameters.
        let res = unsafe {
            (self.api().query_with_params_n)(
                conn,
                sql.as_ptr().cast(),
                sql.len(),
                "TSV".as_ptr().cast(),
                3,
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                0,
            )
        };
        if !res.is_null() {
            // SAFETY: destroyed once.
            unsafe { (self.api().destroy_query_result)(res) };
        }
    }

    /// # Safety
    /// `res` must be a live chDB result handle.
    unsafe fn result_error(&self, res: ffi::ResultHandle) -> Option<EngineError> {
        // SAFETY: guaranteed by the caller.
        let err = unsafe { (self.api().result_error)(res) };
        (!err.is_null()).then(|| EngineError::parse(&cstr_lossy(err)))
    }

    /// Copies a result's bytes (or error) out and destroys it.
    fn take_result(&self, res: ffi::ResultHandle) -> Result<Vec<u8>, EngineError> {
        if res.is_null() {
            return Err(EngineError::internal("query returned no result"));
        }
        // SAFETY: res is live until destroyed at the end of this function.
        let out = unsafe {
            match self.result_error(res) {
                Some(e) => Err(e),
                None => {
                    let len = (self.api().result_length)(res);
                    let buf = (self.api().result_buffer)(res);
                    if len == 0 || buf.is_null() {
                        Ok(Vec::new())
                    } else {
                        Ok(std::slice::from_raw_parts(buf.cast::<u8>(), len).to_vec())
                    }
                }
            }
        };
        // SAFETY: destroyed exactly once.
        unsafe { (self.api().destroy_query_result)(res) };
        out
    }
}

/// An open streaming insert. Dropping it without [`InsertStream::finish`]
/// cancels the insert: nothing of it is committed.
pub struct InsertStream<'a> {
    lease: &'a mut Lease,
    handle: ffi::InsertHandle,
    finished: bool,
}

impl InsertStream<'_> {
    pub fn append(&mut self, data: &[u8]) -> Result<(), EngineError> {
        // SAFETY: handle is live until finish/drop; data outlives the call.
        let rc = unsafe {
            (self.lease.api().stream_append)(self.handle, data.as_ptr().cast(), data.len())
        };
        if rc == ffi::CHDB_SUCCESS {
            return Ok(());
        }
        // SAFETY: handle is live.
        let err = unsafe { (self.lease.api().stream_insert_error)(self.handle) };
        Err(if err.is_null() {
            EngineError::internal("insert stream refused the data")
        } else {
            EngineError::parse(&cstr_lossy(err))
        })
    }

    /// Commits the insert and returns the rows written (including rows that
    /// materialized views wrote).
    pub fn finish(mut self) -> Result<u64, EngineError> {
        self.finished = true;
        // SAFETY: handle is live; done is called once.
        let res = unsafe { (self.lease.api().stream_done)(self.handle) };
        let out = if res.is_null() {
            Err(EngineError::internal("insert stream returned no result"))
        } else {
            // SAFETY: res is live until destroyed.
            let rows = unsafe { (self.lease.api().result_rows_written)(res) };
            self.lease.take_result(res).map(|_| rows)
        };
        // SAFETY: destroyed once; `finished` stops Drop from doing it again.
        unsafe { (self.lease.api().destroy_insert_stream)(self.handle) };
        if out.is_err() {
            self.lease.recover();
        }
        out
    }
}

impl Drop for InsertStream<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // SAFETY: destroy cancels an unfinished stream; called once.
            unsafe { (self.lease.api().destroy_insert_stream)(self.handle) };
            self.lease.recover();
        }
    }
}

/// Parameter arrays in the shape `chdb_*_with_params_n` takes.
struct Params<'a> {
    names: Vec<*const c_char>,
    name_lens: Vec<usize>,
    values: Vec<*const c_char>,
    value_lens: Vec<usize>,
    _src: std::marker::PhantomData<&'a ()>,
}

impl<'a> Params<'a> {
    fn new(params: &'a [(String, String)]) -> Self {
        Self {
            names: params.iter().map(|(n, _)| n.as_ptr().cast()).collect(),
            name_lens: params.iter().map(|(n, _)| n.len()).collect(),
            values: params.iter().map(|(_, v)| v.as_ptr().cast()).collect(),
            value_lens: params.iter().map(|(_, v)| v.len()).collect(),
            _src: std::marker::PhantomData,
        }
    }

    fn len(&self) -> usize {
        self.names.len()
    }
}

fn cstr_lossy(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: chDB returns NUL-terminated strings that live at least as long
    // as the handle they came from, which the caller still holds.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn connect(api: &ChdbApi, args: &[String], data_dir: &Path) -> Result<Conn, StartError> {
    let fail = |reason: String| StartError::Connect {
        path: data_dir.display().to_string(),
        reason,
    };
    let owned: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| fail("an argument contains a NUL byte".into()))?;
    let mut argv: Vec<*mut c_char> = owned.iter().map(|a| a.as_ptr().cast_mut()).collect();
    let argc = i32::try_from(argv.len()).map_err(|_| fail("too many arguments".into()))?;
    // SAFETY: argv points to `argc` valid C strings that outlive the call.
    let handle = unsafe { (api.connect)(argc, argv.as_mut_ptr()) };
    // SAFETY: a non-null handle points to a (possibly null) connection.
    if handle.is_null() || unsafe { (*handle).is_null() } {
        return Err(fail(
            "chdb_connect failed (see the engine's log above)".into(),
        ));
    }
    Ok(Conn { handle })
}

fn prepare_data_dir(dir: &Path) -> Result<PathBuf, StartError> {
    let fail = |reason: String| StartError::DataDir {
        path: dir.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let dir = dir.canonicalize().map_err(|e| fail(e.to_string()))?;
    // Probe writability now, so the error names the directory rather than
    // surfacing later as an engine exception.
    let probe = dir.join(".loupe-write-probe");
    std::fs::write(&probe, b"ok").map_err(|e| fail(format!("not writable: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(dir)
}

const LOCK_FILE: &str = "loupe.lock";

fn lock_data_dir(dir: &Path) -> Result<File, StartError> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| StartError::DataDir {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
    if file.try_lock().is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        return Err(StartError::Locked {
            path: dir.display().to_string(),
            holder: if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            },
        });
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    let _ = file.flush();
    Ok(file)
}
