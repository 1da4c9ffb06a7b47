//! Times the benchmark workloads at their reference sizes with random data:
//! `cargo run --release --example bench_workloads -- /work/shared/bench/workloads [NAME...]`.

use gradc::bench::{bench_with, BenchOptions};
use gradc::data::random_point_with;
use gradc::ir::{Dim, Elem, Op};
use gradc::tensor::Tensor;

fn sizes(workload: &str) -> &'static [(&'static str, usize)] {
    match workload {
        "logreg" => &[("N", 1000), ("D", 20)],
        "mlp" => &[("B", 128), ("D", 784), ("H", 256), ("K", 10)],
        "deep" => &[("B", 32), ("F", 64)],
        "glove" => &[("V", 400), ("K", 50)],
        "nlm" => &[("V", 1000), ("D", 32), ("H", 128), ("B", 64)],
        "fused" => &[("N", 1_000_000)],
        _ => &[],
    }
}

fn main() {
    let mut argv = std::env::args().skip(1);
    let dir = argv
        .next()
        .unwrap_or_else(|| "/work/shared/bench/workloads".into());
    let only: Vec<String> = argv.collect();
    let names = [
        "neuron", "logreg", "mlp", "deep", "glove", "nlm", "fused", "swell",
    ];
    println!(
        "{:8} {:>10} {:>12} {:>12} {:>12}",
        "workload", "compile_ms", "forward_us", "vg_us", "arena_KiB"
    );
    for name in names {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let source = std::fs::read_to_string(format!("{dir}/{name}.loss")).expect("workload");
        let report = bench_with(
            &source,
            |model| Ok(random_bound(model, name)),
            &BenchOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        println!(
            "{:8} {:>10.2} {:>12.3} {:>12.3} {:>12.1}   loss {:.6e}",
            name,
            report.compile_ms,
            report.forward_us,
            report.value_and_grad_us,
            report.peak_memory_bytes as f64 / 1024.0,
            report.loss
        );
    }
}

pub fn random_bound(model: &gradc::Model, name: &str) -> gradc::data::Bound {
    let func = model.forward_function();
    let mut bound = random_point_with(func, 1, gradc::data::RealSampling::Positive);
    for (k, dim) in func.dims.iter().enumerate() {
        let size = sizes(name)
            .iter()
            .find(|(d, _)| d == dim)
            .map_or(3, |s| s.1);
        bound.dims[k] = size;
    }
    let size = |d: Dim| match d {
        Dim::Const(n) => n as usize,
        Dim::Sym(v) => bound.dims[v.0 as usize],
    };
    let checks = gradc::ir::index_checks(func);
    let mut state = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (k, decl) in func.args.iter().enumerate() {
        let shape: Vec<usize> = decl.ty.shape.iter().map(|&d| size(d)).collect();
        let n: usize = shape.iter().product();
        bound.args[k] = if decl.ty.elem == Elem::Int {
            let limit = checks
                .iter()
                .filter(|c| *func.op(c.index) == Op::Arg(k as u32))
                .map(|c| size(c.bound))
                .min()
                .unwrap_or(2);
            Tensor::int(
                shape,
                (0..n).map(|_| (next() % limit as u64) as i64).collect(),
            )
        } else {
            let scale = 1.0 / (shape.first().copied().unwrap_or(1) as f64).sqrt();
            Tensor::real(
                shape,
                (0..n)
                    .map(|_| scale * ((next() >> 11) as f64 / (1u64 << 53) as f64 - 0.3))
                    .collect(),
            )
        };
    }
    bound
}
