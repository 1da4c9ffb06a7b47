//! Call-time data: binding JSON and tensors (one test per error kind, each asserting the
//! message names the input and dimension), the output format and its round trip, and
//! the random point of `gradcheck`.

use gradc::data::{
    bind_json, bind_tensors, check_indices, format_json, random_point, random_point_with,
    results_json, run_output, tensor_to_json, Bound, CallError, RealSampling,
};
use gradc::ir::{
    ArgDecl, ArgRole, Dim, DimVar, Elem, FuncResult, Function, Op, ReduceOp, ResultRole, Type,
    Value,
};
use gradc::Tensor;
use serde_json::json;

const B: Dim = Dim::Sym(DimVar(0));
const D: Dim = Dim::Sym(DimVar(1));
const H: Dim = Dim::Sym(DimVar(2));
const V: Dim = Dim::Sym(DimVar(3));

fn arg(name: &str, role: ArgRole, elem: Elem, shape: Vec<Dim>) -> ArgDecl {
    ArgDecl {
        name: name.into(),
        role,
        ty: Type { elem, shape },
    }
}

/// A model using every kind of argument:
/// `x: [B, D]`, `labels: int[B]`, `W1: [D, H]`, `E: [V, D]`, `w1: int[B]`, `c: [3]`,
/// `s` (a real scalar), `i: int` (a scalar index into `c`); `E[w1]`, `pick(x @ W1,
/// labels)`, `c[i]`, `c[2]`.
fn model() -> Function {
    use ArgRole::{Input, Param};
    let args = vec![
        arg("x", Input, Elem::Real, vec![B, D]),
        arg("labels", Input, Elem::Int, vec![B]),
        arg("W1", Param, Elem::Real, vec![D, H]),
        arg("E", Param, Elem::Real, vec![V, D]),
        arg("w1", Input, Elem::Int, vec![B]),
        arg("c", Param, Elem::Real, vec![Dim::Const(3)]),
        arg("s", Param, Elem::Real, vec![]),
        arg("i", Input, Elem::Int, vec![]),
    ];
    let dims = ["B", "D", "H", "V"].map(String::from).to_vec();
    let mut func = Function::new("forward", dims, args);
    let x = func.push(Op::Arg(0));
    let labels = func.push(Op::Arg(1));
    let w1_param = func.push(Op::Arg(2));
    let table = func.push(Op::Arg(3));
    let w1 = func.push(Op::Arg(4));
    let c = func.push(Op::Arg(5));
    let s = func.push(Op::Arg(6));
    let i = func.push(Op::Arg(7));
    let hidden = func.push(Op::MatMul(x, w1_param));
    let picked = func.push(Op::Pick(hidden, labels));
    let embedded = func.push(Op::Gather(table, w1));
    let c_i = func.push(Op::Gather(c, i));
    let two = func.push(Op::ConstInt(2));
    let c_2 = func.push(Op::Gather(c, two));
    let mut total = func.push(Op::Reduce(ReduceOp::Sum, picked, gradc::ir::Axes(1)));
    let e_sum = func.push(Op::Reduce(ReduceOp::Sum, embedded, gradc::ir::Axes(3)));
    for term in [e_sum, c_i, c_2, s] {
        total = func.push(Op::Binary(gradc::ir::BinaryOp::Add, total, term));
    }
    func.results.push(FuncResult {
        name: "loss".into(),
        role: ResultRole::Loss,
        value: total,
    });
    func
}

/// Valid data for [`model`]: B = 2, D = 3, H = 2, V = 4.
fn good_data() -> serde_json::Value {
    json!({
        "x": [[1, 2, 3], [4, 5, 6.5]],
        "labels": [1, 0],
        "W1": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]],
        "E": [[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4]],
        "w1": [3, 0],
        "c": [1.5, "NaN", "-Infinity"],
        "s": "Infinity",
        "i": 2.0,
    })
}

/// `good_data` with one entry replaced (or removed, for `null`).
fn with(name: &str, value: serde_json::Value) -> serde_json::Value {
    let mut data = good_data();
    let object = data.as_object_mut().unwrap();
    if value.is_null() {
        object.remove(name);
    } else {
        object.insert(name.into(), value);
    }
    data
}

