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

use codespan_reporting::files::SimpleFile;

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

/// The most diagnostics [`render`] prints; past it, one line says how many more there
/// were. A file of thousands of stray characters would otherwise print megabytes that
/// nobody reads (clang stops at 20 errors by default; rustc at none).
pub const MAX_RENDERED: usize = 50;

/// The most characters of a source line a diagnostic shows: a longer line is shown as a
/// window around the span, `...` marking what was cut (as rustc does), so the output of
/// one diagnostic does not grow with the line.
const MAX_LINE_CHARS: usize = 120;

/// How many characters of a cut line are kept before the span's start.
const WINDOW_BEFORE: usize = 40;

/// Renders diagnostics in the spec's form, one block per diagnostic, blocks separated
/// by a blank line:
///
/// ```text
/// mlp.loss:3:9: error: unknown name `z`
///   |
/// 3 | let a = z + 1
///   |         ^
/// ```
///
/// Line and column come from `codespan-reporting` (1-based; the column counts
/// characters). The caret line covers the span on its first line (at least one caret;
/// a span running past the end of its line is cut there). At most [`MAX_RENDERED`]
/// diagnostics are rendered, then a line `error: N more errors not shown` (or warnings,
/// or diagnostics, as the rest are).
pub fn render(path: &str, source: &str, diags: &[Diagnostic]) -> String {
    // One index of line starts for all diagnostics (a file may have thousands).
    let file = SimpleFile::new(path, source);
    let shown = &diags[..diags.len().min(MAX_RENDERED)];
    let mut text = shown
        .iter()
        .map(|diag| render_one(&file, diag))
        .collect::<Vec<String>>()
        .join("\n");
    let rest = &diags[shown.len()..];
    if !rest.is_empty() {
        let errors = rest.iter().filter(|d| d.is_error()).count();
        let (severity, noun) = match (errors, rest.len() - errors) {
            (_, 0) => ("error", if errors == 1 { "error" } else { "errors" }),
            (0, w) => ("warning", if w == 1 { "warning" } else { "warnings" }),
            _ => ("error", "diagnostics"),
        };
        text.push_str(&format!(
            "\n{severity}: {} more {noun} not shown\n",
            rest.len()
        ));
    }
    text
}

/// One diagnostic, ending with a newline.
fn render_one(file: &SimpleFile<&str, &str>, diag: &Diagnostic) -> String {
    use codespan_reporting::files::Files;

    let (path, source) = (*file.name(), *file.source());
    let start = clamp_to_char_boundary(source, diag.span.start as usize);
    let end = clamp_to_char_boundary(source, (diag.span.end as usize).max(start));
    let severity = match diag.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    // `location` and `line_range` cannot fail for an in-bounds, char-aligned index of a
    // `SimpleFile`; fall back to line 1 rather than panic if they ever do.
    let location = file
        .location((), start)
        .unwrap_or(codespan_reporting::files::Location {
            line_number: 1,
            column_number: 1,
        });
    let line_range = file
        .line_index((), start)
        .and_then(|line| file.line_range((), line))
        .unwrap_or(0..source.len());
    let line_text = source[line_range.clone()].trim_end_matches(['\n', '\r']);
    let line_end = line_range.start + line_text.len();
    let (before, covered, after) = (
        &source[line_range.start..start.min(line_end)],
        &source[start.min(line_end)..end.min(line_end)],
        &source[end.min(line_end)..line_end],
    );
    let (before, covered, after, cut_before, cut_after) = window(before, covered, after);

    // Under every character before the span: a space, or a tab under a tab, so the
    // carets line up whatever the terminal's tab width.
    let marker = if cut_before { "..." } else { "" };
    let padding: String = marker
        .chars()
        .chain(before.chars())
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let carets = "^".repeat(covered.chars().count().max(1));

    let line_number = location.line_number.to_string();
    let gutter = " ".repeat(line_number.len());
    // Control characters (a NUL byte...) are shown as U+FFFD, one column each.
    let shown: String = [before, covered, after]
        .concat()
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect();
    let ellipsis = if cut_after { "..." } else { "" };
    let source_line = format!("{line_number} | {marker}{shown}{ellipsis}");
    format!(
        "{path}:{}:{}: {severity}: {}\n{gutter} |\n{}\n{gutter} | {padding}{carets}\n",
        location.line_number,
        location.column_number,
        diag.message,
        source_line.trim_end()
    )
}

/// The parts of a line to show (before the span, the span, after it) when the whole
/// line is longer than [`MAX_LINE_CHARS`], and whether something was cut before and
/// after: at most [`WINDOW_BEFORE`] characters before the span, and the span and what
/// follows up to the limit.
fn window<'a>(
    before: &'a str,
    covered: &'a str,
    after: &'a str,
) -> (&'a str, &'a str, &'a str, bool, bool) {
    let count = |s: &str| s.chars().count();
    if count(before) + count(covered) + count(after) <= MAX_LINE_CHARS {
        return (before, covered, after, false, false);
    }
    let skip = count(before).saturating_sub(WINDOW_BEFORE);
    let before = nth_char_onwards(before, skip);
    let room = MAX_LINE_CHARS.saturating_sub(count(before)).max(1);
    let kept_covered = first_chars(covered, room);
    let room = room.saturating_sub(count(kept_covered));
    let kept_after = first_chars(after, room);
    let cut_after = kept_covered.len() < covered.len() || kept_after.len() < after.len();
    (before, kept_covered, kept_after, skip > 0, cut_after)
}

