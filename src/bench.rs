//! Timing of a compiled model, for `gradc bench`.
//!
//! In: `.loss` source and a `DATA.json` object. Out: a [`BenchReport`]: the cold compile
//! time (source to the first value-and-gradient call returned), the median time per call
//! of the forward and value-and-gradient functions through the fast path
//! ([`crate::api::Call`]), the loss, the workspace size and the IR sizes.
//!
//! Method (as the peer harness): two warm-up calls, then samples of about
//! [`BenchOptions::sample_ms`] (one call per sample when a call is longer), for at least
//! [`BenchOptions::min_time_s`] and [`BenchOptions::min_samples`] samples; the median of
//! the samples' per-call times is reported.

use std::time::Instant;

use serde_json::json;

use crate::api::{CompileOptions, Model, ModelError};
use crate::driver;

/// How long to measure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BenchOptions {
    /// Minimum total measuring time per function, in seconds.
    pub min_time_s: f64,
    /// Target duration of one sample, in milliseconds.
    pub sample_ms: f64,
    /// Minimum number of samples.
    pub min_samples: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            min_time_s: 0.5,
            sample_ms: 20.0,
            min_samples: 7,
        }
    }
}

/// Per-call times of one function, in microseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// Median over samples.
    pub median_us: f64,
    /// Fastest sample.
    pub min_us: f64,
    /// 10th percentile.
    pub p10_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// Number of samples.
    pub samples: usize,
    /// Calls per sample.
    pub calls_per_sample: usize,
}

/// What `gradc bench` prints.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// Milliseconds from source text to the first value-and-gradient call returned.
    pub compile_ms: f64,
    /// The part of `compile_ms` spent in the pipeline up to the forward function (source
    /// to simplified forward IR).
    pub pipeline_ms: f64,
    /// The part of `compile_ms` after that: generating native code for both functions,
    /// with the pipeline's gradient stages running beside it on the second thread.
    pub jit_ms: f64,
    /// The part of `compile_ms` spent in the first value-and-gradient call, allocating
    /// its workspace and gradient buffers included.
    pub first_call_ms: f64,
    /// Median microseconds per forward call.
    pub forward_us: f64,
    /// Median microseconds per value-and-gradient call.
    pub value_and_grad_us: f64,
    /// The loss at the data.
    pub loss: f64,
    /// Arena bytes of the value-and-gradient workspace (the intermediate memory).
    pub peak_memory_bytes: usize,
    /// The process's peak resident memory in bytes (the data and the compiler
    /// included; 0 where the host does not say).
    pub max_rss_bytes: u64,
    /// Operations of the forward IR.
    pub forward_ir_ops: usize,
    /// Operations of the gradient IR from reverse mode, before simplification.
    pub grad_raw_ir_ops: usize,
    /// Operations of the simplified value-and-gradient IR.
    pub grad_ir_ops: usize,
    /// Details of the forward timing.
    pub forward: Timing,
    /// Details of the value-and-gradient timing.
    pub value_and_grad: Timing,
    /// CPUs this process may run on.
    pub cpus_available: usize,
    /// Threads the compiled code may use (the calling thread, and one helper thread
    /// for big loop nests and matrix products when there are two CPUs).
    pub threads: usize,
}

impl BenchReport {
    /// The report as one JSON object (the peer harness reads `compile_ms`,
    /// `forward_us`, `value_and_grad_us`, `loss` and the `*_ir_*` sizes). Numbers are
    /// JSON numbers, except a non-finite loss: the string `"NaN"`, `"Infinity"` or
    /// `"-Infinity"`, as in `gradc run`.
    pub fn to_json(&self) -> serde_json::Value {
        let timing = |t: &Timing| {
            json!({
                "median_us": t.median_us, "min_us": t.min_us, "p10_us": t.p10_us,
                "p90_us": t.p90_us, "samples": t.samples, "calls_per_sample": t.calls_per_sample,
            })
        };
        json!({
            "compile_ms": self.compile_ms,
            "pipeline_ms": self.pipeline_ms,
            "jit_ms": self.jit_ms,
            "first_call_ms": self.first_call_ms,
            "forward_us": self.forward_us,
            "value_and_grad_us": self.value_and_grad_us,
            // As `run` prints it: a non-finite loss is "NaN", "Infinity" or "-Infinity".
            "loss": crate::data::real_to_json(self.loss),
            "peak_memory_bytes": self.peak_memory_bytes,
            "max_rss_bytes": self.max_rss_bytes,
            "forward_ir_ops": self.forward_ir_ops,
            "grad_raw_ir_ops": self.grad_raw_ir_ops,
            "grad_ir_ops": self.grad_ir_ops,
            "forward": timing(&self.forward),
            "value_and_grad": timing(&self.value_and_grad),
            // The peer harness lists each system's threading from this key.
            "threads": {
                "cpus_available": self.cpus_available,
                "count": self.threads,
                "gradc_threads": if self.threads > 1 {
                    "the calling thread and one helper thread (big loop nests and matrix products are split between them)"
                } else {
                    "the calling thread only"
                },
            },
        })
    }
}

