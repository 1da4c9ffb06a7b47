//! Source text → AST: the facade over the logos lexer and the lalrpop grammar.
//!
//! In: the text of a `.loss` file. Out: an [`ast::File`] whose nodes carry byte spans,
//! or diagnostics: every lexical error, or the first syntax error (saying what was
//! expected and what was found). The generated parser is table-driven (an explicit
//! stack, no recursion), so nesting depth cannot overflow the call stack here.

pub mod ast;
pub mod lexer;
pub mod print;
pub mod token;

use crate::diag::{Diagnostic, Span};
use lalrpop_util::ParseError;
use token::Token;

lalrpop_util::lalrpop_mod!(
    #[allow(missing_docs, clippy::all, clippy::pedantic, unused_qualifications)]
    grammar,
    "/loss.rs"
);

/// Parses a whole `.loss` file.
pub fn parse(source: &str) -> Result<ast::File, Vec<Diagnostic>> {
    let tokens = lexer::lex(source)?;
    let items = grammar::ItemsParser::new()
        .parse(tokens.into_iter().map(Ok::<_, Diagnostic>))
        .map_err(|error| vec![syntax_error(source, error)])?;
    Ok(ast::File {
        items,
        eof: end_of_file(source),
    })
}

/// An empty span just after the last non-whitespace character (comments count as
/// content): where "missing `loss`" is reported, on a line the user can see.
fn end_of_file(source: &str) -> Span {
    let end = source.trim_end().len();
    Span::new(end, end)
}

/// Builds a binary-operator node spanning `start..end` (used by the grammar).
pub(crate) fn binary(
    op: ast::BinOp,
    a: ast::Expr,
    b: ast::Expr,
    start: usize,
    end: usize,
) -> ast::Expr {
    ast::Expr {
        kind: ast::ExprKind::Binary(op, Box::new(a), Box::new(b)),
        span: Span::new(start, end),
    }
}

/// The diagnostic for a parse error.
fn syntax_error(source: &str, error: ParseError<usize, Token, Diagnostic>) -> Diagnostic {
    match error {
        ParseError::User { error } => error,
        ParseError::UnrecognizedEof { location, expected } => Diagnostic::error(
            Span::new(location, location),
            format!("{}, found end of file", expected_text(&expected)),
        ),
        ParseError::UnrecognizedToken {
            token: (start, token, end),
            expected,
        } => {
            let found = token.describe(source.get(start..end).unwrap_or(""));
            Diagnostic::error(
                Span::new(start, end),
                format!("{}, found {found}", expected_text(&expected)),
            )
        }
        ParseError::ExtraToken {
            token: (start, token, end),
        } => {
            let found = token.describe(source.get(start..end).unwrap_or(""));
            Diagnostic::error(Span::new(start, end), format!("unexpected {found}"))
        }
        ParseError::InvalidToken { location } => {
            Diagnostic::error(Span::new(location, location), "invalid token")
        }
    }
}

/// Groups of terminals named as one thing in "expected ..." messages.
const GROUPS: &[(&str, &[&str])] = &[
    (
        "a statement (`input`, `param`, `let`, `fn`, `output`, `loss`)",
        &["input", "param", "let", "fn", "output", "loss"],
    ),
    ("an operator", &["+", "-", "*", "/", "@", "^"]),
    (
        "an expression",
        &["identifier", "integer", "real number", "(", "-"],
    ),
];

/// "expected one of `)`, `,` or an operator" from lalrpop's list of expected terminals
/// (which are quoted: `"\")\""`).
fn expected_text(expected: &[String]) -> String {
    let mut remaining: Vec<&str> = expected.iter().map(|s| s.trim_matches('"')).collect();
    let mut names: Vec<String> = Vec::new();
    for (group, members) in GROUPS {
        if members.iter().all(|m| remaining.contains(m)) {
            names.push(group.to_string());
            remaining.retain(|t| !members.contains(t));
        }
    }
    // Comparison operators always come with the arithmetic ones; name them together.
    let comparisons = ["<", "<=", ">", ">=", "==", "!="];
    if names.iter().any(|n| n == "an operator") {
        remaining.retain(|t| !comparisons.contains(t));
    }
    let mut listed: Vec<String> = remaining
        .iter()
        .map(|t| match *t {
            "identifier" => "an identifier".to_string(),
            "integer" => "an integer".to_string(),
            "real number" => "a real number".to_string(),
            other => format!("`{other}`"),
        })
        .collect();
    listed.extend(names);
    match listed.len() {
        0 => "unexpected token".to_string(),
        1 => format!("expected {}", listed[0]),
        n => format!(
            "expected one of {} or {}",
            listed[..n - 1].join(", "),
            listed[n - 1]
        ),
    }
}
