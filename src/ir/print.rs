//! The one text form of the IR: deterministic, one instruction per line.
//!
//! ```text
//! func forward(x: real[N], param w: real) {
//!   v0 = arg x : real[N]
//!   v1 = arg w : real
//!   v2 = broadcast v1 to [N] : real[N]
//!   v3 = mul v0, v2 : real[N]
//!   v4 = sum v3 axes [0] : real
//!   return loss = v4
//! }
//! ```

use super::*;
use std::fmt::Write;

/// The lower-case name of a unary op, as in the `.loss` language.
pub fn unary_name(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Neg => "neg",
        UnaryOp::Exp => "exp",
        UnaryOp::Log => "log",
        UnaryOp::Log1p => "log1p",
        UnaryOp::Sqrt => "sqrt",
        UnaryOp::Sin => "sin",
        UnaryOp::Cos => "cos",
        UnaryOp::Tanh => "tanh",
        UnaryOp::Sigmoid => "sigmoid",
        UnaryOp::Relu => "relu",
        UnaryOp::Softplus => "softplus",
        UnaryOp::Abs => "abs",
        UnaryOp::Square => "square",
    }
}

/// The lower-case name of a binary op.
pub fn binary_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
        BinaryOp::Pow => "pow",
        BinaryOp::Max => "maximum",
        BinaryOp::Min => "minimum",
    }
}

/// The name of a comparison.
pub fn compare_name(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Lt => "lt",
        CmpOp::Le => "le",
        CmpOp::Gt => "gt",
        CmpOp::Ge => "ge",
        CmpOp::Eq => "eq",
        CmpOp::Ne => "ne",
    }
}

/// The name of a reduction.
pub fn reduce_name(op: ReduceOp) -> &'static str {
    match op {
        ReduceOp::Sum => "sum",
        ReduceOp::Max => "max",
        ReduceOp::Min => "min",
    }
}

/// `[B, 3]` for a shape.
pub fn shape_text(func: &Function, shape: &[Dim]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| func.dim_name(*d)).collect();
    format!("[{}]", dims.join(", "))
}

/// `real[B, 3]`, `int[B]`, `real` for a type.
pub fn type_text(func: &Function, ty: &Type) -> String {
    let elem = match ty.elem {
        Elem::Real => "real",
        Elem::Int => "int",
        Elem::Bool => "bool",
    };
    if ty.shape.is_empty() {
        elem.to_string()
    } else {
        format!("{elem}{}", shape_text(func, &ty.shape))
    }
}

fn axes_text(axes: Axes) -> String {
    let list: Vec<String> = (0..8)
        .filter(|k| axes.contains(*k))
        .map(|k| k.to_string())
        .collect();
    format!("[{}]", list.join(", "))
}

/// The right-hand side of one instruction, without its type: `mul v0, v2`.
pub fn op_text(func: &Function, op: &Op) -> String {
    match op {
        Op::Arg(k) => format!("arg {}", func.args[*k as usize].name),
        Op::Const(c) => format!("const {c:?}"),
        Op::ConstInt(n) => format!("const_int {n}"),
        Op::DimSize(d) => format!("dim {}", func.dim_name(Dim::Sym(*d))),
        Op::Unary(u, x) => format!("{} {x}", unary_name(*u)),
        Op::Binary(b, x, y) => format!("{} {x}, {y}", binary_name(*b)),
        Op::Compare(c, x, y) => format!("{} {x}, {y}", compare_name(*c)),
        Op::Select(m, a, b) => format!("select {m}, {a}, {b}"),
        Op::Broadcast(x, s) => format!("broadcast {x} to {}", shape_text(func, s)),
        Op::Reshape(x, s) => format!("reshape {x} to {}", shape_text(func, s)),
        Op::Transpose(x) => format!("transpose {x}"),
        Op::Reduce(r, x, a) => format!("{} {x} axes {}", reduce_name(*r), axes_text(*a)),
        Op::LogSumExp(x, a) => format!("logsumexp {x} axes {}", axes_text(*a)),
        Op::Softmax(x, a) => format!("softmax {x} axis {a}"),
        Op::LogSoftmax(x, a) => format!("log_softmax {x} axis {a}"),
        Op::MatMul(a, b) => format!("matmul {a}, {b}"),
        Op::Gather(t, i) => format!("gather {t}, {i}"),
        Op::ScatterAdd(u, i, d) => format!("scatter_add {u}, {i} rows {}", func.dim_name(*d)),
        Op::Pick(x, l) => format!("pick {x}, {l}"),
        Op::OneHot(l, d) => format!("onehot {l} depth {}", func.dim_name(*d)),
    }
}

/// The whole function in the IR's text form.
pub fn print_function(func: &Function) -> String {
    let mut out = String::new();
    let args: Vec<String> = func
        .args
        .iter()
        .map(|a| {
            let role = match a.role {
                ArgRole::Input => "",
                ArgRole::Param => "param ",
            };
            format!("{role}{}: {}", a.name, type_text(func, &a.ty))
        })
        .collect();
    let _ = writeln!(out, "func {}({}) {{", func.name, args.join(", "));
    for (k, inst) in func.insts.iter().enumerate() {
        let _ = writeln!(
            out,
            "  v{k} = {} : {}",
            op_text(func, &inst.op),
            type_text(func, &inst.ty)
        );
    }
    let results: Vec<String> = func
        .results
        .iter()
        .map(|r| match r.role {
            ResultRole::Loss => format!("loss = {}", r.value),
            ResultRole::Output => format!("output {} = {}", r.name, r.value),
            ResultRole::Grad(_) => format!("grad {} = {}", r.name, r.value),
        })
        .collect();
    let _ = writeln!(out, "  return {}", results.join(", "));
    out.push_str("}\n");
    out
}
