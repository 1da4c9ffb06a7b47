//! The `extern "C"` functions compiled code calls: scalar math from the Rust standard
//! library, and the kernels of the ops that are not fused into loops (matrix product,
//! gathers, scatters, softmax family).
//!
//! In: raw pointers and sizes passed by generated code. Out: results written through
//! the output pointer. Every argument is `i64` (pointers, sizes and strides in
//! elements), except the `f64` math arguments, so one signature builder covers them.
//!
//! Invariants the generated code guarantees (and these functions rely on): every pointer
//! addresses at least the elements the sizes and strides reach, outputs do not overlap
//! inputs, and every index has been range-checked before the compiled function ran.

#![allow(clippy::too_many_arguments)]

use super::math;
use crate::ir::UnaryOp;

mod matmul;
mod trig;

/// A runtime symbol: its name, address and number of `i64` parameters (`None` for a
/// math function of `f64`s).
pub(crate) struct Symbol {
    pub name: &'static str,
    pub address: *const u8,
    pub shape: SymbolShape,
}

/// The signature of a runtime symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SymbolShape {
    /// `fn(i64 × n)`.
    Ints(usize),
    /// `fn(f64) -> f64`.
    Math1,
    /// `fn(f64, f64) -> f64`.
    Math2,
    /// `fn(i64, i64, f64)`: a fill.
    Fill,
    /// `fn(f64) -> (f64, f64)`: sine and cosine.
    SinCos,
    /// `fn(f64, i64)`: sine and cosine written to two `f64`s at the address.
    SinCosTo,
}

/// Every symbol compiled code may import.
pub(crate) fn symbols() -> Vec<Symbol> {
    macro_rules! sym {
        ($f:ident, $shape:expr) => {
            Symbol {
                name: stringify!($f),
                address: $f as *const u8,
                shape: $shape,
            }
        };
    }
    use SymbolShape::*;
    vec![
        sym!(gradc_exp, Math1),
        sym!(gradc_log, Math1),
        sym!(gradc_log1p, Math1),
        Symbol {
            name: "gradc_sin",
            address: trig::sin_address(),
            shape: Math1,
        },
        Symbol {
            name: "gradc_cos",
            address: trig::cos_address(),
            shape: Math1,
        },
        sym!(gradc_tanh, Math1),
        sym!(gradc_sigmoid, Math1),
        sym!(gradc_softplus, Math1),
        sym!(gradc_pow, Math2),
        Symbol {
            name: "gradc_sincos",
            address: trig::sin_cos_address(),
            shape: SinCos,
        },
        sym!(gradc_sincos_to, SinCosTo),
        sym!(gradc_fill, Fill),
        sym!(gradc_block_math, Ints(4)),
        sym!(gradc_block_exp_family, Ints(6)),
        sym!(gradc_matmul, Ints(12)),
        sym!(gradc_gather, Ints(7)),
        sym!(gradc_scatter_add, Ints(8)),
        sym!(gradc_pick, Ints(6)),
        sym!(gradc_onehot, Ints(4)),
        sym!(gradc_softmax, Ints(8)),
        sym!(gradc_logsumexp, Ints(7)),
        Symbol {
            name: "gradc_parallel_for",
            address: super::parallel::gradc_parallel_for as *const u8,
            shape: Ints(6),
        },
    ]
}

/// The runtime symbol computing a unary math function, for the ops that need a call.
pub(crate) fn math_symbol(op: UnaryOp) -> Option<&'static str> {
    Some(match op {
        UnaryOp::Exp => "gradc_exp",
        UnaryOp::Log => "gradc_log",
        UnaryOp::Log1p => "gradc_log1p",
        UnaryOp::Sin => "gradc_sin",
        UnaryOp::Cos => "gradc_cos",
        UnaryOp::Tanh => "gradc_tanh",
        UnaryOp::Sigmoid => "gradc_sigmoid",
        UnaryOp::Softplus => "gradc_softplus",
        _ => return None,
    })
}

