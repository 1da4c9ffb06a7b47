//! The finite-difference gradient check on hand-built functions with hand-derived
//! gradient functions: correct gradients pass, deliberately wrong ones fail, and kinks
//! near the point do not cause false failures.

mod fixtures;

use gradc::data::{random_point, Bound};
use gradc::gradcheck::{
    gradcheck, gradcheck_random, gradcheck_with, GradcheckOptions, DEFAULT_TOLERANCE,
};
use gradc::interp;
use gradc::ir::{
    ArgDecl, ArgRole, Axes, BinaryOp, CmpOp, Dim, DimVar, Elem, FuncResult, Function, Op, ReduceOp,
    ResultRole, Type, UnaryOp, Value,
};
use gradc::Tensor;

const B: Dim = Dim::Sym(DimVar(0));
const D: Dim = Dim::Sym(DimVar(1));
const H: Dim = Dim::Sym(DimVar(2));

fn run(func: &Function, bound: &Bound) -> Result<Vec<Tensor>, String> {
    interp::eval(func, &bound.dims, &bound.args)
}

fn arg(name: &str, role: ArgRole, elem: Elem, shape: Vec<Dim>) -> ArgDecl {
    ArgDecl {
        name: name.into(),
        role,
        ty: Type { elem, shape },
    }
}

fn result(name: &str, role: ResultRole, value: Value) -> FuncResult {
    FuncResult {
        name: name.into(),
        role,
        value,
    }
}

/// How the hand-derived gradient of [`tanh_layer`] is broken, if at all.
#[derive(Clone, Copy, PartialEq)]
enum Bug {
    None,
    /// dL/dz forgets the tanh derivative `1 − t²`.
    MissingTanhDerivative,
    /// dL/db has the wrong sign.
    BiasSign,
}

/// `loss = sum(tanh(x @ W + b)^2)` with `x: [B, D]`, `W: [D, H]`, `b: [H]`, and its
/// gradient function derived by hand:
/// `dz = 2t(1 − t²)`, `dW = xᵀ @ dz`, `db = sum(dz, 0)`.
fn tanh_layer(bug: Bug) -> (Function, Function) {
    let args = vec![
        arg("x", ArgRole::Input, Elem::Real, vec![B, D]),
        arg("W", ArgRole::Param, Elem::Real, vec![D, H]),
        arg("b", ArgRole::Param, Elem::Real, vec![H]),
    ];
    let dims = vec!["B".into(), "D".into(), "H".into()];
    let build_forward = |func: &mut Function| {
        let x = func.push(Op::Arg(0));
        let w = func.push(Op::Arg(1));
        let b = func.push(Op::Arg(2));
        let xw = func.push(Op::MatMul(x, w));
        let b_wide = func.push(Op::Broadcast(b, vec![B, H]));
        let z = func.push(Op::Binary(BinaryOp::Add, xw, b_wide));
        let t = func.push(Op::Unary(UnaryOp::Tanh, z));
        let t2 = func.push(Op::Unary(UnaryOp::Square, t));
        let loss = func.push(Op::Reduce(ReduceOp::Sum, t2, Axes(3)));
        (x, t, loss)
    };
    let mut forward = Function::new("forward", dims.clone(), args.clone());
    let (_, _, loss) = build_forward(&mut forward);
    forward.results.push(result("loss", ResultRole::Loss, loss));

    let mut grad = Function::new("grad", dims, args);
    let (x, t, loss) = build_forward(&mut grad);
    let two = grad.push(Op::Const(2.0));
    let two_wide = grad.push(Op::Broadcast(two, vec![B, H]));
    let dt = grad.push(Op::Binary(BinaryOp::Mul, two_wide, t));
    let dz = if bug == Bug::MissingTanhDerivative {
        dt
    } else {
        let one = grad.push(Op::Const(1.0));
        let one_wide = grad.push(Op::Broadcast(one, vec![B, H]));
        let t2 = grad.push(Op::Unary(UnaryOp::Square, t));
        let slope = grad.push(Op::Binary(BinaryOp::Sub, one_wide, t2));
        grad.push(Op::Binary(BinaryOp::Mul, dt, slope))
    };
    let xt = grad.push(Op::Transpose(x));
    let dw = grad.push(Op::MatMul(xt, dz));
    let mut db = grad.push(Op::Reduce(ReduceOp::Sum, dz, Axes(1)));
    if bug == Bug::BiasSign {
        db = grad.push(Op::Unary(UnaryOp::Neg, db));
    }
    grad.results = vec![
        result("loss", ResultRole::Loss, loss),
        result("W", ResultRole::Grad(1), dw),
        result("b", ResultRole::Grad(2), db),
    ];
    (forward, grad)
}

