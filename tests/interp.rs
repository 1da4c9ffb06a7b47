//! The reference interpreter on hand-built IR: every op at ranks 0, 1 and 2, compared
//! with values computed independently here by plain loops.

use gradc::interp::eval;
use gradc::ir::{
    ArgDecl, ArgRole, Axes, BinaryOp, CmpOp, Dim, DimVar, Elem, FuncResult, Function, Op, ReduceOp,
    ResultRole, Shape, Type, UnaryOp, Value,
};
use gradc::{Tensor, TensorData};

/// A plain scalar function used as the reference for an op.
type Scalar1 = fn(f64) -> f64;
/// A plain binary function used as the reference for an op.
type Scalar2 = fn(f64, f64) -> f64;

const M: Dim = Dim::Sym(DimVar(0));
const N: Dim = Dim::Sym(DimVar(1));

fn input(name: &str, elem: Elem, shape: Shape) -> ArgDecl {
    ArgDecl {
        name: name.to_string(),
        role: ArgRole::Input,
        ty: Type { elem, shape },
    }
}

/// A function over dims `M`, `N` and the given arguments; `body` pushes instructions
/// (argument `k` is available as `Op::Arg(k)`) and returns the values to return.
fn build(args: Vec<ArgDecl>, body: impl FnOnce(&mut Function) -> Vec<Value>) -> Function {
    let mut func = Function::new("test", vec!["M".into(), "N".into()], args);
    let results = body(&mut func);
    for (k, value) in results.into_iter().enumerate() {
        func.results.push(FuncResult {
            name: format!("r{k}"),
            role: ResultRole::Output,
            value,
        });
    }
    func
}

fn real(shape: &[usize], data: Vec<f64>) -> Tensor {
    Tensor::real(shape.to_vec(), data)
}

fn run(func: &Function, dims: &[usize], args: &[Tensor]) -> Vec<Tensor> {
    eval(func, dims, args).unwrap_or_else(|msg| panic!("eval failed: {msg}"))
}

/// Equal up to a few ulps of relative error; NaN equals NaN; infinities exactly.
fn assert_close(got: &Tensor, shape: &[usize], want: &[f64]) {
    assert_eq!(got.shape, shape, "shape");
    let got = got.as_real().expect("a real result");
    assert_eq!(got.len(), want.len(), "length");
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= 1e-13 * w.abs().max(1.0)
        };
        assert!(
            ok,
            "element {k}: got {g}, want {w}\n got {got:?}\nwant {want:?}"
        );
    }
}

fn sample(n: usize, seed: f64) -> Vec<f64> {
    (0..n)
        .map(|k| ((k as f64 + 1.0) * seed).sin() * 2.0)
        .collect()
}

