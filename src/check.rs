//! AST → checked program. (STUB: replaced by the front-end work.)
use crate::diag::Diagnostic;
use crate::syntax::ast;

/// A program whose names, ranks and dimensions have been checked.
#[derive(Clone, Debug, Default)]
pub struct Checked {}

/// Checks a file; returns the checked program (if there were no errors) and every
/// diagnostic (errors and warnings).
pub fn check(file: &ast::File) -> (Option<Checked>, Vec<Diagnostic>) {
    let _ = file;
    (None, Vec::new())
}