#[test]
fn a_correct_gradient_passes_with_tiny_errors() {
    let (forward, grad) = tanh_layer(Bug::None);
    for seed in 0..10 {
        let point = random_point(&forward, seed);
        let report = gradcheck(&forward, &grad, &point, run).unwrap();
        assert!(report.passed(DEFAULT_TOLERANCE), "seed {seed}:\n{report}");
        assert!(report.worst_error() < 1e-6, "seed {seed}:\n{report}");
        for row in &report.params {
            assert_eq!(row.checked, row.len(), "small params are checked entirely");
            assert_eq!(row.nonsmooth, 0);
        }
    }
}

#[test]
fn a_missing_chain_rule_factor_fails_on_both_params() {
    let (forward, grad) = tanh_layer(Bug::MissingTanhDerivative);
    let point = random_point(&forward, 3);
    let report = gradcheck(&forward, &grad, &point, run).unwrap();
    assert!(!report.passed(DEFAULT_TOLERANCE), "{report}");
    for row in &report.params {
        assert!(row.worst_error > 1e-2, "{}: {}", row.name, row.worst_error);
        assert!(row.worst_at.is_some());
    }
}

#[test]
fn a_sign_error_fails_on_that_param_only() {
    let (forward, grad) = tanh_layer(Bug::BiasSign);
    let point = random_point(&forward, 5);
    let report = gradcheck(&forward, &grad, &point, run).unwrap();
    let by_name = |name: &str| report.params.iter().find(|p| p.name == name).unwrap();
    assert!(by_name("W").worst_error < 1e-6, "{report}");
    // A sign error gives |g − fd| = 2|g|, i.e. an error of 2.
    assert!((by_name("b").worst_error - 2.0).abs() < 1e-6, "{report}");
    assert!(!report.passed(DEFAULT_TOLERANCE));
    let text = report.to_string();
    assert!(text.contains('W') && text.contains('b'), "{text}");
}

#[test]
fn large_params_are_sampled_and_the_report_says_how_many() {
    let (forward, grad) = tanh_layer(Bug::None);
    let point = Bound {
        dims: vec![3, 20, 10],
        ..random_point(&forward, 1)
    };
    // Rebuild the arguments for the larger sizes.
    let point = {
        let mut p = point;
        p.args = vec![
            Tensor::real(
                vec![3, 20],
                (0..60).map(|k| (k as f64 * 0.37).sin()).collect(),
            ),
            Tensor::real(
                vec![20, 10],
                (0..200).map(|k| (k as f64 * 0.11).cos() * 0.3).collect(),
            ),
            Tensor::real(vec![10], (0..10).map(|k| k as f64 * 0.05).collect()),
        ];
        p
    };
    let options = GradcheckOptions {
        max_elements: 16,
        seed: 9,
        ..GradcheckOptions::default()
    };
    let report = gradcheck_with(&forward, &grad, &point, run, options).unwrap();
    assert_eq!(report.params[0].checked, 16);
    assert_eq!(report.params[0].len(), 200);
    assert_eq!(report.params[1].checked, 10);
    assert!(report.passed(DEFAULT_TOLERANCE), "{report}");
    assert!(report.to_string().contains("16/200"), "{report}");
}

