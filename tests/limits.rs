//! Sizes at call time: a shape whose element count (or a dimension) is beyond the limit
//! every evaluator shares (`gradc::shape::MAX_ELEMENTS`) is an `Err` naming what is too
//! large, from the binders, `Model::prepare`, every call, `Kernel::call` and the random
//! point of `gradcheck` — never a panic, an allocation failure, a wrapped size or native
//! code running off its buffers. Each test runs its calls under `catch_unwind` so that a
//! panic fails it with a message rather than aborting the run.

use std::panic::{catch_unwind, AssertUnwindSafe};

use gradc::api::{CompileOptions, Engine, ModelError};
use gradc::data::{parse_json, try_random_point_with, CallError, JsonError, RealSampling};
use gradc::jit::ArgData;
use gradc::shape::MAX_ELEMENTS;
use gradc::{Model, Tensor};
use serde_json::json;

/// `f()`, failing the test if it panics.
fn no_panic<R>(what: &str, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| panic!("{what} panicked"))
}

fn both_engines(source: &str) -> Vec<Model> {
    [Engine::Jit, Engine::Interpreter]
        .into_iter()
        .map(|engine| {
            let options = CompileOptions {
                engine,
                ..Default::default()
            };
            Model::with_options(source, options).expect("compiles")
        })
        .collect()
}

fn assert_too_large(err: &ModelError, parts: &[&str]) {
    assert!(
        matches!(err, ModelError::Call(CallError::TooLarge { .. })),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("too large"), "{message}");
    for part in parts {
        assert!(message.contains(part), "should mention {part:?}: {message}");
    }
}

const ONEHOT: &str = "input lab: int[B]\nparam w\nloss = w * sum(onehot(lab, K))\n";

#[test]
fn a_huge_onehot_width_is_refused_by_bind_prepare_and_every_call() {
    for width in ["4611686018427387904", "100000000000", "9223372036854775807"] {
        for model in both_engines(&ONEHOT.replace('K', width)) {
            let data = json!({"lab": [1, 2], "w": 1});
            let err = no_panic("bind_json", || model.bind_json(&data)).unwrap_err();
            assert_too_large(&err, &["`onehot` of `lab`", width, "B = 2"]);
            let named = vec![
                ("lab".to_string(), Tensor::int(vec![2], vec![1, 2])),
                ("w".to_string(), Tensor::scalar(1.0)),
            ];
            let err = no_panic("bind", || model.bind(named)).unwrap_err();
            assert_too_large(&err, &["`onehot` of `lab`", width]);
            let err = no_panic("prepare", || model.prepare(&[2]).map(|_| ())).unwrap_err();
            assert_too_large(&err, &["`onehot` of `lab`", width]);
        }
    }
}

#[test]
fn a_bound_made_for_a_small_model_is_rechecked_by_a_large_one() {
    // Same arguments, so the small model's binding is accepted as the large one's data:
    // the large model must still check its own values before allocating or calling.
    let small = Model::from_source(&ONEHOT.replace('K', "4")).unwrap();
    let bound = small.bind_json(&json!({"lab": [1, 2], "w": 1})).unwrap();
    for model in both_engines(&ONEHOT.replace('K', "4611686018427387904")) {
        let err = no_panic("eval_forward", || model.eval_forward(&bound)).unwrap_err();
        assert_too_large(&err, &["`onehot` of `lab`"]);
        let err = no_panic("value_and_grad_vec", || model.value_and_grad_vec(&bound)).unwrap_err();
        assert_too_large(&err, &["`onehot` of `lab`"]);
        let mut dw = [0.0];
        let err = no_panic("value_and_grad", || {
            model.value_and_grad(&bound, &mut [&mut dw])
        })
        .unwrap_err();
        assert_too_large(&err, &["`onehot` of `lab`"]);
    }
}

