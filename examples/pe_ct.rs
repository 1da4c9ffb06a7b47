fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap();
    let reps: usize = args.next().map(|s| s.parse().unwrap()).unwrap_or(50);
    let source = std::fs::read_to_string(&path).expect("readable");
    let compiled = gradc::driver::compile(&source).expect("compiles");
    let mut best = (f64::MAX, f64::MAX);
    for _ in 0..reps {
        let t = std::time::Instant::now();
        let _f = gradc::jit::compile(&compiled.forward).expect("jit");
        let f = t.elapsed().as_secs_f64() * 1e3;
        let t = std::time::Instant::now();
        let _g = gradc::jit::compile(&compiled.grad).expect("jit");
        let g = t.elapsed().as_secs_f64() * 1e3;
        best = (best.0.min(f), best.1.min(g));
    }
    println!(
        "{path}: best jit forward {:.2} ms, grad {:.2} ms",
        best.0, best.1
    );
}
