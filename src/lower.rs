//! Checked program → forward IR.
//!
//! In: a [`Checked`] program (well-typed; every `fn` inlined; operands before users).
//! Out: the `forward` [`Function`]: `dims` and `args` as declared, an `Arg`
//! instruction for every argument first, then one or more IR instructions per node, results `loss` (role `Loss`) then every `output`
//! (role `Output`) in order.
//!
//! The IR is stricter than the language, so this is where the implicit becomes
//! explicit: a `Broadcast` before an elementwise op whose operand has another shape,
//! `Reshape`s around `MatMul` for the rank-1 cases of `@`, `mean` as a sum divided by
//! the element count. Nothing is simplified here, but no op is emitted that does
//! nothing (no broadcast or reshape to the same shape). A checked node is never
//! ill-typed, so a `push` failure here is a compiler bug.

use crate::check::{Checked, NodeId, NodeKind, Reduction};
use crate::ir::{ArgRole, Axes, BinaryOp, Dim, Function, Op, ReduceOp, ResultRole, Shape};
use crate::ir::{FuncResult, Value};

/// Lowers a checked program to the forward function (results: `loss`, then outputs).
pub fn lower(checked: &Checked) -> Function {
    let mut func = Function::new("forward", checked.dims.clone(), checked.args.clone());
    // Every argument first, in declaration order, whether it is used or not.
    let arg_values: Vec<Value> = (0..checked.args.len() as u32)
        .map(|k| func.push(Op::Arg(k)))
        .collect();
    let mut values: Vec<Value> = Vec::with_capacity(checked.nodes.len());
    for node in &checked.nodes {
        let value = match node.kind {
            NodeKind::Arg(k) => arg_values[k as usize],
            ref kind => lower_node(&mut func, &values, kind, &node.ty.shape),
        };
        debug_assert_eq!(
            func.ty(value),
            &node.ty,
            "compiler bug: lowering changed a type"
        );
        values.push(value);
    }
    let value_of = |node: NodeId| values[node.0 as usize];
    func.results.push(FuncResult {
        name: "loss".to_string(),
        role: ResultRole::Loss,
        value: value_of(checked.loss),
    });
    for (name, node) in &checked.outputs {
        func.results.push(FuncResult {
            name: name.clone(),
            role: ResultRole::Output,
            value: value_of(*node),
        });
    }
    debug_assert!(func
        .args
        .iter()
        .all(|a| a.role == ArgRole::Input || a.role == ArgRole::Param));
    func
}

/// Emits the instructions of one node whose operands are already lowered (`values`)
/// and returns the value of its result, of shape `shape`.
fn lower_node(func: &mut Function, values: &[Value], kind: &NodeKind, shape: &[Dim]) -> Value {
    let v = |node: NodeId| values[node.0 as usize];
    match *kind {
        NodeKind::Arg(k) => func.push(Op::Arg(k)),
        NodeKind::Const(c) => func.push(Op::Const(c)),
        NodeKind::ConstInt(n) => func.push(Op::ConstInt(n)),
        NodeKind::DimSize(d) => func.push(Op::DimSize(d)),
        NodeKind::Unary(op, x) => func.push(Op::Unary(op, v(x))),
        NodeKind::Binary(op, a, b) => {
            let a = broadcast_to(func, v(a), shape);
            let b = broadcast_to(func, v(b), shape);
            func.push(Op::Binary(op, a, b))
        }
        NodeKind::Compare(op, a, b) => {
            let a = broadcast_to(func, v(a), shape);
            let b = broadcast_to(func, v(b), shape);
            func.push(Op::Compare(op, a, b))
        }
        NodeKind::Where(m, a, b) => {
            let m = broadcast_to(func, v(m), shape);
            let a = broadcast_to(func, v(a), shape);
            let b = broadcast_to(func, v(b), shape);
            func.push(Op::Select(m, a, b))
        }
        NodeKind::MatMul(a, b) => matmul(func, v(a), v(b)),
        NodeKind::Reduce(reduction, x, axes) => reduce(func, reduction, v(x), axes),
        NodeKind::Softmax(x, axis) => func.push(Op::Softmax(v(x), axis)),
        NodeKind::LogSoftmax(x, axis) => func.push(Op::LogSoftmax(v(x), axis)),
        NodeKind::Transpose(x) => func.push(Op::Transpose(v(x))),
        NodeKind::Reshape(x) => reshape_to(func, v(x), shape),
        NodeKind::Gather(t, i) => func.push(Op::Gather(v(t), v(i))),
        NodeKind::Pick(x, l) => func.push(Op::Pick(v(x), v(l))),
        NodeKind::OneHot(l, depth) => func.push(Op::OneHot(v(l), depth)),
    }
}

