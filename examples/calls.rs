//! Runs N value-and-gradient calls of one workload at its reference size, for counting
//! cycles with `perf stat` under load: `calls WORKLOAD_DIR NAME N`.
#[path = "bench_workloads.rs"]
#[allow(dead_code)]
mod workloads;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, name, n) = (&args[1], &args[2], args[3].parse::<usize>().expect("N"));
    let source = std::fs::read_to_string(format!("{dir}/{name}.loss")).expect("workload");
    let model = gradc::Model::from_source(&source).expect("compiles");
    let bound = workloads::random_bound(&model, name);
    let args: Vec<gradc::jit::ArgData> = bound
        .args
        .iter()
        .map(|t| match &t.data {
            gradc::TensorData::Real(x) => gradc::jit::ArgData::Real(x),
            gradc::TensorData::Int(x) => gradc::jit::ArgData::Int(x),
            _ => unreachable!(),
        })
        .collect();
    let (_, grads) = model.value_and_grad_vec(&bound).expect("call");
    let mut grads: Vec<Vec<f64>> = grads
        .into_iter()
        .map(|t| t.as_real().unwrap().to_vec())
        .collect();
    let mut slices: Vec<&mut [f64]> = grads.iter_mut().map(|g| g.as_mut_slice()).collect();
    let mut call = model.prepare(&bound.dims).expect("prepare");
    let t = std::time::Instant::now();
    for _ in 0..n {
        call.value_and_grad(&args, &mut slices).expect("call");
    }
    eprintln!(
        "{name}: {:.3} us/call wall",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
