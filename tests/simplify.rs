//! The simplifier: every algebraic rule and the constant folder as one-line data tests
//! `start => goal`, CSE and DCE as IR text in, IR text out, and the no-swell bound on the gradient of
//! every fixture.
//!
//! Expressions are written in a prefix form of the IR over fixed arguments
//! (`x, y, z: real[N]`, `s, r: real`, `A, C: real[M, N]`, `c: real[M, 1]`,
//! `l: int[M]`): `mul(x, bc(1, [N]))`, `sum(A, [0])`, `reshape(x, [1, N])`,
//! `dim(N)`... The start is simplified; the goal is built as written; both are printed
//! back in the same prefix form and compared.

mod fixtures;

use gradc::driver::{compile, op_count};
use gradc::ir::{
    self, ArgDecl, ArgRole, Axes, BinaryOp, CmpOp, Dim, DimVar, Elem, FuncResult, Function, Op,
    ReduceOp, ResultRole, Type, UnaryOp, Value,
};
use gradc::simplify::{rule_names, simplify};

const UNARY: [(&str, UnaryOp); 13] = [
    ("neg", UnaryOp::Neg),
    ("exp", UnaryOp::Exp),
    ("log", UnaryOp::Log),
    ("log1p", UnaryOp::Log1p),
    ("sqrt", UnaryOp::Sqrt),
    ("sin", UnaryOp::Sin),
    ("cos", UnaryOp::Cos),
    ("tanh", UnaryOp::Tanh),
    ("sigmoid", UnaryOp::Sigmoid),
    ("relu", UnaryOp::Relu),
    ("softplus", UnaryOp::Softplus),
    ("abs", UnaryOp::Abs),
    ("square", UnaryOp::Square),
];

const BINARY: [(&str, BinaryOp); 7] = [
    ("add", BinaryOp::Add),
    ("sub", BinaryOp::Sub),
    ("mul", BinaryOp::Mul),
    ("div", BinaryOp::Div),
    ("pow", BinaryOp::Pow),
    ("maximum", BinaryOp::Max),
    ("minimum", BinaryOp::Min),
];

const COMPARE: [(&str, CmpOp); 3] = [("gt", CmpOp::Gt), ("lt", CmpOp::Lt), ("eq", CmpOp::Eq)];

const REDUCE: [(&str, ReduceOp); 3] = [
    ("sum", ReduceOp::Sum),
    ("max", ReduceOp::Max),
    ("min", ReduceOp::Min),
];

/// The function every test expression lives in.
fn test_function() -> Function {
    let (n, m) = (Dim::Sym(DimVar(0)), Dim::Sym(DimVar(1)));
    let arg = |name: &str, elem, shape: Vec<Dim>| ArgDecl {
        name: name.to_string(),
        role: ArgRole::Input,
        ty: Type { elem, shape },
    };
    let mut func = Function::new(
        "test",
        vec!["N".to_string(), "M".to_string()],
        vec![
            arg("x", Elem::Real, vec![n]),
            arg("y", Elem::Real, vec![n]),
            arg("z", Elem::Real, vec![n]),
            arg("s", Elem::Real, vec![]),
            arg("r", Elem::Real, vec![]),
            arg("A", Elem::Real, vec![m, n]),
            arg("C", Elem::Real, vec![m, n]),
            arg("c", Elem::Real, vec![m, Dim::Const(1)]),
            arg("l", Elem::Int, vec![m]),
        ],
    );
    for k in 0..func.args.len() {
        func.push(Op::Arg(k as u32));
    }
    func
}

