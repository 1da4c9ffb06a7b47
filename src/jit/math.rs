//! Transcendental functions emitted inline as Cranelift IR.
//!
//! In: a [`FunctionBuilder`] positioned inside a block, a [`MathFn`] and an SSA value of type
//! `f64` or `f64x2`. Out: a value of the same type holding the function of each lane (for
//! `sin` and `cos` the builder is left in a new block; see below).
//!
//! The emitted code has no calls and no branches: only arithmetic, compares turned into lane
//! masks, `select`/`bitselect` and bit casts, so it can sit in the body of a vectorised
//! loop. The one exception is the sine and cosine of huge arguments (`|x| > 1e8`, where the
//! inline argument reduction is no longer exact): the inline result is computed for every
//! lane, then one compare-and-branch (never taken for ordinary arguments) leads to a cold
//! block that calls the system libm for the lanes beyond the bound and merges its results
//! with a select. The hot path has no calls. Every function follows the same plan: reduce the argument with exact (or
//! exactly-compensated) steps, evaluate a short polynomial on the reduced range, rebuild the
//! result with integer operations on the exponent bits, and patch the special inputs (NaN,
//! ±inf, ±0, out-of-range) with selects at the end.
//!
//! Two Cranelift facts shape the code (checked against the x86-64 lowering rules of
//! Cranelift 0.135, `isa/x64/lower.isle`):
//!
//! - `fma` is one instruction only when the ISA has `has_fma` and `has_avx`; otherwise it
//!   becomes a libcall per lane. [`MathOptions::use_fma`] chooses between `fma` and a plain
//!   `fmul` + `fadd`; every algorithm here is accurate either way (the Cody–Waite constants
//!   have trailing zero bits so that the products they take part in are exact).
//! - `fcvt_from_sint`/`fcvt_to_sint` on `i64x2` are per-lane scalar sequences without
//!   AVX-512. So nothing here converts between integers and floats: rounding to an integer
//!   adds the magic constant `1.5·2^52` (after which the integer sits in the low mantissa
//!   bits), and `2^k` is built by shifting integer bits into the exponent field.
//!
//! Lane masks: for `f64x2` a compare yields an `i64x2` of all-ones/all-zeros lanes, turned
//! into a choice with `bitselect` (lowered to one `pblendvb`, or to `minpd`/`maxpd` for the
//! min/max pattern); for `f64` a compare yields an `i8` used by `select`.
//!
//! Accuracy (measured by `tests/jit_math.rs` over ≥ 10^6 points per function against Rust's
//! `std`, i.e. the system libm; the bounds are asserted there): see the table on [`MathFn`].
//! Subnormal results are produced (never flushed to zero) and subnormal arguments are
//! handled.

use std::sync::OnceLock;

use cranelift::codegen::ir::{
    AbiParam, ConstantData, Endianness, InstructionData, Opcode, Signature, ValueDef,
};
use cranelift::codegen::isa::{CallConv, TargetIsa};
use cranelift::prelude::{
    settings, types, FloatCC, FunctionBuilder, InstBuilder, IntCC, MemFlagsData, Type, Value,
};

/// One of the elementwise functions this module emits inline.
///
/// Maximum error measured over ≥ 10^6 points per function (see `tests/jit_math.rs`, which
/// asserts these bounds), in units in the last place (ulp) of the reference, the same with and
/// without `fma` and for `f64` and `f64x2`:
///
/// | function   | max error | reference                                   | valid for    |
/// |------------|-----------|---------------------------------------------|--------------|
/// | `Exp`      | 1 ulp     | `f64::exp`                                  | all `f64`    |
/// | `Log`      | 1 ulp     | `f64::ln`                                   | all `f64`    |
/// | `Log1p`    | 1 ulp     | `f64::ln_1p`                                | all `f64`    |
/// | `Tanh`     | 4 ulp     | `f64::tanh` (itself off by up to ~2 ulp)    | all `f64`    |
/// | `Sigmoid`  | 2 ulp     | `1/(1+e^-x)` refined in double-double       | all `f64`    |
/// | `Softplus` | 2 ulp     | `max(x,0) + ln_1p(exp(-|x|))` with `std`    | all `f64`    |
/// | `Sin`      | 1 ulp     | `f64::sin`                                  | all `f64`    |
/// | `Cos`      | 2 ulp     | `f64::cos`                                  | all `f64`    |
///
/// For `|x| > 1e8` (and `±inf`) `Sin` and `Cos` call `f64::sin`/`f64::cos` themselves (a
/// cold branch, see [`MathFn::Sin`]), so there the error is 0 ulp against the reference.
///
/// Checked with mpmath (10^5 of the test points, and the worst points): exp, log and log1p
/// are within 1.0 ulp of the true value, softplus within 1.23 ulp, tanh within 3.0 ulp (at
/// `x ≈ 0.0078`: the rounding of `expm1(2x)`, of `E + 2` and of the quotient add up; glibc is
/// off by up to 1.9 ulp, so the bound against it is 4); cos is 2.2 ulp off at `x ≈ 1.19e7` (the reduced argument is
/// rounded once, fdlibm keeps a tail). The errors are relative (ulps of the result) down to
/// the subnormal range.
///
/// The exact figures are in each variant's documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MathFn {
    /// `e^x`. Method (Tang's, as in ARM optimized-routines and musl): `x` is clamped to
    /// `[-746, 710]` (NaN passes through), `x = (128·k + j)·ln 2/128 + r` with
    /// `128·k + j = round(x·128/ln 2)` by the magic-constant trick and a two-part `ln 2/128`
    /// (the high part's products are exact), so `|r| ≤ ln 2/256`; `2^(j/128)` comes from a
    /// 128-entry table as a double and its relative tail, `e^r − 1` is a degree-5
    /// polynomial (absolute error 2^-65.3), and `2^k` is applied as two factors
    /// `2^⌊k/2⌋·2^⌈k/2⌉` so that overflow gives `+inf` and results down to `2^-1074` come out
    /// as correctly scaled subnormals (no flush to zero). Special values: `exp(NaN) = NaN`,
    /// `exp(+inf) = +inf`, `exp(-inf) = 0`.
    Exp,
    /// Natural logarithm. Method (as ARM optimized-routines' `log`, without its branch
    /// near 1): `x = 2^k·z` with `z ∈ [1 − 2^-9, 2 − 2^-8)` taken from the bits (a subnormal
    /// `x` is first scaled by `2^52`), `c = 1 + i/128` the nearest of a 128-row table holding
    /// `invc ≈ 1/c` (26 bits) and `logc = −ln(invc)` (within 2^-67), `r = z·invc − 1`
    /// rounded once (`|r| ≤ 2^-8`), `ln(1 + r)` by a degree-7 polynomial, and
    /// `k·ln 2 + logc + r` summed with the rounding errors of both additions kept; no
    /// division. The row of `c = 1` covers `[1 − 2^-9, 1 + 2^-8)`, where `r = z − 1` is exact.
    /// Measured with mpmath: at most 1.0 ulp from the true value. Special values:
    /// `log(0) = -inf`, `log(x<0) = NaN`, `log(+inf) = +inf`, `log(NaN) = NaN`.
    Log,
    /// `ln(1+x)`. Method: `u = 1 + x` with its rounding error `δ` computed exactly (TwoSum),
    /// then `log(u)` as for [`MathFn::Log`] plus the first-order correction `δ/u`, evaluated
    /// without a division as `δ·2^-k·invc·(1 − r)` (its own error is below `δ·r²`, far below
    /// an ulp). Measured with mpmath: at most 0.66 ulp. Tiny `x` gives `x` exactly (with its sign for `±0`). Special values:
    /// `log1p(-1) = -inf`, `log1p(x<-1) = NaN`, `log1p(+inf) = +inf`.
    Log1p,
    /// Hyperbolic tangent. Method: `a = min(|x|, 20)`, `E = expm1(2a)` with the table
    /// reduction of [`MathFn::Exp`] as `(S − 1) + S·(r_hi + small)` (`S = 2^k·2^(j/128)`,
    /// `S − 1` exact for `S ≤ 2`, the exact `r_hi` added before the small terms, so `E` keeps
    /// its relative accuracy near 0), `tanh = sign(x)·E/(E+2)`. Saturates to exactly
    /// `±1` for `|x| ≥ 19.1`, odd, `tanh(±0) = ±0`, `tanh(tiny) = tiny`.
    Tanh,
    /// Logistic sigmoid `1/(1+e^-x)`. Method: `e = exp(-|x|)` (never overflows), then
    /// `1/(1+e)` for `x ≥ 0` and `e/(1+e)` for `x < 0`, one division. `sigmoid(+inf) = 1`,
    /// `sigmoid(-inf) = 0`, `sigmoid(±1000)` is `1`/`0` without NaN; results for
    /// `x < -708` are the correctly scaled subnormals.
    Sigmoid,
    /// `softplus(x) = ln(1 + e^x)`, evaluated as `max(x, 0) + log1p(e)` with `e = exp(-|x|)`
    /// as for [`MathFn::Exp`]: `u = 1 + e ∈ [1, 2]` and its exact rounding error `δ`, then
    /// `ln u = ln c + ln(1 + r)` with `c = 1 + i/128` the nearest table point (129-row table
    /// of `1/c` rounded to 26 bits and `ln c`, no exponent to extract), `r = u/c − 1` rounded
    /// once, a degree-7 polynomial for `ln(1 + r)` and `+ δ/u`; no division. Measured with
    /// mpmath: at most 1.23 ulp from the true value. `softplus(1000) = 1000`,
    /// `softplus(-1000) = 0` (the true value `e^-1000` underflows), `softplus(+inf) = +inf`,
    /// `softplus(-inf) = 0`.
    Softplus,
    /// Sine. Method: `k = round(2x/π)`, `r = x − k·π/2` with a four-part Cody–Waite `π/2`
    /// (three 27-bit parts and a full double, computed by us with mpmath; every `k·Pᵢ` is
    /// exact for `|k| < 2^26`), fdlibm's sine and cosine kernels (S1..S6, C1..C6) on
    /// `|r| ≤ π/4`, and the quadrant `k mod 4` read from the bits of the rounded value to
    /// pick `±sin r` or `±cos r`. This inline path is used for `|x| ≤ 1e8`
    /// (`|k| ≤ 63661977 < 2^26`, so the reduction is exact with or without `fma`). Lanes
    /// with `|x| > 1e8` (and `±inf`) would need more bits of `π/2` (Payne–Hanek): for them
    /// the emitted code branches to a cold block that calls `f64::sin` (the system libm) on
    /// each lane and selects its result for the lanes beyond the bound; the branch is taken
    /// only when some lane is beyond it, so ordinary arguments never leave the inline path.
    /// Valid for every `f64`: `sin(±0) = ±0`, `sin(±inf) = sin(NaN) = NaN`, finite inputs
    /// give finite results.
    Sin,
    /// Cosine. Same method, range and libm fallback (`f64::cos`) as [`MathFn::Sin`] (the
    /// quadrant shifted by one). `cos(±inf) = cos(NaN) = NaN`.
    Cos,
}

impl MathFn {
    /// Every function, in declaration order (for tests and benchmarks).
    pub const ALL: [MathFn; 8] = [
        MathFn::Exp,
        MathFn::Log,
        MathFn::Log1p,
        MathFn::Tanh,
        MathFn::Sigmoid,
        MathFn::Softplus,
        MathFn::Sin,
        MathFn::Cos,
    ];

    /// The lower-case name of the function, as in a `.loss` file.
    pub fn name(self) -> &'static str {
        match self {
            MathFn::Exp => "exp",
            MathFn::Log => "log",
            MathFn::Log1p => "log1p",
            MathFn::Tanh => "tanh",
            MathFn::Sigmoid => "sigmoid",
            MathFn::Softplus => "softplus",
            MathFn::Sin => "sin",
            MathFn::Cos => "cos",
        }
    }
}

/// Code-generation choices that depend on the target ISA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MathOptions {
    /// Emit `fma` for multiply-adds. Set it only when the ISA lowers `fma` to one instruction
    /// (x86-64: `has_fma` and `has_avx`; always on aarch64): otherwise Cranelift calls the
    /// `fma` libcall per lane, which is correct but slow. Without it a multiply-add is an
    /// `fmul` followed by an `fadd`; the accuracy bounds hold either way.
    pub use_fma: bool,
}

impl MathOptions {
    /// The options matching the flags of `isa`.
    pub fn for_isa(isa: &dyn TargetIsa) -> MathOptions {
        let flag_is_set = |name: &str| {
            isa.isa_flags()
                .iter()
                .any(|value| value.name == name && value.as_bool() == Some(true))
        };
        let use_fma = match isa.name() {
            "x64" => flag_is_set("has_fma") && flag_is_set("has_avx"),
            "aarch64" => true,
            _ => false,
        };
        MathOptions { use_fma }
    }

    /// The options for the host, as `cranelift_native` detects it (computed once).
    pub fn host() -> MathOptions {
        static HOST: OnceLock<MathOptions> = OnceLock::new();
        *HOST.get_or_init(|| {
            let Ok(isa_builder) = cranelift_native::builder() else {
                return MathOptions { use_fma: false };
            };
            match isa_builder.finish(settings::Flags::new(settings::builder())) {
                Ok(isa) => MathOptions::for_isa(&*isa),
                Err(_) => MathOptions { use_fma: false },
            }
        })
    }
}

/// Emits `f(x)` for an `f64` or `f64x2` value `x` with the host's [`MathOptions`]
/// (see [`emit_unary_with`] to pass the options of the ISA actually used).
///
/// # Panics
///
/// If `x` is neither `f64` nor `f64x2` (a compiler bug in the caller).
pub fn emit_unary(builder: &mut FunctionBuilder, f: MathFn, x: Value) -> Value {
    emit_unary_with(builder, f, x, MathOptions::host())
}

/// Emits `f(x)` for an `f64` or `f64x2` value `x`, same type out: branch-free and without
/// calls, but for [`MathFn::Sin`] and [`MathFn::Cos`], which end with a compare-and-branch
/// to a cold block calling libm for `|x| > 1e8` and leave the builder in a new block (sealed;
/// the block the builder was in is ended by the branch).
///
/// # Panics
///
/// If `x` is neither `f64` nor `f64x2` (a compiler bug in the caller).
pub fn emit_unary_with(
    builder: &mut FunctionBuilder,
    f: MathFn,
    x: Value,
    options: MathOptions,
) -> Value {
    let float_ty = builder.func.dfg.value_type(x);
    let int_ty = match float_ty {
        types::F64 => types::I64,
        types::F64X2 => types::I64X2,
        other => panic!("compiler bug: math::emit_unary expects f64 or f64x2, got {other}"),
    };
    let mut emitter = Emitter {
        builder,
        float_ty,
        int_ty,
        use_fma: options.use_fma,
    };
    match f {
        MathFn::Exp => emitter.exp(x),
        MathFn::Log => emitter.log(x),
        MathFn::Log1p => emitter.log1p(x),
        MathFn::Tanh => emitter.tanh(x),
        MathFn::Sigmoid => emitter.sigmoid(x),
        MathFn::Softplus => emitter.softplus(x),
        MathFn::Sin => emitter.sin_cos(x, false),
        MathFn::Cos => emitter.sin_cos(x, true),
    }
}

// ---------------------------------------------------------------------------------------
// Constants. Decimal literals are the shortest round-trip forms of the doubles named.

/// `1.5·2^52`: adding it to `|y| < 2^51` rounds `y` to an integer held in the low mantissa
/// bits of the sum (two's complement for negative `y`).
const ROUND_MAGIC: f64 = 6755399441055744.0;
/// Bits of `1.0`: the exponent bias `1023 << 52`.
const ONE_BITS: i64 = 0x3ff0_0000_0000_0000;
/// The sign bit of an `f64`.
const SIGN_BIT: i64 = i64::MIN;

/// fdlibm's `ln2_hi` (`0x3fe62e42fee00000`, 32 significant bits: `k·LN2_HI` is exact for
/// `|k| < 2^21`) and `ln2_lo = ln 2 − ln2_hi`.
const LN2_HI: f64 = 0.6931471803691238;
const LN2_LO: f64 = 1.9082149292705877e-10;

/// `exp` is computed for arguments clamped to this range; beyond it the result is `+inf` or
/// `0` anyway (`ln(f64::MAX) ≈ 709.78`, `ln(2^-1074) ≈ -744.44`).
const EXP_MAX_ARG: f64 = 710.0;
const EXP_MIN_ARG: f64 = -746.0;

/// `2^52` and its bits: or-ing a small integer `n` into the bits gives the double `2^52 + n`.
const TWO_52: f64 = 4503599627370496.0;
const TWO_52_BITS: i64 = 0x4330_0000_0000_0000;
/// Smallest positive normal double (a subnormal is scaled by `TWO_52` to make it normal).
const MIN_NORMAL: f64 = f64::MIN_POSITIVE;