#[test]
fn unary_ops_at_every_rank_match_plain_formulas() {
    let table: Vec<(UnaryOp, Scalar1)> = vec![
        (UnaryOp::Neg, |x| -x),
        (UnaryOp::Exp, |x| x.exp()),
        (UnaryOp::Log, |x| x.ln()),
        (UnaryOp::Log1p, |x| (1.0 + x).ln()),
        (UnaryOp::Sqrt, |x| x.sqrt()),
        (UnaryOp::Sin, |x| x.sin()),
        (UnaryOp::Cos, |x| x.cos()),
        (UnaryOp::Tanh, |x| {
            (x.exp() - (-x).exp()) / (x.exp() + (-x).exp())
        }),
        (UnaryOp::Sigmoid, |x| 1.0 / (1.0 + (-x).exp())),
        (UnaryOp::Relu, |x| if x > 0.0 { x } else { 0.0 }),
        (UnaryOp::Softplus, |x| (1.0 + x.exp()).ln()),
        (UnaryOp::Abs, |x| if x < 0.0 { -x } else { x }),
        (UnaryOp::Square, |x| x * x),
    ];
    for (op, reference) in table {
        for shape in [vec![], vec![M], vec![M, N]] {
            let func = build(vec![input("x", Elem::Real, shape.clone())], |f| {
                let x = f.push(Op::Arg(0));
                vec![f.push(Op::Unary(op, x))]
            });
            let sizes: Vec<usize> = [2, 3][..shape.len()].to_vec();
            let n: usize = sizes.iter().product();
            // Positive values for log/sqrt, mixed signs otherwise.
            let data: Vec<f64> = match op {
                UnaryOp::Log | UnaryOp::Log1p | UnaryOp::Sqrt => {
                    sample(n, 0.7).iter().map(|x| x.abs() + 0.1).collect()
                }
                _ => sample(n, 0.7),
            };
            let got = run(&func, &[2, 3], &[real(&sizes, data.clone())]);
            let want: Vec<f64> = data.iter().map(|&x| reference(x)).collect();
            // log1p and tanh differ from the naive formula by rounding only.
            assert_eq!(got[0].shape, sizes);
            for (g, w) in got[0].as_real().unwrap().iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                    "{op:?}: {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn sigmoid_and_softplus_do_not_overflow_for_large_arguments() {
    let func = build(vec![input("x", Elem::Real, vec![M])], |f| {
        let x = f.push(Op::Arg(0));
        vec![
            f.push(Op::Unary(UnaryOp::Sigmoid, x)),
            f.push(Op::Unary(UnaryOp::Softplus, x)),
            f.push(Op::Unary(UnaryOp::Relu, x)),
        ]
    });
    let x = vec![-1000.0, -40.0, 0.0, 40.0, 1000.0, f64::NAN];
    let got = run(&func, &[6, 0], &[real(&[6], x.clone())]);
    let e40 = (-40.0f64).exp();
    assert_close(
        &got[0],
        &[6],
        &[
            0.0,
            e40 / (1.0 + e40),
            0.5,
            1.0 / (1.0 + e40),
            1.0,
            f64::NAN,
        ],
    );
    assert_close(
        &got[1],
        &[6],
        &[
            0.0,
            e40.ln_1p(),
            2f64.ln(),
            40.0 + e40.ln_1p(),
            1000.0,
            f64::NAN,
        ],
    );
    assert_close(&got[2], &[6], &[0.0, 0.0, 0.0, 40.0, 1000.0, f64::NAN]);
}

#[test]
fn binary_ops_match_plain_formulas_and_propagate_nan() {
    let table: Vec<(BinaryOp, Scalar2)> = vec![
        (BinaryOp::Add, |a, b| a + b),
        (BinaryOp::Sub, |a, b| a - b),
        (BinaryOp::Mul, |a, b| a * b),
        (BinaryOp::Div, |a, b| a / b),
        (BinaryOp::Pow, |a, b| a.powf(b)),
        (BinaryOp::Max, |a, b| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else if a > b {
                a
            } else {
                b
            }
        }),
        (BinaryOp::Min, |a, b| {
            if a.is_nan() || b.is_nan() {
                f64::NAN
            } else if a < b {
                a
            } else {
                b
            }
        }),
    ];
    let a = vec![1.5, -2.0, 0.0, f64::NAN, 3.0, -0.5];
    let b = vec![2.0, 2.0, -1.0, 1.0, f64::NAN, 0.5];
    for (op, reference) in table {
        let func = build(
            vec![
                input("a", Elem::Real, vec![M, N]),
                input("b", Elem::Real, vec![M, N]),
            ],
            |f| {
                let (x, y) = (f.push(Op::Arg(0)), f.push(Op::Arg(1)));
                vec![f.push(Op::Binary(op, x, y))]
            },
        );
        let got = run(
            &func,
            &[2, 3],
            &[real(&[2, 3], a.clone()), real(&[2, 3], b.clone())],
        );
        let want: Vec<f64> = a.iter().zip(&b).map(|(&x, &y)| reference(x, y)).collect();
        assert_close(&got[0], &[2, 3], &want);
    }
    // C's pow: a negative base with an integral exponent is fine, fractional is NaN.
    let func = build(vec![], |f| {
        let base = f.push(Op::Const(-2.0));
        let (two, half) = (f.push(Op::Const(2.0)), f.push(Op::Const(0.5)));
        vec![
            f.push(Op::Binary(BinaryOp::Pow, base, two)),
            f.push(Op::Binary(BinaryOp::Pow, base, half)),
        ]
    });
    let got = run(&func, &[0, 0], &[]);
    assert_close(&got[0], &[], &[4.0]);
    assert_close(&got[1], &[], &[f64::NAN]);
}

#[test]
fn compare_and_select_on_reals_and_ints() {
    let ops = CmpOp::ALL;
    let reference = |op: CmpOp, a: f64, b: f64| match op {
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
    };
    let a = vec![1.0, 2.0, 3.0, f64::NAN];
    let b = vec![2.0, 2.0, 2.0, 1.0];
    let ai: Vec<i64> = vec![1, 2, 3, 4];
    let bi: Vec<i64> = vec![2, 2, 2, 1];
    for op in ops {
        let func = build(
            vec![
                input("a", Elem::Real, vec![M]),
                input("b", Elem::Real, vec![M]),
                input("i", Elem::Int, vec![M]),
                input("j", Elem::Int, vec![M]),
            ],
            |f| {
                let (x, y) = (f.push(Op::Arg(0)), f.push(Op::Arg(1)));
                let (i, j) = (f.push(Op::Arg(2)), f.push(Op::Arg(3)));
                let real_mask = f.push(Op::Compare(op, x, y));
                let int_mask = f.push(Op::Compare(op, i, j));
                vec![
                    real_mask,
                    f.push(Op::Select(real_mask, x, y)),
                    f.push(Op::Select(int_mask, x, y)),
                ]
            },
        );
        let got = run(
            &func,
            &[4, 0],
            &[
                real(&[4], a.clone()),
                real(&[4], b.clone()),
                Tensor::int(vec![4], ai.clone()),
                Tensor::int(vec![4], bi.clone()),
            ],
        );
        let mask: Vec<bool> = (0..4).map(|k| reference(op, a[k], b[k])).collect();
        assert_eq!(got[0].data, TensorData::Bool(mask.clone()), "{op:?}");
        let picked: Vec<f64> = (0..4).map(|k| if mask[k] { a[k] } else { b[k] }).collect();
        assert_close(&got[1], &[4], &picked);
        let int_mask: Vec<bool> = (0..4)
            .map(|k| reference(op, ai[k] as f64, bi[k] as f64))
            .collect();
        let picked: Vec<f64> = (0..4)
            .map(|k| if int_mask[k] { a[k] } else { b[k] })
            .collect();
        assert_close(&got[2], &[4], &picked);
    }
}

#[test]
fn broadcast_follows_numpy_rules() {
    let func = build(
        vec![
            input("row", Elem::Real, vec![N]),
            input("col", Elem::Real, vec![M, Dim::Const(1)]),
            input("s", Elem::Real, vec![]),
            input("one", Elem::Real, vec![Dim::Const(1)]),
        ],
        |f| {
            let row = f.push(Op::Arg(0));
            let col = f.push(Op::Arg(1));
            let s = f.push(Op::Arg(2));
            let one = f.push(Op::Arg(3));
            vec![
                f.push(Op::Broadcast(row, vec![M, N])),
                f.push(Op::Broadcast(col, vec![M, N])),
                f.push(Op::Broadcast(s, vec![M, N])),
                f.push(Op::Broadcast(one, vec![N])),
                f.push(Op::Broadcast(one, vec![M, N])),
                f.push(Op::Broadcast(row, vec![Dim::Const(1), N])),
            ]
        },
    );
    let (m, n) = (2, 3);
    let row = vec![1.0, 2.0, 3.0];
    let col = vec![10.0, 20.0];
    let got = run(
        &func,
        &[m, n],
        &[
            real(&[n], row.clone()),
            real(&[m, 1], col.clone()),
            Tensor::scalar(7.0),
            real(&[1], vec![5.0]),
        ],
    );
    let mut from_row = Vec::new();
    let mut from_col = Vec::new();
    for &col_value in &col {
        for &row_value in &row {
            from_row.push(row_value);
            from_col.push(col_value);
        }
    }
    assert_close(&got[0], &[m, n], &from_row);
    assert_close(&got[1], &[m, n], &from_col);
    assert_close(&got[2], &[m, n], &[7.0; 6]);
    assert_close(&got[3], &[n], &[5.0; 3]);
    assert_close(&got[4], &[m, n], &[5.0; 6]);
    assert_close(&got[5], &[1, n], &row);
}

#[test]
fn broadcast_keeps_int_elements() {
    let func = build(vec![input("i", Elem::Int, vec![])], |f| {
        let i = f.push(Op::Arg(0));
        vec![f.push(Op::Broadcast(i, vec![M]))]
    });
    let got = run(&func, &[3, 0], &[Tensor::int(vec![], vec![4])]);
    assert_eq!(got[0], Tensor::int(vec![3], vec![4, 4, 4]));
}

#[test]
fn reshape_keeps_the_data_and_transpose_swaps_axes() {
    let func = build(vec![input("x", Elem::Real, vec![M, N])], |f| {
        let x = f.push(Op::Arg(0));
        let v = f.push(Op::Reshape(x, vec![M, N, Dim::Const(1)][..2].to_vec()));
        let t = f.push(Op::Transpose(v));
        vec![t]
    });
    let x = sample(6, 0.3);
    let got = run(&func, &[2, 3], &[real(&[2, 3], x.clone())]);
    let mut want = Vec::new();
    for j in 0..3 {
        for i in 0..2 {
            want.push(x[i * 3 + j]);
        }
    }
    assert_close(&got[0], &[3, 2], &want);

    let func = build(vec![input("v", Elem::Real, vec![N])], |f| {
        let v = f.push(Op::Arg(0));
        let column = f.push(Op::Reshape(v, vec![N, Dim::Const(1)]));
        let row = f.push(Op::Reshape(column, vec![Dim::Const(1), N]));
        let back = f.push(Op::Reshape(row, vec![N]));
        vec![column, row, back]
    });
    let v = vec![1.0, 2.0, 3.0];
    let got = run(&func, &[0, 3], &[real(&[3], v.clone())]);
    assert_close(&got[0], &[3, 1], &v);
    assert_close(&got[1], &[1, 3], &v);
    assert_close(&got[2], &[3], &v);
}

/// Plain-loop reduction of a `[m, n]` matrix over axis 0, axis 1 or both.
fn reduce_reference(
    x: &[f64],
    m: usize,
    n: usize,
    axes: Axes,
    init: f64,
    fold: fn(f64, f64) -> f64,
) -> Vec<f64> {
    match (axes.contains(0), axes.contains(1)) {
        (true, false) => (0..n)
            .map(|j| (0..m).fold(init, |acc, i| fold(acc, x[i * n + j])))
            .collect(),
        (false, true) => (0..m)
            .map(|i| (0..n).fold(init, |acc, j| fold(acc, x[i * n + j])))
            .collect(),
        (true, true) => vec![x.iter().fold(init, |acc, &e| fold(acc, e))],
        (false, false) => x.to_vec(),
    }
}

#[test]
fn reductions_over_each_axis_set_and_over_zero_elements() {
    let ops: Vec<(ReduceOp, f64, Scalar2)> = vec![
        (ReduceOp::Sum, 0.0, |a, b| a + b),
        (
            ReduceOp::Max,
            f64::NEG_INFINITY,
            |a, b| if b > a { b } else { a },
        ),
        (
            ReduceOp::Min,
            f64::INFINITY,
            |a, b| if b < a { b } else { a },
        ),
    ];
    for (op, init, fold) in ops {
        for axes in [Axes(0b01), Axes(0b10), Axes(0b11)] {
            let func = build(vec![input("x", Elem::Real, vec![M, N])], |f| {
                let x = f.push(Op::Arg(0));
                vec![f.push(Op::Reduce(op, x, axes))]
            });
            for (m, n) in [(3, 4), (0, 4), (3, 0)] {
                let x = sample(m * n, 1.3);
                let got = run(&func, &[m, n], &[real(&[m, n], x.clone())]);
                let shape: Vec<usize> = [m, n]
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| !axes.contains(*k))
                    .map(|(_, &s)| s)
                    .collect();
                assert_close(
                    &got[0],
                    &shape,
                    &reduce_reference(&x, m, n, axes, init, fold),
                );
            }
        }
        // Rank 1 and rank 0 (the empty axis set on a scalar is the identity).
        let func = build(
            vec![
                input("v", Elem::Real, vec![M]),
                input("s", Elem::Real, vec![]),
            ],
            |f| {
                let (v, s) = (f.push(Op::Arg(0)), f.push(Op::Arg(1)));
                vec![
                    f.push(Op::Reduce(op, v, Axes(1))),
                    f.push(Op::Reduce(op, s, Axes(0))),
                ]
            },
        );
        let v = sample(5, 0.9);
        let got = run(
            &func,
            &[5, 0],
            &[real(&[5], v.clone()), Tensor::scalar(2.5)],
        );
        assert_close(&got[0], &[], &[v.iter().fold(init, |a, &e| fold(a, e))]);
        assert_close(&got[1], &[], &[2.5]);
    }
}