fn error(data: serde_json::Value) -> String {
    match bind_json(&model(), &data) {
        Ok(_) => panic!("expected a call error for {data}"),
        Err(e) => e.to_string(),
    }
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "{message:?} should mention {part:?}"
        );
    }
}

#[test]
fn good_data_binds_every_dimension_and_argument() {
    let bound = bind_json(&model(), &good_data()).unwrap();
    assert_eq!(bound.dims, vec![2, 3, 2, 4]);
    assert_eq!(
        bound.args[0],
        Tensor::real(vec![2, 3], vec![1., 2., 3., 4., 5., 6.5])
    );
    assert_eq!(bound.args[1], Tensor::int(vec![2], vec![1, 0]));
    assert_eq!(bound.args[7], Tensor::int(vec![], vec![2]));
    let c = bound.args[5].as_real().unwrap();
    assert_eq!(c[0], 1.5);
    assert!(c[1].is_nan());
    assert_eq!(c[2], f64::NEG_INFINITY);
    assert_eq!(bound.args[6].as_real().unwrap(), &[f64::INFINITY]);
    // The bound data evaluates.
    let results = gradc::interp::eval(&model(), &bound.dims, &bound.args).unwrap();
    assert_eq!(results.len(), 1);
}

#[test]
fn missing_data_names_the_argument() {
    assert_mentions(
        &error(with("W1", serde_json::Value::Null)),
        &["missing", "`W1`"],
    );
}

#[test]
fn unexpected_data_names_the_key() {
    assert_mentions(&error(with("foo", json!(1))), &["unexpected", "`foo`"]);
}

#[test]
fn data_that_is_not_an_object_is_an_error() {
    let message = bind_json(&model(), &json!([1, 2])).unwrap_err().to_string();
    assert_mentions(&message, &["object", "a list"]);
}

#[test]
fn wrong_rank_names_the_argument_and_its_declared_dimensions() {
    assert_mentions(
        &error(with("x", json!([1, 2, 3]))),
        &["`x`", "rank 2", "[B, D]", "a list of numbers"],
    );
    assert_mentions(
        &error(with("labels", json!(3))),
        &["`labels`", "[B]", "a number"],
    );
    assert_mentions(
        &error(with("s", json!([1.0]))),
        &["`s`", "rank 0", "a list"],
    );
    assert_mentions(
        &error(with("labels", json!([[1], [0]]))),
        &["`labels`", "rank 1", "a list of rows"],
    );
    assert_mentions(&error(with("x", json!([[1, 2, 3], 4]))), &["`x`", "rank 2"]);
    assert_mentions(&error(with("x", json!({"a": 1}))), &["`x`", "an object"]);
}

#[test]
fn disagreeing_dimensions_name_the_dimension_and_both_arguments() {
    let message = error(with("labels", json!([1, 0, 1])));
    assert_mentions(
        &message,
        &["dimension `B`", "2 from `x`", "3 from `labels`"],
    );
    let message = error(with("W1", json!([[0.1, 0.2], [0.3, 0.4]])));
    assert_mentions(&message, &["dimension `D`", "3 from `x`", "2 from `W1`"]);
}

#[test]
fn ragged_rows_name_the_argument_the_row_and_the_dimension() {
    let message = error(with("x", json!([[1, 2, 3], [4, 5, 6, 7]])));
    assert_mentions(&message, &["`x`", "3 columns", "(D", "row 1 has 4"]);
}

#[test]
fn a_literal_dimension_with_the_wrong_size_names_the_argument() {
    let message = error(with("c", json!([1, 2, 3, 4])));
    assert_mentions(&message, &["`c`", "3 elements", "got 4"]);
}

