//! Branch-free transcendental functions emitted inline as Cranelift IR.
//!
//! In: a [`FunctionBuilder`] positioned inside a block, a [`MathFn`] and an SSA value of type
//! `f64` or `f64x2`. Out: a value of the same type holding the function of each lane.
//!
//! The emitted code has no calls and no branches: only arithmetic, compares turned into lane
//! masks, `select`/`bitselect` and bit casts, so it can sit in the body of a vectorised
//! loop. Every function follows the same plan: reduce the argument with exact (or
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
//! into a choice with `bitselect` (lowered to `blendvpd`, or to `minpd`/`maxpd` for the
//! min/max pattern); for `f64` a compare yields an `i8` used by `select`.
//!
//! Accuracy (measured by `tests/jit_math.rs` over ≥ 10^6 points per function against Rust's
//! `std`, i.e. the system libm; the bounds are asserted there): see the table on [`MathFn`].
//! Subnormal results are produced (never flushed to zero) and subnormal arguments are
//! handled.

use std::sync::OnceLock;

use cranelift::codegen::isa::TargetIsa;
use cranelift::prelude::{
    settings, types, FloatCC, FunctionBuilder, InstBuilder, MemFlagsData, Type, Value,
};

/// One of the elementwise functions this module emits inline.
///
/// Maximum error measured over ≥ 10^6 points per function (see `tests/jit_math.rs`), in
/// units in the last place (ulp) of the reference, with and without `fma`, `f64` and
/// `f64x2` alike:
///
/// | function   | max error | reference                                  | valid for    |
/// |------------|-----------|--------------------------------------------|--------------|
/// | `Exp`      | 1 ulp     | `f64::exp`                                 | all `f64`    |
/// | `Log`      | 1 ulp     | `f64::ln`                                  | all `f64`    |
/// | `Log1p`    | 1 ulp     | `f64::ln_1p`                               | all `f64`    |
/// | `Tanh`     | 2 ulp     | `f64::tanh`                                | all `f64`    |
/// | `Sigmoid`  | 2 ulp     | `1/(1+e^-x)` in double-double from `exp`   | all `f64`    |
/// | `Softplus` | 2 ulp     | `max(x,0) + ln_1p(exp(-|x|))`              | all `f64`    |
/// | `Sin`      | 1 ulp     | `f64::sin`                                 | `|x| ≤ 1e8`  |
/// | `Cos`      | 1 ulp     | `f64::cos`                                 | `|x| ≤ 1e8`  |
///
/// The exact figures are in each variant's documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MathFn {
    /// `e^x`. Method: `k = round(x/ln 2)` by the magic-constant trick, `r = x − k·ln 2` with a
    /// two-part (Cody–Waite) `ln 2` from fdlibm (`k·ln2_hi` is exact), `e^r` by a degree-12
    /// polynomial on `|r| ≤ ln 2 / 2` (`1 + r + r²/2 + r³·g(r)`, `g` a degree-9 minimax fit
    /// of our own, relative error 2^-58.5), and `2^k` applied as two factors `2^⌊k/2⌋·2^⌈k/2⌉`
    /// so that overflow gives `+inf` and results down to `2^-1074` come out as correctly
    /// scaled subnormals (no flush to zero). `x` is clamped to `[-746, 710]` first (NaN
    /// passes through). Special values: `exp(NaN) = NaN`, `exp(+inf) = +inf`,
    /// `exp(-inf) = 0`.
    Exp,
    /// Natural logarithm. Method: `x = 2^e·m` with `m ∈ [√½, √2)` taken from the bits (a
    /// subnormal `x` is first scaled by `2^52`), `f = m − 1`, `s = f/(2+f)` and fdlibm's
    /// `log(1+f) = f − f²/2 + s·(f²/2 + R(s²))` with fdlibm's degree-7 `R` (Lg1..Lg7, error
    /// 2^-58.45), `e·ln 2` in two parts. Special values: `log(0) = -inf`, `log(x<0) = NaN`,
    /// `log(+inf) = +inf`, `log(NaN) = NaN`.
    Log,
    /// `ln(1+x)`. Method: `u = 1 + x` with its rounding error `δ` computed exactly (TwoSum),
    /// then `log(u)` as for [`MathFn::Log`] plus the first-order correction `δ/u`, evaluated
    /// without a division as `δ·2^-e·(1 − f)` (its own error is below `δ·f²`, far below an
    /// ulp). Tiny `x` gives `x` exactly (with its sign for `±0`). Special values:
    /// `log1p(-1) = -inf`, `log1p(x<-1) = NaN`, `log1p(+inf) = +inf`.
    Log1p,
    /// Hyperbolic tangent. Method: `a = min(|x|, 20)`, `E = expm1(2a)` with the exp reduction
    /// and polynomial above (`expm1(r) = r + r²·h(r)` keeps full relative accuracy near 0,
    /// then `2^k·expm1(r) + (2^k − 1)`), `tanh = sign(x)·E/(E+2)`. Saturates to exactly
    /// `±1` for `|x| ≥ 19.1`, odd, `tanh(±0) = ±0`, `tanh(tiny) = tiny`.
    Tanh,
    /// Logistic sigmoid `1/(1+e^-x)`. Method: `e = exp(-|x|)` (never overflows), then
    /// `1/(1+e)` for `x ≥ 0` and `e/(1+e)` for `x < 0`, one division. `sigmoid(+inf) = 1`,
    /// `sigmoid(-inf) = 0`, `sigmoid(±1000)` is `1`/`0` without NaN; results for
    /// `x < -708` are the correctly scaled subnormals.
    Sigmoid,
    /// `softplus(x) = ln(1 + e^x)`, evaluated as `max(x, 0) + log1p(exp(-|x|))` with the
    /// exact `1 + e` error term fed to the log1p kernel. `softplus(1000) = 1000`,
    /// `softplus(-1000) = 0` (the true value `e^-1000` underflows), `softplus(+inf) = +inf`,
    /// `softplus(-inf) = 0`.
    Softplus,
    /// Sine. Method: `k = round(2x/π)`, `r = x − k·π/2` with a four-part Cody–Waite `π/2`
    /// (three 27-bit parts and a full double, computed by us with mpmath; every `k·Pᵢ` is
    /// exact for `|k| < 2^26`), fdlibm's sine and cosine kernels (S1..S6, C1..C6) on
    /// `|r| ≤ π/4`, and the quadrant `k mod 4` read from the bits of the rounded value to
    /// pick `±sin r` or `±cos r`. The error bound holds for `|x| ≤ 1e8`; beyond it the
    /// reduction loses about `log2(|x|/1e8)` bits without `fma` (with `fma` it stays exact up
    /// to about `2^50`), and for `|x| > 2^50` (where one ulp of `x` is already ≥ 1/4 radian)
    /// the result is NaN. `sin(±0) = ±0`, `sin(±inf) = NaN`.
    Sin,
    /// Cosine. Same method and range as [`MathFn::Sin`] (the quadrant shifted by one).
    /// `cos(±inf) = NaN`, NaN for `|x| > 2^50`.
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

