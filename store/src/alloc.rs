//! The allocator of Loupe's binaries: mimalloc, told to keep freed pages.
//!
//! Ingest allocates and frees tens of MiB per batch (decoded requests, rows,
//! RowBinary buffers). With mimalloc's default of handing freed pages back to
//! the OS a second after they are freed, the kernel spent ~9 % of the machine
//! zeroing the same pages again (bench/ingest under `perf`); keeping them
//! raised end-to-end ingest ~7 % over three runs each. The cost: RSS stays at
//! the process's own peak, which the collector's queue and batch limits
//! bound. mimalloc itself cut allocation time against glibc's allocator.
//! The embedded engine allocates with its own allocator, untouched.
//!
//! A binary opts in with:
//! ```ignore
//! #[global_allocator]
//! static ALLOC: store::alloc::Allocator = store::alloc::Allocator;
//! fn main() { store::alloc::tune(); /* ... */ }
//! ```

pub use mimalloc::MiMalloc as Allocator;

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3): how long freed pages
/// stay committed, in ms (v3 default 1000; -1: never purge).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// Freed pages stay with the process (-1: never purged).
pub const PURGE_DELAY_MS: i64 = -1;

/// Applies Loupe's allocator settings, unless `MIMALLOC_PURGE_DELAY` is set
/// in the environment (mimalloc reads its own variables).
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets one integer option; called at start-up, before the
    // threads that allocate concurrently exist.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

/// The purge delay in force, in ms.
pub fn purge_delay_ms() -> i64 {
    // SAFETY: reads one integer option.
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_index_is_the_purge_delay() {
        // mimalloc v3's default purge delay is 1000 ms: the index points at
        // it before tuning, and tuning changes it.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        assert_eq!(purge_delay_ms(), 1_000);
        tune();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }
}
