//! The `--emit grad` equations: snapshots for every gradient fixture (and of the
//! gradient IR for the lecture examples), and a semantic check: the equations, pasted
//! back into the `.loss` file as `let`s and `output`s, compute the same numbers as the
//! gradient function.

mod fixtures;

use gradc::data::{random_point_with, RealSampling};
use gradc::driver::{compile, Compiled};
use gradc::equations::equations;
use gradc::interp;

fn fixtures() -> Vec<(String, String)> {
    fixtures::loss_files("tests/data/grad")
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("readable"))
        })
        .collect()
}

fn compile_ok(name: &str, source: &str) -> Compiled {
    compile(source).unwrap_or_else(|d| panic!("{name}: {d:?}"))
}

#[test]
fn snapshots() {
    for (name, source) in fixtures() {
        let compiled = compile_ok(&name, &source);
        let text = equations(&compiled.grad);
        assert_eq!(text, equations(&compiled.grad), "{name}: not deterministic");
        insta::assert_snapshot!(format!("equations_{name}"), text);
        if ["neuron", "softmax_ce", "tanh_layer"].contains(&name.as_str()) {
            insta::assert_snapshot!(format!("grad_ir_{name}"), compiled.grad_ir_text());
        }
    }
}

/// The equations of `source` as `.loss` statements: `let`s as they are, each
/// `d loss / d P = E` as `output grad_P = E`.
fn as_statements(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("d loss / d ") {
            Some(rest) => {
                let (param, expr) = rest.split_once(" = ").expect("an equation");
                format!("output grad_{param} = {expr}\n")
            }
            None => format!("{line}\n"),
        })
        .collect()
}

/// `broadcast(E, [D1, D2])` (not a function of the language) as `(E + 0 * A)`, where
/// `A` is an input or param of the fixture declared with shape `[D1, D2]`.
fn explicit_broadcasts(text: &str, source: &str) -> String {
    let Some(start) = text.find("broadcast(") else {
        return text.to_string();
    };
    let open = start + "broadcast".len();
    let mut depth = 0;
    let close = text[open..]
        .char_indices()
        .find_map(|(i, c)| {
            match c {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(open + i)
        })
        .expect("balanced parentheses");
    let inner = &text[open + 1..close];
    let (expr, dims) = inner.rsplit_once(", [").expect("broadcast(E, [dims])");
    let shape = format!(": [{}", dims);
    let name = source
        .lines()
        .filter_map(|l| l.strip_prefix("input ").or(l.strip_prefix("param ")))
        .find(|decl| decl.ends_with(&shape))
        .and_then(|decl| decl.split(':').next())
        .unwrap_or_else(|| panic!("no input or param of shape [{dims} in the fixture"))
        .trim();
    format!(
        "{}({} + 0 * {name}){}",
        &text[..start],
        explicit_broadcasts(expr, source),
        explicit_broadcasts(&text[close + 1..], source)
    )
}

#[test]
fn equations_compute_the_gradient() {
    for (name, source) in fixtures() {
        assert_equations_compute_the_gradient(&name, &source);
    }
}

/// Pastes the equations of `source` back into it and checks that they compute the
/// gradient function's numbers at two random points.
fn assert_equations_compute_the_gradient(name: &str, source: &str) {
    let compiled = compile_ok(name, source);
    let text = equations(&compiled.grad);
    if text.contains("scatter_add") {
        // Not a function of the language: nothing to paste back.
        return;
    }
    let program = format!(
        "{source}\n{}",
        as_statements(&explicit_broadcasts(&text, source))
    );
    let pasted = compile(&program).unwrap_or_else(|d| panic!("{name}:\n{program}\n{d:?}"));
    for seed in [3, 4] {
        let point = random_point_with(&compiled.forward, seed, RealSampling::Signed);
        let grads = interp::eval(&compiled.grad, &point.dims, &point.args).expect("grad");
        let outputs = interp::eval(&pasted.forward, &point.dims, &point.args).expect("pasted");
        // Results: loss first, then the gradients / the pasted outputs in order.
        for (k, (grad, output)) in grads.iter().zip(&outputs).enumerate().skip(1) {
            let (grad, output) = (grad.as_real().unwrap(), output.as_real().unwrap());
            for (i, g) in grad.iter().enumerate() {
                // A scalar output (such as `0`) stands for every element.
                let o = output[if output.len() == 1 { 0 } else { i }];
                assert!(
                    (g - o).abs() <= 1e-9 * (1.0 + g.abs()),
                    "{name}: gradient {k} element {i}: {g} from the IR, {o} from\n{text}"
                );
            }
        }
    }
}

#[test]
fn deep_gradients_are_cut_into_lets_and_still_compute_the_gradient() {
    // x * (x + 1 * (x + 1 * (...))): 2000 single-use levels in the gradient.
    let levels = 2000;
    let source = format!(
        "param x\nloss = x{}{}",
        " * (x + 1".repeat(levels),
        ")".repeat(levels)
    );
    let text = equations(&compile_ok("nested", &source).grad);
    let (mut depth, mut deepest) = (0i32, 0i32);
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        deepest = deepest.max(depth);
    }
    // Inlined 2000 deep, the text would copy each level once per level above it.
    assert!(deepest <= 40, "parentheses {deepest} deep");
    assert!(text.lines().count() > levels / 40, "{text}");
    assert_equations_compute_the_gradient("nested", &source);
}

#[test]
fn zero_gradient_and_precedence() {
    let compiled = compile_ok(
        "zero",
        "param a\nparam u: [N]\ninput x: [N]\nloss = sum((a - x) ^ 3 / (x - -a))",
    );
    let text = equations(&compiled.grad);
    assert!(text.ends_with("d loss / d u = 0\n"), "{text}");
    insta::assert_snapshot!("equations_precedence", text);
}