#[test]
fn int_data_must_be_integral() {
    let message = error(with("labels", json!([1, 2.5])));
    assert_mentions(&message, &["`labels`", "integers", "element 1", "2.5"]);
    assert!(!error(with("labels", json!([1, "1"]))).contains("64 bits"));
    // Integral, but beyond an i64: said so, not that it is no integer.
    for bad in [json!([1, 1e30]), json!([1, 18446744073709551615u64])] {
        let message = error(with("labels", bad));
        assert_mentions(&message, &["`labels`", "integers", "64 bits", "element 1"]);
    }
    let bound = bind_json(&model(), &with("labels", json!([1.0, -0.0]))).unwrap();
    assert_eq!(bound.args[1], Tensor::int(vec![2], vec![1, 0]));
    // One below i64::MIN rounds to it as an f64: refused, not read as i64::MIN.
    let below: serde_json::Value = gradc::data::parse_json("[1, -9223372036854775809]").unwrap();
    let message = error(with("labels", below));
    assert_mentions(&message, &["`labels`", "64 bits", "element 1"]);
    let least: serde_json::Value = gradc::data::parse_json("[1, -9223372036854775808]").unwrap();
    let message = error(with("labels", least));
    assert!(!message.contains("64 bits"), "{message}");
}

/// Binds `DATA.json` text as the command line does ([`gradc::data::bind_data`]).
fn bind_text(text: &str) -> Result<Bound, String> {
    let data = gradc::data::DataFile::parse(text.to_string()).map_err(|e| e.to_string())?;
    gradc::data::bind_data(&model(), &data).map_err(|e| e.to_string())
}

/// `good_data()` as text, with `name`'s value written as `value`.
fn text_with(name: &str, value: &str) -> String {
    let mut text = String::from("{");
    for (key, given) in good_data().as_object().unwrap() {
        let written = if key == name {
            value.to_string()
        } else {
            given.to_string()
        };
        text.push_str(&format!("{key:?}: {written}, "));
    }
    text.truncate(text.len() - 2);
    text + "}"
}

#[test]
fn int_data_read_from_text_must_be_integral_as_written() {
    // Each parses to an integral f64 (1, 0, 2, 1e19) but is no integer.
    for (name, value, element, written) in [
        (
            "labels",
            "[0, 0.99999999999999999]",
            "element 1",
            "0.99999999999999999",
        ),
        ("labels", "[1e-400, 0]", "element 0", "1e-400"),
        ("i", "1.99999999999999999e0", "", "1.99999999999999999e0"),
        (
            "w1",
            "[0, 10000000000000000000.5]",
            "element 1",
            "10000000000000000000.5",
        ),
    ] {
        let message = bind_text(&text_with(name, value)).unwrap_err();
        let expected = [
            format!("`{name}`"),
            "integers".into(),
            element.into(),
            written.into(),
        ];
        for part in &expected {
            assert!(
                message.contains(part.as_str()),
                "{message:?} should mention {part:?}"
            );
        }
        assert!(!message.contains("64 bits"), "{message}");
        // Without the text, the f64 is all there is.
        let parsed = gradc::data::parse_json(&text_with(name, value)).unwrap();
        assert!(!bind_json(&model(), &parsed).is_err_and(|e| e.to_string().contains(written)));
    }
    // Integral as written, however spelt: read as the integer.
    for (value, labels) in [
        ("[1, 0]", [1, 0]),
        ("[1.0, -0.0]", [1, 0]),
        ("[10e-1, 0.0e5]", [1, 0]),
        ("[0.1e1, 100000000000000000000e-20]", [1, 1]),
        ("[1E0, 0.00e-3]", [1, 0]),
    ] {
        let bound =
            bind_text(&text_with("labels", value)).unwrap_or_else(|e| panic!("{value}: {e}"));
        assert_eq!(bound.args[1], Tensor::int(vec![2], labels.to_vec()));
    }
    let message = bind_text(&text_with("labels", "[1, 2.50e-1]")).unwrap_err();
    assert!(message.contains("element 1 is 2.50e-1"), "{message}");
    // Too large for an f64 (read as "Infinity"): an integer beyond 64 bits, as written.
    let message = bind_text(&text_with("labels", "[1, -1e400]")).unwrap_err();
    assert!(
        message.contains("64 bits") && message.contains("element 1 is -1e400"),
        "{message}"
    );
    let message = bind_text(&text_with("labels", "[1, \"Infinity\"]")).unwrap_err();
    assert!(
        !message.contains("64 bits") && message.contains("\"Infinity\""),
        "{message}"
    );
    // The integer is read from the digits, exactly: no f64 holds 2^53 + 1, and the
    // i64 limits fit whatever their spelling.
    for (written, value) in [
        ("9007199254740993.0", 9007199254740993),
        ("90071992547409930e-1", 9007199254740993),
        ("9.223372036854775807e18", i64::MAX),
        ("-9223372036854775808.0", i64::MIN),
        ("-0.0e5", 0),
        ("0e99999999999999999999", 0),
    ] {
        // `i` indexes `c` (3 elements): the big ones are refused, by their exact value.
        match bind_text(&text_with("i", written)) {
            Ok(bound) => assert_eq!(bound.args[7], Tensor::int(vec![], vec![value])),
            Err(message) => assert!(
                message.contains(&format!("`i` = {value} is out of range")),
                "{written}: {message}"
            ),
        }
    }
    for past in [
        "9223372036854775808.0",
        "-9223372036854775809.0",
        "1e999999999",
    ] {
        let message = bind_text(&text_with("i", past)).unwrap_err();
        assert!(
            message.contains("64 bits") && message.ends_with(past),
            "{message}"
        );
    }
    // A literal of a hundred digits is shown cut short.
    let long = format!("1e-{}", "9".repeat(100));
    let message = bind_text(&text_with("i", &long)).unwrap_err();
    assert!(
        message.ends_with("... (103 characters)") && message.len() < 150,
        "{message}"
    );
}

