//! A generator of random, well-typed `.loss` programs with matching data.
//!
//! In: a *choice tape* (a `Vec<u32>` drawn by proptest). Out: a [`Program`]: the source
//! text, a `DATA.json`-style object binding every input and param, and what the
//! program is known to do (its params, the params it deliberately leaves unused, the
//! language features it exercises).
//!
//! Programs are valid *by construction*, not by filtering: the generator keeps a typed
//! pool of the names defined so far (reals, masks, int index data), and builds every
//! expression for a *target shape*, choosing only operand shapes that make the
//! operator's typing rule (spec §3) hold. Every generated program must compile.
//!
//! Every choice reads the tape; a tape that runs out reads as zeros, and choice 0 is
//! always the simplest option (a leaf, no more statements, size 1). Proptest shrinks a
//! failing tape by dropping and zeroing entries, so it shrinks the program towards a
//! small one, which the failure message prints as source text.
//!
//! Numerical tameness (so gradients are checkable by finite differences): every
//! expression carries an interval that bounds its values over all the data the
//! generator can produce (real data in `[-1.25, 1.25]`, dimensions of size 1 to
//! [`MAX_DIM_SIZE`]). `log`, `sqrt`, `log1p`, fractional powers and divisions only get
//! arguments bounded away from their singularities (`log(1 + square(x))`,
//! `(1 + sigmoid(x)) ^ y`, `x / (2 + sin(y))`...), `exp` only arguments below 3, and a
//! value whose bound exceeds [`BIG`] is squashed (`tanh`, `sin`, `x / (1 + square(x))`).
//! Kinks (`relu`, `abs`, `max`, comparisons) are left in: at random data they are hit
//! with probability zero, and the gradient check recognises the ones nearby.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use proptest::prelude::*;
use serde_json::{Map, Value as Json};

/// The largest size the data gives a symbolic dimension.
pub const MAX_DIM_SIZE: u64 = 5;

/// Values bounded beyond `±BIG` are squashed before further use.
pub const BIG: f64 = 20.0;

/// The bound on `fn` arguments assumed when the body is generated (arguments are
/// squashed into it at every call).
const FN_ARG_BOUND: f64 = 2.0;

/// Dependencies at or above this mark stand for `fn` parameters (`FN_PARAM + k`).
const FN_PARAM: u32 = 1 << 20;

/// Known compiler bugs the generator steers around (so the properties can find other
/// ones); each is reported with a minimal repro. Set to `true` once fixed.
pub mod known_bugs {
    /// `loss = softmax(w)` with a scalar `w` (spec: the axis may be omitted for rank
    /// ≤ 1) panics in reverse mode: the VJP sums over axis 0 of a scalar.
    pub const SCALAR_SOFTMAX_WORKS: bool = true;
}

/// The symbolic dimension names a program may declare.
const DIM_NAMES: [&str; 5] = ["B", "N", "K", "V", "H"];

/// A program and its data.
#[derive(Clone)]
pub struct Program {
    /// The `.loss` source text.
    pub source: String,
    /// Data for every input and param, in the `DATA.json` format (spec §5).
    pub data: Json,
    /// Every param's name, in declaration order.
    pub params: Vec<String>,
    /// The params the loss does not depend on (the checker must warn about each).
    pub unused_params: Vec<String>,
    /// The language features the program exercises (`"exp"`, `"matmul-2-1"`, ...).
    pub features: BTreeSet<&'static str>,
    /// How many choices the generator read (more than the tape held means it ran out).
    pub tape_used: usize,
}

impl fmt::Debug for Program {
    /// The source and the data, readable in a proptest failure message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\n----- program -----\n{}", self.source)?;
        writeln!(f, "----- data -----\n{}", self.data)
    }
}

/// The proptest strategy of programs: a random choice tape, read by [`generate`].
pub fn program() -> impl Strategy<Value = Program> {
    proptest::collection::vec(any::<u32>(), 0..10000).prop_map(|tape| generate(&tape))
}

/// Reads a program off a choice tape (deterministic).
pub fn generate(tape: &[u32]) -> Program {
    Generator::new(tape).program()
}

// ---------------------------------------------------------------------------------------
// Choices

/// The choice tape: zeros once it runs out.
struct Tape<'t> {
    choices: &'t [u32],
    position: usize,
}

impl Tape<'_> {
    fn next(&mut self) -> u32 {
        let choice = self.choices.get(self.position).copied().unwrap_or(0);
        self.position += 1;
        choice
    }

    /// A number in `0..n` (0 when `n <= 1`, without reading the tape).
    fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        self.next() as usize % n
    }

    /// An index into `weights`, drawn in proportion to them.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        if total == 0 {
            return 0;
        }
        let mut choice = self.next() % total;
        for (k, &w) in weights.iter().enumerate() {
            if choice < w {
                return k;
            }
            choice -= w;
        }
        0
    }

    /// True with probability `percent`%; false once the tape has run out.
    fn percent(&mut self, percent: u32) -> bool {
        self.next() % 100 >= 100 - percent.min(100)
    }

    fn pick<T: Clone>(&mut self, options: &[T]) -> Option<T> {
        if options.is_empty() {
            return None;
        }
        Some(options[self.below(options.len())].clone())
    }
}

// ---------------------------------------------------------------------------------------
// Shapes and bounds

/// A dimension as the generator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Dim {
    /// `DIM_NAMES[k]`.
    Sym(usize),
    /// A literal size.
    Lit(u64),
    /// The shape of a `fn` parameter while its body is generated (stands for any shape
    /// of rank 0 to 2; the body only uses shape-polymorphic operations on it).
    Generic,
}

type Shape = Vec<Dim>;

impl Dim {
    fn text(self) -> String {
        match self {
            Dim::Sym(k) => DIM_NAMES[k].to_string(),
            Dim::Lit(n) => n.to_string(),
            Dim::Generic => "?".to_string(),
        }
    }

    fn max_size(self) -> u64 {
        match self {
            Dim::Sym(_) => MAX_DIM_SIZE,
            Dim::Lit(n) => n,
            Dim::Generic => MAX_DIM_SIZE * MAX_DIM_SIZE,
        }
    }
}

fn shape_text(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.text()).collect();
    format!("[{}]", dims.join(", "))
}

/// The largest number of elements a reduction over `dims` adds up.
fn max_count(dims: &[Dim]) -> f64 {
    dims.iter().map(|d| d.max_size() as f64).product()
}

/// NumPy broadcasting of ranks ≤ 2 where only a literal 1 stretches (spec §3).
fn broadcast(shapes: &[&Shape]) -> Option<Shape> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![Dim::Lit(1); rank];
    for shape in shapes {
        let offset = rank - shape.len();
        for (k, &d) in shape.iter().enumerate() {
            let slot = &mut out[offset + k];
            if *slot == Dim::Lit(1) {
                *slot = d;
            } else if d != Dim::Lit(1) && d != *slot {
                return None;
            }
        }
    }
    Some(out)
}

/// Closed bounds on every value an expression can take.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bounds {
    lo: f64,
    hi: f64,
}

impl Bounds {
    fn new(a: f64, b: f64) -> Bounds {
        if a.is_nan() || b.is_nan() {
            return Bounds::UNBOUNDED;
        }
        Bounds {
            lo: a.min(b),
            hi: a.max(b),
        }
    }

    const UNBOUNDED: Bounds = Bounds {
        lo: f64::NEG_INFINITY,
        hi: f64::INFINITY,
    };

    fn exact(x: f64) -> Bounds {
        Bounds::new(x, x)
    }

    fn magnitude(self) -> f64 {
        self.lo.abs().max(self.hi.abs())
    }

    fn within(self, limit: f64) -> bool {
        self.lo >= -limit && self.hi <= limit
    }