/// A recursive-descent reader of the prefix form.
struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn skip_space(&mut self) {
        while self.at < self.text.len() && self.text[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) {
        self.skip_space();
        assert_eq!(
            self.text.get(self.at),
            Some(&c),
            "expected {:?} at {}",
            c as char,
            self.at
        );
        self.at += 1;
    }

    fn word(&mut self) -> String {
        self.skip_space();
        let start = self.at;
        while self.at < self.text.len()
            && (self.text[self.at].is_ascii_alphanumeric() || b"_.-".contains(&self.text[self.at]))
        {
            self.at += 1;
        }
        String::from_utf8(self.text[start..self.at].to_vec()).unwrap()
    }

    fn dim(&mut self, func: &Function) -> Dim {
        let word = self.word();
        match func.dims.iter().position(|d| *d == word) {
            Some(k) => Dim::Sym(DimVar(k as u32)),
            None => Dim::Const(word.parse().expect("a dimension")),
        }
    }

    fn list(&mut self, func: &Function) -> Vec<Dim> {
        self.eat(b'[');
        let mut dims = Vec::new();
        self.skip_space();
        while self.text[self.at] != b']' {
            dims.push(self.dim(func));
            self.skip_space();
            if self.text[self.at] == b',' {
                self.at += 1;
            }
            self.skip_space();
        }
        self.eat(b']');
        dims
    }

    fn axes(&mut self, func: &Function) -> Axes {
        let mut mask = 0;
        for d in self.list(func) {
            let Dim::Const(k) = d else { panic!("an axis") };
            mask |= 1 << k;
        }
        Axes(mask)
    }

    fn comma(&mut self) {
        self.eat(b',');
    }

    fn expr(&mut self, func: &mut Function) -> Value {
        let word = self.word();
        if let Ok(c) = word.parse::<f64>() {
            return func.push(Op::Const(c));
        }
        if let Some(k) = func.args.iter().position(|a| a.name == word) {
            return Value(k as u32);
        }
        self.eat(b'(');
        let name = word.as_str();
        let op = if let Some((_, u)) = UNARY.iter().find(|(n, _)| *n == name) {
            Op::Unary(*u, self.expr(func))
        } else if let Some((_, b)) = BINARY.iter().find(|(n, _)| *n == name) {
            let a = self.expr(func);
            self.comma();
            Op::Binary(*b, a, self.expr(func))
        } else if let Some((_, c)) = COMPARE.iter().find(|(n, _)| *n == name) {
            let a = self.expr(func);
            self.comma();
            Op::Compare(*c, a, self.expr(func))
        } else if let Some((_, r)) = REDUCE.iter().find(|(n, _)| *n == name) {
            let x = self.expr(func);
            self.comma();
            Op::Reduce(*r, x, self.axes(func))
        } else {
            match name {
                "bc" | "reshape" => {
                    let x = self.expr(func);
                    self.comma();
                    let shape = self.list(func);
                    if name == "bc" {
                        Op::Broadcast(x, shape)
                    } else {
                        Op::Reshape(x, shape)
                    }
                }
                "select" => {
                    let m = self.expr(func);
                    self.comma();
                    let a = self.expr(func);
                    self.comma();
                    Op::Select(m, a, self.expr(func))
                }
                "transpose" => Op::Transpose(self.expr(func)),
                "matmul" => {
                    let a = self.expr(func);
                    self.comma();
                    Op::MatMul(a, self.expr(func))
                }
                "softmax" | "log_softmax" => {
                    let x = self.expr(func);
                    self.comma();
                    let axis: u8 = self.word().parse().unwrap();
                    if name == "softmax" {
                        Op::Softmax(x, axis)
                    } else {
                        Op::LogSoftmax(x, axis)
                    }
                }
                "onehot" => {
                    let l = self.expr(func);
                    self.comma();
                    Op::OneHot(l, self.dim(func))
                }
                "dim" => {
                    let Dim::Sym(d) = self.dim(func) else {
                        panic!("a dimension name")
                    };
                    Op::DimSize(d)
                }
                _ => panic!("unknown op {name}"),
            }
        };
        self.eat(b')');
        func.push(op)
    }
}

/// A function whose one result is the expression `text`.
fn build(text: &str) -> Function {
    let mut func = test_function();
    let mut reader = Reader {
        text: text.as_bytes(),
        at: 0,
    };
    let value = reader.expr(&mut func);
    reader.skip_space();
    assert_eq!(reader.at, text.len(), "trailing text in {text}");
    func.results.push(FuncResult {
        name: "out".to_string(),
        role: ResultRole::Output,
        value,
    });
    func
}