#[test]
fn a_name_given_twice_in_the_data_is_an_error() {
    let text = "{\"x\": 1,\n \"w\": [2],\n \"x\": 3}";
    let error = gradc::data::parse_json(text).unwrap_err();
    assert_eq!(
        error,
        gradc::data::JsonError::Duplicate {
            name: "x".into(),
            line: 3,
            column: 4
        }
    );
    assert_mentions(&error.to_string(), &["`x`", "twice", "line 3"]);
    // Nested objects are not data and the binder refuses them; only names must be unique.
    let fine = gradc::data::parse_json("{\"x\": 1, \"w\": [2]}").unwrap();
    assert_eq!(fine, json!({"x": 1, "w": [2]}));
    for not_an_object in ["[1, 2]", "3", "\"x\"", "null", "true"] {
        let value = gradc::data::parse_json(not_an_object).unwrap();
        let expected: serde_json::Value = serde_json::from_str(not_an_object).unwrap();
        assert_eq!(value, expected);
    }
}

#[test]
fn real_data_must_be_numbers() {
    let message = error(with("x", json!([[1, 2, 3], [4, "five", 6]])));
    assert_mentions(&message, &["`x`", "numbers", "element [1, 1]", "\"five\""]);
    assert_mentions(&error(with("s", json!(null))), &["missing", "`s`"]);
    assert_mentions(&error(with("s", json!(true))), &["`s`", "true"]);
}

#[test]
fn an_index_out_of_range_names_the_index_the_table_and_the_dimension() {
    let message = error(with("w1", json!([3, 4])));
    assert_mentions(&message, &["`w1`[1] = 4", "`E`", "4 rows", "(V)"]);
    let message = error(with("w1", json!([-1, 0])));
    assert_mentions(&message, &["`w1`[0] = -1", "`E`"]);
    let message = error(with("labels", json!([2, 0])));
    assert_mentions(&message, &["`labels`[0] = 2", "pick", "2 columns", "(H)"]);
    let message = error(with("i", json!(3)));
    assert_mentions(&message, &["`i` = 3", "`c`", "3 elements"]);
}

#[test]
fn a_literal_index_out_of_range_is_reported_at_call_time() {
    let mut func = model();
    // `c[2]` becomes `c[9]`: literal indices are range-checked with the data too.
    let literal = func
        .insts
        .iter()
        .position(|inst| inst.op == Op::ConstInt(2))
        .unwrap();
    func.insts[literal].op = Op::ConstInt(9);
    let message = bind_json(&func, &good_data()).unwrap_err().to_string();
    assert_mentions(&message, &["literal index 9", "`c`", "3 elements"]);
}