/// `π/2 = P1 + P2 + P3 + P4` to 2^-142: three 27-bit parts (so `k·Pᵢ` is exact for
/// `|k| < 2^26`) and a full double, computed with mpmath.
const PIO2_1: f64 = 1.570796325802803;
const PIO2_2: f64 = 9.920935739593517e-10;
const PIO2_3: f64 = 5.721188709663575e-18;
const PIO2_4: f64 = 1.6446256936324258e-26;
const TWO_OVER_PI: f64 = std::f64::consts::FRAC_2_PI;
/// Up to this `|x|` the sine and cosine are computed inline; beyond it (and for `±inf`) the
/// emitted code calls libm (see [`MathFn::Sin`]). `round(1e8·2/π) = 63661977 < 2^26`, so every
/// `k·Pᵢ` of the reduction is exact below it, with or without `fma`.
const SIN_COS_INLINE_MAX: f64 = 1e8;

/// The calling convention of [`libm_sin`] and [`libm_cos`], as Cranelift names it.
///
/// On x86-64 they follow the Windows x64 convention (on every OS): it preserves `xmm6`–`xmm15`,
/// where System V clobbers all 16 vector registers. A call in a loop body, even in a cold
/// block, makes the register allocator spill every vector value live across it, and with
/// System V that means spill stores on the hot path (measured: the value-and-grad loop of
/// `sum(sin(a*x))`, where the sine and cosine share their reduction, ran 1.7x slower). The
/// wrappers themselves save `xmm6`–`xmm15` around their System V call of libm, on the cold
/// path only.
#[cfg(target_arch = "x86_64")]
fn libm_call_conv() -> CallConv {
    CallConv::WindowsFastcall
}

/// The calling convention of [`libm_sin`] and [`libm_cos`]: the host's C convention
/// (computed once; the JIT'd code runs in this process).
#[cfg(not(target_arch = "x86_64"))]
fn libm_call_conv() -> CallConv {
    static HOST: OnceLock<CallConv> = OnceLock::new();
    *HOST.get_or_init(|| match cranelift_native::builder() {
        Ok(isa_builder) => CallConv::triple_default(isa_builder.triple()),
        Err(_) => CallConv::SystemV,
    })
}

/// A libm function as the emitted code calls it (see [`libm_call_conv`]).
#[cfg(target_arch = "x86_64")]
type LibmFn = extern "win64" fn(f64) -> f64;
#[cfg(not(target_arch = "x86_64"))]
type LibmFn = extern "C" fn(f64) -> f64;

/// The sine of `std` (the system libm), which the emitted code calls for huge arguments.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
extern "win64" fn libm_sin(x: f64) -> f64 {
    x.sin()
}

/// The cosine of `std` (the system libm), which the emitted code calls for huge arguments.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
extern "win64" fn libm_cos(x: f64) -> f64 {
    x.cos()
}

/// The sine of `std` (the system libm), which the emitted code calls for huge arguments.
#[cfg(not(target_arch = "x86_64"))]
#[inline(never)]
extern "C" fn libm_sin(x: f64) -> f64 {
    x.sin()
}

/// The cosine of `std` (the system libm), which the emitted code calls for huge arguments.
#[cfg(not(target_arch = "x86_64"))]
#[inline(never)]
extern "C" fn libm_cos(x: f64) -> f64 {
    x.cos()
}

/// `[libm_sin, libm_cos]`, read through a `static` so that the emitted code and [`tables`]
/// see one address each (a small function may otherwise get a copy per codegen unit).
static LIBM_SIN_COS: [LibmFn; 2] = [libm_sin, libm_cos];

/// The address of a libm function, as an `iconst` of the emitted code holds it.
fn libm_address(f: LibmFn) -> i64 {
    f as usize as i64
}

/// fdlibm `k_sin.c` S6..S1: `sin r ≈ r + r³·(S1 + z·(S2 + … + z·S6))`, `z = r²`,
/// `|r| ≤ π/4`, error 2^-58.
const SIN_S: [f64; 6] = [
    1.58969099521155e-10,
    -2.5050760253406863e-08,
    2.7557313707070068e-06,
    -0.0001984126982985795,
    0.00833333333332249,
    -0.16666666666666632,
];
/// fdlibm `k_cos.c` C6..C1: `cos r ≈ 1 − z/2 + z²·(C1 + z·(C2 + … + z·C6))`, error 2^-58.
const COS_C: [f64; 6] = [
    -1.1359647557788195e-11,
    2.087572321298175e-09,
    -2.7557314351390663e-07,
    2.480158728947673e-05,
    -0.001388888888887411,
    0.0416666666666666,
];

/// Table size of the exp reduction: `x = (k·N + j)·ln 2/N + r`, `N = 128`.
const EXP_TABLE_BITS: u8 = 7;
/// `N/ln 2`, and `ln 2/N` in two parts: the high part is fdlibm's 32-bit `ln2_hi` over `N`
/// (so `k·EXP_LN2_HI_N` is exact for `|k| < 2^21`), the low part the rest (mpmath).
const EXP_INV_LN2_N: f64 = 184.6649652337873;
const EXP_LN2_HI_N: f64 = 0.00541521234663378;
const EXP_LN2_LO_N: f64 = 1.4907929134926466e-12;
/// `e^r − 1 ≈ r + C2·r² + C3·r³ + C4·r⁴ + C5·r⁵` on `|r| ≤ ln 2/256·(1 + 2^-12)`: ARM
/// optimized-routines' coefficients (`exp_data.c`, `EXP_POLY_ORDER = 5`); absolute error
/// 2^-65.3 (re-checked with mpmath).
const EXP_C2: f64 = 0.49999999999996786;
const EXP_C3: f64 = 0.16666666666665886;
const EXP_C4: f64 = 0.0416666808410674;
const EXP_C5: f64 = 0.008333335853059549;

/// A table the emitted code reads: its address is a constant of the code, so it must live as
/// long as the process (a `static`). Aligned so that no 16-byte entry straddles a cache line.
#[repr(C, align(64))]
struct Table<const N: usize>([[u64; 2]; N]);

impl<const N: usize> Table<N> {
    fn address(&'static self) -> i64 {
        self.0.as_ptr() as i64
    }

    fn bytes(&'static self) -> usize {
        std::mem::size_of::<Self>()
    }
}