#[test]
fn max_reduction_propagates_nan() {
    let func = build(vec![input("v", Elem::Real, vec![M])], |f| {
        let v = f.push(Op::Arg(0));
        vec![
            f.push(Op::Reduce(ReduceOp::Max, v, Axes(1))),
            f.push(Op::Reduce(ReduceOp::Min, v, Axes(1))),
        ]
    });
    let got = run(&func, &[3, 0], &[real(&[3], vec![1.0, f64::NAN, 2.0])]);
    assert_close(&got[0], &[], &[f64::NAN]);
    assert_close(&got[1], &[], &[f64::NAN]);
}

fn logsumexp_reference(values: &[f64]) -> f64 {
    let m = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    m + values.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

#[test]
fn logsumexp_is_stable_and_reduces_each_axis_set() {
    for axes in [Axes(0b01), Axes(0b10), Axes(0b11)] {
        let func = build(vec![input("x", Elem::Real, vec![M, N])], |f| {
            let x = f.push(Op::Arg(0));
            vec![f.push(Op::LogSumExp(x, axes))]
        });
        let (m, n) = (2, 3);
        let x = vec![1000.0, 999.0, 1001.0, -1.0, 0.0, 1.0];
        let got = run(&func, &[m, n], &[real(&[m, n], x.clone())]);
        let want: Vec<f64> = match (axes.contains(0), axes.contains(1)) {
            (true, false) => (0..n)
                .map(|j| logsumexp_reference(&[x[j], x[n + j]]))
                .collect(),
            (false, true) => (0..m)
                .map(|i| logsumexp_reference(&x[i * n..(i + 1) * n]))
                .collect(),
            _ => vec![logsumexp_reference(&x)],
        };
        assert!(got[0].as_real().unwrap().iter().all(|v| v.is_finite()));
        let shape = if axes == Axes(0b11) {
            vec![]
        } else if axes.contains(0) {
            vec![n]
        } else {
            vec![m]
        };
        assert_close(&got[0], &shape, &want);
    }
}

#[test]
fn logsumexp_of_minus_infinity_rows_and_empty_rows_is_minus_infinity() {
    let func = build(vec![input("x", Elem::Real, vec![M, N])], |f| {
        let x = f.push(Op::Arg(0));
        vec![f.push(Op::LogSumExp(x, Axes::one(1)))]
    });
    let inf = f64::INFINITY;
    let x = vec![-inf, -inf, 0.0, -inf, inf, 1.0, f64::NAN, 1.0];
    let got = run(&func, &[4, 2], &[real(&[4, 2], x)]);
    assert_close(&got[0], &[4], &[-inf, 0.0, inf, f64::NAN]);
    let got = run(&func, &[2, 0], &[real(&[2, 0], vec![])]);
    assert_close(&got[0], &[2], &[-inf, -inf]);
}

#[test]
fn softmax_and_log_softmax_along_each_axis() {
    for axis in [0u8, 1] {
        let func = build(vec![input("x", Elem::Real, vec![M, N])], |f| {
            let x = f.push(Op::Arg(0));
            vec![
                f.push(Op::Softmax(x, axis)),
                f.push(Op::LogSoftmax(x, axis)),
            ]
        });
        let (m, n) = (2, 3);
        let x = vec![1000.0, 999.0, 1001.0, -1.0, 0.0, 1.0];
        let got = run(&func, &[m, n], &[real(&[m, n], x.clone())]);
        let mut soft = vec![0.0; m * n];
        let mut log_soft = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let group: Vec<f64> = if axis == 0 {
                    (0..m).map(|r| x[r * n + j]).collect()
                } else {
                    x[i * n..(i + 1) * n].to_vec()
                };
                let lse = logsumexp_reference(&group);
                log_soft[i * n + j] = x[i * n + j] - lse;
                soft[i * n + j] = (x[i * n + j] - lse).exp();
            }
        }
        assert_close(&got[0], &[m, n], &soft);
        assert_close(&got[1], &[m, n], &log_soft);
    }
}

