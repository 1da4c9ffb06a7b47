//! The IR's one text form reads back: every function the pipeline makes from every
//! fixture and example (forward, gradient from reverse mode, simplified gradient) prints,
//! parses back to the same function, and passes the verifier.

mod fixtures;

use gradc::driver::compile;
use gradc::ir::{parse_function, print_function, verify};

#[test]
fn every_function_of_every_fixture_reads_back_as_itself() {
    let files: Vec<_> = ["tests/data/ok", "tests/data/grad", "examples"]
        .iter()
        .flat_map(|dir| fixtures::loss_files(dir))
        .collect();
    assert!(files.len() > 40, "found only {} files", files.len());
    let mut functions = 0;
    for path in &files {
        let source = std::fs::read_to_string(path).unwrap();
        let compiled = compile(&source).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        for func in [&compiled.forward, &compiled.grad_raw, &compiled.grad] {
            let text = print_function(func);
            let parsed =
                parse_function(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
            assert_eq!(verify(&parsed), Ok(()), "{}", path.display());
            assert_eq!(&parsed, func, "{}:\n{text}", path.display());
            functions += 1;
        }
    }
    assert_eq!(functions, 3 * files.len());
}
