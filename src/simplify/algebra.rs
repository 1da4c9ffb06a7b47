//! Algebraic rewrite rules: one table of named, directional rules.
//!
//! In: an op whose operands are already simplified (and, since the rebuild is bottom-up,
//! in normal form). Out: an equivalent value built through the smart constructor, or
//! `None`. The first rule that applies wins.
//!
//! Every rule makes the code smaller or cheaper (fewer ops, or the same ops on fewer
//! elements) or moves towards one normal form: constants to the right of `+` and `*`,
//! negations outwards (where they meet a `+` or `-` and vanish). There is no general
//! commutativity or associativity, so floating-point results only change where a rule's
//! comment says so. Each rule has a test in `tests/simplify.rs`.

use super::cse::Rewriter;
use crate::ir::{broadcastable, Axes, BinaryOp, Dim, Op, ReduceOp, UnaryOp, Value};

/// A rule: the rewritten value of an op, or `None` if the rule does not apply.
type Rule = fn(&mut Rewriter, &Op) -> Option<Value>;

use BinaryOp::{Add, Div, Mul, Pow, Sub};
use UnaryOp::{Exp, Log, Log1p, Neg, Sigmoid, Softplus, Square};

/// The rules, by name, tried in order.
#[rustfmt::skip]
pub(super) const RULES: &[(&str, Rule)] = &[
    // x + 0 → x
    ("add-zero-right",     |rw, op| match *op { Op::Binary(Add, x, y) if rw.is_const(y, 0.0) => Some(x), _ => None }),
    // 0 + x → x
    ("add-zero-left",      |rw, op| match *op { Op::Binary(Add, x, y) if rw.is_const(x, 0.0) => Some(y), _ => None }),
    // c + x → x + c
    ("add-const-right",    |rw, op| match *op { Op::Binary(Add, c, x) if is_const_pair(rw, c, x) => Some(rw.binary(Add, x, c)), _ => None }),
    // x + -y → x - y
    ("add-neg-right",      |rw, op| match *op { Op::Binary(Add, x, y) => negated(rw, y).map(|y| rw.binary(Sub, x, y)), _ => None }),
    // -x + y → y - x
    ("add-neg-left",       |rw, op| match *op { Op::Binary(Add, x, y) => negated(rw, x).map(|x| rw.binary(Sub, y, x)), _ => None }),
    // x - 0 → x
    ("sub-zero",           |rw, op| match *op { Op::Binary(Sub, x, y) if rw.is_const(y, 0.0) => Some(x), _ => None }),
    // 0 - x → -x
    ("zero-sub",           |rw, op| match *op { Op::Binary(Sub, x, y) if rw.is_const(x, 0.0) => Some(rw.unary(Neg, y)), _ => None }),
    // x - -y → x + y
    ("sub-neg",            |rw, op| match *op { Op::Binary(Sub, x, y) => negated(rw, y).map(|y| rw.binary(Add, x, y)), _ => None }),
    // - -x → x
    ("neg-neg",            |rw, op| match *op { Op::Unary(Neg, x) => neg_operand(rw, x), _ => None }),
    // -(a - b) → b - a  (exact: rounding is symmetric)
    ("neg-sub",            |rw, op| match *op { Op::Unary(Neg, x) => match *rw.op(x) { Op::Binary(Sub, a, b) => Some(rw.binary(Sub, b, a)), _ => None }, _ => None }),
    // -((a - b) * c) → (b - a) * c
    ("neg-mul-sub",        |rw, op| match *op { Op::Unary(Neg, x) => neg_mul_sub(rw, x), _ => None }),
    // x * 1 → x
    ("mul-one-right",      |rw, op| match *op { Op::Binary(Mul, x, y) if rw.is_const(y, 1.0) => Some(x), _ => None }),
    // 1 * x → x
    ("mul-one-left",       |rw, op| match *op { Op::Binary(Mul, x, y) if rw.is_const(x, 1.0) => Some(y), _ => None }),
    // x * -1 → -x
    ("mul-minus-one-right",|rw, op| match *op { Op::Binary(Mul, x, y) if rw.is_const(y, -1.0) => Some(rw.unary(Neg, x)), _ => None }),
    // -1 * x → -x
    ("mul-minus-one-left", |rw, op| match *op { Op::Binary(Mul, x, y) if rw.is_const(x, -1.0) => Some(rw.unary(Neg, y)), _ => None }),
    // c * x → x * c
    ("mul-const-right",    |rw, op| match *op { Op::Binary(Mul, c, x) if is_const_pair(rw, c, x) => Some(rw.binary(Mul, x, c)), _ => None }),
    // (x * c) * d → x * (c * d)  when c or d is a power of two and c * d is a normal
    // number, so that both sides round once, alike (short of an overflow of x * c)
    ("mul-const-const",    |rw, op| match *op { Op::Binary(Mul, xc, d) if rw.const_value(d).is_some() => mul_const_const(rw, xc, d), _ => None }),
    // -x * -y → x * y
    ("mul-neg-neg",        |rw, op| match *op { Op::Binary(Mul, x, y) => { let (x, y) = (neg_operand(rw, x)?, neg_operand(rw, y)?); Some(rw.binary(Mul, x, y)) } _ => None }),
    // x * -y → -(x * y)
    ("mul-neg-right",      |rw, op| match *op { Op::Binary(Mul, x, y) => { let y = neg_operand(rw, y)?; let product = rw.binary(Mul, x, y); Some(rw.unary(Neg, product)) } _ => None }),
    // -x * y → -(x * y)
    ("mul-neg-left",       |rw, op| match *op { Op::Binary(Mul, x, y) => { let x = neg_operand(rw, x)?; let product = rw.binary(Mul, x, y); Some(rw.unary(Neg, product)) } _ => None }),
    // (a - b) * -c → (b - a) * c, also when -c is broadcast
    ("mul-sub-neg",        |rw, op| match *op { Op::Binary(Mul, x, y) => mul_sub_neg(rw, x, y), _ => None }),
    // a * c - b * c → (a - b) * c  (both products single-use; rounds differently)
    ("factor-sub",         |rw, op| match *op { Op::Binary(Sub, x, y) => factor_right(rw, Sub, x, y), _ => None }),
    // a * c + b * c → (a + b) * c  (both products single-use; rounds differently)
    ("factor-add",         |rw, op| match *op { Op::Binary(Add, x, y) => factor_right(rw, Add, x, y), _ => None }),
    // (x / y) * y → x  (exact where y is finite and nonzero; avoids 0/0 where it is 0)
    ("div-mul-cancel",     |rw, op| match *op { Op::Binary(Mul, q, y) => match *rw.op(q) { Op::Binary(Div, x, z) if z == y => Some(x), _ => None }, _ => None }),
    // (c / y) * d → (c * d) / y for constants c, d
    ("mul-div-const",      |rw, op| match *op { Op::Binary(Mul, q, d) if rw.const_value(d).is_some() => mul_div_const(rw, q, d), _ => None }),
    // x / 1 → x
    ("div-one",            |rw, op| match *op { Op::Binary(Div, x, y) if rw.is_const(y, 1.0) => Some(x), _ => None }),
    // x / c → x * (1/c)  when c is a power of two (so 1/c is exact, and so is the result)
    ("div-const",          |rw, op| match *op { Op::Binary(Div, x, y) => div_const(rw, x, y), _ => None }),
    // c / y → -((-c) / y) for a constant c < 0 (the negation can then cancel)
    ("div-neg-const",      |rw, op| match *op { Op::Binary(Div, c, y) => div_neg_const(rw, c, y), _ => None }),
    // -x / y → -(x / y)
    ("div-neg",            |rw, op| match *op { Op::Binary(Div, x, y) => { let x = neg_operand(rw, x)?; let quotient = rw.binary(Div, x, y); Some(rw.unary(Neg, quotient)) } _ => None }),
    // x ^ 1 → x
    ("pow-one",            |rw, op| match *op { Op::Binary(Pow, x, y) if rw.is_const(y, 1.0) => Some(x), _ => None }),
    // x ^ 0 → 1  (C's pow gives 1 even for NaN)
    ("pow-zero",           |rw, op| match *op { Op::Binary(Pow, x, y) if rw.is_const(y, 0.0) => { let shape = rw.shape(x).clone(); Some(rw.constant(1.0, &shape)) } _ => None }),
    // x ^ 2 → square(x)
    ("pow-two",            |rw, op| match *op { Op::Binary(Pow, x, y) if rw.is_const(y, 2.0) => Some(rw.unary(Square, x)), _ => None }),
    // square(-x) → square(x)
    ("square-neg",         |rw, op| match *op { Op::Unary(Square, x) => { let x = negated(rw, x)?; Some(rw.unary(Square, x)) } _ => None }),
    // log1p(exp(x)) → softplus(x)  (one function instead of two, and no overflow for x > 709)
    ("log1p-exp",          |rw, op| match *op { Op::Unary(Log1p, x) => match *rw.op(x) { Op::Unary(Exp, z) => Some(rw.unary(Softplus, z)), _ => None }, _ => None }),
    // log(sigmoid(x)) → -softplus(-x) where the sigmoid has no other use (one function
    // instead of two, and no -inf where sigmoid(x) underflows, x < -745)
    ("log-sigmoid",        |rw, op| match *op { Op::Unary(Log, s) if rw.is_single_use(s) => match *rw.op(s) { Op::Unary(Sigmoid, x) => { let x = rw.unary(Neg, x); let sp = rw.unary(Softplus, x); Some(rw.unary(Neg, sp)) } _ => None }, _ => None }),
    // exp(log_softmax(x, k)) → softmax(x, k)  (for reading; the JIT turns it back when the
    // log-softmax is computed anyway)
    ("exp-log-softmax",    |rw, op| match *op { Op::Unary(Exp, x) => match *rw.op(x) { Op::LogSoftmax(z, axis) => Some(rw.emit(Op::Softmax(z, axis))), _ => None }, _ => None }),
    // f(broadcast(x)) → broadcast(f(x))  (computes f on fewer elements)
    ("unary-broadcast",    |rw, op| match *op { Op::Unary(u, b) => match *rw.op(b) { Op::Broadcast(x, ref s) => { let s = s.clone(); let fx = rw.unary(u, x); Some(rw.broadcast(fx, &s)) } _ => None }, _ => None }),
    // broadcast(x, S) ∘ broadcast(y, S) → broadcast(x ∘ y, S) when x, y have one shape
    ("binary-broadcast",   |rw, op| match *op { Op::Binary(o, a, b) => binary_broadcast(rw, o, a, b), _ => None }),
    // where(m, a, a) → a
    ("select-same",        |_, op| match *op { Op::Select(_, a, b) if a == b => Some(a), _ => None }),
    // broadcast(x, shape(x)) → x
    ("broadcast-same",     |rw, op| match *op { Op::Broadcast(x, ref s) if rw.shape(x) == s => Some(x), _ => None }),
    // broadcast(broadcast(x)) → broadcast(x)
    ("broadcast-broadcast",|rw, op| match *op { Op::Broadcast(b, ref s) => match *rw.op(b) { Op::Broadcast(x, _) if broadcastable(rw.shape(x), s) => { let s = s.clone(); Some(rw.broadcast(x, &s)) } _ => None }, _ => None }),
    // broadcast(reshape(x)) → broadcast(x) when the reshape only adds or drops leading 1s
    ("broadcast-reshape",  |rw, op| match *op { Op::Broadcast(r, ref s) => match *rw.op(r) { Op::Reshape(x, _) if same_aligned(rw.shape(x), rw.shape(r)) && broadcastable(rw.shape(x), s) => { let s = s.clone(); Some(rw.broadcast(x, &s)) } _ => None }, _ => None }),
    // reshape(x, shape(x)) → x
    ("reshape-same",       |rw, op| match *op { Op::Reshape(x, ref s) if rw.shape(x) == s => Some(x), _ => None }),
    // reshape(reshape(x)) → reshape(x)
    ("reshape-reshape",    |rw, op| match *op { Op::Reshape(r, ref s) => match *rw.op(r) { Op::Reshape(x, _) => { let s = s.clone(); Some(rw.reshape(x, &s)) } _ => None }, _ => None }),
    // reshape(broadcast(scalar)) → broadcast(scalar)
    ("reshape-broadcast",  |rw, op| match *op { Op::Reshape(b, ref s) => match *rw.op(b) { Op::Broadcast(x, _) if rw.shape(x).is_empty() => { let s = s.clone(); Some(rw.broadcast(x, &s)) } _ => None }, _ => None }),
    // transpose(transpose(x)) → x
    ("transpose-transpose",|rw, op| match *op { Op::Transpose(t) => match *rw.op(t) { Op::Transpose(x) => Some(x), _ => None }, _ => None }),
    // (a @ b).T → b.T @ a.T when a or b is a transpose (which then cancels)
    ("transpose-matmul",   |rw, op| match *op { Op::Transpose(m) => transpose_matmul(rw, m), _ => None }),
    // transpose(column(v)) → row(v), transpose(row(v)) → column(v)
    ("transpose-vector",   |rw, op| match *op { Op::Transpose(t) => transpose_vector(rw, t), _ => None }),
    // transpose(broadcast(scalar)) → broadcast(scalar)
    ("transpose-broadcast",|rw, op| match *op { Op::Transpose(b) => match *rw.op(b) { Op::Broadcast(x, _) if rw.shape(x).is_empty() => { let s = rw.shape(b).iter().rev().copied().collect::<Vec<_>>(); Some(rw.broadcast(x, &s)) } _ => None }, _ => None }),
    // sum(x, axes) → reshape(x) when every reduced axis has the literal size 1; max/min
    // alike (the JIT reads such a reduction as its operand, so `sum` of a `[1]` holding
    // -0 is -0 on both engines, as in JAX, not 0 + -0)
    ("reduce-unit-axes",   |rw, op| match *op { Op::Reduce(_, x, axes) if (0..rw.shape(x).len()).filter(|&k| axes.contains(k)).all(|k| rw.shape(x)[k].is_one()) => { let s = rw.type_of(op).shape; Some(rw.reshape(x, &s)) } _ => None }),
    // sum(broadcast(x), axes) → sum(x, fewer axes) * (the broadcast sizes); max/min alike
    ("reduce-broadcast",   |rw, op| match *op { Op::Reduce(r, b, axes) => reduce_broadcast(rw, r, b, axes), _ => None }),
    // sum(onehot(l, K) * broadcast(column(g)), 1) → g  (one-hot rows sum to one)
    ("sum-onehot-rows",    |rw, op| match *op { Op::Reduce(ReduceOp::Sum, p, axes) if axes == Axes::one(1) => sum_onehot_rows(rw, p), _ => None }),
];

