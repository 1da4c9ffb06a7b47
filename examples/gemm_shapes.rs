//! Times the matrix products the benchmark workloads make, for each candidate kernel:
//! the `gemm` crate (one thread, two threads), `matrixmultiply` (one thread), gradc's
//! plain loops, gradc's packed kernel (one thread, two threads).
//!
//! `cargo run --release --example gemm_shapes [rounds] [name filter]`. Candidates run interleaved,
//! round after round; prints the minimum and median µs per call of each.
//! Transposed operands are passed as strides, as the JIT does.

#[allow(dead_code)]
#[path = "../src/jit/runtime/matmul.rs"]
mod matmul;

#[allow(dead_code)]
#[path = "../src/jit/helper.rs"]
pub mod helper;

/// The helper thread the matrix product shares, where it looks for it.
mod jit {
    pub use super::helper;
}

use std::time::Instant;

/// One product as the workloads issue it: sizes and whether `a`/`b` are transposed
/// views (column-major strides) of row-major buffers.
struct Shape {
    name: &'static str,
    m: usize,
    n: usize,
    k: usize,
    a_t: bool,
    b_t: bool,
}

const fn shape(name: &'static str, m: usize, n: usize, k: usize, a_t: bool, b_t: bool) -> Shape {
    Shape {
        name,
        m,
        n,
        k,
        a_t,
        b_t,
    }
}

const SHAPES: &[Shape] = &[
    shape("mlp x@W1", 128, 256, 784, false, false),
    shape("mlp h@W2", 128, 10, 256, false, false),
    shape("mlp xT@dZ", 784, 256, 128, true, false),
    shape("mlp hT@dL", 256, 10, 128, true, false),
    shape("mlp dL@W2T", 128, 256, 10, false, true),
    shape("glove W@WtT", 400, 400, 50, false, true),
    shape("glove G@Wt", 400, 50, 400, false, false),
    shape("glove GT@W", 400, 50, 400, true, false),
    shape("nlm e@C", 64, 128, 32, false, false),
    shape("nlm h@U", 64, 1000, 128, false, false),
    shape("nlm dH@CT", 64, 32, 128, false, true),
    shape("nlm eT@dH", 32, 128, 64, true, false),
    shape("nlm dL@UT", 64, 128, 1000, false, true),
    shape("nlm hT@dL", 128, 1000, 64, true, false),
    shape("deep h@W", 32, 64, 64, false, false),
    shape("deep hT@d", 64, 64, 32, true, false),
    shape("deep d@WT", 32, 64, 64, false, true),
    shape("logreg X@w", 1000, 1, 20, false, false),
    shape("logreg XT@g", 20, 1, 1000, true, false),
];

const CANDIDATES: &[&str] = &["gemm-1", "gemm-2", "mm-1", "small", "packed", "packed-2"];

/// Row and column strides of a `rows × cols` view, column-major when `transposed`.
fn strides(rows: usize, cols: usize, transposed: bool) -> (isize, isize) {
    if transposed {
        (1, rows as isize)
    } else {
        (cols as isize, 1)
    }
}

fn run(candidate: &str, s: &Shape, a: &[f64], b: &[f64], c: &mut [f64]) {
    let (m, n, k) = (s.m, s.n, s.k);
    let (a_rs, a_cs) = strides(m, k, s.a_t);
    let (b_rs, b_cs) = strides(k, n, s.b_t);
    let (c_rs, c_cs) = (n as isize, 1isize);
    // SAFETY: buffers hold the sizes and strides given.
    unsafe {
        match candidate {
            "gemm-1" | "gemm-2" => gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                c_cs,
                c_rs,
                false,
                a.as_ptr(),
                a_cs,
                a_rs,
                b.as_ptr(),
                b_cs,
                b_rs,
                0.0,
                1.0,
                false,
                false,
                false,
                if candidate == "gemm-2" {
                    gemm::Parallelism::Rayon(2)
                } else {
                    gemm::Parallelism::None
                },
            ),
            "mm-1" => matrixmultiply::dgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                a_rs,
                a_cs,
                b.as_ptr(),
                b_rs,
                b_cs,
                0.0,
                c.as_mut_ptr(),
                c_rs,
                c_cs,
            ),
            _ => {
                let strategy = match candidate {
                    "small" => matmul::Strategy::Small,
                    "packed" => matmul::Strategy::Packed,
                    _ => matmul::Strategy::Parallel,
                };
                let out = matmul::Output {
                    ptr: c.as_mut_ptr(),
                    rs: c_rs,
                    cs: c_cs,
                };
                let a = matmul::Operand {
                    ptr: a.as_ptr(),
                    rs: a_rs,
                    cs: a_cs,
                };
                let b = matmul::Operand {
                    ptr: b.as_ptr(),
                    rs: b_rs,
                    cs: b_cs,
                };
                matmul::matmul(m, n, k, out, a, b, strategy)
            }
        }
    }
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    println!("µs per call: min / median of {rounds} interleaved rounds (each ~2 ms of calls)");
    print!("{:<14} {:>9}", "shape", "MACs");
    for c in CANDIDATES {
        print!(" {c:>15}");
    }
    println!();
    let filter = std::env::args().nth(2).unwrap_or_default();
    for s in SHAPES.iter().filter(|s| s.name.contains(filter.as_str())) {
        let a: Vec<f64> = (0..s.m * s.k)
            .map(|i| ((i * 7919) % 1000) as f64 / 1000.0 - 0.5)
            .collect();
        let b: Vec<f64> = (0..s.k * s.n)
            .map(|i| ((i * 104729) % 1000) as f64 / 1000.0 - 0.5)
            .collect();
        let mut c = vec![0.0; s.m * s.n];
        let mut reference = vec![0.0; s.m * s.n];
        run("small", s, &a, &b, &mut reference);
        let macs = s.m * s.n * s.k;
        // Calls per sample so one sample takes ~2 ms at ~10 GFLOP/s.
        let calls = (10_000_000 / macs.max(1)).clamp(1, 20_000);
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); CANDIDATES.len()];
        for _ in 0..rounds {
            for (ci, cand) in CANDIDATES.iter().enumerate() {
                run(cand, s, &a, &b, &mut c);
                let start = Instant::now();
                for _ in 0..calls {
                    run(cand, s, &a, &b, &mut c);
                }
                samples[ci].push(start.elapsed().as_secs_f64() * 1e6 / calls as f64);
                let err = c
                    .iter()
                    .zip(&reference)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f64::max);
                assert!(err < 1e-9, "{cand} wrong on {}: {err}", s.name);
            }
        }
        print!("{:<14} {:>9}", s.name, macs);
        for times in &mut samples {
            times.sort_by(f64::total_cmp);
            print!(" {:>7.1}/{:<7.1}", times[0], times[times.len() / 2]);
        }
        println!();
    }
}