    fn hull(self, other: Bounds) -> Bounds {
        Bounds::new(self.lo.min(other.lo), self.hi.max(other.hi))
    }

    fn add(self, o: Bounds) -> Bounds {
        Bounds::new(self.lo + o.lo, self.hi + o.hi)
    }

    fn neg(self) -> Bounds {
        Bounds::new(-self.hi, -self.lo)
    }

    fn sub(self, o: Bounds) -> Bounds {
        self.add(o.neg())
    }

    fn mul(self, o: Bounds) -> Bounds {
        let products = [
            self.lo * o.lo,
            self.lo * o.hi,
            self.hi * o.lo,
            self.hi * o.hi,
        ];
        if products.iter().any(|p| p.is_nan()) {
            return Bounds::UNBOUNDED;
        }
        let lo = products.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = products.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Bounds::new(lo, hi)
    }

    /// Division by a strictly positive denominator.
    fn div_positive(self, d: Bounds) -> Bounds {
        assert!(d.lo > 0.0, "generator bug: division by {d:?}");
        self.mul(Bounds::new(1.0 / d.hi, 1.0 / d.lo))
    }

    fn monotone(self, f: impl Fn(f64) -> f64) -> Bounds {
        Bounds::new(f(self.lo), f(self.hi))
    }

    fn abs(self) -> Bounds {
        if self.lo >= 0.0 {
            self
        } else if self.hi <= 0.0 {
            self.neg()
        } else {
            Bounds::new(0.0, self.magnitude())
        }
    }

    fn square(self) -> Bounds {
        self.abs().monotone(|x| x * x)
    }

    /// A sum of 1 to `count` terms, each within `self`.
    fn sum_of(self, count: f64) -> Bounds {
        Bounds::new(self.lo.min(self.lo * count), self.hi.max(self.hi * count))
    }
}

fn softplus(x: f64) -> f64 {
    if x > 30.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

// ---------------------------------------------------------------------------------------
// Expressions and names

/// A generated expression: text, shape, bounds, and the params it mentions.
#[derive(Clone, Debug)]
struct Expr {
    text: String,
    shape: Shape,
    bounds: Bounds,
    /// Params (by index in declaration order) and `fn` parameters (`FN_PARAM + k`)
    /// the text's gradient flows to, directly or through names (not through masks).
    deps: BTreeSet<u32>,
}

impl Expr {
    fn new(text: String, shape: Shape, bounds: Bounds, deps: BTreeSet<u32>) -> Expr {
        Expr {
            text,
            shape,
            bounds,
            deps,
        }
    }

    fn scalar(text: impl Into<String>, value: f64) -> Expr {
        Expr::new(text.into(), vec![], Bounds::exact(value), BTreeSet::new())
    }

    /// `name(self)` with the given bounds.
    fn call(&self, name: &str, bounds: Bounds) -> Expr {
        Expr::new(
            format!("{name}({})", self.text),
            self.shape.clone(),
            bounds,
            self.deps.clone(),
        )
    }

    /// The text as a postfix operand (`x`, `f(x)` or `(...)`).
    fn postfix_operand(&self) -> String {
        let starts_like_a_name = self
            .text
            .starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
        let simple = starts_like_a_name
            && self
                .text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if simple {
            self.text.clone()
        } else {
            format!("({})", self.text)
        }
    }
}

fn union(a: &BTreeSet<u32>, b: &BTreeSet<u32>) -> BTreeSet<u32> {
    a.union(b).copied().collect()
}

/// What a name in the pool holds.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Real,
    Mask,
    /// Index data whose every element lies in `0..size(bound)`.
    Int {
        bound: Dim,
    },
}

/// A name defined so far.
#[derive(Clone, Debug)]
struct Named {
    name: String,
    kind: Kind,
    shape: Shape,
    bounds: Bounds,
    deps: BTreeSet<u32>,
    /// A `let` (not an input, param or `fn` parameter).
    is_let: bool,
}

/// An input or param declaration, emitted when the generator gets to it.
#[derive(Clone, Debug)]
struct Decl {
    name: String,
    is_param: bool,
    kind: Kind,
    shape: Shape,
    /// A param nothing refers to: the loss does not depend on it.
    unused: bool,
}

/// A `fn` defined so far.
#[derive(Clone, Debug)]
struct FnDef {
    name: String,
    arity: usize,
    /// The body is a scalar (every parameter reduced), not of the arguments' shape.
    scalar_body: bool,
    /// Bounds of the body for arguments within `±FN_ARG_BOUND`.
    bounds: Bounds,
    /// The params the body mentions through outer names.
    outer_deps: BTreeSet<u32>,
    /// Which parameters the body mentions.
    uses_param: Vec<bool>,
    calls: usize,
}

/// The parameters of the `fn` whose body is being generated.
struct FnScope {
    params: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// The generator

struct Generator<'t> {
    tape: Tape<'t>,
    decls: Vec<Decl>,
    /// Declarations not emitted yet.
    pending: Vec<usize>,
    /// Names visible at this point (outside any `fn` body).
    pool: Vec<Named>,
    /// Names of lets referred to by a later statement.
    used: BTreeSet<String>,
    fns: Vec<FnDef>,
    fn_scope: Option<FnScope>,
    /// The least size of symbolic dimensions indexed with a literal.
    min_size: BTreeMap<usize, u64>,
    features: BTreeSet<&'static str>,
    lines: Vec<String>,
    n_lets: usize,
    n_masks: usize,
    n_outputs: usize,
}

/// The forms an expression of a given shape can take.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    Leaf,
    Unary,
    Neg,
    Arith,
    Div,
    Pow,
    MinMax,
    Where,
    Reduce,
    Softmax,
    Transpose,
    Dot,
    MatMul,
    Gather,
    Pick,
    OneHot,
    ColumnRow,
    Call,
}

const UNARY_NAMES: [&str; 13] = [
    "exp", "log", "log1p", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "softplus", "abs",
    "square", "neg",
];

const REDUCE_NAMES: [&str; 5] = ["sum", "mean", "max", "min", "logsumexp"];

const COMPARISONS: [&str; 6] = ["<", "<=", ">", ">=", "==", "!="];

/// Real literals in their several spellings, with their values.
const LITERALS: [(&str, f64); 10] = [
    ("2", 2.0),
    ("0.5", 0.5),
    ("3", 3.0),
    ("1.5", 1.5),
    ("5.", 5.0),
    ("1e-1", 0.1),
    ("2.5E+0", 2.5),
    ("0.25", 0.25),
    ("1", 1.0),
    ("pi", std::f64::consts::PI),
];

impl<'t> Generator<'t> {
    fn new(choices: &'t [u32]) -> Self {
        Generator {
            tape: Tape {
                choices,
                position: 0,
            },
            decls: Vec::new(),
            pending: Vec::new(),
            pool: Vec::new(),
            used: BTreeSet::new(),
            fns: Vec::new(),
            fn_scope: None,
            min_size: BTreeMap::new(),
            features: BTreeSet::new(),
            lines: Vec::new(),
            n_lets: 0,
            n_masks: 0,
            n_outputs: 0,
        }
    }

