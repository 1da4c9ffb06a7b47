//! Splitting one large loop nest across two threads.
//!
//! In: a compiled *range function* of a loop nest (see [`RangeFn`]), its context block,
//! the length of its outer range and an estimate of its work. Out: the nest has run over
//! the whole range, and the per-chunk partial results of its full reductions are in the
//! caller's `partials` array, chunk 0 first ([`CHUNKS`] chunks' worth).
//!
//! Invariants:
//!
//! - The split depends only on the range length and the work estimate, never on whether
//!   the helper thread ([`super::helper`]) is free or which thread runs which chunk: a
//!   call that finds it busy runs every chunk itself. So results are the same bits on
//!   every call, whoever runs the chunks.
//! - The chunks are [`CHUNKS`] disjoint, contiguous parts of the range, each claimed by
//!   whichever thread is free: on a shared machine a thread slowed down by other load
//!   takes fewer of them, rather than holding up the call with half the work. The
//!   generated code guarantees that iterations of a split nest write disjoint memory
//!   (nests that accumulate into shared memory, like column sums, are never split).
//! - A steady-state call does not allocate (the helper's hand-over does not).

use std::sync::atomic::{AtomicUsize, Ordering};

/// A loop nest compiled as its own function: `(ctx, start, end, partials)` runs the
/// outer range `[start, end)` and writes the partial result of each full reduction to
/// `partials[0..]`.
pub(crate) type RangeFn = unsafe extern "C" fn(*const u8, i64, i64, *mut f64);

/// Work units (roughly nanoseconds of one thread's time) below which a nest runs on the
/// calling thread alone. A hand-over to the polling helper costs a few microseconds;
/// from 2^19 down to 2^16, mlp's forward got 4.5% faster (its tanh layer now splits)
/// and the other workloads did not change.
pub(crate) const PARALLEL_WORK: i64 = 1 << 16;

/// One chunk of a nest, ready to run on any thread.
#[derive(Clone, Copy)]
struct Job {
    func: RangeFn,
    ctx: *const u8,
    start: i64,
    end: i64,
    partials: *mut f64,
}

// SAFETY: a job's pointers are only used while `run_split` runs (it returns after both
// chunks have), so they stay valid; the chunks touch disjoint memory (module invariant).
unsafe impl Send for Job {}
// SAFETY: as above; a job is plain data, run at most once.
unsafe impl Sync for Job {}

impl Job {
    /// Chunk `c` of `chunks` of this whole-range job, its partials `c · n_partials`
    /// further on.
    ///
    /// # Safety
    /// The partials array holds at least `c + 1` chunks' worth.
    unsafe fn chunk(self, c: usize, chunks: usize, n_partials: i64) -> Job {
        Job {
            start: chunk_start(self.end, c, chunks),
            end: chunk_start(self.end, c + 1, chunks),
            // SAFETY: the caller's contract.
            partials: unsafe { self.partials.add(c * n_partials as usize) },
            ..self
        }
    }

    /// # Safety
    /// `func` is a range function and `ctx`, `partials` are its live context and output.
    unsafe fn run(self) {
        // SAFETY: the caller's contract.
        unsafe { (self.func)(self.ctx, self.start, self.end, self.partials) }
    }
}

/// The most chunks a split nest is cut into (and the chunks' worth of partials the
/// generated code provides).
pub(crate) const CHUNKS: usize = 8;

/// Work units from which a split nest is cut into [`CHUNKS`] chunks rather than two
/// halves (about 4 ms of one thread). With eight, a thread slowed down by other load
/// holds up the call by at most an eighth of the work: fused's forward, with a busy
/// loop sharing the second CPU, 20.5 → 17.0 ms. Below it each extra chunk's call cost
/// shows: mlp, nlm and glove were 1–3% slower on a quiet machine with eight chunks.
pub(crate) const MANY_CHUNKS_WORK: i64 = 1 << 22;

/// Whether a nest of `len` outer iterations and `work` units is split into chunks.
pub(crate) fn is_split(len: i64, work: i64) -> bool {
    work >= PARALLEL_WORK && len >= 4
}