/// The first rule that applies to `op`, by name, and its value.
pub(super) fn rewrite(rw: &mut Rewriter, op: &Op) -> Option<Value> {
    for (name, rule) in RULES {
        if let Some(value) = rule(rw, op) {
            let want = rw.type_of(op);
            assert!(
                rw.func.ty(value) == &want,
                "compiler bug: rule {name} changed the type of {op:?}"
            );
            return Some(value);
        }
    }
    None
}

/// True if `c` is a constant and `x` is not (so `c ∘ x` should become `x ∘ c`).
fn is_const_pair(rw: &Rewriter, c: Value, x: Value) -> bool {
    rw.const_value(c).is_some() && rw.const_value(x).is_none()
}

/// `y` if `v` is `-y`.
fn neg_operand(rw: &Rewriter, v: Value) -> Option<Value> {
    match *rw.op(v) {
        Op::Unary(Neg, y) => Some(y),
        _ => None,
    }
}

/// `y` if `v` is `-y`, or `broadcast(y)` if `v` is `broadcast(-y)` (built on demand):
/// for rules where the negation then vanishes.
fn negated(rw: &mut Rewriter, v: Value) -> Option<Value> {
    match *rw.op(v) {
        Op::Unary(Neg, y) => Some(y),
        Op::Broadcast(n, ref shape) => {
            let shape = shape.clone();
            let Op::Unary(Neg, y) = *rw.op(n) else {
                return None;
            };
            Some(rw.broadcast(y, &shape))
        }
        _ => None,
    }
}