/// The tables the emitted code reads and the functions it calls by address, as
/// `(name, address, size in bytes)` (size 1 for a function): their addresses change from
/// process to process, so printed CLIF names them instead.
pub fn tables() -> [(&'static str, i64, usize); 4] {
    [
        ("exp_table", EXP_TABLE.address(), EXP_TABLE.bytes()),
        ("log_table", LOG_TABLE.address(), LOG_TABLE.bytes()),
        ("libm_sin", libm_address(LIBM_SIN_COS[0]), 1),
        ("libm_cos", libm_address(LIBM_SIN_COS[1]), 1),
    ]
}

/// `EXP_TABLE[j] = [tail, bits(s)]` for `j = 0..128`: `s = RN(2^(j/128))` and
/// `tail = (2^(j/128) − s)/s` rounded, so `s·(1 + tail) = 2^(j/128)` to about 2^-106
/// (computed with mpmath).
static EXP_TABLE: Table<128> = Table([
    [0x0000000000000000, 0x3ff0000000000000],
    [0x3c9b3b4f1a88bf6e, 0x3ff0163da9fb3335],
    [0xbc7160139cd8dc5d, 0x3ff02c9a3e778061],
    [0xbc905e7a108766d1, 0x3ff04315e86e7f85],
    [0x3c8cd2523567f613, 0x3ff059b0d3158574],
    [0xbc8bce8023f98efa, 0x3ff0706b29ddf6de],
    [0x3c60f74e61e6c861, 0x3ff0874518759bc8],
    [0x3c90a3e45b33d399, 0x3ff09e3ecac6f383],
    [0x3c979aa65d837b6d, 0x3ff0b5586cf9890f],
    [0x3c8eb51a92fdeffc, 0x3ff0cc922b7247f7],
    [0x3c3ebe3d702f9cd1, 0x3ff0e3ec32d3d1a2],
    [0xbc6a033489906e0b, 0x3ff0fb66affed31b],
    [0xbc9556522a2fbd0e, 0x3ff11301d0125b51],
    [0xbc5080ef8c4eea55, 0x3ff12abdc06c31cc],
    [0xbc91c923b9d5f416, 0x3ff1429aaea92de0],
    [0x3c80d3e3e95c55af, 0x3ff15a98c8a58e51],
    [0xbc801b15eaa59348, 0x3ff172b83c7d517b],
    [0xbc8f1ff055de323d, 0x3ff18af9388c8dea],
    [0x3c8b898c3f1353bf, 0x3ff1a35beb6fcb75],
    [0xbc96d99c7611eb26, 0x3ff1bbe084045cd4],
    [0x3c9aecf73e3a2f60, 0x3ff1d4873168b9aa],
    [0xbc8fe782cb86389d, 0x3ff1ed5022fcd91d],
    [0x3c8a6f4144a6c38d, 0x3ff2063b88628cd6],
    [0x3c807a05b0e4047d, 0x3ff21f49917ddc96],
    [0x3c968efde3a8a894, 0x3ff2387a6e756238],
    [0x3c875e18f274487d, 0x3ff251ce4fb2a63f],
    [0x3c80472b981fe7f2, 0x3ff26b4565e27cdd],
    [0xbc96b87b3f71085e, 0x3ff284dfe1f56381],
    [0x3c82f7e16d09ab31, 0x3ff29e9df51fdee1],
    [0xbc3d219b1a6fbffa, 0x3ff2b87fd0dad990],
    [0x3c8b3782720c0ab4, 0x3ff2d285a6e4030b],
    [0x3c6e149289cecb8f, 0x3ff2ecafa93e2f56],
    [0x3c834d754db0abb6, 0x3ff306fe0a31b715],
    [0x3c864201e2ac744c, 0x3ff32170fc4cd831],
    [0x3c8fdd395dd3f84a, 0x3ff33c08b26416ff],
    [0xbc86a3803b8e5b04, 0x3ff356c55f929ff1],
    [0xbc924aedcc4b5068, 0x3ff371a7373aa9cb],
    [0xbc9907f81b512d8e, 0x3ff38cae6d05d866],
    [0xbc71d1e83e9436d2, 0x3ff3a7db34e59ff7],
    [0xbc991919b3ce1b15, 0x3ff3c32dc313a8e5],
    [0x3c859f48a72a4c6d, 0x3ff3dea64c123422],
    [0xbc9312607a28698a, 0x3ff3fa4504ac801c],
    [0xbc58a78f4817895b, 0x3ff4160a21f72e2a],
    [0xbc7c2c9b67499a1b, 0x3ff431f5d950a897],
    [0x3c4363ed60c2ac11, 0x3ff44e086061892d],
    [0x3c9666093b0664ef, 0x3ff46a41ed1d0057],
    [0x3c6ecce1daa10379, 0x3ff486a2b5c13cd0],
    [0x3c93ff8e3f0f1230, 0x3ff4a32af0d7d3de],
    [0x3c7690cebb7aafb0, 0x3ff4bfdad5362a27],
    [0x3c931dbdeb54e077, 0x3ff4dcb299fddd0d],
    [0xbc8f94340071a38e, 0x3ff4f9b2769d2ca7],
    [0xbc87deccdc93a349, 0x3ff516daa2cf6642],
    [0xbc78dec6bd0f385f, 0x3ff5342b569d4f82],
    [0xbc861246ec7b5cf6, 0x3ff551a4ca5d920f],
    [0x3c93350518fdd78e, 0x3ff56f4736b527da],
    [0x3c7b98b72f8a9b05, 0x3ff58d12d497c7fd],
    [0x3c9063e1e21c5409, 0x3ff5ab07dd485429],
    [0x3c34c7855019c6ea, 0x3ff5c9268a5946b7],
    [0x3c9432e62b64c035, 0x3ff5e76f15ad2148],
    [0xbc8ce44a6199769f, 0x3ff605e1b976dc09],
    [0xbc8c33c53bef4da8, 0x3ff6247eb03a5585],
    [0xbc845378892be9ae, 0x3ff6434634ccc320],
    [0xbc93cedd78565858, 0x3ff6623882552225],
    [0x3c5710aa807e1964, 0x3ff68155d44ca973],
    [0xbc93b3efbf5e2228, 0x3ff6a09e667f3bcd],
    [0xbc6a12ad8734b982, 0x3ff6c012750bdabf],
    [0xbc6367efb86da9ee, 0x3ff6dfb23c651a2f],
    [0xbc80dc3d54e08851, 0x3ff6ff7df9519484],
    [0xbc781f647e5a3ecf, 0x3ff71f75e8ec5f74],
    [0xbc86ee4ac08b7db0, 0x3ff73f9a48a58174],
    [0xbc8619321e55e68a, 0x3ff75feb564267c9],
    [0x3c909ccb5e09d4d3, 0x3ff780694fde5d3f],
    [0xbc7b32dcb94da51d, 0x3ff7a11473eb0187],
    [0x3c94ecfd5467c06b, 0x3ff7c1ed0130c132],
    [0x3c65ebe1abd66c55, 0x3ff7e2f336cf4e62],
    [0xbc88a1c52fb3cf42, 0x3ff80427543e1a12],
    [0xbc9369b6f13b3734, 0x3ff82589994cce13],
    [0xbc805e843a19ff1e, 0x3ff8471a4623c7ad],
    [0xbc94d450d872576e, 0x3ff868d99b4492ed],
    [0x3c90ad675b0e8a00, 0x3ff88ac7d98a6699],
    [0x3c8db72fc1f0eab4, 0x3ff8ace5422aa0db],
    [0xbc65b6609cc5e7ff, 0x3ff8cf3216b5448c],
    [0x3c7bf68359f35f44, 0x3ff8f1ae99157736],
    [0xbc93091fa71e3d83, 0x3ff9145b0b91ffc6],
    [0xbc5da9b88b6c1e29, 0x3ff93737b0cdc5e5],
    [0xbc6c23f97c90b959, 0x3ff95a44cbc8520f],
    [0xbc92434322f4f9aa, 0x3ff97d829fde4e50],
    [0xbc85ca6cd7668e4b, 0x3ff9a0f170ca07ba],
    [0x3c71affc2b91ce27, 0x3ff9c49182a3f090],
    [0x3c6dd235e10a73bb, 0x3ff9e86319e32323],
    [0xbc87c50422622263, 0x3ffa0c667b5de565],
    [0x3c8b1c86e3e231d5, 0x3ffa309bec4a2d33],
    [0xbc91bbd1d3bcbb15, 0x3ffa5503b23e255d],
    [0x3c90cc319cee31d2, 0x3ffa799e1330b358],
    [0x3c8469846e735ab3, 0x3ffa9e6b5579fdbf],
    [0xbc82dfcd978e9db4, 0x3ffac36bbfd3f37a],
    [0x3c8c1a7792cb3387, 0x3ffae89f995ad3ad],
    [0xbc907b8f4ad1d9fa, 0x3ffb0e07298db666],
    [0xbc55c3d956dcaeba, 0x3ffb33a2b84f15fb],
    [0xbc90a40e3da6f640, 0x3ffb59728de5593a],
    [0xbc68d6f438ad9334, 0x3ffb7f76f2fb5e47],
    [0xbc91eee26b588a35, 0x3ffba5b030a1064a],
    [0x3c74ffd70a5fddcd, 0x3ffbcc1e904bc1d2],
    [0xbc91bdfbfa9298ac, 0x3ffbf2c25bd71e09],
    [0x3c736eae30af0cb3, 0x3ffc199bdd85529c],
    [0x3c8ee3325c9ffd94, 0x3ffc40ab5fffd07a],
    [0x3c84e08fd10959ac, 0x3ffc67f12e57d14b],
    [0x3c63cdaf384e1a67, 0x3ffc8f6d9406e7b5],
    [0x3c676b2c6c921968, 0x3ffcb720dcef9069],
    [0xbc808a1883ccb5d2, 0x3ffcdf0b555dc3fa],
    [0xbc8fad5d3ffffa6f, 0x3ffd072d4a07897c],
    [0xbc900dae3875a949, 0x3ffd2f87080d89f2],
    [0x3c74a385a63d07a7, 0x3ffd5818dcfba487],
    [0xbc82919e2040220f, 0x3ffd80e316c98398],
    [0x3c8e5a50d5c192ac, 0x3ffda9e603db3285],
    [0x3c843a59ac016b4b, 0x3ffdd321f301b460],
    [0xbc82d52107b43e1f, 0x3ffdfc97337b9b5f],
    [0xbc892ab93b470dc9, 0x3ffe264614f5a129],
    [0x3c74b604603a88d3, 0x3ffe502ee78b3ff6],
    [0x3c83c5ec519d7271, 0x3ffe7a51fbc74c83],
    [0xbc8ff7128fd391f0, 0x3ffea4afa2a490da],
    [0xbc8dae98e223747d, 0x3ffecf482d8e67f1],
    [0x3c8ec3bc41aa2008, 0x3ffefa1bee615a27],
    [0x3c842b94c3a9eb32, 0x3fff252b376bba97],
    [0x3c8a64a931d185ee, 0x3fff50765b6e4540],
    [0xbc8e37bae43be3ed, 0x3fff7bfdad9cbe14],
    [0x3c77893b4d91cd9d, 0x3fffa7c1819e90d8],
    [0x3c5305c14160cc89, 0x3fffd3c22b8f71f1],
]);

/// `LOG_TABLE[i] = [invc, logc]` for `i = 0..=128`: `invc` is a 26-bit double within 2^-11
/// (relative) of `1/c`, `c = 1 + i/128`, chosen (by a search with mpmath) so that
/// `logc = −ln(invc)` is a double within 2^-67 of the true value; row 0 is `[1, 0]`. For
/// `z` within `2^-8` of `c`, `r = z·invc − 1` has `|r| ≤ 2^-8` and
/// `ln z = logc + ln(1 + r)`. The rows past 128 are padding (NaN) so that any index below
/// 256 reads inside the table.
static LOG_TABLE: Table<256> = {
    let mut rows = [[f64::NAN.to_bits(); 2]; 256];
    let first: [[u64; 2]; 129] = [
        [0x3ff0000000000000, 0x0000000000000000],
        [0x3fefc08018000000, 0x3f7fdf9e5312ccdb],
        [0x3fef81f330000000, 0x3f8fc1e981152471],
        [0x3fef4463e0000000, 0x3f97b9541fd74891],
        [0x3fef07be00000000, 0x3f9f831d0e807381],
        [0x3feecc06f8000000, 0x3fa39e93defee23f],
        [0x3fee912be0000000, 0x3fa774ba0e3c11ca],
        [0x3fee573e48000000, 0x3fab42a2721cd7e1],
        [0x3fee1e28b8000000, 0x3faf097c88311a52],
        [0x3fede5bd70000000, 0x3fb16610e0004050],
        [0x3fedae0a78000000, 0x3fb344bd4f4e5295],
        [0x3fed775d28000000, 0x3fb51e0df81a5577],
        [0x3fed41caa8000000, 0x3fb6f1254cf2cbbc],
        [0x3fed0ca870000000, 0x3fb8c3b97b4bb9fd],
        [0x3fecd86408000000, 0x3fba91f57366daa9],
        [0x3feca4b338000000, 0x3fbc5e52cadbc8d3],
        [0x3fec71d078000000, 0x3fbe26b33638cd49],
        [0x3fec3f75f0000000, 0x3fbfed746340baee],
        [0x3fec0de2c8000000, 0x3fc0d823ccbb4e49],
        [0x3febdd0cc8000000, 0x3fc1b7b81ebd619f],
        [0x3febad03a0000000, 0x3fc2952234293f37],
        [0x3feb7d6ac8000000, 0x3fc37202ecdebdb1],
        [0x3feb4e47e8000000, 0x3fc44e3a5e6a3ee3],
        [0x3feb205128000000, 0x3fc52666ef20a9e5],
        [0x3feaf27078000000, 0x3fc5ff9a36d347f1],
        [0x3feac570f8000000, 0x3fc6d60bc559e32f],
        [0x3fea98eee0000000, 0x3fc7ab8b6c10dedd],
        [0x3fea6d0f08000000, 0x3fc87f5f96713112],
        [0x3fea4197c8000000, 0x3fc95296ae026eb2],
        [0x3fea16cac0000000, 0x3fca23e961eab5aa],
        [0x3fe9ec8c28000000, 0x3fcaf3d549014f6f],
        [0x3fe9c26238000000, 0x3fcbc4ae7293bf40],
        [0x3fe999b510000000, 0x3fcc8f6e77e440a6],
        [0x3fe970de58000000, 0x3fcd5c42c09412a9],
        [0x3fe9489f58000000, 0x3fce2760c0ca1d6c],
        [0x3fe920c968000000, 0x3fcef1abe3188aad],
        [0x3fe8f9b1f8000000, 0x3fcfb96856772fd7],
        [0x3fe8d30cb0000000, 0x3fd04008defb40c5],
        [0x3fe8acd5e8000000, 0x3fd0a2da10df4c9f],
        [0x3fe886d280000000, 0x3fd105beb3c2653e],
        [0x3fe860eb58000000, 0x3fd168f2e9b4ed0f],
        [0x3fe83d1c50000000, 0x3fd1c73a01eac133],
        [0x3fe817deb8000000, 0x3fd229da63c4f011],
        [0x3fe7f3e8d0000000, 0x3fd289a8084e0079],
        [0x3fe7d006a0000000, 0x3fd2e9d0ee9c6380],
        [0x3fe7ad2548000000, 0x3fd347d4d3f9175d],
        [0x3fe78a5e58000000, 0x3fd3a61bd63ba5cf],
        [0x3fe7677710000000, 0x3fd40546f9245eb9],
        [0x3fe745c428000000, 0x3fd461b05426d18d],
        [0x3fe7243030000000, 0x3fd4be4a50bb0154],
        [0x3fe7031318000000, 0x3fd51a206d09843d],
        [0x3fe6e1e878000000, 0x3fd576a0e7b30343],
        [0x3fe6c14688000000, 0x3fd5d227612f35ec],
        [0x3fe6a0e8c8000000, 0x3fd62d709ed315a8],
        [0x3fe6819d50000000, 0x3fd68630c3ce0db8],
        [0x3fe6610a78000000, 0x3fd6e314c7c8e9f7],
        [0x3fe6431db0000000, 0x3fd738e29e92161c],
        [0x3fe623f0a0000000, 0x3fd792c1d16399b1],
        [0x3fe6055210000000, 0x3fd7eb81bd966850],
        [0x3fe5e76dd8000000, 0x3fd8429ce7147263],
        [0x3fe5c9ad90000000, 0x3fd899c5b01f8384],
        [0x3fe5ac71e0000000, 0x3fd8efde40d7c800],
        [0x3fe58efa10000000, 0x3fd9471dbd0e8ecf],
        [0x3fe572e478000000, 0x3fd99ab3bb94860d],
        [0x3fe55510f0000000, 0x3fd9f3f11e0886dd],
        [0x3fe539ac50000000, 0x3fda4654f705dd27],
        [0x3fe51cc9d8000000, 0x3fda9da8c4eea3a1],
        [0x3fe50193a8000000, 0x3fdaf05b4fb2a324],
        [0x3fe4e5e2b8000000, 0x3fdb44f1284cdf6d],
        [0x3fe4ca25c8000000, 0x3fdb9a1c512d385b],
        [0x3fe4af40d8000000, 0x3fdbed1d07f4cf0d],
        [0x3fe494a5e0000000, 0x3fdc3fa3e9c4980f],
        [0x3fe47ad368000000, 0x3fdc902322a9498d],
        [0x3fe460e2b0000000, 0x3fdce1671aee62a7],
        [0x3fe446e030000000, 0x3fdd334ae6ae8867],
        [0x3fe42d75a0000000, 0x3fdd83b60e1d0337],
        [0x3fe4141c08000000, 0x3fddd450ab46c9d4],
        [0x3fe3fb0a48000000, 0x3fde246b2be2f647],
        [0x3fe3e1fa50000000, 0x3fde74e4b12457c8],
        [0x3fe3c997e0000000, 0x3fdec39299c6f507],
        [0x3fe3b0e8e0000000, 0x3fdf139a89dca5e9],
        [0x3fe3992d00000000, 0x3fdf60ed0687c050],
        [0x3fe381eff0000000, 0x3fdfacfd4f1426da],
        [0x3fe369bd78000000, 0x3fdffc916177acd1],
        [0x3fe351f6a0000000, 0x3fe025922ce4e037],
        [0x3fe33cc200000000, 0x3fe048c4f035c780],
        [0x3fe32448a0000000, 0x3fe07194f25d5582],
        [0x3fe30d8dd8000000, 0x3fe097ab10e0f8c0],
        [0x3fe2f697d8000000, 0x3fe0be52a7b56731],
        [0x3fe2e0f128000000, 0x3fe0e2f0b74395b0],
        [0x3fe2c8c9b8000000, 0x3fe10bfc21564756],
        [0x3fe2b4d930000000, 0x3fe12e06058555b4],
        [0x3fe29f2b28000000, 0x3fe15331b013c581],
        [0x3fe28809e8000000, 0x3fe17b09a64ecd78],
        [0x3fe2741060000000, 0x3fe19d9a54a602d1],
        [0x3fe25df890000000, 0x3fe1c40114e467d6],
        [0x3fe2490e80000000, 0x3fe1e885fe879073],
        [0x3fe23426c8000000, 0x3fe20d30a67079f1],
        [0x3fe21f60f8000000, 0x3fe231c9a34b8662],
        [0x3fe20ae338000000, 0x3fe2560cdb32bdf9],
        [0x3fe1f6b998000000, 0x3fe279e37cdfce3f],
        [0x3fe1e32f00000000, 0x3fe29cc5e98e0d0f],
        [0x3fe1ceebd8000000, 0x3fe2c11a2548e2b1],
        [0x3fe1bb75d8000000, 0x3fe2e4258b74b662],
        [0x3fe1a7c840000000, 0x3fe307bc3f5a6a9a],
        [0x3fe193ae08000000, 0x3fe32c40740bdb04],
        [0x3fe1808858000000, 0x3fe34f2f60f3a7f5],
        [0x3fe16eece8000000, 0x3fe36f70ce41f1a5],
        [0x3fe15b1940000000, 0x3fe393ea45578ef5],
        [0x3fe1486940000000, 0x3fe3b67169858d7c],
        [0x3fe135ab28000000, 0x3fe3d9382c3e7e28],
        [0x3fe12418d8000000, 0x3fe3f9f529581c65],
        [0x3fe1109fa8000000, 0x3fe41e64900905b2],
        [0x3fe0fec730000000, 0x3fe43fecdaf65ed6],
        [0x3fe0eb09b0000000, 0x3fe4652da6214274],
        [0x3fe0db36e8000000, 0x3fe4832995966853],
        [0x3fe0c96480000000, 0x3fe4a510c9b99076],
        [0x3fe0b6b600000000, 0x3fe4c8c168985c98],
        [0x3fe0a68f28000000, 0x3fe4e7bcf0e2db78],
        [0x3fe094fe90000000, 0x3fe509909314ad05],
        [0x3fe083dcf8000000, 0x3fe52ab106eb8296],
        [0x3fe0731768000000, 0x3fe54b40df563e39],
        [0x3fe0628010000000, 0x3fe56b97b70a6229],
        [0x3fe0503938000000, 0x3fe58f5d9edebd91],
        [0x3fe03efb08000000, 0x3fe5b14254b410dc],
        [0x3fe030f740000000, 0x3fe5cce92a61773a],
        [0x3fe0209aa0000000, 0x3fe5ed4fd597c590],
        [0x3fe01066b8000000, 0x3fe60d8653892db1],
        [0x3fe0000450000000, 0x3fe62e3a5efb637f],
    ];
    let mut i = 0;
    while i < first.len() {
        rows[i] = first[i];
        i += 1;
    }
    Table(rows)
};
/// `ln(1 + r) ≈ r + r²·(A0 + A1·r + … + A5·r⁵)` on `|r| ≤ 2^-8·1.002`: Chebyshev
/// interpolation of `(ln(1 + r) − r)/r²` (mpmath), relative error 2^-63.
const LOG1P_A: [f64; 6] = [
    -0.5,
    0.33333333333333337,
    -0.24999999998349745,
    0.19999999998533105,
    -0.16666953918475771,
    0.14285969620735725,
];
/// Bits of `u ∈ [1, 2]` plus this, shifted right by 45, give the row of `LOG_TABLE` whose
/// `c` is nearest to `u` (rows are `2^45` bit patterns wide, centred on `c`).
const LOG_INDEX_BIAS: i64 = (1 << 44) - ONE_BITS;
/// Clearing these bits of a double in `[1, 2]` leaves its top 26 bits (exact products with a
/// 26-bit `invc`).
const LOW_27_BITS: i64 = (1 << 27) - 1;

/// `tanh` works on `min(|x|, 20)`: `tanh(20) = 1 − 8.5e-18` already rounds to `1`, and the
/// clamp keeps `E/(E+2)` away from `inf/inf`.
const TANH_SATURATION: f64 = 20.0;

// ---------------------------------------------------------------------------------------

/// A per-lane condition from `fcmp`: an `i64x2` of all-ones/all-zeros lanes for vectors, an
/// `i8` truth value for scalars.
#[derive(Clone, Copy)]
struct Mask(Value);

/// The rounding error `δ` of `u = fl(1 + x)`, for the log kernel to add `δ/u`.
#[derive(Clone, Copy)]
struct Correction {
    delta: Value,
    /// Whether `u` may reach `2^1023·√2` (then the correction is dropped).
    u_may_be_huge: bool,
}

/// `e^x = 2^k·s·(1 + tmp)` in pieces: `t_bits` holds `128·k + j` in its low bits (above
/// the bits of the magic constant `1.5·2^52`), `s_bits` are the bits of `s = RN(2^(j/128))`
/// (exponent field 1023).
struct ExpParts {
    t_bits: Value,
    s_bits: Value,
    /// `2^(j/128) = s·(1 + tail)`.
    tail: Value,
    /// `-(128·k + j)` as a float.
    neg_kd: Value,
    /// `r_hi = x − (128·k + j)·ln2_hi/128` (exact) and `r = r_hi − (128·k + j)·ln2_lo/128`.
    r_hi: Value,
    r: Value,
    r2: Value,
    /// `e^r − 1 − r ≈ r²·p25`.
    p25: Value,
}

/// Emits the operations of one function call for one value type.
struct Emitter<'a, 'f> {
    builder: &'a mut FunctionBuilder<'f>,
    /// `F64` or `F64X2`.
    float_ty: Type,
    /// `I64` or `I64X2`, the same width as `float_ty`.
    int_ty: Type,
    use_fma: bool,
}

/// A two-lane constant with `bits` in each lane, as one constant-pool entry (a `splat` of
/// a scalar constant costs three instructions where the IR is not optimised).
pub(crate) fn vector_const(builder: &mut FunctionBuilder, ty: Type, bits: u64) -> Value {
    let mut bytes = bits.to_le_bytes().to_vec();
    bytes.extend_from_slice(&bits.to_le_bytes());
    let handle = builder.func.dfg.constants.insert(bytes.into());
    builder.ins().vconst(ty, handle)
}

impl Emitter<'_, '_> {
    fn is_vector(&self) -> bool {
        self.float_ty.is_vector()
    }

    // --- Constants and plain arithmetic. ----------------------------------------------

    fn float(&mut self, c: f64) -> Value {
        if self.is_vector() {
            vector_const(self.builder, self.float_ty, c.to_bits())
        } else {
            self.builder.ins().f64const(c)
        }
    }

    fn int(&mut self, c: i64) -> Value {
        if self.is_vector() {
            vector_const(self.builder, self.int_ty, c as u64)
        } else {
            self.builder.ins().iconst(types::I64, c)
        }
    }

    fn add(&mut self, a: Value, b: Value) -> Value {
        self.builder.ins().fadd(a, b)
    }

    fn sub(&mut self, a: Value, b: Value) -> Value {
        self.builder.ins().fsub(a, b)
    }

    fn mul(&mut self, a: Value, b: Value) -> Value {
        self.builder.ins().fmul(a, b)
    }

    fn div(&mut self, a: Value, b: Value) -> Value {
        self.builder.ins().fdiv(a, b)
    }

    fn add_const(&mut self, a: Value, c: f64) -> Value {
        let c = self.float(c);
        self.add(a, c)
    }

    fn mul_const(&mut self, a: Value, c: f64) -> Value {
        let c = self.float(c);
        self.mul(a, c)
    }

    /// `a·b + c`, fused when the options allow.
    fn mul_add(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.use_fma {
            self.builder.ins().fma(a, b, c)
        } else {
            let product = self.mul(a, b);
            self.add(product, c)
        }
    }

    /// `Σ coeffs[i]·x^(n−1−i)` (coefficients from the highest degree down) by Estrin's
    /// scheme: pairs `c₂ᵢ + c₂ᵢ₊₁·x`, then pairs of those with `x²`, then `x⁴`, … The
    /// dependency chain is `⌈log₂ n⌉` multiply-adds deep instead of `n − 1` (Horner), which
    /// is what limits a loop of these functions; the callers keep the leading low-order
    /// terms in Horner form so that the rounding of the large terms stays last.
    fn estrin(&mut self, x: Value, coeffs: &[f64]) -> Value {
        assert!(!coeffs.is_empty(), "compiler bug: empty polynomial");
        let low_to_high: Vec<f64> = coeffs.iter().rev().copied().collect();
        let mut terms: Vec<Value> = low_to_high
            .chunks(2)
            .map(|pair| match *pair {
                [c0, c1] => {
                    let c0 = self.float(c0);
                    let c1 = self.float(c1);
                    self.mul_add(c1, x, c0)
                }
                [c0] => self.float(c0),
                _ => unreachable!("chunks(2) yields one or two items"),
            })
            .collect();
        let mut power = x;
        while terms.len() > 1 {
            power = self.mul(power, power);
            terms = terms
                .chunks(2)
                .map(|pair| match *pair {
                    [low, high] => self.mul_add(high, power, low),
                    [low] => low,
                    _ => unreachable!("chunks(2) yields one or two items"),
                })
                .collect();
        }
        terms[0]
    }

    // --- Bits. ----------------------------------------------------------------------------

    fn bits_of(&mut self, x: Value) -> Value {
        self.builder
            .ins()
            .bitcast(self.int_ty, MemFlagsData::new(), x)
    }

    fn float_from_bits(&mut self, bits: Value) -> Value {
        self.builder
            .ins()
            .bitcast(self.float_ty, MemFlagsData::new(), bits)
    }

    fn iadd(&mut self, a: Value, b: Value) -> Value {
        self.builder.ins().iadd(a, b)
    }

    fn iadd_const(&mut self, a: Value, c: i64) -> Value {
        let c = self.int(c);
        self.iadd(a, c)
    }

    fn band_const(&mut self, a: Value, c: i64) -> Value {
        let c = self.int(c);
        self.builder.ins().band(a, c)
    }

    fn shl(&mut self, a: Value, amount: u8) -> Value {
        self.builder.ins().ishl_imm_u(a, i64::from(amount))
    }

    fn ushr(&mut self, a: Value, amount: u8) -> Value {
        self.builder.ins().ushr_imm_u(a, i64::from(amount))
    }

    // --- Tables. ----------------------------------------------------------------------

    /// Per lane, the two 8-byte words of `table` at `byte_offset` (an integer of `int_ty`, a
    /// multiple of 16 below the table's size): `(first as float, second as integer)`.
    ///
    /// x86-64 has no gather without AVX-512, so the vector form extracts both offsets, loads
    /// each 16-byte entry and interleaves the two entries (`punpcklqdq`/`punpckhqdq`).
    fn gather_pair<const N: usize>(
        &mut self,
        table: &'static Table<N>,
        byte_offset: Value,
    ) -> (Value, Value) {
        let flags = MemFlagsData::trusted().with_readonly().with_can_move();
        let base = self.builder.ins().iconst(types::I64, table.address());
        if !self.is_vector() {
            let address = self.iadd(base, byte_offset);
            let first = self.builder.ins().load(types::F64, flags, address, 0);
            let second = self.builder.ins().load(types::I64, flags, address, 8);
            return (first, second);
        }
        let entries: Vec<Value> = (0..2u8)
            .map(|lane| {
                // Lane 0 as a float lane, then its bits: one `movq` where `extractlane`
                // of an `i64x2` is a two-µop `pextrq` (1.5% of fused's forward).
                let offset = if lane == 0 {
                    let little = MemFlagsData::new().with_endianness(Endianness::Little);
                    let as_float = self
                        .builder
                        .ins()
                        .bitcast(types::F64X2, little, byte_offset);
                    let low = self.builder.ins().extractlane(as_float, 0);
                    self.builder
                        .ins()
                        .bitcast(types::I64, MemFlagsData::new(), low)
                } else {
                    self.builder.ins().extractlane(byte_offset, lane)
                };
                let address = self.iadd(base, offset);
                self.builder.ins().load(types::I8X16, flags, address, 0)
            })
            .collect();
        let little = MemFlagsData::new().with_endianness(Endianness::Little);
        let mut interleave = |mask: u128| {
            let mask = self
                .builder
                .func
                .dfg
                .immediates
                .push(ConstantData::from(&mask.to_le_bytes()[..]));
            self.builder.ins().shuffle(entries[0], entries[1], mask)
        };
        // Byte i of the result is byte mask[i] of the 32-byte concatenation of the entries.
        let low = interleave(0x1716_1514_1312_1110_0706_0504_0302_0100);
        let high = interleave(0x1f1e_1d1c_1b1a_1918_0f0e_0d0c_0b0a_0908);
        let first = self.builder.ins().bitcast(types::F64X2, little, low);
        let second = self.builder.ins().bitcast(types::I64X2, little, high);
        (first, second)
    }

    // --- Masks and selects. -----------------------------------------------------------

    fn compare(&mut self, cc: FloatCC, a: Value, b: Value) -> Mask {
        Mask(self.builder.ins().fcmp(cc, a, b))
    }

    fn compare_const(&mut self, cc: FloatCC, a: Value, c: f64) -> Mask {
        let c = self.float(c);
        self.compare(cc, a, c)
    }

    /// Per lane: the bits of `if_set` where the lowest bit of the integer `bits` is set, else
    /// the bits of `if_clear` (all three integers).
    fn select_bits_by_low_bit(&mut self, bits: Value, if_set: Value, if_clear: Value) -> Value {
        let low_bit = self.band_const(bits, 1);
        if self.is_vector() {
            // An `icmp` mask (not a bitcast of one) lets x64 use a single `pblendvb`.
            let one = self.int(1);
            let mask = self.builder.ins().icmp(IntCC::Equal, low_bit, one);
            self.builder.ins().bitselect(mask, if_set, if_clear)
        } else {
            self.builder.ins().select(low_bit, if_set, if_clear)
        }
    }

    /// Per lane: `if mask { if_true } else { if_false }` (floats).
    fn select(&mut self, mask: Mask, if_true: Value, if_false: Value) -> Value {
        if self.is_vector() {
            // `bitselect` wants the mask in the type of the operands; a mask that comes
            // straight from `fcmp` lets x64 use `blendvpd` (or `minpd`/`maxpd`).
            let mask = self
                .builder
                .ins()
                .bitcast(self.float_ty, MemFlagsData::new(), mask.0);
            self.builder.ins().bitselect(mask, if_true, if_false)
        } else {
            self.builder.ins().select(mask.0, if_true, if_false)
        }
    }

    fn select_const(&mut self, mask: Mask, if_true: f64, if_false: Value) -> Value {
        let if_true = self.float(if_true);
        self.select(mask, if_true, if_false)
    }

    /// `|x|` by clearing the sign bit with a constant mask (x64 builds the mask of `fabs`
    /// with two instructions; a constant is one load).
    fn abs(&mut self, x: Value) -> Value {
        let bits = self.bits_of(x);
        let magnitude = self.band_const(bits, !SIGN_BIT);
        self.float_from_bits(magnitude)
    }

    /// `−|x|` by setting the sign bit (one `or` instead of `fabs` and `fneg`). Of `−y` it
    /// is `−|y|`, bit for bit (NaNs included), so `sigmoid(−z)` and `softplus(−z)` share
    /// the `exp(−|z|)` of `sigmoid(z)` and `softplus(z)` once values are numbered.
    fn neg_abs(&mut self, x: Value) -> Value {
        let x = self.unnegated(x);
        let bits = self.bits_of(x);
        let sign = self.int(SIGN_BIT);
        let negative = self.builder.ins().bor(bits, sign);
        self.float_from_bits(negative)
    }

    /// `y` when `x` is `fneg y`, else `x`.
    fn unnegated(&self, x: Value) -> Value {
        let dfg = &self.builder.func.dfg;
        match dfg.value_def(x) {
            ValueDef::Result(inst, 0) if dfg.insts[inst].opcode() == Opcode::Fneg => {
                dfg.inst_args(inst)[0]
            }
            _ => x,
        }
    }

    /// `min(x, c)`, but NaN when `x` is NaN. Written `c < x ? c : x` so that x64 lowers it
    /// to one `minpd c, x` (which returns its second operand on NaN).
    fn min_const_keep_nan(&mut self, x: Value, c: f64) -> Value {
        let c = self.float(c);
        let c_is_less = self.compare(FloatCC::LessThan, c, x);
        self.select(c_is_less, c, x)
    }

    /// `max(x, c)`, but NaN when `x` is NaN: `x < c ? c : x`, one `maxpd c, x` on x64.
    fn max_const_keep_nan(&mut self, x: Value, c: f64) -> Value {
        let c = self.float(c);
        let x_is_less = self.compare(FloatCC::LessThan, x, c);
        self.select(x_is_less, c, x)
    }

    // --- Shared kernels. --------------------------------------------------------------

    /// Rounds `x·factor` (below 2^51 in magnitude) to the nearest integer `k`: returns
    /// `(t, -k)` where `t = x·factor + 1.5·2^52` holds `k` in its low mantissa bits and `-k`
    /// is a float.
    fn round_magic(&mut self, x: Value, factor: f64) -> (Value, Value) {
        self.round_magic_offset(x, factor, 0)
    }

    /// [`Self::round_magic`] with `offset` added to the integer held in `t` (not to `-k`).
    fn round_magic_offset(&mut self, x: Value, factor: f64, offset: i32) -> (Value, Value) {
        let factor = self.float(factor);
        let magic = self.float(ROUND_MAGIC + f64::from(offset));
        let t = self.mul_add(x, factor, magic);
        let neg_k = self.sub(magic, t);
        (t, neg_k)
    }

    /// `2^n` for the integer `n` held in the low bits of `t = n + 1.5·2^52` (`|n| ≤ 1022`):
    /// shifting the bits of `t` left by 52 leaves `n mod 2^12` in the exponent field.
    fn pow2_from_magic(&mut self, t_bits: Value) -> Value {
        let shifted = self.shl(t_bits, 52);
        let bits = self.iadd_const(shifted, ONE_BITS);
        self.float_from_bits(bits)
    }

    /// `ln(u + δ) − extra·ln 2` for `u > 0` finite normal, a correction `δ` with
    /// `|δ| ≤ ulp(u)/2` (`None` for 0) and an integer-valued `extra` exponent (`None` for 0).
    /// Special inputs give unspecified results (but read inside the table): callers patch
    /// them.
    ///
    /// `u = 2^k·z` with `z ∈ [1 − 2^-9, 2 − 2^-8)` (so that `z` near 1 never comes with
    /// `k = −1`), `ln z = logc + ln(1 + r)` from rows 0..128 of [`LOG_TABLE`] as in
    /// [`Self::log_of_one_to_two`], and `k·ln 2` in two parts.
    fn log_kernel(
        &mut self,
        u: Value,
        correction: Option<Correction>,
        extra_exponent: Option<Value>,
    ) -> Value {
        // t = bits(u) + 2^44: its exponent field is k + 1023 and bits 45..51 the row.
        let u_bits = self.bits_of(u);
        let t = self.iadd_const(u_bits, 1 << 44);
        let shifted = self.ushr(t, 41);
        let byte_offset = self.band_const(shifted, 0x7f0);
        let (invc, logc_bits) = self.gather_pair(&LOG_TABLE, byte_offset);
        let logc = self.float_from_bits(logc_bits);
        let exponent_field = self.band_const(t, 0x7ff0_0000_0000_0000);
        // z = u·2^-k: replace the exponent field k + 1023 of u by 1023 (u − (k << 52)).
        let z_bits_minus_one = self.builder.ins().isub(u_bits, exponent_field);
        let z_bits = self.iadd_const(z_bits_minus_one, ONE_BITS);
        let z = self.float_from_bits(z_bits);
        // k = (2^52 + k + 1023) − (2^52 + 1023), exact.
        let biased_k = self.ushr(t, 52);
        let two_52_bits = self.int(TWO_52_BITS);
        let k_as_float_bits = self.builder.ins().bor(biased_k, two_52_bits);
        let k_plus_2_52 = self.float_from_bits(k_as_float_bits);
        let mut k = self.add_const(k_plus_2_52, -(TWO_52 + 1023.0));
        if let Some(extra) = extra_exponent {
            k = self.sub(k, extra);
        }
        let r = self.reduced_log_argument(z, z_bits, invc);
        let nonlinear = self.log1p_nonlinear(r);
        // k·ln2_hi + logc with its rounding error (Fast2Sum: |k·ln2_hi| ≥ ln 2 > logc
        // unless k = 0, when the sum is exact), then + r with its error (Fast2Sum:
        // |k·ln 2 + logc| ≥ 2^-7.01 > |r| unless it is 0).
        let ln2_hi = self.float(LN2_HI);
        let k_ln2_hi = self.mul(k, ln2_hi);
        let t1 = self.add(k_ln2_hi, logc);
        let k_ln2_hi_minus_t1 = self.sub(k_ln2_hi, t1);
        let t1_error = self.add(k_ln2_hi_minus_t1, logc);
        let high = self.add(t1, r);
        let t1_minus_high = self.sub(t1, high);
        let high_error = self.add(t1_minus_high, r);
        let ln2_lo = self.float(LN2_LO);
        let mut small = self.mul_add(k, ln2_lo, nonlinear);
        if let Some(Correction {
            delta,
            u_may_be_huge,
        }) = correction
        {
            // δ/u = δ·2^-k·invc/(1 + r) ≈ δ·2^-k·invc·(1 − r).
            // 2^-k: exponent field 2046 − (k + 1023), i.e. (2046 << 52) − exponent_field.
            let c2046 = self.int(0x7fe0_0000_0000_0000);
            let inv_bits = self.builder.ins().isub(c2046, exponent_field);
            let inv_pow2 = self.float_from_bits(inv_bits);
            let scaled = self.mul(delta, inv_pow2);
            let scaled = self.mul(scaled, invc);
            let neg_r = self.builder.ins().fneg(r);
            let mut c = self.mul_add(scaled, neg_r, scaled);
            if u_may_be_huge {
                // For k ≥ 1023 the field 2046 − (k + 1023) is out of range; there
                // δ/u < 2^-1000 is negligible, so drop it.
                let is_huge = self.compare_const(FloatCC::GreaterThan, k, 1000.0);
                let zero = self.float(0.0);
                c = self.select(is_huge, zero, c);
            }
            small = self.add(small, c);
        }
        let errors = self.add(t1_error, high_error);
        let low = self.add(errors, small);
        self.add(high, low)
    }

    /// `r = z·invc − 1` rounded once, for `z` within `2^-8` of `1/invc` (the `fma`, or without
    /// one exact partial products: `z = z_hi + z_lo` with `z_hi` of 26 bits, both products
    /// with the 26-bit `invc` exact and `z_hi·invc − 1` exact by Sterbenz).
    fn reduced_log_argument(&mut self, z: Value, z_bits: Value, invc: Value) -> Value {
        if self.use_fma {
            let minus_one = self.float(-1.0);
            return self.builder.ins().fma(z, invc, minus_one);
        }
        let high_bits = self.band_const(z_bits, !LOW_27_BITS);
        let z_hi = self.float_from_bits(high_bits);
        let z_lo = self.sub(z, z_hi);
        let high_product = self.mul(z_hi, invc);
        let high = self.add_const(high_product, -1.0);
        let low_product = self.mul(z_lo, invc);
        self.add(high, low_product)
    }

    /// `ln(1 + r) − r = r²·A(r)` for `|r| ≤ 2^-8` (Estrin).
    fn log1p_nonlinear(&mut self, r: Value) -> Value {
        let r2 = self.mul(r, r);
        let mut pairs = Vec::new();
        for pair in LOG1P_A.chunks(2) {
            let low = self.float(pair[0]);
            let high = self.float(pair[1]);
            pairs.push(self.mul_add(high, r, low));
        }
        let a25 = self.mul_add(pairs[2], r2, pairs[1]);
        let a05 = self.mul_add(a25, r2, pairs[0]);
        self.mul(r2, a05)
    }

    /// `u = a + b` and its exact rounding error (Knuth's TwoSum, valid for any order of
    /// magnitude).
    fn two_sum(&mut self, a: Value, b: Value) -> (Value, Value) {
        let u = self.add(a, b);
        let b_virtual = self.sub(u, a);
        let a_virtual = self.sub(u, b_virtual);
        let a_err = self.sub(a, a_virtual);
        let b_err = self.sub(b, b_virtual);
        let err = self.add(a_err, b_err);
        (u, err)
    }

    // --- The functions. ---------------------------------------------------------------

    fn exp(&mut self, x: Value) -> Value {
        let x = self.min_const_keep_nan(x, EXP_MAX_ARG);
        let x = self.max_const_keep_nan(x, EXP_MIN_ARG);
        self.exp_of_clamped(x)
    }

    /// Tang's reduction for `x ∈ [-746, 710]` or NaN: `e^x = 2^k·s·(1 + tmp)` with the
    /// pieces of [`ExpParts`].
    fn exp_parts(&mut self, x: Value) -> ExpParts {
        self.exp_parts_offset(x, 0)
    }

    /// [`Self::exp_parts`] with `t` holding `128·(k + k_offset) + j` rather than `128·k + j`.
    fn exp_parts_offset(&mut self, x: Value, k_offset: i32) -> ExpParts {
        // x = (128·k + j)·ln2/128 + r, |r| ≤ ln2/256 (+ a rounding).
        let (t, neg_kd) = self.round_magic_offset(x, EXP_INV_LN2_N, k_offset << EXP_TABLE_BITS);
        let ln2_hi = self.float(EXP_LN2_HI_N);
        let ln2_lo = self.float(EXP_LN2_LO_N);
        let r_hi = self.mul_add(neg_kd, ln2_hi, x);
        let r = self.mul_add(neg_kd, ln2_lo, r_hi);
        let t_bits = self.bits_of(t);
        // 2^(j/128) = s·(1 + tail) from the table, j = t mod 128 (two's complement).
        let j = self.band_const(t_bits, (1 << EXP_TABLE_BITS) - 1);
        let byte_offset = self.shl(j, 4);
        let (tail, s_bits) = self.gather_pair(&EXP_TABLE, byte_offset);
        // e^r − 1 − r ≈ r²·(C2 + C3·r + r²·(C4 + C5·r)).
        let r2 = self.mul(r, r);
        let c2 = self.float(EXP_C2);
        let c3 = self.float(EXP_C3);
        let c4 = self.float(EXP_C4);
        let c5 = self.float(EXP_C5);
        let p23 = self.mul_add(c3, r, c2);
        let p45 = self.mul_add(c5, r, c4);
        let p25 = self.mul_add(p45, r2, p23);
        ExpParts {
            t_bits,
            s_bits,
            tail,
            neg_kd,
            r_hi,
            r,
            r2,
            p25,
        }
    }

    /// `tmp` with `e^x = 2^k·s·(1 + tmp)`: `tail + r + r²·p25` (the `s·tail·r` term is below
    /// 2^-60 relative).
    fn exp_tmp(&mut self, parts: &ExpParts) -> Value {
        let tail_plus_r = self.add(parts.tail, parts.r);
        self.mul_add(parts.p25, parts.r2, tail_plus_r)
    }

    /// `e^x` for `x ∈ [-746, 710]` or NaN.
    fn exp_of_clamped(&mut self, x: Value) -> Value {
        let parts = self.exp_parts(x);
        let tmp = self.exp_tmp(&parts);
        let ExpParts { t_bits, s_bits, .. } = parts;
        // 2^k = 2^k1·2^k2 with k1 = ⌊k/2⌋, k2 = k − k1 (k = ⌊(t − A)/128⌋, A the bits of
        // the magic constant, a multiple of 256): t >> 8 = A/256 + k1 and
        // (t >> 7) − (t >> 8) = A/256 + k2, and A/256 vanishes when shifted left by 52. Both
        // factors stay normal for k ∈ [-1077, 1025], so overflow gives +inf and tiny results
        // come out as correctly scaled subnormals.
        let k1_bits = self.ushr(t_bits, EXP_TABLE_BITS + 1);
        let k_bits = self.ushr(t_bits, EXP_TABLE_BITS);
        let k2_bits = self.builder.ins().isub(k_bits, k1_bits);
        let k1_field = self.shl(k1_bits, 52);
        let scale1_bits = self.iadd(s_bits, k1_field);
        let scale1 = self.float_from_bits(scale1_bits);
        let scale2 = self.pow2_from_magic(k2_bits);
        let scaled = self.mul_add(scale1, tmp, scale1);
        self.mul(scaled, scale2)
    }

    /// `e^x` for `x ∈ [-746, 0]` or NaN (sigmoid's and softplus's `e^-|x|`): one scale
    /// factor `s·2^(k+64)`, normal for every such `k`, then `·2^-64`, which rounds a
    /// subnormal result once, as [`Self::exp_of_clamped`]'s second factor does (the same
    /// bits, in four fewer instructions).
    fn exp_of_nonpositive(&mut self, x: Value) -> Value {
        let parts = self.exp_parts_offset(x, 64);
        let tmp = self.exp_tmp(&parts);
        // (t >> 7) << 52 = (k + 64) << 52: the magic constant's bits vanish (see above).
        let k_bits = self.ushr(parts.t_bits, EXP_TABLE_BITS);
        let k_field = self.shl(k_bits, 52);
        let scale_bits = self.iadd(parts.s_bits, k_field);
        let scale = self.float_from_bits(scale_bits);
        let scaled = self.mul_add(scale, tmp, scale);
        self.mul_const(scaled, 2f64.powi(-64))
    }

    fn log(&mut self, x: Value) -> Value {
        // Subnormal x: scale by 2^52 and subtract 52 from the exponent afterwards.
        let is_subnormal = self.compare_const(FloatCC::LessThan, x, MIN_NORMAL);
        let x_scaled = self.mul_const(x, TWO_52);
        let u = self.select(is_subnormal, x_scaled, x);
        let zero = self.float(0.0);
        let extra_exponent = self.select_const(is_subnormal, 52.0, zero);
        let log_x = self.log_kernel(u, None, Some(extra_exponent));
        self.patch_log_specials(x, log_x, 0.0)
    }

    /// log(pole) = -inf, log(below pole or NaN) = NaN, log(+inf) = +inf.
    fn patch_log_specials(&mut self, x: Value, result: Value, pole: f64) -> Value {
        let is_inf = self.compare_const(FloatCC::Equal, x, f64::INFINITY);
        let result = self.select_const(is_inf, f64::INFINITY, result);
        let is_pole = self.compare_const(FloatCC::Equal, x, pole);
        let result = self.select_const(is_pole, f64::NEG_INFINITY, result);
        let is_invalid = self.compare_const(FloatCC::UnorderedOrLessThan, x, pole);
        self.select_const(is_invalid, f64::NAN, result)
    }

    fn log1p(&mut self, x: Value) -> Value {
        let one = self.float(1.0);
        let (u, delta) = self.two_sum(one, x);
        let correction = Correction {
            delta,
            u_may_be_huge: true,
        };
        let result = self.log_kernel(u, Some(correction), None);
        // ±0 → ±0 (the kernel returns +0 for both).
        let is_zero = self.compare_const(FloatCC::Equal, x, 0.0);
        let result = self.select(is_zero, x, result);
        self.patch_log_specials(x, result, -1.0)
    }

    fn tanh(&mut self, x: Value) -> Value {
        let abs_x = self.abs(x);
        let a = self.min_const_keep_nan(abs_x, TANH_SATURATION);
        let y = self.add(a, a);
        // expm1(y) = (S − 1) + S·(r_hi + (r_lo + tail + r²·p25)) with S = 2^k·s ∈ [1, 2^58]
        // and the exact r_hi: S − 1 is exact while S ≤ 2 and the large terms are summed
        // first, so small y keep their relative accuracy (S = 1 for |y| ≤ ln2/256).
        let parts = self.exp_parts(y);
        let k_bits = self.ushr(parts.t_bits, EXP_TABLE_BITS);
        let k_field = self.shl(k_bits, 52);
        let scale_bits = self.iadd(parts.s_bits, k_field);
        let scale = self.float_from_bits(scale_bits);
        let scale_minus_1 = self.add_const(scale, -1.0);
        let ln2_lo = self.float(EXP_LN2_LO_N);
        let tail_plus_r_lo = self.mul_add(parts.neg_kd, ln2_lo, parts.tail);
        let small = self.mul_add(parts.p25, parts.r2, tail_plus_r_lo);
        let large = self.mul_add(scale, parts.r_hi, scale_minus_1);
        let expm1_y = self.mul_add(scale, small, large);
        let denominator = self.add_const(expm1_y, 2.0);
        let tanh_a = self.div(expm1_y, denominator);
        // Copy the sign of x (tanh_a ≥ 0 or NaN).
        let x_bits = self.bits_of(x);
        let sign = self.band_const(x_bits, SIGN_BIT);
        let magnitude = self.bits_of(tanh_a);
        let bits = self.builder.ins().bor(magnitude, sign);
        self.float_from_bits(bits)
    }

    fn sigmoid(&mut self, x: Value) -> Value {
        let neg_abs_x = self.neg_abs(x);
        let neg_abs_x = self.max_const_keep_nan(neg_abs_x, EXP_MIN_ARG);
        let e = self.exp_of_nonpositive(neg_abs_x);
        let is_negative = self.compare_const(FloatCC::LessThan, x, 0.0);
        let one = self.float(1.0);
        let numerator = self.select(is_negative, e, one);
        let denominator = self.add(one, e);
        self.div(numerator, denominator)
    }

    fn softplus(&mut self, x: Value) -> Value {
        let neg_abs_x = self.neg_abs(x);
        let neg_abs_x = self.max_const_keep_nan(neg_abs_x, EXP_MIN_ARG);
        let e = self.exp_of_nonpositive(neg_abs_x);
        // u = 1 + e ∈ [1, 2] with its exact error (Fast2Sum: 1 ≥ e).
        let one = self.float(1.0);
        let u = self.add(one, e);
        let one_minus_u = self.sub(one, u);
        let delta = self.add(one_minus_u, e);
        let log1p_e = self.log_of_one_to_two(u, delta);
        let positive_part = self.max_const_keep_nan(x, 0.0);
        self.add(positive_part, log1p_e)
    }

    /// `ln(u + δ)` for `u ∈ [1, 2]` (or NaN) and `|δ| ≤ ulp(u)/2`, from [`LOG_TABLE`]:
    /// `ln u = logc + ln(1 + r)` with `r = u·invc − 1` rounded once (an `fma`, or exact
    /// partial products without one), plus `δ/u ≈ δ·invc·(1 − r)`.
    fn log_of_one_to_two(&mut self, u: Value, delta: Value) -> Value {
        let u_bits = self.bits_of(u);
        let biased = self.iadd_const(u_bits, LOG_INDEX_BIAS);
        // Row·16 = (biased >> 45) << 4, masked below 256 rows so that a NaN `u` (any row)
        // stays inside the table.
        let shifted = self.ushr(biased, 41);
        let byte_offset = self.band_const(shifted, 0xff0);
        let (invc, logc_bits) = self.gather_pair(&LOG_TABLE, byte_offset);
        let logc = self.float_from_bits(logc_bits);
        let r = self.reduced_log_argument(u, u_bits, invc);
        let nonlinear = self.log1p_nonlinear(r);
        // δ/u = δ·invc/(1 + r) ≈ δ·invc·(1 − r) (the error δ·r² is far below an ulp).
        let scaled_delta = self.mul(delta, invc);
        let neg_r = self.builder.ins().fneg(r);
        let correction = self.mul_add(scaled_delta, neg_r, scaled_delta);
        // logc + r with its rounding error (Fast2Sum: |logc| ≥ |r| unless logc = 0).
        let high = self.add(logc, r);
        let logc_minus_high = self.sub(logc, high);
        let high_error = self.add(logc_minus_high, r);
        let small = self.add(nonlinear, correction);
        let low = self.add(high_error, small);
        self.add(high, low)
    }

    fn sin_cos(&mut self, x: Value, cosine: bool) -> Value {
        // The reduction and both kernels, shared with an earlier sine or cosine of `x`
        // whose code dominates this point (the gradient of `sin x` is `cos x`).
        let [sin_r, cos_r, t] = match self.earlier_sin_cos_kernels(x) {
            Some(kernels) => kernels,
            None => self.sin_cos_kernels(x),
        };
        // Quadrant q = k mod 4 (k + 1 for the cosine): sin x = [s, c, −s, −c][q].
        let mut quadrant = self.bits_of(t);
        if cosine {
            quadrant = self.iadd_const(quadrant, 1);
        }
        let cos_bits = self.bits_of(cos_r);
        let sin_bits = self.bits_of(sin_r);
        let chosen_bits = self.select_bits_by_low_bit(quadrant, cos_bits, sin_bits);
        let sign_source = self.band_const(quadrant, 2);
        let sign = self.shl(sign_source, 62);
        let flipped = self.builder.ins().bxor(chosen_bits, sign);
        let mut result = self.float_from_bits(flipped);
        if !cosine {
            // sin(±0) = ±0 (the kernel gives +0 for −0).
            let is_zero = self.compare_const(FloatCC::Equal, x, 0.0);
            result = self.select(is_zero, x, result);
        }
        result
    }

    /// `[sin r, cos r, t]` for `x`: `t = k + 1.5·2^52` with `k = round(2x/π)`, `r = x − k·π/2`.
    /// Lanes with `|x| > SIN_COS_INLINE_MAX` (or `±inf`) get `[sin x, cos x, 1.5·2^52]` from
    /// libm instead (quadrant 0, so the selection of [`Emitter::sin_cos`] gives libm's value):
    /// the inline values are computed for every lane, then a branch taken only when some
    /// lane is that large leads to a cold block calling [`libm_sin`] and [`libm_cos`] per lane
    /// and merging with selects. Leaves the builder in the (sealed) merge block, whose three
    /// parameters are returned.
    fn sin_cos_kernels(&mut self, x: Value) -> [Value; 3] {
        // k = round(2x/π), r = x − k·π/2 in four exact-product steps.
        let (t, neg_k) = self.round_magic(x, TWO_OVER_PI);
        let mut r = x;
        for part in [PIO2_1, PIO2_2, PIO2_3, PIO2_4] {
            let part = self.float(part);
            r = self.mul_add(neg_k, part, r);
        }
        let z = self.mul(r, r);
        // sin r = r + (z·r)·(S1 + z·S(z)).
        let sin_poly = self.estrin(z, &SIN_S);
        let zr = self.mul(z, r);
        let sin_r = self.mul_add(zr, sin_poly, r);
        // cos r = w + (((1 − w) − z/2) + z²·C(z)), w = 1 − z/2 (fdlibm's compensated sum).
        let cos_poly = self.estrin(z, &COS_C);
        let half_z = self.mul_const(z, 0.5);
        let one = self.float(1.0);
        let w = self.sub(one, half_z);
        let one_minus_w = self.sub(one, w);
        let compensation = self.sub(one_minus_w, half_z);
        let z2 = self.mul(z, z);
        let tail = self.mul_add(z2, cos_poly, compensation);
        let cos_r = self.add(w, tail);

        let abs_x = self.builder.ins().fabs(x);
        let huge = self.compare_const(FloatCC::GreaterThan, abs_x, SIN_COS_INLINE_MAX);
        let any_lane = if self.is_vector() {
            self.builder.ins().vany_true(huge.0)
        } else {
            huge.0
        };
        let cold = self.builder.create_block();
        let merge = self.builder.create_block();
        for _ in 0..3 {
            self.builder.append_block_param(merge, self.float_ty);
        }
        self.builder.set_cold_block(cold);
        self.builder.ins().brif(
            any_lane,
            cold,
            &[],
            merge,
            &[sin_r.into(), cos_r.into(), t.into()],
        );
        self.builder.seal_block(cold);

        self.builder.switch_to_block(cold);
        let libm_sin = self.call_per_lane(LIBM_SIN_COS[0], x);
        let libm_cos = self.call_per_lane(LIBM_SIN_COS[1], x);
        let magic = self.float(ROUND_MAGIC);
        let fixed = if self.is_vector() {
            [
                self.select(huge, libm_sin, sin_r),
                self.select(huge, libm_cos, cos_r),
                self.select(huge, magic, t),
            ]
        } else {
            // The branch was taken, so the one lane is huge.
            [libm_sin, libm_cos, magic]
        };
        let args = fixed.map(|value| value.into());
        self.builder.ins().jump(merge, &args);
        self.builder.seal_block(merge);
        self.builder.switch_to_block(merge);
        let params = self.builder.block_params(merge);
        [params[0], params[1], params[2]]
    }

    /// `callee(x)` for each lane of `x`, by indirect calls (see [`libm_call_conv`]).
    fn call_per_lane(&mut self, callee: LibmFn, x: Value) -> Value {
        let mut signature = Signature::new(libm_call_conv());
        signature.params.push(AbiParam::new(types::F64));
        signature.returns.push(AbiParam::new(types::F64));
        let signature = self.builder.import_signature(signature);
        let address = self.builder.ins().iconst(types::I64, libm_address(callee));
        let call = |builder: &mut FunctionBuilder, lane_value: Value| {
            let inst = builder
                .ins()
                .call_indirect(signature, address, &[lane_value]);
            builder.inst_results(inst)[0]
        };
        if !self.is_vector() {
            return call(self.builder, x);
        }
        let low = self.builder.ins().extractlane(x, 0);
        let high = self.builder.ins().extractlane(x, 1);
        let low = call(self.builder, low);
        let high = call(self.builder, high);
        let both = self.builder.ins().splat(self.float_ty, low);
        self.builder.ins().insertlane(both, high, 1)
    }

    /// The parameters `[sin r, cos r, t]` of the merge block of an earlier
    /// [`Emitter::sin_cos_kernels`] of `x`, if the current block is that merge block or
    /// follows it through the merge blocks of later ones (each merge block is dominated by
    /// the block that branches to it, so the values are available here).
    ///
    /// Nests are compiled without Cranelift's e-graph pass, and their value numbering
    /// (`super::numbering`) works within a block: without this, `cos x` after `sin x` (a
    /// sine and its derivative) would compute the reduction and both kernels again in the
    /// merge block (measured: 1.7x the time of the value-and-grad loop of `sum(sin(a*x))`).
    ///
    /// The merge block is recognised by its predecessor: a block ending in
    /// `brif c, cold, merge(sin r, cos r, t)` whose `cold` target calls [`libm_sin`] on `x`
    /// (or on a lane of it). Only this module emits calls of that address.
    fn earlier_sin_cos_kernels(&self, x: Value) -> Option<[Value; 3]> {
        let func = &*self.builder.func;
        let pool = &func.dfg.value_lists;
        let sin_address = libm_address(LIBM_SIN_COS[0]);
        let mut block = self.builder.current_block()?;
        loop {
            // The block branching to `block` as the fall-through of a sine/cosine fallback.
            let (branching, cold) = func.layout.blocks().find_map(|b| {
                let last = func.layout.last_inst(b)?;
                match func.dfg.insts[last] {
                    InstructionData::Brif {
                        opcode: Opcode::Brif,
                        blocks: [then_call, else_call],
                        ..
                    } if else_call.block(pool) == block => Some((b, then_call.block(pool))),
                    _ => None,
                }
            })?;
            if func.dfg.num_block_params(block) != 3 {
                return None;
            }
            let mut calls_of_sin = func.layout.block_insts(cold).filter(|&inst| {
                func.dfg.insts[inst].opcode() == Opcode::CallIndirect
                    && matches!(
                        func.dfg.value_def(func.dfg.inst_args(inst)[0]).inst()
                            .map(|def| func.dfg.insts[def]),
                        Some(InstructionData::UnaryImm { opcode: Opcode::Iconst, imm })
                            if imm.bits() == sin_address
                    )
            });
            let first_call = calls_of_sin.next()?;
            let argument = func.dfg.inst_args(first_call)[1];
            let of_x = argument == x
                || func.dfg.value_def(argument).inst().is_some_and(|def| {
                    func.dfg.insts[def].opcode() == Opcode::Extractlane
                        && func.dfg.inst_args(def)[0] == x
                });
            if of_x {
                let params = func.dfg.block_params(block);
                return Some([params[0], params[1], params[2]]);
            }
            block = branching;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The same exp in Rust, for the runtime's softmax family.

/// `e^x` by the algorithm [`MathFn::Exp`] emits (same constants, same table, same
/// operations), so runtime helpers and generated loops agree; `FMA` chooses fused
/// multiply-adds, as [`MathOptions::use_fma`] does (callers compile the `true` variant
/// inside a function with the `fma` target feature).
#[inline(always)]
pub(crate) fn exp_scalar<const FMA: bool>(x: f64) -> f64 {
    let mul_add = |a: f64, b: f64, c: f64| if FMA { a.mul_add(b, c) } else { a * b + c };
    // Clamped like `min_const_keep_nan`/`max_const_keep_nan` (NaN stays NaN).
    let x = x.clamp(EXP_MIN_ARG, EXP_MAX_ARG);
    let t = mul_add(x, EXP_INV_LN2_N, ROUND_MAGIC);
    let neg_kd = ROUND_MAGIC - t;
    let r_hi = mul_add(neg_kd, EXP_LN2_HI_N, x);
    let r = mul_add(neg_kd, EXP_LN2_LO_N, r_hi);
    let t_bits = t.to_bits();
    let [tail_bits, s_bits] = EXP_TABLE.0[(t_bits & ((1 << EXP_TABLE_BITS) - 1)) as usize];
    let tail = f64::from_bits(tail_bits);
    let r2 = r * r;
    let p23 = mul_add(EXP_C3, r, EXP_C2);
    let p45 = mul_add(EXP_C5, r, EXP_C4);
    let p25 = mul_add(p45, r2, p23);
    let tmp = mul_add(p25, r2, tail + r);
    let k1_bits = t_bits >> (EXP_TABLE_BITS + 1);
    let k2_bits = (t_bits >> EXP_TABLE_BITS).wrapping_sub(k1_bits);
    let scale1 = f64::from_bits(s_bits.wrapping_add(k1_bits << 52));
    let scale2 = f64::from_bits((k2_bits << 52).wrapping_add(ONE_BITS as u64));
    mul_add(scale1, tmp, scale1) * scale2
}

/// `e^x` of four lanes by the algorithm of [`exp_scalar`] (the same bits as
/// `exp_scalar::<true>` in every lane): the block kernel of [`MathFn::Exp`].
///
/// # Safety
/// The host has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn exp_avx2(x: std::arch::x86_64::__m256d) -> std::arch::x86_64::__m256d {
    // SAFETY: the host has AVX2 and FMA (the caller's contract).
    unsafe { block::exp(x) }
}

/// Replaces every element of `row` by its exponential (or, with `keep`, leaves it) and
/// returns the sum of the exponentials.
///
/// # Safety
/// The host has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn exp_sum_avx2(row: &mut [f64], keep: bool) -> f64 {
    use std::arch::x86_64::*;
    let mut acc = _mm256_setzero_pd();
    let mut chunks = row.chunks_exact_mut(4);
    for chunk in &mut chunks {
        // SAFETY: the chunk holds four elements; the host has AVX2 and FMA.
        unsafe {
            let e = exp_avx2(_mm256_loadu_pd(chunk.as_ptr()));
            if !keep {
                _mm256_storeu_pd(chunk.as_mut_ptr(), e);
            }
            acc = _mm256_add_pd(acc, e);
        }
    }
    let mut lanes = [0.0; 4];
    // SAFETY: four lanes.
    unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), acc) };
    let mut sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for v in chunks.into_remainder() {
        let e = exp_scalar::<true>(*v);
        if !keep {
            *v = e;
        }
        sum += e;
    }
    sum
}

