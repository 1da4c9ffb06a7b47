//! The `ndarray` feature: inputs and params bound from `ndarray` arrays (any layout)
//! give the same results as the same numbers bound from slices.

use gradc::api::{int_tensor_from_ndarray, tensor_from_ndarray, Model, ModelError};
use gradc::Tensor;
use ndarray::{array, Array2, Array3, ShapeBuilder};

const SOURCE: &str = "\
input  x: [B, D]
input  labels: int[B]
param  W: [D, K]
param  b: [K]
loss = -mean(pick(log_softmax(x @ W + b, 1), labels))
";

#[test]
fn arrays_of_any_layout_bind_like_row_major_slices() {
    let model = Model::from_source(SOURCE).unwrap();
    let x = array![[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]];
    // W stored column-major (Fortran order) and read through a transposed view.
    let mut w_fortran = Array2::<f64>::zeros((3, 4).f());
    for ((i, j), w) in w_fortran.indexed_iter_mut() {
        *w = (i as f64 + 1.0) * 0.1 - j as f64 * 0.3;
    }
    let w_t = w_fortran.t().to_owned();
    let w_view = w_t.t();
    let b = array![0.1, -0.2, 0.3, 0.0];
    let labels = array![3i64, 1];

    let from_arrays = model
        .bind(vec![
            ("x".into(), tensor_from_ndarray(&x).unwrap()),
            ("labels".into(), int_tensor_from_ndarray(&labels).unwrap()),
            ("W".into(), tensor_from_ndarray(&w_view).unwrap()),
            ("b".into(), tensor_from_ndarray(&b).unwrap()),
        ])
        .unwrap();
    let w_rows: Vec<f64> = (0..3)
        .flat_map(|i| (0..4).map(move |j| (i as f64 + 1.0) * 0.1 - j as f64 * 0.3))
        .collect();
    let from_slices = model
        .bind(vec![
            (
                "x".into(),
                Tensor::real(vec![2, 3], vec![0.5, -1.0, 2.0, 1.5, 0.25, -0.75]),
            ),
            ("labels".into(), Tensor::int(vec![2], vec![3, 1])),
            ("W".into(), Tensor::real(vec![3, 4], w_rows)),
            ("b".into(), Tensor::real(vec![4], vec![0.1, -0.2, 0.3, 0.0])),
        ])
        .unwrap();
    assert_eq!(from_arrays.args, from_slices.args);
    assert_eq!(from_arrays.dims, from_slices.dims);

    // Gradients land in caller-owned ndarray buffers through their slices.
    let mut grad_w = Array2::<f64>::zeros((3, 4));
    let mut grad_b = ndarray::Array1::<f64>::zeros(4);
    let loss = model
        .value_and_grad(
            &from_arrays,
            &mut [
                grad_w.as_slice_mut().unwrap(),
                grad_b.as_slice_mut().unwrap(),
            ],
        )
        .unwrap();
    let (expected_loss, expected) = model.value_and_grad_vec(&from_slices).unwrap();
    assert_eq!(loss, expected_loss);
    assert_eq!(grad_w.as_slice().unwrap(), expected[0].as_real().unwrap());
    assert_eq!(grad_b.as_slice().unwrap(), expected[1].as_real().unwrap());
    // Softmax cross-entropy: the bias gradient sums to zero and the loss is positive.
    assert!(loss > 0.0 && grad_b.sum().abs() < 1e-12);
}

#[test]
fn arrays_of_rank_three_and_wrong_data_are_errors() {
    let cube = Array3::<f64>::zeros((2, 2, 2));
    assert!(matches!(
        tensor_from_ndarray(&cube),
        Err(ModelError::BadCall(m)) if m.contains("rank 3")
    ));
    let model = Model::from_source(SOURCE).unwrap();
    // A label out of range is caught at bind time, as with slices.
    let result = model.bind(vec![
        (
            "x".into(),
            tensor_from_ndarray(&array![[1.0, 2.0, 3.0]]).unwrap(),
        ),
        (
            "labels".into(),
            int_tensor_from_ndarray(&array![4i64]).unwrap(),
        ),
        (
            "W".into(),
            tensor_from_ndarray(&Array2::<f64>::zeros((3, 4))).unwrap(),
        ),
        (
            "b".into(),
            tensor_from_ndarray(&array![0.0, 0.0, 0.0, 0.0]).unwrap(),
        ),
    ]);
    let message = result.unwrap_err().to_string();
    assert!(message.contains("`labels`"), "{message}");
    // A scalar param from a rank-0 array.
    let scalar = tensor_from_ndarray(&ndarray::arr0(2.5)).unwrap();
    assert_eq!(scalar, Tensor::real(vec![], vec![2.5]));
}
