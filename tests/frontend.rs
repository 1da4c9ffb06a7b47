//! Front-end tests: every `tests/data/ok/*.loss` fixture parses, checks and lowers to a
//! verified forward IR, snapshot-tested as printed text; malformed, huge and deeply
//! nested inputs give a clean result or error, never a panic or a stack overflow.

mod fixtures;

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
    let paths = fixtures::loss_files("tests/data/ok");
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

/// Compiles `source` through the whole driver; it must return (Ok or Err), and an
/// error must come with at least one error diagnostic.
fn compile_cleanly(source: &str) -> Result<driver::Compiled, Vec<gradc::Diagnostic>> {
    let result = driver::compile(source);
    if let Err(diags) = &result {
        assert!(diags.iter().any(gradc::Diagnostic::is_error));
        // Rendering must not panic either.
        let text = diag::render("robust.loss", source, diags);
        assert!(text.contains("robust.loss:"));
    }
    result
}

#[test]
fn deep_parentheses() {
    let depth = 100_000;
    let source = format!(
        "param x\nloss = {}x{}\n",
        "(".repeat(depth),
        ")".repeat(depth)
    );
    let compiled = compile_cleanly(&source).expect("deep parentheses compile");
    assert_eq!(compiled.forward_raw.results.len(), 1);
}

#[test]
fn deep_negation() {
    let depth = 100_000;
    let source = format!(
        "param x\nloss = {}x{}\n",
        "-(".repeat(depth),
        ")".repeat(depth)
    );
    let compiled = compile_cleanly(&source).expect("deep negation compiles");
    // One neg per level, plus the argument.
    assert_eq!(compiled.forward_raw.insts.len(), depth + 1);
    let source = format!("param x\nloss = {}x\n", "- ".repeat(depth));
    compile_cleanly(&source).expect("a long chain of unary minus compiles");
}

#[test]
fn deep_input_compiles_and_prints_on_a_small_stack() {
    // The recursive stages grow their stack as they go: no thread of their own needed.
    let depth = 20_000;
    let source = format!(
        "param x\nloss = {}x{}\n",
        "sin(".repeat(depth),
        ")".repeat(depth)
    );
    let worker = std::thread::Builder::new()
        .stack_size(128 << 10)
        .spawn(move || {
            let compiled = compile_cleanly(&source).expect("deep sin chain compiles");
            assert_eq!(compiled.ast_text().matches("(sin ").count(), depth);
            // d loss / d x = cos(sin(...)) * ... * cos(x): one cosine per level.
            assert_eq!(compiled.grad_equations().matches("cos(").count(), depth);
        })
        .expect("spawns");
    worker.join().expect("no stack overflow");
}

#[test]
fn deep_unbalanced_nesting_is_a_clean_error() {
    let source = format!("param x\nloss = {}x\n", "(".repeat(100_000));
    let diags = compile_cleanly(&source).expect_err("unbalanced");
    assert!(diags[0].message.contains("found end of file"), "{diags:?}");
}

#[test]
fn long_sum() {
    let terms = 200_000;
    let source = format!("param x\nloss = {}\n", vec!["x"; terms].join(" + "));
    let compiled = compile_cleanly(&source).expect("a long sum compiles");
    assert_eq!(compiled.forward_raw.insts.len(), terms);
}

#[test]
fn long_fn_call_chain() {
    let source = format!(
        "param x\nfn f(a) = a * 2\nloss = {}x{}\n",
        "f(".repeat(50_000),
        ")".repeat(50_000)
    );
    compile_cleanly(&source).expect("a long chain of calls compiles");
}

#[test]
fn exponential_inlining_is_bounded() {
    // f_k calls f_{k-1} twice: 2^40 inlined bodies. This must stop with an error.
    let mut source = String::from("param x\nfn f0(a) = a + 1\n");
    for k in 1..=40 {
        source.push_str(&format!("fn f{k}(a) = f{}(a) * f{}(a)\n", k - 1, k - 1));
    }
    source.push_str("let y = x + 1\nloss = y + f40(x)\n");
    let diags = compile_cleanly(&source).expect_err("too large");
    // Said once, at the call in the statement (which the user can change), not at the
    // place inside the fn bodies where the count happened to run out.
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(
        diags[0].message,
        "program too large: inlining this call of fn `f40` gives more than 3000000 expressions"
    );
    assert_eq!(
        &source[diags[0].span.start as usize..diags[0].span.end as usize],
        "f40(x)"
    );
}