/// The inline math function ([`math::MathFn`]) computing the unary op `op`, if it is one.
pub(crate) fn math_fn(op: UnaryOp) -> Option<math::MathFn> {
    use math::MathFn;
    Some(match op {
        UnaryOp::Exp => MathFn::Exp,
        UnaryOp::Log => MathFn::Log,
        UnaryOp::Log1p => MathFn::Log1p,
        UnaryOp::Sin => MathFn::Sin,
        UnaryOp::Cos => MathFn::Cos,
        UnaryOp::Tanh => MathFn::Tanh,
        UnaryOp::Sigmoid => MathFn::Sigmoid,
        UnaryOp::Softplus => MathFn::Softplus,
        _ => return None,
    })
}

/// The math function `gradc_block_math` evaluates for `op` on blocks of a loop (four
/// lanes at a time: see `translate::BLOCK`), for the functions that have a kernel (all
/// but sine and cosine).
pub(crate) fn block_math_fn(op: UnaryOp) -> Option<math::MathFn> {
    math_fn(op).filter(|f| !matches!(f, math::MathFn::Sin | math::MathFn::Cos))
}

/// `dst[i] = f(src[i])` for `i < n`, `f` being `MathFn::ALL[code]`: a block of a loop,
/// read from a buffer (`src == dst`) or straight from a row of an array.
extern "C" fn gradc_block_math(code: i64, src: i64, dst: i64, n: i64) {
    let f = math::MathFn::ALL[code as usize];
    // SAFETY: generated code passes `n` doubles at `src` and a buffer of at least `n` at
    // `dst`, the same pointer or disjoint.
    unsafe { math::apply_raw(f, src as *const f64, dst as *mut f64, n as usize) };
}

/// The sigmoid and softplus of `x` and of `-x` (those of `outs` not null, in the order of
/// [`math::EXP_FAMILY`]) for `i < n`, from one `exp(-|x|)`: the members of a loop block
/// that share their exponential.
extern "C" fn gradc_block_exp_family(src: i64, n: i64, o0: i64, o1: i64, o2: i64, o3: i64) {
    let outs = [o0, o1, o2, o3].map(|o| o as *mut f64);
    // SAFETY: generated code passes `n` doubles at `src` and a buffer of at least `n` at
    // each non-null output, `src` itself or disjoint from it and from each other.
    unsafe { math::apply_exp_family_raw(src as *const f64, n as usize, outs) };
}

extern "C" fn gradc_exp(x: f64) -> f64 {
    x.exp()
}
extern "C" fn gradc_log(x: f64) -> f64 {
    x.ln()
}
extern "C" fn gradc_log1p(x: f64) -> f64 {
    x.ln_1p()
}
/// Whether `gradc_sincos` ([`trig`]) returns its two results in registers, as Cranelift
/// returns two `f64` results: the C convention of x86-64 System V returns a `#[repr(C)]`
/// pair of `f64`s in `xmm0` and `xmm1`. Elsewhere compiled code calls
/// [`gradc_sincos_to`], which writes them through a pointer. In registers, a chain
/// through the sine (a sine of a sine…, whose cosine only the gradient needs) waits for
/// no store and reload (measured on the swell workload: value-and-grad 1.80 → 1.72 µs).
pub(crate) const SINCOS_IN_REGISTERS: bool = cfg!(all(target_arch = "x86_64", not(windows)));

/// The sine and cosine of one argument, returned in two registers.
#[repr(C)]
pub(crate) struct SinCos {
    sin: f64,
    cos: f64,
}

/// `out[0] = sin(x)`, `out[1] = cos(x)` (called where not [`SINCOS_IN_REGISTERS`]).
extern "C" fn gradc_sincos_to(x: f64, out: i64) {
    // SAFETY: generated code passes a 16-byte stack slot.
    let out = unsafe { slice_mut::<f64>(out, 2) };
    (out[0], out[1]) = trig::sin_cos(x);
}
extern "C" fn gradc_tanh(x: f64) -> f64 {
    x.tanh()
}
extern "C" fn gradc_pow(x: f64, y: f64) -> f64 {
    x.powf(y)
}

