//! The hash-consing rebuild: one simplification round.
//!
//! In: a function. Out: an equivalent function built afresh, instruction by instruction
//! in the old order, through the smart constructor [`Rewriter::emit`]: it tries constant
//! folding and the algebraic rules on the op (whose operands are already simplified),
//! and otherwise reuses an identical instruction if one exists (common subexpression
//! elimination; `f64` constants compare by bits) or appends a new one. The result may
//! hold dead instructions (the old forms of rewritten values); [`super::dce`] drops them.

use std::hash::{Hash, Hasher};

use rustc_hash::FxHashMap;

use super::{algebra, fold};
use crate::ir::{BinaryOp, Dim, FuncResult, Function, Op, Shape, Type, UnaryOp, Value};

/// How deep rewrites may nest (a rule's output is simplified again); past this, ops are
/// appended as they are. Rules shrink their input, so this is only a guard.
const MAX_REWRITE_DEPTH: u32 = 200;

/// An op as a hash key: structural equality, with constants compared by their bits
/// (so `0.0` and `-0.0` stay apart and `NaN` equals itself).
#[derive(Clone, Debug)]
struct OpKey(Op);

impl PartialEq for OpKey {
    fn eq(&self, other: &OpKey) -> bool {
        match (&self.0, &other.0) {
            (Op::Const(a), Op::Const(b)) => a.to_bits() == b.to_bits(),
            (a, b) => a == b,
        }
    }
}

impl Eq for OpKey {}

impl Hash for OpKey {
    // Every field, not only the operands: ops that differ only in an argument number,
    // a function or a shape (`arg 0`, `arg 1`, ...) must not share a bucket, or
    // interning gets quadratic.
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(&self.0).hash(state);
        match &self.0 {
            Op::Arg(k) => k.hash(state),
            Op::Const(c) => c.to_bits().hash(state),
            Op::ConstInt(c) => c.hash(state),
            Op::DimSize(d) => d.hash(state),
            Op::Unary(f, x) => (f, x).hash(state),
            Op::Binary(f, a, b) => (f, a, b).hash(state),
            Op::Compare(f, a, b) => (f, a, b).hash(state),
            Op::Select(m, a, b) => (m, a, b).hash(state),
            Op::Broadcast(x, shape) | Op::Reshape(x, shape) => (x, shape).hash(state),
            Op::Transpose(x) => x.hash(state),
            Op::Reduce(f, x, axes) => (f, x, axes).hash(state),
            Op::LogSumExp(x, axes) => (x, axes).hash(state),
            Op::Softmax(x, axis) | Op::LogSoftmax(x, axis) => (x, axis).hash(state),
            Op::MatMul(a, b) | Op::Gather(a, b) | Op::Pick(a, b) => (a, b).hash(state),
            Op::ScatterAdd(u, i, rows) => (u, i, rows).hash(state),
            Op::OneHot(l, depth) => (l, depth).hash(state),
        }
    }
}

/// Builds a simplified function; the rules read it and emit into it.
pub(super) struct Rewriter {
    /// The function being built.
    pub(super) func: Function,
    /// Every instruction appended so far, by op.
    memo: FxHashMap<OpKey, Value>,
    /// The current nesting of rewrites.
    depth: u32,
    /// False for a plain CSE round (no folding or rules).
    rules: bool,
    /// How many uses each value had in the function being rebuilt (summed over the old
    /// instructions it stands for); values built by rules are absent.
    old_uses: FxHashMap<Value, usize>,
}

/// One simplification round over `func`; with `rules` false, only common
/// subexpressions are merged (which makes the use counts the rules rely on exact).
pub(super) fn rebuild(func: &Function, rules: bool) -> Function {
    let mut rewriter = Rewriter {
        func: Function::new(&func.name, func.dims.clone(), func.args.clone()),
        memo: FxHashMap::default(),
        depth: 0,
        rules,
        old_uses: FxHashMap::default(),
    };
    let mut uses = vec![0usize; func.len()];
    for inst in &func.insts {
        for operand in inst.op.operands() {
            uses[operand.index()] += 1;
        }
    }
    for result in &func.results {
        uses[result.value.index()] += 1;
    }
    let mut renamed: Vec<Value> = Vec::with_capacity(func.len());
    for (index, inst) in func.insts.iter().enumerate() {
        let op = inst.op.map_operands(|v| renamed[v.index()]);
        let value = rewriter.emit(op);
        *rewriter.old_uses.entry(value).or_insert(0) += uses[index];
        debug_assert_eq!(
            rewriter.func.ty(value),
            &inst.ty,
            "compiler bug: simplification changed a type"
        );
        renamed.push(value);
    }
    let mut out = rewriter.func;
    out.results = func
        .results
        .iter()
        .map(|r| FuncResult {
            value: renamed[r.value.index()],
            ..r.clone()
        })
        .collect();
    out
}

