//! The dense `f64` matrix product behind `gradc_matmul`: `dst[M,N] = a[M,K] @ b[K,N]`
//! with every operand strided (row and column strides in elements, so transposed
//! operands cost nothing extra).
//!
//! In: sizes, pointers and strides. Out: `dst` overwritten (never read).
//!
//! Strategy, by size (measured with `examples/gemm_shapes.rs`):
//! - tiny products (and matrix-vector ones) use plain loops ([`small`]);
//! - the rest use a packed, cache-blocked product with an AVX2+FMA 6×8 register
//!   kernel (the BLIS scheme: B packed in `KC × NR` panels, A in `MR × KC` panels;
//!   either is read in place instead where its layout lets the caches hold it, see
//!   [`reads_a_in_place`] and [`reads_b_in_place`]); hosts without AVX2+FMA fall back
//!   to the plain loops;
//! - the product or its transpose (`Cᵀ = Bᵀ Aᵀ`), whichever wastes less of the
//!   register tiles on padding;
//! - products of at least [`PARALLEL_MACS`] multiply-adds run on the calling thread and
//!   the helper thread ([`crate::jit::helper`]): both pack panels of B into one shared
//!   buffer, then take blocks of rows of A in turn (so on a loaded machine a late
//!   helper costs little, and B is packed once however many blocks there are); a
//!   product with too few rows for that (mlp's `h @ W2`, transposed to 10 × 128) is
//!   split into two halves of its columns instead.
//!
//! Invariants: packing buffers are thread-local and only grow, so steady-state calls do
//! not allocate. The caller guarantees that every pointer addresses the elements the
//! sizes and strides reach and that `dst` does not overlap `a` or `b`. This file
//! depends only on the helper module (the `gemm_shapes` example includes both by path).

#![allow(clippy::too_many_arguments)]

use crate::jit::helper::run_on_two_threads;
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// A strided read-only matrix operand.
#[derive(Clone, Copy, Debug)]
pub struct Operand {
    /// Address of element (0, 0).
    pub ptr: *const f64,
    /// Distance between rows, in elements.
    pub rs: isize,
    /// Distance between columns, in elements.
    pub cs: isize,
}

/// A strided output matrix.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    /// Address of element (0, 0).
    pub ptr: *mut f64,
    /// Distance between rows, in elements.
    pub rs: isize,
    /// Distance between columns, in elements.
    pub cs: isize,
}

// SAFETY: operands are plain addresses; the product's callers guarantee the data
// outlives the call and that halves given to different threads write disjoint parts.
unsafe impl Send for Operand {}
// SAFETY: as above.
unsafe impl Sync for Operand {}
// SAFETY: as above.
unsafe impl Send for Output {}
// SAFETY: as above.
unsafe impl Sync for Output {}

impl Operand {
    /// The sub-matrix starting at (`i`, `j`).
    fn at(self, i: usize, j: usize) -> Self {
        Operand {
            // SAFETY (wrapping): only dereferenced inside the caller's bounds.
            ptr: self
                .ptr
                .wrapping_offset(i as isize * self.rs + j as isize * self.cs),
            ..self
        }
    }
}

impl Operand {
    /// The transposed view.
    fn transposed(self) -> Self {
        Operand {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }
}

impl Output {
    /// The transposed view.
    fn transposed(self) -> Self {
        Output {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// The sub-matrix starting at (`i`, `j`).
    fn at(self, i: usize, j: usize) -> Self {
        Output {
            ptr: self
                .ptr
                .wrapping_offset(i as isize * self.rs + j as isize * self.cs),
            ..self
        }
    }
}

/// Products up to this many multiply-adds use the plain loops.
pub const SMALL_MACS: usize = 1 << 12;
/// Products of at least this many multiply-adds run on two threads (from 2^21 down to
/// 2^18: mlp's and nlm's mid-size products went over, and both got about 2% faster,
/// measured interleaved; at 2^17 deep's 32 × 64 × 64 products went over and deep got 8%
/// slower).
pub const PARALLEL_MACS: usize = 1 << 18;

/// Rows of the register kernel.
const MR: usize = 6;
/// Columns of the register kernel.
const NR: usize = 8;
/// Four-lane vectors per row of the register kernel.
const NV: usize = NR / 4;
/// Depth of a packed block (a `KC × NR` panel of B stays in L1).
const KC: usize = 256;
/// Rows of a packed block of A (an `MC × KC` block stays in L2).
const MC: usize = 72;
/// Columns of a packed block of B.
const NC: usize = 1024;

/// How a call may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Always the plain loops.
    Small,
    /// The packed kernel on the calling thread.
    Packed,
    /// The packed kernel, split over two threads when the product is big enough.
    Parallel,
}

/// `dst = a @ b` for `m × k` `a` and `k × n` `b`.
///
/// # Safety
/// Every pointer addresses the elements its strides reach for the given sizes, and
/// `dst` overlaps neither `a` nor `b`.
pub unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: Output,
    a: Operand,
    b: Operand,
    strategy: Strategy,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                // SAFETY: (i, j) is inside the output.
                unsafe { *dst.at(i, j).ptr = 0.0 };
            }
        }
        return;
    }
    if strategy == Strategy::Small || !has_fma() {
        // SAFETY: forwarded contract.
        unsafe { small(m, n, k, dst, a, b) };
        return;
    }
    // C = A B or, transposed, Cᵀ = Bᵀ Aᵀ: whichever pads the register tiles less
    // (scattered stores cost about 32 steps of depth per tile and depth block; measured
    // on glove's 400 × 50 × 400).
    let cost = |m: usize, n: usize, contiguous_rows: bool| {
        let stores = if contiguous_rows {
            0
        } else {
            32 * k.div_ceil(KC)
        };
        m.next_multiple_of(MR) * n.next_multiple_of(NR) * (k + stores)
    };
    let (m, n, dst, a, b) = if cost(n, m, dst.rs == 1) < cost(m, n, dst.cs == 1) {
        (n, m, dst.transposed(), b.transposed(), a.transposed())
    } else {
        (m, n, dst, a, b)
    };
    // A product whose packed B would be big (mlp's `x @ W1`: 1.6 MB) splits its columns
    // instead: each thread packs its half block by block into its own buffer, so the
    // first call touches half as much new memory, and steady calls run as fast.
    let big_b = n.next_multiple_of(NR) * k * size_of::<f64>() > SHARED_B_MAX_BYTES;
    if strategy == Strategy::Parallel && big_b && n >= 16 * NR {
        // SAFETY: forwarded contract.
        unsafe { packed_column_halves(m, n, k, dst, a, b) };
        return;
    }
    if strategy == Strategy::Parallel && m >= 2 * MR {
        // SAFETY: forwarded contract.
        unsafe { packed_on_two_threads(m, n, k, dst, a, b) };
        return;
    }
    if strategy == Strategy::Parallel && n >= 2 * NR {
        // Too few rows for row units (mlp's `h @ W2`, 128 × 10, transposed): two halves of
        // the columns, each packed by its own thread.
        // SAFETY: forwarded contract.
        unsafe { packed_column_halves(m, n, k, dst, a, b) };
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { packed(m, n, k, dst, a, b) };
}