/// `1 / (1 + exp(-x))` without overflow: only `exp(-|x|)` is computed (the
/// interpreter's formula).
extern "C" fn gradc_sigmoid(x: f64) -> f64 {
    let e = (-x.abs()).exp();
    if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

/// `max(x, 0) + log1p(exp(-|x|))` (the interpreter's formula).
extern "C" fn gradc_softplus(x: f64) -> f64 {
    let positive_part = if x > 0.0 { x } else { 0.0 };
    positive_part + (-x.abs()).exp().ln_1p()
}

/// Builds a slice over `n` elements at `ptr`, or an empty one when `n` is 0 (the
/// pointer may then be dangling).
///
/// # Safety
/// `ptr` must address `n` valid elements when `n > 0`.
unsafe fn slice_mut<'a, T>(ptr: i64, n: usize) -> &'a mut [T] {
    if n == 0 {
        &mut []
    } else {
        // SAFETY: the caller guarantees `n` elements at `ptr`.
        unsafe { std::slice::from_raw_parts_mut(ptr as *mut T, n) }
    }
}

/// Reads element `k` of a strided array.
///
/// # Safety
/// The element must be in bounds of the array at `ptr`.
#[inline(always)]
unsafe fn at(ptr: i64, k: isize) -> f64 {
    // SAFETY: guaranteed by the caller.
    unsafe { *(ptr as *const f64).offset(k) }
}

/// Reads index `k` of an int array.
///
/// # Safety
/// `k` must be in bounds.
#[inline(always)]
unsafe fn index_at(ptr: i64, k: usize) -> isize {
    // SAFETY: guaranteed by the caller.
    unsafe { *(ptr as *const i64).add(k) as isize }
}

extern "C" fn gradc_fill(ptr: i64, n: i64, value: f64) {
    // SAFETY: generated code passes an output buffer of `n` elements.
    unsafe { slice_mut::<f64>(ptr, n as usize) }.fill(value);
}

/// `dst[M,N] = a[M,K] @ b[K,N]`, every operand strided (in elements); see [`matmul`].
extern "C" fn gradc_matmul(
    m: i64,
    n: i64,
    k: i64,
    dst: i64,
    dst_rs: i64,
    dst_cs: i64,
    a: i64,
    a_rs: i64,
    a_cs: i64,
    b: i64,
    b_rs: i64,
    b_cs: i64,
) {
    let (m, n, k) = (m as usize, n as usize, k as usize);
    let macs = m.saturating_mul(n).saturating_mul(k);
    let strategy = if macs <= small_matmul_limit() || m == 1 || n == 1 {
        matmul::Strategy::Small
    } else if macs >= matmul::PARALLEL_MACS && super::helper::threads() > 1 {
        matmul::Strategy::Parallel
    } else {
        matmul::Strategy::Packed
    };
    let dst = matmul::Output {
        ptr: dst as *mut f64,
        rs: dst_rs as isize,
        cs: dst_cs as isize,
    };
    let operand = |ptr: i64, rs: i64, cs: i64| matmul::Operand {
        ptr: ptr as *const f64,
        rs: rs as isize,
        cs: cs as isize,
    };
    // SAFETY: the generated code passes operands of the sizes and strides given, and
    // `dst` does not overlap `a` or `b`.
    unsafe {
        matmul::matmul(
            m,
            n,
            k,
            dst,
            operand(a, a_rs, a_cs),
            operand(b, b_rs, b_cs),
            strategy,
        )
    };
}

/// Matrix products up to this many multiply-adds (`GRADC_SMALL_MATMUL` if set) use
/// the plain loops.
fn small_matmul_limit() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("GRADC_SMALL_MATMUL")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(matmul::SMALL_MACS)
    })
}

/// `out[b, c] = t[idx[b], c]` for `b < n_idx`, `c < d`.
extern "C" fn gradc_gather(t: i64, t_rs: i64, t_cs: i64, d: i64, idx: i64, n_idx: i64, out: i64) {
    let (d, n_idx) = (d as usize, n_idx as usize);
    // SAFETY: the output holds n_idx × d elements.
    let out = unsafe { slice_mut::<f64>(out, n_idx * d) };
    for b in 0..n_idx {
        // SAFETY: indices are range-checked before the call.
        let row = unsafe { index_at(idx, b) } * t_rs as isize;
        for c in 0..d {
            // SAFETY: idx[b] < rows and c < d.
            out[b * d + c] = unsafe { at(t, row + c as isize * t_cs as isize) };
        }
    }
}