/// The name of `op` in a table.
fn name_of<T: PartialEq>(table: &[(&'static str, T)], op: T) -> &'static str {
    table
        .iter()
        .find(|(_, o)| *o == op)
        .expect("every op is named")
        .0
}

/// The prefix form of `v`.
fn tree(func: &Function, v: Value) -> String {
    let shape = |s: &[Dim]| {
        let dims: Vec<String> = s.iter().map(|d| func.dim_name(*d)).collect();
        format!("[{}]", dims.join(", "))
    };
    let axes = |a: Axes| {
        let list: Vec<String> = (0..2)
            .filter(|k| a.contains(*k))
            .map(|k| k.to_string())
            .collect();
        format!("[{}]", list.join(", "))
    };
    let t = |v: Value| tree(func, v);
    match func.op(v).clone() {
        Op::Arg(k) => func.args[k as usize].name.clone(),
        Op::Const(c) => format!("{c:?}"),
        Op::ConstInt(n) => n.to_string(),
        Op::DimSize(d) => format!("dim({})", func.dims[d.0 as usize]),
        Op::Unary(u, x) => format!("{}({})", name_of(&UNARY, u), t(x)),
        Op::Binary(b, x, y) => format!("{}({}, {})", name_of(&BINARY, b), t(x), t(y)),
        Op::Compare(c, x, y) => format!("{}({}, {})", name_of(&COMPARE, c), t(x), t(y)),
        Op::Select(m, a, b) => format!("select({}, {}, {})", t(m), t(a), t(b)),
        Op::Broadcast(x, s) => format!("bc({}, {})", t(x), shape(&s)),
        Op::Reshape(x, s) => format!("reshape({}, {})", t(x), shape(&s)),
        Op::Transpose(x) => format!("transpose({})", t(x)),
        Op::Reduce(r, x, a) => format!("{}({}, {})", name_of(&REDUCE, r), t(x), axes(a)),
        Op::LogSumExp(x, a) => format!("logsumexp({}, {})", t(x), axes(a)),
        Op::Softmax(x, a) => format!("softmax({}, {a})", t(x)),
        Op::LogSoftmax(x, a) => format!("log_softmax({}, {a})", t(x)),
        Op::MatMul(a, b) => format!("matmul({}, {})", t(a), t(b)),
        Op::Gather(a, i) => format!("gather({}, {})", t(a), t(i)),
        Op::ScatterAdd(u, i, d) => format!("scatter_add({}, {}, {})", t(u), t(i), func.dim_name(d)),
        Op::Pick(x, l) => format!("pick({}, {})", t(x), t(l)),
        Op::OneHot(l, d) => format!("onehot({}, {})", t(l), func.dim_name(d)),
    }
}

/// Simplifies `start` and compares it with `goal`.
fn check(start: &str, goal: &str) {
    let func = build(start);
    ir::verify(&func).unwrap_or_else(|p| panic!("{start} is ill-typed: {p:?}"));
    let simplified = simplify(&func);
    ir::verify(&simplified).unwrap_or_else(|p| panic!("simplifying {start}: {p:?}"));
    let goal_func = build(goal);
    ir::verify(&goal_func).unwrap_or_else(|p| panic!("{goal} is ill-typed: {p:?}"));
    assert_eq!(
        tree(&simplified, simplified.results[0].value),
        tree(&goal_func, goal_func.results[0].value),
        "simplifying {start}"
    );
}

/// One case per rule (named as in the rule table) and per folding form.
#[rustfmt::skip]
const CASES: &[(&str, &str, &str)] = &[
    ("add-zero-right",      "add(x, bc(0, [N]))",                       "x"),
    ("add-zero-left",       "add(bc(0, [N]), x)",                       "x"),
    ("add-const-right",     "add(bc(2, [N]), x)",                       "add(x, bc(2, [N]))"),
    ("add-neg-right",       "add(x, neg(y))",                           "sub(x, y)"),
    ("add-neg-left",        "add(neg(x), y)",                           "sub(y, x)"),
    ("sub-zero",            "sub(x, bc(0, [N]))",                       "x"),
    ("zero-sub",            "sub(bc(0, [N]), x)",                       "neg(x)"),
    ("sub-neg",             "sub(x, neg(y))",                           "add(x, y)"),
    ("neg-neg",             "neg(neg(x))",                              "x"),
    ("neg-sub",             "neg(sub(x, y))",                           "sub(y, x)"),
    ("neg-mul-sub",         "neg(mul(sub(x, y), z))",                   "mul(sub(y, x), z)"),
    ("mul-one-right",       "mul(x, bc(1, [N]))",                       "x"),
    ("mul-one-left",        "mul(bc(1, [N]), x)",                       "x"),
    ("mul-minus-one-right", "mul(x, bc(-1, [N]))",                      "neg(x)"),
    ("mul-minus-one-left",  "mul(bc(-1, [N]), x)",                      "neg(x)"),
    ("mul-const-right",     "mul(bc(3, [N]), x)",                       "mul(x, bc(3, [N]))"),
    ("mul-const-const",     "mul(mul(x, bc(3, [N])), bc(2, [N]))",      "mul(x, bc(6, [N]))"),
    ("mul-const-const",     "mul(mul(x, bc(0.5, [N])), bc(3, [N]))",    "mul(x, bc(1.5, [N]))"),
    // Not when neither constant is a power of two: x * 0.1 * 3 rounds twice, x * 0.3 once.
    ("mul-const-const",     "mul(mul(x, bc(0.1, [N])), bc(3, [N]))",    "mul(mul(x, bc(0.1, [N])), bc(3, [N]))"),
    ("mul-neg-neg",         "mul(neg(x), neg(y))",                      "mul(x, y)"),
    ("mul-neg-right",       "mul(x, neg(y))",                           "neg(mul(x, y))"),
    ("mul-neg-left",        "mul(neg(x), y)",                           "neg(mul(x, y))"),
    ("mul-sub-neg",         "mul(sub(x, y), bc(neg(s), [N]))",          "mul(sub(y, x), bc(s, [N]))"),
    ("mul-sub-neg",         "mul(sub(x, y), neg(z))",                   "mul(sub(y, x), z)"),
    ("factor-sub",          "sub(mul(x, z), mul(y, z))",                "mul(sub(x, y), z)"),
    ("factor-add",          "add(mul(x, z), mul(y, z))",                "mul(add(x, y), z)"),
    // Not when a product is used elsewhere: that would add a multiplication.
    ("factor-add",          "mul(add(mul(x, z), mul(y, z)), mul(x, z))", "mul(add(mul(x, z), mul(y, z)), mul(x, z))"),
    ("div-mul-cancel",      "mul(div(x, y), y)",                        "x"),
    ("mul-div-const",       "mul(div(bc(1, [N]), y), bc(2, [N]))",      "div(bc(2, [N]), y)"),
    ("div-one",             "div(x, bc(1, [N]))",                       "x"),
    ("div-const",           "div(x, bc(4, [N]))",                       "mul(x, bc(0.25, [N]))"),
    // Not when 1/c is inexact.
    ("div-const",           "div(x, bc(3, [N]))",                       "div(x, bc(3, [N]))"),
    ("div-neg-const",       "div(-2, s)",                               "neg(div(2, s))"),
    ("div-neg",             "div(neg(x), y)",                           "neg(div(x, y))"),
    ("pow-one",             "pow(x, bc(1, [N]))",                       "x"),
    ("pow-zero",            "pow(x, bc(0, [N]))",                       "bc(1, [N])"),
    ("pow-two",             "pow(x, bc(2, [N]))",                       "square(x)"),
    ("square-neg",          "square(neg(x))",                           "square(x)"),
    ("log1p-exp",           "log1p(exp(x))",                            "softplus(x)"),
    ("log-sigmoid",         "log(sigmoid(x))",                          "neg(softplus(neg(x)))"),
    ("log-sigmoid",         "log(sigmoid(neg(x)))",                     "neg(softplus(x))"),
    // Not when the sigmoid is used elsewhere: that would add a function.
    ("log-sigmoid",         "mul(log(sigmoid(x)), sigmoid(x))",         "mul(log(sigmoid(x)), sigmoid(x))"),
    ("exp-log-softmax",     "exp(log_softmax(A, 1))",                   "softmax(A, 1)"),
    ("unary-broadcast",     "exp(bc(s, [N]))",                          "bc(exp(s), [N])"),
    ("binary-broadcast",    "add(bc(s, [N]), bc(r, [N]))",              "bc(add(s, r), [N])"),
    ("select-same",         "select(gt(x, y), z, z)",                   "z"),
    ("broadcast-same",      "bc(x, [N])",                               "x"),
    ("broadcast-broadcast", "bc(bc(s, [N]), [M, N])",                   "bc(s, [M, N])"),
    ("broadcast-reshape",   "bc(reshape(x, [1, N]), [M, N])",           "bc(x, [M, N])"),
    ("reshape-same",        "reshape(x, [N])",                          "x"),
    ("reshape-reshape",     "reshape(reshape(x, [1, N]), [N, 1])",      "reshape(x, [N, 1])"),
    ("reshape-broadcast",   "reshape(bc(s, [N]), [N, 1])",              "bc(s, [N, 1])"),
    ("transpose-transpose", "transpose(transpose(A))",                  "A"),
    ("transpose-matmul",    "transpose(matmul(transpose(A), C))",       "matmul(transpose(C), A)"),
    ("transpose-vector",    "transpose(reshape(x, [N, 1]))",            "reshape(x, [1, N])"),
    ("add-neg-right",       "add(x, bc(neg(s), [N]))",                  "sub(x, bc(s, [N]))"),
    ("transpose-broadcast", "transpose(bc(s, [M, N]))",                 "bc(s, [N, M])"),
    ("reduce-unit-axes",    "sum(c, [1])",                              "reshape(c, [M])"),
    ("reduce-unit-axes",    "max(transpose(c), [0])",                   "reshape(transpose(c), [M])"),
    ("reduce-broadcast",    "sum(bc(s, [N]), [0])",                     "mul(s, dim(N))"),
    ("reduce-broadcast",    "sum(bc(x, [M, N]), [0])",                  "mul(x, bc(dim(M), [N]))"),
    ("reduce-broadcast",    "sum(bc(c, [M, N]), [1])",                  "mul(reshape(c, [M]), bc(dim(N), [M]))"),
    ("reduce-broadcast",    "sum(bc(x, [M, N]), [0, 1])",               "mul(sum(x, [0]), dim(M))"),
    ("reduce-broadcast",    "sum(bc(2, [M, N]), [0, 1])",               "mul(mul(dim(M), dim(N)), 2.0)"),
    ("reduce-broadcast",    "max(bc(x, [M, N]), [0])",                  "x"),
    ("sum-onehot-rows",     "sum(mul(onehot(l, N), bc(c, [M, N])), [1])", "reshape(c, [M])"),
    ("sum-onehot-rows",     "sum(mul(bc(s, [M, N]), onehot(l, N)), [1])", "bc(s, [M])"),
    ("fold",                "add(2, 3)",                                "5"),
    ("fold",                "sigmoid(0)",                               "0.5"),
    ("fold",                "exp(bc(0, [N]))",                          "bc(1, [N])"),
    ("fold",                "mul(bc(2, [N]), bc(3, [N]))",              "bc(6, [N])"),
    ("fold",                "div(bc(1, [M, N]), transpose(bc(4, [N, M])))", "bc(0.25, [M, N])"),
    ("fold",                "maximum(0, -1)",                           "0"),
    // Nothing applies: no commutativity or associativity.
    ("none",                "add(add(x, y), z)",                        "add(add(x, y), z)"),
    ("none",                "mul(y, x)",                                "mul(y, x)"),
    // x * 0 is NaN for an infinite or NaN x; x ^ 0.5 is C's pow (sqrt differs at -0, -inf).
    ("none",                "mul(x, bc(0, [N]))",                       "mul(x, bc(0, [N]))"),
    ("none",                "mul(bc(0, [N]), x)",                       "mul(x, bc(0, [N]))"),
    ("none",                "pow(x, bc(0.5, [N]))",                     "pow(x, bc(0.5, [N]))"),
];

#[test]
fn rules() {
    for (_, start, goal) in CASES {
        check(start, goal);
    }
}

#[test]
fn every_rule_has_a_case() {
    for name in rule_names() {
        assert!(
            CASES.iter().any(|(rule, _, _)| *rule == name),
            "rule {name} has no test case"
        );
    }
}

/// Simplifies IR written as text and compares the printed result with `goal`.
fn assert_simplifies(start: &str, goal: &str) {
    let func = ir::parse_function(start).unwrap_or_else(|e| panic!("{e}\n{start}"));
    let simplified = ir::print_function(&simplify(&func));
    assert_eq!(simplified, goal, "simplifying\n{start}");
}

#[test]
fn cse_and_dce_compact_the_arena() {
    // Two equal exps become one; the unused argument and the dead log disappear.
    assert_simplifies(
        "func f(x: real[N], y: real[N]) {
  v0 = arg x : real[N]
  v1 = arg y : real[N]
  v2 = exp v0 : real[N]
  v3 = exp v0 : real[N]
  v4 = add v2, v3 : real[N]
  v5 = log v3 : real[N]
  return output out = v4
}
",
        "func f(x: real[N], y: real[N]) {
  v0 = arg x : real[N]
  v1 = exp v0 : real[N]
  v2 = add v1, v1 : real[N]
  return output out = v2
}
",
    );
    // Constants are shared by their bits: 0.0 and -0.0 stay apart.
    assert_simplifies(
        "func f(x: real[N]) {
  v0 = arg x : real[N]
  v1 = const 0.0 : real
  v2 = const -0.0 : real
  v3 = const 0.0 : real
  v4 = broadcast v1 to [N] : real[N]
  v5 = broadcast v2 to [N] : real[N]
  v6 = broadcast v3 to [N] : real[N]
  v7 = maximum v0, v4 : real[N]
  v8 = maximum v0, v5 : real[N]
  v9 = minimum v7, v6 : real[N]
  v10 = add v8, v9 : real[N]
  return output out = v10
}
",
        "func f(x: real[N]) {
  v0 = arg x : real[N]
  v1 = const 0.0 : real
  v2 = const -0.0 : real
  v3 = broadcast v1 to [N] : real[N]
  v4 = broadcast v2 to [N] : real[N]
  v5 = maximum v0, v3 : real[N]
  v6 = maximum v0, v4 : real[N]
  v7 = minimum v5, v3 : real[N]
  v8 = add v6, v7 : real[N]
  return output out = v8
}
",
    );
}

