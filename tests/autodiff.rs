//! Reverse mode, checked against central finite differences of the forward function on
//! the reference interpreter: every op at rank 0, 1 and 2 (random points drawn by
//! proptest), broadcasting, indexing, the spec's kinks, and the structure of the
//! gradient function (copied forward, activity analysis, result order).

mod fixtures;

use gradc::data::{bind_tensors, random_point_with, Bound, RealSampling};
use gradc::driver::{compile, Compiled};
use gradc::ir::{self, ArgDecl, ArgRole, BinaryOp, Function, Op, ResultRole, Type, UnaryOp};
use gradc::tensor::{Tensor, TensorData};
use gradc::{autodiff, interp, simplify};
use proptest::prelude::*;

fn compile_ok(source: &str) -> Compiled {
    match compile(source) {
        Ok(compiled) => compiled,
        Err(diagnostics) => panic!("{source}\ndoes not compile: {diagnostics:?}"),
    }
}

fn reals(t: &Tensor) -> Vec<f64> {
    t.as_real().expect("a real tensor").to_vec()
}

/// The loss of `forward` with argument `k` replaced by `value`.
fn loss_with(forward: &Function, point: &Bound, k: usize, value: Vec<f64>) -> f64 {
    let mut args = point.args.clone();
    args[k] = Tensor::real(args[k].shape.clone(), value);
    let results = interp::eval(forward, &point.dims, &args).expect("forward evaluates");
    reals(&results[0])[0]
}

