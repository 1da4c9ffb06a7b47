//! The abstract syntax tree of a `.loss` file, as written (before name resolution).
//!
//! Every node carries the `Span` of the source text it came from, so later stages can
//! point at it. The tree is plain data; it is produced by [`crate::syntax::parse`] and
//! consumed by [`crate::check`].

use crate::diag::Span;

/// A name as written, with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    /// The identifier text.
    pub name: String,
    /// Where it was written.
    pub span: Span,
}

/// A whole `.loss` file: its statements in source order.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    /// The statements, in order.
    pub items: Vec<Item>,
    /// An empty span at the end of the file (where a missing `loss` is reported).
    pub eof: Span,
}

/// The element type written in a declaration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElemAnn {
    /// `real`: 64-bit float.
    Real,
    /// `int`: 64-bit signed integer (indices and labels only).
    Int,
}

/// One dimension written in a type: `3` or `N`.
#[derive(Clone, Debug, PartialEq)]
pub enum DimAnn {
    /// An integer literal dimension, with its span.
    Lit(u64, Span),
    /// A dimension name, bound from the data at call time.
    Name(Ident),
}

/// A declared type: `real`, `int[B]`, `[N, D]`, `[]`...
#[derive(Clone, Debug, PartialEq)]
pub struct TypeAnn {
    /// The element type, `real` when omitted.
    pub elem: ElemAnn,
    /// The dimensions; empty for a scalar. May hold more than two (the checker rejects it).
    pub dims: Vec<DimAnn>,
    /// The whole type as written.
    pub span: Span,
}

/// A statement of the file.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `input NAME: TYPE` (TYPE may be omitted: a real scalar).
    Input {
        /// The declared name.
        name: Ident,
        /// The declared type, if written.
        ty: Option<TypeAnn>,
        /// The whole statement.
        span: Span,
    },
    /// `param NAME: TYPE`.
    Param {
        /// The declared name.
        name: Ident,
        /// The declared type, if written.
        ty: Option<TypeAnn>,
        /// The whole statement.
        span: Span,
    },
    /// `let NAME = EXPR`.
    Let {
        /// The bound name.
        name: Ident,
        /// The bound expression.
        value: Expr,
        /// The whole statement.
        span: Span,
    },
    /// `fn NAME(a, b) = EXPR`.
    Fn {
        /// The function name.
        name: Ident,
        /// The parameter names.
        params: Vec<Ident>,
        /// The body.
        body: Expr,
        /// The whole statement.
        span: Span,
    },
    /// `output NAME = EXPR`.
    Output {
        /// The output name.
        name: Ident,
        /// The output expression.
        value: Expr,
        /// The whole statement.
        span: Span,
    },
    /// `loss = EXPR`.
    Loss {
        /// The loss expression.
        value: Expr,
        /// The `loss` keyword.
        keyword: Span,
        /// The whole statement.
        span: Span,
    },
}

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `@`
    MatMul,
    /// `^`
    Pow,
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

/// An expression node.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What kind of expression.
    pub kind: ExprKind,
    /// The source range of the whole expression.
    pub span: Span,
}

/// The kinds of expression.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// An integer literal `3` (a real in arithmetic; an integer where one is required).
    Int(u64),
    /// A real literal `0.5`, `5.`, `1e-3`.
    Real(f64),
    /// A name: a value, a dimension, `pi`, or a `fn` parameter.
    Name(String),
    /// `-x`
    Neg(Box<Expr>),
    /// `a OP b`
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `f(a, b, ...)`
    Call {
        /// The called name.
        func: Ident,
        /// The arguments.
        args: Vec<Expr>,
    },
    /// `base[index]`
    Index {
        /// The indexed expression.
        base: Box<Expr>,
        /// The index expression.
        index: Box<Expr>,
    },
    /// `x.T`
    Transpose(Box<Expr>),
}

impl Drop for Expr {
    /// Drops deeply nested trees without recursing once per level, so a
    /// 100,000-deep expression can be dropped on any thread's stack.
    fn drop(&mut self) {
        let mut stack: Vec<ExprKind> = Vec::new();
        let take = |kind: &mut ExprKind| std::mem::replace(kind, ExprKind::Int(0));
        stack.push(take(&mut self.kind));
        while let Some(kind) = stack.pop() {
            match kind {
                ExprKind::Int(_) | ExprKind::Real(_) | ExprKind::Name(_) => {}
                ExprKind::Neg(mut x) | ExprKind::Transpose(mut x) => stack.push(take(&mut x.kind)),
                ExprKind::Binary(_, mut a, mut b) => {
                    stack.push(take(&mut a.kind));
                    stack.push(take(&mut b.kind));
                }
                ExprKind::Call { mut args, .. } => {
                    for arg in &mut args {
                        stack.push(take(&mut arg.kind));
                    }
                }
                ExprKind::Index {
                    mut base,
                    mut index,
                } => {
                    stack.push(take(&mut base.kind));
                    stack.push(take(&mut index.kind));
                }
            }
        }
    }
}