/// Emits `f(x)` for an `f64` or `f64x2` value `x`: branch-free, no calls, same type out.
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

const LOG2_E: f64 = std::f64::consts::LOG2_E;
/// fdlibm's `ln2_hi` (`0x3fe62e42fee00000`, 32 significant bits: `k·LN2_HI` is exact for
/// `|k| < 2^21`) and `ln2_lo = ln 2 − ln2_hi`.
const LN2_HI: f64 = 0.6931471803691238;
const LN2_LO: f64 = 1.9082149292705877e-10;

/// `exp` is computed for arguments clamped to this range; beyond it the result is `+inf` or
/// `0` anyway (`ln(f64::MAX) ≈ 709.78`, `ln(2^-1074) ≈ -744.44`).
const EXP_MAX_ARG: f64 = 710.0;
const EXP_MIN_ARG: f64 = -746.0;

/// `g(r) ≈ (e^r − 1 − r − r²/2)/r³` on `|r| ≤ ln 2 / 2`: degree-9 minimax (relative)
/// polynomial computed by a Remez exchange in mpmath, coefficients from degree 9 down to 0.
/// With them, `r + r²/2 + r³·g(r)` approximates `expm1(r)` to a relative 2^-58.5.
const EXPM1_G: [f64; 10] = [
    2.091812848787293e-09,
    2.510037644407775e-08,
    2.7557264339845793e-07,
    2.7557268478836657e-06,
    2.4801587333930757e-05,
    0.0001984126986304166,
    0.001388888888888095,
    0.008333333333330065,
    0.04166666666666667,
    0.16666666666666669,
];