/// `out = 0[rows, d]`, then `out[idx[b], c] += u[b, c]`.
extern "C" fn gradc_scatter_add(
    u: i64,
    u_rs: i64,
    u_cs: i64,
    d: i64,
    idx: i64,
    n_idx: i64,
    rows: i64,
    out: i64,
) {
    let (d, n_idx, rows) = (d as usize, n_idx as usize, rows as usize);
    // SAFETY: the output holds rows × d elements.
    let out = unsafe { slice_mut::<f64>(out, rows * d) };
    out.fill(0.0);
    for b in 0..n_idx {
        // SAFETY: indices are range-checked before the call.
        let row = unsafe { index_at(idx, b) } as usize * d;
        for c in 0..d {
            // SAFETY: b < n_idx and c < d.
            out[row + c] +=
                unsafe { at(u, b as isize * u_rs as isize + c as isize * u_cs as isize) };
        }
    }
}

/// `out[b] = x[b, labels[b]]`.
extern "C" fn gradc_pick(x: i64, rs: i64, cs: i64, n: i64, labels: i64, out: i64) {
    let n = n as usize;
    // SAFETY: the output holds n elements.
    let out = unsafe { slice_mut::<f64>(out, n) };
    for (b, o) in out.iter_mut().enumerate() {
        // SAFETY: labels are range-checked before the call.
        let l = unsafe { index_at(labels, b) };
        // SAFETY: b < n and l < k.
        *o = unsafe { at(x, b as isize * rs as isize + l * cs as isize) };
    }
}

/// `out[b, :] = one_hot(labels[b], k)`.
extern "C" fn gradc_onehot(labels: i64, n: i64, k: i64, out: i64) {
    let (n, k) = (n as usize, k as usize);
    // SAFETY: the output holds n × k elements.
    let out = unsafe { slice_mut::<f64>(out, n * k) };
    out.fill(0.0);
    for b in 0..n {
        // SAFETY: labels are range-checked before the call.
        let l = unsafe { index_at(labels, b) } as usize;
        out[b * k + l] = 1.0;
    }
}

