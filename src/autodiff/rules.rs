//! The VJP table: for each op, the contributions of an output adjoint to the adjoints of
//! its operands.
//!
//! In: the op, its result `ans` (so rules reuse the forward value: `exp' = ans`,
//! `sigmoid' = ans (1 - ans)`...), the adjoint `g` of `ans` (same shape as `ans`), and
//! which operands are active. Out: `(operand, contribution)` pairs, only for active
//! operands, each contribution of the operand's type.
//!
//! One exhaustive `match` over [`Op`] (and over [`UnaryOp`] / [`BinaryOp`] inside it),
//! with no catch-all arm: a new op cannot compile without its rule. Non-differentiable
//! ops (comparisons, one-hot rows, constants, dimension sizes, integer data) contribute
//! nothing. Kinks follow the spec: `relu'(0) = abs'(0) = 0`, ties of `maximum`/`minimum`
//! and of `max`/`min` reductions split the gradient equally.

use super::Builder;
use crate::ir::{Axes, BinaryOp, CmpOp, Dim, Op, ReduceOp, UnaryOp, Value};

/// The contributions of `g`, the adjoint of `ans = op(operands)`, to the adjoints of the
/// operands for which `active` holds.
pub(super) fn vjp(
    b: &mut Builder,
    op: &Op,
    ans: Value,
    g: Value,
    active: &dyn Fn(Value) -> bool,
) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    match *op {
        // Leaves and piecewise-constant ops: nothing flows through.
        Op::Arg(_) | Op::Const(_) | Op::ConstInt(_) | Op::DimSize(_) => {}
        Op::Compare(..) | Op::OneHot(..) => {}
        Op::Unary(unary, x) => {
            if active(x) {
                out.push((x, unary_vjp(b, unary, x, ans, g)));
            }
        }
        Op::Binary(binary, x, y) => binary_vjp(b, binary, x, y, ans, g, active, &mut out),
        Op::Select(mask, x, y) => {
            // where(m, x, y): g flows to x where m holds and to y elsewhere.
            let zero = b.constant_like(0.0, g);
            if active(x) {
                out.push((x, b.select(mask, g, zero)));
            }
            if active(y) {
                out.push((y, b.select(mask, zero, g)));
            }
        }
        Op::Broadcast(x, _) => {
            if active(x) {
                let shape = b.shape(x);
                out.push((x, b.unbroadcast(g, &shape)));
            }
        }
        Op::Reshape(x, _) => {
            if active(x) {
                let shape = b.shape(x);
                out.push((x, b.reshape(g, &shape)));
            }
        }
        Op::Transpose(x) => {
            if active(x) {
                out.push((x, b.push(Op::Transpose(g))));
            }
        }
        Op::Reduce(ReduceOp::Sum, x, axes) => {
            if active(x) {
                let shape = b.shape(x);
                out.push((x, b.expand(g, axes, &shape)));
            }
        }
        Op::Reduce(ReduceOp::Max | ReduceOp::Min, x, axes) => {
            // The gradient goes to the elements equal to the extremum, split equally
            // among ties: g · mask / count(mask).
            if active(x) {
                let shape = b.shape(x);
                let extremum = b.expand(ans, axes, &shape);
                let mask = b.compare(CmpOp::Eq, x, extremum);
                let one = b.constant(1.0, &shape);
                let zero = b.constant(0.0, &shape);
                let indicator = b.select(mask, one, zero);
                let count = b.reduce_sum(indicator, axes);
                let share = b.div(g, count);
                let share = b.expand(share, axes, &shape);
                out.push((x, b.mul(indicator, share)));
            }
        }
        Op::LogSumExp(x, axes) => {
            // d logsumexp(x) / dx = exp(x - logsumexp(x)) = softmax(x). Those exponentials
            // sum to 1 but for the rounding of logsumexp(x) itself, which is as large as an
            // ulp of x (2 at 1e16) and scales them all alike: dividing by their sum undoes
            // it, as JAX's max-shifted softmax does.
            if active(x) {
                let shape = b.shape(x);
                let lse = b.expand(ans, axes, &shape);
                let shifted = b.sub(x, lse);
                let weights = b.unary(UnaryOp::Exp, shifted);
                let total = b.reduce_sum(weights, axes);
                let share = b.div(g, total);
                let share = b.expand(share, axes, &shape);
                out.push((x, b.mul(share, weights)));
            }
        }
        Op::Softmax(x, axis) => {
            // s = softmax(x): gx = s · (g - sum(g · s, axis)).
            if active(x) {
                let shape = b.shape(x);
                let axes = along(&shape, axis);
                let weighted = b.mul(g, ans);
                let total = b.reduce_sum(weighted, axes);
                let total = b.expand(total, axes, &shape);
                let centered = b.sub(g, total);
                out.push((x, b.mul(ans, centered)));
            }
        }
        Op::LogSoftmax(x, axis) => {
            // l = log_softmax(x): gx = g - exp(l) · sum(g, axis).
            if active(x) {
                let shape = b.shape(x);
                let axes = along(&shape, axis);
                let total = b.reduce_sum(g, axes);
                let total = b.expand(total, axes, &shape);
                let softmax = b.unary(UnaryOp::Exp, ans);
                let spread = b.mul(softmax, total);
                out.push((x, b.sub(g, spread)));
            }
        }
        Op::MatMul(x, y) => {
            // C = A @ B: gA = g @ Bᵀ, gB = Aᵀ @ g.
            if active(x) {
                let yt = b.push(Op::Transpose(y));
                out.push((x, b.push(Op::MatMul(g, yt))));
            }
            if active(y) {
                let xt = b.push(Op::Transpose(x));
                out.push((y, b.push(Op::MatMul(xt, g))));
            }
        }
        Op::Gather(table, index) => {
            // Rows read at `index` receive the rows of g, summed where indices repeat.
            if active(table) {
                let rows = b.shape(table)[0];
                out.push((table, b.push(Op::ScatterAdd(g, index, rows))));
            }
        }
        Op::ScatterAdd(updates, index, _) => {
            // Row b of the updates went to row index[b]: read it back.
            if active(updates) {
                out.push((updates, b.push(Op::Gather(g, index))));
            }
        }
        Op::Pick(x, labels) => {
            // x[b, l[b]] for each b: g[b] goes to column l[b] of row b,
            // i.e. onehot(l, K) · column(g).
            if active(x) {
                let shape = b.shape(x);
                let rows = onehot_rows(b, labels, shape[1]);
                let column = b.reshape(g, &[shape[0], Dim::Const(1)]);
                let spread = b.broadcast(column, &shape);
                out.push((x, b.mul(rows, spread)));
            }
        }
    }
    out
}

