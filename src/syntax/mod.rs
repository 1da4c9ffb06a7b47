//! Source text → AST. (STUB: replaced by the front-end work.)
pub mod ast;
pub mod print;

use crate::diag::{Diagnostic, Span};

/// Parses a whole `.loss` file.
pub fn parse(source: &str) -> Result<ast::File, Vec<Diagnostic>> {
    let _ = source;
    Err(vec![Diagnostic::error(
        Span::default(),
        "parser not built yet",
    )])
}
