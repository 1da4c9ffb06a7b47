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

/// Words and punctuation that mutated IR text is made of: op names, types, values that
/// exist and that don't, axes out of range, sizes.
const VOCABULARY: [&str; 36] = [
    "v0",
    "v1",
    "v3",
    "v999",
    "N",
    "B",
    "K",
    "0",
    "1",
    "2",
    "7",
    "255",
    "-1",
    "1e400",
    "NaN",
    "real",
    "int",
    "bool",
    "[",
    "]",
    ",",
    ":",
    "=",
    "axes",
    "axis",
    "to",
    "softmax",
    "sum",
    "matmul",
    "gather",
    "pick",
    "onehot",
    "broadcast",
    "reshape",
    "transpose",
    "scatter_add",
];

#[test]
fn mutated_text_is_read_or_refused_never_a_panic() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    let texts: Vec<String> = ["tests/data/grad", "examples"]
        .iter()
        .flat_map(|dir| fixtures::loss_files(dir))
        .map(|path| {
            let source = std::fs::read_to_string(path).unwrap();
            print_function(&compile(&source).unwrap().grad)
        })
        .collect();
    let config = Config {
        cases: 3000,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let edits = prop::collection::vec((any::<prop::sample::Index>(), 0..VOCABULARY.len()), 1..3);
    let strategy = (0..texts.len(), edits);
    let (read, refused) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    runner
        .run(&strategy, |(text, edits)| {
            // Replace words of the printed text (split on spaces) with vocabulary.
            let mut words: Vec<&str> = texts[text].split(' ').collect();
            for (at, word) in &edits {
                let k = at.index(words.len());
                words[k] = VOCABULARY[*word];
            }
            let mutated = words.join(" ");
            match std::panic::catch_unwind(|| parse_function(&mutated)) {
                Ok(Ok(func)) => {
                    prop_assert_eq!(verify(&func), Ok(()), "{}", mutated);
                    read.set(read.get() + 1);
                }
                Ok(Err(_)) => refused.set(refused.get() + 1),
                Err(_) => prop_assert!(false, "parse_function panicked on\n{}", mutated),
            }
            Ok(())
        })
        .unwrap();
    // Both outcomes occur: the mutations are neither all harmless nor all fatal.
    let (read, refused) = (read.get(), refused.get());
    assert!(read > 0 && refused > 1000, "read {read}, refused {refused}");
}

#[test]
fn ops_that_break_their_typing_rules_are_refused_with_the_line() {
    let header = "func f(x: real[N], M: real[N, K], i: int[B]) {
  v0 = arg x : real[N]
  v1 = arg M : real[N, K]
  v2 = arg i : int[B]
";
    for op in [
        "softmax v0 axis 5 : real[N]",
        "sum v1 axes [7] : real",
        "reshape v1 to [N] : real[N]",
        "broadcast v1 to [N, K, B] : real[N, K, B]",
        "transpose v0 : real[N]",
        "gather v0, v0 : real[N]",
        "onehot v0 depth K : real[N, K]",
        "pick v1, v1 : real[N]",
        "matmul v1, v1 : real[N, K]",
        "const_int 99999999999999999999 : int",
        "select v0, v0, v0 : real[N]",
        "scatter_add v1, v2 rows 0 : real[0, K]",
        "dim 3 : real",
    ] {
        let text = format!("{header}  v3 = {op}\n  return loss = v0\n}}\n");
        let error = parse_function(&text).expect_err(op);
        assert_eq!(error.line, 5, "{op}: {error}");
    }
}
