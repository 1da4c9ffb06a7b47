//! Constant folding: elementwise ops whose operands are constants in every element.
//!
//! In: an op whose operands are already simplified. Out: the folded constant (a scalar
//! `Const`, broadcast to the op's shape), or `None`. A constant may be a `Const` or a
//! broadcast, reshape or transpose of one, so `broadcast(c) * broadcast(d)` folds to
//! `broadcast(c * d)`. The scalar functions here define the same values as the
//! interpreter's elementwise kernels
//! ([`crate::interp`], whose `sigmoid` and `softplus` are used here).

use super::cse::Rewriter;
use crate::interp;
use crate::ir::{BinaryOp, Op, UnaryOp, Value};

/// The folded value of `op`, if all its operands are constants.
pub(super) fn fold(rewriter: &mut Rewriter, op: &Op) -> Option<Value> {
    // where(c ∘ d, a, b) → a or b, for constants c and d.
    if let Op::Select(mask, a, b) = *op {
        let Op::Compare(cmp, x, y) = *rewriter.op(mask) else {
            return None;
        };
        let (cx, cy) = (rewriter.const_value(x)?, rewriter.const_value(y)?);
        return Some(if interp::compare(cmp, cx, cy) { a } else { b });
    }
    let (c, like) = match *op {
        Op::Unary(unary, x) => (eval_unary(unary, rewriter.const_value(x)?), x),
        Op::Binary(binary, a, b) => {
            let (ca, cb) = (rewriter.const_value(a)?, rewriter.const_value(b)?);
            (eval_binary(binary, ca, cb), a)
        }
        _ => return None,
    };
    let shape = rewriter.shape(like).clone();
    Some(rewriter.constant(c, &shape))
}

/// The value of an elementwise function of one real.
fn eval_unary(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Log1p => x.ln_1p(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => interp::sigmoid(x),
        UnaryOp::Relu => {
            if x > 0.0 || x.is_nan() {
                x
            } else {
                0.0
            }
        }
        UnaryOp::Softplus => interp::softplus(x),
        UnaryOp::Abs => x.abs(),
        UnaryOp::Square => x * x,
    }
}

/// The value of an elementwise function of two reals.
fn eval_binary(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Pow => a.powf(b),
        // NaN-propagating, as the interpreter's `maximum` and `minimum`.
        BinaryOp::Max => interp::nan_max(a, b),
        BinaryOp::Min => interp::nan_min(a, b),
    }
}