/// fdlibm `e_log.c` Lg7..Lg1: `R(z) = z·(Lg1 + z·(Lg2 + … + z·Lg7))` approximates
/// `log(1+f) − 2s + s·… ` on `s = f/(2+f)`, `|s| ≤ 0.1716`, error 2^-58.45.
const LOG_LG: [f64; 7] = [
    0.14798198605116586,
    0.15313837699209373,
    0.1818357216161805,
    0.22222198432149784,
    0.2857142874366239,
    0.3999999999940942,
    0.6666666666666735,
];
/// `bits(1.0) − bits(√½)`: adding it to the bits of a positive `x` carries into the
/// exponent field exactly when the mantissa of `x` is at least `√½`'s.
const LOG_MANTISSA_SHIFT: i64 = ONE_BITS - SQRT_HALF_BITS;
const SQRT_HALF_BITS: i64 = 0x3fe6_a09e_667f_3bcd;
const MANTISSA_MASK: i64 = 0x000f_ffff_ffff_ffff;
/// Bits of `2^52`: or-ing a small integer `n` into them gives the double `2^52 + n`.
const TWO_52_BITS: i64 = 0x4330_0000_0000_0000;
const TWO_52: f64 = 4503599627370496.0;
/// Smallest positive normal double, and the factor that makes a subnormal normal.
const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
const TWO_POW_52: f64 = 4503599627370496.0;

/// `π/2 = P1 + P2 + P3 + P4` to 2^-142: three 27-bit parts (so `k·Pᵢ` is exact for
/// `|k| < 2^26`) and a full double, computed with mpmath.
const PIO2_1: f64 = 1.570796325802803;
const PIO2_2: f64 = 9.920935739593517e-10;
const PIO2_3: f64 = 5.721188709663575e-18;
const PIO2_4: f64 = 1.6446256936324258e-26;
const TWO_OVER_PI: f64 = std::f64::consts::FRAC_2_PI;
/// Beyond this `|x|` the sine and cosine are NaN (see [`MathFn::Sin`]).
const SIN_COS_MAX_ARG: f64 = 1125899906842624.0; // 2^50

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

/// `tanh` works on `min(|x|, 20)`: `tanh(20) = 1 − 8.5e-18` already rounds to `1`, and the
/// clamp keeps `E/(E+2)` away from `inf/inf`.
const TANH_SATURATION: f64 = 20.0;

// ---------------------------------------------------------------------------------------

/// A per-lane condition: an `i64x2` of all-ones/all-zeros lanes for vectors, an integer
/// truth value (non-zero = true) for scalars.
#[derive(Clone, Copy)]
struct Mask(Value);

/// The rounding error `δ` of `u = fl(1 + x)`, for the log kernel to add `δ/u`.
#[derive(Clone, Copy)]
struct Correction {
    delta: Value,
    /// Whether `u` may reach `2^1023·√2` (then the correction is dropped).
    u_may_be_huge: bool,
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

impl Emitter<'_, '_> {
    fn is_vector(&self) -> bool {
        self.float_ty.is_vector()
    }