#[test]
fn softmax_of_a_vector_a_scalar_and_a_minus_infinity_row() {
    let func = build(
        vec![
            input("v", Elem::Real, vec![M]),
            input("s", Elem::Real, vec![]),
        ],
        |f| {
            let (v, s) = (f.push(Op::Arg(0)), f.push(Op::Arg(1)));
            vec![
                f.push(Op::Softmax(v, 0)),
                f.push(Op::LogSoftmax(v, 0)),
                f.push(Op::Softmax(s, 0)),
                f.push(Op::LogSoftmax(s, 0)),
            ]
        },
    );
    let got = run(
        &func,
        &[2, 0],
        &[real(&[2], vec![0.0, 0.0]), Tensor::scalar(3.0)],
    );
    assert_close(&got[0], &[2], &[0.5, 0.5]);
    assert_close(&got[1], &[2], &[-(2f64.ln()), -(2f64.ln())]);
    assert_close(&got[2], &[], &[1.0]);
    assert_close(&got[3], &[], &[0.0]);
    let inf = f64::INFINITY;
    let got = run(
        &func,
        &[2, 0],
        &[real(&[2], vec![-inf, -inf]), Tensor::scalar(-inf)],
    );
    assert_close(&got[0], &[2], &[f64::NAN, f64::NAN]);
    assert_close(&got[1], &[2], &[f64::NAN, f64::NAN]);
}

