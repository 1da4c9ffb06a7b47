//! Syntax errors that come from habits of NumPy, JAX and Python, said in their terms.
//!
//! In: the tokens of the file and the position of the token the parser could not take.
//! Out: a diagnostic naming the habit and what to write instead (`w.sum()` → `sum(w)`),
//! or `None`, and the parser's own "expected ..., found ..." message stands. Each habit is
//! one arm of [`habit`]; the span covers what has to change.

use super::lexer::Spanned;
use super::token::Token;
use crate::diag::{Diagnostic, Span};

/// Names written before `.` that are modules in Python, not values (`np.exp(x)`).
const MODULES: &[&str] = &[
    "np", "numpy", "jnp", "jax", "lax", "math", "torch", "F", "nn", "tf", "scipy", "special",
];

/// The diagnostic for a habit that makes `tokens[at]` unexpected, if one does.
pub(super) fn habit(source: &str, tokens: &[Spanned], at: usize) -> Option<Diagnostic> {
    let (start, token, end) = tokens.get(at)?;
    let text = |k: usize| tokens.get(k).map_or("", |(s, _, e)| &source[*s..*e]);
    let before = |back: usize| at.checked_sub(back).and_then(|k| tokens.get(k));
    match token {
        // `x.sum()`, `np.exp(x)`: a call after `.NAME`.
        Token::LParen => {
            let (_, Token::Ident(name), name_end) = before(1)? else {
                return None;
            };
            if name == "T" {
                return None;
            }
            let (dot, Token::Dot, _) = before(2)? else {
                return None;
            };
            let base = match before(3) {
                Some((_, Token::Ident(base), _)) => Some(base.as_str()),
                _ => None,
            };
            let args = call_arguments(source, tokens, at);
            let message = match (base, args) {
                (Some(module), Some(args)) if MODULES.contains(&module) => format!(
                    "there are no modules in a `.loss` file: write `{name}({args})`, not `{module}.{name}({args})`"
                ),
                (Some(base), Some(args)) => {
                    let all = if args.is_empty() { base.to_string() } else { format!("{base}, {args}") };
                    format!("there are no methods in a `.loss` file: write `{name}({all})`, not `{base}.{name}({args})`")
                }
                _ => format!(
                    "there are no methods in a `.loss` file: call `{name}` as a function, with the value as its first argument"
                ),
            };
            Some(Diagnostic::error(Span::new(*dot, *name_end), message))
        }
        // `x ** 2`.
        Token::Star => {
            let (star, Token::Star, star_end) = before(1)? else {
                return None;
            };
            (star_end == start).then(|| {
                Diagnostic::error(
                    Span::new(*star, *end),
                    "`**` is not an operator: a power is written `x ^ y`",
                )
            })
        }
        // `sum(x, axis=1)`, `fn f(a, b=1)`.
        Token::Assign => {
            let (name_start, Token::Ident(name), _) = before(1)? else {
                return None;
            };
            let open = unclosed(tokens, at, &Token::LParen, &Token::RParen)?;
            let span = Span::new(*name_start, *end);
            let callee = match open.checked_sub(1).map(|k| &tokens[k].1) {
                Some(Token::Ident(_)) => text(open - 1),
                _ => return None,
            };
            Some(if open >= 2 && tokens[open - 2].1 == Token::Fn {
                Diagnostic::error(
                    span,
                    "a fn parameter has no default value: every call passes every argument",
                )
            } else {
                Diagnostic::error(
                    span,
                    format!(
                        "there are no keyword arguments: pass `{name}` by position, as in `{callee}(x, 1)`"
                    ),
                )
            })
        }
        // `x[:, 0]`, `x[0, 1]`.
        Token::Colon | Token::Comma => {
            let open = unclosed(tokens, at, &Token::LBracket, &Token::RBracket)?;
            // `w: [N,, M]` is a type, not an index.
            let indexes = open.checked_sub(1).map(|k| &tokens[k].1);
            if !matches!(
                indexes,
                Some(Token::Ident(_) | Token::RParen | Token::RBracket)
            ) {
                return None;
            }
            let what = if *token == Token::Colon {
                "there is no slicing"
            } else {
                "an index is one `int` value"
            };
            Some(Diagnostic::error(
                Span::new(*start, *end),
                format!(
                    "{what}: `E[i]` gathers the rows of `E` at the indices `i` (`pick(x, labels)` takes one element per row)"
                ),
            ))
        }
        _ => None,
    }
}

/// The position of the bracket `open` that the tokens before `at` leave unclosed, if
/// any (looking back no further than the statement's keyword).
fn unclosed(tokens: &[Spanned], at: usize, open: &Token, close: &Token) -> Option<usize> {
    let mut depth = 0usize;
    for k in (0..at).rev() {
        let token = &tokens[k].1;
        if token == close {
            depth += 1;
        } else if token == open {
            if depth == 0 {
                return Some(k);
            }
            depth -= 1;
        } else if token.starts_statement() {
            return None;
        }
    }
    None
}

/// The text between the `(` at `open` and its `)`, if the call closes on the same
/// statement and is short enough to quote.
fn call_arguments(source: &str, tokens: &[Spanned], open: usize) -> Option<String> {
    let mut depth = 0usize;
    for (start, token, _) in &tokens[open + 1..] {
        match token {
            Token::LParen => depth += 1,
            Token::RParen if depth == 0 => {
                let args = source[tokens[open].2..*start].trim();
                return (args.len() <= 40 && !args.contains('\n')).then(|| args.to_string());
            }
            Token::RParen => depth -= 1,
            t if t.starts_statement() => return None,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    fn first_message(source: &str) -> String {
        super::super::parse(source).expect_err("a syntax error")[0]
            .message
            .clone()
    }

    #[test]
    fn habits_are_named_only_where_they_are_the_cause() {
        // A type's brackets are not an index; `.T` is not a method; `**` apart is two
        // operators; `=` outside a call is not a keyword argument.
        for (source, expected) in [
            ("param w: [N,,M]\nloss = 1", "expected one of"),
            ("param w: [N]\nloss = sum(w.T(1))", "expected one of"),
            (
                "param w\nloss = w * * 2",
                "expected an expression, found `*`",
            ),
            ("param w\nlet a = w = 2\nloss = a", "found `=`"),
            ("param w\nlet a = (w = 2)\nloss = a", "found `=`"),
        ] {
            let message = first_message(source);
            assert!(
                message.starts_with(expected) || message.contains(expected),
                "{source}: {message}"
            );
            assert!(!message.contains("there are no"), "{source}: {message}");
        }
        // A method call with a long or unclosed argument list is named without quoting it.
        let message =
            first_message("param w\nloss = w.sum(w + w + w + w + w + w + w + w + w + w + w + w)");
        assert!(
            message.ends_with("call `sum` as a function, with the value as its first argument"),
            "{message}"
        );
    }
}
