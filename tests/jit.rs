//! Differential tests: the JIT against the reference interpreter.
//!
//! Every `.loss` file of `tests/data/ok` and `examples/` plus the benchmark workloads is
//! compiled; its forward and value-and-gradient functions are run by `gradc::interp::eval`
//! and by `gradc::jit` on the same data, at several dimension sizes (1, 3 and 17 exercise
//! the two-lane loops' tails and size-1 broadcasts), and must agree to a relative 1e-12.
//! Hand-built IR covers what the language cannot write directly.

mod fixtures;

use gradc::data::{Bound, RealSampling};
use gradc::ir::Function;
use gradc::jit::{self, ArgData, Workspace};

/// Relative tolerance (with a floor of 1 on the magnitude).
const TOLERANCE: f64 = 1e-12;

fn close(a: f64, b: f64) -> bool {
    // An infinity is close only to itself (the scaled tolerance would be infinite too).
    (a.is_nan() && b.is_nan())
        || a == b
        || (a.is_finite() && b.is_finite() && (a - b).abs() <= TOLERANCE * b.abs().max(1.0))
}

/// Runs `func` on `bound` with both engines and compares every result.
fn check_agrees(what: &str, func: &Function, bound: &Bound) {
    let expected = gradc::interp::eval(func, &bound.dims, &bound.args)
        .unwrap_or_else(|e| panic!("{what}: interpreter failed: {e}"));
    let kernel = jit::compile(func).unwrap_or_else(|e| panic!("{what}: jit failed: {e}"));
    let args = fixtures::args_of(bound);
    let mut outputs: Vec<Vec<f64>> = expected.iter().map(|t| vec![f64::NAN; t.len()]).collect();
    let mut workspace = Workspace::new();
    // Twice: the second call reuses the cached layout and must not see stale data.
    for _ in 0..2 {
        let mut slices: Vec<&mut [f64]> = outputs.iter_mut().map(|o| o.as_mut_slice()).collect();
        kernel
            .call(&bound.dims, &args, &mut slices, &mut workspace)
            .unwrap_or_else(|e| panic!("{what}: call failed: {e}"));
    }
    for ((result, want), got) in func.results.iter().zip(&expected).zip(&outputs) {
        let want = want.as_real().expect("real result");
        assert_eq!(want.len(), got.len());
        for (k, (&w, &g)) in want.iter().zip(got).enumerate() {
            assert!(
                close(g, w),
                "{what}: result `{}`[{k}] dims {:?}: jit {g:e}, interpreter {w:e}\n{}",
                result.name,
                bound.dims,
                gradc::ir::print_function(func)
            );
        }
    }
}

/// Compiles `source` and checks forward and gradient at several sizes.
fn check_source(name: &str, source: &str) {
    let compiled = gradc::driver::compile(source)
        .unwrap_or_else(|d| panic!("{name}: does not compile: {d:?}"));
    let n_dims = compiled.grad.dims.len();
    let mut size_sets: Vec<Vec<usize>> = vec![vec![1; n_dims], vec![3; n_dims], vec![17; n_dims]];
    size_sets.push((0..n_dims).map(|k| [2, 5, 3, 4][k % 4]).collect());
    for (s, sizes) in size_sets.iter().enumerate() {
        for sampling in [RealSampling::Signed, RealSampling::Positive] {
            for (label, func) in [("forward", &compiled.forward), ("grad", &compiled.grad)] {
                let bound = fixtures::point_at(func, sizes, 7 + s as u64, sampling);
                check_agrees(&format!("{name} {label} {sampling:?}"), func, &bound);
            }
        }
    }
}

fn check_dir(dir: &str) {
    let paths = fixtures::loss_files(dir);
    assert!(!paths.is_empty(), "no .loss files in {dir}");
    for path in paths {
        let source = std::fs::read_to_string(&path).expect("readable");
        check_source(&path.display().to_string(), &source);
    }
}

