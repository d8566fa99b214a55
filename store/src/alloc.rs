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
//! [`Allocator`] calls mimalloc directly: `mi_malloc` / `mi_zalloc` /
//! `mi_realloc` when the alignment asked for is at most a word (every
//! mimalloc block is word-aligned; that is nearly every allocation: strings,
//! byte buffers, vectors of words), the `_aligned` variants otherwise. The
//! `mimalloc` crate's allocator calls the `_aligned` variants for every
//! allocation, which take a slower path: under callgrind ~50 instructions
//! per `mi_malloc_aligned`, and the switch saved 13 M instructions over the
//! ~650k allocations of the ingest bench's normalise-only run (~80 per span).
//! (mimalloc's optional guarded-page debugging, not compiled in with this
//! crate's features, can return blocks aligned only to their size; Rust
//! sizes are multiples of their alignment, so even that would hold.)
//!
//! A binary opts in with:
//! ```ignore
//! #[global_allocator]
//! static ALLOC: store::alloc::Allocator = store::alloc::Allocator;
//! fn main() { store::alloc::tune(); /* ... */ }
//! ```

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The largest alignment every mimalloc block has (`MI_INTPTR_SIZE`: block
/// sizes are whole words).
const WORD: usize = std::mem::size_of::<usize>();

/// mimalloc as the global allocator (see the module header).
#[derive(Debug, Clone, Copy, Default)]
pub struct Allocator;

// SAFETY: every method hands the request to mimalloc, which returns null or a
// block of at least `size` bytes aligned to `layout.align()`: the plain calls
// only when that alignment is at most a word, which every mimalloc block has;
// `dealloc` and `realloc` receive only pointers this allocator returned.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if layout.align() <= WORD {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if layout.align() <= WORD {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: see the impl.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: see the impl; the block keeps the alignment it was made with.
        unsafe {
            if layout.align() <= WORD {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

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
    fn blocks_have_the_alignment_asked_for_and_keep_it_through_realloc() {
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1, 7, 8, 24, 40, 100, 1000, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; every block is freed below with
                // its layout.
                unsafe {
                    let p = Allocator.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xab, size);
                    let z = Allocator.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    let q = Allocator.realloc(p, layout, size * 3);
                    assert_eq!(q as usize % align, 0, "realloc size {size} align {align}");
                    assert!(
                        std::slice::from_raw_parts(q, size)
                            .iter()
                            .all(|&b| b == 0xab)
                    );
                    Allocator.dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
                    Allocator.dealloc(z, layout);
                }
            }
        }
    }

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