#[test]
fn matmul_matches_the_triple_loop() {
    let k_dim = Dim::Const(4);
    let func = build(
        vec![
            input("a", Elem::Real, vec![M, k_dim]),
            input("b", Elem::Real, vec![k_dim, N]),
        ],
        |f| {
            let (a, b) = (f.push(Op::Arg(0)), f.push(Op::Arg(1)));
            vec![f.push(Op::MatMul(a, b))]
        },
    );
    let (m, k, n) = (3, 4, 5);
    let a = sample(m * k, 0.37);
    let b = sample(k * n, 0.61);
    let got = run(
        &func,
        &[m, n],
        &[real(&[m, k], a.clone()), real(&[k, n], b.clone())],
    );
    let mut want = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                want[i * n + j] += a[i * k + p] * b[p * n + j];
            }
        }
    }
    assert_close(&got[0], &[m, n], &want);
    // An empty inner dimension gives zeros.
    let func = build(
        vec![
            input("a", Elem::Real, vec![M, N]),
            input("b", Elem::Real, vec![N, M]),
        ],
        |f| {
            let (a, b) = (f.push(Op::Arg(0)), f.push(Op::Arg(1)));
            vec![f.push(Op::MatMul(a, b))]
        },
    );
    let got = run(
        &func,
        &[2, 0],
        &[real(&[2, 0], vec![]), real(&[0, 2], vec![])],
    );
    assert_close(&got[0], &[2, 2], &[0.0; 4]);
}

