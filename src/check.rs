//! AST → checked program: names, element types, symbolic shapes, `fn` inlining.
//!
//! In: an [`ast::File`]. Out: a [`Checked`] program — the declarations and a flat arena
//! of typed [`Node`]s in which every operand precedes its user and every `fn` call has
//! been inlined — plus every diagnostic found (errors and warnings). A `Checked` is only
//! returned when there are no errors; [`crate::lower`] relies on it being well-typed.
//!
//! How it works: statements are checked top to bottom against one global namespace
//! (values, fns and dimension names). A `fn` body is name-resolved when it is defined
//! and type-checked at every call with the argument types (shape polymorphism). An
//! expression whose check failed yields `None` ("poisoned") after its error has been
//! reported, and anything built on it is skipped silently, so one mistake gives one
//! error. Work is bounded (`MAX_STEPS`, `MAX_DEPTH`) so no input can hang the checker
//! or exhaust memory with stack.

use std::collections::{HashMap, HashSet};

use crate::diag::{Diagnostic, Span};
use crate::ir::{ArgDecl, ArgRole, Axes, BinaryOp, CmpOp, Dim, DimVar, Elem, Shape, Type, UnaryOp};
use crate::shape::{broadcast, shape_text, type_text};
use crate::syntax::ast::{self, BinOp, DimAnn, ElemAnn, Expr, ExprKind, Ident, Item};

/// The most expression nodes the checker visits (including every inlined `fn` body)
/// before giving up: bounds the time and the size of the program.
const MAX_STEPS: u64 = 3_000_000;

/// The deepest expression nesting (including inlined `fn` bodies) the checker accepts.
/// Each level costs a few stack frames (at most about 5 KiB measured in a debug
/// build), on stack segments grown as needed (see [`crate::stack`]).
/// Left-associative chains of `+ - * / @` and chains of unary minus are walked in
/// loops and do not count.
const MAX_DEPTH: usize = 150_000;

/// A node of the checked program: an index into [`Checked::nodes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub u32);

/// A reduction built-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// `sum`
    Sum,
    /// `mean`
    Mean,
    /// `max`
    Max,
    /// `min`
    Min,
    /// `logsumexp`
    LogSumExp,
}

/// What a checked node computes. Shapes of operands may differ where broadcasting
/// is allowed; the node's own [`Type`] is the result.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// Argument `k` (an input or param).
    Arg(u32),
    /// A real constant (a literal, `pi`, or a literal dimension used as a value).
    Const(f64),
    /// An integer literal used as an index, a label, or in a comparison with int data.
    ConstInt(i64),
    /// The size of a symbolic dimension, as a real scalar.
    DimSize(DimVar),
    /// An elementwise function (including negation).
    Unary(UnaryOp, NodeId),
    /// An elementwise binary function; operands broadcast to the node's shape.
    Binary(BinaryOp, NodeId, NodeId),
    /// A comparison; operands broadcast to the node's shape.
    Compare(CmpOp, NodeId, NodeId),
    /// `where(mask, a, b)`; all three broadcast to the node's shape.
    Where(NodeId, NodeId, NodeId),
    /// `a @ b` or `dot(a, b)`, each of rank 1 or 2 (spec §3 rules).
    MatMul(NodeId, NodeId),
    /// A reduction over a set of axes (non-empty).
    Reduce(Reduction, NodeId, Axes),
    /// `softmax(x, axis)`.
    Softmax(NodeId, u8),
    /// `log_softmax(x, axis)`.
    LogSoftmax(NodeId, u8),
    /// Transpose of a rank-2 value.
    Transpose(NodeId),
    /// `column`/`row`: the operand under the node's shape.
    Reshape(NodeId),
    /// `table[index]`; the index is an int `Arg` or `ConstInt` node.
    Gather(NodeId, NodeId),
    /// `pick(x, labels)`; the labels are an int `Arg` node.
    Pick(NodeId, NodeId),
    /// `onehot(labels, depth)`; the labels are an int `Arg` or `ConstInt` node.
    OneHot(NodeId, Dim),
}

impl NodeKind {
    /// The operands, in order.
    pub fn operands(&self) -> Vec<NodeId> {
        match *self {
            NodeKind::Arg(_)
            | NodeKind::Const(_)
            | NodeKind::ConstInt(_)
            | NodeKind::DimSize(_) => Vec::new(),
            NodeKind::Unary(_, x)
            | NodeKind::Reduce(_, x, _)
            | NodeKind::Softmax(x, _)
            | NodeKind::LogSoftmax(x, _)
            | NodeKind::Transpose(x)
            | NodeKind::Reshape(x)
            | NodeKind::OneHot(x, _) => vec![x],
            NodeKind::Binary(_, a, b)
            | NodeKind::Compare(_, a, b)
            | NodeKind::MatMul(a, b)
            | NodeKind::Gather(a, b)
            | NodeKind::Pick(a, b) => vec![a, b],
            NodeKind::Where(m, a, b) => vec![m, a, b],
        }
    }

    /// The operands a gradient flows back to: not a comparison's, a `where` mask, indices
    /// or labels, whose derivative is zero wherever it exists.
    pub fn differentiable_operands(&self) -> Vec<NodeId> {
        match *self {
            NodeKind::Compare(..) | NodeKind::OneHot(..) => Vec::new(),
            NodeKind::Where(_, a, b) => vec![a, b],
            NodeKind::Gather(table, _) | NodeKind::Pick(table, _) => vec![table],
            _ => self.operands(),
        }
    }
}

/// One node: what it computes and its type.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The computation.
    pub kind: NodeKind,
    /// The result type (element type and symbolic shape).
    pub ty: Type,
}

/// A program whose names, element types and shapes have been checked, with every `fn`
/// inlined. Operands precede their users in `nodes`.
#[derive(Clone, Debug, Default)]
pub struct Checked {
    /// Dimension names in order of first appearance in the declarations.
    pub dims: Vec<String>,
    /// Inputs and params in declaration order.
    pub args: Vec<ArgDecl>,
    /// The node arena.
    pub nodes: Vec<Node>,
    /// The loss: a real scalar.
    pub loss: NodeId,
    /// The outputs, in order: name and value (real).
    pub outputs: Vec<(String, NodeId)>,
}

/// Checks a file; returns the checked program (if there were no errors) and every
/// diagnostic (errors and warnings).
pub fn check(file: &ast::File) -> (Option<Checked>, Vec<Diagnostic>) {
    let mut checker = Checker::new(file);
    for item in &file.items {
        checker.item(item);
    }
    checker.finish(file)
}

/// A built-in function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Builtin {
    Unary(UnaryOp),
    Elementwise(BinaryOp),
    Where,
    Reduce(Reduction),
    Softmax,
    LogSoftmax,
    Transpose,
    Dot,
    Column,
    Row,
    Pick,
    OneHot,
}

/// The built-in functions by name.
const BUILTINS: &[(&str, Builtin)] = &[
    ("exp", Builtin::Unary(UnaryOp::Exp)),
    ("log", Builtin::Unary(UnaryOp::Log)),
    ("log1p", Builtin::Unary(UnaryOp::Log1p)),
    ("sqrt", Builtin::Unary(UnaryOp::Sqrt)),
    ("sin", Builtin::Unary(UnaryOp::Sin)),
    ("cos", Builtin::Unary(UnaryOp::Cos)),
    ("tanh", Builtin::Unary(UnaryOp::Tanh)),
    ("sigmoid", Builtin::Unary(UnaryOp::Sigmoid)),
    ("relu", Builtin::Unary(UnaryOp::Relu)),
    ("softplus", Builtin::Unary(UnaryOp::Softplus)),
    ("abs", Builtin::Unary(UnaryOp::Abs)),
    ("square", Builtin::Unary(UnaryOp::Square)),
    ("maximum", Builtin::Elementwise(BinaryOp::Max)),
    ("minimum", Builtin::Elementwise(BinaryOp::Min)),
    ("pow", Builtin::Elementwise(BinaryOp::Pow)),
    ("where", Builtin::Where),
    ("sum", Builtin::Reduce(Reduction::Sum)),
    ("mean", Builtin::Reduce(Reduction::Mean)),
    ("max", Builtin::Reduce(Reduction::Max)),
    ("min", Builtin::Reduce(Reduction::Min)),
    ("logsumexp", Builtin::Reduce(Reduction::LogSumExp)),
    ("softmax", Builtin::Softmax),
    ("log_softmax", Builtin::LogSoftmax),
    ("transpose", Builtin::Transpose),
    ("dot", Builtin::Dot),
    ("column", Builtin::Column),
    ("row", Builtin::Row),
    ("pick", Builtin::Pick),
    ("onehot", Builtin::OneHot),
];