/// Softmax (or log-softmax when `log != 0`) of a strided `[rows, cols]` array along
/// `axis` (0 or 1), into a dense `[rows, cols]` output. NaN propagates through the
/// maximum, as in the interpreter.
extern "C" fn gradc_softmax(
    x: i64,
    rs: i64,
    cs: i64,
    rows: i64,
    cols: i64,
    axis: i64,
    out: i64,
    log: i64,
) {
    let (rows, cols) = (rows as usize, cols as usize);
    // Lines along the axis: (number of lines, line length, line step, element step).
    let (lines, len, line_x, step_x, line_o, step_o) = if axis == 1 {
        (rows, cols, rs as isize, cs as isize, cols, 1)
    } else {
        (cols, rows, cs as isize, rs as isize, 1, cols)
    };
    let line = Line {
        x,
        len,
        line_x,
        step_x,
        out: out as *mut f64,
        line_o,
        step_o,
        log: log != 0,
    };
    // Lines are independent: big arrays are shared with the helper thread, in chunks
    // of lines claimed in turn (each line is computed the same way by either thread).
    if lines * len < SOFTMAX_PARALLEL_ELEMENTS || lines < 2 || super::helper::threads() < 2 {
        softmax_lines(&line, 0, lines);
        return;
    }
    let chunk = lines.div_ceil(8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    super::helper::run_on_two_threads(&|| loop {
        let c = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if c * chunk >= lines {
            return;
        }
        softmax_lines(&line, c * chunk, ((c + 1) * chunk).min(lines));
    });
}

/// Softmax arrays at least this big are shared with the helper thread.
const SOFTMAX_PARALLEL_ELEMENTS: usize = 1 << 14;

/// The lines of one softmax call (see [`gradc_softmax`]).
struct Line {
    x: i64,
    len: usize,
    line_x: isize,
    step_x: isize,
    out: *mut f64,
    line_o: usize,
    step_o: usize,
    log: bool,
}

// SAFETY: the pointers are valid for the call, and different lines write different
// output elements.
unsafe impl Sync for Line {}

/// Lines `lo..hi` of a softmax.
fn softmax_lines(line: &Line, lo: usize, hi: usize) {
    #[cfg(target_arch = "x86_64")]
    if has_fma() {
        // SAFETY: the host has AVX2 and FMA.
        unsafe { softmax_lines_fma(line, lo, hi) };
        return;
    }
    softmax_lines_with(
        line,
        lo,
        hi,
        math::exp_scalar::<false>,
        |row, keep| {
            let mut sum = 0.0;
            for v in row {
                let e = math::exp_scalar::<false>(*v);
                if !keep {
                    *v = e;
                }
                sum += e;
            }
            sum
        },
        nan_max_of,
    );
}

/// [`softmax_lines_with`] compiled with fused multiply-adds and four-lane exponentials.
///
/// # Safety
/// The host has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_lines_fma(line: &Line, lo: usize, hi: usize) {
    let mut lo = lo;
    // Strided lines that lie side by side (a softmax down the columns of row-major
    // data) go four at a time.
    if line.step_o != 1 && line.line_x == 1 && line.line_o == 1 {
        while lo + 4 <= hi {
            // SAFETY: lines lo..lo + 4 exist; the host has AVX2 and FMA.
            unsafe { softmax_four_lines_avx2(line, lo) };
            lo += 4;
        }
    }
    softmax_lines_with(
        line,
        lo,
        hi,
        math::exp_scalar::<true>,
        // SAFETY (both): the host has AVX2 and FMA (this function's contract).
        |row, keep| unsafe { math::exp_sum_avx2(row, keep) },
        |row| unsafe { math::nan_max_avx2(row) },
    );
}

/// Lines `l..l + 4` of a softmax whose lines lie side by side in input and output
/// (`line_x = line_o = 1`), a lane each: the operations of the one-line loop of
/// [`softmax_lines_with`] in the same order, so the same bits.
///
/// # Safety
/// Lines `l..l + 4` exist; the host has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_four_lines_avx2(line: &Line, l: usize) {
    use std::arch::x86_64::*;
    let x = line.x as *const f64;
    // SAFETY (all): element e of lines l..l + 4 is inside input and output, and only
    // these lines write their output elements.
    let input = |e: usize| unsafe { x.offset(l as isize + e as isize * line.step_x) };
    let output = |e: usize| unsafe { line.out.add(l + e * line.step_o) };
    let mut max = _mm256_set1_pd(f64::NEG_INFINITY);
    let mut unordered = _mm256_setzero_pd();
    for e in 0..line.len {
        let v = unsafe { _mm256_loadu_pd(input(e)) };
        max = _mm256_max_pd(max, v);
        unordered = _mm256_or_pd(unordered, _mm256_cmp_pd::<_CMP_UNORD_Q>(v, v));
    }
    let max = _mm256_blendv_pd(max, _mm256_set1_pd(f64::NAN), unordered);
    let mut sum = _mm256_setzero_pd();
    for e in 0..line.len {
        let shifted = _mm256_sub_pd(unsafe { _mm256_loadu_pd(input(e)) }, max);
        let y = unsafe { math::exp_avx2(shifted) };
        unsafe { _mm256_storeu_pd(output(e), if line.log { shifted } else { y }) };
        sum = _mm256_add_pd(sum, y);
    }
    let adjust = if line.log {
        let mut lanes = [0.0; 4];
        unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), sum) };
        let [a, b, c, d] = lanes.map(f64::ln);
        _mm256_setr_pd(a, b, c, d)
    } else {
        _mm256_div_pd(_mm256_set1_pd(1.0), sum)
    };
    for e in 0..line.len {
        let o = unsafe { _mm256_loadu_pd(output(e)) };
        let o = if line.log {
            _mm256_sub_pd(o, adjust)
        } else {
            _mm256_mul_pd(o, adjust)
        };
        unsafe { _mm256_storeu_pd(output(e), o) };
    }
}