#[test]
fn ok_files_agree_with_interpreter() {
    check_dir("tests/data/ok");
}

#[test]
fn examples_agree_with_interpreter() {
    check_dir("examples");
}

#[test]
fn scalar_neuron_agrees() {
    check_source(
        "neuron",
        "input x\ninput t\nparam w\nparam b\nloss = 0.5 * (sigmoid(w * x + b) - t)^2\n",
    );
}

#[test]
fn long_scalar_trig_chains_agree() {
    // More transcendentals than are inlined: libm calls, with each sine and the cosine
    // of the same argument (from the gradient) computed by one `sincos` call.
    let mut source = String::from("input x\n");
    let mut chain = String::from("x");
    for k in 1..=24 {
        source.push_str(&format!("param p{k}\n"));
        chain = format!("sin(p{k} * {chain} + x)");
    }
    source.push_str(&format!("loss = cos(x) * {chain}\n"));
    check_source("trig chain", &source);
    let compiled = gradc::driver::compile(&source).expect("compiles");
    let clif = gradc::jit::clif_text(&compiled.grad).expect("compiles to native code");
    // The runtime symbols are imported in a fixed order; count the calls of the grad
    // entry to one imported function (sincos) rather than the 48 of sin and cos.
    let calls = clif.matches(" = call fn").count() + clif.matches("    call fn").count();
    assert!(
        calls <= 30,
        "expected about 25 sincos calls, found {calls} calls:\n{clif}"
    );
}

#[test]
fn fused_chain_agrees() {
    check_source(
        "fused",
        "input x: [N]\nparam a\nparam c\n\
         loss = sum(log1p(exp(a * x + c)) * square(tanh(x)) + sigmoid(a * x) * c)\n",
    );
}

#[test]
fn every_unary_and_binary_op_at_every_rank() {
    let unary = [
        "-", "exp", "log", "log1p", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "softplus",
        "abs", "square",
    ];
    for f in unary {
        for ty in ["", ": [N]", ": [M, N]"] {
            let body = if f == "-" {
                "-x".to_string()
            } else {
                format!("{f}(x)")
            };
            let source = format!("param x{ty}\nparam y{ty}\nloss = sum({body} * y)\n");
            check_source(&format!("{f} {ty}"), &source);
        }
    }
    for op in [
        "x + y",
        "x - y",
        "x * y",
        "x / y",
        "x ^ y",
        "maximum(x, y)",
        "minimum(x, y)",
        "pow(x, 2)",
    ] {
        for ty in ["", ": [N]", ": [M, N]"] {
            let source = format!("param x{ty}\nparam y{ty}\nloss = sum(({op}) * exp(y))\n");
            check_source(&format!("{op} {ty}"), &source);
        }
    }
}

#[test]
fn broadcasts_transposes_and_axis_reductions() {
    let sources = [
        "param x: [M, N]\nparam b: [N]\nparam c: [M, 1]\nloss = sum(tanh(x + b) * c)\n",
        "param x: [M, N]\nparam v: [M]\nloss = sum((x.T + v) ^ 2)\n",
        "param x: [M, N]\nloss = sum(exp(sum(x, 0))) + sum(log1p(max(x, 1) ^ 2)) + min(x)\n",
        "param x: [M, N]\nparam w: [N, M]\nloss = sum(x * w.T) + sum(column(sum(x, 1)) * x)\n",
        "param x: [M, N]\nloss = sum(softmax(x, 0) * x) + sum(log_softmax(x, 1) * x) + logsumexp(x)\n",
        "param x: [N]\nloss = sum(softmax(x) * x) + logsumexp(x) + sum(log_softmax(x))\n",
        "param a: [M, K]\nparam b: [K, N]\nloss = sum(tanh(a @ b)) + sum(a.T.T @ b)\n",
        "param a: [M]\nparam b: [M, N]\nloss = sum(a @ b) + dot(a, a) + sum(b @ b.T @ a)\n",
        "param s\nparam x: [N]\nloss = sum(s * x) + s * sum(x) * mean(x)\n",
    ];
    for (k, source) in sources.iter().enumerate() {
        check_source(&format!("broadcast source {k}"), source);
    }
}