impl Rewriter {
    /// The smart constructor: the value of `op` (whose operands are values of the
    /// function being built), simplified.
    pub(super) fn emit(&mut self, op: Op) -> Value {
        if self.rules && self.depth < MAX_REWRITE_DEPTH {
            self.depth += 1;
            let rewritten = fold::fold(self, &op).or_else(|| algebra::rewrite(self, &op));
            self.depth -= 1;
            if let Some(value) = rewritten {
                return value;
            }
        }
        self.intern(op)
    }

    /// The existing instruction computing `op`, or a new one.
    fn intern(&mut self, op: Op) -> Value {
        let key = OpKey(op);
        if let Some(&value) = self.memo.get(&key) {
            return value;
        }
        let value = self.func.push(key.0.clone());
        self.memo.insert(key, value);
        value
    }

    /// True if `v` stands for old instructions with a single use between them, so a
    /// rule that consumes it makes it dead (the test behind rules that would otherwise
    /// duplicate work).
    pub(super) fn is_single_use(&self, v: Value) -> bool {
        self.old_uses.get(&v) == Some(&1)
    }

    /// The op computing `v`.
    pub(super) fn op(&self, v: Value) -> &Op {
        self.func.op(v)
    }

    /// The shape of `v`.
    pub(super) fn shape(&self, v: Value) -> &Shape {
        &self.func.ty(v).shape
    }

    /// The type `op` would have.
    pub(super) fn type_of(&self, op: &Op) -> Type {
        op.result_type(&|v| self.func.ty(v), &self.func.args)
            .unwrap_or_else(|msg| panic!("compiler bug: a rule built an ill-typed op: {msg}"))
    }

    /// The scalar `c` if `v` is that constant in every element (a constant, possibly
    /// broadcast, reshaped or transposed).
    pub(super) fn const_value(&self, v: Value) -> Option<f64> {
        match *self.op(v) {
            Op::Const(c) => Some(c),
            Op::Broadcast(x, _) | Op::Reshape(x, _) | Op::Transpose(x) => self.const_value(x),
            _ => None,
        }
    }

    /// True if `v` is the constant `c` in every element.
    pub(super) fn is_const(&self, v: Value, c: f64) -> bool {
        self.const_value(v) == Some(c)
    }

    /// The constant `c` with the given shape.
    pub(super) fn constant(&mut self, c: f64, shape: &[Dim]) -> Value {
        let scalar = self.emit(Op::Const(c));
        self.broadcast(scalar, shape)
    }

    /// `x` broadcast to `shape`.
    pub(super) fn broadcast(&mut self, x: Value, shape: &[Dim]) -> Value {
        self.emit(Op::Broadcast(x, shape.to_vec()))
    }

    /// `x` reshaped to `shape`.
    pub(super) fn reshape(&mut self, x: Value, shape: &[Dim]) -> Value {
        self.emit(Op::Reshape(x, shape.to_vec()))
    }

    /// An elementwise function of one value.
    pub(super) fn unary(&mut self, op: UnaryOp, x: Value) -> Value {
        self.emit(Op::Unary(op, x))
    }

    /// An elementwise function of two values.
    pub(super) fn binary(&mut self, op: BinaryOp, a: Value, b: Value) -> Value {
        self.emit(Op::Binary(op, a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash(op: Op) -> u64 {
        rustc_hash::FxBuildHasher.hash_one(OpKey(op))
    }

    #[test]
    fn ops_that_differ_only_in_a_field_hash_apart() {
        // Sharing a hash makes interning n such ops take n² comparisons.
        let args: std::collections::HashSet<u64> = (0..1000).map(|k| hash(Op::Arg(k))).collect();
        assert_eq!(args.len(), 1000);
        let x = Value(0);
        assert_ne!(
            hash(Op::Unary(UnaryOp::Exp, x)),
            hash(Op::Unary(UnaryOp::Log, x))
        );
        assert_ne!(
            hash(Op::Binary(BinaryOp::Add, x, x)),
            hash(Op::Binary(BinaryOp::Mul, x, x))
        );
        assert_ne!(
            hash(Op::Broadcast(x, vec![Dim::Const(2)])),
            hash(Op::Broadcast(x, vec![Dim::Const(3)]))
        );
        assert_eq!(hash(Op::Const(f64::NAN)), hash(Op::Const(f64::NAN)));
        assert_ne!(hash(Op::Const(0.0)), hash(Op::Const(-0.0)));
    }
}
