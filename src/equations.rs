//! Gradient IR → readable `.loss`-style equations (`gradc compile --emit grad`).
//!
//! In: a (simplified) value-and-gradient [`Function`]. Out: text, one `let tN = EXPR`
//! line per intermediate used more than once, in evaluation order, then one line
//! `d loss / d P = EXPR` per param in argument order. Deterministic.
//!
//! Expressions are written in the language's own syntax with minimal parentheses
//! (spec §3 precedence): single-use intermediates are inlined (up to [`MAX_INLINE_DEPTH`]
//! levels deep; a deeper one gets a `let`, so the text grows linearly with the program);
//! broadcasts are left out where the language broadcasts by itself, and written
//! `broadcast(x, [N, M])` where the value depends on them (under a reduction, say:
//! `sum(broadcast(c, [N]))` is `N * c`, `sum(c)` would be `c`); reshapes read as
//! `column(v)`, `row(v)`, or disappear into the vector forms of `@` (`X @ w`, `X.T @ g`);
//! a product with a reciprocal reads as a division; `square(x)` reads as `x ^ 2`; a zero
//! gradient is `0`. A right-hand side broadcasts to its param's shape (`d loss / d w = 1`
//! for every element of `w`). Two forms are not in the language: `broadcast` and
//! `scatter_add(u, i, V)` (the adjoint of the gather `E[i]`).
//!
//! Rendering runs three times over the same code: a counting pass that records how often
//! each value is referred to by the rendered text, a pass that finds the values nested
//! too deep once the shared ones are named, then the writing pass.

use std::collections::HashMap;
use std::fmt::Write;

use crate::ir::{
    Axes, BinaryOp, CmpOp, Dim, Function, Op, ReduceOp, ResultRole, Shape, UnaryOp, Value,
};

/// How many levels of single-use intermediates are written inline before one gets a
/// `let` (each level copies the text below it once, so this bounds the work per
/// character).
const MAX_INLINE_DEPTH: usize = 32;

/// The `--emit grad` text of a gradient function.
pub fn equations(grad: &Function) -> String {
    let roots: Vec<(String, Value)> = grad
        .results
        .iter()
        .filter(|r| matches!(r.role, ResultRole::Grad(_)))
        .map(|r| (r.name.clone(), r.value))
        .collect();

    let mut writer = Writer {
        func: grad,
        pass: Pass::Count,
        uses: HashMap::new(),
        names: HashMap::new(),
        users: users(grad),
        written_shapes: written_shapes(grad),
        depth: 0,
        deep: Vec::new(),
    };
    for (_, value) in &roots {
        writer.sub(*value, Prec::Lowest);
    }

    // Intermediates referred to more than once get a `let`...
    let mut shared: Vec<Value> = writer
        .uses
        .iter()
        .filter(|(v, count)| **count > 1 && !writer.is_small(**v))
        .map(|(v, _)| *v)
        .collect();
    shared.sort();
    // ...and so do those that would be inlined too deep in what remains.
    writer.pass = Pass::Depth;
    for value in &shared {
        writer.names.insert(*value, String::new());
    }
    for value in &shared {
        writer.body(*value);
    }
    for (_, value) in &roots {
        writer.sub(*value, Prec::Lowest);
    }
    shared.append(&mut writer.deep);
    // In evaluation order: a `let` refers only to earlier ones.
    shared.sort();
    writer.names.clear();

    writer.pass = Pass::Write;
    let mut out = String::new();
    for (k, value) in shared.iter().enumerate() {
        let body = writer.body(*value).text;
        let name = format!("t{}", k + 1);
        let _ = writeln!(out, "let {name} = {body}");
        writer.names.insert(*value, name);
    }
    for (param, value) in &roots {
        let text = writer.sub(*value, Prec::Lowest);
        let _ = writeln!(out, "d loss / d {param} = {text}");
    }
    out
}

/// The passes over the code; only the last one keeps the text it renders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// Records how often the text refers to each value (`uses`).
    Count,
    /// With the shared values named, finds the values inlined [`MAX_INLINE_DEPTH`]
    /// levels deep (`deep`).
    Depth,
    /// Renders the text.
    Write,
}

/// Precedence levels of spec §3, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    Lowest,
    Compare,
    Additive,
    Multiplicative,
    Unary,
    Power,
    Postfix,
}