/// `text` from its `n`th character on.
fn nth_char_onwards(text: &str, n: usize) -> &str {
    text.char_indices().nth(n).map_or("", |(i, _)| &text[i..])
}

/// The first `n` characters of `text`.
fn first_chars(text: &str, n: usize) -> &str {
    text.char_indices().nth(n).map_or(text, |(i, _)| &text[..i])
}

/// The largest char boundary of `source` at or before `index` (and within the source).
fn clamp_to_char_boundary(source: &str, index: usize) -> usize {
    let mut index = index.min(source.len());
    while !source.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_error(source: &str, start: usize, end: usize) -> String {
        render(
            "f.loss",
            source,
            &[Diagnostic::error(Span::new(start, end), "boom")],
        )
    }

    #[test]
    fn points_at_the_span() {
        assert_eq!(
            render_error("input x\nlet a = z + 1\n", 16, 17),
            "f.loss:2:9: error: boom\n  |\n2 | let a = z + 1\n  |         ^\n"
        );
    }

    #[test]
    fn columns_count_characters() {
        let source = "# é€\nlet a = z";
        let at = source.find('z').unwrap();
        let text = render_error(source, at, at + 1);
        assert!(text.starts_with("f.loss:2:9: error: boom\n"), "{text}");
        let source = "let é = z";
        let at = source.find('z').unwrap();
        let text = render_error(source, at, at + 1);
        assert!(text.starts_with("f.loss:1:9:"), "{text}");
        assert!(text.ends_with("\n  |         ^\n"), "{text}");
    }

    #[test]
    fn span_is_cut_at_line_end() {
        let text = render_error("let a = b +\n c", 8, 15);
        assert!(
            text.ends_with("1 | let a = b +\n  |         ^^^\n"),
            "{text}"
        );
    }

    #[test]
    fn end_of_file_and_empty_file() {
        assert_eq!(
            render_error("", 0, 0),
            "f.loss:1:1: error: boom\n  |\n1 |\n  | ^\n"
        );
        let text = render_error("input x", 7, 7);
        assert_eq!(
            text,
            "f.loss:1:8: error: boom\n  |\n1 | input x\n  |        ^\n"
        );
        // Out-of-range spans are clamped, never a panic.
        let text = render_error("ab", 10, 20);
        assert!(text.starts_with("f.loss:1:3:"), "{text}");
    }

    #[test]
    fn tabs_are_kept_under_tabs() {
        let text = render_error("\tlet a = z", 9, 10);
        assert!(text.ends_with("| \t        ^\n"), "{text:?}");
    }

    #[test]
    fn a_long_line_is_shown_as_a_window_around_the_span() {
        let source = format!("loss = {}z{}", "a+".repeat(200), "+b".repeat(200));
        let at = source.find('z').unwrap();
        let text = render_error(&source, at, at + 1);
        let lines: Vec<&str> = text.lines().collect();
        // The location still counts every character.
        assert!(
            lines[0].starts_with(&format!("f.loss:1:{}:", at + 1)),
            "{text}"
        );
        assert!(
            lines[2].starts_with("1 | ...") && lines[2].ends_with("..."),
            "{text}"
        );
        assert!(lines[2].chars().count() <= MAX_LINE_CHARS + 12, "{text}");
        // The caret is still under the `z`.
        let caret = lines[3].find('^').unwrap();
        assert_eq!(lines[2][caret..].chars().next(), Some('z'), "{text}");
        // A short line is shown whole.
        assert!(!render_error("loss = z", 7, 8).contains("..."));
    }

    #[test]
    fn past_the_limit_the_rest_is_counted_not_shown() {
        let source = "$".repeat(MAX_RENDERED + 7);
        let diags: Vec<Diagnostic> = (0..source.len())
            .map(|i| Diagnostic::error(Span::new(i, i + 1), "boom"))
            .collect();
        let text = render("f.loss", &source, &diags);
        assert_eq!(text.matches(": error: boom").count(), MAX_RENDERED);
        assert!(
            text.ends_with("\nerror: 7 more errors not shown\n"),
            "{text}"
        );
        let warnings: Vec<Diagnostic> = (0..MAX_RENDERED + 1)
            .map(|i| Diagnostic::warning(Span::new(i, i + 1), "hm"))
            .collect();
        let text = render("f.loss", &source, &warnings);
        assert!(
            text.ends_with("\nwarning: 1 more warning not shown\n"),
            "{text}"
        );
    }
}
