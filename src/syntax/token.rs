//! The tokens of the `.loss` language, recognised by a `logos` state machine.
//!
//! In: source text. Out: [`Token`]s (the lexer in [`crate::syntax::lexer`] attaches byte
//! spans). Whitespace and `#` comments are skipped here. Literal values are parsed by
//! callbacks; a literal that does not fit is a [`LexError`], never a panic.

use logos::Logos;

/// Why a piece of the source is not a token.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum LexError {
    /// A character that starts no token (the lexer turns this into a message naming it).
    #[default]
    UnexpectedChar,
    /// An integer literal larger than the largest 64-bit signed integer.
    IntTooLarge,
    /// A real literal too large to be represented (it would be infinite).
    RealTooLarge,
}

/// Parses an integer literal; it must fit in an `i64` (indices are signed 64-bit).
fn int_literal(lex: &mut logos::Lexer<'_, Token>) -> Result<u64, LexError> {
    match lex.slice().parse::<u64>() {
        Ok(n) if n <= i64::MAX as u64 => Ok(n),
        _ => Err(LexError::IntTooLarge),
    }
}

/// Parses a real literal; it must be finite.
fn real_literal(lex: &mut logos::Lexer<'_, Token>) -> Result<f64, LexError> {
    match lex.slice().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(LexError::RealTooLarge),
    }
}

/// A token of the `.loss` language.
///
/// `x.T` is lexed as `x`, `.`, `T`; the grammar accepts only `T` after a `.`. A literal
/// followed directly by `.T` (`5.T`) lexes as the real `5.` and the identifier `T`,
/// which the grammar rejects.
#[derive(Logos, Clone, Debug, PartialEq)]
#[logos(error = LexError)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip(r"#[^\n]*", allow_greedy = true))]
pub enum Token {
    /// `input`
    #[token("input")]
    Input,
    /// `param`
    #[token("param")]
    Param,
    /// `let`
    #[token("let")]
    Let,
    /// `fn`
    #[token("fn")]
    Fn,
    /// `loss`
    #[token("loss")]
    Loss,
    /// `output`
    #[token("output")]
    Output,
    /// `real`
    #[token("real")]
    Real,
    /// `int`
    #[token("int")]
    Int,
    /// An identifier that is not a keyword.
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*", |lex| lex.slice().to_string())]
    Ident(String),
    /// An integer literal: digits only.
    #[regex(r"[0-9]+", int_literal)]
    IntLit(u64),
    /// A real literal: `0.5`, `5.`, `1e-3`, `2.5E+4`.
    #[regex(r"[0-9]+\.[0-9]*([eE][+-]?[0-9]+)?", real_literal)]
    #[regex(r"[0-9]+[eE][+-]?[0-9]+", real_literal)]
    RealLit(f64),
    /// `(`
    #[token("(")]
    LParen,
    /// `)`
    #[token(")")]
    RParen,
    /// `[`
    #[token("[")]
    LBracket,
    /// `]`
    #[token("]")]
    RBracket,
    /// `,`
    #[token(",")]
    Comma,
    /// `:`
    #[token(":")]
    Colon,
    /// `=`
    #[token("=")]
    Assign,
    /// `+`
    #[token("+")]
    Plus,
    /// `-`
    #[token("-")]
    Minus,
    /// `*`
    #[token("*")]
    Star,
    /// `/`
    #[token("/")]
    Slash,
    /// `@`
    #[token("@")]
    At,
    /// `^`
    #[token("^")]
    Caret,
    /// `<`
    #[token("<")]
    Lt,
    /// `<=`
    #[token("<=")]
    Le,
    /// `>`
    #[token(">")]
    Gt,
    /// `>=`
    #[token(">=")]
    Ge,
    /// `==`
    #[token("==")]
    EqEq,
    /// `!=`
    #[token("!=")]
    Ne,
    /// `.`
    #[token(".")]
    Dot,
}

impl Token {
    /// How the token is named in a syntax error: `` `)` ``, `` identifier `x` ``;
    /// `source_text` is the token as written.
    pub fn describe(&self, source_text: &str) -> String {
        match self {
            Token::Ident(_) => format!("identifier `{source_text}`"),
            Token::IntLit(_) | Token::RealLit(_) => format!("number `{source_text}`"),
            Token::Input
            | Token::Param
            | Token::Let
            | Token::Fn
            | Token::Loss
            | Token::Output
            | Token::Real
            | Token::Int => format!("keyword `{source_text}`"),
            other => format!("`{}`", other.text()),
        }
    }

    /// Whether the token is a keyword that starts a statement (and appears nowhere else).
    pub fn starts_statement(&self) -> bool {
        matches!(
            self,
            Token::Input | Token::Param | Token::Let | Token::Fn | Token::Loss | Token::Output
        )
    }

    /// Whether a name or an operand must follow the token, so that a statement keyword
    /// right after it is a keyword misused there (`let loss = ...`, `x = loss`), not
    /// the start of the next statement.
    pub fn needs_what_follows(&self) -> bool {
        matches!(
            self,
            Token::Input
                | Token::Param
                | Token::Let
                | Token::Fn
                | Token::Output
                | Token::Assign
                | Token::LParen
                | Token::LBracket
                | Token::Comma
                | Token::Colon
                | Token::Plus
                | Token::Minus
                | Token::Star
                | Token::Slash
                | Token::At
                | Token::Caret
                | Token::Lt
                | Token::Le
                | Token::Gt
                | Token::Ge
                | Token::EqEq
                | Token::Ne
                | Token::Dot
        )
    }

    /// The fixed text of a keyword or punctuation token (empty for the others).
    pub fn text(&self) -> &'static str {
        match self {
            Token::Input => "input",
            Token::Param => "param",
            Token::Let => "let",
            Token::Fn => "fn",
            Token::Loss => "loss",
            Token::Output => "output",
            Token::Real => "real",
            Token::Int => "int",
            Token::Ident(_) | Token::IntLit(_) | Token::RealLit(_) => "",
            Token::LParen => "(",
            Token::RParen => ")",
            Token::LBracket => "[",
            Token::RBracket => "]",
            Token::Comma => ",",
            Token::Colon => ":",
            Token::Assign => "=",
            Token::Plus => "+",
            Token::Minus => "-",
            Token::Star => "*",
            Token::Slash => "/",
            Token::At => "@",
            Token::Caret => "^",
            Token::Lt => "<",
            Token::Le => "<=",
            Token::Gt => ">",
            Token::Ge => ">=",
            Token::EqEq => "==",
            Token::Ne => "!=",
            Token::Dot => ".",
        }
    }
}