#[test]
fn a_dimension_no_argument_binds_is_an_error() {
    let args = vec![arg("labels", ArgRole::Input, Elem::Int, vec![B])];
    let mut func = Function::new("forward", vec!["B".into(), "K".into()], args);
    let labels = func.push(Op::Arg(0));
    let one_hot = func.push(Op::OneHot(labels, Dim::Sym(DimVar(1))));
    let total = func.push(Op::Reduce(ReduceOp::Sum, one_hot, gradc::ir::Axes(3)));
    func.results.push(FuncResult {
        name: "loss".into(),
        role: ResultRole::Loss,
        value: total,
    });
    let message = bind_json(&func, &json!({"labels": [0, 1]}))
        .unwrap_err()
        .to_string();
    assert_mentions(&message, &["dimension `K`", "not determined"]);
}

#[test]
fn empty_lists_have_size_zero_and_empty_matrices_take_columns_from_elsewhere() {
    let empty = json!({
        "x": [], "labels": [], "W1": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]],
        "E": [[1, 1, 1]], "w1": [], "c": [1, 2, 3], "s": 0, "i": 0,
    });
    let bound = bind_json(&model(), &empty).unwrap();
    assert_eq!(bound.dims, vec![0, 3, 2, 1]);
    assert_eq!(bound.args[0], Tensor::real(vec![0, 3], vec![]));
    assert_eq!(bound.args[1], Tensor::int(vec![0], vec![]));
    gradc::interp::eval(&model(), &bound.dims, &bound.args).unwrap();

    // `x` is the only argument with `D`: an empty `x` leaves it undetermined.
    let args = vec![arg("x", ArgRole::Input, Elem::Real, vec![B, D])];
    let mut func = Function::new("forward", vec!["B".into(), "D".into()], args);
    let x = func.push(Op::Arg(0));
    let total = func.push(Op::Reduce(ReduceOp::Sum, x, gradc::ir::Axes(3)));
    func.results.push(FuncResult {
        name: "loss".into(),
        role: ResultRole::Loss,
        value: total,
    });
    let message = bind_json(&func, &json!({"x": []})).unwrap_err().to_string();
    assert_mentions(&message, &["dimension `D`", "`x` is empty"]);
    let bound = bind_json(&func, &json!({"x": [[], []]})).unwrap();
    assert_eq!(bound.dims, vec![2, 0]);
}

fn good_tensors() -> Vec<(String, Tensor)> {
    let bound = bind_json(&model(), &good_data()).unwrap();
    model()
        .args
        .iter()
        .map(|decl| decl.name.clone())
        .zip(bound.args)
        .collect()
}

fn tensor_error(named: Vec<(String, Tensor)>) -> CallError {
    bind_tensors(&model(), named).unwrap_err()
}

#[test]
fn bind_tensors_validates_like_bind_json() {
    let bound = bind_tensors(&model(), good_tensors()).unwrap();
    // Compared as text: the data holds a NaN.
    let from_json = bind_json(&model(), &good_data()).unwrap();
    assert_eq!(format!("{bound:?}"), format!("{from_json:?}"));

    let mut named = good_tensors();
    named.remove(2);
    assert_mentions(&tensor_error(named).to_string(), &["missing", "`W1`"]);

    let mut named = good_tensors();
    named.push(("foo".into(), Tensor::scalar(1.0)));
    assert_mentions(&tensor_error(named).to_string(), &["unexpected", "`foo`"]);

    let mut named = good_tensors();
    named.push(("x".into(), Tensor::scalar(1.0)));
    assert_mentions(&tensor_error(named).to_string(), &["`x`", "twice"]);

    let mut named = good_tensors();
    named[1].1 = Tensor::real(vec![2], vec![1.0, 0.0]);
    assert_mentions(
        &tensor_error(named).to_string(),
        &["`labels`", "int", "real"],
    );

    let mut named = good_tensors();
    named[0].1 = Tensor::real(vec![6], vec![0.0; 6]);
    assert_mentions(&tensor_error(named).to_string(), &["`x`", "[B, D]", "[6]"]);

    let mut named = good_tensors();
    named[0].1 = Tensor {
        shape: vec![2, 3],
        data: gradc::TensorData::Real(vec![0.0; 5]),
    };
    assert_mentions(&tensor_error(named).to_string(), &["`x`", "5 elements"]);

    let mut named = good_tensors();
    named[1].1 = Tensor::int(vec![3], vec![0, 0, 0]);
    assert_mentions(
        &tensor_error(named).to_string(),
        &["dimension `B`", "`labels`"],
    );

    let mut named = good_tensors();
    named[4].1 = Tensor::int(vec![2], vec![0, 4]);
    assert_mentions(&tensor_error(named).to_string(), &["`w1`[1] = 4", "(V)"]);
}