fn onehot_rows(b: &mut Builder, labels: Value, depth: Dim) -> Value {
    b.push(Op::OneHot(labels, depth))
}

/// The adjoint of `x` for `ans = unary(x)`.
fn unary_vjp(b: &mut Builder, unary: UnaryOp, x: Value, ans: Value, g: Value) -> Value {
    match unary {
        UnaryOp::Neg => b.neg(g),
        // exp' = exp: reuse the result.
        UnaryOp::Exp => b.mul(g, ans),
        UnaryOp::Log => b.div(g, x),
        // log1p'(x) = 1 / (1 + x).
        UnaryOp::Log1p => {
            let one = b.constant_like(1.0, x);
            let denominator = b.add(x, one);
            b.div(g, denominator)
        }
        // sqrt'(x) = 1 / (2 sqrt(x)): reuse the result.
        UnaryOp::Sqrt => {
            let twice = b.mul_const(ans, 2.0);
            b.div(g, twice)
        }
        UnaryOp::Sin => {
            let cos = b.unary(UnaryOp::Cos, x);
            b.mul(g, cos)
        }
        UnaryOp::Cos => {
            let sin = b.unary(UnaryOp::Sin, x);
            let product = b.mul(g, sin);
            b.neg(product)
        }
        // tanh' = 1 - tanh²: reuse the result t.
        UnaryOp::Tanh => {
            let t_squared = b.unary(UnaryOp::Square, ans);
            let slope = b.const_sub(1.0, t_squared);
            b.mul(g, slope)
        }
        // sigmoid' = s (1 - s): reuse the result s.
        UnaryOp::Sigmoid => {
            let scaled = b.mul(g, ans);
            let complement = b.const_sub(1.0, ans);
            b.mul(scaled, complement)
        }
        // relu'(x) = [x > 0], so relu'(0) = 0.
        UnaryOp::Relu => {
            let zero = b.constant_like(0.0, x);
            let positive = b.compare(CmpOp::Gt, x, zero);
            b.select(positive, g, zero)
        }
        // softplus'(x) = sigmoid(x).
        UnaryOp::Softplus => {
            let slope = b.unary(UnaryOp::Sigmoid, x);
            b.mul(g, slope)
        }
        // abs'(x) = sign(x), with abs'(0) = 0.
        UnaryOp::Abs => {
            let zero = b.constant_like(0.0, x);
            let positive = b.compare(CmpOp::Gt, x, zero);
            let negative = b.compare(CmpOp::Lt, x, zero);
            let minus_g = b.neg(g);
            let below = b.select(negative, minus_g, zero);
            b.select(positive, g, below)
        }
        // square'(x) = 2x; `g * 2` first so a constant g folds.
        UnaryOp::Square => {
            let twice = b.mul_const(g, 2.0);
            b.mul(twice, x)
        }
    }
}