#[test]
fn bad_calls_are_errors_not_undefined_behaviour() {
    let compiled = gradc::driver::compile("input i: int[B]\nparam e: [V]\nloss = sum(e[i])\n")
        .expect("compiles");
    let kernel = jit::compile(&compiled.forward).expect("jit");
    let e = [1.0, 2.0, 3.0];
    let mut loss = [0.0];
    let mut workspace = Workspace::new();
    // B = 2, V = 3; the index 3 is out of range (the binder's error, naming `i`).
    let result = kernel.call(
        &[2, 3],
        &[ArgData::Int(&[0, 3]), ArgData::Real(&e)],
        &mut [&mut loss],
        &mut workspace,
    );
    assert!(
        matches!(
            &result,
            Err(jit::JitError::Call(gradc::data::CallError::IndexOutOfRange { index, .. }))
                if index == "`i`[1]"
        ),
        "{result:?}"
    );
    // Wrong length of `e` (the binder's typed error, naming `e`).
    let result = kernel.call(
        &[2, 3],
        &[ArgData::Int(&[0, 1]), ArgData::Real(&e[..2])],
        &mut [&mut loss],
        &mut workspace,
    );
    assert_eq!(
        result,
        Err(jit::JitError::Call(gradc::data::CallError::WrongLength {
            name: "e".into(),
            expected: 3,
            found: 2
        }))
    );
    // Right data.
    kernel
        .call(
            &[2, 3],
            &[ArgData::Int(&[0, 2]), ArgData::Real(&e)],
            &mut [&mut loss],
            &mut workspace,
        )
        .expect("valid call");
    assert_eq!(loss[0], 4.0);
}

#[test]
fn index_errors_count_rows_and_elements_in_the_right_number_the_same_way_everywhere() {
    let source = "input i: int[B]\nparam E: [V, D]\nparam w: [V]\nloss = sum(E[i]) + sum(w[i])\n";
    let compiled = gradc::driver::compile(source).expect("compiles");
    let kernel = jit::compile(&compiled.forward).expect("jit");
    for (v, expected) in [(1, "`E` with 1 row (V)"), (2, "`E` with 2 rows (V)")] {
        let e = vec![1.0; v * 2];
        let w = vec![1.0; v];
        let result = kernel.call(
            &[2, v, 2],
            &[ArgData::Int(&[0, 3]), ArgData::Real(&e), ArgData::Real(&w)],
            &mut [&mut [0.0]],
            &mut Workspace::new(),
        );
        let Err(jit::JitError::Call(error)) = result else {
            panic!("V = {v}: {result:?}")
        };
        assert_eq!(
            error.to_string(),
            format!("`i`[1] = 3 is out of range for {expected}")
        );
        // The binder, which the command line uses, says it the same way.
        let model = gradc::Model::from_source(source).expect("compiles");
        let data = serde_json::json!({ "i": [0, 3], "E": vec![vec![1.0, 1.0]; v], "w": w });
        let message = model.bind_json(&data).expect_err("refused").to_string();
        assert!(message.ends_with(&error.to_string()), "{message}");
    }
    // A vector counts elements.
    let source = "input i: int\nparam w: [1]\nloss = w[i]\n";
    let model = gradc::Model::from_source(source).expect("compiles");
    let message = (model.bind_json(&serde_json::json!({ "i": 1, "w": [2.0] })))
        .expect_err("refused")
        .to_string();
    assert!(
        message.ends_with("`i` = 1 is out of range for `w` with 1 element"),
        "{message}"
    );
}

