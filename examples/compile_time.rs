//! Splits compile time into the pipeline and the JIT: `compile_time FILE.loss...`.
fn main() {
    for path in std::env::args().skip(1) {
        let source = std::fs::read_to_string(&path).expect("readable");
        let t = std::time::Instant::now();
        let compiled = gradc::driver::compile(&source).expect("compiles");
        let pipeline = t.elapsed();
        let t = std::time::Instant::now();
        let _f = gradc::jit::compile(&compiled.forward).expect("jit");
        let forward = t.elapsed();
        let t = std::time::Instant::now();
        let _g = gradc::jit::compile(&compiled.grad).expect("jit");
        let grad = t.elapsed();
        println!(
            "{path}: pipeline {:.2} ms, jit forward {:.2} ms, jit grad {:.2} ms",
            pipeline.as_secs_f64() * 1e3,
            forward.as_secs_f64() * 1e3,
            grad.as_secs_f64() * 1e3
        );
    }
}