/// Pushes the contributions of `g`, the adjoint of `ans = binary(x, y)`.
#[allow(clippy::too_many_arguments)]
fn binary_vjp(
    b: &mut Builder,
    binary: BinaryOp,
    x: Value,
    y: Value,
    ans: Value,
    g: Value,
    active: &dyn Fn(Value) -> bool,
    out: &mut Vec<(Value, Value)>,
) {
    match binary {
        BinaryOp::Add => {
            if active(x) {
                out.push((x, g));
            }
            if active(y) {
                out.push((y, g));
            }
        }
        BinaryOp::Sub => {
            if active(x) {
                out.push((x, g));
            }
            if active(y) {
                out.push((y, b.neg(g)));
            }
        }
        BinaryOp::Mul => {
            if active(x) {
                out.push((x, b.mul(g, y)));
            }
            if active(y) {
                out.push((y, b.mul(g, x)));
            }
        }
        BinaryOp::Div => {
            // q = x / y: gx = g / y, gy = -g x / y² = -(gx · q).
            let gx = b.div(g, y);
            if active(x) {
                out.push((x, gx));
            }
            if active(y) {
                let product = b.mul(gx, ans);
                out.push((y, b.neg(product)));
            }
        }
        BinaryOp::Pow => {
            // p = x ^ y: gx = g · y · x^(y-1); gy = g · p · log(x), built only when y is
            // active (for a constant exponent, log of a negative base would be NaN).
            // As JAX does: gx is 0 where y = 0 (x^0 is constant in x, though 0 · 0^-1 is
            // NaN), and log(x) is taken as 0 where x = 0 (p = 0^y is 0 for every y > 0,
            // though 0 · log 0 is NaN).
            // x, y and p have one shape (the IR's binary ops broadcast nothing).
            let zero = b.constant_like(0.0, y);
            if active(x) {
                let one = b.constant_like(1.0, y);
                let exponent = b.sub(y, one);
                let power = b.binary(BinaryOp::Pow, x, exponent);
                let scaled = b.mul(g, y);
                let gx = b.mul(scaled, power);
                let constant = b.compare(CmpOp::Eq, y, zero);
                out.push((x, b.select(constant, zero, gx)));
            }
            if active(y) {
                let log = b.unary(UnaryOp::Log, x);
                let at_zero = b.compare(CmpOp::Eq, x, zero);
                let log = b.select(at_zero, zero, log);
                let scaled = b.mul(g, ans);
                out.push((y, b.mul(scaled, log)));
            }
        }
        BinaryOp::Max => extremum_vjp(b, CmpOp::Gt, x, y, g, active, out),
        BinaryOp::Min => extremum_vjp(b, CmpOp::Lt, x, y, g, active, out),
    }
}

/// `maximum` (`wins` = `Gt`) or `minimum` (`wins` = `Lt`): the winner takes g; at a tie
/// each side takes g / 2.
fn extremum_vjp(
    b: &mut Builder,
    wins: CmpOp,
    x: Value,
    y: Value,
    g: Value,
    active: &dyn Fn(Value) -> bool,
    out: &mut Vec<(Value, Value)>,
) {
    let tie = b.compare(CmpOp::Eq, x, y);
    let half = b.mul_const(g, 0.5);
    let zero = b.constant_like(0.0, g);
    let tie_share = b.select(tie, half, zero);
    if active(x) {
        let x_wins = b.compare(wins, x, y);
        out.push((x, b.select(x_wins, g, tie_share)));
    }
    if active(y) {
        let y_wins = b.compare(wins, y, x);
        out.push((y, b.select(y_wins, g, tie_share)));
    }
}

/// The axis set of a softmax along `axis` of a value of `shape`: empty for a scalar
/// (whose softmax is the constant 1), so the sums in the rules are identities.
fn along(shape: &[Dim], axis: u8) -> Axes {
    if shape.is_empty() {
        Axes(0)
    } else {
        Axes::one(axis as usize)
    }
}