#[test]
fn log_of_sigmoid_stays_finite_where_the_sigmoid_underflows() {
    // sigmoid(-800) is 0 in f64; the loss and its gradient are not.
    let compiled =
        gradc::driver::compile("param w: [N]\nloss = sum(log(sigmoid(w)))\n").expect("compiles");
    let w = [-800.0, -40.0, 0.0, 30.0];
    let kernel = jit::compile(&compiled.grad).expect("jit");
    let (mut loss, mut grad) = ([0.0], [0.0; 4]);
    kernel
        .call(
            &[4],
            &[ArgData::Real(&w)],
            &mut [&mut loss, &mut grad],
            &mut Workspace::new(),
        )
        .expect("valid call");
    // log(sigmoid(w)) = -softplus(-w) = -(max(-w, 0) + log1p(exp(-|w|)))
    let want: f64 = w
        .iter()
        .map(|&x| -((-x).max(0.0) + (-x.abs()).exp().ln_1p()))
        .sum();
    assert!(want.is_finite() && want < -800.0);
    assert!(close(loss[0], want), "{} vs {want}", loss[0]);
    // d/dw log(sigmoid(w)) = sigmoid(-w)
    for (g, &x) in grad.iter().zip(&w) {
        let want = 1.0 / (1.0 + x.exp());
        assert!(close(*g, want), "{g} vs {want} at {x}");
    }
    let bound = fixtures::point_at(&compiled.grad, &[4], 3, RealSampling::Signed);
    check_agrees("log-sigmoid", &compiled.grad, &bound);
}

#[test]
fn logsumexp_and_softmax_of_rows_columns_transposes_and_whole_arrays_agree() {
    // Contiguous runs take the four-lane path (lengths with and without a remainder),
    // strided ones the scalar loop; softmax down columns goes four columns at a time.
    let source = "input x: [M, N]\n\
                  output rows = logsumexp(x, 1)\n\
                  output columns = logsumexp(x, 0)\n\
                  output whole = logsumexp(x)\n\
                  output transposed_rows = logsumexp(transpose(x), 1)\n\
                  output down_columns = softmax(x, 0)\n\
                  output log_down_columns = log_softmax(x, 0)\n\
                  loss = sum(logsumexp(x * x, 1)) + sum(log_softmax(x, 0) * x)\n";
    let compiled = gradc::driver::compile(source).expect("compiles");
    // 150 x 130 is big enough to be shared with the helper thread.
    for sizes in [[37, 53], [53, 37], [1, 8], [9, 1], [150, 130]] {
        for func in [&compiled.forward, &compiled.grad] {
            let bound = fixtures::point_at(func, &sizes, 5, RealSampling::Signed);
            check_agrees(&format!("logsumexp {sizes:?}"), func, &bound);
        }
    }
}

