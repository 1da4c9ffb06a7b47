//! Stack room for the recursion points of deeply nested input.
//!
//! In: a closure about to recurse one level deeper (checking a subexpression, printing
//! one). Out: its result, computed on the current stack while that has room, else on a
//! fresh segment ([`stacker`], as rustc does). So a 100,000-deep expression compiles on
//! any thread, with no thread of its own per compilation.

/// Stack a recursion level may use between two calls of [`with_room`]. Unoptimised
/// builds have far larger frames (several KiB per level of the checker).
const RED_ZONE: usize = if cfg!(debug_assertions) {
    512 << 10
} else {
    128 << 10
};

/// A fresh segment: reserved address space, committed only as it is touched.
const SEGMENT: usize = 64 << 20;

/// Runs `f` with at least [`RED_ZONE`] bytes of stack.
#[inline]
pub(crate) fn with_room<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, SEGMENT, f)
}