#[test]
fn gather_rows_and_elements_with_vector_scalar_and_constant_indices() {
    let func = build(
        vec![
            input("table", Elem::Real, vec![M, N]),
            input("vector", Elem::Real, vec![M]),
            input("idx", Elem::Int, vec![Dim::Const(4)]),
            input("one", Elem::Int, vec![]),
        ],
        |f| {
            let table = f.push(Op::Arg(0));
            let vector = f.push(Op::Arg(1));
            let idx = f.push(Op::Arg(2));
            let one = f.push(Op::Arg(3));
            let two = f.push(Op::ConstInt(2));
            vec![
                f.push(Op::Gather(table, idx)),
                f.push(Op::Gather(table, one)),
                f.push(Op::Gather(vector, idx)),
                f.push(Op::Gather(vector, two)),
            ]
        },
    );
    let (m, n) = (3, 2);
    let table = sample(m * n, 0.5);
    let vector = vec![10.0, 11.0, 12.0];
    let idx = vec![2i64, 0, 2, 1];
    let got = run(
        &func,
        &[m, n],
        &[
            real(&[m, n], table.clone()),
            real(&[m], vector.clone()),
            Tensor::int(vec![4], idx.clone()),
            Tensor::int(vec![], vec![1]),
        ],
    );
    let rows: Vec<f64> = idx
        .iter()
        .flat_map(|&i| table[i as usize * n..(i as usize + 1) * n].to_vec())
        .collect();
    assert_close(&got[0], &[4, n], &rows);
    assert_close(&got[1], &[n], &table[n..2 * n]);
    let elems: Vec<f64> = idx.iter().map(|&i| vector[i as usize]).collect();
    assert_close(&got[2], &[4], &elems);
    assert_close(&got[3], &[], &[12.0]);
}