/// True if `a` and `b` are equal after dropping leading unit dimensions (a reshape
/// between them does not change how they broadcast).
fn same_aligned(a: &[crate::ir::Dim], b: &[crate::ir::Dim]) -> bool {
    let strip = |s: &[crate::ir::Dim]| {
        s.iter()
            .skip_while(|d| d.is_one())
            .copied()
            .collect::<Vec<_>>()
    };
    strip(a) == strip(b)
}

fn neg_mul_sub(rw: &mut Rewriter, x: Value) -> Option<Value> {
    let Op::Binary(Mul, difference, factor) = *rw.op(x) else {
        return None;
    };
    let Op::Binary(Sub, a, b) = *rw.op(difference) else {
        return None;
    };
    let flipped = rw.binary(Sub, b, a);
    Some(rw.binary(Mul, flipped, factor))
}

fn mul_const_const(rw: &mut Rewriter, xc: Value, d: Value) -> Option<Value> {
    let Op::Binary(Mul, x, c) = *rw.op(xc) else {
        return None;
    };
    let (c_value, d_value) = (rw.const_value(c)?, rw.const_value(d)?);
    if !(is_power_of_two(c_value) || is_power_of_two(d_value)) || !(c_value * d_value).is_normal() {
        return None;
    }
    let product = rw.binary(Mul, c, d);
    Some(rw.binary(Mul, x, product))
}