/// How many chunks a split nest of `work` units is cut into.
pub(crate) fn chunk_count(work: i64) -> usize {
    if work >= MANY_CHUNKS_WORK {
        CHUNKS
    } else {
        2
    }
}

/// Where chunk `c` of `chunks` of a split range of `len` starts; chunk `chunks` "starts"
/// at `len`. Starts are even, so two-lane loops keep their alignment.
pub(crate) fn chunk_start(len: i64, c: usize, chunks: usize) -> i64 {
    if c >= chunks {
        len
    } else {
        (len * c as i64 / chunks as i64) & !1
    }
}

/// Runs `func` over `[0, len)`, in [`chunk_count`] chunks when [`is_split`] says so
/// (chunk `c`'s partials start at `partials + c · n_partials`; unsplit, chunk 0's hold
/// all, and those of chunks not run keep what they held).
///
/// # Safety
/// `func` is a range function whose context `ctx` and partials array (of `CHUNKS ·
/// n_partials` elements) are live, and whose iterations write disjoint memory.
pub(crate) unsafe fn run_split(
    func: RangeFn,
    ctx: *const u8,
    len: i64,
    work: i64,
    partials: *mut f64,
    n_partials: i64,
) {
    if !is_split(len, work) {
        // SAFETY: the caller's contract.
        unsafe { func(ctx, 0, len, partials) };
        return;
    }
    let whole = Job {
        func,
        ctx,
        start: 0,
        end: len,
        partials,
    };
    // Each chunk is claimed once, by whichever thread gets to it first; either way it
    // writes the same partials.
    let chunks = chunk_count(work);
    let next = AtomicUsize::new(0);
    super::helper::run_on_two_threads(&|| loop {
        let c = next.fetch_add(1, Ordering::Relaxed);
        if c >= chunks {
            break;
        }
        // SAFETY: the caller's contract; the chunks write disjoint memory, and the
        // partials array holds CHUNKS ≥ chunks chunks' worth.
        unsafe { whole.chunk(c, chunks, n_partials).run() };
    });
}

/// The runtime entry generated code calls: [`run_split`] with `i64` arguments.
pub(crate) extern "C" fn gradc_parallel_for(
    func: i64,
    ctx: i64,
    len: i64,
    work: i64,
    partials: i64,
    n_partials: i64,
) {
    // SAFETY: generated code passes the address of a range function compiled with the
    // `RangeFn` signature, its live context and a partials array of `2 * n_partials`.
    unsafe {
        let func = std::mem::transmute::<usize, RangeFn>(func as usize);
        run_split(
            func,
            ctx as *const u8,
            len,
            work,
            partials as *mut f64,
            n_partials,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_nests_are_not_split_and_large_ones_split_evenly() {
        assert!(!is_split(1_000_000, PARALLEL_WORK - 1));
        assert!(!is_split(3, PARALLEL_WORK));
        assert!(is_split(1_000_001, PARALLEL_WORK));
        assert_eq!(chunk_count(PARALLEL_WORK), 2);
        assert_eq!(chunk_count(MANY_CHUNKS_WORK), CHUNKS);
        // Two chunks are the halves split at an even index.
        assert_eq!(chunk_start(1_000_001, 1, 2), 500_000);
        assert_eq!(chunk_start(7, 1, 2), 2);
        for chunks in [2, CHUNKS] {
            for len in [4, 5, 17, 1_000_001] {
                let starts: Vec<i64> = (0..=chunks).map(|c| chunk_start(len, c, chunks)).collect();
                assert_eq!((starts[0], starts[chunks]), (0, len));
                assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
                assert!(starts[..chunks].iter().all(|s| s % 2 == 0), "{starts:?}");
            }
        }
        let sizes: Vec<i64> = (0..CHUNKS)
            .map(|c| chunk_start(1_000_001, c + 1, CHUNKS) - chunk_start(1_000_001, c, CHUNKS))
            .collect();
        assert!(
            sizes.iter().all(|&s| (124_999..=125_003).contains(&s)),
            "{sizes:?}"
        );
    }
}