/// Softmax (or log-softmax) of lines `lo..hi`: `exp` for one element, `exp_sum` for a
/// contiguous row (replacing it by its exponentials unless told to keep it, and
/// returning their sum), and `max_of` for a contiguous row (NaN if it holds one).
#[inline(always)]
fn softmax_lines_with(
    line: &Line,
    lo: usize,
    hi: usize,
    exp: impl Fn(f64) -> f64,
    exp_sum: impl Fn(&mut [f64], bool) -> f64,
    max_of: impl Fn(&[f64]) -> f64,
) {
    let len = line.len;
    for l in lo..hi {
        let base = l as isize * line.line_x;
        let out_at = |e: usize| l * line.line_o + e * line.step_o;
        if line.step_o == 1 {
            // SAFETY: the row is inside the output, and only this line writes it.
            let row = unsafe { std::slice::from_raw_parts_mut(line.out.add(out_at(0)), len) };
            if line.step_x == 1 {
                // SAFETY: the input row is `len` contiguous elements from `base`.
                let xs =
                    unsafe { std::slice::from_raw_parts((line.x as *const f64).offset(base), len) };
                let max = max_of(xs);
                row.iter_mut().zip(xs).for_each(|(o, &v)| *o = v - max);
            } else {
                // SAFETY (all `at` calls): e < len stays inside the strided input.
                let max = (0..len).fold(f64::NEG_INFINITY, |m, e| {
                    nan_max(m, unsafe { at(line.x, base + e as isize * line.step_x) })
                });
                for (e, o) in row.iter_mut().enumerate() {
                    *o = unsafe { at(line.x, base + e as isize * line.step_x) } - max;
                }
            }
            let sum = exp_sum(row, line.log);
            if line.log {
                let log_sum = sum.ln();
                row.iter_mut().for_each(|o| *o -= log_sum);
            } else {
                let inverse = 1.0 / sum;
                row.iter_mut().for_each(|o| *o *= inverse);
            }
            continue;
        }
        // SAFETY (all `at` calls): e < len stays inside the strided input.
        let max = (0..len).fold(f64::NEG_INFINITY, |m, e| {
            nan_max(m, unsafe { at(line.x, base + e as isize * line.step_x) })
        });
        let mut sum = 0.0;
        for e in 0..len {
            let shifted = unsafe { at(line.x, base + e as isize * line.step_x) } - max;
            let y = exp(shifted);
            // SAFETY: the element is inside the output, and only this line writes it.
            unsafe { *line.out.add(out_at(e)) = if line.log { shifted } else { y } };
            sum += y;
        }
        let (log_sum, inverse) = (sum.ln(), 1.0 / sum);
        for e in 0..len {
            // SAFETY: as above.
            unsafe {
                let o = line.out.add(out_at(e));
                *o = if line.log { *o - log_sum } else { *o * inverse };
            }
        }
    }
}

