//! The SSA intermediate representation shared by every stage after the checker.
//!
//! In: built by [`crate::lower`] from the checked AST, by [`crate::autodiff`] for the
//! gradient, rewritten by [`crate::simplify`]. Out: read by [`crate::interp`],
//! [`crate::jit`], the printers and the equation writer.
//!
//! # The IR, specified
//!
//! A [`Function`] is plain data:
//!
//! - `dims`: the symbolic dimension names (`B`, `D`...), indexed by [`DimVar`]. Their
//!   sizes are bound at call time from the shapes of the arguments.
//! - `args`: the inputs and params, in declaration order, each with a [`Type`].
//! - `insts`: an arena of instructions. [`Value`]`(i)` is the result of `insts[i]`.
//!   **Operands always precede their users** (`operand.0 < i`), so the arena is already
//!   in a valid evaluation order: CSE is a hash-consing rebuild, DCE one reverse sweep,
//!   reverse mode a reverse walk.
//! - `results`: named values returned by the function (the loss, outputs, gradients).
//!
//! Every instruction has one result with a [`Type`]: an element type ([`Elem`]) and a
//! [`Shape`] of rank 0, 1 or 2 whose dimensions are literal sizes or symbolic names.
//! The type of an instruction is a pure function of its op and its operands' types
//! ([`Op::result_type`]); the verifier checks that the stored type agrees.
//!
//! The IR has one text form, written by [`print_function`] and read back by
//! [`parse_function`] (`v3 = mul v0, v2 : real[N]`, one instruction per line), so tests
//! give a pass IR text and compare the IR text it returns.
//!
//! Data layout: arrays are dense, row-major, f64 for `Real`, i64 for `Int`, one byte per
//! element for `Bool` masks. A `Reshape` never moves data.
//!
//! The rules of each op (operand types, result type) are in [`Op::result_type`]; in short:
//!
//! | op | operands | result |
//! | --- | --- | --- |
//! | `Arg(k)` | — | `args[k].ty` |
//! | `Const(c)` | — | real scalar |
//! | `ConstInt(n)` | — | int scalar |
//! | `DimSize(d)` | — | real scalar: the size of dim `d` |
//! | `Unary(op, x)` | real `S` | real `S` |
//! | `Binary(op, a, b)` | real `S`, real `S` (same shape) | real `S` |
//! | `Compare(op, a, b)` | `S`, `S` (both real or both int) | bool `S` |
//! | `Select(m, a, b)` | bool `S`, real `S`, real `S` | real `S` |
//! | `Broadcast(x, S)` | `T` broadcastable to `S` (NumPy rules) | `S`, elem of `x` |
//! | `Reshape(x, S)` | `T` with `T` and `S` equal after dropping 1s | `S`, elem of `x` |
//! | `Transpose(x)` | real `[M,N]` | real `[N,M]` |
//! | `Reduce(op, x, axes)` | real `S` | real `S` without `axes` |
//! | `LogSumExp(x, axes)` | real `S` | real `S` without `axes` |
//! | `Softmax(x, axis)`, `LogSoftmax(x, axis)` | real `S` | real `S` |
//! | `MatMul(a, b)` | real `[M,K]`, real `[K,N]` | real `[M,N]` |
//! | `Gather(t, i)` | real `[V]` or `[V,D]`, int scalar or `[B]` | `i.shape ++ t.shape[1..]` |
//! | `ScatterAdd(u, i, V)` | real `i.shape ++ R`, int `i` | real `[V] ++ R` (zeros, rows of `u` added at `i`) |
//! | `Pick(x, l)` | real `[B,K]`, int `[B]` | real `[B]`: `x[b, l[b]]` |
//! | `OneHot(l, K)` | int `[B]` or scalar | real `[B,K]` or `[K]` |
//!
//! Index operands (of `Gather`, `ScatterAdd`, `Pick`, `OneHot`) are always an int
//! `Arg` or a `ConstInt`; their range is checked before any evaluation
//! ([`index_checks`]).

mod parse;
mod print;
mod verify;