#[test]
fn small_integer_powers_are_products_within_two_ulps_of_c_pow() {
    // The JIT computes x ^ 3, x ^ 4, x ^ -1 and x ^ -2 as products and quotients.
    let source = "input x: [N]\n\
                  output cube = x ^ 3\n\
                  output fourth = x ^ 4\n\
                  output inverse = x ^ -1\n\
                  output inverse_square = x ^ -2\n\
                  loss = sum(x)\n";
    let compiled = gradc::driver::compile(source).expect("compiles");
    // No call of a binary libm function (C's pow is the only one).
    let clif = jit::clif_text(&compiled.forward).expect("jit");
    assert!(!clif.contains("(f64, f64) -> f64"), "{clif}");
    let general = gradc::driver::compile("input x: [N]\nloss = sum(x ^ 2.5)\n").expect("compiles");
    let clif = jit::clif_text(&general.forward).expect("jit");
    assert!(clif.contains("(f64, f64) -> f64"), "{clif}");
    let mut xs = vec![
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        1.0,
        -1.0,
    ];
    let mut state = 3u64;
    for _ in 0..2000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let magnitude = 10f64.powf((state % 10_000) as f64 / 100.0 - 50.0);
        xs.push(if state & 1 == 0 {
            magnitude
        } else {
            -magnitude
        });
    }
    let func = &compiled.forward;
    let kernel = jit::compile(func).expect("jit");
    let n = xs.len();
    let lens: Vec<usize> = func
        .results
        .iter()
        .map(|r| if r.name == "loss" { 1 } else { n })
        .collect();
    let mut results: Vec<Vec<f64>> = lens.iter().map(|&len| vec![f64::NAN; len]).collect();
    {
        let mut slices: Vec<&mut [f64]> = results.iter_mut().map(|o| o.as_mut_slice()).collect();
        kernel
            .call(
                &[n],
                &[ArgData::Real(&xs)],
                &mut slices,
                &mut Workspace::new(),
            )
            .expect("valid call");
    }
    let result = |name: &str| {
        let k = func
            .results
            .iter()
            .position(|r| r.name == name)
            .expect(name);
        &results[k]
    };
    let ulps = |a: f64, b: f64| {
        if a == b || (a.is_nan() && b.is_nan()) {
            0.0
        } else {
            (a - b).abs() / (f64::EPSILON * b.abs())
        }
    };
    let outs = [
        result("cube"),
        result("fourth"),
        result("inverse"),
        result("inverse_square"),
    ];
    for (out, power) in outs.iter().zip([3.0, 4.0, -1.0, -2.0]) {
        for (&x, &got) in xs.iter().zip(out.iter()) {
            let want = x.powf(power);
            assert!(
                ulps(got, want) <= 2.0,
                "{x:e} ^ {power}: {got:e}, C's pow {want:e}"
            );
        }
    }
}

#[test]
fn transcendentals_evaluated_on_blocks_agree_across_block_edges() {
    // Big vectorised loops evaluate exp, log, log1p, tanh, sigmoid and softplus on
    // blocks of 256 elements through the runtime's four-lane kernels, in passes: a
    // function of a function needs a pass per level. Sizes on both sides of the block
    // edges, odd and even, a flat nest and one over rows (whose blocks restart per row,
    // and whose `row`/`column` broadcasts, row and column sums live in the last pass), values
    // kept for the gradient, and a sigmoid and softplus of one value (a kernel each);
    // functions of an input read its rows in place.
    let source = "input x: [N]\ninput y: [R, C]\nparam a\nparam b: [C]\nparam c: [R]\n\
                  let u = exp(tanh(a * x)) + log1p(x * x) + tanh(x)\n\
                  let v = sigmoid(y * row(b)) * softplus(log(1 + y * y) - column(c)) + exp(y)\n\
                  loss = sum(u * sigmoid(u - 2)) + sum(sum(v, 1) * c) + sum(sum(v, 0) * b) + sum(softplus(a * x) + sigmoid(a * x))\n";
    let compiled = gradc::driver::compile(source).expect("compiles");
    let names: Vec<&str> = compiled.grad.dims.iter().map(|d| d.as_str()).collect();
    for (n, r, c) in [
        (255, 1, 255),
        (256, 2, 256),
        (257, 3, 257),
        (1001, 3, 517),
        (2, 1, 3),
    ] {
        let sizes: Vec<usize> = names
            .iter()
            .map(|&d| match d {
                "N" => n,
                "R" => r,
                _ => c,
            })
            .collect();
        for (label, func) in [("forward", &compiled.forward), ("grad", &compiled.grad)] {
            let bound = fixtures::point_at(func, &sizes, 11, RealSampling::Signed);
            check_agrees(&format!("blocked {label} {sizes:?}"), func, &bound);
        }
    }
    let clif = jit::clif_text(&compiled.forward).expect("jit");
    // One 2 KiB buffer per blocked member, all eleven (`tanh(x)` and `exp(y)` read their
    // operand in place, from the rows of `x` and `y`).
    let buffers = clif.matches("explicit_slot 2048").count();
    let expected = if gradc::jit::math::has_block_kernels() {
        11
    } else {
        0
    };
    assert_eq!(buffers, expected, "{clif}");
}