/// The sum of `exp(v − shift)` over `row`, four lanes at a time (the same bits per
/// element as [`exp_scalar`]).
///
/// # Safety
/// The host has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn exp_shifted_sum_avx2(row: &[f64], shift: f64) -> f64 {
    use std::arch::x86_64::*;
    let mut acc = _mm256_setzero_pd();
    let shift_v = _mm256_set1_pd(shift);
    let mut chunks = row.chunks_exact(4);
    for chunk in &mut chunks {
        // SAFETY: the chunk holds four elements; the host has AVX2 and FMA.
        unsafe {
            let x = _mm256_sub_pd(_mm256_loadu_pd(chunk.as_ptr()), shift_v);
            acc = _mm256_add_pd(acc, exp_avx2(x));
        }
    }
    let mut lanes = [0.0; 4];
    // SAFETY: four lanes.
    unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), acc) };
    let mut sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for &v in chunks.remainder() {
        sum += exp_scalar::<true>(v - shift);
    }
    sum
}

/// The largest element of `row`, NaN if it holds a NaN (NumPy's `max`), `-inf` if it is
/// empty: eight elements a step in two four-lane maxima, with any NaN noted on the way.
///
/// # Safety
/// The host has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn nan_max_avx2(row: &[f64]) -> f64 {
    use std::arch::x86_64::*;
    let mut chunks = row.chunks_exact(8);
    let (mut m0, mut m1) = (
        _mm256_set1_pd(f64::NEG_INFINITY),
        _mm256_set1_pd(f64::NEG_INFINITY),
    );
    let mut unordered = _mm256_setzero_pd();
    for chunk in &mut chunks {
        // SAFETY: the chunk holds eight elements; the host has AVX2.
        unsafe {
            let a = _mm256_loadu_pd(chunk.as_ptr());
            let b = _mm256_loadu_pd(chunk.as_ptr().add(4));
            m0 = _mm256_max_pd(m0, a);
            m1 = _mm256_max_pd(m1, b);
            // All ones in a lane where a or b is NaN.
            unordered = _mm256_or_pd(unordered, _mm256_cmp_pd::<_CMP_UNORD_Q>(a, b));
        }
    }
    if _mm256_movemask_pd(unordered) != 0 {
        return f64::NAN;
    }
    let mut lanes = [0.0; 4];
    // SAFETY: four lanes.
    unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), _mm256_max_pd(m0, m1)) };
    lanes
        .into_iter()
        .chain(chunks.remainder().iter().copied())
        .fold(f64::NEG_INFINITY, |m, v| {
            if m.is_nan() || v.is_nan() {
                f64::NAN
            } else {
                m.max(v)
            }
        })
}