#[test]
fn check_indices_catches_a_bound_built_by_hand() {
    let mut bound: Bound = bind_json(&model(), &good_data()).unwrap();
    bound.args[4] = Tensor::int(vec![2], vec![0, 99]);
    let message = check_indices(&model(), &bound).unwrap_err().to_string();
    assert_mentions(&message, &["`w1`[1] = 99", "`E`"]);
}

const AWKWARD: [f64; 12] = [
    0.1,
    1e-300,
    5e-324,
    1.7976931348623157e308,
    -0.0,
    0.0,
    2.0,
    -1.5e-7,
    123456789.12345679,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
];

#[test]
fn awkward_floats_round_trip_exactly_through_the_output_format() {
    let tensor = Tensor::real(vec![AWKWARD.len()], AWKWARD.to_vec());
    let text = format_json(&tensor_to_json(&tensor));
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Read it back as data for a `[N]` real input.
    let args = vec![arg("v", ArgRole::Input, Elem::Real, vec![B])];
    let func = Function::new("f", vec!["B".into()], args);
    let bound = bind_json(&func, &json!({ "v": parsed })).unwrap();
    let back = bound.args[0].as_real().unwrap();
    for (x, y) in AWKWARD.iter().zip(back) {
        if x.is_nan() {
            assert!(y.is_nan());
        } else {
            assert_eq!(
                x.to_bits(),
                y.to_bits(),
                "{x:e} came back as {y:e} from {text}"
            );
        }
    }
    assert!(
        text.contains("\"NaN\"") && text.contains("\"-Infinity\""),
        "{text}"
    );
}

#[test]
fn tensors_print_as_numbers_lists_and_lists_of_rows() {
    assert_eq!(format_json(&tensor_to_json(&Tensor::scalar(2.0))), "2.0");
    assert_eq!(
        format_json(&tensor_to_json(&Tensor::real(vec![2], vec![0.5, f64::NAN]))),
        "[0.5, \"NaN\"]"
    );
    assert_eq!(
        format_json(&tensor_to_json(&Tensor::real(
            vec![2, 2],
            vec![1.0, 2.0, 3.0, 4.0]
        ))),
        "[[1.0, 2.0], [3.0, 4.0]]"
    );
    assert_eq!(
        format_json(&tensor_to_json(&Tensor::real(vec![0, 3], vec![]))),
        "[]"
    );
    assert_eq!(
        format_json(&tensor_to_json(&Tensor::real(vec![2, 0], vec![]))),
        "[[], []]"
    );
}