/// Functions of NumPy, JAX and PyTorch under another name here, and what to write
/// instead: a built-in's name, an operator, or an expression.
const FOREIGN_FUNCTIONS: &[(&str, &str)] = &[
    ("expit", "sigmoid"),
    ("logistic", "sigmoid"),
    ("power", "pow"),
    ("amax", "max"),
    ("amin", "min"),
    ("average", "mean"),
    ("reduce_sum", "sum"),
    ("reduce_mean", "mean"),
    ("matmul", "@"),
    ("mm", "@"),
    ("clip", "minimum(maximum(x, lo), hi)"),
    ("one_hot", "onehot"),
    ("take_along_axis", "pick"),
];

/// What to write here for NumPy's, JAX's or PyTorch's function `name`, if it has
/// another name (see [`FOREIGN_FUNCTIONS`]).
pub(crate) fn foreign_function(name: &str) -> Option<&'static str> {
    FOREIGN_FUNCTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, here)| *here)
}

/// Whether `name` is a built-in function.
pub(crate) fn is_builtin(name: &str) -> bool {
    builtin(name).is_some()
}

/// A name of [`foreign_function`] quoted for a message: `` `sigmoid` ``, ``the operator `@` ``.
fn quoted_foreign(here: &str) -> String {
    if here == "@" {
        "the operator `@`".to_string()
    } else {
        format!("`{here}`")
    }
}

fn builtin(name: &str) -> Option<Builtin> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// The predefined constant.
const PI: &str = "pi";

/// What a global name is bound to.
#[derive(Clone, Copy, Debug)]
enum Binding {
    /// An input, param, let or output.
    Value(NodeId),
    /// A `fn`, by index into `Checker::fns`.
    Fn(usize),
    /// A dimension name.
    Dim(DimVar),
    /// A declaration whose check failed: uses of it are skipped silently.
    Poisoned,
}

/// A `fn` definition.
struct FnDef<'a> {
    params: &'a [Ident],
    body: &'a Expr,
    /// False if the definition had errors: calls to it are skipped silently.
    ok: bool,
}

/// The names visible inside a `fn` body: its parameters bound to argument nodes.
/// Top-level expressions have no locals.
#[derive(Clone, Copy)]
struct Env<'e> {
    locals: &'e [(&'e str, NodeId)],
    /// `locals` by name, for a fn of many parameters (searching the list for every
    /// name made checking its body quadratic).
    by_name: Option<&'e HashMap<&'e str, NodeId>>,
}

const TOP_LEVEL: Env<'static> = Env {
    locals: &[],
    by_name: None,
};

/// A fn with more parameters than this gets [`Env::by_name`].
const MANY_PARAMS: usize = 16;

/// What a name in an expression refers to.
#[derive(Clone, Copy)]
enum Resolved {
    Value(NodeId),
    Fn(usize),
    Dim(DimVar),
    Builtin(Builtin),
    Pi,
    Poisoned,
    Unknown,
}

struct Checker<'a> {
    diags: Vec<Diagnostic>,
    reported: HashSet<(Span, String)>,
    dims: Vec<String>,
    args: Vec<ArgDecl>,
    /// The declaration span of each arg's name (for the unused-param warning).
    arg_spans: Vec<Span>,
    nodes: Vec<Node>,
    globals: HashMap<&'a str, Binding>,
    fns: Vec<FnDef<'a>>,
    /// Every name defined anywhere at the top level, to tell "defined below" from "unknown".
    defined_somewhere: HashSet<&'a str>,
    /// Built-in names a statement tried to define: their uses as values are that
    /// statement's error, already reported.
    refused_builtins: HashSet<&'a str>,
    loss: Option<NodeId>,
    loss_seen: bool,
    outputs: Vec<(String, NodeId)>,
    steps: u64,
    depth: usize,
    over_budget: bool,
    /// The call of a `fn` in the statement being checked whose inlining is under way
    /// (the outermost, when calls nest).
    outer_call: Option<(Span, &'a str)>,
    /// "Did you mean" guesses made for names outside any `fn` (a misspelling is often
    /// repeated), and the known names compared so far: past [`SUGGESTION_BUDGET`] no
    /// more are guessed, so that thousands of unknown names take linear time.
    suggestions: HashMap<(String, bool), Option<String>>,
    suggestion_work: usize,
}

/// How many known names "did you mean" may compare in one check, in all.
const SUGGESTION_BUDGET: usize = 1_000_000;

/// Names longer than this get no "did you mean" (the edit distance takes time
/// quadratic in the length, and no one misspells a name that long).
const LONGEST_GUESSED_NAME: usize = 64;

impl<'a> Checker<'a> {
    fn new(file: &'a ast::File) -> Checker<'a> {
        let mut defined_somewhere = HashSet::new();
        for item in &file.items {
            match item {
                Item::Input { name, ty, .. } | Item::Param { name, ty, .. } => {
                    defined_somewhere.insert(name.name.as_str());
                    for dim in ty.iter().flat_map(|t| &t.dims) {
                        if let DimAnn::Name(d) = dim {
                            defined_somewhere.insert(d.name.as_str());
                        }
                    }
                }
                Item::Let { name, .. } | Item::Fn { name, .. } | Item::Output { name, .. } => {
                    defined_somewhere.insert(name.name.as_str());
                }
                Item::Loss { .. } => {}
            }
        }
        Checker {
            diags: Vec::new(),
            reported: HashSet::new(),
            dims: Vec::new(),
            args: Vec::new(),
            arg_spans: Vec::new(),
            nodes: Vec::new(),
            globals: HashMap::new(),
            fns: Vec::new(),
            defined_somewhere,
            refused_builtins: HashSet::new(),
            loss: None,
            loss_seen: false,
            outputs: Vec::new(),
            steps: 0,
            depth: 0,
            over_budget: false,
            outer_call: None,
            suggestions: HashMap::new(),
            suggestion_work: 0,
        }
    }

    // ----- diagnostics -----

    /// Reports an error (once per span and message: an inlined `fn` body may be
    /// checked many times). Returns `None` so callers can `return self.error(..)`.
    fn error<T>(&mut self, span: Span, message: impl Into<String>) -> Option<T> {
        let message = message.into();
        if self.reported.insert((span, message.clone())) {
            self.diags.push(Diagnostic::error(span, message));
        }
        None
    }

    fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }

    fn shape(&self, shape: &[Dim]) -> String {
        shape_text(&self.dims, shape)
    }

    fn ty_text(&self, ty: &Type) -> String {
        type_text(&self.dims, ty)
    }

    // ----- the arena -----

    fn push(&mut self, kind: NodeKind, ty: Type) -> NodeId {
        let id = NodeId(self.nodes.len() as u32);
        self.nodes.push(Node { kind, ty });
        id
    }

    fn ty(&self, node: NodeId) -> &Type {
        &self.nodes[node.0 as usize].ty
    }