/// Whether `v` is ± a power of two (a normal number with an all-zero mantissa), so that
/// multiplying by it only moves the exponent.
fn is_power_of_two(v: f64) -> bool {
    v.is_normal() && v.to_bits() & ((1 << 52) - 1) == 0
}

fn div_const(rw: &mut Rewriter, x: Value, y: Value) -> Option<Value> {
    let c = rw.const_value(y)?;
    if !is_power_of_two(c) || !(1.0 / c).is_normal() || rw.const_value(x).is_some() {
        return None;
    }
    let shape = rw.shape(y).clone();
    let reciprocal = rw.constant(1.0 / c, &shape);
    Some(rw.binary(Mul, x, reciprocal))
}

fn binary_broadcast(rw: &mut Rewriter, o: BinaryOp, a: Value, b: Value) -> Option<Value> {
    let (Op::Broadcast(x, ref shape), Op::Broadcast(y, _)) = (rw.op(a).clone(), rw.op(b).clone())
    else {
        return None;
    };
    if rw.shape(x) != rw.shape(y) {
        return None;
    }
    let inner = rw.binary(o, x, y);
    Some(rw.broadcast(inner, shape))
}

/// A reduction of a broadcast: the reduced axes that the broadcast created or stretched
/// need no work (a sum multiplies by their sizes, a max or min ignores them); the others
/// are reduced on the smaller operand.
fn reduce_broadcast(rw: &mut Rewriter, r: ReduceOp, b: Value, axes: Axes) -> Option<Value> {
    let Op::Broadcast(x, ref shape) = *rw.op(b) else {
        return None;
    };
    let shape = shape.clone();
    let x_shape = rw.shape(x).clone();
    let offset = shape.len() - x_shape.len();
    let mut x_axes = 0u8;
    let mut stretched: Vec<Dim> = Vec::new();
    for (k, d) in shape.iter().enumerate() {
        if !axes.contains(k) {
            continue;
        }
        if k < offset || x_shape[k - offset].is_one() {
            stretched.push(*d);
        } else {
            x_axes |= 1 << (k - offset);
        }
    }
    if stretched.is_empty() {
        return None;
    }
    let reduced = if x_axes == 0 {
        x
    } else {
        rw.emit(Op::Reduce(r, x, Axes(x_axes)))
    };
    // Drop the unit dimensions of x that were reduced, then broadcast to the result.
    let kept: Vec<Dim> = x_shape
        .iter()
        .enumerate()
        .filter(|(k, _)| !axes.contains(k + offset))
        .map(|(_, d)| *d)
        .collect();
    let reduced = rw.reshape(reduced, &kept);
    let scaled = match r {
        ReduceOp::Max | ReduceOp::Min => reduced,
        ReduceOp::Sum => {
            let mut count: Option<Value> = None;
            for d in stretched {
                let size = match d {
                    Dim::Const(n) => rw.emit(Op::Const(n as f64)),
                    Dim::Sym(var) => rw.emit(Op::DimSize(var)),
                };
                count = Some(match count {
                    None => size,
                    Some(previous) => rw.binary(Mul, previous, size),
                });
            }
            let count = count.expect("compiler bug: no stretched axis");
            let count = rw.broadcast(count, &kept);
            rw.binary(Mul, reduced, count)
        }
    };
    let result_shape = axes.reduce_shape(&shape);
    Some(rw.broadcast(scaled, &result_shape))
}