#[test]
fn softplus_and_sigmoid_of_one_value_share_its_exponential() {
    // Both are computed from exp(-|t|); the loop nest's value numbering keeps one. (A
    // loop reading a transpose runs one lane at a time with inline math; two-lane loops
    // call a four-lane kernel for each instead, which is faster.)
    let source = "input x: [R, C]\nparam w\nloss = sum(softplus(x.T * w) + sigmoid(x.T * w))\n";
    check_source("softplus and sigmoid", source);
    let compiled = gradc::driver::compile(source).expect("compiles");
    let clif = jit::clif_text(&compiled.forward).expect("jit");
    // One table lookup of exp in the loop.
    let lookups = clif.matches("iconst.i64 exp_table").count();
    assert_eq!(lookups, 1, "{clif}");
}

#[test]
fn functions_of_a_value_and_its_negation_share_one_exponential() {
    // exp(-|-t|) is exp(-|t|): the binary cross-entropy's softplus(z) and softplus(-z),
    // and the sigmoids of its gradient, need one exponential between them (inline, in
    // the one-lane loop that reads a transpose).
    let source = "input x: [R, C]\nparam w\nlet z = x.T * w\n\
                  loss = sum(softplus(z) + softplus(-z) + sigmoid(z) * sigmoid(-z))\n";
    check_source("softplus and sigmoid of z and -z", source);
    let compiled = gradc::driver::compile(source).expect("compiles");
    let clif = jit::clif_text(&compiled.forward).expect("jit");
    let lookups = clif.matches("iconst.i64 exp_table").count();
    assert_eq!(lookups, 1, "{clif}");
}

#[test]
fn sigmoids_and_softpluses_of_a_value_and_its_negation_share_one_block_call() {
    // The binary cross-entropy's softplus(z) and softplus(-z) and its gradient's
    // sigmoid(z) and sigmoid(-z): in a two-lane loop, one call of the runtime's family
    // kernel computes all four from one exp(-|z|); tanh keeps its own call.
    let source = "input x: [N]\nparam w\nlet z = x * w\n\
                  loss = sum(softplus(z) + softplus(-z) + sigmoid(z) * sigmoid(-z) + tanh(z))\n";
    check_source("family of z and -z", source);
    let compiled = gradc::driver::compile(source).expect("compiles");
    for (n, seed) in [(255, 3), (256, 4), (1001, 5)] {
        for (label, func) in [("forward", &compiled.forward), ("grad", &compiled.grad)] {
            let bound = fixtures::point_at(func, &[n], seed, RealSampling::Signed);
            check_agrees(&format!("family {label} N={n}"), func, &bound);
        }
    }
    let clif = jit::clif_text(&compiled.forward).expect("jit");
    let nest = clif
        .split("\nfunction ")
        .next()
        .expect("a loop nest function");
    let calls: Vec<&str> = nest.lines().filter(|l| l.contains(" call fn")).collect();
    if gradc::jit::math::has_block_kernels() {
        assert_eq!(calls.len(), 2, "{nest}");
        let arguments = |call: &str| {
            let (open, close) = (call.find('(').expect("("), call.find(')').expect(")"));
            call[open + 1..close].split(", ").count()
        };
        assert_eq!(
            calls.iter().filter(|c| arguments(c) == 6).count(),
            1,
            "{nest}"
        );
    }
}