#[test]
fn scatter_add_accumulates_duplicate_indices() {
    let b = Dim::Const(4);
    let func = build(
        vec![
            input("u", Elem::Real, vec![b, N]),
            input("w", Elem::Real, vec![b]),
            input("idx", Elem::Int, vec![b]),
            input("one", Elem::Int, vec![]),
            input("row", Elem::Real, vec![N]),
        ],
        |f| {
            let u = f.push(Op::Arg(0));
            let w = f.push(Op::Arg(1));
            let idx = f.push(Op::Arg(2));
            let one = f.push(Op::Arg(3));
            let row = f.push(Op::Arg(4));
            vec![
                f.push(Op::ScatterAdd(u, idx, M)),
                f.push(Op::ScatterAdd(w, idx, M)),
                f.push(Op::ScatterAdd(row, one, M)),
            ]
        },
    );
    let (m, n) = (3, 2);
    let u = sample(4 * n, 0.8);
    let w = vec![1.0, 2.0, 4.0, 8.0];
    let idx = vec![2i64, 0, 2, 2];
    let row = vec![5.0, 6.0];
    let got = run(
        &func,
        &[m, n],
        &[
            real(&[4, n], u.clone()),
            real(&[4], w.clone()),
            Tensor::int(vec![4], idx.clone()),
            Tensor::int(vec![], vec![1]),
            real(&[n], row.clone()),
        ],
    );
    let mut want_rows = vec![0.0; m * n];
    let mut want_elems = vec![0.0; m];
    for (b, &i) in idx.iter().enumerate() {
        for j in 0..n {
            want_rows[i as usize * n + j] += u[b * n + j];
        }
        want_elems[i as usize] += w[b];
    }
    assert_close(&got[0], &[m, n], &want_rows);
    assert_close(&got[1], &[m], &want_elems);
    assert_close(&got[2], &[m, n], &[0.0, 0.0, 5.0, 6.0, 0.0, 0.0]);
}

#[test]
fn pick_and_one_hot() {
    let func = build(
        vec![
            input("x", Elem::Real, vec![M, N]),
            input("labels", Elem::Int, vec![M]),
            input("label", Elem::Int, vec![]),
        ],
        |f| {
            let x = f.push(Op::Arg(0));
            let labels = f.push(Op::Arg(1));
            let label = f.push(Op::Arg(2));
            vec![
                f.push(Op::Pick(x, labels)),
                f.push(Op::OneHot(labels, N)),
                f.push(Op::OneHot(label, Dim::Const(3))),
            ]
        },
    );
    let (m, n) = (3, 4);
    let x = sample(m * n, 0.2);
    let labels = vec![3i64, 0, 3];
    let got = run(
        &func,
        &[m, n],
        &[
            real(&[m, n], x.clone()),
            Tensor::int(vec![m], labels.clone()),
            Tensor::int(vec![], vec![1]),
        ],
    );
    let picked: Vec<f64> = (0..m).map(|b| x[b * n + labels[b] as usize]).collect();
    assert_close(&got[0], &[m], &picked);
    let mut one_hot = vec![0.0; m * n];
    for b in 0..m {
        one_hot[b * n + labels[b] as usize] = 1.0;
    }
    assert_close(&got[1], &[m, n], &one_hot);
    assert_close(&got[2], &[3], &[0.0, 1.0, 0.0]);
}