/// `sum(onehot(l, K) * broadcast(y, [B, K]), 1)` with `y` constant along axis 1 is `y`
/// as a `[B]` vector: each one-hot row has exactly one 1.
fn sum_onehot_rows(rw: &mut Rewriter, p: Value) -> Option<Value> {
    let Op::Binary(Mul, a, b) = *rw.op(p) else {
        return None;
    };
    let spread = if matches!(rw.op(a), Op::OneHot(..)) {
        b
    } else if matches!(rw.op(b), Op::OneHot(..)) {
        a
    } else {
        return None;
    };
    let Op::Broadcast(y, ref shape) = *rw.op(spread) else {
        return None;
    };
    if shape.len() != 2 {
        return None;
    }
    let rows = shape[0];
    let y_shape = rw.shape(y).clone();
    let column: Vec<Dim> = match y_shape.as_slice() {
        [] => Vec::new(),
        [d] if d.is_one() => Vec::new(),
        [d, one] if one.is_one() => vec![*d],
        _ => return None,
    };
    let y = rw.reshape(y, &column);
    Some(rw.broadcast(y, &[rows]))
}

fn mul_sub_neg(rw: &mut Rewriter, x: Value, y: Value) -> Option<Value> {
    let Op::Binary(Sub, a, b) = *rw.op(x) else {
        return None;
    };
    let factor = negated(rw, y)?;
    let flipped = rw.binary(Sub, b, a);
    Some(rw.binary(Mul, flipped, factor))
}