    // --- Constants and plain arithmetic. ----------------------------------------------

    fn float(&mut self, c: f64) -> Value {
        let scalar = self.builder.ins().f64const(c);
        if self.is_vector() {
            self.builder.ins().splat(self.float_ty, scalar)
        } else {
            scalar
        }
    }

    fn int(&mut self, c: i64) -> Value {
        let scalar = self.builder.ins().iconst(types::I64, c);
        if self.is_vector() {
            self.builder.ins().splat(self.int_ty, scalar)
        } else {
            scalar
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

    // --- Masks and selects. -----------------------------------------------------------

    fn compare(&mut self, cc: FloatCC, a: Value, b: Value) -> Mask {
        Mask(self.builder.ins().fcmp(cc, a, b))
    }

    fn compare_const(&mut self, cc: FloatCC, a: Value, c: f64) -> Mask {
        let c = self.float(c);
        self.compare(cc, a, c)
    }

    /// True in the lanes where the lowest bit of the integer `bits` is set.
    fn low_bit_mask(&mut self, bits: Value) -> Mask {
        let low_bit = self.band_const(bits, 1);
        if self.is_vector() {
            // 0 − 1 = all ones, 0 − 0 = 0.
            let zero = self.int(0);
            Mask(self.builder.ins().isub(zero, low_bit))
        } else {
            Mask(low_bit)
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
        let factor = self.float(factor);
        let magic = self.float(ROUND_MAGIC);
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

    /// Exp reduction: `x = k·ln 2 + r`, `|r| ≤ ln 2 / 2 (+ a rounding)`. Returns
    /// `(bits of t, r)` with `k` in the low bits of `t` (see [`Self::round_magic`]).
    fn exp_reduce(&mut self, x: Value) -> (Value, Value) {
        let (t, neg_k) = self.round_magic(x, LOG2_E);
        let ln2_hi = self.float(LN2_HI);
        let ln2_lo = self.float(LN2_LO);
        // `x − k·ln2_hi` is exact (the product is exact and Sterbenz applies).
        let r_hi = self.mul_add(neg_k, ln2_hi, x);
        let r = self.mul_add(neg_k, ln2_lo, r_hi);
        let t_bits = self.bits_of(t);
        (t_bits, r)
    }

    /// `h(r) = (e^r − 1 − r)/r² = 1/2 + r·g(r)`.
    fn expm1_h(&mut self, r: Value) -> Value {
        let g = self.estrin(r, &EXPM1_G);
        let half = self.float(0.5);
        self.mul_add(g, r, half)
    }

    /// `ln(u + δ) − extra·ln 2` for `u > 0` finite normal, a correction `δ` with
    /// `|δ| ≤ ulp(u)/2` (`None` for 0) and an integer-valued `extra` exponent (`None` for 0).
    /// Special inputs give unspecified results: callers patch them.
    fn log_kernel(
        &mut self,
        u: Value,
        correction: Option<Correction>,
        extra_exponent: Option<Value>,
    ) -> Value {
        // Decompose u = 2^e·m, m ∈ [√½, √2): after adding LOG_MANTISSA_SHIFT the exponent
        // field of the bits holds e + 1023 and the mantissa field m's mantissa relative to
        // √½'s bits.
        let u_bits = self.bits_of(u);
        let shifted = self.iadd_const(u_bits, LOG_MANTISSA_SHIFT);
        let biased_exp = self.ushr(shifted, 52);
        let two_52_bits = self.int(TWO_52_BITS);
        let exp_as_float_bits = self.builder.ins().bor(biased_exp, two_52_bits);
        let exp_plus_2_52 = self.float_from_bits(exp_as_float_bits);
        // e = (2^52 + e + 1023) − (2^52 + 1023), exact.
        let mut e = self.add_const(exp_plus_2_52, -(TWO_52 + 1023.0));
        if let Some(extra) = extra_exponent {
            e = self.sub(e, extra);
        }
        let mantissa = self.band_const(shifted, MANTISSA_MASK);
        let m_bits = self.iadd_const(mantissa, SQRT_HALF_BITS);
        let m = self.float_from_bits(m_bits);
        let one = self.float(1.0);
        // f = m − 1 is exact (Sterbenz), f ∈ [√½ − 1, √2 − 1).
        let f = self.sub(m, one);
        self.log_of_parts(e, f, correction.map(|delta| (delta, shifted)))
    }

    /// fdlibm's `e·ln 2 + log(1+f)` plus the correction `δ/u` (with `shifted` the adjusted
    /// bits of `u`, to build `2^-e`).
    fn log_of_parts(
        &mut self,
        e: Value,
        f: Value,
        correction: Option<(Correction, Value)>,
    ) -> Value {
        let two = self.float(2.0);
        let two_plus_f = self.add(two, f);
        let s = self.div(f, two_plus_f);
        let z = self.mul(s, s);
        let poly = self.estrin(z, &LOG_LG);
        let r = self.mul(z, poly);
        let half_f = self.mul_const(f, 0.5);
        let hfsq = self.mul(half_f, f);
        // tail = s·(hfsq + R) + (e·ln2_lo + c)
        let hfsq_plus_r = self.add(hfsq, r);
        let ln2_lo = self.float(LN2_LO);
        let mut low = self.mul(e, ln2_lo);
        if let Some((
            Correction {
                delta,
                u_may_be_huge,
            },
            shifted,
        )) = correction
        {
            // δ/u = δ·2^-e/m and 1/m = 1 − f + O(f²): the O(f²) term changes δ/u by less
            // than δ·f² ≤ 2^-53·f², far below an ulp of the result.
            // 2^-e: exponent field (2046 − biased e) = (2046 << 52) − (biased e << 52).
            let exp_field = self.band_const(shifted, 0x7ff0_0000_0000_0000);
            let c2046 = self.int(0x7fe0_0000_0000_0000);
            let inv_bits = self.builder.ins().isub(c2046, exp_field);
            let inv_pow2 = self.float_from_bits(inv_bits);
            let scaled_delta = self.mul(delta, inv_pow2);
            let one = self.float(1.0);
            let one_minus_f = self.sub(one, f);
            let mut c = self.mul(scaled_delta, one_minus_f);
            if u_may_be_huge {
                // For e = 1024 the exponent field 2046 − 2047 is out of range (the bits read
                // −inf); there δ/u < 2^-1000 is negligible, so drop it.
                let is_huge = self.compare_const(FloatCC::GreaterThan, e, 1000.0);
                let zero = self.float(0.0);
                c = self.select(is_huge, zero, c);
            }
            low = self.add(low, c);
        }
        let tail = self.mul_add(s, hfsq_plus_r, low);
        // e·ln2_hi − ((hfsq − tail) − f)
        let hfsq_minus_tail = self.sub(hfsq, tail);
        let inner = self.sub(hfsq_minus_tail, f);
        let ln2_hi = self.float(LN2_HI);
        let high = self.mul(e, ln2_hi);
        self.sub(high, inner)
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

    /// `e^x` for `x ∈ [-746, 710]` or NaN.
    fn exp_of_clamped(&mut self, x: Value) -> Value {
        let (t_bits, r) = self.exp_reduce(x);
        // e^r = 1 + r·(1 + r·h(r)).
        let h = self.expm1_h(r);
        let one = self.float(1.0);
        let inner = self.mul_add(h, r, one);
        let p = self.mul_add(inner, r, one);
        // 2^k = 2^k1 · 2^k2 with k1 = ⌊k/2⌋, k2 = k − k1, both within the normal exponent
        // range for k ∈ [-1077, 1025]. With t = A + k (A = bits of 1.5·2^52, even):
        // t >> 1 = A/2 + k1 and t − (t >> 1) = A/2 + k2, and A/2 vanishes when shifted
        // left by 52.
        let half_bits = self.ushr(t_bits, 1);
        let rest_bits = self.builder.ins().isub(t_bits, half_bits);
        let scale1 = self.pow2_from_magic(half_bits);
        let scale2 = self.pow2_from_magic(rest_bits);
        let scaled = self.mul(p, scale1);
        self.mul(scaled, scale2)
    }

    fn log(&mut self, x: Value) -> Value {
        // Subnormal x: scale by 2^52 and subtract 52 from the exponent afterwards.
        let is_subnormal = self.compare_const(FloatCC::LessThan, x, MIN_NORMAL);
        let x_scaled = self.mul_const(x, TWO_POW_52);
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
        let abs_x = self.builder.ins().fabs(x);
        let a = self.min_const_keep_nan(abs_x, TANH_SATURATION);
        let y = self.add(a, a);
        // expm1(y) = 2^k·expm1(r) + (2^k − 1), k ∈ [0, 58].
        let (t_bits, r) = self.exp_reduce(y);
        let h = self.expm1_h(r);
        let r2 = self.mul(r, r);
        let expm1_r = self.mul_add(r2, h, r);
        let pow2 = self.pow2_from_magic(t_bits);
        let pow2_minus_1 = self.add_const(pow2, -1.0);
        let expm1_y = self.mul_add(pow2, expm1_r, pow2_minus_1);
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
        let abs_x = self.builder.ins().fabs(x);
        let neg_abs_x = self.builder.ins().fneg(abs_x);
        let neg_abs_x = self.max_const_keep_nan(neg_abs_x, EXP_MIN_ARG);
        let e = self.exp_of_clamped(neg_abs_x);
        let is_negative = self.compare_const(FloatCC::LessThan, x, 0.0);
        let one = self.float(1.0);
        let numerator = self.select(is_negative, e, one);
        let denominator = self.add(one, e);
        self.div(numerator, denominator)
    }

    fn softplus(&mut self, x: Value) -> Value {
        let abs_x = self.builder.ins().fabs(x);
        let neg_abs_x = self.builder.ins().fneg(abs_x);
        let neg_abs_x = self.max_const_keep_nan(neg_abs_x, EXP_MIN_ARG);
        let e = self.exp_of_clamped(neg_abs_x);
        // u = 1 + e with its exact error (Fast2Sum: 1 ≥ e).
        let one = self.float(1.0);
        let u = self.add(one, e);
        let one_minus_u = self.sub(one, u);
        let delta = self.add(one_minus_u, e);
        let correction = Correction {
            delta,
            u_may_be_huge: false,
        };
        let log1p_e = self.log_kernel(u, Some(correction), None);
        let positive_part = self.max_const_keep_nan(x, 0.0);
        self.add(positive_part, log1p_e)
    }

    fn sin_cos(&mut self, x: Value, cosine: bool) -> Value {
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
        // Quadrant q = k mod 4 (k + 1 for the cosine): sin x = [s, c, −s, −c][q].
        let mut quadrant = self.bits_of(t);
        if cosine {
            quadrant = self.iadd_const(quadrant, 1);
        }
        let odd = self.low_bit_mask(quadrant);
        let chosen = self.select(odd, cos_r, sin_r);
        let sign_source = self.band_const(quadrant, 2);
        let sign = self.shl(sign_source, 62);
        let chosen_bits = self.bits_of(chosen);
        let flipped = self.builder.ins().bxor(chosen_bits, sign);
        let mut result = self.float_from_bits(flipped);
        if !cosine {
            // sin(±0) = ±0 (the kernel gives +0 for −0).
            let is_zero = self.compare_const(FloatCC::Equal, x, 0.0);
            result = self.select(is_zero, x, result);
        }
        let abs_x = self.builder.ins().fabs(x);
        let out_of_range = self.compare_const(FloatCC::GreaterThan, abs_x, SIN_COS_MAX_ARG);
        self.select_const(out_of_range, f64::NAN, result)
    }
}