    fn constant(&mut self, value: f64) -> NodeId {
        self.push(NodeKind::Const(value), Type::real_scalar())
    }

    fn const_int(&mut self, value: i64) -> NodeId {
        self.push(
            NodeKind::ConstInt(value),
            Type {
                elem: Elem::Int,
                shape: Vec::new(),
            },
        )
    }

    // ----- statements -----

    fn item(&mut self, item: &'a Item) {
        match item {
            Item::Input { name, ty, .. } => self.declare_arg(name, ty.as_ref(), ArgRole::Input),
            Item::Param { name, ty, .. } => self.declare_arg(name, ty.as_ref(), ArgRole::Param),
            Item::Let { name, value, .. } => {
                let node = self.top_expr(value);
                self.define(name, node.map_or(Binding::Poisoned, Binding::Value));
            }
            Item::Output { name, value, .. } => {
                let node = self.top_expr(value);
                if let Some(node) = node {
                    let ty = self.ty(node).clone();
                    if ty.elem == Elem::Real {
                        self.outputs.push((name.name.clone(), node));
                    } else {
                        let text = self.ty_text(&ty);
                        self.error::<()>(
                            value.span,
                            format!("an output must be a real value, found {text}"),
                        );
                    }
                }
                self.define(name, node.map_or(Binding::Poisoned, Binding::Value));
            }
            Item::Fn {
                name, params, body, ..
            } => self.define_fn(name, params, body),
            Item::Loss { value, keyword, .. } => {
                let node = self.top_expr(value);
                if self.loss_seen {
                    self.error::<()>(
                        *keyword,
                        "a second `loss`: a file has exactly one `loss` statement",
                    );
                    return;
                }
                self.loss_seen = true;
                let node = match node {
                    Some(node) => node,
                    None => return,
                };
                let ty = self.ty(node).clone();
                if ty.elem != Elem::Real {
                    let text = self.ty_text(&ty);
                    self.error::<()>(
                        value.span,
                        format!("the loss must be a real scalar, found {text}"),
                    );
                } else if ty.rank() != 0 {
                    let text = self.ty_text(&ty);
                    let hint = if ty.shape.iter().all(|d| d.is_one()) {
                        " (a loss must have rank 0; reduce it with `sum`)"
                    } else {
                        " (reduce it with `sum` or `mean`)"
                    };
                    self.error::<()>(
                        value.span,
                        format!("the loss must be a scalar, found {text}{hint}"),
                    );
                } else {
                    self.loss = Some(node);
                }
            }
        }
    }

    /// Checks that `name` may be defined here; reports why not.
    fn can_define(&mut self, name: &'a Ident) -> bool {
        let text = name.name.as_str();
        if builtin(text).is_some() {
            self.error::<()>(
                name.span,
                format!("`{text}` is a built-in function and cannot be redefined"),
            );
            self.refused_builtins.insert(text);
            return false;
        }
        if text == PI {
            self.error::<()>(
                name.span,
                "`pi` is a predefined constant and cannot be redefined",
            );
            return false;
        }
        match self.globals.get(text) {
            None => true,
            Some(Binding::Dim(_)) => {
                self.error::<()>(
                    name.span,
                    format!("`{text}` is already defined as a dimension (values, fns and dimensions share one namespace)"),
                );
                false
            }
            Some(Binding::Fn(_)) => {
                self.error::<()>(name.span, format!("`{text}` is already defined as a fn"));
                false
            }
            Some(_) => {
                self.error::<()>(name.span, format!("`{text}` is already defined"));
                false
            }
        }
    }

    fn define(&mut self, name: &'a Ident, binding: Binding) {
        if self.can_define(name) {
            self.globals.insert(name.name.as_str(), binding);
        }
    }

    fn declare_arg(&mut self, name: &'a Ident, ty: Option<&'a ast::TypeAnn>, role: ArgRole) {
        let ty = match ty {
            None => Some(Type::real_scalar()),
            Some(ann) => self.type_ann(ann, role),
        };
        let Some(ty) = ty else {
            self.define(name, Binding::Poisoned);
            return;
        };
        if !self.can_define(name) {
            return;
        }
        let k = self.args.len() as u32;
        self.args.push(ArgDecl {
            name: name.name.clone(),
            role,
            ty: ty.clone(),
        });
        self.arg_spans.push(name.span);
        let node = self.push(NodeKind::Arg(k), ty);
        self.globals
            .insert(name.name.as_str(), Binding::Value(node));
    }

    /// The type of a declaration, declaring its dimension names.
    fn type_ann(&mut self, ann: &'a ast::TypeAnn, role: ArgRole) -> Option<Type> {
        let mut ok = true;
        if ann.dims.len() > 2 {
            self.error::<()>(
                ann.span,
                format!(
                    "rank {} is not supported: a type has at most 2 dimensions",
                    ann.dims.len()
                ),
            );
            ok = false;
        }
        let elem = match ann.elem {
            ElemAnn::Real => Elem::Real,
            ElemAnn::Int => Elem::Int,
        };
        if elem == Elem::Int && role == ArgRole::Param {
            self.error::<()>(
                ann.span,
                "a param must be real: int data cannot be differentiated (declare it with `input`)",
            );
            ok = false;
        }
        let mut shape = Shape::new();
        for dim in &ann.dims {
            match dim {
                DimAnn::Lit(n, _) => shape.push(Dim::Const(*n)),
                DimAnn::Name(id) => match self.dim_name(id) {
                    Some(d) => shape.push(d),
                    None => ok = false,
                },
            }
        }
        ok.then_some(Type { elem, shape })
    }

    /// The dimension a name in a type stands for, declaring it on first use.
    fn dim_name(&mut self, id: &'a Ident) -> Option<Dim> {
        let text = id.name.as_str();
        match self.globals.get(text) {
            Some(Binding::Dim(v)) => return Some(Dim::Sym(*v)),
            Some(Binding::Poisoned) => return None,
            Some(Binding::Value(_)) => {
                return self.error(
                    id.span,
                    format!("`{text}` is a value, not a dimension (values, fns and dimensions share one namespace)"),
                )
            }
            Some(Binding::Fn(_)) => {
                return self.error(id.span, format!("`{text}` is a fn, not a dimension"))
            }
            None => {}
        }
        if !self.can_define(id) {
            return None;
        }
        let v = DimVar(self.dims.len() as u32);
        self.dims.push(text.to_string());
        self.globals.insert(text, Binding::Dim(v));
        Some(Dim::Sym(v))
    }

    fn define_fn(&mut self, name: &'a Ident, params: &'a [Ident], body: &'a Expr) {
        let mut ok = true;
        let mut seen = HashSet::new();
        for param in params {
            if builtin(&param.name).is_some() || param.name == PI {
                self.error::<()>(
                    param.span,
                    format!(
                        "`{}` is predefined and cannot be used as a parameter name",
                        param.name
                    ),
                );
                ok = false;
            } else if !seen.insert(param.name.as_str()) {
                self.error::<()>(
                    param.span,
                    format!("parameter `{}` is declared twice", param.name),
                );
                ok = false;
            }
        }
        let before = self.diags.len();
        self.resolve_body(body, name, params);
        ok &= self.diags.len() == before;
        let index = self.fns.len();
        self.fns.push(FnDef { params, body, ok });
        self.define(name, Binding::Fn(index));
    }