/// Whether the host has AVX2 and FMA.
fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static FMA: OnceLock<bool> = OnceLock::new();
        *FMA.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

thread_local! {
    /// Packing buffers of this thread: A block, then B block.
    static PACK: RefCell<(Vec<f64>, Vec<f64>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    /// The whole of B, packed, when this thread shares a product with the helper.
    static SHARED_B: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Columns of B one packing unit covers in [`packed_on_two_threads`].
const PACK_UNIT_COLS: usize = 8 * NR;

/// The packed product on the calling thread and the helper thread.
///
/// B is packed once, whole, into this thread's [`SHARED_B`]: depth block `p` (of
/// `kc` steps, the last maybe shorter) at `p · kc · n_pad`, its `NR`-column panels
/// inside it as [`pack_b`] lays them out. Both threads pack units of it, wait until
/// every unit is packed, then take blocks of rows of the product in turn, packing
/// their A rows into their own thread-local buffer.
///
/// # Safety
/// As [`packed`].
unsafe fn packed_on_two_threads(m: usize, n: usize, k: usize, dst: Output, a: Operand, b: Operand) {
    let n_pad = n.next_multiple_of(NR);
    // Depth blocks small enough that one block of packed B stays in a core's L2 while
    // both threads work through it.
    let kc_max = (SHARED_B_BLOCK_BYTES / (8 * n_pad)).clamp(64, KC);
    let kc = k.div_ceil(k.div_ceil(kc_max));
    let blocks = k.div_ceil(kc);
    // Row units of whole register tiles: about 32 of them (at most MAX_ROW_UNITS).
    let panels = m.div_ceil(MR);
    let mut rows = (MR * panels.div_ceil(32)).min(MC);
    if m.div_ceil(rows) > MAX_ROW_UNITS {
        rows = MR * panels.div_ceil(MAX_ROW_UNITS);
    }
    let row_units = m.div_ceil(rows);
    let col_groups = n.div_ceil(PACK_UNIT_COLS);
    let in_place = reads_b_in_place(m, n, kc, b);
    let pack_units = if in_place { 0 } else { blocks * col_groups };
    SHARED_B.with(|shared| {
        let mut shared = shared.borrow_mut();
        if !in_place && shared.len() < n_pad * k {
            shared.resize(n_pad * k, 0.0);
        }
        let b_packed = SharedBuffer(shared.as_mut_ptr());
        let next_pack = AtomicUsize::new(0);
        let packed_units = AtomicUsize::new(0);
        let next_job = AtomicUsize::new(0);
        // Depth blocks done, per row unit: a unit's block p adds to what block p − 1 wrote.
        let blocks_done: [AtomicUsize; MAX_ROW_UNITS] =
            std::array::from_fn(|_| AtomicUsize::new(0));
        run_on_two_threads(&|| {
            let b_packed = &b_packed;
            loop {
                let unit = next_pack.fetch_add(1, Ordering::Relaxed);
                if unit >= pack_units {
                    break;
                }
                let (p, g) = (unit / col_groups, unit % col_groups);
                let (pc, j0) = (p * kc, g * PACK_UNIT_COLS);
                let depth = kc.min(k - pc);
                let cols = PACK_UNIT_COLS.min(n - j0);
                // SAFETY: each unit packs its own part of the buffer (sized above).
                unsafe {
                    let out = std::slice::from_raw_parts_mut(
                        b_packed.0.add(pc * n_pad + j0 * depth),
                        cols.next_multiple_of(NR) * depth,
                    );
                    pack_b_block(depth, cols, b.at(pc, j0), out);
                }
                packed_units.fetch_add(1, Ordering::Release);
            }
            // Units claimed by the other thread are being packed right now.
            wait_until(|| packed_units.load(Ordering::Acquire) >= pack_units);
            // Jobs in depth-block-major order, so both threads work through one block of
            // B at a time (it stays in cache) rather than each sweeping all of B per unit.
            loop {
                let job = next_job.fetch_add(1, Ordering::Relaxed);
                if job >= blocks * row_units {
                    break;
                }
                let (p, unit) = (job / row_units, job % row_units);
                // The unit's previous block is done or being done by the other thread.
                wait_until(|| blocks_done[unit].load(Ordering::Acquire) >= p);
                let (i0, pc) = (unit * rows, p * kc);
                let (mr, depth) = (rows.min(m - i0), kc.min(k - pc));
                PACK.with(|pack| {
                    let mut pack = pack.borrow_mut();
                    let a_pack = &mut pack.0;
                    if a_pack.len() < rows.next_multiple_of(MR) * kc {
                        a_pack.resize(rows.next_multiple_of(MR) * kc, 0.0);
                    }
                    // SAFETY: B is packed whole; these rows of dst are this job's until
                    // it marks the block done.
                    unsafe {
                        block_with_packed_b(
                            mr,
                            n,
                            depth,
                            dst.at(i0, 0),
                            a.at(i0, pc),
                            b.at(pc, 0),
                            if in_place {
                                b.at(pc, 0).ptr
                            } else {
                                b_packed.0.add(pc * n_pad)
                            },
                            if in_place {
                                (b.rs as usize, 1)
                            } else {
                                (NR, depth)
                            },
                            a_pack,
                            p > 0,
                        )
                    };
                });
                blocks_done[unit].store(p + 1, Ordering::Release);
            }
        });
    });
}

/// [`packed`] on the calling thread and the helper, one half of the columns each (the
/// first half a whole number of register tiles), each half claimed by whichever thread
/// gets to it first.
///
/// # Safety
/// As [`packed`].
unsafe fn packed_column_halves(m: usize, n: usize, k: usize, dst: Output, a: Operand, b: Operand) {
    let half = (n / 2).next_multiple_of(NR).min(n);
    let next = AtomicUsize::new(0);
    run_on_two_threads(&|| {
        while let chunk @ 0..=1 = next.fetch_add(1, Ordering::Relaxed) {
            let (j0, cols) = if chunk == 0 {
                (0, half)
            } else {
                (half, n - half)
            };
            if cols > 0 {
                // SAFETY: the halves are disjoint columns of dst, inside b.
                unsafe { packed(m, cols, k, dst.at(0, j0), a, b.at(0, j0)) };
            }
        }
    });
}

/// Bytes of packed B one depth block of a two-thread product aims at (half a Zen 1 L2).
const SHARED_B_BLOCK_BYTES: usize = 256 << 10;

/// The largest packed B that two threads share (see [`matmul`]).
const SHARED_B_MAX_BYTES: usize = 1 << 20;

/// The most row units of a two-thread product.
const MAX_ROW_UNITS: usize = 64;

/// Spins (yielding now and then) until `ready`.
fn wait_until(ready: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !ready() {
        spins += 1;
        if spins % 64 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Whether the register kernel reads row-major B in place, unpacked, over depth blocks
/// of `kc` steps: every step of a panel is then `NR` contiguous values, which saves
/// packing, but a panel's `kc` rows are `b.rs` elements apart, and a power-of-two row
/// stride maps them all to a few sets of the L1 cache, where they evict each other
/// (mlp's `x @ W1`, rows 2 KiB apart: 2 of 64 sets, one thread 1555 → 1213 µs packed).
/// So B is read in place when the product has too few rows to repay packing, or when
/// a panel's rows fit in the ways of the sets they map to (deep's 64-step panels).
fn reads_b_in_place(m: usize, n: usize, kc: usize, b: Operand) -> bool {
    /// Sets and ways of the L1 data cache of current x86-64 and arm64 cores (32 KiB,
    /// 64-byte lines; 48 KiB caches have more ways).
    const L1_SETS: usize = 64;
    const L1_WAYS: usize = 8;
    if !(b.cs == 1 && b.rs > 0 && n % NR == 0) {
        return false;
    }
    let row_bytes = b.rs as usize * size_of::<f64>();
    let sets = sets_reached(row_bytes, L1_SETS);
    // Pages a panel spans, against a 64-entry L1 TLB shared with A and dst.
    let pages = (kc * row_bytes).div_ceil(4096).min(kc);
    m <= 2 * MR || (kc <= sets * L1_WAYS && pages <= 32)
}

/// How many of a cache's `sets` (64-byte lines) rows `stride_bytes` apart map to: a
/// power-of-two stride reaches only a few.
fn sets_reached(stride_bytes: usize, sets: usize) -> usize {
    if stride_bytes % 64 == 0 {
        sets / gcd(stride_bytes / 64, sets)
    } else {
        sets
    }
}

/// The greatest common divisor.
fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Where the register kernel reads a block of A from.
#[derive(Clone, Copy)]
enum ABlock {
    /// Packed by [`pack_a`] at this address.
    Packed(*const f64),
    /// In place: row-major, element (0, 0) at this address, rows this many elements apart.
    InPlace(*const f64, usize),
}

/// The block `mc × kc` of `a` as the kernel reads it: in place where
/// [`reads_a_in_place`] says (reading column-major A in place was slower: mlp's `xᵀ @
/// dZ` 1109 → 1180 µs on one thread, nlm's `hᵀ @ dL` 224 → 450 on two), else packed
/// into `a_pack`.
///
/// # Safety
/// The block is inside `a`; `a_pack` holds `mc` rounded up to `MR`, times `kc`.
#[inline(always)]
unsafe fn a_block(mc: usize, kc: usize, a: Operand, a_pack: &mut [f64]) -> ABlock {
    if reads_a_in_place(mc, a) {
        ABlock::InPlace(a.ptr, a.rs as usize)
    } else {
        // SAFETY: forwarded contract.
        unsafe { pack_a(mc, kc, a, a_pack) };
        ABlock::Packed(a_pack.as_ptr())
    }
}

/// Whether the register kernel reads a block of `mc` rows of row-major A in place,
/// unpacked: each step then broadcasts from `MR` rows, a stream each, and packing A
/// (half the packing of mlp's `x @ W1`, done again by each thread that takes a half of
/// its columns) is saved. The block must stay in L2 while every panel of B passes over
/// it, so its rows must spread over the L2's sets: a power-of-two row stride maps them
/// to a few (a 1024-column row, 8 KiB: to one set in 128).
fn reads_a_in_place(mc: usize, a: Operand) -> bool {
    /// Sets and ways of the L2 cache of current x86-64 cores (256 KiB to 1 MiB, at
    /// least 1024 sets; counting four ways leaves room for B and the output).
    const L2_SETS: usize = 1024;
    const L2_WAYS: usize = 4;
    if !(a.cs == 1 && a.rs > 0) {
        return false;
    }
    let sets = sets_reached(a.rs as usize * size_of::<f64>(), L2_SETS);
    mc.div_ceil(sets) <= L2_WAYS / 2
}

/// The packed B buffer, shared with the helper for the duration of one product.
struct SharedBuffer(*mut f64);

// SAFETY: the threads write disjoint units of the buffer, then only read it.
unsafe impl Sync for SharedBuffer {}

/// [`pack_b`] for the x86 kernels (compiled with their features).
///
/// # Safety
/// As [`pack_b`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_b_block(kc: usize, nc: usize, b: Operand, out: &mut [f64]) {
    // SAFETY: forwarded contract.
    unsafe { pack_b(kc, nc, b, out) }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn pack_b_block(kc: usize, nc: usize, b: Operand, out: &mut [f64]) {
    // SAFETY: forwarded contract.
    unsafe { pack_b(kc, nc, b, out) }
}

/// `mr` rows of the product over one depth block of `depth` steps, from that block of B
/// (`b`, which only the plain-loop fallback reads) at `b_block`, with `(b_step,
/// panel_stride)`: packed as [`packed_on_two_threads`] lays it out (`(NR, depth)`), or
/// read in place (`(row stride, 1)`); column `j` of the block starts at `j ·
/// panel_stride`. Packs those rows of A into `a_pack`; adds to `dst` when `accumulate`.
///
/// # Safety
/// `b_block` holds the block of B as described; the rows are inside `a` and `dst`;
/// `a_pack` holds `mr` rounded up to `MR`, times `depth`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_with_packed_b(
    mr: usize,
    n: usize,
    depth: usize,
    dst: Output,
    a: Operand,
    _b: Operand,
    b_block: *const f64,
    (b_step, panel_stride): (usize, usize),
    a_pack: &mut [f64],
    accumulate: bool,
) {
    // SAFETY: the block is inside a; the buffer holds it.
    let a_block = unsafe { a_block(mr, depth, a, a_pack) };
    // SAFETY: forwarded contract.
    unsafe {
        block_tiles(
            mr,
            n,
            depth,
            dst,
            a_block,
            b_block,
            (b_step, panel_stride),
            accumulate,
        )
    };
}

/// The register tiles of one block of A (`mr` rows, `depth` steps, as `a_block` says)
/// times one block of B laid out as [`block_with_packed_b`] describes.
///
/// # Safety
/// As [`block_with_packed_b`], with A already packed (or read in place).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block_tiles(
    mr: usize,
    n: usize,
    depth: usize,
    dst: Output,
    a_block: ABlock,
    b_block: *const f64,
    (b_step, panel_stride): (usize, usize),
    accumulate: bool,
) {
    for jr in (0..n).step_by(NR) {
        let nr = NR.min(n - jr);
        // SAFETY: inside the block of B.
        let b_panel = unsafe { b_block.add(jr * panel_stride) };
        for ir in (0..mr).step_by(MR) {
            let tile = dst.at(ir, jr);
            // SAFETY: panels hold `depth` steps; the tile is inside dst. A last panel of
            // fewer rows, or of at most four columns, gets a kernel of that size (its
            // padding costs nothing).
            unsafe {
                let rows = MR.min(mr - ir);
                let (a_panel, a_rs, in_place) = match a_block {
                    ABlock::Packed(a) => (a.add(ir * depth), 0, false),
                    ABlock::InPlace(a, rs) => (a.add(ir * rs), rs, true),
                };
                let args = (depth, a_panel, a_rs, b_panel, b_step, tile, nr, accumulate);
                match (in_place, nr > 4) {
                    (false, true) => kernel_of_rows::<NV, false>(rows, args),
                    (false, false) => kernel_of_rows::<1, false>(rows, args),
                    (true, true) => kernel_of_rows::<NV, true>(rows, args),
                    (true, false) => kernel_of_rows::<1, true>(rows, args),
                }
            };
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn block_with_packed_b(
    mr: usize,
    n: usize,
    depth: usize,
    dst: Output,
    a: Operand,
    b: Operand,
    _b_block: *const f64,
    _b_layout: (usize, usize),
    _a_pack: &mut [f64],
    accumulate: bool,
) {
    // The plain loops read B itself; without `accumulate` they overwrite dst.
    if !accumulate {
        // SAFETY: forwarded contract.
        unsafe { small(mr, n, depth, dst, a, b) };
        return;
    }
    for i in 0..mr {
        for j in 0..n {
            let mut sum = 0.0;
            for p in 0..depth {
                // SAFETY: inside the operands.
                sum += unsafe { *a.at(i, p).ptr * *b.at(p, j).ptr };
            }
            // SAFETY: inside dst.
            unsafe { *dst.at(i, j).ptr += sum };
        }
    }
}

/// The packed product on the calling thread.
///
/// # Safety
/// As [`matmul`], with `k > 0`; the host has AVX2 and FMA.
unsafe fn packed(m: usize, n: usize, k: usize, dst: Output, a: Operand, b: Operand) {
    PACK.with(|pack| {
        let mut guard = pack.borrow_mut();
        let (a_pack, b_pack) = &mut *guard;
        let a_len = MC.min(m.next_multiple_of(MR)) * KC.min(k);
        let b_len = NC.min(n.next_multiple_of(NR)) * KC.min(k);
        if a_pack.len() < a_len {
            a_pack.resize(a_len, 0.0);
        }
        if b_pack.len() < b_len {
            b_pack.resize(b_len, 0.0);
        }
        // SAFETY: buffers sized above; operand contract forwarded.
        unsafe { packed_with(m, n, k, dst, a, b, a_pack, b_pack) };
    });
}

/// The blocked loops around the register kernel.
///
/// # Safety
/// As [`packed`]; the buffers hold a block each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn packed_with(
    m: usize,
    n: usize,
    k: usize,
    dst: Output,
    a: Operand,
    b: Operand,
    a_pack: &mut [f64],
    b_pack: &mut [f64],
) {
    // Equal depth blocks of at most KC (784 = 4 × 196, not 3 × 256 + 16).
    let kc_even = k.div_ceil(k.div_ceil(KC));
    let in_place = reads_b_in_place(m, n, kc_even, b);
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        for pc in (0..k).step_by(kc_even) {
            let kc = kc_even.min(k - pc);
            if !in_place {
                // SAFETY: the block is inside b; the buffer holds it.
                unsafe { pack_b(kc, nc, b.at(pc, jc), b_pack) };
            }
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                // SAFETY: as above.
                let a_block = unsafe { a_block(mc, kc, a.at(ic, pc), a_pack) };
                let (b_block, layout) = if in_place {
                    (b.at(pc, jc).ptr, (b.rs as usize, 1))
                } else {
                    (b_pack.as_ptr(), (NR, kc))
                };
                // SAFETY: the packed A block and the block of B as laid out; the tiles
                // are inside dst.
                unsafe {
                    block_tiles(mc, nc, kc, dst.at(ic, jc), a_block, b_block, layout, pc > 0)
                };
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn packed_with(
    m: usize,
    n: usize,
    k: usize,
    dst: Output,
    a: Operand,
    b: Operand,
    _a_pack: &mut [f64],
    _b_pack: &mut [f64],
) {
    // SAFETY: forwarded contract.
    unsafe { small(m, n, k, dst, a, b) };
}

/// Packs `mc × kc` of `a` into `MR`-row panels: panel `r` holds, for each `p`, the `MR`
/// values `a[r·MR + 0..MR, p]` (zero past `mc`).
///
/// # Safety
/// The block is inside `a`; `out` holds `mc` rounded up to `MR`, times `kc`.
#[inline(always)]
unsafe fn pack_a(mc: usize, kc: usize, a: Operand, out: &mut [f64]) {
    for (panel, i0) in (0..mc).step_by(MR).enumerate() {
        let rows = MR.min(mc - i0);
        let out = &mut out[panel * MR * kc..(panel + 1) * MR * kc];
        if rows == MR && a.cs == 1 {
            // Row-major: read each row contiguously.
            for ii in 0..MR {
                // SAFETY: row i0 + ii holds kc elements from column 0.
                let row = unsafe { std::slice::from_raw_parts(a.at(i0 + ii, 0).ptr, kc) };
                for (p, &x) in row.iter().enumerate() {
                    out[p * MR + ii] = x;
                }
            }
        } else if rows == MR && a.rs == 1 {
            // Column-major (a transposed operand): each step's MR values are contiguous.
            for p in 0..kc {
                // SAFETY: column p holds MR elements from row i0.
                let column = unsafe { std::slice::from_raw_parts(a.at(i0, p).ptr, MR) };
                out[p * MR..(p + 1) * MR].copy_from_slice(column);
            }
        } else {
            for p in 0..kc {
                for ii in 0..MR {
                    out[p * MR + ii] = if ii < rows {
                        // SAFETY: inside the block.
                        unsafe { *a.at(i0 + ii, p).ptr }
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// Packs `kc × nc` of `b` into `NR`-column panels: panel `c` holds, for each `p`, the
/// `NR` values `b[p, c·NR + 0..NR]` (zero past `nc`).
///
/// # Safety
/// The block is inside `b`; `out` holds `nc` rounded up to `NR`, times `kc`.
#[inline(always)]
unsafe fn pack_b(kc: usize, nc: usize, b: Operand, out: &mut [f64]) {
    if b.cs == 1 {
        // Row-major: a few panels at a time, row by row, so each step reads a stretch
        // of a row (rows may be pages apart) and writes a few streams.
        for g0 in (0..nc).step_by(PACK_UNIT_COLS) {
            let group = PACK_UNIT_COLS.min(nc - g0);
            let full = group / NR * NR;
            for p in 0..kc {
                // SAFETY: row p holds `group` elements from column g0.
                let row = unsafe { std::slice::from_raw_parts(b.at(p, g0).ptr, group) };
                for jj in (0..full).step_by(NR) {
                    let at = (g0 + jj) * kc + p * NR;
                    out[at..at + NR].copy_from_slice(&row[jj..jj + NR]);
                }
                if full < group {
                    let at = (g0 + full) * kc + p * NR;
                    let tail = &mut out[at..at + NR];
                    tail[..group - full].copy_from_slice(&row[full..]);
                    tail[group - full..].fill(0.0);
                }
            }
        }
        return;
    }
    for (panel, j0) in (0..nc).step_by(NR).enumerate() {
        let cols = NR.min(nc - j0);
        let out = &mut out[panel * NR * kc..(panel + 1) * NR * kc];
        if cols == NR && b.rs == 1 {
            // Transposed: read each column contiguously.
            for jj in 0..NR {
                // SAFETY: column j0 + jj holds kc elements from row 0.
                let col = unsafe { std::slice::from_raw_parts(b.at(0, j0 + jj).ptr, kc) };
                for (p, &x) in col.iter().enumerate() {
                    out[p * NR + jj] = x;
                }
            }
        } else {
            for p in 0..kc {
                for jj in 0..NR {
                    out[p * NR + jj] = if jj < cols {
                        // SAFETY: inside the block.
                        unsafe { *b.at(p, j0 + jj).ptr }
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// The arguments of [`kernel`] after its sizes: `(kc, a_panel, a_rs, b_panel, b_step,
/// tile, nr, accumulate)`.
type KernelArgs = (
    usize,
    *const f64,
    usize,
    *const f64,
    usize,
    Output,
    usize,
    bool,
);

/// [`kernel`] of `rows` rows (1 to `MR`) and `V` four-lane vectors per row, its other
/// arguments as one tuple.
///
/// # Safety
/// As [`kernel`] with `R = rows`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn kernel_of_rows<const V: usize, const A_IN_PLACE: bool>(rows: usize, args: KernelArgs) {
    // SAFETY: forwarded contract.
    unsafe {
        match rows {
            6.. => kernel::<6, V, A_IN_PLACE>(args),
            5 => kernel::<5, V, A_IN_PLACE>(args),
            4 => kernel::<4, V, A_IN_PLACE>(args),
            3 => kernel::<3, V, A_IN_PLACE>(args),
            2 => kernel::<2, V, A_IN_PLACE>(args),
            _ => kernel::<1, V, A_IN_PLACE>(args),
        }
    }
}

/// The `R`×`4V` register kernel (`R` ≤ `MR` = 6, `V` ≤ `NV` = 2): `tile (+)= a_panel @
/// b_panel` over `kc` steps, writing the `R × nr` corner of the tile (`nr` ≤ `4V`;
/// accumulating into it when `accumulate`). Step `p` of a packed A panel is the `MR`
/// values at `a_panel + p · MR` (of which the first `R` are read); read in place
/// (`A_IN_PLACE`), row `i` of the panel is the `kc` values at `a_panel + i · a_rs`. Step
/// `p` of the B panel is the `NR` values at `b_panel + p · b_step` (`NR` when packed, the
/// row stride when read in place; the first `4V` are read).
///
/// # Safety
/// The A panel holds `kc` steps of `R` rows, the B panel `kc` steps of `4V` readable
/// values; the `R × nr` tile is inside the output.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel<const R: usize, const V: usize, const A_IN_PLACE: bool>(
    (kc, a_panel, a_rs, b_panel, b_step, tile, nr, accumulate): KernelArgs,
) {
    use std::arch::x86_64::*;
    // Distance between the values of two rows of one step, and between two steps.
    let (a_row, a_step) = if A_IN_PLACE { (a_rs, 1) } else { (1, MR) };
    let mut acc = [[_mm256_setzero_pd(); V]; R];
    let (mut a_p, mut b_p) = (a_panel, b_panel);
    // Four steps per iteration (then the rest): less loop overhead per multiply-add.
    let step = |a_p: *const f64, b_p: *const f64, acc: &mut [[__m256d; V]; R]| {
        // SAFETY: the panels hold kc steps of MR and NR values.
        unsafe {
            let mut b_v = [_mm256_setzero_pd(); V];
            for (v, b) in b_v.iter_mut().enumerate() {
                *b = _mm256_loadu_pd(b_p.add(4 * v));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_sd(&*a_p.add(i * a_row));
                for (r, b) in row.iter_mut().zip(&b_v) {
                    *r = _mm256_fmadd_pd(x, *b, *r);
                }
            }
        }
    };
    for _ in 0..kc / 4 {
        // SAFETY: four more steps are inside the panels.
        unsafe {
            step(a_p, b_p, &mut acc);
            step(a_p.add(a_step), b_p.add(b_step), &mut acc);
            step(a_p.add(2 * a_step), b_p.add(2 * b_step), &mut acc);
            step(a_p.add(3 * a_step), b_p.add(3 * b_step), &mut acc);
            a_p = a_p.add(4 * a_step);
            b_p = b_p.add(4 * b_step);
        }
    }
    for _ in 0..kc % 4 {
        step(a_p, b_p, &mut acc);
        // SAFETY: one more step is inside the panels.
        unsafe {
            a_p = a_p.add(a_step);
            b_p = b_p.add(b_step);
        }
    }
    // SAFETY: the tile is inside the output.
    unsafe {
        if nr == 4 * V && tile.cs == 1 {
            for (i, row) in acc.iter().enumerate() {
                let c = tile.ptr.offset(i as isize * tile.rs);
                for (v, &value) in row.iter().enumerate() {
                    let c = c.add(4 * v);
                    let value = if accumulate {
                        _mm256_add_pd(value, _mm256_loadu_pd(c))
                    } else {
                        value
                    };
                    _mm256_storeu_pd(c, value);
                }
            }
        } else {
            let mut values = [[0.0f64; NR]; R];
            for (row, out) in acc.iter().zip(values.iter_mut()) {
                for (v, &value) in row.iter().enumerate() {
                    _mm256_storeu_pd(out.as_mut_ptr().add(4 * v), value);
                }
            }
            for (i, out) in values.iter().enumerate() {
                for (j, &v) in out.iter().enumerate().take(nr) {
                    let c = tile.at(i, j).ptr;
                    *c = if accumulate { *c + v } else { v };
                }
            }
        }
    }
}

/// Plain loops, compiled for AVX2 when the host has it.
///
/// # Safety
/// As [`matmul`].
pub unsafe fn small(m: usize, n: usize, k: usize, dst: Output, a: Operand, b: Operand) {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2: OnceLock<bool> = OnceLock::new();
        if *AVX2.get_or_init(|| std::arch::is_x86_feature_detected!("avx2")) {
            if n == 1 && a.cs == 1 && (b.rs == 1 || k == 1) && m >= 4 {
                // SAFETY: as below; rows of a and the column b are contiguous.
                unsafe { matrix_vector_avx2(m, k, dst, a, b.ptr) };
                return;
            }
            if n == 1 && a.rs == 1 && dst.rs == 1 {
                // SAFETY: as below; columns of a and dst are contiguous.
                unsafe { column_sweep_avx2(m, k, dst.ptr, a, b) };
                return;
            }
            // SAFETY: the host has AVX2; the data contract is the caller's.
            unsafe { small_avx2(m, n, k, dst, a, b) };
            return;
        }
    }
    // SAFETY: the data contract is the caller's.
    unsafe { small_generic(m, n, k, dst, a, b) };
}

/// `dst[:, 0] = a @ b` for contiguous rows of `a` and a contiguous column `b`, four rows
/// at a time so that their dot products overlap. Each dot product is summed as
/// [`small_generic`] sums it (four partial sums of `p mod 4`, combined pairwise, then
/// the tail in order), so the bits do not depend on which path ran.
///
/// # Safety
/// The host must have AVX2; otherwise as [`small`] with `n = 1`, `a.cs = 1` and `k`
/// contiguous values at `b`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn matrix_vector_avx2(m: usize, k: usize, dst: Output, a: Operand, b: *const f64) {
    use std::arch::x86_64::{
        __m256d, _mm256_add_pd, _mm256_loadu_pd, _mm256_mul_pd, _mm256_setzero_pd, _mm256_storeu_pd,
    };
    let chunks = k / 4;
    // SAFETY (every access): rows i < m of a hold k values, b holds k, dst m rows.
    unsafe {
        let finish = |acc: __m256d, row: *const f64| {
            let mut p = [0.0f64; 4];
            _mm256_storeu_pd(p.as_mut_ptr(), acc);
            let mut sum = (p[0] + p[1]) + (p[2] + p[3]);
            for q in 4 * chunks..k {
                sum += *row.add(q) * *b.add(q);
            }
            sum
        };
        let mut i = 0;
        while i < m {
            // The last block of four overlaps the one before when m is not a multiple of
            // four (m ≥ 4): its rows are recomputed to the same bits.
            let i0 = i.min(m - 4);
            let rows = [0, 1, 2, 3].map(|r| a.at(i0 + r, 0).ptr);
            let mut acc = [_mm256_setzero_pd(); 4];
            for c in 0..chunks {
                let bv = _mm256_loadu_pd(b.add(4 * c));
                for r in 0..4 {
                    let av = _mm256_loadu_pd(rows[r].add(4 * c));
                    acc[r] = _mm256_add_pd(acc[r], _mm256_mul_pd(av, bv));
                }
            }
            for r in 0..4 {
                *dst.at(i0 + r, 0).ptr = finish(acc[r], rows[r]);
            }
            i = i0 + 4;
        }
    }
}

/// `dst[:] = Σ_p a[:, p] · b[p]` for contiguous columns of `a` and `dst`, with blocks of
/// up to sixteen rows of `dst` kept in registers across the whole sum. Each element is
/// summed in `p` order, as [`small_generic`]'s column sweep sums it.
///
/// # Safety
/// The host must have AVX2; otherwise as [`small`] with `n = 1`, `a.rs = 1` and
/// `m` contiguous values at `dst`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn column_sweep_avx2(m: usize, k: usize, dst: *mut f64, a: Operand, b: Operand) {
    use std::arch::x86_64::{
        _mm256_add_pd, _mm256_loadu_pd, _mm256_mul_pd, _mm256_set1_pd, _mm256_setzero_pd,
        _mm256_storeu_pd,
    };
    // SAFETY (every access): rows i < m of each column p < k of a, b's k values, dst's m.
    unsafe {
        let mut i = 0;
        while i + 16 <= m {
            let mut acc = [_mm256_setzero_pd(); 4];
            for p in 0..k {
                let bp = _mm256_set1_pd(*b.at(p, 0).ptr);
                let col = a.at(i, p).ptr;
                for (v, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm256_add_pd(*acc, _mm256_mul_pd(_mm256_loadu_pd(col.add(4 * v)), bp));
                }
            }
            for (v, acc) in acc.iter().enumerate() {
                _mm256_storeu_pd(dst.add(i + 4 * v), *acc);
            }
            i += 16;
        }
        while i + 4 <= m {
            let mut acc = _mm256_setzero_pd();
            for p in 0..k {
                let bp = _mm256_set1_pd(*b.at(p, 0).ptr);
                acc = _mm256_add_pd(acc, _mm256_mul_pd(_mm256_loadu_pd(a.at(i, p).ptr), bp));
            }
            _mm256_storeu_pd(dst.add(i), acc);
            i += 4;
        }
        for i in i..m {
            let mut sum = 0.0;
            for p in 0..k {
                sum += *a.at(i, p).ptr * *b.at(p, 0).ptr;
            }
            *dst.add(i) = sum;
        }
    }
}

/// [`small_generic`] compiled with AVX2 enabled.
///
/// # Safety
/// The host must have AVX2; otherwise as [`small`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn small_avx2(m: usize, n: usize, k: usize, dst: Output, a: Operand, b: Operand) {
    // SAFETY: forwarded contract.
    unsafe { small_generic(m, n, k, dst, a, b) }
}

/// Row-by-row products: `dst[i, :] = Σ_p a[i, p] · b[p, :]` accumulated in `p` order
/// when rows of `b` and `dst` are contiguous, dot products along contiguous rows of `a`
/// and columns of `b`, a column-sweep when `a` is transposed and `n == 1`, else plain
/// strided loops.
///
/// # Safety
/// As [`small`].
#[inline(always)]
unsafe fn small_generic(m: usize, n: usize, k: usize, dst: Output, a: Operand, b: Operand) {
    // SAFETY (every access below): indices stay inside the operands' sizes.
    unsafe {
        if n == 1 && a.rs == 1 && dst.rs == 1 {
            // dst[:] = Σ_p a[:, p] · b[p]: sweep contiguous columns of a.
            let out = std::slice::from_raw_parts_mut(dst.ptr, m);
            out.fill(0.0);
            for p in 0..k {
                let b_p = *b.at(p, 0).ptr;
                let col = std::slice::from_raw_parts(a.at(0, p).ptr, m);
                for (d, &x) in out.iter_mut().zip(col) {
                    *d += x * b_p;
                }
            }
            return;
        }
        for i in 0..m {
            let dots = a.cs == 1 && (b.rs == 1 || k == 1);
            if dst.cs == 1 && b.cs == 1 && !(dots && n < 4) {
                let row = std::slice::from_raw_parts_mut(dst.at(i, 0).ptr, n);
                row.fill(0.0);
                for p in 0..k {
                    let a_ip = *a.at(i, p).ptr;
                    let b_row = std::slice::from_raw_parts(b.at(p, 0).ptr, n);
                    for (d, &x) in row.iter_mut().zip(b_row) {
                        *d += a_ip * x;
                    }
                }
            } else if dots {
                let a_row = std::slice::from_raw_parts(a.at(i, 0).ptr, k);
                for j in 0..n {
                    let b_col = std::slice::from_raw_parts(b.at(0, j).ptr, k);
                    let mut partial = [0.0f64; 4];
                    let chunks = k / 4;
                    for c in 0..chunks {
                        for l in 0..4 {
                            partial[l] += a_row[4 * c + l] * b_col[4 * c + l];
                        }
                    }
                    let mut sum = (partial[0] + partial[1]) + (partial[2] + partial[3]);
                    for p in 4 * chunks..k {
                        sum += a_row[p] * b_col[p];
                    }
                    *dst.at(i, j).ptr = sum;
                }
            } else {
                for j in 0..n {
                    let mut sum = 0.0;
                    for p in 0..k {
                        sum += *a.at(i, p).ptr * *b.at(p, j).ptr;
                    }
                    *dst.at(i, j).ptr = sum;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random stream in [-1, 1).
    fn values(seed: u64, len: usize) -> Vec<f64> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 11) as f64 / (1u64 << 52) as f64 - 1.0
            })
            .collect()
    }

    /// Checks every strategy on `m × k @ k × n`, with each operand (and the output)
    /// row-major or transposed, against a naive triple loop.
    fn check(m: usize, n: usize, k: usize) {
        let a = values((m * 31 + k) as u64, m * k);
        let b = values((k * 17 + n) as u64, k * n);
        let expected: Vec<f64> = (0..m * n)
            .map(|ij| {
                let (i, j) = (ij / n, ij % n);
                (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum()
            })
            .collect();
        // Transposed copies, so the same values can be read column-major.
        let a_t: Vec<f64> = (0..m * k).map(|q| a[(q % m) * k + q / m]).collect();
        let b_t: Vec<f64> = (0..k * n).map(|q| b[(q % k) * n + q / k]).collect();
        for strategy in [Strategy::Small, Strategy::Packed, Strategy::Parallel] {
            for (a_data, a_rs, a_cs) in [(&a, k, 1), (&a_t, 1, m)] {
                for (b_data, b_rs, b_cs) in [(&b, n, 1), (&b_t, 1, k)] {
                    for dst_transposed in [false, true] {
                        let (dst_rs, dst_cs) = if dst_transposed { (1, m) } else { (n, 1) };
                        let mut dst = vec![f64::NAN; m * n];
                        // SAFETY: the buffers hold the sizes and strides given.
                        unsafe {
                            matmul(
                                m,
                                n,
                                k,
                                Output {
                                    ptr: dst.as_mut_ptr(),
                                    rs: dst_rs as isize,
                                    cs: dst_cs as isize,
                                },
                                Operand {
                                    ptr: a_data.as_ptr(),
                                    rs: a_rs as isize,
                                    cs: a_cs as isize,
                                },
                                Operand {
                                    ptr: b_data.as_ptr(),
                                    rs: b_rs as isize,
                                    cs: b_cs as isize,
                                },
                                strategy,
                            )
                        };
                        for i in 0..m {
                            for j in 0..n {
                                let got = dst[i * dst_rs + j * dst_cs];
                                let want = expected[i * n + j];
                                assert!(
                                    (got - want).abs()
                                        <= 1e-12 * (1.0 + want.abs()) * (k as f64).sqrt(),
                                    "{strategy:?} {m}x{n}x{k} a=({a_rs},{a_cs}) b=({b_rs},{b_cs}) \
                                     dst=({dst_rs},{dst_cs}) at ({i},{j}): {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn matrix_vector_kernels_give_the_plain_loops_bits() {
        for &(m, k) in &[
            (4, 20),
            (17, 3),
            (65, 1000),
            (1000, 20),
            (20, 1000),
            (33, 7),
        ] {
            let a = values((m * 7 + k) as u64, m * k);
            let b = values((k * 3 + 1) as u64, k);
            // a row-major (dot products) and column-major (column sweep).
            for (a_rs, a_cs) in [(k as isize, 1), (1, m as isize)] {
                let a = Operand {
                    ptr: a.as_ptr(),
                    rs: a_rs,
                    cs: a_cs,
                };
                let b = Operand {
                    ptr: b.as_ptr(),
                    rs: 1,
                    cs: 1,
                };
                let mut fast = vec![f64::NAN; m];
                let mut plain = vec![f64::NAN; m];
                let out = |d: &mut Vec<f64>| Output {
                    ptr: d.as_mut_ptr(),
                    rs: 1,
                    cs: 1,
                };
                // SAFETY: the buffers hold the sizes and strides given.
                unsafe {
                    small(m, 1, k, out(&mut fast), a, b);
                    small_generic(m, 1, k, out(&mut plain), a, b);
                }
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fast), bits(&plain), "{m}x{k} a=({a_rs},{a_cs})");
            }
        }
    }

    #[test]
    fn products_of_odd_and_transposed_shapes_match_a_naive_loop() {
        let sizes = [1, 3, 17, 64, 65];
        for &m in &sizes {
            for &n in &sizes {
                for &k in &[0, 1, 3, 17, 64, 65, 257] {
                    check(m, n, k);
                }
            }
        }
        // Blocks larger than one MC × KC × NC block in each direction.
        check(257, 65, 300);
        check(80, 1030, 17);
        check(3, 257, 513);
        // Tall enough for more than MAX_ROW_UNITS units of the smallest size, and deep
        // enough for several depth blocks.
        check(3001, 17, 33);
        check(17, 3001, 33);
        check(150, 40, 600);
        // Too few rows (after transposing) for row units: halves of the columns.
        check(128, 10, 256);
        // Rows of A 8 KiB apart: packed rather than read in place.
        check(40, 24, 1024);
        check(1024, 9, 40);
    }

    #[test]
    fn a_is_read_in_place_unless_its_rows_crowd_a_few_cache_sets() {
        let rows = |rs: isize| Operand {
            ptr: std::ptr::null(),
            rs,
            cs: 1,
        };
        // mlp's x (784 columns), deep's 64, an odd stride: rows spread over the sets.
        assert!(reads_a_in_place(MC, rows(784)));
        assert!(reads_a_in_place(MC, rows(64)));
        assert!(reads_a_in_place(MC, rows(1001)));
        // 1024 columns: MC rows over 8 of the 1024 sets.
        assert!(!reads_a_in_place(MC, rows(1024)));
        // A column-major operand is packed.
        let columns = Operand {
            ptr: std::ptr::null(),
            rs: 1,
            cs: 784,
        };
        assert!(!reads_a_in_place(MC, columns));
    }
}