/// `loss = sum(abs(w))` and its gradient `sign(w)` written with compare/select
/// (`abs'(0) = 0` is not exercised: the point is near, not at, the kink).
fn abs_sum() -> (Function, Function) {
    let args = vec![arg("w", ArgRole::Param, Elem::Real, vec![B])];
    let mut forward = Function::new("forward", vec!["B".into()], args.clone());
    let w = forward.push(Op::Arg(0));
    let a = forward.push(Op::Unary(UnaryOp::Abs, w));
    let loss = forward.push(Op::Reduce(ReduceOp::Sum, a, Axes(1)));
    forward.results.push(result("loss", ResultRole::Loss, loss));

    let mut grad = Function::new("grad", vec!["B".into()], args);
    let w = grad.push(Op::Arg(0));
    let a = grad.push(Op::Unary(UnaryOp::Abs, w));
    let loss = grad.push(Op::Reduce(ReduceOp::Sum, a, Axes(1)));
    let zero = grad.push(Op::Const(0.0));
    let zero_wide = grad.push(Op::Broadcast(zero, vec![B]));
    let one = grad.push(Op::Const(1.0));
    let one_wide = grad.push(Op::Broadcast(one, vec![B]));
    let minus_one = grad.push(Op::Unary(UnaryOp::Neg, one_wide));
    let positive = grad.push(Op::Compare(CmpOp::Gt, w, zero_wide));
    let sign = grad.push(Op::Select(positive, one_wide, minus_one));
    grad.results = vec![
        result("loss", ResultRole::Loss, loss),
        result("w", ResultRole::Grad(0), sign),
    ];
    (forward, grad)
}

#[test]
fn a_kink_within_the_step_does_not_fail_a_correct_gradient() {
    let (forward, grad) = abs_sum();
    // 3e-6 is within h = 1e-5 of the kink of abs at 0; 1e-9 is within h/1000 too.
    let point = Bound {
        dims: vec![4],
        args: vec![Tensor::real(vec![4], vec![0.7, 3e-6, -2e-6, 1e-9])],
    };
    let report = gradcheck(&forward, &grad, &point, run).unwrap();
    let row = &report.params[0];
    assert!(report.passed(DEFAULT_TOLERANCE), "{report}");
    assert_eq!(row.checked + row.nonsmooth, 4);
    assert_eq!(row.checked, 3, "{report}");
}

#[test]
fn a_non_finite_loss_is_an_error_and_the_random_point_falls_back_to_positive_values() {
    // loss = sum(log(w)), gradient 1 / w.
    let args = vec![arg("w", ArgRole::Param, Elem::Real, vec![B])];
    let mut forward = Function::new("forward", vec!["B".into()], args.clone());
    let w = forward.push(Op::Arg(0));
    let l = forward.push(Op::Unary(UnaryOp::Log, w));
    let loss = forward.push(Op::Reduce(ReduceOp::Sum, l, Axes(1)));
    forward.results.push(result("loss", ResultRole::Loss, loss));
    let mut grad = Function::new("grad", vec!["B".into()], args);
    let w = grad.push(Op::Arg(0));
    let l = grad.push(Op::Unary(UnaryOp::Log, w));
    let loss = grad.push(Op::Reduce(ReduceOp::Sum, l, Axes(1)));
    let one = grad.push(Op::Const(1.0));
    let one_wide = grad.push(Op::Broadcast(one, vec![B]));
    let inverse = grad.push(Op::Binary(BinaryOp::Div, one_wide, w));
    grad.results = vec![
        result("loss", ResultRole::Loss, loss),
        result("w", ResultRole::Grad(0), inverse),
    ];

    let negative = Bound {
        dims: vec![2],
        args: vec![Tensor::real(vec![2], vec![1.0, -1.0])],
    };
    let message = gradcheck(&forward, &grad, &negative, run).unwrap_err();
    assert!(message.contains("NaN"), "{message}");

    // Some seed gives a negative value at the signed point; all must pass.
    for seed in 0..5 {
        let (point, report) =
            gradcheck_random(&forward, &grad, seed, run, GradcheckOptions::default()).unwrap();
        assert!(point.args[0].as_real().unwrap().iter().all(|&x| x > 0.0));
        assert!(report.passed(DEFAULT_TOLERANCE), "{report}");
    }
}

#[test]
fn a_gradient_function_without_a_param_gradient_is_an_error() {
    let (forward, mut grad) = tanh_layer(Bug::None);
    grad.results.pop();
    let point = random_point(&forward, 0);
    let message = gradcheck(&forward, &grad, &point, run).unwrap_err();
    assert!(message.contains("`b`"), "{message}");
}

use fixtures::loss_files;

