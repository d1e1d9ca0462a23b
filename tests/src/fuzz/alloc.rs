//! A counting global allocator for fuzz test binaries: it keeps the bytes live and their peak,
//! and while a fuzz case runs it refuses any allocation that would take the live bytes past
//! [`LIMIT`]. A reader that reserves fallibly (`try_reserve`) then gets an error it can report; one
//! that allocates infallibly aborts the test binary — after this allocator has printed the
//! reader, seed and case, so the abort is reproducible. Either way a reader whose memory is
//! sized by a number in the file, not by the file, cannot pass.
//!
//! A test binary installs it with
//! `#[global_allocator] static ALLOC: ragtune_tests::fuzz::CountingAlloc = ragtune_tests::fuzz::CountingAlloc;`
//! and [`crate::fuzz::fuzz`] refuses to run without it (a forgotten line would measure nothing).

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// The most bytes a process running fuzz cases may hold at once (the bound: 1 GB).
pub const LIMIT: usize = 1 << 30;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ARMED: AtomicBool = AtomicBool::new(false);
static SEEN: AtomicBool = AtomicBool::new(false);
static REFUSED: AtomicUsize = AtomicUsize::new(0);
/// Whether this case's first refusal was printed (one line a case is enough to reproduce it).
static PRINTED: AtomicBool = AtomicBool::new(false);
/// The case running now, for the message printed when an allocation is refused.
static CASE: Mutex<(&str, u64, u64)> = Mutex::new(("", 0, 0));
static CASE_INDEX: AtomicU64 = AtomicU64::new(0);

/// See the module doc.
pub struct CountingAlloc;

/// Whether this process's global allocator is [`CountingAlloc`].
pub fn installed() -> bool {
    // Any allocation at all goes through the global allocator; make one to be sure.
    std::hint::black_box(Box::new(0u64));
    SEEN.load(Ordering::Relaxed)
}

/// Bytes live now.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Restart the peak at what is live now.
pub fn reset_peak() {
    PEAK.store(live(), Ordering::Relaxed);
}

/// The most bytes live at once since [`reset_peak`].
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Allocations refused since the process started.
pub fn refused() -> usize {
    REFUSED.load(Ordering::Relaxed)
}

/// Enforce [`LIMIT`] (`armed`) or not; `name`, `seed` and the case (see [`set_case`]) are what a
/// refusal prints.
pub fn arm(armed: bool, name: &'static str, seed: u64) {
    if let Ok(mut c) = CASE.lock() {
        *c = (name, seed, 0);
    }
    ARMED.store(armed, Ordering::SeqCst);
}

/// The case about to run (see [`arm`]).
pub fn set_case(case: u64) {
    CASE_INDEX.store(case, Ordering::Relaxed);
    PRINTED.store(false, Ordering::Relaxed);
}

/// Count `size` more bytes live, unless armed and over the limit.
fn admit(size: usize) -> bool {
    SEEN.store(true, Ordering::Relaxed);
    // Check before adding: a refused size must never be seen as live by another thread.
    let mut live = LIVE.load(Ordering::Relaxed);
    loop {
        let after = live.saturating_add(size);
        if after > LIMIT && ARMED.load(Ordering::Relaxed) {
            REFUSED.fetch_add(1, Ordering::Relaxed);
            report(size, live);
            return false;
        }
        match LIVE.compare_exchange_weak(live, after, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => {
                PEAK.fetch_max(after, Ordering::Relaxed);
                return true;
            }
            Err(now) => live = now,
        }
    }
}

/// Print the refusal from a stack buffer: allocating here would recurse.
fn report(size: usize, live: usize) {
    if PRINTED.swap(true, Ordering::Relaxed) {
        return;
    }
    let mut msg = StackText { buf: [0; 256], len: 0 };
    let (name, seed) = match CASE.try_lock() {
        Ok(c) => (c.0, c.1),
        Err(_) => ("?", 0),
    };
    let case = CASE_INDEX.load(Ordering::Relaxed);
    let _ = writeln!(
        msg,
        "fuzz {name}: case {case} (seed {seed}) asked for {size} bytes with {live} live; the limit is {LIMIT}"
    );
    let _ = std::io::stderr().write_all(&msg.buf[..msg.len]);
}

struct StackText {
    buf: [u8; 256],
    len: usize,
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Admit `size` bytes, then allocate them with `allocate`; the bytes leave the count again if
/// the allocation fails.
fn counted(size: usize, allocate: impl FnOnce() -> *mut u8) -> *mut u8 {
    if !admit(size) {
        return std::ptr::null_mut();
    }
    let p = allocate();
    if p.is_null() {
        LIVE.fetch_sub(size, Ordering::Relaxed);
    }
    p
}

// SAFETY: every call forwards to `System` with the caller's layout; the counters only decide
// whether to forward, and a refusal returns null as `GlobalAlloc` allows.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        counted(layout.size(), || unsafe { System.alloc(layout) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        counted(layout.size(), || unsafe { System.alloc_zeroed(layout) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (so from `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !admit(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` came from `System` with `layout`; `new_size` is the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        match (p.is_null(), new_size > old) {
            (true, true) => {
                LIVE.fetch_sub(new_size - old, Ordering::Relaxed);
            }
            (false, false) => {
                LIVE.fetch_sub(old - new_size, Ordering::Relaxed);
            }
            _ => {}
        }
        p
    }
}
