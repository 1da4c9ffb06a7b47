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
    let before = |back: usize| at.checked_sub(back).and_then(|k| tokens.get(k));
    match token {
        // `x.sum()`, `np.exp(x)`: a call after `.NAME`.
        Token::LParen => {
            let (_, Token::Ident(name), name_end) = before(1)? else {
                return None;
            };
            let (dot, Token::Dot, _) = before(2)? else {
                return None;
            };
            if name == "T" {
                return None;
            }
            let base = at
                .checked_sub(3)
                .and_then(|end| base_text(source, tokens, end));
            let (base, argument) = match &base {
                Some((written, argument)) => (Some(written.as_str()), argument.as_str()),
                None => (None, ""),
            };
            let module = base.filter(|b| MODULES.contains(b));
            let what = if module.is_some() {
                "there are no modules in a `.loss` file"
            } else {
                "there are no methods in a `.loss` file"
            };
            // What the call is written on, and the arguments gradc's function takes.
            let call = match (module, base, call_arguments(source, tokens, at)) {
                (Some(module), _, Some(args)) => Some((module, args)),
                (None, Some(base), Some(mut args)) => {
                    args.insert(0, argument.to_string());
                    Some((base, args))
                }
                _ => None,
            };
            let message = match (call, rewrite(name, &[])) {
                (Some((on, args)), _) => {
                    // `x.sum()` has no arguments of its own; `x.sum(1)` has.
                    let own = args.len() > usize::from(module.is_none());
                    let dots = if own { "..." } else { "" };
                    match rewrite(name, &args) {
                        Rewrite::Call(call) => {
                            format!("{what}: write `{call}`, not `{on}.{name}({dots})`")
                        }
                        Rewrite::Advice(advice) => format!("{what}{advice}"),
                    }
                }
                (None, Rewrite::Call(_)) => format!(
                    "{what}: call `{name}` as a function, with the value as its first argument"
                ),
                (None, Rewrite::Advice(advice)) => format!("{what}{advice}"),
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
        // `sum(x, axis=1)`, `fn f(a, b=1)`, `where(x = 0, ...)`.
        Token::Assign => {
            let (name_start, Token::Ident(name), _) = before(1)? else {
                return None;
            };
            let open = unclosed(tokens, at, &Token::LParen, &Token::RParen)?;
            let span = Span::new(*name_start, *end);
            let callee = match open.checked_sub(1).map(|k| &tokens[k].1) {
                Some(Token::Ident(callee)) => callee.as_str(),
                _ => return None,
            };
            let message = if open >= 2 && tokens[open - 2].1 == Token::Fn {
                "a fn parameter has no default value: every call passes every argument".to_string()
            } else if AXIS_KEYWORDS.contains(&name.as_str()) && TAKES_AXIS.contains(&callee) {
                format!("there are no keyword arguments: the axis is the second argument, as in `{callee}(x, 1)`")
            } else if KEYWORDS.contains(&name.as_str()) {
                format!("there are no keyword arguments: pass `{name}` by position")
            } else {
                format!("`=` is not a comparison (write `{name} == ...`), and arguments are passed by position, without names")
            };
            Some(Diagnostic::error(span, message))
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

/// The source of the value a method is called on, whose last token is `tokens[end]`
/// (`w`, `(x @ W)`, `f(x)`, `E[i]`, `x.T`), as written and as an argument (without
/// enclosing parentheses), if short enough to quote.
fn base_text(source: &str, tokens: &[Spanned], end: usize) -> Option<(String, String)> {
    let mut k = end;
    let start = loop {
        match &tokens[k].1 {
            Token::RParen => {
                let open = matching_open(tokens, k, &Token::LParen, &Token::RParen)?;
                match open.checked_sub(1).map(|j| &tokens[j].1) {
                    Some(Token::Ident(_)) => break open - 1,
                    _ => break open,
                }
            }
            Token::RBracket => {
                k = matching_open(tokens, k, &Token::LBracket, &Token::RBracket)?.checked_sub(1)?
            }
            Token::Ident(name) if name == "T" && k >= 2 && tokens[k - 1].1 == Token::Dot => k -= 2,
            Token::Ident(_) | Token::IntLit(_) | Token::RealLit(_) => break k,
            _ => return None,
        }
    };
    let written = &source[tokens[start].0..tokens[end].2];
    // `(x @ W)` is passed as `x @ W`.
    let argument = match (
        &tokens[start].1,
        matching_open(tokens, end, &Token::LParen, &Token::RParen),
    ) {
        (Token::LParen, Some(open)) if open == start => written[1..written.len() - 1].trim(),
        _ => written,
    };
    (written.len() <= 40 && !written.contains('\n'))
        .then(|| (written.to_string(), argument.to_string()))
}

/// The position of the `open` bracket that the `close` at `at` closes.
fn matching_open(tokens: &[Spanned], at: usize, open: &Token, close: &Token) -> Option<usize> {
    if tokens[at].1 != *close {
        return None;
    }
    unclosed(tokens, at, open, close)
}

/// NumPy's and JAX's names of an axis argument.
const AXIS_KEYWORDS: &[&str] = &["axis", "dim", "axes"];

/// Other keyword arguments of NumPy, JAX and PyTorch functions.
const KEYWORDS: &[&str] = &[
    "axis",
    "dim",
    "axes",
    "keepdims",
    "keepdim",
    "dtype",
    "out",
    "ord",
    "initial",
    "num_classes",
];

/// The built-ins whose second argument is an axis.
const TAKES_AXIS: &[&str] = &[
    "sum",
    "mean",
    "max",
    "min",
    "logsumexp",
    "softmax",
    "log_softmax",
];

/// What a call of NumPy's `name` with `args` is here.
enum Rewrite {
    /// The call to write.
    Call(String),
    /// What to do instead, when no call is the same (from its punctuation on:
    /// `, and ...` or `: ...`).
    Advice(String),
}

/// The call of gradc's function for NumPy's `name` with `args` (keyword arguments
/// already dropped of their names), or advice when there is none.
fn rewrite(name: &str, args: &[String]) -> Rewrite {
    let here = crate::check::foreign_function(name).unwrap_or(name);
    if here == "@" || name == "dot" {
        return match args {
            [a, b] => Rewrite::Call(format!("{a} @ {b}")),
            _ => Rewrite::Advice(": a matrix product is the operator `@`, `a @ b`".to_string()),
        };
    }
    if !crate::check::is_builtin(here) {
        return Rewrite::Advice(match crate::check::foreign_function(name) {
            Some(expression) => format!(": `{name}` is written `{expression}`"),
            None => format!(", and `{name}` is not a built-in function"),
        });
    }
    Rewrite::Call(format!("{here}({})", args.join(", ")))
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

/// The arguments of the call whose `(` is at `open`, as written but for keyword names
/// (`axis=1` is `1`; `keepdims=True`, which has no counterpart, is dropped), if the call
/// closes in the same statement and is short enough to quote.
fn call_arguments(source: &str, tokens: &[Spanned], open: usize) -> Option<Vec<String>> {
    let mut args = Vec::new();
    let mut depth = 0usize;
    let mut first = open + 1;
    for k in open + 1..tokens.len() {
        let (_, token, _) = &tokens[k];
        match token {
            Token::LParen | Token::LBracket => depth += 1,
            Token::RParen | Token::RBracket if depth > 0 => depth -= 1,
            Token::RParen | Token::Comma if depth == 0 => {
                if k > first {
                    let mut start = first;
                    let mut keep = true;
                    if let (Token::Ident(name), Some((_, Token::Assign, _))) =
                        (&tokens[first].1, tokens.get(first + 1))
                    {
                        start = first + 2;
                        keep = AXIS_KEYWORDS.contains(&name.as_str())
                            || !KEYWORDS.contains(&name.as_str());
                    }
                    if keep && start < k {
                        args.push(source[tokens[start].0..tokens[k - 1].2].to_string());
                    }
                }
                if *token == Token::RParen {
                    let total: usize = args.iter().map(String::len).sum();
                    return (total <= 40 && !args.iter().any(|a| a.contains('\n'))).then_some(args);
                }
                first = k + 1;
            }
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
        // The value a method is called on may be any postfix expression.
        let message = first_message("param x\nparam w\nloss = (x * w).T.sum()");
        assert!(
            message.ends_with("write `sum((x * w).T)`, not `(x * w).T.sum()`"),
            "{message}"
        );
        // A method call with a long or unclosed argument list is named without quoting it.
        let message =
            first_message("param w\nloss = w.sum(w + w + w + w + w + w + w + w + w + w + w + w)");
        assert!(
            message.ends_with("call `sum` as a function, with the value as its first argument"),
            "{message}"
        );
    }
}