#[test]
fn degenerate_inputs() {
    for source in [
        "",
        " \n\t\n",
        "# only a comment",
        "\0",
        "param x\0\nloss = x",
        "loss",
        "loss =",
        "(((",
        ")))",
        "param x loss = x",
        "param \u{1F600}",
        "loss = 1e400",
        "input x: [99999999999999999999999]",
        "loss = x[",
        "fn f(",
        "input x: [[]]",
    ] {
        let _ = compile_cleanly(source);
    }
}

#[test]
fn invalid_utf8_is_the_callers_problem() {
    // `parse` takes `&str`; a caller with bytes decodes them first, lossily or with an
    // error. A lossy decode gives U+FFFD, which is a clean lexical error.
    let bytes = b"param x\nloss = x \xff\n";
    let text = String::from_utf8_lossy(bytes);
    let diags = compile_cleanly(&text).expect_err("replacement character");
    assert!(diags[0].message.contains('\u{FFFD}'), "{diags:?}");
}

mod random_programs {
    //! Random well-formed expressions over a fixed set of declarations: the checker
    //! either rejects them with an error or accepts them, and then lowering must
    //! produce IR that verifies (lowering panics on an ill-typed op, so a checker that
    //! accepts too much fails here).

    use proptest::prelude::*;

    const HEADER: &str = "input x: [N, M]\ninput v: [M]\ninput i: int[N]\ninput k: int\n\
                          param W: [M, M]\nparam b\nparam c: [N, 1]\nparam u: [1]\n";

    fn expression() -> impl Strategy<Value = String> {
        let leaf = prop::sample::select(vec![
            "x", "v", "i", "k", "W", "b", "c", "u", "1", "0.5", "N", "pi", "3",
        ])
        .prop_map(str::to_string);
        leaf.prop_recursive(5, 40, 3, |inner| {
            let unary = (
                prop::sample::select(vec![
                    "-{}",
                    "exp({})",
                    "sum({})",
                    "sum({}, 0)",
                    "mean({}, -1)",
                    "max({}, 1)",
                    "logsumexp({})",
                    "softmax({})",
                    "log_softmax({}, 1)",
                    "({}).T",
                    "column({})",
                    "row({})",
                    "({})[i]",
                    "({})[k]",
                    "({})[0]",
                    "pick({}, i)",
                    "onehot({}, M)",
                    "square({})",
                ]),
                inner.clone(),
            )
                .prop_map(|(template, e)| template.replace("{}", &e));
            let binary = (
                prop::sample::select(vec![
                    "({}) + ({})",
                    "({}) - ({})",
                    "({}) * ({})",
                    "({}) / ({})",
                    "({}) @ ({})",
                    "({}) ^ ({})",
                    "dot({}, {})",
                    "maximum({}, {})",
                    "where(({}) > 0, {}, 1)",
                    "where({} == {}, x, 0)",
                ]),
                inner.clone(),
                inner,
            )
                .prop_map(|(template, a, b)| template.replacen("{}", &a, 1).replacen("{}", &b, 1));
            prop_oneof![unary, binary]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]
        #[test]
        fn checked_programs_lower_to_verified_ir(e in expression(), reduce in any::<bool>()) {
            let loss = if reduce { format!("sum({e})") } else { e.clone() };
            let source = format!("{HEADER}output o = {e}\nloss = {loss}\n");
            let file = gradc::syntax::parse(&source).expect("generated programs parse");
            let (checked, diags) = gradc::check::check(&file);
            match checked {
                None => prop_assert!(diags.iter().any(gradc::Diagnostic::is_error)),
                Some(checked) => {
                    prop_assert!(!diags.iter().any(gradc::Diagnostic::is_error));
                    let func = gradc::lower::lower(&checked);
                    let verified = gradc::ir::verify(&func);
                    prop_assert!(verified.is_ok(), "{source}\n{verified:?}");
                }
            }
        }
    }
}

#[test]
fn a_model_that_does_not_compile_prints_its_errors_as_gradc_check_does() {
    let path = std::env::temp_dir().join(format!("gradc_frontend_{}.loss", std::process::id()));
    let source = "param w: [N]\nlet a = z + 1\nloss = sum(sofmax(w))\n";
    std::fs::write(&path, source).expect("writes");
    let error = gradc::Model::from_file(&path).expect_err("two errors");
    std::fs::remove_file(&path).ok();
    let gradc::ModelError::Compile(errors) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(errors.diagnostics.len(), 2);
    let shown = path.display().to_string();
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "the model does not compile:\n{shown}:2:9: error: unknown name `z`\n"
        )),
        "{message}"
    );
    assert!(message.contains(&format!("{shown}:3:12: error: unknown function `sofmax`")));
    assert!(
        message.contains("3 | loss = sum(sofmax(w))\n  |            ^^^^^^"),
        "{message}"
    );
    // From a string, the file is `<source>`.
    let error = gradc::Model::from_source("param w\nloss = w +").expect_err("syntax");
    assert!(
        error
            .to_string()
            .contains("<source>:2:11: error: expected an expression"),
        "{error}"
    );
}