pub use parse::{parse_function, ParseError};
pub use print::{op_text, print_function, shape_text, type_text, unary_name};
pub use verify::verify;

use std::fmt;

use smallvec::{smallvec, SmallVec};

/// A value: the index of the instruction that computes it in [`Function::insts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value(pub u32);

impl Value {
    /// The arena index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// A symbolic dimension: an index into [`Function::dims`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DimVar(pub u32);

/// One dimension of a shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// A literal size.
    Const(u64),
    /// A size bound at call time.
    Sym(DimVar),
}

impl Dim {
    /// True for the literal size 1 (the only dimension that broadcasts).
    pub fn is_one(self) -> bool {
        self == Dim::Const(1)
    }
}

/// A shape of rank 0 (scalar), 1 or 2.
pub type Shape = Vec<Dim>;

/// The element type of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Elem {
    /// 64-bit float.
    Real,
    /// 64-bit signed integer (indices and labels).
    Int,
    /// A comparison mask, consumed only by `Select`.
    Bool,
}

/// The type of a value: element type and shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Type {
    /// Element type.
    pub elem: Elem,
    /// Shape (rank 0, 1 or 2).
    pub shape: Shape,
}

impl Type {
    /// A real value of the given shape.
    pub fn real(shape: Shape) -> Type {
        Type {
            elem: Elem::Real,
            shape,
        }
    }

    /// A real scalar.
    pub fn real_scalar() -> Type {
        Type::real(Vec::new())
    }

    /// The rank (number of dimensions).
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
}

/// A set of axes of a rank ≤ 2 shape, as a bit mask (bit `k` is axis `k`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Axes(pub u8);

impl Axes {
    /// Every axis of a value of rank `rank`.
    pub fn all(rank: usize) -> Axes {
        Axes(((1u16 << rank) - 1) as u8)
    }

    /// The single axis `axis`.
    pub fn one(axis: usize) -> Axes {
        Axes(1 << axis)
    }

    /// True if `axis` is in the set.
    pub fn contains(self, axis: usize) -> bool {
        self.0 & (1 << axis) != 0
    }

    /// The shape left after reducing `shape` over these axes.
    pub fn reduce_shape(self, shape: &[Dim]) -> Shape {
        shape
            .iter()
            .enumerate()
            .filter(|(k, _)| !self.contains(*k))
            .map(|(_, d)| *d)
            .collect()
    }
}

/// Elementwise functions of one real.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `exp(x)`
    Exp,
    /// `log(x)`
    Log,
    /// `log1p(x)` = log(1 + x)
    Log1p,
    /// `sqrt(x)`
    Sqrt,
    /// `sin(x)`
    Sin,
    /// `cos(x)`
    Cos,
    /// `tanh(x)`
    Tanh,
    /// `sigmoid(x)` = 1 / (1 + exp(-x))
    Sigmoid,
    /// `relu(x)` = max(x, 0)
    Relu,
    /// `softplus(x)` = log(1 + exp(x)), computed without overflow
    Softplus,
    /// `abs(x)`
    Abs,
    /// `square(x)` = x * x
    Square,
}

impl UnaryOp {
    /// Every UnaryOp, in declaration order (the text form's parser looks names up here).
    pub const ALL: [UnaryOp; 13] = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Log1p,
        UnaryOp::Sqrt,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Relu,
        UnaryOp::Softplus,
        UnaryOp::Abs,
        UnaryOp::Square,
    ];
}

/// Elementwise functions of two reals of the same shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `a ^ b`, C's `pow`
    Pow,
    /// `maximum(a, b)`
    Max,
    /// `minimum(a, b)`
    Min,
}

impl BinaryOp {
    /// Every BinaryOp, in declaration order (the text form's parser looks names up here).
    pub const ALL: [BinaryOp; 7] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Max,
        BinaryOp::Min,
    ];
}

/// Elementwise comparisons, giving a mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CmpOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl CmpOp {
    /// Every CmpOp, in declaration order (the text form's parser looks names up here).
    pub const ALL: [CmpOp; 6] = [
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
        CmpOp::Eq,
        CmpOp::Ne,
    ];
}