#[test]
fn a_kernel_refuses_dimensions_that_make_a_value_too_large() {
    let compiled = gradc::driver::compile(&ONEHOT.replace('K', "100000000000")).unwrap();
    let kernel = gradc::jit::compile(&compiled.forward).unwrap();
    let mut loss = [0.0];
    let mut workspace = gradc::jit::Workspace::new();
    let err = no_panic("Kernel::call", || {
        kernel.call(
            &[2],
            &[ArgData::Int(&[1, 2]), ArgData::Real(&[1.0])],
            &mut [&mut loss],
            &mut workspace,
        )
    })
    .unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
    assert_eq!(workspace.arena_bytes(), 0, "nothing allocated");
    // A dimension beyond the limit, even where the product of the sizes wraps to 0.
    let compiled = gradc::driver::compile("input x: [N, 4]\nparam w\nloss = w * sum(x)\n").unwrap();
    let kernel = gradc::jit::compile(&compiled.forward).unwrap();
    for n in [MAX_ELEMENTS + 1, 1 << 62, usize::MAX] {
        let err = no_panic("check_dims", || kernel.check_dims(&[n])).unwrap_err();
        assert!(err.to_string().contains("too large"), "{n}: {err}");
    }
}

#[test]
fn an_empty_input_with_a_huge_literal_dimension_is_refused() {
    let source = "input x: [N, 4611686018427387904]\nparam w\nloss = w\noutput o = sum(x, 0)\n";
    for model in both_engines(source) {
        let err = no_panic("bind_json", || model.bind_json(&json!({"x": [], "w": 1}))).unwrap_err();
        assert_too_large(&err, &["input `x`", "4611686018427387904", "N = 0"]);
    }
    // A tensor whose claimed shape overflows `usize` is malformed, not 0 elements.
    let model = Model::from_source("input x: [N, M]\nparam w\nloss = w * sum(x)\n").unwrap();
    let named = vec![
        ("x".to_string(), Tensor::real(vec![0, 0], vec![])),
        ("w".to_string(), Tensor::scalar(1.0)),
    ];
    assert!(model.bind(named).is_ok());
    let named = vec![
        (
            "x".to_string(),
            Tensor {
                shape: vec![1 << 32, 1 << 32],
                data: gradc::TensorData::Real(vec![]),
            },
        ),
        ("w".to_string(), Tensor::scalar(1.0)),
    ];
    let err = no_panic("bind", || model.bind(named)).unwrap_err();
    assert!(
        matches!(err, ModelError::Call(CallError::Malformed { .. })),
        "{err:?}"
    );
}

#[test]
fn the_random_point_of_a_huge_param_is_an_error() {
    for shape in ["[100000000000]", "[4611686018427387904, 4]"] {
        let source = format!("param w: {shape}\nloss = sum(w)\n");
        let compiled = gradc::driver::compile(&source).unwrap();
        let err = no_panic("try_random_point_with", || {
            try_random_point_with(&compiled.forward, 0, RealSampling::Signed)
        })
        .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, CallError::TooLarge { .. }), "{err:?}");
        assert!(message.contains("param `w`"), "{message}");
        let err = no_panic("gradcheck_random", || {
            gradc::gradcheck::gradcheck_random(
                &compiled.forward,
                &compiled.grad,
                0,
                |func, bound| gradc::interp::eval(func, &bound.dims, &bound.args),
                Default::default(),
            )
        })
        .unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }
}

#[test]
fn values_at_the_limit_still_evaluate() {
    // The limit is on values, not on how they are written: a literal dimension that is
    // large but fits is fine, and so is an empty input whose other dimension fits.
    let model =
        Model::from_source("input x: [N, 1000]\nparam w\nloss = w * sum(sum(x, 0))\n").unwrap();
    let bound = model.bind_json(&json!({"x": [], "w": 2})).unwrap();
    assert_eq!(model.forward(&bound).unwrap().loss, 0.0);
}