/// Compiles `source`, binds `data` and times both functions. The parsed data is
/// dropped once bound, before the first call (as a program would drop it), so the
/// first call's workspace can reuse its memory.
pub fn bench(
    source: &str,
    data: serde_json::Value,
    options: &BenchOptions,
) -> Result<BenchReport, ModelError> {
    bench_with(source, move |model| model.bind_json(&data), options)
}

/// [`bench()`] with the data bound by `bind` (after the model is compiled).
pub fn bench_with(
    source: &str,
    bind: impl FnOnce(&Model) -> Result<crate::data::Bound, ModelError>,
    options: &BenchOptions,
) -> Result<BenchReport, ModelError> {
    // Cold compile: pipeline and JIT of both functions...
    let start = Instant::now();
    let front = driver::compile_front(source)
        .map_err(|d| ModelError::Compile(crate::api::CompileErrors::new("<source>", source, d)))?;
    let pipeline_time = start.elapsed();
    let (model, compiled) = Model::from_front(front, CompileOptions::default())?;
    let compile_time = start.elapsed();
    // ...(binding the data is not compilation: JAX's peer stages its data before timing
    // too)...
    let bound = bind(&model)?;
    let args = bound.arg_data();
    // ...until the first value-and-gradient call has returned, with its workspace and
    // gradient buffers allocated (JAX's first call allocates its own).
    let first = Instant::now();
    let mut grads: Vec<Vec<f64>> = model
        .grad_function()
        .results
        .iter()
        .skip(1)
        .map(|r| {
            let shape = &model.grad_function().ty(r.value).shape;
            vec![0.0; crate::jit::numel(shape, &bound.dims)]
        })
        .collect();
    let mut call = model.prepare(&bound.dims)?;
    let mut slices: Vec<&mut [f64]> = grads.iter_mut().map(|g| g.as_mut_slice()).collect();
    let loss = call.value_and_grad(&args, &mut slices)?;
    let first_call = first.elapsed();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;

    let value_and_grad = time(options, || {
        call.value_and_grad(&args, &mut slices).map(|_| ())
    })?;
    let peak_memory_bytes = call.workspace_bytes();
    let mut forward_call = model.prepare(&bound.dims)?;
    let forward = time(options, || forward_call.forward(&args).map(|_| ()))?;
    Ok(BenchReport {
        compile_ms: ms(compile_time + first_call),
        pipeline_ms: ms(pipeline_time),
        jit_ms: ms(compile_time - pipeline_time),
        first_call_ms: ms(first_call),
        forward_us: forward.median_us,
        value_and_grad_us: value_and_grad.median_us,
        loss,
        peak_memory_bytes: peak_memory_bytes.max(forward_call.workspace_bytes()),
        max_rss_bytes: max_rss_bytes(),
        forward_ir_ops: driver::op_count(&compiled.forward),
        grad_raw_ir_ops: driver::op_count(&compiled.grad_raw),
        grad_ir_ops: driver::op_count(&compiled.grad),
        forward,
        value_and_grad,
        cpus_available: std::thread::available_parallelism().map_or(1, |n| n.get()),
        threads: crate::jit::threads(),
    })
}

/// Times `f` as the module documentation says.
fn time(
    options: &BenchOptions,
    mut f: impl FnMut() -> Result<(), ModelError>,
) -> Result<Timing, ModelError> {
    f()?;
    let once = Instant::now();
    f()?;
    let one_call = once.elapsed().as_secs_f64().max(1e-9);
    let calls_per_sample = ((options.sample_ms * 1e-3 / one_call) as usize).max(1);
    let mut per_call: Vec<f64> = Vec::new();
    let begin = Instant::now();
    while per_call.len() < options.min_samples || begin.elapsed().as_secs_f64() < options.min_time_s
    {
        let sample = Instant::now();
        for _ in 0..calls_per_sample {
            f()?;
        }
        per_call.push(sample.elapsed().as_secs_f64() * 1e6 / calls_per_sample as f64);
    }
    per_call.sort_by(f64::total_cmp);
    let at = |q: f64| per_call[((per_call.len() - 1) as f64 * q).round() as usize];
    Ok(Timing {
        median_us: at(0.5),
        min_us: per_call[0],
        p10_us: at(0.1),
        p90_us: at(0.9),
        samples: per_call.len(),
        calls_per_sample,
    })
}

/// The process's peak resident memory in bytes, from `getrusage` (0 if it fails).
fn max_rss_bytes() -> u64 {
    // SAFETY: `getrusage` writes one `rusage` into the zeroed value it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage`.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    // Linux counts kilobytes; macOS counts bytes.
    let scale = if cfg!(target_os = "macos") { 1 } else { 1024 };
    u64::try_from(usage.ru_maxrss).unwrap_or(0) * scale
}
