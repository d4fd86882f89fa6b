//! Allocation calls per message on the `message` path of `make bench-ir` (`message/mod.rs`):
//! the binaries' allocator behind a counter of the calls that hand out memory (`alloc`,
//! `alloc_zeroed`, `realloc`). A benchmark harness; `instructions.rs` runs the same path
//! without the counter, so its instruction counts stay the allocator's own.
//!
//! `cargo run --release -p eda-core --example allocations -- N` runs the path `N` and `3 N`
//! times and prints `message: <calls> allocation calls per message`, the difference over `2 N`
//! (set-up left out).

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};

mod message;
#[path = "../benches/workloads.rs"]
mod workloads;

/// Mimalloc, counting.
struct Counting;

static CALLS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is Mimalloc's, unchanged; the counter only observes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's guarantees, passed on.
        unsafe { eda_core::alloc::Mimalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's guarantees, passed on.
        unsafe { eda_core::alloc::Mimalloc.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's guarantees, passed on.
        unsafe { eda_core::alloc::Mimalloc.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's guarantees, passed on.
        unsafe { eda_core::alloc::Mimalloc.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    let n = match std::env::args().nth(1).map(|n| n.parse::<usize>()) {
        Some(Ok(n)) if n > 0 && n % message::BATCH == 0 => n,
        _ => {
            eprintln!("usage: allocations N (a multiple of {})", message::BATCH);
            std::process::exit(2)
        }
    };
    let setup = message::Setup::new();
    let calls = |n: usize| {
        let before = CALLS.load(Ordering::Relaxed);
        let done = message::run(&setup, n);
        let calls = CALLS.load(Ordering::Relaxed) - before;
        if done != n {
            eprintln!("allocations: only {done} of {n} messages went through");
            std::process::exit(1)
        }
        calls
    };
    let low = calls(n);
    let high = calls(3 * n);
    let per = (high - low) as f64 / (2 * n) as f64;
    println!("message: {per:.2} allocation calls per message");
}