/// `x` broadcast to `shape` (no instruction if it already has that shape).
fn broadcast_to(func: &mut Function, x: Value, shape: &[Dim]) -> Value {
    if func.ty(x).shape == shape {
        x
    } else {
        func.push(Op::Broadcast(x, shape.to_vec()))
    }
}

/// `x` reshaped to `shape` (no instruction if it already has that shape).
fn reshape_to(func: &mut Function, x: Value, shape: &[Dim]) -> Value {
    if func.ty(x).shape == shape {
        x
    } else {
        func.push(Op::Reshape(x, shape.to_vec()))
    }
}

/// `a @ b` for ranks 1 and 2: rank-1 operands become a row or a column around a
/// rank-2 `MatMul`; `[K] @ [K]` is the sum of the elementwise product.
fn matmul(func: &mut Function, a: Value, b: Value) -> Value {
    let sa: Shape = func.ty(a).shape.clone();
    let sb: Shape = func.ty(b).shape.clone();
    match (sa.len(), sb.len()) {
        (1, 1) => {
            let product = func.push(Op::Binary(BinaryOp::Mul, a, b));
            func.push(Op::Reduce(ReduceOp::Sum, product, Axes::all(1)))
        }
        (2, 2) => func.push(Op::MatMul(a, b)),
        (2, 1) => {
            let column = reshape_to(func, b, &[sb[0], Dim::Const(1)]);
            let product = func.push(Op::MatMul(a, column));
            reshape_to(func, product, &[sa[0]])
        }
        (1, 2) => {
            let row = reshape_to(func, a, &[Dim::Const(1), sa[0]]);
            let product = func.push(Op::MatMul(row, b));
            reshape_to(func, product, &[sb[1]])
        }
        ranks => panic!("compiler bug: matmul of ranks {ranks:?} passed the checker"),
    }
}

fn reduce(func: &mut Function, reduction: Reduction, x: Value, axes: Axes) -> Value {
    match reduction {
        Reduction::Sum => func.push(Op::Reduce(ReduceOp::Sum, x, axes)),
        Reduction::Max => func.push(Op::Reduce(ReduceOp::Max, x, axes)),
        Reduction::Min => func.push(Op::Reduce(ReduceOp::Min, x, axes)),
        Reduction::LogSumExp => func.push(Op::LogSumExp(x, axes)),
        Reduction::Mean => {
            let shape = func.ty(x).shape.clone();
            let sum = func.push(Op::Reduce(ReduceOp::Sum, x, axes));
            let count = element_count(func, &shape, axes);
            let count = broadcast_to(func, count, &func.ty(sum).shape.clone());
            func.push(Op::Binary(BinaryOp::Div, sum, count))
        }
    }
}

/// The number of elements along `axes` of `shape`, as a real scalar: literal sizes are
/// multiplied into one constant, symbolic ones are `DimSize`s.
fn element_count(func: &mut Function, shape: &[Dim], axes: Axes) -> Value {
    let mut literal: u64 = 1;
    let mut symbolic = Vec::new();
    for (k, dim) in shape.iter().enumerate() {
        if !axes.contains(k) {
            continue;
        }
        match *dim {
            Dim::Const(n) => literal = literal.saturating_mul(n),
            Dim::Sym(d) => symbolic.push(d),
        }
    }
    let mut count: Option<Value> = None;
    if literal != 1 || symbolic.is_empty() {
        count = Some(func.push(Op::Const(literal as f64)));
    }
    for d in symbolic {
        let size = func.push(Op::DimSize(d));
        count = Some(match count {
            None => size,
            Some(c) => func.push(Op::Binary(BinaryOp::Mul, c, size)),
        });
    }
    count.expect("compiler bug: an element count has at least one factor")
}
