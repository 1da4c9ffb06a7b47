//! Spans and diagnostics.
//!
//! In: byte spans attached to AST nodes and errors by every front-end stage.
//! Out: `Diagnostic` values, collected by the stages and rendered only at the edge
//! (the CLI, or a test) in the spec's form:
//!
//! ```text
//! FILE:LINE:COL: error: MESSAGE
//!   LINE | source line
//!        |     ^^^^^
//! ```
//!
//! LINE and COL are 1-based and COL counts characters, not bytes.

/// A half-open byte range `start..end` in the source text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    /// First byte of the range.
    pub start: u32,
    /// One past the last byte of the range.
    pub end: u32,
}

impl Span {
    /// The span `start..end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The file is rejected; the command exits with status 1.
    Error,
    /// Reported, but does not change the exit status.
    Warning,
}

/// One problem found in a `.loss` file, with the span it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The message, without location or severity (`unknown name \`z\``).
    pub message: String,
    /// The offending source range; the caret goes under it.
    pub span: Span,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span,
        }
    }

    /// A warning at `span`.
    pub fn warning(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            message: message.into(),
            span,
        }
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}
