//! Reverse mode: forward IR → value-and-gradient IR.
//!
//! In: a forward [`Function`] with one `loss` result (its outputs are ignored).
//! Out: a function named `grad`, with the same dims and args, whose instructions are the
//! forward instructions (copied, in the same order, so `Value`s of the forward mean the
//! same thing in the gradient) followed by the backward sweep; its results are `loss`
//! and then one [`ResultRole::Grad`] per param, in argument order, named after the param.
//!
//! The sweep walks the forward arena backwards (operands precede their users, so every
//! user of a value has been visited before the value itself) and asks the one VJP table
//! ([`rules::vjp`]) for each instruction's contributions to its operands' adjoints.
//! Contributions to a value used several times are accumulated with `Add`.
//!
//! Activity analysis keeps the sweep free of useless work: a value gets an adjoint only
//! if it depends on a param (it is *varied*) and the loss depends on it (it is
//! *useful*). So `a ^ b` with a constant `b` never builds `log(a)` (no NaN for a
//! negative `a`), and data-only subexpressions get no backward code at all. A param the
//! loss does not depend on gets a zero gradient.
//!
//! The result is raw (full of `g * 1` and broadcast constants); [`crate::simplify`]
//! cleans it up.

mod rules;

use crate::ir::{
    Axes, BinaryOp, CmpOp, Dim, Elem, FuncResult, Function, Op, ResultRole, Shape, UnaryOp, Value,
};

/// The value-and-gradient function of `forward`: results `loss`, then the gradient of
/// every param in argument order.
///
/// # Panics
/// If `forward` has no `loss` result (a compiler bug: the checker requires one).
pub fn grad(forward: &Function) -> Function {
    let loss = forward
        .results
        .iter()
        .find(|r| r.role == ResultRole::Loss)
        .map(|r| r.value)
        .unwrap_or_else(|| panic!("compiler bug: the forward function has no loss result"));
    let active = activity(forward, loss);

    let mut func = Function::new("grad", forward.dims.clone(), forward.args.clone());
    func.insts = forward.insts.clone();
    let mut builder = Builder { func: &mut func };

    let mut adjoints: Vec<Option<Value>> = vec![None; forward.len()];
    if active[loss.index()] {
        adjoints[loss.index()] = Some(builder.push(Op::Const(1.0)));
    }
    for index in (0..forward.len()).rev() {
        let Some(adjoint) = adjoints[index] else {
            continue;
        };
        let ans = Value(index as u32);
        let contributions = rules::vjp(
            &mut builder,
            &forward.insts[index].op,
            ans,
            adjoint,
            &|v: Value| active[v.index()],
        );
        for (operand, contribution) in contributions {
            debug_assert!(
                active[operand.index()],
                "compiler bug: a VJP rule gave an adjoint to the inactive {operand}"
            );
            let slot = &mut adjoints[operand.index()];
            *slot = Some(match *slot {
                None => contribution,
                Some(previous) => builder.binary(BinaryOp::Add, previous, contribution),
            });
        }
    }

    let mut results = vec![FuncResult {
        name: "loss".to_string(),
        role: ResultRole::Loss,
        value: loss,
    }];
    // A param may be read by several `Arg` instructions: its gradient is the sum of
    // their adjoints. Listed once, so that many params cost no scan each.
    let mut reads: Vec<Vec<usize>> = vec![Vec::new(); forward.args.len()];
    for (index, inst) in forward.insts.iter().enumerate() {
        if let Op::Arg(k) = inst.op {
            if let Some(list) = reads.get_mut(k as usize) {
                list.push(index);
            }
        }
    }
    for (k, decl) in forward.params() {
        let mut total: Option<Value> = None;
        for &index in &reads[k as usize] {
            if let Some(adjoint) = adjoints[index] {
                total = Some(match total {
                    None => adjoint,
                    Some(previous) => builder.binary(BinaryOp::Add, previous, adjoint),
                });
            }
        }
        let value = match total {
            Some(v) => v,
            None => builder.zeros(decl.ty.elem, &decl.ty.shape),
        };
        results.push(FuncResult {
            name: decl.name.clone(),
            role: ResultRole::Grad(k),
            value,
        });
    }
    func.results = results;
    func
}

/// For every value: does it depend on a param and does the loss depend on it?
fn activity(forward: &Function, loss: Value) -> Vec<bool> {
    let n = forward.len();
    let mut varied = vec![false; n];
    for (index, inst) in forward.insts.iter().enumerate() {
        if inst.ty.elem != Elem::Real {
            // Masks, labels and indices are piecewise constant: no derivative.
            continue;
        }
        varied[index] = match inst.op {
            Op::Arg(k) => forward.args[k as usize].role == crate::ir::ArgRole::Param,
            ref op => op.operands().iter().any(|v| varied[v.index()]),
        };
    }
    let mut useful = vec![false; n];
    if loss.index() < n {
        useful[loss.index()] = true;
    }
    for index in (0..n).rev() {
        if useful[index] {
            for v in forward.insts[index].op.operands() {
                useful[v.index()] = true;
            }
        }
    }
    varied
        .iter()
        .zip(&useful)
        .map(|(varied, useful)| *varied && *useful)
        .collect()
}