/// Rendered text and the precedence of its outermost operator.
struct Text {
    text: String,
    prec: Prec,
}

impl Text {
    fn new(text: String, prec: Prec) -> Text {
        Text { text, prec }
    }

    fn atom(text: String) -> Text {
        Text::new(text, Prec::Postfix)
    }
}

struct Writer<'f> {
    func: &'f Function,
    /// Which pass is running.
    pass: Pass,
    /// How often the rendered text refers to each value.
    uses: HashMap<Value, usize>,
    /// The `let` names given to shared values.
    names: HashMap<Value, String>,
    /// How many instructions and results use each value.
    users: Vec<usize>,
    /// The shape each value's text has when read as written (see [`written_shapes`]).
    written_shapes: Vec<Shape>,
    /// Levels of inlined bodies around the one being rendered.
    depth: usize,
    /// Values the depth pass found [`MAX_INLINE_DEPTH`] levels deep: they get a `let`.
    deep: Vec<Value>,
}

impl Writer<'_> {
    /// The text of `v` as an operand that needs at least precedence `min`.
    fn sub(&mut self, v: Value, min: Prec) -> String {
        let text = self.operand(v);
        if text.prec < min {
            format!("({})", text.text)
        } else {
            text.text
        }
    }

    /// The text of `v` as an operand: its `let` name or its inlined body.
    fn operand(&mut self, v: Value) -> Text {
        let v = self.see_through(v);
        if let Some(name) = self.names.get(&v) {
            return Text::atom(name.clone());
        }
        match self.pass {
            Pass::Count => {
                let count = self.uses.entry(v).or_insert(0);
                *count += 1;
                if *count > 1 {
                    return Text::atom(String::new());
                }
            }
            Pass::Depth if self.depth >= MAX_INLINE_DEPTH && !self.is_small(v) => {
                // Named from here on; its body starts a new nesting (for its `let`).
                self.deep.push(v);
                self.names.insert(v, String::new());
                let outer = std::mem::replace(&mut self.depth, 0);
                crate::stack::with_room(|| self.body(v));
                self.depth = outer;
                return Text::atom(String::new());
            }
            _ => {}
        }
        self.depth += 1;
        // Inlined bodies nest as deeply as the program does (up to the `let`s above).
        let mut text = crate::stack::with_room(|| self.body(v));
        self.depth -= 1;
        if self.pass != Pass::Write {
            // Only the structure matters before the last pass: no text is kept, so each
            // level costs the same however much is inlined below it.
            text.text.clear();
        }
        text
    }

    /// [`Writer::sub`] for an operand whose shape matters to its user (a reduction, a
    /// matrix product...): an explicit `broadcast` where the text alone has fewer
    /// elements than the value.
    fn sub_exact(&mut self, v: Value, min: Prec) -> String {
        let shape = &self.func.ty(v).shape;
        if self.written_shapes[v.index()] == *shape {
            return self.sub(v, min);
        }
        let dims: Vec<String> = shape.iter().map(|d| self.dim(*d)).collect();
        let dims = dims.join(", ");
        let x = self.sub(v, Prec::Lowest);
        format!("broadcast({x}, [{dims}])")
    }

    /// Skips the ops that the language does implicitly (broadcasting).
    fn see_through(&self, mut v: Value) -> Value {
        while let Op::Broadcast(x, _) = *self.func.op(v) {
            v = x;
        }
        v
    }

    /// True for values as short to write as a name: these are never `let`-bound.
    fn is_small(&self, v: Value) -> bool {
        let atom = |x: Value| {
            matches!(
                self.func.op(self.see_through(x)),
                Op::Arg(_) | Op::Const(_) | Op::ConstInt(_) | Op::DimSize(_)
            )
        };
        match *self.func.op(v) {
            Op::Arg(_) | Op::Const(_) | Op::ConstInt(_) | Op::DimSize(_) => true,
            Op::Unary(UnaryOp::Neg, x) | Op::Transpose(x) | Op::Reshape(x, _) => atom(x),
            Op::Binary(BinaryOp::Div, one, x) => self.is_reciprocal(one) && atom(x),
            _ => false,
        }
    }

    fn is_reciprocal(&self, numerator: Value) -> bool {
        matches!(*self.func.op(self.see_through(numerator)), Op::Const(c) if c == 1.0)
    }

    /// `y` if `v` is `1 / y` (possibly broadcast).
    fn reciprocal_of(&self, v: Value) -> Option<Value> {
        match *self.func.op(self.see_through(v)) {
            Op::Binary(BinaryOp::Div, one, y) if self.is_reciprocal(one) => Some(y),
            _ => None,
        }
    }

    /// `u` if `v` is `column(u)` or `row(u)` of a rank-1 `u`.
    fn vector_view(&self, v: Value) -> Option<Value> {
        match *self.func.op(v) {
            Op::Reshape(u, ref shape) if self.func.ty(u).rank() == 1 && shape.len() == 2 => Some(u),
            _ => None,
        }
    }

    fn call(&mut self, name: &str, args: &[Value]) -> Text {
        let args: Vec<String> = args.iter().map(|a| self.sub(*a, Prec::Lowest)).collect();
        Text::atom(format!("{name}({})", args.join(", ")))
    }

    fn call_axis(&mut self, name: &str, x: Value, axes: Axes) -> Text {
        let rank = self.func.ty(x).rank();
        let x = self.sub_exact(x, Prec::Lowest);
        // Over every axis (or along the only one) the axis is left implicit.
        if axes == Axes::all(rank) || rank == 0 {
            Text::atom(format!("{name}({x})"))
        } else {
            let list: Vec<String> = (0..rank)
                .filter(|k| axes.contains(*k))
                .map(|k| k.to_string())
                .collect();
            Text::atom(format!("{name}({x}, {})", list.join(", ")))
        }
    }

    fn infix(&mut self, a: Value, op: &str, b: Value, prec: Prec) -> Text {
        // Left-associative: the right operand binds tighter, so the tree is kept.
        let tighter = match prec {
            Prec::Additive => Prec::Multiplicative,
            Prec::Multiplicative => Prec::Unary,
            _ => Prec::Additive,
        };
        let left = self.sub(a, if prec == Prec::Compare { tighter } else { prec });
        let right = self.sub(b, tighter);
        Text::new(format!("{left} {op} {right}"), prec)
    }

    fn dim(&self, d: Dim) -> String {
        self.func.dim_name(d)
    }

    /// The text of `v`'s own op (not its `let` name).
    fn body(&mut self, v: Value) -> Text {
        let func = self.func;
        match *func.op(v) {
            Op::Arg(k) => Text::atom(func.args[k as usize].name.clone()),
            Op::Const(c) => number(c),
            Op::ConstInt(n) if n < 0 => Text::new(n.to_string(), Prec::Unary),
            Op::ConstInt(n) => Text::atom(n.to_string()),
            Op::DimSize(d) => Text::atom(self.dim(Dim::Sym(d))),
            Op::Unary(UnaryOp::Neg, x) => {
                let x = self.sub(x, Prec::Unary);
                let space = if x.starts_with('-') { " " } else { "" };
                Text::new(format!("-{space}{x}"), Prec::Unary)
            }
            Op::Unary(UnaryOp::Square, x) => {
                let x = self.sub(x, Prec::Postfix);
                Text::new(format!("{x} ^ 2"), Prec::Power)
            }
            Op::Unary(unary, x) => self.call(crate::ir::unary_name(unary), &[x]),
            Op::Binary(BinaryOp::Add, a, b) => self.infix(a, "+", b, Prec::Additive),
            Op::Binary(BinaryOp::Sub, a, b) => self.infix(a, "-", b, Prec::Additive),
            Op::Binary(BinaryOp::Mul, a, b) => match (self.reciprocal_of(a), self.reciprocal_of(b))
            {
                (_, Some(y)) => self.infix(a, "/", y, Prec::Multiplicative),
                (Some(y), None) => self.infix(b, "/", y, Prec::Multiplicative),
                (None, None) => self.infix(a, "*", b, Prec::Multiplicative),
            },
            Op::Binary(BinaryOp::Div, a, b) => self.infix(a, "/", b, Prec::Multiplicative),
            Op::Binary(BinaryOp::Pow, a, b) => {
                // Right-associative, and the exponent may carry a unary minus.
                let base = self.sub(a, Prec::Postfix);
                let exponent = self.sub(b, Prec::Unary);
                Text::new(format!("{base} ^ {exponent}"), Prec::Power)
            }
            Op::Binary(BinaryOp::Max, a, b) => self.call("maximum", &[a, b]),
            Op::Binary(BinaryOp::Min, a, b) => self.call("minimum", &[a, b]),
            Op::Compare(cmp, a, b) => {
                let symbol = match cmp {
                    CmpOp::Lt => "<",
                    CmpOp::Le => "<=",
                    CmpOp::Gt => ">",
                    CmpOp::Ge => ">=",
                    CmpOp::Eq => "==",
                    CmpOp::Ne => "!=",
                };
                self.infix(a, symbol, b, Prec::Compare)
            }
            Op::Select(m, a, b) => self.call("where", &[m, a, b]),
            Op::Broadcast(x, _) => self.operand(x),
            Op::Reshape(x, ref shape) => self.reshape(x, shape),
            Op::Transpose(x) => {
                let x = self.sub_exact(x, Prec::Postfix);
                Text::atom(format!("{x}.T"))
            }
            Op::Reduce(reduce, x, axes) => {
                let name = match reduce {
                    ReduceOp::Sum => "sum",
                    ReduceOp::Max => "max",
                    ReduceOp::Min => "min",
                };
                self.call_axis(name, x, axes)
            }
            Op::LogSumExp(x, axes) => self.call_axis("logsumexp", x, axes),
            Op::Softmax(x, axis) => self.call_axis("softmax", x, Axes::one(axis as usize)),
            Op::LogSoftmax(x, axis) => self.call_axis("log_softmax", x, Axes::one(axis as usize)),
            Op::MatMul(a, b) => {
                let a = self.sub_exact(a, Prec::Multiplicative);
                let b = self.sub_exact(b, Prec::Unary);
                Text::new(format!("{a} @ {b}"), Prec::Multiplicative)
            }
            Op::Gather(t, i) => {
                let t = self.sub_exact(t, Prec::Postfix);
                let i = self.sub(i, Prec::Lowest);
                Text::atom(format!("{t}[{i}]"))
            }
            Op::ScatterAdd(u, i, rows) => {
                let (u, i) = (self.sub_exact(u, Prec::Lowest), self.sub(i, Prec::Lowest));
                Text::atom(format!("scatter_add({u}, {i}, {})", self.dim(rows)))
            }
            Op::Pick(x, l) => {
                let (x, l) = (self.sub_exact(x, Prec::Lowest), self.sub(l, Prec::Lowest));
                Text::atom(format!("pick({x}, {l})"))
            }
            Op::OneHot(l, depth) => {
                let l = self.sub(l, Prec::Lowest);
                Text::atom(format!("onehot({l}, {})", self.dim(depth)))
            }
        }
    }

    /// A reshape: the vector forms of `@`, `column`/`row`, or a sum over a unit axis.
    /// A reshape of a single-use sum or difference is distributed over its terms, so
    /// that vector products inside it read as such.
    fn reshape(&mut self, x: Value, shape: &[Dim]) -> Text {
        let func = self.func;
        let from = func.ty(x).shape.clone();
        if let Op::Binary(op @ (BinaryOp::Add | BinaryOp::Sub), a, b) = *func.op(x) {
            if self.users[x.index()] == 1 {
                let left = self.reshape(a, shape);
                let right = self.reshape(b, shape);
                let right = if right.prec <= Prec::Additive {
                    format!("({})", right.text)
                } else {
                    right.text
                };
                let symbol = if op == BinaryOp::Add { "+" } else { "-" };
                let left = if left.prec < Prec::Additive {
                    format!("({})", left.text)
                } else {
                    left.text
                };
                return Text::new(format!("{left} {symbol} {right}"), Prec::Additive);
            }
        }
        // A shared product gets its own `let`: only a single-use one is looked into.
        let single_use = self.users[x.index()] == 1;
        if let (true, &Op::MatMul(a, b)) = (single_use, func.op(x)) {
            // [M,K] @ column(v) → [M], row(u) @ [K,N] → [N], row(u) @ column(v) → [].
            let a_vector = self.vector_view(a).filter(|_| from[0].is_one());
            let b_vector = self.vector_view(b).filter(|_| from[1].is_one());
            let expected: Vec<Dim> = [(from[0], a_vector), (from[1], b_vector)]
                .iter()
                .filter(|(_, vector)| vector.is_none())
                .map(|(d, _)| *d)
                .collect();
            if (a_vector.is_some() || b_vector.is_some()) && expected == shape {
                return self.infix(
                    a_vector.unwrap_or(a),
                    "@",
                    b_vector.unwrap_or(b),
                    Prec::Multiplicative,
                );
            }
        }
        match (from.as_slice(), shape) {
            ([_], [_, one]) if one.is_one() => self.call("column", &[x]),
            ([_], [one, _]) if one.is_one() => self.call("row", &[x]),
            ([_, one], [_]) if one.is_one() => self.call_axis("sum", x, Axes::one(1)),
            ([one, _], [_]) if one.is_one() => self.call_axis("sum", x, Axes::one(0)),
            (_, []) => self.call("sum", &[x]),
            // Adding leading unit dimensions: broadcasting does it implicitly.
            _ => self.operand(x),
        }
    }
}

