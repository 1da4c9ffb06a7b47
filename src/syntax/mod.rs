//! Source text → AST: the facade over the logos lexer and the lalrpop grammar.
//!
//! In: the text of a `.loss` file. Out: an [`ast::File`] whose nodes carry byte spans,
//! or diagnostics: every lexical error, or every syntax error (saying what was expected
//! and what was found), at most one per statement. The generated parser is table-driven
//! (an explicit stack, no recursion), so nesting depth cannot overflow the call stack
//! here.

pub mod ast;
mod habits;
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
///
/// Every statement starts with a keyword that appears nowhere else, so each statement's
/// tokens are parsed on their own: a syntax error in one statement is reported, and
/// the next statement is parsed as if it had not happened (as rustc recovers at item
/// boundaries). The messages are the ones a parse of the whole file would give.
pub fn parse(source: &str) -> Result<ast::File, Vec<Diagnostic>> {
    let tokens = lexer::lex(source)?;
    let parser = grammar::ItemsParser::new();
    let mut items = Vec::new();
    let mut errors = Vec::new();
    let mut rest = &tokens[..];
    while !rest.is_empty() {
        // The statement runs up to the next statement keyword (after its own), but for
        // one misused where a name or operand must be: that is this statement's error.
        let end = 1
            + (rest.windows(2))
                .position(|pair| pair[1].1.starts_statement() && !pair[0].1.needs_what_follows())
                .unwrap_or(rest.len() - 1);
        let (statement, next) = rest.split_at(end);
        match parser.parse(statement.iter().cloned().map(Ok::<_, Diagnostic>)) {
            Ok(parsed) => items.extend(parsed),
            // The statement stops short: what the whole file's parse would have found is
            // the keyword of the next statement.
            Err(ParseError::UnrecognizedEof { expected, .. }) if !next.is_empty() => {
                errors.push(syntax_error(
                    source,
                    &tokens,
                    ParseError::UnrecognizedToken {
                        token: next[0].clone(),
                        expected,
                    },
                ))
            }
            Err(error) => errors.push(syntax_error(source, &tokens, error)),
        }
        rest = next;
    }
    if !errors.is_empty() {
        return Err(errors);
    }
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

/// The error for `.NAME` with NAME not `T` (used by the grammar): NumPy's attributes and
/// modules are not here.
pub(crate) fn after_dot_message(name: &str) -> String {
    match name {
        "shape" | "size" | "ndim" => format!(
            "expected `T` after `.` (transpose), found `{name}`: there are no attributes; \
             a dimension name is its size (`sum(x) / N`)"
        ),
        _ => format!(
            "expected `T` after `.` (transpose), found `{name}`: there are no attributes, \
             methods or modules"
        ),
    }
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

/// The diagnostic for a parse error; `tokens` are the whole file's (a habit from NumPy
/// or Python is recognised from the tokens around the one not expected).
fn syntax_error(
    source: &str,
    tokens: &[lexer::Spanned],
    error: ParseError<usize, Token, Diagnostic>,
) -> Diagnostic {
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
            let at = tokens.partition_point(|t| t.0 < start);
            if let Some(diagnostic) = habits::habit(source, tokens, at) {
                return diagnostic;
            }
            let span = Span::new(start, end);
            let comparison = matches!(
                token,
                Token::Lt | Token::Le | Token::Gt | Token::Ge | Token::EqEq | Token::Ne
            );
            if comparison && !expected.iter().any(|e| e.trim_matches('"') == token.text()) {
                return Diagnostic::error(
                    span,
                    "comparisons cannot be chained: `a < b < c` is not an expression",
                );
            }
            let written = source.get(start..end).unwrap_or("");
            // An integer literal beyond `i64` lexes as the real it spells.
            if matches!(token, Token::RealLit(_))
                && written.bytes().all(|b| b.is_ascii_digit())
                && expected.iter().any(|e| e.trim_matches('"') == "integer")
            {
                return Diagnostic::error(
                    span,
                    format!(
                        "integer literal `{written}` is too large (the largest is {})",
                        i64::MAX
                    ),
                );
            }
            let found = token.describe(written);
            // `5.T` lexes as the real `5.` then `T`: say so.
            let before = source.get(..start).unwrap_or("");
            let names_expected = expected.iter().any(|e| e.trim_matches('"') == "identifier");
            // A statement keyword opening a line after a dangling operator starts the
            // next statement: the error is what is missing before it, not a misused name.
            let line_start = before.rfind('\n').map_or(0, |n| n + 1);
            let opens_line = before[line_start..].trim().is_empty();
            let declares = (at.checked_sub(1).map(|k| &tokens[k].1))
                .is_some_and(|t| t.starts_statement() || *t == Token::Comma || *t == Token::LParen);
            let hint = if names_expected
                && found.starts_with("keyword")
                && !(token.starts_statement() && opens_line && !declares)
            {
                " (keywords can't be used as names)"
            } else if token == Token::Ident("T".to_string())
                && before.ends_with('.')
                && before[..before.len() - 1].ends_with(|c: char| c.is_ascii_digit())
            {
                " (a number followed by `.` is a real literal; put the number in parentheses to transpose it)"
            } else {
                ""
            };
            Diagnostic::error(
                span,
                format!("{}, found {found}{hint}", expected_text(&expected)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn first_error(source: &str) -> Diagnostic {
        parse(source).expect_err("a syntax error").remove(0)
    }

    #[test]
    fn end_of_file_errors_point_just_after_the_last_token() {
        let error = first_error("param x\nloss = x +\n\n  # trailing comment\n");
        assert_eq!(error.span, Span::new(18, 18));
        assert!(error.message.contains("found end of file"));
    }

    #[test]
    fn missing_loss_is_reported_after_the_last_content() {
        let file = parse("param x\n# the end\n\n").expect("parses");
        assert_eq!(file.eof, Span::new(17, 17));
        assert_eq!(parse("").expect("parses").eof, Span::new(0, 0));
    }

    /// The error a parse of the whole file at once gives (no recovery).
    fn whole_file_error(source: &str) -> Diagnostic {
        let tokens = lexer::lex(source).expect("lexes");
        let error = grammar::ItemsParser::new()
            .parse(tokens.iter().cloned().map(Ok::<_, Diagnostic>))
            .expect_err("a syntax error");
        syntax_error(source, &tokens, error)
    }

    #[test]
    fn the_first_error_is_the_one_a_parse_of_the_whole_file_gives() {
        let mut sources: Vec<String> = [
            "param w: [N\nlet y = w\nloss = sum(y)",
            "let y = (x + 1\noutput p = y\nloss = 1",
            "let y = x +\nfn f(a) = a\nloss = y",
            "param x\nloss = x +\n",
            "param x: [N,\nparam y\nloss = 0",
            "input x: int\nlet\nloss = 0",
            "garbage here\nparam x\nloss = x",
            "fn f(a, b = a\ninput q\nloss = 0",
            "loss = 0 < x < 1\nparam x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/err");
        for entry in std::fs::read_dir(fixtures).expect("fixtures") {
            let path = entry.expect("entry").path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("syntax_") {
                sources.push(std::fs::read_to_string(&path).expect("readable"));
            }
        }
        for source in &sources {
            assert_eq!(first_error(source), whole_file_error(source), "{source}");
        }
    }

    #[test]
    fn every_statement_with_a_syntax_error_is_reported_once() {
        let errors = parse("input x: [N\nparam w: [N]\nlet y = x * * w\nlet z = 1\nloss = z +")
            .expect_err("syntax errors");
        let at: Vec<u32> = errors.iter().map(|e| e.span.start).collect();
        // `param` after `[N`, the second `*`, the end of the file.
        assert_eq!(at, vec![12, 37, 61], "{errors:?}");
        assert!(errors[0].message.contains("found keyword `param`"));
        assert!(errors[2].message.contains("found end of file"));
    }

    #[test]
    fn statements_after_a_broken_one_parse_normally() {
        // With `let y = ) 1` skipped, the rest is well-formed: exactly one error.
        let errors = parse("param x\nlet y = ) 1\nlet z = x * 2\nloss = z").expect_err("one error");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].span, Span::new(16, 17));
    }

    #[test]
    fn a_keyword_misused_as_a_name_is_one_error_not_a_new_statement() {
        // `loss` after `let` and after `=` does not start a statement; the statement
        // after a truncated one still does (`+` then `loss` is that statement's error).
        let errors = parse("let loss = 1\nloss = loss\n").expect_err("two errors");
        let spans: Vec<Span> = errors.iter().map(|e| e.span).collect();
        assert_eq!(spans, vec![Span::new(4, 8), Span::new(20, 24)]);
        assert!(errors[0]
            .message
            .ends_with("(keywords can't be used as names)"));
        let errors = parse("param x\nlet y = x +\nloss = x").expect_err("one error");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].span, Span::new(20, 24));
    }

    #[test]
    fn expected_tokens_are_named() {
        let error = first_error("fn f(a b) = a");
        assert_eq!(
            error.message,
            "expected one of `)` or `,`, found identifier `b`"
        );
        assert_eq!(error.span, Span::new(7, 8));
    }

    #[test]
    fn power_binds_tighter_than_unary_minus_and_is_right_associative() {
        use ast::{BinOp, ExprKind};
        let file = parse("loss = -a ^ b ^ c").expect("parses");
        let ast::Item::Loss { value, .. } = &file.items[0] else {
            panic!("a loss statement")
        };
        let ExprKind::Neg(power) = &value.kind else {
            panic!("unary minus on top: {value:?}")
        };
        let ExprKind::Binary(BinOp::Pow, _, right) = &power.kind else {
            panic!("a power under the minus")
        };
        assert!(matches!(right.kind, ExprKind::Binary(BinOp::Pow, _, _)));
    }
}