#[test]
fn constants_and_dimension_sizes() {
    let func = build(vec![], |f| {
        vec![
            f.push(Op::Const(2.5)),
            f.push(Op::DimSize(DimVar(1))),
            f.push(Op::ConstInt(-3)),
        ]
    });
    let got = run(&func, &[4, 7], &[]);
    assert_close(&got[0], &[], &[2.5]);
    assert_close(&got[1], &[], &[7.0]);
    assert_eq!(got[2], Tensor::int(vec![], vec![-3]));
}

#[test]
fn out_of_range_indices_are_errors_not_panics() {
    let func = build(
        vec![
            input("table", Elem::Real, vec![M]),
            input("idx", Elem::Int, vec![M]),
        ],
        |f| {
            let (table, idx) = (f.push(Op::Arg(0)), f.push(Op::Arg(1)));
            let x2 = f.push(Op::Broadcast(table, vec![M, M]));
            vec![
                f.push(Op::Gather(table, idx)),
                f.push(Op::ScatterAdd(table, idx, M)),
                f.push(Op::Pick(x2, idx)),
                f.push(Op::OneHot(idx, M)),
            ]
        },
    );
    // Each op is tried alone.
    for bad in [3i64, -1, i64::MAX, i64::MIN] {
        for which in 0..4 {
            let mut single = func.clone();
            single.results = vec![func.results[which].clone()];
            let result = eval(
                &single,
                &[3, 3],
                &[
                    real(&[3], vec![1.0; 3]),
                    Tensor::int(vec![3], vec![0, bad, 1]),
                ],
            );
            let msg = result.expect_err("an out-of-range index must be an error");
            assert!(msg.contains(&bad.to_string()), "{msg}");
        }
    }
}

#[test]
fn mismatched_arguments_are_errors_not_panics() {
    let func = build(vec![input("x", Elem::Real, vec![M, N])], |f| {
        let x = f.push(Op::Arg(0));
        vec![f.push(Op::Reduce(ReduceOp::Sum, x, Axes(3)))]
    });
    assert!(eval(&func, &[2, 3], &[]).is_err());
    assert!(eval(&func, &[2], &[real(&[2, 3], vec![0.0; 6])]).is_err());
    assert!(eval(&func, &[2, 3], &[real(&[3, 2], vec![0.0; 6])]).is_err());
    assert!(eval(&func, &[2, 3], &[Tensor::int(vec![2, 3], vec![0; 6])]).is_err());
    let malformed = Tensor {
        shape: vec![2, 3],
        data: TensorData::Real(vec![0.0; 5]),
    };
    assert!(eval(&func, &[2, 3], &[malformed]).is_err());
}

#[test]
fn a_chain_of_ops_frees_intermediates_and_returns_a_value_used_later() {
    // The first result is also an operand of later instructions: it must survive.
    let func = build(vec![input("x", Elem::Real, vec![M])], |f| {
        let x = f.push(Op::Arg(0));
        let e = f.push(Op::Unary(UnaryOp::Exp, x));
        let s = f.push(Op::Reduce(ReduceOp::Sum, e, Axes(1)));
        let l = f.push(Op::Unary(UnaryOp::Log, s));
        vec![e, l, x]
    });
    let x = vec![0.5, -1.0, 2.0];
    let got = run(&func, &[3, 0], &[real(&[3], x.clone())]);
    let e: Vec<f64> = x.iter().map(|v| v.exp()).collect();
    assert_close(&got[0], &[3], &e);
    assert_close(&got[1], &[], &[e.iter().sum::<f64>().ln()]);
    assert_close(&got[2], &[3], &x);
}

#[test]
fn a_value_too_large_to_allocate_is_an_error() {
    // column(a) * row(b) of two long vectors: 2^40 elements.
    let func = build(vec![input("s", Elem::Real, vec![])], |f| {
        let s = f.push(Op::Arg(0));
        vec![f.push(Op::Broadcast(s, vec![M, N]))]
    });
    let message = eval(&func, &[1 << 20, 1 << 20], &[Tensor::scalar(1.0)]).unwrap_err();
    assert!(message.contains("too large"), "{message}");
    let message = eval(&func, &[usize::MAX, 3], &[Tensor::scalar(1.0)]).unwrap_err();
    assert!(message.contains("too large"), "{message}");
}
