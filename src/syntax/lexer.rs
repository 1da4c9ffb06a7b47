//! Source text → spanned tokens, for the lalrpop parser's external-lexer interface.
//!
//! In: the whole source text. Out: every token as `(start, token, end)` with byte
//! offsets, or every lexical error as a [`Diagnostic`] whose span covers the offending
//! characters (whole UTF-8 characters, never half of one).

use super::token::{LexError, Token};
use crate::diag::{Diagnostic, Span};
use logos::Logos;

/// A token with its byte range, as the generated parser consumes it.
pub type Spanned = (usize, Token, usize);

/// Lexes the whole source; returns all tokens, or all lexical errors.
pub fn lex(source: &str) -> Result<Vec<Spanned>, Vec<Diagnostic>> {
    let mut tokens = Vec::new();
    let mut errors = Vec::new();
    // A byte-order mark at the start is not part of the text (as rustc reads it).
    let skipped = if source.starts_with('\u{FEFF}') {
        '\u{FEFF}'.len_utf8()
    } else {
        0
    };
    let mut lexer = Token::lexer(&source[skipped..]);
    while let Some(result) = lexer.next() {
        let range = lexer.span();
        let range = range.start + skipped..range.end + skipped;
        match result {
            Ok(token) => tokens.push((range.start, token, range.end)),
            // In arithmetic every literal is a real, so an integer too large for an index
            // is still the real it spells; where an integer is required the parser says so.
            Err(LexError::IntTooLarge) => match source[range.clone()].parse::<f64>() {
                Ok(x) if x.is_finite() => tokens.push((range.start, Token::RealLit(x), range.end)),
                _ => errors.push(lex_error(source, range, LexError::RealTooLarge)),
            },
            Err(error) => errors.push(lex_error(source, range, error)),
        }
    }
    if errors.is_empty() {
        Ok(tokens)
    } else {
        Err(errors)
    }
}

/// The diagnostic for one lexical error at `range`.
fn lex_error(source: &str, range: std::ops::Range<usize>, error: LexError) -> Diagnostic {
    let text = source.get(range.clone()).unwrap_or("");
    match error {
        LexError::IntTooLarge => Diagnostic::error(
            Span::new(range.start, range.end),
            format!(
                "integer literal `{text}` is too large (the largest is {})",
                i64::MAX
            ),
        ),
        LexError::RealTooLarge => Diagnostic::error(
            Span::new(range.start, range.end),
            format!("real literal `{text}` is too large to be represented"),
        ),
        LexError::UnexpectedChar => {
            // Point at exactly one whole character, whatever span logos reported.
            let start = range.start.min(source.len());
            let ch = source[start..].chars().next();
            let end = start + ch.map_or(0, char::len_utf8);
            let message = match ch {
                Some('\0') => "unexpected NUL byte".to_string(),
                Some('!') => "unexpected character `!` (did you mean `!=`?)".to_string(),
                Some(';') => {
                    "unexpected character `;` (a statement ends where the next keyword starts: no `;` is needed)"
                        .to_string()
                }
                Some(c) if c.is_control() || c.is_whitespace() => {
                    format!("unexpected character U+{:04X}", c as u32)
                }
                Some('`') => "unexpected character '`'".to_string(),
                Some(c) => format!("unexpected character `{c}`"),
                None => "unexpected end of input".to_string(),
            };
            Diagnostic::error(Span::new(start, end), message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<Token> {
        lex(source)
            .expect("lexes")
            .into_iter()
            .map(|(_, t, _)| t)
            .collect()
    }

    #[test]
    fn a_leading_byte_order_mark_is_skipped_and_spans_stay_on_the_text() {
        let source = "\u{FEFF}param w";
        let tokens = lex(source).expect("lexes");
        assert_eq!(tokens[0].1, Token::Param);
        assert_eq!(&source[tokens[1].0..tokens[1].2], "w");
        // Anywhere else it is still an unexpected character.
        assert!(lex("param \u{FEFF}w").is_err());
    }

    #[test]
    fn literals_follow_the_spec() {
        assert_eq!(
            kinds("3 0 0.5 5. 1e-3 2.5E+4"),
            vec![
                Token::IntLit(3),
                Token::IntLit(0),
                Token::RealLit(0.5),
                Token::RealLit(5.0),
                Token::RealLit(1e-3),
                Token::RealLit(2.5e4),
            ]
        );
    }

    #[test]
    fn transpose_is_dot_then_t() {
        assert_eq!(
            kinds("x.T"),
            vec![
                Token::Ident("x".into()),
                Token::Dot,
                Token::Ident("T".into())
            ]
        );
    }

    #[test]
    fn keywords_are_not_identifiers() {
        assert_eq!(
            kinds("input inputs # comment\nint"),
            vec![Token::Input, Token::Ident("inputs".into()), Token::Int]
        );
    }

    #[test]
    fn errors_cover_whole_characters() {
        let errors = lex("x é\0 1e999").unwrap_err();
        let spans: Vec<Span> = errors.iter().map(|d| d.span).collect();
        assert_eq!(
            spans,
            vec![Span::new(2, 4), Span::new(4, 5), Span::new(6, 11)]
        );
    }
}
