//! Loop nests large enough to be split across two threads: the JIT agrees with the
//! interpreter (relative 1e-12), and repeated calls — from several threads at once, so
//! some find the helper thread busy and run both chunks themselves — give the same bits.

mod fixtures;

use gradc::data::RealSampling;
use gradc::jit::{self, Workspace};

const TOLERANCE: f64 = 1e-12;

fn run(kernel: &jit::Kernel, bound: &gradc::data::Bound, lens: &[usize]) -> Vec<Vec<f64>> {
    let args = fixtures::args_of(bound);
    let mut outputs: Vec<Vec<f64>> = lens.iter().map(|&n| vec![f64::NAN; n]).collect();
    let mut slices: Vec<&mut [f64]> = outputs.iter_mut().map(|o| o.as_mut_slice()).collect();
    kernel
        .call(&bound.dims, &args, &mut slices, &mut Workspace::new())
        .expect("call");
    outputs
}

fn check(name: &str, source: &str, sizes: &[usize]) {
    let compiled = gradc::driver::compile(source).expect("compiles");
    for func in [&compiled.forward, &compiled.grad] {
        let bound = fixtures::point_at(func, sizes, 11, RealSampling::Signed);
        let expected = gradc::interp::eval(func, &bound.dims, &bound.args).expect("interpreter");
        let lens: Vec<usize> = expected.iter().map(|t| t.len()).collect();
        let kernel = jit::compile(func).expect("jit");
        let first = run(&kernel, &bound, &lens);
        for (r, (want, got)) in expected.iter().zip(&first).enumerate() {
            let want = want.as_real().expect("real result");
            for (k, (&w, &g)) in want.iter().zip(got).enumerate() {
                assert!(
                    g == w || (g.is_finite() && (g - w).abs() <= TOLERANCE * w.abs().max(1.0)),
                    "{name} {}: result {r}[{k}]: jit {g:e}, interpreter {w:e}",
                    func.name
                );
            }
        }
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    for _ in 0..5 {
                        let again = run(&kernel, &bound, &lens);
                        for (a, b) in again.iter().flatten().zip(first.iter().flatten()) {
                            assert_eq!(a.to_bits(), b.to_bits(), "{name}: calls differ");
                        }
                    }
                });
            }
        });
    }
}

#[test]
fn long_fused_chain_splits_and_agrees() {
    check(
        "fused",
        "input x: [N]\nparam a\nparam c\n\
         loss = sum(log1p(exp(a * x + c)) * square(tanh(x)) + sigmoid(a * x) * c)\n",
        &[200_001],
    );
}

#[test]
fn matrix_nests_with_row_sums_split_and_agree() {
    check(
        "rows",
        "input x: [M, N]\nparam w: [N]\nparam b\n\
         output s = sum(exp(x * w) * sigmoid(x + b), 1)\n\
         loss = sum(log1p(exp(x * w + b))) + max(tanh(x * w)) + sum(square(s))\n",
        &[513, 301],
    );
}

#[test]
fn masks_and_matrix_products_split_and_agree() {
    check(
        "logreg",
        "input X: [N, D]\ninput y: [N]\nparam w: [D]\nparam b\n\
         let z = X @ w + b\n\
         loss = -mean(y * log(sigmoid(z)) + (1 - y) * log(sigmoid(-z))) + sum(where(z > b, relu(z), square(z)))\n",
        &[120_000, 3],
    );
}

#[test]
fn big_softmaxes_along_both_axes_split_and_agree() {
    // Above the size at which softmax lines are shared with the helper thread; the
    // rows (axis 1) take the four-lane exponential path, the columns the strided one.
    check(
        "softmax",
        "input x: [M, N]\ninput labels: int[M]\nparam w: [N]\n\
         let z = x * w\n\
         loss = -mean(pick(log_softmax(z, 1), labels)) + sum(softmax(z, 0) * x) + sum(logsumexp(z, 1))\n",
        &[211, 157],
    );
}
