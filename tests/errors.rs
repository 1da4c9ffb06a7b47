//! Error tests: every `tests/data/err/*.loss` fixture is rejected, and its rendered
//! diagnostics (spec §4 form, path relative to the crate) are snapshot-tested.

mod fixtures;

use gradc::diag::{self, Diagnostic};

/// Runs the front end on `source` and returns its diagnostics; the fixture must be
/// rejected with at least one error.
fn diagnostics(path: &str, source: &str) -> Vec<Diagnostic> {
    let diags = match gradc::syntax::parse(source) {
        Err(diags) => diags,
        Ok(file) => gradc::check::check(&file).1,
    };
    assert!(
        diags.iter().any(Diagnostic::is_error),
        "{path} was accepted:\n{}",
        diag::render(path, source, &diags)
    );
    diags
}

#[test]
fn err_fixtures() {
    let paths = fixtures::loss_files("tests/data/err");
    assert!(!paths.is_empty());
    for path in paths {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let rel = format!("tests/data/err/{name}.loss");
        let bytes = std::fs::read(&path).unwrap();
        let source = String::from_utf8(bytes).expect("fixtures are UTF-8");
        let rendered = diag::render(&rel, &source, &diagnostics(&rel, &source));
        insta::with_settings!({ omit_expression => true }, {
            insta::assert_snapshot!(format!("err__{name}"), rendered);
        });
    }
}