/// The gradient fixtures: the bench workloads and the lecture examples.
pub fn fixtures() -> Vec<(String, String)> {
    fixtures::loss_files("tests/data/grad")
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("readable"))
        })
        .collect()
}

#[test]
fn no_expression_swell() {
    let mut report = String::new();
    for (name, source) in fixtures() {
        let compiled = compile(&source).unwrap_or_else(|d| panic!("{name}: {d:?}"));
        let (forward, raw, grad) = (
            op_count(&compiled.forward),
            op_count(&compiled.grad_raw),
            op_count(&compiled.grad),
        );
        report += &format!("{name}: forward {forward}, grad {raw} -> {grad}\n");
        assert!(
            grad <= 4 * forward,
            "{name}: {grad} gradient ops for {forward} forward ops"
        );
        assert!(
            grad <= raw,
            "{name}: simplification grew the gradient ({raw} -> {grad})"
        );
        // A fixpoint: simplifying again changes nothing.
        assert_eq!(
            simplify(&compiled.grad),
            compiled.grad,
            "{name}: not a fixpoint"
        );
    }
    println!("{report}");
}

/// The `swell` workload at chain lengths 10, 20 and 40: the gradient grows by the same
/// number of ops for every link of the chain.
#[test]
fn swell_chain_stays_linear() {
    let program = |n: usize| {
        let mut text = String::from("input x\n");
        for k in 1..=n {
            text += &format!("param p{k}\n");
        }
        text += "let c1 = sin(p1 * x)\n";
        for k in 2..=n {
            text += &format!("let c{k} = sin(p{k} * c{} + x)\n", k - 1);
        }
        let product: Vec<String> = (1..=n).map(|k| format!("p{k}")).collect();
        text += &format!("loss = {} * sin(c{n})\n", product.join(" * "));
        text
    };
    let counts: Vec<(usize, usize)> = [10, 20, 40]
        .iter()
        .map(|&n| {
            let compiled = compile(&program(n)).expect("compiles");
            (op_count(&compiled.forward), op_count(&compiled.grad))
        })
        .collect();
    let per_link = (counts[1].1 - counts[0].1) / 10;
    assert_eq!(counts[1].1 - counts[0].1, 10 * per_link, "{counts:?}");
    assert_eq!(counts[2].1 - counts[1].1, 20 * per_link, "{counts:?}");
    for (forward, grad) in &counts {
        assert!(*grad <= 4 * forward, "{counts:?}");
    }
}