    /// Emits a statement, recording the names it mentions as used.
    fn emit(&mut self, line: String) {
        let words = line
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty());
        // The first two words are the keyword and the name defined.
        self.used.extend(words.skip(2).map(str::to_string));
        self.lines.push(line);
    }

    fn feature(&mut self, name: &'static str) {
        self.features.insert(name);
    }

    // ----- The program ------------------------------------------------------------------

    fn program(mut self) -> Program {
        self.choose_decls();
        // Sizes and the data seed are drawn early, while the tape is surely not exhausted.
        let sizes: Vec<u64> = (0..DIM_NAMES.len())
            .map(|_| 1 + self.tape.below(MAX_DIM_SIZE as usize) as u64)
            .collect();
        let data_seed = self.tape.next();
        // The first declaration comes first; the others are interleaved with lets.
        self.emit_decl();
        let n_statements = 1 + self.tape.below(16);
        for _ in 0..n_statements {
            match self.tape.weighted(&[6, 3, 1, 1, 1]) {
                0 => self.emit_let(),
                1 => self.emit_decl(),
                2 => self.emit_mask(),
                3 => self.emit_fn(),
                _ => self.emit_output(),
            }
        }
        while !self.pending.is_empty() {
            self.emit_decl();
        }
        // Every fn is called at least twice, on arguments of different shapes if possible.
        for k in 0..self.fns.len() {
            while self.fns[k].calls < 2 {
                self.emit_call_let(k);
            }
        }
        self.emit_loss();
        let data = self.data(&sizes, data_seed);
        let params = self
            .decls
            .iter()
            .filter(|d| d.is_param)
            .map(|d| d.name.clone())
            .collect();
        let unused_params = self
            .decls
            .iter()
            .filter(|d| d.unused)
            .map(|d| d.name.clone())
            .collect();
        let mut source = self.lines.join("\n");
        source.push('\n');
        Program {
            tape_used: self.tape.position,
            source,
            data,
            params,
            unused_params,
            features: self.features,
        }
    }

    /// Chooses the inputs and params (real ranks 0 to 2, int index data), up front.
    fn choose_decls(&mut self) {
        let n_syms = 1 + self.tape.below(4);
        let syms: Vec<Dim> = (0..n_syms).map(Dim::Sym).collect();
        let any_dim = |tape: &mut Tape| match tape.weighted(&[8, 1, 1, 1]) {
            0 => syms[tape.below(syms.len())],
            1 => Dim::Lit(1),
            2 => Dim::Lit(2),
            _ => Dim::Lit(3),
        };
        let n_params = 1 + self.tape.below(3);
        let n_inputs = self.tape.below(4);
        let mut real_decls = Vec::new();
        for k in 0..n_params + n_inputs {
            let is_param = k < n_params;
            let rank = self.tape.weighted(&[2, 3, 3]);
            let shape: Shape = (0..rank).map(|_| any_dim(&mut self.tape)).collect();
            let name = if is_param {
                format!("w{k}")
            } else {
                format!("x{}", k - n_params)
            };
            real_decls.push(Decl {
                name,
                is_param,
                kind: Kind::Real,
                shape,
                unused: false,
            });
        }
        // Only the dimensions some declaration mentions exist.
        let mentioned: BTreeSet<Dim> = real_decls
            .iter()
            .flat_map(|d| d.shape.iter().copied())
            .collect();
        let mut dims_in_use: Vec<Dim> = mentioned.iter().copied().collect();
        if dims_in_use.is_empty() {
            dims_in_use.push(Dim::Lit(3));
        }
        let sym_in_use: Vec<Dim> = dims_in_use
            .iter()
            .copied()
            .filter(|d| matches!(d, Dim::Sym(_)))
            .collect();
        let n_ints = self.tape.weighted(&[2, 3, 2]);
        let mut int_decls = Vec::new();
        for k in 0..n_ints {
            let shape = if self.tape.percent(25) || sym_in_use.is_empty() {
                vec![]
            } else {
                vec![sym_in_use[self.tape.below(sym_in_use.len())]]
            };
            let bound = dims_in_use[self.tape.below(dims_in_use.len())];
            int_decls.push(Decl {
                name: format!("i{k}"),
                is_param: false,
                kind: Kind::Int { bound },
                shape,
                unused: false,
            });
        }
        let mut unused_decls = Vec::new();
        if self.tape.percent(15) {
            let rank = self.tape.below(3);
            let shape: Shape = (0..rank).map(|_| dims_in_use[0]).collect();
            unused_decls.push(Decl {
                name: "u0".to_string(),
                is_param: true,
                kind: Kind::Real,
                shape,
                unused: true,
            });
        }
        // Interleave the kinds a little: the order is the argument order.
        let mut all: Vec<Decl> = real_decls;
        for decl in int_decls.into_iter().chain(unused_decls) {
            let at = self.tape.below(all.len() + 1);
            all.insert(at, decl);
        }
        // Make sure the first declaration is real (so the first statements have operands).
        if let Some(k) = all.iter().position(|d| d.kind == Kind::Real && !d.unused) {
            let decl = all.remove(k);
            all.insert(0, decl);
        }
        self.pending = (0..all.len()).collect();
        self.decls = all;
    }

    fn param_index(&self, name: &str) -> u32 {
        self.decls
            .iter()
            .filter(|d| d.is_param)
            .position(|d| d.name == name)
            .expect("generator bug: not a param") as u32
    }

    fn emit_decl(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let decl = self.decls[self.pending.remove(0)].clone();
        let keyword = if decl.is_param { "param" } else { "input" };
        let ty = match (&decl.kind, decl.shape.is_empty()) {
            (Kind::Int { .. }, true) => ": int".to_string(),
            (Kind::Int { .. }, false) => format!(": int{}", shape_text(&decl.shape)),
            (_, true) => ["", ": real", ": []"][self.tape.below(3)].to_string(),
            (_, false) => {
                let elem = ["", "real"][self.tape.below(2)];
                format!(": {elem}{}", shape_text(&decl.shape))
            }
        };
        let comment = match &decl.kind {
            Kind::Int { bound } => format!("   # indices in 0..{}", bound.text()),
            _ if decl.unused => "   # unused: the loss does not depend on it".to_string(),
            _ => String::new(),
        };
        self.lines
            .push(format!("{keyword} {}{ty}{comment}", decl.name));
        if decl.unused {
            return;
        }
        let deps = if decl.is_param {
            BTreeSet::from([self.param_index(&decl.name)])
        } else {
            BTreeSet::new()
        };
        let bounds = match decl.kind {
            Kind::Real => Bounds::new(-1.25, 1.25),
            _ => Bounds::UNBOUNDED,
        };
        self.pool.push(Named {
            name: decl.name,
            kind: decl.kind,
            shape: decl.shape,
            bounds,
            deps,
            is_let: false,
        });
    }

    /// The dimensions declared so far (and the literal ones).
    fn dims_in_scope(&self) -> Vec<Dim> {
        let mut dims: BTreeSet<Dim> = self
            .pool
            .iter()
            .flat_map(|n| n.shape.iter().copied())
            .filter(|d| matches!(d, Dim::Sym(_)))
            .collect();
        dims.extend([Dim::Lit(1), Dim::Lit(2), Dim::Lit(3)]);
        dims.into_iter().collect()
    }

    fn dim_in_scope(&self, d: Dim) -> bool {
        match d {
            Dim::Sym(_) => self.pool.iter().any(|n| n.shape.contains(&d)),
            Dim::Lit(_) => true,
            Dim::Generic => false,
        }
    }

    fn random_dim(&mut self) -> Dim {
        let dims = self.dims_in_scope();
        let syms: Vec<Dim> = dims
            .iter()
            .copied()
            .filter(|d| matches!(d, Dim::Sym(_)))
            .collect();
        if !syms.is_empty() && self.tape.below(4) != 3 {
            return syms[self.tape.below(syms.len())];
        }
        dims[self.tape.below(dims.len())]
    }

    /// A shape to generate a value of: one that a visible real has, or a fresh one.
    fn random_shape(&mut self) -> Shape {
        if self.fn_scope.is_some() {
            return if self.tape.percent(20) {
                vec![]
            } else {
                vec![Dim::Generic]
            };
        }
        match self.tape.weighted(&[6, 2, 1, 1]) {
            0 => {
                let shapes: Vec<Shape> = self
                    .visible()
                    .into_iter()
                    .filter(|n| n.kind == Kind::Real)
                    .map(|n| n.shape)
                    .collect();
                self.tape.pick(&shapes).unwrap_or_default()
            }
            1 => vec![],
            2 => vec![self.random_dim()],
            _ => vec![self.random_dim(), self.random_dim()],
        }
    }

    fn emit_let(&mut self) {
        let shape = self.random_shape();
        let depth = 1 + self.tape.below(3) as u32;
        let Some(expr) = self.gen(&shape, depth) else {
            return;
        };
        self.bind_let(expr);
    }

    fn bind_let(&mut self, expr: Expr) -> String {
        let name = format!("v{}", self.n_lets);
        self.n_lets += 1;
        self.emit(format!("let {name} = {}", expr.text));
        self.pool.push(Named {
            name: name.clone(),
            kind: Kind::Real,
            shape: expr.shape,
            bounds: expr.bounds,
            deps: expr.deps,
            is_let: true,
        });
        name
    }

    fn emit_mask(&mut self) {
        let shape = self.random_shape();
        let Some((text, mask_shape, deps)) = self.mask(&shape) else {
            return;
        };
        let name = format!("m{}", self.n_masks);
        self.n_masks += 1;
        self.feature("let-mask");
        self.emit(format!("let {name} = {text}"));
        self.pool.push(Named {
            name,
            kind: Kind::Mask,
            shape: mask_shape,
            bounds: Bounds::UNBOUNDED,
            deps,
            is_let: true,
        });
    }

    fn emit_output(&mut self) {
        let shape = self.random_shape();
        let Some(expr) = self.gen(&shape, 1) else {
            return;
        };
        let name = format!("o{}", self.n_outputs);
        self.n_outputs += 1;
        self.feature("output");
        self.emit(format!("output {name} = {}", expr.text));
    }

    /// `fn fK(params) = body`: a shape-polymorphic body over generic parameters.
    fn emit_fn(&mut self) {
        let arity = 1 + self.tape.below(3);
        // Parameter names; sometimes one shadows an outer name.
        let mut params: Vec<String> = (0..arity).map(|k| ["a", "b", "c"][k].to_string()).collect();
        if self.tape.percent(30) {
            let outer: Vec<String> = self.pool.iter().map(|n| n.name.clone()).collect();
            if let Some(name) = self.tape.pick(&outer) {
                self.feature("fn-shadowing");
                params[0] = name;
            }
        }
        let scalar_body = self.tape.percent(8);
        let target = if scalar_body {
            vec![]
        } else {
            vec![Dim::Generic]
        };
        self.fn_scope = Some(FnScope {
            params: params.clone(),
        });
        let depth = 1 + self.tape.below(2) as u32;
        let body = self.gen(&target, depth);
        self.fn_scope = None;
        let Some(body) = body else {
            return;
        };
        let uses_param: Vec<bool> = (0..arity)
            .map(|k| body.deps.contains(&(FN_PARAM + k as u32)))
            .collect();
        // A body of the arguments' shape must mention a parameter (else it is scalar).
        if !scalar_body && !uses_param.iter().any(|&u| u) {
            return;
        }
        let outer_deps = body
            .deps
            .iter()
            .copied()
            .filter(|&d| d < FN_PARAM)
            .collect();
        let name = format!("f{}", self.fns.len());
        self.feature("fn");
        self.emit(format!("fn {name}({}) = {}", params.join(", "), body.text));
        self.fns.push(FnDef {
            name,
            arity,
            scalar_body,
            bounds: body.bounds,
            outer_deps,
            uses_param,
            calls: 0,
        });
    }

    /// `let vK = fK(...)` on arguments of a random shape.
    fn emit_call_let(&mut self, k: usize) {
        let shape = self.random_shape();
        let target = if self.fns[k].scalar_body {
            vec![]
        } else {
            shape.clone()
        };
        let expr = self
            .call_fn(k, &target, &shape, 1)
            .unwrap_or_else(|| self.call_fn(k, &vec![], &[], 0).expect("scalar call"));
        self.bind_let(expr);
    }

    fn emit_loss(&mut self) {
        let mut terms: Vec<Expr> = Vec::new();
        let sinks: Vec<Named> = self
            .pool
            .iter()
            .filter(|n| n.is_let && n.kind == Kind::Real && !self.used.contains(&n.name))
            .cloned()
            .collect();
        for sink in sinks {
            // Some lets stay dead (for DCE).
            if self.tape.percent(10) {
                continue;
            }
            let leaf = self.leaf_expr(&sink);
            terms.push(self.reduce_to_scalar(leaf));
        }
        let covered: BTreeSet<u32> = terms.iter().flat_map(|t| t.deps.iter().copied()).collect();
        let uncovered: Vec<Named> = self
            .pool
            .iter()
            .filter(|n| !n.is_let && n.deps.iter().any(|d| !covered.contains(d)))
            .cloned()
            .collect();
        for param in uncovered {
            let leaf = self.leaf_expr(&param);
            let squared = leaf.call("square", leaf.bounds.square());
            terms.push(self.reduce_to_scalar(squared));
        }
        let mut text = String::new();
        for (k, term) in terms.iter().enumerate() {
            let (sign, scale) = match self.tape.weighted(&[6, 1, 1]) {
                0 => ("+", ""),
                1 => ("-", ""),
                _ => ("+", "0.5 * "),
            };
            if k == 0 {
                text = format!("{}{scale}{}", if sign == "-" { "-" } else { "" }, term.text);
            } else {
                text = format!("{text} {sign} {scale}{}", term.text);
            }
        }
        if text.is_empty() {
            text = "0".to_string();
        }
        self.emit(format!("loss = {text}"));
    }

    /// `sum(x)`, `mean(x)`, `logsumexp(x)` or `max(x)` of a value (squashed if large).
    fn reduce_to_scalar(&mut self, x: Expr) -> Expr {
        let x = if x.bounds.within(BIG) {
            x
        } else {
            self.squash(x)
        };
        if x.shape.is_empty() {
            return x;
        }
        let count = max_count(&x.shape);
        let (name, bounds) = match self.tape.weighted(&[4, 3, 1, 1]) {
            0 => ("sum", x.bounds.sum_of(count)),
            1 => ("mean", x.bounds),
            2 => (
                "logsumexp",
                Bounds::new(x.bounds.lo, x.bounds.hi + count.ln()),
            ),
            _ => ("max", x.bounds),
        };
        self.feature(name);
        Expr::new(format!("{name}({})", x.text), vec![], bounds, x.deps)
    }

    // ----- Data -------------------------------------------------------------------------

    /// The data: `sizes[k]` for `DIM_NAMES[k]` (at least what literal indices need).
    fn data(&self, sizes: &[u64], seed: u32) -> Json {
        let size = |d: Dim| match d {
            Dim::Sym(k) => sizes[k].max(self.min_size.get(&k).copied().unwrap_or(1)) as usize,
            Dim::Lit(n) => n as usize,
            Dim::Generic => unreachable!("generator bug: generic dim in a declaration"),
        };
        let mut rng = SplitMix64(u64::from(seed) ^ 0x005e_ed0f_da7a);
        let mut object = Map::new();
        for decl in &self.decls {
            let shape: Vec<usize> = decl.shape.iter().map(|&d| size(d)).collect();
            let mut element = || -> Json {
                match decl.kind {
                    Kind::Int { bound } => Json::from(rng.below(size(bound) as u64) as i64),
                    _ => {
                        let magnitude = 0.25 + rng.unit();
                        let sign = if rng.next() & 1 == 0 { 1.0 } else { -1.0 };
                        Json::from(sign * magnitude)
                    }
                }
            };
            let value = match shape.as_slice() {
                [] => element(),
                [n] => Json::Array((0..*n).map(|_| element()).collect()),
                [rows, cols] => Json::Array(
                    (0..*rows)
                        .map(|_| Json::Array((0..*cols).map(|_| element()).collect()))
                        .collect(),
                ),
                _ => unreachable!("generator bug: rank > 2"),
            };
            object.insert(decl.name.clone(), value);
        }
        Json::Object(object)
    }

    // ----- Expressions ------------------------------------------------------------------

    /// The names an expression may refer to here: inside a `fn` body, its parameters
    /// (of generic shape) and the outer real scalars they do not shadow.
    fn visible(&self) -> Vec<Named> {
        let Some(scope) = &self.fn_scope else {
            return self.pool.clone();
        };
        let mut names: Vec<Named> = scope
            .params
            .iter()
            .enumerate()
            .map(|(k, name)| Named {
                name: name.clone(),
                kind: Kind::Real,
                shape: vec![Dim::Generic],
                bounds: Bounds::new(-FN_ARG_BOUND, FN_ARG_BOUND),
                deps: BTreeSet::from([FN_PARAM + k as u32]),
                is_let: false,
            })
            .collect();
        names.extend(
            self.pool
                .iter()
                .filter(|n| {
                    n.kind == Kind::Real && n.shape.is_empty() && !scope.params.contains(&n.name)
                })
                .cloned(),
        );
        names
    }

    fn in_fn(&self) -> bool {
        self.fn_scope.is_some()
    }

    /// A name as an expression (marking a let as used).
    fn leaf_expr(&mut self, named: &Named) -> Expr {
        Expr::new(
            named.name.clone(),
            named.shape.clone(),
            named.bounds,
            named.deps.clone(),
        )
    }

    /// An expression of shape `target` with at most `depth` levels of operators, or
    /// `None` if none can be built from the names in scope.
    fn gen(&mut self, target: &Shape, depth: u32) -> Option<Expr> {
        let forms = self.forms(target, depth);
        let weights: Vec<u32> = forms.iter().map(|(_, w)| *w).collect();
        // A form may find no operands of the shapes it needs: try another, then a leaf.
        let mut built = None;
        for _ in 0..3 {
            let form = forms[self.tape.weighted(&weights)].0;
            built = self.build(form, target, depth);
            if built.is_some() {
                break;
            }
        }
        let expr = match built {
            Some(e) => e,
            None => self.leaf(target)?,
        };
        debug_assert_eq!(&expr.shape, target, "generator bug: built {expr:?}");
        Some(if expr.bounds.within(BIG) {
            expr
        } else {
            self.squash(expr)
        })
    }

    /// The forms worth trying for `target`, with weights; `Leaf` first.
    fn forms(&self, target: &Shape, depth: u32) -> Vec<(Form, u32)> {
        let mut forms = vec![(Form::Leaf, 3)];
        if depth == 0 {
            return forms;
        }
        forms.extend([
            (Form::Unary, 5),
            (Form::Neg, 1),
            (Form::Arith, 6),
            (Form::Div, 2),
            (Form::Pow, 2),
            (Form::MinMax, 1),
            (Form::Where, 2),
        ]);
        if target.is_empty() || (target.len() == 1 && !self.in_fn()) {
            forms.push((Form::Reduce, 4));
        }
        if !self.fns.is_empty() {
            forms.push((Form::Call, 2));
        }
        if self.in_fn() {
            return forms;
        }
        forms.extend([
            (Form::Softmax, 2),
            (Form::Transpose, 1),
            (Form::MatMul, 3),
            (Form::Gather, 3),
        ]);
        match target.len() {
            0 => forms.push((Form::Dot, 1)),
            1 => forms.push((Form::Pick, 2)),
            _ => forms.extend([(Form::OneHot, 1), (Form::ColumnRow, 2)]),
        }
        forms
    }

    fn build(&mut self, form: Form, target: &Shape, depth: u32) -> Option<Expr> {
        let d = depth.saturating_sub(1);
        match form {
            Form::Leaf => self.leaf(target),
            Form::Unary => self.unary(target, d),
            Form::Neg => {
                let x = self.gen(target, d)?;
                self.feature("neg");
                let text = if self.tape.percent(20) {
                    self.feature("neg-neg");
                    format!("(- -{})", x.postfix_operand())
                } else {
                    format!("(-{})", x.postfix_operand())
                };
                Some(Expr::new(text, x.shape, x.bounds.neg(), x.deps))
            }
            Form::Arith => self.arith(target, d),
            Form::Div => self.div(target, d),
            Form::Pow => self.pow(target, d),
            Form::MinMax => {
                let (a, b) = self.operand_pair(target, d)?;
                let (name, bounds) = if self.tape.percent(50) {
                    (
                        "maximum",
                        Bounds::new(a.bounds.lo.max(b.bounds.lo), a.bounds.hi.max(b.bounds.hi)),
                    )
                } else {
                    (
                        "minimum",
                        Bounds::new(a.bounds.lo.min(b.bounds.lo), a.bounds.hi.min(b.bounds.hi)),
                    )
                };
                self.feature(name);
                Some(Expr::new(
                    format!("{name}({}, {})", a.text, b.text),
                    target.clone(),
                    bounds,
                    union(&a.deps, &b.deps),
                ))
            }
            Form::Where => self.where_(target, d),
            Form::Reduce => self.reduce(target, d),
            Form::Softmax => self.softmax(target, d),
            Form::Transpose => self.transpose(target, d),
            Form::Dot => {
                let k = self.random_dim();
                let a = self.gen(&vec![k], d)?;
                let b = self.gen(&vec![k], d)?;
                self.feature("dot");
                Some(Expr::new(
                    format!("dot({}, {})", a.text, b.text),
                    vec![],
                    a.bounds.mul(b.bounds).sum_of(k.max_size() as f64),
                    union(&a.deps, &b.deps),
                ))
            }
            Form::MatMul => self.matmul(target, d),
            Form::Gather => self.gather(target, d),
            Form::Pick => {
                let labels = self.int_names(|n| n.shape == *target);
                let label = self.tape.pick(&labels)?;
                let Kind::Int { bound } = label.kind else {
                    unreachable!()
                };
                let x = self.gen(&vec![target[0], bound], d)?;
                self.feature("pick");
                Some(Expr::new(
                    format!("pick({}, {})", x.text, label.name),
                    target.clone(),
                    x.bounds,
                    x.deps,
                ))
            }
            Form::OneHot => self.onehot(target),
            Form::ColumnRow => {
                let (name, inner) = match target.as_slice() {
                    [x, Dim::Lit(1)] => ("column", *x),
                    [Dim::Lit(1), y] => ("row", *y),
                    _ => return None,
                };
                let v = self.gen(&vec![inner], d)?;
                self.feature(name);
                Some(Expr::new(
                    format!("{name}({})", v.text),
                    target.clone(),
                    v.bounds,
                    v.deps,
                ))
            }
            Form::Call => {
                let k = self.tape.below(self.fns.len());
                let arg_shape = if self.fns[k].scalar_body {
                    self.random_shape()
                } else {
                    target.clone()
                };
                if self.fns[k].scalar_body && !target.is_empty() {
                    return None;
                }
                self.call_fn(k, target, &arg_shape, d)
            }
        }
    }

    fn int_names(&self, filter: impl Fn(&Named) -> bool) -> Vec<Named> {
        if self.in_fn() {
            return vec![];
        }
        self.pool
            .iter()
            .filter(|n| matches!(n.kind, Kind::Int { .. }) && filter(n))
            .filter(|n| match n.kind {
                Kind::Int { bound } => self.dim_in_scope(bound),
                _ => false,
            })
            .cloned()
            .collect()
    }

    /// A name of shape `target`, a literal, a dimension size, or a small construction
    /// on names (transposed, as a column or row, a one-hot).
    fn leaf(&mut self, target: &Shape) -> Option<Expr> {
        let mut options: Vec<Named> = self
            .visible()
            .into_iter()
            .filter(|n| n.kind == Kind::Real && n.shape == *target)
            .collect();
        if target.is_empty() && (options.is_empty() || self.tape.percent(30)) {
            let dims: Vec<Dim> = self
                .dims_in_scope()
                .into_iter()
                .filter(|d| matches!(d, Dim::Sym(_)))
                .collect();
            if !dims.is_empty() && self.tape.percent(25) {
                let d = dims[self.tape.below(dims.len())];
                self.feature("dim-as-value");
                return Some(Expr::new(
                    d.text(),
                    vec![],
                    Bounds::new(1.0, d.max_size() as f64),
                    BTreeSet::new(),
                ));
            }
            let (text, value) = LITERALS[self.tape.below(LITERALS.len())];
            return Some(Expr::scalar(text, value));
        }
        if let Some(named) = self.tape.pick(&options) {
            // Prefer names not used yet, so most lets and params reach the loss.
            let unused: Vec<Named> = options
                .iter()
                .filter(|n| n.is_let && !self.used.contains(&n.name))
                .cloned()
                .collect();
            let named = if !unused.is_empty() && self.tape.percent(50) {
                self.tape.pick(&unused).unwrap_or(named)
            } else {
                named
            };
            return Some(self.leaf_expr(&named));
        }
        // No name of this shape: a construction on one.
        options.clear();
        match target.as_slice() {
            [x, y] => {
                let (x, y) = (*x, *y);
                let transposable: Vec<Named> = self
                    .visible()
                    .into_iter()
                    .filter(|n| n.kind == Kind::Real && n.shape == vec![y, x])
                    .collect();
                if let Some(named) = self.tape.pick(&transposable) {
                    let e = self.leaf_expr(&named);
                    self.feature("dot-T");
                    return Some(Expr::new(
                        format!("{}.T", e.text),
                        target.clone(),
                        e.bounds,
                        e.deps,
                    ));
                }
                if let Some(e) = self.onehot(target) {
                    return Some(e);
                }
                let (name, inner) = match (x, y) {
                    (x, Dim::Lit(1)) => ("column", x),
                    (Dim::Lit(1), y) => ("row", y),
                    _ => return None,
                };
                let vectors: Vec<Named> = self
                    .visible()
                    .into_iter()
                    .filter(|n| n.kind == Kind::Real && n.shape == vec![inner])
                    .collect();
                let named = self.tape.pick(&vectors)?;
                let e = self.leaf_expr(&named);
                self.feature(name);
                Some(Expr::new(
                    format!("{name}({})", e.text),
                    target.clone(),
                    e.bounds,
                    e.deps,
                ))
            }
            _ => None,
        }
    }

    /// Squashes a value into a small range.
    fn squash(&mut self, x: Expr) -> Expr {
        match self.tape.below(3) {
            0 => x.call("tanh", x.bounds.monotone(f64::tanh)),
            1 => x.call("sin", Bounds::new(-1.0, 1.0)),
            _ => Expr::new(
                format!("({} / (1 + square({})))", x.postfix_operand(), x.text),
                x.shape,
                Bounds::new(-0.5, 0.5),
                x.deps,
            ),
        }
    }

    /// `x` if its bounds are within `±limit`, else `tanh(x)`-like.
    fn within(&mut self, x: Expr, limit: f64) -> Expr {
        if x.bounds.within(limit) {
            x
        } else {
            let squashed = self.squash(x);
            if squashed.bounds.within(limit) {
                squashed
            } else {
                let bounds = squashed.bounds.monotone(f64::tanh);
                squashed.call("tanh", bounds)
            }
        }
    }

    fn unary(&mut self, target: &Shape, d: u32) -> Option<Expr> {
        let name = UNARY_NAMES[self.tape.below(UNARY_NAMES.len() - 1)];
        let x = self.gen(target, d)?;
        self.feature(name);
        let b = x.bounds;
        Some(match name {
            "exp" => {
                let x = self.within(x, 3.0);
                let bounds = x.bounds.monotone(f64::exp);
                x.call("exp", bounds)
            }
            "log" | "sqrt" | "log1p" => self.positive_function(name, x),
            "sin" | "cos" => x.call(name, Bounds::new(-1.0, 1.0)),
            "tanh" => x.call(name, b.monotone(f64::tanh)),
            "sigmoid" => x.call(name, b.monotone(sigmoid)),
            "relu" => x.call(name, b.monotone(|v| v.max(0.0))),
            "softplus" => x.call(name, b.monotone(softplus)),
            "abs" => x.call(name, b.abs()),
            _ => x.call("square", b.square()),
        })
    }

    /// `log`, `sqrt` or `log1p` of something bounded away from their singularity.
    fn positive_function(&mut self, name: &str, x: Expr) -> Expr {
        let f = |v: f64| match name {
            "log" => v.ln(),
            "sqrt" => v.sqrt(),
            _ => v.ln_1p(),
        };
        let safe_lo = if name == "log1p" { -0.5 } else { 0.05 };
        if x.bounds.lo >= safe_lo {
            self.feature("positive-direct");
            let bounds = x.bounds.monotone(f);
            return x.call(name, bounds);
        }
        let (shape, deps) = (x.shape.clone(), x.deps.clone());
        let shift = if name == "log1p" { "" } else { "1 + " };
        let shift_value = if name == "log1p" { 0.0 } else { 1.0 };
        let (text, arg_bounds) = match self.tape.below(3) {
            0 => (
                format!("{shift}square({})", x.text),
                x.bounds.square().add(Bounds::exact(shift_value)),
            ),
            1 => {
                let x = self.within(x, 3.0);
                (
                    format!("{shift}exp({})", x.text),
                    x.bounds.monotone(f64::exp).add(Bounds::exact(shift_value)),
                )
            }
            _ => {
                let x = self.within(x, 8.0);
                (format!("sigmoid({})", x.text), x.bounds.monotone(sigmoid))
            }
        };
        Expr::new(
            format!("{name}({text})"),
            shape,
            arg_bounds.monotone(f),
            deps,
        )
    }

    /// Shapes `(a, b)` whose broadcast is `target`.
    fn shape_pairs(&mut self, target: &Shape) -> (Shape, Shape) {
        let subs = self.sub_shapes(target);
        let mut pairs: Vec<(Shape, Shape)> = Vec::new();
        for s in &subs {
            pairs.push((target.clone(), s.clone()));
            pairs.push((s.clone(), target.clone()));
        }
        if let [x, y] = target.as_slice() {
            // Outer forms: [X,1] with [1,Y] or [Y].
            pairs.push((vec![*x, Dim::Lit(1)], vec![Dim::Lit(1), *y]));
            pairs.push((vec![*x, Dim::Lit(1)], vec![*y]));
            pairs.push((vec![*y], vec![*x, Dim::Lit(1)]));
        }
        let (a, b) = pairs[self.tape.below(pairs.len())].clone();
        debug_assert_eq!(broadcast(&[&a, &b]).as_ref(), Some(target));
        (a, b)
    }

    /// Shapes that broadcast to `target` (including `target` and the scalar shape).
    fn sub_shapes(&self, target: &Shape) -> Vec<Shape> {
        let one = Dim::Lit(1);
        let mut subs: Vec<Shape> = vec![target.clone(), vec![]];
        match target.as_slice() {
            [Dim::Generic] | [] => {}
            [_] => subs.push(vec![one]),
            [x, y] => subs.extend([
                vec![*y],
                vec![*x, one],
                vec![one, *y],
                vec![one],
                vec![one, one],
            ]),
            _ => {}
        }
        let mut unique = Vec::new();
        for s in subs {
            if !unique.contains(&s) {
                unique.push(s);
            }
        }
        unique
    }

    /// Two operands whose broadcast is `target` (falling back to `target` and a scalar).
    fn operand_pair(&mut self, target: &Shape, d: u32) -> Option<(Expr, Expr)> {
        let (sa, sb) = self.shape_pairs(target);
        let (a, b) = (self.gen(&sa, d), self.gen(&sb, d));
        if let (Some(a), Some(b)) = (a, b) {
            if sa != *target || sb != *target {
                self.feature("broadcast");
            }
            return Some((a, b));
        }
        let a = self.gen(target, d)?;
        let b = self.gen(&vec![], d)?;
        Some(if self.tape.percent(50) {
            (a, b)
        } else {
            (b, a)
        })
    }

    fn arith(&mut self, target: &Shape, d: u32) -> Option<Expr> {
        let (a, b) = self.operand_pair(target, d)?;
        let (op, bounds) = match self.tape.below(3) {
            0 => ("+", a.bounds.add(b.bounds)),
            1 => ("-", a.bounds.sub(b.bounds)),
            _ => ("*", a.bounds.mul(b.bounds)),
        };
        self.feature(match op {
            "+" => "add",
            "-" => "sub",
            _ => "mul",
        });
        Some(Expr::new(
            format!("({} {op} {})", a.text, b.text),
            target.clone(),
            bounds,
            union(&a.deps, &b.deps),
        ))
    }

    fn div(&mut self, target: &Shape, d: u32) -> Option<Expr> {
        let (a, b) = self.operand_pair(target, d)?;
        self.feature("div");
        let (text, denominator) = if b.bounds.lo >= 0.5 {
            (b.text.clone(), b.bounds)
        } else {
            match self.tape.below(4) {
                0 => (
                    format!("(1 + square({}))", b.text),
                    b.bounds.square().add(Bounds::exact(1.0)),
                ),
                1 => (format!("(2 + sin({}))", b.text), Bounds::new(1.0, 3.0)),
                2 => {
                    let b = self.within(b.clone(), 3.0);
                    (
                        format!("(1 + exp({}))", b.text),
                        b.bounds.monotone(f64::exp).add(Bounds::exact(1.0)),
                    )
                }
                _ => (
                    format!("(0.5 + sigmoid({}))", b.text),
                    b.bounds.monotone(sigmoid).add(Bounds::exact(0.5)),
                ),
            }
        };
        Some(Expr::new(
            format!("({} / {text})", a.text),
            target.clone(),
            a.bounds.div_positive(denominator),
            union(&a.deps, &b.deps),
        ))
    }

    fn pow(&mut self, target: &Shape, d: u32) -> Option<Expr> {
        match self.tape.below(3) {
            0 => {
                // An integer literal exponent: any base.
                let x = self.gen(target, d)?;
                let x = self.within(x, 5.0);
                let (exponent, bounds) = match self.tape.below(3) {
                    0 => ("2", x.bounds.square()),
                    1 => ("3", x.bounds.monotone(|v| v * v * v)),
                    _ => ("0", Bounds::exact(1.0)),
                };
                self.feature("pow-int");
                Some(Expr::new(
                    format!("({} ^ {exponent})", x.postfix_operand()),
                    target.clone(),
                    bounds,
                    x.deps,
                ))
            }
            1 => {
                // A negative exponent of a positive base.
                let x = self.gen(target, d)?;
                let x = self.within(x, 5.0);
                let base = x.bounds.square().add(Bounds::exact(1.0));
                self.feature("pow-negative");
                Some(Expr::new(
                    format!("((1 + square({})) ^ -1)", x.text),
                    target.clone(),
                    Bounds::new(1.0 / base.hi, 1.0 / base.lo),
                    x.deps,
                ))
            }
            _ => {
                // A positive base to a bounded real power, broadcasting.
                let (a, b) = self.operand_pair(target, d)?;
                let b = self.within(b, 3.0);
                let base = a.bounds.monotone(sigmoid).add(Bounds::exact(1.0));
                let bounds = base.monotone(f64::ln).mul(b.bounds).monotone(f64::exp);
                let text = if self.tape.percent(50) {
                    self.feature("pow-call");
                    format!("pow(1 + sigmoid({}), {})", a.text, b.text)
                } else {
                    self.feature("pow-real");
                    format!("((1 + sigmoid({})) ^ {})", a.text, b.postfix_operand())
                };
                Some(Expr::new(
                    text,
                    target.clone(),
                    bounds,
                    union(&a.deps, &b.deps),
                ))
            }
        }
    }

    /// A mask whose shape broadcasts into `target`: a mask in scope or a comparison.
    fn mask(&mut self, target: &Shape) -> Option<(String, Shape, BTreeSet<u32>)> {
        let subs = self.sub_shapes(target);
        if !self.in_fn() && self.tape.percent(30) {
            let masks: Vec<Named> = self
                .pool
                .iter()
                .filter(|n| n.kind == Kind::Mask && subs.contains(&n.shape))
                .cloned()
                .collect();
            if let Some(mask) = self.tape.pick(&masks) {
                return Some((mask.name, mask.shape, mask.deps));
            }
        }
        let op = COMPARISONS[self.tape.below(COMPARISONS.len())];
        if self.tape.percent(20) {
            // Comparing int data: with another int name of a compatible shape, or with an
            // integer literal.
            let ints = self.int_names(|n| subs.contains(&n.shape));
            if let Some(a) = self.tape.pick(&ints) {
                let others = self.int_names(|n| {
                    broadcast(&[&n.shape, &a.shape]).is_some_and(|s| subs.contains(&s))
                });
                let other = self.tape.pick(&others).filter(|_| self.tape.percent(50));
                self.feature("compare-int");
                return Some(match other {
                    Some(b) => {
                        let shape = broadcast(&[&a.shape, &b.shape])?;
                        (
                            format!("({} {op} {})", a.name, b.name),
                            shape,
                            BTreeSet::new(),
                        )
                    }
                    None => (format!("({} {op} 1)", a.name), a.shape, BTreeSet::new()),
                });
            }
        }
        let shape = subs[self.tape.below(subs.len())].clone();
        let (sa, sb) = if shape.is_empty() {
            (vec![], vec![])
        } else {
            self.shape_pairs(&shape)
        };
        let a = self.gen(&sa, 1)?;
        let b = self.gen(&sb, 0)?;
        self.feature("compare");
        Some((
            format!("({} {op} {})", a.text, b.text),
            shape,
            union(&a.deps, &b.deps),
        ))
    }

    fn where_(&mut self, target: &Shape, d: u32) -> Option<Expr> {
        // A gradient does not flow into the mask: a param it alone reads has none.
        let (mask, mask_shape, _) = self.mask(target)?;
        let subs = self.sub_shapes(target);
        let sa = subs[self.tape.below(subs.len())].clone();
        let sb = subs[self.tape.below(subs.len())].clone();
        let sa = if broadcast(&[&mask_shape, &sa, &sb]).as_ref() == Some(target) {
            sa
        } else {
            target.clone()
        };
        let a = self.gen(&sa, d)?;
        let b = self.gen(&sb, d)?;
        self.feature("where");
        Some(Expr::new(
            format!("where({mask}, {}, {})", a.text, b.text),
            target.clone(),
            a.bounds.hull(b.bounds),
            union(&a.deps, &b.deps),
        ))
    }

    fn reduce(&mut self, target: &Shape, d: u32) -> Option<Expr> {
        let name = REDUCE_NAMES[self.tape.below(REDUCE_NAMES.len())];
        // The operand's shape, the axis text, and the dimensions reduced.
        let (shape, axis, reduced): (Shape, String, Vec<Dim>) = match target.as_slice() {
            [] if self.in_fn() => (vec![Dim::Generic], String::new(), vec![Dim::Generic]),
            [] => {
                let shape = self.random_shape();
                if shape.len() == 1 && self.tape.percent(40) {
                    let axis = ["0", "-1"][self.tape.below(2)];
                    (shape.clone(), format!(", {axis}"), shape)
                } else {
                    (shape.clone(), String::new(), shape)
                }
            }
            [x] if *x != Dim::Generic => {
                let other = self.random_dim();
                if self.tape.percent(50) {
                    let axis = ["1", "-1"][self.tape.below(2)];
                    (vec![*x, other], format!(", {axis}"), vec![other])
                } else {
                    let axis = ["0", "-2"][self.tape.below(2)];
                    (vec![other, *x], format!(", {axis}"), vec![other])
                }
            }
            _ => return None,
        };
        let x = self.gen(&shape, d)?;
        let count = max_count(&reduced);
        let b = x.bounds;
        let bounds = match name {
            "sum" => b.sum_of(count),
            "logsumexp" => Bounds::new(b.lo, b.hi + count.ln()),
            _ => b,
        };
        self.feature(name);
        if !axis.is_empty() {
            self.feature(if axis.contains('-') {
                "reduce-negative-axis"
            } else {
                "reduce-axis"
            });
        }
        Some(Expr::new(
            format!("{name}({}{axis})", x.text),
            target.clone(),
            bounds,
            x.deps,
        ))
    }

    fn softmax(&mut self, target: &Shape, d: u32) -> Option<Expr> {
        let log = self.tape.percent(50);
        let (axis, reduced) = match target.len() {
            0 if !known_bugs::SCALAR_SOFTMAX_WORKS => return None,
            0 => (String::new(), Dim::Lit(1)),
            1 => {
                let axis = ["", ", 0", ", -1"][self.tape.below(3)];
                (axis.to_string(), target[0])
            }
            _ => {
                let k = self.tape.below(4);
                let axis = ["0", "1", "-1", "-2"][k];
                (format!(", {axis}"), target[[0, 1, 1, 0][k]])
            }
        };
        let x = self.gen(target, d)?;
        let (name, bounds) = if log {
            let lo = x.bounds.lo - x.bounds.hi - (reduced.max_size() as f64).ln();
            ("log_softmax", Bounds::new(lo, 0.0))
        } else {
            ("softmax", Bounds::new(0.0, 1.0))
        };
        self.feature(name);
        if target.is_empty() {
            self.feature("softmax-scalar");
        }
        Some(Expr::new(
            format!("{name}({}{axis})", x.text),
            target.clone(),
            bounds,
            x.deps,
        ))
    }

    fn transpose(&mut self, target: &Shape, d: u32) -> Option<Expr> {
        let inner: Shape = target.iter().rev().copied().collect();
        let x = self.gen(&inner, d)?;
        let text = if self.tape.percent(50) {
            self.feature(if target.len() == 2 {
                "transpose"
            } else {
                "transpose-identity"
            });
            format!("transpose({})", x.text)
        } else {
            self.feature(if target.len() == 2 {
                "dot-T"
            } else {
                "dot-T-identity"
            });
            format!("{}.T", x.postfix_operand())
        };
        Some(Expr::new(text, target.clone(), x.bounds, x.deps))
    }

    fn matmul(&mut self, target: &Shape, d: u32) -> Option<Expr> {
        let k = self.random_dim();
        let (sa, sb, feature) = match target.as_slice() {
            [] => (vec![k], vec![k], "matmul-1-1"),
            [x] => {
                if self.tape.percent(50) {
                    (vec![*x, k], vec![k], "matmul-2-1")
                } else {
                    (vec![k], vec![k, *x], "matmul-1-2")
                }
            }
            [x, y] => (vec![*x, k], vec![k, *y], "matmul-2-2"),
            _ => return None,
        };
        let a = self.gen(&sa, d)?;
        let b = self.gen(&sb, d)?;
        self.feature(feature);
        Some(Expr::new(
            format!("({} @ {})", a.text, b.text),
            target.clone(),
            a.bounds.mul(b.bounds).sum_of(k.max_size() as f64),
            union(&a.deps, &b.deps),
        ))
    }

    /// `E[i]`: with int data (a vector or a scalar) or an integer literal.
    fn gather(&mut self, target: &Shape, d: u32) -> Option<Expr> {
        // Choose the index first: its shape is the leading part of the result.
        let by_vector = !target.is_empty() && self.tape.percent(60);
        let (index, index_shape, bound) = if by_vector {
            let ints = self.int_names(|n| n.shape.len() == 1 && n.shape[0] == target[0]);
            let int = self.tape.pick(&ints)?;
            let Kind::Int { bound } = int.kind else {
                unreachable!()
            };
            self.feature("gather-vector");
            (int.name, int.shape, bound)
        } else if self.tape.percent(50) {
            let ints = self.int_names(|n| n.shape.is_empty());
            let int = self.tape.pick(&ints)?;
            let Kind::Int { bound } = int.kind else {
                unreachable!()
            };
            self.feature("gather-scalar");
            (int.name, vec![], bound)
        } else {
            let bound = self.random_dim();
            let literal = match bound {
                Dim::Lit(n) => self.tape.below(n as usize) as u64,
                _ => self.tape.below(3) as u64,
            };
            if let Dim::Sym(k) = bound {
                let least = self.min_size.entry(k).or_insert(1);
                *least = (*least).max(literal + 1);
            }
            self.feature("gather-literal");
            (literal.to_string(), vec![], bound)
        };
        let rest = &target[index_shape.len()..];
        if rest.len() > 1 {
            return None;
        }
        let mut table_shape = vec![bound];
        table_shape.extend_from_slice(rest);
        let table = self.gen(&table_shape, d)?;
        self.feature(if table_shape.len() == 2 {
            "gather-rows"
        } else {
            "gather-elements"
        });
        Some(Expr::new(
            format!("{}[{index}]", table.postfix_operand()),
            target.clone(),
            table.bounds,
            table.deps,
        ))
    }

    fn onehot(&mut self, target: &Shape) -> Option<Expr> {
        let [x, k] = target.as_slice() else {
            return None;
        };
        let labels = self.int_names(|n| n.shape == vec![*x] && n.kind == Kind::Int { bound: *k });
        let label = self.tape.pick(&labels)?;
        self.feature("onehot");
        Some(Expr::new(
            format!("onehot({}, {})", label.name, k.text()),
            target.clone(),
            Bounds::new(0.0, 1.0),
            BTreeSet::new(),
        ))
    }

    /// A call of `fns[k]` with arguments of shape `arg_shape`, squashed into
    /// `±FN_ARG_BOUND`; the result has shape `target`.
    fn call_fn(&mut self, k: usize, target: &Shape, arg_shape: &[Dim], d: u32) -> Option<Expr> {
        let arity = self.fns[k].arity;
        let mut args = Vec::with_capacity(arity);
        let mut deps = self.fns[k].outer_deps.clone();
        for p in 0..arity {
            let arg = self.gen(&arg_shape.to_vec(), d)?;
            let arg = self.within(arg, FN_ARG_BOUND);
            if self.fns[k].uses_param[p] {
                deps = union(&deps, &arg.deps);
            }
            args.push(arg.text);
        }
        let f = &mut self.fns[k];
        f.calls += 1;
        let text = format!("{}({})", f.name, args.join(", "));
        let bounds = f.bounds;
        self.feature("fn-call");
        Some(Expr::new(text, target.clone(), bounds, deps))
    }
}

/// A small deterministic generator for the data values.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