#[test]
fn data_json_accepts_numbers_beyond_the_f64_range_as_infinities() {
    let value = parse_json(r#"{"a": [1e400, -1e400, 1e-400, 2], "s": "1e400"}"#).unwrap();
    assert_eq!(
        value,
        json!({"a": ["Infinity", "-Infinity", 0.0, 2], "s": "1e400"})
    );
    // Text without them parses exactly as serde_json parses it.
    let text = r#"{"a": [0.1, 2, 2.0, -0.0, 1.7976931348623157e308, 5e-324]}"#;
    assert_eq!(
        parse_json(text).unwrap(),
        serde_json::from_str::<serde_json::Value>(text).unwrap()
    );
    // Errors keep serde_json's message and the position in the original text.
    let err = parse_json("{\"a\": [1e400, 2]\n, \"b\": 1e999 x}").unwrap_err();
    assert_eq!(
        err,
        JsonError::Syntax("expected `,` or `}` at line 2 column 14".into())
    );
    assert!(parse_json("[1e400")
        .unwrap_err()
        .to_string()
        .contains("EOF"));
    // A name given twice is found after the rewrite too, at its column in the text.
    let err = parse_json("{\"a\": [1e400, 2],\n \"a\": 1e999}").unwrap_err();
    assert_eq!(
        err,
        JsonError::Duplicate {
            name: "a".into(),
            line: 2,
            column: 4
        }
    );
    // Bound to a model: reals take them, ints do not.
    let model =
        Model::from_source("input x: [N]\ninput k: int[N]\nparam w\nloss = w * sum(x)\n").unwrap();
    let data = parse_json(r#"{"x": [1e400, 1], "k": [2, 2.0], "w": 1}"#).unwrap();
    let bound = model.bind_json(&data).unwrap();
    assert_eq!(bound.args[0].as_real().unwrap(), &[f64::INFINITY, 1.0]);
    let data = parse_json(r#"{"x": [1, 1], "k": [1e400, 2], "w": 1}"#).unwrap();
    let err = model.bind_json(&data).unwrap_err();
    assert!(err.to_string().contains("`k` must hold integers"), "{err}");
}

/// Data bound by another model (same number of arguments and dimensions), or changed
/// through `Bound`'s public fields, is an error naming the argument in both engines:
/// never a panic, and never read as if it had this model's shapes.
#[test]
fn a_bound_from_another_model_is_an_error_naming_the_argument() {
    let reals = both_engines("input x: [N]\nparam w: [N]\nloss = sum(x * w)\n");
    let gather = both_engines("input i: int[N]\nparam E: [N]\nloss = sum(E[i])\n");
    let columns = both_engines("input x: [N, 6]\nparam w: [6]\nloss = sum(x @ w)\n");
    let rows = both_engines("input x: [6, N]\nparam w: [6]\nloss = sum(w @ x)\n");
    let expect_err = |model: &Model, bound: &gradc::data::Bound, name: &str| {
        let forward = no_panic("forward", || model.forward(bound));
        let err = forward.expect_err("data of another model");
        assert!(err.to_string().contains(name), "should name {name}: {err}");
        let grads = no_panic("value_and_grad_vec", || model.value_and_grad_vec(bound));
        assert!(grads.is_err(), "value_and_grad_vec accepted it");
    };
    for (from, to) in reals.iter().zip(&gather) {
        let bound = from
            .bind(vec![
                ("x".to_string(), Tensor::real(vec![2], vec![0.0, 1.0])),
                ("w".to_string(), Tensor::real(vec![2], vec![1.0, 1.0])),
            ])
            .expect("binds");
        // Real data where `i` must be int: an index the native code would trust.
        expect_err(to, &bound, "`i`");
    }
    for (from, to) in columns.iter().zip(&rows) {
        let bound = from
            .bind(vec![
                (
                    "x".to_string(),
                    Tensor::real(vec![1, 6], (1..=6).map(f64::from).collect()),
                ),
                ("w".to_string(), Tensor::real(vec![6], vec![1.0; 6])),
            ])
            .expect("binds");
        // A [1, 6] `x` where [6, N] is declared.
        expect_err(to, &bound, "`x`");
        // The same model, its bound's shape changed by hand.
        let mut changed = bound.clone();
        changed.args[0].shape = vec![2, 3];
        expect_err(from, &changed, "`x`");
    }
}

#[test]
fn a_tensor_whose_length_does_not_match_its_shape_is_an_error_not_a_panic() {
    for model in both_engines("input x: [B, D]\nparam w: [D]\nloss = sum(x @ w)\n") {
        let bind = || {
            model.bind(vec![
                ("x".to_string(), Tensor::real(vec![4, 3], vec![0.0; 11])),
                ("w".to_string(), Tensor::real(vec![3], vec![1.0; 3])),
            ])
        };
        let err = no_panic("Tensor::real and bind", bind).expect_err("11 elements for [4, 3]");
        assert!(err.to_string().contains("`x`"), "{err}");
    }
}

const CLASSIFIER: &str = "input x: [B, D]\ninput labels: int[B]\nparam W: [D, K]\nparam b: [K]\n\
                          loss = -mean(pick(log_softmax(x @ W + b, 1), labels))\n";

/// Errors of the slice-level calls name the argument or param, as binding errors do.
#[test]
fn call_errors_name_the_argument_or_param() {
    for model in both_engines(CLASSIFIER) {
        let x = vec![0.5; 4 * 3];
        let bound = model
            .bind(vec![
                ("x".to_string(), Tensor::real(vec![4, 3], x.clone())),
                ("labels".to_string(), Tensor::int(vec![4], vec![0, 1, 0, 1])),
                ("W".to_string(), Tensor::real(vec![3, 2], vec![0.1; 6])),
                ("b".to_string(), Tensor::real(vec![2], vec![0.0; 2])),
            ])
            .expect("binds");
        let (mut gw, mut gb) = (vec![0.0; 6], vec![0.0; 2]);
        let err = no_panic("one buffer for two params", || {
            model.value_and_grad(&bound, &mut [&mut gw])
        })
        .expect_err("two params");
        let message = err.to_string();
        assert!(
            message.contains("1 gradient buffer given, 2 expected"),
            "{message}"
        );
        assert!(message.contains("`W`, `b`"), "{message}");
        let mut short = vec![0.0; 5];
        let err = no_panic("a short buffer", || {
            model.value_and_grad(&bound, &mut [&mut short, &mut gb])
        })
        .expect_err("5 elements for W");
        assert!(err.to_string().contains("gradient buffer of `W`"), "{err}");

        let mut call = model.prepare(&bound.dims).expect("prepares");
        let (w, b) = (vec![0.1; 6], vec![0.0; 2]);
        let labels = [0i64, 9, 0, 1];
        let args = [
            ArgData::Real(&x),
            ArgData::Int(&labels),
            ArgData::Real(&w),
            ArgData::Real(&b),
        ];
        let err = no_panic("a label out of range", || {
            call.value_and_grad(&args, &mut [&mut gw, &mut gb])
        })
        .expect_err("label 9 of 2 classes");
        // The same typed error from either engine.
        assert!(
            matches!(err, ModelError::Call(CallError::IndexOutOfRange { .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains("`labels`[1] = 9"), "{err}");
        assert!(err.to_string().contains("2 columns (K)"), "{err}");
        let err = no_panic("a short W", || {
            call.value_and_grad(
                &[args[0], args[1], ArgData::Real(&w[..5]), args[3]],
                &mut [&mut gw, &mut gb],
            )
        })
        .expect_err("5 elements of W");
        assert_eq!(
            err,
            ModelError::Call(CallError::WrongLength {
                name: "W".into(),
                expected: 6,
                found: 5
            })
        );
        assert!(err.to_string().contains("`W`"), "{err}");
        let good = [0i64, 1, 0, 1];
        let err = no_panic("a short gradient buffer", || {
            call.value_and_grad(
                &[args[0], ArgData::Int(&good), args[2], args[3]],
                &mut [&mut gw[..5], &mut gb],
            )
        })
        .expect_err("a short gradient of W");
        assert!(err.to_string().contains("`W`"), "{err}");
        // The checks read every argument before reporting: the last one is named too,
        // an element type is checked as well as a length, and counts are checked.
        let args = [args[0], ArgData::Int(&good), args[2], args[3]];
        let err = no_panic("a long b", || {
            call.forward(&[args[0], args[1], args[2], ArgData::Real(&[0.0; 3])])
        })
        .expect_err("3 elements of b");
        assert!(err.to_string().contains("`b`"), "{err}");
        let err = no_panic("int data for W", || {
            call.forward(&[args[0], args[1], ArgData::Int(&[0; 6]), args[3]])
        })
        .expect_err("int W");
        assert!(
            matches!(err, ModelError::Call(CallError::WrongElem { .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains("`W`"), "{err}");
        assert!(err.to_string().contains("int"), "{err}");
        let err = no_panic("three arguments", || call.forward(&args[..3]))
            .expect_err("three arguments of four");
        assert!(
            err.to_string().contains(
                "3 arguments given, 4 expected (the inputs and params in declaration order: \
                 `x`, `labels`, `W`, `b`)"
            ),
            "{err}"
        );
        let err = no_panic("one gradient buffer", || {
            call.value_and_grad(&args, &mut [&mut gw])
        })
        .expect_err("one buffer for two params");
        assert!(
            err.to_string()
                .contains("1 gradient buffer given, 2 expected"),
            "{err}"
        );
        let err = no_panic("a long gradient buffer of b", || {
            call.value_and_grad(&args, &mut [&mut gw, &mut [0.0; 3]])
        })
        .expect_err("3 elements for the gradient of b");
        assert!(
            matches!(err, ModelError::Call(CallError::GradBufferLength { .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains("gradient buffer of `b`"), "{err}");
        let loss = call
            .value_and_grad(&args, &mut [&mut gw, &mut gb])
            .expect("the same call with the right buffers runs");
        assert!(loss.is_finite(), "{loss}");
    }
}

#[test]
fn a_refused_forward_leaves_no_outputs_and_names_come_with_the_model() {
    let source = "input y: [K]\ninput x: [B, D]\ninput i: int\nparam W: [D, K]\n\
                  output first = (x @ W)[i]\nloss = sum(x @ W) + sum(y)\n";
    let model = Model::from_source(source).expect("compiles");
    // The order `prepare` takes sizes in: first appearance, not the axes of `x`.
    assert_eq!(model.dim_names(), ["K", "B", "D"]);
    let (y, x, w) = (vec![1.0; 2], vec![1.0; 6], vec![0.5; 6]);
    let mut call = model.prepare(&[2, 2, 3]).expect("prepares");
    let args = |i: &'static [i64]| {
        [
            ArgData::Real(&y),
            ArgData::Real(&x),
            ArgData::Int(i),
            ArgData::Real(&w),
        ]
    };
    call.forward(&args(&[1])).expect("runs");
    assert_eq!(call.outputs().count(), 1);
    let err = call.forward(&args(&[5])).expect_err("row 5 of 2");
    assert!(err.to_string().contains("`i` = 5"), "{err}");
    assert_eq!(call.outputs().count(), 0, "no stale outputs");
    // The owned path finds outputs by name; data changed after binding is refused so.
    let data = serde_json::json!({ "y": y, "x": [[1, 1, 1], [1, 1, 1]], "i": 0, "W": [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]] });
    let mut bound = model.bind_json(&data).expect("binds");
    let forward = model.forward(&bound).expect("runs");
    assert_eq!(
        forward.output("first").and_then(|t| t.as_real()),
        Some(&[1.5, 1.5][..])
    );
    assert!(forward.output("second").is_none());
    bound.dims[1] = 5;
    let err = model.forward(&bound).expect_err("B changed");
    assert!(err.to_string().contains("changed after binding"), "{err}");
}
