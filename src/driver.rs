//! The pipeline as one straight-line function.
//!
//! In: the text of a `.loss` file. Out: every artefact a command may print or run
//! (AST, forward IR, gradient IR before and after simplification) and the warnings,
//! or the diagnostics that stopped it. No stage calls the next itself.

use crate::diag::Diagnostic;
use crate::ir::{Function, Op};
use crate::syntax::ast;
use crate::{autodiff, check, lower, simplify, syntax};

/// Everything the compiler derives from one `.loss` file.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The parsed file.
    pub ast: ast::File,
    /// The forward function as lowered, before simplification.
    pub forward_raw: Function,
    /// The simplified forward function (results: `loss`, then outputs).
    pub forward: Function,
    /// The value-and-gradient function straight out of reverse mode.
    pub grad_raw: Function,
    /// The simplified value-and-gradient function (results: `loss`, then one gradient
    /// per param in declaration order).
    pub grad: Function,
    /// Warnings (the file compiled).
    pub warnings: Vec<Diagnostic>,
}

impl Compiled {
    /// The parsed file as s-expressions (`gradc compile --emit ast`).
    pub fn ast_text(&self) -> String {
        crate::syntax::print::print_file(&self.ast)
    }

    /// The simplified forward IR (`--emit ir`).
    pub fn forward_ir_text(&self) -> String {
        crate::ir::print_function(&self.forward)
    }

    /// The simplified value-and-gradient IR (`--emit grad-ir`).
    pub fn grad_ir_text(&self) -> String {
        crate::ir::print_function(&self.grad)
    }

    /// The gradients as `.loss`-style equations (`--emit grad`).
    pub fn grad_equations(&self) -> String {
        crate::equations::equations(&self.grad)
    }
}

/// Runs the pipeline on `source`. Errors are returned as diagnostics (with any
/// warnings found before them); this never panics on any input.
pub fn compile(source: &str) -> Result<Compiled, Vec<Diagnostic>> {
    let front = compile_front(source)?;
    let gradient = front.gradient()?;
    Ok(front.finish(gradient))
}

/// The pipeline up to the simplified forward function: the file parsed, checked,
/// lowered and simplified. [`Front::gradient`] runs the rest (reverse mode and its
/// simplification), so that a caller can start on the forward function meanwhile.
#[derive(Clone, Debug)]
pub struct Front {
    ast: ast::File,
    forward_raw: Function,
    forward: Function,
    warnings: Vec<Diagnostic>,
}

/// [`compile`] up to the forward function.
pub fn compile_front(source: &str) -> Result<Front, Vec<Diagnostic>> {
    // A compiler bug must not take the caller down: it becomes an error like any other.
    std::panic::catch_unwind(|| run_front(source)).unwrap_or_else(|_| Err(internal_error()))
}

fn run_front(source: &str) -> Result<Front, Vec<Diagnostic>> {
    let ast = syntax::parse(source)?;
    let (checked, diagnostics) = check::check(&ast);
    let checked = match checked {
        Some(c) if !diagnostics.iter().any(Diagnostic::is_error) => c,
        _ => return Err(diagnostics),
    };
    let forward_raw = lower::lower(&checked);
    let forward = simplify::simplify(&forward_raw);
    Ok(Front {
        ast,
        forward_raw,
        forward,
        warnings: diagnostics,
    })
}

fn internal_error() -> Vec<Diagnostic> {
    vec![Diagnostic::error(
        crate::Span::default(),
        "internal compiler error (please report it with the input file)",
    )]
}

impl Front {
    /// The simplified forward function.
    pub fn forward(&self) -> &Function {
        &self.forward
    }

    /// The value-and-gradient function straight out of reverse mode, and simplified.
    pub fn gradient(&self) -> Result<(Function, Function), Vec<Diagnostic>> {
        std::panic::catch_unwind(|| {
            let grad_raw = autodiff::grad(&self.forward);
            let grad = simplify::simplify(&grad_raw);
            (grad_raw, grad)
        })
        .map_err(|_| internal_error())
    }

    /// Everything the pipeline derives, given what [`Front::gradient`] returned.
    pub fn finish(self, (grad_raw, grad): (Function, Function)) -> Compiled {
        Compiled {
            ast: self.ast,
            forward_raw: self.forward_raw,
            forward: self.forward,
            grad_raw,
            grad,
            warnings: self.warnings,
        }
    }
}

/// The number of operations in a function: every instruction except arguments and
/// constants (the measure of program size used for the no-swell bound).
pub fn op_count(func: &Function) -> usize {
    func.insts
        .iter()
        .filter(|inst| {
            !matches!(
                inst.op,
                Op::Arg(_) | Op::Const(_) | Op::ConstInt(_) | Op::DimSize(_)
            )
        })
        .count()
}