/// Reductions over a set of axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReduceOp {
    /// Sum.
    Sum,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
}

impl ReduceOp {
    /// Every ReduceOp, in declaration order (the text form's parser looks names up here).
    pub const ALL: [ReduceOp; 3] = [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min];
}

/// An operation: what an instruction computes from its operands.
///
/// Operands are stored inline; [`Op::operands`] lists them in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Argument `k` of the function (an input or a param).
    Arg(u32),
    /// A real scalar constant.
    Const(f64),
    /// An int scalar constant (a literal index).
    ConstInt(i64),
    /// The size of a symbolic dimension, as a real scalar.
    DimSize(DimVar),
    /// An elementwise function.
    Unary(UnaryOp, Value),
    /// An elementwise binary function of two values of the same shape.
    Binary(BinaryOp, Value, Value),
    /// An elementwise comparison of two values of the same shape.
    Compare(CmpOp, Value, Value),
    /// `where(mask, a, b)`, all three of the same shape.
    Select(Value, Value, Value),
    /// NumPy broadcast of the operand to a shape.
    Broadcast(Value, Shape),
    /// The same elements under a shape that differs only by dimensions of size 1.
    Reshape(Value, Shape),
    /// Matrix transpose of a rank-2 value.
    Transpose(Value),
    /// A reduction over some axes (the axes are removed from the shape).
    Reduce(ReduceOp, Value, Axes),
    /// `log(sum(exp(x)))` over some axes, computed stably.
    LogSumExp(Value, Axes),
    /// Softmax along one axis (shape preserving).
    Softmax(Value, u8),
    /// Log-softmax along one axis (shape preserving).
    LogSoftmax(Value, u8),
    /// Matrix product of two rank-2 values.
    MatMul(Value, Value),
    /// Rows of a table selected by an index: `t[i]`.
    Gather(Value, Value),
    /// Zeros with `rows` rows, and row `u[b]` added at row `i[b]` for every `b`:
    /// the adjoint of `Gather`.
    ScatterAdd(Value, Value, Dim),
    /// `x[b, l[b]]` for every `b`.
    Pick(Value, Value),
    /// One-hot rows of length `depth` for the labels.
    OneHot(Value, Dim),
}

/// The operands of an op (at most three, so never on the heap).
pub type Operands = SmallVec<[Value; 3]>;

impl Op {
    /// The operands, in order.
    pub fn operands(&self) -> Operands {
        match *self {
            Op::Arg(_) | Op::Const(_) | Op::ConstInt(_) | Op::DimSize(_) => Operands::new(),
            Op::Unary(_, x)
            | Op::Broadcast(x, _)
            | Op::Reshape(x, _)
            | Op::Transpose(x)
            | Op::Reduce(_, x, _)
            | Op::LogSumExp(x, _)
            | Op::Softmax(x, _)
            | Op::LogSoftmax(x, _)
            | Op::OneHot(x, _) => smallvec![x],
            Op::Binary(_, a, b)
            | Op::Compare(_, a, b)
            | Op::MatMul(a, b)
            | Op::Gather(a, b)
            | Op::ScatterAdd(a, b, _)
            | Op::Pick(a, b) => smallvec![a, b],
            Op::Select(m, a, b) => smallvec![m, a, b],
        }
    }

    /// The same op with every operand replaced by `f(operand)`.
    pub fn map_operands(&self, mut f: impl FnMut(Value) -> Value) -> Op {
        match self.clone() {
            op @ (Op::Arg(_) | Op::Const(_) | Op::ConstInt(_) | Op::DimSize(_)) => op,
            Op::Unary(u, x) => Op::Unary(u, f(x)),
            Op::Binary(o, a, b) => Op::Binary(o, f(a), f(b)),
            Op::Compare(o, a, b) => Op::Compare(o, f(a), f(b)),
            Op::Select(m, a, b) => Op::Select(f(m), f(a), f(b)),
            Op::Broadcast(x, s) => Op::Broadcast(f(x), s),
            Op::Reshape(x, s) => Op::Reshape(f(x), s),
            Op::Transpose(x) => Op::Transpose(f(x)),
            Op::Reduce(r, x, a) => Op::Reduce(r, f(x), a),
            Op::LogSumExp(x, a) => Op::LogSumExp(f(x), a),
            Op::Softmax(x, a) => Op::Softmax(f(x), a),
            Op::LogSoftmax(x, a) => Op::LogSoftmax(f(x), a),
            Op::MatMul(a, b) => Op::MatMul(f(a), f(b)),
            Op::Gather(t, i) => Op::Gather(f(t), f(i)),
            Op::ScatterAdd(u, i, d) => Op::ScatterAdd(f(u), f(i), d),
            Op::Pick(x, l) => Op::Pick(f(x), f(l)),
            Op::OneHot(l, d) => Op::OneHot(f(l), d),
        }
    }