// ---------------------------------------------------------------------------------------
// Four-lane block kernels: the emitted functions with AVX2 and FMA, for blocks of a loop
// that the generated code hands to the runtime.

/// Whether [`apply_in_place`] runs its four-lane AVX2+FMA kernels on this host: x86-64 with
/// AVX2 and FMA (detected once). Otherwise it falls back to scalar `std` functions.
pub fn has_block_kernels() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2_FMA: OnceLock<bool> = OnceLock::new();
        *AVX2_FMA.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Replaces every element of `xs` by `f` of it, four lanes at a time with AVX2 and FMA.
///
/// Where [`has_block_kernels`] holds, [`MathFn::Exp`], [`MathFn::Log`], [`MathFn::Log1p`],
/// [`MathFn::Tanh`], [`MathFn::Sigmoid`] and [`MathFn::Softplus`] give, for every input
/// (NaN for NaN, though not necessarily the same NaN payload), the same bits as the inline
/// `f64x2` code that [`emit_unary_with`] emits with [`MathOptions::use_fma`]: the kernels
/// are the emitted algorithms operation for operation (same constants and tables, fused
/// multiply-adds exactly where the emitted code has `fma`, the same compares and selects).
/// A tail of fewer than four elements is padded into a four-lane vector, so it gets the same
/// bits too. [`MathFn::Sin`] and [`MathFn::Cos`], and every function on other hosts, use
/// scalar `std` functions instead: `f64::exp`, `ln`, `ln_1p`, `tanh`, `sin`, `cos`, the
/// sigmoid as `1/(1+e^-x)` (or `e^x/(1+e^x)` for `x < 0`) refined in double-double, and
/// `softplus(x) = max(x, 0) + ln_1p(e^-|x|)` (within the error bounds of [`MathFn`]).
pub fn apply_in_place(f: MathFn, xs: &mut [f64]) {
    let n = xs.len();
    let ptr = xs.as_mut_ptr();
    // SAFETY: `ptr` addresses the `n` doubles of `xs`, borrowed mutably for the call.
    unsafe { apply_raw(f, ptr, ptr, n) };
}

