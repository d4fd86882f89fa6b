//! The allocator of every eda binary (the daemon, the five Lambda functions, the benches):
//! mimalloc, asked for plain blocks whenever the alignment allows.
//!
//! Why not the `mimalloc` crate's `GlobalAlloc`: it asks for every block with
//! `mi_malloc_aligned`, and whenever a size class's free list has to be refilled that call leaves
//! mimalloc's fast path for its generic aligned one, which takes the over-allocating route — on a
//! good share of the CDC path's allocations (the README's Performance section has the figure).
//! Every block mimalloc hands out is word-aligned (its size classes are whole words, and its pages
//! start 16-byte aligned), so an alignment up to a word needs no aligned call: [`Mimalloc`] calls
//! `mi_malloc` then, and the aligned functions only for larger alignments.

use std::alloc::{GlobalAlloc, Layout};

use libmimalloc_sys as mi;

/// mimalloc as the global allocator: `#[global_allocator] static A: Mimalloc = Mimalloc;`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mimalloc;

/// The alignment of every mimalloc block.
const WORD: usize = std::mem::size_of::<usize>();

// SAFETY: each method hands mimalloc's block straight through. Blocks from `mi_malloc`,
// `mi_zalloc` and `mi_realloc` are at least word-aligned, which covers the layouts they are used
// for (alignment ≤ `WORD`); the `_aligned` functions honour any power-of-two alignment, which a
// `Layout` always has. `mi_free` releases blocks of either kind, and null reports exhaustion as
// `GlobalAlloc` expects.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain FFI calls; see the impl's comment for the alignment.
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
        // SAFETY: as in `alloc`.
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
        // SAFETY: `ptr` came from this allocator (the caller's contract), so from mimalloc.
        unsafe { mi::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the new block keeps its
        // alignment, as in `alloc`.
        unsafe {
            if layout.align() <= WORD {
                mi::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

/// Asks Linux to back none of this process's memory with transparent huge pages from now on
/// (`prctl(PR_SET_THP_DISABLE)`); `false` where that is refused or not Linux.
///
/// Why: mimalloc advises its arena (1 GiB reserved) for huge pages, and a 2 MiB huge page
/// counts whole in the RSS as soon as one byte of it is touched. Measured on the daemon at
/// 10,000 msg/s offered (`docs/perf/hops.md`): 28 of the arena's 58 MB resident were huge
/// pages, mostly partly used. With small pages the RSS follows what is live; the CPU cost of
/// more TLB misses did not show in the benchmark. The same as `MIMALLOC_ALLOW_THP=0`, which
/// mimalloc reads only at its start, before `main`; call this first thing in `main`.
pub fn disable_transparent_huge_pages() -> bool {
    #[cfg(target_os = "linux")]
    {
        /// `PR_SET_THP_DISABLE` of `<linux/prctl.h>`.
        const PR_SET_THP_DISABLE: std::ffi::c_int = 41;
        extern "C" {
            fn prctl(option: std::ffi::c_int, ...) -> std::ffi::c_int;
        }
        let on: std::ffi::c_ulong = 1;
        let unused: std::ffi::c_ulong = 0;
        // SAFETY: `prctl` with `PR_SET_THP_DISABLE` takes four unsigned long arguments and only
        // sets a flag of this process; nothing is read or written through them.
        unsafe { prctl(PR_SET_THP_DISABLE, on, unused, unused, unused) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flag is set for this process, as Linux reports it back (`PR_GET_THP_DISABLE`).
    #[cfg(target_os = "linux")]
    #[test]
    fn huge_pages_can_be_turned_off_for_the_process() {
        const PR_GET_THP_DISABLE: std::ffi::c_int = 42;
        extern "C" {
            fn prctl(option: std::ffi::c_int, ...) -> std::ffi::c_int;
        }
        assert!(disable_transparent_huge_pages());
        let unused: std::ffi::c_ulong = 0;
        // SAFETY: `PR_GET_THP_DISABLE` reads a flag of this process and returns it.
        let flag = unsafe { prctl(PR_GET_THP_DISABLE, unused, unused, unused, unused) };
        assert_eq!(flag, 1);
    }

    /// Blocks of many sizes and alignments come back aligned and writable, keep their bytes
    /// through a reallocation (grown, then shrunk), and come back zeroed when asked.
    #[test]
    fn blocks_are_aligned_and_keep_their_bytes() {
        let sizes = [
            1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 36, 96, 280, 447, 544, 768, 1025, 70_000,
        ];
        let fill = |p: *mut u8, len: usize| {
            for i in 0..len {
                // SAFETY: `p` holds at least `len` bytes.
                unsafe { p.add(i).write(i as u8) }
            }
        };
        let holds = |p: *const u8, len: usize| {
            // SAFETY: `p` holds at least `len` initialized bytes.
            (0..len).all(|i| unsafe { p.add(i).read() } == i as u8)
        };
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for &size in &sizes {
                let mut layout = Layout::from_size_align(size, align).expect("a valid layout");
                // SAFETY: every layout here has a non-zero size, and each block is passed back
                // (to `realloc` or `dealloc`) once, with the layout it has at that point.
                unsafe {
                    let mut p = Mimalloc.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size}, align {align}");
                    fill(p, size);
                    for new_size in [size * 3 + 5, size.div_ceil(2)] {
                        let kept = layout.size().min(new_size);
                        let q = Mimalloc.realloc(p, layout, new_size);
                        assert!(!q.is_null());
                        assert_eq!(
                            q as usize % align,
                            0,
                            "realloc to {new_size}, align {align}"
                        );
                        assert!(holds(q, kept), "realloc to {new_size}, align {align}");
                        layout = Layout::from_size_align(new_size, align).expect("a valid layout");
                        p = q;
                        fill(p, new_size);
                    }
                    Mimalloc.dealloc(p, layout);

                    let zeroed = Layout::from_size_align(size, align).expect("a valid layout");
                    let z = Mimalloc.alloc_zeroed(zeroed);
                    assert!(!z.is_null());
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| z.add(i).read() == 0));
                    Mimalloc.dealloc(z, zeroed);
                }
            }
        }
    }
}