    /// The result type of this op given a way to look up operand types and argument
    /// types, or a message saying which rule is broken.
    pub fn result_type<'t>(
        &self,
        ty_of: &dyn Fn(Value) -> &'t Type,
        args: &[ArgDecl],
    ) -> Result<Type, String> {
        let real = |v: Value| -> Result<&'t Type, String> {
            let t = ty_of(v);
            if t.elem == Elem::Real {
                Ok(t)
            } else {
                Err(format!("{v} must be real, is {:?}", t.elem))
            }
        };
        let int_index = |v: Value| -> Result<&'t Type, String> {
            let t = ty_of(v);
            if t.elem == Elem::Int && t.rank() <= 1 {
                Ok(t)
            } else {
                Err(format!("{v} must be an int scalar or vector"))
            }
        };
        let same = |a: &Type, b: &Type| -> Result<(), String> {
            if a.shape == b.shape {
                Ok(())
            } else {
                Err(format!("shapes differ: {:?} and {:?}", a.shape, b.shape))
            }
        };
        Ok(match self {
            Op::Arg(k) => args
                .get(*k as usize)
                .ok_or_else(|| format!("no argument {k}"))?
                .ty
                .clone(),
            Op::Const(_) | Op::DimSize(_) => Type::real_scalar(),
            Op::ConstInt(_) => Type {
                elem: Elem::Int,
                shape: Vec::new(),
            },
            Op::Unary(_, x) => real(*x)?.clone(),
            Op::Binary(_, a, b) => {
                let (ta, tb) = (real(*a)?, real(*b)?);
                same(ta, tb)?;
                ta.clone()
            }
            Op::Compare(_, a, b) => {
                let (ta, tb) = (ty_of(*a), ty_of(*b));
                if ta.elem != tb.elem || ta.elem == Elem::Bool {
                    return Err("comparison needs two reals or two ints".into());
                }
                same(ta, tb)?;
                Type {
                    elem: Elem::Bool,
                    shape: ta.shape.clone(),
                }
            }
            Op::Select(m, a, b) => {
                let tm = ty_of(*m);
                if tm.elem != Elem::Bool {
                    return Err(format!("{m} must be a mask"));
                }
                let (ta, tb) = (real(*a)?, real(*b)?);
                same(tm, ta)?;
                same(ta, tb)?;
                ta.clone()
            }
            Op::Broadcast(x, shape) => {
                let tx = ty_of(*x);
                if !broadcastable(&tx.shape, shape) {
                    return Err(format!("{:?} does not broadcast to {:?}", tx.shape, shape));
                }
                Type {
                    elem: tx.elem,
                    shape: shape.clone(),
                }
            }
            Op::Reshape(x, shape) => {
                let tx = ty_of(*x);
                let strip =
                    |s: &[Dim]| -> Vec<Dim> { s.iter().copied().filter(|d| !d.is_one()).collect() };
                if strip(&tx.shape) != strip(shape) || shape.len() > 2 {
                    return Err(format!("cannot reshape {:?} to {:?}", tx.shape, shape));
                }
                Type {
                    elem: tx.elem,
                    shape: shape.clone(),
                }
            }
            Op::Transpose(x) => {
                let tx = real(*x)?;
                if tx.rank() != 2 {
                    return Err("transpose needs rank 2".into());
                }
                Type::real(vec![tx.shape[1], tx.shape[0]])
            }
            Op::Reduce(_, x, axes) | Op::LogSumExp(x, axes) => {
                let tx = real(*x)?;
                if axes.0 >> tx.rank() != 0 {
                    return Err(format!("axes {:#b} out of range", axes.0));
                }
                Type::real(axes.reduce_shape(&tx.shape))
            }
            Op::Softmax(x, axis) | Op::LogSoftmax(x, axis) => {
                let tx = real(*x)?;
                if (*axis as usize) >= tx.rank().max(1) {
                    return Err(format!("axis {axis} out of range"));
                }
                tx.clone()
            }
            Op::MatMul(a, b) => {
                let (ta, tb) = (real(*a)?, real(*b)?);
                if ta.rank() != 2 || tb.rank() != 2 || ta.shape[1] != tb.shape[0] {
                    return Err(format!("matmul of {:?} and {:?}", ta.shape, tb.shape));
                }
                Type::real(vec![ta.shape[0], tb.shape[1]])
            }
            Op::Gather(t, i) => {
                let (tt, ti) = (real(*t)?, int_index(*i)?);
                if tt.rank() == 0 {
                    return Err("gather from a scalar".into());
                }
                let mut shape = ti.shape.clone();
                shape.extend_from_slice(&tt.shape[1..]);
                if shape.len() > 2 {
                    return Err("gather result of rank > 2".into());
                }
                Type::real(shape)
            }
            Op::ScatterAdd(u, i, rows) => {
                let (tu, ti) = (real(*u)?, int_index(*i)?);
                if tu.shape.len() < ti.shape.len() || tu.shape[..ti.rank()] != ti.shape[..] {
                    return Err("scatter updates do not match the indices".into());
                }
                let mut shape = vec![*rows];
                shape.extend_from_slice(&tu.shape[ti.rank()..]);
                if shape.len() > 2 {
                    return Err("scatter result of rank > 2".into());
                }
                Type::real(shape)
            }
            Op::Pick(x, l) => {
                let (tx, tl) = (real(*x)?, int_index(*l)?);
                if tx.rank() != 2 || tl.rank() != 1 || tl.shape[0] != tx.shape[0] {
                    return Err(format!("pick from {:?} with {:?}", tx.shape, tl.shape));
                }
                Type::real(vec![tx.shape[0]])
            }
            Op::OneHot(l, depth) => {
                let tl = int_index(*l)?;
                let mut shape = tl.shape.clone();
                shape.push(*depth);
                Type::real(shape)
            }
        })
    }
}