/// `tensor_to_json` is public: tensors the language cannot produce (rank 3, or a shape
/// that does not match the data) still print, without a panic or a huge output.
#[test]
fn any_tensor_prints_without_a_panic() {
    let cube = Tensor::real(vec![2, 1, 2], vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(
        format_json(&tensor_to_json(&cube)),
        "[[[1.0, 2.0]], [[3.0, 4.0]]]"
    );
    let malformed = Tensor::real(vec![1 << 40, 1 << 40], vec![1.0, 2.0]);
    assert_eq!(format_json(&tensor_to_json(&malformed)), "[1.0, 2.0]");
    let empty_scalar = Tensor::real(vec![], vec![]);
    assert_eq!(format_json(&tensor_to_json(&empty_scalar)), "[]");
}

#[test]
fn run_output_has_loss_grad_and_outputs_in_order() {
    let text = run_output(
        &Tensor::scalar(0.25),
        Some(vec![
            ("W".into(), Tensor::real(vec![1, 2], vec![1.0, -2.0])),
            ("b".into(), Tensor::scalar(f64::INFINITY)),
        ]),
        vec![("probs".into(), Tensor::real(vec![2], vec![0.5, 0.5]))],
    );
    assert_eq!(
        text,
        r#"{"loss": 0.25, "grad": {"W": [[1.0, -2.0]], "b": "Infinity"}, "outputs": {"probs": [0.5, 0.5]}}"#
    );
    let forward_only = run_output(&Tensor::scalar(f64::NAN), None, vec![]);
    assert_eq!(forward_only, r#"{"loss": "NaN", "outputs": {}}"#);
    // Keys in the order given, not sorted.
    let text = run_output(
        &Tensor::scalar(1.0),
        Some(vec![
            ("z".into(), Tensor::scalar(1.0)),
            ("a".into(), Tensor::scalar(2.0)),
        ]),
        vec![],
    );
    assert!(text.find("\"z\"") < text.find("\"a\""), "{text}");
}

#[test]
fn results_json_picks_loss_outputs_and_gradients_by_role() {
    let args = vec![arg("w", ArgRole::Param, Elem::Real, vec![])];
    let mut forward = Function::new("forward", vec![], args.clone());
    let w = forward.push(Op::Arg(0));
    let square = forward.push(Op::Unary(gradc::ir::UnaryOp::Square, w));
    forward.results = vec![
        FuncResult {
            name: "loss".into(),
            role: ResultRole::Loss,
            value: square,
        },
        FuncResult {
            name: "twice".into(),
            role: ResultRole::Output,
            value: w,
        },
    ];
    let mut grad = Function::new("grad", vec![], args);
    let w = grad.push(Op::Arg(0));
    grad.results = vec![
        FuncResult {
            name: "loss".into(),
            role: ResultRole::Loss,
            value: w,
        },
        FuncResult {
            name: "w".into(),
            role: ResultRole::Grad(0),
            value: Value(0),
        },
    ];
    let text = results_json(
        &forward,
        &[Tensor::scalar(9.0), Tensor::scalar(3.0)],
        Some((&grad, &[Tensor::scalar(9.0), Tensor::scalar(6.0)])),
    );
    assert_eq!(
        text,
        r#"{"loss": 9.0, "grad": {"w": 6.0}, "outputs": {"twice": 3.0}}"#
    );
}

#[test]
fn random_points_are_deterministic_in_range_and_evaluate() {
    let func = model();
    let a = random_point(&func, 7);
    assert_eq!(a, random_point(&func, 7));
    assert_ne!(a, random_point(&func, 8));
    let mut sizes = a.dims.clone();
    sizes.sort();
    assert_eq!(sizes, vec![2, 3, 4, 5], "distinct small sizes");
    check_indices(&func, &a).unwrap();
    gradc::interp::eval(&func, &a.dims, &a.args).unwrap();
    // Index data stays in range for many seeds; signed reals avoid 0.
    for seed in 0..50 {
        let point = random_point(&func, seed);
        check_indices(&func, &point).unwrap();
        for x in point.args[0].as_real().unwrap() {
            assert!((0.25..=1.25).contains(&x.abs()), "{x}");
        }
        let positive = random_point_with(&func, seed, RealSampling::Positive);
        for x in positive.args[0].as_real().unwrap() {
            assert!((0.5..=1.5).contains(x), "{x}");
        }
    }
}

#[test]
fn an_index_into_an_indexed_or_transposed_argument_names_it_as_written() {
    let message_of = |source: &str, data: serde_json::Value| {
        let compiled = gradc::driver::compile(source).expect("compiles");
        bind_json(&compiled.forward, &data).unwrap_err().to_string()
    };
    let data = json!({"E": [[1, 2], [3, 4]]});
    let message = message_of("param E: [V, D]\nloss = E[0][5]\n", data.clone());
    assert_mentions(
        &message,
        &["literal index 5", "`E[0]`", "2 elements", "(D)"],
    );
    let message = message_of("param E: [V, D]\nloss = sum(E.T[5])\n", data);
    assert_mentions(&message, &["literal index 5", "`E.T`", "2 rows", "(D)"]);
    let data = json!({"E": [[1, 2], [3, 4]], "k": 7});
    let message = message_of("param E: [V, D]\ninput k: int\nloss = E[1][k]\n", data);
    assert_mentions(&message, &["`k` = 7", "`E[1]`", "2 elements"]);
}