/// Whether the host has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
fn has_fma() -> bool {
    static FMA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FMA.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

/// `log(sum(exp(x)))` of a strided `[rows, cols]` array over the axes in the mask
/// `axes` (bit 0 rows, bit 1 cols), into a dense output of the remaining axis (or one
/// element).
extern "C" fn gradc_logsumexp(x: i64, rs: i64, cs: i64, rows: i64, cols: i64, axes: i64, out: i64) {
    let args = (x, rs, cs, rows, cols, axes, out);
    // Along one axis the outputs are independent: big arrays are shared with the helper
    // thread, in chunks of rows (or columns) claimed in turn, each computed as the
    // log-sum-exp of its own part of the array (the same bits as in one piece).
    let units = match axes & 0b11 {
        0b10 => rows,
        0b01 => cols,
        _ => 0,
    } as usize;
    let elements = (rows as usize).saturating_mul(cols as usize);
    if units < 2 || elements < SOFTMAX_PARALLEL_ELEMENTS || super::helper::threads() < 2 {
        logsumexp_part(args);
        return;
    }
    let chunk = units.div_ceil(8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    super::helper::run_on_two_threads(&|| loop {
        let c = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let first = c * chunk;
        if first >= units {
            return;
        }
        let (first, n) = (first as i64, (chunk.min(units - first)) as i64);
        // Addresses are in bytes, strides in elements.
        logsumexp_part(if axes & 0b11 == 0b10 {
            (x + 8 * first * rs, rs, cs, n, cols, axes, out + 8 * first)
        } else {
            (x + 8 * first * cs, rs, cs, rows, n, axes, out + 8 * first)
        });
    });
}

/// One log-sum-exp call, on this thread.
fn logsumexp_part(args: LogsumexpArgs) {
    #[cfg(target_arch = "x86_64")]
    if has_fma() {
        // SAFETY: the host has FMA; the data contract is the generated code's.
        unsafe { logsumexp_fma(args) };
        return;
    }
    logsumexp_with(
        args,
        math::exp_scalar::<false>,
        |row| {
            row_logsumexp(row, nan_max_of, |r, shift| {
                r.iter()
                    .map(|&v| math::exp_scalar::<false>(v - shift))
                    .sum()
            })
        },
        |values| {
            values
                .iter_mut()
                .for_each(|v| *v = math::exp_scalar::<false>(*v))
        },
    );
}

/// [`logsumexp_with`] compiled with fused multiply-adds, contiguous rows four lanes at a
/// time.
///
/// # Safety
/// The host has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn logsumexp_fma(args: LogsumexpArgs) {
    logsumexp_with(
        args,
        math::exp_scalar::<true>,
        |row| {
            row_logsumexp(
                row,
                // SAFETY (all three): the host has AVX2 and FMA (this function's contract).
                |r| unsafe { math::nan_max_avx2(r) },
                |r, shift| unsafe { math::exp_shifted_sum_avx2(r, shift) },
            )
        },
        |values| {
            unsafe { math::exp_sum_avx2(values, false) };
        },
    );
}

/// `log(sum(exp(row)))` of a contiguous row, from its maximum and the sum of the shifted
/// exponentials.
#[inline(always)]
fn row_logsumexp(
    row: &[f64],
    max_of: impl Fn(&[f64]) -> f64,
    shifted_exp_sum: impl Fn(&[f64], f64) -> f64,
) -> f64 {
    let shift = usable_shift(max_of(row));
    shift + shifted_exp_sum(row, shift).ln()
}

/// The arguments of [`gradc_logsumexp`].
type LogsumexpArgs = (i64, i64, i64, i64, i64, i64, i64);

/// `log(sum(exp(x)))` over the axes of `args` ([`gradc_logsumexp`]): `exp` for one
/// element, `contiguous` for a whole contiguous run of elements, `exp_in_place` for a
/// short run of elements.
#[inline(always)]
fn logsumexp_with(
    args: LogsumexpArgs,
    exp: impl Fn(f64) -> f64,
    contiguous: impl Fn(&[f64]) -> f64,
    exp_in_place: impl Fn(&mut [f64]),
) {
    let (x, rs, cs, rows, cols, axes, out) = args;
    let (rows, cols) = (rows as usize, cols as usize);
    // SAFETY: `len` elements from `start` are inside the input.
    let run = |start: isize, len: usize| unsafe {
        std::slice::from_raw_parts((x as *const f64).offset(start), len)
    };
    let element = |i: usize, j: usize| {
        // SAFETY: i < rows, j < cols.
        unsafe { at(x, i as isize * rs as isize + j as isize * cs as isize) }
    };
    // A strided run of `len` elements from `start`, `step` apart.
    let strided = |start: isize, step: isize, len: usize| {
        // SAFETY (both): the run is inside the input.
        let shift = usable_shift((0..len).fold(f64::NEG_INFINITY, |m, e| {
            nan_max(m, unsafe { at(x, start + e as isize * step) })
        }));
        let sum: f64 = (0..len)
            .map(|e| exp(unsafe { at(x, start + e as isize * step) } - shift))
            .sum();
        shift + sum.ln()
    };
    match axes & 0b11 {
        0b11 if cs == 1 && rs == cols as i64 => {
            // SAFETY: the output holds one element.
            let out = unsafe { slice_mut::<f64>(out, 1) };
            out[0] = contiguous(run(0, rows * cols));
        }
        0b10 if cs == 1 => {
            // SAFETY: the output holds one element per row.
            let out = unsafe { slice_mut::<f64>(out, rows) };
            for (i, o) in out.iter_mut().enumerate() {
                *o = contiguous(run(i as isize * rs as isize, cols));
            }
        }
        0b01 if rs == 1 => {
            // SAFETY: the output holds one element per column.
            let out = unsafe { slice_mut::<f64>(out, cols) };
            for (j, o) in out.iter_mut().enumerate() {
                *o = contiguous(run(j as isize * cs as isize, rows));
            }
        }
        0b11 => {
            let mut shift = f64::NEG_INFINITY;
            for i in 0..rows {
                for j in 0..cols {
                    shift = nan_max(shift, element(i, j));
                }
            }
            let shift = usable_shift(shift);
            let mut sum = 0.0;
            for i in 0..rows {
                for j in 0..cols {
                    sum += exp(element(i, j) - shift);
                }
            }
            // SAFETY: the output holds one element.
            let out = unsafe { slice_mut::<f64>(out, 1) };
            out[0] = shift + sum.ln();
        }
        0b10 => {
            // SAFETY: the output holds one element per row.
            let out = unsafe { slice_mut::<f64>(out, rows) };
            for (i, o) in out.iter_mut().enumerate() {
                *o = strided(i as isize * rs as isize, cs as isize, cols);
            }
        }
        _ if cs == 1 => {
            // Columns of row-major data: whole rows at a time, a block of columns' maxima
            // in the output and their sums on the stack.
            // SAFETY: the output holds one element per column.
            let out = unsafe { slice_mut::<f64>(out, cols) };
            const BLOCK: usize = 64;
            for (b, shifts) in out.chunks_mut(BLOCK).enumerate() {
                let j0 = b * BLOCK;
                shifts.fill(f64::NEG_INFINITY);
                for i in 0..rows {
                    for (jj, s) in shifts.iter_mut().enumerate() {
                        *s = nan_max(*s, element(i, j0 + jj));
                    }
                }
                shifts.iter_mut().for_each(|s| *s = usable_shift(*s));
                let mut sums = [0.0; BLOCK];
                let mut terms = [0.0; BLOCK];
                let terms = &mut terms[..shifts.len()];
                for i in 0..rows {
                    for (jj, (t, s)) in terms.iter_mut().zip(shifts.iter()).enumerate() {
                        *t = element(i, j0 + jj) - s;
                    }
                    exp_in_place(terms);
                    sums.iter_mut()
                        .zip(terms.iter())
                        .for_each(|(sum, t)| *sum += t);
                }
                for (s, sum) in shifts.iter_mut().zip(sums) {
                    *s += sum.ln();
                }
            }
        }
        _ => {
            // SAFETY: the output holds one element per column.
            let out = unsafe { slice_mut::<f64>(out, cols) };
            for (j, o) in out.iter_mut().enumerate() {
                *o = strided(j as isize * cs as isize, rs as isize, rows);
            }
        }
    }
}

/// The shift of a log-sum-exp: the maximum, or 0 where it is infinite (so that
/// `exp(x − shift)` is not `exp(inf − inf)`).
fn usable_shift(max: f64) -> f64 {
    if max.is_infinite() {
        0.0
    } else {
        max
    }
}

/// NumPy's `max` of a slice: NaN if any element is NaN, `-inf` if it is empty.
fn nan_max_of(row: &[f64]) -> f64 {
    row.iter().fold(f64::NEG_INFINITY, |m, &v| nan_max(m, v))
}

/// NumPy's `maximum`: NaN if either operand is NaN.
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}