    /// Checks that every name in a `fn` body is defined above the `fn` (or is a
    /// parameter) and is used as what it is, before the body is ever type-checked.
    fn resolve_body(&mut self, body: &'a Expr, fn_name: &Ident, params: &'a [Ident]) {
        let param_names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        let is_param: HashSet<&str> = param_names.iter().copied().collect();
        // An explicit stack: the body may be deeply nested.
        let mut stack = vec![body];
        while let Some(expr) = stack.pop() {
            match &expr.kind {
                ExprKind::Int(_) | ExprKind::Real(_) => {}
                ExprKind::Name(name) => {
                    if is_param.contains(name.as_str()) {
                        continue;
                    }
                    let resolved = self.resolve_global(name);
                    self.expect_value(resolved, name, expr.span, &param_names);
                }
                ExprKind::Neg(x) | ExprKind::Transpose(x) => stack.push(x),
                ExprKind::Binary(_, a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                ExprKind::Index { base, index } => {
                    if let Some(message) = index_literal_error(index) {
                        self.error::<()>(index.span, message);
                    }
                    stack.push(index);
                    stack.push(base);
                }
                ExprKind::Call { func, args } => {
                    stack.extend(args.iter().rev());
                    if is_param.contains(func.name.as_str()) {
                        self.error::<()>(
                            func.span,
                            format!("`{}` is a parameter, not a function", func.name),
                        );
                    } else if func.name == fn_name.name {
                        self.error::<()>(
                            func.span,
                            format!("recursion in fn `{}`: a fn cannot call itself", func.name),
                        );
                    } else {
                        let resolved = self.resolve_global(&func.name);
                        if self.expect_function(resolved, &func.name, func.span, &param_names) {
                            self.check_call_shape_free(resolved, func, args, params, expr.span);
                        }
                    }
                }
            }
        }
    }

    /// The checks of a call in a `fn` body that do not depend on the argument types
    /// (the number of arguments, literal axes, the size of `onehot`), so that they are
    /// reported even if the `fn` is never called.
    fn check_call_shape_free(
        &mut self,
        resolved: Resolved,
        func: &Ident,
        args: &[Expr],
        params: &[Ident],
        span: Span,
    ) {
        match resolved {
            Resolved::Fn(index) => {
                let expected = self.fns[index].params.len();
                if args.len() != expected {
                    self.error::<()>(span, fn_arity_message(&func.name, expected, args.len()));
                }
            }
            Resolved::Builtin(builtin) => {
                let (min, max) = builtin_arity(builtin);
                if !self.arity(&func.name, args, min, max, span) {
                    return;
                }
                match builtin {
                    Builtin::Reduce(_) | Builtin::Softmax | Builtin::LogSoftmax => {
                        if let Some(axis) = args.get(1) {
                            if int_literal(axis).is_none() {
                                self.error::<()>(axis.span, axis_literal_message(&func.name));
                            }
                        }
                    }
                    Builtin::OneHot => {
                        let depth = &args[1];
                        let message = match &depth.kind {
                            ExprKind::Int(0) => Some(ONEHOT_ZERO),
                            ExprKind::Int(_) => None,
                            // An unknown name is reported as such when the body is resolved.
                            ExprKind::Name(name)
                                if !params.iter().any(|p| &p.name == name)
                                    && matches!(
                                        self.resolve_global(name),
                                        Resolved::Dim(_) | Resolved::Unknown | Resolved::Poisoned
                                    ) =>
                            {
                                None
                            }
                            _ => Some(ONEHOT_NOT_DIM),
                        };
                        if let Some(message) = message {
                            self.error::<()>(depth.span, message);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    // ----- names -----

    fn resolve_global(&self, name: &str) -> Resolved {
        if let Some(b) = self.globals.get(name) {
            return match *b {
                Binding::Value(node) => Resolved::Value(node),
                Binding::Fn(index) => Resolved::Fn(index),
                Binding::Dim(v) => Resolved::Dim(v),
                Binding::Poisoned => Resolved::Poisoned,
            };
        }
        if let Some(b) = builtin(name) {
            return Resolved::Builtin(b);
        }
        if name == PI {
            return Resolved::Pi;
        }
        Resolved::Unknown
    }

    fn resolve(&self, name: &str, env: Env<'_>) -> Resolved {
        let local = match env.by_name {
            Some(by_name) => by_name.get(name).copied(),
            None => (env.locals.iter().rev().find(|(n, _)| *n == name)).map(|(_, node)| *node),
        };
        match local {
            Some(node) => Resolved::Value(node),
            None => self.resolve_global(name),
        }
    }

    fn unknown_name(&mut self, name: &str, span: Span, locals: &[&str], function: bool) {
        if self.defined_somewhere.contains(name) {
            self.error::<()>(
                span,
                format!("`{name}` is used before it is defined (every name must be defined above its use)"),
            );
            return;
        }
        let what = if function { "function" } else { "name" };
        let hint = match self.similar_name(name, locals, function) {
            Some(known) => format!(" (did you mean {known}?)"),
            None => String::new(),
        };
        self.error::<()>(span, format!("unknown {what} `{name}`{hint}"));
    }

    /// The known name closest to a misspelt `name`, quoted (a value's for a value, a
    /// function's for a call), or what NumPy's or JAX's name for a function is here.
    fn similar_name(&mut self, name: &str, locals: &[&str], function: bool) -> Option<String> {
        if function {
            if let Some(here) = foreign_function(name) {
                return Some(quoted_foreign(here));
            }
        }
        let length = name.chars().count();
        if length > LONGEST_GUESSED_NAME || self.suggestion_work > SUGGESTION_BUDGET {
            return None;
        }
        let key = (name.to_string(), function);
        if locals.is_empty() {
            if let Some(known) = self.suggestions.get(&key) {
                return known.clone();
            }
        }
        let globals = self
            .globals
            .iter()
            .filter(|(_, b)| function == matches!(b, Binding::Fn(_)));
        let mut known: Vec<&str> = globals.map(|(n, _)| *n).collect();
        if function {
            known.extend(BUILTINS.iter().map(|(n, _)| *n));
        } else {
            known.extend(locals.iter().copied().chain([PI]));
        }
        self.suggestion_work += known.len();
        // rustc's threshold: a third of the length, at least one edit; a name of one or
        // two letters is one edit from too many others to guess. A name whose length
        // differs by more is more edits away (in bytes: a character takes one to four).
        let limit = (length / 3).max(1);
        known.retain(|k| k.len() <= 4 * (length + limit) && k.len() + limit >= length);
        known.sort_unstable();
        let guess = if let Some(same) = known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
            Some(format!("`{same}`"))
        } else {
            known
                .into_iter()
                .filter(|k| k.chars().count().abs_diff(length) <= limit)
                .map(|k| (strsim::damerau_levenshtein(name, k), k))
                .min()
                .filter(|&(distance, _)| length > 2 && distance <= limit)
                .map(|(_, closest)| format!("`{closest}`"))
        };
        if locals.is_empty() {
            self.suggestions.insert(key, guess.clone());
        }
        guess
    }

    /// Reports why `resolved` cannot be used as a value; true if it can.
    fn expect_value(
        &mut self,
        resolved: Resolved,
        name: &str,
        span: Span,
        locals: &[&str],
    ) -> bool {
        match resolved {
            Resolved::Value(_) | Resolved::Dim(_) | Resolved::Pi => true,
            Resolved::Poisoned => false,
            Resolved::Fn(_) => {
                self.error::<()>(
                    span,
                    format!("`{name}` is a fn, not a value; call it: `{name}(...)`"),
                );
                false
            }
            Resolved::Builtin(_) if self.refused_builtins.contains(name) => false,
            Resolved::Builtin(_) => {
                self.error::<()>(
                    span,
                    format!("`{name}` is a built-in function, not a value; call it: `{name}(...)`"),
                );
                false
            }
            Resolved::Unknown => {
                self.unknown_name(name, span, locals, false);
                false
            }
        }
    }

    /// Reports why `resolved` cannot be called; true if it can.
    fn expect_function(
        &mut self,
        resolved: Resolved,
        name: &str,
        span: Span,
        locals: &[&str],
    ) -> bool {
        match resolved {
            Resolved::Fn(_) | Resolved::Builtin(_) => true,
            Resolved::Poisoned => false,
            Resolved::Value(_) | Resolved::Pi => {
                self.error::<()>(span, format!("`{name}` is a value, not a function"));
                false
            }
            Resolved::Dim(_) => {
                self.error::<()>(span, format!("`{name}` is a dimension, not a function"));
                false
            }
            Resolved::Unknown => {
                self.unknown_name(name, span, locals, true);
                false
            }
        }
    }

    // ----- expressions -----

    fn top_expr(&mut self, expr: &'a Expr) -> Option<NodeId> {
        self.expr(expr, TOP_LEVEL)
    }

    /// Checks an expression; `None` if it (or something in it) is wrong, after the
    /// error has been reported.
    fn expr(&mut self, expr: &'a Expr, env: Env<'_>) -> Option<NodeId> {
        if self.over_budget {
            return None;
        }
        self.steps += 1;
        let too_large = if self.steps > MAX_STEPS {
            format!("more than {MAX_STEPS} expressions")
        } else if self.depth >= MAX_DEPTH {
            format!("expressions nested more than {MAX_DEPTH} levels deep")
        } else {
            String::new()
        };
        if !too_large.is_empty() {
            self.over_budget = true;
            // Inside an inlined body, the statement's call is what the user can change.
            return match self.outer_call {
                Some((span, name)) => self.error(
                    span,
                    format!(
                        "program too large: inlining this call of fn `{name}` gives {too_large}"
                    ),
                ),
                None => self.error(expr.span, format!("program too large: {too_large}")),
            };
        }
        self.depth += 1;
        let result = crate::stack::with_room(|| self.expr_inner(expr, env));
        self.depth -= 1;
        result
    }

    fn expr_inner(&mut self, expr: &'a Expr, env: Env<'_>) -> Option<NodeId> {
        match &expr.kind {
            ExprKind::Int(n) => Some(self.constant(*n as f64)),
            ExprKind::Real(x) => Some(self.constant(*x)),
            ExprKind::Name(name) => self.name(name, expr.span, env),
            ExprKind::Neg(_) => self.negation_chain(expr, env),
            ExprKind::Binary(op, a, b) => match comparison(*op) {
                Some(op) => self.compare(op, a, b, expr.span, env),
                None => self.arithmetic_chain(expr, env),
            },
            ExprKind::Call { func, args } => self.call(func, args, expr.span, env),
            ExprKind::Index { base, index } => self.index(base, index, env),
            ExprKind::Transpose(x) => self.transpose(x, env),
        }
    }

    fn name(&mut self, name: &str, span: Span, env: Env<'_>) -> Option<NodeId> {
        let resolved = self.resolve(name, env);
        match resolved {
            Resolved::Value(node) => Some(node),
            Resolved::Dim(v) => Some(self.push(NodeKind::DimSize(v), Type::real_scalar())),
            Resolved::Pi => Some(self.constant(std::f64::consts::PI)),
            other => {
                let locals: Vec<&str> = env.locals.iter().map(|(n, _)| *n).collect();
                self.expect_value(other, name, span, &locals);
                None
            }
        }
    }

    /// Checks an operand of arithmetic: it must be real.
    fn real_operand(&mut self, expr: &'a Expr, env: Env<'_>) -> Option<NodeId> {
        let node = self.expr(expr, env)?;
        self.require_real(node, expr.span)
    }

    /// `node` if it is real; otherwise an error saying why int data or a mask cannot
    /// be used here.
    fn require_real(&mut self, node: NodeId, span: Span) -> Option<NodeId> {
        let ty = self.ty(node).clone();
        match ty.elem {
            Elem::Real => Some(node),
            Elem::Int => {
                let text = self.ty_text(&ty);
                self.error(
                    span,
                    format!("int data cannot be used in arithmetic (this is {text}); int values are only indices and labels"),
                )
            }
            Elem::Bool => {
                let text = self.ty_text(&ty);
                self.error(
                    span,
                    format!(
                        "a mask can only be used as the first argument of `where` (this is {text})"
                    ),
                )
            }
        }
    }

    /// `- - ... x`: the chain of minus signs is walked in a loop, not by recursion.
    fn negation_chain(&mut self, expr: &'a Expr, env: Env<'_>) -> Option<NodeId> {
        let mut count = 0usize;
        let mut inner = expr;
        while let ExprKind::Neg(x) = &inner.kind {
            count += 1;
            inner = x;
        }
        self.steps += count as u64;
        // A negated literal is a constant.
        let mut value = match inner.kind {
            ExprKind::Int(n) => {
                count -= 1;
                self.constant(-(n as f64))
            }
            ExprKind::Real(v) => {
                count -= 1;
                self.constant(-v)
            }
            _ => self.real_operand(inner, env)?,
        };
        for _ in 0..count {
            let ty = self.ty(value).clone();
            value = self.push(NodeKind::Unary(UnaryOp::Neg, value), ty);
        }
        Some(value)
    }

    /// `((a + b) * c) - d ...`: the left spine of arithmetic operators is walked in a
    /// loop, so a 200,000-term sum does not recurse 200,000 levels deep.
    fn arithmetic_chain(&mut self, expr: &'a Expr, env: Env<'_>) -> Option<NodeId> {
        let mut spine: Vec<&'a Expr> = Vec::new();
        let mut leftmost = expr;
        while let ExprKind::Binary(op, a, _) = &leftmost.kind {
            if comparison(*op).is_some() {
                break;
            }
            spine.push(leftmost);
            leftmost = a;
        }
        self.steps += spine.len() as u64;
        let mut left = self.expr(leftmost, env);
        for node in spine.into_iter().rev() {
            let ExprKind::Binary(op, a, b) = &node.kind else {
                unreachable!("compiler bug: the spine holds binary nodes only")
            };
            left = self.arithmetic(*op, left, a, b, node.span, env);
        }
        left
    }

    /// `a OP b` for an arithmetic operator or `@`, with `a` already checked (`left`).
    fn arithmetic(
        &mut self,
        op: BinOp,
        left: Option<NodeId>,
        a: &'a Expr,
        b: &'a Expr,
        span: Span,
        env: Env<'_>,
    ) -> Option<NodeId> {
        let va = left.and_then(|node| self.require_real(node, a.span));
        let vb = self.real_operand(b, env);
        let (va, vb) = (va?, vb?);
        let (op, verb) = match op {
            BinOp::Add => (BinaryOp::Add, "add"),
            BinOp::Sub => (BinaryOp::Sub, "subtract"),
            BinOp::Mul => (BinaryOp::Mul, "multiply"),
            BinOp::Div => (BinaryOp::Div, "divide"),
            BinOp::Pow => (BinaryOp::Pow, "raise"),
            BinOp::MatMul => return self.matmul_nodes(va, vb, a.span, b.span, span, "`@`"),
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne => {
                unreachable!("compiler bug: comparisons are not arithmetic")
            }
        };
        self.elementwise(op, va, vb, span, verb)
    }

    /// An elementwise binary op of two real nodes, with broadcasting.
    fn elementwise(
        &mut self,
        op: BinaryOp,
        a: NodeId,
        b: NodeId,
        span: Span,
        verb: &str,
    ) -> Option<NodeId> {
        let (sa, sb) = (self.ty(a).shape.clone(), self.ty(b).shape.clone());
        let Some(shape) = broadcast(&[&sa, &sb]) else {
            let message = match op {
                BinaryOp::Pow => format!(
                    "cannot raise {} to the power {}: the shapes do not broadcast",
                    self.shape(&sa),
                    self.shape(&sb)
                ),
                BinaryOp::Max | BinaryOp::Min => format!(
                    "cannot take `{verb}` of {} and {}: the shapes do not broadcast",
                    self.shape(&sa),
                    self.shape(&sb)
                ),
                _ => format!("cannot {verb} {} and {}", self.shape(&sa), self.shape(&sb)),
            } + &column_hint(&sa, &sb);
            return self.error(span, message);
        };
        Some(self.push(NodeKind::Binary(op, a, b), Type::real(shape)))
    }

    fn compare(
        &mut self,
        op: CmpOp,
        a: &'a Expr,
        b: &'a Expr,
        span: Span,
        env: Env<'_>,
    ) -> Option<NodeId> {
        // An integer literal compared with int data is an int constant.
        let (va, vb) = match (int_literal(a), int_literal(b)) {
            (Some(n), None) => {
                let vb = self.expr(b, env)?;
                let va = if self.ty(vb).elem == Elem::Int {
                    self.const_int(n)
                } else {
                    self.expr(a, env)?
                };
                (va, vb)
            }
            (None, Some(n)) => {
                let va = self.expr(a, env)?;
                let vb = if self.ty(va).elem == Elem::Int {
                    self.const_int(n)
                } else {
                    self.expr(b, env)?
                };
                (va, vb)
            }
            _ => {
                let va = self.expr(a, env);
                let vb = self.expr(b, env);
                (va?, vb?)
            }
        };
        let (ta, tb) = (self.ty(va).clone(), self.ty(vb).clone());
        if ta.elem == Elem::Bool || tb.elem == Elem::Bool {
            let (node, operand) = if ta.elem == Elem::Bool {
                (va, a)
            } else {
                (vb, b)
            };
            let text = self.ty_text(self.ty(node));
            return self.error(
                operand.span,
                format!(
                    "a mask can only be used as the first argument of `where` (this is {text})"
                ),
            );
        }
        if ta.elem != tb.elem {
            let (x, y) = (self.ty_text(&ta), self.ty_text(&tb));
            return self.error(
                span,
                format!("cannot compare {x} with {y}: compare reals with reals or ints with ints"),
            );
        }
        let Some(shape) = broadcast(&[&ta.shape, &tb.shape]) else {
            let message = format!(
                "cannot compare {} and {}",
                self.shape(&ta.shape),
                self.shape(&tb.shape)
            );
            return self.error(span, message);
        };
        Some(self.push(
            NodeKind::Compare(op, va, vb),
            Type {
                elem: Elem::Bool,
                shape,
            },
        ))
    }

    /// `a @ b` for real nodes of rank 1 or 2 (spec §3).
    fn matmul_nodes(
        &mut self,
        a: NodeId,
        b: NodeId,
        a_span: Span,
        b_span: Span,
        span: Span,
        what: &str,
    ) -> Option<NodeId> {
        let (sa, sb) = (self.ty(a).shape.clone(), self.ty(b).shape.clone());
        for (shape, operand_span) in [(&sa, a_span), (&sb, b_span)] {
            if shape.is_empty() {
                return self.error(
                    operand_span,
                    format!(
                        "{what} needs operands of rank 1 or 2, found a scalar (use `*` to scale)"
                    ),
                );
            }
        }
        let inner_a = sa[sa.len() - 1];
        let inner_b = sb[0];
        if inner_a != inner_b {
            let message = format!(
                "cannot multiply {} and {} with {what}: inner dimensions {} and {} differ",
                self.shape(&sa),
                self.shape(&sb),
                self.shape(&[inner_a]).trim_matches(['[', ']']),
                self.shape(&[inner_b]).trim_matches(['[', ']'])
            );
            return self.error(span, message);
        }
        let mut shape = sa[..sa.len() - 1].to_vec();
        shape.extend_from_slice(&sb[1..]);
        Some(self.push(NodeKind::MatMul(a, b), Type::real(shape)))
    }

    fn transpose(&mut self, x: &'a Expr, env: Env<'_>) -> Option<NodeId> {
        let node = self.expr(x, env)?;
        let ty = self.ty(node).clone();
        if ty.rank() <= 1 {
            return Some(node);
        }
        self.require_real(node, x.span)?;
        Some(self.push(
            NodeKind::Transpose(node),
            Type::real(vec![ty.shape[1], ty.shape[0]]),
        ))
    }

    // ----- indexing -----

    /// An int index operand: an integer literal, or int data of rank ≤ 1.
    fn index_operand(&mut self, index: &'a Expr, env: Env<'_>) -> Option<NodeId> {
        if let ExprKind::Int(n) = index.kind {
            return Some(self.const_int(n as i64));
        }
        if let Some(message) = index_literal_error(index) {
            return self.error(index.span, message);
        }
        let node = self.expr(index, env)?;
        let ty = self.ty(node).clone();
        if ty.elem != Elem::Int {
            let text = self.ty_text(&ty);
            return self.error(
                index.span,
                format!("an index must be int data or an integer literal, found {text}"),
            );
        }
        if ty.rank() > 1 {
            let text = self.ty_text(&ty);
            return self.error(
                index.span,
                format!("an index must be an int scalar or an int vector, found {text}"),
            );
        }
        Some(node)
    }

    fn index(&mut self, base: &'a Expr, index: &'a Expr, env: Env<'_>) -> Option<NodeId> {
        let table = self.expr(base, env);
        let idx = self.index_operand(index, env);
        let (table, idx) = (table?, idx?);
        let table_ty = self.ty(table).clone();
        if table_ty.elem != Elem::Real || table_ty.rank() == 0 {
            let text = self.ty_text(&table_ty);
            return self.error(
                base.span,
                format!("only a real value of rank 1 or 2 can be indexed, found {text}"),
            );
        }
        if let (NodeKind::ConstInt(n), Dim::Const(size)) =
            (&self.nodes[idx.0 as usize].kind, table_ty.shape[0])
        {
            if *n as u64 >= size {
                let n = *n;
                return self.error(
                    index.span,
                    format!("index {n} is out of range for a dimension of size {size}"),
                );
            }
        }
        let mut shape = self.ty(idx).shape.clone();
        shape.extend_from_slice(&table_ty.shape[1..]);
        Some(self.push(NodeKind::Gather(table, idx), Type::real(shape)))
    }

    // ----- calls -----

    fn call(
        &mut self,
        func: &'a Ident,
        args: &'a [Expr],
        span: Span,
        env: Env<'_>,
    ) -> Option<NodeId> {
        let resolved = self.resolve(&func.name, env);
        match resolved {
            Resolved::Builtin(b) => self.builtin_call(b, func, args, span, env),
            Resolved::Fn(index) => self.fn_call(index, func, args, span, env),
            other => {
                // Still check the arguments, to report their errors too.
                let locals: Vec<&str> = env.locals.iter().map(|(n, _)| *n).collect();
                self.expect_function(other, &func.name, func.span, &locals);
                for arg in args {
                    self.expr(arg, env);
                }
                None
            }
        }
    }

    fn fn_call(
        &mut self,
        index: usize,
        func: &'a Ident,
        args: &'a [Expr],
        span: Span,
        env: Env<'_>,
    ) -> Option<NodeId> {
        let (params, body, ok) = {
            let def = &self.fns[index];
            (def.params, def.body, def.ok)
        };
        let mut values = Vec::with_capacity(args.len());
        let mut all_ok = true;
        for arg in args {
            match self.expr(arg, env) {
                Some(v) => values.push(v),
                None => all_ok = false,
            }
        }
        if args.len() != params.len() {
            return self.error(span, fn_arity_message(&func.name, params.len(), args.len()));
        }
        if !ok || !all_ok {
            return None;
        }
        let locals: Vec<(&str, NodeId)> =
            params.iter().map(|p| p.name.as_str()).zip(values).collect();
        let outermost = self.outer_call.is_none();
        if outermost {
            self.outer_call = Some((span, func.name.as_str()));
        }
        // Parameters are distinct (checked where the fn is defined).
        let by_name: Option<HashMap<&str, NodeId>> =
            (locals.len() > MANY_PARAMS).then(|| locals.iter().copied().collect());
        let env = Env {
            locals: &locals,
            by_name: by_name.as_ref(),
        };
        let result = self.expr(body, env);
        if outermost {
            self.outer_call = None;
        }
        if result.is_none() && !self.over_budget {
            // The body's error points into the fn; also point at the call that failed,
            // with the argument types it was checked with.
            let arguments: Vec<String> = locals
                .iter()
                .map(|(name, node)| format!("{name}: {}", self.ty_text(self.ty(*node))))
                .collect();
            let with = if arguments.is_empty() {
                String::new()
            } else {
                format!(" (with {})", arguments.join(", "))
            };
            self.error::<()>(span, format!("in this call of fn `{}`{with}", func.name));
        }
        result
    }

    /// Reports a wrong number of arguments for a built-in; true if the count is right.
    fn arity(&mut self, name: &str, args: &[Expr], min: usize, max: usize, span: Span) -> bool {
        if (min..=max).contains(&args.len()) {
            return true;
        }
        let expected = match (min, max) {
            (1, 1) => "1 argument".to_string(),
            (a, b) if a == b => format!("{a} arguments"),
            (a, b) => format!("{a} or {b} arguments"),
        };
        self.error::<()>(
            span,
            format!("`{name}` takes {expected}, found {}", args.len()),
        );
        false
    }

    fn builtin_call(
        &mut self,
        builtin: Builtin,
        func: &'a Ident,
        args: &'a [Expr],
        span: Span,
        env: Env<'_>,
    ) -> Option<NodeId> {
        let name = func.name.as_str();
        let (min, max) = builtin_arity(builtin);
        if !self.arity(name, args, min, max, span) {
            for arg in args {
                self.expr(arg, env);
            }
            return None;
        }
        match builtin {
            Builtin::Unary(op) => {
                let x = self.real_operand(&args[0], env)?;
                let ty = self.ty(x).clone();
                Some(self.push(NodeKind::Unary(op, x), ty))
            }
            Builtin::Elementwise(op) => {
                let a = self.real_operand(&args[0], env);
                let b = self.real_operand(&args[1], env);
                self.elementwise(op, a?, b?, span, name)
            }
            Builtin::Where => self.where_call(args, span, env),
            Builtin::Reduce(reduction) => {
                let x = self.real_operand(&args[0], env)?;
                let rank = self.ty(x).rank();
                let axes = match args.get(1) {
                    None => Axes::all(rank),
                    Some(axis) => Axes::one(self.axis(axis, rank, name)?),
                };
                if axes == Axes(0) {
                    // Reducing a scalar over all (no) axes is the identity.
                    return Some(x);
                }
                let shape = axes.reduce_shape(&self.ty(x).shape);
                Some(self.push(NodeKind::Reduce(reduction, x, axes), Type::real(shape)))
            }
            Builtin::Softmax | Builtin::LogSoftmax => {
                let x = self.real_operand(&args[0], env)?;
                let ty = self.ty(x).clone();
                let axis = match args.get(1) {
                    Some(axis) => self.axis(axis, ty.rank(), name)?,
                    None if ty.rank() <= 1 => 0,
                    None => {
                        let text = self.ty_text(&ty);
                        return self.error(
                            span,
                            format!("`{name}` of a rank-2 value needs an axis: `{name}(x, 1)` for rows, `{name}(x, 0)` for columns (this is {text})"),
                        );
                    }
                };
                let kind = if builtin == Builtin::Softmax {
                    NodeKind::Softmax(x, axis as u8)
                } else {
                    NodeKind::LogSoftmax(x, axis as u8)
                };
                Some(self.push(kind, ty))
            }
            Builtin::Transpose => self.transpose(&args[0], env),
            Builtin::Dot => {
                let a = self.real_operand(&args[0], env);
                let b = self.real_operand(&args[1], env);
                let (a, b) = (a?, b?);
                let (sa, sb) = (self.ty(a).shape.clone(), self.ty(b).shape.clone());
                if sa.len() != 1 || sb.len() != 1 {
                    let message = format!(
                        "`dot` needs two rank-1 arguments, found {} and {} (use `@` for matrices)",
                        self.shape(&sa),
                        self.shape(&sb)
                    );
                    return self.error(span, message);
                }
                self.matmul_nodes(a, b, args[0].span, args[1].span, span, "`dot`")
            }
            Builtin::Column | Builtin::Row => {
                let v = self.real_operand(&args[0], env)?;
                let shape = self.ty(v).shape.clone();
                if shape.len() != 1 {
                    let text = self.shape(&shape);
                    return self.error(
                        args[0].span,
                        format!("`{name}` needs a rank-1 argument, found {text}"),
                    );
                }
                let new_shape = if builtin == Builtin::Column {
                    vec![shape[0], Dim::Const(1)]
                } else {
                    vec![Dim::Const(1), shape[0]]
                };
                Some(self.push(NodeKind::Reshape(v), Type::real(new_shape)))
            }
            Builtin::Pick => {
                let x = self.real_operand(&args[0], env);
                let labels = self.expr(&args[1], env);
                let (x, labels) = (x?, labels?);
                let (tx, tl) = (self.ty(x).clone(), self.ty(labels).clone());
                if tx.rank() != 2 {
                    let text = self.ty_text(&tx);
                    return self.error(
                        args[0].span,
                        format!("`pick` needs a rank-2 first argument [B, K], found {text}"),
                    );
                }
                if tl.elem != Elem::Int || tl.rank() != 1 {
                    let text = self.ty_text(&tl);
                    return self.error(
                        args[1].span,
                        format!("the labels of `pick` must be int data of rank 1, found {text}"),
                    );
                }
                if tl.shape[0] != tx.shape[0] {
                    let message = format!(
                        "cannot pick from {} with labels {}: the first dimensions differ",
                        self.shape(&tx.shape),
                        self.shape(&tl.shape)
                    );
                    return self.error(span, message);
                }
                Some(self.push(NodeKind::Pick(x, labels), Type::real(vec![tx.shape[0]])))
            }
            Builtin::OneHot => {
                let labels = self.index_operand(&args[0], env);
                let depth = self.onehot_depth(&args[1], env);
                let (labels, depth) = (labels?, depth?);
                if let (NodeKind::ConstInt(n), Dim::Const(size)) =
                    (&self.nodes[labels.0 as usize].kind, depth)
                {
                    if *n as u64 >= size {
                        let n = *n;
                        return self.error(
                            args[0].span,
                            format!("label {n} is out of range for `onehot` of size {size}"),
                        );
                    }
                }
                let mut shape = self.ty(labels).shape.clone();
                shape.push(depth);
                Some(self.push(NodeKind::OneHot(labels, depth), Type::real(shape)))
            }
        }
    }

    fn where_call(&mut self, args: &'a [Expr], span: Span, env: Env<'_>) -> Option<NodeId> {
        let mask = self.expr(&args[0], env);
        let a = self.real_operand(&args[1], env);
        let b = self.real_operand(&args[2], env);
        let mask = mask?;
        let mask_ty = self.ty(mask).clone();
        if mask_ty.elem != Elem::Bool {
            let text = self.ty_text(&mask_ty);
            return self.error(
                args[0].span,
                format!("the first argument of `where` must be a mask (a comparison such as `x > 0`), found {text}"),
            );
        }
        let (a, b) = (a?, b?);
        let (sm, sa, sb) = (
            mask_ty.shape,
            self.ty(a).shape.clone(),
            self.ty(b).shape.clone(),
        );
        let Some(shape) = broadcast(&[&sm, &sa, &sb]) else {
            let message = format!(
                "the arguments of `where` do not broadcast: {}, {} and {}",
                self.shape(&sm),
                self.shape(&sa),
                self.shape(&sb)
            );
            return self.error(span, message);
        };
        Some(self.push(NodeKind::Where(mask, a, b), Type::real(shape)))
    }

    /// An axis argument: an integer literal in `-rank..rank`, normalised to `0..rank`.
    fn axis(&mut self, axis: &Expr, rank: usize, name: &str) -> Option<usize> {
        let valid = match rank {
            0 => "a scalar has no axes",
            1 => "valid axes: 0 and -1",
            _ => "valid axes: 0, 1, -1 and -2",
        };
        let Some(value) = int_literal(axis) else {
            if beyond_i64(axis) {
                return self.error(
                    axis.span,
                    format!("this axis is too large for `{name}` of a rank-{rank} value ({valid})"),
                );
            }
            return self.error(axis.span, axis_literal_message(name));
        };
        let rank = rank as i64;
        if value < -rank || value >= rank {
            return self.error(
                axis.span,
                format!(
                    "axis {value} is out of range for `{name}` of a rank-{rank} value ({valid})"
                ),
            );
        }
        Some(if value < 0 { value + rank } else { value } as usize)
    }

    /// The depth of `onehot`: a dimension name or an integer literal.
    fn onehot_depth(&mut self, depth: &Expr, env: Env<'_>) -> Option<Dim> {
        match &depth.kind {
            ExprKind::Int(0) => return self.error(depth.span, ONEHOT_ZERO),
            ExprKind::Int(n) => return Some(Dim::Const(*n)),
            _ if beyond_i64(depth) => {
                let message = format!(
                    "the size of `onehot` is too large (the largest integer is {})",
                    i64::MAX
                );
                return self.error(depth.span, message);
            }
            ExprKind::Name(name) => match self.resolve(name, env) {
                Resolved::Dim(v) => return Some(Dim::Sym(v)),
                Resolved::Unknown => {
                    let message = format!(
                        "unknown dimension `{name}`: a dimension is declared by naming it in \
                         the type of an input or param (`param w: [{name}]`)"
                    );
                    return self.error(depth.span, message);
                }
                _ => {}
            },
            _ => {}
        }
        self.error(depth.span, ONEHOT_NOT_DIM)
    }

    // ----- the end -----

    /// Which args `loss` reaches by following `edges` back from it.
    fn reaching_args(&self, loss: NodeId, edges: fn(&NodeKind) -> Vec<NodeId>) -> Vec<bool> {
        let mut reached = vec![false; self.nodes.len()];
        reached[loss.0 as usize] = true;
        let mut args = vec![false; self.args.len()];
        for index in (0..self.nodes.len()).rev() {
            if !reached[index] {
                continue;
            }
            let kind = &self.nodes[index].kind;
            if let NodeKind::Arg(k) = kind {
                args[*k as usize] = true;
            }
            for operand in edges(kind) {
                reached[operand.0 as usize] = true;
            }
        }
        args
    }

    fn finish(mut self, file: &ast::File) -> (Option<Checked>, Vec<Diagnostic>) {
        if !self.loss_seen {
            self.error::<()>(
                file.eof,
                "missing `loss = ...`: a file needs exactly one `loss` statement",
            );
        }
        let loss = match self.loss {
            Some(loss) if !self.has_errors() => loss,
            _ => return (None, self.diags),
        };
        // Warn about params whose gradient is zero: those the loss does not depend on, and
        // those it depends on only through comparisons (piecewise constant).
        let affects = self.reaching_args(loss, NodeKind::operands);
        let differentiates = self.reaching_args(loss, NodeKind::differentiable_operands);
        for (k, arg) in self.args.iter().enumerate() {
            if arg.role != ArgRole::Param || differentiates[k] {
                continue;
            }
            let message = if affects[k] {
                format!(
                    "param `{}` reaches the loss only through comparisons; its gradient is zero",
                    arg.name
                )
            } else {
                format!(
                    "param `{}` does not affect the loss; its gradient is zero",
                    arg.name
                )
            };
            self.diags
                .push(Diagnostic::warning(self.arg_spans[k], message));
        }
        let checked = Checked {
            dims: self.dims,
            args: self.args,
            nodes: self.nodes,
            loss,
            outputs: self.outputs,
        };
        (Some(checked), self.diags)
    }
}

/// The comparison a binary operator is, if it is one.
fn comparison(op: BinOp) -> Option<CmpOp> {
    match op {
        BinOp::Lt => Some(CmpOp::Lt),
        BinOp::Le => Some(CmpOp::Le),
        BinOp::Gt => Some(CmpOp::Gt),
        BinOp::Ge => Some(CmpOp::Ge),
        BinOp::Eq => Some(CmpOp::Eq),
        BinOp::Ne => Some(CmpOp::Ne),
        _ => None,
    }
}

/// A hint for `[B, N] op [B]`: a rank-1 operand aligns with the last axis.
fn column_hint(a: &[Dim], b: &[Dim]) -> String {
    let (matrix, vector) = match (a.len(), b.len()) {
        (2, 1) => (a, b),
        (1, 2) => (b, a),
        _ => return String::new(),
    };
    if vector[0] == matrix[0] && vector[0] != matrix[1] {
        " (a rank-1 operand aligns with the last axis; use `column(...)` to align it with the first)".to_string()
    } else {
        String::new()
    }
}

/// The value of an integer literal, possibly negated (`1`, `-1`).
fn int_literal(expr: &Expr) -> Option<i64> {
    match &expr.kind {
        ExprKind::Int(n) => Some(*n as i64),
        ExprKind::Neg(inner) => match inner.kind {
            ExprKind::Int(n) => Some(-(n as i64)),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `expr` is a literal integer too large for an `i64` (which lexes as the real
/// it spells), or its negation.
fn beyond_i64(expr: &Expr) -> bool {
    match &expr.kind {
        ExprKind::Real(x) => x.fract() == 0.0 && x.abs() >= i64::MAX as f64,
        ExprKind::Neg(inner) => beyond_i64(inner),
        _ => false,
    }
}

/// How many arguments a built-in takes: at least, at most.
fn builtin_arity(builtin: Builtin) -> (usize, usize) {
    match builtin {
        Builtin::Unary(_) | Builtin::Transpose | Builtin::Column | Builtin::Row => (1, 1),
        Builtin::Elementwise(_) | Builtin::Dot | Builtin::Pick | Builtin::OneHot => (2, 2),
        Builtin::Where => (3, 3),
        Builtin::Reduce(_) | Builtin::Softmax | Builtin::LogSoftmax => (1, 2),
    }
}

fn fn_arity_message(name: &str, expected: usize, found: usize) -> String {
    let plural = if expected == 1 { "" } else { "s" };
    format!("fn `{name}` takes {expected} argument{plural}, found {found}")
}

fn axis_literal_message(name: &str) -> String {
    format!("the axis of `{name}` must be an integer literal such as `0`, `1` or `-1`")
}

const ONEHOT_ZERO: &str = "the size of `onehot` must be at least 1";
const ONEHOT_NOT_DIM: &str = "the size of `onehot` must be a dimension name or an integer literal";

/// Why a literal cannot be an index (a negative, real or too large literal), if it is one.
fn index_literal_error(index: &Expr) -> Option<String> {
    match &index.kind {
        ExprKind::Neg(inner) if matches!(inner.kind, ExprKind::Int(_) | ExprKind::Real(_)) => {
            Some("a negative index is not allowed: an index literal counts from 0".to_string())
        }
        _ if beyond_i64(index) => Some(format!(
            "this index is too large (the largest is {})",
            i64::MAX
        )),
        ExprKind::Real(_) => Some(
            "an index must be an integer: found a real literal (write `1`, not `1.0`)".to_string(),
        ),
        _ => None,
    }
}