/// Sizes at which the checker's old name searches (a list per name, an edit distance per
/// known name and unknown use, a quadratic duplicate check) took from seconds to minutes;
/// each now takes time linear in the file.
#[test]
fn many_names_many_parameters_and_long_names_check_in_linear_time() {
    // A fn of 30,000 parameters, called.
    let n = 30_000;
    let params: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
    let body: Vec<&str> = params.iter().step_by(7).map(String::as_str).collect();
    let source = format!(
        "param w\nfn f({}) = {}\nloss = f({})\n",
        params.join(", "),
        body.join(" + "),
        vec!["w"; n].join(", ")
    );
    compile_cleanly(&source).expect("a fn of many parameters compiles");
    // A parameter declared twice among them is still found.
    let twice = source.replacen("a29999)", "a7)", 1);
    let diags = compile_cleanly(&twice).expect_err("a parameter twice");
    assert!(
        diags[0]
            .message
            .contains("parameter `a7` is declared twice"),
        "{diags:?}"
    );
    // 5,000 uses of one misspelt name among 5,000 others: each is reported, with the
    // guess made once.
    let mut source = String::from("param weights\n");
    for i in 0..5_000 {
        source.push_str(&format!("let b{i} = weights\n"));
    }
    source.push_str(&format!("loss = {}\n", vec!["weigths"; 5_000].join(" + ")));
    let diags = compile_cleanly(&source).expect_err("unknown names");
    assert_eq!(diags.len(), 5_000);
    assert!(diags
        .iter()
        .all(|d| d.message == "unknown name `weigths` (did you mean `weights`?)"));
    // 5,000 different unknown names: past the budget of comparisons, no more guesses.
    let mut source = String::from("param w\n");
    for i in 0..5_000 {
        source.push_str(&format!("let item{i} = w\n"));
    }
    let unknown: Vec<String> = (0..5_000).map(|i| format!("itme{i}")).collect();
    source.push_str(&format!("loss = {}\n", unknown.join(" + ")));
    let diags = compile_cleanly(&source).expect_err("unknown names");
    assert_eq!(diags.len(), 5_000);
    assert!(
        diags[0].message.ends_with("(did you mean `item0`?)"),
        "{:?}",
        diags[0]
    );
    assert!(
        !diags[4_999].message.contains("did you mean"),
        "{:?}",
        diags[4_999]
    );
    // A misspelt name of 20,000 letters gets no guess.
    let long = "a".repeat(20_000);
    let source = format!("param {long}\nloss = {}\n", &long[1..]);
    let diags = compile_cleanly(&source).expect_err("unknown name");
    assert!(
        !diags[0].message.contains("did you mean"),
        "{:?}",
        diags[0].message.len()
    );
}