/// True if NumPy broadcasting takes `from` to exactly `to`.
pub fn broadcastable(from: &[Dim], to: &[Dim]) -> bool {
    if from.len() > to.len() {
        return false;
    }
    let offset = to.len() - from.len();
    from.iter()
        .enumerate()
        .all(|(k, d)| d.is_one() || *d == to[k + offset])
}

/// Whether an argument is data or differentiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgRole {
    /// `input`: given at call time, not differentiated.
    Input,
    /// `param`: given at call time, differentiated.
    Param,
}

/// A function argument: an `input` or a `param` of the `.loss` file.
#[derive(Clone, Debug, PartialEq)]
pub struct ArgDecl {
    /// The declared name.
    pub name: String,
    /// Input or param.
    pub role: ArgRole,
    /// Element type and shape.
    pub ty: Type,
}

/// What a function result is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResultRole {
    /// The scalar loss.
    Loss,
    /// An `output` of the file.
    Output,
    /// The gradient of the loss with respect to argument `k` (a param).
    Grad(u32),
}

/// A named result of a function.
#[derive(Clone, Debug, PartialEq)]
pub struct FuncResult {
    /// `loss`, the output's name, or the param's name for a gradient.
    pub name: String,
    /// What the result is.
    pub role: ResultRole,
    /// The value returned.
    pub value: Value,
}

/// One instruction: an op and the type of its result.
#[derive(Clone, Debug, PartialEq)]
pub struct Inst {
    /// What is computed.
    pub op: Op,
    /// The type of the result.
    pub ty: Type,
}