/// Appends the backward sweep's instructions, with small helpers that skip no-ops
/// (a broadcast or reshape to the shape a value already has).
pub(crate) struct Builder<'f> {
    func: &'f mut Function,
}

impl Builder<'_> {
    /// Appends one instruction.
    fn push(&mut self, op: Op) -> Value {
        self.func.push(op)
    }

    /// The shape of a value.
    fn shape(&self, v: Value) -> Shape {
        self.func.ty(v).shape.clone()
    }

    /// The real constant `c` with the given shape.
    fn constant(&mut self, c: f64, shape: &[Dim]) -> Value {
        let scalar = self.push(Op::Const(c));
        self.broadcast(scalar, shape)
    }

    /// The constant `c` with the shape of `like`.
    fn constant_like(&mut self, c: f64, like: Value) -> Value {
        let shape = self.shape(like);
        self.constant(c, &shape)
    }

    /// Zeros of an element type and shape (the gradient of an unused param).
    fn zeros(&mut self, elem: Elem, shape: &[Dim]) -> Value {
        let scalar = match elem {
            Elem::Int => self.push(Op::ConstInt(0)),
            Elem::Real | Elem::Bool => self.push(Op::Const(0.0)),
        };
        self.broadcast(scalar, shape)
    }

    fn unary(&mut self, op: UnaryOp, x: Value) -> Value {
        self.push(Op::Unary(op, x))
    }

    fn binary(&mut self, op: BinaryOp, a: Value, b: Value) -> Value {
        self.push(Op::Binary(op, a, b))
    }

    fn add(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinaryOp::Add, a, b)
    }

    fn sub(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinaryOp::Sub, a, b)
    }

    fn mul(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinaryOp::Mul, a, b)
    }

    fn div(&mut self, a: Value, b: Value) -> Value {
        self.binary(BinaryOp::Div, a, b)
    }

    fn neg(&mut self, x: Value) -> Value {
        self.unary(UnaryOp::Neg, x)
    }

    /// `x * c` for a constant `c` (constants go to the right).
    fn mul_const(&mut self, x: Value, c: f64) -> Value {
        let c = self.constant_like(c, x);
        self.mul(x, c)
    }

    /// `c - x` for a constant `c`.
    fn const_sub(&mut self, c: f64, x: Value) -> Value {
        let c = self.constant_like(c, x);
        self.sub(c, x)
    }

    fn compare(&mut self, op: CmpOp, a: Value, b: Value) -> Value {
        self.push(Op::Compare(op, a, b))
    }

    fn select(&mut self, mask: Value, a: Value, b: Value) -> Value {
        self.push(Op::Select(mask, a, b))
    }

    /// `x` broadcast to `shape` (nothing if it already has that shape).
    fn broadcast(&mut self, x: Value, shape: &[Dim]) -> Value {
        if self.func.ty(x).shape == shape {
            x
        } else {
            self.push(Op::Broadcast(x, shape.to_vec()))
        }
    }

    /// `x` reshaped to `shape` (nothing if it already has that shape).
    fn reshape(&mut self, x: Value, shape: &[Dim]) -> Value {
        if self.func.ty(x).shape == shape {
            x
        } else {
            self.push(Op::Reshape(x, shape.to_vec()))
        }
    }

    fn reduce_sum(&mut self, x: Value, axes: Axes) -> Value {
        if axes.0 == 0 {
            x
        } else {
            self.push(Op::Reduce(crate::ir::ReduceOp::Sum, x, axes))
        }
    }

    /// The adjoint of a broadcast: `g` (of a broadcast result's shape) summed over the
    /// axes that broadcasting created or stretched, then reshaped to `shape` (which
    /// re-inserts the unit dimensions). The one shared helper for every rule whose
    /// forward op broadcasts.
    fn unbroadcast(&mut self, g: Value, shape: &[Dim]) -> Value {
        let g_shape = self.shape(g);
        let offset = g_shape.len() - shape.len();
        let mut axes = 0u8;
        for (k, d) in g_shape.iter().enumerate() {
            let stretched = k < offset || shape[k - offset].is_one();
            if stretched && !d.is_one() {
                axes |= 1 << k;
            }
        }
        let summed = self.reduce_sum(g, Axes(axes));
        self.reshape(summed, shape)
    }

    /// The inverse of a reduction over `axes` of a value of shape `shape`: `g` (of the
    /// reduced shape) repeated along the reduced axes. Needs a reshape first when a
    /// reduced axis is not a leading one (`[M,N]` summed over axis 1 gives `[M]`, which
    /// must become `[M,1]` before broadcasting to `[M,N]`).
    fn expand(&mut self, g: Value, axes: Axes, shape: &[Dim]) -> Value {
        let first_kept = (0..shape.len())
            .find(|k| !axes.contains(*k))
            .unwrap_or(shape.len());
        let keep_dims: Shape = shape
            .iter()
            .enumerate()
            .skip(first_kept)
            .map(|(k, d)| if axes.contains(k) { Dim::Const(1) } else { *d })
            .collect();
        let reshaped = self.reshape(g, &keep_dims);
        self.broadcast(reshaped, shape)
    }
}