/// A real literal: an integer when it is one, `pi`, or the shortest round-trip form.
fn number(c: f64) -> Text {
    let text = if c == std::f64::consts::PI {
        "pi".to_string()
    } else if c.is_nan() {
        "(0 / 0)".to_string()
    } else if c.is_infinite() {
        if c > 0.0 { "(1 / 0)" } else { "(-1 / 0)" }.to_string()
    } else if c.fract() == 0.0 && c.abs() < 1e15 {
        format!("{}", c as i64)
    } else {
        format!("{c:?}")
    };
    let prec = if text.starts_with('-') {
        Prec::Unary
    } else {
        Prec::Postfix
    };
    Text::new(text, prec)
}

/// The shape of each value's text when it is read as written: broadcasts are left out
/// of the text, so an elementwise op has the broadcast shape of its operands' texts,
/// which may be smaller than its own (`where(s > 0, 0, 1)` for a scalar `s` stands for
/// a `[N]` value). Every other op is written with its own shape.
fn written_shapes(func: &Function) -> Vec<Shape> {
    let mut shapes: Vec<Shape> = Vec::with_capacity(func.len());
    for (index, inst) in func.insts.iter().enumerate() {
        let of = |v: Value, shapes: &[Shape]| shapes[v.index()].clone();
        let shape = match inst.op {
            Op::Broadcast(x, _) | Op::Unary(_, x) => of(x, &shapes),
            Op::Binary(_, a, b) | Op::Compare(_, a, b) => {
                broadcast_shapes(&of(a, &shapes), &of(b, &shapes))
            }
            Op::Select(m, a, b) => broadcast_shapes(
                &broadcast_shapes(&of(m, &shapes), &of(a, &shapes)),
                &of(b, &shapes),
            ),
            // Written as `column`, `row`, a sum, or (adding leading unit axes) not at all:
            // as `Writer::reshape` decides.
            Op::Reshape(x, ref shape) => {
                let from = &func.ty(x).shape;
                match (from.as_slice(), shape.as_slice()) {
                    ([_], [a, b]) if a.is_one() || b.is_one() => shape.clone(),
                    ([a, b], [_]) if a.is_one() || b.is_one() => shape.clone(),
                    (_, []) => shape.clone(),
                    _ => of(x, &shapes),
                }
            }
            _ => func.insts[index].ty.shape.clone(),
        };
        shapes.push(shape);
    }
    shapes
}

/// NumPy broadcasting of two shapes (aligned on the right; a literal 1 stretches).
fn broadcast_shapes(a: &[Dim], b: &[Dim]) -> Shape {
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    let offset = long.len() - short.len();
    long.iter()
        .enumerate()
        .map(|(k, &d)| match k.checked_sub(offset).map(|j| short[j]) {
            Some(e) if d.is_one() => e,
            _ => d,
        })
        .collect()
}

/// How many operands and results refer to each value.
fn users(func: &Function) -> Vec<usize> {
    let mut users = vec![0; func.len()];
    for inst in &func.insts {
        for operand in inst.op.operands() {
            users[operand.index()] += 1;
        }
    }
    for result in &func.results {
        users[result.value.index()] += 1;
    }
    users
}