fn factor_right(rw: &mut Rewriter, o: BinaryOp, x: Value, y: Value) -> Option<Value> {
    let (Op::Binary(Mul, a, c), Op::Binary(Mul, b, d)) = (rw.op(x).clone(), rw.op(y).clone())
    else {
        return None;
    };
    if c != d || !rw.is_single_use(x) || !rw.is_single_use(y) {
        return None;
    }
    let combined = rw.binary(o, a, b);
    Some(rw.binary(Mul, combined, c))
}

fn div_neg_const(rw: &mut Rewriter, c: Value, y: Value) -> Option<Value> {
    let value = rw.const_value(c)?;
    if value >= 0.0 || value.is_nan() || rw.const_value(y).is_some() {
        return None;
    }
    let shape = rw.shape(c).clone();
    let positive = rw.constant(-value, &shape);
    let quotient = rw.binary(Div, positive, y);
    Some(rw.unary(Neg, quotient))
}

fn mul_div_const(rw: &mut Rewriter, q: Value, d: Value) -> Option<Value> {
    let Op::Binary(Div, c, y) = *rw.op(q) else {
        return None;
    };
    rw.const_value(c)?;
    let numerator = rw.binary(Mul, c, d);
    Some(rw.binary(Div, numerator, y))
}

fn transpose_matmul(rw: &mut Rewriter, m: Value) -> Option<Value> {
    let Op::MatMul(a, b) = *rw.op(m) else {
        return None;
    };
    let is_transpose = |v: Value| matches!(rw.op(v), Op::Transpose(_));
    if !is_transpose(a) && !is_transpose(b) {
        return None;
    }
    let bt = rw.emit(Op::Transpose(b));
    let at = rw.emit(Op::Transpose(a));
    Some(rw.emit(Op::MatMul(bt, at)))
}

fn transpose_vector(rw: &mut Rewriter, t: Value) -> Option<Value> {
    let Op::Reshape(v, _) = *rw.op(t) else {
        return None;
    };
    if rw.shape(v).len() != 1 {
        return None;
    }
    let flipped: Vec<Dim> = rw.shape(t).iter().rev().copied().collect();
    Some(rw.reshape(v, &flipped))
}