#[test]
fn nests_alike_but_for_one_detail_each_get_their_own_code() {
    // Nests of one shape share a translation (debug builds translate every nest and
    // check that the shared one is the same code). Each layer here is a nest of the same
    // shape as the one before, but for one detail; the products keep them apart.
    let source = "input x: [B, F]\nparam W: [F, F]\nparam w: [F]\nparam a\n\
                  let h1 = tanh(x @ W * 0.2 + w)\n\
                  let h2 = tanh(h1 @ W * 0.2 + w)\n\
                  let h3 = tanh(h2 @ W * 0.3 + w)\n\
                  let h4 = sigmoid(h3 @ W * 0.3 + w)\n\
                  let h5 = tanh(h4 @ W * a + w)\n\
                  let h6 = tanh(h5 @ W * 0.3 - w)\n\
                  let h7 = tanh(h6 @ W * 0.3 + h1)\n\
                  loss = sum(h7) + max(h6) + sum(h5 * h4)\n";
    check_source("nests alike", source);
}

#[test]
fn a_long_scalar_program_runs_on_a_thread_with_a_small_stack() {
    use gradc::api::{CompileOptions, Engine};
    // 20,000 scalar `let`s: the value-and-gradient entry spills far more than the
    // thread's 256 KiB of stack; the call must find room for its frame.
    let n = 20_000;
    let mut source = String::from("param x\nlet a0 = x\n");
    for i in 1..n {
        source.push_str(&format!("let a{i} = sin(a{})\n", i - 1));
    }
    source.push_str(&format!("loss = a{}\n", n - 1));
    let models: Vec<gradc::Model> = [Engine::Jit, Engine::Interpreter]
        .into_iter()
        .map(|engine| {
            let options = CompileOptions {
                engine,
                ..Default::default()
            };
            gradc::Model::with_options(&source, options).expect("compiles")
        })
        .collect();
    let data = serde_json::json!({"x": 0.1});
    let results: Vec<(f64, f64)> = std::thread::scope(|scope| {
        models
            .iter()
            .map(|model| {
                let bound = model.bind_json(&data).expect("binds");
                std::thread::Builder::new()
                    .stack_size(256 << 10)
                    .spawn_scoped(scope, move || {
                        let (loss, grads) = model.value_and_grad_vec(&bound).expect("runs");
                        (loss, grads[0].as_real().expect("real")[0])
                    })
                    .expect("spawns")
                    .join()
                    .expect("no stack overflow")
            })
            .collect()
    });
    let (jit, interp) = (results[0], results[1]);
    assert!(
        close(jit.0, interp.0) && close(jit.1, interp.1),
        "{jit:?} vs {interp:?}"
    );
    assert!(jit.1 != 0.0, "a gradient through 20,000 sines: {jit:?}");
}

#[test]
fn forward_and_gradient_share_one_arena_sized_for_the_larger() {
    let compiled = gradc::driver::compile(
        "input x: [B, D]\nparam W: [D, H]\nloss = sum(tanh(x @ W) * exp(x @ W))\n",
    )
    .expect("compiles");
    let forward = jit::compile(&compiled.forward).expect("jit");
    let grad = jit::compile(&compiled.grad).expect("jit");
    let dims = [7, 5, 3];
    let (f, g) = (forward.arena_bytes(&dims), grad.arena_bytes(&dims));
    assert!(
        f > 0 && g > 0 && f != g,
        "forward {f} and gradient {g} bytes"
    );
    let mut workspace = Workspace::new();
    jit::Kernel::reserve_all(&[&forward, &grad], &dims, &mut workspace).expect("reserves");
    let reserved = workspace.arena_bytes();
    assert!(
        reserved >= f.max(g) && reserved < f.max(g) + 64,
        "{reserved} bytes"
    );
    // Both calls then run in it without growing it.
    let x: Vec<f64> = (0..35).map(|i| 0.01 * i as f64).collect();
    let w: Vec<f64> = (0..15).map(|i| 0.1 - 0.02 * i as f64).collect();
    let args = [ArgData::Real(&x), ArgData::Real(&w)];
    let (mut loss, mut dw) = ([0.0], vec![0.0; 15]);
    forward
        .call(&dims, &args, &mut [&mut loss], &mut workspace)
        .expect("forward");
    grad.call(&dims, &args, &mut [&mut loss, &mut dw], &mut workspace)
        .expect("gradient");
    assert_eq!(workspace.arena_bytes(), reserved);
}

