//! Counting allocations of one thread.
//!
//! A test binary installs the allocator and measures a closure:
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: camp_testkit::alloc::CountingAlloc = camp_testkit::alloc::CountingAlloc;
//!
//! let (_, allocs) = camp_testkit::alloc::counted(|| hot_path());
//! assert_eq!(allocs, 0);
//! ```
//!
//! Only the thread inside [`counted`] is counted, so tests running in parallel threads do
//! not disturb each other; reallocations count, frees do not.
//!
//! Each thread's live bytes (allocated minus freed by that thread) are kept too, always:
//! [`live_bytes`] lets a single-threaded soak test check that memory returns to a
//! baseline.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

/// Panic at the first counted allocation (see [`panic_at_first_allocation`]).
static PANIC_AT_FIRST: AtomicBool = AtomicBool::new(false);

thread_local! {
    // Const-initialised without destructors: touching them never allocates, so the
    // allocator may read them re-entrantly.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn live(delta: i64) {
    let _ = LIVE.try_with(|l| l.set(l.get() + delta));
}

/// Bytes this thread has allocated and not freed since it started, as counted by
/// [`CountingAlloc`] (0 when it is not the global allocator). Memory freed by another
/// thread than the one that allocated it skews both threads' figures, so use it in
/// single-threaded code.
pub fn live_bytes() -> i64 {
    LIVE.try_with(Cell::get).unwrap_or(0)
}

fn note() {
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        if PANIC_AT_FIRST.load(Ordering::Relaxed) {
            let _ = ARMED.try_with(|a| a.set(false));
            panic!("allocation inside counted()");
        }
    }
}

/// Debugging aid: from now on, the first allocation counted inside [`counted`] panics, so
/// that `RUST_BACKTRACE=1` shows where it came from. Tests switch it on when the
/// environment variable `CAMP_ALLOC_PANIC` is set ([`panic_if_env`]).
pub fn panic_at_first_allocation(on: bool) {
    PANIC_AT_FIRST.store(on, Ordering::Relaxed);
}

/// [`panic_at_first_allocation`] when `CAMP_ALLOC_PANIC` is set.
pub fn panic_if_env() {
    panic_at_first_allocation(std::env::var_os("CAMP_ALLOC_PANIC").is_some());
}

/// The system allocator, counting [`counted`]'s thread's allocations.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        live(layout.size() as i64);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        live(layout.size() as i64);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        live(-(layout.size() as i64));
        // SAFETY: `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: as for `dealloc`, and the caller upholds `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            live(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// Runs `f` and returns how many allocations this thread made meanwhile. Counts only when
/// [`CountingAlloc`] is the binary's global allocator (otherwise always 0: check with
/// [`installed`]).
pub fn counted<R>(f: impl FnOnce() -> R) -> (R, u64) {
    ALLOCS.with(|a| a.set(0));
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    (r, ALLOCS.with(Cell::get))
}

/// True when [`CountingAlloc`] is the global allocator, so that a count of 0 means
/// something. Every test that asserts zero allocations should assert this too.
pub fn installed() -> bool {
    let (_, n) = counted(|| std::hint::black_box(Box::new(7u64)));
    n == 1
}