/// `dst[i] = f(src[i])` for every element, as [`apply_in_place`] computes it.
///
/// # Panics
/// If `src` and `dst` differ in length.
pub fn apply_to(f: MathFn, src: &[f64], dst: &mut [f64]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "apply_to: slices of different lengths"
    );
    // SAFETY: both address `dst.len()` doubles; a shared and a mutable borrow never overlap.
    unsafe { apply_raw(f, src.as_ptr(), dst.as_mut_ptr(), dst.len()) };
}

/// `dst[i] = f(src[i])` for `i < n`: the kernels where the host has them, else `std`.
///
/// # Safety
/// `src` addresses `n` readable doubles and `dst` `n` writable ones; they are the same
/// pointer or do not overlap.
pub(crate) unsafe fn apply_raw(f: MathFn, src: *const f64, dst: *mut f64, n: usize) {
    #[cfg(target_arch = "x86_64")]
    if has_block_kernels() && !matches!(f, MathFn::Sin | MathFn::Cos) {
        // SAFETY: the host has AVX2 and FMA (checked just above); forwarded contract.
        unsafe { block::apply(f, src, dst, n) };
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { apply_scalar(f, src, dst, n) };
}

/// The fallback of [`apply_raw`]: `std` functions one element at a time.
///
/// # Safety
/// As [`apply_raw`].
unsafe fn apply_scalar(f: MathFn, src: *const f64, dst: *mut f64, n: usize) {
    let g: fn(f64) -> f64 = match f {
        MathFn::Exp => f64::exp,
        MathFn::Log => f64::ln,
        MathFn::Log1p => f64::ln_1p,
        MathFn::Tanh => f64::tanh,
        MathFn::Sigmoid => sigmoid_std,
        MathFn::Softplus => softplus_std,
        MathFn::Sin => f64::sin,
        MathFn::Cos => f64::cos,
    };
    for i in 0..n {
        // SAFETY: `i < n`; each element is read before it is written.
        unsafe { *dst.add(i) = g(*src.add(i)) };
    }
}

/// The members of an exponential family ([`apply_exp_family_raw`]), in the order of its
/// outputs: functions of `x` and of `-x` that all take `exp(-|x|)`.
pub(crate) const EXP_FAMILY: [(MathFn, bool); 4] = [
    (MathFn::Sigmoid, false),
    (MathFn::Sigmoid, true),
    (MathFn::Softplus, false),
    (MathFn::Softplus, true),
];

/// `outs[k][i] = f(±src[i])` for `i < n` and each non-null `outs[k]`, `(f, negated)` being
/// [`EXP_FAMILY`]`[k]`: the sigmoid and softplus of a value and of its negation from one
/// exponential per element. The bits of [`apply_raw`] on `src` (or its negation) for each.
///
/// # Safety
/// `src` addresses `n` readable doubles and every non-null `outs[k]` `n` writable ones;
/// each is `src` or overlaps neither `src` nor another.
pub(crate) unsafe fn apply_exp_family_raw(src: *const f64, n: usize, outs: [*mut f64; 4]) {
    #[cfg(target_arch = "x86_64")]
    if has_block_kernels() {
        // SAFETY: the host has AVX2 and FMA (checked just above); forwarded contract.
        unsafe { block::exp_family(src, n, outs) };
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { exp_family_scalar(src, n, outs) };
}

/// The fallback of [`apply_exp_family_raw`]: `std` functions, as [`apply_scalar`].
///
/// # Safety
/// As [`apply_exp_family_raw`].
unsafe fn exp_family_scalar(src: *const f64, n: usize, outs: [*mut f64; 4]) {
    // Every element is read before any output is written (an output may be `src`).
    for i in 0..n {
        // SAFETY: `i < n`: forwarded contract.
        let x = unsafe { *src.add(i) };
        let values = EXP_FAMILY.map(|(f, negated)| {
            let x = if negated { -x } else { x };
            match f {
                MathFn::Sigmoid => sigmoid_std(x),
                _ => softplus_std(x),
            }
        });
        for (out, value) in outs.iter().zip(values) {
            if !out.is_null() {
                // SAFETY: `i < n`: forwarded contract.
                unsafe { *out.add(i) = value };
            }
        }
    }
}

/// `max(x, 0) + ln_1p(e^-|x|)` with `std` functions.
fn softplus_std(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `1/(1+e^-x)` from `e = exp(-|x|)` (never overflows), the sum `1 + e` and the quotient
/// refined in double-double arithmetic (to about the error of `exp` itself).
fn sigmoid_std(x: f64) -> f64 {
    let e = (-x.abs()).exp();
    let numerator = if x < 0.0 { e } else { 1.0 };
    let sum = 1.0 + e;
    let sum_err = (1.0 - sum) + e;
    let quotient = numerator / sum;
    // numerator − quotient·(sum + sum_err), exactly up to the last term.
    let residual = (-quotient).mul_add(sum, numerator) - quotient * sum_err;
    quotient + residual / sum
}

/// The emitted functions on four lanes (`__m256d`), operation for operation as the
/// [`Emitter`] builds them with `use_fma` (its `mul_add` is `_mm256_fmadd_pd` here), so each
/// lane gets the bits of the `f64x2` code. The IR's lane operations map one to one:
/// `fcmp` to `_mm256_cmp_pd` with the ordered predicate of the same name (`_CMP_NGE_UQ` for
/// `UnorderedOrLessThan`), `bitselect` on such a mask to `_mm256_blendv_pd`, the
/// `min/max_const_keep_nan` patterns (`c < x ? c : x`, `x < c ? c : x`) to
/// `_mm256_min_pd(c, x)`/`_mm256_max_pd(c, x)` (which return their second operand when
/// either is NaN, and on ties), and table reads to four 16-byte loads.
#[cfg(target_arch = "x86_64")]
mod block {
    use std::arch::x86_64::*;
    use std::ptr::null_mut;

    use super::{
        MathFn, Table, EXP_C2, EXP_C3, EXP_C4, EXP_C5, EXP_INV_LN2_N, EXP_LN2_HI_N, EXP_LN2_LO_N,
        EXP_MAX_ARG, EXP_MIN_ARG, EXP_TABLE, EXP_TABLE_BITS, LN2_HI, LN2_LO, LOG1P_A,
        LOG_INDEX_BIAS, LOG_TABLE, MIN_NORMAL, ONE_BITS, ROUND_MAGIC, SIGN_BIT, TANH_SATURATION,
        TWO_52, TWO_52_BITS,
    };

    /// `2^-64`, the second factor of `exp_of_nonpositive`.
    const TWO_TO_MINUS_64: f64 = f64::from_bits(0x3bf0_0000_0000_0000);

    /// [`super::apply_raw`] with the kernels (`f` neither sine nor cosine).
    ///
    /// # Safety
    /// The host has AVX2 and FMA; as [`super::apply_raw`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn apply(f: MathFn, src: *const f64, dst: *mut f64, n: usize) {
        // SAFETY: forwarded contract.
        unsafe {
            match f {
                MathFn::Exp => map_exp(src, dst, n),
                MathFn::Log => map_log(src, dst, n),
                MathFn::Log1p => map_log1p(src, dst, n),
                MathFn::Tanh => map_tanh(src, dst, n),
                MathFn::Sigmoid => exp_family(src, n, [dst, null_mut(), null_mut(), null_mut()]),
                MathFn::Softplus => exp_family(src, n, [null_mut(), null_mut(), dst, null_mut()]),
                MathFn::Sin | MathFn::Cos => unreachable!("no four-lane sine or cosine"),
            }
        }
    }

    /// Defines `$name(src, dst, n)`, applying `$kernel` four lanes at a time, the tail padded
    /// with zeros into one more vector (one function per kernel, so that each kernel is
    /// inlined into its loop).
    macro_rules! map_with {
        ($name:ident, $kernel:ident) => {
            /// # Safety
            /// The host has AVX2 and FMA; as [`super::apply_raw`].
            #[target_feature(enable = "avx2,fma")]
            unsafe fn $name(src: *const f64, dst: *mut f64, n: usize) {
                let full = n / 4 * 4;
                for i in (0..full).step_by(4) {
                    // SAFETY: four doubles from `i` on; the host has AVX2 and FMA.
                    unsafe {
                        let y = $kernel(_mm256_loadu_pd(src.add(i)));
                        _mm256_storeu_pd(dst.add(i), y);
                    }
                }
                if full < n {
                    let mut lanes = [0.0; 4];
                    for (k, lane) in lanes.iter_mut().enumerate().take(n - full) {
                        // SAFETY: `full + k < n`.
                        *lane = unsafe { *src.add(full + k) };
                    }
                    // SAFETY: four lanes; the host has AVX2 and FMA.
                    unsafe {
                        let y = $kernel(_mm256_loadu_pd(lanes.as_ptr()));
                        _mm256_storeu_pd(lanes.as_mut_ptr(), y);
                    }
                    for (k, &lane) in lanes.iter().enumerate().take(n - full) {
                        // SAFETY: `full + k < n`.
                        unsafe { *dst.add(full + k) = lane };
                    }
                }
            }
        };
    }

    map_with!(map_exp, exp);
    map_with!(map_log, log);
    map_with!(map_log1p, log1p);
    map_with!(map_tanh, tanh);

    /// [`super::apply_exp_family_raw`] with the kernels (and the sigmoid and softplus alone,
    /// as families of one): `exp(-|x|)` in a first pass over each chunk of 128 elements,
    /// then every output wanted from it. In one pass a vector's chain through the
    /// exponential and the logarithm (about 115 cycles for the softplus) is longer than the
    /// reorder buffer covers with fewer than three iterations in flight; split, each pass
    /// keeps about twice as many going (softplus 3.55 → 2.58 ns per element).
    ///
    /// # Safety
    /// The host has AVX2 and FMA; as [`super::apply_exp_family_raw`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn exp_family(src: *const f64, n: usize, outs: [*mut f64; 4]) {
        let wanted = (0..4).filter(|&k| !outs[k].is_null()).map(|k| 1 << k).sum();
        // One loop per set of outputs, without a test per vector (which cost 12–20%).
        macro_rules! each_set {
            ($($set:literal)*) => {
                match wanted {
                    // SAFETY: forwarded contract.
                    $($set => unsafe { exp_family_of::<$set>(src, n, outs) },)*
                    _ => {}
                }
            };
        }
        each_set!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    }

    /// [`exp_family`] for the outputs in the set `WANTED` (bit `k` for `outs[k]`).
    ///
    /// # Safety
    /// As [`exp_family`]; `outs[k]` is not null for every `k` in `WANTED`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp_family_of<const WANTED: u8>(src: *const f64, n: usize, outs: [*mut f64; 4]) {
        const CHUNK: usize = 128;
        let mut es = [0.0; CHUNK];
        let full = n / 4 * 4;
        let mut start = 0;
        while start < full {
            let len = CHUNK.min(full - start);
            for k in (0..len).step_by(4) {
                // SAFETY: four doubles from `start + k < full` on; `k + 4 <= CHUNK`.
                unsafe {
                    let x = _mm256_loadu_pd(src.add(start + k));
                    _mm256_storeu_pd(es.as_mut_ptr().add(k), exp_of_neg_abs(x));
                }
            }
            for k in (0..len).step_by(4) {
                // SAFETY: as above; every output is stored after `x` is loaded.
                unsafe {
                    let x = _mm256_loadu_pd(src.add(start + k));
                    let e = _mm256_loadu_pd(es.as_ptr().add(k));
                    store_family::<WANTED>(x, e, outs, start + k);
                }
            }
            start += len;
        }
        if full < n {
            let mut lanes = [0.0; 4];
            let mut tails = [[0.0; 4]; 4];
            for (k, lane) in lanes.iter_mut().enumerate().take(n - full) {
                // SAFETY: `full + k < n`.
                *lane = unsafe { *src.add(full + k) };
            }
            let tail_outs = [0, 1, 2, 3].map(|k| {
                if outs[k].is_null() {
                    std::ptr::null_mut()
                } else {
                    tails[k].as_mut_ptr()
                }
            });
            // SAFETY: four lanes in and four per output; the host has AVX2 and FMA.
            unsafe {
                let x = _mm256_loadu_pd(lanes.as_ptr());
                store_family::<WANTED>(x, exp_of_neg_abs(x), tail_outs, 0);
            }
            for (out, tail) in outs.iter().zip(&tails) {
                for (k, &value) in tail.iter().enumerate().take(n - full) {
                    if !out.is_null() {
                        // SAFETY: `full + k < n`.
                        unsafe { *out.add(full + k) = value };
                    }
                }
            }
        }
    }

    /// Stores the members of the family of `x` (`e = exp(-|x|)`) in the set `WANTED` at
    /// element `i`.
    ///
    /// # Safety
    /// The host has AVX2 and FMA; each output in `WANTED` holds four doubles from `i` on.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn store_family<const WANTED: u8>(
        x: __m256d,
        e: __m256d,
        outs: [*mut f64; 4],
        i: usize,
    ) {
        let minus_x = _mm256_xor_pd(x, float(-0.0));
        for (k, &(f, negated)) in super::EXP_FAMILY.iter().enumerate() {
            if WANTED & (1 << k) != 0 {
                let x = if negated { minus_x } else { x };
                let value = match f {
                    MathFn::Sigmoid => sigmoid_from(x, e),
                    _ => softplus_from(x, e),
                };
                // SAFETY: forwarded contract.
                unsafe { _mm256_storeu_pd(outs[k].add(i), value) };
            }
        }
    }

    // --- The emitter's helpers. ---------------------------------------------------------

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn float(c: f64) -> __m256d {
        _mm256_set1_pd(c)
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn int(c: i64) -> __m256i {
        _mm256_set1_epi64x(c)
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn bits_of(x: __m256d) -> __m256i {
        _mm256_castpd_si256(x)
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn float_from_bits(bits: __m256i) -> __m256d {
        _mm256_castsi256_pd(bits)
    }

    /// `a·b + c` rounded once (the emitter's `mul_add` with `use_fma`).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn mul_add(a: __m256d, b: __m256d, c: __m256d) -> __m256d {
        _mm256_fmadd_pd(a, b, c)
    }

    /// Per lane `if mask { if_true } else { if_false }` for a compare mask (all ones or all
    /// zeros per lane, so `blendv`, which reads the top bit, equals `bitselect`).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn select(mask: __m256d, if_true: __m256d, if_false: __m256d) -> __m256d {
        _mm256_blendv_pd(if_false, if_true, mask)
    }

    /// `c < x ? c : x`: `min(x, c)`, NaN for NaN `x`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn min_const_keep_nan(x: __m256d, c: f64) -> __m256d {
        _mm256_min_pd(float(c), x)
    }

    /// `x < c ? c : x`: `max(x, c)`, NaN for NaN `x`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn max_const_keep_nan(x: __m256d, c: f64) -> __m256d {
        _mm256_max_pd(float(c), x)
    }

    /// Per lane, the two 8-byte words of `table` at `byte_offset` (a multiple of 16 below
    /// the table's size): `(first as float, second as integer)`. Four 16-byte loads
    /// interleaved (`(a0, b0, a2, b2)` and `(a1, b1, a3, b3)`, then unpacked).
    ///
    /// # Safety
    /// The host has AVX2; every lane of `byte_offset` is a multiple of 16 below
    /// `size_of::<Table<N>>()`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn gather_pair<const N: usize>(
        table: &'static Table<N>,
        byte_offset: __m256i,
    ) -> (__m256d, __m256i) {
        let mut offsets = [0u64; 4];
        _mm256_storeu_si256(offsets.as_mut_ptr().cast(), byte_offset);
        let base = table.0.as_ptr().cast::<u8>();
        // SAFETY: each offset is a multiple of 16 inside the table (64-byte aligned), so
        // each load reads one 16-byte aligned entry.
        let (e0, e1, e2, e3) = unsafe {
            (
                _mm_load_pd(base.add(offsets[0] as usize).cast()),
                _mm_load_pd(base.add(offsets[1] as usize).cast()),
                _mm_load_pd(base.add(offsets[2] as usize).cast()),
                _mm_load_pd(base.add(offsets[3] as usize).cast()),
            )
        };
        let even = _mm256_insertf128_pd::<1>(_mm256_castpd128_pd256(e0), e2);
        let odd = _mm256_insertf128_pd::<1>(_mm256_castpd128_pd256(e1), e3);
        let first = _mm256_unpacklo_pd(even, odd);
        let second = _mm256_unpackhi_pd(even, odd);
        (first, _mm256_castpd_si256(second))
    }

    // --- Shared kernels. ----------------------------------------------------------------

    /// The emitter's `ExpParts`.
    struct ExpParts {
        t_bits: __m256i,
        s_bits: __m256i,
        tail: __m256d,
        neg_kd: __m256d,
        r_hi: __m256d,
        r2: __m256d,
        p25: __m256d,
        r: __m256d,
    }

    /// The emitter's `exp_parts_offset`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn exp_parts_offset(x: __m256d, k_offset: i32) -> ExpParts {
        // round_magic_offset(x, N/ln 2, k_offset·128).
        let magic = float(ROUND_MAGIC + f64::from(k_offset << EXP_TABLE_BITS));
        let t = mul_add(x, float(EXP_INV_LN2_N), magic);
        let neg_kd = _mm256_sub_pd(magic, t);
        let r_hi = mul_add(neg_kd, float(EXP_LN2_HI_N), x);
        let r = mul_add(neg_kd, float(EXP_LN2_LO_N), r_hi);
        let t_bits = bits_of(t);
        let j = _mm256_and_si256(t_bits, int((1 << EXP_TABLE_BITS) - 1));
        let byte_offset = _mm256_slli_epi64::<4>(j);
        // SAFETY: j < 128 rows of 16 bytes.
        let (tail, s_bits) = unsafe { gather_pair(&EXP_TABLE, byte_offset) };
        let r2 = _mm256_mul_pd(r, r);
        let p23 = mul_add(float(EXP_C3), r, float(EXP_C2));
        let p45 = mul_add(float(EXP_C5), r, float(EXP_C4));
        let p25 = mul_add(p45, r2, p23);
        ExpParts {
            t_bits,
            s_bits,
            tail,
            neg_kd,
            r_hi,
            r2,
            p25,
            r,
        }
    }

    /// The emitter's `exp_tmp`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn exp_tmp(parts: &ExpParts) -> __m256d {
        let tail_plus_r = _mm256_add_pd(parts.tail, parts.r);
        mul_add(parts.p25, parts.r2, tail_plus_r)
    }

    /// The emitter's `exp_of_clamped`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn exp_of_clamped(x: __m256d) -> __m256d {
        let parts = exp_parts_offset(x, 0);
        let tmp = exp_tmp(&parts);
        let t_bits = parts.t_bits;
        let k1_bits = _mm256_srli_epi64::<{ EXP_TABLE_BITS as i32 + 1 }>(t_bits);
        let k_bits = _mm256_srli_epi64::<{ EXP_TABLE_BITS as i32 }>(t_bits);
        let k2_bits = _mm256_sub_epi64(k_bits, k1_bits);
        let k1_field = _mm256_slli_epi64::<52>(k1_bits);
        let scale1 = float_from_bits(_mm256_add_epi64(parts.s_bits, k1_field));
        // pow2_from_magic(k2_bits).
        let scale2 = float_from_bits(_mm256_add_epi64(
            _mm256_slli_epi64::<52>(k2_bits),
            int(ONE_BITS),
        ));
        let scaled = mul_add(scale1, tmp, scale1);
        _mm256_mul_pd(scaled, scale2)
    }

    /// The emitter's `exp_of_nonpositive`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn exp_of_nonpositive(x: __m256d) -> __m256d {
        let parts = exp_parts_offset(x, 64);
        let tmp = exp_tmp(&parts);
        let k_bits = _mm256_srli_epi64::<{ EXP_TABLE_BITS as i32 }>(parts.t_bits);
        let k_field = _mm256_slli_epi64::<52>(k_bits);
        let scale = float_from_bits(_mm256_add_epi64(parts.s_bits, k_field));
        let scaled = mul_add(scale, tmp, scale);
        _mm256_mul_pd(scaled, float(TWO_TO_MINUS_64))
    }

    /// The emitter's `log1p_nonlinear`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn log1p_nonlinear(r: __m256d) -> __m256d {
        let r2 = _mm256_mul_pd(r, r);
        let p01 = mul_add(float(LOG1P_A[1]), r, float(LOG1P_A[0]));
        let p23 = mul_add(float(LOG1P_A[3]), r, float(LOG1P_A[2]));
        let p45 = mul_add(float(LOG1P_A[5]), r, float(LOG1P_A[4]));
        let a25 = mul_add(p45, r2, p23);
        let a05 = mul_add(a25, r2, p01);
        _mm256_mul_pd(r2, a05)
    }

    /// The emitter's `log_kernel` (with `use_fma`); a `delta` is a correction with
    /// `u_may_be_huge` (the only one the emitter passes).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn log_kernel(
        u: __m256d,
        delta: Option<__m256d>,
        extra_exponent: Option<__m256d>,
    ) -> __m256d {
        let u_bits = bits_of(u);
        let t = _mm256_add_epi64(u_bits, int(1 << 44));
        let shifted = _mm256_srli_epi64::<41>(t);
        let byte_offset = _mm256_and_si256(shifted, int(0x7f0));
        // SAFETY: rows below 128 of 16 bytes.
        let (invc, logc_bits) = unsafe { gather_pair(&LOG_TABLE, byte_offset) };
        let logc = float_from_bits(logc_bits);
        let exponent_field = _mm256_and_si256(t, int(0x7ff0_0000_0000_0000));
        let z_bits_minus_one = _mm256_sub_epi64(u_bits, exponent_field);
        let z_bits = _mm256_add_epi64(z_bits_minus_one, int(ONE_BITS));
        let z = float_from_bits(z_bits);
        let biased_k = _mm256_srli_epi64::<52>(t);
        let k_as_float_bits = _mm256_or_si256(biased_k, int(TWO_52_BITS));
        let k_plus_2_52 = float_from_bits(k_as_float_bits);
        let mut k = _mm256_add_pd(k_plus_2_52, float(-(TWO_52 + 1023.0)));
        if let Some(extra) = extra_exponent {
            k = _mm256_sub_pd(k, extra);
        }
        // reduced_log_argument with fma.
        let r = mul_add(z, invc, float(-1.0));
        let nonlinear = log1p_nonlinear(r);
        let k_ln2_hi = _mm256_mul_pd(k, float(LN2_HI));
        let t1 = _mm256_add_pd(k_ln2_hi, logc);
        let k_ln2_hi_minus_t1 = _mm256_sub_pd(k_ln2_hi, t1);
        let t1_error = _mm256_add_pd(k_ln2_hi_minus_t1, logc);
        let high = _mm256_add_pd(t1, r);
        let t1_minus_high = _mm256_sub_pd(t1, high);
        let high_error = _mm256_add_pd(t1_minus_high, r);
        let mut small = mul_add(k, float(LN2_LO), nonlinear);
        if let Some(delta) = delta {
            let c2046 = int(0x7fe0_0000_0000_0000);
            let inv_pow2 = float_from_bits(_mm256_sub_epi64(c2046, exponent_field));
            let scaled = _mm256_mul_pd(delta, inv_pow2);
            let scaled = _mm256_mul_pd(scaled, invc);
            // fma(scaled, −r, scaled): negating a factor is exact.
            let c = _mm256_fnmadd_pd(scaled, r, scaled);
            let is_huge = _mm256_cmp_pd::<_CMP_GT_OQ>(k, float(1000.0));
            let c = select(is_huge, float(0.0), c);
            small = _mm256_add_pd(small, c);
        }
        let errors = _mm256_add_pd(t1_error, high_error);
        let low = _mm256_add_pd(errors, small);
        _mm256_add_pd(high, low)
    }

    /// The emitter's `two_sum`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn two_sum(a: __m256d, b: __m256d) -> (__m256d, __m256d) {
        let u = _mm256_add_pd(a, b);
        let b_virtual = _mm256_sub_pd(u, a);
        let a_virtual = _mm256_sub_pd(u, b_virtual);
        let a_err = _mm256_sub_pd(a, a_virtual);
        let b_err = _mm256_sub_pd(b, b_virtual);
        (u, _mm256_add_pd(a_err, b_err))
    }

    /// The emitter's `patch_log_specials`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn patch_log_specials(x: __m256d, result: __m256d, pole: f64) -> __m256d {
        let is_inf = _mm256_cmp_pd::<_CMP_EQ_OQ>(x, float(f64::INFINITY));
        let result = select(is_inf, float(f64::INFINITY), result);
        let is_pole = _mm256_cmp_pd::<_CMP_EQ_OQ>(x, float(pole));
        let result = select(is_pole, float(f64::NEG_INFINITY), result);
        let is_invalid = _mm256_cmp_pd::<_CMP_NGE_UQ>(x, float(pole));
        select(is_invalid, float(f64::NAN), result)
    }

    /// The emitter's `log_of_one_to_two` (with `use_fma`).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn log_of_one_to_two(u: __m256d, delta: __m256d) -> __m256d {
        let u_bits = bits_of(u);
        let biased = _mm256_add_epi64(u_bits, int(LOG_INDEX_BIAS));
        let shifted = _mm256_srli_epi64::<41>(biased);
        let byte_offset = _mm256_and_si256(shifted, int(0xff0));
        // SAFETY: rows below 256 of 16 bytes.
        let (invc, logc_bits) = unsafe { gather_pair(&LOG_TABLE, byte_offset) };
        let logc = float_from_bits(logc_bits);
        let r = mul_add(u, invc, float(-1.0));
        let nonlinear = log1p_nonlinear(r);
        let scaled_delta = _mm256_mul_pd(delta, invc);
        // fma(scaled_delta, −r, scaled_delta).
        let correction = _mm256_fnmadd_pd(scaled_delta, r, scaled_delta);
        let high = _mm256_add_pd(logc, r);
        let logc_minus_high = _mm256_sub_pd(logc, high);
        let high_error = _mm256_add_pd(logc_minus_high, r);
        let small = _mm256_add_pd(nonlinear, correction);
        let low = _mm256_add_pd(high_error, small);
        _mm256_add_pd(high, low)
    }

    // --- The functions. -----------------------------------------------------------------

    /// [`MathFn::Exp`] (the same bits as [`super::exp_avx2`]).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) unsafe fn exp(x: __m256d) -> __m256d {
        let x = min_const_keep_nan(x, EXP_MAX_ARG);
        let x = max_const_keep_nan(x, EXP_MIN_ARG);
        exp_of_clamped(x)
    }

    /// [`MathFn::Log`].
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn log(x: __m256d) -> __m256d {
        let is_subnormal = _mm256_cmp_pd::<_CMP_LT_OQ>(x, float(MIN_NORMAL));
        let x_scaled = _mm256_mul_pd(x, float(TWO_52));
        let u = select(is_subnormal, x_scaled, x);
        let extra_exponent = select(is_subnormal, float(52.0), float(0.0));
        let log_x = log_kernel(u, None, Some(extra_exponent));
        patch_log_specials(x, log_x, 0.0)
    }

    /// [`MathFn::Log1p`].
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn log1p(x: __m256d) -> __m256d {
        let (u, delta) = two_sum(float(1.0), x);
        let result = log_kernel(u, Some(delta), None);
        let is_zero = _mm256_cmp_pd::<_CMP_EQ_OQ>(x, float(0.0));
        let result = select(is_zero, x, result);
        patch_log_specials(x, result, -1.0)
    }

    /// [`MathFn::Tanh`].
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tanh(x: __m256d) -> __m256d {
        let x_bits = bits_of(x);
        let abs_x = float_from_bits(_mm256_and_si256(x_bits, int(!SIGN_BIT)));
        let a = min_const_keep_nan(abs_x, TANH_SATURATION);
        let y = _mm256_add_pd(a, a);
        let parts = exp_parts_offset(y, 0);
        let k_bits = _mm256_srli_epi64::<{ EXP_TABLE_BITS as i32 }>(parts.t_bits);
        let k_field = _mm256_slli_epi64::<52>(k_bits);
        let scale = float_from_bits(_mm256_add_epi64(parts.s_bits, k_field));
        let scale_minus_1 = _mm256_add_pd(scale, float(-1.0));
        let tail_plus_r_lo = mul_add(parts.neg_kd, float(EXP_LN2_LO_N), parts.tail);
        let small = mul_add(parts.p25, parts.r2, tail_plus_r_lo);
        let large = mul_add(scale, parts.r_hi, scale_minus_1);
        let expm1_y = mul_add(scale, small, large);
        let denominator = _mm256_add_pd(expm1_y, float(2.0));
        let tanh_a = _mm256_div_pd(expm1_y, denominator);
        let sign = _mm256_and_si256(x_bits, int(SIGN_BIT));
        float_from_bits(_mm256_or_si256(bits_of(tanh_a), sign))
    }

    /// `−|x|` by setting the sign bit (the emitter's `neg_abs`).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn neg_abs(x: __m256d) -> __m256d {
        float_from_bits(_mm256_or_si256(bits_of(x), int(SIGN_BIT)))
    }

    /// [`MathFn::Sigmoid`] from `e = exp(-|x|)`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn sigmoid_from(x: __m256d, e: __m256d) -> __m256d {
        let is_negative = _mm256_cmp_pd::<_CMP_LT_OQ>(x, float(0.0));
        let one = float(1.0);
        let numerator = select(is_negative, e, one);
        let denominator = _mm256_add_pd(one, e);
        _mm256_div_pd(numerator, denominator)
    }

    /// `exp(-|x|)`: the first part of [`sigmoid_from`] and [`softplus_from`].
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn exp_of_neg_abs(x: __m256d) -> __m256d {
        let neg_abs_x = max_const_keep_nan(neg_abs(x), EXP_MIN_ARG);
        exp_of_nonpositive(neg_abs_x)
    }

    /// [`MathFn::Softplus`], `max(x, 0) + log1p(e)`, from `e = exp(-|x|)`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn softplus_from(x: __m256d, e: __m256d) -> __m256d {
        let one = float(1.0);
        let u = _mm256_add_pd(one, e);
        let one_minus_u = _mm256_sub_pd(one, u);
        let delta = _mm256_add_pd(one_minus_u, e);
        let log1p_e = log_of_one_to_two(u, delta);
        let positive_part = max_const_keep_nan(x, 0.0);
        _mm256_add_pd(positive_part, log1p_e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_four_lane_max_is_numpys_max() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let mut state = 7u64;
        for len in 0..40 {
            let mut row: Vec<f64> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 2001) as f64 - 1000.0
                })
                .collect();
            let plain = |r: &[f64]| {
                r.iter().fold(f64::NEG_INFINITY, |m: f64, &v| {
                    if m.is_nan() || v.is_nan() {
                        f64::NAN
                    } else {
                        m.max(v)
                    }
                })
            };
            // SAFETY: the host has AVX2.
            assert_eq!(unsafe { nan_max_avx2(&row) }, plain(&row), "{row:?}");
            for at in 0..len {
                let kept = row[at];
                row[at] = f64::NAN;
                // SAFETY: as above.
                assert!(
                    unsafe { nan_max_avx2(&row) }.is_nan(),
                    "NaN at {at} of {len}"
                );
                row[at] = f64::INFINITY;
                assert_eq!(unsafe { nan_max_avx2(&row) }, f64::INFINITY);
                row[at] = kept;
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_four_lane_exp_gives_the_bits_of_the_scalar_one() {
        if !(std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma"))
        {
            return;
        }
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut points: Vec<f64> = vec![
            0.0,
            -0.0,
            709.79,
            710.0,
            -745.2,
            -746.0,
            1e300,
            -1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            1e-310,
            -708.5,
            3.0,
        ];
        for _ in 0..100_000 {
            points.push(-760.0 + 1480.0 * next_unit(&mut state));
        }
        while points.len() % 4 != 0 {
            points.push(1.0);
        }
        let mut row = points.clone();
        // SAFETY: the host has AVX2 and FMA (checked above).
        let sum = unsafe { exp_sum_avx2(&mut row, false) };
        let mut expected_sum = 0.0;
        for (&x, &got) in points.iter().zip(&row) {
            let want = exp_scalar::<true>(x);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "exp({x:e}): {got:e} vs {want:e}"
            );
            expected_sum += want;
        }
        assert!(
            sum.is_nan() && expected_sum.is_nan()
                || sum == expected_sum
                || (sum - expected_sum).abs() <= 1e-12 * expected_sum.abs()
        );
    }

    /// The next number of a 64-bit linear congruential generator, as a double in [0, 1).
    fn next_unit(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    fn ulps(a: f64, b: f64) -> f64 {
        if a == b || (a.is_nan() && b.is_nan()) {
            return 0.0;
        }
        let spacing = if b == 0.0 || !b.is_finite() {
            f64::from_bits(1)
        } else {
            (f64::from_bits(b.abs().to_bits() + 1) - b.abs()).max(f64::from_bits(1))
        };
        (a - b).abs() / spacing
    }

    /// The fallback of `apply_in_place` (used without AVX2 and FMA, and for the sine and
    /// cosine) is `std`, and its sigmoid and softplus are within the bounds of [`MathFn`].
    #[test]
    fn the_scalar_fallback_is_std() {
        let mut state = 0x853c_49e6_748f_ea9b_u64;
        let mut points: Vec<f64> = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            -2.0,
            1e-300,
            5e-324,
            -5e-324,
            20.0,
            -745.0,
            -746.0,
            1000.0,
            -1000.0,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        for _ in 0..100_000 {
            let unit = next_unit(&mut state);
            points.push(-800.0 + 1600.0 * unit);
            points.push((unit - 0.5) * 60.0);
        }
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        let plain = [
            (MathFn::Exp, f64::exp as fn(f64) -> f64),
            (MathFn::Log, f64::ln),
            (MathFn::Log1p, f64::ln_1p),
            (MathFn::Tanh, f64::tanh),
            (MathFn::Sin, f64::sin),
            (MathFn::Cos, f64::cos),
        ];
        for (f, g) in plain {
            let mut got = points.clone();
            let ptr = got.as_mut_ptr();
            // SAFETY: in place over `got`.
            unsafe { apply_scalar(f, ptr, ptr, got.len()) };
            for (&x, &y) in points.iter().zip(&got) {
                assert!(same(y, g(x)), "{}({x:e}) = {y:e}", f.name());
            }
        }
        let mut sigmoid = vec![0.0; points.len()];
        let mut softplus = vec![0.0; points.len()];
        // SAFETY: `points` and the outputs hold `points.len()` doubles each.
        unsafe {
            apply_scalar(
                MathFn::Sigmoid,
                points.as_ptr(),
                sigmoid.as_mut_ptr(),
                points.len(),
            );
            apply_scalar(
                MathFn::Softplus,
                points.as_ptr(),
                softplus.as_mut_ptr(),
                points.len(),
            );
        }
        for ((&x, &s), &p) in points.iter().zip(&sigmoid).zip(&softplus) {
            // For x ≥ 0, 1/(1 + e^-x) is within 1.5 ulp; for x < 0 use the symmetry.
            let naive = 1.0 / (1.0 + (-x.abs()).exp());
            if x >= 0.0 {
                assert!(ulps(s, naive) <= 2.0, "sigmoid({x:e}) = {s:e}, {naive:e}");
            } else if x < 0.0 && naive < 0.75 {
                assert!(ulps(1.0 - s, naive) <= 2.0, "sigmoid({x:e}) = {s:e}");
            }
            assert_eq!(x.is_nan(), s.is_nan());
            let want = x.max(0.0) + (-x.abs()).exp().ln_1p();
            assert!(same(p, want), "softplus({x:e}) = {p:e}, {want:e}");
        }
        assert_eq!(
            sigmoid[points.iter().position(|&x| x == -1000.0).unwrap()],
            0.0
        );
        assert_eq!(
            sigmoid[points.iter().position(|&x| x == 1000.0).unwrap()],
            1.0
        );
        assert_eq!(sigmoid[0], 0.5);
    }

    /// The family kernel (and its fallback) gives each member the bits of that function
    /// alone on the value or its negation: out of place, and in place over its input.
    #[test]
    fn the_exp_family_gives_each_member_the_bits_of_its_function_alone() {
        let mut state = 0x5851_f42d_4c95_7f2d_u64;
        let mut points: Vec<f64> = vec![
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-300,
            -5e-324,
            36.0,
            -37.5,
            745.5,
            -745.5,
            1000.0,
            -1000.0,
        ];
        for _ in 0..5000 {
            let unit = next_unit(&mut state);
            points.push((unit - 0.5) * 100.0);
            points.push((unit - 0.5) * 1600.0);
        }
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        type Family = unsafe fn(*const f64, usize, [*mut f64; 4]);
        type Single = unsafe fn(MathFn, *const f64, *mut f64, usize);
        let paths: [(&str, Family, Single); 2] = [
            ("kernels", apply_exp_family_raw, apply_raw),
            ("std", exp_family_scalar, apply_scalar),
        ];
        for (path, family, single) in paths {
            for len in [0, 1, 2, 3, 4, 5, 7, 127, 128, 129, 131, 300, points.len()] {
                let xs = &points[..len];
                let minus: Vec<f64> = xs.iter().map(|x| -x).collect();
                let expected = EXP_FAMILY.map(|(f, negated)| {
                    let src = if negated { &minus[..] } else { xs };
                    let mut out = vec![0.0; len];
                    // SAFETY: `len` doubles each.
                    unsafe { single(f, src.as_ptr(), out.as_mut_ptr(), len) };
                    out
                });
                let check = |k: usize, got: &[f64], how: &str| {
                    for (i, (&g, &want)) in got.iter().zip(&expected[k]).enumerate() {
                        assert!(
                            same(g, want),
                            "{path} {how}: member {k} of {:e}: {g:e}, alone {want:e}",
                            xs[i]
                        );
                    }
                };
                let mut outs: [Vec<f64>; 4] = std::array::from_fn(|_| vec![f64::NAN; len]);
                // SAFETY: `len` doubles in and out, four disjoint outputs.
                unsafe { family(xs.as_ptr(), len, outs.each_mut().map(|o| o.as_mut_ptr())) };
                for (k, out) in outs.iter().enumerate() {
                    check(k, out, "out of place");
                }
                for lead in 0..4 {
                    let other = (lead + 1) % 4;
                    let mut in_place = xs.to_vec();
                    let mut second = vec![f64::NAN; len];
                    let mut ptrs = [std::ptr::null_mut(); 4];
                    ptrs[lead] = in_place.as_mut_ptr();
                    ptrs[other] = second.as_mut_ptr();
                    // SAFETY: the input is the lead's output; the other is disjoint.
                    unsafe { family(ptrs[lead], len, ptrs) };
                    check(lead, &in_place, "in place");
                    check(other, &second, "beside one in place");
                }
            }
        }
    }

    #[test]
    fn the_rust_exp_is_within_one_ulp_of_libm_with_and_without_fma() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut points: Vec<f64> = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            709.78,
            709.79,
            710.0,
            1e300,
            -745.1,
            -745.2,
            -746.0,
            -1e300,
            -708.5,
            -720.0,
            1e-300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ];
        for _ in 0..200_000 {
            let unit = next_unit(&mut state);
            points.push(-750.0 + 1465.0 * unit);
            points.push((unit - 0.5) * 2e-3);
        }
        for x in points {
            let want = x.exp();
            for got in [exp_scalar::<true>(x), exp_scalar::<false>(x)] {
                assert!(
                    ulps(got, want) <= 1.0,
                    "exp({x:e}) = {got:e}, libm {want:e}"
                );
            }
        }
    }
}