#[test]
fn chains_longer_than_one_nest_or_one_function_holds_agree() {
    // 600 elementwise ops: more than one loop nest takes, so the chain continues in
    // further nests reading the last one's values from memory; the gradient keeps each
    // value for its backward pass, more buffers than the greedy layout places.
    let mut chain = String::from("p * x");
    for k in 0..600 {
        let f = ["tanh", "sin"][k % 2];
        chain = format!("{f}({chain})");
    }
    let source = format!("input x: [N]\nparam p\nloss = sum({chain})\n");
    let compiled = gradc::driver::compile(&source).expect("compiles");
    let clif = gradc::jit::clif_text(&compiled.forward).expect("compiles to native code");
    let functions =
        clif.matches("\nfunction ").count() + usize::from(clif.starts_with("function "));
    assert!(
        functions >= 3,
        "expected the chain split over nests, found {functions} functions"
    );
    for (label, func) in [("forward", &compiled.forward), ("grad", &compiled.grad)] {
        let bound = fixtures::point_at(func, &[37], 3, RealSampling::Signed);
        check_agrees(&format!("long chain {label}"), func, &bound);
    }
    // A scalar product of 3,000 factors: one function too long for the backtracking
    // register allocator.
    let source = format!("param a\nloss = {}\n", vec!["a"; 3000].join(" * "));
    let compiled = gradc::driver::compile(&source).expect("compiles");
    let bound = fixtures::point_at(&compiled.grad, &[], 5, RealSampling::Positive);
    check_agrees("long product", &compiled.grad, &bound);
}

#[test]
fn a_reduction_over_literal_unit_axes_keeps_the_sign_of_zero_on_both_engines() {
    // The JIT reads such a reduction as its operand; so does the simplified IR, which the
    // interpreter runs (it once added -0 to a starting 0 and got +0: 1/x then flipped
    // from -inf to +inf between the engines).
    for source in [
        "param a: [1]\nloss = 1 / sum(a)\n",
        "param a: [1]\ninput b: [1]\nloss = 1 / dot(a, b)\n",
        "param a: [2, 1]\nloss = sum(1 / sum(a, 1))\n",
        "param a: [1, 1]\nloss = 1 / max(a)\n",
    ] {
        let compiled = gradc::driver::compile(source).expect("compiles");
        let args: Vec<gradc::Tensor> = (compiled.forward.args.iter())
            .map(|arg| {
                let shape: Vec<usize> = arg.ty.shape.iter().map(|_| 1).collect();
                let rows = if arg.ty.shape.len() == 2 && source.contains("[2, 1]") {
                    2
                } else {
                    1
                };
                let mut shape = shape;
                if let Some(first) = shape.first_mut() {
                    *first = rows;
                }
                let n = shape.iter().product();
                let value = if arg.name == "a" { -0.0 } else { 1.0 };
                gradc::Tensor::real(shape, vec![value; n])
            })
            .collect();
        let bound = Bound { dims: vec![], args };
        let want = gradc::interp::eval(&compiled.forward, &[], &bound.args).expect("evaluates");
        assert_eq!(want[0].as_real().unwrap()[0], f64::NEG_INFINITY, "{source}");
        let kernel = jit::compile(&compiled.forward).expect("jit");
        let mut loss = [0.0];
        kernel
            .call(
                &[],
                &fixtures::args_of(&bound),
                &mut [&mut loss],
                &mut Workspace::new(),
            )
            .expect("valid call");
        assert_eq!(loss[0], f64::NEG_INFINITY, "{source}");
        check_agrees(source, &compiled.grad, &bound);
    }
}