/// Checks the raw and the simplified gradient of `compiled` at `point` against central
/// differences, and that both carry the forward's loss.
fn check_point(compiled: &Compiled, point: &Bound) -> Result<(), String> {
    let forward = &compiled.forward;
    let results = interp::eval(forward, &point.dims, &point.args)?;
    let loss = reals(&results[0])[0];
    for grad in [&compiled.grad_raw, &compiled.grad] {
        ir::verify(grad).map_err(|problems| problems.join("\n"))?;
        let results = interp::eval(grad, &point.dims, &point.args)?;
        let grad_loss = reals(&results[0])[0];
        let same = grad_loss == loss || (grad_loss - loss).abs() <= 1e-12 * (1.0 + loss.abs());
        if !same {
            return Err(format!(
                "loss {grad_loss} differs from the forward's {loss}"
            ));
        }
        for (result, value) in grad.results.iter().zip(&results).skip(1) {
            let ResultRole::Grad(k) = result.role else {
                return Err(format!("result {} is not a gradient", result.name));
            };
            let k = k as usize;
            let x = reals(&point.args[k]);
            let analytic = reals(value);
            for i in 0..x.len() {
                let h = 1e-6 * x[i].abs().max(1.0);
                let mut plus = x.clone();
                plus[i] += h;
                let mut minus = x.clone();
                minus[i] -= h;
                let numeric = (loss_with(forward, point, k, plus)
                    - loss_with(forward, point, k, minus))
                    / (2.0 * h);
                let tolerance = 1e-5 * (1.0 + analytic[i].abs() + numeric.abs());
                // Written so that a NaN on either side fails.
                let close = (analytic[i] - numeric).abs() <= tolerance;
                if !close {
                    return Err(format!(
                        "{}: d loss / d {}[{i}] = {} but finite differences give {numeric}\n{}",
                        grad.name,
                        result.name,
                        analytic[i],
                        ir::print_function(grad)
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Gradient check of `source` at random points drawn by proptest.
fn check_random(source: &str, sampling: RealSampling) {
    let compiled = compile_ok(source);
    let config = ProptestConfig {
        cases: 6,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(seed in any::<u64>())| {
        let point = random_point_with(&compiled.forward, seed, sampling);
        if let Err(message) = check_point(&compiled, &point) {
            return Err(TestCaseError::fail(format!("{source}\n{message}")));
        }
    });
}

const SHAPES: [&str; 3] = ["", ": [N]", ": [M, N]"];

#[test]
fn unary_ops_at_every_rank() {
    let signed = [
        "-x",
        "exp(x)",
        "sin(x)",
        "cos(x)",
        "tanh(x)",
        "sigmoid(x)",
        "relu(x)",
        "softplus(x)",
        "abs(x)",
        "square(x)",
        "x ^ 3",
        "- -x",
    ];
    let positive = [
        "log(x)", "log1p(x)", "sqrt(x)", "x ^ 0.5", "x ^ 1.7", "2 ^ x", "x ^ x",
    ];
    for shape in SHAPES {
        for (list, sampling) in [
            (&signed[..], RealSampling::Signed),
            (&positive[..], RealSampling::Positive),
        ] {
            for expr in list {
                let source = format!("param x{shape}\ninput w{shape}\nloss = sum(({expr}) * w)");
                check_random(&source, sampling);
            }
        }
    }
}

#[test]
fn binary_ops_at_every_rank() {
    let ops = [
        "a + b",
        "a - b",
        "a * b",
        "a / b",
        "maximum(a, b)",
        "minimum(a, b)",
        "pow(a, b)",
        "a * a + b",
        "where(a > b, a * b, b)",
    ];
    for shape in SHAPES {
        for expr in ops {
            let source =
                format!("param a{shape}\nparam b{shape}\ninput w{shape}\nloss = sum(({expr}) * w)");
            check_random(&source, RealSampling::Positive);
        }
    }
}

#[test]
fn broadcasting_in_both_directions() {
    for (a, b) in [
        ("[M, N]", "[N]"),
        ("[M, N]", "[]"),
        ("[M, N]", "[M, 1]"),
        ("[M, N]", "[1, N]"),
        ("[N]", "[]"),
        ("[1, N]", "[M, 1]"),
    ] {
        for op in ["+", "-", "*", "/"] {
            let source =
                format!("param a: {a}\nparam b: {b}\ninput w: [M, N]\nloss = sum((a {op} b) * w)");
            check_random(&source, RealSampling::Positive);
        }
    }
}

#[test]
fn reductions_and_softmax() {
    let cases = [
        ("[M, N]", "sum(x, 0)", "[N]"),
        ("[M, N]", "sum(x, 1)", "[M]"),
        ("[M, N]", "sum(x, -1)", "[M]"),
        ("[M, N]", "sum(x)", ""),
        ("[M, N]", "mean(x, 1)", "[M]"),
        ("[M, N]", "mean(x)", ""),
        ("[M, N]", "max(x, 1)", "[M]"),
        ("[M, N]", "min(x, 0)", "[N]"),
        ("[M, N]", "max(x)", ""),
        ("[N]", "min(x)", ""),
        ("[M, N]", "logsumexp(x, 1)", "[M]"),
        ("[M, N]", "logsumexp(x, 0)", "[N]"),
        ("[M, N]", "logsumexp(x)", ""),
        ("[N]", "logsumexp(x)", ""),
        ("[M, N]", "softmax(x, 1)", "[M, N]"),
        ("[M, N]", "softmax(x, 0)", "[M, N]"),
        ("[N]", "softmax(x)", "[N]"),
        ("[M, N]", "log_softmax(x, 1)", "[M, N]"),
        ("[M, N]", "log_softmax(x, 0)", "[M, N]"),
        ("[N]", "log_softmax(x)", "[N]"),
    ];
    for (shape, expr, result) in cases {
        let weight = if result.is_empty() {
            String::new()
        } else {
            format!(": {result}")
        };
        let source = format!("param x: {shape}\ninput w{weight}\nloss = sum(({expr}) * w)");
        check_random(&source, RealSampling::Signed);
    }
}

#[test]
fn matrix_products_and_shape_ops() {
    let cases = [
        (
            "param a: [M, K]\nparam b: [K, N]\ninput w: [M, N]",
            "(a @ b) * w",
        ),
        ("param a: [M, K]\nparam b: [K]\ninput w: [M]", "(a @ b) * w"),
        ("param a: [K]\nparam b: [K, N]\ninput w: [N]", "(a @ b) * w"),
        ("param a: [K]\nparam b: [K]\ninput w", "(a @ b) * w"),
        ("param a: [K]\nparam b: [K]\ninput w", "dot(a, b) * w"),
        (
            "param a: [M, K]\nparam b: [M, K]\ninput w: [M, M]",
            "(a @ b.T) * w",
        ),
        ("param a: [M, K]\ninput w: [K, M]", "transpose(a) * w"),
        ("param a: [K]\ninput w: [K, M]", "column(a) * w"),
        ("param a: [K]\ninput w: [M, K]", "row(a) * w"),
        ("param a: [K]\ninput w: [K]", "a.T * w"),
    ];
    for (decls, expr) in cases {
        let source = format!("{decls}\nloss = sum({expr})");
        check_random(&source, RealSampling::Signed);
    }
}

#[test]
fn indexing() {
    let cases = [
        (
            "param E: [V, D]\ninput i: int[B]\ninput w: [B, D]",
            "E[i] * w",
        ),
        (
            "param E: [V, D]\ninput i: int[B]\ninput w: [B, D]",
            "(E[i] + E[i]) * w",
        ),
        ("param E: [V, D]\ninput w: [D]", "E[1] * w"),
        ("param e: [V]\ninput i: int[B]\ninput w: [B]", "e[i] * w"),
        ("param e: [V]\ninput i: int\ninput w", "e[i] * w"),
        (
            "param x: [B, K]\ninput l: int[B]\ninput w: [B]",
            "pick(x, l) * w",
        ),
        ("param x: [B, K]\ninput l: int[B]", "onehot(l, K) * x"),
        (
            "param x: [B, K]\ninput l: int[B]",
            "-pick(log_softmax(x, 1), l)",
        ),
        (
            "param W: [D, V]\ninput h: [B, D]\ninput i: int[B]\ninput w: [V]",
            "(h @ W)[i][0] * w",
        ),
    ];
    for (decls, expr) in cases {
        let source = format!("{decls}\nloss = sum({expr})");
        check_random(&source, RealSampling::Signed);
    }
}

/// Binds named real (and int) data to `source`'s gradient and returns the gradients.
fn gradients_at(source: &str, data: Vec<(&str, Tensor)>) -> Vec<f64> {
    let compiled = compile_ok(source);
    let named = data.into_iter().map(|(n, t)| (n.to_string(), t)).collect();
    let point = bind_tensors(&compiled.grad, named).expect("data fits");
    let mut all = Vec::new();
    for grad in [&compiled.grad_raw, &compiled.grad] {
        let results = interp::eval(grad, &point.dims, &point.args).expect("grad evaluates");
        all.push(results[1..].iter().flat_map(reals).collect::<Vec<f64>>());
    }
    assert_eq!(
        all[0], all[1],
        "raw and simplified gradients differ for {source}"
    );
    all.swap_remove(1)
}

#[test]
fn kinks_follow_the_spec() {
    let at = |x: Vec<f64>| vec![("x", Tensor::real(vec![x.len()], x))];
    // relu'(0) = 0 and abs'(0) = 0.
    assert_eq!(
        gradients_at(
            "param x: [N]\nloss = sum(relu(x))",
            at(vec![-1.0, 0.0, 2.0])
        ),
        vec![0.0, 0.0, 1.0]
    );
    assert_eq!(
        gradients_at("param x: [N]\nloss = sum(abs(x))", at(vec![-1.0, 0.0, 2.0])),
        vec![-1.0, 0.0, 1.0]
    );
    // max / min reductions split the gradient among tied elements.
    assert_eq!(
        gradients_at("param x: [N]\nloss = max(x)", at(vec![3.0, 1.0, 3.0])),
        vec![0.5, 0.0, 0.5]
    );
    assert_eq!(
        gradients_at("param x: [N]\nloss = min(x)", at(vec![1.0, 1.0, 1.0, 5.0])),
        vec![1.0 / 3.0; 3]
            .into_iter()
            .chain([0.0])
            .collect::<Vec<_>>()
    );
    let rows = vec![(
        "x",
        Tensor::real(vec![2, 3], vec![1.0, 4.0, 4.0, 2.0, 0.0, 1.0]),
    )];
    assert_eq!(
        gradients_at("param x: [M, N]\nloss = sum(max(x, 1))", rows),
        vec![0.0, 0.5, 0.5, 1.0, 0.0, 0.0]
    );
    // maximum / minimum at a tie: half to each side.
    let pair = |a: f64, b: f64| vec![("a", Tensor::scalar(a)), ("b", Tensor::scalar(b))];
    assert_eq!(
        gradients_at("param a\nparam b\nloss = maximum(a, b)", pair(2.0, 2.0)),
        vec![0.5, 0.5]
    );
    assert_eq!(
        gradients_at("param a\nparam b\nloss = minimum(a, b)", pair(2.0, 2.0)),
        vec![0.5, 0.5]
    );
    assert_eq!(
        gradients_at("param a\nparam b\nloss = maximum(a, b)", pair(3.0, 2.0)),
        vec![1.0, 0.0]
    );
    // maximum(x, x) = x: the two halves add up.
    assert_eq!(
        gradients_at("param a\nparam b\nloss = maximum(a, a) + b", pair(1.0, 0.0)),
        vec![1.0, 1.0]
    );
}

#[test]
fn powers_at_a_zero_base_or_exponent_have_jax_s_finite_gradients() {
    let data = |x: Vec<f64>, w: f64| {
        vec![
            ("x", Tensor::real(vec![x.len()], x)),
            ("w", Tensor::scalar(w)),
        ]
    };
    let source = "param x: [N]\nparam w\nloss = sum(x ^ w)";
    // d/dw 0^w is 0 for w > 0 (not 0 · log 0 = NaN); the rest is x^w · log x.
    let grads = gradients_at(source, data(vec![0.0, 3.0], 2.0));
    assert_eq!(grads[..2], [0.0, 6.0]);
    assert!((grads[2] - 9.0 * 3f64.ln()).abs() < 1e-12, "{grads:?}");
    // d/dx x^0 is 0 (not 0 · 0^-1 = NaN).
    let grads = gradients_at(source, data(vec![0.0, 2.0], 0.0));
    assert_eq!(grads[..2], [0.0, 0.0]);
    assert!((grads[2] - 2f64.ln()).abs() < 1e-15, "{grads:?}");
    // Elsewhere the rule is unchanged: d/dx x^-1 at 0 is -1 · 0^-2 = -inf.
    let at_zero = vec![("x", Tensor::real(vec![1], vec![0.0]))];
    let grads = gradients_at("param x: [N]\nloss = sum(x ^ -1)", at_zero);
    assert_eq!(grads, [f64::NEG_INFINITY]);
    // A constant exponent keeps no trace of the guard once simplified.
    let compiled = compile_ok("param x: [N]\nloss = sum(x ^ 2.5)");
    let text = ir::print_function(&compiled.grad);
    assert!(!text.contains("select"), "{text}");
}

/// A hand-built forward function: `loss = sum(x ^ b * w)` with a constant exponent
/// `b`, an unused param `u` and a data input `w`.
fn hand_built_pow() -> Function {
    let n = ir::Dim::Sym(ir::DimVar(0));
    let decl = |name: &str, role, shape: Vec<ir::Dim>| ArgDecl {
        name: name.to_string(),
        role,
        ty: Type::real(shape),
    };
    let mut func = Function::new(
        "forward",
        vec!["N".to_string()],
        vec![
            decl("x", ArgRole::Param, vec![n]),
            decl("b", ArgRole::Input, vec![]),
            decl("u", ArgRole::Param, vec![n, n]),
            decl("w", ArgRole::Input, vec![n]),
        ],
    );
    let x = func.push(Op::Arg(0));
    let b = func.push(Op::Arg(1));
    let w = func.push(Op::Arg(3));
    let bb = func.push(Op::Broadcast(b, vec![n]));
    let p = func.push(Op::Binary(BinaryOp::Pow, x, bb));
    let pw = func.push(Op::Binary(BinaryOp::Mul, p, w));
    let loss = func.push(Op::Reduce(ir::ReduceOp::Sum, pw, ir::Axes::all(1)));
    func.results.push(ir::FuncResult {
        name: "loss".to_string(),
        role: ResultRole::Loss,
        value: loss,
    });
    func
}

#[test]
fn gradient_function_structure() {
    let forward = hand_built_pow();
    let grad = autodiff::grad(&forward);
    ir::verify(&grad).expect("the gradient verifies");
    assert_eq!(grad.name, "grad");
    assert_eq!((&grad.dims, &grad.args), (&forward.dims, &forward.args));
    assert_eq!(
        &grad.insts[..forward.len()],
        &forward.insts[..],
        "the forward is copied first"
    );
    let roles: Vec<(&str, ResultRole)> = grad
        .results
        .iter()
        .map(|r| (r.name.as_str(), r.role))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("loss", ResultRole::Loss),
            ("x", ResultRole::Grad(0)),
            ("u", ResultRole::Grad(2))
        ]
    );
    // Activity: the exponent is data, so no log(x) (NaN for x < 0) is ever built, and
    // the data input w gets no adjoint work.
    assert!(!grad
        .insts
        .iter()
        .any(|i| matches!(i.op, Op::Unary(UnaryOp::Log, _))));
    // The unused param's gradient is a zero of its shape.
    let simplified = simplify::simplify(&grad);
    let u_grad = simplified.results[2].value;
    assert!(
        matches!(simplified.op(u_grad), Op::Broadcast(z, _) if *simplified.op(*z) == Op::Const(0.0))
    );

    // And the numbers are right, negative bases included.
    let args = vec![
        Tensor::real(vec![3], vec![-1.5, 0.5, 2.0]),
        Tensor::scalar(3.0),
        Tensor::real(vec![3, 3], vec![1.0; 9]),
        Tensor::real(vec![3], vec![1.0, -2.0, 0.5]),
    ];
    let results = interp::eval(&simplified, &[3], &args).expect("evaluates");
    let expected: Vec<f64> = [(-1.5f64, 1.0), (0.5, -2.0), (2.0, 0.5)]
        .iter()
        .map(|(x, w)| 3.0 * x * x * w)
        .collect();
    assert_eq!(reals(&results[1]), expected);
    assert_eq!(results[2].data, TensorData::Real(vec![0.0; 9]));
}

#[test]
fn adjoints_of_shared_values_accumulate() {
    // x is used three times; y = x * x is used twice.
    let source = "param x\nlet y = x * x\nloss = y * y + x";
    let grads = gradients_at(source, vec![("x", Tensor::scalar(1.5))]);
    assert_eq!(grads, vec![4.0 * 1.5f64.powi(3) + 1.0]);
}

/// Every gradient fixture (the bench workloads included), at two random points.
#[test]
fn fixtures_match_finite_differences() {
    let files = fixtures::loss_files("tests/data/grad");
    assert!(files.len() >= 11, "fixtures missing: {files:?}");
    for path in files {
        let source = std::fs::read_to_string(&path).expect("readable");
        let compiled = compile_ok(&source);
        for seed in [1, 2] {
            let point = random_point_with(&compiled.forward, seed, RealSampling::Signed);
            if let Err(message) = check_point(&compiled, &point) {
                panic!("{}: {message}", path.display());
            }
        }
    }
}

#[test]
fn logsumexp_gradients_are_the_softmax_at_any_magnitude() {
    // The gradient is softmax(x). Written as exp(x - logsumexp(x)) alone it drifts as
    // |x| grows (logsumexp rounds to an ulp of x: 2 at 1e16, where it gave 1, not 0.5).
    let source =
        "param x: [N, M]\noutput p = softmax(x, 1)\nloss = sum(logsumexp(x, 1)) + logsumexp(x)\n";
    let model = gradc::Model::from_source(source).expect("compiles");
    let interp = gradc::Model::with_options(
        source,
        gradc::CompileOptions {
            engine: gradc::api::Engine::Interpreter,
            ..Default::default()
        },
    )
    .expect("compiles");
    for scale in [1.0, 1e6, 1e13, 1e16, 1e300] {
        // Row 0 has a tie at the top, row 1 a spread of 1 (well below an ulp of 1e16).
        let rows = [[scale, scale, 0.5 * scale], [scale, scale - 1.0, -scale]];
        let data = serde_json::json!({ "x": rows });
        for m in [&model, &interp] {
            let bound = m.bind_json(&data).expect("binds");
            let softmax = reals(&m.forward(&bound).expect("runs").outputs[0].1);
            let (_, grads) = m.value_and_grad_vec(&bound).expect("runs");
            let grad = reals(&grads[0]);
            // d/dx of the row sums is the row softmax; the whole-array term adds the
            // softmax over all six, which puts its weight on the top values.
            let whole: Vec<f64> = {
                let top = rows.iter().flatten().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = rows.iter().flatten().map(|v| (v - top).exp()).collect();
                let total: f64 = e.iter().sum();
                e.iter().map(|e| e / total).collect()
            };
            for k in 0..6 {
                let expected = softmax[k] + whole[k];
                assert!(
                    (grad[k] - expected).abs() <= 4.0 * f64::EPSILON,
                    "scale {scale}, element {k}: {} against {expected}",
                    grad[k]
                );
            }
        }
    }
}
