//! Arithmetic keeps IEEE semantics through the simplifier, the native code and the
//! interpreter: nothing is reassociated or folded in a way that changes a result.

use serde_json::Value;
use std::process::Command;

/// The `outputs` of `gradc run FILE --data DATA --forward` (plus `--interp` when asked).
fn outputs(source: &str, data: &str, interp: bool) -> serde_json::Map<String, Value> {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("arithmetic");
    std::fs::create_dir_all(&dir).unwrap();
    // Tests run in parallel: one pair of files per source and mode.
    let stem = format!("{:016x}{interp}", {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        source.hash(&mut hasher);
        hasher.finish()
    });
    let (file, data_file) = (
        dir.join(format!("{stem}.loss")),
        dir.join(format!("{stem}.json")),
    );
    std::fs::write(&file, source).unwrap();
    std::fs::write(&data_file, data).unwrap();
    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--data",
        data_file.to_str().unwrap(),
    ];
    args.push("--forward");
    if interp {
        args.push("--interp");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_gradc"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["outputs"].as_object().unwrap().clone()
}

/// A JSON number or one of the strings gradc prints for non-finite values.
fn number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        _ => panic!("not a number: {v}"),
    }
}

/// Output `name` as numbers, checked to be the same bits in native code and interpreter.
fn output(source: &str, data: &str, name: &str) -> Vec<f64> {
    let [native, interpreted] = [false, true].map(|interp| {
        outputs(source, data, interp)[name]
            .as_array()
            .unwrap()
            .iter()
            .map(number)
            .collect::<Vec<f64>>()
    });
    let bits = |xs: &[f64]| xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let same = native
        .iter()
        .zip(&interpreted)
        .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
    assert!(
        same,
        "{name}: native {native:?} != interpreter {interpreted:?} ({:?})",
        bits(&native)
    );
    native
}

const X: &str =
    r#"{"x": [-0.0, "-Infinity", "Infinity", "NaN", 8.444218515250482, 4, 2.25], "w": 1}"#;

/// The same bits as `expected` (NaN matching NaN).
fn assert_bits(got: &[f64], expected: &[f64]) {
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(expected) {
        assert!(
            g.to_bits() == e.to_bits() || (g.is_nan() && e.is_nan()),
            "got {got:?}, expected {expected:?}"
        );
    }
}

fn xs() -> Vec<f64> {
    vec![
        -0.0,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NAN,
        8.444218515250482,
        4.0,
        2.25,
    ]
}

#[test]
fn times_zero_is_nan_for_infinite_and_nan_values() {
    let source = "input x: [N]\nparam w\noutput a = x * 0\noutput b = 0 * x\nloss = w\n";
    let expected: Vec<f64> = xs().iter().map(|x| x * 0.0).collect();
    assert_bits(&output(source, X, "a"), &expected);
    assert_bits(&output(source, X, "b"), &expected);
}

#[test]
fn chains_of_constant_factors_round_left_to_right() {
    let source = "input x: [N]\nparam w\noutput a = x * 0.1 * 3\noutput b = x * 3 * 0.5\noutput c = x / 3\nloss = w\n";
    let a: Vec<f64> = xs().iter().map(|x| x * 0.1 * 3.0).collect();
    let b: Vec<f64> = xs().iter().map(|x| x * 3.0 * 0.5).collect();
    let c: Vec<f64> = xs().iter().map(|x| x / 3.0).collect();
    assert_bits(&output(source, X, "a"), &a);
    assert_bits(&output(source, X, "b"), &b);
    assert_bits(&output(source, X, "c"), &c);
}

#[test]
fn a_half_power_is_c_pow_not_sqrt() {
    let source = "input x: [N]\nparam w\noutput a = x ^ 0.5\nloss = w\n";
    let expected: Vec<f64> = xs().iter().map(|x| x.powf(0.5)).collect();
    // C's pow: +0 at -0 and +inf at -inf, where sqrt gives -0 and NaN.
    assert_eq!(expected[..2], [0.0, f64::INFINITY]);
    assert_bits(&output(source, X, "a"), &expected);
}

#[test]
fn an_integer_literal_beyond_i64_is_a_real_in_arithmetic() {
    let source =
        "input x: [N]\nparam w\noutput a = x * 99999999999999999999999999999999999\nloss = w\n";
    let expected: Vec<f64> = xs()
        .iter()
        .map(|x| x * 99999999999999999999999999999999999.0)
        .collect();
    assert_bits(&output(source, X, "a"), &expected);
}