/// A function in SSA form (see the module documentation for the invariants).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Function {
    /// The function's name (`forward`, `grad`).
    pub name: String,
    /// Names of the symbolic dimensions, indexed by [`DimVar`].
    pub dims: Vec<String>,
    /// Inputs and params in declaration order.
    pub args: Vec<ArgDecl>,
    /// The instruction arena; `Value(i)` is `insts[i]`.
    pub insts: Vec<Inst>,
    /// The values returned, in order.
    pub results: Vec<FuncResult>,
}

impl Function {
    /// An empty function with the given dims and arguments.
    pub fn new(name: &str, dims: Vec<String>, args: Vec<ArgDecl>) -> Function {
        Function {
            name: name.to_string(),
            dims,
            args,
            insts: Vec::new(),
            results: Vec::new(),
        }
    }

    /// The type of a value.
    pub fn ty(&self, v: Value) -> &Type {
        &self.insts[v.index()].ty
    }

    /// The op computing a value.
    pub fn op(&self, v: Value) -> &Op {
        &self.insts[v.index()].op
    }

    /// Appends an instruction, computing its type. Fails (with a message naming the
    /// broken rule) if an operand does not precede it or the operand types are wrong.
    pub fn try_push(&mut self, op: Op) -> Result<Value, String> {
        let next = self.insts.len() as u32;
        for v in op.operands() {
            if v.0 >= next {
                return Err(format!("operand {v} does not precede v{next}"));
            }
        }
        let ty = op.result_type(&|v| &self.insts[v.index()].ty, &self.args)?;
        self.insts.push(Inst { op, ty });
        Ok(Value(next))
    }

    /// Appends an instruction, computing its type.
    ///
    /// # Panics
    /// If the op is ill-typed: that is a compiler bug, never a user error (the checker
    /// has already rejected ill-typed programs).
    pub fn push(&mut self, op: Op) -> Value {
        match self.try_push(op.clone()) {
            Ok(v) => v,
            Err(msg) => panic!(
                "compiler bug: ill-typed {op:?}: {msg}\n{}",
                print_function(self)
            ),
        }
    }

    /// The number of instructions.
    pub fn len(&self) -> usize {
        self.insts.len()
    }

    /// True if there are no instructions.
    pub fn is_empty(&self) -> bool {
        self.insts.is_empty()
    }

    /// The name of a dimension as written in the source.
    pub fn dim_name(&self, d: Dim) -> String {
        match d {
            Dim::Const(n) => n.to_string(),
            Dim::Sym(v) => self.dims[v.0 as usize].clone(),
        }
    }

    /// The params, as (argument index, declaration).
    pub fn params(&self) -> impl Iterator<Item = (u32, &ArgDecl)> {
        self.args
            .iter()
            .enumerate()
            .filter(|(_, a)| a.role == ArgRole::Param)
            .map(|(k, a)| (k as u32, a))
    }
}

/// A run-time range check an index operand needs: every element of the index must lie
/// in `0..bound`. Listed by [`index_checks`] so callers check before evaluating.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexCheck {
    /// The index operand: an int `Arg` or a `ConstInt`.
    pub index: Value,
    /// The exclusive upper bound.
    pub bound: Dim,
}

/// Every index range the function relies on, deduplicated, in instruction order.
pub fn index_checks(func: &Function) -> Vec<IndexCheck> {
    let mut checks: Vec<IndexCheck> = Vec::new();
    for inst in &func.insts {
        let check = match inst.op {
            Op::Gather(t, i) => IndexCheck {
                index: i,
                bound: func.ty(t).shape[0],
            },
            Op::ScatterAdd(_, i, rows) => IndexCheck {
                index: i,
                bound: rows,
            },
            Op::Pick(x, l) => IndexCheck {
                index: l,
                bound: func.ty(x).shape[1],
            },
            Op::OneHot(l, depth) => IndexCheck {
                index: l,
                bound: depth,
            },
            _ => continue,
        };
        if !checks.contains(&check) {
            checks.push(check);
        }
    }
    checks
}