/// The pipeline end to end: every example file (and the benchmark workloads, when the
/// shared folder is there) compiles, and its derived gradient agrees with finite
/// differences at three random points, well within the tolerance (worst errors seen:
/// about 1e-7).
#[test]
fn the_whole_pipeline_passes_gradcheck_on_every_example_file() {
    let mut files = loss_files(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ok"));
    assert!(!files.is_empty());
    files.extend(loss_files("/work/shared/bench/workloads"));
    let mut failures = Vec::new();
    for path in &files {
        let source = std::fs::read_to_string(path).unwrap();
        let compiled = match gradc::driver::compile(&source) {
            Ok(c) => c,
            Err(diags) => panic!("{}: {diags:?}", path.display()),
        };
        for seed in 0..3 {
            let options = GradcheckOptions {
                max_elements: 12,
                ..GradcheckOptions::default()
            };
            let name = path.display();
            match gradcheck_random(&compiled.forward, &compiled.grad, seed, run, options) {
                Ok((_, report)) if report.passed(1e-6) => {}
                Ok((_, report)) => failures.push(format!("{name} seed {seed}:\n{report}")),
                Err(message) => failures.push(format!("{name} seed {seed}: {message}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A variance written as E[x²] − E[x]² of values near 1000: a loss of size 0.1 made as
/// the difference of two terms of size 10⁶, so its rounding noise is 10⁷ times `ε·|f|`.
const VARIANCE: &str = "param w: [4]\nloss = mean(square(w + 1000)) - square(mean(w + 1000))\n";

#[test]
fn a_loss_made_by_cancellation_is_checked_with_its_measured_noise() {
    let compiled = gradc::driver::compile(VARIANCE).unwrap();
    for seed in 0..5 {
        let point = random_point(&compiled.forward, seed);
        let report = gradcheck(&compiled.forward, &compiled.grad, &point, run).unwrap();
        assert!(report.passed(DEFAULT_TOLERANCE), "seed {seed}:\n{report}");
        let row = &report.params[0];
        assert_eq!(
            (row.checked, row.nonsmooth),
            (4, 0),
            "seed {seed}:\n{report}"
        );
    }
}

#[test]
fn a_wrong_gradient_of_a_loss_made_by_cancellation_still_fails() {
    let compiled = gradc::driver::compile(VARIANCE).unwrap();
    // The derived gradient, 2% too large.
    let skewed = |func: &Function, bound: &Bound| {
        let mut values = run(func, bound)?;
        for (result, value) in func.results.iter().zip(values.iter_mut()) {
            if let (ResultRole::Grad(_), gradc::tensor::TensorData::Real(v)) =
                (result.role, &mut value.data)
            {
                v.iter_mut().for_each(|g| *g *= 1.02);
            }
        }
        Ok(values)
    };
    for seed in 0..5 {
        let point = random_point(&compiled.forward, seed);
        let report = gradcheck(&compiled.forward, &compiled.grad, &point, skewed).unwrap();
        assert!(report.worst_error() > 1e-2, "seed {seed}:\n{report}");
    }
}

/// The check of `source` (compiled by the whole pipeline) at `x` for its one param.
fn check_at(source: &str, x: Tensor, tolerance: f64) -> gradc::gradcheck::GradcheckReport {
    let compiled = gradc::driver::compile(source).unwrap();
    let dims = if x.shape.is_empty() {
        vec![]
    } else {
        vec![x.len()]
    };
    let point = Bound {
        dims,
        args: vec![x],
    };
    let options = GradcheckOptions {
        tolerance,
        ..GradcheckOptions::default()
    };
    gradcheck_with(&compiled.forward, &compiled.grad, &point, run, options).unwrap()
}

#[test]
fn a_nan_or_infinite_gradient_fails_and_its_error_is_not_finite() {
    // sqrt(x²) at 0: the gradient x / sqrt(x²) is 0/0 = NaN, the difference 0.
    let report = check_at("param x\nloss = sqrt(x * x)\n", Tensor::scalar(0.0), 1e-5);
    let row = &report.params[0];
    assert!(!report.passed(DEFAULT_TOLERANCE), "{report}");
    assert!(
        row.analytic.is_nan() && row.worst_error.is_nan(),
        "{report}"
    );
    assert_eq!((row.checked, row.nonsmooth), (1, 0), "{report}");
    assert!(report.worst_error().is_nan());
    assert!(report.to_string().contains("NaN"), "{report}");
    // sqrt(x) at 0: the gradient is +inf, the difference NaN (sqrt(-h)).
    let report = check_at("param x\nloss = sqrt(x)\n", Tensor::scalar(0.0), 1e-5);
    let row = &report.params[0];
    assert!(!report.passed(DEFAULT_TOLERANCE), "{report}");
    assert_eq!(row.analytic, f64::INFINITY, "{report}");
    assert!(!row.worst_error.is_finite(), "{report}");
    // One NaN element among good ones is the one shown, and fails the param.
    let report = check_at(
        "param x: [N]\nloss = sum(sqrt(x * x))\n",
        Tensor::real(vec![3], vec![0.5, 0.0, -2.0]),
        1e-5,
    );
    assert_eq!(report.params[0].worst_at, Some(vec![1]), "{report}");
    assert!(!report.passed(1e-5), "{report}");
}

#[test]
fn the_edge_of_the_domain_within_the_step_is_checked_at_a_smaller_step() {
    // sqrt(x) at 1e-6: sqrt(x − h) is NaN, so the difference at h is NaN; at h/1000 it
    // is finite but off by 1e-5 (truncation), which extrapolation removes.
    let report = check_at("param x\nloss = sqrt(x)\n", Tensor::scalar(1e-6), 1e-5);
    let row = &report.params[0];
    assert!(report.passed(DEFAULT_TOLERANCE), "{report}");
    assert_eq!((row.checked, row.nonsmooth), (1, 0), "{report}");
    assert!(row.worst_error < 1e-7, "{report}");
}

#[test]
fn the_reported_error_is_the_real_one_and_noise_that_excuses_it_is_reported() {
    // At tolerance 0 the finite difference's own noise decides; the error shown must
    // still be |g − fd| / |g| (about 6e-11 here), with the noise that excused it.
    let report = check_at(
        "param x\nloss = log(x) + sqrt(x)\n",
        Tensor::scalar(0.7),
        0.0,
    );
    let row = &report.params[0];
    let g = 1.0 / 0.7 + 0.5 / 0.7f64.sqrt();
    let real = (row.numeric - g).abs() / g;
    assert!((row.analytic - g).abs() <= 1e-15 * g, "{report}");
    assert!(real > 1e-13, "{report}");
    assert!((row.worst_error - real).abs() <= 1e-6 * real, "{report}");
    assert_eq!(report.passed(0.0), row.worst_error - row.noise <= 0.0);
    if report.passed(0.0) {
        assert_eq!(row.within_noise, 1, "{report}");
        assert!(report.to_string().contains("measured noise"), "{report}");
    }
}

#[test]
fn a_point_exactly_on_a_kink_is_recognised_as_nonsmooth() {
    // relu'(0) = 0 and abs'(0) = 0 are the contract's values; the central difference
    // at a kink is the average slope, so the element can't be judged, as near a kink.
    for x in [0.0, 1e-9, -1e-9, 1e-12] {
        let report = check_at("param x\nloss = relu(x)\n", Tensor::scalar(x), 1e-5);
        let row = &report.params[0];
        assert!(report.passed(DEFAULT_TOLERANCE), "x = {x}:\n{report}");
        assert_eq!((row.checked, row.nonsmooth), (0, 1), "x = {x}:\n{report}");
    }
    let report = check_at(
        "param x: [N]\nloss = sum(relu(x)) + sum(abs(x)) + maximum(x[0], 2 * x[0])\n",
        Tensor::real(vec![3], vec![0.0, 1.0, -1.0]),
        1e-5,
    );
    let row = &report.params[0];
    assert!(report.passed(DEFAULT_TOLERANCE), "{report}");
    assert_eq!((row.checked, row.nonsmooth), (2, 1), "{report}");
    assert!(row.worst_error < 1e-9, "{report}");
}

#[test]
fn a_wrong_gradient_beside_a_kink_still_fails() {
    // d/dx sum(abs(x)) with the sign flipped: the kink at x[0] = 0 is skipped, the
    // smooth elements fail.
    let (forward, grad) = abs_sum();
    let flipped = |func: &Function, bound: &Bound| {
        let mut values = run(func, bound)?;
        for (result, value) in func.results.iter().zip(values.iter_mut()) {
            if let (ResultRole::Grad(_), gradc::tensor::TensorData::Real(v)) =
                (result.role, &mut value.data)
            {
                v.iter_mut().for_each(|g| *g = -*g);
            }
        }
        Ok(values)
    };
    let point = Bound {
        dims: vec![3],
        args: vec![Tensor::real(vec![3], vec![0.0, 0.4, -0.2])],
    };
    let report = gradcheck(&forward, &grad, &point, flipped).unwrap();
    let row = &report.params[0];
    assert!(!report.passed(DEFAULT_TOLERANCE), "{report}");
    assert_eq!((row.checked, row.nonsmooth), (2, 1), "{report}");
    assert!((row.worst_error - 2.0).abs() < 1e-6, "{report}");
}

#[test]
fn past_the_total_budget_elements_are_drawn_from_all_params_together() {
    // 300 scalar params and a [40] one: 340 elements, over a budget of 100.
    let mut source = String::from("param v: [N]\n");
    let mut terms = vec!["sum(v * v)".to_string()];
    for k in 0..300 {
        source.push_str(&format!("param p{k}\n"));
        terms.push(format!("p{k} * p{k}"));
    }
    source.push_str(&format!("loss = {}\n", terms.join(" + ")));
    let compiled = gradc::driver::compile(&source).unwrap();
    let point = gradc::data::random_point_at(
        &compiled.forward,
        &[40],
        3,
        gradc::data::RealSampling::Signed,
    );
    let checked = |options: GradcheckOptions| {
        let report =
            gradcheck_with(&compiled.forward, &compiled.grad, &point, run, options).unwrap();
        assert!(report.passed(DEFAULT_TOLERANCE), "{report}");
        let checked: Vec<usize> = report.params.iter().map(|p| p.checked).collect();
        (checked, report.not_drawn)
    };
    let budget = GradcheckOptions {
        max_elements: 16,
        max_total_elements: 100,
        ..GradcheckOptions::default()
    };
    let (within, not_drawn) = checked(budget);
    assert_eq!(within.iter().sum::<usize>(), 100);
    assert!(
        within[0] <= 16 && within[1..].iter().all(|&c| c <= 1),
        "{within:?}"
    );
    assert_eq!(not_drawn, within.iter().filter(|&&c| c == 0).count());
    assert!(not_drawn >= 300 - 100, "{not_drawn}");
    // Within the budget every param is checked, up to `max_elements` each.
    let (all, not_drawn) = checked(GradcheckOptions {
        max_total_elements: 1000,
        ..budget
    });
    assert_eq!(all[0], 16);
    assert!(all[1..].iter().all(|&c| c == 1));
    assert_eq!(not_drawn, 0);
}

#[test]
fn the_rounding_noise_of_a_zero_gradient_passes_and_a_small_wrong_one_fails() {
    // log Σ softmax(p) = log 1: a loss that is 0 whatever p, whose derived gradient is
    // rounding noise (about 1e-16) around 0.
    let source = "param p: [5]\nloss = logsumexp(log_softmax(p))\n";
    let compiled = gradc::driver::compile(source).unwrap();
    let p = Tensor::real(
        vec![5],
        vec![0.812491, -1.212658, 1.245165, 0.080208, -1.23975],
    );
    let point = Bound {
        dims: vec![],
        args: vec![p],
    };
    let report = gradcheck(&compiled.forward, &compiled.grad, &point, run).unwrap();
    assert!(report.passed(DEFAULT_TOLERANCE), "{report}");
    for seed in 0..5 {
        let point = random_point(&compiled.forward, seed);
        let report = gradcheck(&compiled.forward, &compiled.grad, &point, run).unwrap();
        assert!(report.passed(DEFAULT_TOLERANCE), "seed {seed}:\n{report}");
    }
    // A gradient of 1e-9 where the loss does not change at all is still wrong.
    let off = |func: &Function, bound: &Bound| {
        let mut values = run(func, bound)?;
        for (result, value) in func.results.iter().zip(values.iter_mut()) {
            if let (ResultRole::Grad(_), gradc::tensor::TensorData::Real(v)) =
                (result.role, &mut value.data)
            {
                v[0] += 1e-9;
            }
        }
        Ok(values)
    };
    let report = gradcheck(&compiled.forward, &compiled.grad, &point, off).unwrap();
    assert!(!report.passed(DEFAULT_TOLERANCE), "{report}");
}
